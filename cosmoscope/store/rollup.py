"""Rollups: the observations counted per group, kept by the stores' own writes.

Summaries, counts, facet counts and charts of millions of rows read a rollup table of a few
thousand entries instead (which query may, is decided in :mod:`cosmoscope.routing`). Four
rollups are kept:

- :data:`~cosmoscope.schema.ROLLUP_DAYS`, per mission, satellite, instrument, UTC day and
  processing status: observations, bytes (an exact integer, summed as two 32-bit halves so no
  sum overflows), earliest and latest start, latest end, and the quality scores' count, exact
  fixed-point sum, minimum and a 21-bin histogram;
- :data:`~cosmoscope.schema.ROLLUP_STATUSES`, per mission, satellite, instrument and the
  processing, calibration, extraction, file and validation statuses: the same sums, no minima or
  maxima (a group whose extreme leaves is counted again from its rows: a day's group is a
  bounded read, a mission's whole history per status is not). Two tables rather than one with
  every dimension: a day times every status combination gives nearly a group per handful of rows;
- :data:`~cosmoscope.schema.ROLLUP_PRODUCTS` (schema 7), the same per ObsCore calibration level
  and product type too: apart, so that reads needing neither keep the smaller table;
- :data:`~cosmoscope.schema.ROLLUP_SKY`, per mission and 3-degree sky cell: observations with a
  position.

How they stay exact. Every ``upsert``, ``update`` and ``delete`` of the observations, in either
store, writes into the rollups what it changed in its own transaction, so a crash leaves rows
and rollups together or not at all: the SQLite store notes the rows a statement added and
removed with triggers (:mod:`cosmoscope.store.sqlite_rollup`) and calls :func:`apply_rows`; the
VAST store reads the stored rows of a batch's keys (as its upsert already must), works out the
rows as the write leaves them (:func:`merge_rows`) and calls :func:`apply_change`. A group's
value is the combination of its entries (sums add, minima and maxima combine). SQLite's writers
take turns, so each group has one entry changed in place; on VAST two transactions may commit
side by side, so a write appends one entry per group it changes and never rewrites one, and a
group with :data:`FOLD_AT` entries is folded into one. When rows leave a group and one of them
held its earliest or latest time or lowest quality, the group is counted again from its rows,
so minima and maxima stay exact under updates and deletes. :func:`rebuild` recounts everything
(a migration, ``validate --fix``); :func:`check` compares the stored rollups with a recount.

The computation is one polars function per rollup (:meth:`Rollup.contributions`), used for
changes, recounts, rebuilds and checks alike, on both stores.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from cosmoscope import schema as S
from cosmoscope.predicate import Clause, Predicate, Test

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

#: The table the rollups summarise, and its key.
SOURCE = S.OBSERVATIONS.name
SOURCE_KEY = "dataset_id"
#: Scores are summed as integers of 2**-32: exact under any order of adds and subtracts, and a
#: mean within 2.4e-10 of the true mean.
FIXED = 2**32
#: A group's entries are folded into one when a write would make this many.
FOLD_AT = 16
#: Rows read per step while a rollup is built from the rows.
BUILD_CHUNK = 500_000
_ROW_ID = "$row_id"


class Ops(Protocol):
    """Reads and writes of a store inside one open transaction (each store provides one).

    A store whose writers take turns (SQLite) sets ``in_place`` and offers ``add(rollup,
    changes)``, adding each change to its group's single entry (whose ``entry_id`` is the
    group key) and removing groups left empty; the others get changes appended as entries.
    """

    in_place: bool

    def scan(self, table: str, columns: Sequence[str] | None, predicate: Predicate | None
             ) -> Iterator[pa.RecordBatch]: ...

    def insert(self, table: str, data: pa.Table) -> None: ...

    def upsert(self, table: str, data: pa.Table, key: Sequence[str]) -> None: ...

    def delete(self, table: str, keys: pa.Table) -> None: ...


@dataclass(frozen=True)
class Rollup:
    """One rollup: its table, dimensions and measures (sums, minima, maxima)."""

    spec: S.TableSpec
    dims: tuple[str, ...]
    sums: tuple[str, ...]
    mins: tuple[str, ...] = ()
    maxs: tuple[str, ...] = ()
    #: Observation columns it reads.
    reads: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def measures(self) -> tuple[str, ...]:
        return self.sums + self.mins + self.maxs

    def contributions(self, rows: pl.DataFrame) -> pl.DataFrame:
        """One row per group of ``rows`` (observations): dimensions, ``group_key``, measures."""
        return self.contributions_lazy(rows).collect()

    def contributions_lazy(self, rows: pl.DataFrame) -> pl.LazyFrame:
        """:meth:`contributions` as a lazy frame (several rollups are collected at once)."""
        import polars as pl

        keys, measures, where, group_key = _expressions(self)
        lf = rows.lazy()
        if where is not None:
            lf = lf.filter(where)
        return lf.group_by(keys).agg(measures).with_columns(group_key)


@functools.lru_cache(maxsize=None)
def _expressions(r: Rollup) -> tuple:
    """The polars expressions of a rollup, made once (building ~30 of them costs milliseconds, a
    large share of a small write): group keys, measures, row filter, group key."""
    import polars as pl

    group_key = pl.struct(list(r.dims)).struct.json_encode().alias("group_key")
    if r.name == S.ROLLUP_SKY.name:
        return (sky_cells(), [pl.len().cast(pl.Int64).alias("n")],
                pl.col("ra").is_not_null() & pl.col("dec").is_not_null(), group_key)
    return group_dims(r.dims), group_measures(), None, group_key


def group_dims(dims) -> list:
    """The polars expressions of rollup dimensions (``day`` is the UTC date of the start)."""
    import polars as pl

    return [pl.col("observation_timestamp").dt.date().alias("day") if d == "day" else pl.col(d) for d in dims]


def group_measures() -> list:
    import polars as pl

    q = pl.col("data_quality_score")
    size = pl.col("file_size")
    in_range = q.is_between(0.0, 1.0)
    edges = S.QUALITY_EDGES
    bins = [((q >= edges[k]) & (q < edges[k + 1])) for k in range(len(edges) - 1)] + [q == edges[-1]]
    return [
        pl.len().cast(pl.Int64).alias("n"),
        (size // FIXED).sum().cast(pl.Int64).alias("bytes_hi"),
        (size % FIXED).sum().cast(pl.Int64).alias("bytes_lo"),
        pl.col("observation_timestamp").min().alias("first_start"),
        pl.col("observation_timestamp").max().alias("last_start"),
        pl.max_horizontal("observation_timestamp", "observation_end").max().alias("last_end"),
        q.is_not_null().sum().cast(pl.Int64).alias("q_n"),
        (q.is_not_null() & ~in_range).sum().cast(pl.Int64).alias("q_odd"),
        (q.filter(in_range) * FIXED).floor().cast(pl.Int64).sum().alias("q_sum"),
        q.min().alias("q_min"),
        *[b.sum().cast(pl.Int64).alias(name) for b, name in zip(bins, S.QUALITY_BINS)],
    ]


def sky_cells() -> list:
    """The sky cell of a position as the charts draw it: 3-degree bins of ra (mod 360) and dec."""
    import polars as pl

    return [pl.col("mission_id"),
            ((pl.col("ra") % 360) // 3).cast(pl.Int32, strict=False).alias("ra_cell"),
            (pl.col("dec").clip(-90.0, 90.0 - 1e-9) // 3).cast(pl.Int32, strict=False).alias("dec_cell")]


_SUMS = ("n", "bytes_hi", "bytes_lo", "q_n", "q_odd", "q_sum", *S.QUALITY_BINS)
_MEASURED = ("observation_timestamp", "observation_end", "file_size", "data_quality_score")


def _grouping(spec: S.TableSpec, *, extremes: bool) -> Rollup:
    dims = tuple(f.name for f in spec.schema if f.name in S.ROLLUP_DIMENSIONS)
    reads = tuple(dict.fromkeys([*(d for d in dims if d != "day"), *_MEASURED]))
    if not extremes:
        return Rollup(spec, dims=dims, reads=reads, sums=_SUMS)
    return Rollup(spec, dims=dims, reads=reads, sums=_SUMS, mins=("first_start", "q_min"),
                  maxs=("last_start", "last_end"))


#: Minima and maxima are kept per day only: when the row holding one leaves its group, the
#: group is counted again, and a day's group is a bounded read where a mission's whole history
#: per status (moving the newest files from raw to processed would do it every time) is not.
DAYS = _grouping(S.ROLLUP_DAYS, extremes=True)
STATUSES = _grouping(S.ROLLUP_STATUSES, extremes=False)
PRODUCTS = _grouping(S.ROLLUP_PRODUCTS, extremes=False)
SKY = Rollup(S.ROLLUP_SKY, dims=("mission_id", "ra_cell", "dec_cell"), sums=("n",), reads=("mission_id", "ra", "dec"))
ROLLUPS = (STATUSES, PRODUCTS, DAYS, SKY)
#: The rollups that group by rollup dimensions, smallest first (a read takes the first that can).
LEVELS = (STATUSES, PRODUCTS, DAYS)
#: Every observation column a rollup reads.
READS = tuple(dict.fromkeys(c for r in ROLLUPS for c in r.reads))


def maintained(tables: dict[str, pa.Schema]) -> bool:
    """Whether a store holding ``tables`` (name -> schema) keeps rollups (a catalog from before
    schema 6 has none, one of schema 6 lacks rollup_products; a migration adds the columns they
    read before it builds them)."""
    source = tables.get(SOURCE)
    return (source is not None and all(r.name in tables for r in ROLLUPS)
            and all(source.get_field_index(c) >= 0 for c in READS))


def frame(rows, extra: Sequence[str] = ()) -> pl.DataFrame:
    """Observation rows (Arrow or polars) as a polars frame of the key and :data:`READS` (plus
    ``extra``), in their catalog types, with floats as the stores keep them (no NaN, no -0.0)."""
    import polars as pl

    schema = S.OBSERVATIONS.schema
    wanted = [SOURCE_KEY, *READS]
    if rows is None:
        df = pl.DataFrame()
    elif isinstance(rows, pl.DataFrame):
        df = rows
    else:
        df = pl.from_arrow(rows) if rows.num_rows else pl.from_arrow(rows.schema.empty_table())
    types = pl.from_arrow(pa.schema([schema.field(c) for c in wanted]).empty_table()).schema
    cols = []
    for c in wanted:
        if c in df.columns:
            col = pl.col(c).cast(types[c])
            cols.append((col.fill_nan(None) + 0.0).alias(c) if types[c].is_float() else col)
        else:
            cols.append(pl.lit(None, types[c]).alias(c))
    cols += [pl.col(c) for c in extra if c in df.columns]
    return df.select(cols) if df.width else pl.DataFrame(schema={**types, **{c: pl.UInt64 for c in extra}})


def merge_rows(old, data, key: Sequence[str], sets: Sequence[str], *, insert: bool) -> pl.DataFrame:
    """The rows as a write leaves them.

    ``old``: the stored rows of the written keys, read before the write (with ``$row_id`` on VAST,
    where a key may have been stored twice by racing writers). ``data``: what was written (the
    last row of each key wins). Each old row takes the ``sets`` columns of ``data``; with
    ``insert`` (an upsert), a key stored twice keeps only its first row, as the VAST store does,
    and keys not stored yet become rows of ``data`` alone.
    """
    import polars as pl

    o = frame(old, extra=[_ROW_ID])
    d = frame(data).unique(list(key), keep="last", maintain_order=True)
    given = set(data.columns if isinstance(data, pl.DataFrame) else data.column_names)
    changed = [c for c in READS if c in sets and c in given]
    if insert and _ROW_ID in o.columns:
        o = o.sort(_ROW_ID).unique(list(key), keep="first", maintain_order=True)
    o = o.drop(_ROW_ID, strict=False)
    updated = o.join(d.select([*key, *changed]), on=list(key), how="inner", suffix="__new")
    updated = updated.with_columns([pl.col(f"{c}__new").alias(c) for c in changed]).select(o.columns)
    if not insert:
        return updated
    return pl.concat([updated, d.join(o.select(list(key)), on=list(key), how="anti")])


def apply_change(ops: Ops, old, new) -> None:
    """Write into the rollups what a write of the observations changed: ``old`` are the rows
    before it, ``new`` after it (Arrow or polars, key and :data:`READS` columns; None: no rows)."""
    old_df, new_df = _changed_only(frame(old), frame(new))
    if old_df.is_empty() and new_df.is_empty():
        return
    apply_rows(ops, new_df, old_df)


def apply_rows(ops: Ops, added: pl.DataFrame, removed: pl.DataFrame) -> None:
    """Write into every rollup what a write did: it ``added`` and ``removed`` these rows (in
    their stored form); the groups of all rollups are counted in one polars run."""
    import polars as pl

    sides = [added, removed] if removed.height else [added]
    # the in-memory engine: half the streaming one's time on a write's few thousand rows
    frames = iter(pl.collect_all([r.contributions_lazy(rows) for r in ROLLUPS for rows in sides], engine="in-memory"))
    for r in ROLLUPS:
        plus = next(frames)
        minus = next(frames) if removed.height else plus.clear()
        if not plus.is_empty() or not minus.is_empty():
            _apply(ops, r, plus, minus)


def _changed_only(old: pl.DataFrame, new: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Leave out rows a write did not change (a re-ingest of unchanged files changes nothing)."""
    if old.is_empty() or new.is_empty() or old[SOURCE_KEY].n_unique() != old.height:
        return old, new
    cols = [SOURCE_KEY, *READS]
    return (old.join(new, on=cols, how="anti", nulls_equal=True),
            new.join(old, on=cols, how="anti", nulls_equal=True))


