"""Writing re-read files and recording, field by field, what changed (the watcher, ``validate --fix``)."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.ingest.bulk import write_records
from cosmoscope.records import dataset_id_for
from cosmoscope.store.base import run_again_if_aborted

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

#: Fields whose changes on re-extraction are recorded as audit events (bookkeeping such as
#: ``updated_at`` or ``field_sources`` is left out: it changes with every write).
TRACKED_FIELDS = ("mission_id", "satellite_name", "instrument_type", "observation_timestamp", "observation_end",
                  "target_object", "data_quality_score", "calibration_status", "file_size", "file_mtime",
                  "version", "exposure_time", "ra", "dec", "calib_level", "dataproduct_type", "file_format",
                  "extraction_status", "extraction_error", "file_status")


@dataclass
class WriteResult:
    """What :func:`write_with_changes` wrote."""

    rows: list[dict] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    changes: int = 0


def write_with_changes(catalog: Catalog, records: list[dict], *, reason: str, run_id: str | None = None,
                       action: str = "reextract") -> WriteResult:
    """Write extracted records (rows, audit events, pending lineage) and, for files the catalog
    already held, one ``action`` event per tracked field whose value changed (from, to), all in
    one transaction."""
    if not records:
        return WriteResult()
    return run_again_if_aborted(lambda: _write_once(catalog, records, reason, run_id, action))


def _write_once(catalog: Catalog, records: list[dict], reason: str, run_id: str | None, action: str) -> WriteResult:
    out = WriteResult()
    ids = [dataset_id_for(r.get("_path") or r["file_path"]) for r in records]
    with catalog.store.transaction():
        before = {r["dataset_id"]: r for r in
                  catalog.lookup(ids, ["dataset_id", *TRACKED_FIELDS]).iter_rows(named=True)}
        out.rows = write_records(catalog, records, run_id=run_id)
        events = []
        for row in out.rows:
            did = row["dataset_id"]
            if row.get("extraction_status") == S.ExtractionStatus.ERROR.value:
                out.failed.append(did)
            old = before.get(did)
            if old is None:
                out.new.append(did)
                continue
            out.updated.append(did)
            for name in TRACKED_FIELDS:
                if name in row and not same_value(old[name], row[name]):
                    events.append(dict(action=action, dataset_id=did, run_id=run_id, field=name,
                                       from_value=old[name], to_value=row[name], details={"reason": reason}))
        out.changes = catalog.log_events(events)
    return out


def same_value(a, b) -> bool:
    """Equality as the catalog stores values: floats to 12 digits, times to the microsecond."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            a, b = (x if x.tzinfo else x.replace(tzinfo=dt.timezone.utc) for x in (a, b))
        return a == b
    if isinstance(b, (dict, list)):
        b = json.dumps(b, sort_keys=True, default=str)
    return a == b
