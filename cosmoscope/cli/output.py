"""Writing result frames in the format a user asked for."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from cosmoscope.errors import InvalidArgumentError

if TYPE_CHECKING:
    import polars as pl

FORMATS = ("table", "csv", "json", "ndjson", "parquet", "arrow")


def add_format_options(parser, default: str = "table") -> None:
    parser.add_argument("--format", "-f", choices=FORMATS, default=default,
                        help=f"output format (default: {default}); parquet and arrow need --output or a pipe")
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")


def table_text(df: pl.DataFrame) -> str:
    """``df`` as aligned columns under an underlined header, one row a line and every value
    whole (a terminal narrower than a row wraps the line; grep, sort and cut see whole rows).
    Control characters in text show as escapes."""
    import polars as pl

    from cosmoscope.records import printable

    if df.height == 0:
        return "(no rows)"
    df = df.with_columns(pl.col(pl.String).map_elements(printable, return_dtype=pl.String))
    longest = max([len(c) for c in df.columns] + [
        df[c].str.len_chars().max() or 0 for c in df.columns if df[c].dtype == pl.String])
    # polars takes widths up to 65,535 (a u16); within them it neither cuts nor wraps a value.
    with pl.Config(tbl_rows=df.height, tbl_cols=-1, fmt_str_lengths=min(max(longest, 8), 65_535),
                   tbl_width_chars=65_535, tbl_formatting="NOTHING", tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_hide_dtype_separator=True):
        lines = [line[1:].rstrip() for line in str(df).splitlines()]  # polars pads each side with a space
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", lines[0])]
    ends = [s - 2 for s in starts[1:]] + [max(map(len, lines))]
    underline = "  ".join("-" * (e - s) for s, e in zip(starts, ends))
    return "\n".join([lines[0], underline, *lines[1:]])


def write_frame(df: pl.DataFrame, fmt: str, output: str | None = None, *, title: str | None = None) -> None:
    """Write ``df`` as a table, CSV, JSON, NDJSON, Parquet or Arrow IPC."""
    import polars as pl

    if fmt in ("parquet", "arrow") and output is None and sys.stdout.isatty():
        raise InvalidArgumentError(f"{fmt} is binary: give --output FILE or pipe the output to a file")
    if output is not None:
        target = output
    else:
        target = sys.stdout.buffer if fmt in ("parquet", "arrow") else sys.stdout
    if fmt == "table":
        text = table_text(df)
        if title:
            text = f"{title}\n{text}"
        if output is None:
            print(text)
        else:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    elif fmt == "csv":
        df.write_csv(target)
    elif fmt == "json":
        df.write_json(target)
        if output is None:
            print()
    elif fmt == "ndjson":
        df.write_ndjson(target)
    elif fmt == "parquet":
        df.write_parquet(target)
    elif fmt == "arrow":
        df.write_ipc(target)
    if output is None and fmt not in ("parquet", "arrow"):
        sys.stdout.flush()
