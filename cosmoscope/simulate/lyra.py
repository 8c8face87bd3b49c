"""LYRA: an optical survey telescope with legacy FITS conventions.

Raw frames ``lyra/raw/{yyyy}-{mm}-{dd}/LY{seq:06d}.fit`` keep their metadata in the primary
HDU, some with the legacy ``DATE-OBS='dd/mm/yy'`` plus ``TIME-OBS`` and ``RADESYS='FK5'`` (their
CRVALs are the ICRS ground truth rotated to FK5 J2000), and ESO ``HIERARCH`` cards.
Reduced frames ``lyra/reduced/{yyyy}-{mm}-{dd}/LY{seq:06d}_red.fits`` are tile-compressed
(GZIP_1) images in HDU 1 naming their raw frame in ``IMCMB001``; a stack of the reduced frames of
one visit gets the next frame number, ``IMAGETYP='STACK'``, ``NCOMBINE`` and one ``IMCMBnnn``
per input. Stacks are the derived products (calibration level 3). Reduced frames and stacks
state ``DATE-END``: a stack spans its exposures and the readouts between them.
"""

from __future__ import annotations

import math

from cosmoscope.simulate._common import (drop, imperfect, iso, later, obs_window, side_for, sparse_prefix,
                                         written_rows)
from cosmoscope.simulate._fits import HDU, tile_compressed_image, write_fits
from cosmoscope.simulate.plan import CALIBRATED_TO_DERIVED, RAW_TO_CALIBRATED, FileSpec, GroupContext
from cosmoscope.simulate.targets import OPTICAL, TARGETS

MISSION = "LYRA"
INSTRUMENT = "LYCAM"
EXPTIMES = (30.0, 60.0, 120.0, 180.0, 300.0)
READOUT = 20.0  # seconds between the end of one frame and the start of the next
_MISSING = ("INSTRUME", "DATE-OBS", "TIME-OBS", "MJD-OBS")
_MJD_UNIX = 40587.0  # MJD of 1970-01-01
# Rotation from ICRS to FK5 (J2000) direction cosines: the ~20 mas frame bias. Legacy frames
# state RADESYS='FK5', so their CRVALs are the ICRS ground truth rotated by this matrix.
# (Computed with astropy's ICRS -> FK5(equinox=J2000); the tests check it against astropy.)
ICRS_TO_FK5 = (
    (9.9999999999999212e-01, -1.1102233297408327e-07, -4.4118044980967709e-08),
    (1.1102233723050035e-07, 9.9999999999998890e-01, 9.6477922460101289e-08),
    (4.4118034269763261e-08, -9.6477927519581258e-08, 9.9999999999999434e-01),
)


def icrs_to_fk5(ra: float, dec: float) -> tuple[float, float]:
    """FK5 (J2000) coordinates, degrees, of an ICRS position."""
    a, d = math.radians(ra), math.radians(dec)
    v = (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))
    x, y, z = (sum(m * c for m, c in zip(row, v, strict=True)) for row in ICRS_TO_FK5)
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(max(-1.0, min(1.0, z))))


def group_size(rnd) -> int:
    """Files per visit: k raw frames, k reduced frames and one stack (k from 2 to 4)."""
    return 2 * rnd.randint(2, 4) + 1


def missing_keys(spec: FileSpec) -> tuple[str, ...]:
    """Keywords a ``missing_keywords`` fault removes."""
    return _MISSING


def quirk_keys(spec: FileSpec) -> dict[str, tuple[str, ...]]:
    """Keywords each everyday imperfection (see ``plan.QUIRK_KINDS``) leaves out or garbles (a
    missing end costs nothing here, and a raw frame has none: the profile takes it from the
    exposure, which is then never too long)."""
    raw = spec.product == "raw"
    return {"no_target": ("OBJECT",), "no_end": (), "garbled_end": () if raw else ("DATE-END",),
            **({"long_exposure": ()} if raw else {})}


