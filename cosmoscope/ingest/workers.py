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

Workers take a third of a second or more to start (new interpreters importing numpy, astropy
and the format libraries), longer than a small folder takes to read. With ``head_start`` (bulk
ingest) the files that are safe to read in this process (:func:`in_process_ok`: small FITS or
CSV, plain or gzip/bzip2-compressed, which the extractors read in Python rather than through a C
library that can crash or hang) are read here at once, in a run of at most :data:`SMALL_RUN`
files; a compressed one is read under a cap of :data:`INFLATE_MAX_BYTES` decompressed bytes
and handed to a worker if it grows past it (a compression bomb). One worker starts, while this
process reads, for the others (HDF5, netCDF, Unix-compressed, big, a plugin's: real HDF5 files
crash netCDF4, and a damaged one hangs libhdf5 where no signal reaches, so they are never read
here); a small folder of FITS and CSV files starts none, and the workers are let go as soon as the last
file is read, so that they exit while the rows are written. A longer run reads everything in
workers, where two cores do twice the work (reading here as well only made the processes
compete for them). What is read where depends on the files alone, never on a clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from cosmoscope.errors import CosmoscopeError
from cosmoscope.ingest.crawl import FileEntry
from cosmoscope.ingest.roots import Roots
from cosmoscope.times import EPOCH

log = logging.getLogger(__name__)

CHUNK = 16
#: Runs of at most this many files read every file that is safe to read here in this process.
SMALL_RUN = 256
#: Largest file read in this process (a bigger one waits for a worker).
IN_PROCESS_MAX_BYTES = 8 * 2**20
#: Most bytes a compressed file read in this process may decompress to (past it: a worker reads it).
INFLATE_MAX_BYTES = 64 * 2**20
#: A small run with at most this many files for workers starts one worker, not one per CPU
#: (each takes as long to start as one reads some hundred small files, on the cores this
#: process reads on).
ONE_WORKER_FILES = 4 * CHUNK
#: Default seconds one file may take in a worker process (``COSMOSCOPE_FILE_TIMEOUT``).
FILE_TIMEOUT = 60.0
#: Seconds past its budget after which a worker that did not give the file up is killed.
HARD_GRACE = 10.0
#: How often the pool looks for workers stuck past their budget.
_TICK = 1.0
#: In a worker process: (shared array, slot) where it notes its pid and when its file started.
_SLOT = None
#: Workers started before this process opened its catalog: (workers, pool, ready, slots); see
#: :func:`start_spare`.
_spare: tuple | None = None


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
        rec["file_mtime"] = EPOCH + dt.timedelta(microseconds=entry.mtime_us)
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


