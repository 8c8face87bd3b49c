"""The embedded store: one SQLite file in WAL mode, no server to start.

All access goes through the ADBC SQLite driver, which moves Arrow data in and out of SQLite in C:
about ten times faster than building rows in Python in both directions. Writes use one
connection per store (``BEGIN IMMEDIATE`` transactions of at most
:data:`~cosmoscope.store.base.WRITE_BATCH_ROWS` rows, a generous busy timeout so concurrent
writers queue instead of failing); each scan reads on a read-only connection of its own (kept
per thread between scans, each statement its own short transaction), so readers in other
processes are never blocked and never see a half-written batch.

Only one SQLite library may touch the file within a process: two copies (Python's ``sqlite3``
and the driver's own) drop each other's POSIX locks when one closes the file, which SQLite
reports as "locking protocol" errors under load and can corrupt the database. Hence no
``sqlite3`` here.

Arrow types are stored as SQLite's own: strings as TEXT, integers as INTEGER, floats as REAL and
timestamps as INTEGER microseconds since the Unix epoch (UTC). The Arrow schema of each table is
kept in ``_cosmoscope_tables`` so scans return exactly the types that were written. SQLite keeps
no NaN (it stores NULL instead), so a NaN float reads back as null.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from cosmoscope.errors import (CatalogNotFoundError, CatalogOpenError, CosmoscopeError, SchemaError, StoreError,
                               UnknownNameError)
from cosmoscope.predicate import Predicate, Test, successor
from cosmoscope.store import rollup, sqlite_rollup
from cosmoscope.store.base import WRITE_BATCH_ROWS, Agg, canonical_floats
from cosmoscope.times import epoch_us

log = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_META_TABLE = "_cosmoscope_tables"
_SENTINEL = "__cosmoscope_sentinel"
#: Longest ``IN (?, ?, ...)`` list bound value by value; longer lists travel as one JSON array.
#: The driver converts each bound value in Python (~4 us each), a JSON text in C: a 100-id lookup
#: costs 25% less as one array.
_MAX_INLINE_IN = 32


def _q(name: str) -> str:
    """Quote an identifier (names come from the schema, but quoting keeps SQL words safe)."""
    return '"' + name.replace('"', '""') + '"'


def _sql_type(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_boolean(t) or pa.types.is_date(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "REAL"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BLOB"
    return "TEXT"


#: Rows, first in an index's order, among which an ordered, limited read looks for its rows
#: before SQLite sorts the whole table (see SQLiteStore._newest_first): walked through the index
#: in about 0.1 s at worst.
ORDER_WINDOW = 100_000


def _storage_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type a column has on its way in and out of SQLite."""
    if pa.types.is_timestamp(t) or pa.types.is_date64(t) or pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pa.int64()
    if pa.types.is_date32(t):
        return pa.int32()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.binary()
    return pa.string()


def _sentinel_literal(t: pa.DataType) -> str:
    st = _storage_type(t)
    if pa.types.is_integer(st):
        return "0"
    if pa.types.is_floating(st):
        return "0.0"
    if pa.types.is_binary(st):
        return "x''"
    return "''"


def _to_sql_value(v):
    import datetime as dt

    if isinstance(v, dt.datetime):
        return epoch_us(v)
    if isinstance(v, dt.date):
        return (v - dt.date(1970, 1, 1)).days
    return v


