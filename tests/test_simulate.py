"""The simulator: every file opens in its own library and carries the ground truth it reports."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cosmoscope.errors import InvalidArgumentError, UnknownNameError
from cosmoscope.simulate import (
    FAULT_KINDS,
    MISSIONS,
    iter_file_specs,
    parse_size,
    simulate,
    write_file,
    write_slowly,
)

UTC = timezone.utc
TT_MINUS_UTC = timedelta(seconds=69.184)
# Seeds chosen so that the small trees below hold every variant the tests look at (asserted in
# test_tree_has_every_variant, so a change of the plan cannot silently thin the tests out).
TREE = dict(files=120, days=3, seed=5)
FAULTY = dict(files=80, days=2, seed=11, faults=0.5)

# netCDF4 can crash the interpreter on odd HDF5 files: read .nc files in a child process.
_NC_READER = r"""
import json, sys, netCDF4
out = {}
for path in sys.argv[1:]:
    try:
        with netCDF4.Dataset(path) as ds:
            attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
            attrs = {k: (v.item() if hasattr(v, "item") and getattr(v, "ndim", 1) == 0 else v)
                     for k, v in attrs.items()}
            shapes = {k: list(v.shape) for k, v in ds.variables.items()}
            first = {k: float(v[(0,) * v.ndim]) for k, v in ds.variables.items()}
        out[path] = {"ok": True, "attrs": attrs, "shapes": shapes, "first": first}
    except Exception as exc:
        out[path] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def read_netcdf(paths) -> dict:
    proc = subprocess.run([sys.executable, "-c", _NC_READER, *map(str, paths)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("tree"), progress=False, **TREE)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("faulty"), progress=False, **FAULTY)


def rows(result, **where):
    return [r for r in result.manifest.iter_rows(named=True)
            if all(r[k] == v for k, v in where.items())]


def fits_time(header) -> datetime:
    text = header["DATE-OBS"]
    if "/" in text:  # legacy dd/mm/yy (this century) with the time in TIME-OBS
        day, month, year = (int(x) for x in text.split("/"))
        hms = [int(x) for x in header["TIME-OBS"].split(":")]
        return datetime(2000 + year, month, day, *hms, tzinfo=UTC)
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def packed(text) -> dict:
    text = text.decode() if isinstance(text, bytes) else text
    return dict(item.split("=", 1) for item in text.split(";") if item)


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the tree as planned --------------------------------------------------------------------


def test_files_split_across_missions_and_days(tree):
    m = tree.manifest
    assert tree.total_files == m.height == TREE["files"]
    assert set(m["mission"]) == set(MISSIONS)
    # AURORA-2 writes daily files: 2 instruments x 3 levels x 3 days; the rest is shared out.
    assert len(rows(tree, mission="AURORA-2")) == 18
    counts = [len(rows(tree, mission=n)) for n in ("COSMOS-7", "HELIOS-X", "LYRA")]
    assert max(counts) - min(counts) <= 1
    days = {r["start"].date().isoformat() for r in m.iter_rows(named=True)}
    assert days == {"2026-11-25", "2026-11-26", "2026-11-27"}
    assert (m["end"] > m["start"]).all()
    assert len(set(m["path"])) == m.height
    assert tree.files == {
        mission: dict(m.filter(m["mission"] == mission)["file_format"].value_counts().iter_rows())
        for mission in MISSIONS}


def test_tree_has_every_variant(tree):
    m = tree.manifest
    assert {(r["mission"], r["calib_level"]) for r in m.iter_rows(named=True)} == {
        (name, level) for name in MISSIONS for level in (1, 2, 3)}
    assert set(m["compression"].drop_nulls()) == {"gzip", "tile"}
    assert any(r["path"].endswith(".fits.gz") for r in rows(tree, mission="HELIOS-X"))
    assert tree.sidecars >= 1 and m["sidecar"].drop_nulls().len() == tree.sidecars
    assert {r["version"] for r in rows(tree, mission="COSMOS-7")} == {"01", "02"}
    from astropy.io import fits

    legacy = [r for r in rows(tree, product="raw") if "/" in fits.getval(r["path"], "DATE-OBS")]
    assert legacy and len(legacy) < len(rows(tree, product="raw"))


