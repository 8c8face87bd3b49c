"""Deciding when a file that is still arriving is complete enough to catalog.

A file is cataloged once the writer is done with it, never half-written:

1. **The writer said so.** On Linux, inotify reports when a file open for writing is closed
   (``IN_CLOSE_WRITE``); a file renamed into place (``rsync``'s ``.name.XXXXXX`` -> ``name``,
   ``x.part`` -> ``x``) arrives whole. Either makes it ready at once.
2. **Otherwise, it stopped changing.** Where no close events exist (the polling observer on
   NFS, files found by a reconcile scan, files moved in from elsewhere), a file is ready when its
   size and modification time have not changed for ``settle`` seconds (or its modification time
   is already that old). A file inotify saw being written but never saw closed waits for
   ``stall`` seconds of stillness instead: a writer that paused is more likely than one that
   finished without closing.
3. **And its format agrees.** :func:`incomplete_reason` checks what the format promises: a FITS
   file ends with every header's END card and all the data its headers declare; an HDF5 or
   netCDF-4 file is as long as its superblock's end-of-file address and not marked open for
   writing; a netCDF-3 file holds every byte its header places; a gzip or bzip2 stream reaches
   its end. A file that fails waits until
   it changes or has been still for ``stall`` seconds; then it is cataloged anyway, and the
   extractor records why it cannot be read.
"""

from __future__ import annotations

import os
import stat as stat_mod
import struct
import time
from dataclasses import dataclass

from cosmoscope.ingest.crawl import FileEntry

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_UNDEFINED = {4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}
#: Largest compressed FITS file whose stream is checked for its end (a full decompression).
MAX_DECOMPRESS = 256 << 20


def incomplete_reason(path: str, size: int | None = None) -> str | None:
    """Why ``path`` looks incomplete for its format, or None if it looks whole (or the format
    promises nothing that can be checked cheaply: CSV, compressed FITS).

    Reads headers only: the FITS header blocks, the HDF5 superblock, the netCDF-3 header.
    """
    try:
        if size is None:
            size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if head.startswith(b"SIMPLE  ="):
        return _fits_incomplete(path)
    from cosmoscope.extract.compressed import compression_of

    compression = compression_of(head)
    if compression is not None:
        from cosmoscope.extract.fits import is_fits_head

        if compression in ("gzip", "bzip2") and is_fits_head(head, path):  # compress (.Z) has no end marker
            return _compressed_incomplete(path, compression)
        return None
    for off in (0, 512, 1024, 2048):
        if head[off:off + 8] == _HDF5_MAGIC:
            return _hdf5_incomplete(head, off, size)
    if head[:4] in _CDF_MAGIC:
        return _classic_incomplete(path, head, size)
    return None


def _fits_incomplete(path: str) -> str | None:
    from cosmoscope.extract.base import ExtractionError
    from cosmoscope.extract.fits import _open, walk

    try:
        stream, compression = _open(path)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    try:
        if compression:  # not reached from incomplete_reason, which sniffs compression first
            return _compressed_incomplete(path, compression)
        walk(stream, verify=False, budget=0)  # headers only; data are skipped by seeking
    except ExtractionError as exc:
        return str(exc)
    finally:
        stream.close()
    return None


def _compressed_incomplete(path: str, compression: str) -> str | None:
    """Whether a gzip or bzip2 stream reaches its end marker (only the first member is checked;
    files over :data:`MAX_DECOMPRESS` bytes are taken as they are: checking costs a full pass)."""
    import bz2
    import zlib

    if os.path.getsize(path) > MAX_DECOMPRESS:
        return None
    d = zlib.decompressobj(16 + zlib.MAX_WBITS) if compression == "gzip" else bz2.BZ2Decompressor()
    try:
        with open(path, "rb") as fh:
            while not d.eof and (chunk := fh.read(1 << 20)):
                d.decompress(chunk, 1 << 20) if compression == "gzip" else d.decompress(chunk)
                while compression == "gzip" and d.unconsumed_tail and not d.eof:
                    d.decompress(d.unconsumed_tail, 1 << 20)
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        return f"damaged {compression} stream: {exc}"
    return None if d.eof else f"the {compression} stream has not ended yet"


def _hdf5_incomplete(head: bytes, off: int, size: int) -> str | None:
    """Compare the superblock's end-of-file address with the file's size (HDF5 sets the file
    to exactly that length when it closes it) and look at its "open for writing" flag."""
    try:
        version = head[off + 8]
        if version in (0, 1):
            width = head[off + 13]
            base_at = off + 24 + (4 if version == 1 else 0)
            flags = 0  # versions 0 and 1 keep no open-for-writing flag
        else:
            width = head[off + 9]
            base_at = off + 12
            flags = head[off + 11]
        fmt = {4: "<I", 8: "<Q"}[width]
        base = struct.unpack_from(fmt, head, base_at)[0]
        eof = struct.unpack_from(fmt, head, base_at + 2 * width)[0]
    except (IndexError, KeyError, struct.error):
        return "the HDF5 superblock is not complete yet"
    if version >= 2 and flags & 0x1:
        return "the HDF5 file is marked as open for writing"
    if eof == _UNDEFINED[width]:
        return "the HDF5 superblock has no end-of-file address yet"
    want = (base if base != _UNDEFINED[width] else off) + eof
    if size < want:
        return f"the HDF5 superblock says the file ends at byte {want:,} but it has {size:,} bytes"
    if size > want:
        return f"the HDF5 file has {size:,} bytes, more than the {want:,} its superblock records (still being written?)"
    return None


