"""The checks validation runs on one row and its file: what can be wrong, in words.

Each problem is a dict ``{"kind": ..., "detail": ...}``; :data:`KINDS` names every kind. The
row checks read only stored values; :func:`inspect_file` looks at the file (a ``stat``, and with
``checksums`` a full read: the content hash and the FITS CHECKSUM/DATASUM).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field

from cosmoscope import schema as S
from cosmoscope.times import EPOCH, epoch_us

#: Problem kinds, with the words the summary uses.
KINDS = {
    "missing": "file missing",
    "unreadable": "file cannot be read",
    "outside": "a symbolic link leading outside the cataloged directories (not read)",
    "changed": "size or modification time changed since cataloged",
    "content": "content differs from its stored hash (same size and time)",
    "checksum": "FITS CHECKSUM/DATASUM mismatch",
    "extraction_error": "metadata could not be extracted",
    "required_missing": "required fields missing",
    "impossible": "impossible values",
    "sky_index": "sky index out of step with the position or footprint",
}
#: Kinds a fresh extraction can cure (the file changed, or the extractor or profile did).
REEXTRACT_KINDS = frozenset({"changed", "extraction_error", "required_missing", "impossible"})
#: Content hash written by ``validate --checksums`` ('algo:hex').
HASH_ALGORITHM = "blake2b"
_READ = 1 << 20


@dataclass
class FileFacts:
    """What :func:`inspect_file` saw."""

    exists: bool = True
    error: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    content_hash: str | None = None
    fits_problems: list[str] | None = None  # None: not verified now
    read_error: str | None = None
    #: why the file may not be read (its real path leaves the catalog's directories)
    outside: str | None = None

    @property
    def mtime_us(self) -> int | None:
        return None if self.mtime_ns is None else self.mtime_ns // 1000


def stored_mtime_us(row: dict) -> int | None:
    t = row.get("file_mtime")
    if t is None:
        return None
    return epoch_us(t)


def stat_matches(row: dict, facts: FileFacts) -> bool:
    """Whether the file has the size and modification time the row recorded."""
    return facts.exists and facts.error is None and row.get("file_size") == facts.size and \
        stored_mtime_us(row) == facts.mtime_us


def inspect_file(row: dict, *, checksums: bool = False, outside=None) -> FileFacts:
    """Stat the row's file; with ``checksums`` (and the file as cataloged), also hash it and
    verify FITS CHECKSUM/DATASUM keywords. ``outside(path)`` says why a file may not be read
    (a link out of the cataloged directories): it is then only stat'ed. Never raises."""
    from cosmoscope.records import fs_path

    path = fs_path(row["file_path"], row["dataset_id"])
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return FileFacts(exists=False)
    except NotADirectoryError:
        return FileFacts(exists=False)
    except OSError as exc:
        return FileFacts(error=exc.strerror or str(exc))
    facts = FileFacts(size=st.st_size, mtime_ns=st.st_mtime_ns)
    if outside is not None and (why := outside(path)):
        facts.outside = why
        return facts
    if checksums and stat_matches(row, facts):
        stored = row.get("checksum")
        algo = stored.split(":", 1)[0] if stored and ":" in stored else HASH_ALGORITHM
        try:
            facts.content_hash = content_hash(path, algo)
            if row.get("file_format") == "fits" and row.get("extraction_status") != S.ExtractionStatus.ERROR.value:
                facts.fits_problems = verify_fits(path)
        except OSError as exc:
            facts.error = exc.strerror or str(exc)
        except ValueError as exc:  # an algorithm this Python does not have
            facts.read_error = str(exc)
    return facts


