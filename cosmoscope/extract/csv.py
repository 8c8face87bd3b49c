"""CSV and ECSV tables: ``#`` comment headers, ECSV metadata, and metadata kept in columns.

Only the head of the file (256 KiB) and its last line are read, so a large table costs the
same as a small one (a compressed table, ``.csv.gz``, ``.csv.bz2`` or ``.csv.Z``, is decompressed
once through to find its last line). Comment lines ``# key: value`` (or ``# key = value``) before the header
row become a source labelled ``CSV:#key``; ECSV files are read with astropy (header plus the
first rows) and their ``meta`` becomes ``ECSV:meta:key``; the delimiter is whichever of
``,`` ``|`` tab ``;`` splits the header and first rows consistently (the JWST association
pools in the corpus use ``|``); the first data row becomes a source labelled
``CSV:column:NAME`` so a ``INSTRUME`` or ``DATE`` column can supply a field, and a time column
gives the start (first row) and end (last row).
"""

from __future__ import annotations

import csv as _csv
import os
import re
from pathlib import Path
from typing import Any, ClassVar

from cosmoscope.extract.base import ExtractionError, Metadata, Source, clean
from cosmoscope.extract.compressed import (STREAM_ERRORS, compression_of, head_of, open_stream,
                                           without_compression_suffix)

HEAD_BYTES = 256 * 1024
TAIL_BYTES = 64 * 1024
DELIMITERS = (",", "|", "\t", ";")
CSV_SUFFIXES = (".csv", ".ecsv", ".tsv", ".psv")
#: Column names whose first/last rows give the observation start/end.
TIME_COLUMNS = ("time", "timestamp", "datetime", "date_time", "time_utc", "utc", "epoch",
                "obs_time", "date-obs", "date_obs", "t")
_COMMENT_PAIR = re.compile(r"^#+\s*([A-Za-z_][\w .\-]*?)\s*[:=]\s*(.*?)\s*$")


def looks_like_text(head: bytes) -> bool:
    """True if ``head`` is text (no NUL bytes, UTF-8 or mostly printable)."""
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the read
            return True
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable >= 0.97 * len(head)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 3:
            return raw[:exc.start].decode("utf-8")
        return raw.decode("latin-1")


def choose_delimiter(lines: list[str]) -> str:
    """The delimiter that splits ``lines`` into the same number of fields, most fields first.

    >>> choose_delimiter(["A|B|C", "1|2|3"])
    '|'
    """
    best, best_n = ",", 0
    for d in DELIMITERS:
        counts = [len(next(_csv.reader([ln], delimiter=d))) for ln in lines if ln.strip()]
        if not counts or counts[0] < 2:
            continue
        if all(c == counts[0] for c in counts) and counts[0] > best_n:
            best, best_n = d, counts[0]
    if best_n == 0:  # nothing consistent: take the one that splits the header most
        scored = [(len(lines[0].split(d)), d) for d in DELIMITERS] if lines else []
        if scored and max(scored)[0] > 1:
            best = max(scored)[1]
    return best


