"""The HTTP API under load: many clients at once, as pipelines polling for data make it.

    python benchmarks/api_bench.py                      # 1,000,000 rows, 200 clients
    python benchmarks/api_bench.py --rows 100000 --requests 1000

Builds a SQLite catalog of synthetic rows, starts ``cosmoscope api`` (one worker process per CPU)
and, from a load generator in another process (benchmarks/_loadgen.py, 200 keep-alive
connections), measures:

1. dataset lookup (``GET /datasets/{id}``) and a page of search results (``GET /datasets?mission=
   ...&start=...&end=...&min_quality=0.5&limit=100``), each closed loop (every client sends its
   next request once answered: the most the server does) and open loop at ``--rate`` requests/s
   (latency counted from when each request was due);
2. the mission summary (``GET /missions/{m}``), closed loop;
3. 1,000 requests (lookups and pages) while ``--subscribers`` clients follow ``GET /stream`` and
   a writer catalogs a row every 0.1 s: errors, resets, and the events the subscribers got;

and the same lookups and pages against ``cosmoscope api --workers 1``: one process, the server's
old (and only) way. Writes benchmarks/results/api_bench.{json,md}.

Targets (2 cores, 200 clients): lookups and pages >= 300 requests/s with p95 < 300 ms; no errors
or resets over 1,000 requests. Closed loop, Little's law ties them: 200 requests always in flight
at 300 requests/s wait 0.67 s on average, so p95 < 300 ms at 200 concurrent clients needs about
700 requests/s; the open-loop run at --rate shows the latency at the target throughput.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, markdown_table, percentile, write_results  # noqa: E402

MISSIONS = ["COSMOS-7", "HELIOS-X", "LYRA", "AURORA-2", "CHANDRA", "XMM", "TESS", "GOES"]


def build(path: str, rows: int) -> list[str]:
    """A catalog of ``rows`` synthetic observations (the query benchmark's); returns some ids."""
    import cosmoscope
    from query_bench import synthetic

    data = synthetic(rows)
    with cosmoscope.open_catalog(path) as cat:
        cat.add_records(data)
    ids = data.column("dataset_id").to_pylist()
    return random.Random(0).sample(ids, min(len(ids), 20_000))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``cosmoscope api`` in a subprocess."""

    def __init__(self, catalog: str, workers: int, log: Path):
        self.port = free_port()
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cosmoscope", "--catalog", catalog, "-q", "api",
                                      "--port", str(self.port), "--workers", str(workers)],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"benchmark: the API server did not start; see {log}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def load(port: int, paths: list[str], requests: int, clients: int, *, rate: float | None = None,
         sse: dict | None = None) -> dict:
    """Run the load generator in its own process and summarise what it saw."""
    spec = {"host": "127.0.0.1", "port": port, "clients": clients, "requests": requests, "paths": paths,
            "rate": rate, "sse": sse}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        out = subprocess.run([sys.executable, str(HERE / "_loadgen.py"), f.name], capture_output=True, text=True,
                             timeout=1800)
    finally:
        os.unlink(f.name)
    if out.returncode:
        raise SystemExit(f"benchmark: the load generator failed: {out.stderr[-2000:]}")
    r = json.loads(out.stdout)
    lat = r["latencies"]
    ok = r["status"].get("200", 0)
    return {"requests": requests, "clients": clients, "offered_rate": rate, "answered": len(lat), "ok": ok,
            "status": r["status"], "errors": len(r["errors"]), "error_examples": r["errors"][:5],
            "seconds": round(r["seconds"], 2), "requests_per_s": round(len(lat) / r["seconds"], 1),
            "p50_s": percentile(lat, 50), "p95_s": percentile(lat, 95), "p99_s": percentile(lat, 99),
            "max_s": round(max(lat), 3) if lat else None, "sse_status": r["sse_status"],
            "sse_events": r["sse_events"], "sse_keepalives": r["sse_keepalives"]}


def page_paths(n: int, seed: int = 1) -> list[str]:
    """Selective searches: one mission, one month, quality >= 0.5, the first page of 100."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        day = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(0, 6 * 365 - 31))
        end = day + dt.timedelta(days=30)
        out.append(f"/datasets?mission={rng.choice(MISSIONS)}&start={day}&end={end}&min_quality=0.5&limit=100")
    return out


def writer(catalog: str, stop: threading.Event, written: list) -> None:
    """Catalog a new row every 0.1 s (what the event-stream subscribers should hear of)."""
    import cosmoscope

    with cosmoscope.open_catalog(catalog, actor="bench-writer") as cat:
        i = 0
        while not stop.wait(0.1):
            cat.add_records([{"file_path": f"/bench/new/{i:06d}.fits", "mission_id": "NEW-1",
                              "observation_timestamp": dt.datetime.now(dt.timezone.utc)}])
            written.append(i)
            i += 1


def main(argv=None) -> int:
    from cosmoscope.ingest.workers import default_workers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=3_000, help="requests per lookup and page run (default 3000)")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=float, default=300.0, help="offered requests/s of the open-loop runs")
    ap.add_argument("--subscribers", type=int, default=20, help="event-stream clients during the mixed run")
    ap.add_argument("--workers", type=int, default=None, help="API worker processes (default: one per CPU)")
    ap.add_argument("--out", type=Path, help="directory for results (default: benchmarks/results)")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cosmoscope-api-bench-"))
    catalog = str(tmp / "bench.sqlite")
    t = time.perf_counter()
    ids = build(catalog, args.rows)
    print(f"catalog of {args.rows:,} rows built in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    workers = args.workers or default_workers()
    lookups = [f"/datasets/{i}" for i in ids]
    pages = page_paths(2_000)
    mixed = [p for pair in zip(lookups, pages) for p in pair]
    results = {"rows": args.rows, "clients": args.clients, "workers": workers, "machine": machine(), "runs": {}}
    runs = results["runs"]

    def run(name, port, paths, n, **kw):
        print(f"{name} ...", file=sys.stderr)
        runs[name] = load(port, paths, n, args.clients, **kw)
        print(f"  {runs[name]}", file=sys.stderr)

    server = Server(catalog, workers, tmp / "api.log")
    try:
        run("dataset lookup, closed loop", server.port, lookups, args.requests)
        run(f"dataset lookup, {args.rate:g}/s offered", server.port, lookups, args.requests, rate=args.rate)
        run("page of search results, closed loop", server.port, pages, args.requests)
        run(f"page of search results, {args.rate:g}/s offered", server.port, pages, args.requests, rate=args.rate)
        run("mission summary, closed loop", server.port, [f"/missions/{m}" for m in MISSIONS],
            max(args.requests // 30, 100))
        stop, written = threading.Event(), []
        thread = threading.Thread(target=writer, args=(catalog, stop, written), daemon=True)
        thread.start()
        try:
            run("1,000 mixed requests with event-stream subscribers", server.port, mixed, 1_000,
                sse={"paths": ["/stream?interval=1&columns=file_path"] * args.subscribers, "seconds": 20})
        finally:
            stop.set()
            thread.join(30)
        runs["1,000 mixed requests with event-stream subscribers"]["rows_written_meanwhile"] = len(written)
    finally:
        server.stop()
    single = Server(catalog, 1, tmp / "api-1.log")
    try:
        run("dataset lookup, closed loop, one worker process", single.port, lookups, args.requests)
        run("page of search results, closed loop, one worker process", single.port, pages, args.requests)
    finally:
        single.stop()

    def ms(v):
        return "" if v is None else f"{v * 1000:,.0f} ms"

    rows = [[name, f"{r['requests']:,}", f"{r['offered_rate']:g}/s" if r["offered_rate"] else "closed loop",
             f"{r['requests_per_s']:,.0f}", ms(r["p50_s"]), ms(r["p95_s"]), ms(r["p99_s"]),
             f"{r['errors']}" + (f" ({', '.join(f'{k}: {v}' for k, v in r['status'].items() if k != '200')})"
                                 if set(r["status"]) - {"200"} else "")]
            for name, r in runs.items()]
    table = markdown_table(["run", "requests", "load", "requests/s", "p50", "p95", "p99", "errors"], rows)
    mixed_run = runs["1,000 mixed requests with event-stream subscribers"]
    table += (f"\n\n{args.rows:,} rows, {args.clients} concurrent clients, {workers} API worker processes "
              f"(the last two runs: one, the old default). During the mixed run {args.subscribers} event-stream "
              f"subscribers got {mixed_run['sse_events']:,} dataset events for {mixed_run['rows_written_meanwhile']:,} "
              f"rows written meanwhile (each subscriber hears of each row), and {mixed_run['sse_keepalives']:,} "
              "keep-alive comments.")
    shutil.rmtree(tmp, ignore_errors=True)
    out = write_results("api_bench", results, table, args.out)
    print(table)
    print(f"results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
