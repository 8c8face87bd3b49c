"""The newcomer's path (issue 17): the README's quickstarts as written, every command's help, and
the stumbles of a first session: a folder beside the checkout, a mistyped catalog or value, a
URL in SQLAlchemy's form, a port in use."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

import cosmoscope
from cosmoscope.errors import CatalogNotFoundError
from cosmoscope.times import now

from .conftest import make_records
from .fakevast.fixtures import fresh_fake_vast  # noqa: F401 - a fixture
from .notebook_env import jupyter_env  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def cli(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosmoscope", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def checkout_beside(folder: Path) -> Path:
    """``folder`` holding a directory named ``cosmoscope`` laid out like a checkout of this
    repository (no ``__init__.py`` at its top), as ``~`` holds ``~/cosmoscope`` after a clone."""
    checkout = folder / "cosmoscope"
    (checkout / "cosmoscope").mkdir(parents=True)
    (checkout / "tests").mkdir()
    for name in ("pyproject.toml", "README.md", "Makefile"):
        shutil.copy(ROOT / name, checkout / name)
    return folder


def wait_for(condition, what: str, timeout: float = 120.0, proc: subprocess.Popen | None = None):
    """``condition()`` once true (not None or False); fails after a generous ``timeout``, or
    at once if ``proc`` has ended."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended with exit code {proc.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


# -- 1. import cosmoscope beside the checkout ------------------------------------------------------

def test_import_beside_a_checkout_named_cosmoscope(tmp_path):
    """From the folder holding a clone named `cosmoscope`, the editable install imported the
    clone as an empty namespace package: `cosmoscope.open_catalog` was an AttributeError."""
    folder = checkout_beside(tmp_path)
    code = "import cosmoscope; cosmoscope.open_catalog; print(cosmoscope.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == Path(cosmoscope.__file__)


def test_the_editable_install_is_a_path_not_an_import_hook(tmp_path):
    """What makes the import above work wherever Python starts: `pip install -e .` puts the
    project directory on sys.path (a .pth line) instead of an import hook that runs after the
    current directory was searched. The same build prints no setuptools warnings (`make demo`
    printed ~45 lines of them)."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "cosmoscope", project / "cosmoscope",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    code = "import sys; from setuptools import build_meta; print(build_meta.build_editable(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, str(wheels)], cwd=project, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Warning" not in out.stderr and "deprecated" not in out.stderr, out.stderr
    wheel = wheels / out.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as z:
        pth = [n for n in z.namelist() if n.endswith(".pth")]
        assert len(pth) == 1, z.namelist()
        assert z.read(pth[0]).decode().strip() == str(project), "an import hook, not a path"


SCRIPT_WITHOUT_MAIN_GUARD = """\
import sys
import cosmoscope