def content_hash(path: str, algo: str = HASH_ALGORITHM) -> str:
    """``'algo:hex'`` digest of the whole file."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


def verify_fits(path: str) -> list[str]:
    """CHECKSUM/DATASUM problems of a FITS file, reading all its data (empty list: all agree,
    or none recorded)."""
    from cosmoscope.extract.base import ExtractionError
    from cosmoscope.extract.fits import _open, walk

    stream, _ = _open(path)
    try:
        _, check, _ = walk(stream, verify=True, budget=1 << 62)
    except ExtractionError as exc:  # it was read when cataloged, with this size and time
        return [f"it can no longer be read as FITS ({exc})"]
    except (EOFError, OSError) as exc:
        return [f"it can no longer be read as FITS (damaged compressed data: {exc})"]
    finally:
        stream.close()
    return [f"{x}: CHECKSUM does not match" for x in check["bad_checksum"]] + \
        [f"{x}: DATASUM does not match" for x in check["bad_datasum"]]


def row_problems(row: dict, facts: FileFacts) -> list[dict]:
    """Every problem of one row, given what was seen of its file."""
    out: list[dict] = []

    def add(kind, detail):
        out.append({"kind": kind, "detail": detail})

    if not facts.exists:
        add("missing", "the file does not exist")
        return out + value_problems(row)
    if facts.error is not None:
        add("unreadable", facts.error)
        return out + value_problems(row)
    if facts.outside is not None:
        add("outside", facts.outside)
    stat_ok = stat_matches(row, facts)
    if not stat_ok:
        parts = []
        if row.get("file_size") != facts.size:
            parts.append(f"size {_n(row.get('file_size'))} -> {_n(facts.size)} bytes")
        if stored_mtime_us(row) != facts.mtime_us:
            now_mtime = EPOCH + dt.timedelta(microseconds=facts.mtime_us)
            parts.append(f"modified {_t(row.get('file_mtime'))} -> {_t(now_mtime)}")
        add("changed", "; ".join(parts))
    stored = row.get("checksum")
    if facts.content_hash and stored and stored.split(":", 1)[0] == facts.content_hash.split(":", 1)[0] \
            and stored != facts.content_hash:
        add("content", "the file's bytes changed without a change of size or modification time "
                       "(silent corruption, or a copy that kept the old time)")
    if facts.read_error:
        add("unreadable", facts.read_error)
    if facts.fits_problems is not None:
        if facts.fits_problems:
            add("checksum", "; ".join(facts.fits_problems))
    elif stat_ok:
        ms = _json(row.get("mission_specific"))
        if ms.get("checksum") == "invalid":
            add("checksum", "; ".join(ms.get("checksum_problems") or ["CHECKSUM or DATASUM does not match"]))
    if stat_ok and facts.content_hash is None:
        # What an earlier run found by reading the bytes, only reading them again can clear.
        seen = {p["kind"] for p in out}
        for p in _previous(row):
            if p.get("kind") in ("content", "checksum") and p["kind"] not in seen:
                detail = p.get("detail", "").removesuffix(_NOT_RECHECKED)
                add(p["kind"], detail + _NOT_RECHECKED)
    return out + value_problems(row)


_NOT_RECHECKED = " (found by an earlier run with checksums; run with checksums to check again)"


def _previous(row: dict) -> list[dict]:
    try:
        v = json.loads(row.get("validation_problems") or "[]")
    except ValueError:
        return []
    return [p for p in v if isinstance(p, dict)] if isinstance(v, list) else []


def value_problems(row: dict) -> list[dict]:
    """Problems in the stored values alone: extraction errors, missing required fields,
    impossible values."""
    out: list[dict] = []
    if row.get("extraction_status") == S.ExtractionStatus.ERROR.value:
        out.append({"kind": "extraction_error", "detail": row.get("extraction_error") or "unknown error"})
    else:
        missing = [f for f in S.REQUIRED_FIELDS if row.get(f) is None]
        if missing:
            out.append({"kind": "required_missing", "detail": ", ".join(missing)})
    bad = []
    start, end = row.get("observation_timestamp"), row.get("observation_end")
    if start is not None and end is not None and end < start:
        bad.append(f"observation ends ({_t(end)}) before it starts ({_t(start)})")
    q = row.get("data_quality_score")
    if q is not None and not 0.0 <= q <= 1.0:
        bad.append(f"data_quality_score {q!r} is outside 0-1")
    ra, dec = row.get("ra"), row.get("dec")
    if ra is not None and not 0.0 <= ra <= 360.0:
        bad.append(f"ra {ra!r} is outside 0-360 degrees")
    if dec is not None and not -90.0 <= dec <= 90.0:
        bad.append(f"dec {dec!r} is outside -90..90 degrees")
    lvl = row.get("calib_level")
    if lvl is not None and not 0 <= lvl <= 4:
        bad.append(f"calib_level {lvl!r} is outside 0-4")
    exp = row.get("exposure_time")
    if exp is not None and exp < 0:
        bad.append(f"exposure_time {exp!r} is negative")
    if bad:
        out.append({"kind": "impossible", "detail": "; ".join(bad)})
    return out


@dataclass
class Verdict:
    """The outcome for one row."""

    row: dict
    facts: FileFacts
    problems: list[dict] = field(default_factory=list)

    @property
    def kinds(self) -> set[str]:
        return {p["kind"] for p in self.problems}

    @property
    def file_status(self) -> str:
        if not self.facts.exists:
            return S.FileStatus.MISSING.value
        if self.facts.error is None and not stat_matches(self.row, self.facts):
            return S.FileStatus.CHANGED.value
        return S.FileStatus.PRESENT.value


def _json(text) -> dict:
    if isinstance(text, dict):
        return text
    try:
        v = json.loads(text) if text else {}
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def _n(v) -> str:
    return "?" if v is None else f"{v:,}"


def _t(v) -> str:
    return "?" if v is None else v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
