"""The ``cosmoscope`` command.

Examples
--------
1. Build a demo catalog from simulated missions and summarise it::

    $ cosmoscope demo

2. Find good COSMOS-7 observations of one week::

    $ cosmoscope search --mission COSMOS-7 --start 2026-11-20 --end 2026-11-27 --min-quality 0.8

3. Export them for a pipeline::

    $ cosmoscope search --mission COSMOS-7 --format parquet --output inputs.parquet

4. Use another catalog for any command::

    $ cosmoscope --catalog sqlite:///data/catalog.sqlite summary

Each command's own ``--help`` has more. Exit codes: 0 all went well; 1 some files failed (could not
be read, left unread, or have problems) or the work failed, and the output says which; 2 the
command line was wrong.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from cosmoscope.errors import CosmoscopeError, InvalidArgumentError, UnknownNameError

#: Modules under cosmoscope.cli that each add commands with ``register(subparsers, common)``.
COMMAND_MODULES = ("query_cmd", "sky_cmd", "ingest_cmd", "simulate_cmd", "profiles_cmd", "watch_cmd", "api_cmd",
                   "serve_cmd", "report_cmd")


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in two lines: the reason, and where the help is (the whole
    usage block of a command with twenty options buried the one line that mattered)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


def show_help(parser: argparse.ArgumentParser):
    """A command function that prints ``parser``'s help (for a command group given no command)."""
    def run(args) -> int:
        parser.print_help()
        return 2

    return run


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after its name."""
    common = Parser(add_help=False)
    g = common.add_argument_group("catalog and output")
    # SUPPRESS keeps a value given before the command from being reset by the subcommand.
    g.add_argument("--catalog", metavar="URL", default=argparse.SUPPRESS,
                   help="catalog to use: sqlite:///path/catalog.sqlite (SQLAlchemy's sqlite:////path/... too), "
                        "a file path, or vast://ENDPOINT/BUCKET/SCHEMA (default: $COSMOSCOPE_CATALOG, else "
                        "~/.local/share/cosmoscope/catalog.sqlite)")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="say more (-vv for debug output, including what is pushed down to the store)")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="print only results and errors; no progress bars")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = Parser(
        prog="cosmoscope", parents=[common],
        description="One catalog of every satellite observation file: find data in seconds.",
        epilog=__doc__.split("Examples\n--------\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    from cosmoscope import __version__

    parser.add_argument("--version", action="version", version=f"cosmoscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    parser.set_defaults(func=show_help(parser))  # `cosmoscope` alone: the help, not a usage error
    for name in COMMAND_MODULES:
        importlib.import_module(f"cosmoscope.cli.{name}").register(sub, common)
    return parser


def open_from_args(args, *, readonly: bool = False, create: bool = False):
    """The catalog named by ``--catalog`` (or the default).

    Only commands that write new data (ingest, watch, demo) pass ``create``; they say so when
    they make a new catalog. Every other command refuses a catalog that does not exist, so a
    mistyped ``--catalog`` fails instead of reporting on a new, empty catalog.
    """
    from cosmoscope.catalog import open_catalog

    cat = open_catalog(getattr(args, "catalog", None), readonly=readonly, create=create)
    if cat.created and not getattr(args, "quiet", False):
        print(f"cosmoscope {args.command}: created a new catalog at {cat.url}", file=sys.stderr, flush=True)
    return cat


def show_progress(args) -> bool:
    """Whether long work should draw a progress bar."""
    return not getattr(args, "quiet", False)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0) or 0
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose >= 2:  # every failed request to VAST, retried or not
        for name in ("vastdb.errors", "backoff"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        return int(args.func(args) or 0)
    except (InvalidArgumentError, UnknownNameError) as exc:
        parser.exit(2, f"cosmoscope {args.command}: error: {exc}\n")
    except CosmoscopeError as exc:
        print(f"cosmoscope {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cosmoscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # e.g. `cosmoscope search | head`: the reader left, which is not an error.
        sys.stderr.close()
        return 0
    return 0  # pragma: no cover - parser.exit does not return


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
