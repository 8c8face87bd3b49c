"""The Panel dashboard: its objects driven directly, then the served page in a real headless
Chromium (Debian's, driven by Playwright) -- one in-process server shared by the module, and one
real ``cosmoscope serve`` subprocess behind a path-keeping proxy, as binder's server proxy runs it.

Screenshots go to ``$COSMOSCOPE_TEST_ARTIFACTS`` (default: a directory under pytest's temporary
directory, named in the test output).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import polars as pl
import pytest
from playwright.sync_api import expect

import cosmoscope
from cosmoscope.ui.dashboard import TABS, Dashboard, create_app
from tests.test_ui_widgets import build_catalog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTION = re.compile(r"of [\d,]+ observations? \(page")
UTC = dt.timezone.utc
WAIT = 30_000  # ms: a generous deadline for anything the page is waiting on (CI machines are loaded)
expect.set_options(timeout=WAIT)


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}, "accept_downloads": True}


def shot(page, artifacts: str, name: str) -> str:
    path = os.path.join(artifacts, name)
    page.screenshot(path=path)
    assert os.path.getsize(path) > 10_000
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def servers():
    """Serve dashboards in-process; yields a function(url, **options) -> page URL."""
    import panel as pn

    threads = []

    def start(url: str, **options) -> str:
        port = free_port()
        threads.append(pn.serve({"dashboard": lambda: create_app(url, **options)}, port=port, address="127.0.0.1",
                                websocket_origin=[f"127.0.0.1:{port}"], threaded=True, show=False, verbose=False))
        page = f"http://127.0.0.1:{port}/dashboard"
        wait_http(page)
        return page

    yield start
    for t in threads:
        t.stop()
        t.join(timeout=10)


@dataclass
class Board:
    url: str  # the catalog's
    page: str  # the dashboard's
    chain: dict
    df: pl.DataFrame  # every row, for the expected answers


@pytest.fixture(scope="module")
def board(tmp_path_factory, servers):
    """One catalog and one served dashboard for the module's read-only tests."""
    cat, chain = build_catalog(f"sqlite://{tmp_path_factory.mktemp('board')}/ui.sqlite")
    url, df = cat.url, cat.observations().collect()
    cat.close()
    return Board(url, servers(url, refresh_seconds=0), chain, df)


