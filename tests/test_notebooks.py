"""Each report notebook executed top to bottom by papermill, in a real kernel, against simulated
catalogs; what it reports is compared with the Python API's own answers and the simulator's
ground truth (each notebook writes its key numbers to ``result_path``)."""

from __future__ import annotations

import json

import nbformat
import polars as pl
import pytest

import cosmoscope
from cosmoscope.reports import run_report
from tests.notebook_env import SKY_END, SKY_START, jupyter_env, sky  # noqa: F401

pytestmark = pytest.mark.slow


def run(name, tmp_path, **parameters):
    """Run a notebook; return what it wrote to result_path, after checking no cell errored."""
    parameters["result_path"] = str(tmp_path / f"{name}.json")
    result = run_report(name, parameters, out=tmp_path / f"{name}.html", progress=False, html=False)
    nb = nbformat.read(result.notebook, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip())
    with open(parameters["result_path"], encoding="utf-8") as f:
        return json.load(f), nb


def test_ingest_notebook_reports_what_the_api_does(jupyter_env, tmp_path):
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "incoming", files=40, days=1, start=SKY_START, faults=0.1, seed=3, progress=False)
    with cosmoscope.open_catalog(tmp_path / "api.sqlite") as cat:
        expected = cat.ingest([sim.root], workers=0, progress=False)
        failed = set(cat.observations().filter(pl.col("extraction_status") == "error")
                     .select("file_path").collect()["file_path"])
        per_mission = dict(cat.observations().group_by("mission_id").len().collect().iter_rows())

    # Extraction in a worker process started from the kernel, as a scheduled run would do it.
    result, nb = run("ingest", tmp_path, paths=[str(sim.root)], catalog_url=str(tmp_path / "nb.sqlite"), workers=1)
    got = result["summary"]
    for key in ("seen", "new", "updated", "unchanged", "not_data", "failed", "partial", "failures",
                "lineage_links", "lineage_pending"):
        assert got[key] == expected.to_dict()[key], key
    assert got["new"] == result["written"] == sum(per_mission.values()) > 30
    assert set(result["failed_files"]) == failed and len(failed) == expected.failed > 0
    assert result["added_by_mission"] == {m or "(unknown)": n for m, n in per_mission.items()}
    truncated = sim.manifest.filter(pl.col("fault") == "truncated")["path"].to_list()
    assert set(truncated) <= failed
    # The failures table names every reason, and the charts were drawn.
    for reason in expected.failures:
        assert reason in _html(nb, "failed")
    assert "Observations per" in _html(nb, "charts")


def test_validation_report_counts_known_problems(jupyter_env, sky, tmp_path):
    result, nb = run("validation_report", tmp_path, catalog_url=sky.catalogs["validation"], max_gap="6h")
    with cosmoscope.open_catalog(sky.catalogs["validation-api"]) as cat:
        expected = cat.validate(progress=False)

    assert result["verdict"] == "FAIL" and result["passed"] is False
    with cosmoscope.open_catalog(sky.catalogs["validation-api"], readonly=True) as cat:
        assert result["checked"] == expected.checked == cat.count() > 70
    assert result["with_problems"] == expected.with_problems > 2
    kinds = {}
    for (kind, _), n in expected.remaining.items():
        kinds[kind] = kinds.get(kind, 0) + n
    assert result["problems"] == {k: n for k, n in kinds.items() if n}
    # The two problems made after the ingest, named by file.
    assert result["missing_files"] == [sky.missing]
    assert result["changed_files"] == [sky.changed]
    # Every deliberately truncated file is reported as unextractable.
    assert result["problems"]["extraction_error"] >= (sky.manifest["fault"] == "truncated").sum() > 0
    # Coverage gaps against an independent reading of the catalog's times.
    assert result["gaps"] == _gaps(sky.catalogs["validation-api"], hours=6) > 0
    assert 'data-verdict="FAIL"' in _html(nb, "verdict")


