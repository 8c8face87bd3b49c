"""Ingest speed and memory, beside what a user would otherwise run, in the same run.

    python benchmarks/ingest_bench.py                    # 20,000 simulated files + the real corpus
    python benchmarks/ingest_bench.py --files 100000     # the 100k-file rescan target
    python benchmarks/ingest_bench.py --workers 4

Measures, each step in its own process (so peak memory is its own):

- cosmoscope ingest of a simulated four-mission tree, end to end (crawl, extract in workers,
  write), files/s and peak memory (parent and workers);
- a rescan of the same, unchanged tree (every file skipped without opening);
- on the tree's small FITS files only: cosmoscope ingest beside (a) a plain loop of astropy
  ``fits.open`` reading every HDU's header, (b) ``ccdproc.ImageFileCollection`` (if ccdproc is
  installed: ``pip install ccdproc``), (c) the raw floor: stat + read of the first 2880 bytes;
- the real files in ../shared/corpus, when present;
- peak memory of an ingest of a quarter of the tree, to show memory does not grow with files.

Targets on a 2-core machine: >= 3x the astropy loop on small FITS files; a rescan of an
unchanged 100k-file tree >= 50,000 files/s; memory flat in the number of files.
Writes benchmarks/results/ingest_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, write_results  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

# Each measured step runs in a fresh interpreter and prints one JSON line.
STEP = textwrap.dedent("""
    import json, os, resource, sys, time
    kind, args = sys.argv[1], json.loads(sys.argv[2])

    def files(listing):
        return [line.rstrip("\\n") for line in open(listing)]

    def main():
        t = time.perf_counter()
        if kind == "ingest":
            import cosmoscope
            cat = cosmoscope.open_catalog(args["catalog"])
            paths = files(args["listing"]) if args.get("listing") else args["paths"]
            s = cat.ingest(paths, workers=args.get("workers"), progress=False)
            n, extra = s.seen, {"new": s.new, "unchanged": s.unchanged, "failed": s.failed}
        elif kind == "astropy":
            from astropy.io import fits
            n = 0
            for p in files(args["listing"]):
                with fits.open(p, lazy_load_hdus=False) as hdul:
                    for hdu in hdul:
                        hdu.header
                n += 1
            extra = {}
        elif kind == "ccdproc":
            import warnings
            from ccdproc import ImageFileCollection
            warnings.simplefilter("ignore")
            listing = files(args["listing"])
            by_dir = {}
            for p in listing:
                by_dir.setdefault(os.path.dirname(p), []).append(os.path.basename(p))
            n = 0
            for d, names in by_dir.items():
                coll = ImageFileCollection(d, filenames=names, keywords="*")
                n += len(coll.summary)
            extra = {}
        elif kind == "floor":
            n = 0
            for p in files(args["listing"]):
                os.stat(p)
                with open(p, "rb") as f:
                    f.read(2880)
                n += 1
            extra = {}
        seconds = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(json.dumps({"files": n, "seconds": seconds, "files_per_s": n / seconds,
                          "peak_rss": rss, "peak_worker_rss": kids, **extra}))

    if __name__ == "__main__":
        main()
