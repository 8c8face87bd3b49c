"""A simulated COSMOS-7 day under load: the watcher and a bulk backfill cataloging together.

    python benchmarks/cosmos7.py                                # 100,000 files (~50 TB), sqlite and vast
    python benchmarks/cosmos7.py --quick                        # 2,000 files, a few minutes
    python benchmarks/cosmos7.py --files 20000 --rate 80 --backends sqlite
    python benchmarks/cosmos7.py --files 20000 --duration 300   # the live half lands within 5 minutes

The day is simulated once (``cosmoscope.simulate``, COSMOS-7 only: raw HDF5, calibrated and
derived netCDF-4, in the mission's directory layout and file names) as sparse files of about
``--total-bytes / --files`` each: their apparent size adds up to the day's volume while they
cost a few kB of disk each. Then, for each backend, these processes run at once:

- ``cosmoscope watch live/ --workers W`` (the watcher),
- ``cosmoscope ingest archive/ --workers W`` (a bulk backfill of the first ``--backfill``
  fraction of the day, already on disk),
- a writer landing the rest of the day in ``live/``: renamed into place at ``--rate`` files/s,
  with bursts of ``--burst`` files every ``--burst-every`` s, and ``--slow`` of them written in
  place in chunks (``write_slowly``), as a transfer that takes a while,
- an observer that reads the writer's journal and polls the catalog for each landed file's row
  (latency from the rename or the last chunk's close to the row being visible to a query in
  another process),
- a reader running ``catalog.search(...)`` and ``catalog.mission_summary()`` in a loop,
- for ``vast``, the fake VAST server (``python -m tests.fakevast``) in its own process.

Measured: time until the whole day is cataloged, files/s sustained, the watcher's lag
(p50/p95), query latency while the ingest runs, peak memory of each process (with its worker
processes), and whether the catalog then equals the simulated ground truth (every file one row,
lineage complete). Results go to benchmarks/results/cosmos7.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _common import machine, markdown_table, percentile, wait_for, watching, write_results  # noqa: E402

DAY = "2026-11-25"
SEED = 7
FAKE_KEYS = {"COSMOSCOPE_VAST_ACCESS_KEY": "FAKEVASTACCESSKEY0001",
             "COSMOSCOPE_VAST_SECRET_KEY": "fake/vast/secret/key/for/tests/only"}


# -- the processes other than the watcher and the ingest ---------------------------------------

def run_writer(args) -> int:
    """Land the live part of the day: renames at a steady rate, bursts, a few slow copies."""
    from cosmoscope.simulate import iter_file_specs

    plan = json.loads(Path(args.plan).read_text())
    slow = set(plan["slow"])
    live, pending = Path(plan["live"]), Path(plan["pending"])
    specs = {s.relpath: s for s in iter_file_specs(["COSMOS-7"], files=plan["files"], days=1, start=DAY, seed=SEED,
                                                    sparse_bytes=plan["sparse_bytes"]) if s.relpath in slow}
    journal = open(plan["journal"], "a", buffering=1)
    lock = threading.Lock()
    # One thread writes the slow files, one after the other: HDF5 and netCDF writers are not
    # safe to run in two threads at once (that segfaults), and this thread only renames.
    slow_queue: queue.Queue = queue.Queue()
    copier = threading.Thread(target=_slow_copies, args=(slow_queue, live, journal, lock), daemon=True)
    copier.start()
    start = time.monotonic()
    due = 0.0
    made: set[Path] = set()
    for kind, relpaths in plan["schedule"]:  # a steady file, or a burst of many
        if kind == "steady":
            due += 1.0 / plan["rate"]
            delay = start + due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        lines = []
        for rel in relpaths:
            dest = live / rel
            if dest.parent not in made:
                dest.parent.mkdir(parents=True, exist_ok=True)
                made.add(dest.parent)
            if rel in specs:  # written in place, in chunks, over a second or so
                slow_queue.put((specs[rel], dest))
                continue
            os.rename(pending / rel, dest)
            lines.append(json.dumps({"path": str(dest), "t": time.time(), "kind": kind}))
        if lines:
            with lock:
                journal.write("\n".join(lines) + "\n")
        if kind == "burst":
            due = time.monotonic() - start  # the steady rate resumes after the burst
    slow_queue.put(None)
    copier.join()
    journal.write(json.dumps({"done": True, "t": time.time(), "seconds": time.monotonic() - start}) + "\n")
    return 0


def _slow_copies(todo, live, journal, lock) -> None:
    from cosmoscope.simulate import write_slowly

    while (item := todo.get()) is not None:
        spec, dest = item
        started = time.time()
        write_slowly(spec, live, chunk_bytes=16 << 20, delay=0.03)
        with lock:
            journal.write(json.dumps({"path": str(dest), "t": time.time(), "kind": "slow", "began": started}) + "\n")


def run_observer(args) -> int:
    """Poll the catalog for each file the writer landed; write path -> first seen time."""
    import cosmoscope
    from cosmoscope.records import dataset_id_for

    waiting: dict[str, str] = {}  # dataset_id -> path
    seen: dict[str, float] = {}
    done = False
    deadline = time.monotonic() + args.timeout
    pos = 0
    cat = None
    while (not done or waiting) and time.monotonic() < deadline and not os.path.exists(args.stop):
        with open(args.journal, "rb") as f:
            f.seek(pos)
            chunk = f.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        pos += len(complete)
        for line in complete.decode().splitlines():
            item = json.loads(line)
            if item.get("done"):
                done = True
            else:
                waiting[dataset_id_for(item["path"])] = item["path"]
        if waiting:
            try:
                cat = cat or cosmoscope.open_catalog(args.catalog, readonly=True)
                found = cat.lookup(list(waiting), ["dataset_id"])["dataset_id"].to_list()
            except cosmoscope.CosmoscopeError:
                found = []  # not created yet, or the store is away for a moment
            now = time.time()
            for did in found:
                seen[waiting.pop(did)] = now
        time.sleep(args.poll)
    Path(args.out).write_text(json.dumps({"seen": seen, "unseen": sorted(waiting.values())}))
    return 0


def run_reader(args) -> int:
    """Search and summarise in a loop until the stop file appears; write every latency."""
    import datetime as dt

    import cosmoscope

    rng = random.Random(1)
    day = dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.timezone.utc)
    out = []
    cat = None
    while not os.path.exists(args.stop):
        try:
            cat = cat or cosmoscope.open_catalog(args.catalog, readonly=True)
        except cosmoscope.CosmoscopeError:
            time.sleep(0.2)
            continue
        for kind in ("search", "summary"):
            t0 = time.time()
            error = None
            rows = 0
            try:
                if kind == "search":
                    start = day + dt.timedelta(minutes=rng.randrange(0, 23 * 60))
                    rows = cat.search(mission="COSMOS-7", instrument=rng.choice(["WFI", "HRS"]), start=start,
                                      end=start + dt.timedelta(hours=1), min_quality=0.5).collect().height
                else:
                    rows = cat.mission_summary().height
            except Exception as exc:  # noqa: BLE001 - every error a user would see is counted
                error = f"{type(exc).__name__}: {exc}"
            out.append({"t": t0, "kind": kind, "s": time.time() - t0, "rows": rows, "error": error})
        time.sleep(args.pause)
    Path(args.out).write_text(json.dumps(out))
    return 0


# -- memory ------------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Peak RSS of each role's process (VmHWM) and of its whole process tree (sampled twice a second)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.roles: dict[str, int] = {}
        self.peak_main: dict[str, int] = {}
        self.peak_tree: dict[str, int] = {}
        self.stop = threading.Event()

    def add(self, role: str, pid: int) -> None:
        self.roles[role] = pid

    def sample(self) -> None:
        for role, pid in list(self.roles.items()):
            hwm = _status_kb(pid, "VmHWM")
            if hwm:
                self.peak_main[role] = max(self.peak_main.get(role, 0), hwm)
            pids, stack = [], [pid]
            while stack:
                p = stack.pop()
                pids.append(p)
                stack += _children(p)
            total = sum(_status_kb(p, "VmRSS") for p in pids)
            self.peak_tree[role] = max(self.peak_tree.get(role, 0), total)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.sample()


# -- one backend -------------------------------------------------------------------------------

def stage_day(args, work: Path):
    """Simulate the day once; returns its ground truth."""
    from cosmoscope.simulate import simulate

    t = time.perf_counter()
    result = simulate(work / "stage", missions=["COSMOS-7"], files=args.files, days=1, start=DAY, seed=SEED,
                      sparse_bytes=args.sparse_bytes, progress=not args.no_progress, workers=2)
    print(f"simulated {args.files:,} files ({result.apparent_bytes / 1e12:.1f} TB apparent, "
          f"{result.disk_bytes / 1e9:.2f} GB on disk) in {time.perf_counter() - t:.0f} s", flush=True)
    return result


def schedule(args, live: list[str]) -> tuple[list, float]:
    """The writer's plan: ``[kind, [relpaths]]`` steps, and the steady rate (``--duration`` sets it)."""
    rate = args.rate if not args.duration else len(live) / args.duration
    every = max(1, int(args.burst_every * rate)) if args.burst else 0
    steps, i, since = [], 0, 0
    while i < len(live):
        if every and since >= every:
            steps.append(["burst", live[i:i + args.burst]])
            i += args.burst
            since = 0
            continue
        steps.append(["steady", [live[i]]])
        i += 1
        since += 1
    if args.duration:
        rate = sum(1 for s in steps if s[0] == "steady") / args.duration
    return steps, rate


