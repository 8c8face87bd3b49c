"""Hostile input: mutated real headers, huge and deep structures, stuck readers and file names
with control characters. Every file is either extracted or recorded as an error with a reason,
within bounded time and memory, and the run goes on.

The mutation fuzz reads real files (tests/data, one simulated file of each mission, and the
shared corpus when it is there) through the same crash-isolated worker pool as an ingest, so a
mutation that crashed a C library would show up as an error row, not as a dead test run.
``COSMOSCOPE_FUZZ_EXAMPLES`` raises the number of mutations for a longer run.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cosmoscope
from cosmoscope.ingest.crawl import FileEntry
from cosmoscope.records import dataset_id_for
from tests.conftest import CORPUS

DATA = Path(__file__).parent / "data"
EXAMPLES = int(os.environ.get("COSMOSCOPE_FUZZ_EXAMPLES", "500"))
#: Where headers live: mutations land in the first 64 KiB of the (decompressed) file.
HEAD_REGION = 64 * 1024
#: Loose bounds for a loaded 2-core machine: far above what a healthy read takes.
SECONDS_PER_FILE = 60
CONTROL = set(map(chr, range(32))) | {"\x7f"}


def _seed_files(sim_root: Path) -> list[Path]:
    from cosmoscope.extract.registry import guess_by_suffix

    found = list(DATA.iterdir()) + list(sim_root.rglob("*"))
    if os.path.isdir(CORPUS):  # real mission files that may not be copied into tests/data
        found += [p for p in Path(CORPUS).rglob("*") if p.is_file() and p.stat().st_size < 4_000_000]
    return sorted(p for p in found if p.is_file() and guess_by_suffix(str(p)) is not None)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    """Seed files, an extraction pool of one worker (with a per-file budget) and a catalog."""
    from cosmoscope.ingest import workers
    from cosmoscope.ingest.workers import ExtractionPool
    from cosmoscope.simulate import simulate

    root = tmp_path_factory.mktemp("fuzz")
    simulate(root / "sim", files=24, days=1, seed=5, progress=False, workers=0)
    mp = pytest.MonkeyPatch()
    # A few mutated HDF5 headers send libhdf5 into a loop no signal interrupts (see
    # test_a_real_file_that_hangs_libhdf5): a short budget keeps each such case to ~15 s.
    mp.setenv("COSMOSCOPE_FILE_TIMEOUT", "5")
    mp.setattr(workers, "HARD_GRACE", 2.0)
    pool = ExtractionPool(1)
    cat = cosmoscope.open_catalog(root / "fuzz.sqlite")
    yield {"seeds": _seed_files(root / "sim"), "pool": pool, "catalog": cat, "dir": root / "cases"}
    pool.close()
    cat.close()
    mp.undo()


MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, HEAD_REGION), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, HEAD_REGION),
              st.sampled_from([b"\x00", b"\xff", b"\x7f", b"\x80", b"=", b"'", b"/", b"\n", b" ", b"E", b"9"])),
    st.tuples(st.just("splice"), st.integers(0, HEAD_REGION), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("card"), st.integers(0, 400), st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                            max_size=70)),
    st.tuples(st.just("repeat"), st.integers(0, HEAD_REGION), st.integers(1, 4096), st.integers(1, 50)),
    st.tuples(st.just("cut"), st.integers(0, HEAD_REGION)),
)


def mutate(data: bytes, ops) -> bytes:
    """Apply mutations (offsets wrap around the header region of ``data``)."""
    buf = bytearray(data)
    for op in ops:
        if not buf:
            break
        where = op[1] % min(len(buf), HEAD_REGION)
        if op[0] == "flip":
            buf[where] ^= 1 << op[2]
        elif op[0] == "set":
            buf[where:where + 1] = op[2]
        elif op[0] == "splice":
            buf[where:where + len(op[2])] = op[2]
        elif op[0] == "card":  # a FITS card's value replaced by any printable text
            start = (op[1] * 80) % max(len(buf) - 80, 1)
            value = f"= {op[2]}".encode("ascii")[:70].ljust(70)
            buf[start + 8:start + 78] = value
        elif op[0] == "repeat":  # a slice repeated: long headers, duplicated structures
            piece = bytes(buf[where:where + op[2]])
            buf[where:where] = piece * op[3]
        elif op[0] == "cut":
            del buf[max(where, 1):]
    return bytes(buf)


def check_record(rec: dict) -> None:
    assert rec["extraction_status"] in ("ok", "partial", "error"), rec
    if rec["extraction_status"] == "error":
        assert isinstance(rec["extraction_error"], str) and len(rec["extraction_error"]) > 10, rec
    json.dumps(rec["mission_specific"])


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(pick=st.integers(0, 10_000), ops=st.lists(MUTATION, min_size=1, max_size=6))
def test_mutated_real_files_are_extracted_or_recorded_with_a_reason(fuzz, pick, ops):
    from cosmoscope.ingest.bulk import write_records

    seed = fuzz["seeds"][pick % len(fuzz["seeds"])]
    raw = seed.read_bytes()
    packed = raw[:2] == b"\x1f\x8b"
    data = mutate(gzip.decompress(raw) if packed else raw, ops)
    if packed:
        data = gzip.compress(data, mtime=0)
    case = fuzz["dir"] / f"{pick % len(fuzz['seeds']):03d}" / seed.name
    case.parent.mkdir(parents=True, exist_ok=True)
    case.write_bytes(data)
    st_ = case.stat()
    started = time.monotonic()
    records = list(fuzz["pool"].extract([FileEntry(str(case), st_.st_size, st_.st_mtime_ns)]))
    assert time.monotonic() - started < SECONDS_PER_FILE
    assert len(records) == 1
    check_record(records[0])
    cat = fuzz["catalog"]
    write_records(cat, records)  # what the ingest writes: storable, whatever the file held
    row = cat.get(dataset_id_for(case))
    assert row["extraction_status"] == records[0]["extraction_status"]
    assert row["extraction_error"] == records[0].get("extraction_error")


# -- structures built to be expensive ----------------------------------------------------------

def classic_netcdf_with_attributes(path: Path, n: int) -> None:
    """A netCDF-3 file whose header holds ``n`` global int attributes (24 bytes each)."""
    import numpy as np

    dt = np.dtype([("namelen", ">u4"), ("name", "S8"), ("type", ">u4"), ("count", ">u4"), ("value", ">i4")])
    attrs = np.zeros(n, dt)
    attrs["namelen"], attrs["type"], attrs["count"] = 8, 4, 1
    attrs["name"] = np.char.add(b"a", np.char.zfill(np.arange(n).astype("S7"), 7))
    attrs["value"] = np.arange(n)
    with open(path, "wb") as f:  # magic, numrecs, no dimensions, the attributes, no variables
        f.write(b"CDF\x01" + struct.pack(">III", 0, 0, 0) + struct.pack(">II", 0x0C, n))
        f.write(attrs.tobytes())
        f.write(struct.pack(">II", 0, 0))


def test_millions_of_netcdf_attributes_in_bounded_time_and_memory(tmp_path):
    path = tmp_path / "many_attributes.nc"
    classic_netcdf_with_attributes(path, 2_000_000)  # 48 MB of header
    code = textwrap.dedent("""
        import json, resource, sys, time
        from cosmoscope.extract import extract_file
        t = time.perf_counter()
        rec = extract_file(sys.argv[1])
        print(json.dumps({"seconds": time.perf_counter() - t, "status": rec["extraction_status"],
                          "limits": rec["mission_specific"].get("read_limits"), "flags": rec["quality_flags"],
                          "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["limits"] == ["/: 2,000 of 2,000,000 global attributes read"]
    assert "metadata_truncated" in got["flags"] and got["status"] in ("ok", "partial")
    assert got["seconds"] < 60  # about 2 s here; every attribute read took over ten minutes
    assert got["max_rss_kb"] < 2_000_000  # about 450 MB: the library holds the whole header


def test_hdf5_with_many_attributes_members_and_levels(tmp_path):
    import h5py

    from cosmoscope.extract import extract_file
    from cosmoscope.extract import hdf5

    path = tmp_path / "hostile.h5"
    with h5py.File(path, "w", libver="latest") as f:
        for i in range(5_000):
            f.attrs[f"root{i}"] = i
        f.attrs["mission"] = "COSMOS-7"
        for g in range(12):
            grp = f.create_group(f"g{g:02d}")
            for i in range(1_600):
                grp.attrs[f"a{i}"] = i
        wide = f.create_group("wide")
        for i in range(hdf5.MAX_MEMBERS + 500):
            wide.create_group(f"m{i}")
        deep = f
        for _ in range(300):
            deep = deep.create_group("d")
    started = time.monotonic()
    rec = extract_file(path)
    assert time.monotonic() - started < 30
    assert rec["extraction_status"] in ("ok", "partial")
    limits = rec["mission_specific"]["read_limits"]
    assert "/: 2,000 of 5,001 attributes read" in limits
    assert f"/wide: only the first {hdf5.MAX_MEMBERS:,} members looked at" in limits
    assert any("1,600 attributes read" in s for s in limits), "the per-file attribute budget runs out"
    assert "metadata_truncated" in rec["quality_flags"]


def fits_card(key: str, value: str = "") -> str:
    return (f"{key:<8}= {value:>20}" if value else key).ljust(80)


def test_huge_fits_headers_and_many_hdus(tmp_path):
    from cosmoscope.extract import extract_file
    from cosmoscope.extract.fits import MAX_HDUS, MAX_HEADER_BLOCKS

    base = [fits_card("SIMPLE", "T"), fits_card("BITPIX", "8"), fits_card("NAXIS", "0"),
            fits_card("TELESCOP", "'HELIOS-X'"), fits_card("EXTEND", "T")]
    filler = [fits_card(f"H{i:07d}", str(i)) for i in range(36 * (MAX_HEADER_BLOCKS - 1) - 1)]
    longest = "".join(base + filler[:36 * (MAX_HEADER_BLOCKS - 1) - len(base)] + [fits_card("END")])
    (tmp_path / "longest.fits").write_bytes(longest.ljust(-(-len(longest) // 2880) * 2880).encode())
    endless = "".join(base + filler * 2)
    (tmp_path / "endless.fits").write_bytes(endless[:2880 * (MAX_HEADER_BLOCKS + 50)].encode())
    ext = "".join([fits_card("XTENSION", "'IMAGE   '"), fits_card("BITPIX", "8"), fits_card("NAXIS", "0"),
                   fits_card("PCOUNT", "0"), fits_card("GCOUNT", "1"), fits_card("END")]).ljust(2880)
    primary = "".join(base + [fits_card("END")]).ljust(2880)
    (tmp_path / "many_hdus.fits").write_bytes((primary + ext * (MAX_HDUS + 200)).encode())
    started = time.monotonic()
    longest_rec = extract_file(tmp_path / "longest.fits")
    endless_rec = extract_file(tmp_path / "endless.fits")
    many = extract_file(tmp_path / "many_hdus.fits")
    assert time.monotonic() - started < 60
    assert longest_rec["extraction_status"] != "error" and longest_rec["satellite_name"] == "HELIOS-X"
    assert "header of HDU 0 has no END card" in endless_rec["extraction_error"]
    assert many["extraction_status"] != "error"
    assert f"only the first {MAX_HDUS} HDUs were read" in json.dumps(many["mission_specific"])


# -- readers that take too long ----------------------------------------------------------------

def gzip_fits_bomb(path: Path, data_bytes: int) -> None:
    """A gzip FITS whose header declares ``data_bytes`` of zeros, compressed about 1000:1:
    skipping to the end means inflating all of it."""
    header = "".join([fits_card("SIMPLE", "T"), fits_card("BITPIX", "8"), fits_card("NAXIS", "1"),
                      fits_card("NAXIS1", str(data_bytes)), fits_card("END")]).ljust(2880).encode()
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(1 << 24)
    with open(path, "wb") as f:
        f.write(packer.compress(header))
        for _ in range(data_bytes // len(zeros)):
            f.write(packer.compress(zeros))
        f.write(packer.flush())


def test_a_file_slower_than_its_budget_becomes_an_error_row(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    tree.mkdir()
    gzip_fits_bomb(tree / "bomb.fits.gz", 1_500_000_000)  # about 2 s to inflate, ~6 MB on disk
    shutil.copy(DATA / "checksum_false.fits", tree / "fine.fits")
    monkeypatch.setenv("COSMOSCOPE_FILE_TIMEOUT", "0.3")
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        summary = cat.ingest(tree, workers=1, progress=False)
        rows = {r["file_name"]: r for r in cat.observations().collect().iter_rows(named=True)}
    assert summary.new == 2 and summary.failures == {"reading took too long": 1}
    assert rows["bomb.fits.gz"]["extraction_error"].startswith("reading took too long: given up after 0.3 s")
    assert "read_timeout" in rows["bomb.fits.gz"]["quality_flags"]
    assert rows["fine.fits"]["extraction_status"] == "ok"


STUCK_PLUGIN = textwrap.dedent('''
    """A test plugin whose reader hangs where no signal reaches it, as a C library in a loop would."""
    class StuckExtractor:
        name = "stuck"
        priority = 100
        suffixes = (".stuck",)
        def can_read(self, path, head):
            return head.startswith(b"STUCK")
        def extract(self, path):
            import signal, time
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
''')


def test_a_worker_stuck_past_its_budget_is_killed_and_the_run_goes_on(tmp_path, monkeypatch):
    from cosmoscope.extract import registry
    from cosmoscope.ingest import workers

    plugin = tmp_path / "plugin"
    (plugin / "stuck_plugin").mkdir(parents=True)
    (plugin / "stuck_plugin" / "__init__.py").write_text(STUCK_PLUGIN)
    dist = plugin / "stuck_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: stuck-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cosmoscope.extractors]\nstuck = stuck_plugin:StuckExtractor\n")
    monkeypatch.syspath_prepend(str(plugin))  # spawned workers inherit sys.path
    monkeypatch.setenv("COSMOSCOPE_FILE_TIMEOUT", "0.5")
    monkeypatch.setattr(workers, "HARD_GRACE", 1.0)
    registry.refresh_extractors()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hang.stuck").write_bytes(b"STUCK" + bytes(100))
    for i in range(20):
        shutil.copy(DATA / "checksum_false.fits", tree / f"fine{i:02d}.fits")
    started = time.monotonic()
    try:
        with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
            summary = cat.ingest(tree, workers=2, progress=False)
            rows = cat.observations().collect()
    finally:
        registry.refresh_extractors()
    assert time.monotonic() - started < 120
    assert rows.height == 21 and summary.new == 21
    hang = rows.filter(pl.col("file_name") == "hang.stuck").row(0, named=True)
    assert hang["extraction_error"].startswith("reading took too long")
    assert rows.filter(pl.col("extraction_status") == "ok").height == 20


def test_a_real_file_that_hangs_libhdf5_is_given_up(tmp_path, monkeypatch):
    """Found by the fuzz: a simulated COSMOS-7 l0 file with 2 kB of its header repeated nine
    times makes h5py's attribute read loop inside libhdf5, where SIGALRM cannot reach it."""
    from cosmoscope.ingest import workers
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "sim", missions=["COSMOS-7"], files=6, days=1, seed=5, progress=False, workers=0)
    l0 = next(Path(p) for p in sim.manifest["path"] if p.endswith(".h5"))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "looping_l0.h5").write_bytes(mutate(l0.read_bytes(), [("repeat", 192, 2065, 9)]))
    for p in sim.manifest["path"]:
        shutil.copy(p, tree)
    monkeypatch.setenv("COSMOSCOPE_FILE_TIMEOUT", "2")
    monkeypatch.setattr(workers, "HARD_GRACE", 1.0)
    started = time.monotonic()
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        summary = cat.ingest(tree, workers=1, progress=False)
        rows = {r["file_name"]: r for r in cat.observations().collect().iter_rows(named=True)}
    assert time.monotonic() - started < 120
    assert summary.new == 7 and len(rows) == 7
    assert rows["looping_l0.h5"]["extraction_error"].startswith("reading took too long")
    assert all(r["extraction_status"] != "error" for name, r in rows.items() if name != "looping_l0.h5")


# -- file names --------------------------------------------------------------------------------

ODD_NAMES = ["new\nline.fits", "tab\there.fits", "esc\x1b[31mred.fits", "cr\rret.fits", "bell\x07.fits",
             "del\x7f.fits", " lead space.fits", "quote'\"s.fits", "back\\slash.fits", "uni-\u00e9\u2603.fits"]
NOT_UTF8 = os.fsdecode(b"bad-\xff\xfe-name.fits")


def test_file_names_with_control_characters(tmp_path):
    tree = tmp_path / "tree"
    (tree / "dir\nwith\nnewlines").mkdir(parents=True)
    src = DATA / "checksum_false.fits"
    names = ODD_NAMES + [NOT_UTF8]
    for name in names:
        shutil.copy(src, tree / name)
    shutil.copy(src, tree / "dir\nwith\nnewlines" / "x.fits")
    paths = [str(tree / n) for n in names] + [str(tree / "dir\nwith\nnewlines" / "x.fits")]
    url = str(tmp_path / "c.sqlite")
    cli = [sys.executable, "-m", "cosmoscope", "--catalog", url]
    out = subprocess.run([*cli, "-q", "ingest", str(tree), "-j", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with cosmoscope.open_catalog(url) as cat:
        rows = cat.observations().collect()
        assert rows.height == len(paths)
        assert set(rows["dataset_id"]) == {dataset_id_for(p) for p in paths}
        assert (rows["extraction_status"] == "ok").all()
        # validation and pre-flight find every file where it is, non-UTF-8 name included
        report = cat.validate(progress=False)
        assert not any(k == "missing" for k, _ in report.found), report.found
        verdict = cat.preflight(cat.observations(), min_quality=None)
        assert not any("file_missing" in d.reasons for d in verdict.datasets)
        # a watcher meets the same names as they arrive
        late = dataset_id_for(tree / "late\n\x1b[0m.fits")
        with cat.watch(tree, workers=0, settle=0.2) as watcher:
            assert watcher.wait_idle(60)
            shutil.copy(src, tree / "late\n\x1b[0m.fits")
            deadline = time.monotonic() + 120  # until the watcher has cataloged it, however slowly
            while not cat.lookup([late]).height:
                assert time.monotonic() < deadline, "the watcher did not catalog the new file"
                time.sleep(0.1)
        assert cat.get(late)["extraction_status"] == "ok"
    table = subprocess.run([*cli, "search", "--columns", "file_name"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "300"})
    assert table.returncode == 0, table.stderr
    assert not (set(table.stdout) & (CONTROL - {"\n"})), "control characters reach the terminal"
    assert "new\\nline.fits" in table.stdout and "esc\\x1b[31mred.fits" in table.stdout
    csv = subprocess.run([*cli, "search", "--columns", "file_path", "--format", "csv"], capture_output=True,
                         timeout=120)
    import io

    got = set(pl.read_csv(io.BytesIO(csv.stdout))["file_path"])
    assert {p for p in paths if p != str(tree / NOT_UTF8)} <= got  # machine-readable output keeps them exact
