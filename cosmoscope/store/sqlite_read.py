"""How the SQLite store reads many rows: small first batches that grow, and parallel ranges.

polars tells a scan how many rows it wants only when nothing is filtered above it, and then
stops pulling batches once it has enough (a streaming collect asks for a couple of batches
ahead). So a read that may be cut short starts small and grows: 1,024 rows, 2,048, ... up to
:data:`GROW_UNTIL`, then reads on at full speed. Every step runs in one read snapshot, so the
steps see the same rows:

- when SQLite scans the table itself (no index serves the filter), the steps walk it in rowid
  order, each from where the last stopped, and the rest is read by :data:`WORKERS` threads on
  their own connections, in rowid ranges merged back in order (the ADBC driver leaves the GIL
  while it reads);
- when an index serves the filter, or the rows are ordered, each step runs the same statement
  with a larger limit and skips the rows already given (by rowid; with an ``ORDER BY`` the
  order is total, so those are the first ones), and the last step reads to the end.

Several connections share one snapshot when no commit lands while they open their read
transactions (``PRAGMA data_version`` of a probe connection tells); else the read falls back
to one connection. So a parallel read never sees half a write either.
"""

from __future__ import annotations

import logging
import os
import queue
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from cosmoscope.store.sqlite import SQLiteStore, _Connection

log = logging.getLogger("cosmoscope.store.sqlite")

#: Rows of the first step of a read that may be cut short; each step doubles it.
FIRST_ROWS = 1_024
#: Steps grow until they would read this many rows; the rest is read at full speed.
GROW_UNTIL = 65_536
#: Threads (each with its own connection) reading a big table scan in parallel.
WORKERS = max(1, min(4, os.cpu_count() or 1))
#: A table scan is read in parallel when this many rowids remain.
PARALLEL_MIN = 200_000
#: Rowids per parallel range.
RANGE_ROWIDS = 65_536
#: Rows per batch at full speed.
FULL_BATCH = 50_000
_ROWID = "__cosmoscope_rowid"


def read(store: SQLiteStore, table: str, columns: list[str], where: str, params: list, order: str,
         out_schema: pa.Schema, first_rows: int | None) -> Iterator[pa.RecordBatch]:
    """Every row of ``SELECT columns FROM table WHERE where order``, in batches of
    ``out_schema``; small first batches when ``first_rows`` is given."""
    from cosmoscope.store.sqlite import _q

    cons = snapshot(store, 1 if order else WORKERS)
    try:
        con = cons[0]
        cols = ", ".join([f"rowid AS {_q(_ROWID)}", *map(_q, columns)])
        schema = pa.schema([pa.field(_ROWID, pa.int64()), *out_schema])
        if not order and _table_scan(con, f"{cols} FROM {_q(table)} WHERE {where}", params):
            yield from _by_rowid(store, cons, table, columns, where, params, out_schema, first_rows)
        else:
            yield from _restarting(store, con, f"{cols} FROM {_q(table)} WHERE {where}{order}", params, schema,
                                   first_rows)
    finally:
        for c in cons:
            c.close()


def snapshot(store: SQLiteStore, n: int) -> list[_Connection]:
    """``n`` read connections that see the same committed state (or one, if writers never
    paused long enough for several to open together)."""
    from cosmoscope.store.sqlite import _Connection

    cons = []
    probe = None
    try:
        cons = [_Connection(store._ro_uri(), store.busy_timeout) for _ in range(n)]
        probe = _Connection(store._ro_uri(), store.busy_timeout) if n > 1 else None
        for _attempt in range(5):
            before = probe.execute("PRAGMA data_version") if probe else None
            for c in cons:
                _begin(c)
            if probe is None or probe.execute("PRAGMA data_version") == before:
                return cons
            for c in cons:
                c.execute("COMMIT")
        log.debug("%s: commits kept landing; reading with one connection", store.path)
        for c in cons[1:]:
            c.close()
        cons = cons[:1]
        return cons
    except BaseException:
        for c in cons:
            c.close()
        raise
    finally:
        if probe is not None:
            probe.close()


def _begin(con: _Connection) -> None:
    from cosmoscope.store.sqlite import _META_TABLE, _q

    con.execute("BEGIN")
    con.execute(f"SELECT count(*) FROM {_q(_META_TABLE)}")  # the read transaction starts at a first read


