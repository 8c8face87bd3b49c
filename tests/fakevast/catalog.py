"""The VAST Catalog: the cluster's own table of file-system metadata, as the fake serves it.

``tx.catalog()`` in the SDK opens bucket ``vast-big-catalog-bucket``, schema
``vast_big_catalog_schema``, table ``vast_big_catalog_table`` without checking that the
bucket exists. Column names follow the catalog queries published for VAST clusters;
the types are our best reading of them (Trino's ``timestamp(9)`` is a nanosecond
timestamp, ``row(...)`` a struct). What matters for callers is measured: ``parent_path``
ends in "/", ``extension`` has no dot, times are nanosecond timestamps.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa

CATALOG_BUCKET = "vast-big-catalog-bucket"
CATALOG_SCHEMA = "vast_big_catalog_schema"
CATALOG_TABLE = "vast_big_catalog_table"

_ns = pa.timestamp("ns")
CATALOG_COLUMNS = pa.schema([
    ("phandle", pa.struct([("clone_id", pa.int32()), ("handle_id", pa.int64())])),
    ("creation_time", _ns),
    ("uid", pa.int32()),
    ("owner_sid", pa.utf8()),
    ("owner_name", pa.utf8()),
    ("gid", pa.int32()),
    ("group_owner_sid", pa.utf8()),
    ("group_owner_name", pa.utf8()),
    ("atime", _ns),
    ("mtime", _ns),
    ("ctime", _ns),
    ("nlinks", pa.int32()),
    ("element_type", pa.utf8()),       # FILE, DIR, LINK, ...
    ("size", pa.int64()),
    ("used", pa.int64()),
    ("tenant_id", pa.int32()),
    ("name", pa.utf8()),
    ("extension", pa.utf8()),          # without the dot; null when the name has none
    ("parent_path", pa.utf8()),        # always ends in "/"
    ("symlink_path", pa.utf8()),
    ("nfs_mode_bits", pa.int32()),
    ("user_tags", pa.map_(pa.utf8(), pa.utf8())),
    ("login_name", pa.utf8()),
    ("search_path", pa.utf8()),
])


def _ns_timestamp(value) -> int | None:
    """Nanoseconds since the epoch from a datetime (naive = UTC), int ns or float seconds."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(round(value * 1e9))
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    raise TypeError(f"cannot read a catalog time from {value!r}")


def catalog_row(entry: Mapping) -> dict:
    """One catalog row from a mapping with ``path`` (absolute) or ``parent_path`` + ``name``,
    plus optional ``size``, ``mtime``/``atime``/``ctime``/``creation_time``, ``element_type``
    and any other catalog column."""
    entry = dict(entry)
    path = entry.pop("path", None)
    if path is not None:
        path = posixpath.normpath("/" + str(path).lstrip("/"))
        parent, name = posixpath.split(path)
        entry.setdefault("name", name)
        entry.setdefault("parent_path", parent)
    if "name" not in entry or "parent_path" not in entry:
        raise ValueError(f"catalog entry needs 'path' or both 'parent_path' and 'name': {entry!r}")
    if not entry["parent_path"].endswith("/"):
        entry["parent_path"] += "/"
    element_type = entry.setdefault("element_type", "FILE")
    stem, dot, ext = entry["name"].rpartition(".")
    entry.setdefault("extension", ext if dot and stem and element_type == "FILE" else None)
    entry.setdefault("search_path", entry["parent_path"] + entry["name"])
    entry.setdefault("nlinks", 1)
    size = entry.setdefault("size", 0)
    entry.setdefault("used", size)
    times = {k: _ns_timestamp(entry.get(k)) for k in ("mtime", "atime", "ctime", "creation_time")}
    default_time = times["mtime"] if times["mtime"] is not None else 0
    for key, value in times.items():
        entry[key] = default_time if value is None else value
    unknown = set(entry) - set(CATALOG_COLUMNS.names)
    if unknown:
        raise ValueError(f"unknown catalog columns {sorted(unknown)}; known: {CATALOG_COLUMNS.names}")
    return entry


def catalog_table(entries: Iterable[Mapping]) -> pa.Table:
    return pa.Table.from_pylist([catalog_row(e) for e in entries], schema=CATALOG_COLUMNS)


def entries_from_directory(root: str | os.PathLike, prefix: str = "/") -> list[dict]:
    """Catalog entries for a real directory tree, as if it were mounted at ``prefix``.

    Sizes and times come from ``os.stat``; directories become ``DIR`` entries.
    """
    root = Path(root)
    prefix = "/" + prefix.strip("/")
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        vast_dir = posixpath.normpath(posixpath.join(prefix, rel))
        for name, kind in [(d, "DIR") for d in sorted(dirnames)] + [(f, "FILE") for f in sorted(filenames)]:
            st = os.stat(os.path.join(dirpath, name))
            entries.append({
                "path": posixpath.join(vast_dir, name), "element_type": kind,
                "size": st.st_size if kind == "FILE" else 0,
                "mtime": st.st_mtime_ns, "atime": st.st_atime_ns, "ctime": st.st_ctime_ns,
                "uid": st.st_uid, "gid": st.st_gid, "nfs_mode_bits": st.st_mode & 0o7777,
            })
    return entries
