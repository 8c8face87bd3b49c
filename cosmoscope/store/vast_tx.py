"""Transactions, retries and the connection of the VAST store (see :mod:`cosmoscope.store.vast`).

Every store call runs in a VAST transaction: the caller's (``store.transaction()``; nesting
joins it) or one of its own. A call of its own is retried whole in a new transaction after a
transient failure (503, ``SlowDown``, a dropped connection, a 409 conflict, a lost commit
answer): the store's writes are idempotent by key, so a retry finds what a failed try wrote and
never writes twice. Inside the caller's transaction the same call is retried in that
transaction; a transaction the store aborts (lost in a restart, or a commit that lost a race
with another writer) raises :class:`~cosmoscope.errors.TransactionAbortedError`, which the
ingest and the watcher answer by running their work again (``run_again_if_aborted``); a lost
commit answer is resolved by looking for a row the transaction inserted. Permanent failures (bad credentials, a
missing bucket, an unreachable endpoint) are reported at once in one sentence.
"""

from __future__ import annotations

import functools
import logging
import random
import socket
import threading
import time
from contextlib import contextmanager

from cosmoscope.errors import CatalogOpenError, ConflictError, CosmoscopeError, StoreError, TransactionLostError
from cosmoscope.predicate import Clause, Predicate, Test
from cosmoscope.store.vast_config import (CONFLICT, LOST_TX, PERMANENT, TRANSIENT, VastLocation, classify,
                                          describe)

log = logging.getLogger("cosmoscope.store.vast")


class _CommitUnknown(Exception):
    """The commit's answer was lost: the transaction may or may not have been applied."""


