"""Read endpoints: search, missions, datasets, lineage, history, batch lookup, pre-flight, runs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cosmoscope import schema as S
from cosmoscope.api.formats import MEDIA_TYPES, frame_response, json_response, negotiate, records
from cosmoscope.errors import DatasetNotFoundError, InvalidArgumentError

router = APIRouter()

Text = Annotated[str, Field(min_length=1, max_length=200)]
DatasetId = Annotated[str, Path(min_length=1, max_length=200, description="A dataset id, e.g. ds-1a2b3c4d5e6f7a8b.")]
Format = Literal["json", "ndjson", "csv", "parquet", "arrow"]


# -- response models (for the OpenAPI description) -----------------------------------------

class Problem(BaseModel):
    """Why a request failed, in words (``errors``: the parameter-level details of a 422)."""

    model_config = ConfigDict(extra="allow")
    detail: str
    errors: list[dict[str, Any]] | None = None


#: Error answers every endpoint may give.
ERRORS = {code: {"model": Problem, "description": text} for code, text in (
    (400, "The request cannot be carried out"), (404, "No such dataset, mission or run"),
    (409, "Held by a processing run, or the run has ended"), (413, "Too many ids, or too large a body"),
    (422, "An invalid parameter (the message names it)"), (503, "The catalog is busy; try again"))}


class Page(BaseModel):
    """A page of datasets. ``next_cursor`` (or the ``next`` link) fetches the next page."""

    model_config = ConfigDict(extra="allow")
    results: list[dict[str, Any]]
    count: int
    limit: int
    offset: int
    next_cursor: str | None = None
    next: str | None = None
    total: int | None = None
    closest_targets: list[str] | None = None


class Batch(BaseModel):
    found: list[dict[str, Any]]
    missing: list[str]


class Related(BaseModel):
    dataset_id: str
    related: list[dict[str, Any]]


class History(BaseModel):
    dataset_id: str
    events: list[dict[str, Any]]


class BatchRequest(BaseModel):
    """Ids to look up (at most the server's ``max_batch``, 1,000 by default)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[Text]
    columns: list[Text] | None = None


class SearchFilters(BaseModel):
    """The filters of ``GET /datasets``, as JSON."""

    model_config = ConfigDict(extra="forbid")
    mission: list[Text] | None = None
    instrument: list[Text] | None = None
    satellite: list[Text] | None = None
    target: Text | None = None
    start: Text | None = None
    end: Text | None = None
    min_quality: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    status: list[S.ProcessingStatus] | None = None
    calibration: list[S.CalibrationStatus] | None = None
    product_type: list[Text] | None = None
    file_format: list[Literal["fits", "hdf5", "netcdf", "csv"]] | None = None
    calib_level: int | None = Field(None, ge=0, le=4)
    name: Text | None = None
    near: Text | None = None
    radius: Text | None = None
    box: list[float] | None = Field(None, min_length=4, max_length=4)
    centres_only: bool = False


class PreflightRequest(BaseModel):
    """Datasets to check: ``dataset_ids`` or ``query`` (search filters), not both."""

    model_config = ConfigDict(extra="forbid")
    dataset_ids: list[Text] | None = None
    query: SearchFilters | None = None
    min_quality: float | None = Field(0.8, ge=0, le=1, allow_inf_nan=False)
    require_calibrated: bool = False
    output_dir: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None, description="Where outputs will go; must lie under one of the server's --output-root directories.")
    output_factor: float = Field(2.5, gt=0, le=1000, allow_inf_nan=False)


# -- helpers ---------------------------------------------------------------------------------

def get_catalog(request: Request):
    return request.app.state.catalog


def get_settings(request: Request):
    return request.app.state.settings


