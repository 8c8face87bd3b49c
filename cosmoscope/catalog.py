"""The Catalog: lazy frames over the store, search helpers, summaries, lineage and audited writes.

Everything above the store (CLI, widgets, dashboard, pipelines, HTTP API) goes through this
class; nothing here knows which backend holds the rows.

Examples
--------
>>> import cosmoscope
>>> cat = cosmoscope.open_catalog(":memory:")
>>> cat.add_records([{"file_path": "/data/x/obs1.fits", "mission_id": "XMM",
...                   "data_quality_score": 0.9}])
1
>>> cat.search(mission="XMM", min_quality=0.8).select("mission_id").collect().height
1
"""

from __future__ import annotations

import datetime
import getpass
import json
import logging
import os
import socket
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from cosmoscope import records as R
from cosmoscope import schema as S
from cosmoscope.errors import CatalogNotFoundError, DatasetNotFoundError, InvalidArgumentError, SchemaError
from cosmoscope.times import now, to_utc

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.store.base import Store

log = logging.getLogger(__name__)

#: Rows per write transaction for bulk writes through the catalog.
BATCH_ROWS = 20_000
#: The ``rollups`` fact of a catalog whose rollups may be read (see :meth:`Catalog.check_rollups`).
ROLLUPS_OK = "ok"
_THIRTY_DAYS = datetime.timedelta(days=30)


def default_catalog_url() -> str:
    """``$COSMOSCOPE_CATALOG``, else ``$XDG_DATA_HOME/cosmoscope/catalog.sqlite``
    (``~/.local/share/cosmoscope/catalog.sqlite`` when XDG_DATA_HOME is unset)."""
    env = os.environ.get("COSMOSCOPE_CATALOG")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return "sqlite://" + os.path.join(os.path.abspath(base), "cosmoscope", "catalog.sqlite")


def default_actor() -> str:
    """Who writes: ``$COSMOSCOPE_ACTOR``, else user@host."""
    env = os.environ.get("COSMOSCOPE_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def open_catalog(url: str | os.PathLike | None = None, *, readonly: bool = False, create: bool = True,
                 actor: str | None = None) -> Catalog:
    """Open the catalog at ``url``, creating it if it does not exist yet (unless told not to).

    Parameters
    ----------
    url
        ``sqlite:///abs/path.sqlite``, a file path, ``:memory:``, or
        ``vast://ENDPOINT/BUCKET/SCHEMA``. Default: :func:`default_catalog_url`.
    readonly
        Refuse every write; never creates or migrates anything.
    create
        Make a new, empty catalog when there is none at ``url``. With ``create=False`` a missing
        catalog (a mistyped path) raises :class:`~cosmoscope.errors.CatalogNotFoundError`
        instead; ``Catalog.created`` tells whether this call made it.
    actor
        Name recorded in the audit trail for writes (default ``user@host``).
    """
    from cosmoscope.store.base import open_store

    url = os.fspath(url) if url is not None else default_catalog_url()
    store = open_store(url, readonly=readonly, create=create)
    try:
        return Catalog(store, actor=actor, readonly=readonly, create=create)
    except BaseException:
        store.close()
        raise