@pytest.fixture
def console(page):
    """Errors the page reports (console errors, uncaught exceptions, failed requests), and any
    request that leaves the server: the dashboard must need no internet."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    # (A request a navigation cuts short is aborted, not failed.)
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})")
            if "ERR_ABORTED" not in (r.failure or "") else None)
    page.on("request", lambda r: errors.append(f"request outside the server: {r.url}")
            if urlparse(r.url).hostname not in ("127.0.0.1", None) and not r.url.startswith("data:") else None)
    return errors


def query_of(page) -> dict:
    return {k: v for k, v in parse_qs(urlparse(page.url).query).items()}


def caption(page):
    return page.get_by_text(CAPTION)


def facet(page, value: str):
    return page.locator(f".cs-facet-row[data-value='{value}']")


# -- the dashboard's objects, without a browser ------------------------------------------------

def test_a_view_is_driven_by_its_state_and_written_to_its_url(tmp_path):
    cat, chain = build_catalog(f"sqlite://{tmp_path}/ui.sqlite")
    df = cat.observations().collect()
    d = Dashboard(cat.url, refresh_seconds=0, page_size=10, state="mission=LYRA&sort=-exposure_time&page=2")
    d.servable()
    lyra = df.filter(pl.col("mission_id") == "LYRA").sort(["exposure_time", "dataset_id"], descending=[True, False],
                                                          nulls_last=True)
    assert d.page.total == lyra.height and d.page.number == 2
    assert d.page.rows["dataset_id"].to_list() == lyra["dataset_id"].to_list()[10:20]
    assert d.results.table.sorters == [{"field": "exposure", "dir": "desc"}]
    assert list(d.results.table.value.columns)[:4] == ["dataset_id", "file", "level", "type"]
    counts = {i["value"]: i["n"] for i in d.side.facets["missions"].items}
    assert counts == dict(df.group_by("mission_id").len().iter_rows())  # a facet ignores its own filter
    d.side.facets["levels"].selected = ["2"]  # a click in the browser sets this
    assert d.state.levels == (2,) and d.state.page == 1
    assert d.page.total == lyra.filter(pl.col("calib_level") == 2).height
    d.side.start.value = "2026-305"
    d.side.end.value = "2026-11-10"
    expected = lyra.filter((pl.col("calib_level") == 2) & (pl.col("observation_timestamp") >= dt.datetime(
        2026, 11, 1, tzinfo=UTC)) & (pl.col("observation_timestamp") < dt.datetime(2026, 11, 11, tzinfo=UTC)))
    assert d.page.total == expected.height and "Observations starting from 2026-11-01 00:00" in d.side.when.object
    assert d.state.to_query() == "mission=LYRA&level=2&from=2026-305&to=2026-11-10&sort=-exposure_time"
    d.side.end.value = "2026-10-01"
    assert d.page is None and "is not after the start time" in d.results.message.object
    assert d.results.next_button.disabled and d.results.table.value is None
    d.clear_filters()
    assert d.page.total == df.height and d.state.to_query() == "sort=-exposure_time"

    d.open_record(chain["derived"])
    assert d.drawer.panel.visible and d.drawer.id_text.value == chain["derived"]
    assert "where it came from" in d.drawer.body.object and "Audit trail" in d.drawer.body.object
    d.drawer.lineage_button.clicks += 1
    assert TABS[d.tabs.active] == "Lineage" and not d.drawer.panel.visible
    assert f'data-id="{chain["calibrated"]}"' in d.lineage.picture.svg
    d.lineage.picture.on_message({"action": "focus", "id": chain["calibrated"]})  # a click on a box
    assert d.state.focus == chain["calibrated"] and d.lineage.id_input.value == chain["calibrated"]
    d.lineage.picture.on_message({"action": "open", "id": chain["raw"]})  # a click on its i
    assert d.state.open and d.drawer.id_text.value == chain["raw"]

    d.update(tab="problems")
    assert "unreadable <b>1</b>" in d.problems.badges.object
    titles = [c.title for c in d.problems.groups.objects if hasattr(c, "title")]
    assert titles[0] == "Not a FITS file: 1 file cannot be read.  (LYRA 1)"
    d.update(tab="charts")
    assert d.charts.data.total == df.height and "COSMOS-7" in d.charts.legend.object
    d.charts.sky_dots.selected.indices = [0]  # a click on the first target of the sky map filters on it
    assert d.state.target == d.charts.sky_dots.data["target"][0] and d.state.tab == "search"
    d.update(target="", tab="search")
    ra, dec = df.filter(pl.col("ra").is_not_null() & pl.col("dec").is_not_null()).select("ra", "dec").row(0)
    d.side.near.value = f"{ra} {dec}"  # a cone, with the default radius
    assert d.side.cone.visible and "within 1deg of RA" in d.side.cone_note.object
    assert d.state.to_query().startswith("near=") and d.page.total >= 1
    d.side.near.value = "Nowhere Nebula"
    assert "cannot place 'Nowhere Nebula' on the sky" in d.results.message.object
    d.update(near="")

    buf = d.results._export("votable")
    assert b"<VOTABLE" in buf.read(200) and d.results.downloads["votable"].filename == (
        f"cosmoscope-{df.height}-observations.vot")

    d.update(page=3)  # beyond the first page, new data do not shift the rows on show
    shown = d.page.rows["dataset_id"].to_list()
    cat.add_records([{"file_path": "/archive/new/one.fits", "mission_id": "NEW-1",
                      "observation_timestamp": dt.datetime(2027, 1, 1, tzinfo=UTC)}])
    assert d.check_for_new_data() is True
    assert d.page.rows["dataset_id"].to_list() == shown and d.banner.visible
    assert "1 new observation arrived" in d.banner_text.object
    d.banner_button.clicks += 1
    assert not d.banner.visible and d.page.total == df.height + 1
    d.close()
    cat.close()


def test_dashboard_of_a_missing_catalog_says_what_is_wrong(tmp_path):
    d = Dashboard(f"sqlite://{tmp_path}/nowhere.sqlite")
    d.servable()
    assert d.results.message.visible and "there is no catalog at" in d.results.message.object
    assert d.side.target.disabled


def test_only_the_open_tab_is_visible_and_charts_reuse_the_catalogs_colours(tmp_path, monkeypatch):
    from cosmoscope.ui import plots

    reads = []
    real = plots.catalog_colors
    monkeypatch.setattr(plots, "catalog_colors", lambda cat: reads.append(cat) or real(cat))
    cat, _ = build_catalog(f"sqlite://{tmp_path}/ui.sqlite")
    d = Dashboard(catalog=cat, refresh_seconds=0)
    d.servable()  # (not served: what is read is read at once)
    # The charts are drawn when their tab opens: drawn behind the first view, their figures
    # held up the clicks that came meanwhile.
    assert d.charts.data is None and "Charts" in d._dirty and "Problems" not in d._dirty
    # Hidden tabs' figures would otherwise be laid out and repainted by the browser after every change.
    assert [c.visible for c in d.tabs.objects] == [True, False, False, False, False]
    d.update(tab="charts")
    assert [c.visible for c in d.tabs.objects] == [False, True, False, False, False]
    assert len(reads) == 1  # once for the page: the charts take the dashboard's colours
    assert d.charts.data.colors == d.colors and "COSMOS-7" in d.charts.legend.object
    d.update(missions=("LYRA",))  # the charts are read again for the new filters, colours are not
    assert len(reads) == 1 and d.charts.data.total == d.page.total
    d.close()
    cat.close()


def test_a_click_on_a_density_cell_searches_a_cone_as_wide_as_the_cell(tmp_path, monkeypatch):
    from cosmoscope.ui import plots

    monkeypatch.setattr(plots, "SKY_POINTS_MAX", 3)  # too many positions to draw: density cells
    cat, _ = build_catalog(f"sqlite://{tmp_path}/ui.sqlite")
    d = Dashboard(catalog=cat, refresh_seconds=0)
    d.servable()
    d.update(tab="charts")
    assert d.charts.data.sky_density
    cells = d.charts.sky_dots.data
    d.charts.sky_dots.selected.indices = [0]
    assert d.state.tab == "search" and d.state.radius == f"{plots.SKY_BIN_DEG:.2f}deg"
    assert d.state.near == f"{cells['ra'][0]:.2f} {cells['dec'][0]:+.2f}"
    # The cone holds the cell's observations (its centre is at most half a diagonal, 2.1°, away).
    ra, dec = cells["ra"][0], cells["dec"][0]
    half = plots.SKY_BIN_DEG / 2
    inside = d.catalog.observations().filter(pl.col("ra").is_between(ra - half, ra + half)
                                             & pl.col("dec").is_between(dec - half, dec + half)).collect()
    assert 0 < inside.height == int(cells["observations"][0]) <= d.page.total
    d.close()
    cat.close()


# -- in a browser -------------------------------------------------------------------------------

def test_first_view_is_science_first_at_1440_and_1024(page, console, board, artifacts):
    page.goto(board.page)
    expect(caption(page)).to_contain_text(f"1-25 of {board.df.height} observations", timeout=WAIT)
    files = page.locator(".tabulator-cell[tabulator-field='file']")
    expect(files.first).to_have_text(re.compile(r"^[\w.-]+\.fits$"))  # the name, not the directory
    for heading in ("level", "type", "target", "RA (°)", "Dec (°)", "start (UTC)", "exposure (s)", "quality"):
        expect(page.locator(".tabulator-col-title", has_text=heading).first).to_be_attached()
    expect(facet(page, "HELIOS-X")).to_contain_text(str(board.df.filter(pl.col("mission_id") == "HELIOS-X").height))
    shot(page, artifacts, "search-1440.png")

    page.set_viewport_size({"width": 1024, "height": 768})
    page.reload()
    expect(caption(page)).to_be_visible(timeout=WAIT)
    box = page.get_by_role("button", name="VOTable").bounding_box()
    assert box["x"] + box["width"] <= 1024, "the export buttons run off the screen"
    expect(files.first).to_be_in_viewport()  # frozen: the file column stays while the rest scrolls
    shot(page, artifacts, "search-1024.png")
    assert console == []


def test_a_tab_opened_shows_alone_without_waiting_for_the_server(page, console, board):
    """The browser itself hides every tab's content but the open one's: the callback BokehJS runs
    when a tab opens does it (run here as BokehJS runs it, so that no answer from the server can
    be what is seen)."""
    page.goto(board.page)
    expect(caption(page)).to_be_visible(timeout=WAIT)
    shown = page.evaluate("""async () => {
        const tabs = [...Bokeh.documents[0].all_models].find((m) => m.type === 'panel.models.tabs.Tabs');
        const [callback] = tabs.js_property_callbacks['change:active'];
        tabs.active = 2;
        await callback.execute(tabs);
        return tabs.tabs.map((tab) => tab.child.visible);
    }""")
    assert shown == [False, False, True, False, False]
    expect(page).to_have_url(re.compile(r"tab=summary"), timeout=WAIT)  # and the server heard of it
    assert console == []


def test_facets_typed_times_sort_page_and_tab_round_trip_through_the_url(page, console, board, artifacts):
    df = board.df
    page.goto(board.page)
    expect(caption(page)).to_be_visible(timeout=WAIT)
    facet(page, "HELIOS-X").click()
    helios = df.filter(pl.col("mission_id") == "HELIOS-X")
    expect(caption(page)).to_contain_text(f"of {helios.height} observations")
    expect(facet(page, "HELIOS-X")).to_have_attribute("aria-pressed", "true")
    level2 = helios.filter(pl.col("calib_level") == 2).height
    expect(facet(page, "2")).to_contain_text(f"{level2}")  # counted among the matches

    page.get_by_label("From (UTC)").fill("2026-307")  # a day of the year: 3 November
    page.get_by_label("From (UTC)").press("Enter")
    page.get_by_label("To (UTC)").fill("2026-11-15")  # a whole day counts in full
    page.get_by_label("To (UTC)").press("Enter")
    window = helios.filter((pl.col("observation_timestamp") >= dt.datetime(2026, 11, 3, tzinfo=UTC))
                           & (pl.col("observation_timestamp") < dt.datetime(2026, 11, 16, tzinfo=UTC)))
    expect(caption(page)).to_contain_text(f"of {window.height} observations")
    expect(page.get_by_text("Observations starting from 2026-11-03 00:00 and before 2026-11-16 00:00 UTC")
           ).to_be_visible()

    page.locator(".tabulator-col[tabulator-field='quality'] .tabulator-col-title").click()
    expect(page).to_have_url(re.compile(r"sort=data_quality_score"))
    worst = window.sort("data_quality_score", nulls_last=True)["data_quality_score"][0]
    expect(page.locator(".tabulator-cell[tabulator-field='quality']").first).to_have_text(f"{worst:.2f}")
    if window.height > 25:
        page.get_by_role("button", name="Next ▶").click()
        expect(page).to_have_url(re.compile(r"page=2"))
    page.get_by_text("Charts", exact=True).click()
    expect(page).to_have_url(re.compile(r"tab=charts"))
    q = query_of(page)
    assert q["mission"] == ["HELIOS-X"] and q["from"] == ["2026-307"] and q["to"] == ["2026-11-15"]

    link = page.url  # the link reproduces the view in a fresh page
    fresh = page.context.new_page()
    fresh.goto(link)
    expect(fresh.get_by_text(f"Charts of the {window.height} observations matching")).to_be_visible(timeout=WAIT)
    expect(facet(fresh, "HELIOS-X")).to_have_attribute("aria-pressed", "true")
    expect(fresh.get_by_label("From (UTC)")).to_have_value("2026-307")
    fresh.get_by_text("Search", exact=True).click()
    expect(caption(fresh)).to_contain_text(f"of {window.height} observations")
    shot(fresh, artifacts, "url-round-trip.png")
    fresh.close()
    assert console == []


def test_times_that_cannot_be_read_or_end_before_they_start(page, console, board):
    page.goto(board.page + "?to=yesterday")
    expect(page.get_by_text("could not read 'yesterday' as the end").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("button", name="Next ▶")).to_be_disabled()
    page.get_by_label("To (UTC)").fill("2026-11-02")
    page.get_by_label("To (UTC)").press("Enter")
    page.get_by_label("From (UTC)").fill("2026-11-20")
    page.get_by_label("From (UTC)").press("Enter")
    expect(page.get_by_text("is not after the start time").first).to_be_visible()
    expect(page.get_by_role("button", name="Next ▶")).to_be_disabled()
    expect(page.locator(".tabulator-row")).to_have_count(0)  # no headerless table with a pager over it
    assert console == []


@pytest.mark.parametrize("fmt", ["CSV", "Parquet", "VOTable"])
def test_export_downloads_every_match(page, console, board, tmp_path, fmt):
    from astropy.table import Table

    page.goto(board.page + "?mission=AURORA-2&sort=file_size")
    aurora = board.df.filter(pl.col("mission_id") == "AURORA-2").sort(["file_size", "dataset_id"], nulls_last=True)
    expect(caption(page)).to_contain_text(f"of {aurora.height} observations", timeout=WAIT)
    with page.expect_download(timeout=WAIT) as info:
        page.get_by_role("button", name=fmt).click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    if fmt == "VOTable":
        ids = list(Table.read(path, format="votable")["dataset_id"])
    else:
        ids = (pl.read_csv(path) if fmt == "CSV" else pl.read_parquet(path))["dataset_id"].to_list()
    assert ids == aurora["dataset_id"].to_list()
    assert console == []


def test_record_drawer_copy_buttons_and_the_lineage_graph(browser, board, artifacts):
    context = browser.new_context(viewport={"width": 1440, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    chain = board.chain
    page.goto(board.page)
    expect(caption(page)).to_be_visible(timeout=WAIT)
    page.locator(".tabulator-row").nth(2).click()
    drawer = page.locator(".cs-drawer")
    expect(drawer.get_by_text("where it came from")).to_be_visible()
    expect(drawer.get_by_text("Audit trail")).to_be_visible()
    chosen = query_of(page)["id"][0]
    assert query_of(page)["open"] == ["1"]
    drawer.get_by_role("button", name="Copy").first.click()
    expect(drawer.get_by_role("button", name="Copied ✓").first).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == chosen
    shot(page, artifacts, "record-drawer.png")

    page.goto(board.page + f"?tab=lineage&id={chain['calibrated']}")
    graph = page.locator("svg.cs-graph")
    expect(graph).to_be_visible(timeout=WAIT)
    expect(graph.locator(".cs-node")).to_have_count(4)
    for label in ("raw->calibrated", "calibration", "calibrated->derived"):
        expect(graph.locator(".cs-edge-label", has_text=label)).to_have_count(1)
    shot(page, artifacts, "lineage-1440.png")
    raw = graph.locator(f".cs-node[data-id='{chain['raw']}']")
    expect(raw.locator(".cs-name")).to_have_text(os.path.basename(
        board.df.filter(pl.col("dataset_id") == chain["raw"])["file_path"][0]))
    raw.locator(".cs-box").click()
    expect(page.get_by_label("Dataset id").first).to_have_value(chain["raw"])
    expect(page).to_have_url(re.compile(f"id={chain['raw']}"))
    expect(graph.locator(f".cs-focus[data-id='{chain['raw']}']")).to_have_count(1)
    graph.locator(f".cs-node[data-id='{chain['derived']}'] .cs-open").click()
    expect(page.locator(".cs-drawer").get_by_text("where it came from")).to_be_visible()
    page.set_viewport_size({"width": 1024, "height": 768})
    shot(page, artifacts, "lineage-drawer-1024.png")
    assert errors == []
    context.close()


def test_problems_in_words_and_an_empty_catalog(page, console, board, servers, tmp_path, artifacts):
    page.goto(board.page + "?tab=problems")
    expect(page.get_by_text("Not a FITS file: 1 file cannot be read.").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("cosmoscope validate --fix --mission LYRA --path /archive/broken")).to_be_visible()
    expect(page.get_by_text("1 file is missing from disk.").first).to_be_visible()
    expect(page.get_by_text('"kind"')).to_have_count(0)  # no raw JSON
    shot(page, artifacts, "problems.png")

    with cosmoscope.open_catalog(f"sqlite://{tmp_path}/empty.sqlite"):
        pass
    page.goto(servers(f"sqlite://{tmp_path}/empty.sqlite") + "?tab=problems")
    expect(page.get_by_text("No problems: every file was read")).to_be_visible(timeout=WAIT)
    expect(page.locator(".cs-sev")).to_have_count(0)  # no empty groups, tables or pagers
    page.get_by_text("Charts", exact=True).click()
    expect(page.get_by_text("This catalog is empty: nothing to chart yet.")).to_be_visible()
    page.get_by_text("Search", exact=True).click()
    expect(page.get_by_text("This catalog is empty.", exact=False)).to_be_visible()
    assert console == []


def test_charts_share_colours_and_show_the_sky(page, console, board, artifacts):
    page.goto(board.page + "?tab=charts")
    expect(page.get_by_text(f"Charts of all {board.df.height} observations.")).to_be_visible(timeout=WAIT)
    expect(page.locator(".bk-Figure")).to_have_count(5, timeout=WAIT)
    legend = page.locator(".cs-legend")
    for mission in ("AURORA-2", "COSMOS-7", "HELIOS-X", "LYRA"):
        expect(legend).to_contain_text(mission)
    shot(page, artifacts, "charts-1440.png")
    page.set_viewport_size({"width": 1024, "height": 768})
    shot(page, artifacts, "charts-1024.png")
    # A click on a target's dot on the sky map searches for that target. Where BokehJS drew the
    # dot is asked of BokehJS; the click is the mouse's.
    dot = page.evaluate("""() => {
        const dots = Bokeh.documents[0].get_model_by_name('sky-dots');
        const view = Bokeh.index.find_one(dots);
        const canvas = view.parent.canvas_view.el.getBoundingClientRect();
        return {x: canvas.left + view.glyph.sx[0], y: canvas.top + view.glyph.sy[0],
                target: dots.data_source.data.target[0]};
    }""")
    page.mouse.click(dot["x"], dot["y"])
    expect(page).to_have_url(re.compile(r"[?&]target="), timeout=WAIT)
    assert query_of(page)["target"] == [dot["target"]] and dot["target"] in board.df["target_object"].to_list()
    expect(caption(page)).to_be_visible(timeout=WAIT)  # the search tab, showing that target's observations
    assert console == []


def test_new_data_appear_without_a_reload(page, console, servers, tmp_path):
    cat, _ = build_catalog(f"sqlite://{tmp_path}/live.sqlite")
    url, total = cat.url, cat.count()
    page.goto(servers(url, refresh_seconds=0.5))
    expect(caption(page)).to_contain_text(f"of {total} observations", timeout=WAIT)
    cat.add_records([{"file_path": f"/archive/new/{i}.fits", "mission_id": "NEW-1",
                      "observation_timestamp": dt.datetime(2027, 1, 1, tzinfo=UTC)} for i in range(3)])
    expect(caption(page)).to_contain_text(f"of {total + 3} observations", timeout=WAIT)
    expect(page.locator(".tabulator-cell[tabulator-field='mission']").first).to_have_text("NEW-1")
    cat.close()
    assert console == []


# -- the real command, behind a proxy ------------------------------------------------------------

def start_proxy(upstream_port: int):
    """A small reverse proxy that keeps the path (like jupyter-server-proxy's absolute_url),
    forwards websockets with their subprotocols, and serves from another host:port."""
    import tornado.httpclient
    import tornado.httpserver
    import tornado.ioloop
    import tornado.netutil
    import tornado.web
    import tornado.websocket

    upstream = f"127.0.0.1:{upstream_port}"

    class Forward(tornado.web.RequestHandler):
        async def get(self):
            req = tornado.httpclient.HTTPRequest(
                f"http://{upstream}{self.request.uri}", method=self.request.method, follow_redirects=False,
                headers={k: v for k, v in self.request.headers.get_all() if k.lower() != "host"},
                body=self.request.body if self.request.method == "POST" else None)
            resp = await tornado.httpclient.AsyncHTTPClient().fetch(req, raise_error=False)
            self.set_status(resp.code)
            for k, v in resp.headers.get_all():
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection"):
                    self.add_header(k, v)
            if resp.body:
                self.write(resp.body)

        post = get

    class Socket(tornado.websocket.WebSocketHandler):
        def check_origin(self, origin):
            return True

        def select_subprotocol(self, subprotocols):
            self._protocols = list(subprotocols)
            return subprotocols[0] if subprotocols else None

        async def open(self, *args):
            req = tornado.httpclient.HTTPRequest(f"ws://{upstream}{self.request.uri}",
                                                 headers={"Origin": self.request.headers.get("Origin", "")})
            self.up = await tornado.websocket.websocket_connect(
                req, on_message_callback=self.from_upstream, subprotocols=getattr(self, "_protocols", None))

        def from_upstream(self, message):
            if message is None:
                self.close()
            else:
                self.write_message(message, binary=isinstance(message, bytes))

        def on_message(self, message):
            self.up.write_message(message, binary=isinstance(message, bytes))

        def on_close(self):
            if getattr(self, "up", None) is not None:
                self.up.close()

    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    holder = {}
    ready = threading.Event()

    def run():
        asyncio.set_event_loop(asyncio.new_event_loop())
        app = tornado.web.Application([(r".*/ws", Socket), (r".*", Forward)])
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        holder["loop"] = tornado.ioloop.IOLoop.current()
        ready.set()
        holder["loop"].start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(120), "the proxy did not start"
    return port, lambda: holder["loop"].add_callback(holder["loop"].stop)


def test_cosmoscope_serve_behind_a_prefix_proxy(page, console, board, tmp_path, artifacts):
    port, prefix = free_port(), "/user/alice/cosmoscope"
    proxy_port, stop_proxy = start_proxy(port)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "cosmoscope", "serve", "--catalog", board.url, "--port", str(port),
                             "--prefix", prefix, "--allow-websocket-origin", f"127.0.0.1:{proxy_port}",
                             "--refresh", "0", "-q"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}{prefix}/dashboard")
        page.goto(f"http://127.0.0.1:{proxy_port}{prefix}/dashboard?mission=AURORA-2")
        expect(caption(page)).to_contain_text("1-", timeout=WAIT)
        expect(page.locator(".tabulator-cell[tabulator-field='mission']").first).to_have_text("AURORA-2")
        assert set(page.locator(".tabulator-cell[tabulator-field='mission']").all_inner_texts()) == {"AURORA-2"}
        facet(page, "LYRA").click()  # the URL keeps the prefix as it changes
        expect(page).to_have_url(re.compile(rf"{prefix}/dashboard\?mission=\w.*&mission="))
        assert sorted(query_of(page)["mission"]) == ["AURORA-2", "LYRA"]
        shot(page, artifacts, "behind-proxy.png")
        assert console == []
    finally:
        if stop_proxy:
            stop_proxy()
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode is not None, out
    with socket.socket() as s:  # the panel server went with it
        assert s.connect_ex(("127.0.0.1", port)) != 0, out


def test_serve_command_line_for_prefixes_and_origins():
    from cosmoscope.cli import build_parser
    from cosmoscope.cli.serve_cmd import DASHBOARD, panel_command

    def command(*argv):
        return panel_command(build_parser().parse_args(["serve", *argv]), "sqlite:///c.sqlite")

    plain = command("--port", "5100")
    assert plain[1:5] == ["-m", "panel", "serve", DASHBOARD] and os.path.exists(DASHBOARD)
    assert plain[plain.index("--address") + 1] == "127.0.0.1" and "--prefix" not in plain
    origins = [plain[i + 1] for i, a in enumerate(plain) if a == "--allow-websocket-origin"]
    assert origins == ["localhost:5100", "127.0.0.1:5100"]
    assert plain[plain.index("--args") + 1:] == ["--catalog", "sqlite:///c.sqlite", "--refresh", "10.0",
                                                  "--page-size", "25"]
    with pytest.raises(cosmoscope.errors.InvalidArgumentError, match="--allow-websocket-origin"):
        command("--prefix", "user/alice/cosmoscope/", "--refresh", "0")  # '*' is no longer assumed
    proxied = command("--prefix", "user/alice/cosmoscope/", "--allow-websocket-origin", "hub.example.org")
    assert proxied[proxied.index("--prefix") + 1] == "/user/alice/cosmoscope"
    assert proxied[proxied.index("--auth-module") + 1].endswith("hostcheck.py")
    chosen = command("--prefix", "/x", "--allow-websocket-origin", "hub.example.org")
    assert [chosen[i + 1] for i, a in enumerate(chosen) if a == "--allow-websocket-origin"] == ["hub.example.org"]


def test_serve_refuses_a_catalog_that_is_not_there(tmp_path):
    from cosmoscope.cli import main

    assert main(["serve", "--catalog", f"sqlite://{tmp_path}/nowhere.sqlite", "--port", "0"]) == 1
