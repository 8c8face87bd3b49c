"""Commands that read the catalog: search, summary, related, show, history, sql, info."""

from __future__ import annotations

import argparse
import sys

from cosmoscope.cli import argtypes
from cosmoscope.cli.output import add_format_options, write_frame

#: Columns shown by ``search`` as a table unless --columns says otherwise.
TABLE_COLUMNS = ["dataset_id", "mission_id", "instrument_type", "observation_timestamp", "target_object",
                 "data_quality_score", "processing_status", "file_path"]


DATASET_HELP = ("the dataset: its id (ds-1a2b3c4d5e6f7a8b), a unique start of the id (ds-1a2b3c or 1a2b3c), "
                "or the path of its file")


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def add_search_filters(p: argparse.ArgumentParser) -> None:
    """The search filters as flags (shared by search and other commands that select datasets)."""
    from cosmoscope import schema as S

    g = p.add_argument_group("filters (all must match; repeat a flag to allow several values)")
    g.add_argument("--mission", action="append", metavar="M", help="mission id, e.g. COSMOS-7")
    g.add_argument("--instrument", action="append", metavar="I", help="instrument, e.g. WFI")
    g.add_argument("--satellite", action="append", metavar="S", help="spacecraft or observatory")
    g.add_argument("--name", metavar="NAME", help="target name, forgiving: case, spaces and punctuation ignored "
                   "('ngc253' finds 'NGC 253'); names close matches when nothing matches")
    g.add_argument("--target", metavar="NAME", help="exact target name; 'NGC*' for a prefix, '*253*' for a part")
    g.add_argument("--start", type=argtypes.utc_time, metavar="TIME", help="observations starting at or after TIME: "
                   "ISO 8601 (UTC unless an offset is given), or an age such as 24h or 7d")
    g.add_argument("--end", type=argtypes.utc_time, metavar="TIME", help="observations starting before TIME "
                   "(the same forms)")
    g.add_argument("--min-quality", type=argtypes.quality, metavar="Q", help="lowest quality score, 0 to 1")
    g.add_argument("--status", action="append", choices=[s.value for s in S.ProcessingStatus],
                   help="processing status")
    g.add_argument("--calibration", action="append", choices=[s.value for s in S.CalibrationStatus],
                   help="calibration status")
    g.add_argument("--product-type", action="append", metavar="T", help="ObsCore product type: image, spectrum, ...")
    g.add_argument("--file-format", action="append", choices=["fits", "hdf5", "netcdf", "csv"], help="file format")
    g = p.add_argument_group("on the sky (positions and footprints, ICRS)")
    g.add_argument("--near", metavar="POSITION",
                   help="centre of a cone: '10.68 41.27' (degrees), '00h42m44s +41d16m', or a target name "
                        "(placed by this catalog's observations of it, else by the name resolver when online)")
    g.add_argument("--radius", type=argtypes.radius, metavar="ANGLE",
                   help="radius of the cone: degrees or with a unit, e.g. 30arcmin, 10arcsec (above 0, at most 180°)")
    g.add_argument("--box", nargs=4, type=argtypes.degrees, metavar=("RA_MIN", "RA_MAX", "DEC_MIN", "DEC_MAX"),
                   help="a coordinate box in degrees; RA runs east from RA_MIN to RA_MAX (350 10 crosses 0°)")
    g.add_argument("--centres-only", action="store_true",
                   help="match observation positions only, not footprints that overlap the cone or box")


def search_filters_of(args) -> dict:
    """The keyword arguments of :meth:`Catalog.search` given on the command line."""
    return dict(mission=args.mission, instrument=args.instrument, target=args.target, start=args.start,
                end=args.end, min_quality=args.min_quality, status=args.status, calibration=args.calibration,
                satellite=args.satellite, product_type=args.product_type, file_format=args.file_format,
                name=args.name, near=args.near, radius=args.radius, box=args.box,
                footprints=not args.centres_only)


def search_from_args(cat, args):
    """The lazy frame of the filters given on the command line."""
    return cat.search(**search_filters_of(args))


