"""How the VAST store reads rows in an order, and reads that may be cut short.

Both run inside one transaction (one snapshot), given by :meth:`VastStore._read`:

- :func:`growing`: polars stops pulling batches once it has enough rows, but says how many it
  wants only when nothing is filtered above the scan. So the first selects ask VAST for
  1,024 rows, then 2,048, ... (``limit_rows``), each giving the rows the ones before did not
  (by the table's key: the splits answer in any order), and the last reads the rest.
- :func:`ordered`: VAST keeps no order, so the matching rows are read and sorted here
  (missing values last, ties by the table's key), then cut to the limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from cosmoscope.store import sqlite_read

if TYPE_CHECKING:
    from cosmoscope.store.vast import VastStore

#: Rows per batch handed on after an ordered read.
_BATCH = 65_536


def _keys(store: VastStore, table: str, columns: list[str]) -> tuple[list[str], list[str]]:
    key = list(store._keys[table])
    return key, columns + [k for k in key if k not in columns]


def _key_of(batch: pa.RecordBatch, key: list[str]):
    if len(key) == 1:
        return batch.column(key[0])
    # several key columns: one text per row (the columns are key parts, never null)
    return pc.binary_join_element_wise(*[pc.cast(batch.column(k), pa.string()) for k in key], "\x1f")


def growing(store: VastStore, tx, table: str, columns: list[str], plans, first_rows: int) -> Iterator[pa.RecordBatch]:
    """Every matching row, the first batches small and growing (see the module docstring)."""
    key, read = _keys(store, table, columns)
    seen: list = []
    k = first_rows
    while k < sqlite_read.GROW_UNTIL:
        got = 0
        value_set = pa.concat_arrays(seen) if seen else None
        for batch in store._read_plans(tx, table, read, plans, k):
            got += batch.num_rows
            ids = _key_of(batch, key)
            if value_set is not None:
                fresh = pc.invert(pc.is_in(ids, value_set=value_set))
                batch, ids = batch.filter(fresh), ids.filter(fresh)
            seen.append(ids)
            if batch.num_rows:
                yield batch.select(columns)
        if got < k:
            return
        k *= 2
    value_set = pa.concat_arrays(seen) if seen else None
    for batch in store._read_plans(tx, table, read, plans, None):
        if value_set is not None:
            batch = batch.filter(pc.invert(pc.is_in(_key_of(batch, key), value_set=value_set)))
        if batch.num_rows:
            yield batch.select(columns)


def ordered(store: VastStore, tx, table: str, columns: list[str], plans, order_by: Sequence[tuple[str, bool]],
            limit: int | None) -> Iterator[pa.RecordBatch]:
    """The matching rows sorted by ``order_by`` (missing values last, then the key), cut to ``limit``."""
    key, read = _keys(store, table, columns)
    read += [c for c, _ in order_by if c not in read]
    batches = list(store._read_plans(tx, table, read, plans, None))
    if not batches:
        return
    rows = pa.Table.from_batches(batches)
    sort = [(c, "descending" if desc else "ascending") for c, desc in order_by]
    sort += [(k, "ascending") for k in key if k not in {c for c, _ in order_by}]
    order = pc.sort_indices(rows, sort_keys=sort, null_placement="at_end")
    if limit is not None:
        order = order.slice(0, limit)
    rows = rows.take(order).select(columns)
    for start in range(0, rows.num_rows, _BATCH):
        yield from rows.slice(start, _BATCH).to_batches()
