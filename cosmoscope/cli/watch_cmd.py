"""``cosmoscope watch``, ``cosmoscope status`` and ``cosmoscope validate``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from cosmoscope.cli import argtypes

WATCH_EPILOG = """\
examples:
  cosmoscope watch /data/incoming                      # catalog files as they land (inotify)
  cosmoscope watch /mnt/nfs/cosmos7 --poll             # NFS: poll every 2 s instead of events
  cosmoscope watch /data/a /data/b --profile cosmos-7 --workers 2

Runs until SIGINT (Ctrl-C) or SIGTERM, then writes what it holds and stops. Files are cataloged
once complete: closed by their writer or renamed into place (temporary names such as
.name.XXXXXX or *.part are ignored), else unchanged for --settle seconds, and their format must
agree (FITS END cards and declared data, HDF5 and netCDF sizes). Deleted files keep their rows,
marked missing. On start, and every --reconcile-every, the trees are compared with the catalog,
so nothing written while no watcher ran is lost. Logs go to standard error, one line per batch;
`cosmoscope status` shows the watcher from any process. See docs/operations.md for systemd.

Exit code: 0 when stopped with every file it cataloged readable; 1 when a file could not be read
or was left unread (a link outside the PATHs), or the watcher failed; 2 when the command line
was wrong."""

VALIDATE_EPILOG = """\
examples:
  cosmoscope validate                                  # every row: files present, unchanged, values possible
  cosmoscope validate --mission COSMOS-7 --since 24h   # rows cataloged or updated in the last day
  cosmoscope validate --checksums                      # also read every file: content hash, FITS CHECKSUM
  cosmoscope validate --fix                            # re-extract what a fresh reading can cure
  cosmoscope validate --fix --every 6h                 # keep doing it, every six hours

Exit code: 0 when every row passed; 1 when problems remain (so cron or CI can alert); 2 when the
command line was wrong."""


def register(sub, common) -> None:
    from cosmoscope.cli.output import add_format_options

    p = sub.add_parser("watch", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="catalog files as they arrive, change and go (runs until stopped)",
                       description="Watch directories and keep the catalog in step with them: new and "
                                   "changed files are cataloged moments after they are complete, deleted "
                                   "ones are marked missing.", epilog=WATCH_EPILOG)
    p.add_argument("paths", nargs="+", metavar="PATH", help="directories to watch (recursively)")
    p.add_argument("--profile", metavar="P", help="mission profile name or TOML file for every file "
                   "(default: chosen by path)")
    p.add_argument("--poll", action="store_true", help="poll the trees instead of listening for events "
                   "(NFS, SMB and other file systems without change events)")
    p.add_argument("--poll-interval", type=argtypes.seconds, default=2.0, metavar="S",
                   help="seconds between polls (default: 2)")
    p.add_argument("--settle", type=argtypes.seconds, default=2.0, metavar="S",
                   help="seconds a file must stay unchanged when no close event is expected (default: 2)")
    p.add_argument("--stall", type=argtypes.seconds, default=30.0, metavar="S",
                   help="seconds after which a file still open or failing its format check is cataloged "
                        "anyway, with what is wrong with it (default: 30)")
    p.add_argument("--reconcile-every", type=argtypes.seconds, default=600.0, metavar="T",
                   help="how often to compare the trees with the catalog, e.g. 10min, 1h; 0: only at "
                        "start (default: 10min)")
    p.add_argument("--heartbeat", type=argtypes.seconds, default=5.0, metavar="S",
                   help="seconds between heartbeats in the catalog (default: 5)")
    p.add_argument("--workers", "-j", type=argtypes.count, default=1, metavar="N",
                   help="extraction processes (default: 1; 0 reads in the watcher's own process)")
    p.add_argument("--batch", type=argtypes.count, default=500, metavar="N", help="most files written per transaction "
                   "(default: 500)")
    p.add_argument("--max-pending", type=argtypes.count, default=100_000, metavar="N",
                   help="most files held waiting; beyond it a scan catches up (default: 100000)")
    p.add_argument("--no-initial-scan", action="store_true", help="do not compare the trees with the catalog "
                   "at start (faster start; files written while down wait for the next reconcile)")
    p.add_argument("--follow-symlinks", action="store_true", help="enter symbolically linked directories during "
                   "scans (those whose real path lies under a PATH)")
    p.add_argument("--allow-outside-links", action="store_true", help="follow every symbolic link, even where it "
                   "leads outside the PATHs (by default such files are logged by name and not read)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("status", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="show each watcher's heartbeat, backlog and last file, and file and validation states",
                       description="What the watchers of this catalog are doing (read from the catalog, so "
                                   "it works from any process or machine), and how many rows are missing, "
                                   "changed or failed validation.",
                       epilog="examples:\n"
                              "  cosmoscope status\n"
                              "  cosmoscope status --format json          # every watcher, for a monitoring check\n"
                              "  cosmoscope --catalog vast://http://vip:8080/bucket/catalog status\n\n"
                              "Exit code 1 when a watcher that should be running has not sent a heartbeat "
                              "for three intervals (killed, hung, or its machine is down).")
    add_format_options(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("validate", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="check rows against their files and for impossible values; --fix repairs",
                       description="Check that every row's file is still there and unchanged, that its "
                                   "metadata could be read and has the required fields, and that no value "
                                   "is impossible. Results are stored on the rows and as audit events.",
                       epilog=VALIDATE_EPILOG)
    p.add_argument("--mission", action="append", metavar="M", help="only this mission (repeatable)")
    p.add_argument("--since", metavar="T", help="only rows cataloged or updated since T: a time "
                   "(2026-11-27, 2026-11-27T08:00Z) or a duration before now (24h, 7d)")
    p.add_argument("--path", action="append", metavar="DIR", dest="under", help="only files under DIR (repeatable)")
    p.add_argument("--fix", action="store_true", help="re-extract files whose problems a fresh reading can "
                   "cure, and record what changed")
    p.add_argument("--checksums", action="store_true", help="read whole files: compare content hashes "
                   "(recording them the first time) and verify FITS CHECKSUM/DATASUM")
    p.add_argument("--every", type=argtypes.seconds, metavar="T", help="run again every T (e.g. 6h) until stopped")
    p.add_argument("--workers", "-j", type=argtypes.count, default=1, metavar="N", help="extraction processes for "
                   "--fix (default: 1)")
    p.add_argument("--threads", type=argtypes.count, default=8, metavar="N",
                   help="files inspected at once (default: 8)")
    p.add_argument("--allow-outside-links", action="store_true", help="read files through symbolic links even "
                   "where they lead outside the cataloged directories (by default such files are reported, not read)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_validate)


def _on_signals(callback) -> None:
    """Run ``callback`` on SIGINT and SIGTERM (a clean stop instead of a traceback)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: callback())


