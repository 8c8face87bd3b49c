"""HDF5 (and netCDF-4, which is HDF5 underneath): root and group attributes through h5py.

Missions keep metadata in root attributes, in nested groups (SMAP's ``/Metadata/Extent``), or
packed into one text attribute as ``key=value;`` pairs (GPM's ``FileHeader``, COSMOS-7's
``/Metadata@header``). Every group's attributes become a search source, breadth first from
the root, and every packed text attribute becomes a source of its own, labelled
``HDF5:/Metadata@header:OBS_START``. Datasets are not read, except the first and last value of
a CF time coordinate when a netCDF-4 file has one.

netCDF-4 files are read here rather than through the netCDF4 library, which crashes the
interpreter on some real HDF5 files.
"""

from __future__ import annotations

import re
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from cosmoscope.extract.base import ExtractionError, Metadata, Source

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_GROUPS = 400
MAX_DEPTH = 8
#: Attributes read from one group, and from one file: a file with millions of attributes is read
#: in bounded time (reading one costs ~60 us; the 2,001st of a group is never useful metadata).
MAX_ATTRS = 2_000
MAX_FILE_ATTRS = 20_000
#: Members of one group looked at (each costs two link lookups), and of the whole file.
MAX_MEMBERS = 10_000
MAX_FILE_MEMBERS = 50_000
#: Attributes longer than this are not parsed as packed key=value text (ISO XML blobs).
MAX_PACKED = 200_000

_PACKED_SPLIT = re.compile(r"[;\n\r]+")
_PAIR = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*=\s*(.*?)\s*$", re.S)
_NC_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")


def hdf5_offset(head: bytes) -> int | None:
    """Where the HDF5 signature is in ``head`` (0 or a user-block size), or None."""
    for off in (0, 512, 1024, 2048):
        if head[off:off + 8] == HDF5_MAGIC:
            return off
    return None


def parse_packed(text: str) -> dict[str, str] | None:
    """``"A=1;B=two;\\n"`` → ``{"A": "1", "B": "two"}``; None if the text is not such a list.

    >>> parse_packed("OBS_START=2026-11-27T08:15:00Z;TARGET=NGC 253;")
    {'OBS_START': '2026-11-27T08:15:00Z', 'TARGET': 'NGC 253'}
    >>> parse_packed("just a sentence; with a semicolon") is None
    True
    """
    if "=" not in text or len(text) > MAX_PACKED:
        return None
    parts = [p for p in _PACKED_SPLIT.split(text) if p.strip()]
    if not parts:
        return None
    out: dict[str, str] = {}
    good = 0
    for p in parts:
        m = _PAIR.match(p)
        if m:
            good += 1
            out.setdefault(m.group(1), m.group(2))
    if good < 2 or good < 0.8 * len(parts):
        return None
    return out


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    if getattr(value, "shape", None) == () and getattr(value, "dtype", None) is not None \
            and value.dtype.kind in "SUO":
        return _text(value.item())
    return None


def _read_attrs(obj, limit: int = MAX_ATTRS) -> tuple[dict[str, Any], int]:
    """The first ``limit`` attributes of ``obj``, and how many it has."""
    from h5py import h5a

    out: dict[str, Any] = {}
    names: list[bytes] = []

    def take(name, *_):
        names.append(name)
        return True if len(names) >= limit else None  # anything but None stops the iteration

    try:
        total = h5a.get_num_attrs(obj.id)
        if total and limit > 0:
            # h5py's attrs.keys() would list every name first: iterate in C and stop at the limit.
            h5a.iterate(obj.id, take)
    except Exception:  # noqa: BLE001 - h5py raises OSError/KeyError/TypeError on odd files
        return out, 0
    for raw in names:
        name = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        try:
            out[name] = obj.attrs[raw]
        except Exception:  # noqa: BLE001 - unsupported attribute types (e.g. references)
            continue
    return out, total


def _friendly(exc: Exception, what: str) -> str:
    msg = str(exc)
    low = msg.lower()
    if "truncated file" in low:
        return f"truncated {what} file: the file is shorter than its superblock says ({msg.split('(')[-1].rstrip(')')})"
    if "signature" in low:
        return f"not {'an' if what.startswith('H') else 'a'} {what} file: no HDF5 signature"
    if "permission" in low:
        return "permission denied"
    return f"damaged {what} file: h5py cannot open it ({msg})"


