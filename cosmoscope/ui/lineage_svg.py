"""A lineage graph drawn as SVG: one box per dataset, generations left to right, arrows from
each input to the product made from it, labelled with the relationship.

Each box shows the file's whole name (cut in the middle only when it does not fit, the full
name on hover), what the product is (level, type, target), when it starts, and its status as
a coloured strip; hovering shows everything else. The same SVG is what the dashboard, the
notebook explorer and the reports show; :data:`WIRE_JS` makes its boxes clickable (a click
moves the focus, the ⓘ mark opens the record) where there is a page to talk back to.

>>> from cosmoscope.ui.graph import LineageGraph, Node
>>> svg = graph_svg(LineageGraph(Node("ds-1", file_name="a.fits")))
>>> svg.startswith("<svg") and 'data-id="ds-1"' in svg
True
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from cosmoscope.ui.graph import STATUS_COLORS, middle_ellipsis

if TYPE_CHECKING:
    from cosmoscope.ui.graph import LineageGraph, Node

#: Box size and spacing, pixels.
NODE_W, NODE_H, GAP_X, GAP_Y, TOP, PAD = 300, 64, 150, 18, 30, 12
#: Characters of a file name that fit in a box (12 px sans-serif, about 6.6 px each).
NAME_CHARS = 40
SUB_CHARS = 44

_STYLE = """
.cs-graph {font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;}
.cs-graph .cs-node {cursor: pointer; outline: none;}
.cs-graph .cs-node:hover .cs-box, .cs-graph .cs-node:focus .cs-box {stroke: #1f3a5f; stroke-width: 2;}
.cs-graph .cs-box {fill: #fff; stroke: #ced4da; stroke-width: 1;}
.cs-graph .cs-focus .cs-box {fill: #eef4fb; stroke: #1f3a5f; stroke-width: 2.5;}
.cs-graph .cs-ghost .cs-box {stroke-dasharray: 5 4; fill: #f8f9fa;}
.cs-graph .cs-name {font-size: 12.5px; font-weight: 600; fill: #212529;}
.cs-graph .cs-sub {font-size: 11.5px; fill: #495057;}
.cs-graph .cs-when {font-size: 11px; fill: #6c757d;}
.cs-graph .cs-edge {fill: none; stroke: #868e96; stroke-width: 1.6;}
.cs-graph .cs-edge-label {font-size: 11px; fill: #343a40; paint-order: stroke; stroke: #fff; stroke-width: 4px;
                          stroke-linejoin: round;}
.cs-graph .cs-col-title {font-size: 12px; font-weight: 600; fill: #495057; text-transform: uppercase;
                         letter-spacing: .04em;}
.cs-graph .cs-more {font-size: 12px; fill: #6c757d; font-style: italic;}
.cs-graph .cs-open circle {fill: #fff; stroke: #adb5bd;}
.cs-graph .cs-open:hover circle {fill: #1f3a5f; stroke: #1f3a5f;}
.cs-graph .cs-open:hover text {fill: #fff;}
.cs-graph .cs-open text {font-size: 12px; font-weight: 700; fill: #1f3a5f; font-family: Georgia, serif;}
"""


def _xy(node: Node) -> tuple[float, float]:
    return PAD + node.column * (NODE_W + GAP_X), TOP + PAD + node.row * (NODE_H + GAP_Y)


def graph_svg(graph: LineageGraph, *, title: bool = True) -> str:
    """The graph as a standalone SVG element (its size in pixels; text stays readable)."""
    columns = graph.columns()
    nodes = {n.dataset_id: n for n in graph.nodes}
    n_cols = len(columns)
    rows = max((max((n.row for n in ns), default=0) + 1 + (1 if hidden else 0) for _, ns, hidden in columns),
               default=1)
    width = 2 * PAD + n_cols * NODE_W + (n_cols - 1) * GAP_X
    height = TOP + 2 * PAD + rows * NODE_H + (rows - 1) * GAP_Y
    out = [f'<svg class="cs-graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="lineage of {escape(graph.focus.name)}">',
           f"<style>{_STYLE}</style>",
           '<defs><marker id="cs-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#868e96"/></marker></defs>']
    for i, (name, ns, hidden) in enumerate(columns):
        x = PAD + i * (NODE_W + GAP_X)
        out.append(f'<text class="cs-col-title" x="{x + 4}" y="{PAD + 12}">{escape(name)}</text>')
        if hidden:
            y = TOP + PAD + (max(n.row for n in ns) + 1) * (NODE_H + GAP_Y) + 16
            out.append(f'<text class="cs-more" x="{x + 4}" y="{y:.0f}">… and {hidden:,} more not shown</text>')
    edges = graph.shown_edges()
    fan_out: dict[str, int] = {}
    fan_in: dict[str, int] = {}
    for parent, child, _ in edges:
        fan_out[parent] = fan_out.get(parent, 0) + 1
        fan_in[child] = fan_in.get(child, 0) + 1
    for parent, child, label in edges:
        a, b = nodes[parent], nodes[child]
        (x1, y1), (x2, y2) = _xy(a), _xy(b)
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H / 2, y2 + NODE_H / 2
        if x2 <= x1:  # an edge within one generation (rare): loop round the right side
            x2, y2 = x2 + NODE_W, y2
        mid = (x1 + x2) / 2
        out.append(f'<path class="cs-edge" d="M {x1:.1f} {y1:.1f} C {mid:.1f} {y1:.1f}, {mid:.1f} {y2:.1f}, '
                   f'{x2 - 2:.1f} {y2:.1f}" marker-end="url(#cs-arrow)"><title>{escape(a.name)} → '
                   f'{escape(b.name)}: {escape(label)}</title></path>')
        # The label goes by the end that has the fewest edges, where it cannot overlap another.
        if fan_out[parent] > fan_in[child]:
            at = f'x="{x2 - 10:.1f}" y="{y2 - 6:.1f}" text-anchor="end"'
        else:
            at = f'x="{x1 + 10:.1f}" y="{y1 - 6:.1f}" text-anchor="start"'
        out.append(f'<text class="cs-edge-label" {at}>{escape(label)}</text>')
    for node in graph.nodes:
        out.append(_node_svg(node, node.dataset_id == graph.focus.dataset_id))
    out.append("</svg>")
    return "".join(out)


def _node_svg(node: Node, focus: bool) -> str:
    x, y = _xy(node)
    classes = "cs-node" + (" cs-focus" if focus else "") + ("" if node.cataloged else " cs-ghost")
    name = middle_ellipsis(node.name, NAME_CHARS)
    sub = middle_ellipsis(node.subtitle() if node.cataloged else "named by lineage, not cataloged", SUB_CHARS)
    when = " · ".join(p for p in (node.when and f"{node.when} UTC", node.status_text) if p)
    parts = [f'<g class="{classes}" data-id="{escape(node.dataset_id)}" tabindex="0" role="button" '
             f'transform="translate({x:.1f},{y:.1f})"><title>{escape(node.tooltip())}</title>',
             f'<rect class="cs-box" width="{NODE_W}" height="{NODE_H}" rx="7"/>',
             f'<rect width="7" height="{NODE_H}" rx="3" fill="{node.color}"/>',
             f'<text class="cs-name" x="16" y="20">{escape(name)}</text>',
             f'<text class="cs-sub" x="16" y="38">{escape(sub)}</text>',
             f'<text class="cs-when" x="16" y="55">{escape(when)}</text>']
    if node.cataloged:
        parts.append(f'<g class="cs-open" data-open="{escape(node.dataset_id)}" role="button" '
                     f'transform="translate({NODE_W - 18},16)"><title>open the record of {escape(node.name)}</title>'
                     '<circle r="9"/><text text-anchor="middle" y="4.5">i</text></g>')
    parts.append("</g>")
    return "".join(parts)


def legend_html() -> str:
    """The colours of the status strips, as a line of HTML."""
    items = "".join(f'<span style="margin-right:12px;white-space:nowrap"><span style="display:inline-block;'
                    f'width:10px;height:10px;border-radius:2px;background:{c};margin-right:4px"></span>'
                    f"{escape(s)}</span>" for s, c in STATUS_COLORS.items() if s)
    return f'<div style="font-size:12px;color:#495057;line-height:1.9">{items}</div>'


#: Makes a drawn graph clickable: ``wire(el, send)`` calls ``send("focus", id)`` when a box is
#: clicked (or Enter pressed on it) and ``send("open", id)`` for its ⓘ mark.
WIRE_JS = """
function show_focus(el) {
  // A wide graph scrolls sideways: bring the focus into view, not the page.
  const focus = el.querySelector(".cs-focus");
  const box = el.closest ? el : null;
  if (focus && box && box.scrollWidth > box.clientWidth) {
    const r = focus.getBoundingClientRect(), b = box.getBoundingClientRect();
    box.scrollLeft += (r.left + r.width / 2) - (b.left + b.width / 2);
  }
}
function wire(el, send) {
  el.querySelectorAll("[data-open]").forEach((b) => b.addEventListener("click", (ev) => {
    ev.stopPropagation(); send("open", b.dataset.open);
  }));
  el.querySelectorAll(".cs-node").forEach((n) => {
    n.addEventListener("click", () => send("focus", n.dataset.id));
    n.addEventListener("keydown", (ev) => { if (ev.key === "Enter") send("focus", n.dataset.id); });
  });
}
"""

#: ESM of the Panel component (``model.svg`` drawn, clicks sent as messages).
PANEL_ESM = WIRE_JS + """
export function render({ model, el }) {
  const draw = () => {
    el.innerHTML = model.svg;
    wire(el, (action, id) => model.send_msg({action, id}));
    show_focus(el);
  };
  draw();
  model.on("svg", draw);
}
"""

#: ESM of the anywidget (the same, through anywidget's model API).
ANYWIDGET_ESM = WIRE_JS + """
function render({ model, el }) {
  el.style.overflowX = "auto";
  const draw = () => {
    el.innerHTML = model.get("svg");
    wire(el, (action, id) => model.send({action, id}));
    show_focus(el);
  };
  draw();
  model.on("change:svg", draw);
}
export default { render };
"""
