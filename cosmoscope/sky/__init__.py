"""Positions on the sky: cone, box and polygon searches, footprints, names and coverage.

- :mod:`~cosmoscope.sky.shapes`: the regions a search asks about (:class:`Cone`, :class:`Box`,
  :class:`Polygon`), each with exact tests on many rows at once;
- :mod:`~cosmoscope.sky.index`: the HEALPix ``sky_index`` column and the ranges a search pushes
  to the store;
- :mod:`~cosmoscope.sky.search`: a shape as a polars filter (pushable part and exact part);
- :mod:`~cosmoscope.sky.positions`: reading "10.68 41.27", "00h42m44s +41d16m", SkyCoords,
  radii such as "30arcmin", and target names;
- :mod:`~cosmoscope.sky.coverage`: MOCs of what was observed (mocpy);
- :mod:`~cosmoscope.sky.geometry`: the spherical vector maths underneath.
"""

from cosmoscope.sky.shapes import Box, Cone, Polygon, Shape

__all__ = ["Box", "Cone", "Polygon", "Shape"]
