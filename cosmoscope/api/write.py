"""Write endpoints (need the bearer token): status and quality, lineage, processing runs over HTTP.

A processing run over HTTP is the same as one in Python, step by step: ``POST /runs`` claims the
inputs and returns the run id; the client renews the lease (``POST /runs/{id}/heartbeat``, or any
write for the run) more often than ``lease_seconds``; ``POST /runs/{id}/outputs`` catalogs an
output file lying under the server's output roots; ``POST /runs/{id}/finish`` ends it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from cosmoscope import schema as S
from cosmoscope.api.formats import json_response, records
from cosmoscope.api.read import Problem, Text, get_catalog, get_settings, run_record

_bearer = HTTPBearer(auto_error=False, description="The server's write token.")

RunId = Annotated[str, Path(min_length=1, max_length=200)]
DatasetId = Annotated[str, Path(min_length=1, max_length=200)]
Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Reason = Annotated[str, Field(max_length=2000)]


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Let a write through only with the server's token: 403 on a read-only server or a wrong
    token, 401 without one."""
    settings = get_settings(request)
    if not settings.writable:
        raise HTTPException(403, "this server is read-only: start it with COSMOSCOPE_API_TOKEN or --token-file "
                                 "to allow writes")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "this write needs 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not settings.token_matches(credentials.credentials):
        raise HTTPException(403, "the bearer token is not this server's write token")


router = APIRouter(dependencies=[Depends(require_token)],
                   responses={401: {"model": Problem, "description": "No bearer token"},
                              403: {"model": Problem, "description": "Read-only server, or a wrong token"}})


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: S.ProcessingStatus
    reason: Reason | None = None


class QualityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: Score
    reason: Reason | None = None


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent: Text
    child: Text
    relationship_type: Text = S.RelationshipType.DERIVED.value
    metadata: dict[str, Any] | None = None


class RunRequest(BaseModel):
    """Inputs to claim for a new processing run."""

    model_config = ConfigDict(extra="forbid")
    name: Text
    inputs: list[Text] = Field(default_factory=list)
    params: dict[str, Any] | None = None
    lease_seconds: float = Field(300.0, gt=0, le=86_400, allow_inf_nan=False)
    wait: float | None = Field(None, ge=0, le=30, allow_inf_nan=False,
                               description="Seconds to wait for other runs to let go (default: refuse at once).")


class OutputRequest(BaseModel):
    """An output file to catalog: an absolute path under one of the server's output roots."""

    model_config = ConfigDict(extra="forbid")
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    relationship: Text = S.RelationshipType.RAW_TO_PROCESSED.value
    parents: list[Text] | None = Field(None, description="Inputs it was made from (default: all).")


class RunQuality(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: Text
    score: Score
    reason: Reason | None = None


class FinishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["succeeded", "failed"]
    error: Reason | None = None


def _dataset(cat, dataset_id: str) -> dict:
    import polars as pl

    from cosmoscope.api.read import _observation_schema

    return records(pl.DataFrame([cat.get(dataset_id)], schema=_observation_schema()))[0]


def _refuse_if_claimed(cat, dataset_id: str) -> None:
    from cosmoscope.pipeline._store import claim_holders, is_live
    from cosmoscope.pipeline.runs import ClaimConflictError
    from cosmoscope.times import now

    holder = claim_holders(cat, [dataset_id]).get(dataset_id)
    if holder is not None and is_live(holder[1], now()):
        raise ClaimConflictError(f"{dataset_id} is held by processing run {holder[0]['run_id']}; change it "
                                 "through that run", {dataset_id: holder[0]["run_id"]})


@router.post("/datasets/{dataset_id}/status", summary="Set a dataset's processing status")
def set_status(request: Request, dataset_id: DatasetId, body: Annotated[StatusUpdate, Body()]) -> dict:
    cat = get_catalog(request)
    cat.get(dataset_id)
    _refuse_if_claimed(cat, dataset_id)
    cat.set_status(dataset_id, body.status.value, reason=body.reason)
    return json_response(_dataset(cat, dataset_id))


@router.post("/datasets/{dataset_id}/quality", summary="Set a dataset's quality score")
def set_quality(request: Request, dataset_id: DatasetId, body: Annotated[QualityUpdate, Body()]) -> dict:
    cat = get_catalog(request)
    cat.get(dataset_id)
    _refuse_if_claimed(cat, dataset_id)
    cat.update(dataset_id, data_quality_score=body.score, reason=body.reason)
    return json_response(_dataset(cat, dataset_id))


@router.post("/lineage", summary="Record that one dataset was made from another", status_code=201)
def link(request: Request, body: Annotated[LinkRequest, Body()]) -> dict:
    cat = get_catalog(request)
    cat.link(body.parent, body.child, body.relationship_type, metadata=body.metadata)
    return json_response(body.model_dump(), status_code=201)


@router.post("/runs", summary="Start a processing run: claim its inputs", status_code=201,
             responses={409: {"description": "Another run holds some of the inputs"}})
def start_run(request: Request, body: Annotated[RunRequest, Body()]):
    from cosmoscope.pipeline.runs import start_run as start

    cat, settings = get_catalog(request), get_settings(request)
    if len(body.inputs) > settings.max_preflight:
        raise HTTPException(413, f"parameter 'inputs': at most {settings.max_preflight:,} datasets per run")
    run = start(cat, body.name, body.inputs, body.params, lease_seconds=body.lease_seconds, wait=body.wait)
    return json_response(run_record(cat, run.run_id), status_code=201)


def _attach(request: Request, run_id: str):
    from cosmoscope.pipeline.runs import ProcessingRun

    return ProcessingRun.attach(get_catalog(request), run_id)


@router.post("/runs/{run_id}/heartbeat", summary="Renew a run's lease")
def heartbeat(request: Request, run_id: RunId) -> dict:
    _attach(request, run_id).heartbeat()
    return json_response(run_record(get_catalog(request), run_id))


@router.post("/runs/{run_id}/outputs", summary="Catalog an output file of a run, with its lineage", status_code=201)
def add_output(request: Request, run_id: RunId, body: Annotated[OutputRequest, Body()]) -> dict:
    from cosmoscope.api.paths import inside_roots

    settings = get_settings(request)
    run = _attach(request, run_id)
    real = inside_roots(body.path, settings.output_roots, "path")
    dataset_id = run.add_output(real, body.relationship, parents=body.parents)
    return json_response(_dataset(get_catalog(request), dataset_id), status_code=201)


@router.post("/runs/{run_id}/quality", summary="Record a quality score found by a run")
def run_quality(request: Request, run_id: RunId, body: Annotated[RunQuality, Body()]) -> dict:
    _attach(request, run_id).set_quality(body.dataset_id, body.score, reason=body.reason)
    return json_response(_dataset(get_catalog(request), body.dataset_id))


@router.post("/runs/{run_id}/finish", summary="End a run: succeeded or failed")
def finish(request: Request, run_id: RunId, body: Annotated[FinishRequest, Body()]) -> dict:
    run = _attach(request, run_id)
    if body.outcome == "succeeded":
        run.finish()
    else:
        run.fail(body.error or "failed (reported over HTTP without a reason)")
    return json_response(run_record(get_catalog(request), run_id))
