"""The dashboard's results: a page of observations, science first, sortable by any column,
with a column chooser, export of the whole selection, and a drawer with everything about the
row clicked."""

from __future__ import annotations

import io
from html import escape
from typing import TYPE_CHECKING

from cosmoscope.errors import CosmoscopeError, DatasetNotFoundError
from cosmoscope.ui import query as Q
from cosmoscope.ui.columns import DEFAULT_SHOWN, SHOWN, TITLES, shown_frame, sort_column, stored_columns
from cosmoscope.ui.export import EXPORT_FORMATS, write_table
from cosmoscope.ui.panel_components import copy_field

if TYPE_CHECKING:
    from cosmoscope.ui.dashboard import Dashboard
    from cosmoscope.ui.state import ViewState

#: Most rows the dashboard exports at once (a file of a few hundred MB at most).
EXPORT_MAX = 100_000


def _sorters(sort: str, shown) -> list[dict]:
    """The Tabulator sorters that show ``sort`` (a stored column, ``-`` for descending)."""
    column, descending = Q.parse_sort(sort)
    name = next((s for s in shown if sort_column(s) == column), None)
    return [{"field": name, "dir": "desc" if descending else "asc"}] if name else []


class ResultsView:
    """The Search tab: pager, caption, columns, export and the table."""

    def __init__(self, dash: Dashboard):
        import panel as pn

        self.dash = dash
        self.page: Q.Page | None = None
        self.results: Q.ResultSet | None = None
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.caption = pn.pane.HTML("", css_classes=["cs-caption"], margin=(12, 10))
        self.prev_button = pn.widgets.Button(label="◀ Previous", width=105)
        self.next_button = pn.widgets.Button(label="Next ▶", width=85)
        self.columns = pn.widgets.MultiChoice(label="Columns shown", options={TITLES[c]: c for c in SHOWN},
                                              value=list(DEFAULT_SHOWN), sizing_mode="stretch_width")
        self.columns_card = pn.Card(self.columns, title="Columns", collapsed=True, sizing_mode="stretch_width",
                                    margin=(0, 10), header_background="#f8f9fa")
        self.downloads = {fmt: pn.widgets.FileDownload(callback=lambda fmt=fmt: self._export(fmt),
                                                       filename=f"observations{suffix}", label=fmt.replace(
                                                           "votable", "VOTable").replace("csv", "CSV").replace(
                                                           "parquet", "Parquet"), color="light", width=90,
                                                       embed=False)
                          for fmt, (suffix, _) in EXPORT_FORMATS.items()}
        self.export_note = pn.pane.HTML("", css_classes=["cs-muted"], margin=(14, 4))
        self.table = pn.widgets.Tabulator(
            None, disabled=True, show_index=False, selectable=1, sizing_mode="stretch_width",
            layout="fit_data_table", titles=dict(TITLES), hidden_columns=["dataset_id"], frozen_columns=["file"],
            configuration={"columnDefaults": {"tooltip": True, "headerSortTristate": False}},
            stylesheets=[".tabulator, .tabulator-row, .tabulator-cell, .tabulator-col-title {font-size: 13px !important;} "
                         ".tabulator-row {cursor: pointer;} "
                         ".tabulator-row .tabulator-cell {padding: 5px 8px;} "
                         ".tabulator .tabulator-header .tabulator-col {background: #f8f9fa;}"])
        self.prev_button.on_click(lambda _: dash.update(page=max(1, dash.state.page - 1)))
        self.next_button.on_click(lambda _: dash.update(page=dash.state.page + 1))
        self.columns.param.watch(self._columns_chosen, "value")
        self.table.param.watch(self._sorted, "sorters")
        self.table.param.watch(self._selected, "selection")
        self._quiet = False
        # Pager and export wrap onto two lines on narrow screens instead of running off the edge.
        self.panel = pn.Column(
            self.message,
            pn.FlexBox(pn.Row(self.prev_button, self.next_button, self.caption),
                       pn.Row(pn.pane.HTML("<span class='cs-muted'>export all matches:</span>", margin=(14, 4)),
                              *self.downloads.values()),
                       flex_wrap="wrap", justify_content="space-between", sizing_mode="stretch_width"),
            self.export_note, self.columns_card, self.table, sizing_mode="stretch_width")

    # -- showing -----------------------------------------------------------------------------

    def show(self, state: ViewState, filters: Q.Filters | None, error: str | None = None) -> None:
        """Read and show the page ``state`` asks for (``filters`` None: they could not be read)."""
        self._quiet = True
        try:
            self.columns.value = list(state.columns)
        finally:
            self._quiet = False
        if filters is None:
            self._failed(error or "the filters could not be read")
            return
        try:
            if self.results is None or self.results.filters != filters or self.results.sort != state.sort:
                self.results = Q.ResultSet(self.dash.catalog, filters, state.sort,
                                           columns=stored_columns(SHOWN.keys()))
            page = self.results.page(state.page, self.dash.page_size)
        except CosmoscopeError as exc:
            self._failed(str(exc))
            return
        self.page = page
        self.prev_button.disabled = page.number <= 1
        self.next_button.disabled = page.number >= page.n_pages
        self.caption.object = f"<b>{escape(page.caption())}</b>"
        for button in self.downloads.values():
            button.disabled = page.total == 0
        self.export_note.object = (f"Exports hold the first {EXPORT_MAX:,} matches, in this order; narrow the "
                                   "search for the rest." if page.total > EXPORT_MAX else "")
        self.export_note.visible = page.total > EXPORT_MAX
        if page.total == 0:
            if not filters.active:
                self._alert("This catalog is empty. Add files with `cosmoscope ingest PATH` (or try "
                            "`cosmoscope demo`); this page refreshes by itself when data arrive.", "info")
            else:
                self._alert(f"No observations match {filters.describe()}. Loosen a filter or clear them.",
                            "warning")
        else:
            self.message.visible = False
        self._fill(state)

    def _fill(self, state: ViewState) -> None:
        frame = shown_frame(self.page.rows, state.columns).to_pandas()
        self._quiet = True
        try:
            self.table.configuration = {
                "columnDefaults": {"tooltip": True, "headerSortTristate": False},
                # The rows come sorted from the catalog; "exists" keeps that order in the browser.
                "columns": [{"field": c, "sorter": "exists", "headerSort": sort_column(c) is not None}
                            for c in frame.columns]}
            self.table.value = frame
            self.table.sorters = _sorters(state.sort, state.columns)
            ids = frame["dataset_id"].tolist()
            self.table.selection = [ids.index(state.focus)] if state.focus in ids else []
        finally:
            self._quiet = False

    def _failed(self, text: str) -> None:
        self.page = None
        self._alert(text, "danger")
        self.caption.object = ""
        self.prev_button.disabled = self.next_button.disabled = True
        for button in self.downloads.values():
            button.disabled = True
        self._quiet = True
        try:
            self.table.value = None
        finally:
            self._quiet = False

    def _alert(self, text: str, kind: str) -> None:
        self.message.object = text
        self.message.alert_type = kind
        self.message.visible = True

    # -- what the user does ------------------------------------------------------------------

    def _columns_chosen(self, event) -> None:
        if not self._quiet and event.new:
            self.dash.update(columns=tuple(event.new))

    def _sorted(self, event) -> None:
        if self._quiet or not event.new:
            return
        s = event.new[0]
        column = sort_column(s.get("field"))
        if column is None:
            return
        self.dash.update(sort=("-" if s.get("dir") == "desc" else "") + column, page=1)

    def _selected(self, event) -> None:
        if self._quiet or self.page is None or not event.new:
            return
        self.dash.open_record(self.page.rows["dataset_id"][event.new[0]])

    def _export(self, fmt: str):
        """The whole selection (at most EXPORT_MAX rows) as a file, for the download button."""
        if self.results is None:
            return None
        n = min(self.results.total, EXPORT_MAX)
        df = self.results.collect(limit=n)
        buf = io.BytesIO()
        write_table(df, buf, fmt)
        buf.seek(0)
        self.downloads[fmt].filename = f"cosmoscope-{df.height}-observations{EXPORT_FORMATS[fmt][0]}"
        return buf


