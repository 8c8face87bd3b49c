"""Whole-file compression: gzip and bzip2 (standard library) and Unix ``compress`` (``.Z``, LZW,
through ``uncompresspy``, the reader astropy itself uses for ``.Z`` FITS).

Extractors that read compressed files (FITS, CSV) open them with :func:`open_stream` and sniff them
with :func:`head_of`; names are matched without their compression suffix
(:func:`without_compression_suffix`), so ``obs.fits.Z`` and ``table.csv.gz`` claim their formats.
"""

from __future__ import annotations

import bz2
import contextlib
import contextvars
import gzip
import os
import zlib
from collections.abc import Iterator
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
LZW_MAGIC = b"\x1f\x9d"
#: Suffixes of compressed files, lower case, with the compression they name.
SUFFIXES = {".gz": "gzip", ".bz2": "bzip2", ".z": "compress"}
#: The command that undoes each compression, for messages.
TOOLS = {"gzip": "gunzip", "bzip2": "bunzip2", "compress": "uncompress"}
#: Most compressed bytes read to sniff a bzip2 file (its first block must be whole to decompress).
BZIP2_SNIFF_BYTES = 2 << 20
#: Errors a damaged or cut compressed stream raises while being read.
STREAM_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, ValueError)
#: Most decompressed bytes a reader from :func:`open_stream` may give (None: no limit).
_CAP: contextvars.ContextVar[int | None] = contextvars.ContextVar("cosmoscope_inflation_cap", default=None)


class InflationCapExceeded(BaseException):
    """A compressed file decompressed to more bytes than :func:`inflation_cap` allows (a
    BaseException, so that the extractors' ``except Exception`` cannot swallow it)."""


@contextlib.contextmanager
def inflation_cap(limit: int) -> Iterator[None]:
    """Within this block, a reader of a compressed file raises :class:`InflationCapExceeded`
    once it has given ``limit`` decompressed bytes: a compression bomb costs at most the time
    and memory of that many bytes (bulk ingest reads small compressed files in its own process
    this way, and hands the ones that grow past it to a worker process)."""
    token = _CAP.set(limit)
    try:
        yield
    finally:
        _CAP.reset(token)


class _Capped:
    """A decompressing reader that raises :class:`InflationCapExceeded` past ``left`` bytes."""

    def __init__(self, inner: BinaryIO, left: int):
        self.inner, self.left = inner, left

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(self.left + 1 if n is None or n < 0 else min(n, self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise InflationCapExceeded()
        return data

    def close(self) -> None:
        self.inner.close()


def compression_of(head: bytes) -> str | None:
    """``gzip``, ``bzip2`` or ``compress`` from a file's first bytes, or None.

    >>> compression_of(b"\\x1f\\x9d\\x90S"), compression_of(b"SIMPLE  =")
    ('compress', None)
    """
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(LZW_MAGIC):
        return "compress"
    return None


def without_compression_suffix(name: str) -> str:
    """``name`` without a trailing ``.gz``, ``.bz2`` or ``.Z``.

    >>> without_compression_suffix("obs.fits.Z"), without_compression_suffix("table.csv")
    ('obs.fits', 'table.csv')
    """
    lower = name.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix):
            return name[:-len(suffix)]
    return name


def head_of(path: str | os.PathLike, head: bytes, n: int = 2880) -> bytes | None:
    """The first ``n`` decompressed bytes of a compressed file whose raw first bytes are
    ``head`` (None if it is not compressed or they cannot be decompressed). gzip and compress
    decompress from ``head`` alone; bzip2 needs its whole first block, so up to
    :data:`BZIP2_SNIFF_BYTES` of the file are read."""
    kind = compression_of(head)
    try:
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, n)
        if kind == "compress":
            import io

            import uncompresspy

            return uncompresspy.LZWFile(io.BytesIO(head), warn_truncation=False).read(n)
        if kind == "bzip2":
            d, out = bz2.BZ2Decompressor(), b""
            with open(path, "rb") as fh:
                while len(out) < n and not d.eof and fh.tell() < BZIP2_SNIFF_BYTES:
                    chunk = fh.read(64 * 1024)
                    if not chunk:
                        break
                    out += d.decompress(chunk, n - len(out))
            return out
    except (*STREAM_ERRORS, OSError):
        return None
    return None


def open_stream(path: str | os.PathLike) -> tuple[BinaryIO, BinaryIO, str | None]:
    """``(reader, raw_file, compression)``: a reader of the decompressed bytes (the raw file
    itself when uncompressed). Close both; the reader of a compressed file cannot seek cheaply,
    and gives at most the bytes :func:`inflation_cap` allows."""
    fh = open(path, "rb")
    try:
        kind = compression_of(fh.read(3))
        fh.seek(0)
        if kind is None:
            return fh, fh, None
        if kind == "gzip":
            reader = gzip.GzipFile(fileobj=fh, mode="rb")
        elif kind == "bzip2":
            reader = bz2.BZ2File(fh, "rb")
        else:
            import uncompresspy

            reader = uncompresspy.LZWFile(fh, warn_truncation=False)
        cap = _CAP.get()
        return (reader if cap is None else _Capped(reader, cap)), fh, kind
    except BaseException:
        fh.close()
        raise
