"""What the explorers ask of the catalog: filters, a sorted page and its total, filter choices,
the problems list and a freshness token.

The notebook widgets and the Panel dashboard both use this module, so they show the same answers;
it imports no UI toolkit. Totals, facet counts and problem counts come from the rollups when
the filters allow (:mod:`cosmoscope.summaries`); a page of results is one ordered, limited read
(the store sorts, and stops after the page), never a read of every matching row.

Examples
--------
>>> import cosmoscope
>>> from cosmoscope.ui.query import Filters, ResultSet
>>> cat = cosmoscope.open_catalog(":memory:")
>>> rs = ResultSet(cat, Filters(missions=("XMM",), min_quality=0.8))
>>> rs.total, rs.page(1).rows.height
(0, 0)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.errors import InvalidArgumentError

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog

#: Columns of a results page, in display order.
PAGE_COLUMNS = ["dataset_id", "mission_id", "instrument_type", "observation_timestamp", "target_object",
                "data_quality_score", "processing_status", "calibration_status", "file_size", "file_path"]

#: Orderings offered by the explorers: label -> (column, descending). Missing values sort last.
SORTS = {
    "newest first": ("observation_timestamp", True),
    "oldest first": ("observation_timestamp", False),
    "best quality first": ("data_quality_score", True),
    "worst quality first": ("data_quality_score", False),
    "largest first": ("file_size", True),
}

#: Columns of the problems view.
PROBLEM_COLUMNS = ["dataset_id", "mission_id", "file_path", "extraction_status", "extraction_error",
                   "validation_status", "validation_problems", "file_status", "last_validated"]

#: The kinds of problem the problems view lists: label -> (column, values that are a problem).
PROBLEM_KINDS = {
    "unreadable": ("extraction_status", (S.ExtractionStatus.ERROR.value,)),
    "incomplete metadata": ("extraction_status", (S.ExtractionStatus.PARTIAL.value,)),
    "failed validation": ("validation_status", (S.ValidationStatus.PROBLEMS.value,)),
    "file missing": ("file_status", (S.FileStatus.MISSING.value,)),
}


@dataclass(frozen=True)
class Filters:
    """The explorers' search filters; empty ones are left out of the query.

    ``end`` is exclusive, as in :meth:`Catalog.search`; a date picker that means "up to and
    including this day" should pass the next day (see :func:`day_after`).
    """

    missions: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    start: dt.datetime | dt.date | None = None
    end: dt.datetime | dt.date | None = None
    min_quality: float = 0.0
    target: str = ""
    statuses: tuple[str, ...] = ()

    def search_kwargs(self) -> dict:
        """The keyword arguments of :meth:`Catalog.search` these filters stand for."""
        return {
            "mission": list(self.missions) or None,
            "instrument": list(self.instruments) or None,
            "start": self.start,
            "end": self.end,
            "min_quality": float(self.min_quality) if self.min_quality else None,
            # The target box is forgiving ("ngc253" finds "NGC 253"); NGC* and *253* stay patterns.
            "target": self.target.strip() if "*" in self.target else None,
            "name": self.target.strip() if self.target.strip() and "*" not in self.target else None,
            "status": list(self.statuses) or None,
        }

    def frame(self, cat: Catalog) -> pl.LazyFrame:
        """The matching observations as a lazy frame (every filter reaches the store)."""
        return cat.search(**self.search_kwargs())

    @property
    def active(self) -> bool:
        return any(v is not None for v in self.search_kwargs().values())

    def describe(self) -> str:
        """The filters in words, e.g. ``mission COSMOS-7, quality >= 0.8``."""
        parts = []
        if self.missions:
            parts.append(f"mission {' or '.join(self.missions)}")
        if self.instruments:
            parts.append(f"instrument {' or '.join(self.instruments)}")
        if self.target.strip():
            parts.append(f"target {self.target.strip()}")
        if self.start is not None:
            parts.append(f"from {_day(self.start)}")
        if self.end is not None:
            parts.append(f"before {_day(self.end)}")
        if self.min_quality:
            parts.append(f"quality >= {self.min_quality:g}")
        if self.statuses:
            parts.append(f"status {' or '.join(self.statuses)}")
        return ", ".join(parts) or "no filters"

    def but(self, **changes) -> Filters:
        """A copy with some filters changed."""
        return replace(self, **changes)


def day_after(day: dt.date | None) -> dt.date | None:
    """The exclusive end of a range that includes ``day`` (None stays None)."""
    if day is None:
        return None
    if isinstance(day, dt.datetime):
        day = day.date()
    return day + dt.timedelta(days=1)


def _day(value) -> str:
    return value.isoformat() if not isinstance(value, dt.datetime) else value.strftime("%Y-%m-%d %H:%M")


@dataclass
class Page:
    """One page of results and where it sits in the whole."""

    rows: pl.DataFrame
    total: int
    number: int
    size: int

    @property
    def n_pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first(self) -> int:
        """1-based position of the first row shown (0 when there are none)."""
        return (self.number - 1) * self.size + 1 if self.rows.height else 0

    @property
    def last(self) -> int:
        return self.first + self.rows.height - 1 if self.rows.height else 0

    def caption(self) -> str:
        """``1-50 of 1,234 observations (page 1 of 25)``."""
        if not self.total:
            return "0 observations"
        noun = "observation" if self.total == 1 else "observations"
        return f"{self.first:,}-{self.last:,} of {self.total:,} {noun} (page {self.number:,} of {self.n_pages:,})"


@dataclass
class ResultSet:
    """The observations matching some filters, in an order, read a page at a time.

    :attr:`total` is counted from the rollups when the filters allow (see
    :mod:`cosmoscope.routing`); a page asks the store for the first ``number * size`` rows in
    order (``Catalog.search(sort=...)``), so it reads about that many rows where an index serves
    the order (time, on SQLite), never every match.
    """

    catalog: Catalog
    filters: Filters = field(default_factory=Filters)
    sort: str = "newest first"
    columns: list[str] = field(default_factory=lambda: list(PAGE_COLUMNS))

    def __post_init__(self):
        if self.sort not in SORTS:
            raise InvalidArgumentError(f"unknown order {self.sort!r}; choose one of {', '.join(SORTS)}")

    def frame(self) -> pl.LazyFrame:
        """Every matching observation, lazily, all columns, in no particular order."""
        return self.filters.frame(self.catalog)

    def ordered(self) -> pl.LazyFrame:
        """Every matching observation, lazily, in this order (missing values last, ties by id)."""
        column, descending = SORTS[self.sort]
        return self.catalog.search(**self.filters.search_kwargs(), sort=column, descending=descending)

    @cached_property
    def total(self) -> int:
        """How many observations match."""
        return count(self.catalog, self.filters)

    def page(self, number: int = 1, size: int = 50) -> Page:
        """Rows ``(number-1)*size`` to ``number*size`` in this order (numbers count from 1;
        past the end gives the last page)."""
        if size < 1:
            raise InvalidArgumentError(f"a page needs at least one row, not {size}")
        n_pages = max(1, -(-self.total // size))
        number = min(max(1, int(number)), n_pages)
        start = (number - 1) * size
        rows = self.ordered().select(self.columns).head(start + size).collect().slice(start, size)
        return Page(rows, self.total, number, size)

    def collect(self, columns: list[str] | None = None) -> pl.DataFrame:
        """Every matching row (all columns unless ``columns``), in this order."""
        lf = self.ordered()
        return (lf.select(columns) if columns else lf).collect()

    def export(self, path, format: str | None = None) -> int:
        """Write every matching row to ``path`` as CSV or Parquet (default: from the suffix);
        returns the number of rows written."""
        import os

        fmt = (format or os.path.splitext(os.fspath(path))[1].lstrip(".")).lower()
        if fmt not in ("csv", "parquet"):
            raise InvalidArgumentError(f"cannot export to {os.fspath(path)!r}: choose csv or parquet "
                                       "(or end the file name in .csv or .parquet)")
        df = self.collect()
        if fmt == "csv":
            import polars as pl

            # CSV has no nested types or time zones to keep; write times in ISO 8601 UTC.
            df.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")).write_csv(path)
        else:
            df.write_parquet(path)
        return df.height


# -- choices, counts and freshness --------------------------------------------------------

def filter_expr(filters: Filters | None):
    """The polars filter of ``filters`` (None for no filter)."""
    from cosmoscope.search import search_filter

    return search_filter(**filters.search_kwargs()) if filters is not None else None


def _aggregate(cat: Catalog, table: str, group_by: list[str], aggs, filters: Filters | None = None):
    """Grouped aggregates computed by the store where it can (a scan of the needed columns
    otherwise), with the filters pushed down."""
    import polars as pl

    from cosmoscope.predicate import split_predicate
    from cosmoscope.store.base import aggregate, polars_aggregations

    expr = filter_expr(filters)
    pushed, residual = split_predicate(expr, cat.frame(table).collect_schema())
    if residual is not None:  # pragma: no cover - search filters always push whole
        exprs = polars_aggregations(aggs)
        lf = cat.frame(table).filter(expr)
        return (lf.group_by(group_by).agg(exprs) if group_by else lf.select(exprs)).collect()
    return pl.from_arrow(aggregate(cat.store, S.table_spec(table).name, group_by, aggs, pushed))


def facet_counts(cat: Catalog, column: str, filters: Filters | None = None) -> pl.DataFrame:
    """How many matching observations have each value of ``column``: columns ``column`` and
    ``n``, most first. A rollup dimension (mission_id, satellite_name, instrument_type,
    processing_status, calibration_status, extraction_status, file_status, validation_status)
    is counted from the rollups when the filters allow (see :mod:`cosmoscope.routing`), any
    other column in the store."""
    import polars as pl

    from cosmoscope.summaries import facet_counts as from_rollups

    if column in S.ROLLUP_DIMENSIONS:
        return from_rollups(cat, column, filter_expr(filters))
    from cosmoscope.store.base import Agg

    df = _aggregate(cat, "observations", [column], [Agg("n", "count")], filters)
    return df.sort([pl.col("n"), pl.col(column)], descending=[True, False], nulls_last=True)


def distinct_values(cat: Catalog, column: str, filters: Filters | None = None) -> list[str]:
    """The distinct non-null values of a column among the matching rows, sorted."""
    return sorted(v for v in facet_counts(cat, column, filters)[column].to_list() if v is not None)


def count(cat: Catalog, filters: Filters | None = None) -> int:
    """How many observations match (from the rollups when the filters allow)."""
    from cosmoscope.summaries import count as counted

    return counted(cat, filter_expr(filters))


def freshness(cat: Catalog) -> tuple:
    """A cheap token that changes when rows are added, changed, linked or removed: the number
    of observations (from the rollups) and the newest audit event (from the key's index)."""
    from cosmoscope.store.base import Agg

    events = _aggregate(cat, "events", [], [Agg("last", "max", "event_id")])
    return count(cat), events["last"][0] if events.height else None


# -- problems -------------------------------------------------------------------------------

def problem_counts(cat: Catalog, filters: Filters | None = None) -> dict[str, int]:
    """How many observations have each kind of problem (see :data:`PROBLEM_KINDS`)."""
    import polars as pl

    from cosmoscope.summaries import grouped

    columns = list(dict.fromkeys(column for column, _ in PROBLEM_KINDS.values()))
    df = grouped(cat, filter_expr(filters), columns, counts_only=True)
    return {label: int(df.filter(pl.col(column).is_in(list(values)))["n"].sum())
            for label, (column, values) in PROBLEM_KINDS.items()}


def problems(cat: Catalog, filters: Filters | None = None, limit: int | None = None) -> pl.DataFrame:
    """Observations with a problem: unreadable or incomplete extraction, failed validation, or
    a missing file; one row each with a ``problem`` column naming what is wrong.

    Each kind is its own pushed-down query (an OR across columns cannot travel as one), so
    only problem rows are read. ``limit`` caps the rows read per kind.
    """
    import polars as pl

    lf = (filters or Filters()).frame(cat)
    frames = []
    for label, (column, values) in PROBLEM_KINDS.items():
        q = lf.filter(pl.col(column).is_in(list(values))).select(PROBLEM_COLUMNS)
        if limit is not None:
            q = q.head(limit)
        frames.append(q.collect().with_columns(pl.lit(label).alias("problem")))
    df = pl.concat(frames)
    return (df.group_by("dataset_id", maintain_order=True)
            .agg(pl.col("problem").str.join(", "), pl.exclude("problem").first())
            .select(["problem", *PROBLEM_COLUMNS]).sort("mission_id", "file_path", nulls_last=True))


# -- display --------------------------------------------------------------------------------

def human_bytes(n) -> str:
    """``1.5 GB`` for 1.5e9 (decimal units, as file browsers show them)."""
    if n is None:
        return ""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


def display_frame(df: pl.DataFrame) -> pl.DataFrame:
    """The same rows with values as people read them: times to the second (UTC), quality to two
    decimals, sizes in kB/MB/GB, missing values blank."""
    import polars as pl

    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.strftime("%Y-%m-%d %H:%M:%S"))
        elif name == "data_quality_score":
            exprs.append(col.map_elements(lambda v: f"{v:.2f}", return_dtype=pl.String))
        elif name == "file_size":
            exprs.append(col.map_elements(human_bytes, return_dtype=pl.String))
        else:
            exprs.append(col.cast(pl.String))
    return df.select(exprs).fill_null("")


#: Column headings of the results and problems tables.
HEADINGS = {"dataset_id": "dataset", "mission_id": "mission", "instrument_type": "instrument",
            "observation_timestamp": "start (UTC)", "target_object": "target", "data_quality_score": "quality",
            "processing_status": "status", "calibration_status": "calibration", "file_size": "size",
            "file_path": "file", "extraction_status": "extraction", "extraction_error": "extraction error",
            "validation_status": "validation", "validation_problems": "validation problems",
            "file_status": "file status", "last_validated": "validated", "problem": "problem"}
