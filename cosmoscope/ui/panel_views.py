"""The dashboard's Charts, Summary and Problems tabs."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.ui.graph import STATUS_COLORS
from cosmoscope.ui.panel_lineage import note

if TYPE_CHECKING:
    from cosmoscope.ui.dashboard import Dashboard
    from cosmoscope.ui.plots import ChartData
    from cosmoscope.ui.problems import ProblemGroup
    from cosmoscope.ui.query import Filters

#: Height of every chart of the grid, pixels.
CHART_HEIGHT = 300


def swatches(items) -> str:
    """A legend line: ``[(label, colour)]`` as coloured squares with their labels."""
    return "".join(f"<span class='cs-swatch'><i style='background:{c}'></i>{escape(str(label))}</span>"
                   for label, c in items)


class ChartsView:
    """Observations over time, data volume, quality, statuses, and the all-sky map."""

    def __init__(self, dash: Dashboard):
        import panel as pn

        self.dash = dash
        self.caption = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["cs-muted"])
        self.legend = pn.pane.HTML("", sizing_mode="stretch_width")
        self.grid = pn.Column(sizing_mode="stretch_width")
        self.data: ChartData | None = None
        #: The sky map's dots (a Bokeh ColumnDataSource), which clicks act on.
        self.sky_dots = None
        self.panel = pn.Column(self.caption, self.legend, self.grid, sizing_mode="stretch_width")

    def drawing(self) -> None:
        self.caption.object = "Drawing charts…"

    def show(self, data, filters: Filters) -> None:
        import panel as pn

        from cosmoscope.ui import plots

        self.data = data if not isinstance(data, Exception) else None
        if isinstance(data, Exception):
            self.caption.object, self.legend.object, self.grid.objects = note(str(data)), "", []
            return
        if data.total == 0:
            self.caption.object = note(f"No observations match {filters.describe()}, so there is nothing to chart."
                                       if filters.active else "This catalog is empty: nothing to chart yet.")
            self.legend.object, self.grid.objects = "", []
            return
        self.caption.object = (f"Charts of the {data.total:,} observations matching {escape(filters.describe())}."
                               if filters.active else f"Charts of all {data.total:,} observations.")
        missions = sorted(data.timeline["mission_id"].unique().to_list() or data.status["mission_id"].unique())
        states = [s for s in [*(v.value for v in S.ProcessingStatus), "unreadable"]
                  if s in set(data.status["processing_status"])]
        self.legend.object = (f"<div class='cs-legend'><b>missions</b> {swatches((m, data.color(m)) for m in missions)}"
                              f"<b>status</b> {swatches((s, STATUS_COLORS.get(s, STATUS_COLORS[None])) for s in states)}"
                              "</div>")

        size = {"responsive": True, "height": CHART_HEIGHT}
        cells = [pn.pane.Bokeh(fig, sizing_mode="stretch_width") for fig in (
            plots.timeline_chart(data, legend=False, **size), plots.volume_chart(data, **size),
            plots.quality_chart(data, **size), plots.status_chart(data, legend=False, **size))]
        sky = plots.sky_chart(data, responsive=True, min_height=360)
        self.sky_pane = pn.pane.Bokeh(sky, sizing_mode="stretch_width", min_height=380)
        self.sky_dots = self._tap(sky)
        rows = [pn.Row(*cells[i:i + 2], sizing_mode="stretch_width") for i in (0, 2)]
        self.grid.objects = [self.sky_pane, *rows]

    def _tap(self, sky):
        """Clicking the map filters on what was clicked: a target's dot on that target, a density
        cell on a cone around it (where the catalog searches cones). The dots' data, or None."""
        from cosmoscope.ui.skymap import DOTS

        dots = next((r for r in sky.renderers if r.name == DOTS), None)
        if dots is None:
            return None
        source = dots.data_source
        source.selected.on_change("indices", lambda _attr, _old, index: self.pick(source, index))
        return source

    def pick(self, dots, index) -> None:
        """Filter on the clicked target or density cell (``dots``: the map's dots' data source,
        ``index``: the clicked ones' positions in it)."""
        if not index:
            return
        row = {k: v[index[0]] for k, v in dots.data.items()}
        if "target" in row:
            if row["target"] and row["target"] != "(no target)":
                self.dash.update(target=row["target"], tab="search")
            return
        from cosmoscope.ui.panel_filters import cone_search_available
        from cosmoscope.ui.plots import SKY_BIN_DEG

        if cone_search_available(self.dash.catalog):  # a cone as wide as the cell
            self.dash.update(near=f"{row['ra']:.2f} {row['dec']:+.2f}", radius=f"{SKY_BIN_DEG:.2f}deg", tab="search")