""")


def step(kind: str, **args) -> dict:
    out = subprocess.run([sys.executable, "-c", STEP, kind, json.dumps(args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{kind} step failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def listing(paths: list[str], where: Path, name: str) -> str:
    p = where / f"{name}.txt"
    p.write_text("".join(f"{x}\n" for x in paths))
    return str(p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20_000, help="simulated files (default 20,000)")
    ap.add_argument("--workers", type=int, default=None, help="extraction workers (default: one per CPU)")
    ap.add_argument("--tree", type=Path, help="reuse this simulated tree instead of writing a new one")
    ap.add_argument("--out", type=Path, help="directory for results (default: benchmarks/results)")
    args = ap.parse_args(argv)

    from cosmoscope.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix="cosmoscope-ingest-bench-"))
    tree = args.tree or work / "tree"
    if args.tree is None:
        print(f"simulating {args.files:,} files in {tree} ...", flush=True)
        sim = simulate(tree, files=args.files, days=7, seed=1, progress=False)
        manifest = sim.manifest
    else:
        import polars as pl

        manifest = pl.read_parquet(tree / "manifest.parquet")
    all_paths = manifest["path"].to_list()
    small_fits = [p for p, fmt, comp in zip(manifest["path"], manifest["file_format"], manifest["compression"])
                  if fmt == "fits" and not comp]
    fits_list = listing(small_fits, work, "fits")
    quarter = listing(all_paths[: len(all_paths) // 4], work, "quarter")
    results = {"files": len(all_paths), "fits_files": len(small_fits), "workers": args.workers,
               "machine": machine(), "steps": {}}
    rows = []

    def record(label, res, compare=None):
        results["steps"][label] = res
        speed = f"{res['files_per_s']:,.0f} files/s"
        mem = f"{res['peak_rss'] / 2**20:,.0f} MB" + (
            f" (+ workers {res['peak_worker_rss'] / 2**20:,.0f} MB)" if res.get("peak_worker_rss") else "")
        ratio = f"{res['files_per_s'] / compare['files_per_s']:.1f}x" if compare else ""
        rows.append([label, f"{res['files']:,}", f"{res['seconds']:.2f} s", speed, ratio, mem])
        print(f"{label}: {speed}", flush=True)

    full = step("ingest", catalog=str(work / "full.sqlite"), paths=[str(tree)], workers=args.workers)
    record(f"cosmoscope ingest, simulated tree ({len(all_paths):,} files)", full)
    again = step("ingest", catalog=str(work / "full.sqlite"), paths=[str(tree)], workers=args.workers)
    record("rescan of the unchanged tree", again)
    part = step("ingest", catalog=str(work / "quarter.sqlite"), listing=quarter, workers=args.workers)
    record("cosmoscope ingest of a quarter of the tree (memory check)", part)

    floor = step("floor", listing=fits_list)
    loop = step("astropy", listing=fits_list)
    ours = step("ingest", catalog=str(work / "fits.sqlite"), listing=fits_list, workers=args.workers)
    record(f"small FITS: cosmoscope ingest ({len(small_fits):,} files)", ours, loop)
    record("small FITS: astropy fits.open, every HDU header", loop, loop)
    try:
        import ccdproc  # noqa: F401

        record("small FITS: ccdproc ImageFileCollection", step("ccdproc", listing=fits_list), loop)
    except ImportError:
        print("ccdproc not installed: skipping that comparison (pip install ccdproc)")
    record("small FITS: raw floor (stat + read 2880 bytes)", floor, loop)

    if CORPUS.exists():
        corpus_fits = [str(p) for p in CORPUS.rglob("*") if p.is_file() and "fits" in p.parts]
        real = step("ingest", catalog=str(work / "corpus.sqlite"), paths=[str(CORPUS)], workers=args.workers)
        record(f"real corpus: cosmoscope ingest ({real['files']} files)", real)
        record("real corpus FITS: astropy fits.open, every HDU header",
               step("astropy", listing=listing(corpus_fits, work, "corpus_fits")))

    results["memory_flat_ratio"] = (full["peak_rss"] + full["peak_worker_rss"]) / max(
        1, part["peak_rss"] + part["peak_worker_rss"])
    table = (f"Ingest of a simulated tree of {len(all_paths):,} files (workers: {args.workers or 'one per CPU'}).\n\n"
             + markdown_table(["step", "files", "time", "rate", "vs astropy loop", "peak memory"], rows)
             + f"\n\nPeak memory, full tree / quarter tree: {results['memory_flat_ratio']:.2f}")
    print("\n" + table)
    print(f"\nwrote {write_results('ingest_bench', results, table, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