def test_validation_report_passes_a_clean_catalog_in_a_named_kernel(jupyter_env, tmp_path):
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "clean", files=24, days=1, start=SKY_START, seed=4, progress=False)
    url = f"sqlite://{tmp_path}/clean.sqlite"
    with cosmoscope.open_catalog(url) as cat:
        cat.ingest([sim.root], workers=0, progress=False)
    parameters = {"catalog_url": url, "mission": "LYRA", "fail_on_problems": True,
                  "result_path": str(tmp_path / "clean.json")}
    # "python3" is the kernelspec every ipykernel install has (jupyter_client runs it with this Python).
    run_report("validation_report", parameters, out=tmp_path / "clean.html", kernel="python3", progress=False)
    result = json.loads((tmp_path / "clean.json").read_text())
    assert result["verdict"] == "PASS" and result["with_problems"] == 0 and result["problems"] == {}
    assert result["checked"] == sim.manifest.filter(pl.col("mission") == "LYRA").height > 0
    assert 'data-verdict="PASS"' in (tmp_path / "clean.html").read_text()


def test_preflight_notebook_blocks_the_missing_and_changed_files(jupyter_env, sky, tmp_path):
    with cosmoscope.open_catalog(sky.catalogs["preflight"]) as cat:
        rows = cat.search(start=SKY_START, end=SKY_END).select("dataset_id", "file_path").sort("file_path").collect()
        ids = dict(zip(rows["file_path"], rows["dataset_id"]))
        spare = [i for p, i in ids.items() if p not in (sky.missing, sky.changed)]
        # Two more reasons to leave a dataset out: archived by a run, and poor quality.
        cat.set_status(spare[0], "archived", reason="test")
        cat.update(spare[1], data_quality_score=0.3, reason="test")
        offered = cat.available_datasets(min_quality=0.8, window=None, until=SKY_END).select(pl.len()).collect().item()
        # Unreadable files are in the window too (their path says when), and never offered.
        unreadable = cat.search(start=SKY_START, end=SKY_END).filter(
            pl.col("extraction_status") == "error").select(pl.len()).collect().item()

    result, _ = run("pipeline_preflight", tmp_path, catalog_url=sky.catalogs["preflight"], start=SKY_START,
                    end=SKY_END, output_dir=str(tmp_path))
    assert result["go"] is False and result["summary"].startswith("NO-GO")
    assert result["in_window"] == len(ids) > 70 and result["offered"] == offered == len(ids) - 2 - unreadable
    assert unreadable > 0
    assert result["reasons"] == {"file_missing": 1, "file_changed": 1}
    assert result["blocked"] == 2 and result["ready"] == offered - 2
    assert ids[sky.missing] not in result["ready_ids"] and ids[sky.changed] not in result["ready_ids"]
    assert result["left_out"] == 2 + unreadable
    assert result["left_out_reasons"] == {"low_quality": 1, "status": 1, "unreadable": unreadable}


def test_explore_builds_a_demo_catalog_when_given_nothing(jupyter_env, tmp_path):
    # The default catalog ($COSMOSCOPE_CATALOG, set per test) does not exist: a demo is built.
    result, nb = run("explore", tmp_path)
    assert result["demo"] is True and result["catalog"].startswith(f"sqlite://{jupyter_env / 'tmp'}")
    assert sorted(result["missions"]) == ["AURORA-2", "COSMOS-7", "HELIOS-X", "LYRA"]
    with cosmoscope.open_catalog(result["catalog"], readonly=True) as cat:
        assert result["datasets"] == cat.count() > 100
        assert result["explorer_total"] == cat.count(cat.search(mission=result["mission"], min_quality=0.8)) > 0
        assert result["upstream"] == cat.related(result["product"], direction="upstream").height > 0
        assert result["instruments"] == cat.observations().filter(pl.col("mission_id").is_not_null()).select(
            "mission_id", "instrument_type").unique().collect().height


def _html(nb, cell_id: str) -> str:
    """The HTML a cell displayed."""
    cell = next(c for c in nb.cells if c.get("id") == cell_id)
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


def _gaps(url: str, hours: float) -> int:
    """Pauses longer than ``hours`` between a mission's observations, counted in plain Python."""
    import datetime as dt

    with cosmoscope.open_catalog(url, readonly=True) as cat:
        rows = (cat.observations().select("mission_id", "observation_timestamp", "observation_end").collect()
                .drop_nulls(["mission_id", "observation_timestamp"]).sort("mission_id", "observation_timestamp"))
    gaps, last = 0, {}
    for mission, start, end in rows.iter_rows():
        if mission in last and start - last[mission] > dt.timedelta(hours=hours):
            gaps += 1
        last[mission] = max(last.get(mission, end or start), end or start)
    return gaps
