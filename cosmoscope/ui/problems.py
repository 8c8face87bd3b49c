"""Problems a person can act on: what is wrong with which files, in sentences, worst first,
each with the command that mends or re-checks it.

Every problem of every row (an unreadable file, incomplete metadata, each finding of the last
validation, a file gone from disk) becomes an item; items are grouped by what is wrong and why
(``truncated FITS file``, ``file missing``), groups are ordered by severity (``error``: the data
cannot be used; ``warning``: they can, but their metadata are doubtful), then by size.

Shared by the dashboard's Problems tab and the notebooks; imports no UI toolkit.

>>> group = ProblemGroup("error", "unreadable", "empty file (0 bytes)", ["/d/a.fits", "/d/b.fits"],
...                      ["LYRA", "LYRA"], ["", ""], ["ds-1", "ds-2"])
>>> group.sentence
'Empty file (0 bytes): 2 files cannot be read.'
>>> group.command
'cosmoscope validate --fix --mission LYRA --path /d'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmoscope import schema as S

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog
    from cosmoscope.ui.query import Filters

#: Columns read for the problem rows.
COLUMNS = ["dataset_id", "mission_id", "file_path", "extraction_status", "extraction_error", "validation_status",
           "validation_problems", "file_status", "quality_flags"]

#: Problem kind -> (severity, what is wrong with one file and with several, what to do, validate flags).
KINDS = {
    "unreadable": ("error", ("1 file cannot be read", "{n} files cannot be read"),
                   "Replace each with a good copy (or remove it), then read them again:", "--fix"),
    "missing": ("error", ("1 file is missing from disk", "{n} files are missing from disk"),
                "Restore them, or find where they moved, then check again:", ""),
    "content": ("error", ("1 file changed content without a change of size or time",
                          "{n} files changed content without a change of size or time"),
                "Compare them with the archive's copy, then read them again:", "--fix --checksums"),
    "checksum": ("error", ("1 file fails its FITS CHECKSUM/DATASUM", "{n} files fail their FITS CHECKSUM/DATASUM"),
                 "Copy them again from the archive, then verify:", "--checksums"),
    "outside": ("warning", ("1 file is reached through a link leading outside the cataloged directories",
                            "{n} files are reached through links leading outside the cataloged directories"),
                "Catalog the directories they lead to, or allow the links, then check again:",
                "--allow-outside-links"),
    "changed": ("warning", ("1 file changed on disk since it was cataloged",
                            "{n} files changed on disk since they were cataloged"), "Read them again:", "--fix"),
    "incomplete": ("warning", ("1 file lacks required metadata", "{n} files lack required metadata"),
                   "Add the keywords to the files, or a default to the mission's profile (cosmoscope profiles "
                   "show NAME), then read them again:", "--fix"),
    "impossible": ("warning", ("1 file has impossible values", "{n} files have impossible values"),
                   "Correct the headers or the mission's profile, then read them again:", "--fix"),
}
#: Validation's kinds (see cosmoscope.ingest.checks) as the kinds above.
_VALIDATION = {"missing": "missing", "unreadable": "unreadable", "extraction_error": "unreadable",
               "outside": "outside", "changed": "changed", "content": "content", "checksum": "checksum",
               "required_missing": "incomplete", "impossible": "impossible"}
SEVERITIES = ("error", "warning")
#: Files listed per group (the count says how many there are in all).
FILES_SHOWN = 50


@dataclass
class ProblemGroup:
    """Files sharing one problem and its reason."""

    severity: str
    kind: str
    reason: str
    paths: list[str] = field(default_factory=list)
    missions: list[str | None] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    dataset_ids: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.paths)

    @property
    def sentence(self) -> str:
        """``Empty file (0 bytes): 9 files cannot be read.`` -- the reason comes first."""
        one, many = KINDS[self.kind][1]
        text = one if self.n == 1 else many.format(n=f"{self.n:,}")
        return f"{self.reason[:1].upper()}{self.reason[1:]}: {text}." if self.reason else f"{text}."

    @property
    def advice(self) -> str:
        return KINDS[self.kind][2]

    @property
    def by_mission(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.missions:
            out[m or "no mission"] = out.get(m or "no mission", 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def command(self) -> str:
        """The ``cosmoscope validate`` command that mends (or re-checks) these files."""
        parts = ["cosmoscope validate"]
        if KINDS[self.kind][3]:
            parts.append(KINDS[self.kind][3])
        missions = {m for m in self.missions if m}
        if len(missions) == 1:
            parts.append(f"--mission {_quote(missions.pop())}")
        dirs = {os.path.dirname(p) for p in self.paths if p}
        if dirs:
            parts.append(f"--path {_quote(os.path.commonpath(sorted(dirs)) or '/')}")
        return " ".join(parts)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _reason(error: str | None) -> tuple[str, str]:
    """``(reason, detail)`` of an extraction error: the words before the first colon say what
    is wrong, the rest says where."""
    text = (error or "no reason recorded").strip()
    head, sep, tail = text.partition(": ")
    return (head, tail) if sep and len(head) <= 60 else (text, "")


def _missing_fields(flags) -> str:
    try:
        values = json.loads(flags) if isinstance(flags, str) else (flags or [])
    except ValueError:
        return ""
    return ", ".join(f.split(":", 1)[1] for f in values if isinstance(f, str) and f.startswith("missing:"))


def items(row: dict) -> list[tuple[str, str, str]]:
    """``(kind, reason, detail)`` of each problem of one row (a row of :data:`COLUMNS`)."""
    out: list[tuple[str, str, str]] = []
    if row.get("extraction_status") == S.ExtractionStatus.ERROR.value:
        out.append(("unreadable", *_reason(row.get("extraction_error"))))
    elif row.get("extraction_status") == S.ExtractionStatus.PARTIAL.value:
        fields = _missing_fields(row.get("quality_flags"))
        out.append(("incomplete", f"no {fields}" if fields else "required fields missing", ""))
    if row.get("file_status") == S.FileStatus.MISSING.value:
        out.append(("missing", "", ""))
    if row.get("validation_status") == S.ValidationStatus.PROBLEMS.value:
        try:
            found = json.loads(row.get("validation_problems") or "[]")
        except ValueError:
            found = [{"kind": "impossible", "detail": str(row.get("validation_problems"))}]
        for p in found if isinstance(found, list) else []:
            if not isinstance(p, dict):
                p = {"kind": "impossible", "detail": str(p)}
            kind = _VALIDATION.get(p.get("kind"), "impossible")
            if kind in {k for k, _, _ in out}:
                continue  # already said (an unreadable file, a missing file)
            detail = str(p.get("detail") or "")
            reason = detail if kind == "impossible" else ""
            out.append((kind, reason, "" if reason else detail))
    return out


def group_problems(rows) -> list[ProblemGroup]:
    """Group the problems of rows (dicts of :data:`COLUMNS`), worst and largest first."""
    groups: dict[tuple[str, str], ProblemGroup] = {}
    for row in rows:
        for kind, reason, detail in items(row):
            g = groups.get((kind, reason))
            if g is None:
                g = groups[(kind, reason)] = ProblemGroup(KINDS[kind][0], kind, reason)
            g.paths.append(row.get("file_path") or "")
            g.missions.append(row.get("mission_id"))
            g.details.append(detail)
            g.dataset_ids.append(row["dataset_id"])
    order = list(KINDS)
    return sorted(groups.values(), key=lambda g: (SEVERITIES.index(g.severity), -g.n, order.index(g.kind), g.reason))


def problem_groups(cat: Catalog, filters: Filters | None = None, limit: int | None = 2000) -> list[ProblemGroup]:
    """The problems of the observations matching ``filters``, grouped (see :func:`group_problems`).

    Each kind of problem is its own pushed-down query, so only rows with a problem are read;
    ``limit`` caps the rows read per kind (the cap reaches the store: see
    :func:`~cosmoscope.ui.query.problem_frame`).
    """
    from cosmoscope.ui.query import PROBLEM_KINDS, problem_frame

    seen: dict[str, dict] = {}
    for column, values in PROBLEM_KINDS.values():
        q = problem_frame(cat, filters, column, values).select(COLUMNS)
        if limit is not None:
            q = q.head(limit)
        for row in q.collect().iter_rows(named=True):
            seen.setdefault(row["dataset_id"], row)
    rows = sorted(seen.values(), key=lambda r: (r["mission_id"] or "", r["file_path"] or ""))
    return group_problems(rows)
