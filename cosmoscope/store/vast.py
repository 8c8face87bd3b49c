"""VAST Database as the catalog's store, through the ``vastdb`` SDK.

Open it with a ``vast://`` URL (forms and options in :mod:`cosmoscope.store.vast_config`)::

    export COSMOSCOPE_VAST_ACCESS_KEY=... COSMOSCOPE_VAST_SECRET_KEY=...
    cosmoscope --catalog vast://http://10.0.0.1:8080/cosmoscope/prod summary

How the Store verbs map onto vastdb (which has no upsert and no keys):

- Every call runs in a VAST transaction: the caller's (``store.transaction()``, nesting joins
  it) or one of its own per batch of ``write_batch`` rows.
- ``upsert`` selects the batch's keys with ``internal_row_id=True`` (``isin`` in chunks of
  ``key_chunk`` keys), updates the rows found by ``$row_id`` and inserts the rest in slices
  under the 5 MiB request limit, all in that one transaction. It is idempotent by key, which
  is what makes retries safe: after a dropped connection or a lost commit answer the whole batch
  runs again in a new transaction and finds what the first attempt may have written.
- ``update``/``delete`` select by key with ``$row_id`` the same way.
- ``scan`` pushes what vastdb can evaluate (:mod:`cosmoscope.store.vast_predicate`) and filters
  the rest client-side with polars; huge ``is_in`` lists are read in chunks. Splits, sub-splits
  and data endpoints come from the URL (``QueryConfig``); the SDK reads splits in parallel, one
  thread per data endpoint.
- Transient failures (503, ``SlowDown``, dropped connections, 409 conflicts of a transaction of
  our own) retry with exponential backoff; permanent ones (bad credentials, missing bucket,
  unreachable endpoint) fail at once with a sentence saying which
  (:mod:`cosmoscope.store.vast_tx`).

The logical Arrow schema and key of every table live in the table ``_cosmoscope_tables`` of the
same VAST schema, so scans return exactly the types that were written
(:mod:`cosmoscope.store.vast_types`). Keys are unique as long as one writer writes a given key
at a time (``--shard`` splits ingest that way); rows duplicated by racing writers are folded
back into one by the next upsert of their key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cosmoscope.errors import (CatalogNotFoundError, CatalogOpenError, CosmoscopeError, SchemaError, StoreError,
                               UnknownNameError)
from cosmoscope.predicate import Predicate, Test
from cosmoscope.store import rollup
from cosmoscope.store import vast_predicate as plan
from cosmoscope.store import vast_read
from cosmoscope.store.vast_config import (PERMANENT, TRANSIENT, VastLocation, classify, credentials_from_env,
                                          describe, parse_vast_url)
from cosmoscope.store.vast_predicate import compile_for_vast
from cosmoscope.store.vast_tx import VastTransactions, connect_session
from cosmoscope.store.vast_types import batch_to_logical, check_stored, storage_schema, to_storage

log = logging.getLogger(__name__)
# The SDK logs every failed request (with its full headers) and every retry it gives up on,
# the ones retried here too; this module retries or reports each in a sentence instead.
# `cosmoscope -vv` shows them.
for _name in ("vastdb.errors", "backoff"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.CRITICAL)

META_TABLE = "_cosmoscope_tables"
META_SCHEMA = pa.schema([("name", pa.string()), ("arrow_schema", pa.binary()), ("key", pa.string()),
                         ("indexes", pa.string())])
ROW_ID = "$row_id"
#: Seconds between reloads of a table's row count (it sets how many splits a big read uses).
STATS_TTL = 60.0
#: Insert slices are cut to about this many bytes of Arrow data (the request limit is 5 MiB).
INSERT_SLICE_BYTES = 3 * 2**20


class VastStore(VastTransactions):
    """A catalog store in one schema of a VAST Database bucket (see the module docstring)."""

    def __init__(self, location: VastLocation, *, readonly: bool = False, create: bool = True, credentials=None):
        self.loc = location
        self.url = location.url
        self.readonly = readonly
        self.create = create and not readonly
        self._creds = credentials or credentials_from_env()
        self._init_transactions()
        self._schemas: dict[str, pa.Schema] = {}
        self._keys: dict[str, tuple[str, ...]] = {}
        self._storage: dict[str, pa.Schema] = {}
        self._meta: dict[str, object] = {}  # name -> vastdb TableMetadata
        self._stats_at: dict[str, float] = {}
        self._session = self._connect()
        self._load()

    @classmethod
    def from_url(cls, url: str, *, readonly: bool = False, create: bool = True) -> VastStore:
        return cls(parse_vast_url(url), readonly=readonly, create=create)

    def __repr__(self) -> str:
        return f"VastStore({self.url!r})"

    # -- connecting and loading ------------------------------------------------------------

    def _connect(self):
        return connect_session(self.loc, self._creds)

    def _load(self) -> None:
        """Read which tables the catalog holds; create the VAST schema on first use (when asked to)."""
        exists = self._run(self._read_state, what="open the catalog")
        if exists:
            return
        if not self.create:
            raise CatalogNotFoundError.at(self.url)
        self._run(self._create_schema, what="create the catalog schema", write=True)

    def _bucket(self, tx):
        from vastdb import errors as E

        try:
            return tx.bucket(self.loc.bucket)
        except E.MissingBucket as exc:
            raise CatalogOpenError(describe(exc, self.loc)) from None

    def _vast_schema(self, tx, create: bool = False):
        cached = getattr(self, "_schema_of_tx", None)
        if cached is not None and cached[0] is tx:
            return cached[1]  # one lookup per transaction (creating the catalog makes a dozen tables)
        node = self._bucket(tx)
        for name in self.loc.schema:
            child = node.schema(name, fail_if_missing=False)
            if child is None:
                if not create:
                    return None
                child = node.create_schema(name, fail_if_exists=False)
            node = child
        self._schema_of_tx = (tx, node)
        return node

    def _create_schema(self, tx) -> None:
        self._vast_schema(tx, create=True)

    def _read_state(self, tx) -> bool:
        from vastdb.table_metadata import TableMetadata, TableRef

        schema = self._vast_schema(tx)
        if schema is None:
            return False
        names = set(schema.tablenames())
        schemas, keys, storage, metas = {}, {}, {}, {}
        if META_TABLE not in names:
            if names:
                raise SchemaError(
                    f"{self.url} holds tables ({', '.join(sorted(names)[:5])}) but is not a cosmoscope catalog "
                    f"(it has no {META_TABLE} table); it was left untouched. Choose another schema.")
        else:
            meta = TableMetadata(TableRef(self.loc.bucket, self.loc.schema_path, META_TABLE))
            meta.load(tx)
            problem = check_stored(META_TABLE, META_SCHEMA, meta.arrow_schema)
            if problem:
                raise SchemaError(f"{self.url}: {problem}; this is not a catalog this release can use")
            metas[META_TABLE], storage[META_TABLE] = meta, META_SCHEMA
            rows = tx.table_from_metadata(meta).select(columns=["name", "arrow_schema", "key"]).read_all()
            for row in rows.to_pylist():
                name = row["name"]
                schemas[name] = pa.ipc.read_schema(pa.py_buffer(row["arrow_schema"]))
                keys[name] = tuple(json.loads(row["key"]))
                if name not in names:
                    raise SchemaError(f"{self.url} records table {name!r} but VAST has no such table; it was "
                                      "dropped outside cosmoscope. Restore it or use another schema.")
                tm = TableMetadata(TableRef(self.loc.bucket, self.loc.schema_path, name))
                tm.load(tx)
                problem = check_stored(name, schemas[name], tm.arrow_schema)
                if problem:
                    raise SchemaError(f"{self.url}: {problem}; the table was changed outside cosmoscope, so "
                                      "it was left untouched")
                storage[name], metas[name] = storage_schema(schemas[name]), tm
        self._schemas, self._keys, self._storage, self._meta = schemas, keys, storage, metas
        self._stats_at = {name: time.monotonic() for name in metas}
        return True

    # -- schema management -----------------------------------------------------------------

    def tables(self) -> dict[str, pa.Schema]:
        return dict(self._schemas)

    def _schema(self, table: str) -> pa.Schema:
        try:
            return self._schemas[table]
        except KeyError:
            raise UnknownNameError("table", table, self._schemas) from None

    def create_table(self, name, schema, key, indexes=()) -> None:
        self._check_writable()
        if name in self._schemas:
            return
        if name == META_TABLE:
            raise StoreError(f"{META_TABLE} is the store's own table; choose another name")
        storage = storage_schema(schema)  # refuses types VAST cannot hold before anything is written
        record = pa.table({"name": [name], "arrow_schema": [schema.serialize().to_pybytes()],
                           "key": [json.dumps(list(key))], "indexes": [json.dumps([list(i) for i in indexes])]},
                          schema=META_SCHEMA)

        def create(tx):
            from vastdb.table_metadata import TableMetadata, TableRef

            vast_schema = self._vast_schema(tx, create=True)
            if META_TABLE not in self._meta:
                vast_schema.create_table(META_TABLE, META_SCHEMA, fail_if_exists=False)
                self._meta[META_TABLE] = self._load_metadata(tx, META_TABLE)
                self._storage[META_TABLE] = META_SCHEMA
            vast_schema.create_table(name, storage, fail_if_exists=False)
            tm = TableMetadata(TableRef(self.loc.bucket, self.loc.schema_path, name))
            tm.load(tx)
            problem = check_stored(name, schema, tm.arrow_schema)
            if problem:
                raise SchemaError(f"{self.url}: {problem}; it was made outside cosmoscope and left untouched")
            self._upsert_batch(tx, META_TABLE, record, ("name",), ())
            self._meta[name] = tm
            self._stats_at[name] = time.monotonic()

        self._ddl_write(create, f"create table {name!r}")
        self._schemas[name], self._keys[name], self._storage[name] = schema, tuple(key), storage

    def add_columns(self, name, fields) -> None:
        self._check_writable()
        schema = self._schema(name)
        new = [f for f in fields if schema.get_field_index(f.name) < 0]
        if not new:
            return
        for f in new:
            schema = schema.append(f)
        record = pa.table({"name": [name], "arrow_schema": [schema.serialize().to_pybytes()]})

        def add(tx):
            table = self._vast_schema(tx).table(name)
            have = set(table.columns().names)
            missing = storage_schema(pa.schema([f for f in new if f.name not in have]))
            if len(missing):
                table.add_column(missing)
            self._upsert_batch(tx, META_TABLE, record, ("name",), ())
            self._meta[name] = self._load_metadata(tx, name)

        self._ddl_write(add, f"add columns to {name!r}")
        self._schemas[name], self._storage[name] = schema, storage_schema(schema)

    def _ddl_write(self, fn, what: str) -> None:
        if self._in_transaction():
            self._ddl = True
        self._write(fn, what=what)

    def _load_metadata(self, tx, name: str):
        from vastdb.table_metadata import TableMetadata, TableRef

        tm = TableMetadata(TableRef(self.loc.bucket, self.loc.schema_path, name))
        tm.load(tx)
        return tm

    def _handle(self, tx, table: str, *, fresh_stats: bool = False):
        """The vastdb table of ``table`` inside ``tx``, from cached metadata (no listing calls)."""
        meta = self._meta[table]
        if fresh_stats and time.monotonic() - self._stats_at.get(table, 0) > STATS_TTL:
            meta.load_stats(tx)  # the row count sets the number of splits of a big read
            self._stats_at[table] = time.monotonic()
        return tx.table_from_metadata(meta)

    # -- writes ----------------------------------------------------------------------------

    def _prepare(self, table: str, data: pa.Table) -> pa.Table:
        """``data`` in storage types (columns checked, NaN as null, cells within limits)."""
        schema = self._schema(table) if table != META_TABLE else META_SCHEMA
        for name in data.column_names:
            if schema.get_field_index(name) < 0:
                raise UnknownNameError(f"column of {table}", name, schema.names)
        storage = self._storage[table]
        cols = [to_storage(data.column(n), schema.field(n).type, n, table) for n in data.column_names]
        return pa.Table.from_arrays(cols, schema=pa.schema([storage.field(n) for n in data.column_names]))

    def _batches(self, table: str, data: pa.Table, key: Sequence[str]) -> list[pa.Table]:
        """Write batches of ``data`` (the last of duplicate keys wins, as in SQL upserts)."""
        missing = [k for k in key if k not in data.column_names]
        if missing:
            raise StoreError(f"writing to {table} needs the key column(s) {', '.join(missing)}")
        keys = pa.Table.from_arrays([data.column(k) for k in key], names=list(key))
        for k in key:
            if data.column(k).null_count:
                raise StoreError(f"writing to {table}: the key column {k!r} is empty in some rows")
        last = _last_of_each_key(keys)
        if last is not None:
            data = data.take(last)
        n = self.loc.option("write_batch")
        return [data.slice(i, n) for i in range(0, data.num_rows, n)]

    def upsert(self, table, data, key, preserve=()) -> int:
        self._check_writable()
        self._prepare(table, data.slice(0, 0))
        if data.num_rows == 0:
            return 0
        for batch in self._batches(table, data, key):
            prepared = self._prepare(table, batch)
            self._write(lambda tx, b=prepared: self._upsert_batch(tx, table, b, tuple(key), tuple(preserve)),
                        what=f"write {b_rows(prepared)} to {table}")
        return data.num_rows

    def update(self, table, data, key) -> int:
        self._check_writable()
        self._prepare(table, data.slice(0, 0))
        sets = [n for n in data.column_names if n not in key]
        if data.num_rows == 0 or not sets:
            return 0
        total = 0
        for batch in self._batches(table, data, key):
            prepared = self._prepare(table, batch)
            total += self._write(lambda tx, b=prepared: self._update_batch(tx, table, b, tuple(key), sets),
                                 what=f"update {b_rows(prepared)} of {table}")
        return total

    def delete(self, table, keys) -> int:
        self._check_writable()
        self._prepare(table, keys.slice(0, 0))
        if keys.num_rows == 0:
            return 0
        key = tuple(keys.column_names)
        total = 0
        for batch in self._batches(table, keys, key):
            prepared = self._prepare(table, batch)
            total += self._write(lambda tx, b=prepared: self._delete_batch(tx, table, b, key),
                                 what=f"delete {b_rows(prepared)} from {table}")
        return total

    def _match(self, handle, table: str, data: pa.Table, key: tuple[str, ...],
               columns: Sequence[str] = ()) -> tuple[list, dict, pa.Table | None]:
        """The key tuples of ``data``, the ``$row_id`` list stored for each of them, and (when
        ``columns`` are asked for) those stored rows with ``columns`` and ``$row_id``."""
        keys = list(zip(*(data.column(k).to_pylist() for k in key)))
        wanted = set(keys)
        found: dict[tuple, list[int]] = {}
        read = list(dict.fromkeys([*key, *columns]))
        kept = []
        for batch in self._rows_with(handle, table, key[0], data.column(key[0]).unique(), read):
            ids = batch.column(ROW_ID).to_pylist()
            hits = []
            for rid, k in zip(ids, zip(*(batch.column(c).to_pylist() for c in key))):
                hits.append(k in wanted)
                if hits[-1]:
                    found.setdefault(k, []).append(rid)
            if columns and any(hits):
                kept.append(batch.filter(pa.array(hits)))
        if not columns:
            return keys, found, None
        logical = pa.schema([self._schema(table).field(c) for c in read])
        rows = [batch_to_logical(b, logical) for b in kept]
        old = pa.Table.from_batches(rows, schema=logical)
        ids = pa.chunked_array([b.column(ROW_ID) for b in kept], type=pa.uint64())
        return keys, found, old.append_column(ROW_ID, ids)

    def _keeps_rollups(self, table: str) -> bool:
        return table == rollup.SOURCE and rollup.maintained(self._schemas)

    def _logical(self, table: str, data: pa.Table) -> pa.Table:
        """A prepared (storage) batch back in the table's logical types."""
        schema = pa.schema([self._schema(table).field(c) for c in data.column_names])
        return pa.Table.from_batches([batch_to_logical(b, schema) for b in data.to_batches()], schema=schema)

    def atomically(self, fn, *, write: bool = True, what: str = "update the rollups"):
        """``fn(ops)`` with ``ops`` reading and writing inside one transaction (``write=False``:
        one that reads only); see :class:`cosmoscope.store.rollup.Ops`."""
        if write:
            return self._write(lambda tx: fn(_Ops(self, tx)), what=what)
        if self._in_transaction():
            return fn(_Ops(self, self._tx))
        return self._run(lambda tx: fn(_Ops(self, tx)), what=what)

    def _rows_with(self, handle, table, column, values: pa.Array, columns) -> Iterator[pa.RecordBatch]:
        """Stored rows (``columns`` and ``$row_id``, storage types) whose ``column`` is one of
        ``values``, and maybe others (the caller checks)."""
        storage = self._storage[table]
        config = self.loc.query_config()
        if len(values) >= plan.RANGE_MIN_KEYS:
            lo, hi = pc.min_max(values).values()
            budget = max(plan.RANGE_MIN_BUDGET, plan.RANGE_ROWS_PER_KEY["match"] * len(values))
            compiled = compile_for_vast(Predicate.of(Test(column, "between", (lo.as_py(), hi.as_py(), "both"))),
                                        storage)
            if not compiled.residual:
                batches = handle.select(columns=list(columns), predicate=compiled.pushed, config=config,
                                        internal_row_id=True, limit_rows=budget + 1).read_all().to_batches()
                if sum(b.num_rows for b in batches) <= budget:
                    yield from batches
                    return
        chunk = self.loc.option("key_chunk")
        for start in range(0, len(values), chunk):
            part = tuple(values.slice(start, chunk).to_pylist())
            compiled = compile_for_vast(Predicate.of(Test(column, "is_in", part)), storage)
            pushed = None if compiled.residual else compiled.pushed  # unpushable key type: read all, match here
            yield from handle.select(columns=list(columns), predicate=pushed, config=config, internal_row_id=True)
            if pushed is None:
                return

    def _upsert_batch(self, tx, table, data: pa.Table, key, preserve) -> None:
        handle = self._handle(tx, table)
        keep = self._keeps_rollups(table)
        keys, found, old = self._match(handle, table, data, key, rollup.READS if keep else ())
        sets = [c for c in data.column_names if c not in key and c not in preserve]
        upd_rows, upd_ids, new_rows, extra = [], [], [], []
        for i, k in enumerate(keys):
            ids = sorted(found.get(k, ()))
            if not ids:
                new_rows.append(i)
                continue
            upd_rows.append(i)
            upd_ids.append(ids[0])
            extra += ids[1:]
        if upd_rows and sets:
            _update_rows(handle, data.select(sets).take(upd_rows), upd_ids)
        if extra:
            log.warning("%s: %d rows duplicated a key (written by two writers at once); kept one of each",
                        table, len(extra))
            handle.delete(pa.table({ROW_ID: pa.array(extra, pa.uint64())}))
        if new_rows:
            self._insert(handle, table, data.take(new_rows))
            if self._in_transaction() and table != META_TABLE:
                self._marker = (table, key, keys[new_rows[0]])  # to tell later whether a commit was applied
        if keep:
            new = rollup.merge_rows(old, self._logical(table, data), key, sets, insert=True)
            rollup.apply_change(_Ops(self, tx), old, new)

    def _insert(self, handle, table: str, data: pa.Table) -> None:
        storage = self._storage[table]
        cols = [data.column(f.name) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
                for f in storage]
        full = pa.Table.from_arrays(cols, schema=storage).combine_chunks()
        rows = max(1, int(full.num_rows * INSERT_SLICE_BYTES / max(full.nbytes, 1)))
        for start in range(0, full.num_rows, rows):
            handle.insert(full.slice(start, rows))

    def _update_batch(self, tx, table, data, key, sets) -> int:
        handle = self._handle(tx, table)
        keep = self._keeps_rollups(table)
        keys, found, old = self._match(handle, table, data, key, rollup.READS if keep else ())
        rows, ids = [], []
        for i, k in enumerate(keys):
            for rid in found.get(k, ()):
                rows.append(i)
                ids.append(rid)
        if rows:
            _update_rows(handle, data.select(sets).take(rows), ids)
        if keep:
            new = rollup.merge_rows(old, self._logical(table, data), key, sets, insert=False)
            rollup.apply_change(_Ops(self, tx), old, new)
        return len(ids)

    def _delete_batch(self, tx, table, data, key) -> int:
        handle = self._handle(tx, table)
        keep = self._keeps_rollups(table)
        if keep and tuple(key) != (rollup.SOURCE_KEY,):
            raise StoreError(f"deleting from {table} needs its key {rollup.SOURCE_KEY} alone")
        _, found, old = self._match(handle, table, data, key, rollup.READS if keep else ())
        ids = [rid for rids in found.values() for rid in rids]
        if ids:
            handle.delete(pa.table({ROW_ID: pa.array(ids, pa.uint64())}))
        if keep:
            rollup.apply_change(_Ops(self, tx), old, None)
        return len(ids)

    # -- reads -----------------------------------------------------------------------------

    def scan(self, table, columns=None, predicate=None, limit=None, batch_size=None, *, order_by=None,
             first_rows=None) -> Iterator[pa.RecordBatch]:
        schema = self._schema(table)
        columns = list(columns) if columns is not None else schema.names
        for c in [*columns, *(predicate.columns if predicate else ()), *(c for c, _ in order_by or ())]:
            if schema.get_field_index(c) < 0:
                raise UnknownNameError(f"column of {table}", c, schema.names)
        predicate = predicate or Predicate()
        if limit == 0:
            return iter(())
        plans = self._plans(table, predicate)
        if order_by:
            return self._read(table, lambda tx: vast_read.ordered(self, tx, table, columns, plans, order_by, limit))
        if first_rows and limit is None:
            return self._read(table, lambda tx: vast_read.growing(self, tx, table, columns, plans, first_rows))
        return self._read(table, lambda tx: self._read_plans(tx, table, columns, plans, limit))

    def _plans(self, table, predicate) -> list:
        storage = self._storage[table]
        plans = [[compile_for_vast(p, storage) for p in plan.chunk_is_in(predicate, self.loc.option("key_chunk"))]]
        ranged = plan.as_range(predicate, storage)
        if ranged is not None:
            plans.insert(0, ranged)  # tried first, within a row budget
        return plans

    def _scan_tx(self, tx, table, columns, predicate) -> Iterator[pa.RecordBatch]:
        """A read inside the transaction ``tx`` (it sees what ``tx`` wrote)."""
        schema = self._schema(table)
        columns = list(columns) if columns is not None else schema.names
        yield from self._read_plans(tx, table, columns, self._plans(table, predicate or Predicate()), None)

    def _read(self, table, body) -> Iterator[pa.RecordBatch]:
        """The batches of ``body(tx)``, a read in a transaction of its own (or the caller's),
        run again from the start after a transient failure before anything was yielded."""
        attempts = self.loc.option("retries")
        if self._in_transaction():
            yield from self._read_in_transaction(table, body, attempts)
            return
        for attempt in range(attempts):
            tx, rows, yielded = None, None, False
            try:
                tx = self._begin()
                rows = body(tx)
                for batch in rows:
                    yielded = True
                    yield batch
                return
            except CosmoscopeError:
                raise
            except Exception as exc:  # noqa: BLE001
                if yielded or classify(exc) == PERMANENT or attempt == attempts - 1:
                    midway = " part way through" if yielded else ""
                    raise StoreError(f"reading {table} from {self.url} failed{midway}: "
                                     f"{describe(exc, self.loc, self._creds)}; read again") from exc
                log.info("reading %s: %s; trying again", table, describe(exc, self.loc, self._creds))
                self._sleep(attempt)
            finally:
                if rows is not None and hasattr(rows, "close"):
                    rows.close()  # stops the SDK's split readers before their transaction ends
                if tx is not None and tx.txid is not None:
                    self._finish(tx, commit=False)  # a read changes nothing: end it without a commit

    def _read_in_transaction(self, table, body, attempts) -> Iterator[pa.RecordBatch]:
        """A read inside the caller's transaction: tried again there after a transient failure
        (a read changes nothing), reported as a StoreError otherwise; the caller's transaction
        then rolls back."""
        for attempt in range(attempts):
            yielded = False
            try:
                for batch in body(self._tx):
                    yielded = True
                    yield batch
                return
            except CosmoscopeError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted into retry or report below
                kind = classify(exc)
                if yielded or kind != TRANSIENT or attempt == attempts - 1:
                    raise self._in_transaction_error(f"reading {table} from {self.url} failed", exc, kind) from exc
                log.info("reading %s: %s; trying again", table, describe(exc, self.loc, self._creds))
                self._sleep(attempt)

    def _read_plans(self, tx, table, columns, plans, limit) -> Iterator[pa.RecordBatch]:
        """Read by the first plan that stays within its row budget (only the last has none)."""
        for n, parts in enumerate(plans):
            parts = [p for p in parts if not p.empty]
            if not parts:
                return
            residual = parts[0].residual
            needed = list(columns) + sorted(residual.columns - set(columns))
            log.debug("%s %s: pushed %s; residual %s", self.url, table, parts[0].pushed_text, residual)
            if n < len(plans) - 1:
                budget = plan.range_budget(parts[0].residual)
                try:
                    batches = list(self._select(tx, table, columns, needed, parts, residual, limit, budget))
                except plan.OverBudget:
                    continue
                yield from batches
                return
            yield from self._select(tx, table, columns, needed, parts, residual, limit)

    def _select(self, tx, table, columns, needed, parts, residual, limit, budget=None) -> Iterator[pa.RecordBatch]:
        logical = self._schema(table)
        needed_schema = pa.schema([logical.field(c) for c in needed])
        filter_expr = residual.to_polars()
        remaining = limit
        projection = needed or [self._keys[table][0]]  # a count still needs one column to read
        handle = self._handle(tx, table, fresh_stats=limit is None)
        for part in parts:
            push_limit = remaining if filter_expr is None else (budget + 1 if budget else None)
            reader = handle.select(columns=list(projection), predicate=part.pushed,
                                   config=self.loc.query_config(), limit_rows=push_limit)
            read = 0
            try:
                for raw in reader:
                    read += raw.num_rows
                    if budget is not None and read > budget:
                        raise plan.OverBudget()
                    if raw.num_rows == 0:
                        continue
                    batch = batch_to_logical(raw, needed_schema) if needed else raw.select([])
                    if filter_expr is not None:
                        batch = plan.filter_batch(batch, filter_expr)
                    if needed != columns:
                        batch = batch.select(columns)
                    if remaining is not None:
                        batch = batch.slice(0, remaining)
                        remaining -= batch.num_rows
                    if batch.num_rows:
                        yield batch
                    if remaining == 0:
                        return
            finally:
                reader.close()
                del reader  # the SDK's readers stop when it is freed: before their transaction ends

    def close(self) -> None:
        session, self._session = getattr(self, "_session", None), None
        if session is not None:
            try:
                session.api.__exit__(None, None, None)  # closes its HTTP connections
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


