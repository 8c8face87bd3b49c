"""Which reads the rollups can answer, decided in one place, beside the predicate split.

A count, summary, facet count or chart is answered from the rollups
(:mod:`cosmoscope.store.rollup`) only when the rollups answer it *exactly*: every filter falls
on a rollup dimension (mission, satellite, instrument, the statuses, the ObsCore calibration
level and product type), every time bound on ``observation_timestamp`` is a whole UTC day
(``>=`` or ``<`` a midnight, as the search and the explorers' date pickers give), and quality
bounds, if any, fall on the histogram's edges (0, 0.05, ..., 1: ``>=``, ``<`` or a band
between two, or no score at all, as the dashboard's quality bands are), which then answer
counts only. Anything else (a target, a quality of 0.83, a time of 14:00) is counted from the
rows. :class:`Route` says which, and why; the catalog logs it at DEBUG and
``Catalog.route(...)`` shows it.

Examples
--------
>>> import datetime as dt, polars as pl
>>> from cosmoscope.search import search_filter
>>> print(route(search_filter(mission="LYRA", start=dt.date(2026, 11, 1))))
rollups (rollup_days): mission_id == 'LYRA' AND day >= datetime.date(2026, 11, 1)
>>> print(route(search_filter(mission="LYRA", target="M31")))
rows: target_object is not a rollup dimension
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.predicate import Clause, Predicate, Test, split_predicate

if TYPE_CHECKING:
    import polars as pl

#: Observation columns that are rollup dimensions as they are (``day`` comes from the time).
DIMENSION_COLUMNS = tuple(d for d in S.ROLLUP_DIMENSIONS if d != "day")
_TIME = "observation_timestamp"
_QUALITY = "data_quality_score"
_MIDNIGHT = dt.time(0, 0)


@dataclass(frozen=True)
class Route:
    """How a read is answered.

    ``rollups`` True: from the rollup table, filtered by ``predicate`` (on its columns); with
    ``bins`` set, only counts are known: those of these quality histogram bins (and, with
    ``no_score``, of the observations without a score). ``rollups`` False: from the rows, for
    the ``reason`` given.
    """

    rollups: bool
    predicate: Predicate = Predicate()
    bins: tuple[int, ...] | None = None
    no_score: bool = False
    reason: str = ""
    #: The rollup table that answers.
    table: str | None = None
    #: The quality filters the histogram answers (for :meth:`__str__`).
    quality: tuple[Clause, ...] = ()

    @property
    def counts_only(self) -> bool:
        return self.bins is not None

    def __str__(self) -> str:
        if not self.rollups:
            return f"rows: {self.reason}"
        quality = (f" (counts of {' AND '.join(map(str, self.quality))} from the histogram)"
                   if self.counts_only else "")
        return f"rollups ({self.table}): {self.predicate}{quality}"

    @classmethod
    def rows(cls, reason: str) -> Route:
        return cls(False, reason=reason)


def route(expr: pl.Expr | None, schema=None, by: Sequence[str] = (), *, extremes: bool = False) -> Route:
    """The route of a read of the observations filtered by ``expr`` (None: all of them) and
    grouped by the rollup dimensions ``by``: the smallest rollup table that has every
    dimension the filters and the groups need (and, with ``extremes``, the earliest and latest
    times and the lowest quality), or the rows.

    ``schema`` is the observations' polars schema (for the predicate split).
    """
    from cosmoscope.store.rollup import LEVELS

    if schema is None:
        import polars as pl

        schema = pl.from_arrow(S.OBSERVATIONS.schema.empty_table()).schema
    pushed, residual = split_predicate(expr, schema)
    if residual is not None:
        return Route.rows(f"a filter the rollups cannot evaluate ({residual})")
    clauses, quality = [], []
    for clause in pushed.clauses:
        column = clause.column
        if column in DIMENSION_COLUMNS:
            clauses.append(clause)
        elif column == _TIME:
            tests = [_day_test(t) for t in clause.tests]
            if None in tests:
                return Route.rows(f"the time bound {clause} is not a whole UTC day")
            clauses.append(Clause(tuple(tests)))
        elif column == _QUALITY and _bins(clause) is not None:
            quality.append(clause)
        else:
            return Route.rows(f"{column} is not a rollup dimension" if column != _QUALITY else
                              f"the quality bound {clause} is not at histogram edges")
    bins, no_score = None, False
    if quality:  # each clause keeps the bins (and rows without a score) it selects: their intersection
        chosen = [_bins(c) for c in quality]
        bins = tuple(sorted(set.intersection(*(set(b) for b, _ in chosen))))
        no_score = all(n for _, n in chosen)
    need = {c.column for c in clauses} | set(by)
    for level in LEVELS:
        if need <= set(level.dims) and (level.mins or not (extremes and bins is None)):
            return Route(True, Predicate(tuple(clauses)), bins, no_score, table=level.name, quality=tuple(quality))
    also = " with minima and maxima" if extremes and bins is None else ""
    return Route.rows(f"no rollup{also} has all of {', '.join(sorted(need))}")


def _midnight(v) -> dt.date | None:
    if isinstance(v, dt.datetime) and v.time() == _MIDNIGHT and v.utcoffset() == dt.timedelta(0):
        return v.date()
    return None


def _day_test(t: Test) -> Test | None:
    """The same test on the UTC day, when the time is a whole day (else None)."""
    if t.op in ("is_null", "is_not_null"):
        return Test("day", t.op)
    if t.op in (">=", "<"):
        day = _midnight(t.value)
        return Test("day", t.op, day) if day is not None else None
    if t.op == "between" and t.value[2] == "left":
        lo, hi = _midnight(t.value[0]), _midnight(t.value[1])
        if lo is not None and hi is not None:
            return Test("day", "between", (lo, hi, "left"))
    return None


def _bins(clause: Clause) -> tuple[tuple[int, ...], bool] | None:
    """The histogram bins a quality clause selects and whether it selects rows without a score,
    when each of its tests is ``>=`` or ``<`` an edge, ``between`` two edges (closed on the
    left) or ``is_null``; else None. (Scores outside 0-1 are in no bin: a read that meets one
    counts the rows instead.)"""
    edges, top = S.QUALITY_EDGES, len(S.QUALITY_BINS)  # the last bin holds 1.0 exactly
    bins, no_score = set(), False
    for t in clause.tests:
        if t.op == "is_null":
            no_score = True
        elif t.op == ">=" and t.value in edges:
            bins.update(range(edges.index(t.value), top))
        elif t.op == "<" and t.value in edges:
            bins.update(range(edges.index(t.value)))
        elif t.op == "between" and t.value[2] == "left" and t.value[0] in edges and t.value[1] in edges:
            bins.update(range(edges.index(t.value[0]), edges.index(t.value[1])))
        else:
            return None
    return tuple(sorted(bins)), no_score
