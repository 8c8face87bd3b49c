"""Ingest and validation fanned out on a Dask cluster the scientist already runs.

>>> from distributed import Client                                   # doctest: +SKIP
>>> client = Client("tcp://scheduler:8786")    # dask-jobqueue, Dask Gateway, LocalCluster...
>>> cat.ingest("/archive", executor=client)                          # doctest: +SKIP
>>> cat.validate(mission="COSMOS-7", executor=client)                # doctest: +SKIP

or ``cosmoscope ingest /archive --dask-scheduler tcp://scheduler:8786`` (``--dask local:4`` for
a LocalCluster of four worker processes on this machine).

How a run goes
--------------
The client process walks the tree and compares it with the catalog exactly as a local ingest
does, so unchanged files are skipped without being opened and are never sent anywhere. The
files left are cut into chunks (:data:`CHUNK_FILES`); at most a few chunks per worker thread
are in flight, so memory stays flat however big the tree. Each worker extracts its chunk with
the same code as a local worker process and turns the records into an Arrow table.

Who writes
----------
- SQLite catalog: the client is the only writer. Workers return Arrow tables as they finish
  (``distributed.as_completed``); the client commits them in batches through the local ingest's
  write path (rows, ingest events and pending lineage in one transaction).
- VAST catalog: each worker opens the catalog from its URL (credentials from the *worker's*
  environment, ``COSMOSCOPE_VAST_ACCESS_KEY``/``SECRET_KEY``) and commits its own chunk in its own
  transaction; only counts travel back.

When a worker dies
------------------
The scheduler notices the lost worker and runs its chunks again elsewhere (Dask's
``distributed.scheduler.allowed-failures``, 3 by default). Each chunk's result is counted once,
when its future completes, so the summary stays exact. Nothing is lost: a chunk is written only
from a completed result (SQLite), or in one transaction that either committed or did not (VAST).
Nothing is duplicated: rows are upserted by key, and a VAST worker first looks whether an earlier
attempt of its chunk already committed those files (same size, time and extractor) and writes
only the rest, so a retry adds no second ingest event. A chunk that keeps killing workers (Dask
gives up with ``KilledWorker``) may be innocent (every task queued on a dying worker dies with
it), so its files are then run one at a time, each alone on the cluster; the file that still
kills its worker is recorded as an error row ("reading this file crashed the format library"),
as in a local run. With Dask's default of 3 allowed failures such a file costs a few worker
restarts before it is found.

Workers need cosmoscope installed (the same version) and the files at the same paths as the
client; a ``--profile`` given as a TOML path must exist on the workers too.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cosmoscope.errors import CatalogOpenError, CosmoscopeError, InvalidArgumentError
from cosmoscope.ingest.crawl import FileEntry

if TYPE_CHECKING:
    import pyarrow as pa

    from cosmoscope.catalog import Catalog
    from cosmoscope.ingest.bulk import IngestSummary

log = logging.getLogger(__name__)

#: Files per task. A task costs the scheduler about a millisecond and a chunk of this size
#: takes a worker 30-100 ms to read, so the overhead stays a few per cent; a VAST worker commits
#: one transaction per chunk.
CHUNK_FILES = 64
#: Chunks in flight per worker thread: enough that no worker waits for the client to send more.
IN_FLIGHT_PER_THREAD = 3
#: Seconds between looks at how many worker threads the cluster has (adaptive clusters grow).
RESIZE_EVERY = 5.0


class DaskUnavailableError(CosmoscopeError):
    """Dask was asked for but is not installed, or the cluster cannot be reached."""


def require_distributed():
    """The ``distributed`` module, or a one-sentence error saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise DaskUnavailableError("running on a Dask cluster needs dask and distributed: "
                                   "pip install 'cosmoscope[dask]'") from None
    return distributed


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk: rows to write (``None`` when the worker wrote
    them itself), the parents they name, and per row what the summary counts."""

    rows: pa.Table | None
    pending: list[tuple] = field(default_factory=list)
    #: (dataset_id, file_path, extraction_status, extraction_error) of every row of the chunk
    outcomes: list[tuple] = field(default_factory=list)
    #: the records of files that are not data (``_skip`` and ``_path``)
    skipped: list[dict] = field(default_factory=list)
    #: rows an earlier, lost attempt of this chunk had already committed (VAST)
    already_written: int = 0


class DaskExecutor:
    """Per-file work on a Dask cluster: chunked, bounded, in completion order, crash-tolerant.

    Pass a ``distributed.Client`` directly to ``ingest``/``validate``; build this yourself only to
    change ``chunk_files`` or ``in_flight_per_thread``.

    It offers the two interfaces the local code already uses: :meth:`extract` (that of
    :class:`~cosmoscope.ingest.workers.ExtractionPool`) and :meth:`map` (that of
    ``concurrent.futures.Executor.map``), and is a no-op context manager (the client and its
    cluster belong to the caller).
    """

    def __init__(self, client, *, chunk_files: int = CHUNK_FILES, in_flight_per_thread: int = IN_FLIGHT_PER_THREAD):
        distributed = require_distributed()
        if not isinstance(client, distributed.Client):
            raise InvalidArgumentError(f"executor must be a dask.distributed.Client, got {type(client).__name__}")
        if client.asynchronous:
            raise InvalidArgumentError("executor must be a synchronous Client; create it with asynchronous=False")
        if chunk_files < 1 or in_flight_per_thread < 1:
            raise InvalidArgumentError("chunk_files and in_flight_per_thread must be 1 or more")
        self.client = client
        self.chunk_files = chunk_files
        self.in_flight_per_thread = in_flight_per_thread
        #: Files that kept killing their worker and were recorded as crashes.
        self.crashes = 0
        self._limit = 0
        self._sized_at = 0.0

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def describe(self) -> str:
        """One line: where the scheduler is, how many workers, and the dashboard link."""
        nthreads = self.client.nthreads()
        link = getattr(self.client, "dashboard_link", None)
        return (f"Dask cluster at {self.client.scheduler.address}: {len(nthreads)} workers, "
                f"{sum(nthreads.values())} threads" + (f"; dashboard {link}" if link else ""))

    def _in_flight_limit(self) -> int:
        now = time.monotonic()
        if now - self._sized_at > RESIZE_EVERY:
            threads = sum(self.client.nthreads().values())
            self._limit = max(2, self.in_flight_per_thread * threads)
            self._sized_at = now
        return self._limit

    def map_chunks(self, fn: Callable, items: Iterable, *args, name: str = "work",
                   chunk_files: int | None = None) -> Iterator[tuple[list, Any]]:
        """``(chunk, fn(chunk, *args))`` for chunks of ``items``, in completion order.

        A chunk the cluster gives up on (``KilledWorker``: workers kept dying while it was on
        them) may be innocent: every task queued on a dying worker goes down with it. So new work
        stops, what is in flight finishes, and that chunk's items are run one at a time, each
        alone on the cluster; an item that still kills its worker is yielded as ``(chunk, None)``
        and counted in :attr:`crashes`, and the rest are yielded as usual. Any other error of a
        task is raised here, after the chunks still in flight are cancelled.
        """
        distributed = require_distributed()
        size = chunk_files or self.chunk_files
        source = _chunks(items, size)
        suspects: deque[list] = deque()
        in_flight: dict = {}
        alone: set = set()  # futures of suspects running with nothing else in flight
        done = distributed.as_completed(with_results=True, raise_errors=False)

        def submit(chunk):
            fut = self.client.submit(fn, chunk, *args, key=f"cosmoscope-{name}-{uuid.uuid4().hex}", pure=False)
            in_flight[fut] = chunk
            done.add(fut)
            return fut

        def top_up():
            if suspects:
                if not in_flight:
                    alone.add(submit(suspects.popleft()))
                return
            while len(in_flight) < self._in_flight_limit():
                chunk = next(source, None)
                if chunk is None:
                    return
                submit(chunk)

        try:
            top_up()
            for fut, result in done:
                chunk = in_flight.pop(fut)
                if fut.status == "finished":
                    yield chunk, result
                elif fut.status == "cancelled":
                    raise DaskUnavailableError(
                        "the Dask cluster dropped this run's work (the scheduler restarted or the client lost "
                        "it); what was written is kept: run the same command again to finish, unchanged files "
                        "are skipped")
                else:  # "error": (type, exception, traceback), with raise_errors=False
                    _, exc, tb = result
                    if not isinstance(exc, distributed.KilledWorker):
                        raise exc.with_traceback(tb)
                    if fut in alone:
                        self.crashes += 1
                        log.warning("%s kills its Dask worker every time", getattr(chunk[0], "path", chunk[0]))
                        yield chunk, None
                    else:
                        log.warning("Dask workers kept dying while a chunk of %d items was on them; running "
                                    "them one at a time to find the cause", len(chunk))
                        suspects.extend([item] for item in chunk)
                alone.discard(fut)
                del fut, result
                top_up()
        finally:
            if in_flight:
                self.client.cancel(list(in_flight))

    def extract(self, entries: Iterable[FileEntry], profile: str | None = None, roots=None) -> Iterator[dict]:
        """Records for ``entries``, in completion order (as ``ExtractionPool.extract``)."""
        from cosmoscope.ingest.workers import _extract_chunk, crashed_record

        for chunk, records in self.map_chunks(_extract_chunk, entries, profile, roots, name="extract"):
            if records is None:
                yield crashed_record(chunk[0], "its Dask worker died every time")
            else:
                yield from records

    def map(self, fn: Callable, items: Iterable, chunk_files: int | None = None) -> Iterator:
        """``fn(item)`` for every item, in the order of ``items`` (as ``Executor.map``)."""
        indexed = enumerate(items)
        ready: dict[int, Any] = {}
        want = 0
        for chunk, results in self.map_chunks(_apply, indexed, fn, name="map", chunk_files=chunk_files):
            if results is None:
                raise CosmoscopeError(f"item {chunk[0][0]} kept killing its Dask worker")
            ready.update(zip((i for i, _ in chunk), results))
            while want in ready:
                yield ready.pop(want)
                want += 1

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to shut down: the cluster is the caller's (``Executor`` compatibility)."""


