"""The read-only Panel dashboard: find observations by what they are, see them charted and on
the sky, follow their lineage, and act on their problems.

Served by ``cosmoscope serve`` (which runs ``panel serve`` on this file)::

    $ cosmoscope serve --catalog sqlite:///data/catalog.sqlite --port 5006
    $ panel serve cosmoscope/ui/dashboard.py --args --catalog sqlite:///data/catalog.sqlite

or from Python, ``pn.serve({"dashboard": lambda: create_app(url)})``. The catalog URL comes from
``--catalog`` after ``--args``, else ``$COSMOSCOPE_CATALOG``, else the default catalog. The
catalog is opened read-only; nothing on the page writes.

The whole view (filters, order, page, tab, columns, the dataset in focus) is a
:class:`~cosmoscope.ui.state.ViewState` kept in the page's URL, so a link reproduces it. Each
session asks the catalog for one page of results at a time; facet counts, charts and problems
are computed off the page's thread (once the page is drawn, at a lower CPU priority), and only
for what is on show; each change reaches the browser as one message, and only the open tab is
visible, so the browser lays out no hidden charts. A periodic check of a cheap
freshness token (row count and newest audit event) refreshes what is on show when new data arrive.
All JavaScript and CSS come from the server itself: the page needs no internet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from html import escape
from typing import TYPE_CHECKING

from cosmoscope.errors import CosmoscopeError
from cosmoscope.ui import query as Q
from cosmoscope.ui.facets import FACETS
from cosmoscope.ui.panel_filters import FiltersPanel
from cosmoscope.ui.panel_components import Tabs
from cosmoscope.ui.panel_lineage import LineageView
from cosmoscope.ui.panel_results import DetailDrawer, ResultsView
from cosmoscope.ui.panel_views import ChartsView, ProblemsView, SummaryView
from cosmoscope.ui.state import TABS as TAB_NAMES
from cosmoscope.ui.state import ViewState

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

log = logging.getLogger(__name__)

#: Tab titles, in order.
TABS = tuple(TAB_NAMES.values())
_TAB_KEYS = tuple(TAB_NAMES)
#: The view-state fields that are search filters.
FILTER_FIELDS = (*(f.field for f in FACETS), "target", "start", "end", "near", "radius")

_CSS = """
.cs-caption {font-size: 15px; margin: 4px 0;}
.cs-muted {color: #6c757d; font-size: 12px;}
.cs-error {color: #b02a37; font-size: 12px; font-weight: 600;}
.cs-badge {display: inline-block; padding: 4px 10px; margin: 0 8px 6px 0; border-radius: 12px;
           background: #f1f3f5; font-size: 13px;}
.cs-badge b {font-size: 15px;}
.cs-bad b {color: #c92a2a;}
.cs-url {word-break: break-all;}
.cs-note {padding: 10px 14px; border-radius: 6px; background: #e7f1ff; color: #084298; margin: 6px 0;}
.cs-ok {padding: 10px 14px; border-radius: 6px; background: #ebfbee; color: #2b8a3e; margin: 6px 0; font-size: 14px;}
.cs-legend {font-size: 12.5px; color: #343a40; line-height: 2;}
.cs-legend b {margin: 0 6px 0 0; color: #495057;}
.cs-swatch {margin-right: 14px; white-space: nowrap;}
.cs-swatch i {display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 4px;
              vertical-align: -1px;}
pre.cs-cmd {background: #212529; color: #f8f9fa; padding: 8px 12px; border-radius: 6px; font-size: 12.5px;
            white-space: pre-wrap; overflow-wrap: anywhere;}
h4.cs-sev {margin: 14px 0 4px 0; font-size: 16px; font-weight: 600;}
h4.cs-sev-error {color: #b02a37;}
h4.cs-sev-warning {color: #8a6d00;}
h5 {margin: 14px 0 6px 0; font-size: 14px;}
"""


class Dashboard:
    """One session's dashboard over the catalog at ``url``.

    Parameters
    ----------
    url
        Catalog URL (opened read-only).
    refresh_seconds
        How often to check for new data (0: never).
    page_size
        Rows per results page.
    state
        The view to open on (a :class:`ViewState` or a URL query); default: the page's own URL.
    """

    def __init__(self, url: str | None = None, *, refresh_seconds: float = 10, page_size: int = 25,
                 catalog: Catalog | None = None, state: ViewState | str | None = None):
        import panel as pn

        self.refresh_seconds = refresh_seconds
        self.page_size = page_size
        self.token = None
        self.error: str | None = None
        self.catalog = catalog
        self._owns_catalog = catalog is None
        self._dirty = set(TABS)
        self._jobs: dict[str, object] = {}
        # Served: background reads asked for before the browser has drawn the page start once it
        # has, so they do not compete with the first view for the machine (and a facet list
        # changed before then would keep its empty look in the browser).
        self._loaded = False
        self._waiting: dict[str, object] = {}
        self._lock = threading.Lock()
        self.colors: dict[str, str] = {}
        self.filters: Q.Filters | None = None
        self.filters_error: str | None = None
        if catalog is None:
            from cosmoscope.catalog import open_catalog

            try:
                self.catalog = open_catalog(url, readonly=True)
            except CosmoscopeError as exc:
                self.error = str(exc)
        self.url = self.catalog.url if self.catalog is not None else (url or "")
        self.state = state if isinstance(state, ViewState) else ViewState.from_query(state or "")

        self.side = FiltersPanel(self)
        self.results = ResultsView(self)
        self.drawer = DetailDrawer(self)
        self.charts = ChartsView(self)
        self.summary = SummaryView(self)
        self.lineage = LineageView(self.catalog, on_open=lambda i: self.update(focus=i, open=True),
                                   on_focus=lambda i: self.update(focus=i))
        self.problems = ProblemsView(self)
        self.updated = pn.pane.HTML("", css_classes=["cs-muted"], sizing_mode="stretch_width")
        self.banner_text = pn.pane.HTML("", margin=(12, 10))
        self.banner_button = pn.widgets.Button(label="Show the new data", color="primary", width=170)
        self.banner_button.on_click(lambda _: self.refresh())
        self.banner = pn.Row(self.banner_text, self.banner_button, visible=False, sizing_mode="stretch_width",
                             styles={"background": "#e7f1ff", "border-radius": "6px"})
        self.tabs = Tabs(
            ("Search", self.results.panel), ("Charts", self.charts.panel), ("Summary", self.summary.panel),
            ("Lineage", self.lineage.panel), ("Problems", self.problems.panel),
            # Every tab reaches the page with the first view (charts and problems are filled behind
            # it), so a tab shows at once when opened; the ones not open are hidden (see _apply).
            dynamic=False, sizing_mode="stretch_width")
        self.tabs.param.watch(lambda e: self.update(tab=_TAB_KEYS[e.new]), "active")

    # -- layout ------------------------------------------------------------------------------

    def servable(self, title: str = "cosmoscope"):
        """The page: filters in the sidebar, tabs in the main area, the record drawer over them."""
        import panel as pn

        from cosmoscope.ui.detail import CSS as DETAIL_CSS

        pn.extension("tabulator", raw_css=[_CSS, DETAIL_CSS], notifications=False)
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None and not self.state.to_query():
            self.state = ViewState.from_query(pn.state.session_args or {})
        # One root each for the sidebar and the main area: a page of few roots is built faster.
        sidebar = [pn.Column(*self.side.panel(),
                             pn.pane.HTML(f"<div class='cs-muted cs-url'>catalog <code>{escape(self.url)}</code> · "
                                          "read-only</div>", sizing_mode="stretch_width"),
                             self.updated, sizing_mode="stretch_width")]
        # The icon is inlined from a file: Panel serves /favicon.ico outside a --prefix, while the
        # page asks for it inside, which a proxy answers with a 404.
        template = pn.template.BootstrapTemplate(title=title, sidebar=sidebar,
                                                 main=[pn.Column(self.banner, self.tabs, self.drawer.panel,
                                                                 sizing_mode="stretch_width")],
                                                 sidebar_width=310, header_background="#1f3a5f",
                                                 favicon=os.path.join(os.path.dirname(pn.__file__), "dist",
                                                                      "images", "favicon.ico"))
        if self.error is not None:
            self._show_unavailable()
        else:
            self.refresh()
            # Once the first view is on the page, the problems are prepared behind it, so that
            # tab opens at once.
            pn.state.onload(self._on_load)
            if self.refresh_seconds:
                pn.state.onload(self._start_watching)
        pn.state.on_session_destroyed(lambda ctx: self.close())
        return template

    _closed = False
    _running = 0  # background reads under way (the catalog is closed after the last)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            now = self.catalog is not None and self._owns_catalog and not self._running
        if now:
            self.catalog.close()

    def _on_load(self) -> None:
        self._loaded = True
        waiting, self._waiting = self._waiting, {}
        with self._one_message():
            for start in waiting.values():
                start()
            self._prepare_other_tabs()

    def _prepare_other_tabs(self) -> None:
        # Problems only: drawing the charts builds their Bokeh figures on the page's thread
        # (0.7-1 s the first time in a session), and a click landing meanwhile waited for it:
        # at 10M rows a facet click took 0.25 s or 1-2 s by luck. Charts are drawn when opened.
        self._render_tab("Problems")

    @contextmanager
    def _one_message(self):
        """Served: the changes made inside reach the browser as one message (not one per widget
        changed, each of which the browser lays out again), and Bokeh recomputes the page's
        model graph once at the end rather than after every change."""
        import panel as pn

        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            yield
            return
        with pn.io.hold(doc, freeze=True):
            yield

    def _start_watching(self) -> None:
        import panel as pn

        pn.state.add_periodic_callback(self.check_for_new_data, period=int(self.refresh_seconds * 1000))

    # -- the view ----------------------------------------------------------------------------

    @property
    def page(self) -> Q.Page | None:
        """The page of results on show."""
        return self.results.page

    @property
    def page_number(self) -> int:
        return self.page.number if self.page is not None else self.state.page

    @property
    def empty(self) -> bool:
        return self.token is not None and self.token[0] == 0

    def update(self, **changes) -> None:
        """Move to a new view: the given parts of :class:`ViewState` changed."""
        if self.catalog is None:
            return
        old = self.state
        new = old.but(**changes)
        if any(getattr(old, f) != getattr(new, f) for f in FILTER_FIELDS) and "page" not in changes:
            new = new.but(page=1)
        if "focus" in changes and not new.focus:
            new = new.but(open=False)
        if new == old:
            return
        self.state = new
        with self._one_message():
            self._apply(old, new)

    def clear_filters(self) -> None:
        """Clear every filter (one query, not one per control)."""
        blank = ViewState()
        self.update(**{f: getattr(blank, f) for f in FILTER_FIELDS})

    def open_record(self, dataset_id: str) -> None:
        """Open the details drawer on ``dataset_id`` (and make it the focus)."""
        self.update(focus=dataset_id, open=True)

    def show_lineage(self, dataset_id: str | None = None) -> None:
        """Show the lineage of ``dataset_id`` (default: the focus) in the Lineage tab."""
        self.update(focus=dataset_id or self.state.focus, tab="lineage", open=False)

    def refresh(self) -> None:
        """Re-read everything on show (choices, counts, results, the open tab)."""
        from cosmoscope.ui.plots import catalog_colors

        self.token = Q.freshness(self.catalog)
        self.colors = catalog_colors(self.catalog)
        self.results.results = None
        with self._one_message():
            self._apply(None, self.state)
            self.updated.object = f"updated {time.strftime('%H:%M:%S')} · {self.token[0]:,} observations"

    def check_for_new_data(self) -> bool:
        """Refresh if the catalog changed since the last look; returns whether it did.

        Beyond the first page the rows on show stay as they are (new data would shift them under
        the reader's eyes): a banner offers to show the new data instead."""
        try:
            token = Q.freshness(self.catalog)
        except CosmoscopeError as exc:  # e.g. the file went away: say so, keep what is shown
            self.updated.object = f"could not check for new data: {escape(str(exc))}"
            return False
        if token == self.token:
            return False
        log.info("new data in %s: %s -> %s", self.url, self.token, token)
        if self.state.page > 1 and self.state.tab == "search":
            self._new_data_banner(token)
            return True
        self.refresh()
        return True

    def _new_data_banner(self, token) -> None:
        n = token[0] - (self.token[0] if self.token else 0)
        words = f"{n:,} new observation{'s' if n != 1 else ''} arrived" if n > 0 else "The catalog changed"
        self.banner_text.object = f"<b>{words}</b> since this page was shown; the rows here stay as they were."
        self.banner.visible = True

    # -- applying a view ---------------------------------------------------------------------

    def _apply(self, old: ViewState | None, new: ViewState) -> None:
        """Show ``new``; ``old`` None: everything is new."""
        self.banner.visible = False
        self.side.show(new)
        tab = _TAB_KEYS.index(new.tab)
        if self.tabs.active != tab:
            self.tabs.active = tab
        # Only the open tab is visible: Bokeh lays out and repaints every figure of the page after
        # any change (a new caption, a new page of rows), hidden tabs' charts too, unless they
        # are not visible; at 10M rows that was half a second of the browser's time per click.
        for i, content in enumerate(self.tabs.objects):
            content.visible = i == tab
        filters_changed = old is None or any(getattr(old, f) != getattr(new, f) for f in FILTER_FIELDS)
        if filters_changed:
            try:
                self.filters, self.filters_error = new.filters(), None
                self.filters.expr(self.catalog)  # an end before the start, an unknown name: said here
            except CosmoscopeError as exc:
                self.filters, self.filters_error = None, str(exc)
            # Charts and problems still being read for the old filters are out of date: dropped
            # when they come (each is read again, for these filters, when its tab is open).
            self._dirty |= {"Charts", "Problems"}
            for key in ("charts", "problems"):
                self._jobs.pop(key, None)
            self.side.show_cone(self.filters, self.filters_error)
            self._count_facets()
        if old is None or filters_changed or (old.sort, old.page, old.columns, old.focus) != (
                new.sort, new.page, new.columns, new.focus):
            self.results.show(new, self.filters, self.filters_error)
        if old is None or (old.focus, old.open) != (new.focus, new.open):
            self.drawer.show(new.focus if new.open else "")
            if old is not None and old.focus != new.focus:
                self._dirty.add("Lineage")
        self._render_tab()
        self._to_url(new)
        if new.notes and old is None:
            self.results._alert("Some parts of the link could not be used: " + "; ".join(new.notes) + ".", "info")

    def _to_url(self, state: ViewState) -> None:
        import panel as pn

        loc = pn.state.location
        if loc is None:
            return
        query = state.to_query()
        search = f"?{query}" if query else ""
        if loc.search != search:
            loc.search = search

    def _later(self, key: str, compute, apply) -> None:
        """``apply(compute())``, with ``compute`` off the page's thread when served; a newer job
        of the same ``key`` makes an older one's result go unused."""
        import panel as pn

        job = object()
        self._jobs[key] = job

        def finish(result):
            # Overtaken, or the page closed; or the browser left it (its session is closed only
            # a while later, and drawing for it meanwhile would hold up the pages still open).
            if self._jobs.get(key) is not job or self._closed or _left(doc):
                return
            with self._one_message():
                apply(result)

        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            def background():
                with self._lock:
                    self._running += 1
                try:
                    return compute()
                finally:
                    with self._lock:
                        self._running -= 1
                        last = self._closed and not self._running and self._owns_catalog
                    if last:
                        self.catalog.close()  # the page closed while this read ran: closed now, not under it

            async def run():
                try:
                    result = await _in_daemon_thread(background, f"cosmoscope-{key}")
                except CosmoscopeError as exc:
                    result = exc
                except Exception:
                    if self._closed:  # the page closed meanwhile, and its catalog with it
                        return
                    raise
                finish(result)

            if self._loaded:
                pn.state.execute(run)
            else:
                self._waiting[key] = lambda: pn.state.execute(run)
            return
        try:
            result = compute()
        except CosmoscopeError as exc:
            result = exc
        if self._jobs.get(key) is job and not self._closed:
            apply(result)

    def _count_facets(self) -> None:
        filters = self.filters
        if filters is None:
            return
        self.side.counting()

        def apply(result):
            if isinstance(result, Exception):
                log.warning("facet counts: %s", result)
                return
            self.side.show_counts(result, self.colors)

        self._later("facets", lambda: self.side.count_all(filters), apply)

    def _render_tab(self, name: str | None = None) -> None:
        """Fill the open tab (or tab ``name``) if what it shows is out of date."""
        if self.catalog is None:
            return
        name = name or TABS[self.tabs.active]
        if name not in self._dirty:
            return
        self._dirty.discard(name)
        filters = self.filters
        if name == "Summary":
            self.summary.show(self.catalog.mission_summary())
        elif name == "Lineage":
            if self.state.focus:
                self.lineage.show(self.state.focus, remember=False)
            else:
                self.lineage.clear()
        elif filters is None:
            target = self.charts if name == "Charts" else self.problems
            from cosmoscope.ui.panel_lineage import note

            (target.caption if name == "Charts" else target.badges).object = note(self.filters_error or "")
        elif name == "Charts":
            from cosmoscope.ui import plots

            self.charts.drawing()
            colors = self.colors
            # The catalog's colours are known: the charts do not read them again.
            self._later("charts", lambda: plots.chart_data(self.catalog, filters, colors=colors or None),
                        lambda data: self.charts.show(data, filters))
        elif name == "Problems":
            self._show_problems(filters)

    def _show_problems(self, filters: Q.Filters) -> None:
        from cosmoscope.ui.problems import problem_groups

        self.problems.loading()

        def compute():
            counts = Q.problem_counts(self.catalog, filters)
            return counts, (problem_groups(self.catalog, filters) if any(counts.values()) else [])

        def apply(result):
            if isinstance(result, Exception):
                self.problems.badges.object = f"<p class='cs-error'>{escape(str(result))}</p>"
                return
            counts, groups = result
            if self.problems.show_counts(counts, filters):
                self.problems.show_groups(groups)

        self._later("problems", compute, apply)

    def _show_unavailable(self) -> None:
        self.results._alert(f"The catalog cannot be shown: {self.error}", "danger")
        for w in (self.side.target, self.side.start, self.side.end, self.side.clear, self.results.prev_button,
                  self.results.next_button):
            w.disabled = True


def _left(doc) -> bool:
    """Whether the browser of a served page has gone: no connection to its session any more."""
    session = getattr(getattr(doc, "session_context", None), "session", None)
    return session is not None and session.connection_count == 0


#: How much lower a background read's CPU priority is than the server's (Linux nice steps).
BACKGROUND_NICE = 5


def _yield_cpu() -> None:
    """Lower the calling thread's CPU priority, so the server's own thread (which answers
    clicks) and, on a shared machine, the browser go first; Linux gives each thread its own nice
    value. Elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE)
    except OSError:  # e.g. not allowed here: reads run as before
        pass


async def _in_daemon_thread(fn, name: str):
    """``fn()`` run in a daemon thread, awaited. Not asyncio.to_thread: the default executor's
    threads are joined at exit, and a `panel serve` stopped with Ctrl-C was seen waiting on one
    for minutes; a read of the catalog is worth nothing once the server stops."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle(result, error):
        if not done.done():
            done.set_exception(error) if error is not None else done.set_result(result)

    def work():
        _yield_cpu()
        try:
            outcome = (fn(), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the server stopped meanwhile: nobody waits for this any more
            pass

    threading.Thread(target=work, name=name, daemon=True).start()
    return await done


def create_app(url: str | None = None, *, refresh_seconds: float = 10, page_size: int = 25):
    """A new dashboard page for one browser session (its view read from the page's URL)."""
    return Dashboard(url, refresh_seconds=refresh_seconds, page_size=page_size).servable()


def _args(argv: list[str]):
    import argparse

    ap = argparse.ArgumentParser(prog="dashboard.py")
    ap.add_argument("--catalog", default=os.environ.get("COSMOSCOPE_CATALOG"))
    ap.add_argument("--refresh", type=float, default=float(os.environ.get("COSMOSCOPE_REFRESH", 10)))
    ap.add_argument("--page-size", type=int, default=25)
    return ap.parse_known_args(argv)[0]


if __name__.startswith("bokeh_app"):  # run by `panel serve`: one call per browser session
    _opts = _args(sys.argv[1:])
    create_app(_opts.catalog, refresh_seconds=_opts.refresh, page_size=_opts.page_size).servable()
