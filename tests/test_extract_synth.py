"""Synthetic mission files written as /work/notes/missions.md describes, at test time.

The generators here are imported by the other extraction and profile tests; the tests in this
module check that every generated file opens in its own library, as real files would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

#: TT - UTC in 2026 (32.184 s + 37 leap seconds).
TT_MINUS_UTC = timedelta(seconds=69.184)
START = datetime(2026, 11, 27, 8, 15, 0, tzinfo=UTC)
END = START + timedelta(minutes=10)


def _tt(dt: datetime) -> str:
    return (dt + TT_MINUS_UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------
# HELIOS-X: FITS, empty primary, metadata in extension 1, times in TT


def helios_x(root: Path, product: str = "evt2", *, obsid: str = "01234567", date: str = "20261127",
             start: datetime = START, end: datetime = END, gz: bool = False, parents=("hx01234567_evt1.fits",),
             extra: dict | None = None, drop: tuple[str, ...] = (), checksum: bool = True) -> Path:
    from astropy.io import fits

    mjdref = 50814.0  # 1998-01-01 TT, as Chandra
    ref = datetime(1998, 1, 1, tzinfo=UTC)
    cards = {
        "TELESCOP": "HELIOS-X", "INSTRUME": "XIS", "OBJECT": "Cas A",
        "DATE-OBS": _tt(start), "DATE-END": _tt(end),
        "TSTART": ((start + TT_MINUS_UTC) - ref).total_seconds(),
        "TSTOP": ((end + TT_MINUS_UTC) - ref).total_seconds(),
        "MJDREF": mjdref, "TIMESYS": "TT", "TIMEUNIT": "s",
        "EXPOSURE": (end - start).total_seconds() * 0.95,
        "RA_TARG": 350.8583, "DEC_TARG": 58.8117, "EQUINOX": 2000.0, "RADESYS": "ICRS",
        "OBS_ID": obsid, "CALDBVER": "4.11.2",
    }
    for i, p in enumerate(parents):
        cards["PARENT" if i == 0 else f"PARENT{i + 1}"] = p
    cards.update(extra or {})
    for k in drop:
        cards.pop(k, None)
    if product in ("evt1", "evt2"):
        n = 50
        cols = [fits.Column(name="TIME", format="D", array=np.linspace(0, 600, n)),
                fits.Column(name="PI", format="J", array=np.arange(n, dtype=np.int32)),
                fits.Column(name="X", format="E", array=np.zeros(n, dtype=np.float32))]
        ext = fits.BinTableHDU.from_columns(cols, name="EVENTS")
        ext.header["HDUCLAS1"] = "EVENTS"
    elif product == "img":
        ext = fits.ImageHDU(np.arange(64, dtype=np.int16).reshape(8, 8), name="IMAGE")
    elif product == "spec":
        cols = [fits.Column(name="CHANNEL", format="J", array=np.arange(16, dtype=np.int32)),
                fits.Column(name="COUNTS", format="J", array=np.ones(16, dtype=np.int32))]
        ext = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
        ext.header["HDUCLAS1"] = "SPECTRUM"
    else:
        raise ValueError(product)
    for k, v in cards.items():
        ext.header[k] = v
    d = root / "helios-x" / date
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"hx{obsid}_{product}.fits{'.gz' if gz else ''}"
    fits.HDUList([fits.PrimaryHDU(), ext]).writeto(path, checksum=checksum, overwrite=True)
    return path


# --------------------------------------------------------------------------------------------
# LYRA: FITS images in the primary HDU, legacy dates, HIERARCH, tile-compressed reduced frames


def lyra(root: Path, stage: str = "raw", *, seq: int = 123, day: str = "2026-11-27", legacy: bool = True,
         extra: dict | None = None) -> Path:
    from astropy.io import fits

    data = (np.arange(32 * 32, dtype=np.int16).reshape(32, 32) % 97).astype(np.int16)
    hdr = fits.Header()
    hdr["TELESCOP"] = "LYRA"
    hdr["INSTRUME"] = "LYCAM"
    hdr["OBJECT"] = "M 31"
    if legacy:
        y, m, dd = day.split("-")
        hdr["DATE-OBS"] = f"{dd}/{m}/{y[2:]}"
        hdr["TIME-OBS"] = "21:30:15"
    else:
        hdr["DATE-OBS"] = f"{day}T21:30:15"
    hdr["MJD-OBS"] = 61371.896007  # 2026-11-27T21:30:15 UTC
    hdr["EXPTIME"] = 120.0
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
    hdr["CRVAL1"], hdr["CRVAL2"] = 10.6847, 41.2690
    hdr["RADESYS"], hdr["EQUINOX"] = "FK5", 2000.0
    hdr["HIERARCH LYRA SEEING FWHM"] = 1.25
    hdr["AIRMASS"] = 1.12
    for k, v in (extra or {}).items():
        hdr[k] = v
    d = root / "lyra" / stage / day
    d.mkdir(parents=True, exist_ok=True)
    if stage == "raw":
        path = d / f"LY{seq:06d}.fit"
        fits.PrimaryHDU(data, header=hdr).writeto(path, overwrite=True)
    else:
        hdr["IMCMB001"] = f"LY{seq:06d}.fit"
        path = d / f"LY{seq:06d}_red.fits"
        comp = fits.CompImageHDU(data.astype(np.float32), header=hdr, compression_type="RICE_1")
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(path, overwrite=True)
    return path


# --------------------------------------------------------------------------------------------
# COSMOS-7: raw HDF5 with a packed header, calibrated/derived netCDF-4


def cosmos7_l0(root: Path, instrument: str = "WFI", *, start: datetime = START, end: datetime = END,
               version: str = "01", header: str | None = None) -> Path:
    import h5py

    stamp = start.strftime("%Y%m%dT%H%M%S")
    d = root / "COSMOS7" / instrument / f"{start:%Y}" / f"{start:%j}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"c7_{instrument.lower()}_l0_{stamp}_v{version}.h5"
    if header is None:
        header = (f"OBS_START={start:%Y-%m-%dT%H:%M:%S}.000Z;OBS_END={end:%Y-%m-%dT%H:%M:%S}.000Z;"
                  "TARGET=NGC 253;RA=11.888;DEC=-25.288;EXPOSURE=600.0;")
    with h5py.File(path, "w") as f:
        f.attrs["mission"] = "COSMOS-7"
        f.attrs["spacecraft"] = "COSMOS-7"
        f.attrs["instrument"] = instrument
        g = f.create_group("Metadata")
        g.attrs["header"] = header
        f.create_dataset("Data/counts", data=np.zeros((4, 4), dtype=np.uint16))
    return path


def cosmos7_l1(root: Path, level: str = "l1", instrument: str = "WFI", *, start: datetime = START,
               end: datetime = END, version: str = "01", sources: str | None = None,
               attrs: dict | None = None) -> Path:
    import netCDF4

    stamp = start.strftime("%Y%m%dT%H%M%S")
    d = root / "COSMOS7" / instrument / f"{start:%Y}" / f"{start:%j}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"c7_{instrument.lower()}_{level}_{stamp}_v{version}.nc"
    if sources is None:
        prev = "l0" if level == "l1" else "l1"
        ext = "h5" if prev == "l0" else "nc"
        sources = f"c7_{instrument.lower()}_{prev}_{stamp}_v{version}.{ext}"
    g = {"platform": "COSMOS-7", "instrument": instrument, "project": "COSMOS-7",
         "time_coverage_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "time_coverage_end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "processing_level": level.upper(), "title": f"COSMOS-7 {instrument} {level.upper()} product",
         "source": sources, "target_name": "NGC 253", "ra_targ": 11.888, "dec_targ": -25.288,
         "product_version": version, "Conventions": "CF-1.8, ACDD-1.3"}
    g.update(attrs or {})
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts(g)
        ds.createDimension("y", 4)
        ds.createDimension("x", 4)
        v = ds.createVariable("flux", "f4", ("y", "x"))
        v[:] = np.ones((4, 4), dtype=np.float32)
    return path


# --------------------------------------------------------------------------------------------
# AURORA-2: CSV with comment headers, JSON sidecars, ECSV derived products


def aurora2(root: Path, level: str = "l1b", instrument: str = "MAG", *, day: str = "20261127",
            sidecar: bool = False, source: str | None = None) -> Path:
    d = root / "aurora2" / day[:4] / day[4:6]
    d.mkdir(parents=True, exist_ok=True)
    stem = f"aur2_{instrument.lower()}_{day}_{level}"
    start = f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z"
    end = f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:50Z"
    meta = {"mission": "AURORA-2", "spacecraft": "AURORA-2", "instrument": instrument,
            "start_time": start, "end_time": end, "processing_level": level.upper()}
    if source is not None:
        meta["source"] = source
    rows = [(f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:{s:02d}Z", 1.5 * s, -0.5 * s) for s in range(0, 60, 10)]
    if level == "l2":
        from astropy.table import Table

        path = d / f"{stem}.ecsv"
        t = Table(rows=rows, names=("time", "bx", "by"))
        t.meta.update(meta)
        t.write(path, format="ascii.ecsv", overwrite=True)
        return path
    path = d / f"{stem}.csv"
    lines = [] if sidecar else [f"# {k}: {v}" for k, v in meta.items()]
    lines.append("time,bx,by")
    lines += [f"{t},{a},{b}" for t, a, b in rows]
    path.write_text("\n".join(lines) + "\n")
    if sidecar:
        (d / f"{stem}.json").write_text(json.dumps(meta))
    return path


# --------------------------------------------------------------------------------------------
# The generated files open in their own libraries


def test_generated_files_open_in_their_libraries(tmp_path):
    import h5py
    import netCDF4
    from astropy.io import fits
    from astropy.table import Table

    for p in (helios_x(tmp_path), helios_x(tmp_path, "img", gz=True), lyra(tmp_path), lyra(tmp_path, "reduced")):
        with fits.open(p, checksum=True) as h:
            assert len(h) >= 1
    with fits.open(lyra(tmp_path, "reduced")) as h:
        assert isinstance(h[1], fits.CompImageHDU)
        assert h[1].header["IMCMB001"] == "LY000123.fit"
    with h5py.File(cosmos7_l0(tmp_path), "r") as f:
        assert "OBS_START=" in f["Metadata"].attrs["header"]
    with netCDF4.Dataset(cosmos7_l1(tmp_path)) as ds:
        assert ds.getncattr("processing_level") == "L1"
    assert Table.read(aurora2(tmp_path, "l2"), format="ascii.ecsv").meta["mission"] == "AURORA-2"
    assert aurora2(tmp_path, "l1a", sidecar=True).with_suffix(".json").exists()


@pytest.mark.parametrize("product", ["evt1", "evt2", "img", "spec"])
def test_helios_x_products_have_valid_checksums(tmp_path, product):
    import warnings

    from astropy.io import fits

    path = helios_x(tmp_path, product)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy warns on a checksum failure
        with fits.open(path, checksum=True) as h:
            assert h[1].header["TELESCOP"] == "HELIOS-X"
