"""Processing runs: claim inputs, catalog outputs with their lineage, finish or fail, all audited.

>>> with catalog.processing_run("calibrate", inputs=ids, params={"gain": 1.2}) as run:  # doctest: +SKIP
...     for i in ids:
...         out = calibrate(catalog.get(i)["file_path"])
...         run.add_output(out, relationship="raw->calibrated", parents=[i])

Claims and leases
-----------------
Starting a run claims its inputs: in one write transaction it checks that no live run holds
any of them and that none is marked ``processing`` outside a run, then writes one row per input
into ``processing_claims``, sets each input's ``processing_status`` to ``processing`` and
writes the run's row into ``processing_runs``. On SQLite that transaction is ``BEGIN
IMMEDIATE``, which serialises writers across processes, so of two runs racing for the same
datasets exactly one wins; the other is refused with :class:`ClaimConflictError` (or waits, with
``wait=seconds``). After the commit the claims are read back: a store without serialisable
transactions (last writer wins per key) cannot then leave two runs both believing they hold a
dataset: the one that finds another run's claim releases its own and is refused.

A claim holds while its run's lease holds: ``heartbeat_at + lease_seconds``. A run started as a
context manager renews it from a background thread every third of the lease; every write
through the run renews it too. A process that dies (SIGKILL, a lost node) stops renewing, and
once the lease has run out the next run that wants those datasets marks the dead run
``abandoned``, puts its inputs back to the status they had, marks its outputs ``failed`` and
takes the datasets. :func:`release_stale_runs` does the same for every expired run at once. A
run that is still alive but missed its lease finds out at its next write
(:class:`RunStateError`), so it never writes on datasets it no longer holds.

Outcomes
--------
Success marks the inputs and outputs ``processed``; an exception marks the run ``failed`` with
the error, puts the inputs back to their previous status and marks any outputs ``failed``.
Every change is an event carrying the run's id, so ``catalog.history(id, upstream=True)``
shows the trail from the raw files to the final product.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from cosmoscope import records as R
from cosmoscope import schema as S
from cosmoscope.errors import CosmoscopeError, DatasetNotFoundError, InvalidArgumentError
from cosmoscope.pipeline._store import (claim_holders, dataset_ids_from, delete_claims, is_live, lease_expiry,
                                        rows_by, write_row)
from cosmoscope.times import now

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

log = logging.getLogger(__name__)

#: Seconds a run's claims hold without a heartbeat.
DEFAULT_LEASE = 300.0
#: Seconds between claim attempts while waiting for another run to let go.
WAIT_POLL = 0.25

_PROCESSING = S.ProcessingStatus.PROCESSING.value
_PROCESSED = S.ProcessingStatus.PROCESSED.value
_FAILED = S.ProcessingStatus.FAILED.value


class ClaimConflictError(CosmoscopeError):
    """Some of the datasets a run wants are held by another live run (or marked processing)."""

    def __init__(self, message: str, held: dict[str, str | None]):
        super().__init__(message)
        #: dataset id -> id of the run holding it (None: marked processing outside any run).
        self.held = held


class RunStateError(CosmoscopeError):
    """The run is no longer running (finished, failed, or abandoned after its lease ran out)."""


def new_run_id() -> str:
    """A unique run id that sorts by start time: ``run-20261127T081500-1a2b3c4d``."""
    return f"run-{now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class ProcessingRun:
    """A processing run over claimed inputs. Use :func:`start_run` (or
    ``catalog.processing_run``) to make one, and :meth:`attach` to continue one by id."""

    def __init__(self, catalog: Catalog, row: dict, inputs: Sequence[str]):
        self.catalog = catalog
        self.run_id: str = row["run_id"]
        self.name: str = row["name"]
        self.lease_seconds: float = float(row["lease_seconds"])
        self.inputs: list[str] = list(inputs)
        self.outputs: list[str] = []
        self._lost: RunStateError | None = None
        self._ended = False
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------

    @classmethod
    def attach(cls, catalog: Catalog, run_id: str) -> ProcessingRun:
        """The run ``run_id`` as an object, to add outputs or finish it from elsewhere (the HTTP
        API, another process). Raises :class:`DatasetNotFoundError` if there is no such run."""
        rows = rows_by(catalog, S.PROCESSING_RUNS.name, "run_id", [run_id])
        if not rows:
            raise DatasetNotFoundError(f"no processing run {run_id!r} in {catalog.url}")
        claims = rows_by(catalog, S.PROCESSING_CLAIMS.name, "run_id", [run_id])
        run = cls(catalog, rows[0], [c["dataset_id"] for c in claims if c["role"] == "input"])
        run.outputs = [c["dataset_id"] for c in claims if c["role"] == "output"]
        return run

    def info(self) -> dict[str, Any]:
        """The run's row in ``processing_runs`` (status, times, error, ...)."""
        rows = rows_by(self.catalog, S.PROCESSING_RUNS.name, "run_id", [self.run_id])
        return rows[0] if rows else {}

    @property
    def status(self) -> str:
        return self.info().get("status")

    def __enter__(self) -> ProcessingRun:
        self.start_heartbeat()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.stop_heartbeat()
        if self._ended:  # finish() or fail() was called inside the block
            return False
        if exc is None:
            self.finish()
            return False
        try:
            self.fail(exc)
        except RunStateError as lost:
            log.warning("run %s failed (%s) after losing its claims: %s", self.run_id, exc, lost)
        except Exception:  # never hide the pipeline's own error behind a bookkeeping one
            log.exception("could not record the failure of run %s", self.run_id)
        return False

    def start_heartbeat(self) -> None:
        """Renew the lease from a background thread every third of it, until the run ends."""
        if self._beater is not None:
            return
        interval = max(self.lease_seconds / 3, 0.05)

        def beat():
            while not self._stop.wait(interval):
                try:
                    self.heartbeat()
                except RunStateError as exc:
                    self._lost = exc
                    log.error("%s", exc)
                    return
                except Exception as exc:  # a busy store: try again at the next beat
                    log.warning("heartbeat of run %s failed: %s", self.run_id, exc)

        self._beater = threading.Thread(target=beat, name=f"heartbeat {self.run_id}", daemon=True)
        self._beater.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beater is not None and self._beater is not threading.current_thread():
            self._beater.join()
        self._beater = None

    def heartbeat(self) -> None:
        """Renew the lease now (for runs without the background thread, e.g. over HTTP)."""
        with self.catalog.store.transaction():
            self._guard(now())

    def _guard(self, stamp) -> dict:
        """Inside a transaction: refuse if the run is over; renew its lease."""
        if self._lost is not None:
            raise self._lost
        rows = rows_by(self.catalog, S.PROCESSING_RUNS.name, "run_id", [self.run_id])
        row = rows[0] if rows else {}
        if row.get("status") != S.RunStatus.RUNNING.value:
            why = f": {row['error']}" if row.get("error") else ""
            self._lost = RunStateError(f"processing run {self.name!r} ({self.run_id}) is "
                                       f"{row.get('status', 'gone')}{why}; nothing more can be written for it")
            raise self._lost
        write_row(self.catalog, S.PROCESSING_RUNS.name, {"run_id": self.run_id, "heartbeat_at": stamp})
        return row

    # -- work ---------------------------------------------------------------------------

    def add_output(self, path: str | os.PathLike, relationship: str = S.RelationshipType.RAW_TO_PROCESSED.value,
                   *, parents: Iterable[str] | None = None, profile: str | None = None) -> str:
        """Catalog an output file and record its lineage; returns its dataset id.

        The file is read like bulk ingest reads files (the same extraction, the same row) and
        lineage edges of type ``relationship`` go from each of ``parents`` (default: every
        input of the run) to it, carrying the run's id. The output is held by the run until it
        ends.
        """
        from cosmoscope.ingest.bulk import write_records
        from cosmoscope.ingest.crawl import FileEntry
        from cosmoscope.ingest.links import resolve_pending
        from cosmoscope.ingest.workers import extract_entry
        from cosmoscope.records import dataset_id_for

        if not relationship or not isinstance(relationship, str):
            raise InvalidArgumentError("relationship must be a non-empty name such as 'raw->calibrated'")
        path = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(path)
        except OSError as exc:
            raise InvalidArgumentError(f"cannot catalog the output {path}: {exc.strerror}") from None
        if not os.path.isfile(path):
            raise InvalidArgumentError(f"cannot catalog the output {path}: it is not a regular file")
        out_id = dataset_id_for(path)
        if out_id in self.inputs:
            raise InvalidArgumentError(f"{path} is an input of run {self.run_id}; write outputs to new files")
        parents = self.inputs if parents is None else dataset_ids_from(parents, what="parents")
        strangers = [p for p in parents if p not in self.inputs and p not in self.outputs]
        if strangers:
            raise InvalidArgumentError(f"parents must be inputs or earlier outputs of run {self.run_id}; "
                                       f"{', '.join(strangers[:5])} {'is' if len(strangers) == 1 else 'are'} not")
        # Read the file before taking the write lock: extraction is the slow part.
        rec = extract_entry(FileEntry(path, st.st_size, st.st_mtime_ns), profile)
        if rec.get("_skip"):
            raise InvalidArgumentError(f"cannot catalog the output {path}: it is not a FITS, HDF5, netCDF or CSV file")
        new = out_id not in self.outputs
        stamp = now()
        with self.catalog.store.transaction():
            info = self._guard(stamp)
            before = _statuses(self.catalog, [out_id])
            if new:
                _refuse_held(self.catalog, [out_id], self.run_id, stamp, before)
            rows = write_records(self.catalog, [rec], run_id=self.run_id,  # exactly as bulk ingest writes
                                 reason=f"written again as an output of run {self.name!r}")
            if new:
                write_row(self.catalog, S.PROCESSING_CLAIMS.name, {
                    "dataset_id": out_id, "run_id": self.run_id, "role": "output",
                    "previous_status": before.get(out_id), "claimed_at": stamp})
                self.catalog.update(out_id, processing_status=_PROCESSING, run_id=self.run_id,
                                    reason=f"output of run {self.name!r}")
            if parents:
                self.catalog.link_many([(p, out_id, relationship) for p in parents], run_id=self.run_id,
                                       metadata={"run": self.name})
            if new:
                self.outputs.append(out_id)
            write_row(self.catalog, S.PROCESSING_RUNS.name, {
                "run_id": self.run_id, "n_outputs": max(int(info.get("n_outputs") or 0), len(self.outputs))})
        if rows and rows[0].get("extraction_status") == S.ExtractionStatus.ERROR.value:
            log.warning("output %s of run %s was cataloged, but its metadata could not be read: %s", path,
                        self.run_id, rows[0].get("extraction_error"))
        resolve_pending(self.catalog)  # parents the output's own headers name
        return out_id

    def set_quality(self, dataset_id: str, score: float, *, reason: str | None = None) -> None:
        """Record a quality score (0-1) the processing found for an input or output of this run."""
        if dataset_id not in self.inputs and dataset_id not in self.outputs:
            raise InvalidArgumentError(f"{dataset_id} is neither an input nor an output of run {self.run_id}")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise InvalidArgumentError(f"a quality score runs from 0.0 to 1.0, not {score!r}")
        with self.catalog.store.transaction():
            self._guard(now())
            self.catalog.update(dataset_id, data_quality_score=float(score), run_id=self.run_id,
                                reason=reason or f"quality from run {self.name!r}")

    def log(self, message: str, **details) -> None:
        """Add a note to the run's audit trail."""
        self.catalog.log_event("run_note", run_id=self.run_id, to_value=message, details=details or None)

    def finish(self) -> None:
        """End the run successfully: inputs and outputs become ``processed``, claims are released."""
        self.stop_heartbeat()
        stamp = now()
        with self.catalog.store.transaction():
            self._guard(stamp)
            _release(self.catalog, self.run_id, S.RunStatus.SUCCEEDED.value, None, stamp)
        self._ended = True

    def fail(self, error: BaseException | str) -> None:
        """End the run as failed: inputs go back to their previous status, outputs become
        ``failed``, the error is recorded, claims are released."""
        self.stop_heartbeat()
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        stamp = now()
        with self.catalog.store.transaction():
            self._guard(stamp)
            _release(self.catalog, self.run_id, S.RunStatus.FAILED.value, text[:4000], stamp)
        self._ended = True

    def __repr__(self) -> str:
        return (f"ProcessingRun({self.name!r}, run_id={self.run_id!r}, inputs={len(self.inputs)}, "
                f"outputs={len(self.outputs)})")


