"""Getting files into the catalog: crawl and bulk ingest (and, later, watching and validation)."""

from __future__ import annotations

__all__ = ["IngestSummary", "ingest"]


def __getattr__(name: str):
    # Imported on first use, not with the package: extraction worker processes import
    # cosmoscope.ingest.workers, and bulk ingest's pyarrow and catalog code would only slow
    # their start.
    if name in __all__:
        from cosmoscope.ingest import bulk

        return getattr(bulk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
