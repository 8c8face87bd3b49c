"""The Panel dashboard: its objects driven directly, then the served page in a real headless
Chromium (Debian's, driven by Playwright) — in-process servers for speed, and one real
``cosmoscope serve`` subprocess behind a path-keeping proxy, as binder's server proxy runs it.

Screenshots go to test-artifacts/ at the top of the repository.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import param
import polars as pl
import pytest
from playwright.sync_api import expect

import cosmoscope
from cosmoscope.ui.dashboard import TABS, Dashboard, create_app
from tests.test_ui_widgets import build_catalog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
CAPTION = re.compile(r"of [\d,]+ observations? \(page")
UTC = dt.timezone.utc


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Playwright's own browser download does not work here; Debian's chromium does.
    return {**browser_type_launch_args, "executable_path": shutil.which("chromium"), "args": CHROMIUM_FLAGS}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 40.0) -> None:
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


@pytest.fixture
def catalog_url(tmp_path):
    cat, chain = build_catalog(f"sqlite://{tmp_path}/ui.sqlite")
    url = cat.url
    cat.close()
    return url, chain


@pytest.fixture
def serve():
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


@pytest.fixture
def console(page):
    """Errors the page reports: console errors, uncaught exceptions, failed requests."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    return errors


def choose(page, placeholder: str, value: str) -> None:
    page.locator(f"input[placeholder='{placeholder}']").click()
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")  # close the list of choices


def shot(page, name: str) -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path)
    assert os.path.getsize(path) > 10_000
    return path


# -- the dashboard's objects, without a browser ------------------------------------------------

def test_dashboard_objects_search_page_and_refresh(catalog_url):
    url, chain = catalog_url
    d = Dashboard(url, refresh_seconds=0, page_size=10)
    d.servable()
    with cosmoscope.open_catalog(url) as cat:
        df = cat.observations().collect()
        assert d.page.total == df.height and len(d.table.value) == 10
        assert d.mission.options == sorted(df["mission_id"].unique())
        d.mission.value = ["LYRA"]
        with param.edit_constant(d.min_quality):  # what the browser sets when a drag ends
            d.min_quality.value_throttled = 0.5
        expected = df.filter((pl.col("mission_id") == "LYRA") & (pl.col("data_quality_score") >= 0.5))
        assert d.page.total == expected.height and set(d.table.value["mission_id"]) == {"LYRA"}
        d.next_button.clicks += 1
        assert d.page_number == 2
        assert d.check_for_new_data() is False
        cat.add_records([{"file_path": "/archive/lyra/new.fits", "mission_id": "LYRA", "data_quality_score": 0.9,
                          "observation_timestamp": dt.datetime(2027, 1, 1, tzinfo=UTC)}])
        assert d.check_for_new_data() is True
        assert d.page.total == expected.height + 1
    d.tabs.active = TABS.index("Problems")
    assert "unreadable <b>1</b>" in d.problem_badges.object and len(d.problem_table.value) == 4
    d.tabs.active = TABS.index("Summary")
    assert len(d.summary_table.value) == 4
    d.tabs.active = TABS.index("Charts")
    assert sum(len(row) for row in d.charts.objects) == 5 and "matching mission LYRA, quality &gt;= 0.5" in d.charts_caption.object
    d.show_lineage(chain["calibrated"])
    assert "parents" in d.lineage.graph.objects[0].objects[0].object
    d.show_lineage("ds-nope")
    assert "No dataset <code>ds-nope</code>" in d.lineage.message.object and d.lineage.graph.objects == []
    d.close()


def test_dashboard_of_a_missing_catalog_says_what_is_wrong(tmp_path):
    d = Dashboard(f"sqlite://{tmp_path}/nowhere.sqlite")
    d.servable()
    assert d.message.visible and "there is no catalog at" in d.message.object
    assert d.mission.disabled


# -- in a browser -----------------------------------------------------------------------------

