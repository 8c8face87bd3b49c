"""Running the API with uvicorn: in the foreground (the ``api`` command) or in a thread."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from cosmoscope.errors import CosmoscopeError
from cosmoscope.ports import listen_socket


#: Where :func:`serve_workers` leaves the app's options (JSON) for its worker processes.
OPTIONS_ENV = "COSMOSCOPE_API_OPTIONS"


def serve(app, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info", sock=None) -> None:
    """Serve ``app`` until interrupted, in this process, on ``sock`` if given (see
    :func:`cosmoscope.ports.listen_socket`: a port in use is then reported before anything
    starts, not by uvicorn's exit code 3)."""
    import uvicorn

    sock = sock if sock is not None else listen_socket(host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, proxy_headers=False,
                            server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # a stop asked for, as uvicorn.run() takes it: served, then stopped cleanly
    except SystemExit as exc:  # uvicorn's "startup failed" is exit code 3, which means nothing here
        if exc.code:
            raise CosmoscopeError("the API server could not start; its own message is above") from None
        raise


def serve_workers(options: dict, host: str = "127.0.0.1", port: int = 8000, *, workers: int = 2,
                  log_level: str = "info", sock=None) -> None:
    """Serve the API from ``workers`` processes until interrupted.

    Each worker builds its own app from ``options`` (:func:`create_app`'s keywords, ``catalog``
    a URL; the write token travels in ``$COSMOSCOPE_API_TOKEN``) and opens the catalog itself,
    so requests are answered in parallel on every core; the catalog's own concurrency (SQLite's
    WAL readers, VAST) keeps them consistent. Each worker's polars gets its share of the cores
    (``$POLARS_MAX_THREADS``, unless set): with a process per core, polars' own thread pool
    only adds contention (10.8 ms of CPU per result page against 6.6 ms with one thread).
    """
    import json

    import uvicorn

    from uvicorn.supervisors import Multiprocess

    os.environ[OPTIONS_ENV] = json.dumps(options)
    os.environ.setdefault("POLARS_MAX_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    config = uvicorn.Config("cosmoscope.api.server:app_from_environment", factory=True, workers=workers, host=host,
                            port=port, log_level=log_level, proxy_headers=False, server_header=False)
    # Listening already: connections made while the workers start wait in the backlog instead of
    # being refused (uvicorn.run leaves that to the workers).
    sock = sock if sock is not None else listen_socket(host, port)
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass


def app_from_environment():
    """The app of one worker process of :func:`serve_workers`."""
    import json

    from cosmoscope.api.app import create_app, read_token

    return create_app(token=read_token(), **json.loads(os.environ[OPTIONS_ENV]))


class BackgroundServer:
    """A uvicorn server on a thread of this process; ``url`` once started, ``stop()`` to end it."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                                server_header=False, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="cosmoscope-api", daemon=True)
        self.host = host
        self.port: int | None = None

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise CosmoscopeError(f"the API server did not start on {self.host} within {timeout:g} s")
            time.sleep(0.02)
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self if self.port is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_in_background(catalog: Any = None, *, host: str = "127.0.0.1", port: int = 0,
                        **options) -> BackgroundServer:
    """Start the API over ``catalog`` on a thread and return the running server (port 0: any
    free port). ``options`` go to :func:`~cosmoscope.api.create_app`; ``allowed_hosts``
    defaults to the names of ``host``."""
    from cosmoscope.api.app import create_app
    from cosmoscope.hosts import allowed_hosts

    options.setdefault("allowed_hosts", allowed_hosts(None, host))
    return BackgroundServer(create_app(catalog, **options), host=host, port=port).start()
