"""Spherical geometry for sky searches, vectorised with numpy: points, great-circle arcs,
polygons (footprints), cones and coordinate boxes.

Positions are ICRS degrees at the edges and unit vectors inside. Polygons follow STC-S and
ObsCore: vertices joined by great-circle arcs, each polygon smaller than a hemisphere. A box
is a coordinate range (RA from ``ra_min`` eastwards to ``ra_max``, Dec between two parallels),
as pgsphere's ``sbox`` and ADQL's ``BOX`` are. Every test is exact up to floating point; the
one definition of "within" a cone is the haversine distance of :func:`separation`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_RAD = np.pi / 180.0
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_POLYGON = re.compile(r"^\s*polygon\b", re.IGNORECASE)
#: Frames an STC-S polygon may name that mean ICRS positions here (ObsCore writes ICRS).
FRAMES = {"ICRS", "J2000", "FK5", "UNKNOWNFRAME"}


def unit(ra, dec) -> np.ndarray:
    """Unit vectors (N, 3) of positions in degrees."""
    ra = np.asarray(ra, dtype=float) * _RAD
    dec = np.asarray(dec, dtype=float) * _RAD
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def lonlat(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RA in [0, 360) and Dec of vectors (not necessarily unit), in degrees."""
    ra = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    dec = np.degrees(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))
    return ra, dec


def separation(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular distance in degrees (haversine: accurate at small and large angles)."""
    d1, d2 = np.asarray(dec1, float) * _RAD, np.asarray(dec2, float) * _RAD
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((np.asarray(ra2, float) - ra1) * _RAD / 2) ** 2
    return 2 * np.degrees(np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle in degrees between vectors, accurate everywhere (atan2 of |u x v| and u . v)."""
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1)))