def search_filters(
    mission: Annotated[list[str] | None, Query(description="Mission id; repeat for several.")] = None,
    instrument: Annotated[list[str] | None, Query(description="Instrument; repeat for several.")] = None,
    satellite: Annotated[list[str] | None, Query(description="Spacecraft or observatory.")] = None,
    target: Annotated[str | None, Query(min_length=1, max_length=200,
                                        description="Target name; 'NGC*' for a prefix, '*253*' for a part.")] = None,
    start: Annotated[str | None, Query(max_length=64,
                                       description="Observations starting at or after (ISO 8601, UTC; or an age such as 24h).")] = None,
    end: Annotated[str | None, Query(max_length=64, description="Observations starting before (ISO 8601, UTC; or an age such as 24h).")] = None,
    min_quality: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False,
                                               description="Lowest quality, 0-1.")] = None,
    status: Annotated[list[S.ProcessingStatus] | None, Query(description="Processing status.")] = None,
    calibration: Annotated[list[S.CalibrationStatus] | None, Query(description="Calibration status.")] = None,
    product_type: Annotated[list[str] | None, Query(description="ObsCore product type.")] = None,
    file_format: Annotated[list[Literal["fits", "hdf5", "netcdf", "csv"]] | None, Query()] = None,
    calib_level: Annotated[int | None, Query(ge=0, le=4, description="Lowest ObsCore calibration level.")] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=200, description=(
        "Target name, forgiving: case, spaces and punctuation ignored ('ngc253' finds 'NGC 253').")),
    ] = None,
    near: Annotated[str | None, Query(min_length=1, max_length=200, description=(
        "Centre of a cone: '10.68 41.27' (ICRS degrees), '00h42m44s +41d16m' or a target name."))] = None,
    radius: Annotated[str | None, Query(min_length=1, max_length=64, description=(
        "Radius of the cone: degrees, or with a unit such as 30arcmin (above 0, at most 180 degrees)."))] = None,
    box: Annotated[list[float] | None, Query(description=(
        "A coordinate box: give it four times, RA_MIN, RA_MAX, DEC_MIN, DEC_MAX in degrees."))] = None,
    centres_only: Annotated[bool, Query(description="Match positions only, not overlapping footprints.")] = False,
) -> dict:
    """The search filters of a request, checked."""
    from cosmoscope.errors import SkyInputError

    if box is not None and len(box) != 4:
        raise SkyInputError(f"parameter 'box': give four values (RA_MIN, RA_MAX, DEC_MIN, DEC_MAX), got {len(box)}")
    if radius is not None:
        from cosmoscope.sky.positions import parse_radius

        radius = parse_radius(radius)
    out = dict(mission=mission, instrument=instrument, satellite=satellite, target=target, start=start, end=end,
               min_quality=min_quality, status=status, calibration=calibration, product_type=product_type,
               file_format=file_format, calib_level=calib_level, name=name, near=near, radius=radius, box=box,
               footprints=None if not centres_only else False)
    for name in ("mission", "instrument", "satellite", "product_type"):
        for v in out[name] or ():
            if not v or len(v) > 200:
                raise InvalidArgumentError(f"parameter {name!r}: each value must be 1 to 200 characters")
    for name in ("start", "end"):
        if out[name] is not None:
            from cosmoscope.times import to_time

            try:
                out[name] = to_time(out[name], name=name)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"parameter {name!r}: {exc}") from None
    return {k: v for k, v in out.items() if v is not None}


def _columns(columns: list[str] | None) -> list[str] | None:
    if not columns:
        return None
    names = S.OBSERVATIONS.schema.names
    bad = [c for c in columns if c not in names]
    if bad:
        raise InvalidArgumentError(f"parameter 'columns': unknown column {bad[0]!r}; valid columns are "
                                   f"{', '.join(names)}")
    return ["dataset_id", *[c for c in dict.fromkeys(columns) if c != "dataset_id"]]