def _tail_line(path: Path) -> str | None:
    """The last data line: read from the end of a plain file, or at the end of a full pass over a
    compressed one (which cannot seek)."""
    reader, raw, compression = open_stream(path)
    try:
        if compression is None:
            raw.seek(max(0, os.fstat(raw.fileno()).st_size - TAIL_BYTES))
            data = raw.read()
        else:
            data = b""
            while chunk := reader.read(1 << 20):
                data = (data + chunk)[-TAIL_BYTES:]
    finally:
        reader.close()
        raw.close()
    chunk = _decode(data)
    lines = [ln for ln in chunk.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return lines[-1] if lines else None


class CsvExtractor:
    """Comment headers, ECSV metadata and metadata columns of delimited text tables."""

    name: ClassVar[str] = "csv"
    priority: ClassVar[int] = 5
    suffixes: ClassVar[tuple[str, ...]] = CSV_SUFFIXES

    def can_read(self, path: Path, head: bytes) -> bool:
        if compression_of(head) is not None:  # table.csv.gz, table.csv.bz2, table.csv.Z
            if not without_compression_suffix(os.fspath(path)).lower().endswith(CSV_SUFFIXES):
                return False
            head = head_of(path, head, 4096) or b""
        elif not (os.fspath(path).lower().endswith(CSV_SUFFIXES) or head.startswith(b"# %ECSV")):
            return False
        return looks_like_text(head)

    def extract(self, path: Path) -> Metadata:
        reader, fh, compression = open_stream(path)
        try:
            raw = reader.read(HEAD_BYTES + 1)
        except STREAM_ERRORS as exc:
            raise ExtractionError(f"damaged {compression}-compressed table: {exc}") from None
        finally:
            reader.close()
            fh.close()
        more = len(raw) > HEAD_BYTES  # the head does not hold the whole table
        raw = raw[:HEAD_BYTES]
        if b"\x00" in raw:
            raise ExtractionError("not a text table: the file contains binary (NUL) bytes")
        text = _decode(raw)
        lines = text.splitlines()
        if more and lines:
            lines = lines[:-1]  # the last line may be cut by the read
        meta = Metadata(format="csv")
        if compression:
            meta.extra["compression"] = compression
        if lines and lines[0].startswith("# %ECSV"):
            return self._ecsv(path, lines, more, meta)
        comments, body_start = {}, 0
        for i, ln in enumerate(lines):
            if ln.startswith("#"):
                m = _COMMENT_PAIR.match(ln)
                if m:
                    comments.setdefault(m.group(1).strip(), m.group(2))
                body_start = i + 1
            elif ln.strip():
                break
            else:
                body_start = i + 1
        if comments:
            meta.sources.append(Source("CSV:", "#", comments, kind="comments"))
        body = [ln for ln in lines[body_start:] if ln.strip() and not ln.startswith("#")]
        if not body:
            if not comments:
                raise ExtractionError("empty table: the file has no header row and no metadata comments")
            return meta
        delim = choose_delimiter(body[:6])
        rows = list(_csv.reader(body[:3], delimiter=delim))
        columns = [c.strip() for c in rows[0]]
        meta.extra["columns"] = columns[:50]
        meta.extra["n_columns"] = len(columns)
        meta.extra["delimiter"] = delim
        if not more:
            meta.extra["rows"] = len(body) - 1
        if len(rows) > 1:
            first = dict(zip(columns, (v.strip() for v in rows[1])))
            last_line = _tail_line(path) if more else body[-1]
            got = next(_csv.reader([last_line or ""], delimiter=delim), [])
            last = dict(zip(columns, (v.strip() for v in got))) if len(got) == len(columns) else None
            if last is None and len(got) < len(columns):
                _truncated(meta, len(got), len(columns))
            self._columns(meta, first, last)
        return meta

    def _columns(self, meta: Metadata, first: dict[str, Any], last: dict[str, Any] | None) -> None:
        from cosmoscope.extract.timeparse import TimeParseError, parse_any

        meta.sources.append(Source("CSV:", "column:", first, kind="column"))
        lower = {k.lower(): k for k in first}
        for name in TIME_COLUMNS:
            col = lower.get(name)
            if col is None or clean(first.get(col)) is None:
                continue
            try:
                start = parse_any(first[col])
            except TimeParseError:
                continue
            meta.fields["observation_timestamp"] = (start, f"CSV:column:{col}[first]")
            if last and clean(last.get(col)) is not None:
                try:
                    meta.fields["observation_end"] = (parse_any(last[col]), f"CSV:column:{col}[last]")
                except TimeParseError:
                    pass
            meta.hints["dataproduct_type"] = ("timeseries", f"CSV:column:{col}")
            return
        col = lower.get("date")  # e.g. exoplanets.org DATE (year of the reference)
        if col is not None and clean(first.get(col)) is not None:
            try:
                meta.fields["observation_timestamp"] = (parse_any(first[col], allow_year=True),
                                                        f"CSV:column:{col}[first]")
            except TimeParseError:
                pass

    def _ecsv(self, path: Path, lines: list[str], more: bool, meta: Metadata) -> Metadata:
        from astropy.table import Table

        n_header = next((i for i, ln in enumerate(lines) if not ln.startswith("#")), len(lines))
        sample = "\n".join(lines[:n_header + 6]) + "\n"
        try:
            table = Table.read(sample.splitlines(), format="ascii.ecsv")
        except Exception as exc:  # noqa: BLE001 - astropy raises several types for bad headers
            raise ExtractionError(f"damaged ECSV file: astropy cannot read its header ({exc})") from None
        meta.format = "csv"
        meta.extra["ecsv"] = True
        tmeta = {str(k): v for k, v in dict(table.meta).items() if not isinstance(v, (dict, list))}
        if tmeta:
            meta.sources.append(Source("ECSV:", "meta:", tmeta, kind="ecsv"))
        meta.extra["columns"] = list(table.colnames)[:50]
        meta.extra["n_columns"] = len(table.colnames)
        if len(table):
            first = {c: _scalar(table[c][0]) for c in table.colnames}
            last = None
            body = [ln for ln in lines[n_header:] if ln.strip()]
            last_line = _tail_line(path) if more else body[-1]
            if last_line and len(body) > 1:
                delim = " " if "delimiter: ','" not in "\n".join(lines[:n_header]) else ","
                got = next(_csv.reader([last_line], delimiter=delim, skipinitialspace=True), [])
                if len(got) == len(table.colnames):
                    last = dict(zip(table.colnames, got))
                elif len(got) < len(table.colnames):
                    _truncated(meta, len(got), len(table.colnames))
            self._columns(meta, first, last)
        return meta


def _truncated(meta: Metadata, got: int, want: int) -> None:
    """The last row is cut short: the file was most likely truncated in transfer."""
    meta.checks["truncated"] = f"the last row has {got} of {want} fields; the file looks truncated"


def _scalar(v: Any) -> Any:
    iso = getattr(v, "isot", None)  # astropy Time columns
    if iso is not None:
        return str(iso)
    return clean(v)