def as_executor(executor) -> DaskExecutor:
    """A :class:`DaskExecutor` for a ``distributed.Client`` (or the executor itself)."""
    return executor if isinstance(executor, DaskExecutor) else DaskExecutor(executor)


def _apply(chunk: list[tuple[int, Any]], fn: Callable) -> list:
    return [fn(item) for _, item in chunk]


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    buf: list = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


# -- ingest ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _WorkerWrites:
    """What a worker needs to write its chunk to the catalog itself."""

    url: str
    actor: str
    run_id: str | None
    force: bool
    started: Any  # datetime: the run's start, to recognise rows this run already wrote


def workers_write(catalog: Catalog) -> bool:
    """Whether cluster workers write to this catalog themselves (a shared database: VAST), or
    send their rows to the client (an embedded SQLite file has one writer)."""
    return catalog.url.split("://", 1)[0].lower().startswith("vast")


def ingest_on_cluster(executor, catalog: Catalog, entries: Iterable[FileEntry], *, summary: IngestSummary,
                      planned: dict[str, str], bar, profile: str | None, batch_rows: int, run_id: str | None,
                      force: bool, roots=None) -> None:
    """The extract-and-write part of :func:`cosmoscope.ingest.bulk.ingest` on a Dask cluster.

    ``entries`` are the files the client already found new or changed; ``summary`` and ``bar``
    are updated as chunks complete.
    """
    from cosmoscope.ingest.bulk import _count, commit_rows, write_records
    from cosmoscope.ingest.workers import crashed_record
    from cosmoscope.times import now

    ex = as_executor(executor)
    _announce(ex, bar)
    if workers_write(catalog):
        target = _WorkerWrites(catalog.url, catalog.actor, run_id, force, now())
        task, args = _extract_and_write, (profile, target, roots)
    else:
        task, args = _extract_rows, (profile, roots)
    tables: list[pa.Table] = []
    pending: list[tuple] = []
    buffered = 0

    def flush():
        nonlocal tables, pending, buffered
        if tables:
            import pyarrow as pa

            commit_rows(catalog, pa.concat_tables(tables, promote_options="default"), pending, run_id=run_id)
        tables, pending, buffered = [], [], 0

    crashes_before = ex.crashes
    for chunk, result in ex.map_chunks(task, entries, *args, name="extract"):
        if result is None:  # this one file kept killing its worker
            write_records(catalog, [crashed_record(chunk[0], "its Dask worker died every time")], run_id=run_id,
                          summary=summary, planned=planned)
            bar.update(1)
            continue
        for rec in result.skipped:
            summary.skipped(rec)
        for did, path, status, error in result.outcomes:
            _count(summary, {"dataset_id": did, "file_path": path, "extraction_status": status,
                             "extraction_error": error}, planned)
        if result.already_written:
            log.info("a lost worker had already written %d rows of a chunk; its retry kept them",
                     result.already_written)
        if result.rows is not None and result.rows.num_rows:
            tables.append(result.rows)
            pending.extend(result.pending)
            buffered += result.rows.num_rows
            if buffered >= batch_rows:
                flush()
        bar.update(len(chunk))
    flush()
    summary.crashes += ex.crashes - crashes_before


