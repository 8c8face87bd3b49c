"""Small Panel components of the dashboard, in plain JavaScript shipped with the page (no CDN):
a facet list (values with counts and bars, click to filter), the clickable lineage graph,
copy-to-clipboard buttons, and tabs that switch in the browser.

The facets and the graph are :class:`panel.custom.JSComponent`; Python sees their clicks as
parameter changes or messages, so they can be driven without a browser too (set ``selected``;
call ``on_message``). The copy buttons and the tabs act in the browser alone, through Bokeh's
CustomJS.
"""

from __future__ import annotations

from typing import ClassVar

import panel as pn
import param
from bokeh.models import CustomJS
from panel.custom import JSComponent

from cosmoscope.ui.lineage_svg import PANEL_ESM

_FACET_CSS = """
:host {display: block; width: 100%;}
.cs-facet {font: 13px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 0 12px 0;}
.cs-facet-head {display: flex; justify-content: space-between; align-items: baseline; margin: 0 0 4px 0;}
.cs-facet-title {font-weight: 600; color: #212529;}
.cs-facet-clear {border: none; background: none; color: #0d6efd; cursor: pointer; font-size: 12px; padding: 0;}
.cs-facet-row {display: grid; grid-template-columns: 16px 1fr auto; gap: 6px; align-items: center; width: 100%;
               border: none; background: none; padding: 3px 4px; border-radius: 4px; cursor: pointer;
               text-align: left; font: inherit; color: #212529; position: relative;}
.cs-facet-row:hover {background: #f1f3f5;}
.cs-facet-row.cs-on {background: #e7f1ff;}
.cs-facet-box {width: 13px; height: 13px; border: 1.5px solid #868e96; border-radius: 3px; box-sizing: border-box;}
.cs-on .cs-facet-box {background: #0d6efd; border-color: #0d6efd;
                      box-shadow: inset 0 0 0 2px #e7f1ff;}
.cs-facet-label {overflow: hidden; text-overflow: ellipsis; white-space: nowrap;}
.cs-facet-swatch {display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 5px;}
.cs-facet-n {color: #495057; font-variant-numeric: tabular-nums; font-size: 12px;}
.cs-facet-bar {position: absolute; left: 26px; bottom: 0; height: 2px; background: #adb5bd; border-radius: 1px;}
.cs-facet-zero {color: #adb5bd;}
.cs-facet-more {border: none; background: none; color: #0d6efd; cursor: pointer; font-size: 12px; padding: 2px 4px;}
"""


class FacetList(JSComponent):
    """One facet: its values with how many of the current matches have each; clicking a value
    adds it to (or removes it from) the filter. ``n`` of an item is None while counting."""

    title = param.String(default="")
    items = param.List(default=[], doc="[{value, label, n, color}] in display order")
    selected = param.List(default=[], doc="values chosen (strings)")
    show = param.Integer(default=8, doc="values shown before 'show all'")

    _stylesheets = [_FACET_CSS]

    _esm = """
export function render({ model, el }) {
  let expanded = false;
  const fmt = (n) => n === null || n === undefined ? "…" : n.toLocaleString("en-US");
  const draw = () => {
    el.innerHTML = "";
    const box = document.createElement("div");
    box.className = "cs-facet";
    const head = document.createElement("div");
    head.className = "cs-facet-head";
    const title = document.createElement("span");
    title.className = "cs-facet-title";
    title.textContent = model.title;
    head.appendChild(title);
    if (model.selected.length) {
      const clear = document.createElement("button");
      clear.className = "cs-facet-clear";
      clear.textContent = "clear";
      clear.title = "remove this filter";
      clear.addEventListener("click", () => { model.selected = []; });
      head.appendChild(clear);
    }
    box.appendChild(head);
    const items = model.items;
    const max = Math.max(1, ...items.map((i) => i.n || 0));
    const chosen = new Set(model.selected);
    const visible = expanded ? items : items.filter((it, k) => k < model.show || chosen.has(it.value));
    for (const it of visible) {
      const row = document.createElement("button");
      row.className = "cs-facet-row" + (chosen.has(it.value) ? " cs-on" : "");
      row.dataset.value = it.value;
      row.setAttribute("aria-pressed", chosen.has(it.value) ? "true" : "false");
      row.title = `${it.label}: ${fmt(it.n)} observations`;
      const tick = document.createElement("span");
      tick.className = "cs-facet-box";
      const label = document.createElement("span");
      label.className = "cs-facet-label" + (it.n === 0 ? " cs-facet-zero" : "");
      if (it.color) {
        const sw = document.createElement("span");
        sw.className = "cs-facet-swatch";
        sw.style.background = it.color;
        label.appendChild(sw);
      }
      label.appendChild(document.createTextNode(it.label));
      const n = document.createElement("span");
      n.className = "cs-facet-n" + (it.n === 0 ? " cs-facet-zero" : "");
      n.textContent = fmt(it.n);
      const bar = document.createElement("span");
      bar.className = "cs-facet-bar";
      bar.style.width = `calc((100% - 80px) * ${(it.n || 0) / max})`;
      row.append(tick, label, n, bar);
      row.addEventListener("click", () => {
        const next = new Set(model.selected);
        if (next.has(it.value)) { next.delete(it.value); } else { next.add(it.value); }
        model.selected = items.map((i) => i.value).filter((v) => next.has(v));
      });
      box.appendChild(row);
    }
    if (items.length > model.show) {
      const more = document.createElement("button");
      more.className = "cs-facet-more";
      more.textContent = expanded ? "show fewer" : `show all ${items.length}`;
      more.addEventListener("click", () => { expanded = !expanded; draw(); });
      box.appendChild(more);
    }
    el.appendChild(box);
  };
  draw();
  model.on(["items", "selected", "title"], draw);
}
"""