def plan_group(ctx: GroupContext) -> list[FileSpec]:
    """One visit: k exposures of a target, each reduced, then stacked."""
    rnd = ctx.rnd
    k = (ctx.size - 1) // 2
    target = OPTICAL[rnd.randrange(len(OPTICAL))]
    ra, dec = TARGETS[target]
    exptime = EXPTIMES[rnd.randrange(len(EXPTIMES))]
    start, budget = obs_window(ctx, 0.0, 1e9)  # the whole slot; frames share it
    exptime = max(1.0, min(exptime, float(int(budget / k - READOUT)) or 1.0))
    seq0 = 1 + (ctx.files_before + ctx.index) // 2  # each earlier visit used (size + 1) / 2 numbers
    filt = rnd.choice(("g", "r", "i", "V", "R"))
    pipever = rnd.choice(("1.4.2", "1.5.0"))
    visit = {"filter": filt, "program": f"LSS-{rnd.randint(1, 40):03d}",
             "seeing": None, "pipever": pipever}
    raws, reds = [], []
    for f in range(k):
        t = later(start, seconds=f * (exptime + READOUT))
        end = later(t, seconds=exptime)
        seq = seq0 + f
        day = f"{t:%Y-%m-%d}"
        extra = {**visit, "seq": seq, "legacy_date": rnd.random() < 0.4,
                 "seeing": round(rnd.uniform(0.6, 2.2), 2), "airmass": round(rnd.uniform(1.0, 2.0), 3),
                 "ccd_temp": round(rnd.uniform(-101.0, -99.0), 2), "focus": rnd.randint(11800, 12400),
                 "dra": rnd.uniform(-5, 5) / 3600, "ddec": rnd.uniform(-5, 5) / 3600,
                 "created": later(end, seconds=5)}
        raw = FileSpec(
            relpath=f"lyra/raw/{day}/LY{seq:06d}.fit", mission=MISSION, satellite=MISSION,
            instrument=INSTRUMENT, product="raw", calib_level=1, file_format="fits", start=t,
            end=end, target=target, ra=round(ra + extra["dra"], 6), dec=round(dec + extra["ddec"], 6),
            exposure=exptime, version=None, dataproduct_type="image", extra=extra)
        raws.append(raw)
        reds.append(FileSpec(
            relpath=f"lyra/reduced/{day}/LY{seq:06d}_red.fits", mission=MISSION, satellite=MISSION,
            instrument=INSTRUMENT, product="reduced", calib_level=2, file_format="fits", start=t,
            end=end, target=target, ra=raw.ra, dec=raw.dec, exposure=exptime, version=pipever,
            dataproduct_type="image", parents=(raw.relpath,), relationship=RAW_TO_CALIBRATED,
            compression="tile", extra={**extra, "legacy_date": False, "created": later(end, hours=6)}))
    seq = seq0 + k
    stack = FileSpec(
        relpath=f"lyra/reduced/{start:%Y-%m-%d}/LY{seq:06d}_red.fits", mission=MISSION,
        satellite=MISSION, instrument=INSTRUMENT, product="stack", calib_level=3, file_format="fits",
        start=raws[0].start, end=raws[-1].end, target=target, ra=round(ra, 6), dec=round(dec, 6),
        exposure=exptime * k, version=pipever, dataproduct_type="image",
        parents=tuple(r.relpath for r in reds), relationship=CALIBRATED_TO_DERIVED,
        compression="tile",
        extra={**reds[0].extra, "seq": seq, "dra": 0.0, "ddec": 0.0,
               "created": later(raws[-1].end, hours=7)})
    return raws + reds + [stack]


