"""Walking the lineage graph: raw -> calibrated -> derived, and back.

The walk is breadth-first, one pushed-down ``is_in`` scan of the edge table per hop, so it
costs one small query per generation whatever the catalog's size, and it stops on cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosmoscope.errors import DatasetNotFoundError, InvalidArgumentError

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog

#: Observation columns shown beside each related dataset.
NODE_COLUMNS = ["dataset_id", "mission_id", "instrument_type", "observation_timestamp", "file_path",
                "processing_status", "calibration_status", "calib_level", "data_quality_score"]

_DIRECTIONS = {"upstream": ("child_dataset_id", "parent_dataset_id"),
               "downstream": ("parent_dataset_id", "child_dataset_id")}


def walk(cat: Catalog, dataset_id: str, *, direction: str = "both", depth: int | None = None) -> pl.DataFrame:
    """Related datasets of ``dataset_id`` with the edge that reached each.

    Returns one row per (related dataset, edge): ``dataset_id``, ``direction`` (upstream or
    downstream), ``depth`` (hops from the start), ``parent_dataset_id``, ``child_dataset_id``,
    ``relationship_type``, ``run_id`` and the dataset's observation columns (null where the
    related dataset is not cataloged).
    """
    import polars as pl

    if direction not in ("upstream", "downstream", "both"):
        raise InvalidArgumentError(f"direction must be 'upstream', 'downstream' or 'both', not {direction!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise InvalidArgumentError(f"depth must be a positive number of hops or None, not {depth!r}")
    start = cat.lookup([dataset_id], ["dataset_id"])
    frames = []
    for d in (("upstream", "downstream") if direction == "both" else (direction,)):
        frames.append(_walk_one(cat, dataset_id, d, depth))
    edges = pl.concat(frames)
    if start.height == 0 and edges.height == 0 and not _has_edges(cat, dataset_id):
        raise DatasetNotFoundError(f"no dataset {dataset_id!r} in {cat.url}")
    nodes = cat.lookup(edges["dataset_id"].unique().to_list(), NODE_COLUMNS)
    return edges.join(nodes, on="dataset_id", how="left").sort("direction", "depth", "dataset_id")


def _has_edges(cat: Catalog, dataset_id: str) -> bool:
    """Whether any lineage edge names ``dataset_id`` (a dataset known only by its links)."""
    import polars as pl

    return any(cat.relationships().filter(pl.col(c) == dataset_id).select(c).head(1).collect().height
               for c in ("parent_dataset_id", "child_dataset_id"))  # two pushed reads, not one OR


def _walk_one(cat: Catalog, dataset_id: str, direction: str, depth: int | None) -> pl.DataFrame:
    import polars as pl

    here, there = _DIRECTIONS[direction]
    seen = {dataset_id}
    frontier = [dataset_id]
    found = []
    hop = 0
    while frontier and (depth is None or hop < depth):
        hop += 1
        edges = (cat.relationships()
                 .filter(pl.col(here).is_in(frontier))
                 .select("parent_dataset_id", "child_dataset_id", "relationship_type", "run_id")
                 .collect())
        if edges.height == 0:
            break
        found.append(edges.with_columns(pl.col(there).alias("dataset_id"), pl.lit(direction).alias("direction"),
                                        pl.lit(hop, pl.Int32).alias("depth")))
        nxt = [i for i in edges[there].unique().to_list() if i not in seen]
        seen.update(nxt)
        frontier = nxt
    if not found:
        return pl.DataFrame(schema={"parent_dataset_id": pl.String, "child_dataset_id": pl.String,
                                    "relationship_type": pl.String, "run_id": pl.String, "dataset_id": pl.String,
                                    "direction": pl.String, "depth": pl.Int32})
    return pl.concat(found)