def _storage_array(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """An Arrow column in the form SQLite stores it (times as integers, no NaN)."""
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_boolean(t):
        return col.cast(_storage_type(t))
    if pa.types.is_floating(t):
        return canonical_floats(col)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return col.cast(pa.string())
    return col


def compile_predicate(pred: Predicate | None, schema: pa.Schema) -> tuple[str, list]:
    """Compile the IR to a parameterised SQL condition. Values are bound, never formatted in.

    >>> import pyarrow as pa
    >>> from cosmoscope.predicate import Predicate, Test
    >>> compile_predicate(Predicate.of(Test("a", "==", 1), Test("b", "starts_with", "NG")),
    ...                   pa.schema([("a", pa.int64()), ("b", pa.string())]))
    ('("a" = ?) AND (("b" >= ? AND "b" < ?))', [1, 'NG', 'NH'])
    """
    if not pred:
        return "1", []
    parts, params = [], []
    for clause in pred.clauses:
        if schema.get_field_index(clause.column) < 0:
            raise UnknownNameError("column", clause.column, schema.names)
        ors = []
        for test in clause.tests:
            sql, p = _compile_test(test)
            ors.append(sql)
            params.extend(p)
        parts.append("(" + " OR ".join(ors) + ")")
    return " AND ".join(parts), params


def _compile_test(t: Test) -> tuple[str, list]:
    c = _q(t.column)
    op, v = t.op, t.value
    if op in ("==", "!=", "<", "<=", ">", ">="):
        return f"{c} {'=' if op == '==' else op} ?", [_to_sql_value(v)]
    if op == "is_null":
        return f"{c} IS NULL", []
    if op == "is_not_null":
        return f"{c} IS NOT NULL", []
    if op == "is_in":
        values = [_to_sql_value(x) for x in v]
        if not values:
            return "0", []
        if len(values) <= _MAX_INLINE_IN:
            return f"{c} IN ({', '.join('?' * len(values))})", values
        return f"{c} IN (SELECT value FROM json_each(?))", [json.dumps(values)]
    if op == "between":
        lo, hi, closed = v
        lo_op = ">=" if closed in ("both", "left") else ">"
        hi_op = "<=" if closed in ("both", "right") else "<"
        return f"({c} {lo_op} ? AND {c} {hi_op} ?)", [_to_sql_value(lo), _to_sql_value(hi)]
    if op == "starts_with":
        if v == "":
            return f"{c} IS NOT NULL", []
        upper = successor(v)
        if upper is None:
            return f"{c} >= ?", [v]
        return f"({c} >= ? AND {c} < ?)", [v, upper]
    if op == "contains":
        return f"instr({c}, ?) > 0", [v]
    raise StoreError(f"the SQLite store cannot evaluate the test {t}")  # pragma: no cover


class _Connection:
    """One ADBC SQLite connection with the few calls the store needs, errors made readable."""

    def __init__(self, uri: str, busy_timeout: float):
        import adbc_driver_sqlite.dbapi as adbc

        self._con = adbc.connect(uri, autocommit=True)
        self._cur = self._con.cursor()
        self.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        # 64 MiB of page cache: index updates of a bulk insert into a big table stay in memory.
        self.execute("PRAGMA cache_size=-65536")

    def execute(self, sql: str, params: Sequence = ()) -> list[tuple]:
        self._cur.execute(sql, parameters=list(params) if params else None)
        try:
            return self._cur.fetchall()
        except Exception:  # statements without a result set
            return []

    def reader(self, sql: str, params: Sequence, batch_rows: int) -> pa.RecordBatchReader:
        # Batches of ~10k rows: 40% faster than the driver's default 1k, and still small enough
        # that a query polars stops early (head after a filter) reads little.
        self._cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
        self._cur.execute(sql, parameters=list(params) if params else None)
        return self._cur.fetch_record_batch()

    def executemany(self, sql: str, data: pa.Table) -> int:
        self._cur.executemany(sql, data)
        return max(self._cur.rowcount, 0)

    def close(self) -> None:
        if self._con is None:
            return
        try:
            self._cur.close()
        finally:
            self._con.close()
            self._con = None

    def __del__(self):
        # The driver refuses to close a connection before its statements; keep that order even
        # when a store is dropped without close().
        try:
            self.close()
        except Exception:
            pass


def _is_busy(exc: Exception) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SQLiteStore:
    """A catalog store in one SQLite file. See the module docstring."""

    def __init__(self, path: str, *, readonly: bool = False, create: bool = True, busy_timeout: float = 60.0,
                 synchronous: str = "NORMAL"):
        self._temp = None
        if path in ("", ":memory:"):
            # Readers open the file on their own connections: a private temporary file it is.
            fd, path = tempfile.mkstemp(prefix="cosmoscope-", suffix=".sqlite")
            os.close(fd)
            self._temp = path
            atexit.register(self._remove_temp)
        self.path = os.path.abspath(os.path.expanduser(path))
        if self.path.startswith("//"):
            # POSIX keeps a leading "//" (from sqlite:////abs/path, SQLAlchemy's form, or a
            # path typed that way), and in a file: URI it would name a host: it is plain "/".
            self.path = "/" + self.path.lstrip("/")
        self.url = "sqlite://" + (self.path if self.path.startswith("/") else "/" + self.path)
        self.readonly = readonly
        self.create = create and not readonly
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._readers = threading.local()  # per thread: idle read-only connections
        self._depth = 0
        self._owner: int | None = None
        self._schemas: dict[str, pa.Schema] = {}
        self._keys: dict[str, tuple[str, ...]] = {}
        self._index_order: dict[str, list[str]] = {}
        self._indexes: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self._reads_whole_table: dict[str, bool] = {}  # see _newest_first
        self._local = threading.local()  # .con: the read connection of a snapshot() in this thread
        self._con: _Connection | None = None
        _check_file(self.path, readonly, self.create)
        try:
            if os.path.getsize(self.path) if os.path.exists(self.path) else 0:
                self._refuse_foreign()  # on a read-only connection, before anything writes
            self._con = _Connection(self._ro_uri() if readonly else self._rw_uri(), busy_timeout)
            if not readonly:
                mode = self._con.execute("PRAGMA journal_mode=WAL")[0][0]
                if str(mode).lower() != "wal":
                    log.warning("%s: SQLite could not switch to WAL mode (got %s); readers may wait "
                                "for writers on this file system", self.path, mode)
                self._con.execute(f"PRAGMA synchronous={synchronous}")
                # Checkpoint every ~40 MB of WAL rather than 4 MB: bulk writes copy pages less often.
                self._con.execute("PRAGMA wal_autocheckpoint=10000")
            self._load_meta()
        except BaseException as exc:
            if self._con is not None:
                self._con.close()
            if isinstance(exc, CosmoscopeError):
                raise
            if isinstance(exc, Exception):
                raise CatalogOpenError(f"cannot open the catalog at {self.path}: {exc}") from exc
            raise

    # -- housekeeping ------------------------------------------------------------------

    def _ro_uri(self) -> str:
        return f"file:{quote(self.path)}?mode=ro"

    def _rw_uri(self) -> str:
        return f"file:{quote(self.path)}?mode=rwc"

    def _remove_temp(self):
        if self._temp:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(self._temp + suffix)
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            try:
                for con in getattr(self._readers, "idle", ()):  # this thread's; other threads' go with them
                    con.close()
                self._readers = threading.local()
                if self._con is not None:
                    self._con.close()
                    self._con = None
            finally:
                self._remove_temp()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _refuse_foreign(self):
        con = _Connection(self._ro_uri(), self.busy_timeout)
        try:
            names = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        finally:
            con.close()
        if names and _META_TABLE not in names:
            raise SchemaError(
                f"{self.path} is a SQLite database but not a cosmoscope catalog (it holds the tables "
                f"{', '.join(names[:5])}); it was left untouched. Choose another catalog path.")

    def _load_meta(self):
        has_meta = bool(self._con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (_META_TABLE,)))
        if not has_meta:
            if not self.create:  # the Catalog above says there is no catalog here
                return
            self._con.execute(
                f"CREATE TABLE IF NOT EXISTS {_q(_META_TABLE)} (name TEXT PRIMARY KEY, "
                "arrow_schema BLOB NOT NULL, key TEXT NOT NULL)")
        for name, blob, key in self._con.execute(f"SELECT name, arrow_schema, key FROM {_q(_META_TABLE)}"):
            self._schemas[name] = pa.ipc.read_schema(pa.py_buffer(blob))
            self._keys[name] = tuple(json.loads(key))

    def _schema(self, table: str) -> pa.Schema:
        try:
            return self._schemas[table]
        except KeyError:
            raise UnknownNameError("table", table, self._schemas) from None

    def _check_writable(self):
        if self.readonly:
            raise StoreError(f"the catalog {self.path} was opened read-only; open it without readonly to write")

    # -- schema management -------------------------------------------------------------

    def tables(self) -> dict[str, pa.Schema]:
        return dict(self._schemas)

    def create_table(self, name, schema, key, indexes=()) -> None:
        self._check_writable()
        if name in self._schemas:
            return
        cols = ", ".join(f"{_q(f.name)} {_sql_type(f.type)}" for f in schema)
        with self.transaction():
            self._con.execute(f"CREATE TABLE IF NOT EXISTS {_q(name)} ({cols}, PRIMARY KEY ({', '.join(map(_q, key))}))")
            self.create_indexes(name, indexes)
            self._con.execute(f"INSERT OR REPLACE INTO {_q(_META_TABLE)} VALUES (?, ?, ?)",
                              (name, schema.serialize().to_pybytes(), json.dumps(list(key))))
        self._schemas[name] = schema
        self._keys[name] = tuple(key)

    def create_indexes(self, name: str, indexes) -> None:
        """Create the secondary indexes a table lacks and drop the ones it no longer has (a
        migration may bring new ones and retire old ones)."""
        self._check_writable()
        self._index_order.pop(name, None)
        self._indexes.pop(name, None)
        self._reads_whole_table.clear()
        wanted = {f"ix_{name}_{'_'.join(cols_)}": cols_ for cols_ in indexes}
        with self.transaction():
            have = [r[0] for r in self._con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name LIKE 'ix\\_%' "
                "ESCAPE '\\'", (name,))]
            for ix in have:
                if ix not in wanted:
                    self._con.execute(f"DROP INDEX IF EXISTS {_q(ix)}")
            for ix, cols_ in wanted.items():
                self._con.execute(f"CREATE INDEX IF NOT EXISTS {_q(ix)} ON {_q(name)} ({', '.join(map(_q, cols_))})")

    def add_columns(self, name, fields) -> None:
        self._check_writable()
        schema = self._schema(name)
        with self.transaction():
            for f in fields:
                if schema.get_field_index(f.name) >= 0:
                    continue
                self._con.execute(f"ALTER TABLE {_q(name)} ADD COLUMN {_q(f.name)} {_sql_type(f.type)}")
                schema = schema.append(f)
            self._con.execute(f"UPDATE {_q(_META_TABLE)} SET arrow_schema = ? WHERE name = ?",
                              (schema.serialize().to_pybytes(), name))
        self._schemas[name] = schema

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def transaction(self):
        self._check_writable()
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._execute_retrying("BEGIN IMMEDIATE")
            self._depth, self._owner = 1, threading.get_ident()
            try:
                yield
            except BaseException:
                self._depth, self._owner = 0, None
                try:
                    self._con.execute("ROLLBACK")
                except Exception:  # pragma: no cover - SQLite already rolled back
                    pass
                raise
            else:
                self._depth, self._owner = 0, None
                self._execute_retrying("COMMIT")

    def _execute_retrying(self, sql):
        # busy_timeout already waits; this covers the rare SQLITE_BUSY that bypasses the handler.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self._con.execute(sql)
                return
            except Exception as exc:
                if not _is_busy(exc):
                    raise StoreError(f"{self.path}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{self.path} stayed locked by another writer for {self.busy_timeout:.0f} s; "
                        "try again when the other ingest or update has finished") from exc
                time.sleep(0.05)

    def _in_transaction(self) -> bool:
        return self._depth > 0 and self._owner == threading.get_ident()

    # -- writes --------------------------------------------------------------------------

    def _write_many(self, sql: str, data: pa.Table, table: str | None = None) -> int:
        """Run ``sql`` for every row of ``data`` (storage types), a transaction per batch. The
        rollups of the rows a batch changed are brought up to date in the same transaction."""
        total = 0
        keep = table is not None and self._keeps_rollups(table)
        for start in range(0, data.num_rows, WRITE_BATCH_ROWS):
            try:
                with self.transaction():
                    if keep:
                        sqlite_rollup.capture_changes(self)
                    total += self._con.executemany(sql, data.slice(start, WRITE_BATCH_ROWS))
                    if keep:
                        sqlite_rollup.apply_changes(self)
            except CosmoscopeError:
                raise
            except Exception as exc:
                raise StoreError(f"writing to {self.path} failed, nothing of this batch was kept: {exc}") from exc
        return total

    def _keeps_rollups(self, table: str) -> bool:
        return table == rollup.SOURCE and rollup.maintained(self._schemas)

    def atomically(self, fn, *, write: bool = True, what: str = ""):
        """``fn(ops)`` with ``ops`` reading and writing inside one transaction (``write=False``:
        one read snapshot); see :class:`cosmoscope.store.rollup.Ops`."""
        if write:
            with self.transaction():
                return fn(sqlite_rollup.Ops(self))
        with self.snapshot():
            return fn(sqlite_rollup.Ops(self))

    @contextmanager
    def snapshot(self):
        """Every read inside (in this thread) sees the same committed state of the file."""
        if self._in_transaction() or getattr(self._local, "con", None) is not None:
            yield
            return
        con = _Connection(self._ro_uri(), self.busy_timeout)
        try:
            con.execute("BEGIN")
            con.execute(f"SELECT count(*) FROM {_q(_META_TABLE)}")  # the read transaction starts here
            self._local.con = con
            yield
        finally:
            self._local.con = None
            try:
                con.execute("COMMIT")
            except Exception:  # noqa: BLE001 - ending a read changes nothing
                pass
            con.close()

    def _prepare(self, table: str, data: pa.Table, order: Sequence[str] | None = None) -> pa.Table:
        """Check the columns, order them for the statement, and convert to storage types."""
        return self._storage(self._logical(table, data), order)

    def _logical(self, table: str, data: pa.Table) -> pa.Table:
        """``data`` with each column in the table's own type (a timestamp in ns becomes us, ...)."""
        schema = self._schema(table)
        cols = []
        for name in data.column_names:
            i = schema.get_field_index(name)
            if i < 0:
                raise UnknownNameError(f"column of {table}", name, schema.names)
            col, want = data.column(name), schema.field(i).type
            if col.type != want and not (pa.types.is_string(want) and pa.types.is_large_string(col.type)):
                try:
                    col = col.cast(want)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise StoreError(f"column {name!r} of {table}: cannot store {col.type} values as {want}: "
                                     f"{exc}") from None
            cols.append(col)
        return pa.Table.from_arrays(cols, names=data.column_names)

    @staticmethod
    def _storage(data: pa.Table, order: Sequence[str] | None = None) -> pa.Table:
        names = list(order or data.column_names)
        return pa.Table.from_arrays([_storage_array(data.column(n)) for n in names], names=names)

    def upsert(self, table, data, key, preserve=()) -> int:
        self._check_writable()
        self._prepare(table, data.slice(0, 0))
        if data.num_rows == 0:
            return 0
        names = data.column_names
        missing_keys = [k for k in key if k not in names]
        if missing_keys:
            raise StoreError(f"upsert into {table} needs the key column(s) {', '.join(missing_keys)}")
        sets = [n for n in names if n not in key and n not in preserve]
        conflict = (f"DO UPDATE SET {', '.join(f'{_q(n)} = excluded.{_q(n)}' for n in sets)}"
                    if sets else "DO NOTHING")
        sql = (f"INSERT INTO {_q(table)} ({', '.join(map(_q, names))}) VALUES ({', '.join('?' * len(names))}) "
               f"ON CONFLICT ({', '.join(map(_q, key))}) {conflict}")
        data = self._logical(table, self._in_index_order(table, data, key))
        self._write_many(sql, self._storage(data), table)
        return data.num_rows

    def _in_index_order(self, table: str, data: pa.Table, key: Sequence[str]) -> pa.Table:
        """The rows sorted by the column most secondary indexes share (observations: the time).

        Rows inserted in that order touch neighbouring pages of every index holding the column
        instead of random ones: measured 1.8x faster into a 1M-row table. Only when every key
        is distinct, so that which of two rows for one key wins does not change.
        """
        if table not in self._index_order:
            rows = self._con.execute(
                "SELECT il.name, ii.name FROM sqlite_master AS m, pragma_index_list(m.name) AS il, "
                "pragma_index_info(il.name) AS ii WHERE m.name = ? AND il.origin = 'c' ORDER BY ii.seqno",
                (table,))
            shared: dict[str, int] = {}
            for _index, column in rows:
                shared[column] = shared.get(column, 0) + 1
            self._index_order[table] = [max(shared, key=shared.get)] if shared else []
        order = [c for c in self._index_order[table] if c in data.column_names]
        if not order or data.num_rows < 2:
            return data
        if len(key) == 1 and pc.count_distinct(data.column(key[0])).as_py() != data.num_rows:
            return data
        return data.sort_by([(c, "ascending") for c in order])

    def update(self, table, data, key) -> int:
        self._check_writable()
        sets = [n for n in data.column_names if n not in key]
        self._prepare(table, data.slice(0, 0))
        if data.num_rows == 0 or not sets:
            return 0
        sql = (f"UPDATE {_q(table)} SET {', '.join(f'{_q(n)} = ?' for n in sets)} "
               f"WHERE {' AND '.join(f'{_q(k)} = ?' for k in key)}")
        return self._write_many(sql, self._prepare(table, data, [*sets, *key]), table)

    def delete(self, table, keys) -> int:
        self._check_writable()
        self._prepare(table, keys.slice(0, 0))
        if keys.num_rows == 0:
            return 0
        sql = f"DELETE FROM {_q(table)} WHERE {' AND '.join(f'{_q(k)} = ?' for k in keys.column_names)}"
        return self._write_many(sql, self._prepare(table, keys), table)

    # -- reads ---------------------------------------------------------------------------

    def scan(self, table, columns=None, predicate=None, limit=None, batch_size=None, *, order_by=None,
             first_rows=None) -> Iterator[pa.RecordBatch]:
        schema = self._schema(table)
        columns = list(columns) if columns is not None else schema.names
        for c in [*columns, *(c for c, _ in order_by or ())]:
            if schema.get_field_index(c) < 0:
                raise UnknownNameError(f"column of {table}", c, schema.names)
        out_schema = pa.schema([schema.field(c) for c in columns])
        where, params = compile_predicate(predicate, schema)
        order = _order_sql(order_by, self._keys[table])
        selected = ', '.join(map(_q, columns)) or '1'
        select = f"{selected} FROM {_q(table)} WHERE {where}"
        if limit is not None:
            if limit == 0:
                return
            if order_by:
                window = self._newest_first(table, select, where, order, params, int(limit), order_by[0],
                                            out_schema)
                if window is not None:
                    yield from window
                    return
                if self._covered(table, {*(predicate.columns if predicate else ()), *(c for c, _ in order_by),
                                         *self._keys[table]}):
                    # An index holds every column the filter and the order read: find the rows
                    # in it alone and read just those. SQLite would read each matching row whole
                    # to sort it (an API page of 100 from a mission's month of 1,700 rows at 1M:
                    # 1.7 ms; 0.6 ms so).
                    ids = f"SELECT rowid FROM {_q(table)} WHERE {where}{order} LIMIT ?"
                    yield from self._query(f"{selected} FROM {_q(table)} WHERE rowid IN ({ids}){order}",
                                           [*params, int(limit)], out_schema, batch_size)
                    return
            yield from self._query(f"{select}{order} LIMIT ?", [*params, int(limit)], out_schema, batch_size)
            return
        if self._in_transaction() or getattr(self._local, "con", None) is not None:
            yield from self._query(select + order, params, out_schema, batch_size)  # inside a transaction
            return
        from cosmoscope.store.sqlite_read import read

        try:
            yield from read(self, table, columns, where, params, order, out_schema, first_rows)
        except CosmoscopeError:
            raise
        except Exception as exc:
            raise StoreError(f"reading the catalog at {self.path} failed: {exc}") from exc

    def aggregate(self, table: str, group_by: Sequence[str], aggregations: Sequence[Agg],
                  predicate: Predicate | None = None) -> pa.Table:
        """Grouped aggregates computed inside SQLite (see :class:`~cosmoscope.store.base.Agg`)."""
        schema = self._schema(table)
        for c in [*group_by, *(a.column for a in aggregations if a.column), *(
                a.value for a in aggregations if a.op == "max_of")]:
            if schema.get_field_index(c) < 0:
                raise UnknownNameError(f"column of {table}", c, schema.names)
        where, params = compile_predicate(predicate, schema)
        exprs, agg_params, fields = [], [], [schema.field(c) for c in group_by]
        for a in aggregations:
            sql, p, type_ = _aggregate_sql(a, schema)
            exprs.append(sql)
            agg_params.extend(p)
            fields.append(pa.field(a.name, type_))
        # SQLite groups by walking an index on the group column when there is one: fast when the
        # index covers every column read, several times slower than a scan and a sort when it
        # has to visit each row from it (a mission summary over rollup_days' index on
        # (mission_id, day): 700 ms against 140). A unary + keeps it from walking the index.
        covered = self._covered(table, {*group_by, *(a.column for a in aggregations if a.column),
                                        *(a.value for a in aggregations if a.op == "max_of"),
                                        *(predicate.columns if predicate else ())})
        keys = ", ".join(_q(c) if covered else f"+{_q(c)}" for c in group_by)
        select = (f"{', '.join([*map(_q, group_by), *exprs])} FROM {_q(table)} WHERE {where}"
                  + (f" GROUP BY {keys}" if group_by else ""))
        batches = list(self._query(select, agg_params + params, pa.schema(fields), None))
        return pa.Table.from_batches(batches, schema=pa.schema(fields))

    def _newest_first(self, table: str, select: str, where: str, order: str, params: list, limit: int,
                      first: tuple[str, bool], out_schema: pa.Schema) -> list[pa.RecordBatch] | None:
        """The first ``limit`` rows in ``order`` when SQLite would read the whole table for
        them (a scan and a sort, or a walk of the whole index on the first order column): looked
        for among the :data:`ORDER_WINDOW` rows that come first by that index, else read by a
        scan and a sort. None when SQLite's own plan is bounded (an index finds the rows).

        The store orders ties by the key, and SQLite's planner, with no statistics, then sorted
        the whole table (the dashboard's newest 25 rows of one product type: 8 s at 10M rows),
        or walked the whole index when no row matched (one of 0 rows: 4-33 s). Any row outside
        the window comes later in the order, so when the window holds ``limit`` matches they
        are the answer (10 ms); when it does not, matches are rare, and a scan (3-4 s) beats
        visiting the rest of the rows through the index.
        """
        column, descending = first
        sql = f"{select}{order} LIMIT ?"
        index = next((name for name, cols_ in self._index_columns(table) if cols_[0] == column), None)
        if index is None:
            return None
        whole = self._reads_whole_table.get(sql)
        if whole is None:
            plan = self._plan(sql, [*params, limit])
            whole = not any(d.startswith("SEARCH") for d in plan) and (
                f"SCAN {table}" in plan or f"SCAN {table} USING INDEX {index}" in plan)
            if len(self._reads_whole_table) > 256:
                self._reads_whole_table.clear()
            self._reads_whole_table[sql] = whole
        if not whole:
            return None
        c = _q(column)
        stored = pa.schema([pa.field(column, _storage_type(self._schema(table).field(column).type))])
        edge = list(self._query(f"{c} FROM {_q(table)} WHERE {c} IS NOT NULL ORDER BY {c} "
                                f"{'DESC' if descending else 'ASC'} LIMIT 1 OFFSET ?", [ORDER_WINDOW - 1], stored,
                                None))
        if edge and edge[0].num_rows:
            bounded = select.replace(f" WHERE {where}", f" WHERE ({where}) AND {c} {'>=' if descending else '<='} ?",
                                     1)
            batches = list(self._query(f"{bounded}{order} LIMIT ?", [*params, edge[0].column(0)[0].as_py(), limit],
                                       out_schema, None))
            if sum(b.num_rows for b in batches) >= limit:
                return batches
        scan = select.replace(f"FROM {_q(table)} ", f"FROM {_q(table)} NOT INDEXED ", 1)
        return list(self._query(f"{scan}{order} LIMIT ?", [*params, limit], out_schema, None))

    def _plan(self, sql: str, params: list) -> list[str]:
        """SQLite's query plan of ``SELECT sql``: one line per step."""
        con = self._con if self._in_transaction() else getattr(self._local, "con", None)
        if con is not None:
            return [str(r[-1]) for r in con.execute(f"EXPLAIN QUERY PLAN SELECT {sql}", params)]
        con = self._idle_reader()
        try:
            return [str(r[-1]) for r in con.execute(f"EXPLAIN QUERY PLAN SELECT {sql}", params)]
        finally:
            self._put_back(con, True)

    def _covered(self, table: str, columns: set[str]) -> bool:
        """Whether one secondary index of ``table`` holds every one of ``columns``."""
        return any(columns <= set(cols_) for _, cols_ in self._index_columns(table))

    def _index_columns(self, table: str) -> list[tuple[str, tuple[str, ...]]]:
        """The name and columns of each secondary index of ``table`` (read once per store)."""
        if table not in self._indexes:
            rows = pa.Table.from_batches(list(self._query(
                "il.name, ii.name FROM sqlite_master AS m, pragma_index_list(m.name) AS il, "
                "pragma_index_info(il.name) AS ii WHERE m.name = ? AND il.origin = 'c' ORDER BY il.name, ii.seqno",
                [table], pa.schema([("index", pa.string()), ("column", pa.string())]), None)),
                schema=pa.schema([("index", pa.string()), ("column", pa.string())])).to_pylist()
            columns: dict[str, list[str]] = {}
            for r in rows:
                columns.setdefault(r["index"], []).append(r["column"])
            self._indexes[table] = [(name, tuple(c)) for name, c in columns.items()]
        return self._indexes[table]

    def _query(self, select: str, params: list, out_schema: pa.Schema, batch_size) -> Iterator[pa.RecordBatch]:
        """Run ``SELECT <select>`` and stream it as batches of ``out_schema``."""
        sql = _sentinel_sql(select, out_schema)
        log.debug("%s: %s %s", self.path, sql, params)
        batch_rows = min(max(batch_size or 10_000, 1_024), 50_000)
        if self._in_transaction():
            # Inside a write transaction the reads must see its own uncommitted rows.
            yield from self._read(self._con, sql, params, out_schema, batch_rows)
            return
        shared = getattr(self._local, "con", None)
        if shared is not None:
            yield from self._read(shared, sql, params, out_schema, batch_rows)
            return
        con, done = None, False
        try:
            con = self._idle_reader()
            yield from self._read(con, sql, params, out_schema, batch_rows)
            done = True
        except CosmoscopeError:
            raise
        except Exception as exc:
            raise StoreError(f"reading the catalog at {self.path} failed: {exc}") from exc
        finally:
            if con is not None:
                self._put_back(con, done)

    def _idle_reader(self) -> _Connection:
        """A read-only connection of this thread that no scan is using (opened if none is).

        Opening one costs half of a point lookup; kept between scans, it holds no read
        transaction: a statement read to its end has ended its implicit transaction.
        """
        idle = getattr(self._readers, "idle", None)
        if idle:
            return idle.pop()
        return _Connection(self._ro_uri(), self.busy_timeout)

    def _put_back(self, con: _Connection, done: bool) -> None:
        """Keep a connection whose scan was read to its end; close one left half-read (its
        statement may still hold a snapshot) and any beyond two per thread."""
        idle = self._readers.__dict__.setdefault("idle", [])
        if done and len(idle) < 2 and self._con is not None:
            idle.append(con)
        else:
            con.close()

    @staticmethod
    def _read(con: _Connection, sql, params, out_schema, batch_rows) -> Iterator[pa.RecordBatch]:
        first = True
        for batch in con.reader(sql, params, batch_rows):
            if first:  # the sentinel row leads the first batch only
                batch = batch.filter(pc.equal(batch.column(0), 1))
                first = False
            if batch.num_rows == 0:
                continue
            arrays = [_as_type(batch.column(i + 1), f.type) for i, f in enumerate(out_schema)]
            yield pa.RecordBatch.from_arrays(arrays, schema=out_schema)