def _apply(ops: Ops, r: Rollup, plus: pl.DataFrame, minus: pl.DataFrame) -> None:
    """Write one rollup's change: ``plus`` and ``minus`` are the contributions of the rows after
    and before the write."""
    import polars as pl

    in_place = getattr(ops, "in_place", False)
    if in_place and minus.is_empty():  # rows only added (the usual write): add them, nothing to look up
        ops.add(r, plus.select("group_key", *r.dims, *r.measures))
        return
    delta = _delta(r, plus, minus)
    if delta.is_empty():
        return
    # In-place stores (SQLite: one writer at a time) add sums in SQL; only groups that lost rows
    # need their stored values, to tell whether an extreme left. Appending stores read them all.
    asked = delta.filter(pl.col("removed_n") > 0) if in_place else delta
    current = fold(r, _entries(ops, r, asked["group_key"].to_list()), entries=True) if asked.height else None
    if current is None:
        current = pl.DataFrame(schema={"group_key": pl.String, "entry_ids": pl.List(pl.String),
                                       **{f"{c}__c": t for c, t in _polars_schema(r).items() if c in r.measures}})
    else:
        current = current.select("group_key", "entry_ids", *[pl.col(c).alias(f"{c}__c") for c in r.measures])
    joined = delta.join(current, on="group_key", how="left")
    recount = pl.lit(False)
    if r.mins or r.maxs:
        leaves = [pl.col(f"removed_{x}") <= pl.col(f"{x}__c") for x in r.mins] + \
                 [pl.col(f"removed_{x}") >= pl.col(f"{x}__c") for x in r.maxs]
        recount = (pl.col("removed_n") > 0) & (pl.col("n__c").is_null() | pl.any_horizontal(leaves).fill_null(False))
    joined = joined.with_columns(recount.alias("recount"))
    deletes: list[str] = []
    inserts: list[pl.DataFrame] = []
    again = joined.filter(pl.col("recount"))
    if again.height:
        fresh = _recount(ops, r, again.select(r.dims).to_dicts())
        deletes += [e for ids in again["entry_ids"].to_list() if ids for e in ids]
        inserts.append(fresh.filter(pl.col("group_key").is_in(again["group_key"].implode())))
    rest = joined.filter(~pl.col("recount"))
    if in_place:
        ops.add(r, rest.select("group_key", *r.dims, *r.measures))
    else:
        more_deletes, more_inserts = _append(r, rest)
        deletes += more_deletes
        inserts += more_inserts
    if deletes:
        ops.delete(r.name, pa.table({"entry_id": pa.array(deletes, pa.string())}))
    inserts = [f for f in inserts if f.height]
    if inserts:
        ops.insert(r.name, entries_table(r, pl.concat([f.select("group_key", *r.dims, *r.measures)
                                                       for f in inserts]), keyed=in_place))


