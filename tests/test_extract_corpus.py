"""Extraction of real mission files, checked against the corpus manifest.

``tests/data`` holds the licence-compatible subset of ../shared/corpus with its manifest rows;
the whole corpus is read when it is present (skipped only when the directory is absent), in a
subprocess, so that a reader crashing the interpreter would fail the test instead of ending the
test run.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest

from cosmoscope.extract import extract_file
from cosmoscope.extract.timeparse import parse_any, parse_time_of_day

DATA = os.path.join(os.path.dirname(__file__), "data")
CORPUS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus"))
#: TT - UTC is about 65 s for these files: headers in TT are converted, the manifest is not.
TT_SLACK = timedelta(seconds=70)
#: Manifest sources cosmoscope deliberately does not use for these fields: free text (CF
#: ``source``, ``title``), product short names, ISO ``identifier`` elements, the FITS ORIGIN,
#: AVHRR ``dsp_*`` ingest attributes, and model run times (``model_*``), which are not observations.
NOT_USED = re.compile(r"^@(source|title|ShortName|project|dsp_\w+|model_\w+)$|identifier$|^ORIGIN@")
_ENTRY = re.compile(r"\s*(.*?)\s+\(([^()]*)\)\s*$")


def manifest(path: str) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["relative_path"]: row for row in csv.DictReader(fh, delimiter="\t")}


def entries(cell: str) -> list[tuple[str, str]]:
    """``"CHANDRA (TELESCOP@0); AXAF (MISSION@0)"`` -> [("CHANDRA", "TELESCOP@0"), ("AXAF", "MISSION@0")]."""
    out = []
    for part in cell.split("; "):
        m = _ENTRY.match(part)
        if m and not m.group(2).startswith(("column ", "from ")):
            out.append((m.group(1), m.group(2)))
        elif m and m.group(2).startswith("column "):
            out.append((m.group(1), m.group(2)))
    return out


def key_of(source: str) -> tuple[str, int | None]:
    """``"TELESCOP@1"`` -> ("TELESCOP", 1); ``"@FileHeader/SatelliteName"`` -> ("SatelliteName", None)."""
    if source.startswith("column "):
        return source[7:], None
    if source.startswith("@"):
        return source[1:].rsplit("/", 1)[-1], None
    key, _, hdu = source.partition("@")
    return key, int(hdu) if hdu.isdigit() else None


def check_label(label: str, source: str) -> None:
    """Our label names the keyword (and HDU) the manifest names; ``A+B`` labels name either."""
    key, hdu = key_of(source.split("+")[0])
    first, *more = label.split("+")
    if hdu is not None:
        assert f"FITS[{hdu}]:{key}" == first or key in more, (label, source)
    else:
        keys = [first.split(":")[-1].split("@")[-1].split("[")[0], *more]
        assert key in keys, (label, source)


def check_against_manifest(rec: dict, row: dict[str, str]) -> int:
    """Assert what the manifest row says about mission, instrument, target and time; return the
    number of facts checked."""
    checked = 0
    src = rec["field_sources"]
    for value, source in entries(row["mission/telescope"]):
        if NOT_USED.search(source):
            continue
        field = "mission_id" if key_of(source)[0].upper() in ("MISSION",) else "satellite_name"
        if rec.get(field) != value and rec.get("mission_id") == value:
            field = "mission_id"
        assert rec.get(field) == value, (row["relative_path"], field, rec.get(field), value)
        check_label(src[field], source)
        checked += 1
    inst = entries(row["instrument"])
    for i, (value, source) in enumerate(inst):
        if NOT_USED.search(source):
            continue
        key = key_of(source)[0]
        if key == "DETNAM":  # kept in mission_specific; 'NONE' means no value
            want = None if value.upper() == "NONE" else value
            assert rec["mission_specific"].get("DETNAM") == want, (row["relative_path"], value)
        else:
            assert rec.get("instrument_type") == value, (row["relative_path"], rec.get("instrument_type"), value)
            check_label(src["instrument_type"], source)
        checked += 1
    for value, source in entries(row["object/target"])[:1]:
        if value.upper() == "NULL":
            assert rec.get("target_object") is None  # a JWST pool's NULL means "no target"
        else:
            assert rec.get("target_object") == value, (row["relative_path"], rec.get("target_object"), value)
            check_label(src["target_object"], source)
        checked += 1
    times = row["date_obs/time_coverage"]
    start = times.split(" .. ")[0]
    parts = entries(start.replace(" + ", "; "))
    if parts and not NOT_USED.search(parts[0][1]):
        got = rec.get("observation_timestamp")
        assert got is not None, (row["relative_path"], "no start time")
        text = " ".join(v for v, _ in parts)
        tod = parse_time_of_day(text)
        if tod is not None:  # the manifest shows only the clock time (date in another attribute)
            assert abs(timedelta(hours=got.hour, minutes=got.minute, seconds=got.second) - tod) <= TT_SLACK
        else:
            if len(parts) > 1:  # DATE-OBS + TIME-OBS
                want = parse_any(parts[0][0]) + parse_time_of_day(parts[1][0])
            else:
                want = parse_any(text, allow_year=True)
            assert abs(got - want) <= TT_SLACK, (row["relative_path"], got, want)
        key = parts[0][1]
        if not key.startswith("column "):
            check_label(src["observation_timestamp"], key)
        checked += 1
    return checked


ROWS = manifest(os.path.join(DATA, "MANIFEST.tsv"))


@pytest.mark.parametrize("relpath", sorted(ROWS))
def test_data_files_match_the_manifest(relpath):
    path = os.path.join(DATA, os.path.basename(relpath))
    rec = extract_file(path)
    broken = relpath.startswith("broken/") and "checksum" not in relpath
    if broken:
        assert rec["extraction_status"] == "error"
        assert rec["extraction_error"].startswith("not a ")
        return
    assert rec["extraction_status"] in ("ok", "partial"), rec.get("extraction_error")
    check_against_manifest(rec, ROWS[relpath])


def test_the_manifest_checks_are_not_empty():
    checked = sum(check_against_manifest(extract_file(os.path.join(DATA, os.path.basename(r))), row)
                  for r, row in ROWS.items() if not r.startswith("broken/") or "checksum" in r)
    assert checked >= 25


def test_data_files_specific_facts():
    rec = extract_file(os.path.join(DATA, "checksum_false.fits"))
    assert rec["extraction_status"] == "ok"
    assert {"checksum_mismatch", "datasum_mismatch"} <= set(rec["quality_flags"])
    assert rec["mission_specific"]["checksum"] == "invalid"
    # legacy dd/mm/yy + TIME-OBS in TT: 1996-01-06 08:56:00 TT is 08:54:57.816 UTC
    assert rec["observation_timestamp"].isoformat() == "1996-01-06T08:54:57.816000+00:00"
    assert rec["field_sources"]["observation_timestamp"] == "FITS[1]:DATE-OBS+TIME-OBS"
    gll = extract_file(os.path.join(DATA, "gll_psch_v13.fit.gz"))
    assert gll["mission_specific"]["checksum"] == "valid" and gll["mission_specific"]["compression"] == "gzip"
    gpm = extract_file(os.path.join(DATA, "GPM_3IMERGHH_prefetch.nc4"))
    assert gpm["field_sources"]["observation_timestamp"] == "netCDF:@FileHeader:StartGranuleDateTime"
    assert gpm["observation_end"].isoformat() == "2020-01-01T12:29:59.999000+00:00"
    smap = extract_file(os.path.join(DATA, "SMAP_L3_FT_P_corners_input.h5"))
    assert smap["file_format"] == "hdf5" and smap["mission_id"] == "SMAP"
    assert smap["field_sources"]["observation_timestamp"] == "HDF5:/Metadata/Extent@rangeBeginningDateTime"
    above = extract_file(os.path.join(DATA, "ABoVE_TVPRM_bbox.nc4"))  # time only in a CF variable
    assert above["observation_timestamp"].isoformat() == "2008-01-01T00:30:00+00:00"
    assert above["field_sources"]["observation_timestamp"] == "netCDF:time[0]"
    merra = extract_file(os.path.join(DATA, "empty-MERRA2.nc"))  # classic netCDF-3
    assert merra["file_format"] == "netcdf" and merra["mission_specific"]["data_model"] == "NETCDF3_CLASSIC"
    assert merra["observation_timestamp"].isoformat() == "1980-01-13T00:00:00+00:00"
    assert merra["field_sources"]["observation_timestamp"] == "netCDF:@RangeBeginningDate+RangeBeginningTime"
    pool = extract_file(os.path.join(DATA, "jw87800_20180412T163456_pool.csv"))
    assert pool["mission_specific"]["delimiter"] == "|" and pool["instrument_type"] == "NIRISS"
    assert pool["field_sources"]["instrument_type"] == "CSV:column:INSTRUME"
    goes = extract_file(os.path.join(DATA, "20171025_2056.Cloud_Top_Height.nc"))
    assert goes["mission_specific"]["processing_level"] == "L2" and goes["calib_level"] == 3
    assert goes["dataproduct_type"] == "image"  # cdm_data_type = 'Image'


# --------------------------------------------------------------------------------------------
# The whole corpus, in a subprocess

_RUNNER = r"""
import json, os, sys
from cosmoscope.extract import extract_file
root = sys.argv[1]
first = ["hdf5/OMPS-NPP_NMNO2-L2_2017m0101t000532_o26838_2017m0309t171152.h5", "hdf5/f97182070958.h5"]
paths = [os.path.join(root, p) for p in first]
for d, _, files in sorted(os.walk(root)):
    for f in sorted(files):
        p = os.path.join(d, f)
        if f not in ("MANIFEST.tsv", "README.md") and p not in paths:
            paths.append(p)
