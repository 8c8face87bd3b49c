"""Claiming a TCP port for a server, with a sentence instead of a traceback when it is taken."""

from __future__ import annotations

import errno
import socket

from cosmoscope.errors import CosmoscopeError


class PortUnavailableError(CosmoscopeError):
    """A server cannot listen on the address and port it was given."""


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening socket bound to ``host:port`` (as uvicorn and tornado bind theirs), or
    :class:`PortUnavailableError` saying why not and what to do."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            why = "the port is already in use (another server, or this one started twice); choose another with --port"
        elif exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges); choose a port above 1024 with --port"
        elif isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
            why = "this machine has no such address; give one of its own, e.g. 127.0.0.1 or 0.0.0.0"
        else:
            why = exc.strerror or str(exc)
        raise PortUnavailableError(f"cannot listen on {shown}: {why}") from None
    sock.set_inheritable(True)
    sock.listen(2048)  # from now on connections wait in the backlog until the server accepts them
    return sock


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortUnavailableError` now if a server started next could not listen on
    ``host:port`` (port 0, any free port, always can)."""
    if port:
        listen_socket(host, port).close()
