"""Which ``Host`` headers the HTTP API and the dashboard answer: a defence against DNS rebinding.

A web page can make the user's browser resolve its own name (``evil.example``) to 127.0.0.1 and
then read ``http://evil.example:8000/`` as a page of its own origin: the local API and dashboard.
The browser still sends ``Host: evil.example:8000``, so a server that answers only to the names
it is known by cannot be read that way. Both servers check it: by default the local names
(``localhost``, ``127.0.0.1``, ``::1``) when bound to this machine only, and those plus this
machine's own names and addresses and the bound address otherwise; ``--allowed-host`` or
``$COSMOSCOPE_ALLOWED_HOSTS`` (comma-separated) name others, and ``*`` allows any.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable

ENV = "COSMOSCOPE_ALLOWED_HOSTS"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def split_host(header: str) -> str:
    """The host name of a ``Host`` header, lower case, without its port or IPv6 brackets.

    >>> split_host("LocalHost:8000"), split_host("[::1]:5006"), split_host("::1")
    ('localhost', '::1', '::1')
    """
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h[1:]
    if h.count(":") == 1:
        return h.split(":", 1)[0]
    return h


def is_loopback(address: str) -> bool:
    if address in ("localhost", ""):
        return address == "localhost"
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed(bind: str) -> list[str]:
    """The names a server bound to ``bind`` answers to unless told otherwise."""
    names = list(LOCAL_NAMES)
    if not is_loopback(bind):
        host = socket.gethostname()
        names += [host, socket.getfqdn()]
        try:  # the machine's addresses, as clients on the network may type them
            names += socket.gethostbyname_ex(host)[2]
        except OSError:
            pass
        if bind not in ("0.0.0.0", "::", ""):
            names.append(bind)
    return [n.lower() for n in dict.fromkeys(names) if n]


def allowed_hosts(given: Iterable[str] | None, bind: str) -> list[str]:
    """``given`` (command-line names), else ``$COSMOSCOPE_ALLOWED_HOSTS``, else the defaults for
    ``bind``. Each name is a host name or address, optionally with a port (ignored); ``*`` is any."""
    names = [n for n in (given or []) if n.strip()]
    if not names:
        names = [n for n in os.environ.get(ENV, "").split(",") if n.strip()]
    if not names:
        return default_allowed(bind)
    return list(dict.fromkeys("*" if n.strip() == "*" else split_host(n) for n in names))


def host_allowed(header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request with this ``Host`` header may be answered.

    >>> host_allowed("127.0.0.1:8000", ["localhost", "127.0.0.1"]), host_allowed("evil.example:8000", ["localhost"])
    (True, False)
    """
    allowed = list(allowed)
    if "*" in allowed:
        return True
    if not header:
        return False
    return split_host(header) in allowed


def refusal(header: str | None, allowed: Iterable[str]) -> str:
    """The sentence a refused request gets."""
    return (f"this server does not answer to the host name {split_host(header or '')!r} (allowed: "
            f"{', '.join(allowed)}); if that is a name of this server, give it with --allowed-host or "
            f"${ENV}")