def connect_session(loc: VastLocation, creds):
    """A vastdb session on ``loc.endpoint``; an unreachable endpoint or refused credentials fail
    at once with :class:`CatalogOpenError` (a TCP probe first, so no retries are spent on them)."""
    import backoff
    import vastdb
    from vastdb.config import BackoffConfig

    host, port = loc.host_port
    connect_timeout = loc.option("connect_timeout")
    try:
        socket.create_connection((host, port), timeout=connect_timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__.replace("Error", " error").lower()
        raise CatalogOpenError(f"cannot reach VAST Database at {loc.endpoint} ({reason}); check the endpoint "
                               "in the URL and that this machine can reach it") from None
    verify = loc.option("verify")
    verify = {"1": True, "true": True, "0": False, "false": False}.get(verify.lower(), verify)
    wait = functools.partial(backoff.expo, factor=loc.option("retry_wait"))
    try:
        return vastdb.connect(
            endpoint=loc.endpoint, access=creds.access, secret=creds.secret, ssl_verify=verify,
            timeout=(connect_timeout, loc.option("timeout")),
            backoff_config=BackoffConfig(wait_gen=wait, max_tries=loc.option("retries"),
                                         max_time=loc.option("retry_seconds")))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
        raise CatalogOpenError(f"cannot open {loc.url}: {describe(exc, loc, creds)}") from None


class VastTransactions:
    """The transaction and retry side of :class:`~cosmoscope.store.vast.VastStore`.

    Expects ``loc``, ``url``, ``readonly``, ``_creds`` and ``_session`` to be set, and the store
    to provide ``_read_state(tx)`` and ``scan``.
    """

    def _init_transactions(self) -> None:
        self._lock = threading.RLock()
        self._tx = None
        self._depth, self._owner = 0, None
        self._marker: tuple[str, tuple[str, ...], tuple] | None = None
        self._ddl = False

    def _check_writable(self):
        if self.readonly:
            raise StoreError(f"the catalog {self.url} was opened read-only; open it without readonly to write")

    def _in_transaction(self) -> bool:
        return self._depth > 0 and self._owner == threading.get_ident()

    def _begin(self):
        tx = self._session.transaction()
        return tx.__enter__()

    def _finish(self, tx, commit: bool) -> None:
        """Commit (raising :class:`_CommitUnknown` when the answer is lost) or roll back quietly."""
        txid, tx.txid = tx.txid, None  # the SDK's own exit logs a traceback on rollback; do it here
        adbc = getattr(tx, "_adbc_conn", None)
        if adbc is not None:
            adbc.close()
            tx._adbc_conn = None
        api = self._session.api
        if not commit:
            try:
                api.rollback_transaction(txid)
            except Exception as exc:  # noqa: BLE001 - the server forgets it anyway
                log.debug("rollback of %x: %s", txid, exc)
            return
        resent = False
        for attempt in range(self.loc.option("retries")):
            try:
                api.commit_transaction(txid)
                return
            except Exception as exc:  # noqa: BLE001
                kind = classify(exc)
                if kind == LOST_TX and resent:
                    raise _CommitUnknown() from exc  # committed by the lost answer, or lost with the server
                if kind != TRANSIENT:
                    raise
                resent = True
                self._sleep(attempt)
        raise _CommitUnknown()

    def _sleep(self, attempt: int) -> None:
        wait = self.loc.option("retry_wait") * 2 ** attempt
        time.sleep(random.uniform(wait / 2, wait))

    def _run(self, fn, *, what: str, write: bool = False):
        """``fn(tx)`` in a transaction of its own, retried whole on transient failures.

        ``fn`` must be idempotent (upserts, updates and deletes by key are), so a retry after a
        lost answer cannot write twice.
        """
        deadline = time.monotonic() + self.loc.option("retry_seconds")
        attempts = self.loc.option("retries")
        for attempt in range(attempts):
            tx = None
            try:
                tx = self._begin()
                result = fn(tx)
                self._finish(tx, commit=write)
                return result
            except CosmoscopeError:
                if tx is not None and tx.txid is not None:
                    self._finish(tx, commit=False)
                raise
            except _CommitUnknown as exc:
                error, kind = exc.__cause__ or exc, TRANSIENT
            except Exception as exc:  # noqa: BLE001 - sorted into retry or report below
                if tx is not None and tx.txid is not None:
                    self._finish(tx, commit=False)
                error, kind = exc, classify(exc)
            if kind == PERMANENT or attempt == attempts - 1 or time.monotonic() > deadline:
                break
            log.info("%s: %s; trying again (%d/%d)", what, describe(error, self.loc, self._creds), attempt + 2,
                     attempts)
            self._sleep(attempt)
        tried = f" after {attempt + 1} attempts" if attempt else ""
        raise StoreError(f"could not {what}{tried}: {describe(error, self.loc, self._creds)}; nothing of it was "
                         "kept") from error

    def _write(self, fn, *, what: str):
        """Run an idempotent write ``fn(tx)`` in the open transaction, or in one of its own."""
        self._check_writable()
        if not self._in_transaction():
            with self._lock:
                return self._run(fn, what=what, write=True)
        for attempt in range(self.loc.option("retries")):
            try:
                return fn(self._tx)
            except CosmoscopeError:
                raise
            except Exception as exc:  # noqa: BLE001
                kind = classify(exc)
                if kind != TRANSIENT or attempt == self.loc.option("retries") - 1:
                    raise self._in_transaction_error(f"could not {what}", exc, kind) from exc
                # Same transaction, same idempotent call: it finds whatever the failed try wrote.
                log.info("%s: %s; trying again", what, describe(exc, self.loc, self._creds))
                self._sleep(attempt)

    def _in_transaction_error(self, doing: str, exc: Exception, kind: str) -> StoreError:
        """The error for a failure inside the caller's transaction, which is then rolled back."""
        if kind == LOST_TX:
            return TransactionLostError(f"{doing}: the transaction was lost (the cluster restarted or it timed "
                                        "out); nothing of it is kept")
        return StoreError(f"{doing}: {describe(exc, self.loc, self._creds)}; the transaction will be rolled back, "
                          "so nothing of it is kept")

    @contextmanager
    def transaction(self):
        self._check_writable()
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            tx = self._begin_retrying()
            self._tx, self._depth, self._owner, self._marker, self._ddl = tx, 1, threading.get_ident(), None, False
            try:
                yield
            except BaseException:
                ddl = self._end_transaction()
                self._finish(tx, commit=False)
                if ddl:  # what the transaction created or altered is gone again: read the catalog back
                    self._run(self._read_state, what="reload the catalog's tables")
                raise
            marker = self._marker
            ddl = self._end_transaction()
            try:
                self._commit_outer(tx, marker)
            except BaseException:
                if ddl:
                    self._run(self._read_state, what="reload the catalog's tables")
                raise

    def _begin_retrying(self):
        """A new transaction, asked for again after a transient failure (nothing was written yet)."""
        attempts = self.loc.option("retries")
        for attempt in range(attempts):
            try:
                return self._begin()
            except Exception as exc:  # noqa: BLE001
                if classify(exc) != TRANSIENT or attempt == attempts - 1:
                    raise StoreError(f"could not start a transaction: {describe(exc, self.loc, self._creds)}") from exc
                log.info("starting a transaction: %s; trying again", describe(exc, self.loc, self._creds))
                self._sleep(attempt)

    def _end_transaction(self) -> bool:
        """Forget the open transaction; True if it created or altered tables."""
        ddl = self._ddl
        self._tx, self._depth, self._owner, self._marker, self._ddl = None, 0, None, None, False
        return ddl

    def _commit_outer(self, tx, marker) -> None:
        try:
            self._finish(tx, commit=True)
            return
        except _CommitUnknown:
            committed = self._probe(marker)
            if committed:
                log.info("the answer to a commit was lost, but its rows are there: it was applied")
                return
            if committed is None:
                raise StoreError(f"the answer to a commit to {self.url} was lost and whether it was applied is "
                                 "unknown; writes by key (ingest, update) are safe to run again") from None
            error = "the commit did not reach VAST Database"
        except Exception as exc:  # noqa: BLE001
            if classify(exc) == CONFLICT:
                raise ConflictError(f"could not commit to {self.url}: another writer changed the same rows at "
                                    "the same time; nothing of the transaction was kept, run it again") from None
            error = describe(exc, self.loc, self._creds)
        raise StoreError(f"could not commit to {self.url}: {error}; nothing of the transaction was kept, "
                         "run it again")

    def _probe(self, marker) -> bool | None:
        """Whether a row the lost transaction inserted is now there (None: no way to tell)."""
        if marker is None:
            return None
        table, key, values = marker
        pred = Predicate(tuple(Clause((Test(k, "==", v),)) for k, v in zip(key, values)))
        try:
            return any(b.num_rows for b in self.scan(table, list(key), pred, limit=1))
        except CosmoscopeError:
            return None