def start_run(catalog: Catalog, name: str, inputs=None, params: dict | None = None, *,
              lease_seconds: float = DEFAULT_LEASE, wait: float | None = None) -> ProcessingRun:
    """Claim ``inputs`` for a new run named ``name`` and return it (see the module docstring).

    Parameters
    ----------
    inputs
        Dataset ids, a polars frame with a ``dataset_id`` column, or a pre-flight report (its
        ready datasets).
    params
        The run's parameters, kept with the run as JSON.
    lease_seconds
        How long the claims hold without a heartbeat.
    wait
        Seconds to wait for other runs to let go of the inputs; by default a conflict is
        refused at once with :class:`ClaimConflictError`.
    """
    if catalog.readonly:
        raise InvalidArgumentError(f"the catalog {catalog.url} was opened read-only; a run needs to write")
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError("a processing run needs a name, e.g. 'calibrate-wfi'")
    if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float)) or lease_seconds <= 0:
        raise InvalidArgumentError(f"lease_seconds must be a positive number of seconds, not {lease_seconds!r}")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0):
        raise InvalidArgumentError(f"wait must be a number of seconds (0 or more) or None, not {wait!r}")
    ids = dataset_ids_from(inputs, what="inputs")
    run_row = {"run_id": new_run_id(), "name": name.strip(), "status": S.RunStatus.RUNNING.value,
               "actor": catalog.actor, "host": socket.gethostname(), "pid": os.getpid(),
               "params": R.to_json(params or {}), "n_inputs": len(ids), "n_outputs": 0,
               "lease_seconds": float(lease_seconds)}
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        try:
            _claim(catalog, run_row, ids)
            return ProcessingRun(catalog, run_row, ids)
        except ClaimConflictError as exc:
            if deadline is None:
                raise
            if time.monotonic() >= deadline:
                raise ClaimConflictError(f"{exc} (waited {wait:g} s)", exc.held) from None
            time.sleep(min(WAIT_POLL, max(deadline - time.monotonic(), 0.0)))


