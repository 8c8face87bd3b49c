"""Scripted, repeatable fault runs: what production will do to the catalog, and nothing lost.

    python benchmarks/faults.py                       # the three runs at full size (~20 minutes)
    python benchmarks/faults.py --quick               # small sizes (~3 minutes)
    python benchmarks/faults.py --only kills --kills 50 --seed 3

1. ``kills``: ``cosmoscope ingest`` of a simulated tree (four missions, a few deliberately broken
   files) killed with SIGKILL at random moments ``--kills`` times, restarted each time, then run
   to the end. The catalog must equal a clean run's: every row, value for value, no row missing
   or duplicated, lineage complete, one ingest event per file.
2. ``writers``: three writers at once for ``--period`` seconds, each in its own process: the
   watcher cataloging files landing in its tree, bulk ingests of another tree (new, then
   ``--force`` re-reads), and a pipeline claiming datasets in processing runs, setting quality,
   cataloging an output per run and archiving (``catalog.processing_run``, ``catalog.update``);
   a reader queries meanwhile. Every write a writer was told succeeded must be in the catalog,
   the row and run counts exact, and no process may see "database is locked".
3. ``store``: ingests into VAST (the fake server) while it goes away: its process killed and
   restarted ``--outages`` times mid-run (down 0.5-12 s, past the client's retry budget now and
   then), and, in-process, failures injected at random moments (503s, 500s, connections dropped
   before or after the server applied the request). Each batch must be retried or reported in
   one sentence, and never half-applied: at every restart each row has its ingest event and
   each event its row; the final catalog equals a clean run's.

The functions take sizes as arguments; tests/test_faults.py runs the same faults, smaller.
Results: benchmarks/results/faults.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
sys.path.insert(1, str(REPO))  # tests.fakevast
from _common import catalog_rows, machine, markdown_table, wait_for, watching, write_results  # noqa: E402

FAKE_KEYS = {"COSMOSCOPE_VAST_ACCESS_KEY": "FAKEVASTACCESSKEY0001",
             "COSMOSCOPE_VAST_SECRET_KEY": "fake/vast/secret/key/for/tests/only"}
#: Columns that record when a row was written, not what it says: they differ between runs.
WHEN = ["ingested_at", "updated_at"]
LOCKED = ("database is locked", "database table is locked", "locking protocol")


def _env() -> dict:
    return {**os.environ, **FAKE_KEYS, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def cli(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "cosmoscope", "--catalog", url, "-q", *args]


def comparable(cat):
    """Observations without the write times, sorted: what two equal catalogs share exactly."""
    return cat.observations().drop(WHEN).collect().sort("dataset_id")


def compare(cat, clean) -> dict:
    """How ``cat`` differs from ``clean``: missing, unexpected, duplicated and differing rows,
    lineage edges, pending lineage, and files with other than one ingest event."""
    import polars as pl

    got, want = comparable(cat), comparable(clean)
    ids, want_ids = got["dataset_id"].to_list(), set(want["dataset_id"])
    common = got.filter(pl.col("dataset_id").is_in(list(want_ids)))
    differing = 0
    if common.height == want.height and common.columns == want.columns:
        differing = common.height - common.join(want, on=common.columns, how="semi", nulls_equal=True).height

    def edges(c):
        e = c.relationships().select("parent_dataset_id", "child_dataset_id", "relationship_type").collect()
        return set(e.iter_rows())

    events = cat.events().filter(pl.col("action") == "ingest").group_by("dataset_id").len().collect()
    return {"rows": len(ids), "expected_rows": want.height, "missing": len(want_ids - set(ids)),
            "unexpected": len(set(ids) - want_ids), "duplicated": len(ids) - len(set(ids)),
            "differing": differing if common.columns == want.columns else common.height,
            "lineage_missing": len(edges(clean) - edges(cat)), "lineage_unexpected": len(edges(cat) - edges(clean)),
            "pending_lineage": cat.frame("pending_lineage").select(pl.len()).collect().item(),
            "ingest_events_not_one": events.filter(pl.col("len") != 1).height + (len(want_ids) - events.height)}


def identical(diff: dict) -> bool:
    return diff["rows"] == diff["expected_rows"] and not any(
        diff[k] for k in ("missing", "unexpected", "duplicated", "differing", "lineage_missing", "lineage_unexpected",
                          "pending_lineage", "ingest_events_not_one"))


def simulate_tree(root: Path, files: int, seed: int, faults: float = 0.03):
    from cosmoscope.simulate import simulate

    return simulate(root, files=files, days=max(2, files // 400), seed=seed, faults=faults, progress=False,
                    workers=0 if files < 2000 else 2)


def _group(proc: subprocess.Popen) -> list[int]:
    """Processes still alive in ``proc``'s process group (its extraction workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == proc.pid:
                    out.append(int(entry))
            except OSError:
                continue
    return out