def _classic_incomplete(path: str, head: bytes, size: int) -> str | None:
    from cosmoscope.extract.netcdf import MAX_CLASSIC_HEADER, classic_extent

    for limit in (1 << 20, MAX_CLASSIC_HEADER):
        if len(head) < min(size, limit):
            with open(path, "rb") as fh:
                head = fh.read(min(size, limit))
        try:
            need = classic_extent(head)
            break
        except (struct.error, IndexError):
            if size <= len(head):
                return "the netCDF-3 header is not complete yet"
    else:
        return "the netCDF-3 header is not complete yet"
    if need and size < need - 4:  # the last variable's padding may be missing
        return f"the netCDF-3 header places data up to byte {need:,} but the file has {size:,} bytes"
    return None


@dataclass
class Pending:
    """A file seen but not cataloged yet."""

    path: str
    size: int
    mtime_ns: int
    #: monotonic time since when (size, mtime) have been as they are now
    still_since: float
    #: the writer closed it (or it was renamed into place) after its last write
    closed: bool = False
    #: inotify saw it being written
    written: bool = False
    #: why the format check failed for the current (size, mtime), if it did
    incomplete: str | None = None
    checked: tuple[int, int] | None = None


class SettleTracker:
    """Files waiting to be complete; :meth:`ready` hands out those that are.

    Parameters
    ----------
    settle
        Seconds a file's size and modification time must stay unchanged, when no close event
        can be expected.
    stall
        Seconds of stillness after which a file seen being written but never closed, or one
        that fails its format check, is cataloged anyway.
    close_events
        Whether the observer reports close-after-write (inotify does; polling does not).
    """

    def __init__(self, settle: float = 2.0, stall: float = 30.0, close_events: bool = True):
        self.settle = float(settle)
        self.stall = max(float(stall), self.settle)
        self.close_events = close_events
        self._files: dict[str, Pending] = {}

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def drop(self, path: str) -> None:
        self._files.pop(path, None)

    def observe(self, path: str, st: os.stat_result, *, written: bool = False, closed: bool = False,
                now: float | None = None) -> None:
        """Record what was seen of ``path``: its stat, and whether inotify saw a write or a close
        (a close or rename that came after the last write)."""
        now = time.monotonic() if now is None else now
        p = self._files.get(path)
        if p is None:
            p = self._files[path] = Pending(path, st.st_size, st.st_mtime_ns, now)
        elif (p.size, p.mtime_ns) != (st.st_size, st.st_mtime_ns):
            p.size, p.mtime_ns, p.still_since = st.st_size, st.st_mtime_ns, now
        if written:
            p.written, p.closed = True, False
        if closed:
            p.closed = True

    def _due(self, p: Pending, now: float, wall: float) -> bool:
        if p.incomplete is not None and p.checked == (p.size, p.mtime_ns):
            return now - p.still_since >= self.stall
        if p.closed:
            return True
        if p.written and self.close_events:
            return now - p.still_since >= self.stall
        return now - p.still_since >= self.settle or wall - p.mtime_ns / 1e9 >= self.settle

    def ready(self, limit: int, now: float | None = None) -> list[FileEntry]:
        """Up to ``limit`` files that are complete now (removed from the tracker).

        Each candidate is stat'ed again; one that changed since it was last seen starts settling
        anew, one that is gone is dropped (the caller hears of it through its delete event).
        """
        now = time.monotonic() if now is None else now
        wall = time.time()
        out: list[FileEntry] = []
        for path, p in list(self._files.items()):
            if len(out) >= limit:
                break
            if not self._due(p, now, wall):
                continue
            try:
                st = os.stat(path)
            except OSError:
                del self._files[path]
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                del self._files[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
                p.size, p.mtime_ns, p.still_since = st.st_size, st.st_mtime_ns, now
                if not self._due(p, now, wall):  # a close event may still stand for the new state
                    continue
            given_up = p.checked == (p.size, p.mtime_ns) and now - p.still_since >= self.stall
            if not given_up:
                p.incomplete = incomplete_reason(path, st.st_size)
                p.checked = (p.size, p.mtime_ns)
                if p.incomplete is not None:
                    p.closed = False  # wait for a change, or for the stall time
                    continue
            del self._files[path]
            out.append(FileEntry(path, st.st_size, st.st_mtime_ns))
        return out

    def next_due(self, now: float | None = None) -> float | None:
        """Seconds until the earliest file could be due (None when nothing waits)."""
        if not self._files:
            return None
        now = time.monotonic() if now is None else now
        wall = time.time()
        best = None
        for p in self._files.values():
            if self._due(p, now, wall):
                return 0.0
            wait = self.stall if (p.incomplete is not None or (p.written and self.close_events)) else self.settle
            left = p.still_since + wait - now
            best = left if best is None else min(best, left)
        return max(best or 0.0, 0.0)