def _cards(spec: FileSpec, naxis1: int, naxis2: int, reduced: bool) -> list[tuple]:
    x = spec.extra
    cards = [("TELESCOP", spec.satellite, "telescope"), ("INSTRUME", spec.instrument, "camera"),
             ("OBSERVAT", "LYRA", None), ("OBJECT", spec.target, "target of the observation"),
             ("IMAGETYP", {"raw": "LIGHT", "reduced": "REDUCED", "stack": "STACK"}[spec.product],
              "type of frame"),
             ("FILTER", x["filter"], "filter name"), ("FRAMENUM", x["seq"], "running frame number")]
    if x["legacy_date"]:
        cards += [("DATE-OBS", f"{spec.start:%d/%m/%y}", "date of observation (dd/mm/yy, UTC)"),
                  ("TIME-OBS", f"{spec.start:%H:%M:%S}", "start time of observation (UTC)")]
    else:
        cards.append(("DATE-OBS", iso(spec.start), "start of observation (UTC)"))
    if spec.product != "raw":  # the pipeline states the end; for a stack it is not start + EXPTIME
        cards.append(("DATE-END", iso(spec.end), "end of the last exposure (UTC)"))
    crval = icrs_to_fk5(spec.ra, spec.dec) if x["legacy_date"] else (spec.ra, spec.dec)
    mjd = _MJD_UNIX + spec.start.timestamp() / 86400.0
    cards += [("MJD-OBS", round(mjd, 8), "[d] modified Julian date of start"),
              ("EXPTIME", spec.exposure, "[s] exposure time"),
              ("AIRMASS", x["airmass"], "airmass at start"),
              ("RADESYS", "FK5" if x["legacy_date"] else "ICRS", "celestial reference frame"),
              ("EQUINOX", 2000.0, "equinox of the coordinates"),
              ("CTYPE1", "RA---TAN", None), ("CTYPE2", "DEC--TAN", None),
              ("CRPIX1", naxis1 / 2 + 0.5, None), ("CRPIX2", naxis2 / 2 + 0.5, None),
              ("CRVAL1", crval[0], "[deg] right ascension at reference pixel"),
              ("CRVAL2", crval[1], "[deg] declination at reference pixel"),
              ("CD1_1", -0.000111111, None), ("CD1_2", 0.0, None), ("CD2_1", 0.0, None),
              ("CD2_2", 0.000111111, None),
              ("GAIN", 1.45, "[e-/ADU] detector gain"), ("RDNOISE", 4.2, "[e-] read noise"),
              ("CCDSUM", "1 1", "on-chip binning"),
              ("HIERARCH LYRA SEEING FWHM", x["seeing"], "[arcsec] seeing at start"),
              ("HIERARCH LYRA DET CCD TEMP", x["ccd_temp"], "[C] detector temperature"),
              ("HIERARCH LYRA TEL FOCUS POS", x["focus"], "[um] focus position"),
              ("HIERARCH LYRA OBS PROG ID", x["program"], "survey programme"),
              ("ORIGIN", "LYRA Observatory", None), ("DATE", iso(x["created"]), "file written (UTC)")]
    if reduced:
        names = [p.rsplit("/", 1)[-1] for p in spec.parents]
        cards += [("BUNIT", "ADU", None), ("PIPEVER", spec.version, "reduction pipeline version"),
                  ("NCOMBINE", len(names), "number of frames combined")]
        cards += [(f"IMCMB{i:03d}", name, "input frame") for i, name in enumerate(names, 1)]
    if spec.fault == "missing_keywords":
        cards = drop(cards, _MISSING)
    return imperfect(cards, spec)


def write(spec: FileSpec, path) -> None:
    """Write one LYRA frame: raw (``.fit``) or reduced/stacked (tile-compressed ``.fits``)."""
    import numpy as np

    rng = np.random.default_rng(spec.data_seed)
    bad = spec.fault == "bad_checksum"
    if spec.product == "raw":
        side = side_for(spec.size_hint, 2, 64)
        written = written_rows(spec.size_hint, side, 2 * side)
        counts = rng.normal(1000.0, 12.0, (written, side)) + 32768.0
        image = (counts.clip(0, 65535) - 32768).astype(">i2")
        cards = [("SIMPLE", True, "conforms to FITS standard"), ("BITPIX", 16, None), ("NAXIS", 2, None),
                 ("NAXIS1", side, None), ("NAXIS2", side, None), ("EXTEND", True, None),
                 ("BZERO", 32768, "data are unsigned 16-bit"), ("BSCALE", 1, None)]
        hdu = HDU(cards + _cards(spec, side, side, reduced=False),
                  sparse_prefix(image.tobytes(), spec.size_hint), side * side * 2, bad_checksum=bad)
        write_fits(path, [hdu])
        return
    side = side_for(spec.size_hint, 4, 64)
    if spec.size_hint:  # whole 64-pixel multiples, so that worker caches of zero tiles get hits
        side -= side % 64
    tile_rows = max(1, min(16, 262144 // (4 * side)))  # tiles of at most 256 kB
    image = rng.normal(0.0, 3.0, (min(tile_rows, side), side)).astype(">f4")
    if spec.size_hint:  # noise does not compress: keep it to the first 8 kB of the first tile
        image.reshape(-1)[2048:] = 0.0
    primary = HDU([("SIMPLE", True, "conforms to FITS standard"), ("BITPIX", 8, None),
                   ("NAXIS", 0, None), ("EXTEND", True, None)])
    comp = tile_compressed_image(_cards(spec, side, side, reduced=True), image, side, side, tile_rows,
                                 bad_checksum=bad)
    write_fits(path, [primary, comp])