def test_iter_file_specs_is_the_plan_simulate_wrote(tree):
    planned = [s.relpath for s in iter_file_specs(**TREE)]
    assert planned == tree.manifest["relpath"].to_list()
    written = {str(p.relative_to(tree.root)) for p in tree.root.rglob("*") if p.is_file()}
    sidecars = {str(Path(s).relative_to(tree.root)) for s in tree.manifest["sidecar"].drop_nulls()}
    assert written == set(planned) | sidecars | {"manifest.parquet"}


def test_manifest_parquet_matches_the_result(tree):
    import polars as pl

    assert pl.read_parquet(tree.manifest_path).equals(tree.manifest)


def test_lineage_edges_point_to_files_that_exist(tree):
    from cosmoscope.schema import RelationshipType

    level = {r["path"]: r["calib_level"] for r in tree.manifest.iter_rows(named=True)}
    assert len(tree.edges) == tree.lineage.height > 0
    for parent, child, kind in tree.edges:
        assert Path(parent).is_file() and Path(child).is_file()
        assert level[parent] < level[child]
        assert kind in {RelationshipType.RAW_TO_CALIBRATED, RelationshipType.CALIBRATED_TO_DERIVED}
        assert kind == ("raw->calibrated" if level[parent] == 1 else "calibrated->derived")
    children = {c for _, c, _ in tree.edges}
    for r in tree.manifest.iter_rows(named=True):
        assert (r["path"] in children) == (r["calib_level"] > 1), r["relpath"]


# --- every file opens in its library and carries the ground truth ---------------------------


