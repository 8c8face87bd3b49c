"""Commands for pipelines and other tools: ``api`` (the HTTP API) and ``preflight``.

Examples::

    $ cosmoscope api                                   # read-only, http://127.0.0.1:8000/docs
    $ cosmoscope api --token-file ~/.cosmoscope-token --output-root /scratch/out
    $ cosmoscope preflight --mission COSMOS-7 --min-quality 0.8 --output-dir /scratch/out
    $ cosmoscope preflight ds-1a2b3c4d5e6f7a8b ds-... --require-calibrated
"""

from __future__ import annotations

import argparse
import sys

from cosmoscope.cli import argtypes
from cosmoscope.cli.output import add_format_options, write_frame


STREAM_SECONDS = argtypes.number(float, above=0, what="a number of seconds")
OUTPUT_FACTOR = argtypes.number(float, above=0, what="an output factor", example="2.5")


def register(sub, common) -> None:
    from cosmoscope.cli.query_cmd import add_search_filters

    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "api", parents=[common], formatter_class=fmt, help="serve the catalog over HTTP (JSON, OpenAPI)",
        description="Serve search, summaries, dataset records, lineage, history, batch lookups, pre-flight "
                    "checks and a stream of newly cataloged datasets over HTTP. Read-only unless a write token "
                    "is set ($COSMOSCOPE_API_TOKEN or --token-file); writes then need "
                    "'Authorization: Bearer TOKEN'. The OpenAPI description is at /openapi.json, "
                    "interactive docs at /docs. VO clients (TOPCAT, pyvo) find a read-only TAP service over "
                    "ObsCore at /tap and a Simple Cone Search at /scs (see docs/vo.md).",
        epilog="examples:\n"
               "  cosmoscope api\n"
               "  cosmoscope api --port 8080 --catalog sqlite:///data/catalog.sqlite\n"
               "  cosmoscope api --token-file ~/.cosmoscope-token --output-root /scratch/out\n"
               "  curl 'http://127.0.0.1:8000/datasets?mission=COSMOS-7&min_quality=0.8&format=csv'\n"
               "  curl 'http://127.0.0.1:8000/datasets?near=M31&radius=30arcmin'\n"
               "  curl 'http://127.0.0.1:8000/scs?RA=10.68&DEC=41.27&SR=0.5'")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for every "
                        "interface)")
    p.add_argument("--port", type=argtypes.port, default=8000, help="port (default: 8000)")
    p.add_argument("--token-file", metavar="FILE",
                   help="file whose first line is the write token (default: $COSMOSCOPE_API_TOKEN; "
                        "neither: read-only)")
    p.add_argument("--output-root", action="append", metavar="DIR", default=[],
                   help="directory under which runs may catalog output files through the API (repeatable)")
    p.add_argument("--max-stream-seconds", type=STREAM_SECONDS, default=300.0, metavar="S",
                   help="close event streams after S seconds; clients resume with Last-Event-ID (default: 300)")
    p.add_argument("--workers", "-j", type=argtypes.number(int, low=1, what="a number of worker processes",
                                                           example="4"), metavar="N",
                   help="processes answering requests, each with its own connection to the catalog (default: one "
                        "per CPU)")
    p.add_argument("--threads", type=argtypes.number(int, low=1, what="a number of threads", example="4"),
                   default=4, metavar="N",
                   help="requests each worker process works on at once; more wait their turn (default: 4; "
                        "raise it when many requests wait on a remote store rather than on the CPU)")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="host name requests may address (repeatable; '*' for any); default: "
                        "$COSMOSCOPE_ALLOWED_HOSTS, else localhost names (and this machine's names when --host is "
                        "not local). Other names get 400, so a DNS-rebinding web page cannot read the API")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser(
        "preflight", parents=[common], formatter_class=fmt, help="check datasets before processing them",
        description="Go / no-go for a set of datasets: each must be cataloged, its file present and unchanged "
                    "since ingest, its metadata readable, its quality high enough, calibrated (if required) and "
                    "not held by another processing run; the output directory must have room. Exit status: "
                    "0 go, 1 no-go.",
        epilog="examples:\n"
               "  cosmoscope preflight --mission COSMOS-7 --start 2026-11-20 --output-dir /scratch/out\n"
               "  cosmoscope preflight ds-1a2b3c4d5e6f7a8b --require-calibrated --format json")
    p.add_argument("dataset_ids", nargs="*", metavar="DATASET_ID", help="datasets to check (or use the filters)")
    add_search_filters(p)
    for action in p._actions:  # here --min-quality is a check that reports, not a filter that hides
        if action.dest == "min_quality":
            action.help = "block datasets below this quality, 0 to 1 (default: 0.8)"
    g = p.add_argument_group("checks")
    g.add_argument("--require-calibrated", action="store_true", help="block datasets that are not calibrated")
    g.add_argument("--output-dir", metavar="DIR", help="where outputs will go: checked for free space")
    g.add_argument("--output-factor", type=OUTPUT_FACTOR, default=2.5, metavar="X",
                   help="expected output size as a multiple of the inputs' (default: 2.5)")
    add_format_options(p)
    p.set_defaults(func=cmd_preflight)


