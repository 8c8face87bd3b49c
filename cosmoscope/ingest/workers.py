"""Extraction in worker processes, so a file that crashes a format library cannot end the run.

Files go to a process pool in small chunks, with a bounded number of chunks in flight (memory
stays flat however big the tree). If a worker dies (a segfault in a C library, the OOM killer),
the chunks it may have held are re-run one file at a time in a fresh single-worker pool, so the
one file that kills its reader is found and recorded as an error, and every other file is
extracted normally.

Each file has a time budget in a worker (``COSMOSCOPE_FILE_TIMEOUT`` seconds, default 60; 0
for none): a read still going after it is interrupted and the file recorded as an error saying
so. A worker stuck inside a C library, where the interruption cannot reach, is killed once the
budget is :data:`HARD_GRACE` seconds past, and the file is found as a crashing one would be.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from cosmoscope.errors import CosmoscopeError
from cosmoscope.ingest.crawl import FileEntry
from cosmoscope.ingest.roots import Roots

log = logging.getLogger(__name__)

CHUNK = 16
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: Default seconds one file may take in a worker process (``COSMOSCOPE_FILE_TIMEOUT``).
FILE_TIMEOUT = 60.0
#: Seconds past its budget after which a worker that did not give the file up is killed.
HARD_GRACE = 10.0
#: How often the pool looks for workers stuck past their budget.
_TICK = 1.0
#: In a worker process: (shared array, slot) where it notes its pid and when its file started.
_SLOT = None


class FileTimeout(BaseException):
    """One file took longer than its time budget (a BaseException, so that the extractors'
    ``except Exception`` cannot swallow it)."""


def file_timeout() -> float:
    """Seconds one file may take in a worker process (0: no limit)."""
    try:
        return max(0.0, float(os.environ.get("COSMOSCOPE_FILE_TIMEOUT", FILE_TIMEOUT)))
    except ValueError:
        return FILE_TIMEOUT


class WorkerStartError(CosmoscopeError):
    """Extraction worker processes could not be started."""


def extract_entry(entry: FileEntry, profile: str | None, roots: Roots | None = None) -> dict:
    """Extract one crawled file (in whatever process calls it).

    A file whose name promises no data format and whose first bytes show none (a README, a
    sidecar JSON) gives ``{"_skip": reason}`` instead of an error row; so does one whose real
    path leaves ``roots`` (then with ``"_outside": True``), checked again here, just before it
    would be opened, in case a link replaced the file since the crawl.
    """
    from cosmoscope.extract import extract_file

    if roots is not None and (why := roots.outside(entry.path)):
        return {"_skip": why, "_outside": True, "_path": entry.path}
    if not looks_like_data(entry.path):
        return {"_skip": "not a data file", "_path": entry.path}
    rec = _within_budget(lambda: extract_file(entry.path, profiles=profile), entry)
    rec["_path"] = entry.path  # the exact path as crawled, for ids and lineage
    if rec.get("file_size") == entry.size:
        # The crawl's nanosecond mtime, exactly: a float timestamp can round differently, and
        # the next run would take an unchanged file for a changed one.
        rec["file_mtime"] = _EPOCH + dt.timedelta(microseconds=entry.mtime_us)
    return rec


def _within_budget(read, entry: FileEntry) -> dict:
    """``read()``, interrupted after :func:`file_timeout` seconds in a worker process's main
    thread (never in a user's own process, where SIGALRM may belong to someone else)."""
    import signal
    import threading
    import time

    budget = file_timeout()
    if _SLOT is None or not budget or threading.current_thread() is not threading.main_thread():
        return read()

    def expire(*_):
        raise FileTimeout()

    slots, i = _SLOT
    old = signal.signal(signal.SIGALRM, expire)
    slots[2 * i + 1] = time.monotonic()
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, budget)
            return read()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except FileTimeout:
        log.warning("%s: gave up after %g s", entry.path, budget)
        return timeout_record(entry, budget)
    finally:
        slots[2 * i + 1] = 0.0
        signal.signal(signal.SIGALRM, old)


def timeout_record(entry: FileEntry, budget: float) -> dict:
    """The record of a file whose reading took longer than its time budget."""
    rec = crashed_record(entry, "")
    rec["quality_flags"] = ["unreadable", "read_timeout"]
    rec["extraction_error"] = (f"reading took too long: given up after {budget:g} s (COSMOSCOPE_FILE_TIMEOUT); the "
                               "file is probably damaged, or far larger than its format needs")
    return rec


def looks_like_data(path: str) -> bool:
    """Whether a file's name promises a data format, or its first bytes show one (cheap)."""
    from cosmoscope.extract import sniff_format
    from cosmoscope.extract.registry import guess_by_suffix

    return guess_by_suffix(path) is not None or sniff_format(path) is not None


def _extract_chunk(entries: list[FileEntry], profile: str | None, roots: Roots | None) -> list[dict]:
    return [extract_entry(e, profile, roots) for e in entries]


