"""Writing observation rows for other tools: CSV, Parquet and VOTable (with units and descriptions).

>>> import io, polars as pl
>>> buf = io.BytesIO()
>>> write_table(pl.DataFrame({"ra": [10.5]}), buf, "votable")
>>> b"unit=\\"deg\\"" in buf.getvalue()
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.errors import InvalidArgumentError

if TYPE_CHECKING:
    import polars as pl

#: Formats the explorers export, with their file suffix and media type.
EXPORT_FORMATS = {"csv": (".csv", "text/csv"), "parquet": (".parquet", "application/vnd.apache.parquet"),
                  "votable": (".vot", "application/x-votable+xml")}

#: Units of observation columns, for VOTables.
UNITS = {"ra": "deg", "dec": "deg", "exposure_time": "s", "file_size": "byte"}


def write_table(df: pl.DataFrame, out, fmt: str) -> None:
    """Write observation rows to a binary file object as CSV, Parquet or VOTable.

    CSV has no nested types or time zones to keep: times are ISO 8601 UTC. The VOTable has the
    catalog's column descriptions and units (degrees, seconds, bytes), and times as ISO text.
    """
    import polars as pl

    if fmt == "csv":
        df.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")).write_csv(out)
    elif fmt == "parquet":
        df.write_parquet(out)
    elif fmt == "votable":
        _write_votable(df, out)
    else:
        raise InvalidArgumentError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")


def _write_votable(df: pl.DataFrame, out) -> None:
    import astropy.units as u
    import numpy as np
    import polars as pl
    from astropy.table import MaskedColumn, Table

    text = df.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.f"))
    columns = []
    for name in text.columns:
        s = text[name]
        if s.dtype.is_numeric() or s.dtype == pl.Boolean:
            filled = s.fill_null(0 if s.dtype != pl.Boolean else False).to_numpy()
            columns.append(MaskedColumn(filled, name=name, mask=s.is_null().to_numpy()))
        else:
            columns.append(MaskedColumn(np.array(s.fill_null("").to_list(), dtype=str), name=name,
                                        mask=s.is_null().to_numpy()))
    table = Table(columns)
    fields_ = {f.name: f for f in S.OBSERVATIONS.schema}
    for name in table.colnames:
        if name in UNITS:
            table[name].unit = u.Unit(UNITS[name])
        if name in fields_ and fields_[name].metadata:
            table[name].description = fields_[name].metadata.get(b"doc", b"").decode()
    table.meta["description"] = f"cosmoscope observations ({df.height:,} rows)"
    table.write(out, format="votable")
