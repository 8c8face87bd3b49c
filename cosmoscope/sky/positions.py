"""Reading what people type for a place on the sky: positions, radii and target names.

A position is a :class:`~astropy.coordinates.SkyCoord`, an ``(ra, dec)`` pair in degrees, text
in degrees (``"10.68 41.27"``, ``"10.68, +41.27"``) or sexagesimal (``"00h42m44s +41d16m"``,
``"00:42:44.3 +41:16:09"``, RA in hours), or a target name. Names are looked up first among the
catalog's own observations (ignoring case, spaces and punctuation), then through astropy's
name resolver (Sesame) when the machine is online; answers are cached.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from cosmoscope.errors import SkyInputError

if TYPE_CHECKING:
    import polars as pl

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DEGREES = re.compile(rf"^\s*({_NUMBER})\s*(?:deg|d|°)?\s*[,\s]\s*({_NUMBER})\s*(?:deg|d|°)?\s*$", re.IGNORECASE)
_SEXAGESIMAL = re.compile(r"^\s*[+-]?\d+(?:\.\d*)?\s*[hd:\s]\s*\d", re.IGNORECASE)
_RADIUS = re.compile(rf"^\s*({_NUMBER})\s*([a-z°'\"]*)\s*$", re.IGNORECASE)
_RADIUS_UNITS = {"": 1.0, "deg": 1.0, "degree": 1.0, "degrees": 1.0, "d": 1.0, "°": 1.0,
                 "arcmin": 1 / 60, "amin": 1 / 60, "'": 1 / 60, "m": 1 / 60,
                 "arcsec": 1 / 3600, "asec": 1 / 3600, '"': 1 / 3600, "s": 1 / 3600}


class UnresolvedNameError(SkyInputError):
    """A target name that is neither in the catalog nor known to the name resolver."""


def normalise_name(name: str) -> str:
    """A target name with case, spaces and punctuation dropped: how forgiving matches compare.

    >>> normalise_name("NGC 253") == normalise_name("ngc-253") == normalise_name("NGC253")
    True
    """
    return re.sub(r"[\W_]+", "", str(name).casefold())


def name_filter(name: str, column: str = "target_object") -> pl.Expr:
    """Rows whose ``column`` equals ``name`` ignoring case, spaces and punctuation."""
    import polars as pl

    wanted = normalise_name(name)
    if not wanted:
        raise SkyInputError(f"the name {name!r} has no letters or digits to match")
    return pl.col(column).str.to_lowercase().str.replace_all(r"[\W_]+", "") == wanted


def parse_radius(value) -> float:
    """A radius in degrees from a number (degrees), an astropy angle or Quantity, or text such
    as ``"30arcmin"``, ``"0.5 deg"``, ``"10 arcsec"``, ``"2'"``.

    >>> parse_radius("30arcmin")
    0.5
    """
    from cosmoscope.sky.shapes import check_radius

    if isinstance(value, bool):
        raise SkyInputError(f"a radius must be an angle, got {value!r}")
    unit = getattr(value, "unit", None)
    if unit is not None:
        import astropy.units as u

        try:
            degrees = float(value.to_value(u.deg))
        except (u.UnitConversionError, TypeError, ValueError):
            raise SkyInputError(f"a radius must be an angle, got {value!r}") from None
    elif isinstance(value, (int, float)):
        degrees = float(value)
    else:
        m = _RADIUS.match(str(value))
        factor = _RADIUS_UNITS.get(m.group(2).lower()) if m else None
        if factor is None:
            raise SkyInputError(
                f"cannot read {value!r} as a radius; write e.g. 0.5 (degrees), 30arcmin or 10arcsec")
        degrees = float(m.group(1)) * factor
    return check_radius(degrees)


def parse_position(value) -> tuple[float, float] | None:
    """(ra, dec) in ICRS degrees from a SkyCoord, a pair, or coordinate text; None if ``value``
    is text that does not look like coordinates (then it may be a target name).

    >>> parse_position("10.68 41.27")
    (10.68, 41.27)
    >>> [round(v, 4) for v in parse_position("00h42m44s +41d16m")]
    [10.6833, 41.2667]
    """
    from cosmoscope.sky.shapes import _check_dec, _check_ra

    if hasattr(value, "icrs"):  # a SkyCoord in any frame
        c = value.icrs
        if not c.isscalar:
            raise SkyInputError("give one position, not an array of SkyCoords")
        return float(c.ra.deg), float(c.dec.deg)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            ra, dec = (float(getattr(v, "deg", v)) for v in value)
        except (TypeError, ValueError):
            raise SkyInputError(f"cannot read {value!r} as (ra, dec) in degrees") from None
    elif isinstance(value, str):
        text = value.strip()
        m = _DEGREES.match(text)
        if m:
            ra, dec = float(m.group(1)), float(m.group(2))
        elif _SEXAGESIMAL.match(text) and (pair := _sexagesimal(text)) is not None:
            ra, dec = pair
        else:
            return None
    else:
        raise SkyInputError(f"cannot read {value!r} as a position; give a SkyCoord, (ra, dec) in degrees, "
                                   "'10.68 41.27' or '00h42m44s +41d16m'")
    _check_ra(ra, "the position")
    _check_dec(dec, "the position")
    return ra % 360.0, dec


def _sexagesimal(text: str) -> tuple[float, float] | None:
    """RA (hours) and Dec read by astropy, or None (then the text is taken as a name: "3C 273")."""
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    try:
        c = SkyCoord(text, unit=(u.hourangle, u.deg), frame="icrs")
    except (ValueError, u.UnitsError):
        return None
    return float(c.ra.deg), float(c.dec.deg)


def catalog_position(frame: pl.LazyFrame, name: str) -> tuple[float, float, int] | None:
    """The mean position of the catalog's observations of ``name`` (forgiving match), and how
    many there are; None if there are none with a position."""
    import numpy as np
    import polars as pl

    from cosmoscope.sky.geometry import lonlat, unit
    from cosmoscope.sky.index import valid_position

    df = frame.filter(name_filter(name)).select("ra", "dec").drop_nulls().collect()
    ok = valid_position(df["ra"].to_numpy(), df["dec"].to_numpy()) if df.height else np.zeros(0, bool)
    if not ok.any():
        return None
    v = unit(df["ra"].to_numpy()[ok], df["dec"].to_numpy()[ok]).sum(axis=0)
    if np.linalg.norm(v) < 1e-12:
        return None
    ra, dec = lonlat(v)
    return float(ra), float(dec), int(ok.sum())


@functools.lru_cache(maxsize=256)
def resolve_online(name: str) -> tuple[float, float]:
    """ICRS degrees of ``name`` from astropy's name resolver (Sesame), cached on disk by astropy
    and in memory here. Raises :class:`UnresolvedNameError` with one sentence otherwise."""
    from astropy.coordinates import SkyCoord
    from astropy.coordinates.name_resolve import NameResolveError

    try:
        c = SkyCoord.from_name(name, cache=True)
    except NameResolveError as exc:
        text = str(exc)
        if "Unable to find coordinates" in text:
            raise UnresolvedNameError(f"the name resolver (Sesame) does not know {name!r}") from None
        raise UnresolvedNameError("the name resolver (Sesame) cannot be reached from this machine "
                                  "(offline?)") from None
    except OSError:
        raise UnresolvedNameError("the name resolver (Sesame) cannot be reached from this machine (offline?)") from None
    return float(c.ra.deg), float(c.dec.deg)


def closest_names(names: list[str], name: str, n: int = 5) -> list[str]:
    """The ``n`` names most like ``name`` (compared without case, spaces and punctuation)."""
    import difflib

    by_norm: dict[str, str] = {}
    for t in names:
        if t is not None:
            by_norm.setdefault(normalise_name(t), t)
    wanted = normalise_name(name)
    close = difflib.get_close_matches(wanted, list(by_norm), n=n, cutoff=0.4)
    contains = [k for k in by_norm if wanted and (wanted in k or k in wanted) and k not in close]
    return [by_norm[k] for k in (close + contains)[:n]]


def shape_of(cat, near, radius, box, polygon, footprints: bool = True):
    """The sky region of :meth:`Catalog.search`'s ``near``/``radius``, ``box`` or ``polygon``
    (None when none is given)."""
    from cosmoscope.sky.shapes import Box, Cone, Polygon

    given = [n for n, v in (("near", near), ("box", box), ("polygon", polygon)) if v is not None]
    if len(given) > 1:
        raise SkyInputError(f"give one sky region, not {' and '.join(given)}")
    if near is None and radius is not None:
        raise SkyInputError("radius needs a centre: give near= as well, e.g. near='10.68 41.27'")
    if near is not None:
        if radius is None:
            raise SkyInputError("a search near a position needs a radius, e.g. radius='30arcmin'")
        radius = parse_radius(radius)  # before a name is looked up: a bad radius says so first
        ra, dec = position_of(cat, near)
        return Cone(ra, dec, radius, footprints)
    if box is not None:
        if isinstance(box, Box):
            return Box(box.ra_min, box.ra_min + box.width, box.dec_min, box.dec_max, footprints)
        try:
            ra_min, ra_max, dec_min, dec_max = (float(v) for v in box)
        except (TypeError, ValueError):
            raise SkyInputError("box must be (ra_min, ra_max, dec_min, dec_max) in degrees") from None
        return Box(ra_min, ra_max, dec_min, dec_max, footprints)
    if polygon is not None:
        vertices = polygon.vertices if isinstance(polygon, Polygon) else polygon
        try:
            vertices = tuple((float(r), float(d)) for r, d in vertices)
        except (TypeError, ValueError):
            raise SkyInputError("polygon must be a list of (ra, dec) vertices in degrees") from None
        return Polygon(vertices, footprints)
    return None


def position_of(cat, near) -> tuple[float, float]:
    """ICRS (ra, dec) in degrees of a position, or of a target name: the mean position of the
    catalog's observations of it, else the name resolver's answer."""
    pos = parse_position(near)
    if pos is not None:
        return pos
    if not str(near).strip():
        raise SkyInputError("near= was given an empty name; give a position or a target name")
    found = catalog_position(cat.observations(), near)
    if found is not None:
        return found[0], found[1]
    try:
        return resolve_online(str(near).strip())
    except UnresolvedNameError as exc:
        close = cat.closest_targets(near)
        hint = f"; targets with similar names here: {', '.join(close)}" if close else ""
        raise UnresolvedNameError(
            f"cannot place {near!r} on the sky: no observation in this catalog has that target and "
            f"{exc}{hint}; give coordinates such as '10.68 41.27' instead") from None