def _delta(r: Rollup, plus: pl.DataFrame, minus: pl.DataFrame) -> pl.DataFrame:
    """Per touched group: its dimensions, the sums of ``plus`` less those of ``minus``, the
    minima and maxima of ``plus``, and (``removed_*``) how many rows left and their extremes."""
    import polars as pl

    if minus.is_empty():  # only rows added: the usual write
        return plus.select("group_key", *r.dims, *r.measures).with_columns(
            pl.lit(0, pl.Int64).alias("removed_n"),
            *[pl.lit(None, plus.schema[x]).alias(f"removed_{x}") for x in r.mins + r.maxs])
    groups = pl.concat([plus.select("group_key", *r.dims), minus.select("group_key", *r.dims)]).unique(
        "group_key", keep="first")
    removed = minus.select("group_key", *[pl.col(s).alias(f"minus_{s}") for s in r.sums],
                           *[pl.col(x).alias(f"removed_{x}") for x in r.mins + r.maxs])
    out = (groups.join(plus.select("group_key", *r.measures), on="group_key", how="left")
           .join(removed, on="group_key", how="left"))
    out = out.with_columns(
        [(pl.col(s).fill_null(0) - pl.col(f"minus_{s}").fill_null(0)).alias(s) for s in r.sums]
        + [pl.col("minus_n").fill_null(0).alias("removed_n")])
    changed = pl.any_horizontal([pl.col(s) != 0 for s in r.sums] + [pl.col(x).is_not_null() for x in r.mins + r.maxs]
                                + [pl.col("removed_n") > 0])
    return out.filter(changed)


