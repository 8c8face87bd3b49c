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
    assert "without an END card" in endless_rec["extraction_error"]
    assert many["extraction_status"] != "error"
    assert f"only the first {MAX_HDUS} HDUs were read" in json.dumps(many["mission_specific"])