for i, p in enumerate(paths):
    rec = extract_file(p)
    out = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in rec.items()}
    out["_netCDF4_loaded"] = "netCDF4" in sys.modules
    print(json.dumps({"relpath": os.path.relpath(p, root), "rec": out}, default=str), flush=True)
"""


@pytest.fixture(scope="module")
def corpus_records():
    if not os.path.isdir(CORPUS):
        pytest.skip("../shared/corpus is not present")
    proc = subprocess.run([sys.executable, "-c", _RUNNER, CORPUS], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"the extraction process died ({proc.returncode}): {proc.stderr[-2000:]}"
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_every_corpus_file_gives_a_record_with_the_expected_status(corpus_records):
    listed = manifest(os.path.join(CORPUS, "MANIFEST.tsv"))
    got = {r["relpath"]: r["rec"] for r in corpus_records}
    assert set(got) == set(listed)
    for relpath, rec in got.items():
        assert rec["extractor_version"] and rec["file_size"] == int(listed[relpath]["size_bytes"])
        if relpath.startswith("other_formats/"):
            assert rec["extraction_status"] == "error" and rec["extraction_error"].startswith("HDF4 file")
        elif relpath.startswith("broken/") and "checksum" not in relpath:
            assert rec["extraction_status"] == "error", relpath
            assert rec["extraction_error"].startswith("not a "), rec["extraction_error"]
        else:
            assert rec["extraction_status"] in ("ok", "partial"), (relpath, rec.get("extraction_error"))
            assert 0.0 < rec["data_quality_score"] <= 1.0


def test_files_that_crash_netcdf4_are_read_without_it(corpus_records):
    first = corpus_records[:2]
    assert [r["relpath"] for r in first] == [
        "hdf5/OMPS-NPP_NMNO2-L2_2017m0101t000532_o26838_2017m0309t171152.h5", "hdf5/f97182070958.h5"]
    for r in first:
        assert r["rec"]["extraction_status"] in ("ok", "partial")
        assert not r["rec"]["_netCDF4_loaded"], "netCDF-4/HDF5 files must be read through h5py"
    omps = first[0]["rec"]
    assert omps["observation_timestamp"].startswith("2017-01-01T00:05:32.802689")
    assert omps["mission_specific"]["processing_level"] == "L2"


def test_corpus_matches_its_manifest(corpus_records):
    listed = manifest(os.path.join(CORPUS, "MANIFEST.tsv"))
    checked = 0
    for r in corpus_records:
        rec = r["rec"]
        if rec["extraction_status"] == "error":
            continue
        for k in ("observation_timestamp", "observation_end"):
            if rec.get(k):
                from datetime import datetime

                rec[k] = datetime.fromisoformat(rec[k])
        checked += check_against_manifest(rec, listed[r["relpath"]])
    assert checked >= 120


def test_corpus_checksums(corpus_records):
    got = {r["relpath"]: r["rec"]["mission_specific"].get("checksum") for r in corpus_records}
    assert got["broken/checksum_false.fits"] == "invalid"
    # blank DATASUM = '' (fits.open(checksum=True) raises on these) is "not recorded", not a failure
    for name in ("3c273.pi", "3c273.arf", "acisf01575_001N001_r0085_pha3.fits.gz"):
        assert got[f"fits/xray/{name}"] == "valid", name
    # CHECKSUM without DATASUM covers header and data: these verify on the bytes on disk, though
    # astropy assumes a zero data sum when DATASUM is absent and reports them as failing.
    assert got["fits/optical_ir_radio/kplr010666592-2009131110544_slc.fits"] == "valid"
    assert got["fits/xray/3c120_pha2.gz"] == "invalid"  # astropy agrees: HDU 1 CHECKSUM is stale
    assert got["fits/xray/sis0.pha"] == "absent"
