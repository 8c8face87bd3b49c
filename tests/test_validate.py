"""Validation on real files: each fault is made on disk, found, and repaired where it can be."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import cosmoscope
from cosmoscope.ingest.validate import since_time
from cosmoscope.records import dataset_id_for
from cosmoscope.simulate import simulate


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    root = tmp_path_factory.mktemp("valsky")
    return simulate(root, missions=["HELIOS-X", "LYRA", "COSMOS-7"], files=24, days=1, seed=11, progress=False)


@pytest.fixture
def tree(sky, tmp_path):
    """A private copy of the simulated tree, cataloged, with content hashes recorded."""
    root = tmp_path / "tree"
    shutil.copytree(sky.root, root)
    cat = cosmoscope.open_catalog(tmp_path / "v.sqlite")
    summary = cat.ingest(root, workers=0, progress=False)
    assert summary.ok and summary.failed == 0
    first = cat.validate(checksums=True, progress=False)
    assert first.ok, str(first)
    assert first.checksums_recorded == first.checked == summary.new
    yield root, cat
    cat.close()


def pick(root: Path, pattern: str, n: int = 0) -> Path:
    return sorted(root.rglob(pattern))[n]


def verdicts(cat, paths) -> dict[Path, set[str]]:
    rows = cat.lookup([dataset_id_for(p) for p in paths], ["file_path", "validation_problems"])
    got = {r["file_path"]: {p["kind"] for p in json.loads(r["validation_problems"] or "[]")}
           for r in rows.iter_rows(named=True)}
    return {p: got[str(p)] for p in paths}


def make_faults(root: Path) -> dict[str, Path]:
    """Break five files, each in its own way, as they break in archives."""
    from astropy.io import fits

    deleted = pick(root, "hx*_evt2.fits")
    deleted.unlink()
    truncated = pick(root, "LY*.fit")
    os.truncate(truncated, 5000)  # an interrupted copy
    modified = pick(root, "c7_*_l1_*.nc")
    other = pick(root, "c7_*_l1_*.nc", 1)
    modified.write_bytes(other.read_bytes())  # replaced by another observation's product
    bitrot = pick(root, "hx*_img.fits")
    st = bitrot.stat()
    with open(bitrot, "r+b") as f:  # bytes flipped in the data; size and time kept
        f.seek(st.st_size - 1000)
        f.write(b"\xde\xad\xbe\xef")
    os.utime(bitrot, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited = pick(root, "hx*_spec.fits")
    with fits.open(edited, mode="update", checksum=True) as hdul:  # a header fixed by hand, done right
        hdu = next(h for h in hdul if "OBJECT" in h.header)
        hdu.header["OBJECT"] = "Corrected Target"
    return {"deleted": deleted, "truncated": truncated, "modified": modified, "bitrot": bitrot, "edited": edited}


def test_each_fault_is_found_and_fix_repairs_what_can_be_repaired(tree):
    root, cat = tree
    faults = make_faults(root)
    report = cat.validate(checksums=True, progress=False)
    assert not report.ok and report.with_problems == len(faults)
    assert verdicts(cat, faults.values()) == {
        faults["deleted"]: {"missing"}, faults["truncated"]: {"changed"}, faults["modified"]: {"changed"},
        faults["bitrot"]: {"content", "checksum"}, faults["edited"]: {"changed"}}
    rows = cat.lookup([dataset_id_for(p) for p in faults.values()]).sort("file_path")
    assert set(rows["validation_status"]) == {"problems"} and rows["last_validated"].null_count() == 0
    status = dict(zip(rows["file_path"], rows["file_status"]))
    assert status[str(faults["deleted"])] == "missing" and status[str(faults["modified"])] == "changed"
    assert status[str(faults["bitrot"])] == "present"
    table = report.table()
    assert table.filter(pl.col("kind") == "content")["mission"].to_list() == ["HELIOS-X"]

    edited_id = dataset_id_for(faults["edited"])
    old_target = cat.get(edited_id)["target_object"]
    fixed = cat.validate(checksums=True, fix=True, progress=False)
    assert verdicts(cat, faults.values()) == {
        faults["deleted"]: {"missing"}, faults["truncated"]: {"extraction_error"},
        faults["modified"]: set(), faults["bitrot"]: {"content", "checksum"}, faults["edited"]: set()}
    assert fixed.with_problems == 3 and fixed.reextracted == 3  # truncated, modified, edited
    assert fixed.fixed[("changed", "COSMOS-7")] == 1 and fixed.remaining[("missing", "HELIOS-X")] == 1
    broken = cat.get(dataset_id_for(faults["truncated"]))
    # unreadable now: says why, and keeps what was known (re-read beside readable files or not)
    assert "truncated" in broken["extraction_error"] and broken["mission_id"] == "LYRA"
    assert fixed.remaining[("extraction_error", "LYRA")] == 1
    # what changed is on record, from and to
    changes = cat.history(edited_id).filter(pl.col("action") == "reextract")
    target = changes.filter(pl.col("field") == "target_object")
    assert target["from_value"].to_list() == [old_target] and target["to_value"].to_list() == ["Corrected Target"]
    modified = cat.history(dataset_id_for(faults["modified"])).filter(pl.col("action") == "reextract")
    assert "observation_timestamp" in modified["field"].to_list()
    assert cat.get(dataset_id_for(faults["modified"]))["checksum"].startswith("blake2b:")  # the new content's hash
    verdict_events = cat.history(edited_id).filter(pl.col("action") == "validate")
    assert verdict_events["to_value"].to_list() == ["problems", "passed"]
    runs = cat.events().filter(pl.col("action") == "validate_run").collect()
    assert runs.height == 3 and json.loads(runs.sort("event_id")["details"][-1])["with_problems"] == 3

    # A run that does not read the bytes keeps what reading them found.
    quick = cat.validate(progress=False)
    assert verdicts(cat, [faults["bitrot"]])[faults["bitrot"]] == {"content", "checksum"}
    assert quick.with_problems == 3


def test_missing_file_found_elsewhere_and_impossible_values(tree):
    root, cat = tree
    lyra = pick(root, "LY*_red.fits")
    moved = lyra.parent.parent / "moved" / lyra.name
    moved.parent.mkdir()
    os.rename(lyra, moved)
    cat.ingest(moved.parent, workers=0, progress=False)
    real = root / "lyra" / "hand-made.fit"  # a row written by hand, not by extraction
    shutil.copyfile(pick(root, "LY*.fit", 1), real)
    start = dt.datetime(2026, 11, 25, 10, tzinfo=dt.timezone.utc)
    cat.add_records({"file_path": str(real), "mission_id": "LYRA", "observation_timestamp": start,
                     "observation_end": start - dt.timedelta(hours=1), "ra": 400.0, "dec": -95.0,
                     "exposure_time": -5.0})
    report = cat.validate(mission="LYRA", progress=False)
    problems = json.loads(cat.get(dataset_id_for(lyra))["validation_problems"])
    assert problems[0]["kind"] == "missing" and problems[0]["moved_to"] == str(moved)
    kinds = {p["kind"]: p["detail"] for p in json.loads(cat.get(dataset_id_for(real))["validation_problems"])}
    assert set(kinds) == {"changed", "required_missing", "impossible"}
    for words in ("ends", "before it starts", "ra 400.0", "dec -95.0", "exposure_time -5.0"):
        assert words in kinds["impossible"]
    assert kinds["required_missing"] == "instrument_type"
    assert report.with_problems == 2 and set(report.table()["mission"]) == {"LYRA"}
    assert "file missing" in str(report) and "impossible values" in str(report)


def test_filters_choose_the_rows(tree):
    root, cat = tree
    total = cat.count()
    assert cat.validate(since="1h", progress=False).checked == total
    assert cat.validate(since="2999-01-01", progress=False).checked == 0
    lyra = cat.count(cat.search(mission="LYRA"))
    assert cat.validate(mission=["LYRA"], progress=False).checked == lyra
    assert cat.validate(paths=[root / "lyra"], progress=False).checked == lyra
    assert since_time("2026-11-27T08:00:00+01:00").isoformat() == "2026-11-27T07:00:00+00:00"
    with pytest.raises(cosmoscope.CosmoscopeError, match="24h or 7d"):
        since_time("yesterday-ish")


def test_cli_exit_code_summary_and_every_loop(tree, capsys):
    from cosmoscope.cli import main

    root, cat = tree
    args = ["--catalog", cat.url, "-q", "validate"]
    assert main(args) == 0
    pick(root, "hx*_evt1.fits*").unlink()
    capsys.readouterr()
    assert main(args + ["--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["with_problems"] == 1 and summary["problems"][0]["kind"] == "missing"
    assert main(args + ["--mission", "HELIOS-X"]) == 1
    text = capsys.readouterr().out
    assert "file missing" in text and "HELIOS-X" in text
    with pytest.raises(SystemExit) as usage:
        main(args + ["--since", "last tuesday"])
    assert usage.value.code == 2 and "24h or 7d" in capsys.readouterr().err
    # --every, as cron would run it: again and again until SIGTERM, then the last verdict as exit code
    runs = cat.events().filter(pl.col("action") == "validate_run").collect().height
    loop = subprocess.Popen([sys.executable, "-m", "cosmoscope", *args, "--every", "0.5s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while cat.events().filter(pl.col("action") == "validate_run").collect().height < runs + 2:
            assert time.monotonic() < deadline and loop.poll() is None, "the loop did not keep running"
            time.sleep(0.1)
    finally:
        loop.send_signal(signal.SIGTERM)
        stdout, _ = loop.communicate(timeout=60)
    assert loop.returncode == 1 and stdout.count("Validated") >= 2


def test_validate_checks_the_rollups_and_fix_rebuilds_them(tree, capsys):
    import pyarrow as pa

    from cosmoscope import schema as S
    from cosmoscope.cli import main

    root, cat = tree
    args = ["--catalog", cat.url, "-q", "validate"]
    n = cat.count()
    entries = pa.Table.from_batches(list(cat.store.scan(S.ROLLUP_DAYS.name)))
    drifted = entries.slice(0, 1).set_column(entries.schema.get_field_index("n"), "n", pa.array([n + 5]))
    cat.store.upsert(S.ROLLUP_DAYS.name, drifted, ["entry_id"])  # as a bug or a hand edit would leave it
    capsys.readouterr()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "rollups:" in out and "disagree with a recount" in out and "validate --fix" in out
    cat._rollups_state = None  # the CLI ran in this process with its own catalog object
    assert "disagreed" in str(cat.route(start="2026-01-01")) and cat.count(start="2026-01-01") <= n
    assert main(args + ["--json"]) == 1 and json.loads(capsys.readouterr().out)["rollups"]["mismatches"] >= 1
    assert main(args + ["--fix"]) == 0
    assert "rebuilt from the rows" in capsys.readouterr().out
    assert main(args) == 0 and "agree with a recount" in capsys.readouterr().out
    cat._rollups_state = None
    assert cat.route(start="2026-01-01").rollups and cat.count() == n


def test_validate_finds_a_rollup_dimension_that_disagrees_with_its_group(tree, capsys):
    """A rollup entry whose calibration level (schema 7) says another value than its group would
    make level filters count wrong: validate finds it, --fix rebuilds it."""
    import pyarrow as pa

    from cosmoscope import schema as S
    from cosmoscope.cli import main

    root, cat = tree
    args = ["--catalog", cat.url, "-q", "validate"]
    want = cat.count(calib_level=4)
    entries = pa.Table.from_batches(list(cat.store.scan(S.ROLLUP_PRODUCTS.name)))
    column = entries.schema.get_field_index("calib_level")
    moved = entries.slice(0, 1).set_column(column, entries.schema.field(column), pa.array([4], pa.int32()))
    cat.store.upsert(S.ROLLUP_PRODUCTS.name, moved, ["entry_id"])
    assert cat.count(calib_level=4) > want  # read before anything looked
    capsys.readouterr()
    assert main(args) == 1 and "calib_level" in capsys.readouterr().out
    assert main(args + ["--fix"]) == 0
    capsys.readouterr()
    assert main(args) == 0
    cat._rollups_state = None
    assert cat.route(calib_level=4).rollups and cat.count(calib_level=4) == want
