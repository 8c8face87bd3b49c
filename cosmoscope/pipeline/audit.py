"""The audit trail of a product: every event about it and about everything it was made from."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog


def trail(catalog: Catalog, dataset_id: str) -> pl.DataFrame:
    """Events about ``dataset_id`` and every dataset upstream of it, plus the start and end of
    every processing run involved, oldest first.

    Read from the top it goes from the raw files being cataloged, through each run that
    claimed them and the outputs it wrote, to the final product. A ``depth`` column says how
    many lineage hops from ``dataset_id`` each event's dataset is (0: the dataset itself; null:
    an event of a run as a whole).
    """
    import polars as pl

    from cosmoscope.lineage import walk

    related = walk(catalog, dataset_id, direction="upstream")
    depth = {dataset_id: 0}
    for row in related.select("dataset_id", "depth").iter_rows(named=True):
        depth.setdefault(row["dataset_id"], row["depth"])
    ids = list(depth)
    events = catalog.events().filter(pl.col("dataset_id").is_in(ids)).collect()
    runs = {r for r in events["run_id"].to_list() + related["run_id"].to_list() if r is not None}
    if runs:
        run_events = (catalog.events().filter(pl.col("run_id").is_in(sorted(runs)), pl.col("dataset_id").is_null())
                      .collect())
        events = pl.concat([events, run_events])
    hops = pl.DataFrame({"dataset_id": ids, "depth": [depth[i] for i in ids]},
                        schema={"dataset_id": pl.String, "depth": pl.Int32})
    return events.join(hops, on="dataset_id", how="left").sort("ts", "event_id")
