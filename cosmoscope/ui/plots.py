"""Charts of the matching observations: observations over time per mission, quality
distribution, data volume per day, processing status per mission, and an all-sky map.

:func:`chart_data` reads the catalog's rollups when the filters allow (a few thousand rows
whatever the catalog's size), else only the few columns the charts need, with the search filters
pushed down to the store, in one scan, reduced by polars to the same small frames; the chart
functions draw those frames as Bokeh figures. The frames are useful on their own (they are what
the tests check).

Every chart colours a mission the same way (:func:`mission_colors`, from the catalog's whole
list of missions, so a filter never changes a colour), daily bins sit between day ticks, byte
axes pick their unit, and unreadable files, which have no score, stay out of the quality chart
and show as their own status.

Examples
--------
>>> from cosmoscope.ui.plots import chart_data, charts
>>> data = chart_data(cat, Filters(missions=("COSMOS-7",)))  # doctest: +SKIP
>>> charts(data)  # the five charts, two per row  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.ui.graph import STATUS_COLORS

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog
    from cosmoscope.ui.query import Filters

#: The only columns the charts read.
CHART_COLUMNS = ["mission_id", "observation_timestamp", "data_quality_score", "file_size", "processing_status",
                 "extraction_status", "ra", "dec", "target_object"]

#: Up to this many distinct positions are drawn as points; more are binned into a density map.
SKY_POINTS_MAX = 5_000
#: Positions are read (to find the distinct ones) only up to this many observations with one.
SKY_READ_MAX = 50_000
#: Size of a density-map cell, degrees: RA/Dec boxes, those of the catalog's sky rollup.
SKY_BIN_DEG = 3.0
#: Width of a quality histogram bin.
QUALITY_BIN = 0.05

#: Colour-blind-safe colours for missions (Okabe-Ito, then Tableau's); grey is for "no mission".
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#9C755F", "#EDC948", "#76B7B2", "#FF9DA7")
NO_MISSION = "(no mission)"
NO_MISSION_COLOR = "#adb5bd"

_PERIODS = [(62, "1d", "day"), (2 * 366, "1w", "week"), (25 * 366, "1mo", "month"), (None, "1y", "year")]
_EVERY = {p: e for _, e, p in _PERIODS}


def mission_colors(missions) -> dict[str, str]:
    """One colour per mission, the same in every chart and view.

    Each mission takes the palette slot its name hashes to, or the next free one (missions in
    name order), so a mission keeps its colour whatever else a catalog holds, until there are
    more missions than colours.

    >>> mission_colors(["LYRA"])["LYRA"] == mission_colors(["LYRA", "AURORA-2"])["LYRA"]
    True
    """
    out: dict[str, str] = {}
    taken: set[int] = set()
    for name in sorted({m for m in missions if m is not None and m != NO_MISSION}):
        slot = zlib.crc32(name.encode()) % len(PALETTE)
        for k in range(len(PALETTE)):
            if (slot + k) % len(PALETTE) not in taken or len(taken) >= len(PALETTE):
                slot = (slot + k) % len(PALETTE)
                break
        taken.add(slot)
        out[name] = PALETTE[slot]
    out[NO_MISSION] = NO_MISSION_COLOR
    return out


def catalog_colors(cat: Catalog) -> dict[str, str]:
    """:func:`mission_colors` of every mission of the catalog."""
    from cosmoscope.ui.query import distinct_values

    return mission_colors(distinct_values(cat, "mission_id"))


@dataclass
class ChartData:
    """Small frames the charts are drawn from."""

    total: int
    period: str  # "day", "week", "month" or "year": the bin of ``timeline``
    timeline: pl.DataFrame  # period, mission_id, n
    quality: pl.DataFrame  # bin (lower edge), n
    volume: pl.DataFrame  # day, bytes
    status: pl.DataFrame  # mission_id, processing_status (or "unreadable"), n
    sky: pl.DataFrame  # ra, dec, mission_id, target_object, n (points) or ra, dec, n (density cells, centres)
    sky_density: bool
    n_positions: int
    n_without_quality: int
    #: Mission -> colour (see :func:`mission_colors`).
    colors: dict[str, str] = field(default_factory=dict)
    #: Files that could not be read (they have no quality score).
    n_unreadable: int = 0

    def color(self, mission: str | None) -> str:
        return self.colors.get(mission or NO_MISSION) or mission_colors([mission]).get(mission, NO_MISSION_COLOR)


def chart_data(cat: Catalog, filters: Filters | None = None, *, colors: dict[str, str] | None = None) -> ChartData:
    """The :class:`ChartData` of the matching observations: from the rollups when the filters
    allow (a few thousand rows whatever the catalog's size, and the positions themselves when
    there are few), else from one pushed-down scan of :data:`CHART_COLUMNS` reduced by polars;
    the two give the same frames. ``colors``: the missions' colours when the caller has them
    (:func:`catalog_colors`, else read here)."""
    import polars as pl

    from cosmoscope.summaries import grouped, raw_grouped, route_of
    from cosmoscope.ui.query import Filters, filter_expr

    filters = filters or Filters()
    colors = colors if colors is not None else catalog_colors(cat)
    expr = filter_expr(cat, filters)
    r = route_of(cat, expr, _CHART_BY)
    if r.rollups and not r.counts_only:
        groups, r = raw_grouped(cat, expr, _CHART_BY)
    if not r.rollups or r.counts_only:  # (or scores outside 0-1: the rows say what to draw)
        return summarize(filters.frame(cat).select(CHART_COLUMNS).collect(), colors=colors)
    states = grouped(cat, expr, _STATE_BY, counts_only=True).select(*_STATE_BY, "n")
    sky = _sky_from_rollups(cat, r)
    if sky is None:
        sky = _sky_of(filters.frame(cat).select("mission_id", "ra", "dec").collect())
    points = None
    if int(sky["n"].sum() or 0) <= SKY_READ_MAX:
        points = (filters.frame(cat).filter(pl.col("ra").is_not_null() & pl.col("dec").is_not_null())
                  .select(_POINT_COLUMNS).collect())
    return _chart_data(groups, states, sky, points, colors)


#: What the charts group the observations by: the timeline, volume and quality...
_CHART_BY = ["day", "mission_id", "processing_status"]
#: ... and the status chart, where an unreadable file is its own status.
_STATE_BY = ["mission_id", "processing_status", "extraction_status"]
_POINT_COLUMNS = ["ra", "dec", "mission_id", "target_object"]


def summarize(df: pl.DataFrame, colors: dict[str, str] | None = None) -> ChartData:
    """The :class:`ChartData` of a frame holding (at least) :data:`CHART_COLUMNS` (the
    missions' colours are those of the frame's missions unless ``colors``)."""
    import polars as pl

    from cosmoscope.store.rollup import frame
    from cosmoscope.summaries import grouped_rows

    groups = grouped_rows(frame(df).lazy(), None, _CHART_BY)
    states = df.group_by(_STATE_BY).agg(pl.len().cast(pl.Int64).alias("n"))
    positions = df.filter(pl.col("ra").is_not_null() & pl.col("dec").is_not_null())
    points = positions.select(_POINT_COLUMNS) if positions.height <= SKY_READ_MAX else None
    colors = colors or mission_colors(df["mission_id"].unique().to_list())
    return _chart_data(groups, states, _sky_of(df), points, colors)


def _sky_of(df: pl.DataFrame) -> pl.DataFrame:
    """Observations per mission and sky cell, counted from rows."""
    from cosmoscope.store.rollup import SKY, frame

    return SKY.contributions(frame(df))


def _sky_from_rollups(cat: Catalog, r) -> pl.DataFrame | None:
    """The sky rollup's cells, when the route filters on nothing but the mission."""
    import polars as pl

    from cosmoscope.store.base import Agg, aggregate

    if any(c.column != "mission_id" for c in r.predicate.clauses):
        return None
    return pl.from_arrow(aggregate(cat.store, S.ROLLUP_SKY.name, ["mission_id", "ra_cell", "dec_cell"],
                                   [Agg("n", "isum", "n")], r.predicate)).filter(pl.col("n") > 0)