def read_tree(path: Path, *, prefix: str, root_scope: str, fmt: str) -> Metadata:
    """Open with h5py and collect attribute sources of the root and every group."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py wraps every failure in OSError or worse
        raise ExtractionError(_friendly(exc, "netCDF-4" if fmt == "netcdf" else "HDF5")) from None
    meta = Metadata(format=fmt)
    with f:
        queue: deque[tuple[Any, str, int]] = deque([(f, "/", 0)])
        groups = 0
        datasets = 0
        attrs_left, members_left = MAX_FILE_ATTRS, MAX_FILE_MEMBERS
        skipped: list[str] = []
        while queue:
            group, gpath, depth = queue.popleft()
            groups += 1
            attrs, n_attrs = _read_attrs(group, min(MAX_ATTRS, attrs_left))
            attrs_left -= len(attrs)
            if n_attrs > len(attrs):
                skipped.append(f"{gpath}: {len(attrs):,} of {n_attrs:,} attributes read")
            scope = root_scope if gpath == "/" else f"{gpath}@"
            if attrs:
                meta.sources.append(Source(prefix, scope, attrs, kind="group", info={"path": gpath}))
            for name, value in attrs.items():
                text = _text(value)
                if text is not None and "=" in text:
                    packed = parse_packed(text)
                    if packed:
                        meta.sources.append(Source(prefix, f"{scope}{name}:", packed, kind="packed",
                                                   info={"path": gpath, "attribute": name}))
            if depth >= MAX_DEPTH:
                continue
            try:
                names = list(islice(group, min(MAX_MEMBERS, members_left) + 1))
            except Exception:  # noqa: BLE001
                continue
            if len(names) > min(MAX_MEMBERS, members_left):
                names = names[:-1]
                skipped.append(f"{gpath}: only the first {len(names):,} members looked at")
            members_left -= len(names)
            for name in names:
                try:
                    link = group.get(name, getlink=True)
                    if not isinstance(link, h5py.HardLink):
                        continue  # soft/external links: may loop or point outside the file
                    cls = group.get(name, getclass=True)
                except Exception:  # noqa: BLE001
                    continue
                if cls is h5py.Group and groups + len(queue) < MAX_GROUPS:
                    child = group[name]
                    queue.append((child, f"{gpath.rstrip('/')}/{name}", depth + 1))
                elif cls is h5py.Dataset:
                    datasets += 1
        if skipped:
            meta.extra["read_limits"] = skipped[:10]
            meta.flags.append("metadata_truncated")
        meta.extra["groups"] = groups
        meta.extra["datasets"] = datasets
        if fmt == "netcdf":
            _cf_time(f, meta, prefix)
    return meta


def looks_like_netcdf4(path: Path) -> bool:
    """An HDF5 file written by the netCDF-4 library: ``_NCProperties`` or dimension scales."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "_NCProperties" in f.attrs:
                return True
            for name in list(f.keys())[:200]:
                try:
                    if f.get(name, getclass=True) is h5py.Dataset:
                        a = f[name].attrs
                        if "DIMENSION_LIST" in a or a.get("CLASS") in (b"DIMENSION_SCALE", "DIMENSION_SCALE"):
                            return True
                except Exception:  # noqa: BLE001
                    continue
    except Exception:  # noqa: BLE001 - not readable: let the HDF5 extractor report why
        return False
    return False


def _cf_time(f, meta: Metadata, prefix: str) -> None:
    """First and last value of a root CF time coordinate, as fallback start/end."""
    import h5py

    from cosmoscope.extract.timeparse import TimeParseError, from_cf

    for name in ("time", "Time", "TIME"):
        try:
            if f.get(name, getclass=True) is not h5py.Dataset:
                continue
            ds = f[name]
            units = _text(ds.attrs.get("units"))
            if not units or "since" not in units or ds.ndim != 1 or ds.shape[0] == 0:
                continue
            cal = _text(ds.attrs.get("calendar"))
            fill = ds.attrs.get("_FillValue")
            first, last = ds[0], ds[-1]
            if fill is not None and (first == fill or last == fill):
                continue
            meta.fields["observation_timestamp"] = (from_cf(float(first), units, cal), f"{prefix}{name}[0]")
            meta.fields["observation_end"] = (from_cf(float(last), units, cal), f"{prefix}{name}[-1]")
            return
        except (TimeParseError, ValueError, TypeError, OverflowError):
            continue
        except Exception:  # noqa: BLE001 - a broken variable must not spoil the attributes
            continue


class Hdf5Extractor:
    """Root and group attributes, including packed ``key=value;`` text, of HDF5 files."""

    name: ClassVar[str] = "hdf5"
    priority: ClassVar[int] = 10
    suffixes: ClassVar[tuple[str, ...]] = (".h5", ".hdf5", ".he5", ".hdf", ".h5nc")

    def can_read(self, path: Path, head: bytes) -> bool:
        return hdf5_offset(head) is not None

    def extract(self, path: Path) -> Metadata:
        return read_tree(path, prefix="HDF5:", root_scope="/@", fmt="hdf5")
