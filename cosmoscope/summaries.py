"""Counts and summaries of the observations: from the rollups where they answer exactly, from
the rows otherwise, with the same answer either way.

Every function takes the catalog and a filter expression (what
:func:`cosmoscope.search.search_filter` builds from search keywords; None for every row).
:func:`cosmoscope.routing.route` decides where the answer comes from. The rows are counted
with the very expressions that build the rollups (:mod:`cosmoscope.store.rollup`), so the two
routes agree to the last digit; the one exception is a mean quality over scores outside 0-1
(which only a raw store write can leave), computed from the rows as a plain mean.

A *group summary* (:func:`grouped`) has, per group of rollup dimensions: ``n``,
``total_bytes`` (a float: exact below 9 PB, never overflowing), ``first_observation``,
``last_start``, ``last_observation`` (latest end or start), ``n_quality``, ``mean_quality``,
``min_quality`` and the quality histogram ``q00`` ... ``q20`` (bin k from
``QUALITY_EDGES[k]``; ``q20`` is exactly 1.0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.routing import Route, route
from cosmoscope.store import rollup

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog

log = logging.getLogger(__name__)

#: Columns of a group summary after the group columns.
SUMMARY_COLUMNS = ("n", "total_bytes", "first_observation", "last_start", "last_observation", "n_quality",
                   "mean_quality", "min_quality", *S.QUALITY_BINS)
#: Seconds a catalog's rollup state is trusted before it is read again.
STATE_TTL = 2.0


def rollups_state(cat: Catalog) -> str | None:
    """None when the rollups may be read; otherwise why not, in words."""
    cached = getattr(cat, "_rollups_state", None)
    if cached is not None and time.monotonic() - cached[0] < STATE_TTL:
        return cached[1]
    if not rollup.maintained(cat.store.tables()):
        why = "this catalog has no rollups yet (open it writable once to build them)"
    else:
        state = cat.meta().get("rollups")
        why = None if state == "ok" else (
            "the rollups disagreed with the rows; `cosmoscope validate --fix` rebuilds them" if state
            else "the rollups are not built yet")
    cat._rollups_state = (time.monotonic(), why)
    return why


def route_of(cat: Catalog, expr: pl.Expr | None, by: Sequence[str] = (), *, extremes: bool = False) -> Route:
    """Where a read of the observations filtered by ``expr`` and grouped by ``by`` is answered
    from (``extremes``: it needs the earliest and latest times and the lowest quality)."""
    why = rollups_state(cat)
    if why:
        r = Route.rows(why)
    else:
        from cosmoscope.store.lazy import polars_schema

        r = route(expr, polars_schema(cat.store.tables()[S.OBSERVATIONS.name]), by, extremes=extremes)
    log.debug("%s -> %s", expr, r)
    return r


def grouped(cat: Catalog, expr: pl.Expr | None, by: Sequence[str], *, counts_only: bool = False) -> pl.DataFrame:
    """The group summary (see the module docstring) of the matching observations per group of
    ``by`` (rollup dimensions: mission_id, satellite_name, instrument_type, day (UTC date),
    processing_status, calibration_status, extraction_status, file_status, validation_status,
    calib_level, dataproduct_type).

    ``counts_only``: only ``n`` is needed, so more filters can be answered from the rollups
    (quality bounds at histogram edges); the other measures are then null.
    """
    raw, _ = raw_grouped(cat, expr, by, sums_only=counts_only, counts_only=counts_only)
    return finish(raw, list(by))


def raw_grouped(cat: Catalog, expr, by: Sequence[str], *, sums_only: bool = False, counts_only: bool = False,
                extremes_only: bool = False) -> tuple[pl.DataFrame, Route]:
    """The rollup measures of the matching observations per group of ``by``, and the route that
    answered. ``sums_only``: minima and maxima are not needed (they may be null);
    ``counts_only``: only ``n`` is; ``extremes_only``: only minima and maxima are (the other
    measures may be missing)."""
    by = list(by)
    bad = [b for b in by if b not in S.ROLLUP_DIMENSIONS]
    if bad:
        from cosmoscope.errors import UnknownNameError

        raise UnknownNameError("rollup dimension", bad[0], S.ROLLUP_DIMENSIONS)
    r = route_of(cat, expr, by, extremes=not sums_only)
    if r.rollups and (counts_only or not r.counts_only):
        df = _from_rollups(cat, r, by, counts_only=counts_only, extremes_only=extremes_only)
        if df is not None:
            return df, r
        r = Route.rows("some quality scores lie outside 0-1")
    return grouped_rows(cat.observations(), expr, by), r


def _from_rollups(cat: Catalog, r: Route, by: list[str], *, counts_only: bool = False,
                  extremes_only: bool = False) -> pl.DataFrame | None:
    import polars as pl

    from cosmoscope.store.base import Agg, aggregate

    g = next(level for level in rollup.LEVELS if level.name == r.table)
    if counts_only:  # only what a count needs: a fraction of the sums to add up (facets read many groups)
        sums = ["n", "q_odd", *(["q_n"] if r.no_score else []), *(S.QUALITY_BINS[k] for k in r.bins or ())]
        aggs = [Agg(s, "isum", s) for s in sums]
    elif extremes_only:  # what rollup_days' covering index holds: a walk of it, not of the entries
        aggs = [Agg("q_odd", "isum", "q_odd")] + [Agg(x, "min", x) for x in g.mins] + \
            [Agg(x, "max", x) for x in g.maxs]
    else:
        aggs = ([Agg(s, "isum", s) for s in g.sums] + [Agg(x, "min", x) for x in g.mins]
                + [Agg(x, "max", x) for x in g.maxs])
    df = pl.from_arrow(aggregate(cat.store, r.table, by, aggs, r.predicate))
    if df.height and (df["q_odd"].sum() or 0) > 0:
        return None  # a histogram bound or a fixed-point mean would leave those scores out
    if extremes_only:
        return df  # without n: a group emptied by deletes meets no count (a left join drops it)
    if r.counts_only:
        n = pl.sum_horizontal([pl.col(S.QUALITY_BINS[k]) for k in r.bins]) if r.bins else pl.lit(0, pl.Int64)
        if r.no_score:
            n = n + pl.col("n") - pl.col("q_n")
        df = df.with_columns(n.alias("n"))
        df = df.with_columns([pl.lit(None, dtype).alias(c) for c, dtype in df.schema.items()
                              if c not in (*by, "n")])
    return df.filter(pl.col("n") > 0)


def grouped_rows(lf: pl.LazyFrame, expr, by: list[str]) -> pl.DataFrame:
    """The raw rollup measures of the rows of ``lf`` matching ``expr``, per group of ``by``."""
    import polars as pl

    from cosmoscope.store.rollup import group_dims, group_measures

    if expr is not None:
        lf = lf.filter(expr)
    keys = group_dims(by)
    measures = [*group_measures(), pl.col("data_quality_score").sum().alias("plain_sum")]
    df = (lf.group_by(keys).agg(measures) if keys else lf.select(measures)).collect()
    return df.filter(pl.col("n") > 0)


def combine(raw: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Raw measures of finer groups combined into groups of ``by``."""
    import polars as pl

    g = rollup.DAYS
    sums = [c for c in (*g.sums, "plain_sum") if c in raw.columns]
    aggs = ([pl.col(c).sum() for c in sums] + [pl.col(c).min() for c in g.mins if c in raw.columns]
            + [pl.col(c).max() for c in g.maxs if c in raw.columns])
    return raw.group_by(by).agg(aggs) if by else raw.select(aggs)


