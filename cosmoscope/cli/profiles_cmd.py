"""``cosmoscope profiles``: list mission profiles, and preview what they extract from files.

Examples
--------
1. Which profiles are installed, and which paths each one claims::

    $ cosmoscope profiles list

2. What would be catalogued for some files, and where each value comes from::

    $ cosmoscope profiles check /data/helios-x/20261127/hx01234567_evt2.fits

3. Try a profile you are writing on a directory, as JSON::

    $ cosmoscope profiles check /data/newmission --profile ./newmission.toml --format json

Exit codes: 0 every file was read, 1 some file could not be read (its row says why), 2 the
command line was wrong (unknown profile, invalid profile file).
"""

from __future__ import annotations

import argparse
import json
import sys

_DESCRIPTION = """\
Mission profiles tell cosmoscope how a mission names its files and headers (see
cosmoscope/profiles/README.md). `profiles check` extracts files without writing anything to the
catalog and shows, for every field, the value and what supplied it (a header keyword, an
attribute, a path part, a sidecar file or a profile default)."""


def register(subparsers, common: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the ``profiles`` command (``check``, ``list``) to ``subparsers``; return its parser."""
    parents = [common] if common is not None else []
    p = subparsers.add_parser("profiles", parents=parents, help="list mission profiles; preview extraction",
                              description=_DESCRIPTION, epilog=__doc__.split("Examples\n--------\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="profiles_command", metavar="ACTION", title="actions")
    from cosmoscope.cli import show_help

    p.set_defaults(func=show_help(p))  # `cosmoscope profiles` alone: its help
    fmt = argparse.RawDescriptionHelpFormatter
    check = sub.add_parser("check", parents=parents, formatter_class=fmt,
                           help="preview what extraction records for files",
                           description="Extract files (nothing is written) and show each field's value and source.",
                           epilog="examples:\n"
                                  "  cosmoscope profiles check /data/helios-x/20261127/hx01234567_evt2.fits\n"
                                  "  cosmoscope profiles check /data/newmission --profile ./newmission.toml\n"
                                  "  cosmoscope profiles check /data/lyra --format json > preview.json\n\n"
                                  "Exit code 1 when a file could not be read (its rows say why).")
    check.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (walked recursively)")
    check.add_argument("--profile", metavar="P",
                       help="force a profile, by name or path of a TOML file (default: matched by path)")
    check.add_argument("--format", choices=("table", "json"), default="table",
                       help="output format (default: table)")
    check.set_defaults(func=run_check)
    lst = sub.add_parser("list", parents=parents, formatter_class=fmt, help="list installed profiles",
                         description="List the shipped profiles and those in $COSMOSCOPE_PROFILES.",
                         epilog="examples:\n"
                                "  cosmoscope profiles list\n"
                                "  COSMOSCOPE_PROFILES=./profiles cosmoscope profiles list --format json")
    lst.add_argument("--format", choices=("table", "json"), default="table",
                     help="output format (default: table)")
    lst.set_defaults(func=run_list)
    return p


def _usage_error(message: str) -> int:
    print(f"cosmoscope profiles: error: {message}", file=sys.stderr)
    return 2


def run_check(args: argparse.Namespace) -> int:
    """``profiles check``: print preview rows; 1 if any file failed, 2 for a bad profile."""
    from cosmoscope.errors import UnknownNameError
    from cosmoscope.extract.preview import format_rows, preview, rows_to_json
    from cosmoscope.extract.profiles import ProfileError, load_profiles

    profile = None
    try:
        profiles = load_profiles()
        if args.profile:
            profile = profiles.resolve(args.profile)
    except (ProfileError, UnknownNameError) as exc:
        return _usage_error(str(exc))
    rows = preview(args.paths, profiles=profile if profile is not None else profiles)
    if args.format == "json":
        print(rows_to_json(rows))
    else:
        print(format_rows(rows) if rows else "(no files)")
    failed = any(r.field == "extraction_status" and r.value == "error" for r in rows)
    return 1 if failed or not rows else 0


def run_list(args: argparse.Namespace) -> int:
    """``profiles list``: name, priority, formats, paths claimed and source file of each profile."""
    from cosmoscope.extract.profiles import ProfileError, load_profiles

    try:
        profiles = load_profiles()
    except ProfileError as exc:
        return _usage_error(str(exc))
    items = [{"name": p.name, "priority": p.priority, "formats": list(p.formats),
              "applies_to": list(p.applies_to) or [t.text for t in p.templates],
              "description": p.description, "source": p.source} for p in profiles]
    if args.format == "json":
        print(json.dumps(items, indent=1))
        return 0
    if not items:
        print("(no profiles)")
        return 0
    width = max(len(i["name"]) for i in items)
    for i in items:
        print(f"{i['name']:<{width}}  priority {i['priority']:<3} {','.join(i['formats']) or 'any format':<12} "
              f"{' '.join(i['applies_to'])}")
        if i["description"]:
            print(f"{'':<{width}}  {i['description']}")
        print(f"{'':<{width}}  {i['source']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``profiles`` on its own (``python -m cosmoscope.cli.profiles_cmd check PATH``)."""
    parser = argparse.ArgumentParser(prog="cosmoscope")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["profiles", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