def cmd_watch(args) -> int:
    from cosmoscope.cli import open_from_args
    from cosmoscope.ingest.roots import from_flags
    from cosmoscope.ingest.watch import Watcher

    if not getattr(args, "quiet", False) and not getattr(args, "verbose", 0):
        logging.getLogger("cosmoscope").setLevel(logging.INFO)  # a service says what it does
    with open_from_args(args, create=True) as cat:
        watcher = Watcher(cat, args.paths, profile=args.profile, poll=args.poll, poll_interval=args.poll_interval,
                          settle=args.settle, stall=args.stall, reconcile_every=args.reconcile_every,
                          heartbeat_every=args.heartbeat, workers=args.workers, batch_files=max(args.batch, 1),
                          max_pending=max(args.max_pending, 2),
                          follow_symlinks=from_flags(args.follow_symlinks, args.allow_outside_links),
                          initial_scan=not args.no_initial_scan)
        _on_signals(watcher.request_stop)
        watcher.run()
    bad = watcher.counts["failed"] + watcher.counts["outside"]
    if bad:
        print(f"cosmoscope watch: {watcher.counts['failed']:,} files cataloged as unreadable and "
              f"{watcher.counts['outside']:,} left unread (links outside the PATHs) while watching; see the log "
              "above", file=sys.stderr)
    return 0 if watcher.state == "stopped" and not bad else 1


def cmd_status(args) -> int:
    import polars as pl

    from cosmoscope.cli import open_from_args
    from cosmoscope.cli.output import write_frame

    with open_from_args(args, readonly=True) as cat:
        watchers = cat.watchers()
        states = cat.facet_counts(["file_status", "validation_status"]).rename({"n": "len"})
    if args.format != "table":
        write_frame(watchers, args.format, args.output)
        return _status_code(watchers)
    if watchers.height == 0:
        print("No watcher has used this catalog yet (start one with `cosmoscope watch PATH`).")
    else:
        shown = watchers.select(
            "watcher_id", "status", "host", "pid",
            pl.col("paths").map_elements(lambda t: ", ".join(json.loads(t)) if t else "", return_dtype=pl.String),
            pl.col("heartbeat_age_s").map_elements(_age, return_dtype=pl.String).alias("heartbeat"),
            "backlog", "files_new", "files_updated", "files_missing",
            pl.col("last_file").str.split("/").list.last().alias("last_file"),
            pl.col("last_file_at").dt.strftime("%Y-%m-%d %H:%M:%S"))
        write_frame(shown, "table", args.output, title="Watchers")
        stopped = watchers.filter(pl.col("message").is_not_null() & (pl.col("status") != "running"))
        for row in stopped.iter_rows(named=True):
            print(f"  {row['watcher_id']}: {row['message']}")
    total = int(states["len"].sum()) if states.height else 0
    if total:
        def n(expr):
            return int(states.filter(expr)["len"].sum())
        print(f"\nRows: {total:,}; files missing: {n(pl.col('file_status') == 'missing'):,}, changed since "
              f"cataloged: {n(pl.col('file_status') == 'changed'):,}; validation: "
              f"{n(pl.col('validation_status') == 'passed'):,} passed, "
              f"{n(pl.col('validation_status') == 'problems'):,} with problems, "
              f"{n(pl.col('validation_status').is_null()):,} never validated.")
    return _status_code(watchers)


def _status_code(watchers) -> int:
    return 1 if watchers.height and (watchers["status"] == "not responding").any() else 0


def _age(seconds) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def cmd_validate(args) -> int:
    from cosmoscope.cli import open_from_args, show_progress
    from cosmoscope.cli.query_cmd import note_unmatched
    from cosmoscope.ingest.validate import since_time

    if args.since:
        since_time(args.since)  # a bad time is a usage error before any work
    stop = threading.Event()
    if args.every:
        _on_signals(stop.set)
    code = 0
    while True:
        with open_from_args(args) as cat:
            if args.mission:
                note_unmatched(cat, args, found_nothing=False)
            report = cat.validate(mission=args.mission, since=args.since, paths=args.under, fix=args.fix,
                                  checksums=args.checksums, workers=args.workers, threads=max(args.threads, 1),
                                  follow_symlinks="all" if args.allow_outside_links else False,
                                  progress=show_progress(args) and not args.json)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            print(report)
        sys.stdout.flush()
        code = 0 if report.ok else 1
        if not args.every or stop.wait(args.every):
            return code
