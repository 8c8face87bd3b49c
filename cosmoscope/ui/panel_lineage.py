"""The dashboard's lineage view: a dataset's ancestors and descendants as a graph, generations
left to right, arrows labelled with the relationship. Clicking a box moves the focus to it (*Back*
returns); its ⓘ opens the record. The layout comes from :func:`cosmoscope.ui.graph.lineage_graph`,
the drawing from :func:`cosmoscope.ui.lineage_svg.graph_svg`.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from cosmoscope.errors import DatasetNotFoundError
from cosmoscope.ui.graph import lineage_graph

if TYPE_CHECKING:
    from collections.abc import Callable

    from cosmoscope.catalog import Catalog
    from cosmoscope.ui.graph import LineageGraph


def note(text: str, raw: bool = False) -> str:
    """A highlighted message box (``text`` is escaped unless ``raw``)."""
    return f"<div class='cs-note'>{text if raw else escape(text)}</div>"


def md(text: str, **kw):
    """An HTML pane."""
    import panel as pn

    return pn.pane.HTML(text, **kw)


class LineageView:
    """The Lineage tab of the dashboard."""

    def __init__(self, catalog: Catalog | None, depth: int = 2, *, on_open: Callable[[str], None] | None = None,
                 on_focus: Callable[[str], None] | None = None):
        import panel as pn

        from cosmoscope.ui.lineage_svg import legend_html
        from cosmoscope.ui.panel_components import GraphPane

        self.catalog = catalog
        self.focus: str | None = None
        self.graph: LineageGraph | None = None
        self.history: list[str] = []
        self.on_focus = on_focus
        self.id_input = pn.widgets.TextInput(label="Dataset id", width=320,
                                             placeholder="paste a dataset_id, or pick a row in Search")
        self.depth = pn.widgets.IntInput(label="Generations", value=depth, start=1, end=10, width=110)
        self.back = pn.widgets.Button(label="◀ Back", width=90, disabled=True, align="end")
        self.message = md("", sizing_mode="stretch_width")
        self.picture = GraphPane(sizing_mode="stretch_width")
        self.picture.on_focus = self.show
        self.picture.on_open = on_open
        self.legend = md(legend_html(), sizing_mode="stretch_width")
        self._syncing = False
        self.id_input.param.watch(lambda e: self.show(e.new), "value")
        self.depth.param.watch(lambda e: self.show(self.focus, remember=False), "value")
        self.back.on_click(lambda _: self.go_back())
        self.panel = pn.Column(pn.Row(self.back, self.id_input, self.depth), self.message, self.picture, self.legend,
                               sizing_mode="stretch_width")

    def show(self, dataset_id: str | None, *, remember: bool = True) -> None:
        """Put ``dataset_id`` in focus (remembering the previous focus for *Back*)."""
        dataset_id = (dataset_id or "").strip()
        if not dataset_id or self.catalog is None or self._syncing:
            return
        if remember and self.focus and self.focus != dataset_id:
            self.history.append(self.focus)
        changed = dataset_id != self.focus
        self.focus = dataset_id
        self.back.disabled = not self.history
        if self.id_input.value != dataset_id:
            self._syncing = True  # the id box shows the focus without asking for it again
            try:
                self.id_input.value = dataset_id
            finally:
                self._syncing = False
        try:
            self.graph = lineage_graph(self.catalog, dataset_id, depth=self.depth.value)
        except DatasetNotFoundError:
            self.graph = None
            self.message.object = note(f"No dataset <code>{escape(dataset_id)}</code> in this catalog. "
                                       "Check the id, or pick a row in Search.", raw=True)
            self.picture.svg = ""
            return
        from cosmoscope.ui.lineage_svg import graph_svg

        focus = self.graph.focus
        what = f"<b>{escape(focus.name)}</b>" + (f" · {escape(focus.subtitle())}" if focus.subtitle() else "")
        self.message.object = (f"<p>{what}: no recorded parents or children.</p>" if self.graph.empty else
                               f"<p>{what}. <span class='cs-muted'>Inputs on the left, products on the right; "
                               "click a box to move there, its <b>i</b> to open the record.</span></p>")
        self.picture.svg = graph_svg(self.graph)
        if changed and self.on_focus is not None:
            self.on_focus(dataset_id)

    def clear(self) -> None:
        """Forget the focus (the selection it came from went away)."""
        self.focus, self.graph, self.history = None, None, []
        self.back.disabled = True
        self._syncing = True
        try:
            self.id_input.value = ""
        finally:
            self._syncing = False
        self.message.object = "<p class='cs-muted'>Pick a row in Search, or paste a dataset id above.</p>"
        self.picture.svg = ""

    def go_back(self) -> None:
        """Return to the previous focus."""
        if self.history:
            previous = self.history.pop()
            self.show(previous, remember=False)
