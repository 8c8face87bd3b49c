"""netCDF 3 and 4: CF and ACDD global attributes, group attributes, CF time coverage.

Classic netCDF (``CDF\\x01``, ``\\x02``, ``\\x05``) is read with the netCDF4 library, which is
safe on those. netCDF-4 files are HDF5 files and are read with h5py (see
:mod:`cosmoscope.extract.hdf5`): netCDF4 1.7.5 segfaults on open or close of some real HDF5
files, and one file must never kill an ingest run. An HDF5 file counts as netCDF-4 when it has
a ``.nc``/``.nc4`` suffix, a ``_NCProperties`` attribute or dimension scales.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from cosmoscope.extract.base import ExtractionError, Metadata, Source
from cosmoscope.extract.hdf5 import MAX_ATTRS, _NC_SUFFIXES, hdf5_offset, looks_like_netcdf4, read_tree

CLASSIC_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
#: Bytes per value of each classic nc_type (byte, char, short, int, float, double, and CDF-5's
#: ubyte, ushort, uint, int64, uint64).
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
MAX_CLASSIC_HEADER = 64 << 20


def classic_extent(head: bytes) -> int | None:
    """Bytes a classic netCDF file must have, from its header (None if it cannot be told).

    The netCDF library reads a truncated classic file without complaint (missing data reads as
    zeros), so the size is checked here against the variables' ``begin`` offsets and sizes.
    """
    import struct

    version = head[3]
    big = version == 5
    pos = 4

    def n() -> int:  # a count: 4 bytes, 8 in CDF-5
        nonlocal pos
        fmt, size = (">Q", 8) if big else (">I", 4)
        v = struct.unpack_from(fmt, head, pos)[0]
        pos += size
        return v

    def skip_name() -> None:
        nonlocal pos
        length = n()
        pos += -(-length // 4) * 4

    def skip_atts() -> None:
        nonlocal pos
        struct.unpack_from(">I", head, pos)
        pos += 4
        for _ in range(n()):
            skip_name()
            t = struct.unpack_from(">I", head, pos)[0]
            pos += 4
            count = n()
            pos += -(-(count * _TYPE_SIZE.get(t, 1)) // 4) * 4

    numrecs = n()
    pos += 4  # NC_DIMENSION tag (or ABSENT)
    dims = []
    for _ in range(n()):
        skip_name()
        dims.append(n())
    skip_atts()
    pos += 4  # NC_VARIABLE tag
    end, rec_vars = 0, []
    for _ in range(n()):
        skip_name()
        dimids = [n() for _ in range(n())]
        skip_atts()
        t = struct.unpack_from(">I", head, pos)[0]
        pos += 4
        n()  # vsize: overflows for huge variables, so the size is recomputed below
        begin = struct.unpack_from(">I" if version == 1 else ">Q", head, pos)[0]
        pos += 4 if version == 1 else 8
        shape = [dims[d] for d in dimids if d < len(dims)]
        is_rec = bool(shape) and shape[0] == 0
        count = 1
        for d in shape[1:] if is_rec else shape:
            count *= d
        size = count * _TYPE_SIZE.get(t, 1)  # vsize overflows for huge variables: recompute
        if is_rec:
            rec_vars.append((begin, size))
        else:
            end = max(end, begin + size)
    if rec_vars and numrecs not in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        recsize = sum(-(-size // 4) * 4 for _, size in rec_vars) if len(rec_vars) > 1 else rec_vars[0][1]
        end = max(end, max(b + (numrecs - 1) * recsize + size for b, size in rec_vars))
    return end


def _check_classic_size(path: Path) -> None:
    import struct

    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(min(size, MAX_CLASSIC_HEADER))
    try:
        need = classic_extent(head)
    except (struct.error, IndexError):
        raise ExtractionError(
            f"truncated or damaged netCDF-3 file: the header runs past the end of the file ({size:,} bytes)") from None
    if need and size < need - 4:  # the last variable's padding may be missing
        raise ExtractionError(f"truncated netCDF-3 file: its header places data up to byte {need:,} but the "
                              f"file has {size:,} bytes")


def _read_classic(path: Path) -> Metadata:
    import netCDF4

    _check_classic_size(path)

    try:
        ds = netCDF4.Dataset(path, "r")
    except Exception as exc:  # noqa: BLE001 - the C library reports through OSError/RuntimeError
        msg = str(exc)
        if "Unknown file format" in msg:
            raise ExtractionError("not a netCDF file: the netCDF library does not recognise it") from None
        if "-51" in msg or "-45" in msg or "-116" in msg or "NC_EINVAL" in msg or "truncat" in msg.lower():
            raise ExtractionError(f"truncated or damaged netCDF-3 file ({msg})") from None
        raise ExtractionError(f"damaged netCDF-3 file: the netCDF library cannot open it ({msg})") from None
    meta = Metadata(format="netcdf")
    try:
        attrs = {}
        names = ds.ncattrs()
        # The library finds an attribute by name with a linear search, so reading all of a
        # header's attributes costs the square of their number (100,000 take a minute).
        for name in names[:MAX_ATTRS]:
            try:
                attrs[name] = ds.getncattr(name)
            except Exception:  # noqa: BLE001 - undecodable attribute text
                continue
        if len(names) > MAX_ATTRS:
            meta.extra["read_limits"] = [f"/: {MAX_ATTRS:,} of {len(names):,} global attributes read"]
            meta.flags.append("metadata_truncated")
        meta.sources.append(Source("netCDF:", "@", attrs, kind="global"))
        meta.extra["data_model"] = ds.data_model
        meta.extra["dimensions"] = {k: len(v) for k, v in list(ds.dimensions.items())[:30]}
        meta.extra["variables"] = len(ds.variables)
        _classic_time(ds, meta)
    finally:
        ds.close()
    return meta


def _classic_time(ds, meta: Metadata) -> None:
    from cosmoscope.extract.timeparse import TimeParseError, from_cf

    for name in ("time", "Time", "TIME"):
        var = ds.variables.get(name)
        if var is None or var.ndim != 1 or var.shape[0] == 0:
            continue
        units = getattr(var, "units", None)
        if not isinstance(units, str) or "since" not in units:
            continue
        try:
            var.set_auto_maskandscale(True)
            first, last = var[0], var[-1]
            if getattr(first, "mask", False) is True or getattr(last, "mask", False) is True:
                continue
            cal = getattr(var, "calendar", None)
            meta.fields["observation_timestamp"] = (from_cf(float(first), units, cal), f"netCDF:{name}[0]")
            meta.fields["observation_end"] = (from_cf(float(last), units, cal), f"netCDF:{name}[-1]")
            return
        except (TimeParseError, ValueError, TypeError, OverflowError, IndexError):
            continue


class NetcdfExtractor:
    """Global and group attributes and time coverage of netCDF 3 and netCDF-4 files."""

    name: ClassVar[str] = "netcdf"
    priority: ClassVar[int] = 20  # a netCDF-4 file is also HDF5: this one wins
    suffixes: ClassVar[tuple[str, ...]] = _NC_SUFFIXES

    def can_read(self, path: Path, head: bytes) -> bool:
        if head[:4] in CLASSIC_MAGIC:
            return True
        if hdf5_offset(head) is None:
            return False
        return os.fspath(path).lower().endswith(_NC_SUFFIXES) or looks_like_netcdf4(path)

    def extract(self, path: Path) -> Metadata:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head in CLASSIC_MAGIC:
            return _read_classic(path)
        return read_tree(path, prefix="netCDF:", root_scope="@", fmt="netcdf")