def _chart_data(groups: pl.DataFrame, states: pl.DataFrame, sky: pl.DataFrame, points: pl.DataFrame | None,
                colors: dict[str, str]) -> ChartData:
    """The chart frames from raw rollup measures per day, mission and processing status, counts
    per mission, processing and extraction status, sky cells per mission, and (when there are
    few) the positions themselves."""
    import polars as pl

    from cosmoscope.summaries import finish

    g = finish(groups, _CHART_BY)
    total = int(g["n"].sum() or 0)
    timed = g.filter(pl.col("day").is_not_null())
    every, period = "1d", "day"
    if timed.height:
        span = (timed["last_start"].max() - timed["first_observation"].min()).days
        every, period = next((e, p) for limit, e, p in _PERIODS if limit is None or span <= limit)
    mission = pl.col("mission_id").fill_null(NO_MISSION)
    day = pl.col("day").cast(pl.Datetime("us"))
    timeline = (timed.group_by(day.dt.truncate(every).alias("period"), mission).agg(pl.col("n").sum())
                .sort("period", "mission_id"))
    bins = [int(g[b].sum() or 0) for b in S.QUALITY_BINS]
    bins[-2:] = [bins[-2] + bins[-1]]  # 1.0 is drawn in the top bin
    nbins = len(bins)
    quality = pl.DataFrame({"bin": [round(k / nbins, 2) for k in range(nbins)], "n": bins},
                           schema={"bin": pl.Float64, "n": pl.Int64})
    volume = timed.group_by(day.alias("day")).agg(pl.col("total_bytes").sum().alias("bytes")).sort("day")
    unreadable = pl.col("extraction_status") == S.ExtractionStatus.ERROR.value
    state = pl.when(unreadable).then(pl.lit("unreadable")).otherwise(pl.col("processing_status").fill_null("(none)"))
    status = (states.group_by(mission, state.alias("processing_status")).agg(pl.col("n").sum())
              .sort("mission_id", "processing_status"))
    n_unreadable = int(states.filter(unreadable)["n"].sum() or 0)
    n_positions = int(sky["n"].sum() or 0)
    if points is not None:
        # Observations of one target share a position: one point each, sized by how many there are.
        points = (points.group_by(pl.col("ra").round(3), pl.col("dec").round(3), pl.col("target_object"))
                  .agg(pl.len().cast(pl.Int64).alias("n"), mission.mode().first().alias("mission_id"))
                  .sort("n", "ra", "dec", descending=[True, False, False]))
    density = points is None or points.height > SKY_POINTS_MAX
    if density:
        half = SKY_BIN_DEG / 2
        sky = (sky.group_by((pl.col("ra_cell") * SKY_BIN_DEG + half).alias("ra"),
                            (pl.col("dec_cell") * SKY_BIN_DEG + half).alias("dec")).agg(pl.col("n").sum())
               .sort("ra", "dec"))
    else:
        sky = points.select("ra", "dec", "mission_id", "target_object", "n")
    return ChartData(total=total, period=period, timeline=timeline, quality=quality, volume=volume,
                     status=status, sky=sky, sky_density=density, n_positions=n_positions,
                     n_without_quality=total - int(g["n_quality"].sum() or 0), colors=colors,
                     n_unreadable=n_unreadable)


