"""The HEALPix index kept on every observation row, and the ranges a sky search asks the store for.

``sky_index`` is the NUNIQ number (``4 * 4**depth + cell``) of the nested HEALPix cell
(cdshealpix's numbering, :func:`nested_cell`) that holds the row's position, at a depth chosen
by the size of its footprint: rows without a footprint sit at depth :data:`POINT_DEPTH` (cells
of about 3 arcsec), a footprint of radius ``r`` at the deepest of :data:`LEVELS` whose bound
:func:`reach` is at least ``r``, all-sky products at depth 0. A row whose footprint reaches a region is then
always found by looking, at each level, in the cells that meet the region widened by that
level's bound: a few ranges of ``sky_index`` per level, an OR of ``between`` tests on one
column, which every store pushes down. The exact test runs afterwards on the rows found.

No global state is needed (a huge footprint does not widen every search, only its own level),
and the index follows from the row's own ``ra``, ``dec``, ``s_fov`` and ``s_region``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

#: Depths of the levels, coarsest first.
LEVELS = (0, 2, 4, 6, 8, 10, 12, 14, 16)
#: Depth of rows that have a position and no footprint.
POINT_DEPTH = LEVELS[-1]
#: Extra degrees added to every search region, so rounding never loses a row on a cell edge.
MARGIN = 1e-6
#: Most ranges asked for per level: closer ones are merged (a superset: the exact test follows).
MAX_RANGES = 8


def reach(depth: int) -> float:
    """Largest footprint radius (degrees) kept at ``depth``: about a cell's size there."""
    if depth == 0:
        return 180.0
    return math.degrees(math.sqrt(4 * math.pi / (12 * 4 ** depth)))


def depth_for(radius: np.ndarray) -> np.ndarray:
    """The level depth for footprints of ``radius`` degrees (0 for a row with no footprint)."""
    radius = np.nan_to_num(np.asarray(radius, dtype=float), nan=0.0)
    out = np.full(len(radius), LEVELS[0], dtype=np.int64)
    for d in LEVELS[1:]:
        out = np.where(radius <= reach(d), d, out)
    return out


def sky_index(ra, dec, radius) -> np.ndarray:
    """``sky_index`` of positions (degrees) with footprints of ``radius`` degrees (NaN or 0: none).

    Positions that are not on the sky (a Dec beyond ±90°, an RA outside 0-360°, NaN) get -1,
    which callers store as null.
    """
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    out = np.full(len(ra), -1, dtype=np.int64)
    ok = valid_position(ra, dec)
    depth = depth_for(radius)
    for d in np.unique(depth[ok]):
        sel = ok & (depth == d)
        out[sel] = nested_cell(ra[sel], dec[sel], int(d)) + 4 * 4 ** int(d)
    return out


def nested_cell(ra, dec, depth: int) -> np.ndarray:
    """The nested HEALPix cell at ``depth`` of each position (degrees, on the sky): the numbers
    ``cdshealpix.nested.lonlat_to_healpix`` gives, to the bit (a test compares them, cell
    corners included).

    cdshealpix's own arithmetic (``d0h_lh_in_d0c`` and ``Layer::hash`` of cds-healpix-rust)
    written in numpy, because importing cdshealpix imports astropy.coordinates: 0.2-0.4 s of a
    small folder's ingest, which needs nothing else from it (searches do, and import it then).
    """
    lon = np.radians(np.asarray(ra, dtype=float) % 360.0)
    lat = np.radians(np.asarray(dec, dtype=float))
    x = lon * (4.0 / np.pi)
    q = x.astype(np.int64) | 1  # odd: the middle of the base cell's quarter of the sky
    x_pm1 = x - q  # in [-1, 1)
    quarter = (q & 7) >> 1
    # Equatorial belt: a cylindrical equal-area projection; a position on a base cell's S->E or
    # S->W edge belongs to that cell, as in cdshealpix.
    y_pm1 = np.sin(lat) * 1.5
    q01 = (x_pm1 > y_pm1).astype(np.int64)
    q12 = (x_pm1 >= -y_pm1).astype(np.int64)
    q013 = q01 + (1 - q12)
    base = (q013 << 2) + ((quarter + (q01 & q12)) & 3)
    x_proj = x_pm1 - (q01 + q12 - 1)
    y_proj = y_pm1 + q013
    # Polar caps: Collignon projections.
    north, south = lat > _TRANSITION_LATITUDE, lat < -_TRANSITION_LATITUDE
    s = np.sqrt(6.0) * np.cos(0.5 * lat + np.where(north, np.pi / 4, -np.pi / 4))
    x_proj = np.where(north | south, x_pm1 * s, x_proj)
    y_proj = np.where(north, 2.0 - s, np.where(south, s, y_proj))
    base = np.where(north, quarter, np.where(south, quarter + 8, base))
    nside = 1 << depth
    # Small negative values from rounding count as 0, as cdshealpix's cast to an unsigned integer does.
    i = np.minimum(np.maximum((y_proj + x_proj) * (nside / 2), 0.0).astype(np.int64), nside - 1)
    j = np.minimum(np.maximum((y_proj - x_proj) * (nside / 2), 0.0).astype(np.int64), nside - 1)
    return (base << (2 * depth)) | _spread(i) | (_spread(j) << 1)


