"""Validation: is every row still true to its file, and are its values possible?

>>> report = cat.validate(mission="COSMOS-7", checksums=True)   # doctest: +SKIP
>>> print(report); report.ok                                     # doctest: +SKIP

or ``cosmoscope validate --mission COSMOS-7 --checksums --fix`` from cron (docs/operations.md).

For each row (see :mod:`cosmoscope.ingest.checks` for the checks themselves): the file is
missing (and, if a file of the same name and size is cataloged elsewhere, where it probably
went); its size or modification time changed since it was cataloged; with ``checksums``, its
bytes no longer match the stored content hash (the first such run records the hash) or its
FITS CHECKSUM/DATASUM keywords; extraction failed; required fields are missing; values are
impossible (end before start, quality outside 0-1, coordinates out of range).

``fix=True`` re-extracts, through the ingest path, every file whose problem a fresh reading can
cure (it changed, or it had extraction or value problems), records each changed field as an
audit event (from, to), and checks it again. Results land on the rows (``validation_status``,
``validation_problems``, ``last_validated``, ``file_status``) and in the audit trail: an event
for every row whose verdict changed (a first clean pass is recorded once, in the run's event),
and one ``validate_run`` event with the summary.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from cosmoscope import schema as S
from cosmoscope.errors import InvalidArgumentError
from cosmoscope.ingest.checks import KINDS, REEXTRACT_KINDS, Verdict, inspect_file, row_problems

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog

log = logging.getLogger(__name__)

#: Rows checked and written per transaction.
BLOCK = 1_000
COLUMNS = ("dataset_id", "mission_id", "file_path", "file_name", "file_size", "file_mtime", "file_format",
           "checksum", "extraction_status", "extraction_error", "extractor_version", "file_status",
           "validation_status", "validation_problems", "observation_timestamp", "observation_end",
           "data_quality_score", "ra", "dec", "calib_level", "exposure_time", "mission_specific",
           "s_fov", "s_region", "sky_index", *S.REQUIRED_FIELDS)


@dataclass
class ValidationReport:
    """What a validation run found and fixed. ``print(report)`` gives the summary table."""

    fix: bool = False
    checksums: bool = False
    checked: int = 0
    passed: int = 0
    with_problems: int = 0
    reextracted: int = 0
    field_changes: int = 0
    checksums_recorded: int = 0
    found: Counter = field(default_factory=Counter)      # (kind, mission) -> rows, before fixing
    fixed: Counter = field(default_factory=Counter)
    remaining: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    seconds: float = 0.0
    run_id: str | None = None
    #: The rollups compared with a recount of the rows (:class:`~cosmoscope.store.rollup.RollupCheck`).
    rollups: object = None
    #: With ``fix``: the rollups disagreed and were rebuilt from the rows.
    rollups_rebuilt: bool = False

    @property
    def ok(self) -> bool:
        """True when no row has a problem left and the rollups agree with the rows."""
        return self.with_problems == 0 and (self.rollups is None or self.rollups.ok or self.rollups_rebuilt)

    @property
    def rows_per_second(self) -> float:
        return self.checked / self.seconds if self.seconds else 0.0

    def table(self) -> pl.DataFrame:
        """One row per problem kind and mission: rows found with it, fixed, remaining."""
        import polars as pl

        keys = sorted(set(self.found) | set(self.remaining), key=lambda k: (list(KINDS).index(k[0]), k[1] or ""))
        return pl.DataFrame({
            "problem": [KINDS[k] for k, _ in keys], "kind": [k for k, _ in keys],
            "mission": [m for _, m in keys], "found": [self.found[k] for k in keys],
            "fixed": [self.fixed[k] for k in keys], "remaining": [self.remaining[k] for k in keys]},
            schema={"problem": pl.String, "kind": pl.String, "mission": pl.String, "found": pl.Int64,
                    "fixed": pl.Int64, "remaining": pl.Int64})

    def to_dict(self) -> dict:
        return {"checked": self.checked, "passed": self.passed, "with_problems": self.with_problems,
                "fix": self.fix, "checksums": self.checksums, "reextracted": self.reextracted,
                "field_changes": self.field_changes, "checksums_recorded": self.checksums_recorded,
                "problems": [{"kind": k, "mission": m, "found": self.found[(k, m)], "fixed": self.fixed[(k, m)],
                              "remaining": self.remaining[(k, m)]}
                             for k, m in sorted(set(self.found) | set(self.remaining), key=str)],
                "examples": dict(self.examples), "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows_per_second, 1), "run_id": self.run_id,
                "rollups": None if self.rollups is None else {
                    "ok": self.rollups.ok, "groups": self.rollups.groups, "mismatches": len(self.rollups.mismatches),
                    "rebuilt": self.rollups_rebuilt}}

    def __str__(self) -> str:
        from cosmoscope.records import printable

        lines = [f"Validated {self.checked:,} datasets in {self.seconds:.1f} s ({self.rows_per_second:,.0f}/s)"
                 + (", content hashes checked" if self.checksums else "") + ": "
                 f"{self.passed:,} passed, {self.with_problems:,} with problems"
                 + (f" ({self.reextracted:,} re-extracted, {self.field_changes:,} field changes recorded)"
                    if self.fix else "") + "."]
        if self.found:
            header = ["problem", "mission", "found"] + (["fixed"] if self.fix else []) + ["remaining"]
            rows = [[KINDS[k], m or "(none)", f"{self.found[(k, m)]:,}"]
                    + ([f"{self.fixed[(k, m)]:,}"] if self.fix else []) + [f"{self.remaining[(k, m)]:,}"]
                    for k, m in sorted(set(self.found) | set(self.remaining),
                                       key=lambda x: (list(KINDS).index(x[0]), x[1] or ""))]
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

            def fmt(cells):  # text columns to the left, counts to the right
                return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

            lines += ["", fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)]
            lines.append("")
            for kind in KINDS:
                for ex in self.examples.get(kind, [])[:3]:
                    lines.append(f"  {kind}: {printable(ex)}")
        if self.checksums_recorded:
            lines.append(f"Recorded content hashes of {self.checksums_recorded:,} files for the next --checksums run.")
        if self.rollups is not None:
            lines.append(str(self.rollups) if not self.rollups_rebuilt else
                         f"{self.rollups}\nThe rollups were rebuilt from the rows.")
        if not self.ok:
            lines.append("Problems remain; list them with: cosmoscope sql \"SELECT file_path, validation_problems "
                         "FROM observations WHERE validation_status = 'problems'\"")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(str(self))}</pre>"


def validate(catalog: Catalog, *, mission=None, since=None, paths=None, fix: bool = False, checksums: bool = False,
             workers: int = 1, threads: int = 8, progress: bool = True, run_id: str | None = None,
             block: int = BLOCK, executor=None, follow_symlinks: bool | str = False) -> ValidationReport:
    """Validate the catalog's rows (all, or those of ``mission``, changed ``since``, under ``paths``).

    Parameters
    ----------
    mission
        A mission or a list of missions.
    since
        Only rows cataloged or updated at or after this time: a datetime, ISO 8601 text, or a
        duration before now such as ``"24h"``.
    paths
        Only rows whose files lie under these directories.
    fix
        Re-extract the files a fresh reading can cure, and record what changed.
    checksums
        Read every file whose size and time are unchanged: compare its content hash with the
        stored one (recording it when there is none) and verify FITS CHECKSUM/DATASUM.
    workers
        Extraction processes for ``fix`` (0: in this process).
    threads
        Files inspected at once (stat and hashing are I/O: threads help, most on network disks).
    executor
        A ``dask.distributed.Client``: its workers inspect (and, with ``fix``, re-extract) the
        files instead of local threads and processes; the files must be at the same paths there.
    follow_symlinks
        ``"all"``: read files through symbolic links wherever they lead. By default a file reached
        through a link whose real path leaves the catalog's directories (those its ingest runs and
        watchers were given, and ``paths``) is neither hashed nor re-extracted: it is reported as
        an ``outside`` problem (see :mod:`cosmoscope.ingest.roots`).
    """
    from tqdm.auto import tqdm

    from cosmoscope.ingest.roots import CatalogRoots, follow_mode
    from cosmoscope.ingest.workers import ExtractionPool
    from cosmoscope.records import new_event_ids

    run_id = run_id or "validate-" + new_event_ids(1)[0]
    report = ValidationReport(fix=fix, checksums=checksums, run_id=run_id)
    started = time.perf_counter()
    ids = _select(catalog, mission=mission, since=since, paths=paths)
    gate = CatalogRoots(catalog, [paths] if isinstance(paths, (str, os.PathLike)) else paths or (),
                        everywhere=follow_mode(follow_symlinks)[1])
    if executor is not None:
        gate = gate.resolved()  # checked on the cluster's workers
    bar = tqdm(total=len(ids), unit="file", desc="validate", disable=not progress, smoothing=0.05)
    try:
        cluster = None
        if executor is not None:
            from cosmoscope.ingest.dask_exec import as_executor

            cluster = as_executor(executor)  # offers the .map and .extract used below
        with cluster or ThreadPoolExecutor(max(1, threads)) as io, cluster or ExtractionPool(workers) as pool:
            for start in range(0, len(ids), block):
                _validate_block(catalog, ids[start:start + block], report, io, pool if fix else None, run_id,
                                gate)
                bar.update(min(block, len(ids) - start))
        if fix and report.reextracted:
            from cosmoscope.ingest.links import resolve_pending

            resolve_pending(catalog, run_id=run_id)
    finally:
        bar.close()
    # The rollups (derived from the rows) are checked against a recount; only their mission's
    # groups when the run is limited to missions. --fix rebuilds them when they disagree.
    missions = None if mission is None else ([mission] if isinstance(mission, str) else list(mission))
    report.rollups = catalog.check_rollups(missions, fix=fix, progress=progress)
    report.rollups_rebuilt = fix and not report.rollups.ok
    report.seconds = time.perf_counter() - started
    catalog.log_event("validate_run", run_id=run_id, details=report.to_dict())
    return report


def _select(catalog: Catalog, *, mission, since, paths) -> list[str]:
    """Dataset ids to validate (ids only: the rows are read block by block, so no read
    transaction stays open while results are written)."""
    from cosmoscope.predicate import Clause, Predicate, Test

    tests = []
    if mission is not None:
        missions = [mission] if isinstance(mission, str) else list(mission)
        tests.append(Test("mission_id", "is_in", tuple(missions)))
    if since is not None:
        tests.append(Test("updated_at", ">=", since_time(since)))
    if isinstance(paths, (str, bytes, os.PathLike)) or paths:  # "" is refused, not taken for "everything"
        from cosmoscope.ingest.crawl import given_paths

        prefixes = [os.path.abspath(p).rstrip("/") + "/" for p in given_paths(paths, what="a directory")]
        tests.append(Clause(tuple(Test("file_path", "starts_with", p) for p in prefixes)))
    out: list[str] = []
    for batch in catalog.store.scan("observations", ["dataset_id"], Predicate.of(*tests)):
        out.extend(batch.column(0).to_pylist())
    return sorted(out)


def since_time(value):
    """``since`` as a UTC datetime: a time, or a duration before now (``"24h"``, ``7d``).

    >>> since_time("2026-11-27").isoformat()
    '2026-11-27T00:00:00+00:00'
    """
    from cosmoscope.times import to_time

    return to_time(value, name="--since time")


def _rows(catalog: Catalog, ids: list[str]) -> list[dict]:
    return catalog.lookup(ids, list(dict.fromkeys(COLUMNS))).to_dicts()


def _validate_block(catalog: Catalog, ids: list[str], report: ValidationReport, io: ThreadPoolExecutor,
                    pool, run_id: str, gate) -> None:
    from cosmoscope.extract import EXTRACTOR_VERSION

    rows = _rows(catalog, ids)
    verdicts = _check(rows, io, report.checksums, gate)
    before = {v.row["dataset_id"]: v for v in verdicts}
    first_kinds = {did: v.kinds for did, v in before.items()}
    # A re-extracted row comes back with its verdict cleared; events compare with the old one.
    previous = {did: (v.row.get("validation_status"), v.row.get("validation_problems"), v.row.get("file_status"),
                      v.row.get("mission_id")) for did, v in before.items()}
    if pool is not None:
        readable = [v for v in verdicts if v.facts.exists and v.facts.error is None and v.facts.outside is None]
        todo = [v for v in readable if (
            v.kinds & REEXTRACT_KINDS or v.row.get("extractor_version") != EXTRACTOR_VERSION
            or v.row.get("file_status") == S.FileStatus.MISSING.value)]
        if todo:
            fixed_ids = _reextract(catalog, todo, pool, report, run_id)
            if fixed_ids:
                for v in _check(_rows(catalog, fixed_ids), io, report.checksums, gate):
                    before[v.row["dataset_id"]] = v
            verdicts = list(before.values())
    if pool is not None:
        stale = [v.row for v in verdicts if "sky_index" in v.kinds]
        fixed = _reindex_sky(catalog, stale, run_id) if stale else []
        if fixed:
            report.field_changes += len(fixed)
            for v in _check(_rows(catalog, fixed), io, report.checksums, gate):
                before[v.row["dataset_id"]] = v
            verdicts = list(before.values())
    _where_moved(catalog, verdicts)
    _record(catalog, verdicts, report, first_kinds, previous, run_id)


def _check(rows: list[dict], io: ThreadPoolExecutor, checksums: bool, gate=None) -> list[Verdict]:
    outside = gate.outside if gate is not None else None
    facts = list(io.map(lambda r: inspect_file(r, checksums=checksums, outside=outside), rows))
    stale = set(_stale_sky_index(rows))
    return [Verdict(r, f, row_problems(r, f) + ([{
        "kind": "sky_index", "detail": "sky_index does not follow from ra, dec, s_fov and s_region "
                                       "(written around the catalog?); validate --fix recomputes it"}]
        if r["dataset_id"] in stale else [])) for r, f in zip(rows, facts)]


def _sky_columns(rows: list[dict]) -> pa.Table:
    return pa.table({c: pa.array([r.get(c) for r in rows], S.OBSERVATIONS.schema.field(c).type)
                     for c in ("dataset_id", "ra", "dec", "s_fov", "s_region", "sky_index")})


def _stale_sky_index(rows: list[dict]) -> list[str]:
    """Rows whose stored sky_index differs from the one their sky columns give."""
    from cosmoscope.sky.search import derive

    if not rows:
        return []
    try:
        derived = derive(_sky_columns(rows)).column("sky_index").to_pylist()
    except InvalidArgumentError:  # an s_region that is not a polygon: row by row, to name the rows
        return [r["dataset_id"] for r in rows if r.get("s_region") is not None and not _region_ok(r)]
    return [r["dataset_id"] for r, want in zip(rows, derived) if r.get("sky_index") != want]


def _region_ok(row: dict) -> bool:
    from cosmoscope.sky.geometry import parse_polygon

    return parse_polygon(row["s_region"]) is not None


def _reindex_sky(catalog: Catalog, rows: list[dict], run_id: str) -> list[str]:
    """Recompute sky_index (and s_fov, ra, dec from footprints) where it is out of step."""
    from cosmoscope.sky.search import derive
    from cosmoscope.times import now

    rows = [r for r in rows if r.get("s_region") is None or _region_ok(r)]
    if not rows:
        return []
    derived = derive(_sky_columns(rows)).drop_columns(["s_region"])
    events = [dict(action="update", dataset_id=r["dataset_id"], run_id=run_id, field="sky_index",
                   from_value=r.get("sky_index"), to_value=new, details={"reason": "validate --fix"})
              for r, new in zip(rows, derived.column("sky_index").to_pylist())]
    stamp = pa.array([now()] * derived.num_rows, S.UTC_TS)
    with catalog.store.transaction():
        catalog.store.update("observations", derived.append_column("updated_at", stamp), S.OBSERVATIONS.key)
        catalog.log_events(events)
    return [r["dataset_id"] for r in rows]


def _reextract(catalog: Catalog, todo: list[Verdict], pool, report: ValidationReport, run_id: str) -> list[str]:
    from cosmoscope.ingest.changes import write_with_changes
    from cosmoscope.ingest.crawl import FileEntry

    from cosmoscope.records import fs_path

    entries = [FileEntry(fs_path(v.row["file_path"], v.row["dataset_id"]), v.facts.size, v.facts.mtime_ns)
               for v in todo]
    records = [r for r in pool.extract(entries) if not r.get("_skip")]
    result = write_with_changes(catalog, records, reason="validate --fix", run_id=run_id)
    report.reextracted += len(result.rows)
    report.field_changes += result.changes
    return [r["dataset_id"] for r in result.rows]


def _where_moved(catalog: Catalog, verdicts: list[Verdict]) -> None:
    """For missing files, name a cataloged file of the same name and size elsewhere, if any."""
    import polars as pl

    lost = [v for v in verdicts if not v.facts.exists and v.row.get("file_name")]
    if not lost:
        return
    names = sorted({v.row["file_name"] for v in lost})
    found = (catalog.observations().filter(pl.col("file_name").is_in(names))
             .filter(pl.col("file_status") == S.FileStatus.PRESENT.value)
             .select("dataset_id", "file_name", "file_size", "file_path").collect())
    where: dict[tuple, list] = defaultdict(list)
    for r in found.iter_rows(named=True):
        where[(r["file_name"], r["file_size"])].append(r)
    for v in lost:
        others = [r["file_path"] for r in where.get((v.row["file_name"], v.row["file_size"]), [])
                  if r["dataset_id"] != v.row["dataset_id"]]
        if others:
            for p in v.problems:
                if p["kind"] == "missing":
                    p["detail"] += f"; a file of the same name and size is cataloged at {others[0]} (moved?)"
                    p["moved_to"] = others[0]


def _record(catalog: Catalog, verdicts: list[Verdict], report: ValidationReport, first_kinds: dict,
            previous: dict, run_id: str) -> None:
    """Store each verdict on its row, count it, and log the changes as events."""
    from cosmoscope.times import now

    stamp = now()
    cols = {"dataset_id": [], "validation_status": [], "validation_problems": [], "last_validated": [],
            "file_status": [], "checksum": []}
    events = []
    for v in verdicts:
        row, did = v.row, v.row["dataset_id"]
        old_status, old_problems, old_file_status, mission = previous[did]
        mission = mission or row.get("mission_id")
        status = S.ValidationStatus.PROBLEMS.value if v.problems else S.ValidationStatus.PASSED.value
        problems = json.dumps(v.problems, sort_keys=True, default=str) if v.problems else None
        report.checked += 1
        if v.problems:
            report.with_problems += 1
        else:
            report.passed += 1
        first = first_kinds.get(did, set())
        for kind in first | v.kinds:  # a fix can reveal a problem too (a changed file now truncated)
            report.found[(kind, mission)] += 1
            if kind not in v.kinds:
                report.fixed[(kind, mission)] += 1
        for kind in v.kinds:
            report.remaining[(kind, mission)] += 1
        for p in v.problems:
            if len(report.examples[p["kind"]]) < 3:
                report.examples[p["kind"]].append(f"{row['file_path']}: {p['detail']}")
        checksum = row.get("checksum")
        if v.facts.content_hash and not checksum:
            checksum = v.facts.content_hash
            report.checksums_recorded += 1
        cols["dataset_id"].append(did)
        cols["validation_status"].append(status)
        cols["validation_problems"].append(problems)
        cols["last_validated"].append(stamp)
        cols["file_status"].append(v.file_status)
        cols["checksum"].append(checksum)
        if (old_status, old_problems) != (status, problems) and (old_status is not None or v.problems):
            events.append(dict(action="validate", dataset_id=did, run_id=run_id, field="validation_status",
                               from_value=old_status, to_value=status,
                               details={"problems": v.problems} if v.problems else None))
        if row.get("file_status") != v.file_status and old_file_status != v.file_status:
            events.append(dict(action="update", dataset_id=did, run_id=run_id, field="file_status",
                               from_value=old_file_status, to_value=v.file_status,
                               details={"reason": "validate"}))
    if not cols["dataset_id"]:
        return
    types = {"last_validated": S.UTC_TS}
    data = pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in cols.items()})
    with catalog.store.transaction():
        catalog.store.update("observations", data, S.OBSERVATIONS.key)
        catalog.log_events(events)