print("script ran", flush=True)
cat = cosmoscope.open_catalog(sys.argv[2])
summary = cat.ingest(sys.argv[1], workers=2, progress=False)
print("new", summary.new, "failed", summary.failed)
"""


def test_a_quickstart_saved_as_a_script_ingests_with_workers(tmp_path):
    """A script without `if __name__ == "__main__":` was run again in every spawned worker,
    which then failed to start: the ingest stopped with WorkerStartError."""
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "tree", missions=["COSMOS-7"], files=6, days=1, seed=3, progress=False, workers=0)
    folder = checkout_beside(tmp_path / "home")
    script = folder / "quickstart.py"
    script.write_text(SCRIPT_WITHOUT_MAIN_GUARD)
    out = subprocess.run([sys.executable, str(script), str(sim.root), str(tmp_path / "c.sqlite")], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("script ran") == 1, "the script ran again in a worker"
    assert f"new {sim.manifest.height} failed 0" in out.stdout


# -- 3. only commands that write new data create a catalog ------------------------------------------

READERS = [("search",), ("summary",), ("info",), ("status",), ("validate",), ("show", "ds-1a2b"),
           ("related", "ds-1a2b"), ("history", "ds-1a2b"), ("sql", "SELECT 1 AS one"),
           ("preflight", "--mission", "COSMOS-7"), ("report", "validation_report"),
           ("report", "pipeline_preflight"), ("serve", "--port", "0")]


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a[:1]) + (f" {a[1]}" if a[0] == "report" else ""))
def test_a_mistyped_catalog_is_an_error_not_a_new_catalog(tmp_path, args):
    typo = tmp_path / "catalg.sqlite"
    out = cli("--catalog", str(typo), *args, cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"there is no catalog at {typo}" in lines[0], out.stderr
    assert not typo.exists() and not list(tmp_path.glob("catalg*"))


def test_the_api_with_a_write_token_creates_no_catalog(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token-for-tests\n")
    typo = tmp_path / "catalg.sqlite"
    out = cli("--catalog", str(typo), "api", "--port", "0", "--token-file", str(token))
    assert out.returncode == 1 and "there is no catalog at" in out.stderr and not typo.exists()


def test_commands_that_write_new_data_create_the_catalog_and_say_so(tmp_path):
    from cosmoscope.simulate import simulate

    sim = simulate(tmp_path / "tree", missions=["LYRA"], files=4, days=1, seed=1, progress=False, workers=0)
    new = tmp_path / "new.sqlite"
    dry = cli("--catalog", str(new), "ingest", "--dry-run", str(sim.root))
    assert dry.returncode == 0 and "every file would be new" in dry.stderr and not new.exists()
    out = cli("--catalog", str(new), "ingest", str(sim.root))
    assert out.returncode == 0, out.stderr
    assert f"cosmoscope ingest: created a new catalog at sqlite://{new}" in out.stderr
    again = cli("--catalog", str(new), "ingest", str(sim.root))
    assert "created a new catalog" not in again.stderr
    watched = tmp_path / "incoming"
    watched.mkdir()
    other = tmp_path / "watched.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "cosmoscope", "--catalog", str(other), "watch", str(watched)],
                            stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        wait_for(lambda: seen.append(proc.stderr.readline()) or "watching" in seen[-1], "the watcher to start",
                 proc=proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    assert f"cosmoscope watch: created a new catalog at sqlite://{other}\n" in seen


def test_open_catalog_create_false(tmp_path):
    path = tmp_path / "nope.sqlite"
    with pytest.raises(CatalogNotFoundError, match="there is no catalog at .*nope.sqlite yet"):
        cosmoscope.open_catalog(path, create=False)
    assert not path.exists()
    path.touch()  # an empty file is no catalog either, and is left as it was
    with pytest.raises(CatalogNotFoundError):
        cosmoscope.open_catalog(path, create=False)
    assert path.stat().st_size == 0
    with cosmoscope.open_catalog(tmp_path / "made.sqlite") as cat:
        assert cat.created
    with cosmoscope.open_catalog(tmp_path / "made.sqlite", create=False) as cat:
        assert not cat.created and cat.count() == 0


def test_a_vast_catalog_is_created_only_when_asked(fresh_fake_vast, monkeypatch):
    server = fresh_fake_vast
    monkeypatch.setenv("COSMOSCOPE_VAST_ACCESS_KEY", server.access_key)
    monkeypatch.setenv("COSMOSCOPE_VAST_SECRET_KEY", server.secret_key)
    url = f"vast+http://{server.host}:{server.port}/{server.bucket}/typo"
    with pytest.raises(CatalogNotFoundError, match="there is no catalog at vast"):
        cosmoscope.open_catalog(url, create=False)
    out = cli("--catalog", url, "validate")
    assert out.returncode == 1 and "there is no catalog at vast" in out.stderr
    with pytest.raises(CatalogNotFoundError):  # nothing was made by either
        cosmoscope.open_catalog(url, readonly=True)
    with cosmoscope.open_catalog(url) as cat:
        assert cat.created


# -- 4. a value that matches nothing -------------------------------------------------------------

@pytest.fixture
def small_catalog(tmp_path):
    path = tmp_path / "small.sqlite"
    with cosmoscope.open_catalog(path) as cat:
        cat.add_records(make_records(40))
    return str(path)


@pytest.mark.parametrize("args, hint", [
    (("search", "--mission", "COSMOS7"), "no observation has mission 'COSMOS7'; did you mean 'COSMOS-7'?"),
    (("search", "--mission", "cosmos-7", "--count"), "mission 'cosmos-7'; did you mean 'COSMOS-7'?"),
    (("search", "--instrument", "wfi"), "instrument 'wfi'; did you mean 'WFI'?"),
    (("search", "--mission", "LYRA", "--mission", "HELIOSX"), "mission 'HELIOSX'; did you mean 'HELIOS-X'?"),
    (("search", "--mission", "Chandra"), "the catalog has missions AURORA-2, COSMOS-7, HELIOS-X, LYRA"),
    (("validate", "--mission", "COSMOS7"), "did you mean 'COSMOS-7'?"),
    (("summary", "--mission", "lyra"), "did you mean 'LYRA'?"),
    (("preflight", "--mission", "aurora2"), "did you mean 'AURORA-2'?"),
])
def test_a_value_that_matches_nothing_names_the_close_ones(small_catalog, args, hint):
    out = cli("--catalog", small_catalog, *args)
    assert f"cosmoscope {args[0]}: " in out.stderr and hint in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_values_that_match_say_nothing(small_catalog):
    out = cli("--catalog", small_catalog, "search", "--mission", "COSMOS-7", "--instrument", "WFI", "--count")
    assert out.returncode == 0 and out.stderr == "" and int(out.stdout) > 0


# -- 5. SQLAlchemy's URL form, and files that cannot be opened ----------------------------------------

def test_sqlalchemy_url_and_double_slash_paths_open_the_catalog(small_catalog):
    for url in (f"sqlite:///{small_catalog}", f"/{small_catalog}", f"file://{small_catalog}",
                f"sqlite://{small_catalog}"):
        out = cli("--catalog", url, "search", "--count")
        assert out.returncode == 0 and out.stdout == "40\n", (url, out.stderr)
        with cosmoscope.open_catalog(url, readonly=True) as cat:
            assert cat.count() == 40 and cat.url == f"sqlite://{small_catalog}"


@pytest.mark.parametrize("make, reason", [
    (lambda d: d, "it is a directory; give a file path such as"),
    (lambda d: d / "file" / "catalog.sqlite", "part of that path is a file, not a directory"),
    (lambda d: d / ("x" * 300 + ".sqlite"), "File name too long"),
    (lambda d: d / "text.sqlite", "is not a SQLite catalog"),
])
def test_a_catalog_that_cannot_be_made_says_why(tmp_path, make, reason):
    (tmp_path / "file").write_text("a file, not a directory")
    (tmp_path / "text.sqlite").write_text("not a database")
    out = cli("--catalog", str(make(tmp_path)), "ingest", str(tmp_path / "file"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and reason in lines[0], out.stderr
    assert "failed to allocate memory" not in out.stderr


# -- 6. smaller stumbles -----------------------------------------------------------------------------

def test_no_command_prints_the_help():
    out = cli()
    assert out.returncode == 2 and "commands:" in out.stdout and "$ cosmoscope demo" in out.stdout
    profiles = cli("profiles")
    assert profiles.returncode == 2 and "cosmoscope profiles list" in profiles.stdout


def test_a_usage_error_is_two_lines_not_the_usage_block(small_catalog):
    out = cli("--catalog", small_catalog, "search", "--start", "27/11/2026")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "cosmoscope search: error: argument --start: could not read '27/11/2026' as the time: give an ISO 8601 "
        "time (2026-11-27, 2026-11-27T08:15:00Z) or an age before now such as 24h or 7d",
        "(see `cosmoscope search --help`)"]


def test_an_age_is_a_time_wherever_a_time_is_taken(small_catalog, tmp_path):
    """`search --start 24h` was refused though `validate --since 24h` worked."""
    with cosmoscope.open_catalog(small_catalog) as cat:
        cat.add_records([{"file_path": "/new/recent.fits", "mission_id": "LYRA", "observation_timestamp": now()}])
        assert cat.count(cat.search(start="24h")) == 1
    assert cli("--catalog", small_catalog, "search", "--start", "24h", "--count").stdout == "1\n"
    assert cli("--catalog", small_catalog, "search", "--end", "1d", "--count").stdout == "40\n"
    assert cli("--catalog", small_catalog, "preflight", "--mission", "LYRA", "--start", "2h").returncode in (0, 1)
    from cosmoscope.api import serve_in_background

    with cosmoscope.open_catalog(small_catalog, readonly=True) as cat, serve_in_background(cat) as server:
        got = httpx.get(f"{server.url}/datasets", params={"start": "24h"}, timeout=60)
        assert got.status_code == 200 and got.json()["count"] == 1, got.text


def test_the_sort_default_named_in_the_help_is_accepted(small_catalog):
    help_text = cli("search", "--help").stdout
    default = re.search(r"--sort COLUMN\s+column to sort by \(default:\s+(\S+)\)", help_text).group(1)
    out = cli("--catalog", small_catalog, "search", "--sort", default, "--limit", "3")
    assert out.returncode == 0, out.stderr


def test_tables_show_whole_values_one_row_a_line(tmp_path):
    """Paths were cut off at 80 characters, and piped tables wrapped each row over 5 lines."""
    deep = "/archive/" + "/".join(f"level{i:02d}" for i in range(20)) + "/observation_with_a_long_name.fits"
    path = tmp_path / "wide.sqlite"
    with cosmoscope.open_catalog(path) as cat:
        cat.add_records([{"file_path": deep, "mission_id": "LYRA", "target_object": "M 31"},
                         {"file_path": "/short.fits", "mission_id": "LYRA"}])
    out = cli("--catalog", str(path), "search", env={"COLUMNS": "80"})
    lines = out.stdout.splitlines()
    assert len(lines) == 1 + 2 + 2, out.stdout  # title, header and its underline, two rows
    assert any(line.endswith(deep) for line in lines) and lines[1].startswith("dataset_id  ")
    assert set(lines[2]) == {"-", " "}
    summary = cli("--catalog", str(path), "summary").stdout.splitlines()
    assert len(summary) == 3 and summary[2].startswith("LYRA")


def test_show_related_and_history_take_a_path_or_a_start_of_the_id(tmp_path):
    from cosmoscope.records import dataset_id_for

    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "c.sqlite"
    with cosmoscope.open_catalog(path) as cat:
        cat.add_records([{"file_path": str(data / "a.fits"), "mission_id": "LYRA"},
                         {"file_path": str(data / "b.fits"), "mission_id": "LYRA"}])
        cat.link(dataset_id_for(data / "a.fits"), dataset_id_for(data / "b.fits"), "raw->calibrated")
    did = dataset_id_for(data / "a.fits")
    (data / "a.fits").write_bytes(b"")  # a relative path is told from an id by the file being there
    for ref, cwd in ((str(data / "a.fits"), None), ("a.fits", data), (did[:9], None), (did[3:10], None)):
        out = cli("--catalog", str(path), "show", ref, "--format", "json", cwd=cwd)
        assert out.returncode == 0 and did in out.stdout, (ref, out.stderr)
    related = cli("--catalog", str(path), "related", str(data / "a.fits"), "--format", "csv")
    assert dataset_id_for(data / "b.fits") in related.stdout
    assert cli("--catalog", str(path), "history", did[:8]).returncode == 0
    missing = cli("--catalog", str(path), "show", str(data / "zzz.fits"))
    assert missing.returncode == 1 and "has the file" in missing.stderr
    ambiguous = cli("--catalog", str(path), "show", "ds-")
    assert ambiguous.returncode == 2 and "the start of several dataset ids" in ambiguous.stderr


def test_add_records_reads_iso_text_times(tmp_path):
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        cat.add_records([{"file_path": "/a.fits", "observation_timestamp": "2025-01-01T00:00:00"},
                         {"file_path": "/b.fits", "observation_timestamp": "2025-01-02T01:00:00+01:00"}])
        assert cat.count(cat.search(start="2025-01-01", end="2025-01-02T00:00:01")) == 2
        with pytest.raises(cosmoscope.CosmoscopeError, match="could not read 'soon' as the observation_timestamp"):
            cat.add_records([{"file_path": "/c.fits", "observation_timestamp": "soon"}])


def test_ingest_summary_speaks_of_one_file_and_of_rates_only_for_real_runs():
    from cosmoscope.ingest.bulk import IngestSummary

    one = str(IngestSummary(paths=["/x"], seen=1, new=1, seconds=0.2))
    assert one.startswith("1 file looked at in 0.2 s\n")
    slow = str(IngestSummary(paths=["/x"], seen=3, new=3, seconds=2.5))
    assert slow.startswith("3 files looked at in 2.5 s (1 file/s)\n")


def test_servers_on_a_port_in_use_say_so_and_announce_nothing(small_catalog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for command in ("api", "serve"):
            out = cli("--catalog", small_catalog, command, "--port", port, timeout=120)
            assert out.returncode == 1, (command, out.stderr)
            assert out.stderr.splitlines() == [
                f"cosmoscope {command}: error: cannot listen on 127.0.0.1:{port}: the port is already in use "
                "(another server, or this one started twice); choose another with --port"]


def test_the_pipeline_guide_command_runs_as_written(tmp_path):
    """docs/pipelines.md said `python examples/pipeline_run.py`, which fails outside the venv."""
    text = (ROOT / "docs" / "pipelines.md").read_text()
    command = re.search(r"^\$ (.*examples/pipeline_run\.py.*)$", text, re.M).group(1)
    assert not command.startswith("python "), "a bare `python` is not the one cosmoscope is installed in"
    venv_python = ROOT / ".venv" / "bin" / "python"
    if not venv_python.exists():  # the suite runs in another environment: its Python stands in
        command = command.replace(".venv/bin/python", shlex.quote(sys.executable))
    command = command.replace("/tmp/cosmoscope-pipeline", shlex.quote(str(tmp_path / "pipeline")))
    out = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "GO: all" in out.stdout


# -- every command's help -------------------------------------------------------------------------

def _parsers(parser: argparse.ArgumentParser, name: str = "cosmoscope"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


def _examples(help_text: str, name: str) -> list[list[str]]:
    """The command lines ``help_text`` shows for ``name`` (``$ cosmoscope ...`` lines, and the
    lines of an ``examples:`` paragraph) as argument lists: a comment, a pipe or a redirection
    ends one; leading ``VAR=value`` settings are dropped."""
    found, in_examples = [], False
    for line in help_text.splitlines():
        stripped = line.strip()
        if re.match(r"^examples?:$", stripped):
            in_examples = True
            continue
        in_examples = in_examples and bool(stripped)
        if not (in_examples or stripped.startswith("$ ")):
            continue
        text = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", stripped.removeprefix("$ "))
        if text == name or text.startswith(name + " "):
            lexer = shlex.shlex(text, posix=True, punctuation_chars=True)  # '#' starts a comment
            lexer.whitespace_split = True
            found.append(list(itertools.takewhile(lambda word: word[0] not in "|&;<>", lexer)))
    return found


def test_every_command_has_examples_that_parse_and_every_option_a_help_text():
    from cosmoscope.cli import build_parser

    parser = build_parser()
    for name, p in _parsers(parser):
        text = p.format_help()
        examples = _examples(text, name)
        assert examples, f"`{name} --help` shows no example"
        for words in examples:
            try:
                parser.parse_args(words[1:])
            except SystemExit:
                pytest.fail(f"the example `{' '.join(words)}` in `{name} --help` does not parse")
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            label = "/".join(action.option_strings) or action.metavar or action.dest
            assert action.help and action.help.strip(), f"`{name}`: {label} has no help text"


# -- the README, as written ------------------------------------------------------------------------

def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.fixture(scope="module")
def demo_home(jupyter_env, tmp_path_factory):  # noqa: F811
    """A home directory after `make demo` (which runs `cosmoscope demo`): the demo files in
    ~/.local/share/cosmoscope/demo-data, cataloged in the default catalog; and a folder in it
    holding a checkout named `cosmoscope`, to run the quickstarts from."""
    home = Path(os.environ["HOME"])
    env = {k: v for k, v in os.environ.items() if k not in ("COSMOSCOPE_CATALOG", "XDG_DATA_HOME")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run([sys.executable, "-m", "cosmoscope", "-q", "demo"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (home / ".local/share/cosmoscope/catalog.sqlite").exists()
    return home, checkout_beside(home / "work"), env


@pytest.mark.slow
def test_readme_python_quickstart_as_written(demo_home):
    home, folder, env = demo_home
    blocks = re.findall(r"```python\n(.*?)```", _section("Quickstart: Python"), re.S)
    assert len(blocks) >= 3
    script = folder / "quickstart.py"  # saved as a script, as a newcomer might, beside the checkout
    text = "\n".join(blocks)
    # The VO example talks to `cosmoscope api`, as a reader who started it would (another port if
    # 8000 is taken right now).
    with _serving("cosmoscope api --port 0", "api", folder, env) as port:
        script.write_text(text.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
        out = subprocess.run([sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
                             timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "unchanged:  400" in out.stdout and "GO: all" in out.stdout, out.stdout[-3000:]
    with cosmoscope.open_catalog(home / ".local/share/cosmoscope/catalog.sqlite", readonly=True) as cat:
        runs = cat.frame("processing_runs").collect()
        assert runs.filter(runs["name"] == "wfi-mosaic")["status"].to_list() == ["succeeded"]


#: Commands of the shell quickstart that serve until stopped, and how to tell they are up.
SERVERS = {"watch": None, "serve": "/dashboard", "api": "/health"}
DEFAULT_PORTS = {"serve": 5006, "api": 8000}


@pytest.mark.slow
def test_readme_shell_quickstart_as_written(demo_home, fresh_fake_vast, monkeypatch):  # noqa: F811
    """Each line of the shell quickstart, run by bash from the folder beside the checkout. The
    only changes: the VAST endpoint and bucket become the fake server's; a server whose default
    port another process holds right now gets --port 0."""
    from cosmoscope.ports import PortUnavailableError, check_port_free

    home, folder, env = demo_home
    server = fresh_fake_vast
    keys = {"COSMOSCOPE_VAST_ACCESS_KEY": server.access_key, "COSMOSCOPE_VAST_SECRET_KEY": server.secret_key}
    env = {**env, **keys}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    block = re.search(r"```\n(.*?)```", _section("Quickstart: shell"), re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip()]
    vast_endpoint = f"http://{server.host}:{server.port}"
    cosmoscope.open_catalog(f"vast://{vast_endpoint}/{server.bucket}/catalog").close()  # a catalog to look at
    settings = []  # VAR=value lines, in force for the lines after them
    for line in lines:
        if re.match(r"^[A-Za-z_]+=\S+(\s+#.*)?$", line):
            settings.append(line.split("#")[0].strip())
            continue
        line = line.replace("http://vip:8080/bucket/", f"{vast_endpoint}/{server.bucket}/")
        command = next((c for c in SERVERS if re.search(rf"\bcosmoscope {c}\b", line)), None)
        if command in DEFAULT_PORTS:
            try:
                check_port_free("127.0.0.1", DEFAULT_PORTS[command])
            except PortUnavailableError:
                line = line.split("#")[0].rstrip() + " --port 0"
        script = "\n".join([*settings, line])
        if command is None:
            out = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                                 timeout=600)
            # A line whose comment says "exit 1" (the demo's files broken on purpose) must exit 1.
            assert out.returncode == (1 if "exit 1" in line else 0), f"{line}\n{out.stderr[-3000:]}"
            assert "Traceback" not in out.stderr, line
            continue
        _run_until_up(script, command, folder, env)
    assert (folder / "report.html").exists() and (folder / "ngc.parquet").exists()


def _run_until_up(script: str, command: str, folder: Path, env: dict) -> None:
    """Start a serving line, wait until it serves, stop it with Ctrl-C (SIGINT to its process
    group), and expect a clean exit."""
    with _serving(script, command, folder, env):
        pass


@contextlib.contextmanager
def _serving(script: str, command: str, folder: Path, env: dict):
    """A serving line running until the block ends (yields its port); then stopped with Ctrl-C,
    expecting a clean exit."""
    log = folder / f"{command}.log"
    url = None
    with open(log, "w") as err:
        proc = subprocess.Popen(["bash", "-c", script], cwd=folder, env=env, stdout=err, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        if command == "watch":
            wait_for(lambda: "watching" in log.read_text(), "the watcher to start", proc=proc)
        else:
            url = wait_for(lambda: (re.findall(r"http://(?:localhost|127\.0\.0\.1):(?!0\b)(\d+)", log.read_text())
                                    or [None])[-1], f"`cosmoscope {command}` to say where it listens", proc=proc)

            def answers():
                try:
                    return httpx.get(f"http://127.0.0.1:{url}{SERVERS[command]}", timeout=10).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_for(answers, f"`cosmoscope {command}` to answer", proc=proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    text = log.read_text()
    assert code == 0 and "Traceback" not in text, f"{script}\nexit {code}\n{text[-3000:]}"
