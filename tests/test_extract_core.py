"""The extract_file contract: record shape, error records for bad files, sniffing, the registry,
the quality score and time parsing."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmoscope.extract import EXTRACTOR_VERSION, extract_file, sniff_format
from cosmoscope.extract import registry
from cosmoscope.extract.base import Metadata, Source
from cosmoscope.extract.quality import WEIGHTS, score
from cosmoscope.extract.timeparse import (TimeParseError, from_cf, from_met, from_mjd, parse_any,
                                          parse_duration)
from cosmoscope.schema import OBSERVATIONS
from tests.test_extract_synth import aurora2, cosmos7_l0, cosmos7_l1, helios_x, lyra

EXTRA_KEYS = {"mission_specific", "quality_flags", "field_sources", "_parents"}


def assert_contract(rec: dict) -> None:
    """A record as the ingest expects it: schema columns plus the four extra objects."""
    names = set(OBSERVATIONS.schema.names)
    assert set(rec) - names <= EXTRA_KEYS, set(rec) - names - EXTRA_KEYS
    assert rec["extraction_status"] in ("ok", "partial", "error")
    assert rec["extractor_version"] == EXTRACTOR_VERSION
    assert isinstance(rec["file_size"], int) or rec["file_size"] is None
    for k, v in rec.items():
        if isinstance(v, datetime):
            assert v.tzinfo is not None and v.utcoffset() == timedelta(0), k
    json.dumps({k: rec[k] for k in EXTRA_KEYS})  # JSON-ready as they are
    for p in rec["_parents"]:
        assert set(p) == {"name", "relationship"}
    assert pickle.loads(pickle.dumps(rec)) == rec
    rec["file_path"].encode("utf-8")  # storable text
    if rec["extraction_status"] == "error":
        # Nothing was read to judge: no score, so no quality statistic counts it.
        assert rec["extraction_error"] and rec["data_quality_score"] is None
    else:
        assert 0.0 <= rec["data_quality_score"] <= 1.0


def test_records_of_every_format_keep_the_contract(tmp_path):
    paths = [helios_x(tmp_path, "evt2"), lyra(tmp_path, "reduced"), cosmos7_l0(tmp_path), cosmos7_l1(tmp_path),
             aurora2(tmp_path, "l2"), aurora2(tmp_path, "l1a", sidecar=True)]
    for p in paths:
        rec = extract_file(p)
        assert_contract(rec)
        assert rec["extraction_status"] == "ok", (p, rec.get("extraction_error"))
        assert rec["file_path"] == os.path.abspath(p) and rec["file_size"] == os.path.getsize(p)
        st_ = os.stat(p)
        assert rec["file_mtime"] == datetime.fromtimestamp(st_.st_mtime, tz=UTC)
        for field in rec["field_sources"]:
            assert field in rec or field == "processing_level"


def test_stat_given_by_the_caller_is_used(tmp_path):
    p = helios_x(tmp_path, "img")
    st_ = os.stat(p)
    fake = os.stat_result((st_.st_mode, 0, 0, 1, 0, 0, st_.st_size, 0, 1_700_000_000, 0))
    assert extract_file(p, stat=fake)["file_mtime"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Bad files: each an error record with a reason, never an exception


def _bad(tmp_path) -> dict[str, str]:
    out = {}
    (tmp_path / "zero.fits").write_bytes(b"")
    out["zero.fits"] = "empty file (0 bytes)"
    (tmp_path / "random.nc").write_bytes(os.urandom(4096))
    out["random.nc"] = "not a netCDF file: the first bytes are binary data without the netCDF signature"
    (tmp_path / "text.fits").write_text("<html><body>404 Not Found</body></html>\n")
    out["text.fits"] = "not a FITS file: the first 40 bytes are text"
    (tmp_path / "text.h5").write_text("hello\n")
    out["text.h5"] = "not an HDF5 file: the first 6 bytes are text"
    cut = helios_x(tmp_path, "evt2")
    cut.write_bytes(cut.read_bytes()[:4000])
    out[str(cut.relative_to(tmp_path))] = "truncated FITS file: the file ends inside the header of HDU 1"
    os.symlink("loop_b", tmp_path / "loop_a.fits")
    os.symlink("loop_a.fits", tmp_path / "loop_b")
    out["loop_a.fits"] = "symbolic link loop: the link leads back to itself"
    os.symlink("nowhere.fits", tmp_path / "dangling.fits")
    out["dangling.fits"] = "broken symbolic link: its target 'nowhere.fits' does not exist"
    out["missing.fits"] = "file not found"
    (tmp_path / "adir.fits").mkdir()
    out["adir.fits"] = "is a directory, not a data file"
    os.mkfifo(tmp_path / "pipe.fits")
    out["pipe.fits"] = "not a regular file (a FIFO, socket or device)"
    return out


def test_bad_files_become_error_records(tmp_path):
    for name, reason in _bad(tmp_path).items():
        rec = extract_file(tmp_path / name)
        assert_contract(rec)
        assert rec["extraction_status"] == "error", name
        assert rec["extraction_error"].startswith(reason), (name, rec["extraction_error"])
        assert rec["quality_flags"][0] == "unreadable"
        assert rec["file_format"] == ("hdf5" if name.endswith(".h5") else "netcdf" if name.endswith(".nc")
                                      else "fits"), name


def test_unreadable_file(tmp_path):
    p = helios_x(tmp_path, "evt1")
    os.chmod(p, 0)
    try:
        rec = extract_file(p)
        if os.access(p, os.R_OK):  # root reads through chmod 000: the honest check is that it worked
            assert rec["extraction_status"] == "ok"
        else:
            assert (rec["extraction_status"], rec["extraction_error"]) == ("error", "permission denied")
        assert_contract(rec)
    finally:
        os.chmod(p, 0o644)


def test_non_utf8_file_name(tmp_path):
    raw = helios_x(tmp_path, "img").read_bytes()
    name = os.fsencode(str(tmp_path)) + b"/caf\xe9.fits"
    with open(name, "wb") as fh:
        fh.write(raw)
    rec = extract_file(name)
    assert_contract(rec)
    assert rec["extraction_status"] == "ok" and "path_not_utf8" in rec["quality_flags"]
    assert rec["file_path"].endswith("caf\\xe9.fits")
    empty = os.fsencode(str(tmp_path)) + b"/vide\xff.fits"
    open(empty, "wb").close()
    rec = extract_file(empty)
    assert rec["extraction_error"] == "empty file (0 bytes)" and rec["file_path"].endswith("vide\\xff.fits")


def test_socket_is_not_a_regular_file(tmp_path):
    path = str(tmp_path / "s.fits")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(path)
        assert extract_file(path)["extraction_error"].startswith("not a regular file")
    finally:
        s.close()


def test_a_crashing_extractor_becomes_an_error_record(tmp_path):
    class Boom:
        name, priority, suffixes = "boom", 99, (".boom",)

        def can_read(self, path, head):
            return head.startswith(b"BOOM")

        def extract(self, path):
            raise ZeroDivisionError("division by zero")

    p = tmp_path / "x.boom"
    p.write_bytes(b"BOOM!")
    registry.register(Boom)
    try:
        rec = extract_file(p)
        assert rec["extraction_error"] == "cosmoscope could not extract metadata: ZeroDivisionError: division by zero"
        assert_contract(rec)
    finally:
        registry.refresh_extractors()


def test_plugin_extractor_returning_metadata(tmp_path):
    class Pds:
        name, priority, suffixes = "pds", 5, (".lbl",)

        def can_read(self, path, head):
            return head.startswith(b"PDS_VERSION_ID")

        def extract(self, path):
            text = open(path).read()
            kv = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
            return Metadata(format="pds", sources=[Source("PDS:", "", kv)])

    p = tmp_path / "x.lbl"
    p.write_text("PDS_VERSION_ID = PDS3\nINSTRUMENT_NAME = HiRISE\nSTART_TIME = 2010-01-01T00:00:00\n"
                 "MISSION = MRO\n")
    registry.register(Pds())
    try:
        assert sniff_format(p) == "pds"
        rec = extract_file(p)
        assert (rec["file_format"], rec["mission_id"]) == ("pds", "MRO")
        assert rec["field_sources"]["observation_timestamp"] == "PDS:START_TIME"
    finally:
        registry.refresh_extractors()


def test_two_extractors_of_equal_priority_are_refused(tmp_path):
    class Twin:
        priority, suffixes = 10, ()

        def __init__(self, name):
            self.name = name

        def can_read(self, path, head):
            return head.startswith(b"TWIN")

        def extract(self, path):
            return Metadata(format=self.name)

    p = tmp_path / "t.bin"
    p.write_bytes(b"TWIN")
    registry.register(Twin("a"))
    registry.register(Twin("b"))
    try:
        assert extract_file(p)["extraction_error"] == "format is ambiguous: extractors a, b all claim this file with priority 10"
    finally:
        registry.refresh_extractors()


def test_listing_extractors_imports_no_format_library():
    code = ("import sys; from cosmoscope.extract import registry, extract_file, sniff_format; "
            "registry.list_extractors(); import cosmoscope.extract.profiles as p; p.load_profiles(); "
            "print(sorted(m for m in ('astropy', 'h5py', 'netCDF4', 'numpy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_vocabularies_match_the_schema():
    from cosmoscope.extract.base import CALIBRATION_STATUSES, DATAPRODUCT_TYPES, REQUIRED_FIELDS
    from cosmoscope.schema import DATAPRODUCT_TYPES as SCHEMA_TYPES
    from cosmoscope.schema import REQUIRED_FIELDS as SCHEMA_REQUIRED
    from cosmoscope.schema import CalibrationStatus

    assert set(CALIBRATION_STATUSES) == {s.value for s in CalibrationStatus}
    assert set(DATAPRODUCT_TYPES) == set(SCHEMA_TYPES)
    assert REQUIRED_FIELDS == tuple(SCHEMA_REQUIRED)


def test_entry_point_group_is_read(monkeypatch):
    from importlib import metadata

    class EP:
        name = "fake"

        def load(self):
            class Fake:
                name, priority, suffixes = "fake", 1, (".fake",)

                def can_read(self, path, head):
                    return False

            return Fake

    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [EP()] if kw.get("group") == registry.ENTRY_POINT_GROUP else real(**kw))
    registry.refresh_extractors()
    try:
        assert "fake" in registry.list_extractors()
        assert registry.guess_by_suffix("x.fake") == "fake"
    finally:
        registry.refresh_extractors()


# --------------------------------------------------------------------------------------------
# Sniffing


def test_sniff_format_magic_first(tmp_path):
    import gzip

    fits_raw = helios_x(tmp_path, "img").read_bytes()
    cases = {"a.fits": fits_raw, "3c120_pha2.gz": gzip.compress(fits_raw), "noext": gzip.compress(fits_raw),
             "b.FTZ": gzip.compress(fits_raw), "c.nc": os.urandom(100), "d.fits": b"just text\n",
             "e.csv": b"a,b\n1,2\n", "f.ecsv": b"# %ECSV 1.0\n# ---\na b\n", "g.txt": b"# %ECSV 1.0\n",
             "h.gz": gzip.compress(b"not fits at all")}
    want = {"a.fits": "fits", "3c120_pha2.gz": "fits", "noext": "fits", "b.FTZ": "fits", "c.nc": None,
            "d.fits": None, "e.csv": "csv", "f.ecsv": "csv", "g.txt": "csv", "h.gz": None}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert sniff_format(tmp_path / name) == want[name], name
        assert sniff_format(str(tmp_path / name), head=data[:2880]) == want[name], name
    assert sniff_format(tmp_path / "missing") is None
    assert sniff_format(cosmos7_l0(tmp_path)) == "hdf5" and sniff_format(cosmos7_l1(tmp_path)) == "netcdf"


# --------------------------------------------------------------------------------------------
# Quality score


def test_quality_weights_sum_to_one():
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_quality_deductions_are_named():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rec = {"mission_id": "M", "instrument_type": "I", "observation_timestamp": start,
           "observation_end": start - timedelta(hours=1), "satellite_name": "S", "target_object": "T",
           "exposure_time": -5.0, "ra": 10.0, "calib_level": None,
           "field_sources": {"instrument_type": "path:{instrument}"}}
    problems = {"time_unparseable": [("observation_end", "X", "bad")], "coords": ["out of range: ..."],
                "exposure": [], "conflicts": [{"field": "observation_timestamp"}], "path": []}
    s, flags = score(rec, problems, {"checksum": "invalid", "checksum_flags": ["checksum_mismatch"]})
    assert flags == ["from_path:instrument_type", "time_unparseable:observation_end", "checksum_mismatch",
                     "calibration_unknown", "time_order:end_before_start", "coords_out_of_range",
                     "exposure_negative", "time_conflict:path_vs_header"]
    want = 1 - 0.4 / 6 - 0.10 - 0.15 - 0.05 - 0.15 - 0.05
    assert s == pytest.approx(want, abs=1e-4)
    perfect = {**rec, "observation_end": start + timedelta(hours=1), "exposure_time": 3600.0, "calib_level": 2,
               "field_sources": {}}
    empty = {"time_unparseable": [], "coords": [], "exposure": [], "conflicts": [], "path": []}
    assert score(perfect, empty, {"checksum": "valid"}) == (1.0, [])
    long = {**perfect, "exposure_time": 2 * 3600.0}
    assert score(long, empty, {})[1] == ["exposure_exceeds_duration"]


def test_path_header_conflicts_are_recorded(tmp_path):
    p = helios_x(tmp_path, "evt2", date="20261130")  # directory date disagrees with DATE-OBS
    rec = extract_file(p)
    assert "time_conflict:path_vs_header" in rec["quality_flags"]
    c = rec["mission_specific"]["conflicts"][0]
    assert (c["field"], c["path"], c["source"]) == ("observation_timestamp", "2026-11-30", "FITS[1]:DATE-OBS")
    assert rec["observation_timestamp"].date().isoformat() == "2026-11-27"  # the header wins
    assert rec["data_quality_score"] == pytest.approx(0.95)


# --------------------------------------------------------------------------------------------
# Time parsing


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2199, 12, 31)))
def test_iso_compact_and_doy_forms_round_trip(dt):
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    want = dt.replace(tzinfo=UTC)
    for text in (dt.isoformat(timespec="milliseconds"), dt.isoformat(timespec="milliseconds") + "Z",
                 dt.strftime("%Y-%m-%d %H:%M:%S.%f"), dt.strftime("%Y-%m-%d_%H:%M:%S.%f")):
        assert parse_any(text) == want, text
    assert parse_any(dt.strftime("%Y%m%dT%H%M%SZ")) == want.replace(microsecond=0)
    assert parse_any(dt.strftime("%Y-%jT%H:%M:%S")) == want.replace(microsecond=0)
    if dt.year < 2000:
        assert parse_any(dt.strftime("%d/%m/%y")) == want.replace(hour=0, minute=0, second=0, microsecond=0)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False))
def test_met_and_mjd_agree(seconds):
    a = from_met(seconds, 50814.0, unit="s", scale="utc")
    b = from_mjd(50814.0 + seconds / 86400.0, "utc")
    assert abs((a - b).total_seconds()) < 1e-3


def test_time_scales_and_forms():
    tt = parse_any("2026-11-27T08:16:09.184", "tt")
    assert tt == datetime(2026, 11, 27, 8, 15, tzinfo=UTC)  # TT - UTC = 69.184 s
    assert parse_any("2026-11-27T08:15:37", "tai") == datetime(2026, 11, 27, 8, 15, tzinfo=UTC)
    assert parse_any("2026-11-27T08:16:09.184Z", "tt") == datetime(2026, 11, 27, 8, 16, 9, 184000, tzinfo=UTC)
    assert parse_any("2016-12-31T23:59:60") == datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_any("2026-11-27T10:15:00+02:00") == datetime(2026, 11, 27, 8, 15, tzinfo=UTC)
    assert parse_any("Fri Feb 12 19:32:14 2021 GMT") == datetime(2021, 2, 12, 19, 32, 14, tzinfo=UTC)
    assert parse_any("27/11/26", century=2000) == datetime(2026, 11, 27, tzinfo=UTC)
    assert from_met(1.0, 55197.0, unit="d", scale="utc") == datetime(2010, 1, 2, tzinfo=UTC)
    assert from_cf(36.0, "hours since 1970-01-01 00:00:00") == datetime(1970, 1, 2, 12, tzinfo=UTC)
    assert parse_duration("PT890.5S") == 890.5
    for bad in ("2021-02-30", "not a date", "0000-01-01", "2026-400T00:00:00"):
        with pytest.raises(TimeParseError):
            parse_any(bad)
    with pytest.raises(TimeParseError):
        from_cf(1.0, "days since 2000-01-01", "360_day")


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=4 * 2880 - 1), st.binary(min_size=1, max_size=200),
       st.sampled_from(["evt2", "img"]), st.booleans())
def test_damaged_files_never_raise(tmp_path_factory, offset, junk, product, cut):
    path = helios_x(tmp_path_factory.mktemp("fuzz"), product)
    data = bytearray(path.read_bytes())
    data[offset:offset + len(junk)] = junk
    path.write_bytes(bytes(data[: offset + len(junk)]) if cut else bytes(data))
    rec = extract_file(path)
    assert_contract(rec)
    if rec["extraction_status"] == "error":
        assert rec["extraction_error"][0].islower() and len(rec["extraction_error"]) > 10


def test_an_unreadable_file_keeps_no_score_and_takes_its_mission_from_the_path(tmp_path):
    path = tmp_path / "archive" / "lyra" / "reduced" / "2026-11-25" / "LY000022_red.fits"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<html><body>502 Bad Gateway</body></html>\n" * 80)
    rec = extract_file(path)
    assert rec["extraction_status"] == "error" and rec["data_quality_score"] is None
    # The LYRA profile's path template and defaults still say what the file is.
    assert (rec["mission_id"], rec["instrument_type"], rec["calib_level"]) == ("LYRA", "LYCAM", 2)
    assert rec["observation_timestamp"] == datetime(2026, 11, 25, tzinfo=UTC)
    assert rec["field_sources"]["mission_id"] == "profile:lyra:default"
    assert rec["field_sources"]["observation_timestamp"].startswith("path:")
    nowhere = tmp_path / "elsewhere" / "x.fits"
    nowhere.parent.mkdir()
    nowhere.write_bytes(b"")
    assert "mission_id" not in extract_file(nowhere)  # no profile matches: nothing is made up