# -- charts -------------------------------------------------------------------------------
#
# Drawn with Bokeh itself. Holoviews built the same figures three times slower (0.35 s of the
# dashboard's Charts tab, which has to open in under 0.8 s), and nothing here needs what it
# adds: the bars are stacked and binned above, in polars.

#: The tools of every chart but the sky map. The wheel zoom is there but not on: the mouse wheel
#: scrolls the page.
TOOLS = "pan,wheel_zoom,box_zoom,save,reset"
#: Counts on an axis: 1,600,000, not 1600000 or 1.6e+6.
_COUNT_FORMAT = "0,0"


def load_bokeh() -> None:
    """Put BokehJS, Panel's and holoviews' JavaScript into the notebook from the installed
    packages, and every chart's styles into the chart, so charts show without internet
    (holoviews' default loads the scripts, and Panel the styles, from CDNs)."""
    import holoviews as hv
    import panel as pn
    from panel.viewable import Viewable

    pn.config.inline = True
    if _inline_styles not in Viewable._preprocessing_hooks:
        Viewable._preprocessing_hooks.append(_inline_styles)
    hv.extension("bokeh", logo=False, inline=True)


def _inline_styles(viewable, root) -> None:
    """A Panel pre-processing hook: style sheets the models would fetch from Panel's CDN are put
    into them instead (as Panel itself does for its own objects shown in a notebook)."""
    from bokeh.models import UIElement
    from panel.io.notebook import patch_inline_stylesheets

    for model in root.select({"type": UIElement}):
        patch_inline_stylesheets(model)


