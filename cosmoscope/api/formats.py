"""Rows as HTTP responses: JSON, NDJSON, CSV, Parquet or Arrow IPC, chosen by ``format=`` or Accept."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from typing import TYPE_CHECKING, Any

from cosmoscope.records import JSON_COLUMNS

if TYPE_CHECKING:
    import polars as pl
    from starlette.responses import Response

#: Response formats by name, with their media types.
MEDIA_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
_BY_MEDIA = {v: k for k, v in MEDIA_TYPES.items()} | {"application/x-parquet": "parquet",
                                                      "application/vnd.apache.arrow.file": "arrow"}


def negotiate(fmt: str | None, accept: str | None) -> str:
    """The format to answer in: ``fmt`` if given, else the best one the Accept header names,
    else JSON.

    >>> negotiate(None, "text/csv;q=0.5, application/vnd.apache.parquet")
    'parquet'
    >>> negotiate(None, "*/*")
    'json'
    """
    if fmt:
        return fmt
    best, best_q = "json", -1.0
    for i, part in enumerate((accept or "").split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        name = _BY_MEDIA.get(media.lower())
        if name and q > best_q and q > 0:
            best, best_q = name, q
    return best


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO text and non-finite floats as null, ready for json.dumps."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def records(df: pl.DataFrame, *, decode_json: bool = True) -> list[dict]:
    """Rows of ``df`` as JSON-ready dicts; JSON text columns become objects when ``decode_json``."""
    import orjson

    rows = orjson.loads(df.write_json()) if df.height else []
    if decode_json:
        cols = [c for c in df.columns if c in JSON_COLUMNS or c == "params"]  # params: of a run
        for row in rows:
            for c in cols:
                text = row.get(c)
                if isinstance(text, str):
                    try:
                        row[c] = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        try:  # NaN or Infinity, which JSON has not: null, as JSON has them
                            row[c] = json.loads(text, parse_constant=_no_constant)
                        except ValueError:
                            pass  # not JSON after all: keep the text
    return rows


def _no_constant(name: str) -> None:
    """NaN and Infinity in stored JSON text: null, as JSON has them."""
    return None


def json_response(payload: Any, status_code: int = 200, headers: dict | None = None, *,
                  plain: bool = False) -> Response:
    """``payload`` as JSON; ``plain``: it holds only JSON types already (rows from :func:`records`),
    so the walk that converts times and NaN is skipped."""
    import orjson
    from starlette.responses import Response

    body = orjson.dumps(payload if plain else jsonable(payload))
    return Response(body, status_code=status_code, media_type=MEDIA_TYPES["json"], headers=headers)


def frame_response(df: pl.DataFrame, fmt: str, *, envelope: dict | None = None,
                   headers: dict | None = None) -> Response:
    """``df`` in ``fmt``. JSON wraps the rows as ``results`` in ``envelope`` (pagination facts);
    the other formats carry those facts in ``X-`` headers."""
    from starlette.responses import Response

    if fmt == "json":
        envelope = jsonable(envelope or {})
        return json_response({**envelope, "results": records(df)}, headers=headers, plain=True)
    extra = dict(headers or {})
    for key, value in (envelope or {}).items():
        if value is not None and not isinstance(value, (dict, list)) and str(value).isascii():
            extra[f"X-{key.replace('_', '-').title()}"] = str(value)
    if fmt == "ndjson":
        import orjson

        body = b"".join(orjson.dumps(r) + b"\n" for r in records(df))
    elif fmt == "csv":
        body = df.write_csv().encode()
    else:
        buf = io.BytesIO()
        if fmt == "parquet":
            df.write_parquet(buf)
        else:
            import pyarrow as pa

            table = df.to_arrow()
            with pa.ipc.new_stream(buf, table.schema) as writer:
                writer.write_table(table)
        body = buf.getvalue()
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=extra)