def _append(r: Rollup, rest: pl.DataFrame) -> tuple[list[str], list[pl.DataFrame]]:
    """For stores that append: per group, an entry with the change, the group folded into one
    entry when it has :data:`FOLD_AT`, or nothing left when its last row went."""
    import polars as pl

    deletes, rows = [], []
    for row in rest.iter_rows(named=True):
        ids = row["entry_ids"] or []
        n_after = (row["n__c"] or 0) + row["n"]
        if n_after <= 0:
            if n_after < 0:
                log.warning("%s: group %s would hold %d rows; `cosmoscope validate --fix` rebuilds the rollups",
                            r.name, row["group_key"], n_after)
            deletes += ids
            continue
        out = {c: row[c] for c in ("group_key", *r.dims)}
        if len(ids) + 1 >= FOLD_AT:
            deletes += ids
            out.update({s: (row[f"{s}__c"] or 0) + row[s] for s in r.sums})
            out.update({x: _pick(min, row[f"{x}__c"], row[x]) for x in r.mins})
            out.update({x: _pick(max, row[f"{x}__c"], row[x]) for x in r.maxs})
        else:
            out.update({c: row[c] for c in r.measures})
        rows.append(out)
    schema = {c: t for c, t in rest.schema.items() if c in ("group_key", *r.dims, *r.measures)}
    return deletes, [pl.DataFrame(rows, schema=schema, orient="row")] if rows else []


