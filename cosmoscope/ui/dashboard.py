"""The read-only Panel dashboard: search, mission summaries, charts, lineage and problems.

Served by ``cosmoscope serve`` (which runs ``panel serve`` on this file)::

    $ cosmoscope serve --catalog sqlite:///data/catalog.sqlite --port 5006
    $ panel serve cosmoscope/ui/dashboard.py --args --catalog sqlite:///data/catalog.sqlite

or from Python, ``pn.serve({"dashboard": lambda: create_app(url)})``. The catalog URL comes from
``--catalog`` after ``--args``, else ``$COSMOSCOPE_CATALOG``, else the default catalog. The
catalog is opened read-only; nothing on the page writes.

Each session asks the catalog for one page of results at a time; the charts and the problems
list are computed only while their tab is open. A periodic check of a cheap freshness token (row
count and newest audit event) refreshes whatever is on show when new data arrives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from html import escape
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.errors import CosmoscopeError
from cosmoscope.ui import query as Q
from cosmoscope.ui.panel_lineage import LineageView, md as _md, note as _note

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

log = logging.getLogger(__name__)

#: Columns of the results table (the page keeps dataset_id for the lineage view).
RESULT_COLUMNS = ["dataset_id", "mission_id", "instrument_type", "observation_timestamp", "target_object",
                  "data_quality_score", "processing_status", "file_size", "file_path"]
#: Most problem rows sent to the browser per kind.
PROBLEMS_SHOWN = 500
TABS = ("Search", "Summary", "Charts", "Lineage", "Problems")

_CSS = """
.cs-caption {font-size: 15px; margin: 4px 0;}
.cs-muted {color: #6c757d; font-size: 12px;}
.cs-badge {display: inline-block; padding: 4px 10px; margin: 0 8px 6px 0; border-radius: 12px;
           background: #f1f3f5; font-size: 13px;}
.cs-badge b {font-size: 15px;}
.cs-bad b {color: #c92a2a;}
.cs-url {word-break: break-all;}
.cs-note {padding: 10px 14px; border-radius: 6px; background: #e7f1ff; color: #084298; margin: 6px 0;}
"""


class Dashboard:
    """One session's dashboard over the catalog at ``url``.

    Parameters
    ----------
    url
        Catalog URL (opened read-only).
    refresh_seconds
        How often to check for new data (0: never).
    page_size
        Rows per results page.
    """

    def __init__(self, url: str | None = None, *, refresh_seconds: float = 10, page_size: int = 25,
                 catalog: Catalog | None = None):
        import panel as pn

        self.refresh_seconds = refresh_seconds
        self.page_size = page_size
        self.page_number = 1
        self.results: Q.ResultSet | None = None
        self.page: Q.Page | None = None
        self.token = None
        self.error: str | None = None
        self.catalog = catalog
        self._owns_catalog = catalog is None
        self._dirty = set(TABS)
        if catalog is None:
            from cosmoscope.catalog import open_catalog

            try:
                self.catalog = open_catalog(url, readonly=True)
            except CosmoscopeError as exc:
                self.error = str(exc)
        self.url = self.catalog.url if self.catalog is not None else (url or "")

        # Filters.
        self.mission = pn.widgets.MultiChoice(label="Mission", options=[], placeholder="any mission")
        self.instrument = pn.widgets.MultiChoice(label="Instrument", options=[], placeholder="any instrument")
        self.start = pn.widgets.DatePicker(label="From")
        self.end = pn.widgets.DatePicker(label="To (inclusive)")
        self.min_quality = pn.widgets.FloatSlider(label="Minimum quality", start=0, end=1, step=0.05, value=0)
        self.target = pn.widgets.TextInput(label="Target", placeholder="NGC 253, NGC* or *253*")
        self.status = pn.widgets.MultiChoice(label="Processing status", placeholder="any status",
                                             options=[s.value for s in S.ProcessingStatus])
        self.sort = pn.widgets.Select(label="Order", options=list(Q.SORTS), value="newest first")
        self.reset_button = pn.widgets.Button(label="Clear filters", color="light")
        for w in (self.mission, self.instrument, self.start, self.end, self.min_quality, self.target, self.status,
                  self.sort):
            w.sizing_mode = "stretch_width"
        for w in (self.mission, self.instrument, self.start, self.end, self.status, self.sort):
            w.param.watch(self._on_filter, "value")
        self.min_quality.param.watch(self._on_filter, "value_throttled")
        self.target.param.watch(self._on_filter, "value")
        self.reset_button.on_click(lambda _: self.reset())

        # Search tab.
        self.caption = _md("", css_classes=["cs-caption"], margin=(12, 10))
        self.message = pn.pane.Alert("", alert_type="warning", visible=False)
        # Header sorting is off: it would sort only the page in the browser, not the results.
        self.table = pn.widgets.Tabulator(
            None, disabled=True, show_index=False, selectable=1, sizing_mode="stretch_width",
            layout="fit_data_stretch", titles=Q.HEADINGS, hidden_columns=["dataset_id"],
            configuration={"columnDefaults": {"tooltip": True, "headerSort": False}})
        self.prev_button = pn.widgets.Button(label="◀ Previous", width=110)
        self.next_button = pn.widgets.Button(label="Next ▶", width=110)
        self.lineage_button = pn.widgets.Button(label="Show lineage of selected row", color="primary",
                                                disabled=True, width=240)
        self.prev_button.on_click(lambda _: self.go(self.page_number - 1))
        self.next_button.on_click(lambda _: self.go(self.page_number + 1))
        self.lineage_button.on_click(lambda _: self._lineage_of_selection())
        self.table.param.watch(lambda e: setattr(self.lineage_button, "disabled", not e.new), "selection")

        # Other tabs.
        self.summary_table = pn.widgets.Tabulator(None, disabled=True, show_index=False,
                                                  sizing_mode="stretch_width", layout="fit_data_table")
        self.summary_caption = _md("")
        self.charts = pn.Column(sizing_mode="stretch_width")
        self.charts_caption = _md("", css_classes=["cs-muted"])
        self.lineage = LineageView(self.catalog)
        self.problem_badges = _md("")
        self.problem_table = pn.widgets.Tabulator(None, disabled=True, show_index=False, pagination="local",
                                                  page_size=20, sizing_mode="stretch_width",
                                                  layout="fit_data_stretch", titles=Q.HEADINGS)
        self.updated = _md("", css_classes=["cs-muted"])

        self.tabs = pn.Tabs(
            ("Search", pn.Column(self.message,
                                 pn.Row(self.prev_button, self.next_button, self.caption, pn.HSpacer(),
                                        self.lineage_button, sizing_mode="stretch_width"),
                                 self.table, sizing_mode="stretch_width")),
            ("Summary", pn.Column(self.summary_caption, self.summary_table, sizing_mode="stretch_width")),
            ("Charts", pn.Column(self.charts_caption, self.charts, sizing_mode="stretch_width")),
            ("Lineage", self.lineage.panel),
            ("Problems", pn.Column(self.problem_badges, self.problem_table, sizing_mode="stretch_width")),
            dynamic=False, sizing_mode="stretch_width")
        self.tabs.param.watch(lambda e: self._render_tab(), "active")

    # -- layout ------------------------------------------------------------------------------

    def servable(self, title: str = "cosmoscope"):
        """The page: filters in the sidebar, tabs in the main area."""
        import panel as pn

        pn.extension("tabulator", raw_css=[_CSS], notifications=False)
        sidebar = [self.mission, self.instrument, self.start, self.end, self.min_quality, self.target,
                   self.status, self.sort, self.reset_button,
                   _md(f"<div class='cs-muted cs-url'>catalog <code>{escape(self.url)}</code> · read-only</div>"),
                   self.updated]
        # The icon is inlined from a file: Panel serves /favicon.ico outside a --prefix, while the
        # page asks for it inside, which a proxy answers with a 404.
        template = pn.template.BootstrapTemplate(title=title, sidebar=sidebar, main=[self.tabs],
                                                 sidebar_width=300, header_background="#1f3a5f",
                                                 favicon=os.path.join(os.path.dirname(pn.__file__), "dist",
                                                                      "images", "favicon.ico"))
        if self.error is not None:
            self._show_unavailable()
        else:
            self.refresh()
            if self.refresh_seconds:
                pn.state.onload(self._start_watching)
        if self._owns_catalog:
            pn.state.on_session_destroyed(lambda ctx: self.close())
        return template

    def close(self) -> None:
        if self.catalog is not None and self._owns_catalog:
            self.catalog.close()

    def _start_watching(self) -> None:
        import panel as pn

        pn.state.add_periodic_callback(self.check_for_new_data, period=int(self.refresh_seconds * 1000))

    # -- state -------------------------------------------------------------------------------

    @property
    def filters(self) -> Q.Filters:
        return Q.Filters(missions=tuple(self.mission.value), instruments=tuple(self.instrument.value),
                         start=self.start.value, end=Q.day_after(self.end.value),
                         min_quality=self.min_quality.value_throttled or 0.0, target=self.target.value or "",
                         statuses=tuple(self.status.value))

    @property
    def empty(self) -> bool:
        return self.token is not None and self.token[0] == 0

    def refresh(self) -> None:
        """Re-read everything on show (choices, results, the open tab)."""
        self.token = Q.freshness(self.catalog)
        summary = self.catalog.mission_summary()
        missions = [m for m in summary["mission_id"].to_list() if m is not None]
        _keep(self.mission, missions)
        _keep(self.instrument, Q.distinct_values(self.catalog, "instrument_type"))
        self._summary = summary
        self.results = None
        self._dirty = set(TABS)
        self._show_results()
        self._render_tab()
        self.updated.object = f"updated {time.strftime('%H:%M:%S')} · {self.token[0]:,} observations"

    def check_for_new_data(self) -> bool:
        """Refresh if the catalog changed since the last look; returns whether it did."""
        try:
            token = Q.freshness(self.catalog)
        except CosmoscopeError as exc:  # e.g. the file went away: say so, keep what is shown
            self.updated.object = f"could not check for new data: {escape(str(exc))}"
            return False
        if token == self.token:
            return False
        log.info("new data in %s: %s -> %s", self.url, self.token, token)
        self.refresh()
        return True

    def reset(self) -> None:
        """Clear every filter (one query, not one per control)."""
        import param

        self._quiet = True
        try:
            self.mission.value = self.instrument.value = self.status.value = []
            self.start.value = self.end.value = None
            self.min_quality.value = 0
            with param.edit_constant(self.min_quality):  # set by the browser when a drag ends
                self.min_quality.value_throttled = 0
            self.target.value = ""
        finally:
            self._quiet = False
        self._on_filter(None)

    def go(self, number: int) -> None:
        self.page_number = number
        self._show_results()

    _quiet = False

    def _on_filter(self, event) -> None:
        if self._quiet or self.catalog is None:
            return
        self.results = None
        self.page_number = 1
        self._dirty |= {"Charts"}
        self._show_results()
        if self.tabs.active == TABS.index("Charts"):
            self._render_tab()

    # -- search ------------------------------------------------------------------------------

    def _show_results(self) -> None:
        try:
            if self.results is None:
                self.results = Q.ResultSet(self.catalog, self.filters, self.sort.value,
                                           columns=list(RESULT_COLUMNS))
            page = self.results.page(self.page_number, self.page_size)
        except CosmoscopeError as exc:
            self.results = self.page = None
            self._alert(str(exc), "danger")
            self.caption.object = ""
            self.table.value = None
            return
        self.page, self.page_number = page, page.number
        self.prev_button.disabled = page.number <= 1
        self.next_button.disabled = page.number >= page.n_pages
        self.caption.object = f"<b>{escape(page.caption())}</b>"
        if page.total == 0:
            if not self.filters.active:
                self._alert("This catalog is empty. Add files with `cosmoscope ingest PATH` (or try "
                            "`cosmoscope demo`); this page refreshes by itself when data arrives.", "info")
            else:
                self._alert(f"No observations match {self.filters.describe()}. Loosen a filter or clear them.",
                            "warning")
        else:
            self.message.visible = False
        self.table.value = Q.display_frame(page.rows).to_pandas()
        self.table.selection = []

    def _alert(self, text: str, kind: str) -> None:
        self.message.object = text
        self.message.alert_type = kind
        self.message.visible = True

    def _lineage_of_selection(self) -> None:
        if not self.table.selection or self.page is None:
            return
        dataset_id = self.page.rows["dataset_id"][self.table.selection[0]]
        self.show_lineage(dataset_id)
        self.tabs.active = TABS.index("Lineage")

    # -- the other tabs ----------------------------------------------------------------------

    def _render_tab(self) -> None:
        if self.catalog is None:
            return
        name = TABS[self.tabs.active]
        if name not in self._dirty:
            return
        self._dirty.discard(name)
        try:
            if name == "Summary":
                self._show_summary()
            elif name == "Charts":
                self._show_charts()
            elif name == "Problems":
                self._show_problems()
            elif name == "Lineage":
                self.lineage.show(self.lineage.id_input.value, remember=False)
        except CosmoscopeError as exc:
            log.warning("%s tab: %s", name, exc)

    def _show_summary(self) -> None:
        import polars as pl

        s = self._summary
        if s.height == 0:
            self.summary_caption.object = _note("This catalog is empty: no missions to summarise yet.")
            self.summary_table.value = None
            return
        n, size = int(s["n_datasets"].sum()), int(s["total_bytes"].sum())
        self.summary_caption.object = (f"<p class='cs-caption'><b>{n:,}</b> observations from <b>{s.height}</b> "
                                       f"mission(s), <b>{Q.human_bytes(size)}</b> in all.</p>")
        counts = [pl.when(pl.col(f"n_{st.value}") > 0).then(pl.format(f"{st.value} {{}}", pl.col(f"n_{st.value}")))
                  for st in S.ProcessingStatus]
        table = s.select(
            pl.col("mission_id").alias("mission"), pl.col("n_datasets").alias("observations"),
            pl.col("total_bytes").map_elements(Q.human_bytes, return_dtype=pl.String).alias("size"),
            pl.col("first_observation").dt.strftime("%Y-%m-%d").alias("first"),
            pl.col("last_observation").dt.strftime("%Y-%m-%d").alias("last"),
            pl.format("{} / {}", pl.col("mean_quality").round(2), pl.col("min_quality").round(2))
            .alias("quality mean / min"),
            pl.col("n_calibrated").alias("calibrated"), pl.col("n_extraction_errors").alias("unreadable"),
            pl.concat_str(counts, separator=", ", ignore_nulls=True).alias("processing status"))
        self.summary_table.value = table.to_pandas()

    def _show_charts(self) -> None:
        import panel as pn

        from cosmoscope.ui import plots

        filters = self.filters
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            # In a server the scan runs in a thread, so other pages are not held up meanwhile.
            self.charts_caption.object = "Drawing charts…"

            async def draw():
                try:
                    data = await asyncio.to_thread(plots.chart_data, self.catalog, filters)
                except CosmoscopeError as exc:
                    data = exc
                if filters == self.filters:  # not overtaken by another filter change
                    self._fill_charts(data, filters)

            pn.state.execute(draw)
            return
        try:
            data = plots.chart_data(self.catalog, filters)
        except CosmoscopeError as exc:
            data = exc
        self._fill_charts(data, filters)

    def _fill_charts(self, data, filters: Q.Filters) -> None:
        import panel as pn

        from cosmoscope.ui import plots

        if isinstance(data, Exception):
            self.charts_caption.object = _note(str(data))
            self.charts.objects = []
        elif data.total == 0:
            self.charts_caption.object = _note(
                f"No observations match {filters.describe()}, so there is nothing to chart."
                if filters.active else "This catalog is empty: nothing to chart yet.")
            self.charts.objects = []
        else:
            self.charts_caption.object = (
                f"Charts of the {data.total:,} observations matching {escape(filters.describe())}."
                if filters.active else f"Charts of all {data.total:,} observations.")
            # Unlinked: the charts share dimension names ("observations") but not scales.
            panes = [pn.pane.HoloViews(fn(data, responsive=True, height=340), sizing_mode="stretch_width",
                                       linked_axes=False) for fn in plots.CHARTS.values()]
            # Rows of two that stretch: a GridBox keeps each cell at its first width.
            self.charts.objects = [pn.Row(*panes[i:i + 2], sizing_mode="stretch_width")
                                   for i in range(0, len(panes), 2)]

    def _show_problems(self) -> None:
        counts = Q.problem_counts(self.catalog)
        badges = "".join(f"<span class='cs-badge{' cs-bad' if n else ''}'>{escape(k)} <b>{n:,}</b></span>"
                         for k, n in counts.items())
        if not any(counts.values()):
            self.problem_badges.object = badges + "<p>No problems: every file was read, validated and found.</p>"
            self.problem_table.value = None
            return
        df = Q.problems(self.catalog, limit=PROBLEMS_SHOWN)
        more = " (the first of each kind)" if any(n > PROBLEMS_SHOWN for n in counts.values()) else ""
        self.problem_badges.object = badges + f"<p class='cs-muted'>{df.height:,} datasets listed{more}.</p>"
        self.problem_table.value = Q.display_frame(df).to_pandas()

    def show_lineage(self, dataset_id: str) -> None:
        """Show the lineage of ``dataset_id`` in the Lineage tab."""
        self._dirty.discard("Lineage")
        self.lineage.show(dataset_id)

    def _show_unavailable(self) -> None:
        self._alert(f"The catalog cannot be shown: {self.error}", "danger")
        for w in (self.mission, self.instrument, self.start, self.end, self.min_quality, self.target, self.status,
                  self.sort, self.reset_button, self.prev_button, self.next_button):
            w.disabled = True


def _keep(select, options: list[str]) -> None:
    keep = [v for v in select.value if v in options]
    select.options = options
    if keep != list(select.value):
        select.value = keep


def create_app(url: str | None = None, *, refresh_seconds: float = 10, page_size: int = 25):
    """A new dashboard page for one browser session."""
    return Dashboard(url, refresh_seconds=refresh_seconds, page_size=page_size).servable()


def _args(argv: list[str]):
    import argparse
    import os

    ap = argparse.ArgumentParser(prog="dashboard.py")
    ap.add_argument("--catalog", default=os.environ.get("COSMOSCOPE_CATALOG"))
    ap.add_argument("--refresh", type=float, default=float(os.environ.get("COSMOSCOPE_REFRESH", 10)))
    ap.add_argument("--page-size", type=int, default=25)
    return ap.parse_known_args(argv)[0]


if __name__.startswith("bokeh_app"):  # run by `panel serve`: one call per browser session
    import sys

    _opts = _args(sys.argv[1:])
    create_app(_opts.catalog, refresh_seconds=_opts.refresh, page_size=_opts.page_size).servable()
