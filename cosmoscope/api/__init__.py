"""The HTTP API: the catalog's search, summaries, lineage, history, pre-flight and a stream of new
datasets as JSON (or CSV, Parquet, Arrow), described by OpenAPI at ``/openapi.json``.

Start it from a shell::

    $ cosmoscope api                                  # http://127.0.0.1:8000, read-only
    $ COSMOSCOPE_API_TOKEN=$(cat ~/.cosmoscope-token) cosmoscope api --output-root /scratch/out

or from Python (a notebook, a test)::

    >>> from cosmoscope.api import serve_in_background
    >>> server = serve_in_background(catalog, port=0)     # doctest: +SKIP
    >>> server.url                                         # doctest: +SKIP
    'http://127.0.0.1:41234'
    >>> server.stop()                                      # doctest: +SKIP

Reading needs nothing; writing (statuses, quality, lineage, processing runs) needs a server
started with a token and ``Authorization: Bearer <token>`` on each write. Dataset files are never
served, only their catalog records, and the only paths a client may name (outputs of a run, the
output directory of a pre-flight) must lie under the server's ``--output-root`` directories.
"""

from __future__ import annotations

from cosmoscope.api.app import TOKEN_ENV, ApiSettings, create_app, read_token
from cosmoscope.api.server import BackgroundServer, serve, serve_in_background

__all__ = ["TOKEN_ENV", "ApiSettings", "BackgroundServer", "create_app", "read_token", "serve",
           "serve_in_background"]
