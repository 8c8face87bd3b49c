"""Transactional in-memory state of the fake VAST Database.

The committed state is a :class:`Snapshot` of immutable :class:`TableData` values. A
transaction starts from the snapshot committed when it began, applies its writes to a
private copy and records them. Commit swaps the copy in when nothing else committed in
between; otherwise it replays the recorded writes on the newer state and answers 409
Conflict if they no longer apply. Rollback, or a stopped server, simply forgets the copy,
so a failed transaction leaves no trace.
"""

from __future__ import annotations

import functools
import os
import pickle
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

ROW_ID = "$row_id"
ROW_ID_FIELD = pa.field(ROW_ID, pa.uint64())
STATE_FILE = "fakevast-state.pickle"


class VastError(Exception):
    """An error the server answers with an S3-style XML body and an HTTP status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str, code: str = "InvalidArgument") -> VastError:
    return VastError(400, code, message)


def not_found(code: str, message: str) -> VastError:
    return VastError(404, code, message)


def conflict(message: str) -> VastError:
    return VastError(409, "Conflict", message)


# Types the real server refuses at table creation (measured, see DESIGN.md); everything
# else the SDK can describe is stored.
def unsupported_type_reason(field: pa.Field) -> str | None:
    """Why VAST would refuse ``field``, or None when its type is storable."""
    if field.metadata and b"ARROW:extension:name" in field.metadata:
        return "Arrow extension types are not supported"
    t = field.type
    if isinstance(t, pa.BaseExtensionType):
        return "Arrow extension types are not supported"
    refused = (
        pa.types.is_large_string, pa.types.is_large_binary, pa.types.is_large_list,
        pa.types.is_date64, pa.types.is_duration, pa.types.is_dictionary,
        pa.types.is_interval, pa.types.is_null, pa.types.is_union,
        pa.types.is_string_view, pa.types.is_binary_view, pa.types.is_list_view,
        pa.types.is_large_list_view, pa.types.is_run_end_encoded, pa.types.is_decimal256,
    )
    if any(check(t) for check in refused):
        return f"column type {t} is not supported"
    if pa.types.is_fixed_size_list(t):
        return _fixed_size_list_reason(t)
    if pa.types.is_struct(t):
        for child in t:
            if reason := unsupported_type_reason(child):
                return reason
    elif pa.types.is_list(t):
        return unsupported_type_reason(t.value_field)
    elif pa.types.is_map(t):
        return unsupported_type_reason(t.key_field) or unsupported_type_reason(t.item_field)
    return None


_VECTOR_ELEMENTS = (pa.types.is_integer, pa.types.is_float32, pa.types.is_float64, pa.types.is_decimal128,
                    pa.types.is_date32, pa.types.is_timestamp, pa.types.is_time)


def _fixed_size_list_reason(t: pa.FixedSizeListType) -> str | None:
    """VAST stores fixed-size lists as vectors: non-null numeric or temporal elements."""
    if t.value_field.nullable:
        return f"fixed-size list elements must be non-nullable in {t}"
    if not any(check(t.value_type) for check in _VECTOR_ELEMENTS):
        return f"fixed-size lists of {t.value_type} are not supported"
    if t.list_size * t.value_type.bit_width // 8 > 128 * 1024:
        return f"fixed-size list {t} is larger than a 128 KiB cell"
    return None


def check_storable(schema: pa.Schema) -> None:
    names = schema.names
    if len(names) != len(set(names)):
        raise bad_request(f"duplicate column names in {names}")
    for field in schema:
        if field.name == ROW_ID:
            raise bad_request(f"column name {ROW_ID!r} is reserved")
        if pa.types.is_fixed_size_list(field.type) and field.type.list_size == 0:
            raise VastError(400, "TabularInvalidColumnTypeParam",
                            f"column {field.name!r}: a fixed-size list needs elements")
        if reason := unsupported_type_reason(field):
            raise VastError(400, "TabularUnsupportedColumnType", f"column {field.name!r}: {reason}")


@dataclass(frozen=True)
class TableData:
    """One version of a table: its columns and rows (``$row_id`` first, ascending)."""

    uid: int
    schema: pa.Schema
    rows: pa.Table
    properties: str = ""

    @staticmethod
    def empty(uid: int, schema: pa.Schema) -> "TableData":
        arrays = [pa.array([], pa.uint64())] + [pa.array([], f.type) for f in schema]
        return TableData(uid, schema, pa.Table.from_arrays(arrays, schema=_rows_schema(schema)))

    @property
    def num_rows(self) -> int:
        return self.rows.num_rows

    @functools.cached_property
    def readable(self) -> pa.Table:
        """The rows in one chunk per column, made once per version: taking a page of rows from a
        column of many chunks copies the whole column first, which made every page of a wide
        table cost a read of all of it (a real cluster reads a page, not the table)."""
        return self.rows.combine_chunks()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "readable"}  # persisted without the copy


def _rows_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([ROW_ID_FIELD, *schema])


class Snapshot:
    """Schemas and tables of every bucket, keyed by name; cheap to copy."""

    def __init__(self, schemas: dict | None = None, tables: dict | None = None):
        self.schemas: dict[tuple[str, str], str] = schemas if schemas is not None else {}
        self.tables: dict[tuple[str, str, str], TableData] = tables if tables is not None else {}

    def copy(self) -> "Snapshot":
        return Snapshot(dict(self.schemas), dict(self.tables))

    def require_schema(self, bucket: str, schema: str) -> None:
        if (bucket, schema) not in self.schemas:
            raise not_found("NoSuchSchema", f"schema {bucket}/{schema} does not exist")

    def table(self, key: tuple[str, str, str], uid: int | None = None) -> TableData:
        self.require_schema(key[0], key[1])
        data = self.tables.get(key)
        if data is None:
            raise not_found("NoSuchTable", f"table {'/'.join(key)} does not exist")
        if uid is not None and data.uid != uid:
            raise conflict(f"table {'/'.join(key)} was dropped or replaced concurrently")
        return data


# ---- writes: each is a function of a Snapshot plus recorded arguments, so that a
# ---- transaction can run it on its own copy first and replay it on commit.

def create_schema(snap: Snapshot, bucket: str, name: str, properties: str) -> None:
    if (bucket, name) in snap.schemas:
        raise conflict(f"schema {bucket}/{name} already exists")
    if "/" in name:
        snap.require_schema(bucket, name.rsplit("/", 1)[0])
    snap.schemas[(bucket, name)] = properties


def drop_schema(snap: Snapshot, bucket: str, name: str) -> None:
    snap.require_schema(bucket, name)
    if any(b == bucket and s == name for b, s, _ in snap.tables):
        raise conflict(f"schema {bucket}/{name} still has tables: drop them first")
    if any(b == bucket and s.startswith(name + "/") for b, s in snap.schemas):
        raise conflict(f"schema {bucket}/{name} still has child schemas")
    del snap.schemas[(bucket, name)]


def rename_schema(snap: Snapshot, bucket: str, name: str, new_name: str) -> None:
    snap.require_schema(bucket, name)
    if (bucket, new_name) in snap.schemas:
        raise conflict(f"schema {bucket}/{new_name} already exists")

    def moved(schema: str) -> str:
        return new_name + schema[len(name):] if schema == name or schema.startswith(name + "/") else schema

    snap.schemas = {(b, moved(s) if b == bucket else s): p for (b, s), p in snap.schemas.items()}
    snap.tables = {(b, moved(s) if b == bucket else s, t): d for (b, s, t), d in snap.tables.items()}


def create_table(snap: Snapshot, key: tuple[str, str, str], uid: int, schema: pa.Schema) -> None:
    snap.require_schema(key[0], key[1])
    if key in snap.tables:
        raise conflict(f"table {'/'.join(key)} already exists")
    snap.tables[key] = TableData.empty(uid, schema)


def drop_table(snap: Snapshot, key: tuple[str, str, str], uid: int) -> None:
    snap.table(key, uid)
    del snap.tables[key]


def rename_table(snap: Snapshot, key: tuple[str, str, str], uid: int, new_name: str) -> None:
    data = snap.table(key, uid)
    new_key = (key[0], key[1], new_name)
    if new_key in snap.tables:
        raise conflict(f"table {'/'.join(new_key)} already exists")
    del snap.tables[key]
    snap.tables[new_key] = data


def add_columns(snap: Snapshot, key, uid: int, fields: list[pa.Field]) -> None:
    data = snap.table(key, uid)
    rows = data.rows
    existing = set(data.schema.names)
    for field in fields:
        if field.name in existing:
            raise conflict(f"column {field.name!r} already exists in {'/'.join(key)}")
        rows = rows.append_column(field, pa.nulls(rows.num_rows, field.type))
    schema = pa.schema([*data.schema, *fields], metadata=data.schema.metadata)
    snap.tables[key] = replace(data, schema=schema, rows=rows)


def drop_columns(snap: Snapshot, key, uid: int, names: list[str]) -> None:
    data = snap.table(key, uid)
    missing = [n for n in names if n not in data.schema.names]
    if missing:
        raise bad_request(f"columns {missing} do not exist in {'/'.join(key)}")
    schema = pa.schema([f for f in data.schema if f.name not in names], metadata=data.schema.metadata)
    snap.tables[key] = replace(data, schema=schema, rows=data.rows.drop_columns(names))


def rename_column(snap: Snapshot, key, uid: int, name: str, new_name: str) -> None:
    data = snap.table(key, uid)
    if name not in data.schema.names:
        raise bad_request(f"column {name!r} does not exist in {'/'.join(key)}")
    if new_name in data.schema.names:
        raise conflict(f"column {new_name!r} already exists in {'/'.join(key)}")
    index = data.schema.get_field_index(name)
    schema = data.schema.set(index, data.schema.field(index).with_name(new_name))
    rows = data.rows.rename_columns([ROW_ID, *schema.names])
    snap.tables[key] = replace(data, schema=schema, rows=rows)


def insert_rows(snap: Snapshot, key, uid: int, rows: pa.Table) -> None:
    """Append ``rows`` (``$row_id`` already assigned); missing columns become null."""
    data = snap.table(key, uid)
    unknown = set(rows.column_names) - {ROW_ID, *data.schema.names}
    if unknown:
        raise conflict(f"columns {sorted(unknown)} were dropped from {'/'.join(key)} concurrently")
    n = rows.num_rows
    given = set(rows.column_names)
    arrays = [rows[ROW_ID]] + [
        rows[f.name] if f.name in given else pa.nulls(n, f.type) for f in data.schema
    ]
    new = pa.Table.from_arrays(arrays, schema=data.rows.schema)
    combined = pa.concat_tables([data.rows, new])
    if data.num_rows and n and pc.min(new[ROW_ID]).as_py() < pc.max(data.rows[ROW_ID]).as_py():
        combined = combined.sort_by(ROW_ID)  # replayed after a concurrent insert
    if combined[ROW_ID].num_chunks > 64:
        combined = combined.combine_chunks()
    snap.tables[key] = replace(data, rows=combined)


def _require_row_ids(data: TableData, key, row_ids: pa.ChunkedArray | pa.Array) -> None:
    present = pc.is_in(row_ids, value_set=data.rows[ROW_ID])
    if not pc.all(present).as_py():
        missing = pc.filter(row_ids, pc.invert(present))[:5].to_pylist()
        raise bad_request(f"row ids {missing} do not exist in {'/'.join(key)}")


def update_rows(snap: Snapshot, key, uid: int, rows: pa.Table) -> None:
    data = snap.table(key, uid)
    _require_row_ids(data, key, rows[ROW_ID])
    table = data.rows
    position = pc.index_in(table[ROW_ID], value_set=rows[ROW_ID].combine_chunks())
    hit = pc.is_valid(position)
    known = set(data.schema.names)
    for name in rows.column_names:
        if name == ROW_ID:
            continue
        if name not in known:
            raise conflict(f"column {name!r} was dropped from {'/'.join(key)} concurrently")
        i = table.schema.get_field_index(name)
        new_values = pc.take(rows[name], position)
        table = table.set_column(i, table.schema.field(i), pc.if_else(hit, new_values, table[name]))
    snap.tables[key] = replace(data, rows=table)


def delete_rows(snap: Snapshot, key, uid: int, row_ids: pa.Array) -> None:
    data = snap.table(key, uid)
    _require_row_ids(data, key, row_ids)
    keep = pc.invert(pc.is_in(data.rows[ROW_ID], value_set=row_ids))
    snap.tables[key] = replace(data, rows=data.rows.filter(keep))


Write = Callable[..., None]


class Transaction:
    def __init__(self, txid: int, base: Snapshot, base_seq: int):
        self.txid = txid
        self.view = base.copy()
        self.base_seq = base_seq
        self.writes: list[tuple[Write, tuple]] = []


class Database:
    """Buckets (fixed), the committed snapshot, open transactions and id counters."""

    def __init__(self, buckets, data_dir: str | os.PathLike | None = None):
        self.lock = threading.RLock()
        self.buckets: set[str] = set(buckets)
        self.read_only_buckets: set[str] = set()
        self.committed = Snapshot()
        self.seq = 0
        self.transactions: dict[int, Transaction] = {}
        self.ddl_locks: dict[int, int] = {}  # table uid -> txid altering it
        self.next_txid = 0x5A00_0000_0001
        self.next_uid = 1
        self.next_row_id: dict[int, int] = {}
        self.data_dir = Path(data_dir) if data_dir is not None else None
        if self.data_dir is not None and (self.data_dir / STATE_FILE).exists():
            self._load()

    # ---- transactions
    def begin(self) -> int:
        with self.lock:
            txid = self.next_txid
            self.next_txid += 1
            self.transactions[txid] = Transaction(txid, self.committed, self.seq)
            return txid

    def _tx(self, txid: int) -> Transaction:
        tx = self.transactions.get(txid)
        if tx is None:
            raise VastError(400, "TabularInvalidTransaction",
                            f"transaction {txid:#x} is not open (committed, rolled back, or lost in a restart)")
        return tx

    def _end(self, txid: int) -> Transaction:
        tx = self._tx(txid)
        del self.transactions[txid]
        self.ddl_locks = {uid: holder for uid, holder in self.ddl_locks.items() if holder != txid}
        return tx

    def commit(self, txid: int) -> None:
        with self.lock:
            tx = self._end(txid)
            if not tx.writes:
                return
            if tx.base_seq == self.seq:
                self.committed = tx.view
            else:
                merged = self.committed.copy()
                try:
                    for write, args in tx.writes:
                        write(merged, *args)
                except VastError as err:
                    raise conflict(f"transaction {txid:#x} conflicts with a concurrent commit: {err.message}")
                self.committed = merged
            self.seq += 1
            self._save()

    def rollback(self, txid: int) -> None:
        with self.lock:
            self._end(txid)

    def abort_all(self) -> None:
        """Forget every open transaction, as a crashed server would."""
        with self.lock:
            self.transactions.clear()
            self.ddl_locks.clear()

    def view(self, txid: int) -> Snapshot:
        """What ``txid`` sees; txid 0 reads the committed state."""
        with self.lock:
            return self.committed if txid == 0 else self._tx(txid).view

    def write(self, txid: int, write: Write, *args, alters: int | None = None) -> None:
        """Run ``write`` inside ``txid`` (txid 0 commits it on its own).

        ``alters`` names the uid of a table whose definition the write changes: like VAST,
        a second open transaction altering the same table gets 409 Conflict at once.
        """
        with self.lock:
            if alters is not None and txid != 0:
                holder = self.ddl_locks.get(alters)
                if holder is not None and holder != txid:
                    raise conflict(f"the table is being altered by open transaction {holder:#x}")
            if txid == 0:
                snap = self.committed.copy()
                write(snap, *args)
                self.committed = snap
                self.seq += 1
                self._save()
                return
            tx = self._tx(txid)
            write(tx.view, *args)
            tx.writes.append((write, args))
            if alters is not None:
                self.ddl_locks[alters] = txid

    def check_bucket(self, bucket: str, *, writing: bool = False) -> None:
        if bucket not in self.buckets:
            raise not_found("NoSuchBucket", f"bucket {bucket!r} does not exist")
        if writing and bucket in self.read_only_buckets:
            raise VastError(403, "AccessDenied", f"bucket {bucket!r} is read-only")

    # ---- counters (not transactional: ids of rolled-back rows are never reused)
    def allocate_uid(self) -> int:
        with self.lock:
            uid = self.next_uid
            self.next_uid += 1
            return uid

    def allocate_row_ids(self, uid: int, n: int) -> pa.Array:
        with self.lock:
            start = self.next_row_id.get(uid, 0)
            self.next_row_id[uid] = start + n
        return pa.array(range(start, start + n), pa.uint64())

    # ---- persistence
    def _save(self) -> None:
        if self.data_dir is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "buckets": sorted(self.buckets), "read_only": sorted(self.read_only_buckets),
            "schemas": self.committed.schemas, "tables": self.committed.tables,
            "next_txid": self.next_txid, "next_uid": self.next_uid, "next_row_id": self.next_row_id,
        }
        tmp = self.data_dir / (STATE_FILE + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=5)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.data_dir / STATE_FILE)

    def save(self) -> None:
        with self.lock:
            self._save()

    def _load(self) -> None:
        with open(self.data_dir / STATE_FILE, "rb") as f:
            state = pickle.load(f)
        self.buckets |= set(state["buckets"])
        self.read_only_buckets |= set(state["read_only"])
        self.committed = Snapshot(state["schemas"], state["tables"])
        # Skip ahead so that transaction ids from before a restart are never valid again.
        self.next_txid = state["next_txid"] + 0x1000
        self.next_uid = state["next_uid"]
        self.next_row_id = state["next_row_id"]


def sorted_names(names, prefix: str = "", exact: bool = False) -> list[str]:
    if exact:
        return [n for n in sorted(set(names)) if n == prefix]
    return [n for n in sorted(set(names)) if n.startswith(prefix)]


def page(items: list, next_key: int, max_keys: int) -> tuple[list, int, bool]:
    """One page of a listing: (items, next key, truncated?)."""
    chunk = items[next_key:next_key + max_keys]
    end = next_key + len(chunk)
    truncated = end < len(items)
    return chunk, (end if truncated else 0), truncated


__all__ = ["Database", "Snapshot", "TableData", "VastError", "ROW_ID"]