class DetailDrawer:
    """A panel over the right edge of the page with everything about one dataset."""

    def __init__(self, dash: Dashboard):
        import panel as pn

        self.dash = dash
        self.dataset_id: str | None = None
        self.title = pn.pane.HTML("", sizing_mode="stretch_width", margin=(8, 10, 0, 10))
        self.close_button = pn.widgets.Button(label="✕", width=40, color="light", align="start",
                                              description="close the details")
        self.lineage_button = pn.widgets.Button(label="Show lineage", color="primary", width=130)
        id_row, self.id_text = copy_field("Dataset id", width=360)
        path_row, self.path_text = copy_field("File path", width=360)
        self.body = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.close_button.on_click(lambda _: dash.update(focus=""))
        self.lineage_button.on_click(lambda _: dash.show_lineage(self.dataset_id))
        self.panel = pn.Column(
            pn.Row(self.title, self.close_button, sizing_mode="stretch_width"), id_row, path_row,
            pn.Row(self.lineage_button, margin=(4, 10)), self.body, visible=False, css_classes=["cs-drawer"],
            styles={"position": "fixed", "top": "0", "right": "0", "height": "100vh", "overflow-y": "auto",
                    "z-index": "1100", "background": "white", "box-shadow": "-6px 0 24px rgba(0,0,0,.18)",
                    "padding-bottom": "24px"},
            width=600, max_width=600)

    def show(self, dataset_id: str) -> None:
        from cosmoscope.ui.detail import record_detail

        if not dataset_id:
            self.panel.visible = False
            self.dataset_id = None
            return
        try:
            detail = record_detail(self.dash.catalog, dataset_id)
        except DatasetNotFoundError:
            self.title.object = f"<h4>No dataset {escape(dataset_id)}</h4>"
            self.body.object = "<p>It is not in this catalog (any more). Close this and pick a row.</p>"
            self.id_text.value, self.path_text.value = dataset_id, ""
            self.panel.visible = True
            return
        self.dataset_id = dataset_id
        self.id_text.value, self.path_text.value = detail.dataset_id, detail.path
        self.title.object = (f"<h4 style='margin:0;word-break:break-all'>{escape(detail.name)}</h4>"
                             f"<div class='cs-muted'>{escape(detail.row.get('mission_id') or 'no mission')} · "
                             f"{escape(detail.row.get('instrument_type') or 'no instrument')}</div>")
        self.body.object = detail.to_html()
        self.panel.visible = True
