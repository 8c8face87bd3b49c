"""Notebook explorers built on ipywidgets 8: search the catalog, and walk a dataset's lineage.

Both show themselves when they are the last expression of a cell, and both work without a
browser: set the controls' ``value``, call ``button.click()``, and read :attr:`SearchExplorer.page`,
:attr:`SearchExplorer.selected` or :attr:`LineageExplorer.graph`. Where no widget can be drawn (a
notebook exported to HTML, a plain console) they show a static picture of themselves instead:
the page of results, the lineage graph.

Everything they need ships with the package: the lineage graph is an anywidget whose
JavaScript travels with it, and the charts' BokehJS is put into the notebook itself, so they
work without internet.

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

import functools
from html import escape
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.errors import CosmoscopeError, DatasetNotFoundError
from cosmoscope.ui.columns import COMPACT_SHOWN, DEFAULT_SHOWN, LEVEL_NAMES, SHOWN, TITLES, shown_frame, stored_columns
from cosmoscope.ui.query import SORTS, Filters, ResultSet, distinct_values, read_when

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog
    from cosmoscope.ui.graph import LineageGraph
    from cosmoscope.ui.query import Page

_TABLE_CSS = """<style>
.cosmoscope-table {border-collapse: collapse; font-size: 12px;}
.cosmoscope-table th {text-align: left !important; border-bottom: 2px solid #888; padding: 3px 8px; white-space: nowrap;}
.cosmoscope-table td {border-bottom: 1px solid #ddd; padding: 3px 8px; white-space: nowrap; max-width: 40em;
                      overflow: hidden; text-overflow: ellipsis; text-align: left !important;}
.cosmoscope-table tr:nth-child(even) td {background: rgba(127, 127, 127, 0.07);}
</style>"""


def _note(text: str, kind: str = "info") -> str:
    colors = {"info": "#555", "warn": "#8a6d3b", "error": "#a94442", "ok": "#3c763d"}
    return f'<span style="color: {colors[kind]}">{escape(text, quote=False)}</span>'


def html_table(df: pl.DataFrame, shown=DEFAULT_SHOWN) -> str:
    """A small HTML table of a page of stored rows, science first (values escaped; long values
    cut, with a tooltip)."""
    frame = shown_frame(df, shown)
    head = "".join(f"<th>{escape(TITLES[c])}</th>" for c in shown)
    body = []
    for row in frame.select(list(shown)).iter_rows():
        cells = "".join(f'<td title="{escape(v)}">{escape(v)}</td>' for v in row)
        body.append(f"<tr>{cells}</tr>")
    return f'{_TABLE_CSS}<table class="cosmoscope-table"><tr>{head}</tr>{"".join(body)}</table>'


class _Shown:
    """Display the object's ``widget`` when it is the value of a notebook cell, with a static
    HTML picture beside it for where widgets cannot be drawn (nbconvert, a plain console)."""

    widget = None

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/html"] = self.static_html()
        return bundle

    def static_html(self) -> str:
        return ""


class SearchExplorer(_Shown):
    """Filters, a paged results table, export, charts and lineage, over a catalog.

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
        self.shown = DEFAULT_SHOWN
        self._results: ResultSet | None = None
        self._page: Page | None = None
        wide = {"description_width": "80px"}
        self.mission = w.SelectMultiple(description="Mission", rows=4, style=wide)
        self.instrument = w.SelectMultiple(description="Instrument", rows=4, style=wide)
        self.level = w.SelectMultiple(description="Level", rows=4, style=wide,
                                      options=[(f"L{k} {v}", k) for k, v in LEVEL_NAMES.items()])
        self.status = w.SelectMultiple(description="Status", rows=4, style=wide,
                                       options=[s.value for s in S.ProcessingStatus])
        self.start = w.Text(description="From", placeholder="2026-11-25, 2026-329, 7d", continuous_update=False,
                            style=wide)
        self.end = w.Text(description="To", placeholder="2026-11-28 12:00", continuous_update=False, style=wide,
                          tooltip="a date without a time counts in full")
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
        self.export_path = w.Text(value="selection.parquet", description="Export to", style=wide,
                                  tooltip=".csv, .parquet or .vot (VOTable)")
        self.export_button = w.Button(description="Export", icon="download")
        self.export_status = w.HTML()
        self.lineage_choice = w.Dropdown(description="Dataset", style=wide, layout=w.Layout(width="480px"))
        self.lineage_button = w.Button(description="Show lineage", icon="sitemap")
        self.lineage_box = w.VBox()
        self.lineage: LineageExplorer | None = None
        self.charts_button = w.Button(description="Draw charts", icon="bar-chart")
        self.charts_output = w.Output()
        self.last_charts = None

        for control in (self.mission, self.instrument, self.level, self.status, self.start, self.end,
                        self.min_quality, self.target, self.sort, self.page_size):
            control.observe(self._on_filter, "value")
        self.lineage_choice.observe(lambda _: self._selection_changed(), "value")
        self.reset_button.on_click(lambda _: self.reset())
        self.prev_button.on_click(lambda _: self.go(self.page_number - 1))
        self.next_button.on_click(lambda _: self.go(self.page_number + 1))
        self.export_button.on_click(lambda _: self._export_clicked())
        self.lineage_button.on_click(lambda _: self.show_lineage(self.lineage_choice.value))
        self.charts_button.on_click(lambda _: self.draw_charts())

        filters = w.HBox([w.VBox([self.mission, self.instrument, self.level, self.status]),
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
        """The filters the controls currently say (raises InvalidArgumentError for an unreadable time)."""
        return Filters(missions=tuple(self.mission.value), instruments=tuple(self.instrument.value),
                       levels=tuple(self.level.value), start=read_when(self.start.value, name="start"),
                       end=read_when(self.end.value, end=True, name="end"), min_quality=self.min_quality.value,
                       target=self.target.value, statuses=tuple(self.status.value))

    @property
    def results(self) -> ResultSet:
        """The current search (count, pages, every row)."""
        if self._results is None:
            self._results = ResultSet(self.catalog, self.filters, self.sort.value, columns=stored_columns(SHOWN))
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
        _keep_options(self.mission, distinct_values(self.catalog, "mission_id"))
        _keep_options(self.instrument, distinct_values(self.catalog, "instrument_type"))
        self._results = None
        self._show()

    def reset(self) -> None:
        """Clear every filter."""
        self._quiet = True  # one query after all the controls are cleared, not one per control
        try:
            self.mission.value = self.instrument.value = self.level.value = self.status.value = ()
            self.start.value = self.end.value = ""
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
        """Write every matching row to ``path`` (CSV, Parquet or VOTable, from the suffix unless
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
        """The five charts of the current matches (see :func:`cosmoscope.ui.plots.charts`)."""
        from cosmoscope.ui.plots import chart_data, charts

        return charts(chart_data(self.catalog, self.filters), width=460, height=280)

    def draw_charts(self) -> None:
        """Draw the charts into the Charts tab."""
        from IPython.display import display

        from cosmoscope.ui.plots import load_bokeh

        self.charts_output.clear_output()
        try:
            self.last_charts = self.charts()
        except CosmoscopeError as exc:
            self.charts_output.append_stdout(f"{exc}\n")
            return
        with self.charts_output:
            if not self._bokeh_loaded:  # into this output, once: later draws find BokehJS in the page
                load_bokeh()
                self._bokeh_loaded = True
            display(self.last_charts)

    def static_html(self) -> str:
        caption = self.count_label.value
        return f"<div>{caption}</div>{self.message.value}{self.table.value}"

    # -- internals -------------------------------------------------------------------------

    _quiet = False
    _bokeh_loaded = False

    def _on_filter(self, change) -> None:
        if self._quiet:
            return
        self._results = None
        self.page_number = 1
        self._show()

    def _selection_changed(self) -> None:
        """Another dataset chosen: the lineage of the one before goes away."""
        if self.lineage is not None and self.lineage.dataset_id != self.lineage_choice.value:
            self.lineage = None
            self.lineage_box.children = []

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
        except CosmoscopeError as exc:  # e.g. an end date before the start date, or a date unread
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
            self.table.value = html_table(page.rows, self.shown)
        frame = shown_frame(page.rows, COMPACT_SHOWN)
        # The first row is chosen from the start, so "Show lineage" always has something to show.
        options = [(f"{f} · {lvl} · {t or 'no target'}", i)
                   for i, f, lvl, t in zip(frame["dataset_id"], frame["file"], frame["level"], frame["target"])]
        keep = self.lineage_choice.value if self.lineage_choice.value in {i for _, i in options} else None
        self.lineage_choice.options = options
        self.lineage_choice.value = keep or (options[0][1] if options else None)
        self._selection_changed()


def _keep_options(select, options: list[str]) -> None:
    """Replace the options of a multiple-choice control, keeping what is still offered selected."""
    keep = tuple(v for v in select.value if v in options)
    select.options = options
    select.value = keep


@functools.cache
def _graph_widget_class():
    """The anywidget that draws a lineage graph and reports clicks (made on first use)."""
    import anywidget
    import traitlets

    from cosmoscope.ui.lineage_svg import ANYWIDGET_ESM

    class LineageGraphWidget(anywidget.AnyWidget):
        _esm = ANYWIDGET_ESM
        svg = traitlets.Unicode("").tag(sync=True)

    return LineageGraphWidget


class LineageExplorer(_Shown):
    """The ancestors and descendants of a dataset as a graph: generations left to right, arrows
    labelled with the relationship, boxes coloured by status.

    Clicking a box makes it the focus (*Back* returns); clicking its ``i`` shows the record
    (every field and where it came from, and its audit trail) below. The same can be done
    from code: :meth:`focus`, :meth:`back`, :meth:`open`.

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

        from cosmoscope.ui.lineage_svg import legend_html

        self.catalog = catalog
        self.dataset_id = dataset_id
        self.graph: LineageGraph | None = None
        self.history: list[str] = []
        self.id_input = w.Text(value=dataset_id, description="Dataset", continuous_update=False,
                               layout=w.Layout(width="480px"))
        self.depth = w.BoundedIntText(value=depth, min=1, max=10, description="Generations",
                                      layout=w.Layout(width="170px"))
        self.back_button = w.Button(description="Back", icon="arrow-left", disabled=True,
                                    layout=w.Layout(width="90px"))
        self.message = w.HTML()
        self.picture = _graph_widget_class()()
        self.picture.on_msg(lambda _widget, content, _buffers: self.clicked(content))
        self.legend = w.HTML(legend_html())
        self.details = w.HTML()
        self.id_input.observe(lambda ch: self.focus(ch["new"]), "value")
        self.depth.observe(lambda ch: self._show(), "value")
        self.back_button.on_click(lambda _: self.back())
        self.widget = w.VBox([w.HBox([self.back_button, self.id_input, self.depth]), self.message, self.picture,
                              self.legend, self.details])
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

    def open(self, dataset_id: str) -> None:
        """Show the record of ``dataset_id`` below the graph."""
        from cosmoscope.ui.detail import CSS, record_detail

        try:
            detail = record_detail(self.catalog, dataset_id)
        except DatasetNotFoundError:
            self.details.value = _note(f"No dataset {dataset_id!r} in this catalog.", "error")
            return
        self.details.value = (f"<style>{CSS}</style><h4>{escape(detail.name)}</h4>"
                              f"<p class='cs-muted'>{escape(detail.dataset_id)} · {escape(detail.path)}</p>"
                              + detail.to_html())

    def clicked(self, content: dict) -> None:
        """What a click on the graph says: ``{"action": "focus" | "open", "id": dataset_id}``."""
        if not isinstance(content, dict) or not content.get("id"):
            return
        (self.open if content.get("action") == "open" else self.focus)(content["id"])

    def static_html(self) -> str:
        from cosmoscope.ui.lineage_svg import graph_svg, legend_html

        if self.graph is None:
            return self.message.value
        return f"<div style='overflow-x:auto'>{graph_svg(self.graph)}</div>{legend_html()}"

    def _show(self) -> None:
        from cosmoscope.ui.graph import lineage_graph
        from cosmoscope.ui.lineage_svg import graph_svg

        self.back_button.disabled = not self.history
        self.id_input.value = self.dataset_id  # its observer ignores the id already in focus
        self.details.value = ""
        try:
            self.graph = lineage_graph(self.catalog, self.dataset_id, depth=self.depth.value)
        except DatasetNotFoundError:
            self.graph = None
            self.picture.svg = ""
            self.message.value = _note(f"No dataset {self.dataset_id!r} in this catalog. Check the id "
                                       "(it is the dataset_id column of a search).", "error")
            return
        focus = self.graph.focus
        what = f"<b>{escape(focus.name)}</b>" + (f" · {escape(focus.subtitle())}" if focus.subtitle() else "")
        self.message.value = (f"{what}: " + _note("no recorded parents or children.", "info") if self.graph.empty
                              else what + ". " + _note("Inputs on the left, products on the right; click a box "
                                                       "to move there, its i to see the record."))
        self.picture.svg = graph_svg(self.graph)