def in_process_ok(entry: FileEntry) -> bool:
    """Whether a file may be read in this process rather than in a worker: small, and FITS or
    CSV by its first bytes, plain or gzip/bzip2-compressed (zlib and libbz2 reject damaged
    streams with an error; the extractors read what they give in Python; a bomb is stopped by
    :data:`INFLATE_MAX_BYTES`). HDF5 and netCDF go through C libraries that can crash or hang
    on a damaged file; Unix compress goes through a less proven decoder; plugins are unknown:
    those are read where a time budget and a crash cannot hurt the run."""
    from cosmoscope.extract import sniff_format
    from cosmoscope.extract.compressed import compression_of, head_of
    from cosmoscope.extract.core import HEAD_BYTES
    from cosmoscope.extract.registry import guess_by_suffix

    if entry.size > IN_PROCESS_MAX_BYTES:
        return False
    try:
        with open(entry.path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return False  # the worker records why
    compression = compression_of(head)
    if compression == "compress":
        return False
    fmt = sniff_format(entry.path, head)
    if fmt is None:
        return guess_by_suffix(entry.path) is None  # not data at all: skipped without being read
    if compression:
        head = head_of(entry.path, head, 80) or b""
    return fmt == "csv" or (fmt == "fits" and head.startswith(b"SIMPLE  ="))


@contextlib.contextmanager
def _main_script_not_rerun():
    """Start worker processes without running the user's main script in each of them again.

    A spawned process imports the parent's ``__main__`` script; one without an
    ``if __name__ == "__main__":`` guard (a quickstart saved as a file) would ingest again in
    every worker, which then fails to start. The workers need nothing from it: they run
    cosmoscope's own functions.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(getattr(main, "__spec__", None), "name", None) is not None:
        yield  # python -c, a notebook, or python -m: nothing of the main module is re-run
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _submit(pool: ProcessPoolExecutor, fn, *args, deaf: bool = False) -> Future:
    """``pool.submit``, which starts a worker when none is idle, kept from re-running the
    main script in it; ``deaf``: the worker it starts never receives SIGINT.

    For the moment of the spawn SIGINT is blocked in this thread, and a spawned process keeps
    the blocked signals it is born with. Blocked, not ignored: a Ctrl-C meant for this process
    that arrives in that moment waits and is delivered after it. (It used to be ignored for that
    moment, and a watcher stopped just as it started its workers never stopped.)"""
    import signal

    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if deaf else None
    try:
        with _main_script_not_rerun():
            return pool.submit(fn, *args)
    finally:
        if deaf:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _launch(workers: int, preload: tuple[str, ...], *, deaf: bool = False) -> tuple:
    """``(pool, ready, slots)``: a pool whose ``workers`` are starting (importing ``preload``),
    the future done when the first has, and the array where each notes its current file."""
    # spawn: workers never inherit the parent's threads, locks or open catalog connections.
    ctx = multiprocessing.get_context("spawn")
    slots = ctx.Array("d", 2 * (workers + 1))  # per worker: pid, start of its current file
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_warm_up, initargs=(slots, preload))
    pings = [_submit(pool, _ping, deaf=deaf) for _ in range(workers)]  # each call starts a worker
    return pool, pings[0], slots


def start_spare(paths: list[str], workers: int | None = None) -> None:
    """Start now the workers a small run of ``paths`` will need, before this process has opened
    the catalog.

    ``cosmoscope ingest`` calls this first: opening the catalog (ADBC, pyarrow, pandas) takes as
    long as a worker takes to start, and the two then happen at once rather than one after the
    other (a small folder of HDF5 files cataloged about 0.1 s sooner). It looks at the run's first
    files as :meth:`ExtractionPool.extract` will, and starts nothing when they are all read in
    this process (a spare would only slow this process down: the two share the cores), for a
    run too long for a head start, or on one CPU. A run that does not take the spare lets it go.
    """
    global _spare
    if _spare is not None or default_workers() < 2:
        return
    from cosmoscope.ingest.crawl import crawl

    try:  # a look ahead only: problems with the paths are the run's to report
        head = list(itertools.islice(crawl(paths), SMALL_RUN + 1))
        elsewhere = _where_read(head)[1] if len(head) <= SMALL_RUN else []
    except (OSError, CosmoscopeError):
        return
    if elsewhere:
        n = _small_run_workers(len(elsewhere), default_workers() if workers is None else workers)
        _spare = (n, *_launch(n, _preload_for(elsewhere)))


def _where_read(head: list[FileEntry]) -> tuple[list[FileEntry], list[FileEntry]]:
    """A small run's files: ``(read here, read by workers)``, by :func:`in_process_ok`."""
    here: list[FileEntry] = []
    elsewhere: list[FileEntry] = []
    for entry in head:
        (here if in_process_ok(entry) else elsewhere).append(entry)
    return here, elsewhere


def _small_run_workers(files: int, workers: int) -> int:
    """Workers a small run starts for ``files`` files not read in this process."""
    return workers if files > ONE_WORKER_FILES else 1


def let_spare_go() -> None:
    """Stop the spare worker if no run took it (it exits in the background)."""
    global _spare
    if _spare is not None:
        (_, pool, _, _), _spare = _spare, None
        pool.shutdown(wait=False, cancel_futures=True)


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


#: What a worker imports before its first file, so that the import does not count against that
#: file's time budget (astropy.time alone takes 0.3-0.6 s, paid on the first file with a TT time
#: otherwise): the readers of every format, or of the formats a small run gives it
#: (:data:`READER_MODULES`, where HDF5 and netCDF files need no astropy).
DEFAULT_PRELOAD = ("astropy.time", "cosmoscope.extract.fits")
READER_MODULES = {"hdf5": ("h5py", "cosmoscope.extract.hdf5"),
                  "netcdf": ("h5py", "netCDF4", "cosmoscope.extract.netcdf", "cosmoscope.extract.hdf5")}


def _warm_up(slots=None, preload: tuple[str, ...] = DEFAULT_PRELOAD) -> None:
    global _SLOT
    _exit_with_parent()
    if slots is not None:  # claim a slot to note each file's start in, for the parent to see
        with slots.get_lock():
            i = next(k for k in range(len(slots) // 2) if not slots[2 * k])
            slots[2 * i] = os.getpid()
        _SLOT = (slots, i)
    import importlib

    import cosmoscope.extract  # noqa: F401

    for name in preload:
        with contextlib.suppress(ImportError):  # then the file that needs it says so, in its row
            importlib.import_module(name)


def _preload_for(entries: list[FileEntry]) -> tuple[str, ...]:
    """The modules the workers reading ``entries`` (a small run's) should import first."""
    from cosmoscope.extract import sniff_format

    modules: dict[str, None] = {}
    for entry in entries:
        for name in READER_MODULES.get(sniff_format(entry.path), DEFAULT_PRELOAD):
            modules[name] = None
    return tuple(modules)


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
    real path leaves ``roots`` are not read (see :mod:`cosmoscope.ingest.roots`).

    ``head_start``: in a run of at most :data:`SMALL_RUN` files, read those that are safe to
    read here (:func:`in_process_ok`) in this process, and start a worker only for the others.
    """

    def __init__(self, workers: int | None = None, profile: str | None = None, roots: Roots | None = None, *,
                 head_start: bool = False):
        self.workers = default_workers() if workers is None else workers
        self.profile = profile
        self.roots = roots
        self.head_start = head_start
        #: False: the workers this pool starts never receive SIGINT (a watcher stops its own).
        self.sigint_to_workers = True
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future | None = None  # done once the first worker has started
        self._slots = None
        self._closing = None  # a thread letting the workers go (head_start, once every file is read)
        self.crashes = 0
        #: Files read in this process rather than by a worker.
        self.read_here = 0
        #: Worker processes started (restarts after a crash included).
        self.started = 0

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        let_spare_go()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._closing is not None:
            self._closing.join()
            self._closing = None

    def _let_go(self) -> None:
        """Shut the workers down in the background: they exit while the caller writes what they
        read, and :meth:`close` only waits for what is left of that."""
        import threading

        let_spare_go()
        pool, self._pool = self._pool, None
        if pool is not None:
            self._closing = threading.Thread(target=pool.shutdown, name="cosmoscope-workers-exit", daemon=True)
            self._closing.start()

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        """A started pool; raises :class:`WorkerStartError` if workers cannot start at all."""
        pool = self._start_pool(workers)
        self._check_started(pool, self._ready)
        return pool

    def _start_pool(self, workers: int, preload: tuple[str, ...] = DEFAULT_PRELOAD) -> ProcessPoolExecutor:
        """A pool whose ``workers`` are starting (importing ``preload``); ``self._ready`` is
        done when the first has. They are the spare workers, if :func:`start_spare` started as many."""
        global _spare
        self.started += workers
        if _spare is not None and _spare[0] == workers and self.sigint_to_workers:
            (_, pool, self._ready, self._slots), _spare = _spare, None
            return pool
        pool, self._ready, self._slots = _launch(workers, preload, deaf=not self.sigint_to_workers)
        return pool

    @staticmethod
    def _check_started(pool: ProcessPoolExecutor, ready: Future) -> None:
        try:
            ready.result()
        except BrokenProcessPool as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            # Otherwise every file would look like one that crashes its reader.
            raise WorkerStartError(
                "cosmoscope could not start its extraction worker processes; pass workers=0 to extract in "
                "this process") from exc

    def extract(self, entries: Iterable[FileEntry]) -> Iterator[dict]:
        """Records for ``entries``, in completion order."""
        if self.workers == 0:
            for e in entries:
                yield extract_entry(e, self.profile, self.roots)
            return
        here: deque[FileEntry] = deque()  # files read in this process, between the workers' answers
        if self.head_start:
            entries, here = self._split_head(iter(entries))
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
                    in_flight[_submit(self._pool, _extract_chunk, chunk, self.profile, self.roots)] = chunk
                except BrokenProcessPool:
                    suspects.extend(chunk)
                    break
            if here and not any(fut.done() for fut in in_flight):
                entry = here.popleft()
                rec = self._read_here(entry)
                if rec is not None:
                    yield rec
                    continue
                if self._pool is None:  # a compressed file that inflates past the cap: a worker reads it
                    self._pool = self._start_pool(1)
                try:
                    in_flight[_submit(self._pool, _extract_chunk, [entry], self.profile, self.roots)] = [entry]
                except BrokenProcessPool:
                    suspects.append(entry)
                continue
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
        if self.head_start:
            self._let_go()

    def _read_here(self, entry: FileEntry) -> dict | None:
        """The record of a file read in this process; None if it is compressed and decompresses
        past :data:`INFLATE_MAX_BYTES` (it is then for a worker, with its time budget)."""
        from cosmoscope.extract.compressed import InflationCapExceeded, inflation_cap

        try:
            with inflation_cap(INFLATE_MAX_BYTES):
                rec = extract_entry(entry, self.profile, self.roots)
        except InflationCapExceeded:
            log.info("%s decompresses to more than %d MiB: read in a worker process", entry.path,
                     INFLATE_MAX_BYTES >> 20)
            return None
        self.read_here += 1
        return rec

    def _split_head(self, entries: Iterator[FileEntry]) -> tuple[Iterator[FileEntry], deque[FileEntry]]:
        """The files for the workers and, in a small run, the files to read here; starts the
        workers a small run needs for the rest (one, or all for more than
        :data:`ONE_WORKER_FILES`) at once, so they start while this process reads."""
        head = list(itertools.islice(entries, SMALL_RUN + 1))
        if len(head) > SMALL_RUN:
            return itertools.chain(head, entries), deque()
        here, elsewhere = _where_read(head)
        if elsewhere:
            self._pool = self._start_pool(_small_run_workers(len(elsewhere), self.workers), _preload_for(elsewhere))
        return iter(elsewhere), deque(here)

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
                fut = _submit(pool, extract_entry, entry, self.profile, self.roots)
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
