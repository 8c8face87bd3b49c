"""What the report notebooks show: plain HTML tables of polars frames and a verdict banner.

>>> from cosmoscope.notebook_display import table, verdict
>>> table(cat.mission_summary())                       # doctest: +SKIP
>>> verdict(False, "FAIL: 3 of 80 datasets have problems")  # doctest: +SKIP

Both are re-exported by :mod:`cosmoscope.reports`, which is where the notebooks import them from.
"""

from __future__ import annotations

from typing import Any

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
    rather than cut, and at most ``max_rows`` rows (the rest counted)."""

    def __init__(self, df, max_rows: int = 100, caption: str | None = None):
        self.df, self.max_rows, self.caption = df, max_rows, caption

    def _repr_html_(self) -> str:
        from html import escape

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
        more = (f"<p><i>... and {df.height - self.max_rows:,} more rows</i></p>" if df.height > self.max_rows else "")
        if not df.height:
            more = "<p><i>(no rows)</i></p>"
        return (f'{_TABLE_CSS}{caption}<table class="cosmoscope-report-table"><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>{more}')

    def __repr__(self) -> str:
        return repr(self.df)


def table(df, max_rows: int = 100, caption: str | None = None) -> Table:
    """Show a polars frame as a plain HTML table (see :class:`Table`)."""
    return Table(df, max_rows=max_rows, caption=caption)


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
