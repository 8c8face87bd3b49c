"""A server-sent-event stream of newly cataloged datasets: real-time data availability.

The stream polls the catalog for rows whose ``ingested_at`` is newer than its cursor (one pushed
down filter through the lazy frame), sends each as an ``event: dataset`` whose ``id`` is the
cursor ``<ingested_at in µs>:<dataset_id>``, and a comment line when nothing is new, so proxies
keep the connection open. A client that reconnects with ``Last-Event-ID`` (browsers'
``EventSource`` do this by themselves) or ``?since=`` resumes where it stopped.

A writer stamps ``ingested_at`` just before its transaction commits, so a slow commit can land
a row slightly older than rows already sent. Each poll therefore looks
:data:`LATE_COMMIT_SECONDS` back and skips the ids it has sent.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import StreamingResponse

from cosmoscope.api.read import get_catalog, get_settings, search_filters
from cosmoscope.errors import InvalidArgumentError
from cosmoscope.times import EPOCH, epoch_us

router = APIRouter()

#: How far back each poll looks for rows committed late.
LATE_COMMIT_SECONDS = 5.0
#: Most datasets sent per poll; the rest follow at the next one.
MAX_PER_POLL = 1_000
#: Columns sent for each new dataset unless ``columns`` says otherwise.
STREAM_COLUMNS = ["dataset_id", "mission_id", "instrument_type", "target_object", "observation_timestamp",
                  "data_quality_score", "calibration_status", "calib_level", "processing_status", "file_format",
                  "file_size", "file_path", "ingested_at"]


def parse_cursor(text: str, param: str = "since") -> tuple[int, str]:
    """``<µs>:<dataset_id>`` or an ISO 8601 time as (microseconds since 1970, last id).

    >>> parse_cursor("1790000000000000:ds-1")
    (1790000000000000, 'ds-1')
    >>> parse_cursor("2026-11-27T00:00:00Z")
    (1795737600000000, '')
    """
    head, sep, tail = text.partition(":")
    if sep and head.isdigit() and len(head) <= 18:
        return int(head), tail
    from cosmoscope.times import to_time

    try:
        t = to_time(text, name=param)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"parameter {param!r}: {exc}; or give a cursor such as "
                                   "'1795737600000000:ds-1a2b...' from an event id") from None
    return epoch_us(t), ""


class _Follower:
    """The polling state of one stream."""

    def __init__(self, catalog, expr, columns, after: tuple[int, str]):
        self.catalog, self.expr, self.columns = catalog, expr, columns
        self.cursor = after
        self.sent: dict[str, int] = {}  # ids sent within the look-back window -> their µs
        self.first = True

    def poll(self) -> list[tuple[str, dict]]:
        import polars as pl

        from cosmoscope.api.formats import records

        after_us, after_id = self.cursor
        lo_t = EPOCH + dt.timedelta(microseconds=after_us - int(LATE_COMMIT_SECONDS * 1e6))
        lf = self.catalog.observations().filter(pl.col("ingested_at") >= lo_t)
        if self.expr is not None:
            lf = lf.filter(self.expr)
        df = (lf.select(self.columns).with_columns(pl.col("ingested_at").dt.epoch("us").alias("_us"))
              .sort("_us", "dataset_id").collect())
        if self.first:
            # Rows at or before the starting cursor count as delivered: only later ones are news.
            old = df.filter((pl.col("_us") < after_us)
                            | ((pl.col("_us") == after_us) & (pl.col("dataset_id") <= after_id)))
            self.sent.update(zip(old["dataset_id"].to_list(), old["_us"].to_list()))
            self.first = False
        if self.sent:
            df = df.filter(~pl.col("dataset_id").is_in(list(self.sent)))
        df = df.head(MAX_PER_POLL)
        if df.height:
            last = df.row(df.height - 1, named=True)
            if (last["_us"], last["dataset_id"]) > self.cursor:
                self.cursor = (last["_us"], last["dataset_id"])
            self.sent.update(zip(df["dataset_id"].to_list(), df["_us"].to_list()))
        floor = self.cursor[0] - int(LATE_COMMIT_SECONDS * 1e6)
        self.sent = {k: v for k, v in self.sent.items() if v >= floor}
        ids = [f"{u}:{i}" for u, i in zip(df["_us"].to_list(), df["dataset_id"].to_list())]
        return list(zip(ids, records(df.drop("_us"))))


@router.get("/stream", summary="Server-sent events: datasets as they are cataloged",
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: dataset` per new dataset; `id` is the resume cursor."}})
async def stream(
    request: Request,
    filters: Annotated[dict, Depends(search_filters)],
    since: Annotated[str | None, Query(min_length=1, max_length=300,
                                       description="Resume after this cursor (an event id) or ISO time; "
                                                   "default: from now.")] = None,
    interval: Annotated[float, Query(ge=0.1, le=60, allow_inf_nan=False, description="Seconds between polls.")] = 1.0,
    timeout: Annotated[float | None, Query(gt=0, le=86_400, allow_inf_nan=False,
                                           description="Close after this many seconds (capped by the server).")] = None,
    columns: Annotated[list[str] | None, Query(description="Columns per dataset; repeat for several.")] = None,
    last_event_id: Annotated[str | None, Header(max_length=300, include_in_schema=False)] = None,
):
    """Newly cataloged datasets (optionally only those matching the search filters), as they
    arrive. Reconnect with ``Last-Event-ID`` or ``since`` to resume without gaps."""
    from starlette.concurrency import run_in_threadpool

    from cosmoscope import schema as S
    from cosmoscope.search import search_filter
    from cosmoscope.sky.positions import shape_of
    from cosmoscope.times import now

    cat, settings = get_catalog(request), get_settings(request)
    cols = list(dict.fromkeys(["dataset_id", *(columns or STREAM_COLUMNS), "ingested_at"]))
    bad = [c for c in cols if c not in S.OBSERVATIONS.schema.names]
    if bad:
        raise InvalidArgumentError(f"parameter 'columns': unknown column {bad[0]!r}")
    sky = {k: filters.pop(k, None) for k in ("near", "radius", "box", "footprints")}
    shape = shape_of(cat, sky["near"], sky["radius"], sky["box"], None, sky["footprints"] is not False)
    expr = search_filter(**filters, sky=shape)
    start = since or last_event_id
    after = parse_cursor(start, "since" if since else "Last-Event-ID") if start else (epoch_us(now()), "")
    follower = _Follower(cat, expr, cols, after)
    limit = min(timeout or settings.max_stream_seconds, settings.max_stream_seconds)

    async def events():
        import anyio

        deadline = time.monotonic() + limit
        yield f"retry: 2000\n: streaming new datasets, cursor {follower.cursor[0]}:{follower.cursor[1]}\n\n"
        while True:
            if await request.is_disconnected():
                return
            batch = await run_in_threadpool(follower.poll)
            for event_id, row in batch:
                yield f"event: dataset\nid: {event_id}\ndata: {json.dumps(row, ensure_ascii=False)}\n\n"
            if not batch:
                yield ": nothing new\n\n"
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await anyio.sleep(min(interval, left))
        cursor = f"{follower.cursor[0]}:{follower.cursor[1]}"
        yield f"event: end\ndata: {json.dumps({'cursor': cursor, 'reason': 'time limit; reconnect to go on'})}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
