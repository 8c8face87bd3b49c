"""Arrow types on their way into and out of VAST Database.

VAST refuses large and view types (which polars produces), date64, durations, dictionaries
and Arrow extension types (JSON among them), and keeps timestamps without a time zone. Each
logical type therefore has a *storage* type VAST accepts, and scans cast back, so a catalog
table reads back with exactly the schema it was created with (which the store keeps in its
own metadata table). Like the SQLite store, NaN floats are stored as null, so a row reads back
the same from either backend.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from cosmoscope.errors import StoreError
from cosmoscope.store.base import canonical_floats

#: Largest string or binary cell VAST accepts.
MAX_CELL_BYTES = 128 * 1024


def storage_type(t: pa.DataType) -> pa.DataType:
    """The type VAST stores for the logical type ``t``."""
    if isinstance(t, pa.BaseExtensionType):
        return storage_type(t.storage_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        return pa.timestamp(t.unit)  # UTC instants; the zone lives in the logical schema
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_duration(t):
        return pa.int64()
    if pa.types.is_dictionary(t):
        return storage_type(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(t.value_field.with_type(storage_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(storage_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(storage_type(t.key_type), storage_type(t.item_type))
    if (pa.types.is_null(t) or pa.types.is_union(t) or pa.types.is_interval(t) or pa.types.is_decimal256(t)
            or pa.types.is_run_end_encoded(t)):
        raise StoreError(f"VAST Database cannot store columns of type {t}")
    return t


def storage_schema(schema: pa.Schema) -> pa.Schema:
    """The table as VAST keeps it: same names, storage types, every column nullable."""
    return pa.schema([pa.field(f.name, storage_type(f.type)) for f in schema])


def to_storage(col: pa.ChunkedArray | pa.Array, logical: pa.DataType, name: str, table: str) -> pa.ChunkedArray:
    """One column in its storage type; refuses cells VAST would refuse, naming the column."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col], type=col.type)
    if col.type != logical:
        try:
            col = col.cast(logical)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise StoreError(f"column {name!r} of {table}: cannot store {col.type} values as {logical}: {exc}") from None
    target = storage_type(logical)
    if isinstance(logical, pa.BaseExtensionType):
        col = pa.chunked_array([c.storage for c in col.chunks], type=logical.storage_type)
    if pa.types.is_floating(col.type):
        col = canonical_floats(col)
    if col.type != target:
        col = col.cast(target)
    if (pa.types.is_string(target) or pa.types.is_binary(target)) and len(col):
        longest = pc.max(pc.binary_length(col)).as_py() or 0
        if longest > MAX_CELL_BYTES:
            raise StoreError(f"a value of column {name!r} of {table} is {longest:,} bytes; VAST Database keeps at "
                             f"most {MAX_CELL_BYTES // 1024} KiB per cell, so nothing of this batch was written")
    return col


def to_logical(arr: pa.Array, logical: pa.DataType) -> pa.Array:
    """A column read from VAST, back in its logical type."""
    if arr.type == logical:
        return arr
    if isinstance(logical, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(logical, to_logical(arr, logical.storage_type))
    return arr.cast(logical)


def batch_to_logical(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch read from VAST with the logical ``schema`` (fields in that order)."""
    arrays = [to_logical(batch.column(f.name), f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def check_stored(table: str, logical: pa.Schema, stored: pa.Schema) -> str | None:
    """Why the columns VAST reports for ``table`` do not hold ``logical``, or None if they do."""
    for f in storage_schema(logical):
        i = stored.get_field_index(f.name)
        if i < 0:
            return f"table {table!r} has no column {f.name!r}"
        if not stored.field(i).type.equals(f.type):
            return f"column {f.name!r} of table {table!r} is {stored.field(i).type} in VAST, not {f.type}"
    return None
