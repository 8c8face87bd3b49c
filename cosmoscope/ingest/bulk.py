"""Bulk ingest: crawl trees, skip what is unchanged, extract the rest in parallel, write in batches.

Guarantees
----------
- Idempotent: a file whose path, size and modification time match its row (and whose row was
  made by the current extractor) is skipped without being opened; a second run changes nothing.
- Never stops for one file: a file that cannot be read becomes a row with
  ``extraction_status='error'`` and the reason, and is counted in the summary.
- Nothing half-written: every batch (rows, their audit events, their pending lineage) commits
  in one transaction. A run killed with SIGKILL loses at most the batch in flight, and the next
  run picks those files up again because they are not in the catalog yet.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.ingest.crawl import FileEntry, Shard, count_files, crawl, given_paths
from cosmoscope.ingest.workers import ExtractionPool, looks_like_data
from cosmoscope.store.base import run_again_if_aborted

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

log = logging.getLogger(__name__)

#: Rows written per transaction during ingest: small enough that a kill loses little and a
#: watcher or pipeline waiting to write is not held up for long.
BATCH_ROWS = 1_000
#: Crawled files looked up in the catalog at once when deciding what changed.
LOOKUP_BLOCK = 2_000
#: Most "not data" file names a summary keeps (the count goes on past it).
NAMED_NOT_DATA = 1_000
#: Most file names of each list the run's audit event keeps.
EVENT_NAMES = 100


@dataclass
class IngestSummary:
    """What an ingest run did. ``print(summary)`` gives the end-of-run report."""

    paths: list[str]
    dry_run: bool = False
    seen: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_data: int = 0
    #: the files counted as not data (the first :data:`NAMED_NOT_DATA` of them)
    not_data_files: list[str] = field(default_factory=list)
    failed: int = 0
    #: unchanged files (so not read again) whose rows say they could not be read
    failed_before: int = 0
    partial: int = 0
    failures: Counter = field(default_factory=Counter)
    failure_examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: files not read because their real path leaves the given paths: (path, reason)
    outside: list[tuple[str, str]] = field(default_factory=list)
    lineage_links: int = 0
    lineage_pending: int = 0
    #: why files are re-read, as their change events say
    reason: str | None = field(default=None, repr=False)
    #: the real paths of ``paths``: files under none of them are not read
    roots: list[str] = field(default_factory=list)
    crashes: int = 0
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return self.new + self.updated

    @property
    def files_per_second(self) -> float:
        return self.seen / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        """True when every file under the paths is cataloged readable and every path could be
        walked: no file failed now or, unchanged since, in an earlier run; none was left unread."""
        return self.failed == 0 and self.failed_before == 0 and not self.problems and not self.outside

    def to_dict(self) -> dict:
        return {"paths": self.paths, "dry_run": self.dry_run, "seen": self.seen, "new": self.new,
                "updated": self.updated, "unchanged": self.unchanged, "not_data": self.not_data,
                "not_data_files": self.not_data_files,
                "failed": self.failed, "failed_before": self.failed_before, "partial": self.partial,
                "failures": dict(self.failures),
                "failure_examples": dict(self.failure_examples), "problems": self.problems,
                "outside": self.outside, "roots": self.roots,
                "lineage_links": self.lineage_links, "lineage_pending": self.lineage_pending,
                "crashes": self.crashes, "seconds": round(self.seconds, 3),
                "files_per_second": round(self.files_per_second, 1)}

    def __str__(self) -> str:
        from cosmoscope.records import printable

        verb = "would be" if self.dry_run else "were"
        rate = round(self.files_per_second)
        # A rate says something about a run of a second or more, not about a handful of files.
        speed = f" ({rate:,} file{'' if rate == 1 else 's'}/s)" if self.seconds >= 1 else ""
        lines = [f"{self.seen:,} file{'' if self.seen == 1 else 's'} looked at in {self.seconds:.1f} s{speed}",
                 f"  new:        {self.new:,}" + (" (would be added)" if self.dry_run else ""),
                 f"  updated:    {self.updated:,}" + (" (changed since last ingest)" if self.updated else ""),
                 f"  unchanged:  {self.unchanged:,} (skipped without opening)",
                 f"  not data:   {self.not_data:,} (ignored: not FITS, HDF5, netCDF or CSV)"]
        for path in self.not_data_files[:10]:
            lines.append(f"    {printable(path)}")
        if self.not_data > 10:
            lines.append(f"    ... and {self.not_data - 10:,} more (all named in the JSON summary, up to "
                         f"{NAMED_NOT_DATA:,})")
        if not self.dry_run:
            lines.append(f"  incomplete: {self.partial:,} (read, but required fields are missing)")
            lines.append(f"  failed:     {self.failed:,}" + (" (kept as rows with the reason)" if self.failed else ""))
            for reason, n in self.failures.most_common():
                example = printable(self.failure_examples.get(reason, [""])[0])
                lines.append(f"    {n:>6,} {printable(reason)}" + (f"  e.g. {example}" if example else ""))
            if self.failed_before:
                lines.append(f"  failed before, unchanged since: {self.failed_before:,} (not read again; replace "
                             "the files, or run `cosmoscope validate --fix` after upgrading cosmoscope)")
            lines.append(f"  lineage:    {self.lineage_links:,} links recorded"
                         + (f", {self.lineage_pending:,} parents not cataloged yet" if self.lineage_pending else ""))
        if self.outside:
            lines.append(f"  not read, outside the given paths: {len(self.outside):,} (symbolic links; "
                         "--allow-outside-links reads them)")
            for path, reason in self.outside[:10]:
                lines.append(f"    {printable(path)}: {reason}")
        if self.problems:
            lines.append(f"  paths that could not be walked: {len(self.problems):,}")
            for path, reason in self.problems[:10]:
                lines.append(f"    {printable(path)}: {reason}")
        if self.crashes:
            lines.append(f"  worker crashes survived: {self.crashes}")
        if self.dry_run:
            lines.append(f"Dry run: nothing {verb} written.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(str(self))}</pre>"

    def skipped(self, rec: dict) -> None:
        """Count a file the extraction passed over (``rec`` has ``_skip`` and ``_path``)."""
        if rec.get("_outside"):
            self.outside.append((rec["_path"], rec["_skip"]))
            return
        self.not_data += 1
        if len(self.not_data_files) < NAMED_NOT_DATA:
            self.not_data_files.append(rec["_path"])


def failure_kind(reason: str | None) -> str:
    """The kind of an extraction error, for counting: the words before the first colon.

    >>> failure_kind("not a FITS file: the first 80 bytes are text ('SIMPLE...')")
    'not a FITS file'
    """
    if not reason:
        return "unknown error"
    return reason.split(":", 1)[0].strip()[:120]


def ingest(catalog: Catalog, paths: Iterable[str | os.PathLike], *, profile: str | None = None,
           workers: int | None = None, dry_run: bool = False, progress: bool = True, force: bool = False,
           follow_symlinks: bool | str = False, shard: Shard | str | None = None, batch_rows: int = BATCH_ROWS,
           run_id: str | None = None, entries: Iterable[FileEntry] | None = None,
           executor=None) -> IngestSummary:
    """Catalog every data file under ``paths``; see the module docstring for the guarantees.

    Parameters
    ----------
    profile
        Force this mission profile (a name or a TOML path) instead of matching by path.
    workers
        Extraction processes (default: one per CPU; 0 extracts in this process).
    dry_run
        Walk and compare with the catalog, report what would change, write nothing.
    force
        Re-read every file, even unchanged ones.
    follow_symlinks
        False: linked directories are not entered; True (or ``"inside"``): they are, when they lie
        under ``paths``; ``"all"``: every link is followed, wherever it leads. A file whose real
        path leaves ``paths`` is read only with ``"all"``; otherwise it is listed in the
        summary's ``outside`` (see :mod:`cosmoscope.ingest.roots`).
    executor
        A ``dask.distributed.Client`` (or a :class:`~cosmoscope.ingest.dask_exec.DaskExecutor`):
        its cluster extracts the files instead of local processes (``workers`` is then unused).
        See :mod:`cosmoscope.ingest.dask_exec` for who writes and what happens when a worker dies.
    shard
        ``"I/N"`` or a :class:`Shard`: take only this machine's share of the files.
    entries
        Files found another way (e.g. :func:`cosmoscope.ingest.vast_catalog.catalog_entries`)
        to use instead of walking ``paths``; ``paths`` then only label the run.
    """
    from cosmoscope.errors import InvalidArgumentError

    paths = [os.path.expanduser(p) for p in given_paths(paths)]
    if not paths:
        raise InvalidArgumentError("give at least one file or directory to ingest")
    if isinstance(shard, str):
        shard = Shard.parse(shard)
    if profile is not None:
        from cosmoscope.extract.profiles import load_profiles

        load_profiles().resolve(profile)  # an unknown profile fails here, before any work
    from cosmoscope.ingest.roots import Roots, follow_mode

    roots = Roots(paths, everywhere=follow_mode(follow_symlinks)[1])
    summary = IngestSummary(paths=paths, dry_run=dry_run, roots=list(roots.real),
                            reason="ingest --force" if force else "the file changed on disk (ingest)")
    started = time.perf_counter()
    bar = _progress(paths, progress, follow_symlinks, shard, count=entries is None)
    planned: dict[str, str] = {}  # dataset_id -> "new" | "updated"

    def on_problem(path, reason):
        summary.problems.append((path, reason))
        log.warning("%s: %s", path, reason)

    def on_outside(path, reason):
        summary.outside.append((path, reason))
        log.warning("%s: %s", path, reason)

    def to_read() -> Iterator[FileEntry]:
        block: list[FileEntry] = []
        found = (crawl(paths, follow_symlinks=follow_symlinks, shard=shard, on_problem=on_problem,
                       on_outside=on_outside)
                 if entries is None else (e for e in entries if shard is None or shard.owns(e.path)))
        for entry in found:
            block.append(entry)
            if len(block) >= LOOKUP_BLOCK:
                yield from _changed(catalog, block, force, summary, planned, bar)
                block = []
        if block:
            yield from _changed(catalog, block, force, summary, planned, bar)

    try:
        if dry_run:
            for _ in to_read():
                bar.update(1)
            summary.new = sum(1 for v in planned.values() if v == "new")
            summary.updated = len(planned) - summary.new
        elif executor is not None:
            from cosmoscope.ingest.dask_exec import ingest_on_cluster

            ingest_on_cluster(executor, catalog, to_read(), summary=summary, planned=planned, bar=bar,
                              profile=profile, batch_rows=batch_rows, run_id=run_id, force=force,
                              roots=None if roots.everywhere else roots)
        else:
            with ExtractionPool(workers, profile, None if roots.everywhere else roots, head_start=True) as pool:
                batch: list[dict] = []
                for rec in pool.extract(to_read()):
                    bar.update(1)
                    if rec.get("_skip"):
                        summary.skipped(rec)
                        continue
                    batch.append(rec)
                    if len(batch) >= batch_rows:
                        _write(catalog, batch, planned, summary, run_id)
                        batch = []
                if batch:
                    _write(catalog, batch, planned, summary, run_id)
                summary.crashes = pool.crashes
        if not dry_run:
            from cosmoscope.ingest.links import resolve_pending

            summary.lineage_links, summary.lineage_pending = resolve_pending(catalog, run_id=run_id)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - started
    if not dry_run:
        details = summary.to_dict()
        for key in ("not_data_files", "outside", "problems"):  # a cell holds ~128 KiB on VAST
            details[key] = details[key][:EVENT_NAMES]
        catalog.log_event("ingest_run", run_id=run_id, details=details)
    return summary


def _progress(paths, enabled, follow, shard, count=True):
    from tqdm.auto import tqdm

    total = count_files(paths, follow_symlinks=follow, shard=shard) if enabled and count else None
    return tqdm(total=total, unit="file", desc="ingest", disable=not enabled, smoothing=0.05)


def _changed(catalog: Catalog, block: list[FileEntry], force: bool, summary: IngestSummary,
             planned: dict[str, str], bar) -> Iterator[FileEntry]:
    """The entries of ``block`` that are new or changed; counts the rest as unchanged."""
    from cosmoscope.records import dataset_id_for

    ids = [dataset_id_for(e.path) for e in block]
    known = stored_state(catalog, ids)
    for entry, did in zip(block, ids):
        summary.seen += 1
        row = known.get(did)
        if not force and is_unchanged(row, entry):
            summary.unchanged += 1
            if row["extraction_status"] == S.ExtractionStatus.ERROR.value:
                summary.failed_before += 1
            bar.update(1)
            continue
        if did in planned:
            continue  # the same file reached through two given paths
        if row is None and not looks_like_data(entry.path):
            summary.skipped({"_path": entry.path})  # a README or sidecar: sniffed here, never sent to a worker
            bar.update(1)
            continue
        planned[did] = "new" if row is None else "updated"
        yield entry


def is_unchanged(row: dict | None, entry: FileEntry) -> bool:
    """Whether a stored row (from :func:`stored_state`) still describes ``entry``: same size and
    modification time, made by the current extractor, and not marked missing."""
    from cosmoscope.extract import EXTRACTOR_VERSION

    return row is not None and row["file_size"] == entry.size and row["mtime_us"] == entry.mtime_us \
        and row["extractor_version"] == EXTRACTOR_VERSION and row["file_status"] != S.FileStatus.MISSING.value


def stored_state(catalog: Catalog, ids: list[str]) -> dict[str, dict]:
    """What the catalog holds about these datasets' files: dataset_id -> {file_size, mtime_us,
    extractor_version, file_status, extraction_status} (absent ids are not in the catalog)."""
    from cosmoscope.predicate import Predicate, Test

    out = {}
    names = ("dataset_id", "file_size", "extractor_version", "file_status", "extraction_status")
    for b in catalog.store.scan("observations", [*names, "file_mtime"],
                                Predicate.of(Test("dataset_id", "is_in", tuple(ids)))):
        # Times as integers: making tz-aware datetimes of them cost more than the lookup itself.
        values = [b.column(c).to_pylist() for c in names]
        values.append(b.column("file_mtime").cast("int64").to_pylist())
        for *row, mtime in zip(*values):
            out[row[0]] = {**dict(zip(names, row)), "mtime_us": mtime}
    return out


def record_to_row(rec: dict) -> tuple[dict, list[dict]]:
    """An extracted record as an observations row, and the parents it names."""
    from cosmoscope.records import dataset_id_for

    rec = dict(rec)
    path = rec.pop("_path", None) or rec["file_path"]
    parents = rec.pop("_parents", None) or []
    names = S.OBSERVATIONS.schema.names
    extra = {k: rec.pop(k) for k in list(rec) if k not in names}
    if extra:
        ms = rec.get("mission_specific") or {}
        if isinstance(ms, dict):
            ms = {**ms, **{k.lstrip("_"): v for k, v in extra.items()}}
            rec["mission_specific"] = ms
    rec["dataset_id"] = dataset_id_for(path)
    rec["file_name"] = os.path.basename(rec["file_path"])
    rec["file_status"] = rec.get("file_status") or S.FileStatus.PRESENT.value  # missing: it vanished mid-read
    # A re-read file is a new look at it: an old content hash or validation verdict no longer
    # describes it (validation would take a stale hash for silent corruption).
    for stale in ("checksum", "validation_status", "validation_problems", "last_validated"):
        rec.setdefault(stale, None)
    return rec, parents


def _write(catalog: Catalog, batch: list[dict], planned: dict[str, str], summary: IngestSummary,
           run_id: str | None) -> None:
    write_records(catalog, batch, run_id=run_id, summary=summary, planned=planned, reason=summary.reason)


def write_records(catalog: Catalog, records: list[dict], *, run_id: str | None = None,
                  summary: IngestSummary | None = None, planned: dict[str, str] | None = None,
                  reason: str | None = None) -> list[dict]:
    """Write extracted records as rows, with their audit events and the parents they name, in
    one transaction; returns the rows written.

    Shared by bulk ingest, the watcher and ``validate --fix``. ``summary`` (with ``planned``:
    dataset_id -> "new" | "updated") is updated with what was written, when given. A re-read
    file's changed values become ``reextract`` events giving ``reason``.
    """
    rows, pending = rows_and_parents(records)
    if summary is not None:
        for row in rows:
            _count(summary, row, planned if planned is not None else {})
    commit_rows(catalog, rows, pending, run_id=run_id, reason=reason)
    return rows


def rows_and_parents(records: list[dict]) -> tuple[list[dict], list[tuple[str, str | None, str | None]]]:
    """Extracted records as observations rows, and the ``(child_id, parent_name, relationship)``
    each names (for :func:`cosmoscope.ingest.links.add_pending`)."""
    rows, pending = [], []
    for rec in records:
        row, parents = record_to_row(rec)
        rows.append(row)
        for p in parents:
            pending.append((row["dataset_id"], p.get("name"), p.get("relationship")))
    return rows, pending


def commit_rows(catalog: Catalog, rows, pending: list[tuple], *, run_id: str | None = None,
                reason: str | None = None) -> int:
    """Write rows (dicts or an Arrow table), their audit events and pending parents in one
    transaction: an ``ingest`` event per new row, a ``reextract`` event per changed value of a
    row written before (none for a file re-read unchanged). Returns the number of changes."""
    from cosmoscope.ingest.links import add_pending

    if not len(rows):
        return 0
    # Each dict row sets exactly the columns its record carries: an unreadable file's record has
    # no mission or times, and must not blank those of the row it updates just because a
    # readable file in the same batch brought those columns (rows are written column-wise).
    groups: list = [rows]
    if isinstance(rows, list):
        shapes: dict[frozenset, list[dict]] = {}
        for row in rows:
            shapes.setdefault(frozenset(row), []).append(row)
        groups = list(shapes.values())

    details = {"reason": reason} if reason else None

    def write() -> int:
        changes = 0
        with catalog.store.transaction():
            for group in groups:
                changes += catalog._add_records(group, action="ingest", change_action="reextract", run_id=run_id,
                                                details=details)[1]
            add_pending(catalog, pending, run_id=run_id)
        return changes

    return run_again_if_aborted(write)  # VAST: lost a race with another writer, or restarted; written again, by key


def _count(summary: IngestSummary, row: dict, planned: dict[str, str]) -> None:
    status = row.get("extraction_status")
    if status == S.ExtractionStatus.ERROR.value:
        summary.failed += 1
        kind = failure_kind(row.get("extraction_error"))
        summary.failures[kind] += 1
        if len(summary.failure_examples[kind]) < 3:
            summary.failure_examples[kind].append(row["file_path"])
    elif status == S.ExtractionStatus.PARTIAL.value:
        summary.partial += 1
    if planned.pop(row["dataset_id"], "new") == "new":
        summary.new += 1
    else:
        summary.updated += 1
