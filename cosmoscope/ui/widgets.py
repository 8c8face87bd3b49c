"""Notebook explorers built on ipywidgets 8: search the catalog, and walk a dataset's lineage.

Both show themselves when they are the last expression of a cell, and both work without a
browser: set the controls' ``value``, call ``button.click()``, and read :attr:`SearchExplorer.page`,
:attr:`SearchExplorer.selected` or :attr:`LineageExplorer.graph`.

Examples
--------
>>> from cosmoscope.ui import SearchExplorer, LineageExplorer
>>> explorer = SearchExplorer(cat)             # doctest: +SKIP
>>> explorer                                   # shows the filters and the first page  # doctest: +SKIP
>>> explorer.mission.value = ("COSMOS-7",)     # doctest: +SKIP
>>> df = explorer.selected                     # every matching row, as a polars frame  # doctest: +SKIP
>>> LineageExplorer(cat, df["dataset_id"][0])  # doctest: +SKIP
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.errors import CosmoscopeError, DatasetNotFoundError
from cosmoscope.ui.query import HEADINGS, SORTS, Filters, ResultSet, day_after, display_frame, distinct_values

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog
    from cosmoscope.ui.graph import LineageGraph, Node
    from cosmoscope.ui.query import Page

#: Columns of the results table in the notebook (the page frame keeps all of PAGE_COLUMNS).
TABLE_COLUMNS = ["mission_id", "instrument_type", "observation_timestamp", "target_object", "data_quality_score",
                 "processing_status", "file_size", "file_path"]

_TABLE_CSS = """<style>
.cosmoscope-table {border-collapse: collapse; font-size: 12px; width: 100%;}
.cosmoscope-table th {text-align: left; border-bottom: 2px solid #888; padding: 3px 8px; white-space: nowrap;}
.cosmoscope-table td {border-bottom: 1px solid #ddd; padding: 3px 8px; white-space: nowrap; max-width: 28em;
                      overflow: hidden; text-overflow: ellipsis;}
.cosmoscope-table tr:nth-child(even) td {background: rgba(127, 127, 127, 0.07);}
</style>"""


def _note(text: str, kind: str = "info") -> str:
    colors = {"info": "#555", "warn": "#8a6d3b", "error": "#a94442", "ok": "#3c763d"}
    return f'<span style="color: {colors[kind]}">{escape(text, quote=False)}</span>'


def html_table(df: pl.DataFrame, columns: list[str] | None = None) -> str:
    """A small HTML table of a page of rows (values escaped, long paths cut with a tooltip)."""
    columns = [c for c in (columns or df.columns) if c in df.columns]
    shown = display_frame(df.select(columns))
    head = "".join(f"<th>{escape(HEADINGS.get(c, c))}</th>" for c in columns)
    body = []
    for row in shown.iter_rows():
        cells = "".join(f'<td title="{escape(v)}">{escape(v)}</td>' for v in row)
        body.append(f"<tr>{cells}</tr>")
    return f'{_TABLE_CSS}<table class="cosmoscope-table"><tr>{head}</tr>{"".join(body)}</table>'


class _Shown:
    """Display the object's ``widget`` when it is the value of a notebook cell."""

    widget = None

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class SearchExplorer(_Shown):
    """Filters, a paged results table and export, over a catalog.

    Parameters
    ----------
    catalog
        An open :class:`~cosmoscope.catalog.Catalog`.
    page_size
        Rows per page of the results table.
    sort
        One of :data:`cosmoscope.ui.query.SORTS`.

    Every filter change runs pushed-down queries for the count and one page; only that page
    reaches the notebook. :attr:`selected` reads every matching row on request.
    """

    def __init__(self, catalog: Catalog, *, page_size: int = 25, sort: str = "newest first"):
        import ipywidgets as w

        self.catalog = catalog
        self.page_number = 1
        self._results: ResultSet | None = None
        self._page: Page | None = None
        wide = {"description_width": "80px"}
        self.mission = w.SelectMultiple(description="Mission", rows=4, style=wide)
        self.instrument = w.SelectMultiple(description="Instrument", rows=4, style=wide)
        self.status = w.SelectMultiple(description="Status", rows=4, style=wide,
                                       options=[s.value for s in S.ProcessingStatus])
        self.start = w.DatePicker(description="From", style=wide)
        self.end = w.DatePicker(description="To (incl.)", style=wide)
        self.min_quality = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="Min quality",
                                         continuous_update=False, readout_format=".2f", style=wide)
        self.target = w.Text(description="Target", placeholder="NGC 253, NGC* or *253*", continuous_update=False,
                             style=wide)
        self.sort = w.Dropdown(description="Order", options=list(SORTS), value=sort, style=wide)
        self.page_size = w.Dropdown(description="Rows", options=sorted({10, 25, 50, 100, page_size}),
                                    value=page_size, layout=w.Layout(width="150px"))
        self.reset_button = w.Button(description="Clear filters", icon="times")
        self.prev_button = w.Button(description="Previous", icon="chevron-left", layout=w.Layout(width="110px"))
        self.next_button = w.Button(description="Next", icon="chevron-right", layout=w.Layout(width="110px"))
        self.count_label = w.HTML()
        self.message = w.HTML()
        self.table = w.HTML()
        self.export_path = w.Text(value="selection.parquet", description="Export to", style=wide)
        self.export_button = w.Button(description="Export", icon="download")
        self.export_status = w.HTML()
        self.lineage_choice = w.Dropdown(description="Dataset", style=wide, layout=w.Layout(width="420px"))
        self.lineage_button = w.Button(description="Show lineage", icon="sitemap")
        self.lineage_box = w.VBox()
        self.lineage: LineageExplorer | None = None
        self.charts_button = w.Button(description="Draw charts", icon="bar-chart")
        self.charts_output = w.Output()
        self.last_charts = None

        for control in (self.mission, self.instrument, self.status, self.start, self.end, self.min_quality,
                        self.target, self.sort, self.page_size):
            control.observe(self._on_filter, "value")
        self.reset_button.on_click(lambda _: self.reset())
        self.prev_button.on_click(lambda _: self.go(self.page_number - 1))
        self.next_button.on_click(lambda _: self.go(self.page_number + 1))
        self.export_button.on_click(lambda _: self._export_clicked())
        self.lineage_button.on_click(lambda _: self.show_lineage(self.lineage_choice.value))
        self.charts_button.on_click(lambda _: self.draw_charts())

        filters = w.HBox([w.VBox([self.mission, self.instrument, self.status]),
                          w.VBox([self.start, self.end, self.min_quality, self.target, self.sort, self.reset_button])])
        pager = w.HBox([self.prev_button, self.next_button, self.page_size, self.count_label],
                       layout=w.Layout(align_items="center"))
        results = w.VBox([self.message, pager, self.table,
                          w.HBox([self.export_path, self.export_button, self.export_status]),
                          w.HBox([self.lineage_choice, self.lineage_button]), self.lineage_box])
        self.tabs = w.Tab(children=[results, w.VBox([self.charts_button, self.charts_output])],
                          titles=("Results", "Charts"))
        self.widget = w.VBox([filters, self.tabs])
        self.refresh()

    # -- state -----------------------------------------------------------------------------

    @property
    def filters(self) -> Filters:
        """The filters the controls currently say."""
        return Filters(missions=tuple(self.mission.value), instruments=tuple(self.instrument.value),
                       start=self.start.value, end=day_after(self.end.value), min_quality=self.min_quality.value,
                       target=self.target.value, statuses=tuple(self.status.value))

    @property
    def results(self) -> ResultSet:
        """The current search (count, pages, every row)."""
        if self._results is None:
            self._results = ResultSet(self.catalog, self.filters, self.sort.value)
        return self._results

    @property
    def page(self) -> Page | None:
        """The page on show (None if the filters could not be applied)."""
        return self._page

    @property
    def total(self) -> int:
        """How many observations match the filters."""
        return self.results.total

    @property
    def query(self) -> pl.LazyFrame:
        """The matching observations as a lazy frame, for further polars work."""
        return self.results.frame()

    @property
    def selected(self) -> pl.DataFrame:
        """Every observation matching the filters, all columns, in the chosen order."""
        return self.results.collect()

    # -- actions ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the filter choices and the results (after new data arrived)."""
        summary = self.catalog.mission_summary()
        _keep_options(self.mission, [m for m in summary["mission_id"].to_list() if m is not None])
        _keep_options(self.instrument, distinct_values(self.catalog, "instrument_type"))
        self._results = None
        self._show()

    def reset(self) -> None:
        """Clear every filter."""
        self._quiet = True  # one query after all the controls are cleared, not one per control
        try:
            self.mission.value = self.instrument.value = self.status.value = ()
            self.start.value = self.end.value = None
            self.min_quality.value = 0.0
            self.target.value = ""
        finally:
            self._quiet = False
        self._on_filter(None)

    def go(self, number: int) -> None:
        """Show page ``number`` (1-based; clamped to the pages there are)."""
        self.page_number = number
        self._show()

    def export(self, path, format: str | None = None) -> int:
        """Write every matching row to ``path`` (CSV or Parquet, from the suffix unless
        ``format``); returns the number of rows."""
        return self.results.export(path, format)

    def show_lineage(self, dataset_id: str | None) -> LineageExplorer | None:
        """Open the lineage explorer of a dataset below the table."""
        if not dataset_id:
            return None
        self.lineage = LineageExplorer(self.catalog, dataset_id)
        self.lineage_box.children = [self.lineage.widget]
        return self.lineage

    def charts(self):
        """The five charts of the current matches (a holoviews Layout)."""
        from cosmoscope.ui.plots import chart_data, charts

        return charts(chart_data(self.catalog, self.filters))

    def draw_charts(self) -> None:
        """Draw the charts into the Charts tab."""
        from IPython.display import display

        self.charts_output.clear_output()
        try:
            self.last_charts = self.charts()
        except CosmoscopeError as exc:
            self.charts_output.append_stdout(f"{exc}\n")
            return
        with self.charts_output:
            display(self.last_charts)

    # -- internals -------------------------------------------------------------------------

    _quiet = False

    def _on_filter(self, change) -> None:
        if self._quiet:
            return
        self._results = None
        self.page_number = 1
        self._show()

    def _export_clicked(self) -> None:
        path = self.export_path.value.strip()
        try:
            n = self.export(path)
        except (CosmoscopeError, OSError) as exc:
            self.export_status.value = _note(f"Not exported: {exc}", "error")
            return
        self.export_status.value = _note(f"Wrote {n:,} rows to {path}", "ok")

    def _show(self) -> None:
        try:
            results = self.results
            page = results.page(self.page_number, self.page_size.value)
        except CosmoscopeError as exc:  # e.g. an end date before the start date
            self._results = self._page = None
            self.message.value = _note(str(exc), "error")
            self.table.value = self.count_label.value = ""
            self.lineage_choice.options = []
            return
        self._page = page
        self.page_number = page.number
        self.prev_button.disabled = page.number <= 1
        self.next_button.disabled = page.number >= page.n_pages
        self.count_label.value = f"<b>{escape(page.caption())}</b>"
        if page.total == 0:
            self.table.value = ""
            if not self.filters.active:
                self.message.value = _note("This catalog is empty. Add files with `cosmoscope ingest PATH` "
                                           "(or try `cosmoscope demo`), then call refresh().", "warn")
            else:
                self.message.value = _note(f"No observations match {self.filters.describe()}. "
                                           "Loosen a filter or clear them.", "warn")
        else:
            self.message.value = ""
            self.table.value = html_table(page.rows, TABLE_COLUMNS)
        rows = page.rows
        self.lineage_choice.options = [
            (f"{_basename(p) or i} ({m or '?'})", i)
            for i, p, m in zip(rows["dataset_id"], rows["file_path"], rows["mission_id"])]