# -- 1. SIGKILL at random moments ----------------------------------------------------------------

def kill_plan(rng: random.Random, kills: int, total: int) -> list[tuple[str, float]]:
    """Where each kill lands: ``("start", seconds)`` during start-up, crawl or the first batch;
    ``("rows", n)`` as soon as the catalog holds ``n`` rows (mid-run, between or during
    commits); the last one maybe ``("end", total)``: after every row, while lineage is
    resolved and the run's summary written."""
    plan = []
    for _ in range(kills):
        if rng.random() < 0.2:
            plan.append(("start", rng.uniform(0.0, 2.0)))
        else:
            plan.append(("rows", rng.randrange(1, total)))
    plan.sort(key=lambda p: p[1] if p[0] == "rows" else -1)
    if kills > 2 and rng.random() < 0.7:
        plan[-1] = ("end", total)
    return plan


def kill_scenario(work: Path, *, files: int = 2000, kills: int = 20, seed: int = 0, batch_rows: int = 25,
                  workers: int = 1) -> dict:
    """Kill ``cosmoscope ingest`` ``kills`` times at random moments (see :func:`kill_plan`),
    restarting it each time, then let it finish; compare with a clean run. Returns the kill
    moments, the comparison and the worker processes left behind by killed runs."""
    import cosmoscope

    rng = random.Random(seed)
    tree = simulate_tree(work / "tree", files, seed)
    total = tree.manifest.height
    env = _env()
    clean_url, url = str(work / "clean.sqlite"), str(work / "killed.sqlite")
    args = ["ingest", str(tree.root), "--workers", str(workers), "--batch-rows", str(batch_rows)]
    t = time.monotonic()
    subprocess.run(cli(clean_url, *args), env=env, capture_output=True, timeout=3600)
    clean_seconds = time.monotonic() - t
    moments, orphans, completed_early = [], 0, 0
    for kind, where in kill_plan(rng, kills, total):
        proc = subprocess.Popen(cli(url, *args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        started = time.monotonic()
        if kind == "start":
            time.sleep(where)
        else:  # poll (a read-only connection never blocks the writer) until the catalog holds enough rows
            while proc.poll() is None and _rows(url) < where:
                time.sleep(0.01)
        if proc.poll() is not None:
            completed_early += 1  # it finished before its moment came
            if proc.returncode not in (0, 1):
                raise RuntimeError(f"ingest failed on its own: {proc.stderr.read().decode()[-2000:]}")
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15  # its workers notice their parent is gone and exit
        while _group(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _group(proc)
        orphans += len(left)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        moments.append({"kind": kind, "after_s": round(time.monotonic() - started, 2), "rows_at_kill": _rows(url)})
    final = subprocess.run(cli(url, *args, "--json"), env=env, capture_output=True, text=True, timeout=3600)
    with cosmoscope.open_catalog(url) as cat, cosmoscope.open_catalog(clean_url) as clean:
        diff = compare(cat, clean)
    return {"files": total, "broken_files": int(tree.manifest["fault"].is_not_null().sum()),
            "kills": len(moments), "completed_before_kill": completed_early, "clean_run_s": round(clean_seconds, 1),
            "moments": moments, "orphaned_workers": orphans, "final_exit_code": final.returncode,
            "final_summary": json.loads(final.stdout) if final.stdout.strip() else None,
            "comparison": diff, "identical": identical(diff)}


def _rows(url: str) -> int:
    import cosmoscope

    if "://" not in url and not os.path.exists(url):
        return 0
    try:
        with cosmoscope.open_catalog(url, readonly=True) as cat:
            return cat.count()
    except cosmoscope.CosmoscopeError:  # created this moment, tables not there yet
        return 0


# -- 2. three writers at once ------------------------------------------------------------------

def run_pipeline(args) -> int:
    """The pipeline role: claim raw datasets of the watched tree, set quality, add an output,
    finish; archive some; journal every write acknowledged."""
    import polars as pl

    import cosmoscope

    rng = random.Random(args.seed)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = open(args.journal, "a", buffering=1)
    cat = cosmoscope.open_catalog(args.catalog)
    n = 0
    processed: list[str] = []
    while not os.path.exists(args.stop):
        ready = (cat.observations().filter((pl.col("processing_status") == "raw")
                                           & pl.col("file_path").str.starts_with(args.live)
                                           & (pl.col("extraction_status") != "error"))
                 .select("dataset_id").head(200).collect()["dataset_id"].to_list())
        if not ready:
            time.sleep(0.2)
            continue
        ids = rng.sample(ready, min(len(ready), rng.randint(1, 8)))
        quality = round(rng.uniform(0.5, 1.0), 3)
        n += 1
        output = out_dir / f"calibrated_{n:05d}.fits"
        _write_output(output, n)
        with cat.processing_run("calibrate", inputs=ids, params={"n": n}) as run:
            for i in ids:
                run.set_quality(i, quality)
            out_id = run.add_output(output, relationship="raw->calibrated", parents=ids[:1])
        journal.write(json.dumps({"run": run.run_id, "inputs": ids, "quality": quality, "output": out_id}) + "\n")
        processed += ids
        if n % 4 == 0 and processed:
            some = rng.sample(processed, min(3, len(processed)))
            cat.update(some, processing_status="archived", reason="fault run: archived")
            journal.write(json.dumps({"archived": some}) + "\n")
            processed = [p for p in processed if p not in some]
    cat.close()
    return 0


def _write_output(path: Path, n: int) -> None:
    from astropy.io import fits

    hdr = fits.Header({"TELESCOP": "HELIOS-X", "INSTRUME": "XIS", "DATE-OBS": "2026-11-27T08:00:00",
                       "OBJECT": "M31", "EXPOSURE": 100.0 + n})
    fits.PrimaryHDU(header=hdr).writeto(path, overwrite=True)


def run_reader(args) -> int:
    import cosmoscope

    errors, n = [], 0
    while not os.path.exists(args.stop):
        try:
            with cosmoscope.open_catalog(args.catalog, readonly=True) as cat:
                cat.search(mission="HELIOS-X", min_quality=0.5).collect()
                cat.mission_summary()
                n += 1
        except cosmoscope.CosmoscopeError as exc:
            errors.append(str(exc))
        time.sleep(0.05)
    Path(args.out).write_text(json.dumps({"queries": n, "errors": errors}))
    return 0


def writers_scenario(work: Path, *, period: float = 300.0, rate: float = 15.0, archive_files: int = 1200,
                     parts: int = 4, seed: int = 0, min_runs: int = 0) -> dict:
    """Watcher, bulk ingest and pipeline writing at once (SQLite) while ``period * rate`` files
    land in the watched tree at ``rate`` a second (``period`` seconds on an idle machine).

    Each writer goes on until it has done its share, however slow the machine: the bulk ingest
    covers every part and runs at least ``min_runs`` times, the pipeline finishes at least
    ``min_runs`` processing runs, whatever the clock says.
    """
    import cosmoscope

    live_n = int(period * rate)
    stage = simulate_tree(work / "stage", live_n, seed, faults=0.0)
    archive = simulate_tree(work / "archive", archive_files, seed + 1, faults=0.02)
    part_dirs = _split(archive.root, archive.manifest["relpath"].to_list(), parts)
    live = work / "live"
    live.mkdir()
    url = str(work / "catalog.sqlite")
    cosmoscope.open_catalog(url).close()
    env, stop, me = _env(), work / "stop", [sys.executable, str(Path(__file__).resolve())]
    logs: dict[str, Path] = {}
    procs: dict[str, subprocess.Popen] = {}

    def start(role, cmd):
        logs[role] = work / f"{role}.log"
        procs[role] = subprocess.Popen(cmd, env=env, stdout=open(work / f"{role}.out", "w"),
                                       stderr=open(logs[role], "w"))

    start("watcher", cli(url, "watch", str(live), "--workers", "1", "--settle", "0.5"))
    wait_for(lambda: watching(url), 60, "the watcher to start")
    start("pipeline", [*me, "--role", "pipeline", "--catalog", url, "--live", str(live), "--journal",
                       str(work / "pipeline.jsonl"), "--stop", str(stop), "--out-dir", str(work / "outputs"),
                       "--seed", str(seed)])
    start("reader", [*me, "--role", "reader", "--catalog", url, "--stop", str(stop), "--out",
                     str(work / "reader.json")])
    ingests: list[dict] = []
    landing = threading.Event()  # set once every staged file has landed

    def ingest_loop():
        k = 0
        while not landing.is_set() or k < max(parts, min_runs):  # every part at least once
            part = part_dirs[k % parts]
            args = ["ingest", str(part), "--workers", "1", "--batch-rows", "50", "--json"]
            out = subprocess.run(cli(url, *args, *(["--force"] if k >= parts else [])), env=env,
                                 capture_output=True, text=True, timeout=3600)
            ingests.append({"part": k % parts, "force": k >= parts, "exit": out.returncode,
                            "summary": json.loads(out.stdout) if out.stdout.strip() else None,
                            "stderr": out.stderr[-2000:]})
            k += 1

    loop = threading.Thread(target=ingest_loop)
    loop.start()
    landed = _land(stage, live, rate)
    landing.set()
    loop.join()
    journal = work / "pipeline.jsonl"
    wait_for(lambda: _finished_runs(journal) >= min_runs, 900, f"the pipeline to finish {min_runs} runs")
    stop.touch()
    for role in ("pipeline", "reader"):
        procs[role].wait(timeout=300)
    expected_rows = len(landed) + archive.manifest.height + _finished_runs(journal)
    wait_for(lambda: catalog_rows(url) >= expected_rows, 900, "every expected row")
    # A stopped watcher writes nothing more: rows it should not have written show in the count.
    procs["watcher"].send_signal(signal.SIGTERM)
    procs["watcher"].wait(timeout=300)
    return _check_writers(work, url, landed, archive, ingests, procs, logs, expected_rows, period)


def _finished_runs(journal: Path) -> int:
    """Processing runs the pipeline has journaled as finished."""
    return sum(1 for line in open(journal) if '"run"' in line) if journal.exists() else 0


def _split(root: Path, relpaths: list[str], parts: int) -> list[Path]:
    """Move the files of a tree into ``parts`` sibling trees (part_0 ... part_N)."""
    dirs = [root.parent / f"part_{i}" for i in range(parts)]
    for i, rel in enumerate(relpaths):
        dest = dirs[i % parts] / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / rel, dest)
        side = (root / rel).with_suffix(".json")  # AURORA-2 sidecars travel with their file
        if side.exists():
            os.rename(side, dest.with_suffix(".json"))
    return dirs


def _land(stage, live: Path, rate: float) -> list[str]:
    """Rename every staged file into the watched tree, at ``rate`` per second at most."""
    landed = []
    start = time.monotonic()
    for i, rel in enumerate(stage.manifest["relpath"]):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        dest = live / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        side = (stage.root / rel).with_suffix(".json")
        if side.exists():
            os.rename(side, dest.with_suffix(".json"))
        os.rename(stage.root / rel, dest)
        landed.append(str(dest))
    return landed


def _check_writers(work, url, landed, archive, ingests, procs, logs, expected_rows, period) -> dict:
    import polars as pl

    import cosmoscope
    from cosmoscope.records import dataset_id_for

    journal = [json.loads(line) for line in open(work / "pipeline.jsonl")]
    runs = [j for j in journal if "run" in j]
    want_status, want_quality = {}, {}
    for j in journal:
        if "run" in j:
            for i in j["inputs"]:
                want_status[i], want_quality[i] = "processed", j["quality"]
            want_status[j["output"]] = "processed"
        else:
            for i in j["archived"]:
                want_status[i] = "archived"
    with cosmoscope.open_catalog(url, readonly=True) as cat:
        obs = cat.observations().select("dataset_id", "file_path", "processing_status", "data_quality_score").collect()
        by_id = {r["dataset_id"]: r for r in obs.iter_rows(named=True)}
        run_rows = cat.frame("processing_runs").collect()
        edges = set(cat.relationships().filter(pl.col("relationship_type") == "raw->calibrated")
                    .select("parent_dataset_id", "child_dataset_id").collect().iter_rows())
        events = cat.events().filter(pl.col("action") == "ingest").group_by("dataset_id").len().collect()
    want_ids = {dataset_id_for(p) for p in landed}
    for part in sorted(work.glob("part_*")):
        want_ids |= {dataset_id_for(p) for p in (str(f) for f in part.rglob("*")) if _is_data(p)}
    want_ids |= {j["output"] for j in runs}
    lost_status = [i for i, s in want_status.items() if by_id.get(i, {}).get("processing_status") != s]
    lost_quality = [i for i, q in want_quality.items() if by_id.get(i, {}).get("data_quality_score") != q]
    succeeded = set(run_rows.filter(pl.col("status") == "succeeded")["run_id"])
    lost_runs = [j["run"] for j in runs if j["run"] not in succeeded]
    lost_edges = [j for j in runs if (j["inputs"][0], j["output"]) not in edges]
    locked = {role: _locked_lines(path) for role, path in logs.items()}
    reader = json.loads((work / "reader.json").read_text())
    exits = {role: p.returncode for role, p in procs.items()}
    failed_ingests = [i for i in ingests if i["exit"] not in (0, 1) or i["summary"] is None]
    ids = obs["dataset_id"].to_list()
    return {
        "period_s": period, "files_landed": len(landed), "archive_files": archive.manifest.height,
        "ingest_runs": len(ingests), "ingest_runs_failed": len(failed_ingests),
        "ingest_updated": sum((i["summary"] or {}).get("updated", 0) for i in ingests),
        "pipeline_runs": len(runs), "archived": sum(len(j.get("archived", [])) for j in journal),
        "rows": len(ids), "expected_rows": expected_rows, "missing": len(want_ids - set(ids)),
        "unexpected": len(set(ids) - want_ids), "duplicated": len(ids) - len(set(ids)),
        "acknowledged_writes": len(want_status) + len(want_quality) + len(runs) * 2,
        "acknowledged_lost": len(lost_status) + len(lost_quality) + len(lost_runs) + len(lost_edges),
        "lost_examples": (lost_status + lost_quality + lost_runs)[:5],
        "ingest_events_not_one": events.filter(pl.col("len") != 1).height,
        "locked_messages": {k: v for k, v in locked.items() if v}, "exit_codes": exits,
        "reader_queries": reader["queries"], "reader_errors": reader["errors"][:5],
        "ok": (len(ids) == expected_rows and set(ids) == want_ids and not lost_status and not lost_quality
               and not lost_runs and not lost_edges and not any(locked.values()) and not reader["errors"]
               and not failed_ingests and exits.get("pipeline") == 0 and exits.get("watcher") == 0
               and events.filter(pl.col("len") != 1).height == 0),
    }


def _is_data(path: str) -> bool:
    from cosmoscope.ingest.workers import looks_like_data

    return os.path.isfile(path) and not os.path.basename(path).startswith(".") and looks_like_data(path)


def _locked_lines(path: Path) -> list[str]:
    text = path.read_text(errors="replace") if path.exists() else ""
    return [line for line in text.splitlines() if any(w in line.lower() for w in LOCKED)][:5]


# -- 3. the store going away -------------------------------------------------------------------

class FakeVastProcess:
    """The fake VAST server in its own process, persisting to ``data_dir``; killed and restarted
    on the same port as a crashed cluster would be."""

    def __init__(self, data_dir: Path, log: Path):
        self.data_dir, self.log, self.port, self.proc = data_dir, log, 0, None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "tests.fakevast", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        for _ in range(50):  # the port may linger for a moment after a kill
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=open(self.log, "a"), text=True)
            line = self.proc.stdout.readline()
            if "http://" in line:
                self.port = int(line.split(" at ", 1)[1].split()[0].rsplit(":", 1)[1])
                return
            self.proc.wait()
            time.sleep(0.2)
        raise RuntimeError("the fake VAST server would not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def url(self, schema: str, options: str) -> str:
        return f"vast+http://127.0.0.1:{self.port}/cosmoscope/{schema}?{options}"


def invariants(cat) -> dict:
    """What a half-applied batch would break: rows without their ingest event, ingest events
    without their row, pending lineage of children that are not there."""
    import polars as pl

    rows = set(cat.observations().select("dataset_id").collect()["dataset_id"])
    evs = set(cat.events().filter(pl.col("action") == "ingest").select("dataset_id").collect()["dataset_id"])
    pend = set(cat.frame("pending_lineage").select("child_dataset_id").collect()["child_dataset_id"])
    return {"rows_without_event": len(rows - evs), "events_without_row": len(evs - rows),
            "pending_without_row": len(pend - rows), "rows": len(rows)}


def committed_invariants(server, schema: str) -> dict:
    """:func:`invariants` of what the in-process fake server has committed, read directly (no
    request that an injected fault could hit)."""
    import pyarrow.compute as pc

    rows = set(server.committed_rows(schema, "observations").column("dataset_id").to_pylist())
    events = server.committed_rows(schema, "events")
    evs = set(events.filter(pc.equal(events.column("action"), "ingest")).column("dataset_id").to_pylist())
    pend = set(server.committed_rows(schema, "pending_lineage").column("child_dataset_id").to_pylist())
    return {"rows_without_event": len(rows - evs), "events_without_row": len(evs - rows),
            "pending_without_row": len(pend - rows), "rows": len(rows)}


def store_scenario(work: Path, *, files: int = 600, outages: int = 6, injected: int = 40, seed: int = 0,
                   batch_rows: int = 20) -> dict:
    """Ingest into VAST while the server goes away (process killed) and while faults are injected."""
    import cosmoscope

    rng = random.Random(seed)
    tree = simulate_tree(work / "tree", files, seed)
    env = _env()
    os.environ.update(FAKE_KEYS)
    server = FakeVastProcess(work / "vast", work / "fakevast.log")
    server.start()
    options = "retry_wait=0.05&retry_seconds=6"
    args = ["ingest", str(tree.root), "--workers", "1", "--batch-rows", str(batch_rows)]
    result: dict = {"files": tree.manifest.height}
    try:
        clean_url = server.url("clean", options)
        subprocess.run(cli(clean_url, *args), env=env, capture_output=True, timeout=3600, check=False)
        # a) the server process killed mid-run, down for a while, restarted
        url = server.url("outages", options)
        attempts, outage_log, checks, reports = 0, [], [], []
        pending_outages, finished_early = outages, 0
        while True:
            attempts += 1
            again = ["--force"] if finished_early else []  # read every file again: a run to interrupt
            proc = subprocess.Popen(cli(url, *args, *again, "--json"), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            # mid-run: once the catalog holds rows (a loaded machine takes a while to start up)
            wait_for(lambda: proc.poll() is not None or _rows(url) > 0, 300, "the ingest's first rows")
            while pending_outages and proc.poll() is None:
                time.sleep(rng.uniform(0.5, 4.0))
                if proc.poll() is not None:
                    break
                down = rng.choice([rng.uniform(0.5, 3.0), rng.uniform(8.0, 12.0)])  # within, or past, the retries
                server.kill()
                time.sleep(down)
                server.start()
                pending_outages -= 1
                outage_log.append(round(down, 1))
                with cosmoscope.open_catalog(url, readonly=True) as cat:
                    checks.append(invariants(cat))
            out, err = proc.communicate(timeout=3600)
            if out.strip().startswith("{"):  # the run's summary: it got to the end
                if pending_outages and finished_early < 10:  # an idle machine outran the outages
                    finished_early += 1
                    attempts -= 1
                    continue
                break
            reports.append(err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}")
            if "Traceback" in err or attempts > outages + 5:
                reports.append("traceback:" + err[-1500:])
                break
        with cosmoscope.open_catalog(url, readonly=True) as cat, \
                cosmoscope.open_catalog(clean_url, readonly=True) as clean:
            diff = compare(cat, clean)
        broken = [c for c in checks if c["rows_without_event"] or c["events_without_row"] or c["pending_without_row"]]
        result["outages"] = {"outages": len(outage_log), "down_s": outage_log, "ingest_attempts": attempts,
                             "reported": reports, "half_applied_seen": len(broken), "checks": checks,
                             "comparison": diff, "identical": identical(diff),
                             "tracebacks": sum(r.startswith("traceback:") for r in reports)}
    finally:
        server.kill()
    result["injected"] = injected_faults(work, tree, rng, injected=injected, batch_rows=batch_rows)
    result["ok"] = (result["outages"]["identical"] and not result["outages"]["half_applied_seen"]
                    and not result["outages"]["tracebacks"] and result["injected"]["identical"]
                    and not result["injected"]["half_applied_seen"])
    return result


def injected_faults(work: Path, tree, rng: random.Random, *, injected: int, batch_rows: int) -> dict:
    """In-process: an ingest (no worker processes) into an in-process fake server while another
    thread injects one fault at a time at random moments; every StoreError is a report, and the
    ingest runs again until it completes."""
    import cosmoscope
    from cosmoscope.errors import CosmoscopeError
    from tests.fakevast import FakeVastServer

    with FakeVastServer() as server:
        base = f"vast+http://127.0.0.1:{server.port}/{server.bucket}"
        options = "retry_wait=0.01&retry_seconds=5"
        with cosmoscope.open_catalog(f"{base}/clean?{options}") as clean:
            clean.ingest(tree.root, workers=0, progress=False, batch_rows=batch_rows)
            clean_snapshot = clean  # compared below, while the server still runs
            kinds: list[str] = []
            stop = threading.Event()

            def inject():
                # One fault at a time, each after a random number of the ingest's requests, so
                # they land all through it: in reads, writes, commits and the lineage step.
                while not stop.is_set() and len(kinds) < injected:
                    target = server.count() + rng.randint(1, 25)
                    while server.count() < target and not stop.is_set():
                        time.sleep(0.005)
                    verb = rng.choice(["insert", "update", "delete", "select", "commit", "begin"])
                    kind = rng.choice(["503", "500", "drop", "drop-after-apply", "slowdown"])
                    if kind == "503":
                        server.fail_next(1, 503, verb=verb)
                    elif kind == "slowdown":
                        server.fail_next(1, 503, "SlowDown", verb=verb)
                    elif kind == "500":
                        server.fail_next(1, 500, verb=verb)
                    else:
                        server.drop_connections(1, verb=verb, after_apply=kind == "drop-after-apply")
                    kinds.append(f"{kind} {verb}")

            reports, checks, runs = [], [], 0
            cat = cosmoscope.open_catalog(f"{base}/injected?{options}")
            thread = threading.Thread(target=inject, daemon=True)
            thread.start()
            while True:
                runs += 1
                try:
                    cat.ingest(tree.root, workers=0, progress=False, batch_rows=batch_rows, force=runs > 1)
                    if not thread.is_alive():
                        break
                except CosmoscopeError as exc:
                    reports.append(str(exc))
                checks.append(committed_invariants(server, "injected"))
                if runs > injected * 4:
                    break
            stop.set()
            thread.join()
            server.clear_faults()
            cat.ingest(tree.root, workers=0, progress=False, batch_rows=batch_rows)  # the last word, fault-free
            diff = compare(cat, clean_snapshot)
            final = committed_invariants(server, "injected")
            cat.close()
    broken = [c for c in checks + [final] if c["rows_without_event"] or c["events_without_row"]
              or c["pending_without_row"]]
    return {"faults": len(kinds), "kinds": sorted(set(k.split()[0] for k in kinds)), "ingest_runs": runs,
            "reported": len(reports), "report_examples": reports[:3], "half_applied_seen": len(broken),
            "comparison": diff, "identical": identical(diff)}


# -- main --------------------------------------------------------------------------------------

def table(results: dict) -> str:
    rows = []
    k = results.get("kills")
    if k:
        rows.append(["SIGKILL of `cosmoscope ingest` at random moments, restarted",
                     f"{k['files']:,} files ({k['broken_files']} broken), {k['kills']} kills",
                     f"{k['comparison']['rows']:,}/{k['comparison']['expected_rows']:,} rows, "
                     f"{k['comparison']['missing']} missing, {k['comparison']['duplicated']} duplicated, "
                     f"{k['comparison']['differing']} differing; {k['orphaned_workers']} workers left behind",
                     "yes" if k["identical"] and not k["orphaned_workers"] else "NO"])
    w = results.get("writers")
    if w:
        rows.append([f"watcher + bulk ingest + pipeline writing at once for {w['period_s']:g} s (SQLite)",
                     f"{w['files_landed']:,} files landed, {w['ingest_runs']:,} ingests ({w['ingest_updated']:,} "
                     f"re-read), {w['pipeline_runs']:,} pipeline runs, {w['reader_queries']:,} reader queries",
                     f"{w['rows']:,}/{w['expected_rows']:,} rows; {w['acknowledged_lost']} of "
                     f"{w['acknowledged_writes']:,} acknowledged writes lost; 'locked' seen "
                     f"{sum(len(v) for v in w['locked_messages'].values())} times",
                     "yes" if w["ok"] else "NO"])
    s = results.get("store")
    if s:
        o, i = s["outages"], s["injected"]
        rows.append(["fake VAST server killed mid-run and restarted",
                     f"{s['files']:,} files, {o['outages']} outages of {min(o['down_s'], default=0)}-"
                     f"{max(o['down_s'], default=0)} s, {o['ingest_attempts']} ingest runs",
                     f"{_runs(len(o['reported']))} stopped with a one-sentence error, {o['tracebacks']} tracebacks; "
                     f"half-applied batches seen: {o['half_applied_seen']}; final = clean run: {o['identical']}",
                     "yes" if o["identical"] and not o["half_applied_seen"] and not o["tracebacks"] else "NO"])
        rows.append(["faults injected at random moments (503, SlowDown, 500, dropped connections)",
                     f"{i['faults']} faults, {i['ingest_runs']} ingest runs",
                     f"{i['reported']} reported; half-applied: {i['half_applied_seen']}; final = clean run: "
                     f"{i['identical']}", "yes" if i["identical"] and not i["half_applied_seen"] else "NO"])
    return markdown_table(["fault", "load", "outcome", "survived, nothing lost"], rows)


def _runs(n: int) -> str:
    return f"{n} ingest run{'' if n == 1 else 's'}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["pipeline", "reader"], help=argparse.SUPPRESS)
    for name in ("--catalog", "--live", "--journal", "--stop", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["kills", "writers", "store"], action="append",
                        help="run only this (repeatable)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the ingest (default 20)")
    parser.add_argument("--files", type=int, default=2000, help="files in the killed ingest's tree")
    parser.add_argument("--period", type=float, default=300.0, help="seconds the three writers run together")
    parser.add_argument("--outages", type=int, default=6, help="times the fake VAST server is killed mid-run")
    parser.add_argument("--injected", type=int, default=60, help="faults injected into the in-process server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="5 kills of 400 files, 30 s of writers, 3 outages")
    parser.add_argument("--results", type=Path, default=None, help="results directory (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.role == "pipeline":
        return run_pipeline(args)
    if args.role == "reader":
        return run_reader(args)
    if args.quick:
        args.kills, args.files, args.period, args.outages, args.injected = 5, 400, 30.0, 3, 20
    only = args.only or ["kills", "writers", "store"]
    results: dict = {"machine": machine(),
                     "command": "python benchmarks/faults.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="cosmoscope-faults-") as tmp:
        work = Path(tmp)
        if "kills" in only:
            print("kills ...", flush=True)
            (work / "kills").mkdir()
            results["kills"] = kill_scenario(work / "kills", files=args.files, kills=args.kills, seed=args.seed)
        if "writers" in only:
            print("writers ...", flush=True)
            (work / "writers").mkdir()
            results["writers"] = writers_scenario(work / "writers", period=args.period, seed=args.seed)
        if "store" in only:
            print("store ...", flush=True)
            (work / "store").mkdir()
            results["store"] = store_scenario(work / "store", outages=args.outages, injected=args.injected,
                                              seed=args.seed)
    text = table(results) + f"\n\nReproduce: `{results['command'].strip()}`"
    write_results("faults", results, text, args.results)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
