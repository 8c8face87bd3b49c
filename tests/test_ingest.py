"""Bulk ingest on real files: simulated mission trees and deliberately bad files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import polars as pl
import pyarrow as pa
import pytest

import cosmoscope
from cosmoscope.ingest.crawl import Shard, crawl
from cosmoscope.records import dataset_id_for

UTC_COLS = ["ingested_at", "updated_at"]


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """A small simulated tree of all four missions, with its ground truth."""
    from cosmoscope.simulate import simulate

    root = tmp_path_factory.mktemp("sky")
    return simulate(root, files=120, days=2, seed=7, progress=False)


def test_ingest_matches_the_ground_truth(sky, catalog):
    summary = catalog.ingest(sky.root, workers=2, progress=False)
    truth = sky.manifest
    assert summary.new == truth.height and summary.failed == 0 and summary.ok
    got = catalog.observations().collect()
    assert got.height == truth.height
    joined = truth.with_columns(pl.col("path").map_elements(dataset_id_for, return_dtype=pl.String)
                                .alias("dataset_id")).join(got, on="dataset_id", how="left")
    assert joined["mission_id"].to_list() == joined["mission"].to_list()
    assert joined["instrument_type"].to_list() == joined["instrument"].to_list()
    mismatched = joined.filter(pl.col("calib_level") != pl.col("calib_level_right"))
    assert mismatched.height == 0, mismatched.select("relpath", "calib_level", "calib_level_right")
    drift = (joined["observation_timestamp"] - joined["start"]).dt.total_seconds().abs()
    assert drift.max() < 1.0, "start times must agree with what was written"
    assert (joined["target_object"] == joined["target"]).fill_null(True).all()
    # lineage: exactly the edges the simulator wrote
    edges = catalog.relationships().collect()
    want = {(dataset_id_for(p), dataset_id_for(c), t) for p, c, t in sky.lineage.iter_rows()}
    assert set(zip(edges["parent_dataset_id"], edges["child_dataset_id"], edges["relationship_type"])) == want
    assert summary.lineage_links == len(want) and summary.lineage_pending == 0


def test_second_run_changes_nothing_and_a_modified_file_is_reread(sky, catalog):
    catalog.ingest(sky.root, workers=0, progress=False)
    before = catalog.observations().collect()
    events = catalog.count(catalog.events())
    again = catalog.ingest(sky.root, workers=0, progress=False)
    assert (again.new, again.updated, again.failed) == (0, 0, 0)
    assert again.unchanged == before.height
    assert catalog.observations().collect().equals(before)
    assert catalog.count(catalog.events()) == events + 1  # only the run's own summary event
    # touch one file: it is read again, and only it
    path = sky.manifest["path"][0]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    third = catalog.ingest(sky.root, workers=0, progress=False)
    assert (third.new, third.updated, third.unchanged) == (0, 1, before.height - 1)
    assert catalog.history(dataset_id_for(path))["action"].to_list() == ["ingest", "reextract"]


def test_dry_run_writes_nothing(sky, catalog):
    summary = catalog.ingest(sky.root, dry_run=True, progress=False)
    assert summary.new == sky.manifest.height and catalog.count() == 0
    assert catalog.count(catalog.events()) == 0


def test_shards_split_a_crawl_without_overlap(sky):
    whole = {e.path for e in crawl([sky.root])}
    parts = [{e.path for e in crawl([sky.root], shard=Shard.parse(f"{i}/3"))} for i in (1, 2, 3)]
    assert set().union(*parts) == whole
    assert sum(len(p) for p in parts) == len(whole) and all(parts)


def test_lineage_resolves_whatever_order_files_arrive_in(sky, catalog):
    derived = [p for p, lvl in zip(sky.manifest["path"], sky.manifest["calib_level"]) if lvl == 3]
    catalog.ingest(derived, workers=0, progress=False)
    first = catalog.ingest(derived, workers=0, progress=False)
    assert first.lineage_links == 0
    pending = catalog.frame("pending_lineage").collect().height
    assert pending > 0, "derived files name parents that are not cataloged yet"
    rest = catalog.ingest(sky.root, workers=0, progress=False)
    assert rest.lineage_pending == 0 and catalog.frame("pending_lineage").collect().height == 0
    assert catalog.count(catalog.relationships()) == sky.lineage.height


# -- bad files -------------------------------------------------------------------------------

def make_bad_tree(root):
    from astropy.io import fits

    root.mkdir(parents=True)
    good = root / "good.fits"
    hdr = fits.Header({"TELESCOP": "HELIOS-X", "INSTRUME": "XIS", "DATE-OBS": "2026-11-27T08:00:00", "OBJECT": "M31"})
    fits.PrimaryHDU(header=hdr).writeto(good)
    (root / "zero.fits").write_bytes(b"")
    (root / "truncated.fits").write_bytes(good.read_bytes()[:1000])
    (root / "random.nc").write_bytes(os.urandom(4096))
    (root / "text.fits").write_text("this is not a FITS file\n" * 20)
    (root / "README.txt").write_text("notes about the data\n")
    (root / "loop").symlink_to(root / "loop")
    (root / "dangling.fits").symlink_to(root / "nowhere.fits")
    bad_name = os.path.join(os.fsencode(root), b"bad-\xff-name.fits")
    with open(bad_name, "wb") as f:
        f.write(good.read_bytes())
    locked = root / "locked.fits"
    locked.write_bytes(good.read_bytes())
    locked.chmod(0)
    sub = root / "sub"
    sub.mkdir()
    (sub / "up").symlink_to(root, target_is_directory=True)  # a directory symlink loop
    return root


def test_bad_files_become_rows_with_reasons_and_the_run_goes_on(tmp_path, catalog):
    root = make_bad_tree(tmp_path / "bad")
    summary = catalog.ingest(root, workers=0, progress=False, follow_symlinks=True)
    rows = {os.path.basename(r["file_path"]): r for r in catalog.observations().collect().iter_rows(named=True)}
    assert rows["good.fits"]["extraction_status"] == "ok" and rows["good.fits"]["target_object"] == "M31"
    assert rows["bad-\\xff-name.fits"]["extraction_status"] == "ok"  # odd names are data too
    reasons = {name: (r["extraction_error"] or "") for name, r in rows.items()}
    assert "empty" in reasons["zero.fits"]
    assert "truncated" in reasons["truncated.fits"].lower() or "END" in reasons["truncated.fits"]
    assert reasons["random.nc"].startswith("not a netCDF file")
    assert reasons["text.fits"].startswith("not a FITS file")
    assert "README.txt" not in rows and summary.not_data >= 1
    if os.geteuid() != 0:  # root reads any file, whatever its mode
        assert "permission denied" in reasons["locked.fits"]
    problems = dict(summary.problems)
    assert any("loop" in why for why in problems.values())
    assert any("does not exist" in why for p, why in problems.items() if p.endswith("dangling.fits"))
    assert summary.failed == sum(1 for r in rows.values() if r["extraction_status"] == "error") >= 4
    assert not summary.ok
    text = str(summary)
    assert "not a FITS file" in text and "failed:" in text


def test_a_file_still_being_written_is_read_again_once_complete(tmp_path, catalog):
    from astropy.io import fits

    full = tmp_path / "full.fits"
    fits.PrimaryHDU(data=None, header=fits.Header({"TELESCOP": "LYRA", "INSTRUME": "LYCAM",
                                                   "DATE-OBS": "2026-11-27T01:02:03"})).writeto(full)
    target = tmp_path / "tree" / "growing.fits"
    target.parent.mkdir()
    target.write_bytes(full.read_bytes()[:1440])  # half a header block: the writer is not done
    first = catalog.ingest(target.parent, workers=0, progress=False)
    assert first.failed == 1
    target.write_bytes(full.read_bytes())
    second = catalog.ingest(target.parent, workers=0, progress=False)
    assert second.updated == 1 and second.failed == 0
    row = catalog.get(dataset_id_for(target))
    assert row["extraction_status"] == "ok" and row["file_size"] == full.stat().st_size


# -- a reader that crashes its process -------------------------------------------------------

CRASHING_PLUGIN = textwrap.dedent('''
    """A test plugin whose reader segfaults its process, as a buggy C library would."""
    class CrashingExtractor:
        name = "crashme"
        priority = 100
        suffixes = (".crash",)
        def can_read(self, path, head):
            return head.startswith(b"CRASHME")
        def extract(self, path):
            import ctypes
            ctypes.string_at(0)  # a real segmentation fault
''')


def test_a_file_that_crashes_its_reader_is_isolated(tmp_path, monkeypatch, sky, catalog):
    from cosmoscope.extract import registry

    plugin_dir = tmp_path / "plugin"
    (plugin_dir / "crashme_plugin").mkdir(parents=True)
    (plugin_dir / "crashme_plugin" / "__init__.py").write_text(CRASHING_PLUGIN)
    dist = plugin_dir / "crashme_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crashme-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cosmoscope.extractors]\ncrashme = crashme_plugin:CrashingExtractor\n")
    monkeypatch.syspath_prepend(str(plugin_dir))  # spawned workers inherit sys.path
    registry.refresh_extractors()
    tree = tmp_path / "tree"
    tree.mkdir()
    for i, path in enumerate(sky.manifest["path"][:30]):
        os.link(path, tree / f"{i:02d}_{os.path.basename(path)}")
    (tree / "bomb.crash").write_bytes(b"CRASHME" + b"\0" * 100)
    try:
        summary = catalog.ingest(tree, workers=2, progress=False)
    finally:
        registry.refresh_extractors()
    assert summary.crashes >= 1
    rows = catalog.observations().collect()
    assert rows.height == 31
    bomb = rows.filter(pl.col("file_name") == "bomb.crash").row(0, named=True)
    assert bomb["extraction_status"] == "error" and "crashed" in bomb["extraction_error"]
    assert rows.filter(pl.col("extraction_status") == "error").height == 1


# -- killed mid-run --------------------------------------------------------------------------

def _comparable(cat) -> pl.DataFrame:
    return cat.observations().drop(UTC_COLS).collect().sort("dataset_id")


@pytest.mark.slow
def test_sigkill_mid_ingest_then_rerun_equals_a_clean_run(tmp_path, sky):
    clean = cosmoscope.open_catalog(str(tmp_path / "clean.sqlite"))
    clean.ingest(sky.root, workers=0, progress=False)
    path = str(tmp_path / "killed.sqlite")
    cosmoscope.open_catalog(path).close()
    cmd = [sys.executable, "-m", "cosmoscope", "--catalog", path, "-q", "ingest", str(sky.root),
           "--workers", "1", "--batch-rows", "7"]
    kills = 0
    for attempt in range(6):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with cosmoscope.open_catalog(path, readonly=True) as watcher:
            start = watcher.count()
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if watcher.count() >= start + 10:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                time.sleep(0.02)
        proc.wait(timeout=60)
        if proc.returncode == 0:
            break
    assert kills >= 1, "the ingest must have been killed at least once mid-run"
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    with cosmoscope.open_catalog(path) as cat:
        assert _comparable(cat).equals(_comparable(clean))
        edges = cat.relationships().select("parent_dataset_id", "child_dataset_id", "relationship_type").collect()
        want = clean.relationships().select("parent_dataset_id", "child_dataset_id", "relationship_type").collect()
        assert edges.sort(edges.columns).equals(want.sort(want.columns))
        ingests = cat.events().filter(pl.col("action") == "ingest").group_by("dataset_id").len().collect()
        assert ingests.height == sky.manifest.height and (ingests["len"] == 1).all()
    clean.close()


def test_cli_ingest_reports_and_exits(tmp_path, sky):
    path = str(tmp_path / "c.sqlite")
    out = subprocess.run([sys.executable, "-m", "cosmoscope", "--catalog", path, "ingest", str(sky.root), "--json",
                          "-j", "0"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["new"] == sky.manifest.height
    bad = make_bad_tree(tmp_path / "bad")
    out = subprocess.run([sys.executable, "-m", "cosmoscope", "--catalog", path, "-q", "ingest", str(bad), "-j", "0"],
                         capture_output=True, text=True, timeout=300)
    # -q: no summary; the failure, and how to see which files, on standard error, for this catalog
    assert out.returncode == 1 and out.stdout == "" and "could not be read" in out.stderr
    assert f"cosmoscope --catalog {path} search --columns file_path,extraction_error" in out.stderr
    again = subprocess.run([sys.executable, "-m", "cosmoscope", "--catalog", path, "-q", "ingest", str(bad), "-j",
                            "0", "--json"], capture_output=True, text=True, timeout=300)
    summary = json.loads(again.stdout)  # nothing read again, but the failed rows are still there
    assert again.returncode == 1 and summary["failed"] == 0 and summary["failed_before"] >= 4
    out = subprocess.run([sys.executable, "-m", "cosmoscope", "--catalog", path, "ingest", str(bad), "--shard", "5/4"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "I must be between 1 and N" in out.stderr


def test_an_empty_path_is_refused_not_taken_for_the_current_directory(tmp_path, sky, catalog):
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.ingest.watch import Watcher

    here = sky.root  # a tree of data files as the working directory: "" must not catalog it
    path = str(tmp_path / "c.sqlite")
    out = subprocess.run([sys.executable, "-m", "cosmoscope", "--catalog", path, "ingest", ""], cwd=here,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "an empty path was given" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    with pytest.raises(InvalidArgumentError, match="empty path"):
        catalog.ingest(["", str(here)], workers=0, progress=False)
    with pytest.raises(InvalidArgumentError, match="empty path"):
        Watcher(catalog, [""])
    with pytest.raises(InvalidArgumentError, match="empty path"):
        catalog.validate(paths="", progress=False)
    assert catalog.count() == 0


def test_a_file_that_vanishes_mid_ingest_is_marked_missing_at_once(tmp_path, catalog):
    from astropy.io import fits

    from cosmoscope.ingest.crawl import FileEntry

    path = tmp_path / "gone.fits"
    fits.PrimaryHDU().writeto(path)
    st = os.stat(path)
    entry = FileEntry(str(path), st.st_size, st.st_mtime_ns)  # what the crawl saw ...
    path.unlink()                                               # ... before a worker got to it
    summary = catalog.ingest([str(tmp_path)], entries=[entry], workers=0, progress=False)
    row = catalog.get(dataset_id_for(str(path)))
    assert (row["extraction_status"], row["file_status"]) == ("error", "missing")
    assert "file not found" in row["extraction_error"] and summary.failed == 1


def test_compressed_files_are_read_and_not_data_is_named(tmp_path, catalog):
    import bz2
    import gzip
    import shutil

    from astropy.io import fits

    root = tmp_path / "drop"
    root.mkdir()
    shutil.copy(os.path.join(os.path.dirname(__file__), "data", "lzw.fits.Z"), root / "image.fits.Z")
    fits.PrimaryHDU(header=fits.Header([("OBJECT", "M31")])).writeto(root / "plain.fits")
    (root / "spectrum.fits.bz2").write_bytes(bz2.compress((root / "plain.fits").read_bytes()))
    (root / "table.csv.gz").write_bytes(gzip.compress(b"time,flux\n2026-11-27T00:00:00,1\n"))
    (root / "junk.fz").write_bytes(b"not a FITS file at all\n" * 20)
    (root / "README.txt").write_text("what this directory holds\n")
    (root / "notes.gz").write_bytes(gzip.compress(b"plain words\n"))
    summary = catalog.ingest(root, workers=0, progress=False)
    rows = {os.path.basename(r["file_path"]): r for r in catalog.observations().collect().iter_rows(named=True)}
    assert {n: rows[n]["file_format"] for n in rows} == {
        "image.fits.Z": "fits", "plain.fits": "fits", "spectrum.fits.bz2": "fits", "table.csv.gz": "csv",
        "junk.fz": "fits"}
    assert rows["junk.fz"]["extraction_status"] == "error" and summary.failed == 1
    assert rows["spectrum.fits.bz2"]["target_object"] == "M31"
    named = sorted(os.path.basename(p) for p in summary.not_data_files)
    assert summary.not_data == 2 and named == ["README.txt", "notes.gz"]
    assert sorted(os.path.basename(p) for p in summary.to_dict()["not_data_files"]) == named
    assert str(root / "README.txt") in str(summary)


def test_the_audit_trail_records_each_real_change_once_in_the_name_of_its_cause(sky, catalog):
    derived = [p for p, lvl in zip(sky.manifest["path"], sky.manifest["calib_level"]) if lvl == 3]
    derived_ids = {dataset_id_for(p) for p in derived}
    alice = cosmoscope.open_catalog(catalog.url, actor="alice@lab")
    bob = cosmoscope.open_catalog(catalog.url, actor="bob@lab")
    try:
        alice.ingest(derived, workers=0, progress=False)  # their parents are not cataloged yet
        bob.ingest(sky.root, workers=0, progress=False)   # bob's ingest resolves alice's pending lineage
        links = catalog.events().filter(pl.col("action") == "link").collect()
        assert links.height == sky.lineage.height
        for row in links.iter_rows(named=True):
            assert row["actor"] == ("alice@lab" if row["dataset_id"] in derived_ids else "bob@lab"), row

        def counts():
            return dict(catalog.events().group_by("action").len().collect().iter_rows())

        before = counts()
        bob.ingest(sky.root, workers=0, progress=False, force=True)  # every file re-read, none changed
        assert counts() == {**before, "ingest_run": before["ingest_run"] + 1}
        stale = sorted(derived_ids)[:3]  # rows an older extractor made: validate --fix reads them again
        catalog.store.update("observations", pa.table({"dataset_id": stale, "extractor_version": ["0.9"] * 3}),
                             ["dataset_id"])
        before = counts()
        report = bob.validate(fix=True, progress=False)
        assert report.reextracted == 3
        after = counts()
        assert after["link"] == before["link"] and after.get("update", 0) == before.get("update", 0)
        changes = catalog.events().filter(pl.col("action") == "reextract").collect()
        assert changes.height == 3 and set(changes["field"]) == {"extractor_version"}
        assert set(changes["from_value"]) == {"0.9"}
    finally:
        alice.close()
        bob.close()


# -- a small folder starts reading at once ------------------------------------------------------

def test_a_small_folder_of_fits_and_csv_is_read_here_with_no_worker_started(tmp_path):
    """Starting worker processes (new interpreters importing astropy) took longer than a small
    folder takes to read: 11 files took 2.2 s. Plain FITS and CSV are now read in this process,
    and no worker starts while none is needed."""
    from cosmoscope.ingest import workers
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "tree", missions=["LYRA", "AURORA-2"], files=30, days=2, seed=2, progress=False,
                   workers=0)
    entries = list(crawl([str(sim.root)]))
    with workers.ExtractionPool(2, head_start=True) as pool:
        records = [r for r in pool.extract(entries) if not r.get("_skip")]
        assert pool.started == 0, "a worker process was started for a small folder"
    assert pool.read_here == len(entries) and len(records) == sim.manifest.height
    assert all(r["extraction_status"] == "ok" for r in records)
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        summary = cat.ingest(sim.root, workers=2, progress=False)
        assert summary.new == sim.manifest.height and summary.ok


def test_files_unsafe_to_read_here_still_go_to_a_worker(tmp_path):
    """HDF5 and netCDF (C libraries that can crash or hang on a damaged file), Unix-compressed
    and big files wait for a worker; gzip-compressed FITS is read here."""
    import gzip

    from cosmoscope.ingest import workers
    from cosmoscope.ingest.crawl import FileEntry
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "tree", missions=["COSMOS-7", "LYRA"], files=24, days=1, seed=4, progress=False,
                   workers=0)
    fits_file = next(p for p in sim.manifest["path"] if p.endswith((".fit", ".fits")))
    packed = tmp_path / "packed.fits.gz"
    packed.write_bytes(gzip.compress(open(fits_file, "rb").read()))
    big = tmp_path / "big.fits"
    big.write_bytes(open(fits_file, "rb").read().ljust(workers.IN_PROCESS_MAX_BYTES + 2880, b"\0"))

    def entry(p):
        st = os.stat(p)
        return FileEntry(str(p), st.st_size, st.st_mtime_ns)

    for path in sim.manifest["path"]:
        assert workers.in_process_ok(entry(path)) == path.endswith((".fit", ".fits")), path
    assert workers.in_process_ok(entry(packed)) and not workers.in_process_ok(entry(big))
    lzw = tmp_path / "packed.fits.Z"
    lzw.write_bytes(b"\x1f\x9d\x90" + bytes(100))
    assert not workers.in_process_ok(entry(lzw))
    entries = [entry(p) for p in [*sim.manifest["path"], packed, big]]
    with workers.ExtractionPool(2, head_start=True) as pool:
        records = list(pool.extract(entries))
        assert pool.started == 1, "the HDF5, netCDF and big files need a worker (one, in a small run)"
    assert len(records) == len(entries) and pool.read_here <= sim.manifest["path"].str.contains(r"\.fits?$").sum() + 1
    assert all(r["extraction_status"] != "error" for r in records), [r.get("extraction_error") for r in records]


def test_a_small_folder_of_compressed_fits_and_csv_is_read_here_with_no_worker_started(tmp_path):
    """gzip and bzip2 FITS and CSV waited for a worker (0.5-2 s beyond their extraction); zlib and
    libbz2 reject damaged streams with an error, so they are now read here, under a cap."""
    import bz2
    import gzip

    from cosmoscope.ingest import workers
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "sim", missions=["LYRA", "AURORA-2"], files=12, days=2, seed=3, progress=False,
                   workers=0)
    tree = tmp_path / "tree"
    tree.mkdir()
    for i, path in enumerate(sim.manifest["path"]):
        pack = (gzip.compress, ".gz") if i % 2 else (bz2.compress, ".bz2")
        (tree / (os.path.basename(path) + pack[1])).write_bytes(pack[0](open(path, "rb").read()))
    entries = list(crawl([str(tree)]))
    assert all(workers.in_process_ok(e) for e in entries)
    with workers.ExtractionPool(2, head_start=True) as pool:
        records = list(pool.extract(entries))
        assert pool.started == 0, "a worker process was started for a small folder of compressed FITS and CSV"
    assert pool.read_here == len(entries) == sim.manifest.height
    assert all(r["extraction_status"] != "error" for r in records), [r.get("extraction_error") for r in records]
    assert {r["mission_specific"].get("compression") for r in records if r["file_format"] == "fits"} == {
        "gzip", "bzip2"}


def test_a_compressed_file_inflating_past_the_cap_is_read_by_a_worker(tmp_path, monkeypatch):
    """A compression bomb read here would cost this process its time and memory: past
    INFLATE_MAX_BYTES a worker reads it instead, under its time budget."""
    from cosmoscope.ingest import workers

    from tests.test_fuzz_extract import DATA, gzip_fits_bomb

    monkeypatch.setattr(workers, "INFLATE_MAX_BYTES", 1 << 20)
    tree = tmp_path / "tree"
    tree.mkdir()
    gzip_fits_bomb(tree / "big.fits.gz", 32 << 20)
    (tree / "small.fits").write_bytes((DATA / "checksum_false.fits").read_bytes())
    entries = list(crawl([str(tree)]))
    assert all(workers.in_process_ok(e) for e in entries)
    with workers.ExtractionPool(2, head_start=True) as pool:
        records = {os.path.basename(r["_path"]): r for r in pool.extract(entries)}
        assert pool.started == 1
    assert pool.read_here == 1 and set(records) == {"big.fits.gz", "small.fits"}
    assert records["big.fits.gz"]["extraction_status"] != "error", records["big.fits.gz"]["extraction_error"]
    assert records["big.fits.gz"]["mission_specific"]["compression"] == "gzip"


def test_a_small_folder_of_hdf5_and_netcdf_starts_one_worker_without_astropy(tmp_path):
    """HDF5 and netCDF stay in a worker process (real HDF5 files crash netCDF4, a damaged one hangs libhdf5
    where no signal reaches). A small run starts one worker, not one per CPU, which imports the
    libraries these files need rather than astropy, and is let go once the last file is read,
    so that it exits while the rows are written."""
    from cosmoscope.ingest import workers
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "sim", missions=["COSMOS-7"], files=24, days=1, seed=3, progress=False, workers=0)
    entries = [e for e in crawl([str(sim.root)]) if e.path.endswith((".h5", ".nc"))]
    assert len(entries) > workers.CHUNK and not any(workers.in_process_ok(e) for e in entries)
    preload = workers._preload_for(entries)
    assert "h5py" in preload and not any(m.startswith("astropy") for m in preload)
    with workers.ExtractionPool(2, head_start=True) as pool:
        records = list(pool.extract(entries))
        assert pool.started == 1 and pool._pool is None and pool._closing is not None
    assert pool._closing is None and pool.read_here == 0
    assert len(records) == len(entries) and all(r["extraction_status"] == "ok" for r in records)


def test_the_worker_a_small_hdf5_folder_needs_starts_before_the_catalog_opens(tmp_path):
    """`cosmoscope ingest` starts the workers a small run will need while it opens the catalog
    (start_spare); the run takes those rather than starting its own after the opening."""
    from cosmoscope.ingest import workers
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "sim", missions=["COSMOS-7"], files=6, days=1, seed=3, progress=False, workers=0)
    workers.start_spare([str(sim.root)], 2)
    try:
        assert workers._spare is not None and workers._spare[0] == 1, "one worker, as the small run will want"
        spare = workers._spare[1]
        with workers.ExtractionPool(2, head_start=True) as pool:
            read = pool.extract(crawl([str(sim.root)]))
            first = next(read)
            assert pool._pool is spare and workers._spare is None, "the run started a worker of its own"
            records = [r for r in (first, *read) if not r.get("_skip")]
        assert pool.started == 1
        assert len(records) == sim.manifest.height and all(r["extraction_status"] == "ok" for r in records)
    finally:
        workers.let_spare_go()


def test_no_worker_starts_early_for_files_read_here_and_an_unused_one_is_let_go(tmp_path):
    """A small folder of FITS files is read in this process, so nothing starts early (a spare
    process would only share the cores); a spare that a run does not take exits."""
    from cosmoscope.ingest import workers
    from cosmoscope.simulate import simulate

    fits = simulate(tmp_path / "fits", missions=["LYRA"], files=4, days=1, seed=3, progress=False, workers=0)
    workers.start_spare([str(fits.root)])
    assert workers._spare is None
    hdf5 = simulate(tmp_path / "hdf5", missions=["COSMOS-7"], files=4, days=1, seed=3, progress=False, workers=0)
    workers.start_spare([str(hdf5.root)])
    pid = workers._spare[2].result(timeout=600)  # the worker's own pid, once it has started
    with workers.ExtractionPool(2, head_start=True) as pool:  # a run of the FITS files only
        records = [r for r in pool.extract(crawl([str(fits.root)])) if not r.get("_skip")]
    assert pool.started == 0 and len(records) == fits.manifest.height
    assert workers._spare is None
    from tests.test_watch import wait_for

    wait_for(lambda: not _alive(pid), what="the unused spare worker process to exit")


def test_a_ctrl_c_while_a_deaf_worker_starts_is_delivered_and_the_worker_stays_deaf():
    """A watcher's workers are deaf to SIGINT (the watcher stops them). SIGINT used to be ignored
    in the watcher for the moment of their spawn: a Ctrl-C then (`cosmoscope watch` stopped just
    after it said "watching") was lost, and the watcher ran on. Here a SIGINT arrives in that
    very moment."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor

    from cosmoscope.ingest import workers

    class CtrlCDuringSpawn(ProcessPoolExecutor):
        def submit(self, fn, *args):
            os.kill(os.getpid(), signal.SIGINT)
            return super().submit(fn, *args)

    heard = []
    previous = signal.signal(signal.SIGINT, lambda *_: heard.append("SIGINT"))
    pool = CtrlCDuringSpawn(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        worker = workers._submit(pool, os.getpid, deaf=True).result(timeout=600)
        assert heard == ["SIGINT"], "the Ctrl-C that came while the worker started was lost"
        os.kill(worker, signal.SIGINT)
        assert pool.submit(os.getpid).result(timeout=600) == worker, "the worker died of SIGINT"
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.shutdown(cancel_futures=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
