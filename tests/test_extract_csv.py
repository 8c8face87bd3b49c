"""CSV extraction: comment headers, ECSV, sidecars, delimiters and metadata in columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cosmoscope.extract import extract_file, sniff_format
from cosmoscope.extract.csv import choose_delimiter
from tests.test_extract_synth import aurora2


def test_comment_header_lines(tmp_path):
    rec = extract_file(aurora2(tmp_path, "l1b", "PES", source="aur2_pes_20261127_l1a.csv"))
    src = rec["field_sources"]
    assert rec["extraction_status"] == "ok" and rec["file_format"] == "csv"
    assert (rec["mission_id"], rec["instrument_type"]) == ("AURORA-2", "PES")
    assert src["mission_id"] == "CSV:#mission" and src["observation_timestamp"] == "CSV:#start_time"
    assert rec["observation_end"] == datetime(2026, 11, 27, 0, 0, 50, tzinfo=UTC)
    assert rec["_parents"] == [{"name": "aur2_pes_20261127_l1a.csv", "relationship": "raw->calibrated"}]
    assert rec["mission_specific"]["columns"] == ["time", "bx", "by"]


def test_ecsv_metadata_through_astropy(tmp_path):
    rec = extract_file(aurora2(tmp_path, "l2", "MAG"))
    assert rec["extraction_status"] == "ok" and rec["mission_specific"]["ecsv"] is True
    assert rec["field_sources"]["instrument_type"] == "ECSV:meta:instrument"
    assert (rec["calib_level"], rec["dataproduct_type"]) == (3, "timeseries")


@pytest.mark.parametrize("kind", ["json", "yaml", "txt"])
def test_sidecar_metadata_file(tmp_path, kind):
    data = tmp_path / "table.csv"
    data.write_text("time,value\n2026-11-27T00:00:00Z,1\n2026-11-27T00:10:00Z,2\n")
    meta = {"mission": "AURORA-2", "instrument": "MAG", "start_time": "2026-11-27T00:00:00Z"}
    if kind == "json":
        (tmp_path / "table.json").write_text(json.dumps({"observation": meta}))  # nested: flattened
        key = "observation.instrument"
    else:
        text = "\n".join(f"{k}: {v}" if kind == "yaml" else f"{k} = {v}" for k, v in meta.items())
        (tmp_path / ("table.yaml" if kind == "yaml" else "table.meta")).write_text("# sidecar\n" + text + "\n")
        key = "instrument"
    from cosmoscope.extract.profiles import Profile

    profile = Profile(name="t", sidecars=("{stem}.json", "{stem}.yaml", "{stem}.meta"),
                      keywords={"instrument_type": (key,)})
    rec = extract_file(data, profiles=profile)
    assert rec["instrument_type"] == "MAG", rec["field_sources"]
    assert rec["field_sources"]["instrument_type"].startswith("sidecar:table.")
    assert rec["observation_end"] == datetime(2026, 11, 27, 0, 10, tzinfo=UTC)  # from the time column


def test_aurora_l1a_sidecar_found_by_the_shipped_profile(tmp_path):
    rec = extract_file(aurora2(tmp_path, "l1a", "MAG", sidecar=True))
    assert rec["field_sources"]["mission_id"] == "sidecar:aur2_mag_20261127_l1a.json:mission"
    assert rec["mission_specific"]["sidecars"] == ["aur2_mag_20261127_l1a.json"]
    assert (rec["calib_level"], rec["calibration_status"]) == (1, "uncalibrated")


def test_broken_sidecar_is_reported_not_fatal(tmp_path):
    data = tmp_path / "x.csv"
    data.write_text("# instrument: MAG\ntime,v\n2026-01-01,1\n")
    (tmp_path / "x.json").write_text("{not json")
    rec = extract_file(data)
    assert rec["extraction_status"] == "partial" and "sidecar_unreadable" in rec["quality_flags"]
    assert "not valid JSON" in rec["mission_specific"]["sidecar_errors"][0]


def test_pipe_delimited_table_with_metadata_columns(tmp_path):
    p = tmp_path / "pool.csv"
    p.write_text("FILENAME|INSTRUME|TARGNAME|DATE-OBS\n"
                 "a.fits|NIRISS|HD 1|2018-04-12T16:34:56\nb.fits|NIRISS|HD 1|2018-04-12T18:00:00\n")
    rec = extract_file(p)
    assert rec["mission_specific"]["delimiter"] == "|"
    assert rec["instrument_type"] == "NIRISS" and rec["field_sources"]["instrument_type"] == "CSV:column:INSTRUME"
    assert rec["target_object"] == "HD 1"
    assert rec["observation_timestamp"] == datetime(2018, 4, 12, 16, 34, 56, tzinfo=UTC)
    assert rec["observation_end"] == datetime(2018, 4, 12, 18, tzinfo=UTC)
    assert rec["field_sources"]["observation_end"] == "CSV:column:DATE-OBS[last]"


def test_last_row_of_a_large_table_is_read_from_its_tail(tmp_path):
    p = tmp_path / "big.csv"
    with open(p, "w") as fh:
        fh.write("time,value\n")
        for i in range(40000):
            fh.write(f"2026-11-27T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,{i}\n")
    assert p.stat().st_size > 256 * 1024
    rec = extract_file(p)
    assert rec["observation_end"] == datetime(2026, 11, 27, 11, 6, 39, tzinfo=UTC)


def test_truncated_table_is_flagged(tmp_path):
    p = aurora2(tmp_path, "l1b")
    text = p.read_text()
    p.write_text(text[: len(text) - 12])
    rec = extract_file(p)
    assert "truncated_table" in rec["quality_flags"] and rec["data_quality_score"] < 0.85
    assert "looks truncated" in rec["mission_specific"]["truncated"]


@pytest.mark.parametrize("lines, want", [(["a,b,c", "1,2,3"], ","), (["a|b|c", "1|2,5|3"], "|"),
                                         (["a\tb", "1\t2"], "\t"), (["a;b", "1,5;2"], ";")])
def test_choose_delimiter(lines, want):
    assert choose_delimiter(lines) == want


def test_text_and_binary_with_csv_suffix(tmp_path):
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    rec = extract_file(binary)
    assert sniff_format(binary) is None
    assert rec["extraction_error"] == "not a CSV file: it contains binary data" and rec["file_format"] == "csv"
    readme = tmp_path / "README.txt"
    readme.write_text("hello")
    assert sniff_format(readme) is None
    assert extract_file(readme)["extraction_error"].startswith("not a data file cosmoscope can read")
    empty_table = tmp_path / "e.csv"
    empty_table.write_text("\n\n")
    assert extract_file(empty_table)["extraction_error"].startswith("empty table")


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.bz2"])
def test_compressed_tables_are_read_to_their_last_row(tmp_path, suffix):
    import bz2
    import gzip

    rows = "".join(f"2026-11-{1 + i // 20000:02d}T00:00:{i % 60:02d},{i}\n" for i in range(40_000))
    text = ("# INSTRUME: MAG\n# TELESCOP: AURORA-2\ntime,count\n" + rows).encode()
    path = tmp_path / f"table{suffix}"
    path.write_bytes(gzip.compress(text) if suffix.endswith("gz") else bz2.compress(text))
    assert sniff_format(path) == "csv"
    rec = extract_file(path)
    assert (rec["file_format"], rec["extraction_status"]) == ("csv", "ok"), rec["extraction_error"]
    assert rec["instrument_type"] == "MAG" and rec["mission_specific"]["compression"] in ("gzip", "bzip2")
    assert rec["observation_end"] == datetime(2026, 11, 2, 0, 0, 39, tzinfo=UTC)  # the last row, past the head


def test_compressed_data_that_are_not_a_table_are_an_error_row(tmp_path):
    import gzip

    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(bytes(range(256)) * 10))
    rec = extract_file(path)
    assert rec["extraction_error"] == "not a compressed CSV file: its gzip-compressed data are not CSV"
    h5 = tmp_path / "cube.h5.gz"
    h5.write_bytes(gzip.compress(b"\x89HDF\r\n\x1a\n" + bytes(500)))
    assert extract_file(h5)["extraction_error"] == ("gzip-compressed HDF5 file: cosmoscope reads compressed FITS "
                                                    "and CSV files only; decompress it first (gunzip)")
