"""Running the API with uvicorn: in the foreground (the ``api`` command) or in a thread."""

from __future__ import annotations

import threading
import time
from typing import Any

from cosmoscope.errors import CosmoscopeError


def serve(app, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info", sock=None) -> None:
    """Serve ``app`` until interrupted, on ``sock`` if given (see :func:`cosmoscope.ports.listen_socket`:
    a port in use is then reported before anything starts, not by uvicorn's exit code 3)."""
    import uvicorn

    from cosmoscope.ports import listen_socket

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
    free port). ``options`` go to :func:`~cosmoscope.api.create_app`."""
    from cosmoscope.api.app import create_app

    return BackgroundServer(create_app(catalog, **options), host=host, port=port).start()
