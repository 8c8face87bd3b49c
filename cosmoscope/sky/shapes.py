"""The regions a sky search asks about: a cone, a coordinate box, a polygon.

Each shape answers, exactly and for many rows at once, whether it contains points (the rows'
``ra``/``dec``), overlaps circles (footprints known only by ``s_fov``) and overlaps polygons
(footprints known by ``s_region``), and gives a cone that bounds it, which the HEALPix index
turns into ranges the store can search (:mod:`cosmoscope.sky.index`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cosmoscope.errors import SkyInputError
from cosmoscope.sky.geometry import Polygons, _angle, arc_distance, arcs_cross, lonlat, separation, unit


def _check_dec(dec: float, what: str) -> None:
    if not np.isfinite(dec) or not -90.0 <= dec <= 90.0:
        raise SkyInputError(f"{what} has a declination of {dec:g}°, outside -90° to +90°")


def _check_ra(ra: float, what: str) -> None:
    if not np.isfinite(ra):
        raise SkyInputError(f"{what} has a right ascension that is not a finite number")


def check_radius(radius: float) -> float:
    """A search radius in degrees, refused unless 0 < radius <= 180."""
    if not np.isfinite(radius) or not 0.0 < radius <= 180.0:
        raise SkyInputError(f"a search radius must be more than 0° and at most 180°, got {radius:g}°")
    return float(radius)


@dataclass(frozen=True)
class Cone:
    """Every position within ``radius`` degrees of (``ra``, ``dec``)."""

    ra: float
    dec: float
    radius: float
    #: Whether footprints that overlap the shape count, or only the rows' positions.
    footprints: bool = True

    def __post_init__(self):
        _check_ra(self.ra, "the cone's centre")
        _check_dec(self.dec, "the cone's centre")
        check_radius(self.radius)
        object.__setattr__(self, "ra", float(self.ra) % 360.0)

    def __str__(self) -> str:
        return f"cone of {self.radius:g}° around RA {self.ra:.6f}°, Dec {self.dec:+.6f}°"

    def bounding_cone(self) -> tuple[float, float, float]:
        return self.ra, self.dec, self.radius

    def contains(self, ra, dec) -> np.ndarray:
        return separation(self.ra, self.dec, ra, dec) <= self.radius

    def overlaps_circles(self, ra, dec, r) -> np.ndarray:
        return separation(self.ra, self.dec, ra, dec) <= self.radius + r

    def overlaps_polygons(self, polys: Polygons) -> np.ndarray:
        c = unit(self.ra, self.dec)
        inside = polys.contain(np.repeat(c[None, :], len(polys), axis=0))
        return inside | (polys.distance_to_edges(c) <= self.radius)


@dataclass(frozen=True)
class Box:
    """RA from ``ra_min`` eastwards to ``ra_max`` (through 0° when ``ra_min > ra_max``), Dec from
    ``dec_min`` to ``dec_max``: a coordinate range, as pgsphere's ``sbox`` and ADQL ``BOX``."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float
    footprints: bool = True
    #: RA width in degrees (360 for a full band); computed.
    width: float = field(init=False, default=0.0)

    def __post_init__(self):
        for v in (self.ra_min, self.ra_max):
            _check_ra(v, "the box")
        for v in (self.dec_min, self.dec_max):
            _check_dec(v, "the box")
        if self.dec_min > self.dec_max:
            raise SkyInputError(f"the box's lower declination {self.dec_min:g}° is above its upper "
                                       f"declination {self.dec_max:g}°")
        width = self.ra_max - self.ra_min
        full = width >= 360.0
        object.__setattr__(self, "ra_min", float(self.ra_min) % 360.0)
        object.__setattr__(self, "ra_max", float(self.ra_max) % 360.0)
        object.__setattr__(self, "width", 360.0 if full else (self.ra_max - self.ra_min) % 360.0)

    @classmethod
    def around(cls, ra: float, dec: float, width: float, height: float, footprints: bool = True) -> Box:
        """ADQL's ``BOX(frame, ra, dec, width, height)``: a centre and full sizes in degrees."""
        if not (np.isfinite(width) and np.isfinite(height)) or width <= 0 or height <= 0:
            raise SkyInputError("a box needs a width and a height above 0°")
        _check_dec(dec, "the box's centre")
        lo, hi = dec - height / 2, dec + height / 2
        if lo < -90 or hi > 90:
            raise SkyInputError(f"the box reaches a declination of {min(lo, -hi):g}°; keep it within ±90°")
        if width >= 360:
            return cls(0.0, 360.0, lo, hi, footprints)
        return cls(ra - width / 2, ra + width / 2, lo, hi, footprints)

    def __str__(self) -> str:
        return (f"box RA {self.ra_min:.6f}°..{self.ra_max:.6f}°, "
                f"Dec {self.dec_min:+.6f}°..{self.dec_max:+.6f}°")

    def corners(self) -> np.ndarray:
        r0, r1 = self.ra_min, self.ra_min + self.width
        return np.array([[r0, self.dec_min], [r1, self.dec_min], [r1, self.dec_max], [r0, self.dec_max]])

    def bounding_cone(self) -> tuple[float, float, float]:
        # The farthest point of the box from its centre is a corner: distance grows with the RA
        # difference along a parallel and has no interior maximum along a meridian.
        ra = (self.ra_min + self.width / 2) % 360.0
        dec = (self.dec_min + self.dec_max) / 2
        c = self.corners()
        return ra, dec, float(min(180.0, separation(ra, dec, c[:, 0], c[:, 1]).max()))

    def _in_ra(self, ra) -> np.ndarray:
        return ((np.asarray(ra, float) - self.ra_min) % 360.0 <= self.width) | (self.width >= 360.0)

    def contains(self, ra, dec) -> np.ndarray:
        dec = np.asarray(dec, float)
        at_pole = (dec == 90.0) & (self.dec_max == 90.0) | (dec == -90.0) & (self.dec_min == -90.0)
        return (dec >= self.dec_min) & (dec <= self.dec_max) & (self._in_ra(ra) | at_pole)

    def _meridians(self) -> tuple[np.ndarray, np.ndarray]:
        """The box's two RA edges as four arcs (each split at mid-Dec, so none spans 180°)."""
        mid = (self.dec_min + self.dec_max) / 2
        a, b = [], []
        for r in (self.ra_min, self.ra_min + self.width):
            for lo, hi in ((self.dec_min, mid), (mid, self.dec_max)):
                a.append((r, lo))
                b.append((r, hi))
        a, b = np.array(a), np.array(b)
        return unit(a[:, 0], a[:, 1]), unit(b[:, 0], b[:, 1])

    def _distance_to_parallel(self, ra, dec, d0) -> np.ndarray:
        # Along a parallel, distance grows with the RA difference: the nearest point has the
        # point's own RA when that lies in the box, else it is the nearer end.
        direct = np.abs(np.asarray(dec, float) - d0)
        ends = np.minimum(separation(ra, dec, self.ra_min, d0), separation(ra, dec, self.ra_min + self.width, d0))
        return np.where(self._in_ra(ra), direct, ends)

    def distance(self, ra, dec) -> np.ndarray:
        """Angular distance (degrees) from points to the box's boundary."""
        p = unit(ra, dec)
        a, b = self._meridians()
        d = np.min(arc_distance(p[:, None, :], a[None], b[None]), axis=1) if len(p) else np.zeros(0)
        if self.width >= 360.0:
            d = np.full(len(p), np.inf)  # a full band has no RA edges
        for d0 in (self.dec_min, self.dec_max):
            d = np.minimum(d, self._distance_to_parallel(ra, dec, d0))
        return d

    def overlaps_circles(self, ra, dec, r) -> np.ndarray:
        return self.contains(ra, dec) | (self.distance(ra, dec) <= r)

    def overlaps_polygons(self, polys: Polygons) -> np.ndarray:
        ra, dec = lonlat(polys.vertices)
        hit = np.logical_or.reduceat(self.contains(ra, dec), polys.starts[:-1]) if len(polys) else np.zeros(0, bool)
        corners = self.corners()
        for c in unit(corners[:, 0], corners[:, 1]):
            hit |= polys.contain(np.repeat(c[None, :], len(polys), axis=0))
        a, b = polys.vertices, polys.vertices[polys.following]
        if self.width < 360.0:
            ma, mb = self._meridians()
            crosses = arcs_cross(a[:, None, :], b[:, None, :], ma[None], mb[None]).any(axis=1)
            hit |= np.logical_or.reduceat(crosses, polys.starts[:-1]) if len(polys) else hit
        for d0 in (self.dec_min, self.dec_max):
            crosses = self._arcs_cross_parallel(a, b, d0)
            hit |= np.logical_or.reduceat(crosses, polys.starts[:-1]) if len(polys) else hit
        return hit

    def _arcs_cross_parallel(self, a: np.ndarray, b: np.ndarray, d0: float) -> np.ndarray:
        """Whether arcs ``a``-``b`` meet the parallel at ``d0`` within the box's RA range."""
        n = np.cross(a, b)
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        ok = norm[:, 0] > 1e-15
        n = n / np.where(norm == 0, 1.0, norm)
        w = np.cross(n, a)  # a and w span the arc's great circle; the arc is t in [0, length]
        length = np.radians(_angle(a, b))
        amp = np.hypot(a[:, 2], w[:, 2])
        z = np.sin(np.radians(d0))
        with np.errstate(invalid="ignore", divide="ignore"):
            phase = np.arctan2(w[:, 2], a[:, 2])
            spread = np.arccos(np.clip(z / amp, -1.0, 1.0))
        reach = ok & (amp >= abs(z))
        hit = np.zeros(len(a), dtype=bool)
        for t in (phase + spread, phase - spread):
            t = t % (2 * np.pi)
            on = reach & (t <= length + 1e-15)
            p = np.cos(t)[:, None] * a + np.sin(t)[:, None] * w
            ra, _ = lonlat(p)
            hit |= on & self._in_ra(ra)
        return hit


