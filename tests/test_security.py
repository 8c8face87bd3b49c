"""What an attacker who can write into a cataloged tree, or run a page in the user's browser, can
and cannot get (see docs/security.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import polars as pl
import pytest
from astropy.io import fits

import cosmoscope
from cosmoscope.records import dataset_id_for

SECRET = "FAKE_SECRET=s3cr3t"


def wait_for(condition, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return value


@pytest.fixture
def tree(tmp_path):
    """A drop folder with a link to a private file outside it, a link inside it, and a link to a
    private directory outside it."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token.txt").write_text(SECRET + "\n")
    (secret / "token.txt").chmod(0o600)
    (secret / "more.csv").write_text(SECRET + "\n1\n")
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    fits.PrimaryHDU(header=fits.Header([("TELESCOP", "HELIOS-X"), ("OBJECT", "M31")])).writeto(root / "sub" / "a.fits")
    (root / "leak.csv").symlink_to(secret / "token.txt")
    (root / "alias.fits").symlink_to(root / "sub" / "a.fits")          # inside the tree: fine
    (root / "private").symlink_to(secret, target_is_directory=True)   # a directory outside
    return root


def leaked(cat) -> bool:
    everything = pl.concat_str(pl.all().cast(pl.String), separator="|", ignore_nulls=True)
    rows = cat.observations().select(everything).collect()
    return any(SECRET in text for text in rows.to_series())


@pytest.mark.parametrize("follow", [False, True])
def test_ingest_reads_no_file_whose_real_path_leaves_the_tree(tree, tmp_path, follow):
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        summary = cat.ingest(tree, workers=0, progress=False, follow_symlinks=follow)
        names = sorted(os.path.basename(p) for p in cat.observations().collect()["file_path"])
        assert names == ["a.fits", "alias.fits"] and not leaked(cat)
        outside = dict(summary.outside)
        assert str(tree / "leak.csv") in outside and "outside the directories being cataloged" in \
            outside[str(tree / "leak.csv")]
        assert (str(tree / "private") in outside) == follow  # entered only when asked to follow directories
        assert not summary.ok and "leak.csv" in str(summary) and "--allow-outside-links" in str(summary)
        assert [p for p, _ in summary.to_dict()["outside"]] == [p for p, _ in summary.outside]


def test_reading_outside_the_tree_is_the_users_explicit_choice(tree, tmp_path):
    out = subprocess.run([sys.executable, "-m", "cosmoscope", "--catalog", str(tmp_path / "c.sqlite"), "-q", "ingest",
                          str(tree), "-j", "0"], capture_output=True, text=True, timeout=120)
    # -q: no summary on standard output, but the file left unread is named (on standard error)
    assert out.returncode == 1 and "leak.csv" in out.stderr and "Traceback" not in out.stderr
    with cosmoscope.open_catalog(tmp_path / "c.sqlite") as cat:
        assert not leaked(cat)
        summary = cat.ingest(tree, workers=0, progress=False, follow_symlinks="all")
        assert summary.outside == [] and leaked(cat)  # more.csv, leak.csv: asked for
    named = tree / "leak.csv"  # a file named on the command line is its own root
    with cosmoscope.open_catalog(tmp_path / "d.sqlite") as cat:
        assert cat.ingest([named], workers=0, progress=False).outside == []


def test_a_link_swapped_in_after_the_crawl_is_not_read(tree):
    from cosmoscope.ingest.crawl import FileEntry
    from cosmoscope.ingest.roots import Roots
    from cosmoscope.ingest.workers import extract_entry

    rec = extract_entry(FileEntry(str(tree / "leak.csv"), 19, 0), None, Roots([tree]))
    assert rec["_outside"] and "outside the directories" in rec["_skip"]
    assert extract_entry(FileEntry(str(tree / "alias.fits"), 2880, 0), None, Roots([tree]))["file_format"] == "fits"


def test_the_watcher_leaves_links_out_of_its_tree_alone(tree, tmp_path, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="cosmoscope")
    with cosmoscope.open_catalog(tmp_path / "w.sqlite") as cat:
        with cat.watch([tree], settle=0.2, workers=0, heartbeat_every=0.5) as watcher:
            assert watcher.wait_idle(60)
            (tree / "late.csv").symlink_to(tree.parent / "secret" / "more.csv")  # dropped in while watching
            fits.PrimaryHDU().writeto(tree / "sub" / "b.fits")
            wait_for(lambda: cat.observations().filter(pl.col("file_name") == "b.fits").collect().height, 60,
                     "b.fits to be cataloged")
            wait_for(lambda: watcher.counts["outside"] >= 2 and watcher.wait_idle(5), 60, "the links to be seen")
        assert not leaked(cat)
        assert cat.observations().filter(pl.col("file_name").is_in(["leak.csv", "late.csv"])).collect().height == 0
    assert "late.csv" in caplog.text and "outside the directories being cataloged" in caplog.text


def test_validate_fix_does_not_follow_a_file_replaced_by_a_link(tree, tmp_path):
    data = tree / "sub" / "data.csv"
    data.write_text("time,flux\n2026-11-27T00:00:00,1\n")
    with cosmoscope.open_catalog(tmp_path / "v.sqlite") as cat:
        cat.ingest(tree, workers=0, progress=False)
        data.unlink()
        data.symlink_to(tree.parent / "secret" / "more.csv")  # the cataloged file, now a link to a private one
        report = cat.validate(fix=True, checksums=True, workers=0, progress=False)
        assert not leaked(cat) and report.remaining[("outside", None)] == 1
        row = cat.get(dataset_id_for(str(data)))
        assert row["checksum"] is None and row["file_size"] == 32  # neither hashed nor read again
        assert {p["kind"] for p in json.loads(row["validation_problems"])} >= {"outside", "changed"}
        cat.validate(fix=True, workers=0, progress=False, follow_symlinks="all")
        assert leaked(cat)  # asked for