def cmd_api(args) -> int:
    import os

    from cosmoscope.api import create_app, read_token, serve
    from cosmoscope.api.app import TOKEN_ENV
    from cosmoscope.api.server import serve_workers
    from cosmoscope.catalog import open_catalog
    from cosmoscope.hosts import allowed_hosts
    from cosmoscope.ingest.workers import default_workers
    from cosmoscope.ports import listen_socket

    token = read_token(args.token_file)
    workers = args.workers or default_workers()
    cat = open_catalog(getattr(args, "catalog", None), readonly=token is None, create=False)
    try:
        options = dict(output_roots=args.output_root, max_stream_seconds=args.max_stream_seconds,
                       threads=args.threads, allowed_hosts=allowed_hosts(args.allowed_host, args.host))
        app = create_app(cat, token=token, **options)  # checks every option here, in this process, in words
        sock = listen_socket(args.host, args.port)  # a port in use: one sentence, before any announcement
    except BaseException:
        cat.close()
        raise
    host = f"[{args.host}]" if ":" in args.host else args.host
    mode = "writes need the bearer token" if token else "read-only (no write token set)"
    port = sock.getsockname()[1]  # the one the system chose for --port 0
    print(f"cosmoscope API for {cat.url} at http://{host}:{port} ({mode}, {workers} worker process"
          f"{'es' if workers > 1 else ''}; host names: {', '.join(options['allowed_hosts'])}); docs at /docs",
          file=sys.stderr)
    if token and args.host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: the write token travels in clear text over plain HTTP; put a TLS proxy in front "
              "when serving beyond this machine (docs/security.md)", file=sys.stderr)
    level = "info" if not getattr(args, "quiet", False) else "warning"
    try:
        if workers == 1:
            serve(app, args.host, port, log_level=level, sock=sock)
        else:
            cat.close()
            if token:
                os.environ[TOKEN_ENV] = token  # for the worker processes, which read it as the server would
            serve_workers({**options, "catalog": cat.url}, args.host, port, workers=workers, log_level=level,
                          sock=sock)
    finally:
        cat.close()
    return 0


def cmd_preflight(args) -> int:
    from cosmoscope.cli import open_from_args
    from cosmoscope.cli.query_cmd import note_unmatched, search_from_args
    from cosmoscope.errors import InvalidArgumentError

    filters = any(getattr(args, k) is not None for k in ("mission", "instrument", "satellite", "target", "start",
                                                           "end", "status", "calibration", "product_type",
                                                           "file_format"))
    threshold = 0.8 if args.min_quality is None else args.min_quality
    if bool(args.dataset_ids) == filters:
        raise InvalidArgumentError("give dataset ids or search filters (e.g. --mission COSMOS-7), not both "
                                   "and not neither")
    with open_from_args(args, readonly=True) as cat:
        selection = args.dataset_ids or search_from_args(cat, argparse.Namespace(**{**vars(args), "min_quality": None}))
        if not args.dataset_ids:
            note_unmatched(cat, args, found_nothing=cat.count(selection) == 0)
        report = cat.preflight(selection, min_quality=threshold,
                               require_calibrated=args.require_calibrated, output_dir=args.output_dir,
                               output_factor=args.output_factor)
    if args.format == "table":
        text = str(report)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        else:
            print(text)
    elif args.format == "json" and args.output is None:
        import json

        from cosmoscope.api.formats import jsonable

        print(json.dumps(jsonable(report.to_dict()), indent=2))
    else:
        df = report.to_polars()
        if args.format in ("csv", "table"):
            import polars as pl

            df = df.with_columns(pl.col("reasons").list.join(";"))  # CSV holds no lists
        write_frame(df, args.format, args.output)
    return 0 if report.go else 1
