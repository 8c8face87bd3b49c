"""The charts: the small frames they are drawn from, checked against polars on the same
rows in memory, and the charts themselves as Bokeh figures."""

from __future__ import annotations

import datetime as dt
import json
import logging

import polars as pl
import pytest
from bokeh.embed import json_item
from bokeh.models import Label

import cosmoscope
from cosmoscope.ui import plots
from cosmoscope.ui.query import Filters
from tests.test_ui_widgets import build_catalog

UTC = dt.timezone.utc


@pytest.fixture
def cat(tmp_path):
    c, _ = build_catalog(f"sqlite://{tmp_path}/ui.sqlite")
    yield c
    c.close()


def test_chart_frames_match_polars_on_the_same_rows(cat):
    df = cat.observations().collect()
    data = plots.chart_data(cat)
    assert data.total == df.height
    assert data.period == "day"  # the test rows span 20 days

    timed = df.filter(pl.col("observation_timestamp").is_not_null())
    per_mission = dict(data.timeline.group_by("mission_id").agg(pl.col("n").sum()).iter_rows())
    assert per_mission == dict(timed.group_by("mission_id").len().iter_rows())
    tie_day = data.timeline.filter((pl.col("period") == dt.datetime(2026, 11, 10)) & (pl.col("mission_id") == "LYRA"))
    assert tie_day["n"].item() == timed.filter(
        (pl.col("observation_timestamp").dt.date() == dt.date(2026, 11, 10)) & (pl.col("mission_id") == "LYRA")).height

    q = df["data_quality_score"].drop_nulls()
    assert data.quality.height == 20 and data.quality["n"].sum() == q.len()
    assert data.n_without_quality == df.height - q.len()
    assert data.quality.filter(pl.col("bin") == 0.95)["n"].item() == q.filter(q >= 0.95).len()
    assert data.quality.filter(pl.col("bin") == 0.5)["n"].item() == q.filter((q >= 0.5) & (q < 0.55)).len()

    assert data.volume["bytes"].sum() == timed["file_size"].sum()
    assert data.volume.height == timed["observation_timestamp"].dt.date().n_unique()

    status = {(m, s): n for m, s, n in data.status.iter_rows()}
    aurora = df.filter(pl.col("mission_id") == "AURORA-2")
    assert status[("AURORA-2", "failed")] == 1
    assert status[("AURORA-2", "processed")] == (aurora["processing_status"] == "processed").sum()
    assert status[("LYRA", "unreadable")] == 1  # an unreadable file is its own status, not "raw"
    assert sum(status.values()) == df.height
    assert data.n_unreadable == 1 and data.n_without_quality == df["data_quality_score"].null_count()

    # One point per target position, counting its observations.
    both = df.filter(pl.col("ra").is_not_null() & pl.col("dec").is_not_null())
    assert not data.sky_density and data.n_positions == both.height == data.sky["n"].sum()
    assert data.sky.height == both.select(pl.col("ra").round(3), pl.col("dec").round(3), "target_object").n_unique()
    assert set(data.colors) >= set(df["mission_id"].unique())


def test_charts_follow_the_filters_and_read_only_their_columns(cat, caplog):
    with caplog.at_level(logging.DEBUG, logger="cosmoscope.store.lazy"):
        data = plots.chart_data(cat, Filters(missions=("HELIOS-X",), min_quality=0.5))
    scans = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scan observations")]
    assert len(scans) == 1
    columns = scans[0].split("columns:", 1)[1].split("\n", 1)[0]
    assert sorted(c.strip() for c in columns.split(",")) == sorted(plots.CHART_COLUMNS)
    assert "mission_id == 'HELIOS-X'" in scans[0] and "residual: (none)" in scans[0]
    expected = cat.observations().filter((pl.col("mission_id") == "HELIOS-X")
                                         & (pl.col("data_quality_score") >= 0.5)).collect()
    assert data.total == expected.height > 0
    assert set(data.timeline["mission_id"]) == set(data.status["mission_id"]) == {"HELIOS-X"}


