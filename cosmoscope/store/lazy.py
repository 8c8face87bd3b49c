"""Catalog tables as lazy polars frames, with filters, projections and limits pushed to the store.

polars hands the source the projected columns, the predicate and ``n_rows``, and then trusts it:
whatever the source yields is the answer. So the source splits the predicate
(:func:`cosmoscope.predicate.split_predicate`), asks the store for the pushable part, and still
filters every batch with polars' own predicate, exactly as polars received it, and cuts to
``n_rows`` itself. A query polars refuses (a naive datetime against a UTC column, text against
a number) fails with polars' own error before anything is read.

Limits. polars passes ``n_rows`` only when nothing is filtered above the scan, and otherwise
stops pulling batches once it has enough rows. So:

- a frame made by :meth:`Catalog.search` carries its filter in the source itself (polars sees
  no filter), so ``search(...).head(n)`` hands the store the limit ``n`` whenever the whole
  filter reached the store; it can carry an order too (``search(sort=...)``), which the store
  applies before the limit;
- a read with a filter polars applies above the scan asks the store for small first batches
  that grow (``first_rows``), so a ``filter(...).head(n)`` reads a few thousand rows, not every
  match; a read with none is read whole at full speed (in parallel where the store can).

``explain`` says which of these each scan does.

:func:`explain` runs a copy of the plan whose scans read nothing: each scan is an object that
polars pickles into the copy (:meth:`_Scan.__reduce__`), so the copy's scans record what they
would push while every other query, in any thread, keeps reading.
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cosmoscope.predicate import Predicate, split_predicate

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from cosmoscope.store.base import Store

log = logging.getLogger(__name__)


#: Rows of the first batch of a read polars may cut short (see the module docstring).
FIRST_ROWS = 1_024


@dataclass
class Pushdown:
    """What one scan sent to the store and what it kept for polars."""

    table: str
    store_url: str
    columns: list[str]
    predicate: Predicate
    residual: object = None
    limit: int | None = None
    order: list[tuple[str, bool]] | None = None
    #: The store is asked for small first batches (polars filters above the scan).
    growing: bool = False

    @property
    def reading(self) -> str:
        """How the store is asked to read, in words."""
        if self.limit is not None:
            return f"at most {self.limit:,} rows: the limit reached the store"
        if self.growing:
            return (f"small first batches ({FIRST_ROWS:,} rows, doubling): polars passes no row limit when it "
                    "filters, and stops pulling batches once it has enough")
        return "every matching row, in full-size batches (nothing above the scan filters or limits it)"

    def __str__(self) -> str:
        order = ", ".join(f"{c} {'descending' if d else 'ascending'}" for c, d in self.order or ())
        lines = [f"scan {self.table} in {self.store_url}",
                 f"  columns:  {', '.join(self.columns)}",
                 f"  pushed:   {self.predicate}",
                 f"  residual: {self.residual if self.residual is not None else '(none)'}",
                 *([f"  order:    {order} (missing values last, then by key), by the store"] if order else []),
                 f"  reading:  {self.reading}"]
        return "\n".join(lines)


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars schema of an Arrow schema (a copy of its own: callers may change it)."""
    import polars as pl

    return pl.Schema(_polars_schema(schema))


@functools.lru_cache(maxsize=32)
def _polars_schema(schema: pa.Schema) -> pl.Schema:
    # Converting costs a fifth of a millisecond, paid on every lazy frame and API page.
    import polars as pl

    return pl.from_arrow(schema.empty_table()).schema


#: Live scans by token, so that a copy of a plan made by :func:`explain` finds its store.
_scans: weakref.WeakValueDictionary[int, _Scan] = weakref.WeakValueDictionary()
_tokens = itertools.count()
#: The recorder of the :func:`explain` running in this thread, while it copies a plan.
_copying = threading.local()


