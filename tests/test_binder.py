"""binder/: what mybinder (repo2docker) builds and starts, checked here as far as it can be
without mybinder: the files repo2docker reads, the build script run against a temporary home,
and the dashboard started exactly as jupyter-server-proxy would start it."""

from __future__ import annotations

import ast
import importlib.metadata as md
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import cosmoscope

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def test_repo2docker_reads_runtime_and_requirements_only():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"
    # Any of these would make repo2docker ignore requirements.txt (or the binder/ folder).
    for other in ("environment.yml", "Pipfile", "Pipfile.lock", "setup.py", "Project.toml", "install.R",
                  "apt.txt", "Dockerfile"):
        assert not (BINDER / other).exists(), other
    for script in ("postBuild", "start"):
        path = BINDER / script
        assert os.access(path, os.X_OK), f"binder/{script} must be executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert (BINDER / "start").read_text().rstrip().endswith('exec "$@"')


def _requirements() -> tuple[list[str], list[Requirement]]:
    local, reqs = [], []
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-e "):
            local.append(line[3:].strip())
        else:
            reqs.append(Requirement(line))
    return local, reqs


def test_requirements_install_the_repository_and_the_proxy():
    local, reqs = _requirements()
    # The repository root, editable, with whatever extras pyproject gives it.
    assert [re.sub(r"\[.*\]$", "", p) for p in local] == ["."]
    names = {canonicalize_name(r.name) for r in reqs}
    extras = set(re.findall(r"\[(.*)\]$", local[0])[0].split(",")) if "[" in local[0] else set()
    if "binder" in extras:  # the proxy comes through the package's own binder extra
        binder_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["binder"]
        names |= {canonicalize_name(re.split(r"[<>=\[; ]", r, maxsplit=1)[0]) for r in binder_extra}
    assert "jupyter-server-proxy" in names


def _distribution_closure(names: set[str]) -> set[str]:
    """These distributions and everything they require (as installed here)."""
    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def test_every_module_the_notebooks_import_is_installed_by_the_binder_requirements():
    _, reqs = _requirements()
    installed = _distribution_closure({"cosmoscope"} | {r.name for r in reqs})
    owners = md.packages_distributions()
    for path in sorted((ROOT / "cosmoscope" / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(cell.source)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top == "cosmoscope":
                        continue
                    dists = {canonicalize_name(d) for d in owners.get(top, [])}
                    assert dists & installed, f"{path.name} imports {module}, which binder would not install"


@pytest.fixture(scope="module")
def built_home(tmp_path_factory):
    """binder/postBuild run as repo2docker runs it (from the repository root), with a temporary
    HOME and a small demo."""
    home = tmp_path_factory.mktemp("binder-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "COSMOSCOPE_", "JUPYTER"))}
    env.update(HOME=str(home), COSMOSCOPE_DEMO_FILES="40", COSMOSCOPE_ACTOR="binder@build",
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    proc = subprocess.run([str(BINDER / "postBuild")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return home, env, proc.stdout


def test_postbuild_builds_the_demo_catalog_in_the_default_place(built_home):
    home, env, out = built_home
    catalog = home / ".local" / "share" / "cosmoscope" / "catalog.sqlite"
    assert "postBuild: demo catalog" in out
    with cosmoscope.open_catalog(catalog, readonly=True) as cat:
        summary = cat.mission_summary()
        assert cat.count() >= 36
        assert set(summary["mission_id"].drop_nulls()) == {"AURORA-2", "COSMOS-7", "HELIOS-X", "LYRA"}
        assert cat.relationships().collect().height > 0
    # The start script names that catalog for every process of the session.
    proc = subprocess.run([str(BINDER / "start"), sys.executable, "-c",
                           "from cosmoscope.catalog import default_catalog_url as d; print(d())"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{catalog}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_proxy_entry_starts_the_dashboard_under_the_users_prefix(built_home):
    from cosmoscope.serverproxy import setup_dashboard

    home, env, _ = built_home
    config = setup_dashboard()
    assert config["absolute_url"] is True and config["timeout"] >= 10
    base_url, port = "/user/tester/", _free_port()
    # What jupyter-server-proxy does with the command: fill in {port} and {base_url}, then run it.
    command = [part.format(port=port, base_url=base_url) for part in config["command"]]
    assert command[0] == sys.executable and shutil.which(command[0])
    url = f"http://127.0.0.1:{port}{base_url}{config['launcher_entry']['path_info']}"
    proc = subprocess.Popen(command, env=dict(env, COSMOSCOPE_CATALOG=str(
        home / ".local" / "share" / "cosmoscope" / "catalog.sqlite")), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.monotonic() + config["timeout"], None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    body = response.read().decode()
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        assert body is not None, f"no dashboard at {url}: " + (proc.stdout.read() if proc.poll() is not None else "")
        # The page's scripts are served from under the same prefix (their URLs are relative to it).
        script = re.search(r'src="(static/js/bokeh\.min\.js[^"]*)"', body)
        assert script, body[:2000]
        with urllib.request.urlopen(urllib.parse.urljoin(url, script.group(1)), timeout=10) as response:
            assert response.status == 200 and b"Bokeh" in response.read(200_000)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_pyproject_declares_the_proxy_entry_point_and_ships_the_notebooks():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry = project["project"].get("entry-points", {}).get("jupyter_serverproxy_servers", {})
    assert entry.get("cosmoscope") == "cosmoscope.serverproxy:setup_dashboard"
    data = project["tool"]["setuptools"]["package-data"]["cosmoscope"]
    assert "notebooks/*.ipynb" in data


def test_the_readme_badge_opens_the_tour_and_the_dashboard_link_matches_the_launcher():
    from cosmoscope.serverproxy import setup_dashboard

    readme = (ROOT / "README.md").read_text()
    lab = re.findall(r"mybinder\.org/v2/gh/[^)\s]+\?urlpath=lab/tree/([^)\s]+)\)", readme)
    assert lab and all((ROOT / path).is_file() for path in lab)
    assert "notebooks/explore.ipynb" in lab
    proxied = re.findall(r"mybinder\.org/v2/gh/[^)\s]+\?urlpath=(cosmoscope/[^)\s]*)\)", readme)
    assert proxied == [setup_dashboard()["launcher_entry"]["path_info"]]
