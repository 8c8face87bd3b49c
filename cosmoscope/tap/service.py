"""The TAP service (synchronous ADQL queries on ``ivoa.obscore`` and ``TAP_SCHEMA``), its VOSI
endpoints, and a Simple Cone Search, as FastAPI routes of the HTTP API.

Everything reads through the Catalog: ADQL becomes a lazy frame (:mod:`cosmoscope.tap.adql`),
a cone search is ``Catalog.search(near=..., radius=...)``. Parameter names are
case-insensitive (DALI). Errors are VOTable documents with ``QUERY_STATUS`` ERROR and HTTP 400;
asynchronous (UWS) jobs are not offered.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cosmoscope.tap.adql import AdqlError
from cosmoscope.tap.votable import VOTABLE_TYPE

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

router = APIRouter()

#: Rows returned when the client gives no MAXREC, and the most it may ask for.
DEFAULT_MAXREC = 10_000
HARD_MAXREC = 1_000_000
_FORMATS = {"votable", "application/x-votable+xml", "text/xml", "application/xml", "votable/td",
            "application/x-votable+xml;serialization=tabledata"}
_XML = "text/xml"


async def _params(request: Request) -> dict[str, str]:
    """Query and form parameters, names upper-cased (DALI: names are case-insensitive)."""
    from urllib.parse import parse_qsl

    out = {k.upper(): v for k, v in request.query_params.items()}
    if request.method == "POST":
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            raise AdqlError("multipart requests (table uploads) are not supported; send the parameters "
                            "form-encoded or in the URL")
        body = (await request.body()).decode("utf-8", "replace")
        out.update({k.upper(): v for k, v in parse_qsl(body, keep_blank_values=True)})
    return out


def _votable(data: bytes, status: int = 200) -> Response:
    return Response(data, status_code=status, media_type=VOTABLE_TYPE)


def _error(message: str, status: int = 400) -> Response:
    from cosmoscope.tap.votable import error

    return _votable(error(message), status)


def _maxrec(params: dict) -> int:
    text = params.get("MAXREC")
    if text is None or text == "":
        return DEFAULT_MAXREC
    try:
        value = int(text)
    except ValueError:
        raise AdqlError(f"MAXREC must be a whole number, got {text!r}") from None
    if value < 0:
        raise AdqlError("MAXREC cannot be negative")
    return min(value, HARD_MAXREC)


def obscore_tables(cat):
    """The ``tables`` callable of :func:`cosmoscope.tap.adql.plan` for a catalog."""
    from cosmoscope.obscore import COLUMNS, obscore_frame
    from cosmoscope.sky.index import index_filter
    from cosmoscope.tap.schema import TAP_SCHEMA_TABLES, tap_schema_frame

    def tables(name: str, shapes: list) -> tuple[pl.LazyFrame, list[str]]:
        if name in ("ivoa.obscore", "obscore"):
            lf = cat.observations()
            for shape in shapes:  # the exact test is in the WHERE clause itself
                lf = lf.filter(index_filter(*shape.bounding_cone()))
            return obscore_frame(lf), [c.name for c in COLUMNS]
        short = name.removeprefix("tap_schema.")
        if name.startswith("tap_schema.") and short in TAP_SCHEMA_TABLES:
            return tap_schema_frame(short), [c.name for c in TAP_SCHEMA_TABLES[short]]
        known = ["ivoa.obscore", *(f"tap_schema.{t}" for t in TAP_SCHEMA_TABLES)]
        raise AdqlError(f"unknown table {name!r}; this service has {', '.join(known)}")

    return tables


def run_query(cat, query: str, maxrec: int) -> bytes:
    """One ADQL query, as a VOTable (raises :class:`AdqlError` for a query it cannot run)."""
    import polars as pl

    from cosmoscope.errors import CosmoscopeError
    from cosmoscope.tap.adql import plan
    from cosmoscope.tap.schema import field_meta
    from cosmoscope.tap.votable import results

    p = plan(query, obscore_tables(cat), maxrec=maxrec)
    try:
        df = p.frame.collect()
    except pl.exceptions.PolarsError as exc:  # e.g. text compared with a number
        raise AdqlError(f"the query cannot be run on these columns: {str(exc).splitlines()[0]}") from None
    except AdqlError:
        raise
    except CosmoscopeError as exc:
        raise AdqlError(str(exc)) from None
    overflow = df.height > maxrec
    if overflow:
        df = df.head(maxrec)
    return results(df, field_meta(p.table if p.table != "obscore" else "ivoa.obscore"), overflow=overflow)


#: What the VO routes answer, for the OpenAPI description.
_VOTABLE_ANSWERS = {200: {"content": {VOTABLE_TYPE: {}}, "description": "A VOTable of the results"},
                    400: {"content": {VOTABLE_TYPE: {}}, "description": "A VOTable error (QUERY_STATUS ERROR)"}}
_XML_ANSWER = {200: {"content": {_XML: {}}, "description": "A VOSI document"}}


@router.get("/tap/sync", summary="TAP: run an ADQL query (synchronous)", response_class=Response, tags=["VO"],
            responses=_VOTABLE_ANSWERS)
async def tap_sync(request: Request):
    """``REQUEST=doQuery&LANG=ADQL&QUERY=SELECT ...`` (``MAXREC``, ``FORMAT``/``RESPONSEFORMAT``
    votable), in the URL or (POST) form-encoded. The answer is a VOTable; errors are VOTables
    with QUERY_STATUS ERROR."""
    return await _sync(request)


@router.post("/tap/sync", summary="TAP: run an ADQL query (synchronous, form-encoded)", response_class=Response,
             tags=["VO"], responses=_VOTABLE_ANSWERS)
async def tap_sync_post(request: Request):
    return await _sync(request)


async def _sync(request: Request):
    from starlette.concurrency import run_in_threadpool

    try:
        params = await _params(request)
        req = params.get("REQUEST", "doQuery")
        if req.lower() != "doquery":
            raise AdqlError(f"REQUEST={req} is not supported; use REQUEST=doQuery")
        lang = params.get("LANG", "ADQL")
        if not lang.upper().startswith("ADQL"):
            raise AdqlError(f"LANG={lang} is not supported; use LANG=ADQL")
        fmt = params.get("RESPONSEFORMAT") or params.get("FORMAT") or "votable"
        if fmt.lower().replace(" ", "") not in _FORMATS:
            raise AdqlError(f"FORMAT={fmt} is not supported; results are VOTables (FORMAT=votable)")
        query = params.get("QUERY")
        if not query:
            raise AdqlError("give the query as QUERY=SELECT ... FROM ivoa.obscore")
        maxrec = _maxrec(params)
        cat = request.app.state.catalog
        return _votable(await run_in_threadpool(run_query, cat, query, maxrec))
    except AdqlError as exc:
        return _error(str(exc))


@router.get("/tap", summary="TAP service root", tags=["VO"])
def tap_root(request: Request) -> dict:
    base = str(request.url_for("tap_root"))
    return {"service": "IVOA TAP 1.1 (sync), ObsCore 1.1", "sync": base + "/sync", "tables": base + "/tables",
            "capabilities": base + "/capabilities", "availability": base + "/availability"}


@router.get("/tap/tables", summary="VOSI tables", response_class=Response, tags=["VO"], responses=_XML_ANSWER)
def tap_tables():
    from cosmoscope.tap.schema import tableset_xml

    return Response(tableset_xml(), media_type=_XML)


@router.get("/tap/availability", summary="VOSI availability", response_class=Response, tags=["VO"],
            responses=_XML_ANSWER)
def tap_availability(request: Request):
    try:
        request.app.state.catalog.meta()
        up, note = "true", "the catalog answers"
    except Exception as exc:  # noqa: BLE001 - availability reports, it does not fail
        up, note = "false", f"the catalog does not answer: {type(exc).__name__}"
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
            f"<vosi:available>{up}</vosi:available><vosi:note>{note}</vosi:note></vosi:availability>")
    return Response(body, media_type=_XML)


@router.get("/tap/capabilities", summary="VOSI capabilities", response_class=Response, tags=["VO"],
            responses=_XML_ANSWER)
def tap_capabilities(request: Request):
    from xml.sax.saxutils import escape

    base = escape(str(request.url_for("tap_root")))
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"
    xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
    xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">
    <interface xsi:type="vs:ParamHTTP" role="std" version="1.1">
      <accessURL use="base">{base}</accessURL>
    </interface>
    <dataModel ivo-id="ivo://ivoa.net/std/ObsCore#core-1.1">ObsCore-1.1</dataModel>
    <language>
      <name>ADQL</name>
      <version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>
      <description>ADQL 2.0: one table per query, no joins or sub-queries</description>
      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">
        <feature><form>POINT</form></feature><feature><form>CIRCLE</form></feature>
        <feature><form>BOX</form></feature><feature><form>POLYGON</form></feature>
        <feature><form>CONTAINS</form></feature><feature><form>INTERSECTS</form></feature>
        <feature><form>DISTANCE</form></feature>
      </languageFeatures>
    </language>
    <outputFormat><mime>{VOTABLE_TYPE}</mime><alias>votable</alias></outputFormat>
    <outputLimit><default unit="row">{DEFAULT_MAXREC}</default><hard unit="row">{HARD_MAXREC}</hard></outputLimit>
  </capability>
  <capability standardID="ivo://ivoa.net/std/VOSI#capabilities">
    <interface xsi:type="vs:ParamHTTP"><accessURL use="full">{base}/capabilities</accessURL></interface>
  </capability>
  <capability standardID="ivo://ivoa.net/std/VOSI#availability">
    <interface xsi:type="vs:ParamHTTP"><accessURL use="full">{base}/availability</accessURL></interface>
  </capability>
  <capability standardID="ivo://ivoa.net/std/VOSI#tables-1.1">
    <interface xsi:type="vs:ParamHTTP" version="1.1"><accessURL use="full">{base}/tables</accessURL></interface>
  </capability>
</vosi:capabilities>
"""
    return Response(body, media_type=_XML)


