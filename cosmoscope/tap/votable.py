"""Results and errors as VOTable documents (astropy.io.votable), marked as DALI asks:
``INFO name="QUERY_STATUS"`` OK or ERROR in the results resource, and OVERFLOW after the table
when MAXREC cut the rows."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

VOTABLE_TYPE = "application/x-votable+xml"
_OVERFLOW = b'<INFO name="QUERY_STATUS" value="OVERFLOW"/>'


def _astropy_table(df: pl.DataFrame):
    import numpy as np
    import polars as pl
    from astropy.table import MaskedColumn, Table

    cols = []
    for name in df.columns:
        s = df[name]
        mask = s.is_null().to_numpy()
        if s.dtype.is_numeric():
            values = s.fill_null(0).to_numpy()
        elif s.dtype == pl.Boolean:
            values = s.fill_null(False).to_numpy()
        else:  # text (and anything else, as text): unicodeChar, arraysize="*"
            values = np.array(s.cast(pl.String).fill_null("").to_list(), dtype=str)
        cols.append(MaskedColumn(values, name=name, mask=mask))
    return Table(cols)


def results(df: pl.DataFrame, meta: dict[str, dict] | None = None, *, overflow: bool = False,
            infos: dict[str, str] | None = None) -> bytes:
    """A VOTable of ``df``; ``meta`` gives FIELD unit, ucd, utype, xtype and description by column."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    votable = from_table(_astropy_table(df))
    resource = votable.resources[0]
    resource.type = "results"
    resource.infos.append(Info(name="QUERY_STATUS", value="OK"))
    for k, v in (infos or {}).items():
        resource.infos.append(Info(name=k, value=v))
    for f in resource.tables[0].fields:
        m = (meta or {}).get(f.name)
        if m:
            f.unit = m.get("unit") or None
            f.ucd = m.get("ucd") or None
            f.utype = m.get("utype") or None
            if m.get("xtype"):
                f.xtype = m["xtype"]
            if m.get("description"):
                f.description = m["description"]
    out = io.BytesIO()
    votable.to_xml(out, tabledata_format="tabledata")
    data = out.getvalue()
    if overflow:  # DALI: after the TABLE, in the results RESOURCE
        data = data.replace(b"</TABLE>", b"</TABLE>\n  " + _OVERFLOW, 1)
    return data


def error(message: str) -> bytes:
    """A VOTable error document: ``QUERY_STATUS`` ERROR with the message (and an SCS ``Error``)."""
    from astropy.io.votable.tree import Info, Resource, VOTableFile

    votable = VOTableFile()
    resource = Resource(type="results")
    votable.resources.append(resource)
    status = Info(name="QUERY_STATUS", value="ERROR")
    status.content = message
    resource.infos.append(status)
    votable.infos.append(Info(name="Error", value=message))  # Simple Cone Search 1.03 clients look here
    out = io.BytesIO()
    votable.to_xml(out)
    return out.getvalue()