class Catalog:
    """A catalog of observation files held in a :class:`~cosmoscope.store.base.Store`."""

    def __init__(self, store: Store, *, actor: str | None = None, readonly: bool = False, create: bool = True):
        self.store = store
        self.actor = actor or default_actor()
        self.readonly = readonly
        #: Whether opening this catalog created it (it did not exist before).
        self.created = False
        self._rollups_state = None  # (when read, why the rollups cannot be read or None)
        self._ensure_schema(create=create and not readonly)

    # -- opening ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.store.url

    def _ensure_schema(self, create: bool) -> None:
        tables = self.store.tables()
        if not tables:
            if not create:
                raise CatalogNotFoundError.at(self.url)
            with self.store.transaction():
                for spec in S.TABLES.values():
                    self.store.create_table(spec.name, spec.schema, spec.key, spec.indexes)
                self._set_meta(schema_version=str(S.SCHEMA_VERSION), created_at=now().isoformat(),
                               created_with=_version(), rollups=ROLLUPS_OK)
            self.created = True
            log.debug("created a new catalog at %s", self.url)
            return
        if S.META.name not in tables:
            raise SchemaError(f"{self.url} is not a cosmoscope catalog (it has no {S.META.name} table); "
                              "it was left untouched")
        version = self.schema_version
        if version > S.SCHEMA_VERSION:
            raise SchemaError(
                f"the catalog at {self.url} was written by a newer cosmoscope (schema version {version}; "
                f"this release reads up to {S.SCHEMA_VERSION}). Upgrade cosmoscope to use it; the "
                "catalog was not modified.")
        plan = S.plan_migration(tables)
        if plan.empty and version == S.SCHEMA_VERSION:
            return
        if self.readonly:
            if plan.empty:  # only indexes changed: every read works, some more slowly meanwhile
                log.info("%s has the indexes of schema version %s; open it writable once to bring them to %s",
                         self.url, version, S.SCHEMA_VERSION)
                return
            if set(plan.new_tables) <= set(S.DERIVED_TABLES) and not any(plan.new_columns.values()):
                # Only derived tables are missing: every read falls back to the rows meanwhile.
                log.info("%s has no rollups of this release yet (schema version %s); reads count the rows until "
                         "it is opened writable once", self.url, version)
                return
            raise SchemaError(f"the catalog at {self.url} uses schema version {version} and needs "
                              f"upgrading to {S.SCHEMA_VERSION}; open it once without readonly")
        log.info("migrating %s from schema version %s to %s", self.url, version, S.SCHEMA_VERSION)
        with self.store.transaction():
            for name in plan.new_tables:
                spec = S.TABLES[name]
                self.store.create_table(spec.name, spec.schema, spec.key, spec.indexes)
            for name, fields in plan.new_columns.items():
                if fields:
                    self.store.add_columns(name, fields)
            create_indexes = getattr(self.store, "create_indexes", None)  # optional: VAST has none
            if create_indexes is not None:
                for spec in S.TABLES.values():
                    create_indexes(spec.name, spec.indexes)
            if "sky_index" in {f.name for f in plan.new_columns.get("observations", ())}:
                self._backfill_sky_index()
            if set(S.DERIVED_TABLES) & set(plan.new_tables):
                self._build_rollups(progress=True)
            self._set_meta(schema_version=str(S.SCHEMA_VERSION))
            self._event("migrate", from_value=str(version), to_value=str(S.SCHEMA_VERSION))

    def _backfill_sky_index(self) -> None:
        """Schema 5: index the positions of rows written before sky searches existed (their
        footprints come later, from ``validate --fix``)."""
        from cosmoscope.predicate import Predicate, Test
        from cosmoscope.sky.index import sky_index

        columns = ["dataset_id", "ra", "dec"]
        pred = Predicate.of(Test("ra", "is_not_null"), Test("dec", "is_not_null"))
        rows = pa.Table.from_batches(list(self.store.scan("observations", columns, pred)),
                                     schema=pa.schema([S.OBSERVATIONS.schema.field(c) for c in columns]))
        for chunk in R.chunks(rows, BATCH_ROWS):
            index = sky_index(chunk.column("ra").to_numpy(), chunk.column("dec").to_numpy(), [0.0] * chunk.num_rows)
            data = pa.table({"dataset_id": chunk.column("dataset_id"),
                             "sky_index": pa.array(index, pa.int64(), mask=index < 0)})
            self.store.update("observations", data, S.OBSERVATIONS.key)

    def _build_rollups(self, *, progress: bool) -> dict[str, int]:
        """Count every rollup again from the rows, in one transaction (see :mod:`cosmoscope.store.rollup`)."""
        from cosmoscope.store import rollup

        total = self._count_rows() if progress else None

        def build(ops):
            groups = rollup.rebuild(ops, progress=progress, total=total)
            ops.upsert(S.META.name, pa.table({"key": ["rollups"], "value": [ROLLUPS_OK]}), S.META.key)
            return groups

        with self.store.transaction():
            return self.store.atomically(build, what="build the rollups")

    def _count_rows(self) -> int:
        """Observations, counted in the store from the rows themselves."""
        from cosmoscope.store.base import Agg, aggregate

        return int(aggregate(self.store, S.OBSERVATIONS.name, [], [Agg("n", "count")]).column("n")[0].as_py() or 0)

    def _set_meta(self, **values: str) -> None:
        data = pa.table({"key": list(values), "value": list(values.values())})
        self.store.upsert(S.META.name, data, S.META.key)
        self._rollups_state = None

    def meta(self) -> dict[str, str]:
        """Facts about the catalog itself: schema version, when it was created, by what."""
        return {r["key"]: r["value"] for b in self.store.scan(S.META.name) for r in b.to_pylist()}

    @property
    def schema_version(self) -> int:
        try:
            return int(self.meta().get("schema_version", 0))
        except ValueError as exc:
            raise SchemaError(f"{self.url} records an unreadable schema version: {exc}") from None

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    def _repr_html_(self) -> str:
        from html import escape

        summary = self.mission_summary()
        rows = "".join(
            f"<tr><td>{escape(str(r['mission_id']))}</td><td>{r['n_datasets']:,}</td>"
            f"<td>{_human_bytes(r['total_bytes'])}</td><td>{r['first_observation'] or ''}</td>"
            f"<td>{r['last_observation'] or ''}</td></tr>" for r in summary.iter_rows(named=True))
        return (f"<b>cosmoscope catalog</b> <code>{escape(self.url)}</code><table><tr><th>mission</th>"
                f"<th>datasets</th><th>size</th><th>first</th><th>last</th></tr>{rows}</table>")

    # -- frames ----------------------------------------------------------------------

    def frame(self, table: str) -> pl.LazyFrame:
        """A lazy frame over any catalog table (``observations``, ``relationships``, ``events``)."""
        from cosmoscope.store.lazy import scan_table

        return scan_table(self.store, S.table_spec(table).name)

    def observations(self) -> pl.LazyFrame:
        """Every observation row, lazily; filters, selections and limits reach the store."""
        return self.frame("observations")

    def relationships(self) -> pl.LazyFrame:
        """Lineage edges (parent -> child), lazily."""
        return self.frame("dataset_relationships")

    def events(self) -> pl.LazyFrame:
        """The audit trail, lazily."""
        return self.frame("events")

    def explain(self, lf: pl.LazyFrame) -> str:
        """What a lazy query pushes down to the store, and what polars does after."""
        from cosmoscope.store.lazy import explain

        return explain(lf)

    # -- search ----------------------------------------------------------------------

    def search(self, mission=None, instrument=None, target=None, start=None, end=None,
               min_quality: float | None = None, status=None, calibration=None, *,
               satellite=None, product_type=None, file_format=None, calib_level: int | None = None,
               name: str | None = None, near=None, radius=None, box=None, polygon=None,
               footprints: bool = True, sort: str | None = None, descending: bool = False) -> pl.LazyFrame:
        """Observations matching every given filter, as a lazy frame.

        >>> cat.search(near="10.68 41.27", radius="30arcmin")  # doctest: +SKIP
        >>> cat.search(near="M31", radius=1.0, mission="XMM")  # doctest: +SKIP
        >>> cat.search(box=(350, 10, -5, 5))  # RA 350° through 0° to 10°  # doctest: +SKIP

        Parameters
        ----------
        mission, instrument, satellite, status, calibration, product_type, file_format
            A value or a list of values (any of them matches). ``status`` is the processing
            status, ``calibration`` the calibration status.
        target
            Exact target name, spaces and case included; ``"NGC*"`` matches names starting with
            NGC, ``"*253*"`` names containing 253.
        start, end
            Observations that start at or after ``start`` and before ``end``: datetimes (naive
            ones are read as UTC, aware ones converted), dates (midnight UTC), ISO 8601 text or
            astropy Times. On the raw frames polars' own rule applies instead: a naive datetime
            compared with a UTC column is refused.
        min_quality
            Lowest ``data_quality_score`` (0-1) to keep.
        calib_level
            Lowest ObsCore calibration level (0-4) to keep.
        name
            Target name, forgiving: case, spaces and punctuation are ignored, so "NGC253",
            "ngc 253" and "NGC-253" all find "NGC 253". :meth:`closest_targets` suggests names.
        near, radius
            A cone: observations whose position lies within ``radius`` of ``near``, or whose
            footprint overlaps it. ``near`` is a SkyCoord, ``(ra, dec)`` in degrees,
            ``"10.68 41.27"``, ``"00h42m44s +41d16m"`` or a target name (its mean position in
            this catalog, else the name resolver's when online); ``radius`` is degrees, an
            astropy angle, or text such as ``"30arcmin"`` (more than 0, at most 180°).
        box
            ``(ra_min, ra_max, dec_min, dec_max)`` in degrees: RA from ``ra_min`` eastwards to
            ``ra_max`` (``(350, 10, ...)`` crosses 0°), a :class:`~cosmoscope.sky.Box`.
        polygon
            Vertices ``[(ra, dec), ...]`` joined by great circles, or a :class:`~cosmoscope.sky.Polygon`.
        footprints
            Whether footprints (``s_region``, ``s_fov``) overlapping the region count (default),
            or only the observations' positions.
        sort, descending
            Rows in the order of this column (missing values last, ties by ``dataset_id``),
            put in order by the store, so ``search(sort="observation_timestamp",
            descending=True).head(20)`` reads about 20 rows where an index serves the order.

        The filter travels inside the frame's source, so ``.head(n)`` hands the store the limit
        ``n`` (``cat.explain`` shows it); the rows are those of ``observations().filter(...)``.
        """
        from cosmoscope.store.lazy import scan_table

        expr = self.search_filter(mission=mission, instrument=instrument, target=target, start=start, end=end,
                                  min_quality=min_quality, status=status, calibration=calibration,
                                  satellite=satellite, product_type=product_type, file_format=file_format,
                                  calib_level=calib_level, name=name, near=near, radius=radius, box=box,
                                  polygon=polygon, footprints=footprints)
        if sort is not None:
            S.check_columns(S.OBSERVATIONS, [sort])
        order = (sort, bool(descending)) if sort is not None else None
        return scan_table(self.store, S.OBSERVATIONS.name, where=expr, order=order)

    def search_filter(self, *, near=None, radius=None, box=None, polygon=None, footprints: bool = True,
                      **filters) -> pl.Expr | None:
        """The polars expression :meth:`search` filters with (None: no filter), for callers that
        page or count by themselves; positions and names in ``near`` are resolved here."""
        from cosmoscope.search import search_filter
        from cosmoscope.sky.positions import shape_of

        return search_filter(**filters, sky=shape_of(self, near, radius, box, polygon, footprints))

    def search_page(self, n: int, *, offset: int = 0, after: str | None = None,
                    columns: Sequence[str] | None = None, **filters) -> pl.DataFrame:
        """``n`` rows of :meth:`search` in ``dataset_id`` order, skipping ``offset`` of them,
        those after the id ``after`` (a cursor: the last id of the previous page).

        The same rows as ``search(**filters, sort="dataset_id").filter(pl.col("dataset_id") >
        after).slice(offset, n)``, read by one ordered, limited store query without a lazy
        frame's planning when the store can evaluate every filter (an API's page, hundreds
        of times a second).

        >>> cat.search_page(100, mission="LYRA", min_quality=0.5)  # doctest: +SKIP
        """
        import polars as pl

        from cosmoscope.predicate import split_predicate
        from cosmoscope.store.lazy import polars_schema, scan_table

        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or isinstance(offset, bool) \
                or not isinstance(offset, int) or offset < 0:
            raise InvalidArgumentError(f"search_page() takes whole numbers n >= 0 and offset >= 0, got n={n!r}, "
                                       f"offset={offset!r}")
        spec = S.OBSERVATIONS
        cols = list(dict.fromkeys(columns)) if columns else list(spec.schema.names)
        S.check_columns(spec, cols)
        expr = self.search_filter(**filters)
        if after is not None:
            expr = pl.col("dataset_id") > str(after) if expr is None else expr & (pl.col("dataset_id") > str(after))
        pushed, residual = split_predicate(expr, polars_schema(self.store.tables()[spec.name]))
        if residual is not None:  # polars must filter: a lazy frame it is
            lf = scan_table(self.store, spec.name, where=expr, order=("dataset_id", False))
            return lf.select(cols).slice(offset, n).collect()
        needed = cols + [c for c in (expr.meta.root_names() if expr is not None else ()) if c not in cols]
        schema = pa.schema([spec.schema.field(c) for c in needed])
        batches = list(self.store.scan(spec.name, needed, pushed, offset + n, order_by=[("dataset_id", False)])) \
            if n else []
        df = pl.from_arrow(pa.Table.from_batches(batches, schema=schema))
        if expr is not None:  # as the lazy frames do: polars' own filter has the last word
            df = df.filter(expr)
        return df.slice(offset, n).select(cols)

    def position_of(self, near) -> tuple[float, float]:
        """ICRS (ra, dec) in degrees of a position or a target name (see :meth:`search`).

        A name is looked up among this catalog's observations first (forgiving match: the mean
        position of its observations), then through astropy's name resolver when online.
        """
        from cosmoscope.sky.positions import position_of

        return position_of(self, near)

    def closest_targets(self, name: str, n: int = 5) -> list[str]:
        """Target names of this catalog most like ``name`` (for "did you mean" answers)."""
        from cosmoscope.sky.positions import closest_names

        names = self.observations().select("target_object").unique().collect()["target_object"].to_list()
        return closest_names(names, name, n)

    def coverage(self, *, max_depth: int = 10, footprints: bool = True, **filters):
        """A MOC (:class:`mocpy.MOC`) of the sky this catalog (or a search of it) observed.

        ``filters`` are those of :meth:`search` (``mission=``, ``start=``, ``near=`` ...). Each
        footprint (``s_region`` polygon, else the ``s_fov`` circle) adds its cells at
        ``max_depth`` (10: cells of 3.4 arcmin), each position without one its cell.

        >>> moc = cat.coverage(mission="XMM")  # doctest: +SKIP
        >>> moc.save("xmm.fits", format="fits")  # doctest: +SKIP
        """
        from cosmoscope.sky.coverage import coverage_of

        return coverage_of(self.search(**filters), max_depth=max_depth, footprints=footprints)

    def sky_density(self, depth: int = 6, **filters) -> pl.DataFrame:
        """Observations per HEALPix cell at ``depth`` (nested; 6: cells of 0.9°), by position:
        ``cell``, ``ra``, ``dec`` (cell centre) and ``n``, for all-sky maps. ``filters`` are
        those of :meth:`search`."""
        from cosmoscope.sky.coverage import density

        return density(self.search(**filters), depth)

    def get(self, dataset_id: str) -> dict[str, Any]:
        """One observation as a dict; raises :class:`DatasetNotFoundError` if it is not there."""
        df = self.lookup([dataset_id])
        if df.height == 0:
            raise DatasetNotFoundError(f"no dataset {dataset_id!r} in {self.url}")
        return df.row(0, named=True)

    def resolve(self, ref: str | os.PathLike) -> str:
        """The id of the dataset ``ref`` names: an id, a unique start of one (``ds-1a2b3c``), or
        the path of a cataloged file."""
        from cosmoscope.lookup import resolve_dataset

        return resolve_dataset(self, os.fspath(ref))

    def lookup(self, dataset_ids: Sequence[str], columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The rows of many datasets at once (missing ids are simply absent).

        One scan of the store by key, without a lazy frame's planning: the point lookups an
        HTTP API serves hundreds of times a second cost a third as much this way.
        """
        import polars as pl

        from cosmoscope.predicate import Predicate, Test

        spec = S.OBSERVATIONS
        cols = list(columns) if columns else list(spec.schema.names)
        S.check_columns(spec, cols)
        ids = tuple(dict.fromkeys(dataset_ids))
        pred = Predicate.of(Test("dataset_id", "is_in", ids))
        # The limit (ids are keys: at most one row each) makes it one statement on a kept connection.
        batches = list(self.store.scan(spec.name, cols, pred, len(ids))) if ids else []
        schema = pa.schema([spec.schema.field(c) for c in cols])
        return pl.from_arrow(pa.Table.from_batches(batches, schema=schema))

    def mission_summary(self, mission=None) -> pl.DataFrame:
        """Per mission: datasets, total bytes, time coverage, mean and min quality, how many
        are calibrated, how many failed extraction, and a count per processing status.

        Read from the rollups (a few thousand rows whatever the catalog's size) when they are
        built, counted from the rows otherwise (:meth:`route` says which). ``total_bytes`` is a
        float: exact up to 9 PB, and it never overflows or wraps. ``mean_quality`` is exact to
        2.4e-10 (scores are summed in fixed point so the rollups never drift)."""
        from cosmoscope.summaries import mission_summary

        return mission_summary(self, self.search_filter(mission=mission))

    def count(self, lf: pl.LazyFrame | None = None, /, **filters) -> int:
        """Number of observations matching the search ``filters`` (the keywords of
        :meth:`search`), from the rollups when they answer exactly; or the number of rows of a
        lazy frame ``lf``, counted by polars.

        >>> cat.count(mission="COSMOS-7", status="raw", start="2026-11-01")  # doctest: +SKIP
        """
        import polars as pl

        if lf is not None:
            if filters:
                raise InvalidArgumentError("count() takes a lazy frame or search filters, not both")
            return lf.select(pl.len()).collect().item()
        from cosmoscope.summaries import count

        return count(self, self.search_filter(**filters))

    def summarize(self, by: str | Sequence[str] = "mission_id", **filters) -> pl.DataFrame:
        """Per group of ``by`` (rollup dimensions: ``mission_id``, ``satellite_name``,
        ``instrument_type``, ``day`` (UTC date), ``processing_status``, ``calibration_status``,
        ``extraction_status``, ``file_status``, ``validation_status``, ``calib_level``,
        ``dataproduct_type``) of the observations matching the search ``filters``: ``n``,
        ``total_bytes``, ``first_observation``, ``last_start``, ``last_observation``,
        ``n_quality``, ``mean_quality``, ``min_quality`` and the quality histogram
        ``q00``-``q20`` (bin k counts scores from k/20; ``q20`` is 1.0).

        >>> cat.summarize(["day", "mission_id"], start="2026-11-01", end="2026-12-01")  # doctest: +SKIP
        """
        from cosmoscope.summaries import grouped

        return grouped(self, self.search_filter(**filters), [by] if isinstance(by, str) else list(by))

    def facet_counts(self, columns: str | Sequence[str], **filters) -> pl.DataFrame:
        """How many observations matching the search ``filters`` have each value of ``columns``
        (rollup dimensions, see :meth:`summarize`): the columns and ``n``, most first.

        >>> cat.facet_counts("instrument_type", mission="COSMOS-7")  # doctest: +SKIP
        >>> cat.facet_counts(["file_status", "validation_status"])  # doctest: +SKIP
        """
        from cosmoscope.summaries import facet_counts

        return facet_counts(self, columns, self.search_filter(**filters))

    def route(self, **filters):
        """Where counts and summaries with these search ``filters`` come from: the rollups
        (and with which filter on them) or the rows (and why); a
        :class:`~cosmoscope.routing.Route`.

        >>> print(cat.route(mission="LYRA", target="M31"))  # doctest: +SKIP
        rows: target_object is not a rollup dimension
        """
        from cosmoscope.summaries import route_of

        return route_of(self, self.search_filter(**filters))

    def check_rollups(self, mission=None, *, fix: bool = False, progress: bool = False):
        """Compare the rollups with a recount of the rows (of ``mission``, or all); returns a
        :class:`~cosmoscope.store.rollup.RollupCheck`.

        A disagreement marks the rollups unusable (reads count the rows instead) until they are
        rebuilt; with ``fix``, they are rebuilt at once from the rows.
        """
        from cosmoscope.store import rollup
        from cosmoscope.summaries import rollups_state

        missions = None if mission is None else ([mission] if isinstance(mission, str) else list(mission))
        if not rollup.maintained(self.store.tables()):  # a catalog from before schema 7, opened read-only
            return rollup.RollupCheck(mismatches=[{"rollup": "(all)", "group": "(all)", "measure": "tables",
                                                   "stored": None, "recount": "built when opened writable"}])
        result = self.store.atomically(
            lambda ops: rollup.check(ops, missions=missions, progress=progress,
                                     total=self._count_rows() if progress else None),
            write=False, what="check the rollups")
        state = rollups_state(self)
        if not result.ok and not self.readonly:
            log.warning("%s", result)
            if fix:
                self.rebuild_rollups(progress=progress)
            else:
                self._set_meta(rollups="stale")
        elif result.ok and state is not None and missions is None and not self.readonly:
            self._set_meta(rollups=ROLLUPS_OK)  # a full recount agrees: they may be read again
        return result

    def rebuild_rollups(self, *, progress: bool = False) -> dict[str, int]:
        """Count the rollups again from every row, in one transaction; returns the groups of
        each rollup table."""
        groups = self._build_rollups(progress=progress)
        self._rollups_state = None
        self.log_event("rebuild_rollups", details=groups)
        return groups

    def sql(self, query: str) -> pl.LazyFrame:
        """Run polars SQL over the catalog's tables (``observations``, ``relationships``,
        ``events``, ``obscore``); filters still reach the store. Only queries are accepted:
        anything else (``DELETE``, ``DROP``, ``UPDATE`` ...) raises :class:`InvalidArgumentError`.

        >>> cat.sql("SELECT mission_id, count(*) AS n FROM observations GROUP BY mission_id")  # doctest: +SKIP
        """
        import polars as pl

        from cosmoscope.sql import check_query

        check_query(query)
        ctx = pl.SQLContext({"observations": self.observations(), "relationships": self.relationships(),
                             "dataset_relationships": self.relationships(), "events": self.events(),
                             "obscore": self.obscore()}, eager=False)
        return ctx.execute(query)

    def obscore(self) -> pl.LazyFrame:
        """The observations with IVOA ObsCore column names and units (see :mod:`cosmoscope.obscore`)."""
        from cosmoscope.obscore import obscore_frame

        return obscore_frame(self.observations())

    # -- ingest ------------------------------------------------------------------------

    def ingest(self, paths, **options):
        """Catalog every data file under ``paths``; returns an :class:`~cosmoscope.ingest.IngestSummary`.

        Options are those of :func:`cosmoscope.ingest.bulk.ingest`: ``profile``, ``workers``,
        ``dry_run``, ``progress``, ``force``, ``follow_symlinks``, ``shard``, ``entries`` (files
        found another way, e.g. from the VAST Catalog) and ``executor`` (a
        ``dask.distributed.Client``: workers of that cluster read the files).

        >>> summary = cat.ingest("/data/cosmos7", workers=2)  # doctest: +SKIP
        >>> print(summary)  # doctest: +SKIP
        """
        from cosmoscope.ingest.bulk import ingest

        return ingest(self, paths, **options)

    # -- monitoring ----------------------------------------------------------------------

    def watch(self, paths, **options):
        """Catalog files under ``paths`` as they arrive, change and go, from background threads.

        Returns the running :class:`~cosmoscope.ingest.watch.Watcher`: ``.stop()`` it, or use it
        as a context manager. Options are those of the Watcher (``profile``, ``poll``, ``settle``,
        ``workers``, ...).

        >>> with cat.watch("/data/incoming") as watcher:  # doctest: +SKIP
        ...     watcher.wait_idle()   # everything already there is cataloged
        """
        from cosmoscope.ingest.watch import Watcher

        return Watcher(self, paths, **options).start()

    def watchers(self) -> pl.DataFrame:
        """Every watcher that has used this catalog: its heartbeat, backlog and last file."""
        from cosmoscope.ingest.heartbeat import watcher_status

        return watcher_status(self)

    def validate(self, **options):
        """Check rows against their files and for impossible values; returns a
        :class:`~cosmoscope.ingest.validate.ValidationReport`.

        Options are those of :func:`cosmoscope.ingest.validate.validate`: ``mission``, ``since``,
        ``fix``, ``checksums``, ``paths``, ``workers``, ``progress`` and ``executor`` (a
        ``dask.distributed.Client``).

        >>> report = cat.validate(mission="COSMOS-7", fix=True)  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
        """
        from cosmoscope.ingest.validate import validate

        return validate(self, **options)

    # -- lineage & audit ---------------------------------------------------------------

    def related(self, dataset_id: str, direction: str = "both", depth: int | None = None) -> pl.DataFrame:
        """Datasets linked to ``dataset_id`` through lineage, transitively.

        ``direction`` is ``"upstream"`` (parents, their parents, ...), ``"downstream"``
        (children, ...) or ``"both"``; ``depth`` bounds the number of hops (None: all).
        """
        from cosmoscope.lineage import walk

        return walk(self, dataset_id, direction=direction, depth=depth)

    def history(self, dataset_id: str, *, upstream: bool = False) -> pl.DataFrame:
        """Every audit event about a dataset, oldest first.

        With ``upstream=True``, also the events of every dataset it was made from and of the
        processing runs that made it: the trail from the raw files to this product (see
        :func:`cosmoscope.pipeline.trail`).
        """
        import polars as pl

        if upstream:
            from cosmoscope.pipeline.audit import trail

            return trail(self, dataset_id)
        return self.events().filter(pl.col("dataset_id") == dataset_id).collect().sort("ts", "event_id")

    # -- pipelines ---------------------------------------------------------------------

    def available_datasets(self, mission=None, min_quality: float | None = 0.8, window=_THIRTY_DAYS,
                           target: str | None = None, *, until=None) -> pl.LazyFrame:
        """Datasets ready for a pipeline: good enough, recent enough, present, not being
        processed (see :func:`cosmoscope.pipeline.available_datasets`)."""
        from cosmoscope.pipeline.preflight import available_datasets

        return available_datasets(self, mission, min_quality=min_quality, window=window, target=target, until=until)

    def preflight(self, datasets_or_query, **options):
        """Check datasets before processing them; returns a
        :class:`~cosmoscope.pipeline.PreflightReport` (options: ``min_quality``,
        ``require_calibrated``, ``output_dir``, ``output_factor``)."""
        from cosmoscope.pipeline.preflight import preflight

        return preflight(self, datasets_or_query, **options)

    def processing_run(self, name: str, inputs=None, params: dict | None = None, **options):
        """Claim ``inputs`` for a processing run; use it as a context manager.

        >>> with cat.processing_run("calibrate", inputs=ids, params={"v": 2}) as run:  # doctest: +SKIP
        ...     run.add_output("/out/calibrated.fits", relationship="raw->calibrated")

        Options: ``lease_seconds``, ``wait`` (see :func:`cosmoscope.pipeline.start_run`).
        """
        from cosmoscope.pipeline.runs import start_run

        return start_run(self, name, inputs, params, **options)

    # -- writes ------------------------------------------------------------------------

    def add_records(self, records, *, action: str = "add", run_id: str | None = None,
                    details: dict | None = None, change_action: str = "update") -> int:
        """Insert or update observation rows; returns how many rows were written.

        ``records`` is a dict, a list of dicts, a polars DataFrame or an Arrow table with
        observation columns. ``dataset_id`` defaults to a hash of ``file_path``. New rows get
        ``processing_status='processed'`` when they are calibrated or derived products (ObsCore
        level 2 and up), ``'raw'`` otherwise, unless given; existing rows keep their status and
        ``ingested_at``. The audit trail gets one ``action`` event per new row, and one
        ``change_action`` event (field, from, to) per value that changed in an existing row;
        writing a row again unchanged records nothing. Writes are atomic per batch of
        :data:`BATCH_ROWS` rows.
        """
        return self._add_records(records, action=action, change_action=change_action, run_id=run_id,
                                 details=details)[0]

    def _add_records(self, records, *, action: str, change_action: str, run_id: str | None,
                     details: dict | None) -> tuple[int, int]:
        """:meth:`add_records`, also returning how many change events were recorded."""
        data = R.with_dataset_ids(R.to_table("observations", records))
        R.check_observations(data)
        n = data.num_rows
        if n == 0:
            return 0, 0
        stamp = now()
        preserve = ["ingested_at"]
        data = _set(data, "ingested_at", R.constant(stamp, n, S.UTC_TS))
        data = _set(data, "updated_at", R.constant(stamp, n, S.UTC_TS))
        if "processing_status" not in data.column_names:
            data = _set(data, "processing_status", _initial_status(data))
            preserve.append("processing_status")
        if "file_status" not in data.column_names and "file_path" in data.column_names:
            data = _set(data, "file_status", R.constant(S.FileStatus.PRESENT.value, n, pa.string()))
        audited = [c for c in data.column_names if c not in S.UNAUDITED_FIELDS and c not in preserve]
        written = changes = 0
        for chunk in R.chunks(data, BATCH_ROWS):
            ids = chunk.column("dataset_id").to_pylist()
            with self.store.transaction():
                before = self._current(ids, audited)
                chunk = self._with_sky(chunk, set(before))
                written += self.store.upsert("observations", chunk, S.OBSERVATIONS.key, preserve=preserve)
                paths = chunk.column("file_path").to_pylist() if "file_path" in chunk.column_names else [None] * len(ids)
                events = [dict(action=action, dataset_id=i, run_id=run_id, to_value=p, details=details)
                          for i, p in zip(ids, paths) if i not in before]
                changed = _changes(chunk, audited, before, change_action, run_id, details)
                changes += len(changed)
                self._events(events + changed, ts=stamp)
        return written, changes

    def _with_sky(self, data: pa.Table, existing: set[str]) -> pa.Table:
        """``data`` with its derived sky columns (``sky_index``, and ``s_fov``, ``ra``, ``dec``
        from a footprint) computed; sky columns a partial write leaves out are read from the
        stored rows, so the index always follows the row's own values."""
        from cosmoscope.sky.search import SKY_INPUTS, derive

        names = data.column_names
        if not any(c in names for c in (*SKY_INPUTS, "sky_index")):
            return data
        absent = [c for c in SKY_INPUTS if c not in names]
        if absent:
            ids = data.column("dataset_id").to_pylist()
            stored = self._current([i for i in ids if i in existing], absent) if existing else {}
            for c in absent:
                field = S.OBSERVATIONS.schema.field(c)
                data = data.append_column(field, pa.array([stored.get(i, {}).get(c) for i in ids], field.type))
        return S.conform("observations", derive(data), fill_missing=False)

    def _existing_ids(self, ids: Sequence[str]) -> set[str]:
        from cosmoscope.predicate import Predicate, Test

        pred = Predicate.of(Test("dataset_id", "is_in", tuple(ids)))
        return {v for b in self.store.scan("observations", ["dataset_id"], pred) for v in
                b.column(0).to_pylist()}

    def update(self, dataset_ids: str | Iterable[str], *, reason: str | None = None,
               run_id: str | None = None, **fields) -> int:
        """Set fields on existing datasets, with an audit event per changed value.

        >>> cat.update("ds-...", processing_status="processed", reason="pipeline v2")  # doctest: +SKIP
        """
        ids = [dataset_ids] if isinstance(dataset_ids, str) else list(dict.fromkeys(dataset_ids))
        if not fields:
            raise InvalidArgumentError("update() needs at least one field to set, e.g. processing_status='processed'")
        if "dataset_id" in fields:
            raise InvalidArgumentError("dataset_id is the key and cannot be updated")
        S.check_columns(S.OBSERVATIONS, fields)
        values = R.to_table("observations", [fields])
        R.check_observations(values)
        stamp = now()
        with self.store.transaction():
            before = self._current(ids, list(fields))
            missing = [i for i in ids if i not in before]
            if missing:
                raise DatasetNotFoundError(
                    f"no dataset {', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''} "
                    f"in {self.url}; nothing was updated")
            new = {k: values.column(k)[0].as_py() for k in fields}
            changed = [i for i in ids if any(before[i][k] != new[k] for k in fields)]
            if not changed:
                return 0
            rows = [{"dataset_id": i, **new, "updated_at": stamp} for i in changed]
            table = R.to_table("observations", rows)
            table = self._with_sky(table, set(changed))
            self.store.update("observations", table, S.OBSERVATIONS.key)
            events = [dict(action="update", dataset_id=i, run_id=run_id, field=k, from_value=_text(before[i][k]),
                           to_value=_text(new[k]), details={"reason": reason} if reason else None)
                      for i in changed for k in fields if before[i][k] != new[k]]
            self._events(events, ts=stamp)
        return len(changed)

    def set_status(self, dataset_ids, status: str, *, reason: str | None = None, run_id: str | None = None) -> int:
        """Set the processing status (raw, queued, processing, processed, failed, archived)."""
        return self.update(dataset_ids, processing_status=status, reason=reason, run_id=run_id)

    def _current(self, ids: Sequence[str], columns: list[str]) -> dict[str, dict]:
        from cosmoscope.predicate import Predicate, Test

        pred = Predicate.of(Test("dataset_id", "is_in", tuple(ids)))
        out = {}
        for b in self.store.scan("observations", ["dataset_id", *columns], pred):
            for row in b.to_pylist():
                out[row.pop("dataset_id")] = row
        return out

    def link(self, parent: str, child: str, relationship_type: str = S.RelationshipType.DERIVED.value, *,
             metadata: dict | None = None, run_id: str | None = None, require_existing: bool = True) -> None:
        """Record that ``child`` was made from ``parent`` (a lineage edge), with an audit event."""
        self.link_many([(parent, child, relationship_type)], metadata=metadata, run_id=run_id,
                       require_existing=require_existing)

    def link_many(self, edges: Iterable[tuple[str, str, str]], *, metadata: dict | None = None,
                  run_id: str | None = None, require_existing: bool = True, actor: str | None = None) -> int:
        """Record many lineage edges ``(parent, child, relationship_type)`` at once; returns how
        many were new. An edge already recorded is left as it is, with no second event.

        ``actor`` is who the events name (default: this catalog's actor): lineage resolved on
        behalf of whoever cataloged the child names them, not whoever happened to resolve it.
        """
        edges = list(dict.fromkeys(edges))
        if not edges:
            return 0
        for p, c, t in edges:
            if not p or not c or not t:
                raise InvalidArgumentError(f"a lineage edge needs a parent, a child and a type; got {(p, c, t)!r}")
            if p == c:
                raise InvalidArgumentError(f"dataset {p!r} cannot be its own parent")
        stamp = now()
        with self.store.transaction():
            if require_existing:
                ids = {i for e in edges for i in e[:2]}
                missing = ids - self._existing_ids(list(ids))
                if missing:
                    raise DatasetNotFoundError(
                        f"cannot link unknown dataset(s) {', '.join(sorted(missing)[:5])}; ingest them first "
                        "or pass require_existing=False")
            known = self._known_edges(edges)
            edges = [e for e in edges if e not in known]
            if not edges:
                return 0
            n = len(edges)
            data = pa.table({
                "parent_dataset_id": [e[0] for e in edges], "child_dataset_id": [e[1] for e in edges],
                "relationship_type": [e[2] for e in edges],
                "relationship_metadata": pa.array([R.to_json(metadata)] * n, pa.string()),
                "created_at": pa.array([stamp] * n, S.UTC_TS),
                "run_id": pa.array([run_id] * n, pa.string())})
            self.store.upsert("dataset_relationships", data, S.RELATIONSHIPS.key, preserve=["created_at"])
            self._events([dict(action="link", dataset_id=c, run_id=run_id, field="parent", to_value=p,
                               details={"relationship_type": t}, actor=actor) for p, c, t in edges], ts=stamp)
        return len(edges)

    def _known_edges(self, edges: list[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        from cosmoscope.predicate import Predicate, Test

        children = tuple(dict.fromkeys(e[1] for e in edges))
        pred = Predicate.of(Test("child_dataset_id", "is_in", children))
        cols = ["parent_dataset_id", "child_dataset_id", "relationship_type"]
        return {tuple(r.values()) for b in self.store.scan(S.RELATIONSHIPS.name, cols, pred) for r in b.to_pylist()}

    def log_event(self, action: str, *, dataset_id: str | None = None, run_id: str | None = None,
                  field: str | None = None, from_value=None, to_value=None, details: dict | None = None) -> None:
        """Append one event to the audit trail (for actions that change nothing else)."""
        with self.store.transaction():
            self._event(action, dataset_id=dataset_id, run_id=run_id, field=field,
                        from_value=_text(from_value), to_value=_text(to_value), details=details)

    def log_events(self, events: Iterable[dict]) -> int:
        """Append many audit events in one transaction; each a dict of ``action`` and any of
        ``dataset_id``, ``run_id``, ``field``, ``from_value``, ``to_value``, ``details``."""
        events = [dict(e, from_value=_text(e.get("from_value")), to_value=_text(e.get("to_value")))
                  for e in events]
        if events:
            with self.store.transaction():
                self._events(events, ts=now())
        return len(events)

    def _event(self, action: str, **kw) -> None:
        self._events([dict(action=action, **kw)], ts=now())

    def _events(self, events: list[dict], *, ts) -> None:
        if not events:
            return
        n = len(events)
        cols = {"event_id": R.new_event_ids(n), "ts": R.constant(ts, n, S.UTC_TS),
                "actor": [e.get("actor") or self.actor for e in events]}
        for name in ("action", "dataset_id", "run_id", "field", "from_value", "to_value"):
            cols[name] = [e.get(name) for e in events]
        cols["details"] = [R.to_json(e.get("details")) for e in events]
        self.store.upsert("events", pa.table(cols, schema=S.EVENTS.schema), S.EVENTS.key)


def _changes(chunk: pa.Table, columns: list[str], before: dict[str, dict], action: str, run_id: str | None,
             details: dict | None) -> list[dict]:
    """One event per value of ``columns`` that differs between ``chunk`` and the stored rows
    ``before`` (rows not stored before are new, not changed)."""
    if not before:
        return []
    ids = chunk.column("dataset_id").to_pylist()
    out = []
    for name in columns:
        for i, new in zip(ids, chunk.column(name).to_pylist()):
            old = before.get(i)
            if old is not None and not R.same_value(old[name], new):
                out.append(dict(action=action, dataset_id=i, run_id=run_id, field=name, from_value=_text(old[name]),
                                to_value=_text(new), details=details))
    return out


def _initial_status(data: pa.Table) -> pa.Array:
    """The processing status of new rows: a file that is itself a calibrated or derived product
    (ObsCore level 2 and up, or calibrated) was processed to be made; anything else is raw."""
    import pyarrow.compute as pc

    n = data.num_rows
    level = data.column("calib_level") if "calib_level" in data.column_names else pa.nulls(n, pa.int32())
    calibrated = (data.column("calibration_status") if "calibration_status" in data.column_names
                  else pa.nulls(n, pa.string()))
    product = pc.or_kleene(pc.greater_equal(level, 2), pc.equal(calibrated, S.CalibrationStatus.CALIBRATED.value))
    return pc.if_else(pc.fill_null(product, False), S.ProcessingStatus.PROCESSED.value,
                      S.ProcessingStatus.RAW.value).cast(pa.string())


def _set(data: pa.Table, name: str, column: pa.Array) -> pa.Table:
    field = S.OBSERVATIONS.schema.field(name)
    if name in data.column_names:
        return data.set_column(data.column_names.index(name), field, column)
    return data.append_column(field, column)


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return json.dumps(value, default=str)


def _human_bytes(n) -> str:
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _version() -> str:
    from cosmoscope import __version__

    return f"cosmoscope {__version__}"
