"""How soon a file is searchable after it lands, and how fast validation runs.

    python benchmarks/watch_bench.py                      # 300 files at 50/s, a 300-file burst
    python benchmarks/watch_bench.py --files 500 --rate 100 --workers 2
    python benchmarks/watch_bench.py --validate-files 5000

Three processes, as in production: ``cosmoscope watch`` (the watcher), a reader polling the
catalog every 20 ms for new rows (what a user's query sees), and this script, which copies
simulated mission files into the watched tree (open, write, close) at a steady rate and then
all at once. Latency is from the moment a file's copy is closed to the moment the reader first
sees its row. Validation throughput is measured on the resulting catalog (plus more simulated
files), without and with ``--checksums`` (full reads, content hashes and FITS checksums).

Writes benchmarks/results/watch_bench.{json,md}. Target: p95 <= 2 s at 50 files/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import catalog_rows, machine, markdown_table, percentile, wait_for, watching, write_results  # noqa: E402

READER = r"""
import json, sys, time
import cosmoscope
url, expected, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = {}
deadline = time.time() + 600
while len(seen) < expected and time.time() < deadline:
    try:
        with cosmoscope.open_catalog(url, readonly=True) as cat:
            while len(seen) < expected and time.time() < deadline:
                paths = cat.observations().select("file_path").collect()["file_path"]
                now = time.time()
                for p in paths:
                    seen.setdefault(p, now)
                time.sleep(0.02)
    except cosmoscope.CosmoscopeError:
        time.sleep(0.05)  # the watcher has not created the catalog yet
json.dump(seen, open(out, "w"))
"""


def stage(n: int, where: Path, seed: int) -> list[Path]:
    """``n`` simulated files of all four missions, written outside the watched tree."""
    from cosmoscope.simulate import iter_file_specs, write_file

    out = []
    for spec in iter_file_specs(files=n, days=max(1, n // 150), seed=seed):
        if spec.sidecar:
            continue
        out.append(write_file(spec, where))
        if len(out) == n:
            break
    return out


def deliver(files: list[Path], src_root: Path, dst_root: Path, rate: float | None) -> dict[str, float]:
    """Copy files into the tree (at ``rate`` per second, or at once); return path -> close time."""
    closed = {}
    start = time.perf_counter()
    for i, f in enumerate(files):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        dst = dst_root / f.relative_to(src_root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst)  # open, write, close: the close is the moment a watcher can act
        closed[str(dst)] = time.time()
    return closed


def latency(args, work: Path) -> dict:
    url = f"sqlite://{work}/catalog.sqlite"
    root = work / "incoming"
    root.mkdir()
    staged = stage(2 * args.files + 10, work / "staging", seed=3)
    warm, steady, burst = staged[:10], staged[10:10 + args.files], staged[10 + args.files:]
    total = len(staged)
    out = work / "seen.json"
    reader = subprocess.Popen([sys.executable, "-c", READER, url, str(total), str(out)])
    watcher = subprocess.Popen([sys.executable, "-m", "cosmoscope", "--catalog", url, "-q", "watch", str(root),
                                "--workers", str(args.workers)], stderr=open(work / "watch.log", "w"))
    try:
        wait_for(lambda: watching(url), 60, "the watcher to start", poll=0.05)
        deliver(warm, work / "staging", root, rate=20)  # starts the worker processes
        wait_for(lambda: catalog_rows(url) >= len(warm), 60, "the warm-up files", poll=0.05)
        steady_closed = deliver(steady, work / "staging", root, rate=args.rate)
        wait_for(lambda: catalog_rows(url) >= len(warm) + len(steady), 120, "the steady files", poll=0.05)
        burst_start = time.time()
        burst_closed = deliver(burst, work / "staging", root, rate=None)
        burst_written = time.time() - burst_start
        reader.wait(600)
    finally:
        watcher.terminate()
        watcher.wait(60)
        if reader.poll() is None:
            reader.kill()
    seen = json.loads(out.read_text())
    result = {}
    for name, closed in (("steady", steady_closed), ("burst", burst_closed)):
        lat = sorted(seen[p] - t for p, t in closed.items() if p in seen)
        result[name] = {"files": len(closed), "seen": len(lat), "p50_s": percentile(lat, 50), "p95_s": percentile(lat, 95),
                        "max_s": round(lat[-1], 3) if lat else None}
    result["steady"]["rate_per_s"] = args.rate
    last = max(seen[p] for p in burst_closed if p in seen)
    result["burst"]["written_in_s"] = round(burst_written, 3)
    result["burst"]["all_visible_after_s"] = round(last - burst_start, 3)
    result["burst"]["files_per_s"] = round(len(burst_closed) / (last - burst_start), 1)
    result["catalog"] = url
    return result


def validation(args, work: Path) -> dict:
    import cosmoscope
    from cosmoscope.simulate import simulate

    root = work / "incoming"
    if args.validate_files:
        simulate(root / "more", files=args.validate_files, days=max(1, args.validate_files // 300), seed=9,
                 progress=False)
    out = {}
    with cosmoscope.open_catalog(work / "catalog.sqlite") as cat:
        cat.ingest(root, workers=args.workers or 1, progress=False)
        rows = cat.count()
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        for label, opts in (("stat only", {}), ("checksums, first run (hashes recorded)", {"checksums": True}),
                            ("checksums, hashes compared", {"checksums": True})):
            t = time.perf_counter()
            report = cat.validate(progress=False, **opts)
            dt = time.perf_counter() - t
            out[label] = {"rows": report.checked, "seconds": round(dt, 3), "rows_per_s": round(report.checked / dt, 1),
                          "mb_per_s": round(size / dt / 1e6, 1) if opts else None}
        out["rows"] = rows
        out["bytes"] = size
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300, help="files at the steady rate, and again in the burst")
    parser.add_argument("--rate", type=float, default=50.0, help="files per second of the steady phase")
    parser.add_argument("--workers", type=int, default=1, help="the watcher's extraction processes")
    parser.add_argument("--validate-files", type=int, default=2000, help="simulated files added for validation")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default benchmarks/results)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cosmoscope-watch-bench-") as tmp:
        work = Path(tmp)
        lat = latency(args, work)
        val = validation(args, work)
    results = {"machine": machine(), "latency": lat, "validation": val,
               "command": "python benchmarks/watch_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    rows = [[f"steady, {args.rate:g} files/s", lat["steady"]["files"], lat["steady"]["p50_s"], lat["steady"]["p95_s"],
             lat["steady"]["max_s"], ""],
            [f"burst ({lat['burst']['files']} files written in {lat['burst']['written_in_s']} s)",
             lat["burst"]["files"], lat["burst"]["p50_s"], lat["burst"]["p95_s"], lat["burst"]["max_s"],
             f"{lat['burst']['files_per_s']} files/s"]]
    table = "Latency from a file's close to its row being visible to a query in another process\n\n"
    table += markdown_table(["phase", "files", "p50 s", "p95 s", "max s", "throughput"], rows)
    table += f"\n\nValidation of {val['rows']:,} rows ({val['bytes'] / 1e6:,.0f} MB of files)\n\n"
    table += markdown_table(["run", "rows/s", "MB/s read", "seconds"],
                            [[k, f"{v['rows_per_s']:,.0f}", v["mb_per_s"] or "-", v["seconds"]]
                             for k, v in val.items() if isinstance(v, dict)])
    table += f"\n\nWatcher: `cosmoscope watch --workers {args.workers}` (inotify, defaults otherwise). " \
             f"Reproduce: `{results['command'].strip()}`"
    write_results("watch_bench", results, table, args.out)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