# -- DNS rebinding: the servers answer only to the names they are known by --------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, host: str | None = None) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def serve(args: list[str], url: str, tmp_path):
    """A ``cosmoscope`` server command, started and waited for (the caller stops it)."""
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cosmoscope", *args], stdout=log, stderr=subprocess.STDOUT)

    def up():
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "server.log").read_text())
        try:
            return get(url)[0] == 200
        except OSError:
            return False

    wait_for(up, 90, f"{url} to answer")
    return proc


@pytest.fixture
def small_catalog(tree, tmp_path):
    path = tmp_path / "s.sqlite"
    with cosmoscope.open_catalog(path) as cat:
        cat.ingest(tree / "sub", workers=0, progress=False)
    return str(path)


def test_the_api_answers_only_its_own_host_names_in_every_worker(small_catalog, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(["--catalog", small_catalog, "api", "--port", str(port), "--workers", "2"], base + "/health", tmp_path)
    try:
        status, body = get(base + "/datasets?columns=mission_specific", host=f"rebound.example:{port}")
        assert status == 400 and "does not answer to the host name 'rebound.example'" in body
        assert "HELIOS-X" not in body
        assert get(base + "/datasets", host=f"localhost:{port}")[0] == 200
        with ThreadPoolExecutor(16) as pool:  # both worker processes answer, and refuse alike
            codes = list(pool.map(lambda i: get(base + "/missions", host=None if i % 2 else "evil.example")[0],
                                  range(64)))
        assert codes.count(200) == 32 and codes.count(400) == 32
        # Each worker's polars has its share of the cores: a thread pool per process on a core
        # of its own only fights the other processes (twice the CPU per result page).
        share = str(max(1, (os.cpu_count() or 1) // 2))
        assert [worker_env(pid).get("POLARS_MAX_THREADS") for pid in children(proc.pid)] == [share, share]
    finally:
        proc.terminate()
        proc.wait(30)
    with cosmoscope.open_catalog(small_catalog, readonly=True) as cat:
        from cosmoscope.api import serve_in_background

        with serve_in_background(cat, allowed_hosts=["obs.example.org"]) as server:
            assert get(server.url + "/health", host="obs.example.org:443")[0] == 200
            assert get(server.url + "/health")[0] == 400  # 127.0.0.1 was not named


def children(pid: int) -> list[int]:
    """The worker processes uvicorn spawned for ``pid`` (not multiprocessing's helpers)."""
    return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()
            if b"spawn_main" in open(f"/proc/{c}/cmdline", "rb").read()]


def worker_env(pid: int) -> dict:
    pairs = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(p.decode(errors="replace").partition("=")[::2] for p in pairs if p)


def test_a_worker_works_on_a_few_requests_at_once(small_catalog):
    """anyio's 40 threads per process, all busy with CPU-bound requests, cost twice the CPU per
    result page of 4 (benchmarks/api_bench.py): the server's ``threads`` bound them."""
    import anyio.to_thread
    from fastapi.testclient import TestClient

    from cosmoscope.api import create_app

    for threads in (4, 1):
        app = create_app(small_catalog, threads=threads, allowed_hosts=["testserver"])
        with TestClient(app) as client:
            assert client.get("/health").status_code == 200
            assert client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens) \
                == threads
    with pytest.raises(cosmoscope.errors.InvalidArgumentError, match="threads must be a whole number"):
        create_app(small_catalog, threads=0)
    out = subprocess.run([sys.executable, "-m", "cosmoscope", "api", "--catalog", small_catalog, "--threads", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--threads" in out.stderr and "Traceback" not in out.stderr


def test_the_dashboard_answers_only_its_own_host_names(small_catalog, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/dashboard"
    proc = serve(["serve", "--catalog", small_catalog, "--port", str(port), "--refresh", "0", "-q"], url, tmp_path)
    try:
        status, body = get(url, host=f"rebound.example:{port}")
        assert status == 403 and "does not answer to the host name 'rebound.example'" in body
        assert get(url, host=f"localhost:{port}")[0] == 200
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_dashboard_behind_a_proxy_needs_explicit_origins(small_catalog):
    out = subprocess.run([sys.executable, "-m", "cosmoscope", "serve", "--catalog", small_catalog, "--port", "0",
                          "--prefix", "/user/alice/cosmoscope"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--allow-websocket-origin" in out.stderr and "Traceback" not in out.stderr


def test_allowed_host_names_by_bind_address_and_configuration(monkeypatch):
    import socket

    from cosmoscope.hosts import ENV, allowed_hosts, host_allowed

    monkeypatch.delenv(ENV, raising=False)
    assert allowed_hosts(None, "127.0.0.1") == ["localhost", "127.0.0.1", "::1"]
    assert socket.gethostname().lower() in allowed_hosts(None, "0.0.0.0")
    assert allowed_hosts(["Obs.Example.org:443", "[::1]:8000"], "0.0.0.0") == ["obs.example.org", "::1"]
    monkeypatch.setenv(ENV, "catalog.example.org, *")
    assert allowed_hosts(None, "127.0.0.1") == ["catalog.example.org", "*"]
    assert host_allowed("anything:1", ["*"]) and not host_allowed(None, ["localhost"])
    assert host_allowed("[::1]:5006", ["::1"]) and not host_allowed("localhost.evil.example", ["localhost"])