def _as_type(col: pa.Array, t: pa.DataType) -> pa.Array:
    """A column as read from SQLite, in the logical type ``t`` (casts only where types differ)."""
    storage = _storage_type(t)
    if col.type != storage:
        col = col.cast(storage)
    return col if col.type == t else col.cast(t)


def _sentinel_sql(select: str, out_schema: pa.Schema) -> str:
    """``SELECT <select>`` behind one typed row that :meth:`SQLiteStore._read` drops.

    The driver infers each column's type from the first rows it sees; a typed first row keeps
    a column that starts with NULLs from being read as the wrong type.
    """
    sentinel = ", ".join([f"0 AS {_q(_SENTINEL)}"] + [
        f"{_sentinel_literal(f.type)} AS {_q(f.name)}" for f in out_schema])
    return f"SELECT {sentinel} UNION ALL SELECT * FROM (SELECT 1, {select})"


def _order_sql(order_by, key: Sequence[str]) -> str:
    """``ORDER BY`` the given (column, descending) pairs, missing values last, then the key."""
    if not order_by:
        return ""
    terms = [f"{_q(c)} {'DESC' if desc else 'ASC'} NULLS LAST" for c, desc in order_by]
    terms += [f"{_q(k)} ASC" for k in key if k not in {c for c, _ in order_by}]
    return " ORDER BY " + ", ".join(terms)