def _page_of(cat, lf: pl.LazyFrame | None, *, limit: int, offset: int, cursor: str | None, columns,
             want_total: bool, filters: dict | None = None) -> tuple:
    """A page ordered by dataset id: (rows, next_cursor, total). With the search ``filters``,
    one ordered, limited store read (:meth:`~cosmoscope.catalog.Catalog.search_page`) and a
    total from the rollups; else a page of the lazy frame ``lf``."""
    import polars as pl

    if filters is not None:
        df = cat.search_page(limit + 1, offset=offset, after=cursor, columns=columns, **filters)
    else:
        if cursor is not None:
            lf = lf.filter(pl.col("dataset_id") > cursor)
        ids = lf.select("dataset_id").sort("dataset_id").head(offset + limit + 1).collect()["dataset_id"]
        ids = ids.to_list()[offset:]
        df = cat.lookup(ids, columns).sort("dataset_id") if ids else \
            cat.observations().select(columns or S.OBSERVATIONS.schema.names).head(0).collect()
    more = df.height > limit
    df = df.head(limit)
    total = None
    if want_total:
        total = cat.count(**filters) if filters is not None else cat.count(lf)  # every match, any page
    return df, (df["dataset_id"][-1] if more else None), total


def _search_response(request: Request, cat, lf, *, limit, offset, cursor, columns, total, fmt, accept,
                     filters: dict | None = None, name: str | None = None):
    df, next_cursor, n_total = _page_of(cat, lf, limit=limit, offset=offset, cursor=cursor,
                                        columns=_columns(columns), want_total=total, filters=filters)
    nxt = None
    if next_cursor is not None:
        nxt = str(request.url.remove_query_params(["offset", "cursor"]).include_query_params(cursor=next_cursor))
    envelope = {"count": df.height, "limit": limit, "offset": offset, "next_cursor": next_cursor, "next": nxt,
                "total": n_total}
    if name and df.height == 0 and offset == 0 and cursor is None:
        envelope["closest_targets"] = cat.closest_targets(name)  # "did you mean", when a name finds nothing
    headers = {"Link": f'<{nxt}>; rel="next"'} if nxt and nxt.isascii() else None
    return frame_response(df, negotiate(fmt, accept), envelope=envelope, headers=headers)


_FRAME_CONTENT = {"content": {MEDIA_TYPES[f]: {} for f in ("ndjson", "csv", "parquet", "arrow")}}


# -- endpoints -------------------------------------------------------------------------------

@router.get("/", summary="What this server is")
def index(request: Request) -> dict:
    from cosmoscope import __version__

    cat, settings = get_catalog(request), get_settings(request)
    return {"name": "cosmoscope", "version": __version__, "schema_version": cat.schema_version,
            "writable": settings.writable, "accepts_outputs": bool(settings.output_roots),
            "docs": str(request.url_for("swagger_ui_html")), "openapi": str(request.url_for("openapi"))}


@router.get("/health", summary="Liveness check")
def health(request: Request) -> dict:
    get_catalog(request).meta()
    return {"ok": True}


@router.get("/datasets", summary="Search datasets", response_model=Page, responses={200: _FRAME_CONTENT})
def search(
    request: Request,
    filters: Annotated[dict, Depends(search_filters)],
    limit: Annotated[int, Query(ge=1, description="Rows per page (at most the server's max_page).")] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip (after the cursor, if any).")] = 0,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200,
                                        description="next_cursor of the previous page.")] = None,
    columns: Annotated[list[str] | None, Query(description="Columns to return; repeat for several.")] = None,
    total: Annotated[bool, Query(description="Also count every matching dataset (from the catalog's rollups "
                                            "when the filters allow, else slower).")] = False,
    format: Annotated[Format | None, Query(description="Response format; default from Accept, else json.")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
):
    """Datasets matching every filter, ordered by dataset id, a page at a time, as JSON, NDJSON,
    CSV, Parquet or Arrow IPC (``format=`` or the Accept header)."""
    _check_limit(request, limit)
    cat = get_catalog(request)
    # No lazy frame: with search filters a page is one ordered, limited store read (_page_of).
    return _search_response(request, cat, None, limit=limit, offset=offset,
                            cursor=cursor, columns=columns, total=total, fmt=format, accept=accept, filters=filters,
                            name=filters.get("name") or filters.get("target"))