def _announce(ex: DaskExecutor, bar) -> None:
    line = ex.describe()
    log.info("%s", line)
    if not getattr(bar, "disable", True):
        bar.write(line, file=sys.stderr)


def _prepare(chunk: list[FileEntry], profile: str | None, roots) -> tuple[list[dict], list[tuple], list[dict]]:
    from cosmoscope.ingest.bulk import rows_and_parents
    from cosmoscope.ingest.workers import extract_entry

    records = [extract_entry(e, profile, roots) for e in chunk]
    data = [r for r in records if not r.get("_skip")]
    rows, pending = rows_and_parents(data)
    return rows, pending, [r for r in records if r.get("_skip")]


def _outcomes(rows: list[dict]) -> list[tuple]:
    return [(r["dataset_id"], r["file_path"], r.get("extraction_status"), r.get("extraction_error")) for r in rows]


def _extract_rows(chunk: list[FileEntry], profile: str | None, roots=None) -> ChunkResult:
    """Worker task (SQLite): extract a chunk and return its rows as one Arrow table."""
    from cosmoscope.records import to_table

    rows, pending, skipped = _prepare(chunk, profile, roots)
    table = to_table("observations", rows) if rows else None
    return ChunkResult(table, pending, _outcomes(rows), skipped)


def _extract_and_write(chunk: list[FileEntry], profile: str | None, target: _WorkerWrites, roots=None) -> ChunkResult:
    """Worker task (VAST): extract a chunk and commit it in one transaction of this worker's own."""
    from cosmoscope.ingest.bulk import commit_rows

    rows, pending, skipped = _prepare(chunk, profile, roots)
    if rows:
        cat = _worker_catalog(target.url, target.actor)
        done = _written_by_this_run(cat, rows, chunk, target)
        fresh = [r for r in rows if r["dataset_id"] not in done]
        commit_rows(cat, fresh, [p for p in pending if p[0] not in done], run_id=target.run_id)
    else:
        done = set()
    return ChunkResult(None, [], _outcomes(rows), skipped, len(done))


