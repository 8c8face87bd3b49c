"""Writing re-read files and recording, field by field, what changed (the watcher, ``validate --fix``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.ingest.bulk import commit_rows, rows_and_parents
from cosmoscope.records import dataset_id_for
from cosmoscope.store.base import run_again_if_aborted

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog


@dataclass
class WriteResult:
    """What :func:`write_with_changes` wrote."""

    rows: list[dict] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    changes: int = 0


def write_with_changes(catalog: Catalog, records: list[dict], *, reason: str, run_id: str | None = None) -> WriteResult:
    """Write extracted records (rows, audit events, pending lineage) in one transaction: for
    files the catalog already held, one ``reextract`` event per field whose value changed (from,
    to, and ``reason``); a file read again unchanged records nothing."""
    if not records:
        return WriteResult()
    return run_again_if_aborted(lambda: _write_once(catalog, records, reason, run_id))


def _write_once(catalog: Catalog, records: list[dict], reason: str, run_id: str | None) -> WriteResult:
    out = WriteResult()
    ids = [dataset_id_for(r.get("_path") or r["file_path"]) for r in records]
    with catalog.store.transaction():
        known = set(catalog.lookup(ids, ["dataset_id"])["dataset_id"].to_list())
        out.rows, pending = rows_and_parents(records)
        out.changes = commit_rows(catalog, out.rows, pending, run_id=run_id, reason=reason)
    for row in out.rows:
        did = row["dataset_id"]
        if row.get("extraction_status") == S.ExtractionStatus.ERROR.value:
            out.failed.append(did)
        (out.updated if did in known else out.new).append(did)
    return out
