"""The faults of benchmarks/faults.py at a size the test suite can afford: an ingest killed with
SIGKILL a few times, three writers at once for a quarter of a minute, and the VAST server going
away mid-batch. Nothing acknowledged may be lost, nothing half-applied, nothing duplicated."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.fakevast.fixtures import fresh_fake_vast  # noqa: F401 - a fixture

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def faults():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("cosmoscope_fault_runs", BENCH / "faults.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.slow
def test_ingest_killed_at_random_moments_ends_equal_to_a_clean_run(faults, tmp_path):
    result = faults.kill_scenario(tmp_path, files=400, kills=4, seed=11, batch_rows=7)
    assert result["kills"] >= 3, result["moments"]
    diff = result["comparison"]
    assert diff["rows"] == diff["expected_rows"] == result["files"]
    assert (diff["missing"], diff["unexpected"], diff["duplicated"], diff["differing"]) == (0, 0, 0, 0), diff
    assert (diff["lineage_missing"], diff["lineage_unexpected"], diff["pending_lineage"]) == (0, 0, 0), diff
    assert diff["ingest_events_not_one"] == 0, "a file was recorded as ingested twice, or never"
    assert result["orphaned_workers"] == 0, "extraction workers outlived their killed ingest"
    assert result["final_exit_code"] in (0, 1) and result["final_summary"]["unchanged"] > 0


@pytest.mark.slow
def test_watcher_ingest_and_pipeline_writing_at_once_lose_nothing(faults, tmp_path):
    """Each writer does its share however long the machine takes (it once had to fit three runs
    into 15 seconds, which a busy machine did not)."""
    result = faults.writers_scenario(tmp_path, period=15.0, rate=8.0, archive_files=160, parts=2, seed=5, min_runs=3)
    assert result["pipeline_runs"] >= 3 and result["ingest_runs"] >= 3 and result["files_landed"] == 120
    assert result["rows"] == result["expected_rows"]
    assert (result["missing"], result["unexpected"], result["duplicated"]) == (0, 0, 0), result
    assert result["acknowledged_lost"] == 0, result["lost_examples"]
    assert result["locked_messages"] == {}, "'database is locked' reached a user"
    assert result["reader_errors"] == [] and result["ingest_runs_failed"] == 0
    assert result["exit_codes"]["pipeline"] == 0 and result["exit_codes"]["watcher"] == 0
    assert result["ingest_events_not_one"] == 0
    assert result["ok"]


@pytest.mark.slow
def test_vast_going_away_mid_batch_is_retried_or_reported_never_half_applied(faults, tmp_path):
    result = faults.store_scenario(tmp_path, files=120, outages=2, injected=12, seed=3, batch_rows=10)
    outages, injected = result["outages"], result["injected"]
    assert outages["outages"] == 2 and outages["tracebacks"] == 0, outages["reported"]
    assert outages["half_applied_seen"] == 0, outages["checks"]
    assert outages["identical"], outages["comparison"]
    assert all(r.startswith("cosmoscope ingest: error:") for r in outages["reported"]), outages["reported"]
    assert injected["faults"] == 12 and injected["half_applied_seen"] == 0
    assert injected["identical"], injected["comparison"]


def test_a_read_failing_inside_a_vast_write_transaction_is_retried_or_reported(fresh_fake_vast, monkeypatch,
                                                                                caplog):
    """Found by the injected faults: a 503 answering the key lookup that every upsert makes
    inside its transaction reached the user as the SDK's own exception (a traceback), and the
    SDK printed every failed request, retried or not, as a warning with its headers."""
    import logging

    caplog.set_level(logging.WARNING)
    import cosmoscope
    from cosmoscope.errors import StoreError
    from tests.conftest import make_records

    server = fresh_fake_vast
    monkeypatch.setenv("COSMOSCOPE_VAST_ACCESS_KEY", server.access_key)
    monkeypatch.setenv("COSMOSCOPE_VAST_SECRET_KEY", server.secret_key)
    url = f"vast+http://{server.host}:{server.port}/{server.bucket}/reads?retry_wait=0.01&retry_seconds=5"
    records = make_records(30, seed=2)
    with cosmoscope.open_catalog(url) as cat:
        server.fail_next(2, 503, verb="select")  # transient: tried again in the same transaction
        assert cat.add_records(records[:10]) == 10
        for status, times in ((400, 1), (503, 100)):  # refused, or unavailable past every retry
            server.fail_next(times, status, verb="select")
            with pytest.raises(StoreError, match="reading observations .* failed: .*nothing of it is kept"):
                cat.add_records(records[10:20])
            server.clear_faults()
            assert cat.count() == 10 and cat.count(cat.events()) == 10
        server.drop_connections(1, verb="select")  # a dropped connection is transient too
        assert cat.add_records(records[10:]) == 20
        assert cat.count() == 30 and cat.count(cat.events()) == 30
    assert not [r for r in caplog.records if r.name.startswith(("vastdb", "backoff"))], caplog.text


@pytest.mark.parametrize("abort", ["a commit that lost a race", "a transaction lost in a restart"])
def test_a_transaction_the_store_aborts_is_run_again(fresh_fake_vast, monkeypatch, tmp_path, abort):
    """Found by the COSMOS-7 load run: on VAST, the watcher and a bulk ingest resolved the same
    pending lineage at once; the ingest's commit lost the race (409 Conflict) and the whole run
    ended with an error instead of reading again and finishing. The fault runs found the same for
    a transaction the server lost when it restarted."""
    import polars as pl

    import cosmoscope
    from cosmoscope.simulate import simulate

    server = fresh_fake_vast
    monkeypatch.setenv("COSMOSCOPE_VAST_ACCESS_KEY", server.access_key)
    monkeypatch.setenv("COSMOSCOPE_VAST_SECRET_KEY", server.secret_key)
    tree = simulate(tmp_path / "tree", files=60, days=2, seed=4, progress=False, workers=0)
    url = f"vast+http://{server.host}:{server.port}/{server.bucket}/races?retry_wait=0.01"
    with cosmoscope.open_catalog(url) as cat:
        if abort == "a commit that lost a race":
            server.fail_next(4, 409, verb="commit")
        else:
            server.fail_next(4, 400, "TabularInvalidTransaction", verb="insert")
        summary = cat.ingest(tree.root, workers=0, progress=False, batch_rows=10)
        assert server.count(status=409) + server.count(status=400) == 4
        assert summary.new == cat.count() == tree.manifest.height
        assert cat.relationships().select(pl.len()).collect().item() == tree.lineage.height
        assert cat.count(cat.events().filter(pl.col("action") == "ingest")) == tree.manifest.height


def test_a_transaction_that_cannot_start_for_a_moment_is_asked_for_again(fresh_fake_vast, monkeypatch):
    """Found by the injected faults: a 500 or a dropped connection answering the start of a
    write transaction ended the ingest, though nothing had been written yet."""
    import cosmoscope
    from cosmoscope.errors import StoreError
    from tests.conftest import make_records

    server = fresh_fake_vast
    monkeypatch.setenv("COSMOSCOPE_VAST_ACCESS_KEY", server.access_key)
    monkeypatch.setenv("COSMOSCOPE_VAST_SECRET_KEY", server.secret_key)
    url = f"vast+http://{server.host}:{server.port}/{server.bucket}/begins?retry_wait=0.01"
    records = make_records(20, seed=3)
    with cosmoscope.open_catalog(url) as cat:
        begun = server.count("begin")
        server.fail_next(1, 500, verb="begin")
        server.drop_connections(1, verb="begin")
        assert cat.add_records(records[:10]) == 10
        assert server.count("begin") - begun >= 3  # two failed, then one that worked
        server.fail_next(1, 403, "AccessDenied", verb="begin")  # refused: reported at once
        with pytest.raises(StoreError, match="could not start a transaction: .*refused the credentials"):
            cat.add_records(records[10:])
        assert cat.add_records(records[10:]) == 10 and cat.count() == 20