class GraphPane(JSComponent):
    """The lineage graph (SVG from :func:`cosmoscope.ui.lineage_svg.graph_svg`); a click on a
    box calls ``on_focus(id)``, a click on its ⓘ ``on_open(id)``."""

    svg = param.String(default="")

    _esm = PANEL_ESM
    _stylesheets = [":host {display: block; overflow-x: auto; width: 100%;}"]

    def __init__(self, **params):
        self.on_focus = None
        self.on_open = None
        super().__init__(**params)

    def _handle_msg(self, msg) -> None:
        self.on_message(msg)

    def on_message(self, msg: dict) -> None:
        """What a click says: ``{"action": "focus" | "open", "id": dataset_id}``."""
        handler = self.on_open if msg.get("action") == "open" else self.on_focus
        if handler is not None and msg.get("id"):
            handler(msg["id"])


#: Copies ``source.value`` (a text widget's) to the clipboard, with a fallback for pages served
#: over plain http to another machine, where the Clipboard API is not offered.
_COPY_JS = """
const text = source.value;
if (navigator.clipboard && window.isSecureContext) {
  navigator.clipboard.writeText(text);
} else {
  const ta = document.createElement("textarea");
  ta.value = text; ta.style.position = "fixed"; ta.style.opacity = "0";
  document.body.appendChild(ta); ta.select();
  try { document.execCommand("copy"); } finally { ta.remove(); }
}
"""


class CopyButton(pn.widgets.Button):
    """A button that copies a text field's value to the clipboard, in the browser.

    The copying is Bokeh's own CustomJS on the button's model, not Panel's ``js_on_click``: a
    Panel link on a page makes Panel look through every model of the page for links whenever
    any part of it changes (0.1 s of each drawing of the charts at 10M rows). The field must be
    drawn before the button (beside it, on its left)."""

    def __init__(self, field, **params):
        self._field = field
        super().__init__(**params)

    def _get_model(self, doc, root=None, parent=None, comm=None):
        model = super()._get_model(doc, root, parent, comm)
        field = self._field._models[(root or model).ref["id"]][0]
        model.js_on_event("button_click", CustomJS(args={"source": field}, code=_COPY_JS))
        return model


def copy_field(label: str, width: int = 380):
    """A text field with a Copy button beside it (which says "Copied ✓" once used, until the
    field's value changes); returns ``(row, text_widget)``."""
    text = pn.widgets.TextInput(label=label, value="", width=width, disabled=False,
                                stylesheets=["input {font-family: ui-monospace, monospace; font-size: 12px;}"])
    button = CopyButton(text, label="Copy", width=70, color="light", align="end",
                        description=f"copy the {label.lower()} to the clipboard")
    button.on_click(lambda _: setattr(button, "label", "Copied ✓"))
    text.param.watch(lambda _: setattr(button, "label", "Copy"), "value")
    return pn.Row(text, button, margin=(0, 0)), text


class Tabs(pn.Tabs):
    """Panel's Tabs, where only the open tab's content is visible, and a tab opened is acted on
    at once.

    The browser shows a tab's content itself when the tab is clicked (a CustomJS of Bokeh's, for
    the reason given in :class:`CopyButton`), not after a round trip through a server that may be
    busy; and the server hears of the click at once, where Panel holds a change coming from the
    page for 50 ms to gather others with it (a tab click comes alone)."""

    _priority_changes: ClassVar[list[str]] = ["active"]

    def _get_model(self, doc, root=None, parent=None, comm=None):
        model = super()._get_model(doc, root, parent, comm)
        model.js_on_change("active", CustomJS(args={"tabs": model}, code=(
            "tabs.tabs.forEach((tab, i) => { tab.child.visible = i === tabs.active; });")))
        return model
