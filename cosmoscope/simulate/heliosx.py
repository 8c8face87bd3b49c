"""HELIOS-X: an X-ray observatory writing FITS event lists, images and spectra.

Layout ``helios-x/{date:%Y%m%d}/hx{obsid}_{product}.fits[.gz]``. The primary HDU is empty; the
metadata live in extension 1 (EVENTS, IMAGE or SPECTRUM) with OGIP/HEASARC keywords, valid
CHECKSUM/DATASUM and a PARENT keyword naming the input file. As in real X-ray missions,
``TIMESYS='TT'``: DATE-OBS/DATE-END and TSTART/TSTOP (seconds from MJDREF) are Terrestrial
Time, 69.184 s ahead of the UTC ground truth; DATE, the file's creation time, is UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cosmoscope.simulate._common import (
    drop,
    imperfect,
    iso,
    later,
    obs_window,
    rows_for,
    side_for,
    sparse_prefix,
    written_rows,
)
from cosmoscope.simulate._fits import GZIP_MAX_UNCOMPRESSED, HDU, write_fits
from cosmoscope.simulate.plan import CALIBRATED_TO_DERIVED, RAW_TO_CALIBRATED, FileSpec, GroupContext
from cosmoscope.simulate.targets import TARGETS, XRAY

MISSION = "HELIOS-X"
INSTRUMENT = "XIS"
MJDREF = 60310.0  # 2024-01-01T00:00:00 TT, the mission's clock epoch
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)  # that epoch, on the TT time line
TT_MINUS_UTC = timedelta(seconds=69.184)  # 37 leap seconds + 32.184 s, unchanged since 2017
GTI_GAP = 40.0  # [s] one gap between the two good time intervals of every observation
OBSERVERS = ("Dr. A. Okafor", "Dr. M. Lindqvist", "Dr. S. Tanaka", "Dr. R. Alvarez",
             "Dr. J. Novak", "Dr. P. Mehta")
PRODUCTS = {  # product: (calib level, dataproduct type, extension name)
    "evt1": (1, "event", "EVENTS"),
    "evt2": (2, "event", "EVENTS"),
    "img": (3, "image", "IMAGE"),
    "spec": (3, "spectrum", "SPECTRUM"),
}
_MISSING = ("INSTRUME", "DATE-OBS", "TSTART")


def group_size(rnd) -> int:
    """Files per observation: evt1, evt2, img, spec."""
    return 4


def missing_keys(spec: FileSpec) -> tuple[str, ...]:
    """Keywords a ``missing_keywords`` fault removes."""
    return _MISSING


def quirk_keys(spec: FileSpec) -> dict[str, tuple[str, ...]]:
    """Keywords each everyday imperfection (see ``plan.QUIRK_KINDS``) leaves out or garbles."""
    return {"no_target": ("OBJECT",), "no_end": ("DATE-END", "TSTOP"), "garbled_end": ("DATE-END",)}


def plan_group(ctx: GroupContext) -> list[FileSpec]:
    """One pointed observation: raw and calibrated event lists, an image and a spectrum."""
    rnd = ctx.rnd
    obsid = f"{1_000_000 + ctx.index:08d}"
    target = XRAY[rnd.randrange(len(XRAY))]
    ra, dec = TARGETS[target]
    start, duration = obs_window(ctx, 5_000, 60_000)
    end = later(start, seconds=duration)
    exposure = round(duration * rnd.uniform(0.93, 0.99), 1)
    ext = ".fits.gz" if rnd.random() < 0.3 else ".fits"
    folder = f"helios-x/{start:%Y%m%d}/hx{obsid}_"
    common = {
        "obsid": obsid,
        "observer": OBSERVERS[rnd.randrange(len(OBSERVERS))],
        "caldbver": rnd.choice(("4.11.2", "4.11.3", "4.12.0")),
        "ra_pnt": round(ra + rnd.uniform(-0.01, 0.01), 5),
        "dec_pnt": round(dec + rnd.uniform(-0.01, 0.01), 5),
        "roll": round(rnd.uniform(0, 360), 2),
        "mode": rnd.choice(("FAINT", "VFAINT", "GRADED")),
        "filter": rnd.choice(("OPEN", "OPEN", "THIN", "MEDIUM")),
    }
    version = rnd.choice(("3.2.1", "3.2.2", "3.3.0"))
    delays = {"evt1": 2, "evt2": 26, "img": 27, "spec": 27}  # hours after the end
    specs: list[FileSpec] = []
    for product, (level, kind, _) in PRODUCTS.items():
        parents, relation = (), None
        if product == "evt2":
            parents, relation = (folder + "evt1" + ext,), RAW_TO_CALIBRATED
        elif product in ("img", "spec"):
            parents, relation = (folder + "evt2" + ext,), CALIBRATED_TO_DERIVED
        specs.append(FileSpec(
            relpath=folder + product + ext, mission=MISSION, satellite=MISSION,
            instrument=INSTRUMENT, product=product, calib_level=level, file_format="fits",
            start=start, end=end, target=target, ra=ra, dec=dec, exposure=exposure,
            version=version, dataproduct_type=kind, parents=parents, relationship=relation,
            compression="gzip" if ext.endswith(".gz") else None,
            extra={**common, "created": later(end, hours=delays[product], minutes=rnd.randrange(60))},
        ))
    return specs


def _tt(t: datetime) -> datetime:
    return t + TT_MINUS_UTC


def _mission_seconds(t: datetime) -> float:
    """Seconds of TT from the mission epoch (MJDREF) to the UTC time ``t``."""
    return (_tt(t) - EPOCH).total_seconds()


def _meta_cards(spec: FileSpec) -> list[tuple]:
    x = spec.extra
    tstart, tstop = _mission_seconds(spec.start), _mission_seconds(spec.end)
    cards = [
        ("TELESCOP", spec.satellite, "mission name"),
        ("INSTRUME", spec.instrument, "instrument name"),
        ("DETNAM", "XIS-FI0", "detector"),
        ("FILTER", x["filter"], "optical blocking filter"),
        ("DATAMODE", x["mode"], "telemetry mode"),
        ("OBS_MODE", "POINTING", "observation mode"),
        ("OBS_ID", x["obsid"], "observation identifier"),
        ("OBJECT", spec.target, "name of observed object"),
        ("OBSERVER", x["observer"], "principal investigator"),
        ("RA_TARG", spec.ra, "[deg] target right ascension"),
        ("DEC_TARG", spec.dec, "[deg] target declination"),
        ("RA_PNT", x["ra_pnt"], "[deg] mean pointing right ascension"),
        ("DEC_PNT", x["dec_pnt"], "[deg] mean pointing declination"),
        ("PA_PNT", x["roll"], "[deg] mean roll angle"),
        ("EQUINOX", 2000.0, "equinox of celestial coordinates"),
        ("RADESYS", "ICRS", "celestial reference frame"),
        ("DATE-OBS", iso(_tt(spec.start), ms=True), "start of observation (TT)"),
        ("DATE-END", iso(_tt(spec.end), ms=True), "end of observation (TT)"),
        ("TSTART", tstart, "[s] start time in mission seconds"),
        ("TSTOP", tstop, "[s] stop time in mission seconds"),
        ("MJDREF", MJDREF, "[d] MJD of the mission epoch (TT)"),
        ("TIMESYS", "TT", "time system"),
        ("TIMEREF", "LOCAL", "time reference"),
        ("TIMEUNIT", "s", "unit of time keywords"),
        ("TIMEZERO", 0.0, "[s] clock correction"),
        ("CLOCKAPP", True, "clock correction applied"),
        ("EXPOSURE", spec.exposure, "[s] exposure time (dead time corrected)"),
        ("LIVETIME", spec.exposure, "[s] on-source time times live fraction"),
        ("ONTIME", (spec.end - spec.start).total_seconds() - GTI_GAP, "[s] sum of good time intervals"),
        ("CALDBVER", x["caldbver"], "calibration database version"),
        ("PROCVER", spec.version, "processing pipeline version"),
        ("CREATOR", f"hxpipe {spec.version}", "software that made this file"),
        ("ORIGIN", "HELIOS-X SOC", "institution that made this file"),
        ("DATE", iso(x["created"]), "file creation date (UTC)"),
    ]
    for i, parent in enumerate(spec.parents):
        name = parent.rsplit("/", 1)[-1]
        cards.append(("PARENT" if i == 0 else f"PARENT{i + 1}", name, "input file"))
    if spec.fault == "missing_keywords":
        cards = drop(cards, _MISSING)
    return imperfect(cards, spec)


def _events(spec: FileSpec, rng, raw: bool) -> tuple[list, bytes, int]:
    import numpy as np

    tstart, tstop = _mission_seconds(spec.start), _mission_seconds(spec.end)
    if raw:
        cols = [("TIME", "D", ">f8", "s"), ("CCD_ID", "I", ">i2", None), ("CHIPX", "I", ">i2", "pixel"),
                ("CHIPY", "I", ">i2", "pixel"), ("PHA", "J", ">i4", "chan"), ("GRADE", "I", ">i2", None)]
    else:
        cols = [("TIME", "D", ">f8", "s"), ("X", "E", ">f4", "pixel"), ("Y", "E", ">f4", "pixel"),
                ("PI", "J", ">i4", "chan"), ("ENERGY", "E", ">f4", "eV"), ("CCD_ID", "I", ">i2", None),
                ("GRADE", "I", ">i2", None)]
    dtype = np.dtype([(name, code) for name, _, code, _ in cols])
    nrows = rows_for(_cap(spec), dtype.itemsize, int(rng.integers(100, 500)))
    written = written_rows(spec.size_hint, nrows, dtype.itemsize)  # the rest is a hole: zeros
    rows = np.zeros(written, dtype=dtype)
    rows["TIME"] = np.sort(rng.uniform(tstart, tstop, written))
    rows["CCD_ID"] = rng.integers(0, 4, written)
    rows["GRADE"] = rng.choice([0, 2, 3, 4, 6], written)
    if raw:
        rows["CHIPX"] = rng.integers(1, 1025, written)
        rows["CHIPY"] = rng.integers(1, 1025, written)
        rows["PHA"] = rng.integers(0, 4096, written)
    else:
        rows["X"] = rng.normal(4096.5, 40, written)
        rows["Y"] = rng.normal(4096.5, 40, written)
        rows["ENERGY"] = rng.gamma(2.0, 1200.0, written).clip(200, 12000)
        rows["PI"] = (rows["ENERGY"] / 14.6).astype(int)
    cards = _table_cards(cols, dtype.itemsize, nrows, "EVENTS")
    limits = [("TLMIN", "TLMAX", "PHA" if raw else "PI", 0, 4095)]
    for lo, hi, col, a, b in limits:
        idx = [c[0] for c in cols].index(col) + 1
        cards += [(f"{lo}{idx}", a, None), (f"{hi}{idx}", b, None)]
    cards += [("HDUCLASS", "OGIP", "format conforms to OGIP standard"),
              ("HDUCLAS1", "EVENTS", "event list"),
              ("HDUCLAS2", "ALL" if raw else "ACCEPTED", None)]
    return cards, rows.tobytes(), nrows * dtype.itemsize


def _table_cards(cols, width: int, nrows: int, extname: str) -> list[tuple]:
    cards = [("XTENSION", "BINTABLE", "binary table extension"), ("BITPIX", 8, None),
             ("NAXIS", 2, None), ("NAXIS1", width, "width of table in bytes"),
             ("NAXIS2", nrows, "number of rows"), ("PCOUNT", 0, None), ("GCOUNT", 1, None),
             ("TFIELDS", len(cols), None)]
    for i, (name, form, _, unit) in enumerate(cols, 1):
        cards += [(f"TTYPE{i}", name, None), (f"TFORM{i}", form, None)]
        if unit:
            cards.append((f"TUNIT{i}", unit, None))
    cards.append(("EXTNAME", extname, "name of this extension"))
    return cards


def _cap(spec: FileSpec) -> int | None:
    if spec.size_hint and spec.compression == "gzip":
        return min(spec.size_hint, GZIP_MAX_UNCOMPRESSED)
    return spec.size_hint


def write(spec: FileSpec, path) -> None:
    """Write one HELIOS-X FITS file (``.fits`` or ``.fits.gz``)."""
    import numpy as np

    rng = np.random.default_rng(spec.data_seed)
    created = iso(spec.extra["created"])
    primary = HDU([("SIMPLE", True, "conforms to FITS standard"), ("BITPIX", 8, None),
                   ("NAXIS", 0, None), ("EXTEND", True, None),
                   ("ORIGIN", "HELIOS-X SOC", None), ("DATE", created, "file creation date")])
    meta = _meta_cards(spec)
    bad = spec.fault == "bad_checksum"
    hdus = [primary]
    if spec.product in ("evt1", "evt2"):
        cards, data, size = _events(spec, rng, raw=spec.product == "evt1")
        hdus.append(HDU(cards + meta, data, size, bad_checksum=bad))
        gti = np.zeros(2, dtype=[("START", ">f8"), ("STOP", ">f8")])
        t0, t1 = _mission_seconds(spec.start), _mission_seconds(spec.end)
        mid = t0 + (t1 - t0) * 0.6
        gti["START"], gti["STOP"] = (t0, mid + GTI_GAP), (mid, t1)
        cols = [("START", "D", ">f8", "s"), ("STOP", "D", ">f8", "s")]
        hdus.append(HDU(_table_cards(cols, 16, 2, "GTI") + [("HDUCLASS", "OGIP", None),
                        ("HDUCLAS1", "GTI", None), ("TELESCOP", spec.satellite, None),
                        ("INSTRUME", spec.instrument, None)], gti.tobytes(), 32))
    elif spec.product == "img":
        side = side_for(_cap(spec), 4, 64)
        written = written_rows(spec.size_hint, side, 4 * side)
        y, x = np.mgrid[0:written, 0:side]
        c = side / 2
        rate = 0.2 + 50.0 * np.exp(-((x - c) ** 2 + (y - min(c, written / 2)) ** 2) / 18.0)
        image = rng.poisson(rate).astype(">i4")
        cards = [("XTENSION", "IMAGE", "image extension"), ("BITPIX", 32, None), ("NAXIS", 2, None),
                 ("NAXIS1", side, None), ("NAXIS2", side, None), ("PCOUNT", 0, None),
                 ("GCOUNT", 1, None), ("EXTNAME", "IMAGE", None), ("BUNIT", "count", None),
                 ("HDUCLASS", "OGIP", None), ("HDUCLAS1", "IMAGE", None),
                 ("CTYPE1", "RA---TAN", None), ("CTYPE2", "DEC--TAN", None),
                 ("CRPIX1", side / 2 + 0.5, None), ("CRPIX2", side / 2 + 0.5, None),
                 ("CRVAL1", spec.ra, None), ("CRVAL2", spec.dec, None),
                 ("CDELT1", -0.000136667, "[deg] 0.492 arcsec pixels"), ("CDELT2", 0.000136667, None),
                 ("CUNIT1", "deg", None), ("CUNIT2", "deg", None)]
        hdus.append(HDU(cards + meta, sparse_prefix(image.tobytes(), spec.size_hint), side * side * 4,
                        bad_checksum=bad))
    else:
        nchan = 256
        cols = [("SPEC_NUM", "J", ">i4", None), ("TSTART", "D", ">f8", "s"), ("TSTOP", "D", ">f8", "s"),
                ("COUNTS", f"{nchan}J", f"({nchan},)>i4", "count")]
        dtype = np.dtype([(n, code) for n, _, code, _ in cols])
        nrows = rows_for(_cap(spec), dtype.itemsize, int(rng.integers(4, 16)))
        written = written_rows(spec.size_hint, nrows, dtype.itemsize)
        rows = np.zeros(written, dtype=dtype)
        t0, t1 = _mission_seconds(spec.start), _mission_seconds(spec.end)
        edges = np.linspace(t0, t1, nrows + 1)[: written + 1]
        rows["SPEC_NUM"] = np.arange(1, written + 1)
        rows["TSTART"], rows["TSTOP"] = edges[:-1], edges[1:]
        shape = np.exp(-np.arange(nchan) / 40.0) * 30.0
        rows["COUNTS"] = rng.poisson(np.broadcast_to(shape, (written, nchan)))
        cards = _table_cards(cols, dtype.itemsize, nrows, "SPECTRUM")
        cards += [("HDUCLASS", "OGIP", None), ("HDUCLAS1", "SPECTRUM", None),
                  ("HDUCLAS2", "TOTAL", None), ("HDUCLAS3", "COUNT", None),
                  ("HDUCLAS4", "TYPE:II", "one spectrum per row"), ("DETCHANS", nchan, None),
                  ("CHANTYPE", "PI", None), ("TLMIN4", 0, "first channel"), ("POISSERR", True, None),
                  ("AREASCAL", 1.0, None), ("BACKSCAL", 1.0, None), ("CORRSCAL", 0.0, None),
                  ("BACKFILE", "none", None), ("RESPFILE", "CALDB", None), ("ANCRFILE", "CALDB", None)]
        hdus.append(HDU(cards + meta, rows.tobytes(), nrows * dtype.itemsize, bad_checksum=bad))
    write_fits(path, hdus, compress=spec.compression == "gzip")