def _aggregate_sql(a: Agg, schema: pa.Schema) -> tuple[str, list, pa.DataType]:
    """SQL, parameters and result type of one aggregate."""
    if a.op == "count":
        return "COUNT(*)", [], pa.int64()
    c = _q(a.column)
    t = schema.field(a.column).type
    if a.op == "sum":
        # TOTAL, not SUM: SUM of integers fails on overflow; sums are floats everywhere
        return f"TOTAL({c})", [], pa.float64()
    if a.op == "isum":
        return f"COALESCE(SUM({c}), 0)", [], pa.int64()
    if a.op in ("min", "max"):
        return f"{a.op.upper()}({c})", [], t
    if a.op == "mean":
        return f"AVG({c})", [], pa.float64()
    if a.op == "count_eq":
        return f"COALESCE(SUM({c} = ?), 0)", [_to_sql_value(a.value)], pa.int64()
    if a.op == "max_of":
        # SQLite's two-argument MAX is NULL if either side is; polars' max_horizontal skips nulls.
        d = _q(a.value)
        return f"MAX(COALESCE(MAX({c}, {d}), {c}, {d}))", [], t
    raise StoreError(f"the SQLite store has no aggregate {a.op!r}")


def _check_file(path: str, readonly: bool, create: bool) -> None:
    """Refuse what is not a SQLite catalog before anything writes to it; make the directory when
    the catalog is to be created."""
    if os.path.isdir(path):
        raise CatalogOpenError(f"cannot use {path} as a catalog: it is a directory; give a file path "
                               f"such as {os.path.join(path, 'catalog.sqlite')}")
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise CatalogOpenError(f"cannot read the catalog at {path}: {exc.strerror}") from exc
        if head and head != _SQLITE_MAGIC:
            raise CatalogOpenError(f"{path} is not a SQLite catalog (it does not start with the SQLite "
                                   "header); it was left untouched")
        if not head and not create:
            raise CatalogNotFoundError.at(path)
        if not readonly and not os.access(path, os.W_OK):
            raise CatalogOpenError(f"cannot write the catalog at {path}: permission denied; open it "
                                   "read-only or copy it somewhere writable")
        return
    if readonly or not create:
        raise CatalogNotFoundError.at(path)
    parent = os.path.dirname(path) or "."
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        why = ("part of that path is a file, not a directory" if exc.errno in (errno.EEXIST, errno.ENOTDIR)
               else exc.strerror)
        raise CatalogOpenError(f"cannot create the catalog at {path}: the directory {parent} cannot be "
                               f"created ({why})") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CatalogOpenError(f"cannot create the catalog at {path}: the directory {parent} is not "
                               "writable (permission denied)")
    try:  # the operating system's reason in words; SQLite's own is "failed to allocate memory"
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o666))
    except OSError as exc:
        raise CatalogOpenError(f"cannot create the catalog at {path}: {exc.strerror}") from exc
