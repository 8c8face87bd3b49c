"""Low-level FITS writing: header cards, checksums, data holes, gzip members, tile compression.

Written by hand instead of through astropy for two reasons: the simulator formats tens of
thousands of headers a minute (astropy's ``Header`` costs ~3 ms each), and it must *declare*
data it never writes, so that a 500 MB data unit is a hole costing nothing on disk. astropy
reads every file back in the tests (``verify('exception')``, ``checksum=True``).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BLOCK = 2880
#: A gzip stream cannot contain holes, so a declared gzip payload costs about 1/1000 of its
#: size on disk. Compressed files therefore declare at most this many uncompressed bytes.
GZIP_MAX_UNCOMPRESSED = 16 * 1024 * 1024
_ZERO_CHUNK = 1 << 20


def padded(n: int) -> int:
    """``n`` rounded up to a whole number of 2880-byte FITS blocks."""
    return -(-n // BLOCK) * BLOCK


def _format_float(value: float) -> str:
    text = repr(float(value)).replace("e", "E")
    if "E" not in text and "." not in text and "N" not in text and "I" not in text:
        text += ".0"
    if len(text) > 20:
        text = f"{value:.15G}"
    return text


def format_value(value) -> str:
    """The FITS text of a card value (logical, integer, real or string)."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float(value)
    text = str(value).replace("'", "''")
    return "'" + (text.ljust(8) if text else "") + "'"


def format_card(key: str, value=None, comment: str | None = None) -> str:
    """One 80-character header card.

    ``COMMENT``/``HISTORY`` take their text as ``value``; keys longer than 8 characters or with
    spaces become ESO ``HIERARCH`` cards.

    >>> format_card("EXPTIME", 30.0, "[s] exposure time")[:40]
    'EXPTIME =                 30.0 / [s] exp'
    """
    if key in ("COMMENT", "HISTORY", ""):
        return f"{key:<8}{value or ''}"[:80].ljust(80)
    text = format_value(value)
    if key.startswith("HIERARCH "):
        card = f"{key} = {text}"
    elif len(key) > 8 or " " in key:
        card = f"HIERARCH {key} = {text}"
    elif isinstance(value, str):
        card = f"{key:<8}= {text:<20}"
    else:
        card = f"{key:<8}= {text:>20}"
    if len(card) > 80:
        raise ValueError(f"FITS card for {key!r} is longer than 80 characters: {card!r}")
    if comment:
        card += f" / {comment}"
    return card[:80].ljust(80)


def header_bytes(cards) -> bytes:
    """Header bytes of ``cards`` ((key, value, comment) tuples), END card and blank padding."""
    text = "".join(format_card(*c) for c in cards) + "END".ljust(80)
    return text.ljust(padded(len(text))).encode("ascii")


def checksum32(buf, sum32: int = 0) -> int:
    """32-bit ones' complement sum of ``buf`` as big-endian words (the FITS checksum sum)."""
    import numpy as np

    buf = bytes(buf)
    if extra := len(buf) % 4:
        buf += b"\0" * (4 - extra)
    total = int(np.frombuffer(buf, dtype=">u4").sum(dtype=np.uint64)) + sum32
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


_EXCLUDED = frozenset(b":;<=>?@[\\]^_`")


def encode_checksum(sum32: int) -> str:
    """ASCII encoding of the complement of ``sum32``, as written in the CHECKSUM card."""
    value = ~sum32 & 0xFFFFFFFF
    asc = [0] * 16
    for i in range(4):
        byte = (value >> (24 - 8 * i)) & 0xFF
        quotient, remainder = byte // 4 + 0x30, byte % 4
        ch = [quotient + remainder, quotient, quotient, quotient]
        changed = True
        while changed:  # step around the punctuation characters the encoding avoids
            changed = False
            for j in (0, 2):
                if ch[j] in _EXCLUDED or ch[j + 1] in _EXCLUDED:
                    ch[j] += 1
                    ch[j + 1] -= 1
                    changed = True
        for j in range(4):
            asc[4 * j + i] = ch[j]
    return bytes(asc[(i + 15) % 16] for i in range(16)).decode("ascii")


@dataclass
class HDU:
    """One header-data unit to write.

    ``data`` is written at the start of the data unit; the rest of ``data_size`` (and the block
    padding) is left as a hole that reads as zeros.
    """

    cards: list
    data: bytes = b""
    data_size: int = 0
    checksum: bool = True
    bad_checksum: bool = False

    def render(self) -> tuple[bytes, bytes, int]:
        """Return (header bytes, data bytes, bytes of zeros that follow the data)."""
        size = max(self.data_size, len(self.data))
        cards = list(self.cards)
        if not self.checksum:
            head = header_bytes(cards)
            return head, self.data, padded(size) - len(self.data)
        datasum = checksum32(self.data)  # zeros add nothing, so the holes need no reading
        cards += [("CHECKSUM", "0" * 16, "HDU checksum"), ("DATASUM", str(datasum), "data unit checksum")]
        head = bytearray(header_bytes(cards))
        total = checksum32(head, datasum)
        if self.bad_checksum:  # as if a keyword had been edited after the checksum was made
            total = (total + 0x01010101) & 0xFFFFFFFF
        pos = head.find(b"CHECKSUM= '") + len("CHECKSUM= '")
        head[pos:pos + 16] = encode_checksum(total).encode("ascii")
        return bytes(head), self.data, padded(size) - len(self.data)


