"""Small reads and writes of the pipeline tables, shared by runs, pre-flight and the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow as pa

from cosmoscope import records as R
from cosmoscope import schema as S
from cosmoscope.errors import InvalidArgumentError

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog


def rows_by(catalog: Catalog, table: str, column: str, values: Iterable, columns=None) -> list[dict]:
    """Rows of ``table`` whose ``column`` is one of ``values`` (one pushed-down scan)."""
    from cosmoscope.predicate import Predicate, Test

    values = tuple(dict.fromkeys(v for v in values if v is not None))
    if not values:
        return []
    pred = Predicate.of(Test(column, "is_in", values))
    return [r for b in catalog.store.scan(table, columns, pred) for r in b.to_pylist()]


def write_row(catalog: Catalog, table: str, row: dict) -> None:
    """Insert or overwrite one row of a pipeline table (columns not given keep their value)."""
    spec = S.table_spec(table)
    data = R.to_table(spec.name, [row])
    catalog.store.upsert(spec.name, data, spec.key)


def delete_claims(catalog: Catalog, dataset_ids: Iterable[str]) -> None:
    ids = list(dict.fromkeys(dataset_ids))
    if ids:
        catalog.store.delete(S.PROCESSING_CLAIMS.name, pa.table({"dataset_id": pa.array(ids, pa.string())}))


def lease_expiry(run: dict) -> dt.datetime | None:
    """When a run's claims lapse unless it shows a sign of life (None: never started)."""
    beat = run.get("heartbeat_at") or run.get("started_at")
    if beat is None:
        return None
    return beat + dt.timedelta(seconds=float(run.get("lease_seconds") or 0.0))


def is_live(run: dict | None, at: dt.datetime) -> bool:
    """Whether ``run`` still holds its claims at ``at``: running, and its lease not expired."""
    if run is None or run.get("status") != S.RunStatus.RUNNING.value:
        return False
    expiry = lease_expiry(run)
    return expiry is not None and expiry >= at


def claim_holders(catalog: Catalog, dataset_ids: Iterable[str]) -> dict[str, tuple[dict, dict | None]]:
    """For each claimed dataset among ``dataset_ids``: (its claim row, the holding run's row)."""
    claims = rows_by(catalog, S.PROCESSING_CLAIMS.name, "dataset_id", dataset_ids)
    runs = {r["run_id"]: r for r in rows_by(catalog, S.PROCESSING_RUNS.name, "run_id",
                                              (c["run_id"] for c in claims))}
    return {c["dataset_id"]: (c, runs.get(c["run_id"])) for c in claims}


def dataset_ids_from(obj, *, what: str = "datasets") -> list[str]:
    """Dataset ids from an id, a list of ids, a polars frame with ``dataset_id``, or a
    pre-flight report (its datasets that are ready)."""
    from cosmoscope.pipeline.preflight import PreflightReport

    if obj is None:
        return []
    if isinstance(obj, PreflightReport):
        return obj.ready_ids
    if isinstance(obj, str):
        return [obj]
    collect = getattr(obj, "collect", None)
    if callable(collect) and hasattr(obj, "collect_schema"):  # a LazyFrame
        obj = obj.select("dataset_id").collect()
    columns = getattr(obj, "columns", None)
    if columns is not None and not isinstance(obj, dict):
        if "dataset_id" not in columns:
            raise InvalidArgumentError(f"the frame given as {what} has no dataset_id column; select it too")
        return list(dict.fromkeys(i for i in obj["dataset_id"].to_list() if i is not None))
    try:
        ids = list(obj)
    except TypeError:
        raise InvalidArgumentError(f"{what} must be dataset ids, a polars frame with a dataset_id column or a "
                                   f"pre-flight report, not {type(obj).__name__}") from None
    for i in ids:
        if not isinstance(i, str) or not i:
            raise InvalidArgumentError(f"{what} must be dataset ids (text such as 'ds-1a2b...'); got {i!r}")
    return list(dict.fromkeys(ids))
