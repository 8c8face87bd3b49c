"""Commands about the sky: ``coverage`` (a MOC of what was observed).

Examples::

    $ cosmoscope coverage --out coverage.fits                 # every observation, for Aladin or TOPCAT
    $ cosmoscope coverage --mission XMM --depth 12 --out xmm.json
"""

from __future__ import annotations

import argparse

from cosmoscope.cli import argtypes

DEPTH = argtypes.number(int, low=0, high=29, what="a MOC depth", example="10 (cells of 3.4 arcmin)")


def register(sub, common) -> None:
    from cosmoscope.cli.query_cmd import add_search_filters

    p = sub.add_parser(
        "coverage", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="write a coverage map (MOC) of the observations",
        description="Write the sky covered by the observations (all, or those the filters select) as an IVOA "
                    "MOC: footprints where known, positions otherwise. Aladin and TOPCAT open it.",
        epilog="examples:\n"
               "  cosmoscope coverage --out coverage.fits\n"
               "  cosmoscope coverage --mission XMM --start 2026-01-01 --depth 12 --out xmm.fits\n"
               "  cosmoscope coverage --near M31 --radius 2 --out m31.json")
    add_search_filters(p)
    p.add_argument("--out", "-o", required=True, metavar="FILE",
                   help="where to write the MOC: .fits (default format), .json or .txt (ASCII)")
    p.add_argument("--depth", type=DEPTH, default=10, metavar="N",
                   help="HEALPix depth of the finest cells, 0 to 29 (default: 10, cells of 3.4 arcmin)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=cmd_coverage)


def cmd_coverage(args) -> int:
    import os

    from cosmoscope.cli import open_from_args
    from cosmoscope.cli.query_cmd import search_filters_of
    from cosmoscope.errors import InvalidArgumentError

    if os.path.exists(args.out) and not args.overwrite:
        raise InvalidArgumentError(f"{args.out} exists; give --overwrite to replace it")
    fmt = {".json": "json", ".txt": "ascii", ".moc": "ascii"}.get(os.path.splitext(args.out)[1].lower(), "fits")
    with open_from_args(args, readonly=True) as cat:
        moc = cat.coverage(max_depth=args.depth, **search_filters_of(args))
    try:
        moc.save(args.out, format=fmt, overwrite=True)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"{args.out}: {moc.sky_fraction:.6%} of the sky (MOC depth {args.depth}, {fmt})")
    return 0
