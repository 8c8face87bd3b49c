"""``cosmoscope report``: run a report notebook with papermill and export it to HTML.

Examples
--------
1. The notebooks and their parameters::

    $ cosmoscope report --list

2. Last day's validation of one mission, as cron runs it (exit 1 when problems remain)::

    $ cosmoscope report validation_report -p mission COSMOS-7 -p since 24h -p fail_on_problems true \\
          --out /reports/validation-$(date +%F).html

3. An ingest with its report (repeat ``-p paths`` for more directories)::

    $ cosmoscope report ingest -p paths /data/incoming -p workers 8 --out ingest.html

4. A pipeline's pre-flight, against another catalog::

    $ cosmoscope --catalog sqlite:///data/catalog.sqlite report pipeline_preflight -p mission COSMOS-7 \\
          -p start 2026-11-20 -p end 2026-11-27

The notebook runs in a kernel of the Python running this command (nothing needs registering);
``--kernel NAME`` picks an installed kernel instead. The executed notebook is kept beside the
HTML (``report.html`` -> ``report.ipynb``).
"""

from __future__ import annotations

import argparse
import sys
from cosmoscope.cli import argtypes


TIMEOUT = argtypes.number(float, above=0, what="a timeout in seconds", example="600")
#: Shipped notebooks that write new data, and so may create the catalog they are given.
CREATES_CATALOG = {"ingest"}

_EPILOG = """\
examples:
  cosmoscope report --list
  cosmoscope report validation_report -p since 24h -p fail_on_problems true --out validation.html
  cosmoscope report ingest -p paths /data/incoming -p paths /data/late --out ingest.html
  cosmoscope report pipeline_preflight -p mission COSMOS-7 -p start 2026-11-20 -p end 2026-11-27
  cosmoscope report explore --out tour.html

Values are read by each parameter's type (see --list): true/false for yes-no parameters, none
for "not set", a JSON list or a repeated -p for lists. --catalog (before or after the command)
sets the notebook's catalog_url. The notebook runs in a kernel of this Python; to use the same
environment from JupyterLab, register it once with:
  python -m ipykernel install --sys-prefix --name cosmoscope
exit status: 0 the notebook ran to the end; 1 a cell failed (the message names it; the HTML and
executed notebook are still written); 2 the command line was wrong."""


def register(sub, common) -> None:
    p = sub.add_parser(
        "report", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="run a report notebook (ingest, validation, pre-flight, tour) and export it to HTML",
        description="Run a parameterised report notebook top to bottom with papermill and export it to HTML "
                    "with nbconvert; the executed notebook is kept beside the HTML.",
        epilog=_EPILOG)
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="a notebook listed by --list (e.g. validation_report), or the path of any .ipynb")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   dest="parameters", help="set a parameter of the notebook (repeatable)")
    p.add_argument("--out", "-o", metavar="FILE.html",
                   help="the HTML report (default: NAME.html here); the executed notebook goes beside it")
    p.add_argument("--list", action="store_true",
                   help="list the notebooks and their parameters (only NAME's, if given) and exit")
    p.add_argument("--kernel", metavar="NAME", help="run in this installed Jupyter kernel instead of this Python")
    p.add_argument("--show-code", action="store_true",
                   help="put the code cells in the HTML too (by default it shows results only; the executed "
                        "notebook beside it always has the code)")
    p.add_argument("--no-input", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    p.add_argument("--force", action="store_true",
                   help="replace the files of an earlier report of the same name (otherwise they are left alone)")
    p.add_argument("--cdn", action="store_true",
                   help="load the charts' JavaScript from cdn.bokeh.org when the page opens (a smaller file "
                        "that needs internet) instead of carrying it inside the HTML")
    p.add_argument("--no-html", action="store_true", help="keep only the executed notebook")
    p.add_argument("--timeout", type=TIMEOUT, metavar="SECONDS",
                   help="fail a cell that runs longer than this (default: no limit)")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from cosmoscope.cli import show_progress
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.reports import (NOTEBOOK_DIR, NotebookFailed, list_notebooks, notebook_info, parse_parameters,
                                    run_report)

    if args.list:
        infos = [notebook_info(args.name)] if args.name else list_notebooks()
        print(format_listing(infos))
        return 0
    if not args.name:
        raise InvalidArgumentError("name the notebook to run, e.g. cosmoscope report validation_report "
                                   "(cosmoscope report --list shows them)")
    info = notebook_info(args.name)
    parameters = parse_parameters(info, [tuple(kv) for kv in args.parameters])
    env = {}
    catalog = getattr(args, "catalog", None)
    if catalog:
        # The kernel opens the default catalog through $COSMOSCOPE_CATALOG; the notebooks also
        # take it as their catalog_url parameter (an explicit -p catalog_url wins).
        env["COSMOSCOPE_CATALOG"] = catalog
        if "catalog_url" in info.parameters:
            parameters.setdefault("catalog_url", catalog)
    given = parameters.get("catalog_url")
    if given and info.name not in CREATES_CATALOG and info.path.parent == NOTEBOOK_DIR:
        # A mistyped catalog fails here, in one sentence, before a kernel starts.
        from cosmoscope.catalog import open_catalog
        from cosmoscope.errors import SchemaError

        try:
            open_catalog(given, readonly=True).close()
        except SchemaError:
            pass  # a catalog, of another schema version: what to do with it is the notebook's part
    progress = show_progress(args)
    if progress:
        shown = " ".join(f"{k}={v!r}" for k, v in parameters.items())
        print(f"cosmoscope report: running {info.path.name}" + (f" with {shown}" if shown else "")
              + (f" in kernel {args.kernel!r}" if args.kernel else f" ({sys.executable})"),
              file=sys.stderr, flush=True)
    try:
        result = run_report(info.path, parameters, out=args.out, kernel=args.kernel, progress=progress,
                            html=not args.no_html, no_input=not args.show_code, self_contained=not args.cdn, force=args.force,
                            timeout=args.timeout, env=env)
    except NotebookFailed as exc:
        print(f"cosmoscope report: error: {exc}", file=sys.stderr)
        return 1
    written = f"{result.html} and {result.notebook}" if result.html else str(result.notebook)
    if not getattr(args, "quiet", False):
        print(f"cosmoscope report: wrote {written} in {result.seconds:.1f} s", file=sys.stderr)
    print(result.html or result.notebook)
    return 0


def format_listing(infos) -> str:
    """The notebooks with their descriptions and parameters, for ``--list``."""
    import textwrap

    lines = []
    for info in infos:
        lines.append(f"{info.name}: {info.title}")
        if info.description:
            lines += textwrap.wrap(info.description, 96, initial_indent="    ", subsequent_indent="    ")
        width = max((len(p.name) for p in info.parameters.values()), default=0)
        for p in info.parameters.values():
            lines.append(f"  -p {p.name:<{width}}  {p.type} = {p.default}" + (f"  # {p.help}" if p.help else ""))
        lines.append("")
    return "\n".join(lines).rstrip()
