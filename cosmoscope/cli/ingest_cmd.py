"""``cosmoscope ingest`` and ``cosmoscope demo``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys

from cosmoscope.cli import argtypes

#: The demo's share of broken files, and of files with imperfect headers.
DEMO_FAULTS, DEMO_QUIRKS = 0.02, 0.2

INGEST_EPILOG = """\
examples:
  cosmoscope ingest /data/cosmos7                      # everything under it, one worker per CPU
  cosmoscope ingest /data/helios /data/lyra --workers 8
  cosmoscope ingest /data/odd --profile helios-x       # force a mission profile
  cosmoscope ingest /archive --dry-run                 # what would change, writing nothing
  cosmoscope ingest /archive --shard 2/4               # machine 2 of 4 takes its quarter
  cosmoscope ingest /archive --dask-scheduler tcp://scheduler:8786   # workers of a Dask cluster read
  cosmoscope ingest /archive --dask local:4            # a Dask LocalCluster of 4 processes here
  cosmoscope ingest --from-vast-catalog /cosmos7 --mounted-at /mnt/vast/cosmos7 --since 2d
                                                       # files the VAST Catalog lists as new

Walking (PATH) works on any file system and always sees the current tree, but costs a directory
listing of the whole tree each run. --from-vast-catalog asks the VAST cluster's own file
catalog instead: one parallel query, filtered by path, --since and --extensions on the cluster,
best for millions of files of which few are new. The VAST Catalog is a periodic snapshot, so
the newest files arrive on a later run. See docs/vast.md.

