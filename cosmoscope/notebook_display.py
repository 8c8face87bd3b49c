"""What the report notebooks show: plain HTML tables of polars frames and a verdict banner,
and the set-up every report notebook starts with.

>>> from cosmoscope.notebook_display import table, verdict
>>> table(cat.mission_summary())                       # doctest: +SKIP
>>> verdict(False, "FAIL: 3 of 80 datasets have problems")  # doctest: +SKIP

A long table shows its first rows; when the notebook runs as a report (``cosmoscope report``
sets ``$COSMOSCOPE_REPORT_ATTACHMENTS``), the whole table is also written beside the report as
CSV and Parquet and the page links to both. All three are re-exported by :mod:`cosmoscope.reports`,
which is where the notebooks import them from.
"""

from __future__ import annotations

import os
import re
from html import escape
from typing import Any

#: Where a report's attachments go (a directory), and the link to it from the report's page.
ATTACHMENTS_ENV, ATTACHMENTS_URL_ENV = "COSMOSCOPE_REPORT_ATTACHMENTS", "COSMOSCOPE_REPORT_ATTACHMENTS_URL"
#: Rows a table shows before it is summarised.
MAX_ROWS = 25

_TABLE_CSS = """<style>
table.cosmoscope-report-table {border-collapse: collapse; font-size: 12.5px; margin: 4px 0 10px 0;}
table.cosmoscope-report-table th {text-align: left !important; border-bottom: 2px solid #888; padding: 3px 10px;}
table.cosmoscope-report-table td {text-align: left !important; border-bottom: 1px solid #ddd; padding: 3px 10px;
                                  vertical-align: top; max-width: 48em; overflow-wrap: anywhere;}
table.cosmoscope-report-table td.num {text-align: right !important; font-variant-numeric: tabular-nums;}
table.cosmoscope-report-table td.short {white-space: nowrap;}
table.cosmoscope-report-table tr:nth-child(even) td {background: rgba(127, 127, 127, 0.07);}
</style>"""


class Table:
    """A frame shown as a plain HTML table in notebooks and their HTML exports: times in UTC
    to the second, numbers with thousands separators, missing values blank, long text wrapped
    rather than cut, and at most ``max_rows`` rows (the rest counted, and attached whole when
    the notebook runs as a report)."""

    def __init__(self, df, max_rows: int = MAX_ROWS, caption: str | None = None, name: str | None = None):
        self.df, self.max_rows, self.caption = df, max_rows, caption
        self.name = name or caption
        self.attached: list[str] = []
        if df.height > max_rows:
            self.attached = attach(df, self.name or "table")

    def _repr_html_(self) -> str:
        df = self.df
        shown = df.head(self.max_rows)
        numeric = [dtype.is_numeric() for dtype in shown.dtypes]
        head = "".join(f"<th>{escape(str(c))}</th>" for c in shown.columns)
        body = []
        for row in shown.iter_rows():
            texts = [_cell(v) for v in row]
            # Numbers align right; short text never wraps; long text (paths, reasons) wraps anywhere.
            cells = "".join(f'<td class="{"num" if num else "short" if len(t) <= 30 else "long"}">{escape(t)}</td>'
                            for t, num in zip(texts, numeric))
            body.append(f"<tr>{cells}</tr>")
        caption = f"<p><b>{escape(self.caption)}</b></p>" if self.caption else ""
        more = ""
        if df.height > self.max_rows:
            links = " ".join(f'<a href="{escape(url)}" download>{escape(url.rsplit(".", 1)[-1].upper())}</a>'
                             for url in self.attached)
            more = (f"<p><i>The first {self.max_rows:,} of {df.height:,} rows"
                    + (f"; the whole table: {links}" if links else f"; {df.height - self.max_rows:,} more") + "</i></p>")
        if not df.height:
            more = "<p><i>(no rows)</i></p>"
        return (f'{_TABLE_CSS}{caption}<table class="cosmoscope-report-table"><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>{more}')

    def __repr__(self) -> str:
        return repr(self.df)


def table(df, max_rows: int = MAX_ROWS, caption: str | None = None, name: str | None = None) -> Table:
    """Show a polars frame as a plain HTML table (see :class:`Table`); ``name`` names its
    attached files (default: the caption)."""
    return Table(df, max_rows=max_rows, caption=caption, name=name)


_taken: dict[str, set] = {}


def attach(df, name: str) -> list[str]:
    """Write ``df`` as CSV and Parquet into the report's attachments directory (if the notebook
    runs as a report); returns the links to them, relative to the report's page."""
    directory = os.environ.get(ATTACHMENTS_ENV)
    if not directory:
        return []
    import polars as pl

    os.makedirs(directory, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "table"
    taken = _taken.setdefault(directory, set())
    stem, k = slug, 1
    while stem in taken:
        k += 1
        stem = f"{slug}-{k}"
    taken.add(stem)
    base = os.environ.get(ATTACHMENTS_URL_ENV, os.path.basename(directory.rstrip("/")))
    flat = df.with_columns(pl.col(pl.List).cast(pl.List(pl.String)).list.join(", ")) if any(
        isinstance(t, pl.List) for t in df.dtypes) else df
    flat.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")).write_csv(
        os.path.join(directory, f"{stem}.csv"))
    df.write_parquet(os.path.join(directory, f"{stem}.parquet"))
    return [f"{base}/{stem}.csv", f"{base}/{stem}.parquet"]


def setup_notebook(*, rows: int = 50) -> None:
    """What every report notebook does first: polars tables that read well, and charts whose
    JavaScript and styles are put into the notebook itself (so its HTML opens without internet)
    unless ``$COSMOSCOPE_BOKEH_RESOURCES`` is ``cdn``."""
    import polars as pl

    pl.Config.set_tbl_rows(rows)
    pl.Config.set_fmt_str_lengths(100)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    if os.environ.get("COSMOSCOPE_BOKEH_RESOURCES", "inline") == "cdn":
        import holoviews as hv

        hv.extension("bokeh", logo=False)
    else:
        from cosmoscope.ui.plots import load_bokeh

        load_bokeh()


def _cell(value) -> str:
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value == value else ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def verdict(passed: bool, headline: str, detail: str = "") -> Any:
    """A large PASS/FAIL (or GO/NO-GO) banner for a notebook's last cell; ``data-verdict`` in
    the HTML carries the headline's first word for scripts."""
    from html import escape

    from IPython.display import HTML

    colour = "#1a7f37" if passed else "#cf222e"
    word = headline.split(":", 1)[0].strip()
    return HTML(f'<div class="cosmoscope-verdict" data-verdict="{escape(word)}" style="padding:14px 18px;'
                f'border-radius:6px;background:{colour};color:white;font-size:20px;font-weight:bold">'
                f'{escape(headline)}</div>' + (f"<p>{escape(detail)}</p>" if detail else ""))