class _Ops:
    """The store's reads and writes inside one transaction (for :mod:`cosmoscope.store.rollup`)."""

    def __init__(self, store: VastStore, tx):
        self.store, self.tx = store, tx

    def scan(self, table, columns, predicate):
        return self.store._scan_tx(self.tx, table, columns, predicate)

    def insert(self, table, data):
        prepared = self.store._prepare(table, data)
        self.store._insert(self.store._handle(self.tx, table), table, prepared)

    def upsert(self, table, data, key):
        self.store._upsert_batch(self.tx, table, self.store._prepare(table, data), tuple(key), ())

    def delete(self, table, keys):
        for start in range(0, keys.num_rows, self.store.loc.option("write_batch")):
            part = self.store._prepare(table, keys.slice(start, self.store.loc.option("write_batch")))
            self.store._delete_batch(self.tx, table, part, tuple(keys.column_names))


def b_rows(data: pa.Table) -> str:
    return f"{data.num_rows:,} row{'s' if data.num_rows != 1 else ''}"


def _update_rows(handle, values: pa.Table, row_ids: list[int]) -> None:
    rows = values.add_column(0, pa.field(ROW_ID, pa.uint64()), pa.array(row_ids, pa.uint64()))
    handle.update(rows, columns=list(values.column_names))


def _last_of_each_key(keys: pa.Table) -> list[int] | None:
    """Row positions keeping the last row of each key, or None when keys are unique already."""
    tuples = list(zip(*(c.to_pylist() for c in keys.columns)))
    if len(set(tuples)) == len(tuples):
        return None
    last = {k: i for i, k in enumerate(tuples)}
    return sorted(last.values())