class _Scan:
    """The IO source of one lazy frame over one table of a store, maybe carrying a filter
    (``carried``: a polars expression, applied as if it were polars' own) and an ``order``."""

    def __init__(self, store: Store, table: str, recorder: list[Pushdown] | None = None, *,
                 carried: pl.Expr | None = None, order: tuple[str, bool] | None = None):
        import polars as pl

        self.store, self.table = store, table
        self.schema = polars_schema(store.tables()[table])
        self.empty = pl.DataFrame(schema=self.schema)
        self.recorder = recorder  # set on the copies explain makes: they record and read nothing
        self.carried, self.order = carried, order
        if carried is not None:
            self.empty.filter(carried)  # polars' own error for a filter polars refuses
        self.token = next(_tokens)
        _scans[self.token] = self

    def __reduce__(self):
        # polars pickles the source when it serialises a plan; only explain() does that here.
        return (_scan_copy, (self.token,))

    def _filter(self, predicate):
        """The whole filter: the one this frame carries and the one polars hands over."""
        if self.carried is None:
            return predicate
        return self.carried if predicate is None else self.carried & predicate

    def plan(self, with_columns, predicate, n_rows) -> Pushdown:
        polars_filtered = predicate is not None
        predicate = self._filter(predicate)
        pushed, residual = split_predicate(predicate, self.schema)
        wanted = list(with_columns) if with_columns is not None else list(self.schema.names())
        extra = set(pushed.columns)
        if predicate is not None:
            extra |= set(predicate.meta.root_names())
        needed = wanted + [c for c in self.schema.names() if c in extra and c not in wanted]
        limit = n_rows if residual is None else None
        order = [self.order] if self.order is not None else None
        growing = limit is None and polars_filtered
        return Pushdown(self.table, self.store.url, needed, pushed, residual, limit, order, growing)

    def __call__(self, with_columns, predicate, n_rows, batch_size):
        import polars as pl

        if predicate is not None:
            self.empty.filter(predicate)  # polars' own error for a query polars refuses
        plan = self.plan(with_columns, predicate, n_rows)
        log.debug("%s", plan)
        if self.recorder is not None:
            self.recorder.append(plan)
            return
        predicate = self._filter(predicate)
        wanted = list(with_columns) if with_columns is not None else list(self.schema.names())
        remaining = n_rows
        if remaining == 0:
            return
        options = {"order_by": plan.order} if plan.order else {}
        if plan.growing:
            options["first_rows"] = FIRST_ROWS  # polars filters above the scan: it may stop early unannounced
        for batch in self.store.scan(self.table, plan.columns, plan.predicate, plan.limit, batch_size, **options):
            df = pl.from_arrow(batch)
            if predicate is not None:
                df = df.filter(predicate)
            if remaining is not None:
                df = df.head(remaining)
                remaining -= df.height
            if df.height:
                yield df.select(wanted)
            if remaining == 0:
                return


def _scan_copy(token: int) -> _Scan:
    """A scan rebuilt from a pickled plan: a recording copy inside :func:`explain`."""
    live = _scans.get(token)
    recorder = getattr(_copying, "recorder", None)
    if live is None or recorder is None:
        raise RuntimeError("a cosmoscope lazy frame can only be copied by cosmoscope.store.lazy.explain")
    return _Scan(live.store, live.table, recorder, carried=live.carried, order=live.order)


def scan_table(store: Store, table: str, *, where: pl.Expr | None = None,
               order: tuple[str, bool] | None = None) -> pl.LazyFrame:
    """A lazy frame over ``table`` of ``store``: its rows matching ``where`` (filtered inside the
    source, so polars can still pass a row limit), sorted by ``order`` = (column, descending)
    with missing values last and ties by the table's key."""
    from polars.io.plugins import register_io_source

    source = _Scan(store, table, carried=where, order=order)
    return register_io_source(
        source, schema=source.schema, explain_name=f"cosmoscope {table}",
        explain_detail=f"store {store.url}: filters pushed as an AND of per-column ORs, the rest applied by polars")


def pushdowns(lf: pl.LazyFrame) -> list[Pushdown]:
    """What each catalog scan of ``lf`` would send to its store, found without reading a row.

    Runs a copy of the plan whose scans record and read nothing, to see the predicate polars
    hands each scan; queries running at the same time, in any thread, are not affected.
    """
    import polars as pl

    seen: list[Pushdown] = []
    _copying.recorder = seen
    try:
        copy = pl.LazyFrame.deserialize(io.BytesIO(lf.serialize()))
    except Exception as exc:  # noqa: BLE001 - e.g. a map_elements function that cannot be pickled
        raise _CannotCopy(str(exc)) from exc
    finally:
        _copying.recorder = None
    copy.collect()  # a query polars refuses raises its own error here, as collect() would
    return seen


class _CannotCopy(Exception):
    """polars could not serialise the plan."""


def explain(lf: pl.LazyFrame) -> str:
    """polars' optimised plan, followed by what each catalog scan pushes to its store."""
    try:
        seen = pushdowns(lf)
    except _CannotCopy as exc:
        log.debug("cannot copy the plan to explain it: %s", exc)
        return "\n".join([lf.explain(), "", f"What reaches the store cannot be shown for this query: {exc}"])
    return "\n".join([lf.explain(), "", "Pushed down to the store:"] + [str(p) for p in seen])
