"""Getting files into the catalog: crawl and bulk ingest (and, later, watching and validation)."""

from __future__ import annotations

from cosmoscope.ingest.bulk import IngestSummary, ingest

__all__ = ["IngestSummary", "ingest"]
