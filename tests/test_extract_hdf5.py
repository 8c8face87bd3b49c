"""HDF5 and netCDF extraction: group and packed attributes, netCDF-4 through h5py, netCDF 3."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import h5py
import numpy as np
import pytest

from cosmoscope.extract import extract_file, sniff_format
from cosmoscope.extract.hdf5 import parse_packed
from tests.test_extract_synth import END, START, cosmos7_l0, cosmos7_l1


def test_parse_packed_forms():
    assert parse_packed("A=1;B=two words;") == {"A": "1", "B": "two words"}
    assert parse_packed("DOI=10.5067/x;\nAlgorithmID=3IMERGHH;\n") == {"DOI": "10.5067/x", "AlgorithmID": "3IMERGHH"}
    assert parse_packed("version=2,netcdf=4.8.0,hdf5=1.10.5") is None  # one pair is not a list
    assert parse_packed("a sentence; another; x=1") is None


def test_cosmos7_raw_hdf5_with_packed_header(tmp_path):
    rec = extract_file(cosmos7_l0(tmp_path, "HRS"))
    assert rec["file_format"] == "hdf5" and rec["extraction_status"] == "ok"
    src = rec["field_sources"]
    assert (rec["mission_id"], rec["instrument_type"]) == ("COSMOS-7", "HRS")
    assert src["mission_id"] == "HDF5:/@mission" and src["satellite_name"] == "HDF5:/@spacecraft"
    assert rec["observation_timestamp"] == START and rec["observation_end"] == END
    assert src["observation_timestamp"] == "HDF5:/Metadata@header:OBS_START"
    assert (rec["target_object"], rec["ra"], rec["dec"], rec["exposure_time"]) == ("NGC 253", 11.888, -25.288, 600.0)
    assert (rec["calib_level"], rec["dataproduct_type"]) == (1, "spectrum")
    assert rec["data_quality_score"] == 1.0


def test_nested_group_attributes_without_a_profile(tmp_path):
    path = tmp_path / "nested.h5"
    with h5py.File(path, "w") as f:
        f.create_group("Metadata/SeriesIdentification").attrs["mission"] = "SMAP"
        f["Metadata"].create_group("Extent").attrs.update(
            {"rangeBeginningDateTime": "2018-06-16T00:00:00.000Z", "rangeEndingDateTime": "2018-06-16T23:59:59.999Z"})
        f.create_group("Metadata/Instrument").attrs["instrument"] = np.bytes_(b"SMAP RAD")
        f.create_dataset("data", data=np.zeros(3))
    rec = extract_file(path)
    assert rec["mission_id"] == "SMAP" and rec["field_sources"]["mission_id"] == "HDF5:/Metadata/SeriesIdentification@mission"
    assert rec["instrument_type"] == "SMAP RAD"
    assert rec["observation_end"] == datetime(2018, 6, 16, 23, 59, 59, 999000, tzinfo=UTC)
    assert rec["mission_specific"]["groups"] == 5


def test_cosmos7_netcdf4_read_through_h5py_not_netcdf4(tmp_path):
    """netCDF4 can crash the interpreter on HDF5 files: netCDF-4 goes through h5py only."""
    path = cosmos7_l1(tmp_path, "l2", "WFI")
    code = ("import json, sys; from cosmoscope.extract import extract_file; r = extract_file(sys.argv[1]); "
            "print(json.dumps([r['file_format'], r['extraction_status'], 'netCDF4' in sys.modules, "
            "r['field_sources'], r['_parents']]))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    fmt, status, loaded, sources, parents = json.loads(out.stdout)
    assert (fmt, status, loaded) == ("netcdf", "ok", False)
    assert sources["observation_timestamp"] == "netCDF:@time_coverage_start"
    assert sources["ra"] == "netCDF:@ra_targ" and sources["version"] == "netCDF:@product_version"
    assert parents == [{"name": "c7_wfi_l1_20261127T081500_v01.nc", "relationship": "calibrated->derived"}]


def test_netcdf4_without_nc_suffix_is_recognised_by_its_contents(tmp_path):
    plain = cosmos7_l1(tmp_path, "l1")
    renamed = tmp_path / "granule.h5"
    renamed.write_bytes(plain.read_bytes())
    assert sniff_format(renamed) == "netcdf"  # _NCProperties wins over the .h5 suffix
    h5 = tmp_path / "plain.h5"
    with h5py.File(h5, "w") as f:
        f.attrs["mission"] = "X"
    assert sniff_format(h5) == "hdf5"
    as_nc = tmp_path / "plain.nc"
    as_nc.write_bytes(h5.read_bytes())
    assert sniff_format(as_nc) == "netcdf"  # an HDF5 file named .nc is read as netCDF-4


def test_netcdf3_classic_with_cf_time_variable(tmp_path):
    import netCDF4

    path = tmp_path / "classic.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.setncatts({"platform": "Jason-1", "instrument": "POSEIDON-2", "processing_level": "L2",
                      "Conventions": "CF-1.6"})
        ds.createDimension("time", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2002-01-15 06:00:00"
        t[:] = [0.0, 1.0, 2.5]
    rec = extract_file(path)
    assert rec["file_format"] == "netcdf" and rec["mission_specific"]["data_model"] == "NETCDF3_CLASSIC"
    assert rec["observation_timestamp"] == datetime(2002, 1, 15, 6, tzinfo=UTC)
    assert rec["observation_end"] == datetime(2002, 1, 15, 8, 30, tzinfo=UTC)
    assert rec["field_sources"]["observation_end"] == "netCDF:time[-1]"
    assert (rec["calib_level"], rec["calibration_status"]) == (3, "calibrated")
    assert rec["field_sources"]["calib_level"] == "inferred:processing_level=L2"


def test_model_calendars_are_not_turned_into_dates(tmp_path):
    import netCDF4

    path = tmp_path / "model.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("time", 1)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 2000-01-01", "360_day"
        t[:] = [59.0]
    rec = extract_file(path)
    assert rec["extraction_status"] == "partial" and rec.get("observation_timestamp") is None


@pytest.mark.parametrize("kind", ["hdf5", "netcdf4", "netcdf3"])
def test_truncated_files_are_errors(tmp_path, kind):
    import netCDF4

    if kind == "hdf5":
        path = cosmos7_l0(tmp_path)
    elif kind == "netcdf4":
        path = cosmos7_l1(tmp_path)
    else:
        path = tmp_path / "c.nc"
        with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
            ds.title = "x"
            ds.createDimension("x", 1000)
            ds.createVariable("v", "f8", ("x",))[:] = np.arange(1000.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    rec = extract_file(path)
    assert rec["extraction_status"] == "error"
    assert rec["extraction_error"].startswith(("truncated", "damaged")), rec["extraction_error"]


def test_random_bytes_named_nc_and_h5_are_not_read(tmp_path):
    for name in ("r.nc", "r.h5", "r.nc4"):
        p = tmp_path / name
        p.write_bytes(np.random.default_rng(1).bytes(2048))
        rec = extract_file(p)
        assert rec["extraction_status"] == "error" and sniff_format(p) is None
        assert rec["extraction_error"].startswith(("not a netCDF file", "not an HDF5 file"))
        assert rec["file_format"] in ("netcdf", "hdf5")  # as guessed from the name


def test_hdf4_is_refused_with_a_reason(tmp_path):
    p = tmp_path / "old.hdf"
    p.write_bytes(b"\x0e\x03\x13\x01" + bytes(500))
    rec = extract_file(p)
    assert rec["extraction_error"].startswith("HDF4 file")