def figure(title: str, *, xlabel: str | None = None, ylabel: str | None = None, tools=TOOLS, **opts):
    """A Bokeh figure of the charts' look and size: ``width`` and ``height`` in pixels, or
    ``responsive=True`` (as wide as its place, ``height`` high; ``min_height`` may be given);
    any other keyword goes to :func:`bokeh.plotting.figure` (``x_range``, ``x_axis_type``, ...)."""
    from bokeh.plotting import figure as bokeh_figure

    size = {k: v for k, v in opts.items() if k in _SIZES and v is not None}
    rest = {k: v for k, v in opts.items() if k not in _SIZES}
    if size.pop("responsive", False):
        size["sizing_mode"] = "stretch_width"
        size.pop("width", None)
        size.setdefault("height", 300)
    elif "sizing_mode" not in rest:
        size.setdefault("width", 560)
        size.setdefault("height", 300)
    fig = bokeh_figure(title=title, tools=tools, toolbar_location="right", active_scroll=None,
                       x_axis_label=xlabel, y_axis_label=ylabel, **size, **rest)
    fig.toolbar.logo = None
    return fig


_SIZES = ("width", "height", "responsive", "min_height", "min_width")


def _hover(fig, renderer, tooltips) -> None:
    from bokeh.models import HoverTool

    fig.add_tools(HoverTool(renderers=[renderer], tooltips=tooltips))


def _counts_on(axis) -> None:
    from bokeh.models import NumeralTickFormatter

    axis.formatter = NumeralTickFormatter(format=_COUNT_FORMAT)


def _legend_above(fig, renderer, labels) -> None:
    """A legend of ``renderer``, whose rows are labelled ``labels``, naming each label once in the
    order the rows first have it, in one line above the chart (it takes no width from the chart)."""
    from bokeh.models import Legend, LegendItem

    first: dict[str, int] = {}
    for i, label in enumerate(labels):
        first.setdefault(label, i)
    fig.add_layout(Legend(items=[LegendItem(label=label, renderers=[renderer], index=i) for label, i in first.items()],
                          orientation="horizontal", label_text_font_size="9pt", glyph_width=12, spacing=4, padding=2,
                          margin=0), "above")


def _empty(title: str, message: str = "No observations to chart", **opts):
    """A chart that says why there is nothing to draw."""
    from bokeh.models import Label

    fig = figure(title, tools="", x_range=(0, 1), y_range=(0, 1), **opts)
    fig.toolbar_location = None
    fig.axis.visible = fig.grid.visible = False
    fig.add_layout(Label(x=0.5, y=0.5, text=message, text_align="center", text_baseline="middle",
                         text_color="#495057"))
    return fig


def _time_axis(fig, period: str, first, last) -> None:
    """Ticks on bin edges (midnights for days), labelled as dates, never as hours of a day."""
    from bokeh.models import DatetimeTickFormatter, DaysTicker, MonthsTicker, YearsTicker

    days = max(1, (last - first).days + 1)
    if period == "day" and days <= 310:
        step = next(s for s in (1, 2, 3, 7, 14, 31) if days / s <= 10)
        ticker = DaysTicker(days=list(range(1, 32, step)) if step > 1 else list(range(1, 32)))
    elif period in ("day", "week", "month") and days <= 800:
        # At most about eight labels: two years of weekly bins labelled every month overlapped.
        step = next(s for s in (1, 2, 3, 6, 12) if days / 30.4 / s <= 8)
        ticker = MonthsTicker(months=list(range(0, 12, step)))
    elif period == "month":
        ticker = MonthsTicker(months=list(range(0, 12, max(1, round(days / 30 / 10)))))
    else:
        ticker = YearsTicker()
    fig.xaxis.ticker = ticker
    fig.xaxis.formatter = DatetimeTickFormatter(days="%d %b", months="%b %Y", years="%Y", hours="%d %b %H:%M")


def _bin_edges(period: str, start):
    """The end of the bin of ``period`` that starts at ``start``."""
    if period == "day":
        return start + dt.timedelta(days=1)
    if period == "week":
        return start + dt.timedelta(days=7)
    if period == "month":
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start.replace(year=start.year + 1)