def _pick(fn, a, b):
    return b if a is None else a if b is None else fn(a, b)


def _entries(ops: Ops, r: Rollup, group_keys: list[str]) -> pl.DataFrame:
    import polars as pl

    pred = Predicate.of(Test("group_key", "is_in", tuple(group_keys)))
    return _read(ops, r.name, None, pred, pl.from_arrow(r.spec.schema.empty_table()).schema)


def _read(ops: Ops, table: str, columns, predicate, schema) -> pl.DataFrame:
    import polars as pl

    frames = [pl.from_arrow(b) for b in ops.scan(table, columns, predicate) if b.num_rows]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def fold(r: Rollup, df: pl.DataFrame, *, entries: bool = False) -> pl.DataFrame:
    """One row per group of rollup entries or contributions: sums added, minima and maxima
    combined (with ``entries``, also the list of the group's ``entry_ids``)."""
    import polars as pl

    aggs = ([pl.col(d).first() for d in r.dims] + [pl.col(s).sum() for s in r.sums]
            + [pl.col(x).min() for x in r.mins] + [pl.col(x).max() for x in r.maxs])
    if entries:
        aggs.append(pl.col("entry_id").alias("entry_ids"))
    return df.group_by("group_key").agg(aggs)


def _group_predicate(r: Rollup, groups: list[dict]) -> Predicate:
    """A predicate on the observations that every row of these groups matches (a superset)."""
    clauses = []
    for d in r.dims:
        values = {g[d] for g in groups}
        tests = []
        if d == "day":
            days = sorted(v for v in values if v is not None)
            if days:
                lo = dt.datetime.combine(days[0], dt.time(), dt.timezone.utc)
                if days[-1] < dt.date.max:
                    hi = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
                    tests.append(Test("observation_timestamp", "between", (lo, hi, "left")))
                else:  # the last day Python can name: no midnight after it
                    tests.append(Test("observation_timestamp", ">=", lo))
            column = "observation_timestamp"
        else:
            known = tuple(sorted(v for v in values if v is not None))
            if known:
                tests.append(Test(d, "is_in", known))
            column = d
        if None in values:
            tests.append(Test(column, "is_null"))
        clauses.append(Clause(tuple(tests)))
    return Predicate(tuple(clauses))


