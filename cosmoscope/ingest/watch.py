"""Continuous monitoring: catalog files moments after they land, re-read them when they change,
mark them missing when they go.

>>> watcher = cat.watch(["/data/cosmos7"])        # doctest: +SKIP
>>> watcher.wait_idle(); watcher.status()          # doctest: +SKIP
>>> watcher.stop()                                 # doctest: +SKIP

or ``cosmoscope watch /data/cosmos7`` as a service (see docs/operations.md).

How it works
------------
One process, three kinds of threads:

- **watchdog's observer** (inotify on Linux; ``poll=True`` stats the tree every
  ``poll_interval`` seconds, for NFS and other file systems without change events) hands each
  event to :class:`Intake`, a dict ``path -> what happened``: a file written in a thousand
  chunks is one entry. The intake holds at most ``max_pending`` paths; beyond that new paths
  are dropped and a reconcile scan is scheduled, which finds them (memory stays bounded
  however large the burst).
- **the reconcile thread** walks the trees (at start, every ``reconcile_every`` seconds, after
  an overflow, and inside directories that appear) and compares them with the catalog: new or
  changed files go to the intake (waiting for room rather than dropping), rows whose file is
  gone are marked missing. This catches whatever happened while no watcher ran.
- **the loop** (the caller's thread for ``cosmoscope watch``, a background thread for
  :meth:`Catalog.watch`) moves paths from the intake to a
  :class:`~cosmoscope.ingest.settle.SettleTracker`, takes files once they are complete (see
  :mod:`cosmoscope.ingest.settle`), skips any the catalog already holds unchanged, extracts
  the rest in ``workers`` crash-isolated processes, and writes each batch of at most
  ``batch_files`` rows in one transaction, with field-level change events for re-read files;
  then it resolves lineage whose parents just arrived, marks deleted files missing (rows are
  never dropped), and writes a heartbeat row to the ``watchers`` table so
  ``cosmoscope status`` can report from another process.

SIGINT and SIGTERM (``cosmoscope watch``) or :meth:`Watcher.stop` end it cleanly: the batch in
hand is written, files still settling are left for the next start's reconcile scan.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import warnings
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.errors import CosmoscopeError, InvalidArgumentError
from cosmoscope.ingest.heartbeat import WatcherBusyError, refuse_if_busy, watcher_id_for, write_heartbeat
from cosmoscope.ingest.intake import CLOSED, DIR_GONE, DIR_NEW, FILE_FLAGS, MOVED_IN, WRITTEN, EventHandler, Intake
from cosmoscope.ingest.intake import wanted as _wanted
from cosmoscope.ingest.settle import SettleTracker

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

__all__ = ["WatchError", "Watcher", "WatcherBusyError"]

log = logging.getLogger(__name__)

class WatchError(CosmoscopeError):
    """The file system would not let the watcher watch (limits, permissions)."""


class Watcher:
    """Catalogs files under ``paths`` as they arrive, change and go. See the module docstring.

    Parameters
    ----------
    catalog
        Where rows, events and heartbeats are written.
    paths
        Directories to watch (recursively).
    profile
        Mission profile forced on every file (default: chosen by path).
    poll
        Use the polling observer (NFS, SMB, FUSE: file systems that send no change events).
    poll_interval
        Seconds between polls.
    settle
        Seconds a file's size and mtime must stay unchanged when no close event is expected.
    stall
        Seconds after which a file seen being written but never closed, or one failing its
        format check, is cataloged anyway (its row then says what is wrong with it).
    reconcile_every
        Seconds between full comparisons of the trees with the catalog (0: only at start).
    heartbeat_every
        Seconds between heartbeat rows.
    workers
        Extraction processes (0: in the watcher's own process, without crash isolation).
    batch_files
        Most files extracted and written per transaction.
    follow_symlinks
        False: linked directories are not entered in scans; True: they are, when they lie under
        ``paths``; ``"all"``: every link is followed. A file whose real path leaves ``paths`` is
        read only with ``"all"``; otherwise it is logged by name and left alone.
    max_pending
        Most paths held waiting (intake and settling each).
    initial_scan
        Compare the trees with the catalog at start (catches what happened while down).
    """

    def __init__(self, catalog: Catalog, paths, *, profile: str | None = None, poll: bool = False,
                 poll_interval: float = 2.0, settle: float = 2.0, stall: float = 30.0,
                 reconcile_every: float = 600.0, heartbeat_every: float = 5.0, workers: int = 1,
                 batch_files: int = 500, max_pending: int = 100_000, follow_symlinks: bool | str = False,
                 initial_scan: bool = True):
        from cosmoscope.ingest.crawl import given_paths

        paths = given_paths(paths, what="a directory to watch")
        if not paths:
            raise InvalidArgumentError("give at least one directory to watch")
        roots = []
        for p in paths:
            root = os.path.abspath(os.fspath(p))
            if not os.path.isdir(root):
                raise InvalidArgumentError(f"cannot watch {root}: it is not a directory (or does not exist)")
            roots.append(root.rstrip("/") or "/")
        if profile is not None:
            from cosmoscope.extract.profiles import load_profiles

            load_profiles().resolve(profile)  # an unknown profile fails here, before anything starts
        for name, value in (("settle", settle), ("stall", stall), ("poll_interval", poll_interval),
                            ("heartbeat_every", heartbeat_every), ("reconcile_every", reconcile_every)):
            if value < 0:
                raise InvalidArgumentError(f"{name} must be zero or more seconds, not {value!r}")
        if batch_files < 1 or max_pending < 2:
            raise InvalidArgumentError("batch_files must be at least 1 and max_pending at least 2")
        self.catalog = catalog
        self.roots = sorted(dict.fromkeys(roots))
        self.profile, self.poll, self.poll_interval = profile, poll, poll_interval
        self.settle, self.stall = settle, stall
        self.reconcile_every, self.heartbeat_every = reconcile_every, heartbeat_every
        self.workers, self.batch_files, self.max_pending = workers, batch_files, max_pending
        from cosmoscope.ingest.roots import Roots, follow_mode

        self.follow_symlinks, self.initial_scan = follow_symlinks, initial_scan
        self._roots = Roots(self.roots, everywhere=follow_mode(follow_symlinks)[1])
        self._outside: set[str] = set()  # paths already reported as outside the trees
        self.host = socket.gethostname()
        self.watcher_id = watcher_id_for(self.host, self.roots)
        self.run_id = f"watch-{self.watcher_id}"
        self.state = "new"
        self.message: str | None = None
        self.counts = {"new": 0, "updated": 0, "failed": 0, "missing": 0, "unchanged": 0, "requeued": 0,
                       "outside": 0}
        self.last_file: str | None = None
        self.last_file_at = None
        self.last_reconcile_at = None
        self.started_at = None
        self._intake = Intake(max_pending)
        self._tracker: SettleTracker | None = None
        self._gone: dict[str, str | None] = {}
        self._gone_dirs: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer = None
        self._busy = False  # the loop holds a batch
        self._scans_done = 0
        self._error: BaseException | None = None
        from cosmoscope.ingest.reconcile import Reconciler

        self._reconciler = Reconciler(self)

    # -- life ------------------------------------------------------------------------------

    def start(self) -> Watcher:
        """Start watching from background threads (returns at once)."""
        if self._thread is not None:
            return self
        self._begin()
        self._thread = threading.Thread(target=self._run_loop, name=f"cosmoscope-{self.watcher_id}", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Watch in the calling thread until :meth:`stop` (e.g. from a signal handler)."""
        self._begin()
        self._run_loop()
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop: finish the batch in hand, write the last heartbeat, release the observer."""
        self._stop.set()
        self._intake.wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def request_stop(self, *_signal_args) -> None:
        """Ask the loop to end (safe from a signal handler)."""
        self._stop.set()
        self._intake.wake.set()

    @property
    def running(self) -> bool:
        return self.state == S.WatcherState.RUNNING.value and not self._stop.is_set()

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Watcher {self.watcher_id} {self.state} {', '.join(self.roots)} backlog={self.backlog}>"

    def _repr_html_(self) -> str:
        from html import escape

        s = self.status()
        rows = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                       for k, v in s.items())
        return f"<b>cosmoscope watcher</b><table>{rows}</table>"

    @property
    def backlog(self) -> int:
        """Files seen and not cataloged yet."""
        return len(self._intake) + (len(self._tracker) if self._tracker is not None else 0) + \
            (1 if self._busy else 0)

    def status(self) -> dict:
        """What the watcher is doing, as its heartbeat row says it."""
        return {"watcher_id": self.watcher_id, "state": self.state, "paths": self.roots,
                "observer": self._observer_name(), "backlog": self.backlog, **{f"files_{k}": v for k, v in
                                                                               self.counts.items()},
                "last_file": self.last_file, "last_file_at": self.last_file_at,
                "last_reconcile_at": self.last_reconcile_at, "message": self.message}

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until the start-up scan is done and nothing is waiting; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._error is not None or self.state in ("stopped", "failed"):
                return False
            if self._scans_done and not self._reconciler.busy and self.backlog == 0:
                return True
            time.sleep(0.02)
        return False

    def _observer_name(self) -> str:
        if self._observer is None:
            return "polling" if self.poll else "native"
        return "polling" if self.poll else type(self._observer).__name__.replace("Observer", "").lower() or "native"

    def _begin(self) -> None:
        from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileAttribEvent,
                                     FileClosedEvent, FileCreatedEvent, FileDeletedEvent, FileModifiedEvent,
                                     FileMovedEvent)

        refuse_if_busy(self.catalog, self.watcher_id, self.host, self.roots, self.heartbeat_every)
        if self.poll:
            from watchdog.observers.polling import PollingObserver

            observer = PollingObserver(timeout=self.poll_interval)
            close_events = False
        else:
            from watchdog.observers import Observer

            try:
                observer = Observer(generate_full_events=True)  # moves into the tree arrive as moves
            except TypeError:  # observers other than inotify take no such option
                observer = Observer()
            close_events = type(observer).__name__ == "InotifyObserver"
        self._tracker = SettleTracker(self.settle, self.stall, close_events=close_events)
        # Not opens and read-only closes: the watcher's own reads would wake it for nothing.
        wanted = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileMovedEvent,
                  FileDeletedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
        handler = EventHandler(self._intake, self.wanted)
        # watchdog warns when a directory created and filled in a hurry is registered twice;
        # the second registration is the right one, and the scan inside new directories covers both.
        warnings.filterwarnings("ignore", message="Callback with id .* already exists", category=RuntimeWarning)
        try:
            for root in self.roots:
                observer.schedule(handler, root, recursive=True, event_filter=wanted)
            observer.start()  # before the first scan: nothing written during the scan is missed
        except OSError as exc:
            if observer.is_alive():
                observer.stop()
            hint = ("raise fs.inotify.max_user_watches (one watch per directory; see docs/operations.md) "
                    "or use poll=True" if "inotify" in str(exc) else "check the path, or use poll=True")
            raise WatchError(f"cannot watch {', '.join(self.roots)}: {exc}; {hint}") from exc
        self._observer = observer
        self.started_at = _now()
        self.state = S.WatcherState.RUNNING.value
        self._reconciler.start()
        if self.initial_scan:
            self._reconciler.request(self.roots, full=True)
        else:
            self._scans_done = 1
        self._beat()
        log.info("watching %s (%s observer, settle %.1f s, %d worker%s); catalog %s; watcher %s",
                 ", ".join(self.roots), self._observer_name(), self.settle, self.workers,
                 "" if self.workers == 1 else "s", self.catalog.url, self.watcher_id)

    def _run_loop(self) -> None:
        from cosmoscope.ingest.workers import ExtractionPool

        pool = ExtractionPool(self.workers, self.profile, None if self._roots.everywhere else self._roots)
        next_beat = time.monotonic() + self.heartbeat_every
        next_reconcile = time.monotonic() + self.reconcile_every if self.reconcile_every else None
        failures = 0
        try:
            if self.workers:
                _start_workers(pool)
            while not self._stop.is_set():
                due = self._tracker.next_due()
                self._intake.wake.wait(0.25 if due is None else min(0.25, max(due, 0.01)))
                self._intake.wake.clear()
                if self._stop.is_set():
                    break
                self._busy = True  # from the intake to the catalog, files are in no queue: count them
                try:
                    self._pull()
                    ready = self._tracker.ready(self.batch_files)
                    if ready or self._gone or self._gone_dirs:
                        self._process(pool, ready)
                    failures = 0
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # the catalog was locked too long, a disk filled up, ...
                    failures += 1
                    self.message = f"{type(exc).__name__}: {exc}"
                    log.exception("watcher %s: a batch failed (attempt %d); its files are looked at again "
                                  "by the next scan", self.watcher_id, failures)
                    self._reconciler.request(self.roots, full=True)
                    self._stop.wait(min(60.0, 2.0 ** failures))
                finally:
                    self._busy = False
                if self._intake.overflowed:
                    self._intake.overflowed = False
                    log.warning("more than %d files waiting: catching up with a scan of the trees",
                                self.max_pending)
                    self._reconciler.request(self.roots, full=True)
                now_m = time.monotonic()
                if next_reconcile is not None and now_m >= next_reconcile:
                    self._reconciler.request(self.roots, full=True)
                    next_reconcile = now_m + self.reconcile_every
                if now_m >= next_beat:
                    try:
                        self._beat()
                    except Exception as exc:  # a busy catalog must not end the watcher; status shows the gap
                        log.warning("could not write a heartbeat: %s", exc)
                    next_beat = now_m + self.heartbeat_every
                gone = [r for r in self.roots if not os.path.isdir(r)]
                if gone:
                    # Every row under a removed root is missing, whichever of its delete events
                    # have arrived by now (rmtree outruns the observer).
                    self._pull()
                    self._gone_dirs.update(gone)
                    self._mark_missing()
                    raise WatchError(f"the watched directory {gone[0]} was removed (or unmounted)")
        except BaseException as exc:
            self._error = exc
            self.state, self.message = S.WatcherState.FAILED.value, f"{type(exc).__name__}: {exc}"
            if isinstance(exc, CosmoscopeError):
                log.error("watcher %s cannot go on: %s", self.watcher_id, exc)
            elif not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                log.exception("watcher %s failed", self.watcher_id)
        finally:
            self._stop.set()
            self._shutdown(pool)

    def _shutdown(self, pool) -> None:
        try:
            if self._observer is not None:
                self._observer.stop()
                self._observer.join(10)
            self._reconciler.stop()
            pool.close()
        finally:
            if self.state != S.WatcherState.FAILED.value:
                self.state = S.WatcherState.STOPPED.value
                self.message = self.message or "stopped on request"
            try:
                self._beat(stopping=True)
            except Exception as exc:  # the catalog may be what failed
                log.warning("could not write the last heartbeat: %s", exc)
            log.info("watcher %s %s: %d new, %d updated, %d unreadable, %d marked missing; %d files left "
                     "for the next scan", self.watcher_id, self.state, self.counts["new"], self.counts["updated"],
                     self.counts["failed"], self.counts["missing"], self.backlog)

    # -- the loop's work ---------------------------------------------------------------

    def wanted(self, path: str) -> bool:
        """Whether ``path`` is a file name the catalog could hold (see :func:`~cosmoscope.ingest.intake.wanted`)."""
        return _wanted(self.roots, path)

    def _pull(self) -> None:
        room = max(self.max_pending - len(self._tracker), 0)
        for path, flags, moved_to in self._intake.take(room):
            if flags & DIR_GONE:
                self._gone_dirs.add(path)
            if flags & DIR_NEW:
                self._reconciler.request([path], full=False)
            if not flags & FILE_FLAGS:
                continue
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                self._tracker.drop(path)
                self._gone[path] = moved_to
                continue
            except OSError as exc:
                log.warning("%s: cannot look at it: %s", path, exc.strerror or exc)
                continue
            if not _is_regular(st):
                continue
            if why := self._roots.outside(path):
                self.note_outside(path, why)
                self._tracker.drop(path)
                continue
            self._gone.pop(path, None)
            self._tracker.observe(path, st, written=bool(flags & WRITTEN), closed=bool(flags & (CLOSED | MOVED_IN)))

    def note_outside(self, path: str, reason: str) -> None:
        """Log, once per path, a file left alone because its real path leaves the trees."""
        if path not in self._outside:
            self._outside.add(path)
            self.counts["outside"] += 1
            log.warning("%s: %s", path, reason)

    def _process(self, pool, ready) -> None:
        from cosmoscope.ingest.bulk import is_unchanged, stored_state
        from cosmoscope.ingest.changes import write_with_changes
        from cosmoscope.ingest.links import resolve_pending
        from cosmoscope.ingest.workers import looks_like_data
        from cosmoscope.records import dataset_id_for

        started = time.monotonic()
        todo, entries = [], {}
        if ready:
            ids = [dataset_id_for(e.path) for e in ready]
            known = stored_state(self.catalog, ids)
            for entry, did in zip(ready, ids):
                row = known.get(did)
                if is_unchanged(row, entry):  # a scan and an event both brought it: read once
                    self.counts["unchanged"] += 1
                elif row is not None or looks_like_data(entry.path):
                    todo.append(entry)
                    entries[entry.path] = entry
        records = []
        crashes = pool.crashes
        for rec in pool.extract(todo):
            if rec.get("_skip"):
                if rec.get("_outside"):
                    self.note_outside(rec["_path"], rec["_skip"])
                continue
            entry = entries[rec["_path"]]
            try:
                st = os.stat(entry.path)
            except OSError:
                continue  # gone meanwhile: its delete event follows
            if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
                # It changed while being read: the record may describe neither version.
                self.counts["requeued"] += 1
                self._tracker.observe(entry.path, st, written=True)
                continue
            records.append(rec)
        if self._stop.is_set() and pool.crashes != crashes:
            # Workers killed by the same signal that stops us are no evidence against the files.
            log.info("stopping: %d files read during shutdown are left for the next scan", len(records))
            return
        result = write_with_changes(self.catalog, records, reason="the file changed on disk (watcher)",
                                    run_id=self.run_id)
        missing = self._mark_missing()
        linked = 0
        if result.rows:
            linked, _ = resolve_pending(self.catalog, run_id=self.run_id)
            self.counts["new"] += len(result.new)
            self.counts["updated"] += len(result.updated)
            self.counts["failed"] += len(result.failed)
            self.last_file = result.rows[-1]["file_path"]
            self.last_file_at = _now()
            for row in result.rows:
                if row.get("extraction_status") == S.ExtractionStatus.ERROR.value:
                    log.warning("%s: cataloged as unreadable: %s", row["file_path"], row.get("extraction_error"))
                else:
                    log.debug("cataloged %s", row["file_path"])
        if result.rows or missing:
            log.info("cataloged %d files (%d new, %d updated, %d unreadable)%s%s in %.2f s; backlog %d",
                     len(result.rows), len(result.new), len(result.updated), len(result.failed),
                     f", {missing} marked missing" if missing else "",
                     f", {linked} lineage links" if linked else "", time.monotonic() - started,
                     len(self._intake) + len(self._tracker))

    def _mark_missing(self) -> int:
        """Mark the rows of files (and directories) that went away as missing; returns how many."""
        from cosmoscope.ingest.reconcile import mark_missing, rows_under

        gone, self._gone = self._gone, {}
        dirs, self._gone_dirs = self._gone_dirs, set()
        targets: dict[str, str | None] = {p: m for p, m in gone.items() if not os.path.lexists(p)}
        for d in dirs:
            if os.path.isdir(d):
                continue
            for path in rows_under(self.catalog, d):
                if not os.path.lexists(path):
                    targets.setdefault(path, None)
        n = mark_missing(self.catalog, targets, run_id=self.run_id) if targets else 0
        self.counts["missing"] += n
        return n

    def _beat(self, stopping: bool = False) -> None:
        stamp = _now()
        row = {"watcher_id": self.watcher_id, "host": self.host, "pid": os.getpid(), "paths": json.dumps(self.roots),
               "observer": self._observer_name(), "profile": self.profile, "actor": self.catalog.actor,
               "state": self.state, "message": self.message, "started_at": self.started_at,
               "heartbeat_at": stamp, "heartbeat_seconds": float(self.heartbeat_every),
               "stopped_at": stamp if stopping else None, "backlog": self.backlog,
               "files_new": self.counts["new"], "files_updated": self.counts["updated"],
               "files_failed": self.counts["failed"], "files_missing": self.counts["missing"],
               "last_file": self.last_file, "last_file_at": self.last_file_at,
               "last_reconcile_at": self.last_reconcile_at}
        write_heartbeat(self.catalog, row)


def _start_workers(pool) -> None:
    """Start the extraction processes now, so the first file waits for no start-up, and deaf to
    SIGINT: Ctrl-C in a terminal reaches the whole process group, and the watcher decides when
    its workers stop. A Ctrl-C while they start is not lost (see ``workers._submit``)."""
    pool.sigint_to_workers = False
    pool._pool = pool._new_pool(pool.workers)


def _is_regular(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def _now():
    from cosmoscope.times import now

    return now()
