"""Writing result frames in the format a user asked for."""

from __future__ import annotations

import shutil
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
        from cosmoscope.records import printable

        width = shutil.get_terminal_size((160, 40)).columns
        df = df.with_columns(pl.col(pl.String).map_elements(printable, return_dtype=pl.String))
        with pl.Config(tbl_rows=max(df.height, 1), tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=width,
                       tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            text = str(df) if df.height else "(no rows)"
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
