"""Turning what writers hand the catalog (dicts, polars or Arrow tables) into checked Arrow rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from cosmoscope import schema as S
from cosmoscope.errors import InvalidArgumentError, UnknownNameError

#: Columns holding JSON text; dicts and lists given for them are serialised.
#: C0 and C1 control characters and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
JSON_COLUMNS = frozenset({"mission_specific", "quality_flags", "field_sources", "validation_problems",
                          "relationship_metadata", "details"})

_ENUMS = {
    "processing_status": S.ProcessingStatus,
    "calibration_status": S.CalibrationStatus,
    "extraction_status": S.ExtractionStatus,
    "file_status": S.FileStatus,
    "validation_status": S.ValidationStatus,
}


def dataset_id_for(path: str | os.PathLike) -> str:
    """The stable dataset id of a file: a short hash of its absolute path.

    The same path always gives the same id, so re-ingesting a tree never duplicates rows.

    >>> dataset_id_for("/data/chandra/acisf01575_evt2.fits")
    'ds-a151db87903e6a77'
    """
    raw = os.fsencode(os.path.abspath(os.fspath(path)))
    return "ds-" + hashlib.blake2b(raw, digest_size=8).hexdigest()


def display_path(path: str | os.PathLike) -> str:
    """A path as storable UTF-8 text; bytes that are not UTF-8 become ``\\xNN`` escapes."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def fs_path(file_path: str, dataset_id: str) -> str:
    r"""The path on disk of a stored ``file_path`` of dataset ``dataset_id``.

    A file name that is not UTF-8 is stored with ``\xNN`` escapes (:func:`display_path`); the
    dataset id, a hash of the real path, tells whether the text is the path itself or such an
    escaped form.

    >>> import os
    >>> real = os.fsdecode(b"/data/bad-\xff.fits")
    >>> fs_path(display_path(real), dataset_id_for(real)) == real
    True
    """
    if "\\x" not in file_path or dataset_id_for(file_path) == dataset_id:
        return file_path
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), file_path.encode("utf-8"))
    candidate = os.fsdecode(raw)
    return candidate if dataset_id_for(candidate) == dataset_id else file_path


def printable(text: str) -> str:
    r"""``text`` with control characters shown as escapes, for a terminal: a file name may hold a
    newline, or an escape sequence that would recolour or rewrite the screen.

    >>> printable("/data/new\nline\x1b[31m.fits")
    '/data/new\\nline\\x1b[31m.fits'
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def new_event_ids(n: int) -> list[str]:
    """``n`` unique event ids that sort by creation time (then by position in the batch).

    The time leads, a random part keeps two processes writing in the same nanosecond apart,
    and a counter orders one batch; built in bulk because an ingest makes one per file.
    """
    stamp, salt = time.time_ns(), uuid.uuid4().hex[:8]
    return [f"{stamp:016x}-{salt}-{i:08x}" for i in range(n)]


def to_json(value: Any) -> str | None:
    """JSON text of a dict or list (sorted keys, non-JSON values as text); text passes through."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def same_value(a, b) -> bool:
    """Equality as the catalog stores values: floats to 12 digits, times to the microsecond, JSON
    as its sorted text.

    >>> same_value(0.1 + 0.2, 0.3), same_value({"b": 1, "a": 2}, '{"a": 2, "b": 1}')
    (True, True)
    """
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            a, b = (x if x.tzinfo else x.replace(tzinfo=dt.timezone.utc) for x in (a, b))
        return a == b
    if isinstance(a, (dict, list)):
        a = to_json(a)
    if isinstance(b, (dict, list)):
        b = to_json(b)
    return a == b


def _clean_text(value):
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def to_table(table: str, records, *, fill_missing: bool = False) -> pa.Table:
    """Arrow rows for ``table`` from a pa.Table, a polars DataFrame, a dict, or dicts.

    Unknown columns raise :class:`UnknownNameError` listing the valid ones; values of the wrong
    type raise :class:`InvalidArgumentError` naming the column.
    """
    spec = S.table_spec(table)
    if isinstance(records, Mapping):
        records = [records]
    if isinstance(records, pa.RecordBatch):
        records = pa.Table.from_batches([records])
    if not isinstance(records, pa.Table):
        to_arrow = getattr(records, "to_arrow", None)
        if callable(to_arrow):  # a polars DataFrame
            records = to_arrow()
        else:
            records = _rows_to_table(spec, list(records))
    records = _times_from_text(spec, records)
    try:
        return S.conform(spec.name, records, fill_missing=fill_missing)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidArgumentError(f"cannot store these rows in {spec.name}: {exc}") from exc


