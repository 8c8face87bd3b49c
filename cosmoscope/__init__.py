"""cosmoscope: one searchable, lineage-aware catalog of every satellite observation file.

>>> import cosmoscope
>>> cat = cosmoscope.open_catalog("sqlite:///:memory:")
>>> cat.search(mission="CHANDRA", min_quality=0.8).collect()  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from cosmoscope.errors import CosmoscopeError  # noqa: E402

__all__ = ["Catalog", "CosmoscopeError", "__version__", "open_catalog"]


def __getattr__(name: str):
    # Keep `import cosmoscope` light: polars and the stores load on first use.
    if name in ("Catalog", "open_catalog"):
        from cosmoscope import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module 'cosmoscope' has no attribute {name!r}")