def _written_by_this_run(cat: Catalog, rows: list[dict], chunk: list[FileEntry], target: _WorkerWrites) -> set[str]:
    """Ids among ``rows`` whose stored row already describes the file as crawled: an earlier
    attempt of this chunk, on a worker lost before it could answer, committed them."""
    from cosmoscope.ingest.bulk import is_unchanged, stored_state
    from cosmoscope.predicate import Predicate, Test
    from cosmoscope.records import dataset_id_for

    by_id = {dataset_id_for(e.path): e for e in chunk}
    state = stored_state(cat, [r["dataset_id"] for r in rows])
    done = {did for did, row in state.items() if did in by_id and is_unchanged(row, by_id[did])}
    if done and target.force:
        # With force every file is re-read, unchanged or not: only a write since the run
        # began tells this run's own earlier attempt apart (clocks agree to well under the
        # seconds between a run's start and its first commit on an NTP-synchronised cluster).
        pred = Predicate.of(Test("dataset_id", "is_in", tuple(done)))
        recent = set()
        for b in cat.store.scan("observations", ["dataset_id", "updated_at"], pred):
            for did, ts in zip(b.column(0).to_pylist(), b.column(1).to_pylist()):
                if ts is not None and ts >= target.started:
                    recent.add(did)
        done = recent
    return done