def note_unmatched(cat, args, *, found_nothing: bool) -> None:
    """Say on standard error which filter values no observation has, and the close ones that
    exist (``--mission cosmos7``: did you mean 'COSMOS-7'?). Missions are checked always (an
    index answers at once), the other named filters when the command found nothing."""
    import sys

    from cosmoscope.lookup import NAMED_FILTERS, unmatched

    filters = {k: getattr(args, k, None) for k in NAMED_FILTERS if found_nothing or k == "mission"}
    for note in unmatched(cat, filters):
        print(f"cosmoscope {args.command}: {note}", file=sys.stderr)


def register(sub, common) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("search", parents=[common], formatter_class=fmt, help="find observations",
                       description="Find observations by mission, instrument, time, quality, target, status "
                                   "and place on the sky.",
                       epilog="examples:\n"
                              "  cosmoscope search --mission COSMOS-7 --start 2026-11-20 --end 2026-11-27\n"
                              "  cosmoscope search --near '10.68 41.27' --radius 30arcmin\n"
                              "  cosmoscope search --near M31 --radius 1 --mission XMM --count\n"
                              "  cosmoscope search --name ngc253\n"
                              "  cosmoscope search --target 'NGC*' --min-quality 0.8 --format csv > ngc.csv\n"
                              "  cosmoscope search --status raw --mission HELIOS-X --count\n"
                              "  cosmoscope search --mission LYRA --format parquet -o lyra.parquet")
    add_search_filters(p)
    g = p.add_argument_group("results")
    g.add_argument("--columns", type=_columns, metavar="A,B,...",
                   help="columns to show (default: a compact set for tables, every column otherwise)")
    g.add_argument("--sort", metavar="COLUMN", default="observation_timestamp",
                   help="sort by (default: time); ties in dataset id order, missing values last")
    g.add_argument("--descending", action="store_true", help="sort newest / largest first")
    g.add_argument("--limit", type=argtypes.count, metavar="N",
                   help="at most N rows (default: 50 for tables, all otherwise)")
    g.add_argument("--count", action="store_true", help="print only the number of matches")
    add_format_options(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("summary", parents=[common], formatter_class=fmt,
                       help="per-mission counts, volume, time coverage and quality",
                       description="Per mission: datasets, bytes, first and last observation, mean and minimum "
                                   "quality, calibrated count, extraction errors and processing statuses.",
                       epilog="examples:\n"
                              "  cosmoscope summary\n"
                              "  cosmoscope summary --mission COSMOS-7 --mission LYRA\n"
                              "  cosmoscope summary --format csv -o summary.csv")
    p.add_argument("--mission", action="append", metavar="M", help="only this mission (repeatable)")
    add_format_options(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("related", parents=[common], formatter_class=fmt,
                       help="lineage of a dataset (parents and children)",
                       description="Datasets linked to DATASET_ID through lineage: the raw inputs it came "
                                   "from (upstream) and the products made from it (downstream).",
                       epilog="examples:\n"
                              "  cosmoscope related ds-1a2b3c4d5e6f7a8b\n"
                              "  cosmoscope related ds-1a2b3c --direction upstream       # a unique start of the id\n"
                              "  cosmoscope related /data/cosmos7/c7_wfi_l2.nc --depth 1 --format json")
    p.add_argument("dataset_id", metavar="DATASET_ID", help=DATASET_HELP)
    p.add_argument("--direction", choices=["upstream", "downstream", "both"], default="both",
                   help="upstream: what it was made from; downstream: what was made from it (default: both)")
    p.add_argument("--depth", type=argtypes.count, metavar="N", help="at most N hops (default: all)")
    add_format_options(p)
    p.set_defaults(func=cmd_related)

    p = sub.add_parser("show", parents=[common], formatter_class=fmt, help="every field of one dataset",
                       description="Every catalog field of one dataset, and where each value came from.",
                       epilog="examples:\n"
                              "  cosmoscope show ds-1a2b3c4d5e6f7a8b\n"
                              "  cosmoscope show ds-1a2b3c                       # a unique start of the id\n"
                              "  cosmoscope show /data/lyra/20261125/lyra_0001.fits --format json")
    p.add_argument("dataset_id", metavar="DATASET_ID", help=DATASET_HELP)
    p.add_argument("--format", "-f", choices=["table", "json"], default="table",
                   help="table: one field a line, with where its value came from; json: one object "
                        "(default: table)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("history", parents=[common], formatter_class=fmt, help="audit trail of a dataset",
                       description="Every recorded change to one dataset, oldest first: who, when, what.",
                       epilog="examples:\n"
                              "  cosmoscope history ds-1a2b3c4d5e6f7a8b\n"
                              "  cosmoscope history /data/helios-x/hx01234567_evt2.fits --format csv")
    p.add_argument("dataset_id", metavar="DATASET_ID", help=DATASET_HELP)
    add_format_options(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("sql", parents=[common], formatter_class=fmt, help="query the catalog with SQL",
                       description="Run a polars SQL query over the tables observations, relationships, "
                                   "events and obscore. Filters are still pushed down to the store.",
                       epilog="example:\n  cosmoscope sql \"SELECT mission_id, count(*) AS n FROM observations "
                              "WHERE data_quality_score > 0.8 GROUP BY mission_id\"")
    p.add_argument("query", metavar="QUERY", help="one SELECT statement over observations, relationships, events "
                   "and obscore (quote it for the shell)")
    add_format_options(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("info", parents=[common], formatter_class=fmt, help="where the catalog is and what it holds",
                       description="The catalog's location, schema version and row counts.",
                       epilog="examples:\n"
                              "  cosmoscope info\n"
                              "  cosmoscope --catalog sqlite:///data/catalog.sqlite info")
    p.set_defaults(func=cmd_info)


def cmd_search(args) -> int:
    import polars as pl

    from cosmoscope import schema as S
    from cosmoscope.cli import open_from_args
    from cosmoscope.errors import UnknownNameError

    with open_from_args(args, readonly=True) as cat:
        if args.count:
            n = cat.count(**search_filters_of(args))
            print(n)
            note_unmatched(cat, args, found_nothing=n == 0)
            return 0
        names = S.OBSERVATIONS.schema.names
        columns = args.columns or (TABLE_COLUMNS if args.format == "table" else names)
        for c in [*columns, args.sort]:
            if c not in names:
                raise UnknownNameError("column", c, names)
        limit = args.limit if args.limit is not None else (50 if args.format == "table" else None)
        # the store sorts and stops after the limit (an index serves the default order, by time)
        lf = cat.search(**search_filters_of(args), sort=args.sort, descending=args.descending)
        df = (lf.head(limit) if limit is not None else lf).select(columns).collect()
        title = None
        if df.height == 0 and (args.name or args.target):
            close = cat.closest_targets(args.name or args.target)
            if close:
                print(f"No observations of {args.name or args.target!r}; targets with similar names: "
                      f"{', '.join(close)}", file=sys.stderr)
        if args.format == "table":
            total = cat.count(**search_filters_of(args)) if limit is not None and df.height == limit else df.height
            title = f"{total:,} matching observation{'s' if total != 1 else ''}" + (
                f" (showing {df.height}; use --limit to see more)" if total > df.height else "")
            if df.height:
                df = df.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S"))
        write_frame(df, args.format, args.output, title=title)
        note_unmatched(cat, args, found_nothing=df.height == 0)
    return 0


def cmd_summary(args) -> int:
    from cosmoscope.cli import open_from_args

    with open_from_args(args, readonly=True) as cat:
        df = cat.mission_summary(args.mission)
        note_unmatched(cat, args, found_nothing=df.height == 0)
        if args.format == "table":
            if df.height == 0:
                print("The catalog is empty." if args.mission is None else "No observations of those missions.")
                return 0
            df = summary_for_terminal(df)
        write_frame(df, args.format, args.output)
    return 0


def summary_for_terminal(df):
    """A mission summary narrow enough for a terminal: sizes in words, statuses in one column."""
    import polars as pl

    from cosmoscope import schema as S
    from cosmoscope.catalog import _human_bytes

    statuses = [s.value for s in S.ProcessingStatus]
    status_text = pl.concat_str(
        [pl.when(pl.col(f"n_{s}") > 0).then(pl.format(f"{s} {{}}", pl.col(f"n_{s}"))) for s in statuses],
        separator=", ", ignore_nulls=True)
    return df.select(
        pl.col("mission_id").alias("mission"),
        pl.col("n_datasets").alias("datasets"),
        pl.col("total_bytes").map_elements(_human_bytes, return_dtype=pl.String).alias("size"),
        pl.col("first_observation").dt.strftime("%Y-%m-%d %H:%M").alias("first"),
        pl.col("last_observation").dt.strftime("%Y-%m-%d %H:%M").alias("last"),
        pl.format("{} / {}", pl.col("mean_quality").round(2), pl.col("min_quality").round(2)).alias("quality mean/min"),
        pl.col("n_calibrated").alias("calibrated"),
        pl.col("n_extraction_errors").alias("unreadable"),
        status_text.alias("status"),
    )


def cmd_related(args) -> int:
    from cosmoscope.cli import open_from_args

    with open_from_args(args, readonly=True) as cat:
        dataset_id = cat.resolve(args.dataset_id)
        df = cat.related(dataset_id, direction=args.direction, depth=args.depth)
        if args.format == "table":
            df = df.select("direction", "depth", "dataset_id", "relationship_type", "mission_id", "processing_status",
                           "data_quality_score", "file_path")
            if df.height == 0:
                print(f"{dataset_id} has no recorded parents or children.")
                return 0
        write_frame(df, args.format, args.output)
    return 0


def cmd_show(args) -> int:
    import json

    from cosmoscope.cli import open_from_args

    with open_from_args(args, readonly=True) as cat:
        row = cat.get(cat.resolve(args.dataset_id))
    if args.format == "json":
        print(json.dumps(row, default=str, indent=2))
        return 0
    sources = json.loads(row.get("field_sources") or "{}")
    width = max(len(k) for k in row)
    for key, value in row.items():
        src = f"   <- {sources[key]}" if key in sources else ""
        print(f"{key:<{width}}  {'' if value is None else value}{src}")
    return 0


def cmd_history(args) -> int:
    from cosmoscope.cli import open_from_args

    with open_from_args(args, readonly=True) as cat:
        dataset_id = cat.resolve(args.dataset_id)
        df = cat.history(dataset_id)
        if df.height == 0:
            print(f"No recorded events for {dataset_id}.")
            return 0
        if args.format == "table":
            df = df.select("ts", "actor", "action", "field", "from_value", "to_value", "run_id", "details")
        write_frame(df, args.format, args.output)
    return 0


def cmd_sql(args) -> int:
    from cosmoscope.cli import open_from_args
    from cosmoscope.errors import InvalidArgumentError

    with open_from_args(args, readonly=True) as cat:
        try:
            df = cat.sql(args.query).collect()
        except Exception as exc:  # polars' SQL errors name the problem; keep their words
            if type(exc).__module__.startswith("polars"):
                raise InvalidArgumentError(f"the SQL query failed: {exc}") from None
            raise
        write_frame(df, args.format, args.output)
    return 0


def cmd_info(args) -> int:
    from cosmoscope.cli import open_from_args

    with open_from_args(args, readonly=True) as cat:
        meta = cat.meta()
        print(f"catalog:         {cat.url}")
        print(f"schema version:  {meta.get('schema_version')}")
        print(f"created:         {meta.get('created_at')} ({meta.get('created_with')})")
        print(f"{'observations:':<17}{cat.count():,} rows")
        for name in ("relationships", "events"):
            print(f"{name + ':':<17}{cat.count(cat.frame(name)):,} rows")
        route = cat.route()
        print(f"{'summaries from:':<17}{'the rollups' if route.rollups else route}")
    return 0
