"""The page's own clock, for timing a served page in a browser driven by Playwright.

Timing a page from the driver's side measures the driver too: Playwright looks for an awaited
element at 0, 20, 70, 170 and 270 ms, then every 500 ms, so anything that appears between 0.3
and 0.8 s is reported as 0.8 s or more (and a slow frame moves a result from one poll to the next).
Here the page itself looks, at every animation frame (the moment before it paints), and notes
``performance.now()`` when what is awaited is first visible; a user's click is noted when its
``pointerdown`` reaches the page, and a first view is timed from the start of the navigation
(``performance.now()``'s origin). The driver still waits as before, then reads the page's figure.

Selectors look inside shadow roots (Bokeh and Panel draw in them), as Playwright's do.
"""

from __future__ import annotations

SCRIPT = r"""
(() => {
  const all = (root, sel, out) => {
    for (const e of root.querySelectorAll(sel)) out.push(e);
    for (const e of root.querySelectorAll('*')) if (e.shadowRoot) all(e.shadowRoot, sel, out);
    return out;
  };
  const visible = (e) => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
  };
  const text = (e) => (e.shadowRoot ? e.shadowRoot.textContent : '') + e.textContent;
  const clock = {clicks: [], seen: {}, watching: {}};
  clock.matches = (w) => all(document, w.sel, []).filter(visible)
      .filter((e) => (w.re === null || new RegExp(w.re).test(text(e))) && (w.not === null || text(e) !== w.not))
      .length >= w.n;
  clock.watch = (name, sel, opts = {}) => {
    delete clock.seen[name];
    clock.watching[name] = {sel, n: opts.n ?? 1, re: opts.re ?? null, not: opts.not ?? null};
    if (Object.keys(clock.watching).length === 1) requestAnimationFrame(clock.look);
  };
  clock.look = () => {
    for (const [name, w] of Object.entries(clock.watching)) {
      if (clock.matches(w)) { clock.seen[name] = performance.now(); delete clock.watching[name]; }
    }
    if (Object.keys(clock.watching).length) requestAnimationFrame(clock.look);
  };
  clock.text = (sel) => all(document, sel, []).filter(visible).map(text);
  addEventListener('pointerdown', () => clock.clicks.push(performance.now()), true);
  window.__pageClock = clock;
})();
"""


def install(context) -> None:
    """Put the clock into every page the browser context opens, before the page's own scripts."""
    context.add_init_script(SCRIPT)


def watch(page, name: str, selector: str, *, n: int = 1, matching: str | None = None,
          other_than: str | None = None) -> None:
    """From now on, note when ``n`` visible elements match ``selector`` (and, where given, their
    text matches the regular expression ``matching`` or differs from ``other_than``)."""
    page.evaluate("([name, sel, opts]) => window.__pageClock.watch(name, sel, opts)",
                  [name, selector, {"n": n, "re": matching, "not": other_than}])


def texts(page, selector: str) -> list[str]:
    """The text of each visible element matching ``selector``."""
    return page.evaluate("(sel) => window.__pageClock.text(sel)", selector)


def since_navigation(page, name: str) -> float:
    """Seconds from the start of the page's navigation until ``name`` was seen."""
    return page.evaluate("(name) => window.__pageClock.seen[name]", name) / 1000


def since_click(page, name: str) -> float:
    """Seconds from the last click's ``pointerdown`` until ``name`` was seen."""
    return page.evaluate("(name) => window.__pageClock.seen[name] - window.__pageClock.clicks.at(-1)", name) / 1000
