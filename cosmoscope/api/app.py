"""The FastAPI application: settings, error handling, request limits, and the routers."""

from __future__ import annotations

import hmac
import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cosmoscope.errors import (CosmoscopeError, DatasetNotFoundError, InvalidArgumentError, SkyInputError,
                               StoreError, UnknownNameError)
from cosmoscope.hosts import allowed_hosts as resolve_allowed_hosts
from cosmoscope.hosts import host_allowed, refusal

if TYPE_CHECKING:
    from fastapi import FastAPI

    from cosmoscope.catalog import Catalog

log = logging.getLogger(__name__)

TOKEN_ENV = "COSMOSCOPE_API_TOKEN"


@dataclass(frozen=True)
class ApiSettings:
    """What a server allows. Writes need ``token``; output files must lie under ``output_roots``."""

    token: str | None = None
    output_roots: tuple[str, ...] = ()
    #: Longest a stream of new datasets stays open; clients reconnect with Last-Event-ID.
    max_stream_seconds: float = 300.0
    #: Most rows in one page of results.
    max_page: int = 10_000
    #: Most ids in one batch lookup.
    max_batch: int = 1_000
    #: Most datasets one pre-flight request may check.
    max_preflight: int = 10_000
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = 1 << 20
    #: Host names requests may address (``*``: any); see :mod:`cosmoscope.hosts`.
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    #: Requests one process works on at once; the others wait their turn. A few, not anyio's
    #: 40: each request is mostly CPU, and 40 threads fighting over a core's GIL and caches
    #: cost 13.8 ms of CPU per result page where 4 cost 6.6 ms (benchmarks/api_bench.py).
    threads: int = 4

    @property
    def writable(self) -> bool:
        return self.token is not None

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


def read_token(token_file: str | os.PathLike | None = None) -> str | None:
    """The write token: the first line of ``token_file``, else ``$COSMOSCOPE_API_TOKEN``, else None."""
    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().strip()
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        if not token:
            raise InvalidArgumentError(f"the token file {token_file} is empty; put the token on its first line")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def create_app(catalog: Catalog | str | os.PathLike | None = None, *, token: str | None = None,
               output_roots=(), allowed_hosts=None, **limits) -> FastAPI:
    """The HTTP API over ``catalog`` (a Catalog, or a URL opened here: read-only unless ``token``).

    Parameters
    ----------
    token
        Bearer token that writes must carry; None makes the server read-only.
    output_roots
        Directories under which output files may be cataloged through the API.
    allowed_hosts
        Host names requests may address (default: the local names; ``["*"]``: any); others
        are refused with 400, so a DNS-rebinding web page cannot read the API.
    limits
        Any other :class:`ApiSettings` field (``max_page``, ``max_batch``, ``threads`` ...).
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from cosmoscope import __version__
    from cosmoscope.api import read, stream, write
    from cosmoscope.tap import service as tap_service
    from cosmoscope.api.read import ERRORS

    threads = limits.get("threads", ApiSettings.threads)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidArgumentError(f"threads must be a whole number of at least 1, got {threads!r}")
    if token is not None and not str(token).strip():
        raise InvalidArgumentError("the write token is empty; give a real token or none (read-only)")
    roots = tuple(os.path.realpath(os.fspath(r)) for r in output_roots)
    for r in roots:
        if not os.path.isdir(r):
            raise InvalidArgumentError(f"output root {r} is not a directory")
    settings = ApiSettings(token=token, output_roots=roots,
                           allowed_hosts=tuple(resolve_allowed_hosts(allowed_hosts, "127.0.0.1")), **limits)
    owned = not hasattr(catalog, "store")
    if owned:
        from cosmoscope.catalog import open_catalog

        catalog = open_catalog(catalog, readonly=not settings.writable, create=False)

    @asynccontextmanager
    async def lifespan(app):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        yield
        if owned:
            catalog.close()

    app = FastAPI(
        title="cosmoscope", version=__version__, lifespan=lifespan, responses=ERRORS,
        summary="Search the catalog of satellite observation files, check datasets before processing, "
                "and follow new data as it is cataloged.",
        description="Read endpoints are open. Writes (status, quality, lineage, processing runs) need "
                    "`Authorization: Bearer <token>` and a server started with a token. Dataset files are "
                    "never served: only their catalog records.")
    app.state.catalog = catalog
    app.state.settings = settings
    app.include_router(read.router)
    app.include_router(stream.router)
    app.include_router(write.router)
    app.include_router(tap_service.router)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # outermost: refused before anything runs
    return app


def _install_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from cosmoscope.api.formats import json_response
    from cosmoscope.pipeline.runs import ClaimConflictError, RunStateError

    def problem(status: int, detail: str, **extra):
        return json_response({"detail": detail, **extra}, status_code=status)

    async def validation(request, exc: RequestValidationError):
        errors = exc.errors()
        parts = []
        for e in errors[:5]:
            loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body", "header")]
            name = ".".join(loc) or "body"
            parts.append(f"parameter {name!r}: {e.get('msg', 'invalid')}")
        clean = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return problem(422, "invalid request: " + "; ".join(parts), errors=clean)

    async def http_error(request, exc: HTTPException):
        r = problem(exc.status_code, str(exc.detail))
        for k, v in (exc.headers or {}).items():
            r.headers[k] = v
        return r

    async def cosmoscope_error(request, exc: CosmoscopeError):
        # Messages name the catalog by its URL, which would tell clients where it lives on disk.
        text = str(exc).replace(request.app.state.catalog.url, "the catalog")
        if isinstance(exc, DatasetNotFoundError):
            return problem(404, text)
        if isinstance(exc, SkyInputError):  # a position, radius or name that cannot be searched
            return problem(400, text)
        if isinstance(exc, (InvalidArgumentError, UnknownNameError)):
            return problem(422, text)
        if isinstance(exc, ClaimConflictError):
            return problem(409, text, held=exc.held)
        if isinstance(exc, RunStateError):
            return problem(409, text)
        if isinstance(exc, StoreError):
            log.warning("store error: %s", exc)
            return problem(503, "the catalog could not answer just now; try again")
        return problem(400, text)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(CosmoscopeError, cosmoscope_error)


class HostCheck:
    """Refuse requests whose ``Host`` is not an allowed name (400), before the app sees them."""

    def __init__(self, app, allowed):
        self.app, self.allowed = app, tuple(allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or "*" in self.allowed:  # the API has no websockets
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1")
        if host_allowed(host, self.allowed):
            return await self.app(scope, receive, send)
        body = json.dumps({"detail": refusal(host, self.allowed)}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before the app parses them."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._refuse(send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

    async def _refuse(self, send):
        body = json.dumps({"detail": f"request body too large: at most {self.limit:,} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages, then=None):
    queue = list(messages)

    async def receive():
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
