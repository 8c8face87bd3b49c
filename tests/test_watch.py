"""The watcher on real files, as a real process (``cosmoscope watch``) and as a notebook handle.

Every wait polls a condition with a deadline; no test sleeps for a fixed time to let the
watcher catch up.
"""

from __future__ import annotations

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
from cosmoscope.ingest.settle import incomplete_reason
from cosmoscope.records import dataset_id_for
from cosmoscope.simulate import iter_file_specs, write_file, write_slowly

# Fast enough for tests, slow enough to be meaningful: a writer pausing longer than SETTLE
# must still not get its file cataloged half-written.
SETTLE = "0.3"
HEARTBEAT = "0.3"


def wait_for(condition, timeout=60.0, what="the condition"):
    """Poll ``condition()`` until it returns something other than None or False; fail after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def specs(mission, n, seed=0):
    return [s for s in iter_file_specs([mission], files=n, days=1, seed=seed) if not s.sidecar][:n]


class WatchProcess:
    """``cosmoscope watch`` in a subprocess, with its log kept in a file."""

    def __init__(self, catalog: str, root: Path, log: Path, *extra: str):
        self.catalog, self.log_path = catalog, log
        cmd = [sys.executable, "-m", "cosmoscope", "--catalog", catalog, "watch", str(root), "--settle", SETTLE,
               "--heartbeat", HEARTBEAT, *extra]
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        wait_for(lambda: self.proc.poll() is not None or self.state() == "running", 60, "the watcher to start")
        assert self.proc.poll() is None, self.text()

    def state(self):
        try:
            with cosmoscope.open_catalog(self.catalog, readonly=True) as cat:
                w = cat.watchers()
        except cosmoscope.CosmoscopeError:
            return None
        mine = w.filter(pl.col("pid") == self.proc.pid)
        return mine["status"][0] if mine.height else None

    def text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        finally:
            self.log.close()


@pytest.fixture
def where(tmp_path):
    root = tmp_path / "incoming"
    root.mkdir()
    return root, str(tmp_path / "catalog.sqlite"), tmp_path / "watch.log"


def frame(catalog: str, table="observations") -> pl.DataFrame:
    with cosmoscope.open_catalog(catalog, readonly=True) as cat:
        return cat.frame(table).collect()


def cataloged(catalog: str, paths) -> pl.DataFrame | None:
    """The rows of ``paths`` once every one is in the catalog as present, else None."""
    ids = [dataset_id_for(p) for p in paths]
    with cosmoscope.open_catalog(catalog, readonly=True) as cat:
        rows = cat.lookup(ids)
    rows = rows.filter(pl.col("file_status") == "present")
    return rows if rows.height == len(ids) else None


def test_files_written_slowly_are_cataloged_once_with_their_final_size(where):
    root, catalog, log = where
    w = WatchProcess(catalog, root, log, "--workers", "1")
    try:
        written = []
        for spec in specs("LYRA", 1) + specs("COSMOS-7", 1):
            # Pauses longer than the settle time: only the close event may let the file in.
            written.append(write_slowly(spec, root, chunk_bytes=4096, delay=0.4))
        rows = wait_for(lambda: cataloged(catalog, written), 60, "the slowly written files")
    finally:
        assert w.stop() == 0
    sizes = dict(zip(rows["file_path"], rows["file_size"]))
    assert sizes == {str(p): p.stat().st_size for p in written}
    assert set(rows["extraction_status"]) == {"ok"}
    events = frame(catalog, "events").filter(pl.col("dataset_id").is_in([dataset_id_for(p) for p in written]))
    assert events.filter(pl.col("action") == "ingest").height == len(written)  # once each, never updated
    assert events.filter(pl.col("action").is_in(["update", "reextract"])).height == 0
    assert "cataloged" in w.text() and "stopped" in w.text()


def test_polling_mode_never_catalogs_a_paused_half_written_file(where):
    """Without close events (NFS), a writer pausing longer than the settle time leaves a file
    that looks still; the format check (FITS declared sizes, HDF5 superblock) keeps it out."""
    root, catalog, log = where
    w = WatchProcess(catalog, root, log, "--poll", "--poll-interval", "0.1", "--workers", "0")
    try:
        written = [write_slowly(spec, root, chunk_bytes=4096, delay=0.7)
                   for spec in specs("LYRA", 1) + specs("COSMOS-7", 1)]
        rows = wait_for(lambda: cataloged(catalog, written), 60, "the slowly written files")
    finally:
        assert w.stop() == 0
    assert dict(zip(rows["file_path"], rows["file_size"])) == {str(p): p.stat().st_size for p in written}
    assert set(rows["extraction_status"]) == {"ok"}
    events = frame(catalog, "events").filter(pl.col("dataset_id").is_in([dataset_id_for(p) for p in written]))
    assert events.filter(pl.col("action") == "ingest").height == len(written)


def test_moved_in_files_and_temporary_names_arrive_once_under_their_final_names(where, tmp_path):
    root, catalog, log = where
    outside = tmp_path / "outside"
    batch = specs("LYRA", 6, seed=1)
    for spec in batch[:3]:
        write_file(spec, outside)
    w = WatchProcess(catalog, root, log, "--workers", "0")
    try:
        # a whole directory moved in
        moved_dir = root / "lyra"
        os.rename(outside / "lyra", moved_dir)
        expected = [str(moved_dir / s.relpath.split("/", 1)[1]) for s in batch[:3]]
        # written under a temporary name, renamed into place (as the simulator and rsync do)
        expected += [str(write_file(spec, root, atomic=True)) for spec in batch[3:5]]
        rsync_final = root / "rsynced" / batch[5].name
        rsync_temp = rsync_final.parent / f".{batch[5].name}.Xa81Qz"
        write_file(batch[5], tmp_path / "staging")
        rsync_temp.parent.mkdir()
        shutil.copyfile(tmp_path / "staging" / batch[5].relpath, rsync_temp)
        os.rename(rsync_temp, rsync_final)
        expected.append(str(rsync_final))
        wait_for(lambda: cataloged(catalog, expected), 60, "the moved files")
    finally:
        assert w.stop() == 0
    rows = frame(catalog)
    assert sorted(rows["file_path"]) == sorted(expected)  # no .part, no .name.XXXXXX
    ingests = frame(catalog, "events").filter(pl.col("action") == "ingest")
    assert ingests.height == len(expected)


def test_a_burst_of_2000_files_is_cataloged_exactly_once_each(where, tmp_path):
    root, catalog, log = where
    template = write_file(specs("LYRA", 1)[0], tmp_path / "template")
    # A small intake: the burst overflows it, and the catch-up scan must still find every file once.
    w = WatchProcess(catalog, root, log, "--workers", "0", "--max-pending", "300", "--batch", "400")
    paths = []
    try:
        for d in range(8):
            (root / f"d{d}").mkdir()
            for i in range(250):
                p = root / f"d{d}" / f"LY{d:02d}{i:04d}.fits"
                shutil.copyfile(template, p)
                paths.append(str(p))

        def count():
            with cosmoscope.open_catalog(catalog, readonly=True) as cat:
                return cat.count() >= len(paths)

        wait_for(count, 120, "2,000 rows")
    finally:
        assert w.stop() == 0
    rows = frame(catalog)
    assert rows.height == 2000 and sorted(rows["file_path"]) == sorted(paths)
    events = frame(catalog, "events")
    per_file = events.filter(pl.col("action") == "ingest").group_by("dataset_id").len()
    assert per_file.height == 2000 and set(per_file["len"]) == {1}
    assert events.filter(pl.col("action").is_in(["update", "reextract"])).height == 0
    assert "catching up with a scan" in w.text()  # the bound was hit and handled


def test_sigkill_then_restart_catches_everything_written_meanwhile(where):
    root, catalog, log = where
    files = specs("HELIOS-X", 8, seed=2)
    first = [str(write_file(s, root)) for s in files[:3]]
    w = WatchProcess(catalog, root, log, "--workers", "0")
    wait_for(lambda: cataloged(catalog, first), 60, "the first files")
    w.stop(signal.SIGKILL)
    status = [sys.executable, "-m", "cosmoscope", "--catalog", catalog, "status", "--format", "ndjson"]

    def watcher_says(word):
        out = subprocess.run(status, capture_output=True, text=True)
        return out if f'"status":"{word}"' in out.stdout else None

    assert wait_for(lambda: watcher_says("not responding"), 30, "status to notice the dead watcher").returncode == 1
    # While no watcher runs: new files, a deletion, a rewrite.
    later = [str(write_file(s, root)) for s in files[3:]]
    os.remove(first[0])
    rewritten = Path(first[1])
    rewritten.write_bytes(Path(later[-1]).read_bytes())  # another observation: other times
    w2 = WatchProcess(catalog, root, log, "--workers", "0")
    try:
        wait_for(lambda: cataloged(catalog, first[1:] + later), 60, "the files written while down")

        def gone():
            rows = frame(catalog).filter(pl.col("file_path") == first[0])
            return rows.height == 1 and rows["file_status"][0] == "missing"

        wait_for(gone, 30, "the deleted file to be marked missing")
        wait_for(lambda: frame(catalog).filter(pl.col("file_path") == str(rewritten))["file_size"][0]
                 == rewritten.stat().st_size, 30, "the rewritten file to be re-read")
        assert watcher_says("running").returncode == 0
    finally:
        assert w2.stop(signal.SIGINT) == 0
    rows = frame(catalog)
    assert rows.height == len(files)  # the deleted file kept its row
    changes = frame(catalog, "events").filter((pl.col("action") == "reextract")
                                              & (pl.col("dataset_id") == dataset_id_for(rewritten)))
    assert "observation_timestamp" in changes["field"].to_list()  # what changed is on record
    watchers = frame(catalog, "watchers")
    assert watchers.height == 1 and watchers["state"][0] == "stopped"  # the restart took over its row


def test_notebook_handle_marks_deleted_and_moved_files(tmp_path):
    root = tmp_path / "data"
    batch = specs("HELIOS-X", 6, seed=3)
    paths = [write_file(s, root) for s in batch]
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        with cat.watch(root, settle=0.2, workers=0, heartbeat_every=0.5) as w:
            assert w.wait_idle(60), w.status()
            assert cat.count() == len(paths)
            paths[0].unlink()
            target = paths[1].with_name("renamed_" + paths[1].name)
            os.rename(paths[1], target)
            wait_for(lambda: cat.lookup([dataset_id_for(paths[0]), dataset_id_for(paths[1])])
                     ["file_status"].to_list() == ["missing", "missing"], 30, "rows marked missing")
            wait_for(lambda: cat.lookup([dataset_id_for(target)]).height == 1, 30, "the renamed file")
            # a directory removed at once
            sub = root / "helios-x"
            shutil.rmtree(sub)
            wait_for(lambda: cat.observations().filter(pl.col("file_status") == "present").collect().height == 0,
                     30, "every row under the removed directory to be missing")
            assert w.status()["files_missing"] == len(paths) + 1  # six originals and the renamed one
        assert w.state == "stopped"
        moved = cat.history(dataset_id_for(paths[1])).filter(pl.col("field") == "file_status")
        assert moved["to_value"].to_list() == ["missing"]
        assert '"moved_to"' in moved["details"][0] and str(target) in moved["details"][0]
        assert cat.count() == len(paths) + 1  # nothing was ever dropped


def test_incomplete_reason_on_real_partial_files(tmp_path):
    done, partial = tmp_path / "done", tmp_path / "partial"
    for spec in specs("HELIOS-X", 1) + specs("COSMOS-7", 2):
        whole = write_file(spec, done)
        cut = write_file(spec, partial, partial=0.6)
        assert incomplete_reason(str(whole)) is None, whole
        assert incomplete_reason(str(cut)) is not None, cut
    import netCDF4
    import numpy as np

    nc = tmp_path / "classic.nc"
    with netCDF4.Dataset(nc, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("t", 5000)
        ds.createVariable("flux", "f8", ("t",))[:] = np.arange(5000.0)
    assert incomplete_reason(str(nc)) is None
    data = nc.read_bytes()
    short = tmp_path / "short.nc"
    short.write_bytes(data[: len(data) // 2])
    assert "netCDF-3" in incomplete_reason(str(short))
    assert incomplete_reason(str(tmp_path / "nowhere.fits")).startswith("cannot read it")


def test_watch_then_validate_on_every_backend(catalog, tmp_path):
    """The same watcher and validation on each store (SQLite, VAST Database)."""
    root = tmp_path / "data"
    root.mkdir()
    with catalog.watch(root, settle=0.2, workers=0, heartbeat_every=0.5) as w:
        assert w.wait_idle(60)
        paths = [write_file(s, root) for s in specs("HELIOS-X", 4, seed=4)]
        wait_for(lambda: catalog.count() == 4 or None, 60, "four rows")
        paths[0].unlink()
        wait_for(lambda: catalog.get(dataset_id_for(paths[0]))["file_status"] == "missing" or None, 30,
                 "the deleted file's row to be missing")
    assert catalog.watchers()["status"].to_list() == ["stopped"]
    report = catalog.validate(progress=False)
    assert report.with_problems == 1 and report.remaining[("missing", "HELIOS-X")] == 1
    assert catalog.get(dataset_id_for(paths[1]))["validation_status"] == "passed"


def test_a_watched_directory_moved_away_marks_every_row_under_it_missing(tmp_path):
    """Found by CI: the watcher gave up on a removed directory before all of its files' delete
    events had arrived, and left some rows 'present'. A directory moved away brings no delete
    event for any of its files."""
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        root = tmp_path / "watched"
        for s in specs("LYRA", 4):
            write_file(s, root)
        w = cat.watch(root, settle=0.1, workers=0)
        assert w.wait_idle(30) and cat.count() == 4
        os.rename(root, tmp_path / "elsewhere")
        wait_for(lambda: w.state == "failed" or None, 30, "the watcher to give up")
        w.stop()
        assert "was removed" in w.message
        status = cat.observations().select("file_status").collect()["file_status"].to_list()
        assert status == ["missing"] * 4


def test_a_removed_directory_ends_the_watcher_and_an_empty_mount_point_deletes_nothing(tmp_path, caplog):
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        gone = tmp_path / "gone"
        for s in specs("LYRA", 3):
            write_file(s, gone)
        w = cat.watch(gone, settle=0.1, workers=0)
        assert w.wait_idle(30) and cat.count() == 3
        shutil.rmtree(gone)
        wait_for(lambda: w.state == "failed" or None, 30, "the watcher to give up")
        w.stop()
        assert "was removed" in w.message
        assert cat.observations().filter(pl.col("file_status") == "missing").collect().height == 3
        # A share that is not mounted: its mount point is there, and empty.
        mount = tmp_path / "mnt"
        for s in specs("HELIOS-X", 3):
            write_file(s, mount)
        cat.ingest(mount, workers=0, progress=False)
        parked = tmp_path / "parked"
        os.rename(mount, parked)
        mount.mkdir()
        with cat.watch(mount, settle=0.1, workers=0) as w2:
            assert w2.wait_idle(30)
        rows = cat.observations().filter(pl.col("file_path").str.starts_with(str(mount))).collect()
        assert rows.height == 3 and set(rows["file_status"]) == {"present"}
        assert "is it unmounted?" in caplog.text


def test_the_watcher_exits_1_when_a_file_it_cataloged_could_not_be_read(where):
    root, catalog, log = where
    w = WatchProcess(catalog, root, log, "--workers", "0", "--stall", "0.5")
    try:
        good = write_file(specs("LYRA", 1)[0], root)
        bad = root / "broken.fits"
        bad.write_text("this is not FITS\n" * 10)
        wait_for(lambda: cataloged(catalog, [good, bad]), 60, "both files")
    finally:
        code = w.stop()
    assert code == 1, w.text()
    assert "1 files cataloged as unreadable" in w.text()
