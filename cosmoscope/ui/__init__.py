"""Explorers for people: notebook widgets (ipywidgets), Bokeh charts and a Panel dashboard.

>>> from cosmoscope.ui import SearchExplorer, LineageExplorer, charts, chart_data  # doctest: +SKIP
>>> SearchExplorer(cat)                                                             # doctest: +SKIP

The dashboard is served with ``cosmoscope serve`` (see :mod:`cosmoscope.ui.dashboard`).
Everything here loads ipywidgets, Bokeh or Panel only when first used.
"""

from __future__ import annotations

__all__ = ["Filters", "LineageExplorer", "ResultSet", "SearchExplorer", "chart_data", "charts", "lineage_graph"]

_WHERE = {"SearchExplorer": "widgets", "LineageExplorer": "widgets", "Filters": "query", "ResultSet": "query",
          "chart_data": "plots", "charts": "plots", "lineage_graph": "graph"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"cosmoscope.ui.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cosmoscope.ui' has no attribute {name!r}")
