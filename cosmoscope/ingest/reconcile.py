"""Comparing watched trees with the catalog, and marking rows whose files went away.

The watcher's reconcile thread (:class:`Reconciler`) walks the trees with the bulk ingest's
crawl and its unchanged-file test, and feeds what is new or changed to the watcher's intake;
rows under the trees whose files no longer exist are marked missing. Rows are never deleted:
a missing file keeps its row, with ``file_status='missing'`` and an audit event saying when and
why (and where it went, when a rename inside the tree showed it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import pyarrow as pa

from cosmoscope import schema as S

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog
    from cosmoscope.ingest.watch import Watcher

log = logging.getLogger(__name__)

#: Files compared with the catalog per lookup.
BLOCK = 2_000


def rows_under(catalog: Catalog, directory: str, *, include_missing: bool = False) -> list[str]:
    """Paths of the catalog's rows under ``directory`` (by default, only those not already missing)."""
    from cosmoscope.predicate import Clause, Predicate, Test

    prefix = directory.rstrip("/") + "/"
    tests = [Test("file_path", "starts_with", prefix)]
    if not include_missing:
        tests.append(Clause((Test("file_status", "==", S.FileStatus.PRESENT.value),
                             Test("file_status", "==", S.FileStatus.CHANGED.value),
                             Test("file_status", "is_null"))))
    out: list[str] = []
    for batch in catalog.store.scan("observations", ["file_path"], Predicate.of(*tests)):
        out.extend(batch.column(0).to_pylist())
    return out


def mark_missing(catalog: Catalog, targets: dict[str, str | None], *, run_id: str | None = None,
                 reason: str = "the file is gone") -> int:
    """Set ``file_status='missing'`` on the rows of the paths in ``targets`` (path -> where it was
    moved, if known), with one audit event each; rows already missing or absent are skipped."""
    from cosmoscope.records import dataset_id_for
    from cosmoscope.times import now

    if not targets:
        return 0
    by_id = {dataset_id_for(p): (p, m) for p, m in targets.items()}
    marked = 0
    ids = list(by_id)
    for start in range(0, len(ids), BLOCK):
        block = ids[start:start + BLOCK]
        with catalog.store.transaction():
            current = catalog.lookup(block, ["dataset_id", "file_status"])
            todo = [r["dataset_id"] for r in current.iter_rows(named=True)
                    if r["file_status"] != S.FileStatus.MISSING.value]
            if not todo:
                continue
            previous = dict(zip(current["dataset_id"], current["file_status"]))
            stamp = now()
            data = pa.table({"dataset_id": todo,
                             "file_status": [S.FileStatus.MISSING.value] * len(todo),
                             "updated_at": pa.array([stamp] * len(todo), S.UTC_TS)})
            catalog.store.update("observations", data, S.OBSERVATIONS.key)
            events = []
            for did in todo:
                path, moved_to = by_id[did]
                details = {"reason": "moved", "moved_to": moved_to} if moved_to else {"reason": reason}
                events.append(dict(action="update", dataset_id=did, run_id=run_id, field="file_status",
                                   from_value=previous.get(did), to_value=S.FileStatus.MISSING.value,
                                   details=details))
                log.info("marked missing: %s%s", path, f" (moved to {moved_to})" if moved_to else "")
            catalog.log_events(events)
            marked += len(todo)
    return marked


class Reconciler:
    """The watcher's reconcile thread: scans requested trees, one request at a time."""

    def __init__(self, watcher: Watcher):
        self.w = watcher
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, ...], bool] = {}  # paths -> full (also look for missing rows)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.scanning = False

    @property
    def busy(self) -> bool:
        return self.scanning or bool(self._requests)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"cosmoscope-{self.w.watcher_id}-scan", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def request(self, paths: list[str], *, full: bool) -> None:
        """Ask for a scan of ``paths`` (``full``: also mark rows of vanished files missing)."""
        with self._lock:
            key = tuple(paths)
            waiting = [root for request in self._requests for root in request]
            if not full and all(any(_under(p, root) for root in waiting) for p in paths):
                return  # a waiting scan covers it (a tree moved in announces every directory)
            if not full and len(paths) == 1:
                for other in [k for k, f in self._requests.items() if not f and all(_under(x, paths[0]) for x in k)]:
                    del self._requests[other]
            self._requests[key] = self._requests.get(key, False) or full
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    if not self._requests:
                        break
                    self.scanning = True
                    paths, full = self._requests.popitem()
                try:
                    self.scan(list(paths), full=full)
                except Exception as exc:  # keep the thread alive; the next request tries again
                    self.w.message = f"scan failed: {type(exc).__name__}: {exc}"
                    log.exception("scan of %s failed", ", ".join(paths))
                finally:
                    self.scanning = False

    def scan(self, paths: list[str], *, full: bool) -> None:
        from cosmoscope.ingest.bulk import is_unchanged, stored_state
        from cosmoscope.ingest.crawl import crawl
        from cosmoscope.ingest.intake import GONE, SCAN
        from cosmoscope.ingest.workers import looks_like_data
        from cosmoscope.records import dataset_id_for

        w, stop = self.w, self._stop
        started = time.monotonic()
        seen = queued = 0

        def on_problem(path, reason):
            log.warning("%s: %s", path, reason)

        def flush(block):
            nonlocal queued
            ids = [dataset_id_for(e.path) for e in block]
            known = stored_state(w.catalog, ids)
            for entry, did in zip(block, ids):
                row = known.get(did)
                if is_unchanged(row, entry) or (row is None and not looks_like_data(entry.path)):
                    continue
                if not w._intake.add_waiting(entry.path, SCAN, stop):
                    return False
                queued += 1
            return True

        block = []
        for entry in crawl(paths, follow_symlinks=w.follow_symlinks, on_problem=on_problem,
                           on_outside=w.note_outside, roots=w._roots):
            if stop.is_set():
                return
            seen += 1
            block.append(entry)
            if len(block) >= BLOCK:
                if not flush(block):
                    return
                block = []
        if block and not flush(block):
            return
        gone = 0
        if full:
            for root in paths:
                rows = rows_under(w.catalog, root)
                if rows and _empty(root):
                    # An unmounted share leaves an empty mount point: that is not 10,000 deletions.
                    log.warning("%s is empty but the catalog holds %d files under it; is it unmounted? "
                                "Their rows are left as they are", root, len(rows))
                    continue
                for path in rows:
                    if stop.is_set():
                        return
                    if not os.path.lexists(path):
                        gone += 1
                        if not w._intake.add_waiting(path, GONE, stop):
                            return
        if full:
            from cosmoscope.times import now

            w.last_reconcile_at = now()
            w._scans_done += 1
        log.info("scanned %s: %d files, %d new or changed, %d gone, in %.1f s", ", ".join(paths), seen, queued,
                 gone, time.monotonic() - started)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _empty(directory: str) -> bool:
    try:
        with os.scandir(directory) as it:
            return next(it, None) is None
    except OSError:
        return True