@router.get("/available", summary="Datasets ready for a pipeline", response_model=Page, responses={200: _FRAME_CONTENT})
def available(
    request: Request,
    mission: Annotated[list[str] | None, Query(description="Mission id; repeat for several.")] = None,
    min_quality: Annotated[float, Query(ge=0, le=1, allow_inf_nan=False)] = 0.8,
    window_days: Annotated[float | None, Query(gt=0, le=36_500, allow_inf_nan=False,
                                               description="Observed within this many days before `until`.")] = 30,
    target: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    until: Annotated[str | None, Query(max_length=64, description="End of the window (default now).")] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    columns: Annotated[list[str] | None, Query()] = None,
    format: Annotated[Format | None, Query()] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
):
    """Good enough, recent enough, present, and not being processed (see
    ``cosmoscope.pipeline.available_datasets``)."""
    _check_limit(request, limit)
    cat = get_catalog(request)
    for v in mission or ():
        if not v or len(v) > 200:
            raise InvalidArgumentError("parameter 'mission': each value must be 1 to 200 characters")
    window = dt.timedelta(days=window_days) if window_days is not None else None
    try:
        lf = cat.available_datasets(mission, min_quality=min_quality, window=window, target=target, until=until)
    except OverflowError:
        raise InvalidArgumentError("parameter 'window_days': the window reaches before year 1") from None
    return _search_response(request, cat, lf, limit=limit, offset=offset, cursor=cursor, columns=columns,
                            total=False, fmt=format, accept=accept)


@router.get("/missions", summary="Per-mission summary")
def missions(request: Request,
             mission: Annotated[list[str] | None, Query(description="Only these missions.")] = None) -> list[dict]:
    """Datasets, bytes, time coverage, quality and status counts per mission."""
    for v in mission or ():
        if not v or len(v) > 200:
            raise InvalidArgumentError("parameter 'mission': each value must be 1 to 200 characters")
    return json_response(records(get_catalog(request).mission_summary(mission)))


@router.get("/missions/{mission}", summary="One mission's summary")
def mission_detail(request: Request, mission: Annotated[str, Path(min_length=1, max_length=200)]) -> dict:
    rows = records(get_catalog(request).mission_summary(mission))
    if not rows:
        raise DatasetNotFoundError(f"no datasets of mission {mission!r} in the catalog")
    return json_response(rows[0])


@router.get("/datasets/{dataset_id}", summary="One dataset's record")
def dataset(request: Request, dataset_id: DatasetId) -> dict:
    """Every column of the dataset's row; JSON columns (``mission_specific`` ...) as objects."""
    cat = get_catalog(request)
    df = cat.lookup([dataset_id])
    if df.height == 0:
        cat.get(dataset_id)  # raises: 404
    return json_response(records(df)[0], plain=True)


@router.get("/datasets/{dataset_id}/related", summary="Datasets linked by lineage", response_model=Related)
def related(request: Request, dataset_id: DatasetId,
            direction: Annotated[Literal["upstream", "downstream", "both"], Query()] = "both",
            depth: Annotated[int | None, Query(ge=1, le=100, description="Most hops (default: all).")] = None):
    df = get_catalog(request).related(dataset_id, direction=direction, depth=depth)
    return json_response({"dataset_id": dataset_id, "related": records(df)})


@router.get("/datasets/{dataset_id}/history", summary="The dataset's audit trail", response_model=History)
def history(request: Request, dataset_id: DatasetId,
            upstream: Annotated[bool, Query(description="Include everything it was made from.")] = False):
    cat = get_catalog(request)
    df = cat.history(dataset_id, upstream=upstream)
    if df.height == 0:
        cat.get(dataset_id)  # 404 if unknown
    return json_response({"dataset_id": dataset_id, "events": records(df)})


@router.post("/datasets/batch", summary="Look up many datasets at once", response_model=Batch,
             responses={413: {"description": "Too many ids"}})
