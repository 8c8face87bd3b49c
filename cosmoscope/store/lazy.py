"""Catalog tables as lazy polars frames, with filters, projections and limits pushed to the store.

polars hands the source the projected columns, the predicate and ``n_rows``, and then trusts it:
whatever the source yields is the answer. So the source splits the predicate
(:func:`cosmoscope.predicate.split_predicate`), asks the store for the pushable part, and still
filters every batch with the whole predicate and cuts to ``n_rows`` itself. The limit only
travels to the store when nothing is left to filter in polars.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmoscope.predicate import Predicate, split_predicate

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from cosmoscope.store.base import Store

log = logging.getLogger(__name__)


@dataclass
class Pushdown:
    """What one scan sent to the store and what it kept for polars."""

    table: str
    store_url: str
    columns: list[str]
    predicate: Predicate
    residual: object = None
    limit: int | None = None

    def __str__(self) -> str:
        lines = [f"scan {self.table} in {self.store_url}",
                 f"  columns:  {', '.join(self.columns)}",
                 f"  pushed:   {self.predicate}",
                 f"  residual: {self.residual if self.residual is not None else '(none)'}",
                 f"  limit:    {self.limit if self.limit is not None else '(none passed; a streaming collect stops reading once it has enough rows)'}"]
        return "\n".join(lines)


@dataclass
class _Recorder:
    dry_run: bool = False
    seen: list[Pushdown] = field(default_factory=list)


_recording_lock = threading.Lock()
_recorder: _Recorder | None = None


@contextmanager
def _record(dry_run: bool):
    global _recorder
    with _recording_lock:
        _recorder = _Recorder(dry_run=dry_run)
        try:
            yield _recorder
        finally:
            _recorder = None


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars schema of an Arrow schema."""
    import polars as pl

    return pl.from_arrow(schema.empty_table()).schema


def scan_table(store: Store, table: str) -> pl.LazyFrame:
    """A lazy frame over ``table`` of ``store``."""
    from polars.io.plugins import register_io_source

    arrow_schema = store.tables()[table]
    schema = polars_schema(arrow_schema)

    def source(with_columns, predicate, n_rows, batch_size):
        import polars as pl

        pushed, residual = split_predicate(predicate, schema)
        full = pushed.to_polars()
        if residual is not None:
            full = residual if full is None else full & residual
        wanted = list(with_columns) if with_columns is not None else list(schema.names())
        needed = list(wanted)
        extra = set(pushed.columns)
        if residual is not None:
            extra |= set(residual.meta.root_names())
        needed += [c for c in schema.names() if c in extra and c not in needed]
        limit = n_rows if residual is None else None
        plan = Pushdown(table, store.url, needed, pushed, residual, limit)
        log.debug("%s", plan)
        rec = _recorder
        if rec is not None:
            rec.seen.append(plan)
            if rec.dry_run:
                return
        remaining = n_rows
        if remaining == 0:
            return
        for batch in store.scan(table, needed, pushed, limit, batch_size):
            df = pl.from_arrow(batch)
            if full is not None:
                df = df.filter(full)
            if remaining is not None:
                df = df.head(remaining)
                remaining -= df.height
            if df.height:
                yield df.select(wanted)
            if remaining == 0:
                return

    return register_io_source(
        source, schema=schema, explain_name=f"cosmoscope {table}",
        explain_detail=f"store {store.url}: filters pushed as an AND of per-column ORs, the rest applied by polars")


def explain(lf: pl.LazyFrame) -> str:
    """polars' optimised plan, followed by what each catalog scan pushes to its store.

    Runs the plan without reading any rows, to see the predicate polars hands each scan.
    """
    with _record(dry_run=True) as rec:
        lf.collect()
    parts = [lf.explain(), "", "Pushed down to the store:"] + [str(p) for p in rec.seen]
    return "\n".join(parts)
