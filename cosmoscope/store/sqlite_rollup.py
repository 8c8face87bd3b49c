"""The SQLite store's side of the rollups (:mod:`cosmoscope.store.rollup`).

SQLite itself notes, with TEMP triggers on the store's write connection, every row a statement
on the observations adds or removes, values as stored: exactly what the statement did, duplicate
keys and preserved columns included, and updates that leave every column the rollups read as it
was are skipped. After each batch those rows are grouped in polars and each rollup group's one
entry is changed in place, in the batch's transaction (writers take turns on SQLite, so entries
need not be appended as on VAST).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pyarrow as pa

from cosmoscope.store import rollup

if TYPE_CHECKING:
    from cosmoscope.store.sqlite import SQLiteStore

#: The TEMP table (and triggers) in which the write connection notes what its writes changed.
_CHANGES = "cosmoscope_changes"


def _q(name: str) -> str:
    from cosmoscope.store.sqlite import _q as quote

    return quote(name)


def capture_changes(store: SQLiteStore) -> None:
    """Make the store's write connection note the rows its next statements on the observations
    add (sign 1) and remove (sign -1), and forget what earlier ones noted."""
    if getattr(store, "_capturing", False):
        store._con.execute(f"DELETE FROM temp.{_CHANGES}")
        return
    cols = [rollup.SOURCE_KEY, *rollup.READS]
    src = f"main.{_q(rollup.SOURCE)}"

    def values(row):
        return ", ".join(f"{row}.{_q(c)}" for c in cols)

    changed = " OR ".join(f"OLD.{_q(c)} IS NOT NEW.{_q(c)}" for c in cols)
    store._con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_CHANGES} (sign INTEGER, {', '.join(map(_q, cols))})")
    store._con.execute(f"CREATE TEMP TRIGGER IF NOT EXISTS {_CHANGES}_insert AFTER INSERT ON {src} BEGIN "
                       f"INSERT INTO {_CHANGES} VALUES (1, {values('NEW')}); END")
    store._con.execute(f"CREATE TEMP TRIGGER IF NOT EXISTS {_CHANGES}_update AFTER UPDATE ON {src} WHEN {changed} "
                       f"BEGIN INSERT INTO {_CHANGES} VALUES (-1, {values('OLD')}); "
                       f"INSERT INTO {_CHANGES} VALUES (1, {values('NEW')}); END")
    store._con.execute(f"CREATE TEMP TRIGGER IF NOT EXISTS {_CHANGES}_delete AFTER DELETE ON {src} BEGIN "
                       f"INSERT INTO {_CHANGES} VALUES (-1, {values('OLD')}); END")
    store._con.execute(f"DELETE FROM temp.{_CHANGES}")
    store._capturing = True


def apply_changes(store: SQLiteStore) -> None:
    """Write into the rollups what the batch added and removed (see :func:`capture_changes`)."""
    import polars as pl

    schema = store._schema(rollup.SOURCE)
    out = pa.schema([pa.field("sign", pa.int64()), *[schema.field(c) for c in (rollup.SOURCE_KEY, *rollup.READS)]])
    rows = pl.from_arrow(pa.Table.from_batches(list(store._query(
        f"{', '.join(map(_q, out.names))} FROM temp.{_CHANGES}", [], out, 50_000)), schema=out))
    if rows.height:
        rollup.apply_rows(Ops(store), rows.filter(pl.col("sign") == 1), rows.filter(pl.col("sign") == -1))


@functools.lru_cache(maxsize=None)
def _add_sql(r: rollup.Rollup) -> str:
    """The statement that adds one change to its group's entry (or makes the entry)."""
    names = r.spec.schema.names

    def combined(c, fn):
        c, e = _q(c), f"excluded.{_q(c)}"
        return f"{c} = CASE WHEN {e} IS NULL THEN {c} WHEN {c} IS NULL THEN {e} ELSE {fn}({c}, {e}) END"

    sets = ([f"{_q(c)} = {_q(c)} + excluded.{_q(c)}" for c in r.sums]
            + [combined(c, "MIN") for c in r.mins] + [combined(c, "MAX") for c in r.maxs])
    return (f"INSERT INTO {_q(r.name)} ({', '.join(map(_q, names))}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT (\"entry_id\") DO UPDATE SET {', '.join(sets)}")


class Ops:
    """The store's verbs inside its open transaction or snapshot (for :mod:`cosmoscope.store.rollup`).

    Writers take turns here, so each rollup group has one entry, changed in place by SQL.
    """

    in_place = True

    def __init__(self, store: SQLiteStore):
        self.store = store

    def add(self, r: rollup.Rollup, changes) -> None:
        """Add each change (sums, and minima and maxima to combine) to its group's entry."""
        import polars as pl

        if changes.is_empty():
            return
        data = rollup.entries_table(r, changes, keyed=True)  # already in the table's own types
        self.store._con.executemany(_add_sql(r), self.store._storage(data))
        emptied = changes.filter(pl.col("n") < 0).select(pl.col("group_key").alias("entry_id"))
        if emptied.height:
            self.store._con.executemany(f"DELETE FROM {_q(r.name)} WHERE \"entry_id\" = ? AND \"n\" <= 0",
                                        emptied.to_arrow())

    def scan(self, table, columns, predicate):
        return self.store.scan(table, columns, predicate)

    def insert(self, table, data):
        self.store.upsert(table, data, self.store._keys[table])

    def upsert(self, table, data, key):
        self.store.upsert(table, data, key)

    def delete(self, table, keys):
        self.store.delete(table, keys)
