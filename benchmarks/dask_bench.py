"""Ingest on a Dask cluster beside the local process pool, on this machine.

    python benchmarks/dask_bench.py                      # 5,000 simulated files, 2 workers
    python benchmarks/dask_bench.py --files 20000 --workers 4 --repeat 1
    python benchmarks/dask_bench.py --fake-vast          # also workers writing to the fake VAST server

Measures, on a warm page cache, each run into a fresh catalog (median of ``--repeat`` runs):

- cosmoscope ingest with the local process pool of N workers, files/s;
- the same through a Dask LocalCluster of N single-threaded worker processes (SQLite: the
  client is the only writer), and through a LocalCluster of one worker: the per-worker rate
  that sets how throughput grows on a real cluster;
- a rescan of the unchanged tree through the cluster (nothing is sent to it);
- the client's ceilings, which no number of workers lifts: committing ready-made Arrow rows to
  SQLite (rows/s), and walking + comparing an unchanged tree (files/s);
- with ``--fake-vast``: the cluster writing straight to the wire-level fake VAST server of the
  test suite (a single-threaded Python process: it shows the overhead, not VAST's speed).

On a 2-core machine little gain is expected (the client, the workers and the pool share two
cores); the point is the overhead. docs/scaling.md turns these figures into expectations for a
real cluster. Writes benchmarks/results/dask_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, write_results  # noqa: E402


def set_env(env: dict) -> None:
    """Run on each worker: give it the credentials (a real cluster sets them at worker start)."""
    os.environ.update(env)


def warm(paths: list[str]) -> None:
    """Read every file once so every configuration sees the same warm page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def cpu_seconds(who=resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def timed_ingest(url: str, tree: Path, client=None, **options) -> dict:
    """One ingest: wall time, and CPU time of this process and of the workers (the pool's
    processes are this process's children; a cluster's workers are asked)."""
    import cosmoscope

    def workers_cpu():
        if client is None:
            return cpu_seconds(resource.RUSAGE_CHILDREN)
        return sum(client.run(cpu_seconds).values())

    with cosmoscope.open_catalog(url) as cat:
        w, c, t = workers_cpu(), cpu_seconds(), time.perf_counter()
        s = cat.ingest([str(tree)], progress=False, **({"executor": client} if client else {}), **options)
        seconds, c, w = time.perf_counter() - t, cpu_seconds() - c, workers_cpu() - w
    if s.failed or not s.ok:
        raise SystemExit(f"ingest into {url} failed:\n{s}")
    return {"files": s.seen, "new": s.new, "unchanged": s.unchanged, "seconds": seconds,
            "files_per_s": s.seen / seconds, "client_cpu_ms_per_file": 1000 * c / s.seen,
            "worker_cpu_ms_per_file": 1000 * w / s.seen}


def median(runs: list[dict]) -> dict:
    """The run of median wall time, with every run's seconds and the median CPU figures."""
    import statistics

    mid = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {**mid, "runs_seconds": [round(r["seconds"], 3) for r in runs],
            **{k: statistics.median(r[k] for r in runs) for k in ("client_cpu_ms_per_file", "worker_cpu_ms_per_file")}}


def warm_cluster(client, tree: Path, work: Path) -> float:
    """Ingest a few files so every worker has imported its readers (a long-lived cluster has);
    returns the seconds it took."""
    import cosmoscope

    few = sorted(p for p in tree.rglob("*.fits"))[:50] + sorted(p for p in tree.rglob("*.h5"))[:10] \
        + sorted(p for p in tree.rglob("*.nc"))[:10]
    t = time.perf_counter()
    with cosmoscope.open_catalog(str(work / "warm.sqlite")) as cat:
        cat.ingest([str(p) for p in few], executor=client, progress=False, force=True)
    return time.perf_counter() - t


def client_write_ceiling(tree: Path, work: Path) -> dict:
    """Rows/s the client commits when workers hand it ready Arrow rows (SQLite, 1,000 a batch)."""
    import pyarrow as pa

    import cosmoscope
    from cosmoscope.ingest.bulk import commit_rows
    from cosmoscope.ingest.crawl import crawl
    from cosmoscope.ingest.dask_exec import _extract_rows

    entries = list(crawl([str(tree)]))
    results = [_extract_rows(entries[i:i + 64], None) for i in range(0, len(entries), 64)]
    tables = [r.rows for r in results if r.rows is not None]
    pending = [p for r in results for p in r.pending]
    data = pa.concat_tables(tables, promote_options="default")
    with cosmoscope.open_catalog(str(work / "ceiling.sqlite")) as cat:
        t = time.perf_counter()
        for start in range(0, data.num_rows, 1000):
            rows = data.slice(start, 1000)
            ids = set(rows.column("dataset_id").to_pylist())
            commit_rows(cat, rows, [p for p in pending if p[0] in ids])
        seconds = time.perf_counter() - t
    return {"rows": data.num_rows, "seconds": seconds, "rows_per_s": data.num_rows / seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=5_000, help="simulated files (default 5,000)")
    ap.add_argument("--workers", type=int, default=2, help="local pool processes and cluster workers (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each configuration; the median is kept")
    ap.add_argument("--tree", type=Path, help="reuse this simulated tree instead of writing a new one")
    ap.add_argument("--fake-vast", action="store_true", help="also measure workers writing to the fake VAST server")
    ap.add_argument("--out", type=Path, help="directory for results (default: benchmarks/results)")
    args = ap.parse_args(argv)

    from distributed import Client, LocalCluster

    from cosmoscope.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix="cosmoscope-dask-bench-"))
    tree = args.tree or work / "tree"
    if args.tree is None:
        print(f"simulating {args.files:,} files in {tree} ...", flush=True)
        simulate(tree, files=args.files, days=7, seed=1, progress=False)
    paths = [str(p) for p in tree.rglob("*") if p.is_file()]
    warm(paths)
    n = args.workers
    results = {"files": len(paths), "workers": n, "repeat": args.repeat, "machine": machine(), "steps": {},
               "load_average_before": os.getloadavg()}
    rows = []

    def record(label, res, note=""):
        results["steps"][label] = res
        rate = res.get("files_per_s") or res.get("rows_per_s")
        unit = "rows/s" if "rows_per_s" in res else "files/s"
        cpu = (f"{res['client_cpu_ms_per_file']:.2f} + {res['worker_cpu_ms_per_file']:.2f} ms"
               if "worker_cpu_ms_per_file" in res else "")
        rows.append([label, f"{res.get('files', res.get('rows')):,}", f"{res['seconds']:.2f} s",
                     f"{rate:,.0f} {unit}", cpu, note])
        print(f"{label}: {rate:,.0f} {unit}", flush=True)

    url = lambda name, i: str(work / f"{name}-{i}.sqlite")  # noqa: E731
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    started = time.perf_counter() - t
    warm_up = warm_cluster(client, tree, work)
    results["cluster_start_seconds"] = started
    results["cluster_warm_up_seconds"] = warm_up
    print(f"LocalCluster of {n} started in {started:.1f} s, workers warmed up in {warm_up:.1f} s", flush=True)
    try:
        # Interleaved, so both meet the same load on a shared machine.
        pool_runs, dask_runs = [], []
        for i in range(args.repeat):
            pool_runs.append(timed_ingest(url("pool", i), tree, workers=n))
            dask_runs.append(timed_ingest(url("dask", i), tree, client))
        local, dask = median(pool_runs), median(dask_runs)
        record(f"local process pool, {n} workers", local, "baseline; starts its pool each run")
        record(f"Dask LocalCluster, {n} workers (client writes SQLite)", dask,
               f"{dask['files_per_s'] / local['files_per_s']:.2f}x the pool")
        rescan = timed_ingest(url("dask", 0), tree, client)
        record("rescan of the unchanged tree through the cluster", rescan, "nothing sent to workers")
        if args.fake_vast:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.fakevast.server import FakeVastServer

            server = FakeVastServer().start()
            creds = {"COSMOSCOPE_VAST_ACCESS_KEY": server.access_key, "COSMOSCOPE_VAST_SECRET_KEY": server.secret_key}
            os.environ.update(creds)
            client.run(set_env, creds)
            base = f"vast+http://{server.host}:{server.port}/{server.bucket}"
            vast = timed_ingest(f"{base}/bench", tree, client)
            record(f"Dask LocalCluster, {n} workers writing to the fake VAST server", vast,
                   "the fake server (in this process) is the bottleneck, not VAST")
            server.stop()
    finally:
        client.close()
        cluster.close()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as one, \
            Client(one) as c1:
        warm_cluster(c1, tree, work)
        single = median([timed_ingest(url("one", i), tree, c1) for i in range(args.repeat)])
    record("Dask LocalCluster, 1 worker (the per-worker rate)", single)
    ceiling = client_write_ceiling(tree, work)
    record("client ceiling: commit ready Arrow rows to SQLite", ceiling, "workers cannot lift it")
    walk = timed_ingest(url("pool", 0), tree, workers=0)
    record("client ceiling: walk and compare an unchanged tree", walk, "the same with or without Dask")

    results["load_average_after"] = os.getloadavg()
    per_worker = single["files_per_s"]
    results["per_worker_files_per_s"] = per_worker
    # The client walks, compares, receives and commits every file itself, and hosts the scheduler
    # (as a LocalCluster or dask-jobqueue does): its CPU per file bounds a SQLite run.
    results["sqlite_ceiling_files_per_s"] = 1000 / dask["client_cpu_ms_per_file"]
    results["worker_cpu_ms_per_file"] = dask["worker_cpu_ms_per_file"]
    results["overhead_vs_pool"] = 1 - dask["files_per_s"] / local["files_per_s"]
    table = (f"Ingest of a simulated tree of {len(paths):,} files (median of {args.repeat} runs, warm cache), "
             f"{n} workers. LocalCluster start {started:.1f} s and worker warm-up {warm_up:.1f} s are not in the "
             "times (a cluster outlives runs); each local-pool run starts its own pool, inside its time. "
             f"Load average before/after: {results['load_average_before'][0]:.1f}/"
             f"{results['load_average_after'][0]:.1f} on {os.cpu_count()} CPUs.\n\n"
             + markdown_table(["configuration", "files", "time", "rate", "CPU per file (client + workers)", "note"],
                              rows)
             + f"\n\nPer-worker rate {per_worker:,.0f} files/s here ({dask['worker_cpu_ms_per_file']:.2f} ms of worker "
               f"CPU per file, so about {1000 / dask['worker_cpu_ms_per_file']:,.0f} files/s for a worker with a core "
               f"of its own). The SQLite client spends {dask['client_cpu_ms_per_file']:.2f} ms of CPU per new file, "
               f"so it stops scaling near {results['sqlite_ceiling_files_per_s']:,.0f} files/s "
               f"(≈ {results['sqlite_ceiling_files_per_s'] * dask['worker_cpu_ms_per_file'] / 1000:,.0f} "
               "workers with a core each).\n\n"
               f"Reproduce: `python benchmarks/dask_bench.py --files {args.files} --workers {n} "
               f"--repeat {args.repeat}{' --fake-vast' if args.fake_vast else ''}`")
    print("\n" + table)
    print(f"\nwrote {write_results('dask_bench', results, table, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