def test_fits_files_open_verify_and_match(tree):
    import astropy.units as u
    from astropy.coordinates import FK5, SkyCoord
    from astropy.io import fits

    checked = 0
    for r in rows(tree, file_format="fits"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a bad checksum or a non-standard card would warn
            with fits.open(r["path"], checksum=True) as hdul:
                hdul.verify("exception")
                primary = hdul[0].header
                meta = primary if r["product"] == "raw" else hdul[1].header
                data = hdul[0 if r["product"] == "raw" else 1].data
                compressed = isinstance(hdul[-1], fits.CompImageHDU)
        assert data is not None and data.size > 0
        assert meta["TELESCOP"] == r["satellite"] and meta["INSTRUME"] == r["instrument"]
        assert meta["OBJECT"] == r["target"]
        inputs = [Path(p).name for p in r["parents"]]
        if r["mission"] == "HELIOS-X":
            # Times are TT, as TIMESYS says: 69.184 s ahead of the UTC ground truth.
            assert meta["TIMESYS"] == "TT"
            assert fits_time(meta) - TT_MINUS_UTC == r["start"]
            assert iso(meta["DATE-END"] + "Z") - TT_MINUS_UTC == r["end"]
            epoch = datetime(1858, 11, 17, tzinfo=UTC) + timedelta(days=meta["MJDREF"])
            assert epoch + timedelta(seconds=meta["TSTART"]) - TT_MINUS_UTC == r["start"]
            assert epoch + timedelta(seconds=meta["TSTOP"]) - TT_MINUS_UTC == r["end"]
            assert primary["NAXIS"] == 0 and "TELESCOP" not in primary
            assert meta["EXPOSURE"] == r["exposure"]
            assert (meta["RA_TARG"], meta["DEC_TARG"]) == (r["ra"], r["dec"])
            assert [meta[k] for k in ("PARENT",) if k in meta] == inputs
            assert meta["EXTNAME"] == {"evt1": "EVENTS", "evt2": "EVENTS", "img": "IMAGE",
                                       "spec": "SPECTRUM"}[r["product"]]
        else:
            assert fits_time(meta) == r["start"]
            assert meta["EXPTIME"] == r["exposure"]
            if meta["RADESYS"] == "FK5":  # legacy frames: FK5 J2000, ~20 mas from the ICRS truth
                fk5 = FK5(equinox="J2000")
                icrs = SkyCoord(meta["CRVAL1"] * u.deg, meta["CRVAL2"] * u.deg, frame=fk5).icrs
                assert icrs.ra.deg == pytest.approx(r["ra"], abs=1e-9)
                assert icrs.dec.deg == pytest.approx(r["dec"], abs=1e-9)
                assert (meta["CRVAL1"], meta["CRVAL2"]) != (r["ra"], r["dec"])
            else:
                assert (meta["RADESYS"], meta["CRVAL1"], meta["CRVAL2"]) == ("ICRS", r["ra"], r["dec"])
            if r["product"] == "raw":
                assert "DATE-END" not in meta
            else:  # a stack spans exposures and readouts: its end is not start + EXPTIME
                assert iso(meta["DATE-END"] + "Z") == r["end"]
            assert meta["HIERARCH LYRA SEEING FWHM"] > 0
            assert [v for k, v in meta.items() if k.startswith("IMCMB")] == inputs
            if r["product"] != "raw":
                assert compressed
                assert meta["IMAGETYP"] == ("STACK" if r["product"] == "stack" else "REDUCED")
                assert meta["NCOMBINE"] == len(inputs)
        checked += 1
    assert checked == len(rows(tree, mission="HELIOS-X")) + len(rows(tree, mission="LYRA"))


def test_hdf5_files_open_and_match(tree):
    import h5py

    l0 = rows(tree, file_format="hdf5")
    assert l0
    for r in l0:
        with h5py.File(r["path"], "r") as f:
            assert (f.attrs["mission"], f.attrs["spacecraft"], f.attrs["instrument"]) == (
                r["mission"], r["satellite"], r["instrument"])
            head = packed(f["Metadata"].attrs["header"])
            name = "frames" if r["instrument"] == "WFI" else "readouts"
            assert f["Data"][name].shape[0] == f["Data/frame_time"].shape[0] >= 4
            assert f["Data"][name][0].max() > 0
        assert iso(head["OBS_START"]) == r["start"] and iso(head["OBS_END"]) == r["end"]
        assert head["TARGET"] == r["target"]
        assert (float(head["RA"]), float(head["DEC"])) == (r["ra"], r["dec"])
        assert float(head["EXPOSURE"]) == r["exposure"]


def test_netcdf_files_open_and_match(tree):
    nc = rows(tree, file_format="netcdf")
    assert {r["product"] for r in nc} == {"l1", "l2"}
    found = read_netcdf([r["path"] for r in nc])
    for r in nc:
        got = found[r["path"]]
        assert got["ok"], got
        a = got["attrs"]
        assert (a["project"], a["platform"], a["instrument"]) == ("COSMOS-7", r["satellite"], r["instrument"])
        assert a["processing_level"] == r["product"].upper()
        assert iso(a["time_coverage_start"]) == r["start"] and iso(a["time_coverage_end"]) == r["end"]
        assert (a["target_name"], a["ra_targ"], a["dec_targ"]) == (r["target"], r["ra"], r["dec"])
        assert a["product_version"] == r["version"]
        assert a["source"].split(",") == [Path(p).name for p in r["parents"]]


def test_csv_and_ecsv_files_open_and_match(tree):
    from astropy.table import Table

    for r in rows(tree, mission="AURORA-2"):
        path = Path(r["path"])
        if path.suffix == ".ecsv":
            table = Table.read(path, format="ascii.ecsv")
            meta = {k: str(v) for k, v in table.meta.items()}
            assert len(table) == 24
        else:
            lines = path.read_text().splitlines()
            comments = [line[2:].split(": ", 1) for line in lines if line.startswith("# ")]
            body = list(csv.reader(line for line in lines if not line.startswith("#")))
            assert body[0][0] == "time" and len({len(row) for row in body}) == 1 and len(body) > 100
            if r["sidecar"]:
                assert not comments
                meta = json.loads(Path(r["sidecar"]).read_text())
            else:
                meta = dict(comments)
        assert (meta["mission"], meta["spacecraft"], meta["instrument"]) == (
            "AURORA-2", r["satellite"], r["instrument"])
        assert iso(meta["start_time"]) == r["start"] and iso(meta["end_time"]) == r["end"]
        assert meta["processing_level"] == r["product"].upper()
        assert meta.get("source", "").split(",") == ([Path(p).name for p in r["parents"]] or [""])


# --- determinism, sparse files, faults ------------------------------------------------------


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.parquet"}


def test_same_seed_same_bytes_serial_or_in_a_pool(tmp_path):
    args = dict(files=48, days=2, seed=3, faults=0.2, progress=False)
    a = simulate(tmp_path / "a", **args)
    b = simulate(tmp_path / "b", workers=2, **args)  # a process pool must not change a byte
    c = simulate(tmp_path / "c", **{**args, "seed": 4})
    assert digest(a.root) == digest(b.root)
    assert a.manifest.drop("path", "parents", "sidecar").equals(b.manifest.drop("path", "parents", "sidecar"))
    assert digest(a.root) != digest(c.root)


def test_sparse_files_are_large_cheap_and_still_open(tmp_path):
    import h5py
    from astropy.io import fits

    target = 40_000_000
    result = simulate(tmp_path / "sparse", files=24, days=1, seed=2, sparse_bytes=target, progress=False)
    assert result.apparent_bytes > 10 * target and result.disk_bytes < result.apparent_bytes / 100
    nc = []
    for r in result.manifest.iter_rows(named=True):
        st = os.stat(r["path"])
        assert (st.st_size, st.st_blocks * 512) == (r["apparent_bytes"], r["disk_bytes"])
        if r["file_format"] == "csv" or r["compression"]:
            assert st.st_size < target / 10  # compressed files and CSV stay small
        else:
            assert 0.85 * target < st.st_size < 1.25 * target, r["relpath"]
            assert st.st_blocks * 512 < 200_000, r["relpath"]
        if r["file_format"] == "fits":
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with fits.open(r["path"], checksum=True) as hdul:  # checksums hold over the holes
                    hdu = hdul[0 if r["product"] == "raw" else 1]
                    assert hdu.header.get("OBJECT") == r["target"]
                    if r["compression"] == "tile":
                        assert hdu.shape[0] * hdu.shape[1] * 4 > 0.85 * target
        elif r["file_format"] == "hdf5":
            with h5py.File(r["path"], "r") as f:
                dset = f["Data/frames" if r["instrument"] == "WFI" else "Data/readouts"]
                assert dset.nbytes > 0.8 * target and dset[-1].max() == 0 and dset[0].max() > 0
                assert packed(f["Metadata"].attrs["header"])["TARGET"] == r["target"]
        elif r["file_format"] == "netcdf":
            nc.append(r)
    found = read_netcdf([r["path"] for r in nc])
    for r in nc:
        got = found[r["path"]]
        assert got["ok"] and got["attrs"]["target_name"] == r["target"]
        assert 4 * max(math.prod(shape) for shape in got["shapes"].values()) > 0.4 * target


def test_faults_break_files_as_recorded(faulty, tmp_path):
    import h5py
    from astropy.io import fits

    broken = {r["path"]: r for r in faulty.manifest.iter_rows(named=True) if r["fault"]}
    assert set(faulty.faults) == set(FAULT_KINDS)
    assert sum(faulty.faults.values()) == len(broken)
    # The same files without their faults, to compare against.
    clean_root = tmp_path / "clean"
    specs = {s.relpath: s for s in iter_file_specs(**FAULTY)}
    nc = []
    for path, r in broken.items():
        kind, p = r["fault"], Path(path)
        spec = specs[r["relpath"]]
        assert spec.fault == kind and r["fault_detail"] == spec.fault_detail
        clean = write_file(dataclasses.replace(spec, fault=None), clean_root)
        if kind == "zero_bytes":
            assert p.stat().st_size == 0
            if r["file_format"] == "fits":
                with pytest.raises(OSError, match="Empty or corrupt"):
                    fits.open(p)
        elif kind == "truncated":
            full = clean.stat().st_size
            assert p.stat().st_size == int(full * spec.extra["cut"]) < full
            assert p.read_bytes() == clean.read_bytes()[: p.stat().st_size]
            if r["file_format"] == "hdf5":
                with pytest.raises(OSError, match="truncated"):
                    h5py.File(p, "r")
        elif kind == "wrong_format":
            assert p.read_text().startswith("<!DOCTYPE html>")
            if r["file_format"] == "fits":
                with pytest.raises(OSError):
                    fits.open(p)
            elif r["file_format"] == "hdf5":
                with pytest.raises(OSError):
                    h5py.File(p, "r")
        elif kind == "bad_checksum":
            with pytest.warns(UserWarning, match="Checksum verification failed"):
                with fits.open(p, checksum=True) as hdul:
                    hdul.readall()  # loading an HDU verifies it
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with fits.open(clean, checksum=True) as hdul:  # the unbroken file verifies
                    hdul.readall()
        elif kind == "missing_keywords":
            missing = r["fault_detail"].removeprefix("missing ").split(", ")
            if r["file_format"] == "fits":
                with fits.open(p) as hdul:
                    meta = hdul[0].header if r["product"] == "raw" else hdul[1].header
                    assert not set(missing) & set(meta) and meta["TELESCOP"] == r["satellite"]
            elif r["file_format"] == "hdf5":
                with h5py.File(p, "r") as f:
                    head = packed(f["Metadata"].attrs["header"])
                    assert "instrument" not in f.attrs and "OBS_START" not in head
            elif r["file_format"] == "csv":
                text = p.read_text() + (Path(r["sidecar"]).read_text() if r["sidecar"] else "")
                assert "instrument" not in text and "start_time" not in text and "AURORA-2" in text
            else:
                nc.append((path, missing))
    found = read_netcdf([path for path, _ in nc])
    for path, missing in nc:
        assert found[path]["ok"] and not set(missing) & set(found[path]["attrs"])
    assert nc, "the faulty tree should hold a netCDF file with missing attributes"
    wrong_nc = [p for p, r in broken.items() if r["fault"] in ("wrong_format", "truncated", "zero_bytes")
                and r["file_format"] == "netcdf"]
    for path in wrong_nc:  # one child each: a crash must not hide the others
        assert not read_netcdf([path])[path]["ok"]


# --- building blocks for trees that grow ----------------------------------------------------


def test_write_slowly_partial_and_atomic_give_the_same_file(tmp_path):
    spec = next(s for s in iter_file_specs(["HELIOS-X"], files=8, days=1, seed=1,
                                           sparse_bytes=5_000_000) if not s.compression)
    whole = write_file(spec, tmp_path / "whole")
    slow = write_slowly(spec, tmp_path / "slow", chunk_bytes=64 * 1024, delay=0.0)
    atomic = write_file(spec, tmp_path / "atomic", atomic=True)
    assert slow.read_bytes() == whole.read_bytes() == atomic.read_bytes()
    assert os.stat(slow).st_blocks * 512 < 200_000  # holes stayed holes
    assert not list((tmp_path / "atomic").rglob(".*.part"))
    part = write_file(spec, tmp_path / "part", partial=True)
    assert part.stat().st_size == whole.stat().st_size // 2
    assert part.read_bytes() == whole.read_bytes()[: part.stat().st_size]
    with pytest.raises(InvalidArgumentError, match="chunk_bytes"):
        write_slowly(spec, tmp_path / "x", chunk_bytes=0)


@pytest.mark.parametrize("chunk", [1000, 4095, 70_001])
def test_write_slowly_with_chunks_not_aligned_to_pages_gives_the_same_file(tmp_path, chunk):
    specs = [s for s in iter_file_specs(["HELIOS-X", "COSMOS-7"], files=6, days=1, seed=2) if not s.compression][:3]
    for i, spec in enumerate(specs):
        whole = write_file(spec, tmp_path / f"whole{i}")
        slow = write_slowly(spec, tmp_path / f"slow{i}", chunk_bytes=chunk, delay=0.0)
        assert slow.read_bytes() == whole.read_bytes(), spec


def test_generate_one_is_write_file():
    from cosmoscope.simulate import generate_one

    assert generate_one is write_file


def test_write_slowly_puts_a_sidecar_in_place_first(tmp_path):
    spec = next(s for s in iter_file_specs(["AURORA-2"], files=18, days=3, seed=TREE["seed"]) if s.sidecar)
    path = write_slowly(spec, tmp_path, chunk_bytes=4096, delay=0.0)
    assert (tmp_path / spec.sidecar).is_file() and path.read_text().startswith("time,")


# --- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"files": 0}, "files must be"), ({"days": 0}, "days must be"), ({"faults": 1.5}, "faults must be"),
    ({"sparse_bytes": -1}, "sparse_bytes must be"), ({"start": "next tuesday"}, "YYYY-MM-DD"),
    ({"missions": []}, "no mission"),
    ({"missions": ["COSMOS-7"], "files": 300_000, "days": 1}, "more days"),
])
def test_bad_arguments_say_why(tmp_path, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        simulate(tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_unknown_mission_lists_the_valid_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="LYRA") as info:
        simulate(tmp_path, missions=["COSMOS-7", "HUBBLE"], progress=False)
    assert "HUBBLE" in str(info.value) and all(name in str(info.value) for name in MISSIONS)


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidArgumentError, match="is a file"):
        simulate(tmp_path / "f", files=4, progress=False)