@dataclass(frozen=True)
class Polygon:
    """A spherical polygon: ``vertices`` (n, 2) RA, Dec in degrees joined by great-circle arcs."""

    vertices: tuple[tuple[float, float], ...]
    footprints: bool = True

    def __post_init__(self):
        v = np.asarray(self.vertices, dtype=float)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
            raise SkyInputError("a polygon needs at least three vertices, each an RA and a Dec")
        if not np.all(np.isfinite(v)):
            raise SkyInputError("a polygon's vertices must be finite numbers")
        for dec in v[:, 1]:
            _check_dec(dec, "a polygon vertex")
        object.__setattr__(self, "vertices", tuple((float(r) % 360.0, float(d)) for r, d in v))
        if self.bounding_cone()[2] >= 90.0:
            raise SkyInputError("the polygon is too large: keep every vertex within 90° of its centre")

    def __str__(self) -> str:
        return f"polygon of {len(self.vertices)} vertices"

    @property
    def polys(self) -> Polygons:
        return Polygons.of([np.asarray(self.vertices)])

    def bounding_cone(self) -> tuple[float, float, float]:
        polys = Polygons.of([np.asarray(self.vertices)])
        c = polys.centres()[0]
        ra, dec = lonlat(c)
        return float(ra), float(dec), float(polys.vertices_distance(c[None, :])[0])

    def contains(self, ra, dec) -> np.ndarray:
        p = unit(ra, dec).reshape(-1, 3)
        return self.polys.contain(p, np.zeros(len(p), dtype=np.int64))

    def _edge_distance(self, ra, dec) -> np.ndarray:
        v = self.polys.vertices
        a, b = v, np.roll(v, -1, axis=0)
        p = unit(ra, dec).reshape(-1, 3)
        return np.min(arc_distance(p[:, None, :], a[None], b[None]), axis=1) if len(p) else np.zeros(0)

    def overlaps_circles(self, ra, dec, r) -> np.ndarray:
        return self.contains(ra, dec) | (self._edge_distance(ra, dec) <= r)

    def overlaps_polygons(self, polys: Polygons) -> np.ndarray:
        if not len(polys):
            return np.zeros(0, dtype=bool)
        ra, dec = lonlat(polys.vertices)
        hit = np.logical_or.reduceat(self.contains(ra, dec), polys.starts[:-1])
        for c in self.polys.vertices:
            hit |= polys.contain(np.repeat(c[None, :], len(polys), axis=0))
        q = self.polys.vertices
        crosses = arcs_cross(polys.vertices[:, None, :], polys.vertices[polys.following][:, None, :],
                             q[None], np.roll(q, -1, axis=0)[None]).any(axis=1)
        return hit | np.logical_or.reduceat(crosses, polys.starts[:-1])


Shape = Cone | Box | Polygon