class SummaryView:
    """Per mission: observations, size, time span, quality, calibrated, unreadable, statuses."""

    def __init__(self, dash: Dashboard):
        import panel as pn

        self.dash = dash
        self.caption = pn.pane.HTML("", sizing_mode="stretch_width")
        self.table = pn.widgets.Tabulator(None, disabled=True, show_index=False, sizing_mode="stretch_width",
                                          layout="fit_data_table")
        self.panel = pn.Column(self.caption, self.table, sizing_mode="stretch_width")

    def show(self, summary) -> None:
        import polars as pl

        from cosmoscope.ui.columns import human_bytes

        s = summary
        if s.height == 0:
            self.caption.object = note("This catalog is empty: no missions to summarise yet.")
            self.table.value = None
            return
        n, size = int(s["n_datasets"].sum()), int(s["total_bytes"].sum())
        errors = int(s["n_extraction_errors"].sum())
        self.caption.object = (f"<p class='cs-caption'><b>{n:,}</b> observations from <b>{s.height}</b> "
                               f"mission{'s' if s.height != 1 else ''}, <b>{human_bytes(size)}</b> in all"
                               + (f"; <b>{errors:,}</b> files cannot be read (they have no quality score)"
                                  if errors else "") + ".</p>")
        counts = [pl.when(pl.col(f"n_{st.value}") > 0).then(pl.format(f"{st.value} {{}}", pl.col(f"n_{st.value}")))
                  for st in S.ProcessingStatus]
        table = s.select(
            pl.col("mission_id").fill_null("(no mission)").alias("mission"), pl.col("n_datasets").alias("observations"),
            pl.col("total_bytes").map_elements(human_bytes, return_dtype=pl.String).alias("size"),
            pl.col("first_observation").dt.strftime("%Y-%m-%d %H:%M").alias("first start (UTC)"),
            pl.col("last_observation").dt.strftime("%Y-%m-%d %H:%M").alias("last end (UTC)"),
            pl.format("{} / {}", pl.col("mean_quality").round(2), pl.col("min_quality").round(2))
            .alias("quality mean / min"),
            pl.col("n_calibrated").alias("calibrated"), pl.col("n_extraction_errors").alias("unreadable"),
            pl.concat_str(counts, separator=", ", ignore_nulls=True).alias("processing status"))
        self.table.value = table.to_pandas()


_SEVERITY_TITLES = {"error": ("Errors", "the data cannot be used until these are mended"),
                    "warning": ("Warnings", "the data can be read, but their metadata need a look")}


class ProblemsView:
    """What is wrong, in sentences, worst first, each with the command that mends it."""

    def __init__(self, dash: Dashboard):
        import panel as pn

        self.dash = dash
        self.badges = pn.pane.HTML("", sizing_mode="stretch_width")
        self.groups = pn.Column(sizing_mode="stretch_width")
        self.panel = pn.Column(self.badges, self.groups, sizing_mode="stretch_width")

    def loading(self) -> None:
        self.badges.object = "<p class='cs-muted'>Looking for problems…</p>"

    def show_counts(self, counts: dict[str, int], filters: Filters) -> bool:
        """Show the number of each kind; True when there is anything to list."""
        badges = "".join(f"<span class='cs-badge{' cs-bad' if n else ''}'>{escape(k)} <b>{n:,}</b></span>"
                         for k, n in counts.items())
        scope = f" among the observations matching {escape(filters.describe())}" if filters.active else ""
        if not any(counts.values()):
            self.badges.object = badges + (f"<div class='cs-ok'>No problems{scope}: every file was read, and "
                                           "every validated file was found as it was cataloged.</div>")
            self.groups.objects = []
            return False
        self.badges.object = badges
        return True

    def show_groups(self, groups: list[ProblemGroup]) -> None:
        import panel as pn

        from cosmoscope.ui.problems import FILES_SHOWN

        objects = []
        for severity in ("error", "warning"):
            mine = [g for g in groups if g.severity == severity]
            if not mine:
                continue
            title, words = _SEVERITY_TITLES[severity]
            objects.append(pn.pane.HTML(f"<h4 class='cs-sev cs-sev-{severity}'>{title} "
                                        f"<span class='cs-muted'>— {words}</span></h4>", sizing_mode="stretch_width"))
            for k, g in enumerate(mine):
                objects.append(pn.Card(pn.pane.HTML(_group_html(g, FILES_SHOWN), sizing_mode="stretch_width"),
                                       title=f"{g.sentence}  ({_missions(g)})", collapsed=bool(objects and k),
                                       sizing_mode="stretch_width", margin=(4, 0),
                                       header_background="#fff5f5" if severity == "error" else "#fff9db"))
        if objects:  # the largest group of the worst severity opens by itself
            first = next(o for o in objects if isinstance(o, pn.Card))
            first.collapsed = False
        self.groups.objects = objects


def _missions(g: ProblemGroup) -> str:
    return ", ".join(f"{m} {n:,}" for m, n in g.by_mission.items())


def _group_html(g: ProblemGroup, shown: int) -> str:
    details = any(g.details)
    rows = "".join(
        f"<tr><td><code>{escape(p.rsplit('/', 1)[-1])}</code></td><td class='cs-muted'>{escape(m or '')}</td>"
        + (f"<td>{escape(d)}</td>" if details else "") + f"<td class='cs-path'>{escape(p.rsplit('/', 1)[0])}</td></tr>"
        for p, m, d in list(zip(g.paths, g.missions, g.details))[:shown])
    more = f"<p class='cs-muted'>… and {g.n - shown:,} more</p>" if g.n > shown else ""
    head = "<th>file</th><th>mission</th>" + ("<th>detail</th>" if details else "") + "<th>directory</th>"
    return (f"<p>{escape(g.advice)}</p><pre class='cs-cmd'>{escape(g.command)}</pre>"
            f"<table class='cs-kv'><tr>{head}</tr>{rows}</table>{more}")
