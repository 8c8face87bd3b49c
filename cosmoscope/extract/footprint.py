"""Footprints of FITS images from their celestial WCS (astropy.wcs), as ICRS polygons.

The first image HDU (plain or tile-compressed, at least two axes) whose first two axes are
celestial (RA/Dec, galactic or ecliptic; not helioprojective or solar) gives the footprint: its
pixel border mapped to the sky and brought to ICRS, corners only for small images, a few
points per side for large ones (whose sides are not great circles in ICRS). An image whose
border leaves the projection (an all-sky Aitoff map) or whose footprint reaches farther than
90° from its centre has no polygon, only ``s_fov`` (360° for all-sky maps).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_CELESTIAL = ("RA--", "DEC-", "GLON", "GLAT", "ELON", "ELAT")
#: Keywords a celestial WCS may use (FITS WCS papers I-II, SIP distortion).
_WCS_KEY = re.compile(r"^(NAXIS\d?|WCSAXES|CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|"
                      r"PS\d_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH|A_\w+|B_\w+|AP_\w+|BP_\w+)$")
#: Points per side of a large footprint (more than 1° across) in a projection other than TAN.
_SIDE_POINTS = 4
_COS_ONE_DEGREE = float(np.cos(np.radians(1.0)))


def _is_celestial(h) -> bool:
    c1, c2 = (str(h.get(k) or "").strip().upper() for k in ("CTYPE1", "CTYPE2"))
    return c1[:4] in _CELESTIAL and c2[:4] in _CELESTIAL


def footprint_of(hdus: list[dict], headers: list) -> dict[str, Any] | None:
    """``{"s_region", "s_fov", "ra", "dec", "label"}`` of the first celestial image HDU, or None.

    ``s_region`` is None for all-sky maps; ``ra``/``dec`` are the footprint's centre.
    """
    for d, h in zip(hdus, headers):
        shape = d.get("shape") or []
        if d["type"] not in ("IMAGE", "COMPRESSED_IMAGE") or len(shape) < 2 or min(shape[:2]) < 1:
            continue
        if not _is_celestial(h):
            continue
        try:
            found = _footprint(h, shape[0], shape[1])
        except Exception as exc:  # noqa: BLE001 - a WCS astropy cannot read gives no footprint, not a failure
            log.debug("no footprint from HDU %s: %s", d["index"], exc)
            continue
        if found is not None:
            ctype = str(h.get("CTYPE1") or "").strip()
            found["label"] = f"FITS[{d['index']}]:WCS({ctype})"
            return found
    return None


def _footprint(h, n1: int, n2: int) -> dict[str, Any] | None:
    from astropy.wcs import WCSSUB_LATITUDE, WCSSUB_LONGITUDE, Wcsprm

    # Only the WCS cards, given to wcslib as text: astropy.wcs.WCS would first verify every
    # card of the header in Python (10 ms for 160 cards); this takes 0.03 ms. A handful of
    # points follow, so plain floats beat numpy arrays below.
    cards = [c for c in h.cards if _WCS_KEY.match(c[:8].rstrip()) and not c.startswith("NAXIS")]
    if not any(c.startswith(("CDELT", "CD1_", "CD2_")) for c in cards):
        return None  # no pixel scale: wcslib's default of 1° a pixel would invent a footprint
    text = "".join(cards).encode("ascii", "replace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = Wcsprm(header=text, relax=True)
        full.fix()
        wcs = full.sub([WCSSUB_LONGITUDE, WCSSUB_LATITUDE])
        wcs.set()
        # Gnomonic (TAN) projections map great circles to straight lines: the corners are exact.
        per_side = 1 if wcs.ctype[0][5:8].upper() in ("TAN", "TPV") else _SIDE_POINTS
        pixels = _border(n1, n2, per_side) + [((n1 - 1) / 2, (n2 - 1) / 2)]  # the centre last
        world = wcs.p2s(np.array(pixels, dtype=float), 0)["world"]
    points = _to_icrs(wcs, text, world[:, 0].tolist(), world[:, 1].tolist())
    cra, cdec = points.pop()
    if not (math.isfinite(cra) and math.isfinite(cdec)):
        return None
    if not all(math.isfinite(a) and math.isfinite(b) for a, b in points):  # off the projection: all-sky
        return {"s_region": None, "s_fov": 360.0, "ra": cra, "dec": cdec}
    vectors = [_unit(a, b) for a, b in points]
    if per_side > 1:
        c = vectors[::per_side]
        if min(_dot(c[0], c[2]), _dot(c[1], c[3])) > _COS_ONE_DEGREE:  # small: its corners suffice
            points, vectors = points[::per_side], c
    total = [sum(v[k] for v in vectors) for k in range(3)]
    norm = math.sqrt(_dot(total, total))
    centre = [t / norm for t in total]
    reach = math.degrees(math.acos(max(-1.0, min(1.0, min(_dot(v, centre) for v in vectors)))))
    if reach >= 90.0:
        return {"s_region": None, "s_fov": float(min(360.0, 2 * reach)), "ra": cra, "dec": cdec}
    region = "POLYGON ICRS " + " ".join(f"{a % 360.0:.9f} {b:.9f}" for a, b in points)
    return {"s_region": region, "s_fov": 2 * reach, "ra": cra, "dec": cdec}


def _unit(ra: float, dec: float) -> list[float]:
    r, d = math.radians(ra), math.radians(dec)
    return [math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)]


def _dot(u, v) -> float:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _border(n1: int, n2: int, per_side: int) -> list[tuple[float, float]]:
    """Pixel coordinates (0-based) around the image's outer edge, anticlockwise from a corner."""
    lo1, hi1, lo2, hi2 = -0.5, n1 - 0.5, -0.5, n2 - 0.5
    out = []
    for k in range(per_side):
        out.append((lo1 + k / per_side * (hi1 - lo1), lo2))
    for k in range(per_side):
        out.append((hi1, lo2 + k / per_side * (hi2 - lo2)))
    for k in range(per_side):
        out.append((hi1 - k / per_side * (hi1 - lo1), hi2))
    for k in range(per_side):
        out.append((lo1, hi2 - k / per_side * (hi2 - lo2)))
    return out


def _to_icrs(wcs, header: bytes, lon: list[float], lat: list[float]) -> list[tuple[float, float]]:
    """World coordinates of the WCS's celestial frame, in ICRS degrees."""
    from cosmoscope.extract.coords import frame_of, to_icrs

    ctype = wcs.ctype[0].upper()
    if ctype.startswith("RA"):
        frame, eq = frame_of(wcs.radesys or None, wcs.equinox if math.isfinite(wcs.equinox) else None)
        if frame != "fk4":  # ICRS as is, FK5 by a cached rotation: microseconds
            return [to_icrs(a % 360.0, b, frame, eq) if math.isfinite(a) and math.isfinite(b) else (math.nan, math.nan)
                    for a, b in zip(lon, lat)]
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS
    from astropy.wcs.utils import wcs_to_celestial_frame

    frame = wcs_to_celestial_frame(WCS(header.decode("ascii"), naxis=[1, 2]))  # galactic, ecliptic, FK4
    lon, lat = np.array(lon), np.array(lat)
    ok = np.isfinite(lon) & np.isfinite(lat)
    ra, dec = np.full(len(lon), np.nan), np.full(len(lon), np.nan)
    if ok.any():
        c = SkyCoord(lon[ok] * u.deg, lat[ok] * u.deg, frame=frame).icrs
        ra[ok], dec[ok] = c.ra.deg, c.dec.deg
    return list(zip(ra.tolist(), dec.tolist()))
