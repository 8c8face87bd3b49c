"""Fixtures for the tests that run report notebooks in real Jupyter kernels.

Every Jupyter, IPython, XDG and temporary directory (and HOME) points into pytest's temporary
directory while they run, so neither the tests nor the kernels they start write anything to the
home directory. Import the fixtures into a test module with
``from tests.notebook_env import jupyter_env, sky  # noqa: F401``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

import cosmoscope

#: The simulated observations start on this day and last two days.
SKY_START, SKY_END = "2026-11-25", "2026-11-27"


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory):
    """Point Jupyter's, IPython's and XDG's directories, TMPDIR and HOME at a temporary directory
    for this module's tests and the kernels they start (kernels inherit the environment)."""
    base = tmp_path_factory.mktemp("jupyter-home")
    dirs = {"JUPYTER_CONFIG_DIR": "jupyter-config", "JUPYTER_DATA_DIR": "jupyter-data",
            "JUPYTER_RUNTIME_DIR": "jupyter-runtime", "IPYTHONDIR": "ipython", "XDG_CONFIG_HOME": "xdg-config",
            "XDG_CACHE_HOME": "xdg-cache", "XDG_RUNTIME_DIR": "xdg-runtime", "MPLCONFIGDIR": "matplotlib",
            "TMPDIR": "tmp", "HOME": "home"}
    with pytest.MonkeyPatch.context() as mp:
        for var, name in dirs.items():
            path = base / name
            path.mkdir(mode=0o700)
            mp.setenv(var, str(path))
        # Jupyter would otherwise also read config from the platform directories.
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        yield base


@dataclass
class Sky:
    """A simulated multi-mission tree with deliberate faults, cataloged before two more
    problems were made: one good file deleted, one grown (size and time changed)."""

    root: str
    manifest: object  # polars frame: the simulator's ground truth
    catalogs: dict[str, str]  # purpose -> catalog URL; each ingested alone, none validated yet
    missing: str  # path deleted after the ingest
    changed: str  # path appended to after the ingest


@pytest.fixture(scope="module")
def sky(tmp_path_factory) -> Sky:
    """80 files of four missions over two days, 10 % of them broken on purpose (``faults=0.1``),
    cataloged into three catalogs (one per test that writes to its catalog); then a readable,
    good-quality FITS file is deleted and another is grown by one FITS block."""
    import polars as pl

    from cosmoscope.simulate import simulate

    base = tmp_path_factory.mktemp("sky")
    sim = simulate(base / "data", files=80, days=2, start=SKY_START, faults=0.1, seed=1, progress=False)
    catalogs = {}
    for purpose in ("validation", "validation-api", "preflight"):
        url = f"sqlite://{base}/{purpose}.sqlite"
        with cosmoscope.open_catalog(url) as cat:
            cat.ingest([sim.root], workers=0, progress=False)
            if purpose == "validation":
                good = (cat.search(min_quality=0.9, file_format="fits")
                        .filter(pl.col("extraction_status") == "ok")
                        .select("file_path").sort("file_path").collect()["file_path"].to_list())
        catalogs[purpose] = url
    missing, changed = good[0], good[-1]
    os.remove(missing)
    with open(changed, "ab") as f:
        f.write(b"\0" * 2880)
    return Sky(str(sim.root), sim.manifest, catalogs, missing, changed)