def test_aurora_alone_cannot_fill_many_files_and_says_so(tmp_path):
    with pytest.warns(UserWarning, match="only 6 of 50 files"):
        result = simulate(tmp_path, missions=["aurora-2"], files=50, days=1, progress=False)
    assert result.total_files == 6 and result.notes


def test_parse_size():
    assert parse_size("500MB") == 500_000_000 and parse_size("1.5GB") == 1_500_000_000
    assert parse_size("64MiB") == 64 * 2**20 and parse_size("2e9") == 2_000_000_000
    assert parse_size(" 12 kb ") == 12_000 and parse_size(4096) == 4096
    for bad in ("", "MB", "5XB", "-3MB", "0"):
        with pytest.raises(InvalidArgumentError):
            parse_size(bad)


def test_import_stays_light():
    code = ("import sys, cosmoscope.simulate as s; s.MISSIONS; list(s.iter_file_specs(files=8));"
            "print(sorted(m for m in ('h5py', 'netCDF4', 'astropy', 'polars') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- command line ---------------------------------------------------------------------------


def cli(argv, common=None):
    from cosmoscope.cli import simulate_cmd

    parser = argparse.ArgumentParser(prog="cosmoscope")
    simulate_cmd.register(parser.add_subparsers(dest="command"), *([common] if common else []))
    args = parser.parse_args(["simulate", *argv])
    return args.func(args)


def test_cli_writes_a_tree_and_summarises_it(tmp_path, capsys):
    assert cli([str(tmp_path), "--missions", "lyra", "HELIOS-X", "--files", "30", "--days", "2",
                "--seed", "9", "--faults", "0.1", "--sparse-bytes", "2MB", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wrote 30 files" in out and "LYRA" in out and "manifest.parquet" in out
    import polars as pl

    manifest = pl.read_parquet(tmp_path / "manifest.parquet")
    assert set(manifest["mission"]) == {"LYRA", "HELIOS-X"} and manifest.height == 30
    assert manifest.filter(pl.col("compression").is_null())["apparent_bytes"].min() > 1_500_000


def test_cli_accepts_the_shared_options_parent(tmp_path, capsys):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    assert cli([str(tmp_path), "--files", "6", "--days", "1", "-q"], common=common) == 0
    assert "wrote 6 files" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--missions", "HUBBLE"], "valid missions: COSMOS-7, HELIOS-X, LYRA, AURORA-2"),
    (["--files", "0"], "must be at least 1"), (["--files", "many"], "could not read 'many' as a file count"),
    (["--sparse-bytes", "lots"], "500MB"), (["--faults", "2"], "must be between 0 and 1"),
    (["--start", "25/11/2026"], "YYYY-MM-DD"), ([], "required: DIR"),
])
def test_cli_bad_arguments_exit_2_with_the_reason(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        cli([str(tmp_path), *argv] if argv else [])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().splitlines()[-1].startswith("cosmoscope simulate: error:")


def test_cli_as_a_module_and_help_teaches(tmp_path):
    run = [sys.executable, "-m", "cosmoscope.cli.simulate_cmd"]
    help_text = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True).stdout
    assert "cosmoscope simulate /tmp/sky" in help_text and "--sparse-bytes" in help_text
    assert all(name in help_text for name in MISSIONS)
    proc = subprocess.run([*run, str(tmp_path / "t"), "--missions", "COSMOS-7", "--files", "300000",
                           "--days", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and "more days" in proc.stderr and not (tmp_path / "t").exists()


def test_quirks_lower_quality_as_recorded_and_change_nothing_else(tmp_path):
    import polars as pl

    import cosmoscope
    from cosmoscope.simulate.history import play_history

    plain = list(iter_file_specs(files=80, days=2, seed=4))
    quirky = list(iter_file_specs(files=80, days=2, seed=4, quirks=0.5))
    assert [s.relpath for s in plain] == [s.relpath for s in quirky]  # the same tree
    changed = [q for q in quirky if q.quirks]
    assert 0 < len(changed) < len(quirky)
    assert all(dataclasses.replace(p, quirks=q.quirks, exposure=q.exposure) == q
               for p, q in zip(plain, quirky) if q.quirks)

    sim = simulate(tmp_path / "sky", files=80, days=2, seed=4, quirks=0.5, progress=False, workers=0)
    with cosmoscope.open_catalog(f"sqlite://{tmp_path}/c.sqlite") as cat:
        cat.ingest([sim.root], workers=0, progress=False)
        rows = cat.observations().select("file_path", "data_quality_score", "quality_flags", "target_object",
                                         "processing_status").collect()
        both = rows.join(sim.manifest.select(pl.col("path").alias("file_path"), "quirks", "target"), on="file_path")
        imperfect = both.filter(pl.col("quirks").is_not_null())
        clean = simulate(tmp_path / "clean", files=80, days=2, seed=4, progress=False, workers=0)
        cat.ingest([clean.root], workers=0, progress=False)
        scores = dict(cat.observations().select("file_path", "data_quality_score").collect().iter_rows())
        for path in imperfect["file_path"]:  # every imperfection costs the file something
            assert scores[path] < scores[path.replace(str(sim.root), str(clean.root))], path
        no_target = imperfect.filter(pl.col("quirks").str.contains("no_target"))
        assert no_target.height and no_target["target_object"].null_count() == no_target.height
        assert (no_target["target"].null_count() == no_target.height)  # the ground truth says so too
        for quirk, flag in (("long_exposure", "exposure_exceeds_duration"),
                            ("garbled_end", "time_unparseable:observation_end")):
            flagged = imperfect.filter(pl.col("quirks") == quirk)["quality_flags"]  # that one alone
            assert flagged.len() and all(flag in f for f in flagged), quirk

        played = play_history(cat)
        statuses = dict(cat.observations().group_by("processing_status").len().collect().iter_rows())
        assert {"raw", "processed", "queued", "failed", "archived"} <= set(statuses)
        assert statuses["queued"] == played["queued"] > 0 and statuses["failed"] == played["failed"] > 0
        failed = cat.search(status="failed").select("dataset_id").head(1).collect()["dataset_id"][0]
        assert "calibration failed" in cat.history(failed)["details"].to_list()[-1]
