"""Pre-flight checks: is everything a pipeline is about to process really there and good enough?

>>> ready = catalog.available_datasets("COSMOS-7", min_quality=0.8)  # doctest: +SKIP
>>> report = catalog.preflight(ready, require_calibrated=True, output_dir="/scratch/out")  # doctest: +SKIP
>>> print(report)  # doctest: +SKIP
>>> if report.go:  # doctest: +SKIP
...     with catalog.processing_run("calibrate", inputs=report) as run: ...
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cosmoscope import schema as S
from cosmoscope.errors import InvalidArgumentError
from cosmoscope.pipeline._store import claim_holders, dataset_ids_from, is_live, lease_expiry
from cosmoscope.records import fs_path
from cosmoscope.times import epoch_us, now, to_utc

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog

#: Why a dataset is not ready, by code (the codes appear in ``reasons``).
REASONS = {
    "not_cataloged": "not in the catalog",
    "file_missing": "file missing",
    "file_changed": "file changed since it was cataloged",
    "unreadable": "metadata could not be read",
    "low_quality": "quality below the threshold",
    "not_calibrated": "not calibrated",
    "being_processed": "already being processed",
}

#: Files stat'ed at once by pre-flight (stat is I/O-bound; network file systems answer slowly).
STAT_THREADS = 8
#: Largest difference between a file's mtime and the one cataloged that still counts as equal
#: (a float st_mtime can round the last microsecond differently).
MTIME_TOLERANCE_US = 2

_COLUMNS = ["dataset_id", "file_path", "file_size", "file_mtime", "data_quality_score", "calibration_status",
            "processing_status", "extraction_status", "extraction_error"]


@dataclass
class DatasetVerdict:
    """Whether one dataset is ready, and if not, why (``reasons`` holds codes of :data:`REASONS`)."""

    dataset_id: str
    file_path: str | None = None
    file_size: int | None = None
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons

    def block(self, code: str, detail: str) -> None:
        self.reasons.append(code)
        self.details.append(detail)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "ok": self.ok, "reasons": list(self.reasons),
                "details": list(self.details), "warnings": list(self.warnings), "file_path": self.file_path,
                "file_size": self.file_size}


@dataclass
class SpaceVerdict:
    """Whether the output location has room for the estimated output."""

    output_dir: str
    checked_dir: str
    free_bytes: int
    needed_bytes: int
    output_factor: float

    @property
    def ok(self) -> bool:
        return self.free_bytes >= self.needed_bytes

    def __str__(self) -> str:
        where = self.output_dir if self.checked_dir == self.output_dir else \
            f"{self.output_dir} (not there yet; checked {self.checked_dir})"
        verdict = "enough room" if self.ok else "NOT ENOUGH ROOM"
        return (f"output {where}: {_human(self.free_bytes)} free, about {_human(self.needed_bytes)} needed "
                f"({self.output_factor:g} x the inputs) - {verdict}")

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": self.output_dir, "checked_dir": self.checked_dir, "free_bytes": self.free_bytes,
                "needed_bytes": self.needed_bytes, "output_factor": self.output_factor, "ok": self.ok}


@dataclass
class PreflightReport:
    """The outcome of :func:`preflight`: ``go`` (also the report's truth value), and per dataset
    why it is or is not ready. Prints as a table; ``to_polars()`` gives one row per dataset."""

    datasets: list[DatasetVerdict]
    space: SpaceVerdict | None
    min_quality: float | None
    require_calibrated: bool
    checked_at: dt.datetime

    @property
    def go(self) -> bool:
        """True when there is at least one dataset, every one is ready, and the output fits."""
        return bool(self.datasets) and all(d.ok for d in self.datasets) and (self.space is None or self.space.ok)

    def __bool__(self) -> bool:
        return self.go

    @property
    def ready_ids(self) -> list[str]:
        return [d.dataset_id for d in self.datasets if d.ok]

    @property
    def blocked(self) -> list[DatasetVerdict]:
        return [d for d in self.datasets if not d.ok]

    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(r for d in self.datasets for r in d.reasons))

    def summary(self) -> str:
        """One line: GO or NO-GO and why."""
        n, bad = len(self.datasets), len(self.blocked)
        if not n:
            return "NO-GO: no datasets were selected"
        if self.go:
            return f"GO: all {n:,} datasets are ready"
        parts = []
        if bad:
            counts = ", ".join(f"{c:,} {REASONS.get(r, r)}" for r, c in
                               sorted(self.reason_counts().items(), key=lambda kv: -kv[1]))
            parts.append(f"{bad:,} of {n:,} datasets blocked ({counts})")
        if self.space is not None and not self.space.ok:
            parts.append("not enough room for the output")
        return "NO-GO: " + "; ".join(parts)

    def to_polars(self) -> pl.DataFrame:
        """One row per dataset: dataset_id, ok, reasons (list of codes), detail, warning,
        file_path, file_size."""
        import polars as pl

        return pl.DataFrame({
            "dataset_id": [d.dataset_id for d in self.datasets],
            "ok": [d.ok for d in self.datasets],
            "reasons": [list(d.reasons) for d in self.datasets],
            "detail": ["; ".join(d.details) or None for d in self.datasets],
            "warning": ["; ".join(d.warnings) or None for d in self.datasets],
            "file_path": [d.file_path for d in self.datasets],
            "file_size": [d.file_size for d in self.datasets],
        }, schema={"dataset_id": pl.String, "ok": pl.Boolean, "reasons": pl.List(pl.String), "detail": pl.String,
                   "warning": pl.String, "file_path": pl.String, "file_size": pl.Int64})

    def to_dict(self) -> dict[str, Any]:
        return {"go": self.go, "summary": self.summary(), "checked_at": self.checked_at.isoformat(),
                "min_quality": self.min_quality, "require_calibrated": self.require_calibrated,
                "n_datasets": len(self.datasets), "n_ready": len(self.ready_ids), "reasons": self.reason_counts(),
                "space": self.space.to_dict() if self.space else None,
                "datasets": [d.to_dict() for d in self.datasets]}

    def _conditions(self) -> str:
        parts = [f"quality >= {self.min_quality:g}" if self.min_quality is not None else "any quality",
                 "calibrated only" if self.require_calibrated else "calibration not required"]
        return ", ".join(parts)

    def __str__(self) -> str:
        lines = [f"Pre-flight at {self.checked_at:%Y-%m-%d %H:%M:%S} UTC ({self._conditions()})", self.summary()]
        if self.space is not None:
            lines.append(str(self.space))
        shown = sorted(self.datasets, key=lambda d: (d.ok, d.dataset_id))
        width = max((len(d.dataset_id) for d in shown[:50]), default=0)
        for d in shown[:50]:
            why = "; ".join(d.details) if d.details else (d.file_path or "")
            if d.warnings:
                why += ("; " if why else "") + "note: " + "; ".join(d.warnings)
            lines.append(f"  {'ready  ' if d.ok else 'BLOCKED'}  {d.dataset_id:<{width}}  {why}")
        if len(shown) > 50:
            lines.append(f"  ... {len(shown) - 50:,} more: use report.to_polars()")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        colour = "#1a7f37" if self.go else "#cf222e"
        rows = "".join(
            f"<tr><td><code>{escape(d.dataset_id)}</code></td><td>{'ready' if d.ok else '<b>blocked</b>'}</td>"
            f"<td>{escape('; '.join(d.details or d.warnings))}</td><td>{escape(d.file_path or '')}</td></tr>"
            for d in sorted(self.datasets, key=lambda d: (d.ok, d.dataset_id))[:200])
        more = f"<p>... {len(self.datasets) - 200:,} more: use <code>report.to_polars()</code></p>" \
            if len(self.datasets) > 200 else ""
        space = f"<p>{escape(str(self.space))}</p>" if self.space is not None else ""
        return (f"<div><p style='color:{colour};font-weight:bold'>{escape(self.summary())}</p>"
                f"<p>{escape(self._conditions())}</p>{space}<table><tr><th>dataset</th><th>verdict</th>"
                f"<th>why</th><th>file</th></tr>{rows}</table>{more}</div>")


def available_datasets(catalog: Catalog, mission=None, min_quality: float | None = 0.8,
                       window: dt.timedelta | None = dt.timedelta(days=30), target: str | None = None, *,
                       until=None) -> pl.LazyFrame:
    """Datasets ready to be picked up by a pipeline, as a lazy frame.

    Those of ``mission`` (a name or a list; None: every mission) with quality at least
    ``min_quality``, observed within ``window`` before ``until`` (default now; ``window=None``
    for any time), of ``target`` if given (``"NGC*"`` for a prefix), whose file was present at
    the last look, whose metadata could be read, and that no run is processing or has archived.
    Everything here reaches the store as a pushed-down filter.
    """
    import polars as pl

    if window is not None and not isinstance(window, dt.timedelta):
        raise InvalidArgumentError(f"window must be a datetime.timedelta (e.g. timedelta(days=30)) or None, "
                                   f"not {window!r}")
    if window is not None and window <= dt.timedelta(0):
        raise InvalidArgumentError(f"window must be a positive duration, not {window}")
    end = to_utc(until, name="until") if until is not None else now()
    start = end - window if window is not None else None
    lf = catalog.search(mission=mission, target=target, min_quality=min_quality, start=start,
                        end=end if window is not None or until is not None else None)
    busy = (S.ProcessingStatus.PROCESSING, S.ProcessingStatus.ARCHIVED)
    ready = [s.value for s in S.ProcessingStatus if s not in busy]
    return lf.filter(
        pl.col("processing_status").is_in(ready) | pl.col("processing_status").is_null(),
        pl.col("file_status").is_in([S.FileStatus.PRESENT.value]) | pl.col("file_status").is_null(),
        pl.col("extraction_status").is_in([S.ExtractionStatus.OK.value, S.ExtractionStatus.PARTIAL.value])
        | pl.col("extraction_status").is_null())


def preflight(catalog: Catalog, datasets_or_query, *, min_quality: float | None = 0.8,
              require_calibrated: bool = False, output_dir: str | os.PathLike | None = None,
              output_factor: float = 2.5) -> PreflightReport:
    """Check datasets before processing them; returns a :class:`PreflightReport`.

    Parameters
    ----------
    datasets_or_query
        Dataset ids, a polars frame with ``dataset_id`` (e.g. from ``catalog.search``), or a
        dict of :meth:`~cosmoscope.catalog.Catalog.search` filters.
    min_quality
        Lowest acceptable ``data_quality_score`` (None: any).
    require_calibrated
        Block datasets whose ``calibration_status`` is not ``calibrated``.
    output_dir
        Where the outputs will go: checked for ``output_factor`` times the inputs' total size
        of free space.

    Each dataset is blocked if it is not cataloged, its file is missing or differs in size or
    modification time from what was cataloged, its metadata could not be read, its quality is
    below ``min_quality`` (or unknown), it is not calibrated (if required), or a live run holds
    it (or it is marked processing). A claim whose run's lease ran out is only a warning: the
    next run takes it over.
    """
    if min_quality is not None and (isinstance(min_quality, bool) or not isinstance(min_quality, (int, float))
                                    or not 0 <= min_quality <= 1):
        raise InvalidArgumentError(f"min_quality must be a number from 0 to 1 or None, not {min_quality!r}")
    if isinstance(output_factor, bool) or not isinstance(output_factor, (int, float)) or not output_factor > 0:
        raise InvalidArgumentError(f"output_factor must be a positive number, not {output_factor!r}")
    if isinstance(datasets_or_query, Mapping):
        datasets_or_query = catalog.search(**datasets_or_query)
    ids = dataset_ids_from(datasets_or_query, what="datasets")
    stamp = now()
    rows = {r["dataset_id"]: r for r in catalog.lookup(ids, _COLUMNS).iter_rows(named=True)} if ids else {}
    holders = claim_holders(catalog, list(rows)) if rows else {}
    on_disk = {i: fs_path(r["file_path"], i) for i, r in rows.items() if r["file_path"]}  # non-UTF-8 names
    stats = _stat_all([on_disk[i] for i in ids if i in on_disk])
    verdicts = []
    for did in ids:
        row = rows.get(did)
        v = DatasetVerdict(did)
        verdicts.append(v)
        if row is None:
            v.block("not_cataloged", f"{did} is not in the catalog")
            continue
        v.file_path, v.file_size = row["file_path"], row["file_size"]
        _check_file(v, row, stats.get(on_disk[did]) if did in on_disk else None)
        if row["extraction_status"] == S.ExtractionStatus.ERROR.value:
            v.block("unreadable", f"its metadata could not be read: {row['extraction_error'] or 'unknown error'}")
        q = row["data_quality_score"]
        if min_quality is not None:
            if q is None:
                if row["extraction_status"] != S.ExtractionStatus.ERROR.value:  # "unreadable" says why
                    v.block("low_quality", "it has no quality score")
            elif q < min_quality:
                v.block("low_quality", f"quality {q:.2f} is below {min_quality:g}")
        if require_calibrated and row["calibration_status"] != S.CalibrationStatus.CALIBRATED.value:
            v.block("not_calibrated", f"calibration status is {row['calibration_status'] or 'unknown'}")
        _check_claim(v, row, holders.get(did), stamp)
    space = None
    if output_dir is not None:
        needed = int(sum(d.file_size or 0 for d in verdicts) * output_factor)
        space = _space(os.fspath(output_dir), needed, float(output_factor))
    return PreflightReport(verdicts, space, None if min_quality is None else float(min_quality),
                           bool(require_calibrated), stamp)


def _stat_all(paths: list[str]) -> dict[str, os.stat_result | OSError]:
    def one(p):
        try:
            return p, os.stat(p)
        except OSError as exc:
            return p, exc

    if len(paths) < 64:
        return dict(map(one, paths))
    with ThreadPoolExecutor(STAT_THREADS) as pool:
        return dict(pool.map(one, paths, chunksize=64))


def _check_file(v: DatasetVerdict, row: dict, st) -> None:
    if st is None:
        v.block("file_missing", "the catalog has no path for it")
        return
    if isinstance(st, OSError):
        if isinstance(st, FileNotFoundError):
            v.block("file_missing", f"{row['file_path']} does not exist any more")
        else:
            v.block("file_missing", f"{row['file_path']} cannot be read: {st.strerror}")
        return
    changes = []
    if row["file_size"] is not None and st.st_size != row["file_size"]:
        changes.append(f"size {row['file_size']:,} -> {st.st_size:,} bytes")
    if row["file_mtime"] is not None:
        stored = epoch_us(row["file_mtime"])
        if abs(st.st_mtime_ns // 1000 - stored) > MTIME_TOLERANCE_US:
            seen = dt.datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=dt.timezone.utc)
            changes.append(f"modified {seen:%Y-%m-%d %H:%M:%S} UTC, cataloged as of "
                           f"{row['file_mtime']:%Y-%m-%d %H:%M:%S} UTC")
    if changes:
        v.block("file_changed", "the file changed since it was cataloged (" + "; ".join(changes)
                + "); re-ingest it first")


def _check_claim(v: DatasetVerdict, row: dict, holder, stamp) -> None:
    if holder is not None:
        claim, run = holder
        run = run or {}
        name = f"run {run.get('name')!r} ({claim['run_id']})"
        if is_live(run, stamp):
            v.block("being_processed", f"{name} is processing it")
        else:
            expiry = lease_expiry(run)
            when = f" at {expiry:%Y-%m-%d %H:%M:%S} UTC" if expiry else ""
            v.warnings.append(f"held by {name} whose lease ran out{when}; the next run takes it over")
    elif row["processing_status"] == S.ProcessingStatus.PROCESSING.value:
        v.block("being_processed", "it is marked processing (outside any cataloged run)")


def _space(output_dir: str, needed: int, factor: float) -> SpaceVerdict:
    target = os.path.abspath(output_dir)
    checked = target
    while not os.path.isdir(checked):
        parent = os.path.dirname(checked)
        if parent == checked:
            break
        checked = parent
    free = shutil.disk_usage(checked).free
    return SpaceVerdict(target, checked, int(free), needed, factor)


def _human(n: int) -> str:
    x = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if x < 1000 or unit == "PB":
            return f"{int(x)} B" if unit == "B" else f"{x:,.1f} {unit}"
        x /= 1000
    return f"{n} B"  # pragma: no cover