#: Columns of a cone search answer by VERB (1 fewest, 3 all), with the SCS 1.03 main UCDs.
_SCS_MAIN = {"obs_id": "ID_MAIN", "s_ra": "POS_EQ_RA_MAIN", "s_dec": "POS_EQ_DEC_MAIN"}


@router.get("/scs", summary="Simple Cone Search 1.03", response_class=Response, tags=["VO"],
            responses=_VOTABLE_ANSWERS)
async def scs(request: Request):
    """``RA``, ``DEC`` (ICRS degrees) and ``SR`` (degrees): observations whose position or
    footprint lies in the cone, as a VOTable. ``VERB`` 1, 2 (default) or 3 chooses the columns."""
    from starlette.concurrency import run_in_threadpool

    try:
        params = await _params(request)
        values = {}
        for key in ("RA", "DEC", "SR"):
            if key not in params:
                raise AdqlError(f"the cone search needs RA, DEC and SR (degrees); {key} is missing")
            try:
                values[key] = float(params[key])
            except ValueError:
                raise AdqlError(f"{key} must be a number of degrees, got {params[key]!r}") from None
        verb = params.get("VERB", "2")
        if verb not in ("1", "2", "3"):
            raise AdqlError(f"VERB must be 1, 2 or 3, got {verb!r}")
        maxrec = _maxrec(params)
        cat = request.app.state.catalog
        return _votable(await run_in_threadpool(_cone, cat, values, int(verb), maxrec))
    except AdqlError as exc:
        return _error(str(exc))


def _cone(cat, values: dict, verb: int, maxrec: int) -> bytes:
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.obscore import COLUMNS, obscore_frame
    from cosmoscope.tap.schema import field_meta
    from cosmoscope.tap.votable import results

    try:
        lf = cat.search(near=(values["RA"], values["DEC"]), radius=values["SR"])
    except InvalidArgumentError as exc:
        raise AdqlError(str(exc)) from None
    if verb == 1:
        names = list(_SCS_MAIN)
    elif verb == 2:
        names = [c.name for c in COLUMNS if c.principal]
    else:
        names = [c.name for c in COLUMNS]
    df = obscore_frame(lf).select(names).head(maxrec + 1).collect()
    overflow = df.height > maxrec
    meta = {k: dict(v) for k, v in field_meta("ivoa.obscore").items()}
    for name, ucd in _SCS_MAIN.items():
        meta[name]["ucd"] = ucd  # SCS 1.03 asks for these UCD1 names on the main columns
    return results(df.head(maxrec), meta, overflow=overflow)