def test_search_filter_table_and_lineage_in_chromium(page, console, serve, catalog_url):
    url, chain = catalog_url
    with cosmoscope.open_catalog(url) as cat:
        df = cat.observations().collect()
    page.goto(serve(url))
    caption = page.get_by_text(CAPTION)
    expect(caption).to_contain_text(f"1-25 of {df.height} observations", timeout=20_000)
    missions = page.locator(".tabulator-cell[tabulator-field='mission_id']")
    assert len(set(missions.all_inner_texts())) > 1

    choose(page, "any mission", "HELIOS-X")
    n = df.filter(pl.col("mission_id") == "HELIOS-X").height
    expect(caption).to_contain_text(f"of {n} observations")
    expect(missions.first).to_have_text("HELIOS-X")
    assert set(missions.all_inner_texts()) == {"HELIOS-X"}

    page.get_by_text("Charts", exact=True).click()
    expect(page.get_by_text(f"Charts of the {n} observations matching mission HELIOS-X.")).to_be_visible(timeout=20_000)
    expect(page.locator(".bk-Figure")).to_have_count(5, timeout=20_000)
    shot(page, "dashboard-charts.png")
    page.get_by_text("Search", exact=True).click()

    page.locator(".tabulator-row").nth(1).click()
    page.get_by_role("button", name="Show lineage of selected row").click()
    expect(page.get_by_text("this dataset", exact=True)).to_be_visible()

    box = page.locator("input[placeholder^='paste a dataset_id']")
    box.fill(chain["calibrated"])
    box.press("Enter")
    expect(page.get_by_text("children", exact=True)).to_be_visible()
    raw_name = os.path.basename(df.filter(pl.col("dataset_id") == chain["raw"])["file_path"][0])
    shot(page, "dashboard-lineage.png")
    page.locator(".cs-node").filter(has_text=raw_name).locator("button").click()
    expect(page.get_by_text(chain["raw"], exact=True)).to_be_visible()  # the details of the new focus
    expect(box).to_have_value(chain["raw"])

    page.get_by_text("Search", exact=True).click()
    shot(page, "dashboard.png")
    assert console == []


def test_no_match_empty_catalog_and_missing_dataset_in_chromium(page, console, serve, catalog_url, tmp_path):
    url, _ = catalog_url
    page.goto(serve(url))
    expect(page.get_by_text(CAPTION)).to_be_visible(timeout=20_000)
    target = page.locator("input[placeholder='NGC 253, NGC* or *253*']")
    target.fill("No Such Target")
    target.press("Enter")
    expect(page.get_by_text("No observations match target No Such Target")).to_be_visible()

    page.get_by_text("Lineage", exact=True).click()
    box = page.locator("input[placeholder^='paste a dataset_id']")
    box.fill("ds-does-not-exist")
    box.press("Enter")
    expect(page.get_by_text("in this catalog. Check the id")).to_be_visible()

    with cosmoscope.open_catalog(f"sqlite://{tmp_path}/empty.sqlite"):
        pass
    page.goto(serve(f"sqlite://{tmp_path}/empty.sqlite"))
    expect(page.get_by_text("This catalog is empty.", exact=False)).to_be_visible(timeout=20_000)
    page.get_by_text("Charts", exact=True).click()
    expect(page.get_by_text("This catalog is empty: nothing to chart yet.")).to_be_visible()
    shot(page, "dashboard-empty.png")
    assert console == []


def test_new_data_appears_without_a_reload(page, console, serve, catalog_url):
    url, _ = catalog_url
    page.goto(serve(url, refresh_seconds=0.5))
    caption = page.get_by_text(CAPTION)
    expect(caption).to_be_visible(timeout=20_000)
    total = int(re.search(r"of ([\d,]+) observations", caption.inner_text()).group(1).replace(",", ""))
    with cosmoscope.open_catalog(url) as cat:
        cat.add_records([{"file_path": f"/archive/new/{i}.fits", "mission_id": "NEW-1",
                          "observation_timestamp": dt.datetime(2027, 1, 1, tzinfo=UTC)} for i in range(3)])
    expect(caption).to_contain_text(f"of {total + 3} observations", timeout=10_000)
    expect(page.locator(".tabulator-cell[tabulator-field='mission_id']").first).to_have_text("NEW-1")
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


def test_cosmoscope_serve_behind_a_prefix_proxy(page, console, catalog_url, tmp_path):
    url, _ = catalog_url
    port, prefix = free_port(), "/user/alice/cosmoscope"
    proxy_port, stop_proxy = start_proxy(port)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "cosmoscope", "serve", "--catalog", url, "--port", str(port),
                             "--prefix", prefix, "--allow-websocket-origin", f"127.0.0.1:{proxy_port}",
                             "--refresh", "0", "-q"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}{prefix}/dashboard")
        page.goto(f"http://127.0.0.1:{proxy_port}{prefix}/dashboard")
        caption = page.get_by_text(CAPTION)
        expect(caption).to_contain_text("1-25 of", timeout=30_000)
        choose(page, "any mission", "AURORA-2")
        expect(page.locator(".tabulator-cell[tabulator-field='mission_id']").first).to_have_text("AURORA-2")
        assert set(page.locator(".tabulator-cell[tabulator-field='mission_id']").all_inner_texts()) == {"AURORA-2"}
        shot(page, "dashboard-behind-proxy.png")
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