_local = threading.local()


def _worker_catalog(url: str, actor: str) -> Catalog:
    """This worker thread's own connection to the catalog (opened once, then reused)."""
    from cosmoscope.catalog import open_catalog

    cache = _local.__dict__.setdefault("catalogs", {})
    cat = cache.get((url, actor))
    if cat is None:
        try:
            cat = cache[(url, actor)] = open_catalog(url, actor=actor)
        except CosmoscopeError as exc:
            raise CatalogOpenError(f"a Dask worker could not open the catalog: {exc} (workers read the VAST "
                                   "credentials from their own environment: COSMOSCOPE_VAST_ACCESS_KEY and "
                                   "COSMOSCOPE_VAST_SECRET_KEY)") from None
    return cat


# -- clients for the command line ----------------------------------------------------------------

def parse_local(text: str) -> int:
    """The worker count of ``local:N`` (``local`` alone: one worker per CPU).

    >>> parse_local("local:4")
    4
    """
    from cosmoscope.ingest.workers import default_workers

    kind, _, n = text.partition(":")
    if kind != "local":
        raise InvalidArgumentError(f"could not read --dask {text!r}; write local:N (N worker processes on this "
                                   "machine), or give a running cluster with --dask-scheduler ADDRESS")
    if not n:
        return default_workers()
    try:
        workers = int(n)
    except ValueError:
        raise InvalidArgumentError(f"could not read {n!r} in --dask {text!r} as a number of workers") from None
    if workers < 1:
        raise InvalidArgumentError("--dask local:N needs at least one worker")
    return workers


@contextmanager
def open_client(*, scheduler: str | None = None, local_workers: int | None = None) -> Iterator:
    """A ``distributed.Client`` on the scheduler at ``scheduler`` (an address, or a scheduler
    JSON file as written by ``dask scheduler --scheduler-file``), or on a LocalCluster of
    ``local_workers`` single-threaded worker processes that lives for the ``with`` block.

    How long to try to reach a scheduler is Dask's own setting,
    ``distributed.comm.timeouts.connect`` (e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s``).
    """
    import os

    distributed = require_distributed()
    if local_workers is not None:
        logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().level))
        with distributed.LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    kwargs = ({"scheduler_file": scheduler} if scheduler and os.path.isfile(scheduler) else {"address": scheduler})
    try:
        client = distributed.Client(**kwargs)
    except (OSError, TimeoutError) as exc:
        raise DaskUnavailableError(f"could not reach the Dask scheduler at {scheduler} ({exc}); check the address "
                                   "(tcp://HOST:8786) and that this machine can reach it") from None
    with client:
        yield client
