"""Sky searches as polars filters: a pushable ``sky_index`` range test AND the exact test.

:func:`sky_filter` is what ``Catalog.search(near=..., radius=...)`` and the TAP service's
``CONTAINS``/``INTERSECTS``/``DISTANCE`` become. The first part reaches the store (an OR of
``between`` tests on ``sky_index``, see :mod:`cosmoscope.sky.index`); the second is evaluated by
polars on the rows the store returns, with numpy:

- a row matches when its position (``ra``, ``dec``) lies in the shape, or
- when footprints count, its footprint overlaps the shape: the ``s_region`` polygon when it
  has one, else the circle of diameter ``s_fov`` around its position.

Positions off the sky (RA outside 0-360°, Dec beyond ±90°, null or NaN) never match.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cosmoscope.sky.geometry import lonlat, polygons_of, unit
from cosmoscope.sky.index import index_filter, sky_index, valid_position
from cosmoscope.sky.shapes import Shape

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa


@dataclass(frozen=True)
class Columns:
    """Where a frame keeps the columns a sky test reads (observations, or ObsCore names)."""

    ra: str = "ra"
    dec: str = "dec"
    fov: str = "s_fov"
    region: str = "s_region"

    @property
    def names(self) -> list[str]:
        return [self.ra, self.dec, self.fov, self.region]


OBSERVATION_COLUMNS = Columns()
OBSCORE_COLUMNS = Columns("s_ra", "s_dec", "s_fov", "s_region")


def sky_filter(shape: Shape) -> pl.Expr:
    """The polars filter of observation rows in (or, with footprints, overlapping) ``shape``:
    the ``sky_index`` ranges first, so the store reads only the rows near it, then the exact test."""
    return index_filter(*shape.bounding_cone()) & exact_filter(shape)


def exact_filter(shape: Shape, columns: Columns = OBSERVATION_COLUMNS) -> pl.Expr:
    """The exact test of ``shape`` as a polars expression (numpy inside, row by row)."""
    import polars as pl

    return pl.struct(columns.names).map_batches(
        functools.partial(_matches, shape, columns), return_dtype=pl.Boolean, is_elementwise=True)


def _matches(shape: Shape, columns: Columns, batch: pl.Series) -> pl.Series:
    import polars as pl

    n = len(batch)
    if n == 0:
        return pl.Series(values=[], dtype=pl.Boolean)
    parts = batch.struct.unnest()
    ra = parts[columns.ra].cast(pl.Float64).to_numpy().astype(float, copy=False)
    dec = parts[columns.dec].cast(pl.Float64).to_numpy().astype(float, copy=False)
    ok = valid_position(ra, dec)
    hit = np.zeros(n, dtype=bool)
    if ok.any():
        hit[ok] = shape.contains(ra[ok], dec[ok])
    if shape.footprints:
        regions = parts[columns.region]
        fov = parts[columns.fov].cast(pl.Float64).to_numpy().astype(float, copy=False)
        has_region = regions.is_not_null().to_numpy()
        todo = np.flatnonzero(~hit & has_region)
        if len(todo):
            polys, where = polygons_of(regions.gather(todo).to_list())
            if len(polys):
                hit[todo[where]] = shape.overlaps_polygons(polys)
        with np.errstate(invalid="ignore"):
            circles = ~hit & ~has_region & ok & (fov > 0)
        if circles.any():
            hit[circles] = shape.overlaps_circles(ra[circles], dec[circles], fov[circles] / 2)
    return pl.Series(values=hit, dtype=pl.Boolean)


def footprint_radius(ra, dec, fov, regions) -> np.ndarray:
    """Per row, the radius (degrees) of the circle around its position that holds its footprint:
    half ``s_fov``, or more if an ``s_region`` vertex lies farther. 0 without a footprint."""
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    with np.errstate(invalid="ignore"):
        radius = np.where(np.asarray(fov, dtype=float) > 0, np.asarray(fov, dtype=float) / 2, 0.0)
    radius = np.nan_to_num(radius, nan=0.0)
    polys, where = polygons_of(regions)
    if len(polys):
        ok = valid_position(ra[where], dec[where])
        centres = unit(ra[where], dec[where])
        far = polys.vertices_distance(np.where(ok[:, None], centres, polys.centres()))
        radius[where] = np.maximum(radius[where], np.where(ok, far, 180.0))
    return radius


#: Columns whose change changes the derived sky columns.
SKY_INPUTS = ("ra", "dec", "s_fov", "s_region")


def derive(data: pa.Table) -> pa.Table:
    """Fill the sky columns that follow from the others: ``sky_index`` always; ``ra``/``dec``
    (the footprint's centre) and ``s_fov`` (the diameter of the circle about that centre that
    holds the footprint) from an ``s_region`` polygon when they are missing.

    ``data`` holds whole rows: a sky column it lacks counts as null (the catalog fills them from
    the stored rows before a partial write). Raises
    :class:`~cosmoscope.errors.InvalidArgumentError` for an ``s_region`` that is not an STC-S polygon.
    """
    import pyarrow as pa

    from cosmoscope.errors import InvalidArgumentError

    names = data.column_names
    if not any(c in names for c in SKY_INPUTS):
        return data
    n = data.num_rows

    def floats(name):
        if name not in names:
            return np.full(n, np.nan)
        return data.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)

    ra, dec, fov = floats("ra"), floats("dec"), floats("s_fov")
    regions = data.column("s_region").to_pylist() if "s_region" in names else [None] * n
    polys, where = polygons_of(regions)
    bad = [i for i, r in enumerate(regions) if r is not None and i not in set(where.tolist())]
    if bad:
        raise InvalidArgumentError(
            f"s_region {regions[bad[0]]!r} is not an STC-S polygon such as 'POLYGON ICRS 10 40 11 40 11 41'")
    if len(polys):  # positions and sizes from footprints where none is given
        centres = polys.centres()
        cra, cdec = lonlat(centres)
        missing = np.isnan(ra[where]) & np.isnan(dec[where])
        ra[where[missing]], dec[where[missing]] = cra[missing], cdec[missing]
        no_size = np.isnan(fov[where])
        fov[where[no_size]] = 2 * polys.vertices_distance(centres)[no_size]
    out = data
    for name, values in (("ra", ra), ("dec", dec), ("s_fov", fov)):
        if name in names or len(polys):
            arr = pa.array(values, pa.float64(), mask=np.isnan(values))
            out = _put(out, name, arr)
    index = sky_index(ra, dec, footprint_radius(ra, dec, fov, regions))
    return _put(out, "sky_index", pa.array(index, pa.int64(), mask=index < 0))


def _put(data: pa.Table, name: str, column) -> pa.Table:
    if name in data.column_names:
        return data.set_column(data.column_names.index(name), name, column)
    return data.append_column(name, column)
