"""Ingest speed and memory, beside what a user would otherwise run, in the same run.

    python benchmarks/ingest_bench.py                    # 20,000 simulated files + the real corpus
    python benchmarks/ingest_bench.py --files 100000     # the 100k-file rescan target
    python benchmarks/ingest_bench.py --workers 4
    python benchmarks/ingest_bench.py --small-only       # only the small folders (a minute)

Measures, each step in its own process (so peak memory is its own):

- cosmoscope ingest of a simulated four-mission tree, end to end (crawl, extract in workers,
  write), files/s and peak memory (parent and workers);
- a rescan of the same, unchanged tree (every file skipped without opening);
- on the tree's small FITS files only: cosmoscope ingest beside (a) a plain loop of astropy
  ``fits.open`` reading every HDU's header, (b) ``ccdproc.ImageFileCollection`` (if ccdproc is
  installed: ``pip install ccdproc``), (c) the raw floor: stat + read of the first 2880 bytes;
- the real files in ../shared/corpus, when present;
- peak memory of an ingest of a quarter of the tree, to show memory does not grow with files;
- small folders (a few to a few hundred files: plain, gzip- and bzip2-compressed FITS, HDF5 and
  netCDF, simulated and real), as a user starts with: ``cosmoscope ingest DIR`` from the shell,
  beside a plain astropy loop over the same FITS files and beside reading the same files with
  cosmoscope's extractors in one process, each a fresh process, the median of ``--repeat``
  interleaved runs.

Targets on a 2-core machine: >= 3x the astropy loop on small FITS files; a rescan of an
unchanged 100k-file tree >= 50,000 files/s; memory flat in the number of files; a small folder
cataloged well under a second beyond its extraction time.
Writes benchmarks/results/ingest_bench.{json,md} (``--small-only``: ingest_small.{json,md}).
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


#: A fresh process reading the FITS files listed in a file with astropy, every HDU's header.
ASTROPY_LOOP = """
import sys
from astropy.io import fits
for p in open(sys.argv[1]).read().splitlines():
    with fits.open(p, lazy_load_hdus=False) as hdul:
        for hdu in hdul:
            hdu.header
"""
#: A fresh process reading the files listed with cosmoscope's extractors, one after another.
EXTRACT_LOOP = """
import sys
from cosmoscope.extract import extract_file
for p in open(sys.argv[1]).read().splitlines():
    extract_file(p)
