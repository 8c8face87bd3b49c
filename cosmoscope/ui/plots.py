"""hvplot charts of the matching observations: observations over time per mission, quality
distribution, data volume per day, processing status per mission, and sky positions.

:func:`chart_data` reads only the few columns the charts need, with the search filters pushed
down to the store, in one scan, and reduces them with polars to small frames (a few thousand rows
at most whatever the catalog's size); the chart functions draw those frames. The frames are
useful on their own (they are what the tests check).

Examples
--------
>>> from cosmoscope.ui.plots import chart_data, charts
>>> data = chart_data(cat, Filters(missions=("COSMOS-7",)))  # doctest: +SKIP
>>> charts(data)  # a holoviews Layout of the five charts  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.ui.graph import STATUS_COLORS

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog
    from cosmoscope.ui.query import Filters

#: The only columns the charts read.
CHART_COLUMNS = ["mission_id", "observation_timestamp", "data_quality_score", "file_size", "processing_status",
                 "ra", "dec"]

#: Up to this many positions are drawn as points; more are binned into a density map.
SKY_POINTS_MAX = 5_000
#: Size of a density-map cell, degrees.
SKY_BIN_DEG = 3.0
#: Width of a quality histogram bin.
QUALITY_BIN = 0.05

#: Whole-number axis labels with thousands separators instead of 1.2e+5.
_COUNT = "%d"

_PERIODS = [(62, "1d", "day"), (2 * 366, "1w", "week"), (25 * 366, "1mo", "month"), (None, "1y", "year")]
_EVERY = {p: e for _, e, p in _PERIODS}


@dataclass
class ChartData:
    """Small frames the charts are drawn from."""

    total: int
    period: str  # "day", "week", "month" or "year": the bin of ``timeline``
    timeline: pl.DataFrame  # period, mission_id, n
    quality: pl.DataFrame  # bin (lower edge), n
    volume: pl.DataFrame  # day, bytes
    status: pl.DataFrame  # mission_id, processing_status, n
    sky: pl.DataFrame  # ra, dec, mission_id (points) or ra, dec, n (density cells, centres)
    sky_density: bool
    n_positions: int
    n_without_quality: int


def chart_data(cat: Catalog, filters: Filters | None = None) -> ChartData:
    """The :class:`ChartData` of the matching observations: from the rollups when the filters
    allow (a few thousand rows whatever the catalog's size), else from one pushed-down scan of
    :data:`CHART_COLUMNS` reduced by polars; the two give the same frames."""
    import polars as pl

    from cosmoscope.summaries import raw_grouped, route_of
    from cosmoscope.ui.query import Filters, filter_expr

    filters = filters or Filters()
    expr = filter_expr(filters)
    r = route_of(cat, expr, _CHART_BY)
    if not r.rollups or r.counts_only:
        return summarize(filters.frame(cat).select(CHART_COLUMNS).collect())
    groups, r = raw_grouped(cat, expr, _CHART_BY)
    if not r.rollups:  # scores outside 0-1: the rows say what to draw
        return summarize(filters.frame(cat).select(CHART_COLUMNS).collect())
    sky = _sky_from_rollups(cat, r)
    if sky is None:
        sky = _sky_of(filters.frame(cat).select("mission_id", "ra", "dec").collect())
    points = None
    if int(sky["n"].sum() or 0) <= SKY_POINTS_MAX:
        points = (filters.frame(cat).filter(pl.col("ra").is_not_null() & pl.col("dec").is_not_null())
                  .select("ra", "dec", "mission_id").collect())
    return _chart_data(groups, sky, points)


#: What the charts group the observations by.
_CHART_BY = ["day", "mission_id", "processing_status"]


def summarize(df: pl.DataFrame) -> ChartData:
    """The :class:`ChartData` of a frame holding (at least) :data:`CHART_COLUMNS`."""
    import polars as pl

    from cosmoscope.store.rollup import frame
    from cosmoscope.summaries import grouped_rows

    groups = grouped_rows(frame(df).lazy(), None, _CHART_BY)
    positions = df.filter(pl.col("ra").is_not_null() & pl.col("dec").is_not_null())
    points = positions.select("ra", "dec", "mission_id") if positions.height <= SKY_POINTS_MAX else None
    return _chart_data(groups, _sky_of(df), points)


def _sky_of(df: pl.DataFrame) -> pl.DataFrame:
    """Observations per mission and sky cell, counted from rows."""
    from cosmoscope.store.rollup import SKY, frame

    return SKY.contributions(frame(df))


def _sky_from_rollups(cat: Catalog, r) -> pl.DataFrame | None:
    """The sky rollup's cells, when the route filters on nothing but the mission."""
    import polars as pl

    from cosmoscope import schema as S
    from cosmoscope.store.base import Agg, aggregate

    if any(c.column != "mission_id" for c in r.predicate.clauses):
        return None
    return pl.from_arrow(aggregate(cat.store, S.ROLLUP_SKY.name, ["mission_id", "ra_cell", "dec_cell"],
                                   [Agg("n", "isum", "n")], r.predicate)).filter(pl.col("n") > 0)


def _chart_data(groups: pl.DataFrame, sky: pl.DataFrame, points: pl.DataFrame | None) -> ChartData:
    """The chart frames from raw rollup measures per day, mission and processing status, sky
    cells per mission, and (when there are few) the positions themselves."""
    import polars as pl

    from cosmoscope.summaries import finish

    g = finish(groups, _CHART_BY)
    total = int(g["n"].sum() or 0)
    timed = g.filter(pl.col("day").is_not_null())
    every, period = "1d", "day"
    if timed.height:
        span = (timed["last_start"].max() - timed["first_observation"].min()).days
        every, period = next((e, p) for limit, e, p in _PERIODS if limit is None or span <= limit)
    mission = pl.col("mission_id").fill_null("(unknown)")
    day = pl.col("day").cast(pl.Datetime("us"))
    timeline = (timed.group_by(day.dt.truncate(every).alias("period"), mission).agg(pl.col("n").sum())
                .sort("period", "mission_id"))
    bins = [int(g[b].sum() or 0) for b in S.QUALITY_BINS]
    bins[-2:] = [bins[-2] + bins[-1]]  # 1.0 is drawn in the top bin
    nbins = len(bins)
    quality = pl.DataFrame({"bin": [round(k / nbins, 2) for k in range(nbins)], "n": bins},
                           schema={"bin": pl.Float64, "n": pl.Int64})
    volume = (timed.group_by(day.alias("day")).agg(pl.col("total_bytes").sum().alias("bytes")).sort("day"))
    status = (g.group_by(mission, pl.col("processing_status").fill_null("(none)")).agg(pl.col("n").sum())
              .sort("mission_id", "processing_status"))
    n_positions = int(sky["n"].sum() or 0)
    density = n_positions > SKY_POINTS_MAX
    if density:
        half = SKY_BIN_DEG / 2
        sky = (sky.group_by((pl.col("ra_cell") * SKY_BIN_DEG + half).alias("ra"),
                            (pl.col("dec_cell") * SKY_BIN_DEG + half).alias("dec")).agg(pl.col("n").sum())
               .sort("ra", "dec"))
    else:
        sky = points.select("ra", "dec", mission) if points is not None else pl.DataFrame(
            schema={"ra": pl.Float64, "dec": pl.Float64, "mission_id": pl.String})
    return ChartData(total=total, period=period, timeline=timeline, quality=quality, volume=volume,
                     status=status, sky=sky, sky_density=density, n_positions=n_positions,
                     n_without_quality=total - int(g["n_quality"].sum() or 0))


# -- charts -------------------------------------------------------------------------------

def _hv():
    import holoviews as hv
    import hvplot.pandas  # noqa: F401  - registers .hvplot on pandas frames

    if not hv.Store.renderers:
        hv.extension("bokeh", logo=False)
    return hv


def _empty(title: str, message: str = "No observations to chart", **opts):
    hv = _hv()
    size = {k: v for k, v in opts.items() if k in ("width", "height", "responsive")}
    return hv.Text(0.5, 0.5, message).opts(title=title, xaxis=None, yaxis=None, toolbar=None,
                                           xlim=(0, 1), ylim=(0, 1), **size)


def _fill_gaps(df: pl.DataFrame, column: str, every: str) -> pl.DataFrame:
    """Add the empty bins between the first and last as zeros, so areas drop to zero there."""
    return df.upsample(column, every=every).fill_null(0)


def _pandas(df: pl.DataFrame):
    return df.to_pandas()


def timeline_chart(data: ChartData, **opts):
    """Observations per day/week/month, stacked by mission."""
    import polars as pl

    title = f"Observations per {data.period}"
    if data.timeline.height == 0:
        return _empty(title, **opts)
    wide = _fill_gaps(data.timeline.pivot(on="mission_id", index="period", values="n").sort("period"), "period",
                      _EVERY[data.period])
    missions = [c for c in wide.columns if c != "period"]
    _hv()
    peak = wide.select(pl.sum_horizontal(missions).max()).item() or 1
    return _pandas(wide.with_columns(pl.col(missions).cast(pl.Int64))).hvplot.area(
        x="period", y=missions, stacked=True, title=title, xlabel="start (UTC)", ylabel="observations",
        group_label="mission", legend="top", line_width=0, alpha=0.85, ylim=(0, peak * 1.05),
        yformatter=_COUNT, **opts)


def quality_chart(data: ChartData, **opts):
    """How many observations fall in each quality band (0.05 wide)."""
    import polars as pl

    title = "Quality distribution"
    if data.total == data.n_without_quality:
        return _empty(title, "No quality scores to chart", **opts)
    _hv()
    df = data.quality.with_columns(pl.format("{}", pl.col("bin").round(2)).alias("quality"))
    if data.n_without_quality:
        title += f" ({data.n_without_quality:,} without a score)"
    return _pandas(df).hvplot.bar(x="quality", y="n", title=title, xlabel="quality score (lower edge)",
                                  ylabel="observations", color="#4c72b0", rot=90,
                                  yformatter=_COUNT, **opts)


def volume_chart(data: ChartData, **opts):
    """Bytes of data observed per day."""
    import polars as pl

    title = "Data volume per day"
    if data.volume.height == 0:
        return _empty(title, **opts)
    _hv()
    df = _fill_gaps(data.volume, "day", "1d").with_columns((pl.col("bytes") / 1e9).alias("GB"))
    return _pandas(df).hvplot.area(x="day", y="GB", title=title, xlabel="day (UTC)", ylabel="GB",
                                   color="#dd8452", line_width=0, yformatter="%.0f", **opts)


def status_chart(data: ChartData, **opts):
    """Processing status per mission, stacked bars."""
    title = "Processing status by mission"
    if data.status.height == 0:
        return _empty(title, **opts)
    _hv()
    statuses = [s.value for s in S.ProcessingStatus]
    present = data.status["processing_status"].unique().to_list()
    order = [s for s in statuses if s in present] + sorted(s for s in present if s not in statuses)
    wide = data.status.pivot(on="processing_status", index="mission_id", values="n").fill_null(0)
    colors = [STATUS_COLORS.get(s, STATUS_COLORS[None]) for s in order]
    return _pandas(wide.select("mission_id", *order)).hvplot.barh(
        x="mission_id", y=order, stacked=True, title=title, xlabel="mission", ylabel="observations",
        color=colors, legend="top", group_label="status", xformatter=_COUNT, **opts)


def sky_chart(data: ChartData, **opts):
    """RA/Dec of the observations that have them: points, or a density map when there are many."""
    if data.n_positions == 0:
        return _empty("Sky positions", "No RA/Dec known for these observations", **opts)
    _hv()
    common = dict(x="ra", y="dec", xlabel="RA (deg)", ylabel="Dec (deg)", xlim=(0, 360), ylim=(-90, 90),
                  flip_xaxis=True)
    if data.sky_density:
        title = f"Sky density ({data.n_positions:,} positions, {SKY_BIN_DEG:g}° cells)"
        return _pandas(data.sky).hvplot.points(
            **common, c="n", cmap="viridis", marker="square", size=9, title=title, colorbar=True,
            clabel="observations", **opts)
    title = f"Sky positions ({data.n_positions:,})"
    return _pandas(data.sky.rename({"mission_id": "mission"})).hvplot.points(
        **common, by="mission", size=12, alpha=0.7, title=title, legend="top", **opts)


#: The chart functions by name. Each takes a :class:`ChartData` and hvplot options (``width``,
#: ``height``, ``responsive``, ...) and returns a holoviews object.
CHARTS = {"timeline": timeline_chart, "quality": quality_chart, "volume": volume_chart,
          "status": status_chart, "sky": sky_chart}


def charts(data: ChartData, *, width: int = 560, height: int = 300, **opts):
    """All five charts as a holoviews Layout, two per row."""
    hv = _hv()
    # Separate axes: the charts share dimension names ("observations") but not scales.
    return hv.Layout([fn(data, width=width, height=height, **opts) for fn in CHARTS.values()]).cols(2).opts(
        shared_axes=False)