def _recount(ops: Ops, r: Rollup, groups: list[dict]) -> pl.DataFrame:
    """The contributions of the rows of these groups (and maybe others), counted again inside
    the write's transaction."""
    rows = frame(pa.Table.from_batches(list(ops.scan(SOURCE, [SOURCE_KEY, *READS], _group_predicate(r, groups))),
                                       schema=_source_schema()))
    return r.contributions(rows)


def _source_schema() -> pa.Schema:
    return pa.schema([S.OBSERVATIONS.schema.field(c) for c in (SOURCE_KEY, *READS)])


def entries_table(r: Rollup, groups: pl.DataFrame, *, keyed: bool = False) -> pa.Table:
    """Rollup entries (``group_key``, dimensions, measures) as an Arrow table of the rollup's
    schema. ``entry_id`` is the group key itself for a store that keeps one entry per group
    (``keyed``), else a fresh id."""
    import polars as pl

    ids = groups["group_key"] if keyed else pl.Series([uuid.uuid4().hex for _ in range(groups.height)], dtype=pl.String)
    out = groups.with_columns(ids.alias("entry_id"))
    return out.select(r.spec.schema.names).to_arrow().cast(r.spec.schema)


@functools.lru_cache(maxsize=None)
def _polars_schema(r: Rollup):
    import polars as pl

    return pl.from_arrow(r.spec.schema.empty_table()).schema


