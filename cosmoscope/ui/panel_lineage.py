"""The dashboard's lineage view: a dataset's parents and children as columns of clickable
nodes coloured by status, with the focus's details below. Clicking a node moves the focus;
*Back* returns. The layout comes from :func:`cosmoscope.ui.graph.lineage_graph`.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from cosmoscope.errors import DatasetNotFoundError
from cosmoscope.ui.graph import STATUS_COLORS, lineage_graph

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog
    from cosmoscope.ui.graph import Node


def note(text: str, raw: bool = False) -> str:
    """A highlighted message box (``text`` is escaped unless ``raw``)."""
    return f"<div class='cs-note'>{text if raw else escape(text)}</div>"


def md(text: str, **kw):
    """An HTML pane."""
    import panel as pn

    return pn.pane.HTML(text, **kw)


class LineageView:
    """The Lineage tab of the dashboard."""

    def __init__(self, catalog: Catalog | None, depth: int = 2):
        import panel as pn

        self.catalog = catalog
        self.focus: str | None = None
        self.history: list[str] = []
        self.id_input = pn.widgets.TextInput(label="Dataset id", width=420,
                                             placeholder="paste a dataset_id, or pick a row in Search")
        self.depth = pn.widgets.IntInput(label="Generations", value=depth, start=1, end=10, width=110)
        self.back = pn.widgets.Button(label="◀ Back", width=90, disabled=True)
        self.message = md("")
        self.graph = pn.Row(sizing_mode="stretch_width", styles={"overflow-x": "auto"})
        self.details = md("")
        self._syncing = False
        self.id_input.param.watch(lambda e: self.show(e.new), "value")
        self.depth.param.watch(lambda e: self.show(self.focus, remember=False), "value")
        self.back.on_click(lambda _: self.go_back())
        self.panel = pn.Column(pn.Row(self.back, self.id_input, self.depth), self.message, self.graph, self.details,
                               sizing_mode="stretch_width")

    def show(self, dataset_id: str | None, *, remember: bool = True) -> None:
        """Put ``dataset_id`` in focus (remembering the previous focus for *Back*)."""
        import panel as pn

        dataset_id = (dataset_id or "").strip()
        if not dataset_id or self.catalog is None or self._syncing:
            return
        if remember and self.focus and self.focus != dataset_id:
            self.history.append(self.focus)
        self.focus = dataset_id
        self.back.disabled = not self.history
        if self.id_input.value != dataset_id:
            self._syncing = True  # the id box shows the focus without asking for it again
            try:
                self.id_input.value = dataset_id
            finally:
                self._syncing = False
        try:
            graph = lineage_graph(self.catalog, dataset_id, depth=self.depth.value)
        except DatasetNotFoundError:
            self.message.object = note(f"No dataset <code>{escape(dataset_id)}</code> in this catalog. "
                                       "Check the id, or pick a row in Search.", raw=True)
            self.graph.objects, self.details.object = [], ""
            return
        legend = " ".join(f"<span style='color:{c}'>■</span> {s}" for s, c in STATUS_COLORS.items() if s)
        self.message.object = ("<p>No recorded parents or children for this dataset.</p>" if graph.empty
                               else "<p class='cs-muted'>Parents on the left, children on the right; click a "
                                    f"dataset to move the focus to it. Status: {legend}</p>")
        columns = []
        for title, nodes, hidden in graph.columns():
            items = [md(f"<b>{escape(title)}</b>")]
            items += [self._node(n, n.dataset_id == dataset_id) for n in nodes]
            if hidden:
                items.append(md(f"<span class='cs-muted'>… and {hidden:,} more</span>"))
            columns.append(pn.Column(*items, width=240, margin=(0, 12, 0, 0)))
        self.graph.objects = columns
        f = graph.focus
        level = f.calib_level if f.calib_level is not None else "?"
        rows = [("dataset", f.dataset_id), ("file", f.file_path or ""), ("mission", f.mission_id or ""),
                ("instrument", f.instrument_type or ""), ("processing", f.processing_status or ""),
                ("calibration", f"{f.calibration_status or ''} (level {level})"), ("quality", f.quality_text)]
        if not f.cataloged:
            rows = [("dataset", f.dataset_id), ("note", "named by lineage but not cataloged")]
        self.details.object = "<table class='table table-sm' style='max-width:900px'>" + "".join(
            f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows) + "</table>"

    def go_back(self) -> None:
        """Return to the previous focus."""
        if self.history:
            previous = self.history.pop()
            self.focus = None
            self.show(previous, remember=False)

    def _node(self, node: Node, is_focus: bool):
        import panel as pn

        # !important: the theme's button colours are more specific than a plain class rule.
        css = (f".bk-btn {{background-color: {node.color} !important; color: white !important; border: "
               f"{'3px solid #111' if is_focus else '1px solid transparent'} !important; text-align: left; "
               "white-space: nowrap; overflow: hidden; text-overflow: ellipsis;}")
        button = pn.widgets.Button(label=node.name, description=node.tooltip(), width=220, stylesheets=[css],
                                   css_classes=["cs-node"])
        if not is_focus:
            button.on_click(lambda _, i=node.dataset_id: self.show(i))
        edge = f" · via {', '.join(node.relationships)}" if node.relationships else ""
        return pn.Column(button, md(f"<span class='cs-muted'>{escape(node.status_text + edge)}</span>",
                                    margin=(0, 10)), margin=(0, 0, 6, 0))
