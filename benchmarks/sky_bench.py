"""Sky search speed: cones of 0.5° and 5° and a TAP query, beside polars' brute force in memory.

    python benchmarks/sky_bench.py                       # 1,000,000 generated rows, SQLite
    python benchmarks/sky_bench.py --rows 200000         # smaller
    python benchmarks/sky_bench.py --catalog sqlite:///data/scale.sqlite   # an existing catalog
                                                         # (e.g. scale_bench.py's 10M rows)
    python benchmarks/sky_bench.py --rows 10000000 --keep /data/sky10m.sqlite   # keep what it made

Each figure is the median over cones at 11 random centres (after one warm-up), every row of the
answer collected with all its columns. The brute force is what a user would write instead:
the haversine distance of every position, in polars, on a frame already in memory (its load
time is reported apart). The TAP figure is a whole HTTP request to a local server:
``SELECT TOP 100 ... WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', ra, dec, 0.5)) = 1``.
Targets at 10M rows: 0.5° cone < 50 ms, 5° cone < 300 ms, TAP < 300 ms.
Writes benchmarks/results/sky_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))
from _common import machine, markdown_table, write_results  # noqa: E402

import cosmoscope  # noqa: E402
from cosmoscope.sky.geometry import format_polygon  # noqa: E402

CENTRES = 11


def generate(url: str, rows: int, seed: int = 0) -> None:
    """``rows`` observations spread uniformly on the sky: 30% with image footprints of 3 arcmin
    to 1°, one in 10,000 an all-sky map; written through the catalog, which derives sky_index."""
    from query_bench import synthetic  # the query benchmark's rows: missions, times, sizes
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    cat = cosmoscope.open_catalog(url)
    step = 100_000
    with tqdm(total=rows, unit="row", desc="generate") as bar:
        for start in range(0, rows, step):
            n = min(step, rows - start)
            table = pl.from_arrow(synthetic(n, seed + start)).with_columns(
                pl.format("ds-{}", pl.int_range(start, start + n)).alias("dataset_id"))
            ra = rng.uniform(0, 360, n)
            dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
            size = rng.uniform(0.05, 1.0, n)
            regions: list[str | None] = [None] * n
            fov: list[float | None] = [None] * n
            for i in np.flatnonzero(rng.random(n) < 0.3):
                h = size[i] / 2
                w = h / max(0.05, math.cos(math.radians(dec[i])))
                lo, hi = max(-89.9, dec[i] - h), min(89.9, dec[i] + h)
                regions[i] = format_polygon([(ra[i] - w, lo), (ra[i] + w, lo), (ra[i] + w, hi), (ra[i] - w, hi)])
            for i in np.flatnonzero(rng.random(n) < 1e-4):
                regions[i], fov[i] = None, 360.0
            table = table.with_columns(pl.Series("ra", ra), pl.Series("dec", dec),
                                       pl.Series("s_region", regions, pl.String), pl.Series("s_fov", fov, pl.Float64))
            cat.add_records(table)
            bar.update(n)
    cat.close()


def _median_ms(fn, args_list) -> tuple[float, list]:
    fn(*args_list[0])  # warm-up
    times, outs = [], []
    for args in args_list:
        t = time.perf_counter()
        outs.append(fn(*args))
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 1), outs


def brute_force(df: pl.DataFrame, ra: float, dec: float, radius: float) -> pl.DataFrame:
    r = math.pi / 180
    h = ((pl.col("dec") - dec) * r / 2).sin() ** 2 + (pl.col("dec") * r).cos() * math.cos(dec * r) * (
        (pl.col("ra") - ra) * r / 2).sin() ** 2
    return df.filter(2 * h.sqrt().arcsin() / r <= radius)


def run(url: str) -> dict:
    from cosmoscope.api import create_app
    from cosmoscope.api.server import BackgroundServer

    cat = cosmoscope.open_catalog(url, readonly=True)
    n = cat.count()
    rng = np.random.default_rng(42)
    centres = [(float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-0.95, 0.95)))))
               for _ in range(CENTRES)]
    t = time.perf_counter()
    memory = cat.observations().select("dataset_id", "ra", "dec").collect()
    load_s = time.perf_counter() - t
    out: dict = {"rows": n, "catalog": url, "centres": CENTRES, "load_for_brute_force_s": round(load_s, 2)}
    for radius in (0.5, 5.0):
        ms, found = _median_ms(lambda ra, dec: cat.search(near=(ra, dec), radius=radius).collect(), centres)
        bf_ms, bf = _median_ms(lambda ra, dec: brute_force(memory, ra, dec, radius), centres)
        key = f"cone_{radius:g}deg"
        out[key] = {"catalog_ms": ms, "polars_in_memory_ms": bf_ms,
                    "median_rows": int(statistics.median(f.height for f in found)),
                    "median_rows_centres_only": int(statistics.median(f.height for f in bf))}
    with BackgroundServer(create_app(cat)) as srv:
        def tap(ra, dec):
            q = ("SELECT TOP 100 obs_id, s_ra, s_dec, t_min, obs_collection FROM ivoa.obscore WHERE "
                 f"CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra}, {dec}, 0.5)) = 1")
            with urllib.request.urlopen(f"{srv.url}/tap/sync?" + urllib.parse.urlencode(
                    {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": q})) as r:
                return r.read()
        out["tap_top100_contains_ms"], _ = _median_ms(tap, centres)
    cat.close()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows to generate (default 1,000,000)")
    p.add_argument("--catalog", help="measure this catalog instead of generating one")
    p.add_argument("--keep", metavar="PATH", help="generate into this SQLite file and keep it (reuse it with --catalog)")
    p.add_argument("--name", default="sky_bench", help="result file name (default sky_bench)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.catalog
        if url is None:
            url = f"sqlite://{Path(args.keep).resolve() if args.keep else Path(tmp) / 'sky.sqlite'}"
            t = time.perf_counter()
            generate(url, args.rows)
            print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.0f} s")
        res = run(url)
    res["machine"] = machine()
    rows = [[f"cone {r:g}°", res[f"cone_{r:g}deg"]["catalog_ms"], res[f"cone_{r:g}deg"]["polars_in_memory_ms"],
             res[f"cone_{r:g}deg"]["median_rows"], target] for r, target in ((0.5, "< 50 ms"), (5.0, "< 300 ms"))]
    rows.append(["TAP sync TOP 100 CONTAINS 0.5°", res["tap_top100_contains_ms"], "", "≤ 100", "< 300 ms"])
    table = markdown_table(["query", "cosmoscope ms", "polars in memory ms", "rows (median)", "target (10M)"], rows)
    table = (f"Sky searches on {res['rows']:,} rows ({res['catalog'].split('://')[0]}); medians over "
             f"{CENTRES} centres; polars first loads the positions ({res['load_for_brute_force_s']} s).\n\n" + table)
    write_results(args.name, res, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