def source_contributions(ops: Ops, predicate: Predicate | None = None, *, progress: bool = False,
                         total: int | None = None) -> dict[str, pl.DataFrame]:
    """Every rollup computed from the rows (those matching ``predicate``), folded per group."""
    import polars as pl
    from tqdm.auto import tqdm

    parts: dict[str, list] = {r.name: [] for r in ROLLUPS}
    schema = _source_schema()
    bar = tqdm(total=total, unit="row", unit_scale=True, desc="counting rollups", disable=not progress or None,
               leave=False)

    def add(batches):
        rows = frame(pa.Table.from_batches(batches, schema=schema))
        for r in ROLLUPS:
            # the rollup's own columns only, so folded parts and new ones concatenate
            parts[r.name].append(r.contributions(rows).select("group_key", *r.dims, *r.measures))
            if len(parts[r.name]) > 8:
                parts[r.name] = [fold(r, pl.concat(parts[r.name]))]
        bar.update(rows.height)

    try:
        pending, size = [], 0
        for batch in ops.scan(SOURCE, [SOURCE_KEY, *READS], predicate):
            pending.append(batch)
            size += batch.num_rows
            if size >= BUILD_CHUNK:
                add(pending)
                pending, size = [], 0
        add(pending)
    finally:
        bar.close()
    return {r.name: fold(r, pl.concat(parts[r.name])) for r in ROLLUPS}


def rebuild(ops: Ops, *, progress: bool = False, total: int | None = None) -> dict[str, int]:
    """Replace every rollup entry by a fresh count of the rows; returns the groups per rollup."""
    fresh = source_contributions(ops, progress=progress, total=total)
    out = {}
    for r in ROLLUPS:
        stale = [v for b in ops.scan(r.name, ["entry_id"], None) for v in b.column(0).to_pylist()]
        if stale:
            ops.delete(r.name, pa.table({"entry_id": pa.array(stale, pa.string())}))
        if fresh[r.name].height:
            ops.insert(r.name, entries_table(r, fresh[r.name], keyed=getattr(ops, "in_place", False)))
        out[r.name] = fresh[r.name].height
    return out


@dataclass
class RollupCheck:
    """What :func:`check` found: groups whose stored values differ from a recount of the rows."""

    groups: int = 0
    rows: int = 0
    mismatches: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def __str__(self) -> str:
        if self.ok:
            return f"rollups: {self.groups:,} groups agree with a recount of {self.rows:,} rows"
        shown = "; ".join(f"{m['rollup']} {m['group']}: {m['measure']} is {m['stored']!r}, "
                          f"recount {m['recount']!r}" for m in self.mismatches[:3])
        return (f"rollups: {len(self.mismatches):,} values disagree with a recount of the rows ({shown}"
                f"{'; ...' if len(self.mismatches) > 3 else ''}); reads use the rows until "
                "`cosmoscope validate --fix` rebuilds them")


def check(ops: Ops, *, missions: Sequence[str] | None = None, progress: bool = False,
          total: int | None = None) -> RollupCheck:
    """Compare the stored rollups (of ``missions``, or all) with a recount of the rows."""
    import polars as pl

    pred = None
    if missions is not None:
        pred = Predicate.of(Test("mission_id", "is_in", tuple(missions)))
    fresh = source_contributions(ops, pred, progress=progress, total=total)
    result = RollupCheck(rows=int(fresh[STATUSES.name]["n"].sum() or 0))
    for r in ROLLUPS:
        stored = fold(r, _read(ops, r.name, None, pred, _polars_schema(r)))
        stored = stored.filter(pl.any_horizontal([pl.col(s) != 0 for s in r.sums]))
        joined = stored.join(fresh[r.name], on="group_key", how="full", suffix="__recount", coalesce=True)
        result.groups += joined.height
        for row in joined.iter_rows(named=True):
            # a group's dimensions are stored beside its key, and filters read them: they must agree too
            dims = r.dims if row["n"] is not None and row["n__recount"] is not None else ()
            for m in (*dims, *r.measures):
                a, b = row[m], row[f"{m}__recount"]
                if a != b and not (a in (None, 0) and b in (None, 0) and m in r.sums):
                    result.mismatches.append({"rollup": r.name, "group": row["group_key"], "measure": m,
                                              "stored": a, "recount": b})
    return result
