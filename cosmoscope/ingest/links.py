"""Lineage found in file headers: parents named by a child, resolved to catalog datasets.

A derived file names its inputs the way the mission does (``PARENT = 'hx01234567_evt1.fits'``,
a netCDF ``source`` attribute, ``IMCMB001``). The ingest stores those names in
``pending_lineage`` in the same transaction as the child row; :func:`resolve_pending` turns every
name it can match into a lineage edge and deletes it. A parent that is not cataloged yet stays
pending until a later ingest, the watcher or validation catalogs it — so files may arrive in any
order, and a run killed half-way loses no lineage.

A name matches, in order: an absolute path; a file of that name in the child's own directory;
then any cataloged file of that base name, preferring the child's mission and the nearest
directory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pyarrow as pa

from cosmoscope import schema as S
from cosmoscope.records import dataset_id_for
from cosmoscope.store.base import run_again_if_aborted
from cosmoscope.times import now

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

DEFAULT_RELATIONSHIP = S.RelationshipType.DERIVED.value


def add_pending(catalog: Catalog, pending: list[tuple[str, str | None, str | None]], *,
                run_id: str | None = None) -> None:
    """Remember ``(child_dataset_id, parent_name, relationship_type)`` until resolved, with who
    cataloged the child (the catalog's actor) and in which run: the edge is recorded in their
    name, whoever resolves it."""
    pending = [(c, n.strip(), r) for c, n, r in pending if n and n.strip()]
    if not pending:
        return
    stamp = now()
    n = len(pending)
    data = pa.table({
        "child_dataset_id": [p[0] for p in pending],
        "parent_name": [p[1] for p in pending],
        "relationship_type": pa.array([p[2] or DEFAULT_RELATIONSHIP for p in pending], pa.string()),
        "created_at": pa.array([stamp] * n, S.UTC_TS),
        "actor": pa.array([catalog.actor] * n, pa.string()),
        "run_id": pa.array([run_id] * n, pa.string()),
    })
    catalog.store.upsert(S.PENDING_LINEAGE.name, data, S.PENDING_LINEAGE.key, preserve=["created_at"])


def resolve_pending(catalog: Catalog, *, run_id: str | None = None) -> tuple[int, int]:
    """Link every pending parent name that now matches a dataset. Returns (linked, still pending).

    Each edge is recorded in the name (actor, run) of whoever cataloged its child; ``run_id``
    stands in for pending rows that name no run. An edge already recorded (a re-read file
    naming its parents again) is not recorded twice. A watcher and an ingest resolving the same
    pending rows at once race; the loser reads again.
    """
    return run_again_if_aborted(lambda: _resolve_once(catalog, run_id))


def _resolve_once(catalog: Catalog, run_id: str | None) -> tuple[int, int]:
    import polars as pl

    pending = catalog.frame(S.PENDING_LINEAGE.name).collect()
    if pending.height == 0:
        return 0, 0
    children = catalog.lookup(pending["child_dataset_id"].unique().to_list(),
                              ["dataset_id", "file_path", "mission_id"])
    child = {r["dataset_id"]: r for r in children.iter_rows(named=True)}
    names = {os.path.basename(n) for n in pending["parent_name"]}
    candidates = (catalog.observations().filter(pl.col("file_name").is_in(list(names)))
                  .select("dataset_id", "file_path", "file_name", "mission_id").collect())
    by_name: dict[str, list[dict]] = {}
    for r in candidates.iter_rows(named=True):
        by_name.setdefault(r["file_name"], []).append(r)

    edges: dict[tuple[str | None, str | None], list[tuple[str, str, str]]] = {}
    done = []
    for row in pending.iter_rows(named=True):
        c = child.get(row["child_dataset_id"])
        if c is None:  # the child itself is gone: nothing to link
            done.append(row)
            continue
        parent = _match(row["parent_name"], c, by_name)
        if parent is not None and parent != c["dataset_id"]:
            cause = (row.get("actor"), row.get("run_id") or run_id)
            edge = (parent, c["dataset_id"], row["relationship_type"] or DEFAULT_RELATIONSHIP)
            edges.setdefault(cause, []).append(edge)
            done.append(row)
    linked = 0
    with catalog.store.transaction():
        for (actor, cause_run), group in edges.items():
            linked += catalog.link_many(group, run_id=cause_run, require_existing=False, actor=actor)
        if done:
            keys = pa.table({"child_dataset_id": [r["child_dataset_id"] for r in done],
                             "parent_name": [r["parent_name"] for r in done]})
            catalog.store.delete(S.PENDING_LINEAGE.name, keys)
    return linked, pending.height - len(done)


def _match(name: str, child: dict, by_name: dict[str, list[dict]]) -> str | None:
    base = os.path.basename(name)
    options = by_name.get(base, [])
    if not options:
        return None
    ids = {o["dataset_id"] for o in options}
    if os.path.isabs(name):
        did = dataset_id_for(name)
        return did if did in ids else None
    here = os.path.dirname(child["file_path"])
    did = dataset_id_for(os.path.join(here, name))
    if did in ids:
        return did
    fitting = [o for o in options if o["file_path"].endswith("/" + name.lstrip("./"))]
    same_mission = [o for o in fitting if o["mission_id"] == child["mission_id"]] or fitting
    if not same_mission:
        return None
    best = max(same_mission, key=lambda o: len(os.path.commonpath([o["file_path"], child["file_path"]])))
    return best["dataset_id"]
