"""Arrow schemas of every catalog table, the enumerations they use, and the schema version.

Every backend stores exactly these schemas. Migrations are additive: a newer schema version may
add tables and nullable columns, never rename or drop them, so an older catalog is brought up to
date on open by creating what is missing (see :func:`plan_migration`).

Times are UTC microseconds (``timestamp[us, tz=UTC]``), JSON is plain ``utf8`` text (VAST
Database rejects Arrow extension and large types), and every column except a table's key is
nullable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pyarrow as pa

#: Version of the table layout written by this release. Stored in the catalog's ``meta`` table.
SCHEMA_VERSION = 8  # 2: runs, claims; 3: watchers; 4: pending_lineage.actor, .run_id, index on ingested_at;
                   # 5: s_region, s_fov, sky_index; 6: rollups; 7: rollup_products;
                   # 8: the mission/time index also holds quality and dataset_id

UTC_TS = pa.timestamp("us", tz="UTC")


class ProcessingStatus(enum.StrEnum):
    """Where a dataset is in its processing life."""

    RAW = "raw"
    QUEUED = "queued"
    PROCESSING = "processing"
    PROCESSED = "processed"
    FAILED = "failed"
    ARCHIVED = "archived"


class CalibrationStatus(enum.StrEnum):
    """Whether the data in a file have been calibrated."""

    UNCALIBRATED = "uncalibrated"
    PARTIAL = "partial"
    CALIBRATED = "calibrated"
    UNKNOWN = "unknown"


class ExtractionStatus(enum.StrEnum):
    """How metadata extraction went for a file."""

    OK = "ok"
    PARTIAL = "partial"  # readable, but some required fields are missing
    ERROR = "error"  # unreadable; ``extraction_error`` says why


class FileStatus(enum.StrEnum):
    """What the catalog last saw of the file on disk."""

    PRESENT = "present"
    MISSING = "missing"
    CHANGED = "changed"


class ValidationStatus(enum.StrEnum):
    """Outcome of the last validation of a row."""

    PASSED = "passed"
    PROBLEMS = "problems"


class RunStatus(enum.StrEnum):
    """Where a processing run is (see :mod:`cosmoscope.pipeline`)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"  # its lease ran out and another run took its claims


class RelationshipType(enum.StrEnum):
    """Common lineage edge types; any other non-empty text is accepted too."""

    RAW_TO_PROCESSED = "raw->processed"
    RAW_TO_CALIBRATED = "raw->calibrated"
    CALIBRATED_TO_DERIVED = "calibrated->derived"
    CALIBRATION = "calibration"
    DERIVED = "derived"


#: ObsCore ``dataproduct_type`` vocabulary.
DATAPRODUCT_TYPES = ("image", "cube", "spectrum", "sed", "timeseries", "visibility", "event",
                     "measurements")