def arc_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angular distance (degrees) from points ``p`` to the great-circle arcs ``a``-``b`` (the
    shorter way), element by element with broadcasting."""
    n = np.cross(a, b)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    degenerate = norm[..., 0] < 1e-15
    n = n / np.where(norm == 0, 1.0, norm)
    ends = np.minimum(_angle(p, a), _angle(p, b))
    # The foot of the perpendicular lies on the arc when it is on the inner side of both ends.
    foot = p - np.sum(p * n, axis=-1, keepdims=True) * n
    inside = (np.sum(np.cross(a, foot) * n, axis=-1) >= 0) & (np.sum(np.cross(foot, b) * n, axis=-1) >= 0)
    inside &= np.linalg.norm(foot, axis=-1) > 1e-15
    perp = np.degrees(np.arcsin(np.clip(np.abs(np.sum(p * n, axis=-1)), 0.0, 1.0)))
    return np.where(inside & ~degenerate, np.minimum(perp, ends), ends)


def arcs_cross(a, b, c, d) -> np.ndarray:
    """Whether great-circle arcs ``a``-``b`` and ``c``-``d`` share a point (broadcasting)."""
    n1, n2 = np.cross(a, b), np.cross(c, d)
    line = np.cross(n1, n2)
    norm = np.linalg.norm(line, axis=-1, keepdims=True)
    line = line / np.where(norm == 0, 1.0, norm)
    hit = np.zeros(np.broadcast_shapes(np.shape(line)[:-1]), dtype=bool)
    for x in (line, -line):
        on1 = (np.sum(np.cross(a, x) * n1, axis=-1) >= 0) & (np.sum(np.cross(x, b) * n1, axis=-1) >= 0)
        on2 = (np.sum(np.cross(c, x) * n2, axis=-1) >= 0) & (np.sum(np.cross(x, d) * n2, axis=-1) >= 0)
        hit |= on1 & on2
    hit &= norm[..., 0] > 1e-15
    # arcs on one great circle: they meet when an end of one lies on the other
    same = norm[..., 0] <= 1e-15
    if np.any(same):
        touch = (arc_distance(a, c, d) < 1e-12) | (arc_distance(b, c, d) < 1e-12) | (arc_distance(c, a, b) < 1e-12)
        hit |= same & touch
    return hit


@dataclass
class Polygons:
    """Many spherical polygons at once: ``vertices`` (M, 3) unit vectors, polygon ``k`` being
    ``vertices[starts[k]:starts[k + 1]]`` (``starts`` has one more entry than polygons)."""

    vertices: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, polygons: list[np.ndarray]) -> Polygons:
        """From a list of (n_k, 2) arrays of RA, Dec vertices in degrees."""
        counts = np.array([len(p) for p in polygons], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        flat = np.concatenate(polygons) if polygons else np.zeros((0, 2))
        return cls(unit(flat[:, 0], flat[:, 1]) if len(flat) else np.zeros((0, 3)), starts)

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def owner(self) -> np.ndarray:
        """The polygon of each vertex."""
        return np.repeat(np.arange(len(self)), np.diff(self.starts))

    @property
    def following(self) -> np.ndarray:
        """Index of the vertex each edge goes to (the edges of polygon k close the ring)."""
        nxt = np.arange(1, len(self.vertices) + 1)
        nxt[self.starts[1:] - 1] = self.starts[:-1]
        return nxt

    def centres(self) -> np.ndarray:
        """A point well inside each polygon's hemisphere: the normalised sum of its vertices."""
        sums = np.add.reduceat(self.vertices, self.starts[:-1], axis=0) if len(self) else np.zeros((0, 3))
        return sums / np.linalg.norm(sums, axis=1, keepdims=True)

    def _per_polygon(self, values: np.ndarray, reduce) -> np.ndarray:
        return reduce.reduceat(values, self.starts[:-1]) if len(self) else values[:0]

    def contain(self, points: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        """Whether polygon ``which[i]`` (default: polygon i) contains ``points[i]``.

        Each polygon is projected gnomonically about its centre, which maps great circles to
        straight lines, and the even-odd rule counts edge crossings of a ray in the plane.
        """
        which = np.arange(len(self)) if which is None else which
        centres = self.centres()
        owner, nxt = self.owner, self.following
        # Per edge (vertex j -> nxt[j]) and per point: restrict to edges of the point's polygon.
        order = np.argsort(which, kind="stable")
        pts = points[order]
        poly = which[order]
        counts = np.diff(self.starts)[poly]
        point_of_edge = np.repeat(np.arange(len(pts)), counts)
        first = self.starts[poly]
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        edge = np.repeat(first, counts) + offsets
        m = centres[owner[edge]]
        e1 = np.cross(m, np.where(np.abs(m[:, 2:3]) < 0.9, [[0, 0, 1]], [[1, 0, 0]]))
        e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
        e2 = np.cross(m, e1)

        def project(v):
            w = np.sum(v * m, axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.sum(v * e1, axis=1) / w, np.sum(v * e2, axis=1) / w

        p = pts[point_of_edge]
        px, py = project(p)
        ax, ay = project(self.vertices[edge])
        bx, by = project(self.vertices[nxt[edge]])
        straddle = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xcross = ax + (py - ay) * (bx - ax) / (by - ay)
        crossings = straddle & (px < xcross)
        inside = np.zeros(len(pts), dtype=bool)
        if len(pts):
            odd = np.add.reduceat(crossings.astype(np.int64), np.concatenate([[0], np.cumsum(counts)[:-1]])) % 2 == 1
            front = np.sum(pts * centres[poly], axis=1) > 0  # the far hemisphere is never inside
            inside = odd & front & (counts > 0)
        out = np.empty(len(pts), dtype=bool)
        out[order] = inside
        return out

    def distance_to_edges(self, point: np.ndarray) -> np.ndarray:
        """Per polygon, the angular distance (degrees) from one point to its nearest edge."""
        d = arc_distance(point[None, :], self.vertices, self.vertices[self.following])
        return self._per_polygon(d, np.minimum)

    def vertices_distance(self, point: np.ndarray) -> np.ndarray:
        """Per polygon, the largest distance (degrees) from ``point[k]`` to polygon k's vertices."""
        d = _angle(point[self.owner], self.vertices)
        return self._per_polygon(d, np.maximum)


# -- STC-S ---------------------------------------------------------------------------------

def parse_polygon(text: str | None) -> np.ndarray | None:
    """The (n, 2) RA, Dec vertices of an STC-S ``POLYGON [frame] ra dec ra dec ...``, or None
    when ``text`` is not such a polygon (fewer than three vertices, another shape, bad numbers).

    >>> parse_polygon("POLYGON ICRS 10 20 11 20 11 21").tolist()
    [[10.0, 20.0], [11.0, 20.0], [11.0, 21.0]]
    """
    if not text or not _POLYGON.match(text):
        return None
    words = text.split()[1:]
    while words and not _NUMBER.fullmatch(words[0]):
        if words[0].upper() not in FRAMES and not words[0].isalpha():
            return None
        words = words[1:]
    try:
        values = np.array([float(w) for w in words])
    except ValueError:
        return None
    if len(values) < 6 or len(values) % 2 or not np.all(np.isfinite(values)):
        return None
    pts = values.reshape(-1, 2)
    if np.any(np.abs(pts[:, 1]) > 90):
        return None
    return pts


def format_polygon(vertices) -> str:
    """STC-S text of a polygon given as (n, 2) RA, Dec degrees (RA brought into [0, 360)).

    >>> format_polygon([[10, 20], [11, 20], [11, 21]])
    'POLYGON ICRS 10.000000000 20.000000000 11.000000000 20.000000000 11.000000000 21.000000000'
    """
    v = np.asarray(vertices, dtype=float)
    return "POLYGON ICRS " + " ".join(map("{:.9f}".format, np.column_stack([v[:, 0] % 360.0, v[:, 1]]).ravel()))


def polygons_of(texts) -> tuple[Polygons, np.ndarray]:
    """Parse many STC-S polygons: the parsed ones and, for each, its index in ``texts``."""
    parsed, where = [], []
    for i, t in enumerate(texts):
        p = parse_polygon(t)
        if p is not None:
            parsed.append(p)
            where.append(i)
    return Polygons.of(parsed), np.array(where, dtype=np.int64)