def _refuse_held(catalog: Catalog, ids: Sequence[str], run_id: str, stamp, statuses: dict[str, str]) -> None:
    """Inside a transaction: raise if live runs hold any of ``ids``; abandon expired holders."""
    held: dict[str, str | None] = {}
    stale: set[str] = set()
    holders = claim_holders(catalog, ids)
    for did, (claim, run) in holders.items():
        if claim["run_id"] == run_id:
            continue
        if is_live(run, stamp):
            held[did] = claim["run_id"]
        else:
            stale.add(claim["run_id"])
    for did in ids:
        if did not in holders and statuses.get(did) == _PROCESSING:
            held[did] = None
    if held:
        raise ClaimConflictError(_conflict_message(held, holders), held)
    for rid in sorted(stale):
        _abandon(catalog, rid, f"its lease ran out; run {run_id} took over its datasets", stamp)


def _conflict_message(held: dict[str, str | None], holders) -> str:
    by_run: dict[str | None, list[str]] = defaultdict(list)
    for did, rid in held.items():
        by_run[rid].append(did)
    parts = []
    for rid, ids in by_run.items():
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        if rid is None:
            parts.append(f"{shown} marked processing outside any run (set their status first)")
        else:
            run = holders[ids[0]][1] or {}
            expiry = lease_expiry(run)
            parts.append(f"{shown} held by run {run.get('name')!r} ({rid}, lease until "
                         f"{expiry:%Y-%m-%d %H:%M:%S} UTC)" if expiry else f"{shown} held by run {rid}")
    return f"{len(held)} of the datasets are already being processed: " + "; ".join(parts)