--dask-scheduler uses a Dask cluster that is already running (dask-jobqueue, Dask Gateway,
`dask scheduler`): this machine walks the tree and skips unchanged files; the workers read the
rest, so they need cosmoscope installed and the files at the same paths. With a SQLite catalog
this machine writes every row; with a VAST catalog each worker writes its own (credentials from
the workers' environment). See docs/scaling.md for when to use --shard, --from-vast-catalog or Dask.

Symbolic links are followed only inside the PATHs: a link whose target lies elsewhere (a file
anyone could link from a shared drop folder) is listed in the summary and not read, unless
--allow-outside-links. A second run over the same tree re-reads only files whose size or
modification time changed.
Files that cannot be read are cataloged with extraction_status=error and the reason. Exit code:
0 when every file under the PATHs is cataloged readable; 1 when any could not be read (now, or
in an earlier run and unchanged since), was left unread (a link outside the PATHs) or a
directory could not be walked; 2 when the command line was wrong."""


def _shard(text: str):
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.ingest.crawl import Shard

    try:
        return Shard.parse(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub, common) -> None:
    p = sub.add_parser("ingest", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="catalog every data file under some directories",
                       description="Walk directories, read the metadata of every FITS, HDF5, netCDF and CSV "
                                   "file, and write it to the catalog, with lineage between products.",
                       epilog=INGEST_EPILOG)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories to catalog")
    p.add_argument("--profile", metavar="P", help="mission profile name or TOML file to use for every file "
                   "(default: chosen by path; see `cosmoscope profiles list`)")
    p.add_argument("--workers", "-j", type=argtypes.workers, metavar="N",
                   help="extraction processes (default: one per CPU; 0 reads in this process)")
    p.add_argument("--dry-run", "-n", action="store_true", help="report what would change; write nothing")
    p.add_argument("--force", action="store_true", help="re-read every file, even unchanged ones")
    p.add_argument("--follow-symlinks", action="store_true", help="enter symbolically linked directories (those "
                   "whose real path lies under a PATH)")
    p.add_argument("--allow-outside-links", action="store_true", help="follow every symbolic link, to files and "
                   "directories, even where it leads outside the PATHs (by default such files are listed, not read)")
    p.add_argument("--shard", type=_shard, metavar="I/N", help="take share I of N (1-based) so N machines "
                   "split one crawl without overlap")
    p.add_argument("--batch-rows", type=argtypes.workers, default=None, metavar="N",
                   help="rows written per transaction (default: 1000); smaller batches hold the catalog's "
                        "write lock for less time")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    g = p.add_argument_group("discovery from the VAST Catalog (instead of walking PATHs)")
    g.add_argument("--from-vast-catalog", metavar="PATH-PREFIX",
                   help="list the files under this directory (as the VAST cluster names it) from the cluster's "
                        "VAST Catalog instead of walking a tree")
    g.add_argument("--vast-endpoint", metavar="URL", help="the cluster to ask, http://HOST:PORT (default: the "
                   "endpoint of a vast:// --catalog); credentials from COSMOSCOPE_VAST_ACCESS_KEY/SECRET_KEY")
    g.add_argument("--mounted-at", metavar="DIR", help="where PATH-PREFIX is mounted on this machine "
                   "(default: the same path)")
    g.add_argument("--since", metavar="WHEN", help="only files modified since then: a time (2026-11-27T08:00Z) "
                   "or an age (6h, 2d)")
    g.add_argument("--extensions", metavar="EXT,...", help="only files with these extensions, e.g. fits,fz,h5,nc,csv")
    g = p.add_argument_group("extraction on a Dask cluster (needs: pip install 'cosmoscope[dask]')")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--dask-scheduler", metavar="ADDRESS", help="the workers of the Dask cluster whose scheduler "
                   "is at ADDRESS (tcp://HOST:8786, or a scheduler JSON file) read the files")
    x.add_argument("--dask", metavar="local:N", help="start a Dask LocalCluster of N worker processes on this "
                   "machine for the run (local: one per CPU)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("demo", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="simulate four missions, catalog them, and show what cosmoscope can do",
                       description="Write a simulated multi-mission tree (COSMOS-7, HELIOS-X, LYRA, AURORA-2), "
                                   "ingest it into the catalog (the default one unless --catalog is given), "
                                   "and print a summary, a search and a lineage walk.",
                       epilog="examples:\n"
                              "  cosmoscope demo\n"
                              "  cosmoscope demo --files 2000 --days 7 --dir /tmp/sky --catalog /tmp/sky.sqlite\n\n"
                              "After it, try:\n  cosmoscope search --mission COSMOS-7 --min-quality 0.8\n"
                              "  cosmoscope summary\n  cosmoscope related DATASET_ID")
    p.add_argument("--dir", metavar="DIR", help="where to write the simulated files "
                   "(default: ~/.local/share/cosmoscope/demo-data)")
    p.add_argument("--files", type=int, default=400, metavar="N", help="files to simulate (default: 400)")
    p.add_argument("--days", type=int, default=3, metavar="D", help="days of observations (default: 3)")
    p.add_argument("--workers", "-j", type=argtypes.workers, metavar="N",
                   help="extraction processes (default: one per CPU)")
    p.set_defaults(func=cmd_demo)


def cmd_ingest(args) -> int:
    from cosmoscope.cli import open_from_args, show_progress
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.ingest.roots import from_flags

    if bool(args.paths) == bool(args.from_vast_catalog):
        raise InvalidArgumentError("give the PATHs to walk, or --from-vast-catalog PATH-PREFIX, but not both"
                                   if args.paths else "give at least one PATH to walk, or --from-vast-catalog "
                                   "PATH-PREFIX")
    with _spare_worker(args), _catalog_for_ingest(args) as cat, _dask_client(args) as executor:
        paths, entries, problems = args.paths, None, []
        if args.from_vast_catalog:
            # The local directory the listed files lie under: the run's label, and its root (files
            # whose real path leaves it are not read).
            paths = [args.mounted_at or args.from_vast_catalog]
            entries = _vast_catalog_entries(args, cat, problems)
        summary = cat.ingest(paths, profile=args.profile, workers=args.workers, dry_run=args.dry_run,
                             force=args.force, shard=args.shard,
                             follow_symlinks=from_flags(args.follow_symlinks, args.allow_outside_links),
                             progress=show_progress(args) and not args.json, entries=entries, executor=executor,
                             **({"batch_rows": args.batch_rows} if args.batch_rows else {}))
        summary.problems.extend(problems)
        if args.json:
            print(json.dumps(summary.to_dict(), indent=2, default=str))
        elif not getattr(args, "quiet", False):
            print(summary)
        failed = summary.failed + summary.failed_before
        if failed and not args.json:
            # The same catalog as this run's, whichever way it was named.
            catalog = f" --catalog {shlex.quote(args.catalog)}" if getattr(args, "catalog", None) else ""
            print(f"{failed:,} file{'' if failed == 1 else 's'} could not be read; see "
                  f"{'it' if failed == 1 else 'them'} with: cosmoscope{catalog} search --columns "
                  "file_path,extraction_error --format csv | grep -v ',$'",
                  file=sys.stderr if getattr(args, "quiet", False) else sys.stdout)
    return 0 if summary.ok else 1


@contextlib.contextmanager
def _spare_worker(args):
    """The workers a small run needs, starting while the catalog opens."""
    from cosmoscope.ingest import workers

    if args.paths and not args.dry_run and args.workers != 0 and not (args.dask_scheduler or args.dask):
        workers.start_spare(args.paths, args.workers)
    try:
        yield
    finally:
        workers.let_spare_go()


def _catalog_for_ingest(args):
    """The catalog to ingest into, created if need be; a dry run creates nothing, and compares
    with an empty catalog when there is none yet."""
    from cosmoscope.catalog import default_catalog_url, open_catalog
    from cosmoscope.cli import open_from_args
    from cosmoscope.errors import CatalogNotFoundError

    if not args.dry_run:
        return open_from_args(args, create=True)
    try:
        return open_from_args(args)  # writable, as before: an older catalog is upgraded, not refused
    except CatalogNotFoundError:
        where = getattr(args, "catalog", None) or default_catalog_url()
        print(f"cosmoscope ingest: there is no catalog at {where} yet: every file would be new", file=sys.stderr)
        return open_catalog(":memory:")


@contextlib.contextmanager
def _dask_client(args):
    """The Dask client ``--dask-scheduler``/``--dask`` ask for (None without them, or for a dry
    run, which reads no file)."""
    from cosmoscope.errors import InvalidArgumentError

    if not (args.dask_scheduler or args.dask) or args.dry_run:
        yield None
        return
    if args.workers is not None:
        raise InvalidArgumentError("--workers sets local extraction processes; with --dask or --dask-scheduler "
                                   "the cluster's workers read the files: give one or the other")
    from cosmoscope.ingest.dask_exec import open_client, parse_local

    local = parse_local(args.dask) if args.dask else None
    with open_client(scheduler=args.dask_scheduler, local_workers=local) as client:
        yield client


def _vast_catalog_entries(args, cat, problems: list):
    """The files the VAST Catalog lists for ``--from-vast-catalog`` (a lazy iterator)."""
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.ingest.vast_catalog import catalog_entries
    from cosmoscope.times import to_time

    endpoint = args.vast_endpoint or (cat.url if cat.url.lower().startswith("vast") else None)
    if endpoint is None:
        raise InvalidArgumentError("--from-vast-catalog needs a VAST cluster: give --vast-endpoint http://HOST:PORT "
                                   "or use a vast:// --catalog")
    since = to_time(args.since, name="--since time") if args.since else None
    extensions = [e for e in (args.extensions or "").split(",") if e.strip()]
    return catalog_entries(endpoint, args.from_vast_catalog, mounted_at=args.mounted_at, since=since,
                           extensions=extensions, on_problem=lambda path, reason: problems.append((path, reason)))


def cmd_demo(args) -> int:
    from cosmoscope.catalog import default_catalog_url
    from cosmoscope.cli import open_from_args, show_progress
    from cosmoscope.cli.output import write_frame
    from cosmoscope.cli.query_cmd import summary_for_terminal
    from cosmoscope.simulate import simulate

    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    root = os.path.abspath(args.dir or os.path.join(base, "cosmoscope", "demo-data"))
    url = getattr(args, "catalog", None) or default_catalog_url()
    progress = show_progress(args)
    print(f"1. Simulating {args.files} files of four missions over {args.days} days in {root}")
    # A few faults and imperfect headers, so that quality, problems and statuses have something to show.
    sim = simulate(root, files=args.files, days=args.days, seed=0, faults=DEMO_FAULTS, quirks=DEMO_QUIRKS,
                   progress=progress)
    written = sum(sum(by_format.values()) for by_format in sim.files.values())
    print(f"   wrote {written} data files ({sim.apparent_bytes / 1e6:,.1f} MB)")
    print(f"\n2. Cataloging them into {url}")
    with open_from_args(args, create=True) as cat:
        summary = cat.ingest([root], workers=args.workers, progress=progress)
        print(summary)
        from cosmoscope.simulate.history import play_history

        played = play_history(cat)  # a little processing history: queued, failed, archived
        print("   processing history: " + ", ".join(f"{n} {s}" for s, n in played.items()))
        print("\n3. What the catalog holds (cosmoscope summary):")
        write_frame(summary_for_terminal(cat.mission_summary()), "table")
        import polars as pl

        good = (cat.search(mission="COSMOS-7", min_quality=0.5).sort("observation_timestamp")
                .select("dataset_id", "instrument_type", "observation_timestamp", "target_object",
                        "data_quality_score", "calib_level").head(5).collect())
        print("\n4. Good COSMOS-7 observations (cosmoscope search --mission COSMOS-7 --min-quality 0.5):")
        write_frame(good.with_columns(pl.col("observation_timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S")), "table")
        derived = cat.search(calib_level=3).select("dataset_id", "file_name").head(1).collect()
        if derived.height:
            did = derived["dataset_id"][0]
            print(f"\n5. Where the derived product {derived['file_name'][0]} came from (cosmoscope related {did}):")
            rel = cat.related(did, direction="upstream").select("depth", "relationship_type", "dataset_id",
                                                                "file_path")
            write_frame(rel, "table")
        print(f"\n{summary.failed:,} of the files were broken on purpose, and a fifth have imperfect headers: "
              "see them in the dashboard's Problems tab (cosmoscope serve) or with cosmoscope validate.")
        print(f"\nTry: cosmoscope search --help   (the catalog is {cat.url})")
    # The files that could not be read were broken on purpose: the demo went as it should.
    return 0
