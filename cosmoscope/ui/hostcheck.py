"""A Bokeh auth module for the dashboard: pages and websockets only for allowed ``Host`` names.

``cosmoscope serve`` passes it to ``panel serve --auth-module``, with the allowed names in
``$COSMOSCOPE_ALLOWED_HOSTS`` (see :mod:`cosmoscope.hosts`). Bokeh asks :func:`get_user` before it
renders a page and before it opens a websocket; a request naming another host gets no user and is
sent to :data:`login_url`, which answers 403 with the reason. Nothing of the catalog is read for
it.
"""

from __future__ import annotations

import os

from tornado.web import RequestHandler

from cosmoscope.hosts import ENV, host_allowed, refusal

_ALLOWED = [n for n in os.environ.get(ENV, "localhost,127.0.0.1,::1").split(",") if n]

login_url = "/host-not-allowed"


def get_user(request_handler) -> str | None:
    return "viewer" if host_allowed(request_handler.request.headers.get("Host"), _ALLOWED) else None


class LoginHandler(RequestHandler):
    """The answer to a request whose Host is not allowed."""

    def get(self):
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(refusal(self.request.headers.get("Host"), _ALLOWED) + "\n")