def catalog_url(backend: str, work: Path, endpoint: str | None) -> str:
    if backend == "sqlite":
        return f"sqlite://{work}/catalog.sqlite"
    host = endpoint.split("://", 1)[1]
    return f"vast+http://{host}/cosmoscope/cosmos7_day?retry_wait=0.05"


def start_fake_vast(work: Path) -> tuple[subprocess.Popen, str]:
    """The fake VAST server in its own process (in memory: persisting 100,000 rows after every
    commit would measure the fake's disk writes, not the catalog)."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakevast", "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=open(work / "fakevast.log", "w"), text=True)
    line = proc.stdout.readline()
    if "http://" not in line:
        raise SystemExit(f"benchmark: the fake VAST server did not start: {line!r}")
    return proc, line.split(" at ", 1)[1].split()[0]


def stage_backend(truth, run: Path, back: list[str], live: list[str], slow: set[str]) -> None:
    for root, rels in ((run / "archive", back), (run / "pending", live)):
        for rel in rels:
            if rel in slow:
                continue
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(truth.root / rel, dest)  # a hard link: the same sparse file, staged at no cost
    (run / "live").mkdir(parents=True)


def run_backend(args, backend: str, truth, work: Path) -> dict:
    import cosmoscope

    print(f"\n== {backend} ==", flush=True)
    relpaths = truth.manifest["relpath"].to_list()
    n_back = int(len(relpaths) * args.backfill)
    back, live = relpaths[:n_back], relpaths[n_back:]
    slow = set(random.Random(SEED).sample(live, min(len(live), int(len(live) * args.slow))))
    run = work / backend
    stage_backend(truth, run, back, live, slow)
    steps, rate = schedule(args, live)
    plan, journal, stop = run / "plan.json", run / "journal.jsonl", run / "stop"
    journal.touch()
    plan.write_text(json.dumps({"live": str(run / "live"), "pending": str(run / "pending"), "slow": sorted(slow),
                                "files": args.files, "sparse_bytes": args.sparse_bytes, "schedule": steps,
                                "rate": rate, "journal": str(journal)}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs: dict[str, subprocess.Popen] = {}
    sampler = MemorySampler()
    fake = endpoint = None
    if backend == "vast":
        fake, endpoint = start_fake_vast(run)
        sampler.add("fake VAST server", fake.pid)
    url = catalog_url(backend, run, endpoint)
    poll = args.poll if backend == "sqlite" else max(args.poll, 0.25)
    cli = [sys.executable, "-m", "cosmoscope", "--catalog", url, "-q"]
    me = [sys.executable, str(Path(__file__).resolve())]

    def start(role, cmd, **kw):
        kw.setdefault("stderr", open(run / f"{role}.log", "w"))
        procs[role] = subprocess.Popen(cmd, env=env, **kw)
        sampler.add(role, procs[role].pid)

    try:
        cosmoscope.open_catalog(url).close()
        start("watcher", [*cli, "watch", str(run / "live"), "--workers", str(args.watch_workers)])
        wait_for(lambda: watching(url), 120, "the watcher to start", poll=0.5)
        start("reader", [*me, "--role", "reader", "--catalog", url, "--stop", str(stop), "--out",
                         str(run / "reader.json"), "--pause", str(args.reader_pause)])
        start("observer", [*me, "--role", "observer", "--catalog", url, "--journal", str(journal), "--out",
                           str(run / "seen.json"), "--stop", str(stop), "--poll", str(poll),
                           "--timeout", str(args.timeout)])
        sampler.start()
        time.sleep(2)  # the reader's and observer's imports, before the clock starts
        t0 = time.time()
        start("ingest", [*cli, "ingest", str(run / "archive"), "--workers", str(args.ingest_workers), "--json"],
              stdout=subprocess.PIPE, text=True)
        start("writer", [*me, "--role", "writer", "--plan", str(plan)])
        counts, ingest_summary, ingest_end = [], None, None
        deadline = time.monotonic() + args.timeout
        counter = cosmoscope.open_catalog(url, readonly=True)
        last_change, last_n = time.monotonic(), -1
        while time.monotonic() < deadline:
            n = _count(counter)
            counts.append((round(time.time() - t0, 2), n))
            if n != last_n:
                last_change, last_n = time.monotonic(), n
            if ingest_summary is None and procs["ingest"].poll() is not None:
                ingest_end = time.time()
                out = procs["ingest"].stdout.read()
                ingest_summary = json.loads(out) if out.strip() else {"exit_code": procs["ingest"].returncode}
            arrived = ingest_summary is not None and procs["writer"].poll() is not None
            if arrived and (n >= len(relpaths) or time.monotonic() - last_change > args.stall):
                break
            time.sleep(1.0)
        t_end = time.time()
        counter.close()
        if last_n < len(relpaths):
            stop.touch()  # some file never arrived in the catalog: the observer stops waiting for it
        procs["observer"].wait(timeout=300)
        stop.touch()
        procs["reader"].wait(timeout=120)
        sampler.sample()
        procs["watcher"].send_signal(signal.SIGTERM)
        procs["watcher"].wait(timeout=120)
        sampler.stop.set()
        return summarize(args, backend, url, truth, run, t0, t_end, ingest_end, ingest_summary, counts, sampler,
                         rate, poll, len(back), len(live), len(slow))
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if fake is not None:
            fake.kill()
            fake.wait()


def _count(cat) -> int:
    import cosmoscope

    try:
        return cat.count()
    except cosmoscope.CosmoscopeError:
        return -1  # no progress seen; a store that stays away ends the run at --stall


def _spread(values) -> dict:
    v = sorted(values)
    return {"n": len(v), "p50_s": percentile(v, 50), "p95_s": percentile(v, 95), "max_s": round(v[-1], 3) if v else None}


def summarize(args, backend, url, truth, run, t0, t_end, ingest_end, ingest_summary, counts, sampler, rate, poll,
              n_back, n_live, n_slow) -> dict:
    import polars as pl

    import cosmoscope
    from cosmoscope.records import dataset_id_for

    total = truth.manifest.height
    journal = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    landed = {j["path"]: j for j in journal if "path" in j}
    writer_done = next((j for j in journal if j.get("done")), {})
    seen = json.loads((run / "seen.json").read_text())
    lags = {"steady": [], "burst": [], "slow": []}
    for path, j in landed.items():
        if path in seen["seen"]:
            lags[j["kind"]].append(seen["seen"][path] - j["t"])
    reads = json.loads((run / "reader.json").read_text())
    during = [r for r in reads if t0 <= r["t"] <= (ingest_end or t_end) and not r["error"]]
    errors = [r["error"] for r in reads if r["error"]]
    with cosmoscope.open_catalog(url, readonly=True) as cat:
        obs = cat.observations().select("dataset_id", "extraction_status").collect()
        final = {"rows": obs.height, "edges": cat.relationships().select(pl.len()).collect().item(),
                 "pending_lineage": cat.frame("pending_lineage").select(pl.len()).collect().item(),
                 "extraction_status": dict(obs.group_by("extraction_status").len().iter_rows())}
    got = obs["dataset_id"].to_list()
    # the day was linked into archive/ and live/: the ids of those paths
    want = {dataset_id_for(run / ("archive" if i < n_back else "live") / rel)
            for i, rel in enumerate(truth.manifest["relpath"])}
    done_at = next((t for t, n in counts if n >= total), None)
    best = None  # the best rate over any 30 s of the count's timeline (a run shorter than that has none)
    for i, (t, n) in enumerate(counts):
        j = next((k for k in range(i, len(counts)) if counts[k][0] - t >= 30), None)
        if j is not None:
            best = max(best or 0.0, (counts[j][1] - n) / (counts[j][0] - t))
    seconds = done_at if done_at is not None else t_end - t0
    landed_last = writer_done["t"] - t0 if writer_done else None
    return {
        "backend": backend, "files": total, "backfill_files": n_back, "live_files": n_live, "slow_files": n_slow,
        "apparent_bytes": int(truth.manifest["apparent_bytes"].sum()),
        "disk_bytes": int(truth.manifest["disk_bytes"].sum()),
        "writer": {"steady_rate_per_s": round(rate, 1), "burst": args.burst, "burst_every_s": args.burst_every,
                   "seconds": round(writer_done.get("seconds", 0), 1),
                   "achieved_per_s": round(n_live / writer_done["seconds"], 1) if writer_done else None},
        "completed": done_at is not None,
        "time_to_catalog_day_s": round(seconds, 1),
        "files_per_s_sustained": round(total / seconds, 1) if seconds else None,
        "files_per_s_best_30s": round(best, 1) if best is not None else None,
        "drained_after_last_landing_s": round(done_at - landed_last, 1) if done_at and landed_last else None,
        "ingest": {k: ingest_summary.get(k) for k in ("new", "failed", "seconds", "files_per_second", "crashes",
                                                       "exit_code")} if ingest_summary else None,
        "watcher_lag": {k: _spread(v) for k, v in {**lags, "all": [x for v in lags.values() for x in v]}.items()},
        "unseen_by_observer": len(seen["unseen"]), "observer_poll_s": poll,
        "queries_during_ingest": {k: _spread([r["s"] for r in during if r["kind"] == k]) for k in ("search", "summary")},
        "query_errors": len(errors), "query_error_examples": errors[:3],
        "peak_rss_mb": {role: round(kb / 1024) for role, kb in sampler.peak_main.items()},
        "peak_tree_rss_mb": {role: round(kb / 1024) for role, kb in sampler.peak_tree.items()},
        "catalog": {**final, "missing": len(want - set(got)), "unexpected": len(set(got) - want),
                    "duplicates": len(got) - len(set(got)), "lineage_edges_expected": truth.lineage.height},
        "count_timeline": counts[:: max(1, len(counts) // 200)],
    }


# -- the report --------------------------------------------------------------------------------

def table(runs: list[dict]) -> str:
    def each(fn):
        return [fn(r) for r in runs]

    def lag(r, k):
        return f"{r['watcher_lag'][k]['p50_s']} / {r['watcher_lag'][k]['p95_s']} s"

    def query(r, k):
        q = r["queries_during_ingest"][k]
        return f"{q['p50_s']} / {q['p95_s']} s ({q['n']} runs)"

    rows = [
        ["files (backfill + live)", *each(lambda r: f"{r['files']:,} ({r['backfill_files']:,} + {r['live_files']:,})")],
        ["apparent size / on disk", *each(lambda r: f"{r['apparent_bytes'] / 1e12:,.1f} TB / "
                                                    f"{r['disk_bytes'] / 1e9:.1f} GB")],
        ["arrivals: steady rate, bursts", *each(lambda r: f"{r['writer']['steady_rate_per_s']}/s, "
                                                          f"{r['writer']['burst']:,} every {r['writer']['burst_every_s']:g} s")],
        ["time to catalog the whole day", *each(lambda r: f"{r['time_to_catalog_day_s']:,} s"
                                                + ("" if r["completed"] else " (INCOMPLETE)"))],
        ["files/s sustained (best 30 s)", *each(lambda r: f"{r['files_per_s_sustained']} ({r['files_per_s_best_30s'] or '-'})")],
        ["all cataloged, after the last arrival", *each(lambda r: f"{r['drained_after_last_landing_s']} s")],
        ["bulk backfill alone", *each(lambda r: f"{r['ingest']['new']:,} files in {r['ingest']['seconds']} s "
                                                f"({r['ingest']['files_per_second']}/s)"
                                                if r["ingest"] and r["ingest"].get("new") is not None else "failed")],
        ["watcher lag p50 / p95, all live files", *each(lambda r: lag(r, "all"))],
        ["  steady arrivals", *each(lambda r: lag(r, "steady"))],
        ["  bursts", *each(lambda r: lag(r, "burst"))],
        ["  slow copies (from the last write)", *each(lambda r: lag(r, "slow"))],
        ["search p50 / p95 while ingesting", *each(lambda r: query(r, "search"))],
        ["mission_summary p50 / p95 while ingesting", *each(lambda r: query(r, "summary"))],
        ["errors seen by the reader", *each(lambda r: str(r["query_errors"]))],
        ["peak RSS MB: watcher / ingest / reader", *each(lambda r: " / ".join(
            str(r["peak_tree_rss_mb"].get(k, "-")) for k in ("watcher", "ingest", "reader")))],
        ["catalog vs ground truth", *each(lambda r: f"{r['catalog']['rows']:,} rows: {r['catalog']['missing']} missing, "
                                                    f"{r['catalog']['duplicates']} duplicated; lineage "
                                                    f"{r['catalog']['edges']:,}/{r['catalog']['lineage_edges_expected']:,}")],
    ]
    return markdown_table(["", *(r["backend"] for r in runs)], rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["writer", "observer", "reader"], help=argparse.SUPPRESS)
    for name in ("--plan", "--catalog", "--journal", "--out", "--stop"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--pause", type=float, default=0.1, help=argparse.SUPPRESS)
    parser.add_argument("--files", type=int, default=100_000, help="files in the day (default 100,000)")
    parser.add_argument("--total-bytes", default="50TB", help="apparent size of the day (default 50TB)")
    parser.add_argument("--backfill", type=float, default=0.5, help="fraction already on disk, bulk-ingested")
    parser.add_argument("--rate", type=float, default=50.0, help="steady arrivals per second (default 50)")
    parser.add_argument("--duration", type=float, help="land the live files in about this many seconds (sets the rate)")
    parser.add_argument("--burst", type=int, default=1000, help="files landed at once in each burst (0: none)")
    parser.add_argument("--burst-every", type=float, default=120.0, help="seconds of steady arrivals between bursts")
    parser.add_argument("--slow", type=float, default=0.01, help="fraction of live files written in place, slowly")
    parser.add_argument("--backends", default="sqlite,vast", help="comma-separated: sqlite, vast")
    parser.add_argument("--watch-workers", type=int, default=1, help="the watcher's extraction processes")
    parser.add_argument("--ingest-workers", type=int, default=2, help="the bulk ingest's extraction processes")
    parser.add_argument("--poll", type=float, default=0.05, help="the observer's polling interval (s)")
    parser.add_argument("--reader-pause", type=float, default=0.1, help="pause between the reader's queries (s)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="give up after this many seconds")
    parser.add_argument("--stall", type=float, default=600.0,
                        help="stop waiting when the catalog has not grown for this long after the last arrival")
    parser.add_argument("--quick", action="store_true", help="2,000 files (1 TB), 100/s, bursts of 200 every 5 s")
    parser.add_argument("--work", type=Path, help="where to make the working directory (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, journals)")
    parser.add_argument("--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "writer":
        return run_writer(args)
    if args.role == "observer":
        return run_observer(args)
    if args.role == "reader":
        return run_reader(args)
    from cosmoscope.simulate import parse_size

    if args.quick:
        # the day's file sizes (500 MB each), not its volume: 2,000 files of 25 GB would spend
        # minutes copying the slow ones in chunks
        args.files, args.rate, args.burst, args.burst_every, args.total_bytes = 2000, 100.0, 200, 5.0, "1TB"
    args.sparse_bytes = max(4096, parse_size(args.total_bytes) // args.files)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    os.environ.update(FAKE_KEYS)  # this process reads the fake VAST server too
    work = Path(tempfile.mkdtemp(prefix="cosmoscope-c7-", dir=args.work))
    try:
        truth = stage_day(args, work)
        runs = [run_backend(args, b, truth, work) for b in backends]
    finally:
        if args.keep:
            print(f"working directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    skip = ("role", "plan", "catalog", "journal", "out", "stop", "pause", "work", "out_dir", "keep")
    results = {"machine": machine(), "runs": runs, "options": {k: v for k, v in vars(args).items() if k not in skip},
               "command": "python benchmarks/cosmos7.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    text = (f"A simulated COSMOS-7 day: {runs[0]['files']:,} files, {runs[0]['apparent_bytes'] / 1e12:,.1f} TB "
            "apparent, cataloged by the watcher and a bulk backfill at once while a reader queries (docs/cosmos7.md)."
            "\n\n" + table(runs)
            + f"\n\nWatcher `--workers {args.watch_workers}`, ingest `--workers {args.ingest_workers}`. Lag: from a "
              "file's rename into place (or a slow copy's last write) to its row being visible to a query in "
              f"another process, polled every {args.poll} s (VAST: 0.25 s). Reproduce: `{results['command'].strip()}`")
    write_results("cosmos7", results, text, args.out_dir)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
