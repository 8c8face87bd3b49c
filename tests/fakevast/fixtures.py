"""Pytest fixtures around :class:`~tests.fakevast.server.FakeVastServer`.

Import them into a conftest or test module with ``from tests.fakevast.fixtures import *``.

- ``fake_vast``: one server for the whole session (bucket ``fake_vast.bucket``); share it
  between tests by giving each test its own schema (``vast_schema_name``).
- ``vast_schema_name``: a schema name no other test uses; also fails the test if the fake
  hit an internal error while it ran.
- ``fake_vast_session``: a ``vastdb`` session connected to ``fake_vast``.
- ``fresh_fake_vast``: a server of its own, persisted under ``tmp_path``, for tests that
  inject faults, restart the server or count requests.
"""

from __future__ import annotations

import re
import uuid

import pytest

from .server import FakeVastServer

__all__ = ["fake_vast", "fake_vast_session", "fresh_fake_vast", "vast_schema_name"]


@pytest.fixture(scope="session")
def fake_vast():
    """A fake VAST Database shared by the session: ``.endpoint``, ``.access_key``,
    ``.secret_key``, ``.bucket``."""
    with FakeVastServer() as server:
        yield server


@pytest.fixture
def vast_schema_name(request, fake_vast) -> str:
    """A fresh schema name (not created) unique to this test."""
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)[:40].strip("_")
    before = len(fake_vast.internal_errors)
    yield f"t_{stem}_{uuid.uuid4().hex[:8]}"
    new = fake_vast.internal_errors[before:]
    if new:
        pytest.fail("the fake VAST server hit an internal error:\n" + "\n".join(new))


@pytest.fixture
def fake_vast_session(fake_vast):
    """A ``vastdb.session.Session`` on the shared fake server."""
    return fake_vast.connect()


@pytest.fixture
def fresh_fake_vast(tmp_path):
    """A server for this test alone, persisting its commits under ``tmp_path/vast``."""
    server = FakeVastServer(data_dir=tmp_path / "vast")
    server.start()
    yield server
    server.stop()
    if server.internal_errors:
        pytest.fail("the fake VAST server hit an internal error:\n" + "\n".join(server.internal_errors))