def finish(raw: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Raw rollup measures (summed) as the columns of a group summary."""
    import polars as pl

    types = pl.from_arrow(S.ROLLUP_DAYS.schema.empty_table()).schema
    raw = raw.with_columns([pl.lit(None, types[c]).alias(c) for c in rollup.DAYS.measures if c not in raw.columns])
    fixed = float(rollup.FIXED)
    mean = pl.col("q_sum").cast(pl.Float64) / fixed / pl.col("q_n").cast(pl.Float64)
    if "plain_sum" in raw.columns:  # scores outside 0-1 are not in the fixed-point sum
        mean = pl.when(pl.col("q_odd") > 0).then(pl.col("plain_sum") / pl.col("q_n")).otherwise(mean)
    out = raw.select(
        *by, pl.col("n").cast(pl.Int64),
        (pl.col("bytes_hi").cast(pl.Float64) * fixed + pl.col("bytes_lo").cast(pl.Float64)).alias("total_bytes"),
        pl.col("first_start").alias("first_observation"), pl.col("last_start"),
        pl.col("last_end").alias("last_observation"), pl.col("q_n").cast(pl.Int64).alias("n_quality"),
        pl.when(pl.col("q_n") > 0).then(mean).alias("mean_quality"), pl.col("q_min").alias("min_quality"),
        *[pl.col(b).cast(pl.Int64) for b in S.QUALITY_BINS])
    return out.sort(by, nulls_last=True) if by else out


def count(cat: Catalog, expr: pl.Expr | None) -> int:
    """How many observations match ``expr``."""
    raw, _ = raw_grouped(cat, expr, [], sums_only=True, counts_only=True)  # n alone: no finish()
    return int(raw["n"].sum()) if raw.height else 0


def facet_counts(cat: Catalog, columns: str | Sequence[str], expr: pl.Expr | None) -> pl.DataFrame:
    """``columns`` (rollup dimensions) and ``n``: how many matching observations have each
    value (combination), most first."""
    import polars as pl

    columns = [columns] if isinstance(columns, str) else list(columns)
    return grouped(cat, expr, columns, counts_only=True).select(*columns, "n").sort(
        [pl.col("n"), *map(pl.col, columns)], descending=[True, *[False] * len(columns)], nulls_last=True)


#: The groups a mission summary is assembled from.
_SUMMARY_BY = ["mission_id", "calibration_status", "extraction_status", "processing_status"]


def mission_summary(cat: Catalog, expr: pl.Expr | None) -> pl.DataFrame:
    """Per mission: datasets, bytes, time coverage, quality, calibrated and unreadable counts and
    one count per processing status (see :meth:`Catalog.mission_summary`)."""
    counts, _ = raw_grouped(cat, expr, _SUMMARY_BY, sums_only=True)
    extremes, _ = raw_grouped(cat, expr, ["mission_id"], extremes_only=True)
    return mission_summary_of(counts, extremes)


def summarize_frame(frame) -> pl.DataFrame:
    """The mission summary of an in-memory or lazy polars frame of observations (all columns)."""
    return mission_summary_of(grouped_rows(frame.lazy(), None, _SUMMARY_BY))


def mission_summary_of(raw: pl.DataFrame, extremes: pl.DataFrame | None = None) -> pl.DataFrame:
    """The mission summary assembled from raw measures grouped by :data:`_SUMMARY_BY` (and the
    minima and maxima per mission, when ``raw`` lacks them)."""
    import polars as pl

    if extremes is not None:
        g = rollup.DAYS
        raw = raw.drop([c for c in g.mins + g.maxs if c in raw.columns]).join(
            extremes.select("mission_id", *g.mins, *g.maxs), on="mission_id", how="left", nulls_equal=True)

    n = pl.col("n")
    counts = raw.group_by("mission_id").agg(
        n.filter(pl.col("calibration_status") == S.CalibrationStatus.CALIBRATED.value).sum().alias("n_calibrated"),
        n.filter(pl.col("extraction_status") == S.ExtractionStatus.ERROR.value).sum().alias("n_extraction_errors"),
        *[n.filter(pl.col("processing_status") == s.value).sum().alias(f"n_{s.value}") for s in S.ProcessingStatus])
    whole = finish(combine(raw, ["mission_id"]), ["mission_id"]).select(
        "mission_id", pl.col("n").alias("n_datasets"), "total_bytes", "first_observation", "last_observation",
        "mean_quality", "min_quality")
    out = whole.join(counts, on="mission_id", how="left", nulls_equal=True)
    names = [c for c in out.columns if c.startswith("n_")]
    return (out.with_columns(pl.col(names).fill_null(0).cast(pl.Int64),
                             pl.col("total_bytes").fill_null(0).cast(pl.Float64))
            .sort("mission_id", nulls_last=True))
