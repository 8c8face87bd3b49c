"""Right ascension and declination from header values, brought to ICRS degrees.

Headers give positions in degrees or as sexagesimal text (RA in hours), in the frame named by
``RADESYS``/``RADECSYS`` and ``EQUINOX``. FK5 and FK4 positions are converted to ICRS with
:mod:`astropy.coordinates`; the FK5→ICRS rotation for an equinox is computed once and cached
(a 3×3 matrix), so converting a file costs microseconds, not the milliseconds of a SkyCoord
transform.
"""

from __future__ import annotations

import functools
import math
import re

_SEXA = re.compile(r"^([+-]?)\s*(\d{1,3})[:\sHhDd°]+(\d{1,2})[:\sMm']+(\d{1,2}(?:\.\d*)?)[sS\"]?$")


class CoordinateError(ValueError):
    """A position value is present but cannot be read."""


def parse_angle(value, *, hours: bool = False) -> float:
    """Degrees from a number or sexagesimal text (``hours`` for RA text like ``12:29:06.7``).

    >>> parse_angle("12:30:00", hours=True)
    187.5
    >>> parse_angle("-25:17:16.8")
    -25.288
    """
    if isinstance(value, bool):
        raise CoordinateError(f"{value!r} is not an angle")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _SEXA.match(text)
    if not m:
        raise CoordinateError(f"{text!r} is not an angle in degrees or sexagesimal form")
    sign = -1.0 if m.group(1) == "-" else 1.0
    deg = float(m.group(2)) + float(m.group(3)) / 60 + float(m.group(4)) / 3600
    return round(sign * deg * (15.0 if hours else 1.0), 10)


def frame_of(radesys, equinox) -> tuple[str, float | None]:
    """The reference frame a header means, following the FITS WCS paper II defaults.

    >>> frame_of(None, 2000.0)
    ('fk5', 2000.0)
    >>> frame_of("ICRS", None)
    ('icrs', None)
    """
    sys_ = str(radesys).strip().upper() if radesys else ""
    eq = None
    if equinox is not None:
        try:
            eq = float(str(equinox).strip().lstrip("JjBb"))
        except ValueError:
            eq = None
    if sys_ in ("ICRS", "GAPPT") or (not sys_ and eq is None):
        return "icrs", None
    if sys_ == "FK4" or sys_ == "FK4-NO-E" or (not sys_ and eq is not None and eq < 1984.0):
        return "fk4", eq or 1950.0
    return "fk5", eq or 2000.0


@functools.lru_cache(maxsize=64)
def _fk5_matrix(equinox: float):
    from astropy.coordinates import FK5, ICRS, CartesianRepresentation, SkyCoord
    import numpy as np

    eye = CartesianRepresentation(np.eye(3))
    out = SkyCoord(eye, frame=FK5(equinox=f"J{equinox}")).transform_to(ICRS())
    cart = out.cartesian
    m = np.array([cart.x.value, cart.y.value, cart.z.value])  # columns: images of x, y, z
    return tuple(tuple(float(v) for v in row) for row in m)  # plain floats: fast scalar maths


def to_icrs(ra: float, dec: float, frame: str, equinox: float | None) -> tuple[float, float]:
    """Convert a position in ``frame`` (``icrs``, ``fk5``, ``fk4``) to ICRS degrees."""
    if not (math.isfinite(ra) and math.isfinite(dec)):
        raise CoordinateError("position is not a finite number")
    if frame == "icrs":
        return ra, dec
    if frame == "fk5":
        m = _fk5_matrix(float(equinox or 2000.0))
        r, d = math.radians(ra), math.radians(dec)
        v = (math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d))
        (a, b, c), (d_, e, f), (g, h, k) = m
        x = a * v[0] + b * v[1] + c * v[2]
        y = d_ * v[0] + e * v[1] + f * v[2]
        z = g * v[0] + h * v[1] + k * v[2]
        ra_out = math.degrees(math.atan2(y, x)) % 360.0
        dec_out = math.degrees(math.asin(max(-1.0, min(1.0, z))))
        return ra_out, dec_out
    from astropy.coordinates import FK4, ICRS, SkyCoord
    import astropy.units as u

    c = SkyCoord(ra * u.deg, dec * u.deg, frame=FK4(equinox=f"B{equinox or 1950.0}"))
    out = c.transform_to(ICRS())
    return float(out.ra.deg), float(out.dec.deg)