def write_fits(path: Path, hdus: list[HDU], compress: bool = False) -> None:
    """Write ``hdus`` to ``path``: holes where data is declared but not given, or a gzip stream."""
    if compress:
        _write_gzip(path, hdus)
        return
    with open(path, "wb") as fh:
        for hdu in hdus:
            head, data, zeros = hdu.render()
            fh.write(head)
            fh.write(data)
            if zeros:
                fh.seek(zeros, os.SEEK_CUR)
        fh.truncate()  # extends the file over a trailing hole


@lru_cache(maxsize=64)
def _zero_member(n: int) -> bytes:
    """A gzip member of ``n`` zero bytes (cached: sparse files reuse a few sizes)."""
    return gzip.compress(bytes(n), compresslevel=6, mtime=0)


def _zero_members(n: int):
    """Gzip members that together hold ``n`` zero bytes: whole MiB, then powers of two."""
    whole, rest = divmod(n, _ZERO_CHUNK)
    for _ in range(whole):
        yield _zero_member(_ZERO_CHUNK)
    for bit in range(_ZERO_CHUNK.bit_length() - 1, -1, -1):
        if rest & (1 << bit):
            yield _zero_member(1 << bit)


def _write_gzip(path: Path, hdus: list[HDU]) -> None:
    # A gzip file may be several members in a row; readers concatenate them. Long runs of zeros
    # become copies of cached members, so a large declared data unit costs little CPU.
    with open(path, "wb") as fh:
        pending = bytearray()
        for hdu in hdus:
            head, data, zeros = hdu.render()
            pending += head + data
            if zeros <= 65536:
                pending += bytes(zeros)
                continue
            fh.write(gzip.compress(bytes(pending), compresslevel=6, mtime=0))
            pending.clear()
            for member in _zero_members(zeros):
                fh.write(member)
        if pending:
            fh.write(gzip.compress(bytes(pending), compresslevel=6, mtime=0))


def tile_compressed_image(cards, image, width: int, height: int, tile_rows: int,
                          bad_checksum: bool = False) -> HDU:
    """A GZIP_1 tile-compressed float32 image HDU (the FITS tiled-image convention).

    ``image`` (float32, ``tile_rows`` x ``width`` or fewer rows) fills the first tile; every
    other tile is zeros and points at one shared compressed zero tile in the heap, so a huge
    declared image stays a small file.
    """
    import numpy as np

    ntiles = -(-height // tile_rows)
    first = np.zeros((min(tile_rows, height), width), dtype=">f4")
    if image is not None:
        first[: image.shape[0], : image.shape[1]] = image
    heap = bytearray()
    descriptors = np.zeros((ntiles, 2), dtype=">i4")
    tile0 = gzip.compress(first.tobytes(), compresslevel=6, mtime=0)
    descriptors[0] = (len(tile0), 0)
    heap += tile0
    if ntiles > 1:
        full = _zero_member(4 * width * tile_rows)
        last_rows = height - (ntiles - 1) * tile_rows
        descriptors[1:] = (len(full), len(heap))
        heap += full
        if last_rows != tile_rows:
            last = _zero_member(4 * width * last_rows)
            descriptors[-1] = (len(last), len(heap))
            heap += last
    maxlen = int(descriptors[:, 0].max())
    table = [
        ("XTENSION", "BINTABLE", "binary table extension"),
        ("BITPIX", 8, "array data type"),
        ("NAXIS", 2, "number of array dimensions"),
        ("NAXIS1", 8, "width of table in bytes"),
        ("NAXIS2", ntiles, "number of rows in table"),
        ("PCOUNT", len(heap), "size of the heap"),
        ("GCOUNT", 1, "number of groups"),
        ("TFIELDS", 1, "number of fields in each row"),
        ("TTYPE1", "COMPRESSED_DATA", None),
        ("TFORM1", f"1PB({maxlen})", None),
        ("ZIMAGE", True, "extension contains compressed image"),
        ("ZTENSION", "IMAGE", "image extension"),
        ("ZBITPIX", -32, "data type of the original image"),
        ("ZNAXIS", 2, "dimension of the original image"),
        ("ZNAXIS1", width, "length of original image axis"),
        ("ZNAXIS2", height, "length of original image axis"),
        ("ZPCOUNT", 0, "number of parameters"),
        ("ZGCOUNT", 1, "number of groups"),
        ("ZTILE1", width, "size of tiles to be compressed"),
        ("ZTILE2", tile_rows, "size of tiles to be compressed"),
        ("ZCMPTYPE", "GZIP_1", "compression algorithm"),
        ("ZNAME1", "NOISEBIT", "floating point quantization level"),
        ("ZVAL1", 0, "0: lossless, no quantization"),
        ("EXTNAME", "COMPRESSED_IMAGE", "name of this binary table extension"),
    ]
    data = descriptors.tobytes() + bytes(heap)
    return HDU(table + list(cards), data=data, data_size=len(data), bad_checksum=bad_checksum)