def test_many_positions_become_a_density_map_and_long_spans_coarser_bins(cat, monkeypatch):
    monkeypatch.setattr(plots, "SKY_POINTS_MAX", 10)
    data = plots.chart_data(cat)
    assert data.sky_density and data.sky["n"].sum() == data.n_positions
    # RA/Dec cells: each position counted in the cell that holds it (the sky rollup's cells).
    pos = cat.observations().filter(pl.col("ra").is_not_null() & pl.col("dec").is_not_null()).collect()
    size = plots.SKY_BIN_DEG
    expected = (pos.group_by((pl.col("ra") % 360 // size * size + size / 2).alias("ra"),
                             (pl.col("dec").clip(-90, 90) // size * size + size / 2).alias("dec")).len("n"))
    assert sorted(data.sky.select("ra", "dec", "n").iter_rows()) == sorted(expected.iter_rows())
    assert plots.sky_chart(data, width=600).title.text.startswith("Sky density:")
    long = pl.DataFrame({"mission_id": ["A", "A", "B"], "observation_timestamp": [
        dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2021, 6, 1, tzinfo=UTC), dt.datetime(2023, 1, 1, tzinfo=UTC)],
        "data_quality_score": [1.0, 0.0, None], "file_size": [1, 2, 3], "processing_status": ["raw"] * 3,
        "extraction_status": ["ok", "ok", "error"], "ra": [None] * 3, "dec": [None] * 3, "target_object": [None] * 3},
        schema_overrides={"ra": pl.Float64, "dec": pl.Float64, "target_object": pl.String})
    summary = plots.summarize(long)
    assert summary.period == "month" and summary.timeline["n"].sum() == 3
    assert summary.quality.filter(pl.col("bin") == 0.95)["n"].item() == 1  # 1.0 is in the top bin


def test_every_chart_is_a_bokeh_figure_that_serializes(cat):
    data = plots.chart_data(cat)
    grid = plots.charts(data)
    assert len(grid) == 5
    figs = {name: fn(data, width=400, height=250) for name, fn in plots.CHARTS.items()}
    assert [f.title.text for f in figs.values()] == [
        "Observations per day", f"Quality distribution ({data.n_without_quality} without a score)",
        "Data volume per day", "Processing status by mission",
        f"Sky positions: {data.n_positions} observations of {data.sky.height} positions"]
    div, unit = plots.byte_unit(float(data.volume["bytes"].max()))
    assert figs["volume"].yaxis[0].axis_label == f"data volume ({unit})" and unit in ("MB", "GB")
    assert type(figs["timeline"].xaxis[0].ticker).__name__ == "DaysTicker"  # daily bins: day ticks, no hours
    assert figs["sky"].xaxis[0].visible is False  # a projection, not a plain RA/Dec plane
    # What the page is sent: every chart (and the grid of them) as BokehJS reads it.
    for fig in [*figs.values(), grid.get_root()]:
        assert json.dumps(json_item(fig))


def test_bars_stack_to_the_counts_they_stand_for(cat):
    data = plots.chart_data(cat)
    timeline = plots.timeline_chart(data).renderers[0].data_source.data
    tops = pl.DataFrame({"start": timeline["start"], "top": timeline["top"], "base": timeline["base"]})
    # Each bin's bars stack without gaps from 0 to the bin's number of observations.
    per_bin = tops.group_by("start").agg(pl.col("base").min(), pl.col("top").max(),
                                         (pl.col("top") - pl.col("base")).sum().alias("n"))
    assert (per_bin["base"] == 0).all() and (per_bin["top"] == per_bin["n"]).all()
    assert int(per_bin["n"].sum()) == int(data.timeline["n"].sum()) == data.total - 2  # two have no time
    status = plots.status_chart(data).renderers[0].data_source.data
    widths = pl.DataFrame({"mission": status["mission"], "left": status["left"], "right": status["right"]})
    rows = widths.group_by("mission").agg(pl.col("left").min(), pl.col("right").max(),
                                          (pl.col("right") - pl.col("left")).sum().alias("n"))
    assert (rows["left"] == 0).all() and (rows["right"] == rows["n"]).all() and int(rows["n"].sum()) == data.total
    legend = [item.label.value for item in plots.status_chart(data).legend[0].items]
    assert legend == [s for s in ("raw", "queued", "processing", "processed", "failed", "archived", "unreadable")
                      if s in legend]  # in the order a file goes through them


def test_two_years_of_weekly_bins_are_labelled_by_quarter_not_by_month():
    """At 10M rows (two years of data) the week-binned charts had 24 month labels on 450 px,
    printed over each other."""
    days = [dt.datetime(2025, 3, 1, tzinfo=UTC) + dt.timedelta(days=d) for d in range(0, 700, 5)]
    n = len(days)
    df = pl.DataFrame({"mission_id": ["A"] * n, "observation_timestamp": days, "data_quality_score": [0.5] * n,
                       "file_size": [10] * n, "processing_status": ["raw"] * n, "extraction_status": ["ok"] * n,
                       "ra": [None] * n, "dec": [None] * n, "target_object": [None] * n},
                      schema_overrides={"ra": pl.Float64, "dec": pl.Float64, "target_object": pl.String})
    data = plots.summarize(df)
    assert data.period == "week"
    for chart in (plots.timeline_chart, plots.volume_chart):
        ticker = chart(data, width=450, height=250).xaxis[0].ticker
        first, last = days[0], days[-1]
        months = [(y, m) for y in range(first.year, last.year + 1) for m in range(1, 13)
                  if first <= dt.datetime(y, m, 1, tzinfo=UTC) <= last and (m - 1) in ticker.months]
        assert 4 <= len(months) <= 9, months


def test_charts_of_nothing_say_so(tmp_path, cat):
    data = plots.chart_data(cat, Filters(target="No Such Target"))
    assert data.total == 0
    for fn in plots.CHARTS.values():
        [label] = fn(data).select({"type": Label})
        assert label.text.startswith("No ")
    assert json.dumps(json_item(plots.charts(data).get_root()))
    with cosmoscope.open_catalog(f"sqlite://{tmp_path}/empty.sqlite") as empty:
        assert plots.chart_data(empty).total == 0


def test_a_mission_keeps_its_colour_whatever_the_filter(cat):
    everything_ = plots.chart_data(cat)
    one = plots.chart_data(cat, Filters(missions=("LYRA",)))
    assert one.color("LYRA") == everything_.color("LYRA")
    colours = [everything_.color(m) for m in ("AURORA-2", "COSMOS-7", "HELIOS-X", "LYRA")]
    assert len(set(colours)) == 4
    # Adding missions moves no colour of the missions already there.
    more = plots.mission_colors(["AURORA-2", "COSMOS-7", "HELIOS-X", "LYRA", "XMM", "CHANDRA", "AAA"])
    assert [more[m] for m in ("AURORA-2", "COSMOS-7", "HELIOS-X", "LYRA")] == colours
    assert len(set(plots.mission_colors([f"M{i}" for i in range(12)]).values())) == 13  # 12 + "no mission"


def test_the_sky_projection_goes_both_ways():
    import numpy as np

    from cosmoscope.ui.skymap import X_MAX, Y_MAX, mollweide, to_sky

    ra = np.array([0.0, 45.0, 179.0, 181.0, 300.0, 10.0])
    dec = np.array([0.0, 30.0, -60.0, 60.0, 89.0, -89.5])
    x, y = mollweide(ra, dec)
    assert np.all((x / X_MAX) ** 2 + (y / Y_MAX) ** 2 <= 1 + 1e-9)
    assert x[1] < 0 < x[4]  # right ascension grows to the left, 0h in the middle
    back_ra, back_dec = to_sky(x, y)
    assert np.allclose(back_dec, dec, atol=1e-6) and np.allclose(back_ra, ra, atol=1e-6)
    assert np.isnan(to_sky([X_MAX], [Y_MAX])[0][0])  # outside the sky


@pytest.mark.parametrize("filters", [Filters(), Filters(missions=("LYRA", "HELIOS-X")),
                                     Filters(start=dt.date(2026, 11, 5), end=dt.date(2026, 11, 12))])
@pytest.mark.parametrize("points_max", [5_000, 3])
def test_charts_from_the_rollups_equal_charts_from_the_rows(cat, monkeypatch, filters, points_max):
    monkeypatch.setattr(plots, "SKY_POINTS_MAX", points_max)
    assert cat.route(**filters.search_kwargs()).rollups  # these filters are answered by the rollups
    data = plots.chart_data(cat, filters)
    rows = plots.summarize(filters.frame(cat).select(plots.CHART_COLUMNS).collect(), colors=data.colors)
    assert data.total == rows.total > 0 and data.period == rows.period
    assert (data.sky_density, data.n_positions, data.n_without_quality, data.n_unreadable) == (
        rows.sky_density, rows.n_positions, rows.n_without_quality, rows.n_unreadable)
    for name in ("timeline", "quality", "volume", "status", "sky"):
        got, want = getattr(data, name), getattr(rows, name)
        assert sorted(got.rows()) == sorted(want.rows()), name
