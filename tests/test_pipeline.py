"""Pipelines: pre-flight verdicts, processing runs (claims, leases, failures), lineage and audit."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import polars as pl
import pytest

import cosmoscope
from cosmoscope.errors import DatasetNotFoundError
from cosmoscope.pipeline import ClaimConflictError, ProcessingRun, RunStateError, release_stale_runs, start_run
from cosmoscope.records import dataset_id_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.fixture(scope="module")
def sim_tree(tmp_path_factory):
    """Two HELIOS-X observations from the simulator: evt1 (raw), evt2, img and spec each."""
    from cosmoscope.simulate import simulate

    root = tmp_path_factory.mktemp("sim") / "tree"
    simulate(root, missions=["HELIOS-X"], files=8, days=1, seed=3, progress=False, write_manifest=False)
    return root


@pytest.fixture
def cat(sim_tree, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(sim_tree, tree)
    c = cosmoscope.open_catalog(f"sqlite://{tmp_path}/cat.sqlite")
    summary = c.ingest(tree, workers=0, progress=False)
    assert summary.new == 8 and summary.ok
    yield c
    c.close()


def raw_ids(cat) -> list[str]:
    return sorted(cat.search(calibration="uncalibrated").select("dataset_id").collect()["dataset_id"])


def write_product(path, target="M31", **cards) -> str:
    """A small real FITS product, as a pipeline step would write it."""
    import numpy as np
    from astropy.io import fits

    hdu = fits.PrimaryHDU(np.arange(16, dtype="f4").reshape(4, 4))
    hdu.header.update({"TELESCOP": "HELIOS-X", "INSTRUME": "XIS", "DATE-OBS": "2026-11-25T01:00:00",
                       "OBJECT": target, **cards})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    hdu.writeto(path, overwrite=True)
    return str(path)


def statuses(cat, ids) -> dict[str, str]:
    df = cat.lookup(ids, ["dataset_id", "processing_status"])
    return dict(zip(df["dataset_id"], df["processing_status"]))


def claims(cat) -> pl.DataFrame:
    return cat.frame("processing_claims").collect()


# -- pre-flight ------------------------------------------------------------------------------

def test_available_datasets_keeps_only_ready_recent_good_data(cat):
    until = "2026-11-26T00:00:00Z"
    everything = cat.available_datasets("HELIOS-X", min_quality=0.0, until=until)
    assert everything.collect().height == 8
    assert cat.available_datasets("HELIOS-X", min_quality=0.0, until="2026-12-20").collect().height == 8
    assert cat.available_datasets("HELIOS-X", min_quality=0.0, until="2027-06-01").collect().height == 0, \
        "observed more than 30 days before"
    assert cat.available_datasets("HELIOS-X", min_quality=0.0, window=None).collect().height == 8
    assert cat.available_datasets("COSMOS-7", min_quality=0.0, until=until).collect().height == 0
    ids = sorted(everything.collect()["dataset_id"])
    cat.update(ids[0], data_quality_score=0.5)
    cat.update(ids[1], file_status="missing")
    cat.set_status(ids[2], "archived")
    run = start_run(cat, "holder", [ids[3]])
    ready = set(cat.available_datasets("HELIOS-X", min_quality=0.8, until=until).collect()["dataset_id"])
    assert ready == set(ids[4:])
    run.finish()
    assert ids[3] in set(cat.available_datasets("HELIOS-X", until=until).collect()["dataset_id"])
    with pytest.raises(cosmoscope.CosmoscopeError, match="window"):
        cat.available_datasets("HELIOS-X", window=dt.timedelta(days=-1))


def test_preflight_gives_each_reason(cat, tmp_path):
    rows = cat.observations().select("dataset_id", "file_path", "calibration_status").sort("dataset_id").collect()
    calibrated = [r for r in rows.iter_rows(named=True) if r["calibration_status"] == "calibrated"]
    uncalibrated = [r for r in rows.iter_rows(named=True) if r["calibration_status"] == "uncalibrated"]
    good, gone, grown, touched, poor, held = (r["dataset_id"] for r in calibrated[:6])
    paths = {r["dataset_id"]: r["file_path"] for r in rows.iter_rows(named=True)}
    os.remove(paths[gone])
    with open(paths[grown], "ab") as f:
        f.write(b"\0" * 2880)
    st = os.stat(paths[touched])
    os.utime(paths[touched], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    cat.update(poor, data_quality_score=0.42)
    run = start_run(cat, "calibrate-xis", [held])
    broken = tmp_path / "tree" / "broken.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b"garbage" * 10)
    cat.ingest(broken, workers=0, progress=False)
    unreadable = dataset_id_for(broken)
    raw = uncalibrated[0]["dataset_id"]

    report = cat.preflight([good, gone, grown, touched, poor, held, unreadable, raw, "ds-not-there"],
                           min_quality=0.8, require_calibrated=True, output_dir=tmp_path / "out")
    why = {d.dataset_id: d.reasons for d in report.datasets}
    assert why[good] == []
    assert why[gone] == ["file_missing"]
    assert why[grown] == ["file_changed"]
    assert why[touched] == ["file_changed"]
    assert why[poor] == ["low_quality"]
    assert why[held] == ["being_processed"]
    assert "unreadable" in why[unreadable]
    assert why[raw] == ["not_calibrated"]
    assert why["ds-not-there"] == ["not_cataloged"]
    assert not report.go and not report
    assert report.space is not None and report.space.ok and report.space.checked_dir == str(tmp_path)
    assert report.ready_ids == [good]
    text = str(report)
    assert text.splitlines()[1].startswith("NO-GO: 8 of 9 datasets blocked")
    assert "calibration status is uncalibrated" in text and "does not exist any more" in text
    assert "run 'calibrate-xis'" in text
    df = report.to_polars()
    assert df.columns == ["dataset_id", "ok", "reasons", "detail", "warning", "file_path", "file_size"]
    assert df.filter(pl.col("ok")).height == 1
    assert "blocked" in report._repr_html_()
    run.finish()

    # Without the failing ones it is a go; a huge output factor makes it a no-go for space alone.
    ok = cat.preflight([good], output_dir=tmp_path)
    assert ok.go and ok.summary() == "GO: all 1 datasets are ready"
    full = cat.preflight([good], output_dir=tmp_path, output_factor=1e15)
    assert not full.go and not full.space.ok and "not enough room" in full.summary()
    assert not cat.preflight([]).go


def test_preflight_accepts_queries_and_frames(cat):
    by_query = cat.preflight({"mission": "HELIOS-X", "calibration": "calibrated"}, min_quality=None)
    by_frame = cat.preflight(cat.search(mission="HELIOS-X", calibration="calibrated"), min_quality=None)
    assert sorted(by_query.ready_ids) == sorted(by_frame.ready_ids)
    assert len(by_query.datasets) == 6 and by_query.go
    with pytest.raises(cosmoscope.CosmoscopeError, match="min_quality"):
        cat.preflight(["x"], min_quality=3)
    with pytest.raises(cosmoscope.CosmoscopeError, match="dataset_id"):
        cat.preflight(pl.DataFrame({"x": [1]}))


def test_preflight_only_warns_about_a_claim_whose_lease_ran_out(cat):
    ids = raw_ids(cat)
    start_run(cat, "dead", ids, lease_seconds=0.05)  # no heartbeat thread: it lapses at once
    time.sleep(0.1)
    report = cat.preflight(ids, min_quality=None)
    assert report.go
    assert all("lease ran out" in d.warnings[0] for d in report.datasets)


def test_preflight_command_exits_by_verdict(cat, capsys):
    from cosmoscope.cli import main

    raws = raw_ids(cat)
    assert main(["--catalog", cat.url, "preflight", *raws, "--min-quality", "0.5"]) == 0
    assert "GO: all 2 datasets are ready" in capsys.readouterr().out
    assert main(["--catalog", cat.url, "preflight", "--mission", "HELIOS-X", "--require-calibrated",
                 "--format", "csv"]) == 1
    df = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert df.filter(~pl.col("ok"))["reasons"].to_list() == ["not_calibrated", "not_calibrated"]
    with pytest.raises(SystemExit) as exit_:
        main(["--catalog", cat.url, "preflight"])
    assert exit_.value.code == 2 and "give dataset ids or search filters" in capsys.readouterr().err


# -- processing runs -------------------------------------------------------------------------

def test_lineage_from_raw_to_derived_through_two_runs(cat, tmp_path):
    raws = raw_ids(cat)
    assert len(raws) == 2
    with cat.processing_run("calibrate", inputs=raws, params={"gain": 1.5}) as run1:
        assert statuses(cat, raws) == {i: "processing" for i in raws}
        cals = [run1.add_output(write_product(tmp_path / "out" / f"cal_{n}.fits", CALIB="yes"),
                                "raw->calibrated", parents=[i]) for n, i in enumerate(raws)]
        run1.set_quality(cals[0], 0.97, reason="residuals flat")
        assert statuses(cat, cals) == {i: "processing" for i in cals}
    assert statuses(cat, raws + cals) == {i: "processed" for i in raws + cals}
    with cat.processing_run("mosaic", inputs=cals) as run2:
        derived = run2.add_output(write_product(tmp_path / "out" / "mosaic.fits"), "calibrated->derived")
    assert claims(cat).height == 0

    edges = cat.relationships().filter(pl.col("run_id").is_not_null()).collect()
    assert sorted(edges.select("parent_dataset_id", "child_dataset_id", "relationship_type", "run_id").rows()) == \
        sorted([(raws[0], cals[0], "raw->calibrated", run1.run_id), (raws[1], cals[1], "raw->calibrated", run1.run_id),
                (cals[0], derived, "calibrated->derived", run2.run_id),
                (cals[1], derived, "calibrated->derived", run2.run_id)])
    up = cat.related(derived, direction="upstream")
    assert set(up.filter(pl.col("depth") == 2)["dataset_id"]) >= set(raws)
    assert set(cat.related(raws[0], direction="downstream")["dataset_id"]) >= {cals[0], derived}
    assert cat.get(cals[0])["data_quality_score"] == 0.97

    trail = cat.history(derived, upstream=True)
    actions = trail["action"].to_list()
    assert actions.count("run_start") == 2 and actions.count("run_succeeded") == 2
    first = trail.row(0, named=True)
    assert first["action"] == "ingest" and first["dataset_id"] in raws and first["depth"] == 2
    assert trail.row(trail.height - 1, named=True)["action"] == "run_succeeded"
    by_run = trail.filter(pl.col("run_id").is_not_null()).group_by("run_id").len()
    assert set(by_run["run_id"]) == {run1.run_id, run2.run_id}
    quality = trail.filter(pl.col("field") == "data_quality_score").row(0, named=True)
    assert quality["run_id"] == run1.run_id and quality["to_value"] == "0.97"
    runs = cat.frame("runs").sort("started_at").collect()
    assert runs["status"].to_list() == ["succeeded", "succeeded"]
    assert runs["n_outputs"].to_list() == [2, 1] and runs["params"][0] == '{"gain": 1.5}'


def test_failing_run_releases_claims_and_records_the_error(cat, tmp_path):
    raws = raw_ids(cat)
    cat.set_status(raws[1], "failed", reason="an earlier attempt")
    with pytest.raises(ValueError, match="bad calibration"):
        with cat.processing_run("calibrate", inputs=raws) as run:
            out = run.add_output(write_product(tmp_path / "out" / "partial.fits"), "raw->calibrated")
            raise ValueError("bad calibration table")
    assert statuses(cat, raws) == {raws[0]: "raw", raws[1]: "failed"}
    assert statuses(cat, [out]) == {out: "failed"}
    assert claims(cat).height == 0
    info = run.info()
    assert info["status"] == "failed" and info["error"] == "ValueError: bad calibration table"
    assert info["finished_at"] is not None
    failed = cat.events().filter(pl.col("action") == "run_failed").collect()
    assert failed["run_id"].to_list() == [run.run_id]
    restored = cat.history(raws[0]).filter(pl.col("run_id") == run.run_id)["to_value"].to_list()
    assert restored == ["processing", "raw"]
    # The inputs are free again at once.
    with cat.processing_run("retry", inputs=raws):
        pass
    assert statuses(cat, raws) == {i: "processed" for i in raws}


def test_second_run_is_refused_or_waits(cat):
    raws = raw_ids(cat)
    first = cat.processing_run("first", inputs=raws)
    with pytest.raises(ClaimConflictError, match="held by run 'first'") as err:
        cat.processing_run("second", inputs=[raws[1]])
    assert err.value.held == {raws[1]: first.run_id}
    with pytest.raises(ClaimConflictError, match=r"waited 0.3 s"):
        cat.processing_run("second", inputs=raws, wait=0.3)
    timer = threading.Timer(0.3, first.finish)
    timer.start()
    second = cat.processing_run("second", inputs=raws, wait=120)  # a generous bound; it waits for first
    timer.join()
    assert second.info()["started_at"] >= first.info()["finished_at"]
    second.finish()
    cat.set_status(raws[0], "processing", reason="someone's shell script")
    with pytest.raises(ClaimConflictError, match="outside any run"):
        cat.processing_run("third", inputs=raws)


def test_run_input_and_output_checks(cat, tmp_path):
    raws = raw_ids(cat)
    with pytest.raises(DatasetNotFoundError, match="ds-nope"):
        cat.processing_run("x", inputs=[raws[0], "ds-nope"])
    assert claims(cat).height == 0 and statuses(cat, raws)[raws[0]] == "raw"
    with pytest.raises(cosmoscope.CosmoscopeError, match="name"):
        cat.processing_run(" ", inputs=raws)
    with cat.processing_run("checks", inputs=raws) as run:
        notes = tmp_path / "notes.txt"
        notes.write_text("not data\n")
        with pytest.raises(cosmoscope.CosmoscopeError, match="not a FITS, HDF5"):
            run.add_output(notes)
        with pytest.raises(cosmoscope.CosmoscopeError, match="does not exist|No such file"):
            run.add_output(tmp_path / "missing.fits")
        with pytest.raises(cosmoscope.CosmoscopeError, match="is an input"):
            run.add_output(cat.get(raws[0])["file_path"])
        other = cat.search(calibration="calibrated").select("dataset_id").head(1).collect().item()
        with pytest.raises(cosmoscope.CosmoscopeError, match="parents must be inputs"):
            run.add_output(write_product(tmp_path / "o.fits"), parents=[other])
        with pytest.raises(cosmoscope.CosmoscopeError, match="neither an input nor an output"):
            run.set_quality(other, 0.5)
        with pytest.raises(cosmoscope.CosmoscopeError, match="0.0 to 1.0"):
            run.set_quality(raws[0], 1.5)
        run.log("checked everything", n=3)
    note = cat.events().filter(pl.col("action") == "run_note").collect().row(0, named=True)
    assert note["run_id"] == run.run_id and note["to_value"] == "checked everything"


def test_heartbeat_keeps_a_long_run_alive(cat):
    raws = raw_ids(cat)
    with cat.processing_run("slow", inputs=raws, lease_seconds=1.0) as run:
        # Until its heartbeats have carried it past its lease (however long the machine takes).
        deadline = time.monotonic() + 120
        while (run.info()["heartbeat_at"] - run.info()["started_at"]).total_seconds() <= 1.5:
            assert time.monotonic() < deadline, "no heartbeat carried the run past its lease"
            time.sleep(0.05)
        with pytest.raises(ClaimConflictError):
            cat.processing_run("eager", inputs=raws)
    assert run.info()["status"] == "succeeded"


def test_a_run_that_lost_its_lease_cannot_write(cat, tmp_path):
    raws = raw_ids(cat)
    late = start_run(cat, "late", raws, lease_seconds=0.05)
    time.sleep(0.1)
    taker = start_run(cat, "taker", raws)
    assert late.info()["status"] == "abandoned" and "took over" in late.info()["error"]
    with pytest.raises(RunStateError, match="abandoned"):
        late.add_output(write_product(tmp_path / "late.fits"))
    with pytest.raises(RunStateError):
        late.finish()
    assert statuses(cat, raws) == {i: "processing" for i in raws}
    taker.finish()
    assert statuses(cat, raws) == {i: "processed" for i in raws}


def test_release_stale_runs_restores_what_a_dead_run_held(cat, tmp_path):
    raws = raw_ids(cat)
    dead = start_run(cat, "dead", raws, lease_seconds=0.05)
    out = dead.add_output(write_product(tmp_path / "half.fits"))
    time.sleep(0.1)
    assert release_stale_runs(cat) == [dead.run_id]
    assert statuses(cat, raws + [out]) == {raws[0]: "raw", raws[1]: "raw", out: "failed"}
    assert claims(cat).height == 0 and release_stale_runs(cat) == []


# -- other processes -------------------------------------------------------------------------

RACER = textwrap.dedent("""
    import os, sys, time
    import cosmoscope
    from cosmoscope.pipeline import ClaimConflictError
    url, go, log, *ids = sys.argv[1:]
    cat = cosmoscope.open_catalog(url)
    open(f"{go}.ready-{os.getpid()}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    try:
        with cat.processing_run("racer", inputs=ids, params={"pid": os.getpid()}, lease_seconds=30) as run:
            for i in ids:
                with open(log, "a") as f:
                    f.write(f"{os.getpid()} {i}\\n")
            time.sleep(0.5)
    except ClaimConflictError as exc:
        print(exc)
        sys.exit(3)
""")


def test_two_processes_racing_for_the_same_inputs(cat, tmp_path):
    ids = raw_ids(cat)
    script, go, log = tmp_path / "racer.py", tmp_path / "go", tmp_path / "processed.log"
    script.write_text(RACER)
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, str(script), cat.url, str(go), str(log), *ids], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.ready-*"))) < 2:  # both imported and polling for the starting signal
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a racer did not start"
        time.sleep(0.05)
    go.write_text("go")
    results = [p.communicate(timeout=60) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], results
    loser = results[[p.returncode for p in procs].index(3)][0]
    assert "already being processed" in loser or "same moment" in loser
    lines = log.read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == sorted(ids), "each input processed exactly once"
    assert len({line.split()[0] for line in lines}) == 1
    runs = cat.frame("runs").collect()
    assert runs["status"].to_list() == ["succeeded"]
    assert statuses(cat, ids) == {i: "processed" for i in ids}


HOLDER = textwrap.dedent("""
    import sys, time
    import cosmoscope
    url, *ids = sys.argv[1:]
    cat = cosmoscope.open_catalog(url)
    with cat.processing_run("doomed", inputs=ids, lease_seconds=2) as run:
        print(run.run_id, flush=True)
        time.sleep(600)
""")


def test_claims_of_a_killed_process_are_taken_over_after_the_lease(cat, tmp_path):
    ids = raw_ids(cat)
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), cat.url, *ids], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        dead_run = proc.stdout.readline().strip()
        assert dead_run.startswith("run-")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with pytest.raises(ClaimConflictError, match="doomed"):
        cat.processing_run("impatient", inputs=ids)
    assert all(d.reasons == ["being_processed"] for d in cat.preflight(ids, min_quality=None).datasets)
    with cat.processing_run("rescuer", inputs=ids, wait=120) as run:  # taken over once the lease ran out
        assert statuses(cat, ids) == {i: "processing" for i in ids}
    dead = ProcessingRun.attach(cat, dead_run).info()
    assert dead["status"] == "abandoned" and run.run_id in dead["error"]
    restored = cat.history(ids[0]).filter(pl.col("run_id") == dead_run)["to_value"].to_list()
    assert restored == ["processing", "raw"], "the dead run's claim was undone before the new one"


# -- the guide's example ---------------------------------------------------------------------

def test_pipeline_example_runs(tmp_path):
    script = os.path.join(ROOT, "examples", "pipeline_run.py")
    proc = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "GO: all" in out and "run_succeeded" in out and "calibrated->derived" in out