def timeline_chart(data: ChartData, *, legend: bool = True, **opts):
    """Observations per day/week/month/year, a stacked bar per bin, coloured by mission (a legend
    naming the missions above it unless ``legend=False``)."""
    import polars as pl

    title = f"Observations per {data.period}"
    if data.timeline.height == 0:
        return _empty(title, **opts)
    tl = data.timeline.sort("period", "mission_id").with_columns(
        pl.col("n").cum_sum().over("period").alias("top"))
    tl = tl.with_columns((pl.col("top") - pl.col("n")).alias("base"),
                         pl.col("period").map_elements(lambda t: _bin_edges(data.period, t),
                                                       return_dtype=pl.Datetime("us")).alias("end"))
    tl = tl.sort("mission_id", "period")  # (the legend names the missions in this order)
    first, last = tl["period"].min(), tl["end"].max()
    fig = figure(title, xlabel="start (UTC)", ylabel="observations", x_axis_type="datetime", x_range=(first, last),
                 y_range=(0, int(tl["top"].max() or 1) * 1.08), **opts)
    source = {"start": tl["period"].to_numpy(), "end": tl["end"].to_numpy(), "base": tl["base"].to_numpy(),
              "top": tl["top"].to_numpy(), "mission": tl["mission_id"].to_list(), "observations": tl["n"].to_numpy(),
              "color": [data.color(m) for m in tl["mission_id"]],
              "bin": [_period_label(data.period, t) for t in tl["period"]]}
    bars = fig.quad(left="start", right="end", bottom="base", top="top", color="color", line_color="white",
                    line_width=0.5, source=source)
    _hover(fig, bars, [("mission", "@mission"), (data.period, "@bin"), ("observations", "@observations")])
    _time_axis(fig, data.period, first, last)
    _counts_on(fig.yaxis)
    if legend:
        _legend_above(fig, bars, source["mission"])
    return fig


def _period_label(period: str, t) -> str:
    return t.strftime({"day": "%Y-%m-%d", "week": "week of %Y-%m-%d", "month": "%Y-%m"}.get(period, "%Y"))


def quality_chart(data: ChartData, **opts):
    """How many observations fall in each quality band (0.05 wide); files without a score
    (unreadable ones) are left out and counted in the title."""
    title = "Quality distribution"
    if data.total == data.n_without_quality:
        return _empty(title, "No quality scores to chart", **opts)
    if data.n_without_quality:
        title += f" ({data.n_without_quality:,} without a score)"
    low = data.quality["bin"].to_list()
    n = data.quality["n"].to_list()
    fig = figure(title, xlabel="quality score", ylabel="observations", x_range=(0, 1),
                 y_range=(0, max(max(n), 1) * 1.08), **opts)
    source = {"low": low, "high": [round(b + QUALITY_BIN, 2) for b in low], "observations": n,
              "band": [f"{b:.2f}-{b + QUALITY_BIN:.2f}" for b in low]}
    bars = fig.quad(left="low", right="high", bottom=0, top="observations", color="#4c72b0", line_color="white",
                    line_width=1, source=source)
    _hover(fig, bars, [("quality", "@band"), ("observations", "@observations")])
    _counts_on(fig.yaxis)
    return fig


#: Byte units for axes: (divisor, name).
_BYTE_UNITS = [(1, "B"), (1e3, "kB"), (1e6, "MB"), (1e9, "GB"), (1e12, "TB"), (1e15, "PB")]


def byte_unit(largest: float) -> tuple[float, str]:
    """The unit an axis whose largest value is ``largest`` bytes reads best in.

    >>> byte_unit(3_400_000)
    (1000000.0, 'MB')
    """
    return next(((d, u) for d, u in reversed(_BYTE_UNITS) if largest >= d), _BYTE_UNITS[0])