def _table_scan(con: _Connection, select: str, params: list) -> bool:
    """Whether SQLite reads the table itself (in rowid order) rather than through an index."""
    plan = con.execute(f"EXPLAIN QUERY PLAN SELECT {select}", params)
    details = [str(r[-1]) for r in plan]
    return len(details) == 1 and details[0].startswith("SCAN ") and "INDEX" not in details[0]


def _rows(store: SQLiteStore, con: _Connection, select: str, params: list, schema: pa.Schema,
          batch_rows: int) -> Iterator[pa.RecordBatch]:
    from cosmoscope.store.sqlite import _sentinel_sql

    yield from store._read(con, _sentinel_sql(select, schema), params, schema, batch_rows)


def _by_rowid(store, cons, table, columns, where, params, out_schema, first_rows) -> Iterator[pa.RecordBatch]:
    from cosmoscope.store.sqlite import _q

    con = cons[0]
    lo, hi = con.execute(f"SELECT min(rowid), max(rowid) FROM {_q(table)}")[0]
    if lo is None:
        return
    cols = ", ".join(map(_q, columns)) or "1"
    after = f"FROM {_q(table)} WHERE ({where}) AND rowid > ?"
    last, k = lo - 1, first_rows
    schema = pa.schema([pa.field(_ROWID, pa.int64()), *out_schema])
    while k and k < GROW_UNTIL:  # the steps note the rowid they reached
        got = 0
        for batch in _rows(store, con, f"rowid AS {_q(_ROWID)}, {cols} {after} ORDER BY rowid LIMIT ?",
                           [*params, last, k], schema, k):
            got += batch.num_rows
            last = batch.column(0)[-1].as_py()
            yield batch.drop_columns([_ROWID])
        if got < k:
            return
        k *= 2
    if len(cons) > 1 and hi - last >= PARALLEL_MIN:
        yield from _parallel(store, cons, f"{cols} {after} AND rowid <= ?", params, out_schema, last, hi)
        return
    yield from _rows(store, con, f"{cols} {after}", [*params, last], out_schema, FULL_BATCH)


def _parallel(store, cons, select, params, schema, last, hi) -> Iterator[pa.RecordBatch]:
    """Rowid ranges after ``last`` up to ``hi``, read by one thread per connection, in order."""
    free: queue.SimpleQueue = queue.SimpleQueue()
    for c in cons:
        free.put(c)

    def work(lo_hi):
        con = free.get()
        try:
            return list(_rows(store, con, select, [*params, *lo_hi], schema, FULL_BATCH))
        finally:
            free.put(con)

    ranges = iter([(a, min(a + RANGE_ROWIDS, hi)) for a in range(last, hi, RANGE_ROWIDS)])
    with ThreadPoolExecutor(len(cons), thread_name_prefix="cosmoscope-sqlite-read") as pool:
        pending = deque(pool.submit(work, r) for r in islice(ranges, 2 * len(cons)))
        try:
            while pending:
                batches = pending.popleft().result()
                nxt = next(ranges, None)
                if nxt is not None:
                    pending.append(pool.submit(work, nxt))
                yield from batches
        finally:
            for f in pending:
                f.cancel()


def _restarting(store, con, select, params, schema, first_rows) -> Iterator[pa.RecordBatch]:
    """The same statement with growing limits, each giving the rows the last did not (by rowid),
    then with no limit."""
    import numpy as np

    seen = np.empty(0, dtype=np.int64)
    k = first_rows
    while k and k < GROW_UNTIL:
        got = 0
        fresh = []
        for batch in _rows(store, con, f"{select} LIMIT ?", [*params, k], schema, k):
            got += batch.num_rows
            batch = _unseen(batch, pa.array(seen))
            fresh.append(batch.column(0).to_numpy())
            if batch.num_rows:
                yield batch.drop_columns([_ROWID])
        seen = np.concatenate([seen, *fresh])
        if got < k:
            return
        k *= 2
    skipped, seen = 0, pa.array(seen)
    for batch in _rows(store, con, f"{select} LIMIT ?", [*params, -1], schema, FULL_BATCH):
        if skipped < len(seen):
            before = batch.num_rows
            batch = _unseen(batch, seen)
            skipped += before - batch.num_rows
        if batch.num_rows:
            yield batch.drop_columns([_ROWID])


def _unseen(batch: pa.RecordBatch, seen) -> pa.RecordBatch:
    if not len(seen):
        return batch
    return batch.filter(pc.invert(pc.is_in(batch.column(0), value_set=seen)))
