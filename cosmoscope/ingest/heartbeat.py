"""Watcher heartbeats in the catalog, so any process (``cosmoscope status``) can see each watcher.

A watcher upserts its row of the ``watchers`` table every few seconds: state, backlog, counts,
last file. A row that says ``running`` but has not been written for three heartbeat intervals
belongs to a watcher that was killed, hung, or whose machine went down: ``not responding``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.errors import CosmoscopeError

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog

#: A heartbeat older than this many intervals means the watcher is gone.
STALE_AFTER = 3


class WatcherBusyError(CosmoscopeError):
    """Another live watcher already watches the same paths from this machine."""


def watcher_id_for(host: str, roots: Iterable[str]) -> str:
    """A stable id for a watcher of ``roots`` on ``host``: a restarted watcher takes over its own row."""
    text = "\n".join([host, *sorted(roots)])
    return "w-" + hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()


def write_heartbeat(catalog: Catalog, row: dict) -> None:
    """Upsert one watcher's row."""
    from cosmoscope.records import to_table

    catalog.store.upsert(S.WATCHERS.name, to_table(S.WATCHERS.name, [row]), S.WATCHERS.key)


def refuse_if_busy(catalog: Catalog, watcher_id: str, host: str, roots: list[str], heartbeat_every: float) -> None:
    """Raise :class:`WatcherBusyError` if a live process on this host already runs ``watcher_id``.

    A row left ``running`` by a killed watcher is taken over: its process is gone, or its
    heartbeat is stale.
    """
    import polars as pl

    from cosmoscope.times import now

    rows = catalog.frame(S.WATCHERS.name).filter(pl.col("watcher_id") == watcher_id).collect()
    if rows.height == 0:
        return
    row = rows.row(0, named=True)
    if row["state"] != S.WatcherState.RUNNING.value or row["host"] != host or row["pid"] == os.getpid():
        return
    interval = row["heartbeat_seconds"] or heartbeat_every
    fresh = row["heartbeat_at"] is not None and \
        (now() - row["heartbeat_at"]).total_seconds() < STALE_AFTER * interval
    if fresh and pid_alive(row["pid"]):
        raise WatcherBusyError(
            f"process {row['pid']} on {host} already watches {', '.join(roots)} (watcher {watcher_id}, last "
            f"heartbeat {row['heartbeat_at']:%H:%M:%S} UTC); stop it first, or watch other directories")


def watcher_status(catalog: Catalog) -> pl.DataFrame:
    """Every watcher of ``catalog``, with ``status`` (``running``, ``not responding``, ``stopped``
    or ``failed``) and ``heartbeat_age_s`` (seconds since its last heartbeat)."""
    import polars as pl

    from cosmoscope.times import now

    df = catalog.frame(S.WATCHERS.name).collect()
    age = (pl.lit(now()) - pl.col("heartbeat_at")).dt.total_microseconds() / 1e6
    stale = age > STALE_AFTER * pl.col("heartbeat_seconds").fill_null(5.0)
    status = (pl.when((pl.col("state") == S.WatcherState.RUNNING.value) & stale).then(pl.lit("not responding"))
              .otherwise(pl.col("state")))
    return df.with_columns(status.alias("status"), age.round(1).alias("heartbeat_age_s")).sort("watcher_id")


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this machine."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