def volume_chart(data: ChartData, **opts):
    """Bytes of data observed per day (per week, month or year over longer spans, as the
    observations chart), in the unit that suits the largest bin."""
    import polars as pl
    from bokeh.models import PrintfTickFormatter

    title = f"Data volume per {data.period}"
    if data.volume.height == 0:
        return _empty(title, **opts)
    volume = data.volume
    if data.period != "day":
        volume = (volume.group_by(pl.col("day").dt.truncate(_EVERY[data.period])).agg(pl.col("bytes").sum())
                  .sort("day"))
    div, unit = byte_unit(float(volume["bytes"].max() or 0))
    ends = [_bin_edges(data.period, d) for d in volume["day"]]
    first, last = volume["day"].min(), ends[-1]
    fig = figure(title, xlabel="start (UTC)", ylabel=f"data volume ({unit})", x_axis_type="datetime",
                 x_range=(first, last), y_range=(0, float(volume["bytes"].max() or 1) / div * 1.08), **opts)
    source = {"day": volume["day"].to_numpy(), "end": ends, "volume": (volume["bytes"] / div).to_numpy(),
              "date": [_period_label(data.period, d) for d in volume["day"]],
              "size": [_human(b) for b in volume["bytes"]]}
    bars = fig.quad(left="day", right="end", bottom=0, top="volume", color="#dd8452", line_color="white",
                    line_width=0.5, source=source)
    _hover(fig, bars, [(data.period, "@date"), ("volume", "@size")])
    _time_axis(fig, data.period, first, last)
    fig.yaxis.formatter = PrintfTickFormatter(format="%.3g")
    return fig


def _human(n) -> str:
    from cosmoscope.ui.columns import human_bytes

    return human_bytes(n)


def status_chart(data: ChartData, *, legend: bool = True, **opts):
    """Processing status per mission (unreadable files apart), a stacked bar per mission (a
    legend naming the statuses above it unless ``legend=False``)."""
    import polars as pl

    title = "Processing status by mission"
    if data.status.height == 0:
        return _empty(title, **opts)
    statuses = [s.value for s in S.ProcessingStatus] + ["unreadable"]
    present = data.status["processing_status"].unique().to_list()
    order = [s for s in statuses if s in present] + sorted(s for s in present if s not in statuses)
    rank = pl.col("processing_status").replace_strict(order, list(range(len(order))), return_dtype=pl.Int64)
    bars = (data.status.sort("mission_id", rank)
            .with_columns(pl.col("n").cum_sum().over("mission_id").alias("right"))
            .with_columns((pl.col("right") - pl.col("n")).alias("left")).sort(rank, "mission_id"))
    missions = sorted(bars["mission_id"].unique().to_list(), reverse=True)  # the first at the top
    fig = figure(title, xlabel="observations", ylabel="mission", y_range=missions,
                 x_range=(0, int(bars["right"].max() or 1) * 1.05), **opts)
    source = {"mission": bars["mission_id"].to_list(), "status": bars["processing_status"].to_list(),
              "left": bars["left"].to_numpy(), "right": bars["right"].to_numpy(),
              "observations": bars["n"].to_numpy(),
              "color": [STATUS_COLORS.get(s, STATUS_COLORS[None]) for s in bars["processing_status"]]}
    drawn = fig.hbar(y="mission", left="left", right="right", height=0.8, color="color", line_color="white",
                     source=source)
    _hover(fig, drawn, [("mission", "@mission"), ("status", "@status"), ("observations", "@observations")])
    _counts_on(fig.xaxis)
    fig.ygrid.visible = False
    if legend:
        _legend_above(fig, drawn, source["status"])
    return fig


def sky_chart(data: ChartData, **opts):
    """The observed sky on an all-sky projection (see :mod:`cosmoscope.ui.skymap`)."""
    from cosmoscope.ui.skymap import sky_map

    return sky_map(data, **opts)


#: The chart functions by name. Each takes a :class:`ChartData` and sizes (``width``,
#: ``height``, or ``responsive``; see :func:`figure`) and returns a Bokeh figure.
CHARTS = {"timeline": timeline_chart, "quality": quality_chart, "volume": volume_chart,
          "status": status_chart, "sky": sky_chart}


def charts(data: ChartData, *, width: int = 560, height: int = 300, **opts):
    """All five charts, two per row (a Panel GridBox: it shows in a notebook, and ``[k].object``
    is the k-th chart's Bokeh figure)."""
    import panel as pn

    return pn.GridBox(*(pn.pane.Bokeh(fn(data, width=width, height=height, **opts)) for fn in CHARTS.values()),
                      ncols=2)
