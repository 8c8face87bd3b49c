"""Coverage maps: the sky a set of observations covers, as a MOC (IVOA Multi-Order Coverage, via
mocpy), and counts of observations per HEALPix cell for all-sky density maps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import mocpy
    import polars as pl

#: Rows read at a time while building a MOC.
_BATCH = 200_000


def coverage_of(frame: pl.LazyFrame, *, max_depth: int = 10, footprints: bool = True) -> mocpy.MOC:
    """The MOC of the rows of ``frame`` (observation columns): the cells of each footprint
    (``s_region`` polygon, else the circle of diameter ``s_fov``) at ``max_depth``, and the cell
    of each position without a footprint."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from mocpy import MOC

    from cosmoscope.errors import SkyInputError
    from cosmoscope.sky.geometry import parse_polygon
    from cosmoscope.sky.index import valid_position

    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or not 0 <= max_depth <= 29:
        raise SkyInputError(f"max_depth must be an integer from 0 to 29, got {max_depth!r}")
    df = frame.select("ra", "dec", "s_fov", "s_region").collect()
    ra, dec = df["ra"].cast(float).to_numpy(), df["dec"].cast(float).to_numpy()
    ok = valid_position(ra, dec)
    fov = df["s_fov"].cast(float).fill_null(0.0).to_numpy() if footprints else np.zeros(df.height)
    regions = df["s_region"].to_list() if footprints else [None] * df.height
    polygons = []
    points = ok.copy()
    for i, text in enumerate(regions):
        if text is not None:
            p = parse_polygon(text)
            if p is not None:
                polygons.append(p)
                points[i] = False
    with np.errstate(invalid="ignore"):
        circles = points & (fov > 0)
    points &= ~circles
    mocs = [MOC.new_empty(max_depth)]
    if points.any():
        mocs.append(MOC.from_lonlat(Longitude(ra[points], u.deg), Latitude(dec[points], u.deg), max_norder=max_depth))
    if circles.any():
        mocs.append(MOC.from_cones(Longitude(ra[circles], u.deg), Latitude(dec[circles], u.deg),
                                   radius=fov[circles] / 2 * u.deg, max_depth=max_depth, union_strategy="small_cones"))
    for start in range(0, len(polygons), _BATCH):
        flat = [a for p in polygons[start:start + _BATCH] for a in (p[:, 0] % 360.0, p[:, 1])]
        mocs.extend(MOC.from_polygons(flat, max_depth=max_depth))  # one MOC per polygon
    return mocs[0].union(*mocs[1:]) if len(mocs) > 1 else mocs[0]


def density(frame: pl.LazyFrame, depth: int = 6) -> pl.DataFrame:
    """Observations per nested HEALPix cell at ``depth`` (by position): columns ``cell``
    (nested index), ``ra``, ``dec`` (its centre, degrees) and ``n``; cells without any are left out.

    >>> cat_density = density(cat.search(mission="XMM"), depth=5)  # doctest: +SKIP
    """
    import astropy.units as u
    import polars as pl
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    from cosmoscope.errors import SkyInputError
    from cosmoscope.sky.index import valid_position

    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= 16:
        raise SkyInputError(f"depth must be an integer from 0 to 16, got {depth!r}")
    df = frame.select("ra", "dec").collect()
    ra, dec = df["ra"].cast(float).to_numpy(), df["dec"].cast(float).to_numpy()
    ok = valid_position(ra, dec)
    cells = nested.lonlat_to_healpix(Longitude(ra[ok] % 360.0, u.deg), Latitude(dec[ok], u.deg), depth)
    uniq, counts = np.unique(cells.astype(np.int64), return_counts=True)
    lon, lat = nested.healpix_to_lonlat(uniq.astype(np.uint64), depth)
    return pl.DataFrame({"cell": uniq, "ra": np.asarray(lon.deg, float), "dec": np.asarray(lat.deg, float),
                         "n": counts.astype(np.int64)})