def _basename(path: str | None) -> str:
    import os

    return os.path.basename(path) if path else ""


def _keep_options(select, options: list[str]) -> None:
    """Replace the options of a multiple-choice control, keeping what is still offered selected."""
    keep = tuple(v for v in select.value if v in options)
    select.options = options
    select.value = keep


class LineageExplorer(_Shown):
    """The parents and children of a dataset as columns of clickable nodes.

    Each node shows the file name, processing status and quality, coloured by status; its
    tooltip has the rest. Clicking a node makes it the focus; *Back* returns.

    Parameters
    ----------
    catalog
        An open catalog.
    dataset_id
        The dataset to start from.
    depth
        Generations shown each way.
    """

    def __init__(self, catalog: Catalog, dataset_id: str, *, depth: int = 2):
        import ipywidgets as w

        self.catalog = catalog
        self.dataset_id = dataset_id
        self.graph: LineageGraph | None = None
        self.history: list[str] = []
        self.node_buttons: dict[str, object] = {}
        self.id_input = w.Text(value=dataset_id, description="Dataset", continuous_update=False,
                               layout=w.Layout(width="480px"))
        self.depth = w.BoundedIntText(value=depth, min=1, max=10, description="Generations",
                                      layout=w.Layout(width="170px"))
        self.back_button = w.Button(description="Back", icon="arrow-left", disabled=True,
                                    layout=w.Layout(width="90px"))
        self.message = w.HTML()
        self.details = w.HTML()
        self.columns = w.HBox(layout=w.Layout(overflow="auto", align_items="flex-start"))
        self.id_input.observe(lambda ch: self.focus(ch["new"]), "value")
        self.depth.observe(lambda ch: self._show(), "value")
        self.back_button.on_click(lambda _: self.back())
        self.widget = w.VBox([w.HBox([self.back_button, self.id_input, self.depth]), self.message, self.columns,
                              self.details])
        self._show()

    def focus(self, dataset_id: str) -> None:
        """Move the focus to another dataset (remembering where we were)."""
        dataset_id = (dataset_id or "").strip()
        if not dataset_id or dataset_id == self.dataset_id:
            return
        self.history.append(self.dataset_id)
        self.dataset_id = dataset_id
        self._show()

    def back(self) -> None:
        """Return to the dataset that had the focus before."""
        if self.history:
            self.dataset_id = self.history.pop()
            self._show()

    def _show(self) -> None:
        import ipywidgets as w

        from cosmoscope.ui.graph import lineage_graph

        self.back_button.disabled = not self.history
        self.id_input.value = self.dataset_id  # its observer ignores the id already in focus
        try:
            self.graph = lineage_graph(self.catalog, self.dataset_id, depth=self.depth.value)
        except DatasetNotFoundError:
            self.graph = None
            self.node_buttons = {}
            self.columns.children = []
            self.details.value = ""
            self.message.value = _note(f"No dataset {self.dataset_id!r} in this catalog. Check the id "
                                       "(it is the dataset_id column of a search).", "error")
            return
        self.message.value = (_note("No recorded parents or children for this dataset.", "info")
                              if self.graph.empty else "")
        self.node_buttons = {}
        cols = []
        for title, nodes, hidden in self.graph.columns():
            boxes = [w.HTML(f"<b>{escape(title)}</b>")]
            boxes += [self._node_box(n) for n in nodes]
            if hidden:
                boxes.append(w.HTML(_note(f"... and {hidden:,} more")))
            cols.append(w.VBox(boxes, layout=w.Layout(margin="0 18px 0 0", min_width="220px")))
        self.columns.children = cols
        self.details.value = _details(self.graph.focus)

    def _node_box(self, node: Node):
        import ipywidgets as w

        is_focus = node.dataset_id == self.dataset_id
        button = w.Button(description=_shorten(node.name, 34), tooltip=node.tooltip(),
                          layout=w.Layout(width="260px", border="3px solid #222" if is_focus else ""))
        button.style.button_color = node.color
        button.style.text_color = "white"
        if not is_focus:
            button.on_click(lambda _, i=node.dataset_id: self.focus(i))
        self.node_buttons[node.dataset_id] = button
        edge = f" · via {', '.join(node.relationships)}" if node.relationships else ""
        return w.VBox([button, w.HTML(f'<small>{escape(node.status_text)}{escape(edge)}</small>')],
                      layout=w.Layout(margin="0 0 6px 0"))


def _shorten(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n // 2 - 1] + "…" + text[-(n // 2):]


def _details(node: Node) -> str:
    rows = [("dataset", node.dataset_id), ("file", node.file_path or ""), ("mission", node.mission_id or ""),
            ("instrument", node.instrument_type or ""), ("processing", node.processing_status or ""),
            ("calibration", f"{node.calibration_status or ''} (level {node.calib_level if node.calib_level is not None else '?'})"),
            ("quality", node.quality_text)]
    if not node.cataloged:
        rows = [("dataset", node.dataset_id), ("note", "named by lineage but not cataloged")]
    body = "".join(f"<tr><th style='text-align:left;padding-right:12px'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                   for k, v in rows)
    return f"<table style='font-size:12px;margin-top:8px'>{body}</table>"