def batch(request: Request, body: Annotated[BatchRequest, Body()]):
    settings = get_settings(request)
    if len(body.ids) > settings.max_batch:
        raise HTTPException(413, f"parameter 'ids': at most {settings.max_batch:,} ids per request, got "
                                 f"{len(body.ids):,}; split the lookup")
    ids = list(dict.fromkeys(body.ids))
    df = get_catalog(request).lookup(ids, _columns(body.columns))
    found = set(df["dataset_id"].to_list()) if "dataset_id" in df.columns else set()
    return json_response({"found": records(df), "missing": [i for i in ids if i not in found]})


@router.post("/preflight", summary="Check datasets before processing them",
             responses={413: {"description": "Too many datasets"}})
def preflight(request: Request, body: Annotated[PreflightRequest, Body()]) -> dict:
    """Go / no-go, and per dataset why: missing or changed file, low quality, not calibrated,
    already being processed; and whether the output directory has room."""
    from cosmoscope.api.paths import inside_roots

    cat, settings = get_catalog(request), get_settings(request)
    if (body.dataset_ids is None) == (body.query is None):
        raise InvalidArgumentError("give either 'dataset_ids' or 'query', not both and not neither")
    output_dir = None
    if body.output_dir is not None:
        output_dir = inside_roots(body.output_dir, settings.output_roots, "output_dir", must_exist=False)
    if body.dataset_ids is not None:
        selection = list(dict.fromkeys(body.dataset_ids))
    else:
        filters = search_filters(**body.query.model_dump())
        selection = cat.search(**filters).select("dataset_id").head(settings.max_preflight + 1).collect()
    if len(selection) > settings.max_preflight:
        raise HTTPException(413, f"at most {settings.max_preflight:,} datasets per pre-flight; narrow the query "
                                 "or split the ids")
    report = cat.preflight(selection, min_quality=body.min_quality, require_calibrated=body.require_calibrated,
                           output_dir=output_dir, output_factor=body.output_factor)
    return json_response(report.to_dict())


@router.get("/runs", summary="Processing runs, newest first")
def runs(request: Request,
         status: Annotated[list[S.RunStatus] | None, Query()] = None,
         name: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
         limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict]:
    import polars as pl

    lf = get_catalog(request).frame(S.PROCESSING_RUNS.name)
    if status:
        lf = lf.filter(pl.col("status").is_in([s.value for s in status]))
    if name:
        lf = lf.filter(pl.col("name") == name)
    return json_response(records(lf.sort("started_at", descending=True).head(limit).collect()))


@router.get("/runs/{run_id}", summary="One processing run, with what it holds")
def run(request: Request, run_id: Annotated[str, Path(min_length=1, max_length=200)]) -> dict:
    return json_response(run_record(get_catalog(request), run_id))


def run_record(cat, run_id: str) -> dict:
    """A run's row, its lease expiry and the datasets it holds now (none once it has ended); 404 if
    there is no such run."""
    from cosmoscope.pipeline._store import lease_expiry, rows_by

    rows = rows_by(cat, S.PROCESSING_RUNS.name, "run_id", [run_id])
    if not rows:
        raise DatasetNotFoundError(f"no processing run {run_id!r} in the catalog")
    claims = rows_by(cat, S.PROCESSING_CLAIMS.name, "run_id", [run_id])
    try:
        params = json.loads(rows[0]["params"]) if rows[0]["params"] else None
    except ValueError:
        params = rows[0]["params"]
    return dict(rows[0], params=params, lease_expires_at=lease_expiry(rows[0]),
                held_inputs=[c["dataset_id"] for c in claims if c["role"] == "input"],
                held_outputs=[c["dataset_id"] for c in claims if c["role"] == "output"])


def _check_limit(request: Request, limit: int) -> None:
    cap = get_settings(request).max_page
    if limit > cap:
        raise InvalidArgumentError(f"parameter 'limit': at most {cap:,} rows per page; use the cursor for more")


def _observation_schema():
    import polars as pl

    return pl.from_arrow(S.OBSERVATIONS.schema.empty_table()).schema