def _claim(catalog: Catalog, run_row: dict, ids: list[str]) -> None:
    """Claim ``ids`` for the run in one write transaction, then check nobody else holds them."""
    store = catalog.store
    stamp = now()
    row = {**run_row, "started_at": stamp, "heartbeat_at": stamp}
    with store.transaction():
        statuses = _statuses(catalog, ids)
        missing = [i for i in ids if i not in statuses]
        if missing:
            raise DatasetNotFoundError(
                f"cannot claim {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: not in {catalog.url}")
        _refuse_held(catalog, ids, row["run_id"], stamp, statuses)
        statuses = _statuses(catalog, ids)  # abandoning a dead run may have restored some
        write_row(catalog, S.PROCESSING_RUNS.name, row)
        if ids:
            catalog.store.upsert(S.PROCESSING_CLAIMS.name, R.to_table(S.PROCESSING_CLAIMS.name, [
                {"dataset_id": i, "run_id": row["run_id"], "role": "input", "previous_status": statuses[i],
                 "claimed_at": stamp} for i in ids]), S.PROCESSING_CLAIMS.key)
            catalog.update(ids, processing_status=_PROCESSING, run_id=row["run_id"],
                           reason=f"claimed by run {row['name']!r}")
        catalog.log_event("run_start", run_id=row["run_id"], to_value=row["name"],
                          details={"params": row["params"], "n_inputs": len(ids), "pid": row["pid"],
                                   "host": row["host"], "lease_seconds": row["lease_seconds"]})
    # Read back: on a store whose transactions do not serialise writers, another run may have
    # overwritten some claims between our check and our write. Then nobody may proceed on them.
    theirs = {c["dataset_id"]: c["run_id"] for c in rows_by(catalog, S.PROCESSING_CLAIMS.name, "dataset_id", ids)
              if c["run_id"] != row["run_id"]}
    if theirs:
        with store.transaction():
            _release(catalog, row["run_id"], S.RunStatus.FAILED.value, "lost the race for its inputs", now())
        raise ClaimConflictError(f"another run claimed {', '.join(list(theirs)[:5])} at the same moment; "
                                 "try again", dict(theirs))


