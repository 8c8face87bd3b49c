"""Ingest and validation on a Dask cluster: a real LocalCluster of two worker processes, shared
by the module (starting one takes a few seconds), writing into SQLite and into VAST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import polars as pl
import pytest
from distributed import Client, LocalCluster, WorkerPlugin

import cosmoscope
from cosmoscope.records import dataset_id_for
from tests.conftest import TEST_VAST_URL, vast_url_for

STAMPS = ["ingested_at", "updated_at"]
EDGE = ["parent_dataset_id", "child_dataset_id", "relationship_type"]


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    from cosmoscope.simulate import simulate

    return simulate(tmp_path_factory.mktemp("sky"), files=120, days=2, seed=11, progress=False)


@pytest.fixture(scope="module")
def reference(sky, tmp_path_factory):
    """The same tree ingested locally: what every cluster run must equal."""
    cat = cosmoscope.open_catalog(str(tmp_path_factory.mktemp("ref") / "local.sqlite"))
    summary = cat.ingest(sky.root, workers=0, progress=False)
    yield cat, summary
    cat.close()


@pytest.fixture(scope="module")
def client(fake_vast):
    # Workers read VAST credentials from their own environment, as on a real cluster.
    if TEST_VAST_URL:
        env = {k: v for k, v in os.environ.items() if k.startswith(("COSMOSCOPE_VAST_", "AWS_"))}
    else:
        env = {"COSMOSCOPE_VAST_ACCESS_KEY": fake_vast.access_key, "COSMOSCOPE_VAST_SECRET_KEY": fake_vast.secret_key}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env=env) as cluster, \
            Client(cluster) as c:
        yield c


def observations(cat) -> pl.DataFrame:
    return cat.observations().drop(STAMPS).collect().sort("dataset_id")


def edges(cat) -> pl.DataFrame:
    return cat.relationships().select(EDGE).collect().sort(EDGE)


def assert_same_catalog(cat, reference, summary, sky):
    ref, ref_summary = reference
    got, want = observations(cat), observations(ref)
    assert got.height == sky.manifest.height
    assert got.columns == want.columns and got.equals(want)
    assert edges(cat).equals(edges(ref)) and edges(cat).height == sky.lineage.height
    for name in ("seen", "new", "updated", "unchanged", "not_data", "failed", "partial", "lineage_links",
                 "lineage_pending"):
        assert getattr(summary, name) == getattr(ref_summary, name), name
    # one ingest event per file: nothing written twice, even by a retried chunk
    per_file = cat.events().filter(pl.col("action").is_in(["ingest", "update"])).group_by("dataset_id", "action") \
        .len().collect()
    assert per_file.height == sky.manifest.height
    assert set(per_file["action"]) == {"ingest"} and (per_file["len"] == 1).all()


def extract_tasks(task_stream) -> int:
    return sum(1 for t in task_stream.data if str(t["key"]).startswith("cosmoscope-extract"))


def test_cluster_ingest_into_sqlite_equals_a_local_ingest(sky, reference, client, tmp_path):
    from distributed import get_task_stream

    cat = cosmoscope.open_catalog(str(tmp_path / "dask.sqlite"))
    summary = cat.ingest(sky.root, executor=client, progress=False)
    assert_same_catalog(cat, reference, summary, sky)
    # a second run sends nothing to the cluster: unchanged files are skipped by the client
    with get_task_stream(client) as ts:
        again = cat.ingest(sky.root, executor=client, progress=False)
    assert (again.new, again.updated, again.unchanged) == (0, 0, sky.manifest.height)
    assert extract_tasks(ts) == 0
    # a touched file goes out alone, and comes back as an update
    path = sky.manifest["path"][3]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    with get_task_stream(client) as ts:
        third = cat.ingest(sky.root, executor=client, progress=False)
    assert (third.new, third.updated, third.unchanged) == (0, 1, sky.manifest.height - 1)
    assert extract_tasks(ts) == 1
    assert cat.history(dataset_id_for(path))["action"].to_list() == ["ingest", "reextract"]
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_cluster_ingest_into_vast_equals_a_local_ingest(sky, reference, client, request):
    cat = cosmoscope.open_catalog(vast_url_for(request))
    summary = cat.ingest(sky.root, executor=client, progress=False)
    assert_same_catalog(cat, reference, summary, sky)
    again = cat.ingest(sky.root, executor=client, progress=False)
    assert (again.new, again.updated, again.unchanged) == (0, 0, sky.manifest.height)
    cat.close()


class KillOnce(WorkerPlugin):
    """SIGKILL the first worker that finishes an extraction task, after the task's work is
    done (a VAST worker has committed) but before its answer reaches the scheduler."""

    name = "cosmoscope-test-kill-once"

    def __init__(self, marker: str):
        self.marker = marker

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "memory" and str(key).startswith("cosmoscope-extract"):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return  # killed once already (the restarted worker gets this plugin too)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("backend", ["sqlite", "vast"])
def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(backend, sky, reference, client, tmp_path, request):
    from cosmoscope.ingest.dask_exec import DaskExecutor

    url = str(tmp_path / "killed.sqlite") if backend == "sqlite" else vast_url_for(request)
    cat = cosmoscope.open_catalog(url)
    marker = tmp_path / "killed-worker.pid"
    before = set(client.run(os.getpid).values())
    client.register_plugin(KillOnce(str(marker)))
    try:
        summary = cat.ingest(sky.root, executor=DaskExecutor(client, chunk_files=8), progress=False)
    finally:
        client.unregister_worker_plugin(KillOnce.name)
    assert marker.exists(), "a worker must have been killed during the run"
    killed = int(marker.read_text())
    assert killed in before
    client.wait_for_workers(2, timeout=60)
    assert killed not in set(client.run(os.getpid).values())
    assert_same_catalog(cat, reference, summary, sky)
    cat.close()


CRASHING_PLUGIN = textwrap.dedent('''
    class CrashingExtractor:
        name = "crashme"
        priority = 100
        suffixes = (".crash",)
        def can_read(self, path, head):
            return head.startswith(b"CRASHME")
        def extract(self, path):
            import ctypes
            ctypes.string_at(0)  # a real segmentation fault
''')


def test_a_file_that_keeps_killing_its_worker_becomes_an_error_row(sky, tmp_path, monkeypatch):
    import dask

    from cosmoscope.extract import registry
    from cosmoscope.ingest.dask_exec import DaskExecutor

    plugin = tmp_path / "plugin"
    (plugin / "crashme_plugin").mkdir(parents=True)
    (plugin / "crashme_plugin" / "__init__.py").write_text(CRASHING_PLUGIN)
    (plugin / "crashme_plugin-1.0.dist-info").mkdir()
    (plugin / "crashme_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: crashme-plugin\n"
                                                                      "Version: 1.0\n")
    (plugin / "crashme_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[cosmoscope.extractors]\ncrashme = crashme_plugin:CrashingExtractor\n")
    monkeypatch.syspath_prepend(str(plugin))
    registry.refresh_extractors()
    tree = tmp_path / "tree"
    tree.mkdir()
    for i, path in enumerate(sky.manifest["path"][:7]):
        os.link(path, tree / f"{i:02d}_{os.path.basename(path)}")
    (tree / "bomb.crash").write_bytes(b"CRASHME" + b"\0" * 100)
    env = {"PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    # Dask gives up on a task after its first lost worker here, to keep the test short.
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
                LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", env=env) as cluster, \
                Client(cluster) as c:
            catalog = cosmoscope.open_catalog(str(tmp_path / "c.sqlite"))
            summary = catalog.ingest(tree, executor=DaskExecutor(c, chunk_files=4), progress=False)
    finally:
        registry.refresh_extractors()
    # the innocent files that shared the dying worker are read normally
    assert summary.crashes == 1 and summary.new == 8 and summary.failed == 1
    rows = catalog.observations().collect()
    assert rows.height == 8
    bomb = rows.filter(pl.col("file_name") == "bomb.crash").row(0, named=True)
    assert bomb["extraction_status"] == "error" and "crashed" in bomb["extraction_error"]


def test_validation_on_the_cluster_equals_local_validation(sky, client, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    fits = [p for p in sky.manifest["path"] if p.endswith(".fits")][:20]
    for path in fits:
        os.link(path, tree / os.path.basename(path))
    here, there = (cosmoscope.open_catalog(str(tmp_path / f"{n}.sqlite")) for n in ("here", "there"))
    for cat in (here, there):
        cat.ingest(tree, workers=0, progress=False)
    # one file gone, one cut short (a copy: the link's original must stay whole)
    os.remove(tree / os.path.basename(fits[0]))
    cut = tree / os.path.basename(fits[1])
    head = cut.read_bytes()[:2880]
    cut.unlink()
    cut.write_bytes(head)
    local = here.validate(checksums=True, fix=True, workers=0, progress=False)
    remote = there.validate(checksums=True, fix=True, executor=client, progress=False)
    assert local.with_problems >= 1 and local.reextracted >= 1
    drop = ("seconds", "rows_per_second", "run_id")
    assert {k: v for k, v in remote.to_dict().items() if k not in drop} == \
        {k: v for k, v in local.to_dict().items() if k not in drop}
    stamps = [*STAMPS, "last_validated"]
    assert there.observations().drop(stamps).collect().sort("dataset_id").equals(
        here.observations().drop(stamps).collect().sort("dataset_id"))


def test_cli_ingest_on_a_running_scheduler_and_on_a_local_cluster(sky, client, tmp_path, capsys):
    from cosmoscope.cli import main

    small = tmp_path / "small"
    small.mkdir()
    for path in sky.manifest["path"][:6]:
        os.link(path, small / os.path.basename(path))
    for how in (["--dask-scheduler", client.scheduler.address], ["--dask", "local:1"]):
        path = str(tmp_path / f"{how[0]}.sqlite")
        assert main(["--catalog", path, "ingest", str(small), "--json", *how]) == 0
        assert json.loads(capsys.readouterr().out)["new"] == 6
        with cosmoscope.open_catalog(path) as cat:
            assert cat.count() == 6


@pytest.mark.parametrize("argv, message", [
    (["--dask", "remote:3"], "write local:N"),
    (["--dask", "local:zero"], "as a number of workers"),
    (["--dask", "local:2", "--workers", "2"], "give one or the other"),
])
def test_cli_refuses_unclear_dask_options(argv, message, tmp_path, capsys):
    from cosmoscope.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--catalog", str(tmp_path / "c.sqlite"), "ingest", str(tmp_path), *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_an_unreachable_scheduler_is_one_sentence(tmp_path, capsys):
    import dask

    from cosmoscope.cli import main

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["--catalog", str(tmp_path / "c.sqlite"), "-q", "ingest", str(tmp_path), "--dask-scheduler",
                     "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 1 and "could not reach the Dask scheduler at tcp://127.0.0.1:9" in err


def test_dask_stays_optional(sky, tmp_path):
    script = textwrap.dedent('''
        import sys
        import cosmoscope, cosmoscope.ingest
        from cosmoscope.cli import build_parser
        build_parser()
        cat = cosmoscope.open_catalog(sys.argv[1])
        cat.ingest(sys.argv[2], workers=0, progress=False)
        cat.validate(progress=False)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded

        class NoDask:
            """From here on, dask is not installed."""
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("dask", "distributed"):
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, NoDask())
        from cosmoscope.errors import CosmoscopeError
        try:
            cat.ingest(sys.argv[2], executor=object(), force=True, progress=False)
        except CosmoscopeError as exc:
            print(exc)
    ''')
    small = tmp_path / "small"
    small.mkdir()
    os.link(sky.manifest["path"][0], small / os.path.basename(sky.manifest["path"][0]))
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "c.sqlite"), str(small)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'cosmoscope[dask]'" in out.stdout