def _exit_with_parent() -> None:
    """End this worker process when the process that started it dies (SIGKILL, the OOM killer).

    A worker waiting for its next files never learns of it otherwise: it holds both ends of
    the pool's queue itself, so no end-of-file ever comes, and it would idle on forever.
    """
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        parent.join()  # returns when the parent's end of the spawn pipe closes: it is gone
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _warm_up(slots=None) -> None:
    global _SLOT
    _exit_with_parent()
    if slots is not None:  # claim a slot to note each file's start in, for the parent to see
        with slots.get_lock():
            i = next(k for k in range(len(slots) // 2) if not slots[2 * k])
            slots[2 * i] = os.getpid()
        _SLOT = (slots, i)
    # Import the readers once per worker rather than on its first file (astropy.time alone
    # takes 0.3-0.6 s, paid on the first file with a TT time otherwise).
    import astropy.time  # noqa: F401

    import cosmoscope.extract  # noqa: F401
    import cosmoscope.extract.fits  # noqa: F401


def _ping() -> int:
    return os.getpid()


def crashed_record(entry: FileEntry, exitcode: str) -> dict:
    """The record of a file whose reader took its process down."""
    from cosmoscope.extract import EXTRACTOR_VERSION
    from cosmoscope.records import display_path

    from cosmoscope.extract.core import from_path

    return {"file_path": display_path(entry.path), "_path": entry.path, "file_size": entry.size,
            "extraction_status": "error", "extractor_version": EXTRACTOR_VERSION, "data_quality_score": None,
            "quality_flags": ["unreadable", "reader_crashed"], "field_sources": {}, "mission_specific": {},
            "extraction_error": f"reading this file crashed the format library ({exitcode}); the file is "
                                "probably corrupt or uses a feature the library mishandles",
            "_parents": [], **from_path(entry.path)}


def default_workers() -> int:
    """One worker per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ExtractionPool:
    """Extract files in ``workers`` processes (0: in this process, no isolation); files whose
    real path leaves ``roots`` are not read (see :mod:`cosmoscope.ingest.roots`)."""

    def __init__(self, workers: int | None = None, profile: str | None = None, roots: Roots | None = None):
        self.workers = default_workers() if workers is None else workers
        self.profile = profile
        self.roots = roots
        self._pool: ProcessPoolExecutor | None = None
        self._slots = None
        self.crashes = 0

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        """A started pool; raises :class:`WorkerStartError` if workers cannot start at all."""
        # spawn: workers never inherit the parent's threads, locks or open catalog connections.
        ctx = multiprocessing.get_context("spawn")
        self._slots = ctx.Array("d", 2 * (workers + 1))  # per worker: pid, start of its current file
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_warm_up,
                                   initargs=(self._slots,))
        try:
            pool.submit(_ping).result()
        except BrokenProcessPool as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            # Otherwise every file would look like one that crashes its reader.
            raise WorkerStartError(
                "cosmoscope could not start its extraction worker processes. In a script, put the code "
                "that ingests under `if __name__ == \"__main__\":` (worker processes import the main "
                "module), or pass workers=0 to extract in this process") from exc
        return pool

    def extract(self, entries: Iterable[FileEntry]) -> Iterator[dict]:
        """Records for ``entries``, in completion order."""
        if self.workers == 0:
            for e in entries:
                yield extract_entry(e, self.profile, self.roots)
            return
        in_flight: dict[Future, list[FileEntry]] = {}
        limit = 4 * self.workers
        chunks = _chunks(entries, CHUNK)
        exhausted = False
        suspects: list[FileEntry] = []
        while True:
            while not exhausted and len(in_flight) < limit:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                if self._pool is None:  # started on the first file, not for a run with nothing to read
                    self._pool = self._new_pool(self.workers)
                try:
                    in_flight[self._pool.submit(_extract_chunk, chunk, self.profile, self.roots)] = chunk
                except BrokenProcessPool:
                    suspects.extend(chunk)
                    break
            if not in_flight:
                break
            done, _ = wait(in_flight, timeout=_TICK, return_when=FIRST_COMPLETED)
            if not done:
                self._kill_overdue()
                continue
            broken = False
            for fut in done:
                chunk = in_flight.pop(fut)
                try:
                    yield from fut.result()
                except BrokenProcessPool:
                    broken = True
                    suspects.extend(chunk)
            if broken:
                # Every chunk still in flight died with the pool: re-run them one file at a time.
                for chunk in in_flight.values():
                    suspects.extend(chunk)
                in_flight.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self.crashes += 1
                log.warning("a worker process died; re-reading %d files one by one to find the cause", len(suspects))
                yield from self._isolate(suspects)
                suspects = []
                self._pool = self._new_pool(self.workers)
        if suspects:
            yield from self._isolate(suspects)

    def _kill_overdue(self) -> bool:
        """Kill the workers whose current file is :data:`HARD_GRACE` seconds past its budget
        (stuck where the budget's interruption cannot reach); True if any was."""
        import signal
        import time

        budget, slots = file_timeout(), self._slots
        if not budget or slots is None:
            return False
        killed = False
        now = time.monotonic()
        for k in range(len(slots) // 2):
            pid, started = int(slots[2 * k]), slots[2 * k + 1]
            if pid and started and now - started > budget + HARD_GRACE:
                log.warning("an extraction worker is stuck on one file for %.0f s; stopping it", now - started)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                slots[2 * k + 1] = 0.0
                killed = True
        return killed

    def _isolate(self, entries: list[FileEntry]) -> Iterator[dict]:
        pool = self._new_pool(1)
        try:
            for entry in entries:
                fut = pool.submit(extract_entry, entry, self.profile, self.roots)
                stuck = False
                try:
                    while True:
                        done, _ = wait([fut], timeout=_TICK)
                        if done:
                            break
                        stuck = self._kill_overdue() or stuck
                    yield fut.result()
                except BrokenProcessPool:
                    if stuck:
                        yield timeout_record(entry, file_timeout())
                    else:
                        log.warning("reading %s crashed its worker process", entry.path)
                        yield crashed_record(entry, "the worker process died")
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._new_pool(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _chunks(entries: Iterable[FileEntry], size: int) -> Iterator[list[FileEntry]]:
    buf: deque[FileEntry] = deque()
    for e in entries:
        buf.append(e)
        if len(buf) >= size:
            yield list(buf)
            buf.clear()
    if buf:
        yield list(buf)