def _statuses(catalog: Catalog, ids: Sequence[str]) -> dict[str, str | None]:
    return {r["dataset_id"]: r["processing_status"]
            for r in rows_by(catalog, "observations", "dataset_id", ids, ["dataset_id", "processing_status"])}


def _release(catalog: Catalog, run_id: str, status: str, error: str | None, stamp) -> None:
    """Inside a transaction: end run ``run_id`` with ``status`` and let go of its claims."""
    claims = rows_by(catalog, S.PROCESSING_CLAIMS.name, "run_id", [run_id])
    ok = status == S.RunStatus.SUCCEEDED.value
    targets: dict[str | None, list[str]] = defaultdict(list)
    for c in claims:
        if ok:
            targets[_PROCESSED].append(c["dataset_id"])
        elif c["role"] == "output":
            targets[_FAILED].append(c["dataset_id"])
        else:
            targets[c["previous_status"] or S.ProcessingStatus.RAW.value].append(c["dataset_id"])
    present = set(_statuses(catalog, [c["dataset_id"] for c in claims]))
    reason = f"run {status}" + (f": {error}" if error else "")
    for target, ids in targets.items():
        ids = [i for i in ids if i in present]  # a dataset deleted meanwhile has nothing to restore
        if ids:
            catalog.update(ids, processing_status=target, run_id=run_id, reason=reason[:500])
    delete_claims(catalog, [c["dataset_id"] for c in claims])
    write_row(catalog, S.PROCESSING_RUNS.name, {"run_id": run_id, "status": status, "finished_at": stamp,
                                                "error": error})
    catalog.log_event(f"run_{status}", run_id=run_id, to_value=status,
                      details={"error": error, "released": len(claims)} if error else {"released": len(claims)})


def _abandon(catalog: Catalog, run_id: str, why: str, stamp) -> None:
    log.warning("abandoning processing run %s: %s", run_id, why)
    _release(catalog, run_id, S.RunStatus.ABANDONED.value, why, stamp)


def release_stale_runs(catalog: Catalog) -> list[str]:
    """Abandon every running run whose lease has run out (its process died); returns their ids.

    Their inputs go back to the status they had before, their outputs become ``failed``. Runs
    that want those datasets do this by themselves; this is for tidying up, e.g. from cron.
    """
    stamp = now()
    out = []
    with catalog.store.transaction():
        for run in rows_by(catalog, S.PROCESSING_RUNS.name, "status", [S.RunStatus.RUNNING.value]):
            if not is_live(run, stamp):
                _abandon(catalog, run["run_id"], "its lease ran out without a heartbeat", stamp)
                out.append(run["run_id"])
    return out
