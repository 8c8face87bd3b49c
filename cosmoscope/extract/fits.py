"""FITS: every HDU's header, read block by block without reading data, and CHECKSUM/DATASUM.

``astropy.io.fits.open`` reading every header costs about 1.5 ms a file; cataloguing needs a
few dozen keywords, so this module walks the 2880-byte blocks itself: it splits cards, indexes
keywords, and parses a value only when the field mapping asks for it (strings with ``''``
escapes and OGIP ``CONTINUE``, logicals, integers, floats with ``D`` exponents, ``HIERARCH``
keywords). It seeks past data using ``BITPIX``, ``NAXISn``, ``PCOUNT`` and ``GCOUNT``. Whole-file
gzip and bzip2 compression is read through the standard library, Unix compress (``.Z``) through
uncompresspy (see :mod:`cosmoscope.extract.compressed`); tile-compressed images are
binary tables with ``ZIMAGE = T`` and are described by their ``Z`` keywords.

CHECKSUM/DATASUM are verified where present (32-bit ones' complement sums, as the FITS
checksum convention defines them) for files up to ``COSMOSCOPE_CHECKSUM_MAX_BYTES`` (default
256 MiB of data); a blank ``DATASUM = ''``, which makes ``fits.open(checksum=True)`` fail on
real Chandra and XMM files, counts as "not recorded", not as a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from cosmoscope.extract.base import ExtractionError, Metadata, Source
from cosmoscope.extract.compressed import BZIP2_MAGIC, STREAM_ERRORS, compression_of, head_of, open_stream

BLOCK = 2880
CARD = 80
#: Default longest header read (72,000 cards, 5,760,000 bytes); ``COSMOSCOPE_MAX_HEADER_BYTES``
#: raises it. Past it a header's blocks are only searched for END, to say which case it is.
MAX_HEADER_BLOCKS = 2000
#: How far past the limit a header is searched for its END card, as a multiple of the limit.
END_LOOKAHEAD = 8
MAX_HDUS = 1000


def _checksum_budget() -> int:
    try:
        return int(os.environ.get("COSMOSCOPE_CHECKSUM_MAX_BYTES", 256 * 1024 * 1024))
    except ValueError:
        return 256 * 1024 * 1024


def max_header_bytes() -> int:
    """Longest FITS header read (``COSMOSCOPE_MAX_HEADER_BYTES``, default 5,760,000 bytes)."""
    try:
        return max(BLOCK, int(os.environ.get("COSMOSCOPE_MAX_HEADER_BYTES", MAX_HEADER_BLOCKS * BLOCK)))
    except ValueError:
        return MAX_HEADER_BLOCKS * BLOCK


def is_fits_head(head: bytes, path: str | os.PathLike | None = None) -> bool:
    """True if ``head`` starts like a FITS file, plain or compressed (gzip, bzip2, Unix compress).

    A bzip2 file decompresses only once its whole first block is read: give ``path`` for it.
    """
    if head.startswith(b"SIMPLE  ="):
        return True
    if compression_of(head) is None or (head.startswith(BZIP2_MAGIC) and path is None):
        return False
    inner = head_of(path, head, 9)
    return inner is not None and inner.startswith(b"SIMPLE  =")


# --------------------------------------------------------------------------------------------
# Card parsing


def parse_value(text: str) -> Any:
    """Value of a card from column 11 on (after ``"= "``), ignoring the comment.

    >>> parse_value(" 'O''Hara '  / name")
    "O'Hara"
    >>> parse_value("   1.5D3 / exposure"), parse_value("T"), parse_value("  42")
    (1500.0, True, 42)
    """
    s = text.lstrip()
    if s.startswith("'"):
        parts, i = [], 1
        while True:
            j = s.find("'", i)
            if j < 0:  # unterminated string: keep what is there
                parts.append(s[i:])
                break
            if s[j + 1:j + 2] == "'":
                parts.append(s[i:j + 1])
                i = j + 2
                continue
            parts.append(s[i:j])
            break
        return "".join(parts).rstrip()
    tok = s.split("/", 1)[0].strip()
    if not tok:
        return None
    if tok == "T":
        return True
    if tok == "F":
        return False
    try:
        return int(tok)
    except ValueError:
        pass
    try:
        return float(tok.replace("D", "E").replace("d", "e"))
    except ValueError:
        return tok


class Header:
    """Keyword index over the cards of one header; values are parsed on first access."""

    __slots__ = ("cards", "index", "_cache")

    def __init__(self, cards: list[str], text: str | None = None):
        self.cards = cards
        self._cache: dict[str, Any] = {}
        # First occurrence wins: build from the end so earlier cards overwrite later ones.
        pairs = [(c[:8].rstrip().upper(), i) for i, c in enumerate(cards) if c[8:10] == "= "]
        pairs.reverse()
        self.index: dict[str, int] = dict(pairs)
        self.index.pop("", None)
        if text is None or "HIERARCH " in text:
            for i in range(len(cards) - 1, -1, -1):
                card = cards[i]
                if card.startswith("HIERARCH "):
                    eq = card.find("=", 9)
                    key = card[9:eq].strip().upper() if eq > 0 else ""
                    if key and (key not in self.index or self.index[key] > i):
                        self.index[key] = i

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def keys(self):
        return self.index.keys()

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._cache:
            return self._cache[key]
        i = self.index.get(key)
        if i is None:
            return default
        card = self.cards[i]
        if card.startswith("HIERARCH ") and card[8:10] != "= ":
            value = parse_value(card[card.find("=", 9) + 1:])
        else:
            value = parse_value(card[10:])
        # OGIP long strings: 'text&' followed by CONTINUE cards.
        j = i + 1
        while isinstance(value, str) and value.endswith("&") and j < len(self.cards) \
                and self.cards[j].startswith("CONTINUE"):
            more = parse_value(self.cards[j][8:])
            value = value[:-1] + (more if isinstance(more, str) else "")
            j += 1
        self._cache[key] = value
        return value

    def __getitem__(self, key: str) -> Any:
        if key not in self.index:
            raise KeyError(key)
        return self.get(key)

    def int(self, key: str, default: int | None = None) -> int | None:
        i = self.index.get(key)
        if i is None:
            return default
        try:  # fixed-format integers (BITPIX, NAXISn ...) need no general parsing
            return int(self.cards[i][10:].split("/", 1)[0])
        except ValueError:
            pass
        v = self.get(key)
        if isinstance(v, bool) or v is None:
            return default
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v if isinstance(v, int) else default


# --------------------------------------------------------------------------------------------
# Checksums


_M32 = 0xFFFFFFFF
_CHUNK = 64 << 20


def _sum32(data: bytes | memoryview) -> int:
    """32-bit ones' complement sum of big-endian words, reduced modulo 2**32 - 1.

    Compare sums modulo 2**32 - 1: the ones' complement zero 0xFFFFFFFF and 0 are the same
    number there. The length must be a multiple of 4 (FITS blocks are).
    """
    import numpy as np

    n = len(data)
    if not n:
        return 0
    s = 0
    for k in range(0, n, _CHUNK):  # uint64 accumulators cannot overflow within a chunk
        s += int(np.frombuffer(data, dtype=">u4", count=min(_CHUNK, n - k) // 4, offset=k).sum(dtype=np.uint64))
    return s % _M32


# --------------------------------------------------------------------------------------------
# The walk


class _Stream:
    """read/skip over a plain or compressed file, counting bytes."""

    def __init__(self, fh, seekable: bool, raw=None):
        self.fh, self.seekable, self.pos, self.raw = fh, seekable, 0, raw
        self.end = os.fstat(fh.fileno()).st_size if seekable else None

    def close(self) -> None:
        self.fh.close()
        if self.raw is not None:
            self.raw.close()

    def read(self, n: int) -> bytes:
        b = self.fh.read(n)
        self.pos += len(b)
        return b

    def skip(self, n: int) -> int:
        """Skip ``n`` bytes; return how many could be skipped before the end of the file."""
        if self.seekable:
            target = min(self.pos + n, self.end)
            self.fh.seek(target)
            done = target - self.pos
            self.pos = target
            return done
        done = 0
        while done < n:
            b = self.fh.read(min(1 << 20, n - done))
            if not b:
                break
            done += len(b)
        self.pos += done
        return done


def _data_size(h: Header, primary: bool) -> int:
    naxis = h.int("NAXIS", 0) or 0
    if naxis <= 0:
        return 0
    bitpix = h.int("BITPIX")
    dims = [h.int(f"NAXIS{i}", 0) or 0 for i in range(1, naxis + 1)]
    if primary and dims[0] == 0 and h.get("GROUPS") is True:
        dims = dims[1:]  # random groups
    n = 1
    for d in dims:
        n *= max(d, 0)
    pcount = h.int("PCOUNT", 0) or 0
    gcount = h.int("GCOUNT", 1) or 1
    return abs(bitpix or 8) // 8 * gcount * (pcount + n)


def _hdu_label(i: int, h: Header) -> str:
    name = h.get("EXTNAME")
    if isinstance(name, str) and name.strip():
        return f"HDU {i} ({name.strip()})"
    return f"HDU {i}"


def walk(stream: _Stream, *, verify: bool, budget: int) -> tuple[list[Header], dict, list[str]]:
    """Read every header; return headers, checksum results and problems found on the way."""
    headers: list[Header] = []
    problems: list[str] = []
    check = {"present": False, "verified": True, "bad_checksum": [], "bad_datasum": [], "blank_datasum": []}
    data_read = 0
    while len(headers) < MAX_HDUS:
        i = len(headers)
        first = stream.read(BLOCK)
        if not first:
            break
        if i == 0 and not first.startswith(b"SIMPLE  ="):
            raise ExtractionError("not a FITS file: it does not start with a SIMPLE card")
        if i > 0 and first.startswith(b"XTENSION=") and len(first) < BLOCK:
            raise ExtractionError(f"truncated FITS file: the file ends inside the header of HDU {i}")
        if i > 0 and not first.startswith(b"XTENSION="):
            if first.strip(b"\x00 "):
                problems.append(f"{len(first)}+ bytes after HDU {i - 1} are not a FITS extension")
            break
        if len(first) < BLOCK:
            raise ExtractionError(
                f"truncated FITS file: the file ends inside the first header block ({stream.pos} bytes)")
        blocks = [first]
        text = first.decode("latin-1")
        end = _find_end(text)
        limit_blocks = max_header_bytes() // BLOCK
        while end < 0:
            if len(blocks) >= limit_blocks:
                raise ExtractionError(_oversized_header(stream, i, blocks))
            b = stream.read(BLOCK)
            if len(b) < BLOCK:
                raise ExtractionError(f"truncated FITS file: header of HDU {i} has no END card")
            blocks.append(b)
            end = _find_end(b.decode("latin-1"))
        if len(blocks) > 1:
            raw = b"".join(blocks)
            text = raw.decode("latin-1")
        else:
            raw = first
        stop = (len(blocks) - 1) * BLOCK + end
        cards = [text[k:k + CARD] for k in range(0, stop, CARD)]
        h = Header(cards, text)
        if h.int("BITPIX") not in (8, 16, 32, 64, -32, -64) or h.int("NAXIS") is None:
            raise ExtractionError(f"damaged FITS file: header of HDU {i} has no valid BITPIX or NAXIS")
        size = _data_size(h, i == 0)
        padded = -(-size // BLOCK) * BLOCK
        has_sum = "CHECKSUM" in h or "DATASUM" in h
        if has_sum and verify and data_read + padded <= budget:
            check["present"] = True
            data = stream.read(padded)
            data_read += padded
            if len(data) < padded:
                raise ExtractionError(
                    f"truncated FITS file: {_hdu_label(i, h)} declares {padded:,} data bytes but the file "
                    f"ends {padded - len(data):,} bytes early")
            _verify(i, h, raw, data, check)
        else:
            if has_sum:
                check["present"] = True
                check["verified"] = False
            got = stream.skip(padded)
            if got < size:
                raise ExtractionError(
                    f"truncated FITS file: {_hdu_label(i, h)} declares {size:,} data bytes but the file "
                    f"ends {size - got:,} bytes early")
        headers.append(h)
    else:
        problems.append(f"only the first {MAX_HDUS} HDUs were read")
    return headers, check, problems


def _oversized_header(stream: _Stream, i: int, blocks: list[bytes]) -> str:
    """Why a header that reached the limit could not be read: too large (its END card is further
    on), damaged (not header text, or no END card within :data:`END_LOOKAHEAD` times the limit) or
    cut short (the file ends first). Looks ahead block by block, keeping nothing."""
    limit = len(blocks) * BLOCK
    raise_it = "raise the limit with COSMOSCOPE_MAX_HEADER_BYTES"
    sample = b"".join(blocks[:4] + blocks[-4:])
    if sum(32 <= c < 127 for c in sample) < 0.95 * len(sample):
        return (f"damaged FITS file: header of HDU {i} is not FITS header text and has no END card within "
                f"{limit:,} bytes")
    size = limit
    while size < END_LOOKAHEAD * limit:
        b = stream.read(BLOCK)
        if len(b) < BLOCK:
            return f"truncated FITS file: header of HDU {i} has no END card (the file ends after {size:,} header bytes)"
        size += BLOCK
        if _find_end(b.decode("latin-1")) >= 0:
            want = -(-size // 1_000_000) * 1_000_000
            return (f"FITS header of HDU {i} is {size:,} bytes, larger than the {limit:,} cosmoscope reads; to "
                    f"catalog this file {raise_it}, e.g. COSMOSCOPE_MAX_HEADER_BYTES={want}")
    return (f"damaged FITS file: header of HDU {i} has no END card within {size:,} bytes (headers are read up to "
            f"{limit:,} bytes; if this one is meant to be larger, {raise_it})")


def _find_end(block_text: str) -> int:
    """Offset of the END card in a header block, or -1."""
    k = block_text.find("END     ")
    while k >= 0 and k % CARD:
        k = block_text.find("END     ", k + 1)
    return k


def _verify(i: int, h: Header, raw: bytes, data: bytes, check: dict) -> None:
    datasum = _sum32(data)
    stored = h.get("DATASUM")
    if "DATASUM" in h:
        if stored is None or (isinstance(stored, str) and not stored.strip()):
            check["blank_datasum"].append(i)
        else:
            try:
                ok = int(str(stored).strip()) % _M32 == datasum
            except ValueError:
                ok = False
            if not ok:
                check["bad_datasum"].append(_hdu_label(i, h))
    checksum = h.get("CHECKSUM")
    if isinstance(checksum, str) and checksum.strip():
        if (_sum32(raw) + datasum) % _M32 != 0:  # the whole HDU must sum to (negative) zero
            check["bad_checksum"].append(_hdu_label(i, h))


def _open(path: Path) -> tuple[_Stream, str | None]:
    reader, raw, compression = open_stream(path)
    if compression is None:
        return _Stream(raw, seekable=True), None
    return _Stream(reader, seekable=False, raw=raw), compression


# --------------------------------------------------------------------------------------------
# Product hints

_EVENT_NAMES = {"EVENTS", "EVENT", "EVT"}
_SPECTRUM_NAMES = {"SPECTRUM", "SPECTRA", "PHA"}
_TIMESERIES_NAMES = {"LIGHTCURVE", "RATE", "LC", "TIMESERIES"}
_RESPONSE_NAMES = {"SPECRESP", "MATRIX", "SPECRESP MATRIX", "EBOUNDS"}


def _describe(i: int, h: Header) -> dict:
    xt = h.get("XTENSION")
    xt = xt.strip().upper() if isinstance(xt, str) else ("IMAGE" if i == 0 else None)
    name = h.get("EXTNAME")
    name = name.strip() if isinstance(name, str) and name.strip() else ("PRIMARY" if i == 0 else f"HDU{i}")
    d: dict[str, Any] = {"index": i, "name": name, "type": xt}
    if xt == "BINTABLE" and h.get("ZIMAGE") is True:
        d["type"] = "COMPRESSED_IMAGE"
        d["shape"] = [h.int(f"ZNAXIS{k}", 0) for k in range(1, (h.int("ZNAXIS", 0) or 0) + 1)]
    elif xt in ("IMAGE",):
        d["shape"] = [h.int(f"NAXIS{k}", 0) for k in range(1, (h.int("NAXIS", 0) or 0) + 1)]
    else:
        d["rows"] = h.int("NAXIS2", 0)
    return d


def _product_hint(hdus: list[dict], headers: list[Header]) -> tuple[str, str] | None:
    """ObsCore dataproduct_type from HDU names, HDUCLAS1 and image shapes."""
    found: dict[str, str] = {}
    for d, h in zip(hdus, headers):
        cls = h.get("HDUCLAS1")
        cls = cls.strip().upper() if isinstance(cls, str) else ""
        name = d["name"].upper()
        i = d["index"]
        for kind, names in (("event", _EVENT_NAMES), ("spectrum", _SPECTRUM_NAMES),
                            ("timeseries", _TIMESERIES_NAMES)):
            if kind in found:
                continue
            if cls in names:
                found[kind] = f"FITS[{i}]:HDUCLAS1"
            elif name in names:
                found[kind] = f"FITS[{i}]:EXTNAME"
        if d["type"] in ("IMAGE", "COMPRESSED_IMAGE") and "image" not in found:
            shape = [n for n in d.get("shape", []) if n and n > 1]
            if len(shape) >= 3:
                found.setdefault("cube", f"FITS[{i}]:NAXIS")
            elif len(shape) == 2:
                found["image"] = f"FITS[{i}]:NAXIS" if d["type"] == "IMAGE" else f"FITS[{i}]:ZNAXIS"
    for kind in ("event", "spectrum", "timeseries", "cube", "image"):
        if kind in found:
            return kind, found[kind]
    return None


def _footprint(hdus: list[dict], headers: list[Header]):
    from cosmoscope.extract.footprint import footprint_of  # numpy and astropy.wcs: only when needed

    return footprint_of(hdus, headers)


class FitsExtractor:
    """Headers of every HDU, HDU structure and checksum state of FITS files."""

    name: ClassVar[str] = "fits"
    priority: ClassVar[int] = 10
    suffixes: ClassVar[tuple[str, ...]] = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz",
                                           ".ftz", ".fits.bz2", ".fits.z", ".fz", ".pha", ".pi", ".arf", ".rmf",
                                           ".rsp", ".img", ".evt", ".lc", ".ds")

    def can_read(self, path: Path, head: bytes) -> bool:
        return is_fits_head(head, path)

    def extract(self, path: Path) -> Metadata:
        try:
            stream, compression = _open(path)
        except OSError as exc:
            raise ExtractionError(f"cannot open the file: {exc.strerror or exc}") from None
        try:
            try:
                headers, check, problems = walk(stream, verify=True, budget=_checksum_budget())
            finally:
                stream.close()
        except STREAM_ERRORS as exc:
            if not compression:
                raise
            raise ExtractionError(f"truncated or damaged {compression}-compressed FITS file: {exc}") from None
        except OSError as exc:
            if compression:
                raise ExtractionError(f"damaged {compression}-compressed FITS file: {exc}") from None
            raise
        if not headers:
            raise ExtractionError("not a FITS file: no header could be read")
        meta = Metadata(format="fits")
        for i, h in enumerate(headers):
            meta.sources.append(Source("FITS", f"[{i}]:", h, upper=True, kind="hdu", info={"index": i}))
        hdus = [_describe(i, h) for i, h in enumerate(headers)]
        meta.extra["hdus"] = [f"{d['name']}:{d['type']}" for d in hdus[:50]]
        if compression:
            meta.extra["compression"] = compression
        if any(d["type"] == "COMPRESSED_IMAGE" for d in hdus):
            meta.extra["tile_compressed"] = True
        if problems:
            meta.extra["structure_problems"] = problems
            meta.flags.append("fits_structure")
        meta.hints["dataproduct_type"] = lambda: _product_hint(hdus, headers)
        meta.hints["footprint"] = lambda: _footprint(hdus, headers)
        meta.checks.update(_summarise(check))
        return meta


def _summarise(check: dict) -> dict:
    if not check["present"]:
        return {"checksum": "absent"}
    problems = [f"{x}: CHECKSUM does not match" for x in check["bad_checksum"]]
    problems += [f"{x}: DATASUM does not match" for x in check["bad_datasum"]]
    out: dict[str, Any] = {}
    if problems:
        out["checksum"] = "invalid"
        out["checksum_problems"] = problems
        out["checksum_flags"] = (["checksum_mismatch"] if check["bad_checksum"] else []) + (
            ["datasum_mismatch"] if check["bad_datasum"] else [])
    elif not check["verified"]:
        out["checksum"] = "not verified"
        out["checksum_note"] = ("data larger than COSMOSCOPE_CHECKSUM_MAX_BYTES "
                                f"({_checksum_budget():,} bytes); checksums were not computed")
    else:
        out["checksum"] = "valid"
    if check["blank_datasum"]:
        out["datasum_blank_hdus"] = check["blank_datasum"]
    return out