@dataclass(frozen=True)
class TableSpec:
    """A table's Arrow schema and the columns that identify a row."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    #: Columns that get a secondary index where the backend supports one.
    indexes: tuple[tuple[str, ...], ...] = ()
    doc: str = ""


def _field(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


OBSERVATIONS = TableSpec(
    name="observations",
    doc="One row per data file.",
    key=("dataset_id",),
    schema=pa.schema([
        _field("dataset_id", pa.string(), "Stable identifier of the dataset (derived from its path).", nullable=False),
        # The mission brief's fields.
        _field("mission_id", pa.string(), "Mission the file belongs to, e.g. 'CHANDRA', 'COSMOS-7'."),
        _field("satellite_name", pa.string(), "Spacecraft or observatory (TELESCOP, platform)."),
        _field("instrument_type", pa.string(), "Instrument (INSTRUME, instrument, sensor)."),
        _field("observation_timestamp", UTC_TS, "Start of the observation, UTC."),
        _field("target_object", pa.string(), "Target name (OBJECT, TARGNAME)."),
        _field("data_quality_score", pa.float64(), "Quality score from 0.0 (unusable) to 1.0."),
        _field("calibration_status", pa.string(), "One of CalibrationStatus."),
        _field("file_path", pa.string(), "Absolute path of the file."),
        _field("file_size", pa.int64(), "Size of the file in bytes."),
        _field("file_name", pa.string(), "Base name of the file (what lineage keywords usually name)."),
        _field("processing_status", pa.string(), "One of ProcessingStatus."),
        _field("version", pa.string(), "Product or processing version as the mission writes it."),
        _field("mission_specific", pa.string(), "JSON object of mission-specific metadata."),
        # What the IVOA ObsCore model needs and users search by.
        _field("observation_end", UTC_TS, "End of the observation, UTC."),
        _field("exposure_time", pa.float64(), "Exposure time in seconds."),
        _field("ra", pa.float64(), "Right ascension (ICRS), degrees."),
        _field("dec", pa.float64(), "Declination (ICRS), degrees."),
        _field("calib_level", pa.int32(), "ObsCore calibration level 0-4."),
        _field("dataproduct_type", pa.string(), "ObsCore data product type (image, spectrum, ...)."),
        # Bookkeeping.
        _field("file_format", pa.string(), "fits, hdf5, netcdf or csv."),
        _field("file_mtime", UTC_TS, "Modification time of the file when it was read."),
        _field("checksum", pa.string(), "Content hash, when one was computed ('algo:hex')."),
        _field("quality_flags", pa.string(), "JSON list naming each deduction from the quality score."),
        _field("extraction_status", pa.string(), "One of ExtractionStatus."),
        _field("extraction_error", pa.string(), "Why extraction failed, in words."),
        _field("field_sources", pa.string(), "JSON object: field -> header keyword, attribute or path part that gave it."),
        _field("extractor_version", pa.string(), "Version of the extractor that produced the row."),
        _field("file_status", pa.string(), "One of FileStatus."),
        _field("validation_status", pa.string(), "One of ValidationStatus, null if never validated."),
        _field("validation_problems", pa.string(), "JSON list of problems found by the last validation."),
        _field("last_validated", UTC_TS, "When the row was last validated."),
        _field("ingested_at", UTC_TS, "When the row was first written."),
        _field("updated_at", UTC_TS, "When the row last changed."),
        # Schema 5: where the data lie on the sky (ObsCore s_region, s_fov) and the index that
        # makes cone and box searches reach the store (see cosmoscope.sky.index).
        _field("s_region", pa.string(), "Footprint on the sky as an STC-S polygon (ICRS degrees), e.g. "
                                        "'POLYGON ICRS 10.1 41.0 10.9 41.0 10.9 41.6 10.1 41.6'."),
        _field("s_fov", pa.float64(), "Field of view: diameter in degrees of a circle holding the footprint "
                                      "(about ra/dec when there is no s_region)."),
        _field("sky_index", pa.int64(), "HEALPix NUNIQ cell of the position, at a depth set by the footprint's "
                                        "size (derived from ra, dec, s_fov, s_region; see cosmoscope.sky.index)."),
    ]),
    # Each index costs every insert a B-tree update (measured on SQLite: 7 indexes made bulk
    # inserts 3x slower than none), so there are four: mission and time for searches (and pages
    # of one mission newest first), time alone for time windows and pages of everything, the
    # time a row was cataloged, and the sky index. Until schema 6 the first also carried every
    # column a mission summary reads; the rollups answer summaries now, and since schema 8 it
    # carries what an API page reads (below).
    # Lookups by file go through dataset_id, which is derived from the path.
    indexes=(
        # Quality and dataset_id ride along so that a page of a search by mission, time and
        # quality in dataset_id order (the API's) is found in the index alone (see the SQLite
        # store's scan): 1.7 -> 0.6 ms at 1M rows, for wider entries.
        ("mission_id", "observation_timestamp", "data_quality_score", "dataset_id"),
        ("observation_timestamp",),
        # The API's stream of new datasets asks every second, per subscriber, for the rows
        # cataloged since its cursor: without it each poll read every row (0.23 s at 1M rows).
        # New rows take the newest time, so the index only ever grows at its end.
        ("ingested_at",),
        ("sky_index",),
    ),
)

RELATIONSHIPS = TableSpec(
    name="dataset_relationships",
    doc="Lineage edges between datasets (raw -> calibrated -> derived).",
    key=("parent_dataset_id", "child_dataset_id", "relationship_type"),
    schema=pa.schema([
        _field("parent_dataset_id", pa.string(), "The input dataset.", nullable=False),
        _field("child_dataset_id", pa.string(), "The dataset made from it.", nullable=False),
        _field("relationship_type", pa.string(), "raw->processed, calibration, derived, ...", nullable=False),
        _field("relationship_metadata", pa.string(), "JSON object describing the edge."),
        _field("created_at", UTC_TS, "When the edge was recorded."),
        _field("run_id", pa.string(), "Processing run that produced the edge, if any."),
    ]),
    indexes=(("child_dataset_id",),),
)

EVENTS = TableSpec(
    name="events",
    doc="The audit trail: one row per change made through the catalog.",
    key=("event_id",),
    schema=pa.schema([
        _field("event_id", pa.string(), "Unique id of the event.", nullable=False),
        _field("ts", UTC_TS, "When it happened."),
        _field("actor", pa.string(), "Who did it (user@host, or a pipeline's name)."),
        _field("action", pa.string(), "What was done: ingest, update, link, status, ..."),
        _field("dataset_id", pa.string(), "The dataset it concerns, if any."),
        _field("run_id", pa.string(), "The processing run it belongs to, if any."),
        _field("field", pa.string(), "The field that changed, if one did."),
        _field("from_value", pa.string(), "Value before the change."),
        _field("to_value", pa.string(), "Value after the change."),
        _field("details", pa.string(), "JSON object with anything else worth keeping."),
    ]),
    # event_id starts with the time, so the key already orders events by time.
    indexes=(("dataset_id",),),
)

PENDING_LINEAGE = TableSpec(
    name="pending_lineage",
    doc="Parents a file names that are not cataloged yet; resolved when they arrive.",
    key=("child_dataset_id", "parent_name"),
    schema=pa.schema([
        _field("child_dataset_id", pa.string(), "The dataset that names a parent.", nullable=False),
        _field("parent_name", pa.string(), "The parent as the child's metadata names it.", nullable=False),
        _field("relationship_type", pa.string(), "Edge type to record once resolved."),
        _field("created_at", UTC_TS, "When the name was first seen."),
        _field("actor", pa.string(), "Who cataloged the child: the lineage edge is recorded in their name (schema 4)."),
        _field("run_id", pa.string(), "The run that cataloged the child, if any (schema 4)."),
    ]),
)

WATCHERS = TableSpec(
    name="watchers",
    doc="One row per watcher (a process cataloging files as they arrive): what it watches and its heartbeat.",
    key=("watcher_id",),
    schema=pa.schema([
        _field("watcher_id", pa.string(), "Stable id of the watcher: a hash of its host and paths.", nullable=False),
        _field("host", pa.string(), "Machine the watcher runs on."),
        _field("pid", pa.int64(), "Its process id on that machine."),
        _field("paths", pa.string(), "JSON list of the directories it watches."),
        _field("observer", pa.string(), "How it hears of changes: inotify (or another native API) or polling."),
        _field("profile", pa.string(), "Mission profile forced on every file, if any."),
        _field("actor", pa.string(), "Who runs it (as recorded in the audit trail)."),
        _field("state", pa.string(), "One of WatcherState."),
        _field("message", pa.string(), "Why it stopped or failed, or the last error it survived."),
        _field("started_at", UTC_TS, "When it started."),
        _field("heartbeat_at", UTC_TS, "When it last said it was alive."),
        _field("heartbeat_seconds", pa.float64(), "Seconds between heartbeats (a heartbeat three times "
                                                  "older than this means the watcher is gone)."),
        _field("stopped_at", UTC_TS, "When it stopped, if it did."),
        _field("backlog", pa.int64(), "Files seen but not cataloged yet (settling, queued or being read)."),
        _field("files_new", pa.int64(), "Files it cataloged for the first time since it started."),
        _field("files_updated", pa.int64(), "Files it re-read after they changed."),
        _field("files_failed", pa.int64(), "Files it cataloged as unreadable (extraction errors)."),
        _field("files_missing", pa.int64(), "Rows it marked missing because their file went away."),
        _field("last_file", pa.string(), "The last file it cataloged."),
        _field("last_file_at", UTC_TS, "When it cataloged that file."),
        _field("last_reconcile_at", UTC_TS, "When its last full comparison of the tree with the catalog ended."),
    ]),
)


class WatcherState(enum.StrEnum):
    """Life of a watcher, as its heartbeat row says."""

    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


META = TableSpec(
    name="cosmoscope_meta",
    doc="Key/value facts about the catalog itself (schema version, creation time).",
    key=("key",),
    schema=pa.schema([
        _field("key", pa.string(), "Name of the fact.", nullable=False),
        _field("value", pa.string(), "Its value."),
    ]),
)

PROCESSING_RUNS = TableSpec(
    name="processing_runs",
    doc="Processing runs: who ran what, when, with which parameters, and how it ended (schema 2).",
    key=("run_id",),
    schema=pa.schema([
        _field("run_id", pa.string(), "Unique id of the run.", nullable=False),
        _field("name", pa.string(), "The pipeline's name for the run, e.g. 'calibrate-wfi'."),
        _field("status", pa.string(), "One of RunStatus."),
        _field("actor", pa.string(), "Who started it (user@host)."),
        _field("host", pa.string(), "Machine the run's process is on."),
        _field("pid", pa.int64(), "Process id of the run on that host."),
        _field("params", pa.string(), "JSON object of the run's parameters."),
        _field("n_inputs", pa.int64(), "Datasets the run claimed."),
        _field("n_outputs", pa.int64(), "Datasets the run cataloged as outputs."),
        _field("started_at", UTC_TS, "When the run claimed its inputs."),
        _field("heartbeat_at", UTC_TS, "Last sign of life; the claims lapse lease_seconds after it."),
        _field("lease_seconds", pa.float64(), "How long the claims hold without a heartbeat."),
        _field("finished_at", UTC_TS, "When the run ended."),
        _field("error", pa.string(), "Why the run failed or was abandoned."),
    ]),
    indexes=(("status",),),
)

PROCESSING_CLAIMS = TableSpec(
    name="processing_claims",
    doc="Datasets held by a running processing run; a dataset has at most one claim (schema 2).",
    key=("dataset_id",),
    schema=pa.schema([
        _field("dataset_id", pa.string(), "The claimed dataset.", nullable=False),
        _field("run_id", pa.string(), "The run holding it."),
        _field("role", pa.string(), "'input' or 'output'."),
        _field("previous_status", pa.string(), "processing_status to restore if the run fails."),
        _field("claimed_at", UTC_TS, "When the claim was taken."),
    ]),
    indexes=(("run_id",),),
)

#: Lower edges of the rollups' quality histogram: bin k holds scores q with
#: ``QUALITY_EDGES[k] <= q < QUALITY_EDGES[k + 1]``; the last bin holds q == 1.0 exactly. The
#: edges are the doubles that 0.05, 0.1, ... parse to, so ``min_quality=0.8`` is an edge.
QUALITY_EDGES = tuple(k / 20 for k in range(21))
QUALITY_BINS = tuple(f"q{k:02d}" for k in range(len(QUALITY_EDGES)))

#: What the rollups can group the observations by (``day``: the UTC day of observation_timestamp).
ROLLUP_DIMENSIONS = ("mission_id", "satellite_name", "instrument_type", "day", "processing_status",
                     "calibration_status", "extraction_status", "file_status", "validation_status", "calib_level",
                     "dataproduct_type")
_DIMENSION_DOCS = {"day": "UTC day of observation_timestamp (null: no start time)."}
#: Rollup dimensions that are not text (``day`` is the date of a time; levels are numbers, as in
#: the observations, so a filter on them reads the same on either table).
_DIMENSION_TYPES = {"day": pa.date32(), "calib_level": pa.int32()}


def _rollup_spec(name: str, dims: tuple[str, ...], doc: str, *, extremes: bool = True,
                 indexes: tuple[tuple[str, ...], ...] = ()) -> TableSpec:
    """A rollup table grouping the observations by ``dims``, with the measures each group keeps
    (sums always; minima and maxima with ``extremes``)."""
    times = [_field("first_start", UTC_TS, "Earliest observation_timestamp."),
             _field("last_start", UTC_TS, "Latest observation_timestamp."),
             _field("last_end", UTC_TS, "Latest of observation_end and observation_timestamp.")]
    return TableSpec(
        name=name, doc=doc, key=("entry_id",), indexes=indexes,
        schema=pa.schema([
            _field("entry_id", pa.string(), "Id of this entry (the group key where a group has one entry).",
               nullable=False),
            _field("group_key", pa.string(), "The group's dimension values as JSON (finds a group's entries)."),
            *[_field(d, _DIMENSION_TYPES.get(d, pa.string()), _DIMENSION_DOCS.get(d, f"{d} of the group."))
              for d in dims],
            _field("n", pa.int64(), "Observations."),
            _field("bytes_hi", pa.int64(), "Sum of file_size // 2**32 (with bytes_lo: the exact byte total)."),
            _field("bytes_lo", pa.int64(), "Sum of file_size % 2**32."),
            *(times if extremes else []),
            _field("q_n", pa.int64(), "Observations with a quality score."),
            _field("q_odd", pa.int64(), "Quality scores outside 0-1 (not in q_sum nor the histogram)."),
            _field("q_sum", pa.int64(), "Sum of floor(score * 2**32) over scores in 0-1: an exact fixed-point sum."),
            *([_field("q_min", pa.float64(), "Lowest quality score.")] if extremes else []),
            *[_field(b, pa.int64(), f"Quality scores in histogram bin {k} (from {QUALITY_EDGES[k]:g}).")
              for k, b in enumerate(QUALITY_BINS)],
        ]))


_KEPT = ("kept in the same transaction as every write of the observations (schema 6). A group may have a "
         "few entries: its values are their sums (and minimum, maximum).")
#: Derived: the observations per mission, satellite, instrument, UTC day and processing status.
ROLLUP_DAYS = _rollup_spec("rollup_days", ("mission_id", "satellite_name", "instrument_type", "day",
                                           "processing_status"),
                           "Derived: counts, bytes, time coverage and quality of the observations per mission, "
                           "satellite, instrument, UTC day and processing status, " + _KEPT,
                           # A count of one mission's month reads its few hundred entries, not all
                           # (1M synthetic rows: 257k entries; 36 ms -> 1 ms), and the first index
                           # covers a mission summary's minima and maxima (135 ms -> 31 ms).
                           indexes=(("mission_id", "day", "first_start", "last_start", "last_end", "q_min",
                                     "q_odd"), ("day",)))
_STATUS_DIMENSIONS = ("mission_id", "satellite_name", "instrument_type", "processing_status", "calibration_status",
                      "extraction_status", "file_status", "validation_status")
#: Derived: the observations per mission, satellite, instrument and every status (no time).
ROLLUP_STATUSES = _rollup_spec("rollup_statuses", _STATUS_DIMENSIONS,
                               "Derived: the same sums per mission, satellite, instrument and every status (no "
                               "minima or maxima: rollup_days keeps those), " + _KEPT, extremes=False)
#: Derived: rollup_statuses' groups split by ObsCore calibration level and product type (schema
#: 7). A table of its own: each level and type splits groups again (8.5x the groups of
#: rollup_statuses at 10M synthetic rows), and reads that need neither keep the smaller table.
ROLLUP_PRODUCTS = _rollup_spec("rollup_products", (*_STATUS_DIMENSIONS, "calib_level", "dataproduct_type"),
                               "Derived: the sums of rollup_statuses per calibration level and product type too "
                               "(schema 7), " + _KEPT, extremes=False)

ROLLUP_SKY = TableSpec(
    name="rollup_sky",
    doc="Derived: observations with a position per mission and 3-degree sky cell, kept like rollup_days "
        "(schema 6).",
    key=("entry_id",),
    schema=pa.schema([
        _field("entry_id", pa.string(), "Id of this entry (the group key where a group has one entry).",
               nullable=False),
        _field("group_key", pa.string(), "The group's dimension values as JSON."),
        _field("mission_id", pa.string(), "Mission of the group."),
        _field("ra_cell", pa.int32(), "floor((ra mod 360) / 3)."),
        _field("dec_cell", pa.int32(), "floor(dec / 3), dec clipped to -90..90."),
        _field("n", pa.int64(), "Observations with both ra and dec."),
    ]),
)

#: Every table of the current schema version, by name.
TABLES: dict[str, TableSpec] = {t.name: t for t in (OBSERVATIONS, RELATIONSHIPS, EVENTS, PENDING_LINEAGE, META,
                                                    PROCESSING_RUNS, PROCESSING_CLAIMS, WATCHERS, ROLLUP_DAYS,
                                                    ROLLUP_STATUSES, ROLLUP_PRODUCTS, ROLLUP_SKY)}
#: Tables derived from the observations: rebuilt from them on demand, never written by hand.
DERIVED_TABLES = (ROLLUP_DAYS.name, ROLLUP_STATUSES.name, ROLLUP_PRODUCTS.name, ROLLUP_SKY.name)

#: Short names used by the Python API and the CLI.
TABLE_ALIASES = {"observations": "observations", "relationships": "dataset_relationships",
                 "dataset_relationships": "dataset_relationships", "events": "events",
                 "runs": "processing_runs", "claims": "processing_claims"}

#: Observation columns whose changes are not audited field by field: the key, bookkeeping that
#: changes with every write, and what validation writes (it records its own events).
UNAUDITED_FIELDS = frozenset({"dataset_id", "file_name", "ingested_at", "updated_at", "field_sources", "checksum",
                              "validation_status", "validation_problems", "last_validated"})

#: Columns every extracted record should fill for its quality score not to be docked.
REQUIRED_FIELDS = ("mission_id", "instrument_type", "observation_timestamp")


def table_spec(name: str) -> TableSpec:
    """Return the spec of a table by name or alias, or raise with the valid names."""
    from cosmoscope.errors import UnknownNameError

    try:
        return TABLES[TABLE_ALIASES.get(name, name)]
    except KeyError:
        raise UnknownNameError("table", name, sorted(TABLES)) from None


def check_columns(spec: TableSpec, columns) -> None:
    """Raise :class:`~cosmoscope.errors.UnknownNameError` if any column is not in ``spec``."""
    from cosmoscope.errors import UnknownNameError

    names = spec.schema.names
    for c in columns:
        if c not in names:
            raise UnknownNameError(f"column of {spec.name}", c, names)


@dataclass(frozen=True)
class Migration:
    """What must be added to a stored table set to reach the current schema."""

    new_tables: tuple[str, ...]
    new_columns: dict[str, tuple[pa.Field, ...]]

    @property
    def empty(self) -> bool:
        return not self.new_tables and not any(self.new_columns.values())


def plan_migration(existing: dict[str, pa.Schema]) -> Migration:
    """Compare stored table schemas with the current ones; list the tables and columns to add.

    Raises :class:`~cosmoscope.errors.SchemaError` if a stored column has a type this release
    cannot read, since additive migration cannot fix that.
    """
    from cosmoscope.errors import SchemaError

    new_tables, new_columns = [], {}
    for name, spec in TABLES.items():
        stored = existing.get(name)
        if stored is None:
            new_tables.append(name)
            continue
        missing = []
        for field in spec.schema:
            idx = stored.get_field_index(field.name)
            if idx < 0:
                missing.append(field)
            elif not _compatible(stored.field(idx).type, field.type):
                raise SchemaError(
                    f"table {name!r} has column {field.name!r} of type {stored.field(idx).type}, "
                    f"but cosmoscope expects {field.type}; this is not a catalog this release "
                    "can use")
        new_columns[name] = tuple(missing)
    return Migration(tuple(new_tables), new_columns)


def _compatible(stored: pa.DataType, wanted: pa.DataType) -> bool:
    if stored == wanted:
        return True
    # Backends may report the storage type instead of the logical one.
    return (pa.types.is_string(wanted) and (pa.types.is_string(stored) or pa.types.is_large_string(stored))) or (
        pa.types.is_timestamp(wanted) and pa.types.is_timestamp(stored)) or (
        pa.types.is_integer(wanted) and pa.types.is_integer(stored)) or (
        pa.types.is_floating(wanted) and pa.types.is_floating(stored))


def empty_table(name: str) -> pa.Table:
    """An empty Arrow table with the schema of ``name``."""
    return table_spec(name).schema.empty_table()


def conform(name: str, data: pa.Table, *, fill_missing: bool = True) -> pa.Table:
    """Cast ``data`` to the table's schema, column by column, in the table's column order.

    Large and view string types (which polars produces) become ``utf8``; naive timestamps are
    taken as UTC. Columns the table does not have raise :class:`UnknownNameError`. Missing
    columns are filled with nulls when ``fill_missing`` (for inserts), dropped otherwise (for
    partial updates).
    """
    spec = table_spec(name)
    check_columns(spec, data.column_names)
    arrays, fields = [], []
    for field in spec.schema:
        if field.name in data.column_names:
            col = data.column(field.name)
            if col.type != field.type:
                if pa.types.is_timestamp(col.type) and col.type.tz is None and pa.types.is_timestamp(field.type):
                    col = col.cast(pa.timestamp(col.type.unit)).cast(pa.timestamp(field.type.unit, tz="UTC"))
                else:
                    col = col.cast(field.type)
            arrays.append(col)
            fields.append(field)
        elif fill_missing:
            arrays.append(pa.nulls(data.num_rows, field.type))
            fields.append(field)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
