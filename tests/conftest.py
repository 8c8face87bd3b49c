"""Shared fixtures. Store backends are parameters, so contract tests run against each of them."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import uuid

import pytest

UTC = dt.timezone.utc
SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
CORPUS = os.path.join(SHARED, "corpus")
#: For tests of real files that may not be copied into tests/data (no licence to redistribute):
#: they run wherever ../shared is (CI has it) and skip only in a clone without it.
needs_corpus = pytest.mark.skipif(not os.path.isdir(CORPUS), reason="../shared/corpus is not present")

from tests.fakevast.fixtures import fake_vast  # noqa: E402,F401 - the session's fake VAST server

#: Store backends every contract test runs against.
BACKENDS = ["sqlite", "vast"]
#: A real cluster to run the "vast" backend against instead of the fake: vast://ENDPOINT/BUCKET
#: (credentials from COSMOSCOPE_VAST_ACCESS_KEY/SECRET_KEY or AWS_*); each test gets a fresh schema.
TEST_VAST_URL = os.environ.get("COSMOSCOPE_TEST_VAST_URL")
#: Retries that keep fault tests fast against the fake (a real cluster keeps the defaults).
FAKE_VAST_OPTIONS = "retry_wait=0.01&retry_seconds=20"


#: Debian's Chromium, headless (Playwright's own browser download does not work here).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    import shutil

    return {**browser_type_launch_args, "executable_path": shutil.which("chromium"), "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """Where screenshots go: $COSMOSCOPE_TEST_ARTIFACTS, else a temporary directory."""
    path = os.environ.get("COSMOSCOPE_TEST_ARTIFACTS") or str(tmp_path_factory.mktemp("screenshots"))
    os.makedirs(path, exist_ok=True)
    print(f"\nscreenshots: {path}")
    return path


@pytest.fixture(autouse=True)
def _no_user_catalog(tmp_path, monkeypatch):
    """Keep every test away from the user's real catalog and home directory."""
    monkeypatch.setenv("COSMOSCOPE_CATALOG", str(tmp_path / "default-catalog.sqlite"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("COSMOSCOPE_ACTOR", "tester@tests")


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A URL of an empty store of each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/store.sqlite"
    if request.param == "vast":
        return vast_url_for(request)
    raise AssertionError(request.param)  # pragma: no cover


def vast_url_for(request) -> str:
    """A ``vast://`` URL of a schema no other test uses: on the cluster named by
    ``COSMOSCOPE_TEST_VAST_URL`` if set, else on the session's fake server (whose credentials
    are put in the environment for the test)."""
    schema = "t_" + re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)[:40].strip("_") + "_" + uuid.uuid4().hex[:8]
    if TEST_VAST_URL:
        base, _, query = TEST_VAST_URL.partition("?")
        return f"{base.rstrip('/')}/{schema}" + (f"?{query}" if query else "")
    server = request.getfixturevalue("fake_vast")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("COSMOSCOPE_VAST_ACCESS_KEY", server.access_key)
    monkeypatch.setenv("COSMOSCOPE_VAST_SECRET_KEY", server.secret_key)
    before = len(server.internal_errors)
    request.addfinalizer(lambda: _no_fake_errors(server, before))
    return f"vast+http://{server.host}:{server.port}/{server.bucket}/{schema}?{FAKE_VAST_OPTIONS}"


def module_store_url(request, tmp_path_factory, monkeypatch, name: str) -> str:
    """A URL of a new store of the backend ``request.param`` for a module-scoped fixture."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path_factory.mktemp(name)}/{name}.sqlite"
    server = request.getfixturevalue("fake_vast")
    monkeypatch.setenv("COSMOSCOPE_VAST_ACCESS_KEY", server.access_key)
    monkeypatch.setenv("COSMOSCOPE_VAST_SECRET_KEY", server.secret_key)
    return f"vast+http://{server.host}:{server.port}/{server.bucket}/{name}_{os.getpid()}?{FAKE_VAST_OPTIONS}"


def _no_fake_errors(server, before: int) -> None:
    new = server.internal_errors[before:]
    if new:
        pytest.fail("the fake VAST server hit an internal error:\n" + "\n".join(new))


@pytest.fixture
def store(store_url):
    from cosmoscope.store.base import open_store

    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def catalog(store_url):
    import cosmoscope

    cat = cosmoscope.open_catalog(store_url)
    yield cat
    cat.close()


MISSIONS = ["COSMOS-7", "HELIOS-X", "LYRA", "AURORA-2"]
INSTRUMENTS = {"COSMOS-7": ["WFI", "HRS"], "HELIOS-X": ["XIS"], "LYRA": ["LYCAM"], "AURORA-2": ["MAG", "PES"]}
TARGETS = ["NGC 253", "M31", "Crab", "Cas A", "3C 273", "Sgr A*", None]


def make_records(n: int, seed: int = 0, start=dt.datetime(2026, 11, 1, tzinfo=UTC)) -> list[dict]:
    """Synthetic observation records with realistic spread (some values missing)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        mission = MISSIONS[i % len(MISSIONS)]
        t0 = start + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 20))
        exposure = rng.choice([60.0, 300.0, 600.0, 1800.0])
        out.append({
            "file_path": f"/archive/{mission.lower()}/{t0:%Y/%j}/obs_{i:06d}.fits",
            "mission_id": mission,
            "satellite_name": mission,
            "instrument_type": rng.choice(INSTRUMENTS[mission]),
            "observation_timestamp": t0,
            "observation_end": t0 + dt.timedelta(seconds=exposure),
            "exposure_time": exposure,
            "target_object": rng.choice(TARGETS),
            "ra": round(rng.uniform(0, 360), 6) if rng.random() > 0.1 else None,
            "dec": round(rng.uniform(-90, 90), 6) if rng.random() > 0.1 else None,
            "data_quality_score": round(rng.random(), 3),
            "calibration_status": rng.choice(["calibrated", "uncalibrated", "partial"]),
            "calib_level": rng.randrange(0, 4),
            "file_size": rng.randrange(10_000, 2_000_000_000),
            "file_format": "fits",
            "version": f"v{rng.randrange(1, 4):02d}",
            "mission_specific": {"obs_id": f"{i:08d}", "seq": i},
        })
    return out
