"""``cosmoscope simulate``: write a realistic multi-mission tree of observation files.

Examples
--------
1. A small tree of all four missions over three days::

    $ cosmoscope simulate /tmp/sky

2. Two missions, 20,000 files over a week, 2 % of them deliberately broken::

    $ cosmoscope simulate /tmp/sky --missions COSMOS-7 HELIOS-X --files 20000 --days 7 --faults 0.02

3. A 50 TB day of 100,000 files that costs a few GB of disk (sparse files)::

    $ cosmoscope simulate /data/load --files 100000 --days 1 --sparse-bytes 500MB
"""

from __future__ import annotations

import argparse
import sys
from cosmoscope.cli import argtypes


FILES = argtypes.number(int, low=1, what="a file count", example="20000")
DAYS = argtypes.number(int, low=1, what="a number of days", example="7")
SEED = argtypes.number(int, what="a seed")

_DESCRIPTION = """\
Write a tree of realistic FITS, HDF5, netCDF4 and CSV files from simulated missions, with
lineage between raw, calibrated and derived products, optional sparse files (huge, yet nearly
free on disk) and optional deliberate faults. The ground truth of every file (mission,
instrument, times, target, calibration level, inputs, fault) goes to DIR/manifest.parquet.

examples:
  cosmoscope simulate /tmp/sky
  cosmoscope simulate /tmp/sky --missions COSMOS-7 HELIOS-X --files 20000 --days 7 --faults 0.05
  cosmoscope simulate /tmp/clean --faults 0 --quirks 0          # every file perfect
  cosmoscope simulate /data/load --files 100000 --days 1 --sparse-bytes 500MB   # 50 TB apparent"""

_EPILOG = """\
missions:
  COSMOS-7   raw HDF5 (l0), calibrated and derived netCDF4 (l1, l2); instruments WFI, HRS
  HELIOS-X   X-ray FITS event lists, images, spectra (some .fits.gz); instrument XIS
  LYRA       optical FITS frames with legacy dates and HIERARCH cards, tile-compressed
             reduced frames and stacks; instrument LYCAM
  AURORA-2   daily CSV (l1a, l1b) and ECSV (l2) files, some JSON sidecars; instruments
             MAG, PES (at most 6 files a day: its excess share goes to the other missions)

The same seed and arguments give the same paths and the same bytes."""


def _mission(text: str) -> str:
    from cosmoscope.simulate.plan import MISSIONS

    for name in MISSIONS:
        if name.upper() == text.strip().upper():
            return name
    raise argparse.ArgumentTypeError(f"unknown mission {text!r}; valid missions: {', '.join(MISSIONS)}")


def _date(text: str) -> str:
    from datetime import date

    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"could not read {text!r} as a date; give YYYY-MM-DD, "
                                         "e.g. 2026-11-25") from None


def _size(text: str) -> int:
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.simulate.sizes import parse_size

    try:
        return parse_size(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers, common: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the ``simulate`` command to ``subparsers``; return its parser.

    ``common`` (optional) is a parent parser of options shared by every command; when it is not
    given, ``simulate`` brings its own ``--quiet``.
    """
    from cosmoscope.simulate.plan import MISSIONS

    p = subparsers.add_parser(
        "simulate", parents=[common] if common is not None else [],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="write a realistic tree of simulated mission files",
        description=_DESCRIPTION, epilog=_EPILOG)
    p.add_argument("dir", metavar="DIR", help="directory to write into (created if missing)")
    p.add_argument("--missions", nargs="+", type=_mission, metavar="M", default=list(MISSIONS),
                   help=f"missions to simulate (default: all of {', '.join(MISSIONS)})")
    p.add_argument("--files", type=FILES, default=200, metavar="N",
                   help="number of files in total, split across missions and days (default: 200)")
    p.add_argument("--days", type=DAYS, default=3, metavar="D",
                   help="spread observations over D days (default: 3)")
    p.add_argument("--start", type=_date, default="2026-11-25", metavar="DATE",
                   help="first day, YYYY-MM-DD (default: 2026-11-25)")
    p.add_argument("--seed", type=SEED, default=0, metavar="S",
                   help="random seed; same seed, same files (default: 0)")
    p.add_argument("--sparse-bytes", type=_size, metavar="BYTES",
                   help="make each FITS/HDF5/netCDF file about this large, as holes that cost no disk "
                        "(e.g. 500MB, 1.5GB, 64MiB)")
    p.add_argument("--faults", type=argtypes.fraction, default=0.02, metavar="FRACTION",
                   help="fraction of files to break deliberately: unreadable, truncated, wrong checksums "
                        "(default: 0.02; 0 for none)")
    p.add_argument("--quirks", type=argtypes.fraction, default=0.2, metavar="FRACTION",
                   help="fraction of the other files with everyday header imperfections that lower their "
                        "quality score: no target, no or a garbled end time, too long an exposure (default: 0.2)")
    if common is None:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only the summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``simulate`` from parsed arguments; print a summary; return the exit code."""
    import warnings

    from cosmoscope.simulate import simulate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = simulate(args.dir, missions=args.missions, files=args.files, days=args.days,
                          start=args.start, seed=args.seed, sparse_bytes=args.sparse_bytes,
                          faults=args.faults, quirks=args.quirks, progress=not getattr(args, "quiet", False))
    for w in caught:
        print(f"cosmoscope simulate: warning: {w.message}", file=sys.stderr)
    print(_summary(result))
    return 0


def _summary(result) -> str:
    from cosmoscope.simulate.run import _human

    lines = [f"wrote {result.total_files} files to {result.root} in {result.seconds:.1f} s "
             f"({_human(result.apparent_bytes)} apparent, {_human(result.disk_bytes)} on disk)"]
    for mission, by_format in result.files.items():
        parts = ", ".join(f"{n} {fmt}" for fmt, n in by_format.items())
        lines.append(f"  {mission:<9} {parts}")
    lines.append(f"  lineage edges: {result.lineage.height}")
    if result.sidecars:
        lines.append(f"  JSON sidecars: {result.sidecars}")
    if result.faults:
        lines.append("  deliberate faults: " + ", ".join(f"{n} {k}" for k, n in result.faults.items()))
    quirky = result.manifest["quirks"].drop_nulls().len() if result.manifest.height else 0
    if quirky:
        lines.append(f"  header imperfections (lower quality): {quirky} files")
    if result.manifest_path:
        lines.append(f"  ground truth: {result.manifest_path}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``simulate`` as a program of its own (``python -m cosmoscope.cli.simulate_cmd``)."""
    from cosmoscope.errors import InvalidArgumentError, UnknownNameError

    parser = argparse.ArgumentParser(prog="cosmoscope")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register(sub)
    args = parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except (InvalidArgumentError, UnknownNameError) as exc:
        parser.exit(2, f"cosmoscope simulate: error: {exc}\n")
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
