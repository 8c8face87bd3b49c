"""Query and insert speed of the catalog, beside polars on an in-memory frame of the same rows.

    python benchmarks/query_bench.py                # 1,000,000 rows, embedded SQLite
    python benchmarks/query_bench.py --rows 100000  # smaller
    python benchmarks/query_bench.py --catalog vast://...   # another store

Times are medians of several runs. Writes benchmarks/results/query_bench.{json,md} and prints
the table. Targets on a 2-core machine at 1M rows: selective search < 50 ms, mission summary
< 1 s, insert >= 100k rows/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, median_time, write_results  # noqa: E402

import cosmoscope  # noqa: E402
from cosmoscope.search import summarize_frame  # noqa: E402

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--catalog", help="catalog URL to fill (default: a new SQLite file in a temp dir)")
    ap.add_argument("--out", type=Path, help="directory for results (default: benchmarks/results)")
    ap.add_argument("--name", default="query_bench", help="result file name (default: query_bench)")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="cosmoscope-bench-")
    url = args.catalog or os.path.join(tmp, "bench.sqlite")
    data = synthetic(args.rows)
    frame = pl.from_arrow(data)
    cat = cosmoscope.open_catalog(url)

    t = time.perf_counter()
    cat.add_records(data)
    insert_s = time.perf_counter() - t
    # The bare store verb too: what an ingest batch pays without the audit events.
    extra = synthetic(min(args.rows, 200_000), seed=1)
    extra = extra.set_column(0, "dataset_id", pa.array([f"dx-{i:016x}" for i in range(extra.num_rows)]))
    t = time.perf_counter()
    cat.store.upsert("observations", extra, ["dataset_id"])
    upsert_s = time.perf_counter() - t

    lo, hi = dt.datetime(2023, 3, 1, tzinfo=dt.timezone.utc), dt.datetime(2023, 3, 8, tzinfo=dt.timezone.utc)
    probe = frame["dataset_id"][args.rows // 2]
    everything = pl.concat([frame, pl.from_arrow(extra)], how="diagonal_relaxed")

    queries = {
        "selective search (mission + 1 week + quality >= 0.8)": (
            lambda: cat.search(mission="HELIOS-X", start=lo, end=hi, min_quality=0.8).collect(),
            lambda: everything.filter((pl.col("mission_id") == "HELIOS-X") & (pl.col("observation_timestamp") >= lo)
                                      & (pl.col("observation_timestamp") < hi) & (pl.col("data_quality_score") >= 0.8))),
        "mission summary (all missions)": (
            lambda: cat.mission_summary(),
            lambda: summarize_frame(everything)),
        "point lookup by dataset_id": (
            lambda: cat.get(probe),
            lambda: everything.filter(pl.col("dataset_id") == probe).row(0, named=True)),
        "count of one mission": (
            lambda: cat.count(cat.search(mission="LYRA")),
            lambda: everything.filter(pl.col("mission_id") == "LYRA").height),
    }
    rows, results = [], {"rows": args.rows, "store": cat.url.split("://")[0], "machine": machine(), "queries": {}}
    for name, (ours, theirs) in queries.items():
        a, b = ours(), theirs()
        if hasattr(a, "height"):
            assert a.height == b.height, f"{name}: catalog gave {a.height} rows, polars {b.height}"
        ta, tb = median_time(ours, args.repeat), median_time(theirs, args.repeat)
        results["queries"][name] = {"catalog_s": ta, "polars_in_memory_s": tb}
        rows.append([name, f"{ta * 1000:.1f} ms", f"{tb * 1000:.1f} ms"])
    results["insert_rows_per_s"] = args.rows / insert_s
    results["store_upsert_rows_per_s"] = extra.num_rows / upsert_s
    rows.append(["insert via catalog.add_records (with audit events)", f"{args.rows / insert_s:,.0f} rows/s", "-"])
    rows.append(["upsert via the store alone", f"{extra.num_rows / upsert_s:,.0f} rows/s", "-"])
    table = (f"Catalog of {args.rows:,} rows in {results['store']}; medians of {args.repeat} runs.\n\n"
             + markdown_table(["operation", "cosmoscope", "polars, in-memory frame"], rows))
    print(table)
    path = write_results(args.name, results, table, args.out)
    print(f"\nwrote {path}")
    cat.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
