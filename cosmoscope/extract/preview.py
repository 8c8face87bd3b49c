"""``profiles check``: what extraction would record for some files, and where each value came from.

>>> rows = preview(["hx01234567_evt2.fits"])          # doctest: +SKIP
>>> print(format_rows(rows))                            # doctest: +SKIP
hx01234567_evt2.fits  (fits, ok, quality 1.00, profile helios-x)
  mission_id             HELIOS-X                    FITS[1]:TELESCOP
  ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from cosmoscope.extract.core import extract_file

#: Fields shown, in this order, when present.
SHOWN = ("mission_id", "satellite_name", "instrument_type", "observation_timestamp", "observation_end",
         "exposure_time", "target_object", "ra", "dec", "calib_level", "calibration_status",
         "dataproduct_type", "version")


class Row(NamedTuple):
    """One line of a preview: a file, a field, its value and what supplied it."""

    path: str
    field: str
    value: Any
    source: str


def iter_files(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """The files named, and the data files under directories named (sorted; hidden entries,
    sidecars and other files that are neither named nor shaped like data are skipped)."""
    from cosmoscope.extract.core import sniff_format
    from cosmoscope.extract.registry import guess_by_suffix

    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if not name.startswith(".") and (guess_by_suffix(full) or sniff_format(full)):
                        yield full
        else:
            yield p


def rows_for(rec: dict[str, Any]) -> list[Row]:
    """Preview rows of one extracted record."""
    path = rec.get("file_path") or ""
    src = rec.get("field_sources") or {}
    out = [Row(path, "file_format", rec.get("file_format"), "sniff"),
           Row(path, "extraction_status", rec.get("extraction_status"), "")]
    if rec.get("extraction_error"):
        out.append(Row(path, "extraction_error", rec["extraction_error"], ""))
    ms = rec.get("mission_specific") or {}
    if ms.get("profile"):
        out.append(Row(path, "profile", ms["profile"], "applies_to / --profile"))
    for f in SHOWN:
        if rec.get(f) is not None:
            out.append(Row(path, f, rec[f], src.get(f, "")))
    if "processing_level" in ms:
        out.append(Row(path, "processing_level", ms["processing_level"], src.get("processing_level", "")))
    for parent in rec.get("_parents") or []:
        out.append(Row(path, "parent", parent["name"], parent["relationship"]))
    for c in ms.get("conflicts") or []:
        out.append(Row(path, "conflict", f"{c['field']}: path {c['path']} vs header {c['header']}",
                       c.get("source", "")))
    out.append(Row(path, "data_quality_score", rec.get("data_quality_score"), "quality"))
    if rec.get("quality_flags"):
        out.append(Row(path, "quality_flags", ", ".join(rec["quality_flags"]), "quality"))
    return out


def preview(paths: Iterable[str | os.PathLike], profiles: Any = None) -> list[Row]:
    """Extract every file under ``paths`` and list ``(path, field, value, source)`` rows.

    ``profiles`` is passed to :func:`~cosmoscope.extract.extract_file` (None: shipped and
    configured profiles matched by path; a name, path or Profile: forced).
    """
    rows: list[Row] = []
    for path in iter_files(paths):
        rows.extend(rows_for(extract_file(path, profiles=profiles)))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def format_rows(rows: Iterable[Row]) -> str:
    """Rows as a plain-text table, one block per file."""
    lines: list[str] = []
    current = None
    for r in rows:
        if r.path != current:
            if current is not None:
                lines.append("")
            lines.append(r.path)
            current = r.path
        lines.append(f"  {r.field:<22} {_show(r.value):<34} {r.source}".rstrip())
    return "\n".join(lines)


def rows_to_json(rows: Iterable[Row]) -> str:
    """Rows as a JSON list of objects (times in ISO 8601)."""
    return json.dumps([{"path": r.path, "field": r.field, "value": _jsonable(r.value), "source": r.source}
                       for r in rows], indent=1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value
