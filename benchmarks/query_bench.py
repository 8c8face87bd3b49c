"""Query and insert speed of the catalog, beside polars on an in-memory frame of the same rows.

    python benchmarks/query_bench.py                # 1,000,000 rows, embedded SQLite
    python benchmarks/query_bench.py --rows 100000  # smaller
    python benchmarks/query_bench.py --catalog vast://...   # another store
    python benchmarks/query_bench.py --rows 200000 --fake-vast   # SQLite beside VAST (a fake
                                                    # server in its own process, the real SDK)

Times are medians of several runs. Writes benchmarks/results/query_bench.{json,md} and prints
the table. Targets on a 2-core machine at 1M rows: selective search < 50 ms, mission summary
< 1 s, insert >= 100k rows/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))  # tests.fakevast, for --fake-vast
from _common import machine, markdown_table, median_time, write_results  # noqa: E402

import cosmoscope  # noqa: E402
from cosmoscope.records import dataset_id_for  # noqa: E402
from cosmoscope.summaries import summarize_frame  # noqa: E402

MISSIONS = ["COSMOS-7", "HELIOS-X", "LYRA", "AURORA-2", "CHANDRA", "XMM", "TESS", "GOES"]
START = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


def synthetic(n: int, seed: int = 0) -> pa.Table:
    """``n`` observation rows spread over 6 years and 8 missions."""
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2020-01-01T00:00:00", "us") + rng.integers(0, 6 * 365 * 86400, n).astype("timedelta64[s]")
    exposure = rng.choice([60.0, 300.0, 600.0, 1800.0], n)
    mission = rng.integers(0, len(MISSIONS), n)
    df = pl.DataFrame({
        "dataset_id": [f"ds-{i:016x}" for i in range(n)],
        "mission_id": pl.Series(np.array(MISSIONS)[mission]),
        "satellite_name": pl.Series(np.array(MISSIONS)[mission]),
        "instrument_type": pl.Series(np.array(["WFI", "HRS", "XIS", "LYCAM", "MAG"])[rng.integers(0, 5, n)]),
        "observation_timestamp": pl.Series(t0).dt.replace_time_zone("UTC"),
        "observation_end": pl.Series(t0 + (exposure * 1e6).astype("timedelta64[us]")).dt.replace_time_zone("UTC"),
        "exposure_time": exposure,
        "target_object": pl.Series(np.array(["NGC 253", "M31", "Crab", "Cas A", "3C 273", "Sgr A*"])[rng.integers(0, 6, n)]),
        "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-90, 90, n),
        "data_quality_score": rng.random(n).round(3),
        "calibration_status": pl.Series(np.array(["calibrated", "uncalibrated", "partial"])[rng.integers(0, 3, n)]),
        "calib_level": rng.integers(0, 4, n).astype(np.int32),
        "file_path": [f"/archive/m{m}/{i:09d}.fits" for i, m in enumerate(mission)],
        "file_size": rng.integers(10_000, 2_000_000_000, n),
        "file_format": "fits",
        "processing_status": pl.Series(np.array(["raw", "processed", "archived"])[rng.integers(0, 3, n)]),
        "version": "v01",
        "extraction_status": "ok",
        "mission_specific": '{"obs_id": "00001234"}',
    })
    return df.to_arrow()


def timed(fn, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (the client side) of ``fn()``."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return statistics.median(walls), statistics.median(cpus)


def start_fake_vast() -> tuple[subprocess.Popen, str]:
    """A fake VAST Database in a process of its own (so its work is not counted as the client's)."""
    from tests.fakevast import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

    proc = subprocess.Popen([sys.executable, "-m", "tests.fakevast", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "fake VAST Database at" not in line:
        proc.kill()
        raise SystemExit(f"the fake VAST server did not start: {line!r}")
    endpoint = line.split(" at ", 1)[1].split()[0]
    os.environ["COSMOSCOPE_VAST_ACCESS_KEY"], os.environ["COSMOSCOPE_VAST_SECRET_KEY"] = DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
    return proc, f"vast+http://{endpoint.split('://', 1)[1]}/cosmoscope/bench_{int(time.time())}"


def run(url: str, data: pa.Table, extra: pa.Table, repeat: int) -> dict:
    """Fill a catalog at ``url`` and time the queries; the results of one backend."""
    cat = cosmoscope.open_catalog(url)
    out = {"store": cat.url.split("://")[0], "queries": {}}
    t = time.perf_counter()
    cat.add_records(data)
    out["insert_rows_per_s"] = data.num_rows / (time.perf_counter() - t)
    # The bare store verb too: what an ingest batch pays without the audit events.
    t = time.perf_counter()
    cat.store.upsert("observations", extra, ["dataset_id"])
    out["store_upsert_rows_per_s"] = extra.num_rows / (time.perf_counter() - t)
    # Real dataset ids are hashes of paths, spread over the whole key space (the ids above are
    # sequential): the store's key matching pays for that.
    hashed = synthetic(10_000, seed=2)
    hashed = hashed.set_column(0, "dataset_id", pa.array([dataset_id_for(f"/bench/h/{i}") for i in range(10_000)]))
    t = time.perf_counter()
    cat.store.upsert("observations", hashed, ["dataset_id"])
    out["hashed_upsert_rows_per_s"] = hashed.num_rows / (time.perf_counter() - t)
    lo, hi = dt.datetime(2023, 3, 1, tzinfo=dt.timezone.utc), dt.datetime(2023, 3, 8, tzinfo=dt.timezone.utc)
    probe = data["dataset_id"][data.num_rows // 2].as_py()
    total = data.num_rows + extra.num_rows + hashed.num_rows
    scan_cols = ["dataset_id", "mission_id", "observation_timestamp", "file_size"]
    queries = {
        "selective search (mission + 1 week + quality >= 0.8)":
            lambda: cat.search(mission="HELIOS-X", start=lo, end=hi, min_quality=0.8).collect().height,
        "mission summary (all missions)": lambda: cat.mission_summary().height,
        "point lookup by dataset_id": lambda: cat.get(probe)["dataset_id"],
        "count of one mission": lambda: cat.count(cat.search(mission="LYRA")),
        f"full scan of {len(scan_cols)} columns": lambda: cat.observations().select(scan_cols).collect().height,
    }
    for name, fn in queries.items():
        wall, cpu = timed(fn, repeat)
        out["queries"][name] = {"catalog_s": wall, "client_cpu_s": cpu, "answer": fn()}
    full = out["queries"][f"full scan of {len(scan_cols)} columns"]
    assert full["answer"] == total, f"full scan gave {full['answer']} rows, not {total}"
    out["scan_rows_per_s"] = total / full["catalog_s"]
    cat.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--catalog", help="catalog URL to fill (default: a new SQLite file in a temp dir)")
    ap.add_argument("--fake-vast", action="store_true",
                    help="also run against a fake VAST Database (tests/fakevast, started in its own process) "
                         "through the real vastdb SDK, beside SQLite")
    ap.add_argument("--out", type=Path, help="directory for results (default: benchmarks/results)")
    ap.add_argument("--name", default=None, help="result file name (default: query_bench, or query_bench_vast "
                    "with --fake-vast)")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="cosmoscope-bench-")
    data = synthetic(args.rows)
    extra = synthetic(min(args.rows, 200_000), seed=1)
    extra = extra.set_column(0, "dataset_id", pa.array([f"dx-{i:016x}" for i in range(extra.num_rows)]))
    hashed = synthetic(10_000, seed=2)
    hashed = hashed.set_column(0, "dataset_id", pa.array([dataset_id_for(f"/bench/h/{i}") for i in range(10_000)]))
    everything = pl.concat([pl.from_arrow(data), pl.from_arrow(extra), pl.from_arrow(hashed)], how="diagonal_relaxed")
    lo, hi = dt.datetime(2023, 3, 1, tzinfo=dt.timezone.utc), dt.datetime(2023, 3, 8, tzinfo=dt.timezone.utc)
    probe = data["dataset_id"][args.rows // 2].as_py()
    in_memory = {
        "selective search (mission + 1 week + quality >= 0.8)": lambda: everything.filter(
            (pl.col("mission_id") == "HELIOS-X") & (pl.col("observation_timestamp") >= lo)
            & (pl.col("observation_timestamp") < hi) & (pl.col("data_quality_score") >= 0.8)).height,
        "mission summary (all missions)": lambda: summarize_frame(everything).height,
        "point lookup by dataset_id": lambda: everything.filter(pl.col("dataset_id") == probe).row(0, named=True)["dataset_id"],
        "count of one mission": lambda: everything.filter(pl.col("mission_id") == "LYRA").height,
        "full scan of 4 columns": lambda: everything.select(
            "dataset_id", "mission_id", "observation_timestamp", "file_size").height,
    }

    urls = {"sqlite": args.catalog or os.path.join(tmp, "bench.sqlite")}
    fake = None
    if args.fake_vast:
        fake, urls["vast (fake server, real SDK)"] = start_fake_vast()
        if not args.catalog:
            urls["sqlite"] = os.path.join(tmp, "bench.sqlite")
    try:
        backends = {label: run(url, data, extra, args.repeat) for label, url in urls.items()}
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(timeout=10)
    results = {"rows": args.rows, "machine": machine(), "backends": backends, "polars_in_memory_s": {}}
    labels = list(backends)
    header = ["operation", *[f"{label}" for label in labels], "polars, in-memory frame"]
    table_rows = []
    for name, fn in in_memory.items():
        want = fn()
        for label in labels:
            got = backends[label]["queries"][name]["answer"]
            assert got == want, f"{label}, {name}: catalog gave {got}, polars {want}"
        polars_s = median_time(fn, args.repeat)
        results["polars_in_memory_s"][name] = polars_s
        cells = [f"{backends[l]['queries'][name]['catalog_s'] * 1000:.1f} ms "
                 f"(client CPU {backends[l]['queries'][name]['client_cpu_s'] * 1000:.1f} ms)" for l in labels]
        table_rows.append([name, *cells, f"{polars_s * 1000:.1f} ms"])
    for key, what in (("scan_rows_per_s", "rows/s read (full scan)"),
                      ("insert_rows_per_s", "insert via catalog.add_records (with audit events)"),
                      ("store_upsert_rows_per_s", "upsert via the store alone"),
                      ("hashed_upsert_rows_per_s", "upsert of 10,000 rows with hashed (spread) keys")):
        table_rows.append([what, *[f"{backends[l][key]:,.0f} rows/s" for l in labels], "-"])
    table = (f"Catalog of {args.rows:,} rows (+{extra.num_rows:,} and 10,000 upserted); medians of {args.repeat} runs. "
             "Client CPU is this process's CPU time per query (the fake VAST server runs in its own process, "
             "so for VAST it is the SDK's and cosmoscope's own cost).\n\n"
             + markdown_table(header, table_rows))
    print(table)
    path = write_results(args.name or ("query_bench_vast" if args.fake_vast else "query_bench"), results, table,
                         args.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
