"""The dashboard's sidebar: a target box, typed times, a cone search where the catalog offers
one, and facets with counts that filter on a click."""

from __future__ import annotations

import inspect
from html import escape
from typing import TYPE_CHECKING

from cosmoscope.errors import CosmoscopeError
from cosmoscope.ui.facets import FACETS, facet_items
from cosmoscope.ui.query import DEFAULT_RADIUS
from cosmoscope.ui.panel_components import FacetList

if TYPE_CHECKING:
    from cosmoscope.ui.dashboard import Dashboard
    from cosmoscope.ui.state import ViewState

_TIME_HELP = ("<span class='cs-muted'>Type a date, a date and time, a day of the year (2026-329) or an age "
              "(24h, 7d), then Enter.</span>")


def cone_search_available(cat) -> bool:
    """Whether the catalog's search takes a cone (``near=``, ``radius=``)."""
    return cat is not None and "near" in inspect.signature(type(cat).search).parameters


class FiltersPanel:
    """Every filter control; changes go to the dashboard as a new view state."""

    def __init__(self, dash: Dashboard):
        import panel as pn

        self.dash = dash
        self.target = pn.widgets.TextInput(label="Target", placeholder="NGC 253, NGC* or *253*",
                                           sizing_mode="stretch_width")
        self.start = pn.widgets.TextInput(label="From (UTC)", placeholder="2026-11-25, 2026-329, 7d",
                                          sizing_mode="stretch_width")
        self.end = pn.widgets.TextInput(label="To (UTC)", placeholder="2026-11-28 12:00; a date counts in full",
                                        sizing_mode="stretch_width")
        self.when = pn.pane.HTML(_TIME_HELP, sizing_mode="stretch_width", margin=(0, 10))
        self.near = pn.widgets.TextInput(label="Near (position or name)", placeholder="M31, 10.68 41.27, 00h42m +41d16m",
                                         sizing_mode="stretch_width")
        self.radius = pn.widgets.TextInput(label="Radius", placeholder=f"{DEFAULT_RADIUS}; 30arcmin, 2.5deg",
                                           sizing_mode="stretch_width")
        self.cone_note = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.cone = pn.Column(self.near, self.radius, self.cone_note, sizing_mode="stretch_width",
                              visible=cone_search_available(dash.catalog))
        self.facets = {f.field: FacetList(title=f.title, sizing_mode="stretch_width", margin=(4, 10))
                       for f in FACETS}
        self.clear = pn.widgets.Button(label="Clear all filters", color="light", sizing_mode="stretch_width")
        for w in (self.target, self.start, self.end, self.near, self.radius):
            w.param.watch(self._typed, "value")
        for name, facet in self.facets.items():
            facet.param.watch(lambda e, name=name: self._chosen(name, e.new), "selected")
        self.clear.on_click(lambda _: dash.clear_filters())
        self._quiet = False
        self._counted = None

    def panel(self) -> list:
        return [self.target, self.start, self.end, self.when, self.cone,
                *self.facets.values(), self.clear]

    def _typed(self, _event) -> None:
        if self._quiet:
            return
        self.dash.update(target=self.target.value.strip(), start=self.start.value.strip(),
                         end=self.end.value.strip(), near=self.near.value.strip(), radius=self.radius.value.strip())

    def _chosen(self, name: str, values: list) -> None:
        if self._quiet:
            return
        facet = next(f for f in FACETS if f.field == name)
        self.dash.update(**{name: tuple(facet.parse(v) for v in values)})

    def show(self, state: ViewState) -> None:
        """Set the controls to ``state`` without asking for anything."""
        self._quiet = True
        try:
            self.target.value, self.start.value, self.end.value = state.target, state.start, state.end
            self.near.value, self.radius.value = state.near, state.radius
            for name, facet in self.facets.items():
                facet.selected = [str(v) for v in getattr(state, name)]
        finally:
            self._quiet = False
        self.show_times(state)

    def show_times(self, state: ViewState) -> None:
        """Say how the typed times were read (or why they could not be)."""
        try:
            f = state.filters()
        except CosmoscopeError as exc:
            self.when.object = f"<span class='cs-error'>{escape(str(exc))}</span>"
            return
        if f.start is None and f.end is None:
            self.when.object = _TIME_HELP
            return
        parts = []
        if f.start is not None:
            parts.append(f"from {f.start:%Y-%m-%d %H:%M}")
        if f.end is not None:
            parts.append(f"before {f.end:%Y-%m-%d %H:%M}")
        bad = f.start is not None and f.end is not None and f.end <= f.start
        cls = "cs-error" if bad else "cs-muted"
        extra = " — the end is not after the start" if bad else ""
        self.when.object = f"<span class='{cls}'>Observations starting {' and '.join(parts)} UTC{extra}</span>"

    def show_cone(self, filters, error: str | None) -> None:
        """Say where the cone is (a name placed on the sky), or why it cannot be searched."""
        near = self.near.value.strip()
        if not near:
            self.cone_note.object = ""
        elif filters is None:
            self.cone_note.object = f"<span class='cs-error'>{escape(error or '')}</span>"
        else:
            try:
                ra, dec = self.dash.catalog.position_of(near)
            except CosmoscopeError as exc:
                self.cone_note.object = f"<span class='cs-error'>{escape(str(exc))}</span>"
                return
            self.cone_note.object = (f"<span class='cs-muted'>within {escape(filters.radius or DEFAULT_RADIUS)} of "
                                     f"RA {ra:.4f}°, Dec {dec:+.4f}°</span>")

    # -- counts ------------------------------------------------------------------------------

    def count_all(self, filters) -> dict[str, list[dict]]:
        """Every facet's items for ``filters`` (in the store; run it off the page's thread)."""
        return {f.field: facet_items(self.dash.catalog, f, filters) for f in FACETS}

    def show_counts(self, counted: dict[str, list[dict]], colors: dict[str, str]) -> None:
        for name, items in counted.items():
            if name == "missions":
                items = [dict(i, color=colors.get(i["value"])) for i in items]
            self.facets[name].items = items

    def counting(self) -> None:
        """Show the facets as being counted (keeping their values)."""
        for facet in self.facets.values():
            facet.items = [dict(i, n=None) for i in facet.items]
