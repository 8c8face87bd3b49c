"""A wire-level fake VAST Database server, for running the real ``vastdb`` SDK in tests.

See :class:`FakeVastServer` and the pytest fixtures in :mod:`tests.fakevast.fixtures`.
"""

from __future__ import annotations

from .catalog import CATALOG_BUCKET, CATALOG_COLUMNS, CATALOG_SCHEMA, CATALOG_TABLE
from .server import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, FakeVastServer, RequestRecord

__all__ = [
    "CATALOG_BUCKET", "CATALOG_COLUMNS", "CATALOG_SCHEMA", "CATALOG_TABLE",
    "DEFAULT_ACCESS_KEY", "DEFAULT_SECRET_KEY", "FakeVastServer", "RequestRecord",
]