"""


def wall(cmd: list[str]) -> float:
    """Seconds ``cmd`` takes, start to exit, as a user waits for it: Python keeps its compiled
    modules, as it does by default (an environment that forbids that, as some sandboxes and CI
    images do, would compile cosmoscope's 50 modules at every run: 0.1 s)."""
    import os
    import time

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if out.returncode not in (0, 1):  # 1: some file could not be read, which is an answer too
        raise SystemExit(f"{cmd} failed:\n{out.stderr}")
    return seconds


def small_folders(work: Path, repeat: int) -> tuple[dict, str]:
    """Small folders cataloged from the shell beside an astropy loop and beside extraction alone."""
    import statistics

    from cosmoscope.simulate import simulate

    folders = {
        "11 simulated files, four missions (HDF5, netCDF, FITS, CSV)": simulate(
            work / "small11", files=11, days=1, seed=0, progress=False, workers=0).root,
        "47 simulated LYRA files (plain FITS)": simulate(
            work / "lyra47", missions=["LYRA"], files=47, days=1, seed=1, progress=False, workers=0).root,
        "300 simulated HELIOS-X files (FITS, some gzip)": simulate(
            work / "helios300", missions=["HELIOS-X"], files=300, days=2, seed=2, progress=False, workers=0).root,
    }
    folders["24 simulated COSMOS-7 files (HDF5, netCDF)"] = simulate(
        work / "cosmos24", missions=["COSMOS-7"], files=24, days=1, seed=3, progress=False, workers=0).root
    folders["47 simulated LYRA files, gzip- and bzip2-compressed"] = compressed_copy(
        folders["47 simulated LYRA files (plain FITS)"], work / "lyra47z")
    if CORPUS.exists():
        folders["the real FITS files of ../shared/corpus"] = CORPUS / "fits"
        folders["the real HDF5 and netCDF files of ../shared/corpus"] = corpus_copy(["hdf5", "netcdf"], work / "corpus_hn")
    results, rows = {}, []
    for label, root in folders.items():
        files = sorted(str(p) for p in Path(root).rglob("*") if p.is_file() and p.name != "manifest.parquet")
        fits_files = [p for p in files if _is_fits(p)]
        data_list, fits_list = listing(files, work, f"{root.name}_all"), listing(fits_files, work, f"{root.name}_fits")
        times: dict[str, list[float]] = {"ingest": [], "extract": [], **({"astropy": []} if fits_files else {})}
        for i in range(repeat):  # interleaved, so a busy moment of the machine hits all three alike
            catalog = work / f"{root.name}-{i}.sqlite"
            times["ingest"].append(wall([sys.executable, "-m", "cosmoscope", "--catalog", str(catalog), "-q",
                                         "ingest", str(root)]))
            times["extract"].append(wall([sys.executable, "-c", EXTRACT_LOOP, data_list]))
            if fits_files:
                times["astropy"].append(wall([sys.executable, "-c", ASTROPY_LOOP, fits_list]))
        med = {k: statistics.median(v) for k, v in times.items()}
        results[label] = {"files": len(files), "fits_files": len(fits_files), "seconds": med, "runs": times,
                          "beyond_extraction_s": med["ingest"] - med["extract"],
                          "vs_astropy": med["astropy"] / med["ingest"] if fits_files else None}
        rows.append([label, len(files), f"{med['ingest']:.2f} s", f"{med['extract']:.2f} s",
                     f"{med['ingest'] - med['extract']:+.2f} s",
                     f"{med['astropy']:.2f} s ({len(fits_files)} FITS)" if fits_files else "no FITS",
                     f"{med['astropy'] / med['ingest']:.2f}x" if fits_files else ""])
        print(f"{label}: ingest {med['ingest']:.2f} s, extraction {med['extract']:.2f} s"
              + (f", astropy {med['astropy']:.2f} s" if fits_files else ""), flush=True)
    table = ("Small folders, each step a fresh process as a user runs it (`cosmoscope -q ingest DIR` into a new "
             f"catalog; median of {repeat} interleaved runs):\n\n"
             + markdown_table(["folder", "files", "cosmoscope ingest", "extraction alone, one process",
                               "ingest beyond extraction", "astropy loop, same FITS", "vs astropy loop"], rows))
    return results, table


def compressed_copy(root: Path, dest: Path) -> Path:
    """A copy of ``root``'s files, every other one gzip-compressed and the rest bzip2-compressed."""
    import bz2
    import gzip

    dest.mkdir(parents=True)
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.name != "manifest.parquet")
    for i, path in enumerate(files):
        pack, suffix = (gzip.compress, ".gz") if i % 2 else (bz2.compress, ".bz2")
        (dest / (path.name + suffix)).write_bytes(pack(path.read_bytes()))
    return dest


def corpus_copy(parts: list[str], dest: Path) -> Path:
    """A copy of these folders of the corpus under one directory (ingest takes one path here)."""
    import shutil

    for part in parts:
        shutil.copytree(CORPUS / part, dest / part)
    return dest


def _is_fits(path: str) -> bool:
    from cosmoscope.extract import sniff_format

    return sniff_format(path) == "fits"


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
    ap.add_argument("--repeat", type=int, default=5, help="runs of each small-folder step (default 5)")
    ap.add_argument("--small-only", action="store_true", help="only the small folders")
    args = ap.parse_args(argv)

    from cosmoscope.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix="cosmoscope-ingest-bench-"))
    started = machine()  # its load average is the one at the start
    small, small_table = small_folders(work, args.repeat)
    if args.small_only:
        results = {"small_folders": small, "repeat": args.repeat, "machine": started}
        print("\n" + small_table)
        print(f"\nwrote {write_results('ingest_small', results, small_table, args.out)}")
        return 0
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
               "machine": started, "steps": {}}
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
    results["small_folders"] = small
    table = (f"Ingest of a simulated tree of {len(all_paths):,} files (workers: {args.workers or 'one per CPU'}).\n\n"
             + markdown_table(["step", "files", "time", "rate", "vs astropy loop", "peak memory"], rows)
             + f"\n\nPeak memory, full tree / quarter tree: {results['memory_flat_ratio']:.2f}\n\n" + small_table)
    print("\n" + table)
    print(f"\nwrote {write_results('ingest_bench', results, table, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