#: Latitude (radians) where the polar caps begin: asin(2/3), cdshealpix's constant.
_TRANSITION_LATITUDE = 0.7297276562269663


def _spread(v: np.ndarray) -> np.ndarray:
    """The bits of ``v`` (< 2**30) moved to the even positions (the nested scheme interleaves x and y)."""
    v = v.astype(np.int64)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << shift)) & mask
    return v


def valid_position(ra, dec) -> np.ndarray:
    """Whether RA is within 0-360° and Dec within ±90° (NaN is neither)."""
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    with np.errstate(invalid="ignore"):
        return (ra >= 0.0) & (ra <= 360.0) & (dec >= -90.0) & (dec <= 90.0)


def _cells(ra: float, dec: float, radius: float, depth: int) -> np.ndarray:
    """Half-open ranges [lo, hi) of nested cells at ``depth`` meeting the cone, merged."""
    from astropy.coordinates import Latitude, Longitude
    import astropy.units as u
    from cdshealpix import nested

    n_cells = 12 * 4 ** depth
    if radius >= 179.0:
        return np.array([[0, n_cells]], dtype=np.int64)
    # Search where a cell is about a quarter of the radius (the cover is then about twice the
    # cone's area); deeper levels take those cells as whole ranges of their own cells.
    coarse = int(np.clip(math.floor(math.log2(234.0 / max(radius, 1e-9))), 0, depth))
    cells, depths, _ = nested.cone_search(Longitude(ra, u.deg), Latitude(dec, u.deg), radius * u.deg,
                                          depth=coarse, flat=False)
    shift = 2 * (depth - depths.astype(np.int64))
    lo = cells.astype(np.int64) << shift
    hi = (cells.astype(np.int64) + 1) << shift
    order = np.argsort(lo)
    lo, hi = lo[order], hi[order]
    return _merge(lo, hi)


def _merge(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Touching ranges joined, then the closest merged while more than :data:`MAX_RANGES`
    remain, as long as the cells taken in do not exceed the cells asked for (cells close in
    number can be far apart on the sky: a gap is never allowed to more than double the read)."""
    if not len(lo):
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.concatenate([[True], lo[1:] > hi[:-1]])
    idx = np.flatnonzero(starts)
    lo = lo[idx]
    hi = np.maximum.reduceat(hi, idx)
    budget = int((hi - lo).sum())
    while len(lo) > MAX_RANGES:
        gaps = lo[1:] - hi[:-1]
        k = int(np.argmin(gaps))
        if gaps[k] > budget:
            break
        budget -= int(gaps[k])
        hi = np.delete(hi, k)
        lo = np.delete(lo, k + 1)
    return np.stack([lo, hi], axis=1)


def ranges_for(ra: float, dec: float, radius: float) -> list[tuple[int, int]]:
    """``sky_index`` ranges [lo, hi) holding every row whose position or footprint may reach
    the cone (``ra``, ``dec``, ``radius`` degrees)."""
    out = []
    for depth in LEVELS:
        widened = min(180.0, radius + reach(depth) + MARGIN)
        base = 4 * 4 ** depth
        out.extend((base + int(lo), base + int(hi)) for lo, hi in _cells(ra, dec, widened, depth))
    return out


def index_filter(ra: float, dec: float, radius: float, column: str = "sky_index") -> pl.Expr:
    """The pushable part of a sky search: ``column`` within one of :func:`ranges_for`'s ranges."""
    import polars as pl

    col = pl.col(column)
    terms = [col.is_between(lo, hi - 1, closed="both") for lo, hi in ranges_for(ra, dec, radius)]
    while len(terms) > 1:  # a balanced OR: polars plans it twice as fast as a long chain
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]
