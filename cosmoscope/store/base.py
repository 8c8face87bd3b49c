"""The Store protocol: the few verbs on Arrow data that every catalog backend offers.

A store knows nothing about file formats or the catalog's meaning; it keeps Arrow tables with
keys. The Catalog above it supplies the table specs from :mod:`cosmoscope.schema`.

Contract, checked by ``tests/test_store_contract.py`` against every backend:

- ``create_table`` / ``add_columns`` / ``tables`` give additive schema management.
- ``upsert`` inserts new keys and overwrites the given columns of existing ones. It is atomic
  per write batch; inside ``transaction()`` the whole transaction is atomic.
- ``scan`` streams ``pyarrow.RecordBatch`` objects that conform exactly to the stored schema
  (projected to ``columns``), filtered by a :class:`~cosmoscope.predicate.Predicate` and cut to
  ``limit`` rows. Rows come in no particular order, unless ``order_by`` asks for one (missing
  values last, ties by the table's key). ``first_rows`` asks for small first batches that grow,
  for a reader that may stop early.
- Writes of the observations keep the rollups (:mod:`cosmoscope.store.rollup`) in the same
  transaction; ``atomically(fn)`` runs ``fn(ops)`` with reads and writes in one transaction.
- ``update`` sets columns of existing keys; ``delete`` removes keys. Both return how many rows
  they touched.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cosmoscope.errors import TransactionAbortedError

if TYPE_CHECKING:
    import pyarrow as pa

    from cosmoscope.predicate import Predicate

#: Rows per write transaction when the caller did not open one: big enough to be fast, small
#: enough that another process waiting to write is not held for long (DESIGN.md: 10k-50k).
WRITE_BATCH_ROWS = 20_000


@dataclass(frozen=True)
class Agg:
    """One aggregate of a grouped summary.

    ``op`` is ``count`` (rows), ``sum`` (as a float: it never overflows), ``isum`` (an exact
    integer sum, for columns whose sums fit 64 bits), ``min``, ``max``, ``mean`` of ``column``,
    ``count_eq`` (rows where ``column == value``) or ``max_of`` (the largest of ``column`` and
    the column named by ``value``, nulls skipped). Nulls are skipped as in SQL and polars.
    """

    name: str
    op: str
    column: str | None = None
    value: object = None


@runtime_checkable
class Store(Protocol):
    """What the Catalog needs from a backend."""

    #: The URL the store was opened with, without credentials.
    url: str

    def tables(self) -> dict[str, pa.Schema]:
        """Stored tables and their Arrow schemas."""

    def create_table(self, name: str, schema: pa.Schema, key: Sequence[str],
                     indexes: Sequence[Sequence[str]] = ()) -> None:
        """Create a table (no-op if it exists with the same name)."""

    def add_columns(self, name: str, fields: Sequence[pa.Field]) -> None:
        """Add nullable columns to an existing table."""

    def upsert(self, table: str, data: pa.Table, key: Sequence[str],
               preserve: Sequence[str] = ()) -> int:
        """Insert or overwrite rows by ``key``; ``preserve`` columns keep their stored value
        on rows that already exist. Returns the number of rows written."""

    def scan(self, table: str, columns: Sequence[str] | None = None,
             predicate: Predicate | None = None, limit: int | None = None,
             batch_size: int | None = None, *, order_by: Sequence[tuple[str, bool]] | None = None,
             first_rows: int | None = None) -> Iterator[pa.RecordBatch]:
        """Stream matching rows as record batches (``order_by``: (column, descending) pairs)."""

    def atomically(self, fn, *, write: bool = True, what: str = ""):
        """``fn(ops)`` with ``ops`` (:class:`cosmoscope.store.rollup.Ops`) reading and writing in
        one transaction (``write=False``: one read snapshot)."""

    def update(self, table: str, data: pa.Table, key: Sequence[str]) -> int:
        """Set the non-key columns of ``data`` on the rows whose key matches."""

    def delete(self, table: str, keys: pa.Table) -> int:
        """Delete the rows whose key columns equal a row of ``keys``."""

    # Optional: ``aggregate(table, group_by, aggregations, predicate) -> pa.Table`` computes
    # grouped :class:`Agg` aggregates inside the store. Stores without it are summarised by
    # :func:`aggregate_by_scan`. ``create_indexes(table, indexes)`` adds the secondary indexes
    # a migration brings, where the backend has any.

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside commit together or not at all; nesting joins the outer one."""

    def close(self) -> None:
        """Release connections."""