def _times_from_text(spec: S.TableSpec, data: pa.Table) -> pa.Table:
    """Text given for time columns (``"2025-01-01T00:00:00"``, as ``search(start=...)`` takes)
    read as UTC times."""
    from cosmoscope.times import to_utc

    for i, name in enumerate(data.column_names):
        index = spec.schema.get_field_index(name)
        col = data.column(i)
        if index >= 0 and pa.types.is_timestamp(spec.schema.field(index).type) and (
                pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            values = [None if v is None else to_utc(v, name=f"{name} time") for v in col.to_pylist()]
            data = data.set_column(i, name, pa.array(values, spec.schema.field(index).type))
    return data


def _rows_to_table(spec: S.TableSpec, rows: list) -> pa.Table:
    names: dict[str, None] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            raise InvalidArgumentError(f"rows for {spec.name} must be dicts, got {type(row).__name__}")
        names.update(dict.fromkeys(row))
    S.check_columns(spec, names)
    if spec is S.OBSERVATIONS and "file_path" in names:
        # The id hashes the path's real bytes, before any cleaning for storage.
        rows = [r if r.get("dataset_id") is not None or r.get("file_path") is None
                else {**r, "dataset_id": dataset_id_for(r["file_path"])} for r in rows]
        names = {"dataset_id": None, **names}
    arrays = []
    for name in names:
        field = spec.schema.field(name)
        if name in JSON_COLUMNS:
            values = [to_json(r.get(name)) for r in rows]
        else:
            values = [r.get(name) for r in rows]
        if pa.types.is_floating(field.type):
            values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
        elif pa.types.is_timestamp(field.type) and any(v is not None and not isinstance(v, dt.datetime)
                                                       for v in values):
            from cosmoscope.times import to_utc

            # ISO text, dates, numpy and astropy times, as search(start=...) takes them.
            values = [None if v is None or isinstance(v, dt.datetime) else to_utc(v, name=f"{name} time")
                      for v in values]
        try:
            try:
                arrays.append(pa.array(values, type=field.type))
            except UnicodeEncodeError:
                # Rare (a name with bytes that are not UTF-8): clean only then, not every value.
                arrays.append(pa.array([_clean_text(v) for v in values], type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
            bad = next((v for v in values if v is not None), None)
            raise InvalidArgumentError(
                f"column {name!r} of {spec.name} takes {field.type} values; got {bad!r}: {exc}") from None
    return pa.Table.from_arrays(arrays, names=list(names))


def check_observations(data: pa.Table) -> None:
    """Refuse values the catalog must never hold (quality outside 0-1, unknown statuses, ...)."""
    import pyarrow.compute as pc

    def bad(mask, column, what):
        mask = pc.fill_null(mask, False)
        if pc.any(mask).as_py():
            i = pc.index(mask, True).as_py()
            who = data.column("dataset_id")[i].as_py() if "dataset_id" in data.column_names else f"row {i}"
            value = data.column(column)[i].as_py()
            raise InvalidArgumentError(f"{column} of {who} is {value!r}, {what}")

    names = data.column_names
    if "data_quality_score" in names:
        q = data.column("data_quality_score")
        bad(pc.or_(pc.less(q, 0.0), pc.greater(q, 1.0)), "data_quality_score", "but must be between 0.0 and 1.0")
    if "calib_level" in names:
        c = data.column("calib_level")
        bad(pc.or_(pc.less(c, 0), pc.greater(c, 4)), "calib_level", "but ObsCore levels run from 0 to 4")
    for column, enum in _ENUMS.items():
        if column in names:
            valid = [e.value for e in enum]
            mask = pc.invert(pc.is_in(data.column(column), value_set=pa.array(valid)))
            mask = pc.and_(mask, pc.is_valid(data.column(column)))
            bad(mask, column, f"which is not one of {', '.join(valid)}")
    if "dataset_id" in names and data.column("dataset_id").null_count:
        raise InvalidArgumentError("every observation needs a dataset_id or a file_path to derive it from")


def with_dataset_ids(data: pa.Table) -> pa.Table:
    """Fill missing dataset ids from ``file_path``."""
    if "dataset_id" in data.column_names and not data.column("dataset_id").null_count:
        return data
    if "file_path" not in data.column_names:
        raise InvalidArgumentError("every observation needs a dataset_id or a file_path to derive it from")
    paths = data.column("file_path").to_pylist()
    given = data.column("dataset_id").to_pylist() if "dataset_id" in data.column_names else [None] * len(paths)
    ids = [g if g is not None else (dataset_id_for(p) if p is not None else None) for g, p in zip(given, paths)]
    if None in ids:
        raise InvalidArgumentError("every observation needs a dataset_id or a file_path to derive it from")
    col = pa.array(ids, pa.string())
    if "dataset_id" in data.column_names:
        return data.set_column(data.column_names.index("dataset_id"), "dataset_id", col)
    return data.add_column(0, S.OBSERVATIONS.schema.field("dataset_id"), col)


def constant(value, n: int, type_: pa.DataType) -> pa.Array:
    """An Arrow array of ``n`` copies of ``value``."""
    if value is None:
        return pa.nulls(n, type_)
    return pa.repeat(pa.scalar(value, type=type_), n)


def chunks(data: pa.Table, size: int) -> Iterable[pa.Table]:
    """Slices of at most ``size`` rows."""
    for start in range(0, data.num_rows, size):
        yield data.slice(start, size)