def canonical_floats(col):
    """A float column as every store keeps it: NaN as null (SQLite has no NaN) and -0.0 as 0.0
    (equal to polars, but not to every store's filter), so a row reads back the same from each."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count == len(col):
        return col
    col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    return pc.if_else(pc.equal(col, pa.scalar(0.0, col.type)), pa.scalar(0.0, col.type), col)


def aggregate(store: Store, table: str, group_by: Sequence[str], aggregations: Sequence[Agg],
              predicate: Predicate | None = None) -> pa.Table:
    """Grouped aggregates, computed by the store when it can and by polars over a scan otherwise."""
    native = getattr(store, "aggregate", None)
    if native is not None:
        return native(table, group_by, aggregations, predicate)
    return aggregate_by_scan(store, table, group_by, aggregations, predicate)


def aggregate_by_scan(store: Store, table: str, group_by: Sequence[str], aggregations: Sequence[Agg],
                      predicate: Predicate | None = None) -> pa.Table:
    """The same aggregates computed by polars over a pushed-down scan of the needed columns."""
    import polars as pl
    import pyarrow as pa

    needed = list(dict.fromkeys([*group_by, *(a.column for a in aggregations if a.column),
                                 *(a.value for a in aggregations if a.op == "max_of")]))
    schema = store.tables()[table]
    batches = list(store.scan(table, needed, predicate))
    df = pl.from_arrow(pa.Table.from_batches(batches, schema=pa.schema([schema.field(c) for c in needed])))
    exprs = polars_aggregations(aggregations)
    out = df.group_by(group_by).agg(exprs) if group_by else df.select(exprs)
    return out.to_arrow()


def polars_aggregations(aggregations: Sequence[Agg]) -> list:
    """The :class:`Agg` list as polars expressions (for frames already in memory)."""
    import polars as pl

    def one(a: Agg):
        col = pl.col(a.column) if a.column else None
        if a.op == "count":
            return pl.len().cast(pl.Int64)
        if a.op == "sum":
            return col.cast(pl.Float64).sum()  # an Int64 sum would wrap around silently
        if a.op == "isum":
            return col.sum().cast(pl.Int64)
        if a.op in ("min", "max", "mean"):
            return getattr(col, a.op)()
        if a.op == "count_eq":
            return (col == a.value).sum().cast(pl.Int64)
        if a.op == "max_of":
            return pl.max_horizontal(a.column, a.value).max()
        raise ValueError(f"unknown aggregate {a.op!r}")

    return [one(a).alias(a.name) for a in aggregations]


def run_again_if_aborted(work, *, attempts: int = 6, wait: float = 0.05):
    """``work()`` (which opens its own transaction and reads what it writes from), run again when
    the store aborted its transaction without applying any of it
    (:class:`~cosmoscope.errors.TransactionAbortedError`: another writer's commit won a race, or
    the store restarted). Only VAST aborts transactions; SQLite writers take turns."""
    for attempt in range(attempts):
        try:
            return work()
        except TransactionAbortedError:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, wait * 2 ** attempt))


def open_store(url: str, *, readonly: bool = False, create: bool = True) -> Store:
    """Open the backend a catalog URL names.

    ``sqlite:///abs/path.sqlite``, a plain file path, or ``:memory:`` give the embedded SQLite
    store; ``vast://ENDPOINT/BUCKET/SCHEMA`` gives VAST Database. Without ``create`` (and always
    when ``readonly``) a catalog that does not exist yet raises
    :class:`~cosmoscope.errors.CatalogNotFoundError` instead of being made.
    """
    from cosmoscope.errors import CatalogOpenError

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "sqlite", "file"):
        from cosmoscope.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), readonly=readonly, create=create)
    if scheme in ("vast", "vast+http", "vast+https"):
        try:
            from cosmoscope.store.vast import VastStore
        except ImportError as exc:
            raise CatalogOpenError(f"the VAST Database backend is not available here: {exc}") from exc
        return VastStore.from_url(url, readonly=readonly, create=create)
    raise CatalogOpenError(
        f"cannot open catalog {url!r}: unknown scheme {scheme!r}; use sqlite:///path/to/catalog.sqlite, "
        "a file path, or vast://ENDPOINT/BUCKET/SCHEMA")


def sqlite_path(url: str) -> str:
    """The file path in a SQLite catalog URL.

    >>> sqlite_path("sqlite:///data/catalog.sqlite")
    '/data/catalog.sqlite'
    >>> sqlite_path("sqlite:////data/catalog.sqlite")  # SQLAlchemy's form of the same
    '/data/catalog.sqlite'
    >>> sqlite_path("sqlite://relative/catalog.sqlite")
    'relative/catalog.sqlite'
    >>> sqlite_path("catalog.sqlite")
    'catalog.sqlite'
    """
    for prefix in ("sqlite://", "file://"):
        if url.lower().startswith(prefix):
            url = url[len(prefix):]
            break
    return "/" + url.lstrip("/") if url.startswith("//") else url
