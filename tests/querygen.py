"""Awkward catalog rows and random polars queries over them, for the differential test.

Every generated query carries the Python source that builds it, so a failure prints a line
that can be pasted into a session to reproduce it. Queries are drawn from a seeded
``random.Random``: the same seed gives the same queries on every machine.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))

STRINGS = [None, "", " ", " M31", "M31", "m31", "NGC 253", "NGC253", "ngc 253", "LYRA", "COSMOS-7", "cosmos-7",
           "ñandú", "日本語", "🚀 launch", "%", "_", "a%b", "a_b", "'", '"', "\\", "a\\b", "O'Brien", "tab\tx",
           "line\nx", "Ω", "z" * 60, "\u00e9", "e\u0301", "NGC*", "*", "raw", "calibrated", "\U0010ffff"]
FLOATS = [None, 0.0, -0.0, 1.0, -1.0, 0.5, 0.9999999999999999, 1.0000000000000002, 5e-324, -5e-324,
          2.2250738585072014e-308, 1e308, -1e308, 1.7976931348623157e308, math.inf, -math.inf,
          99.33592489427461, 0.1, 0.30000000000000004, 359.99999999999994, -90.0, 90.0, 1e-10, 123456.789]
INT64 = [None, 0, 1, -1, 2**31 - 1, -2**31, 2**31, 2**53, 2**53 + 1, -2**53 - 1, 2**63 - 1, -2**63,
         10_000_000_000, 4096]
INT32 = [None, 0, 1, 2, 3, 4, -1, 2**31 - 1, -2**31]
TIMES = [None, dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC), dt.datetime(2100, 1, 1, tzinfo=UTC),
         dt.datetime(2026, 11, 27, 8, 15, 0, 123456, tzinfo=UTC), dt.datetime(1, 1, 1, tzinfo=UTC),
         dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), dt.datetime(2000, 2, 29, 12, 0, 0, 500000, tzinfo=UTC),
         dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC), dt.datetime(2026, 1, 1, tzinfo=UTC)]


def _random_value(rng: random.Random, dtype: pa.DataType):
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return rng.choice([rng.choice(STRINGS[1:]) + str(rng.randrange(3)), "".join(
            rng.choice("abcXYZ 09-_%'\"\\é日") for _ in range(rng.randrange(0, 8)))])
    if pa.types.is_floating(dtype):
        return rng.choice([rng.uniform(-400, 400), rng.uniform(0, 1), rng.gauss(0, 1e6), float(rng.randrange(-5, 6))])
    if pa.types.is_int32(dtype):
        return rng.randrange(-10, 10)
    if pa.types.is_integer(dtype):
        return rng.choice([rng.randrange(-10**6, 10**12), rng.randrange(-50, 50)])
    if pa.types.is_timestamp(dtype):
        return dt.datetime(1990, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=rng.randrange(0, 40 * 365 * 86400 * 10**6))
    raise TypeError(dtype)  # pragma: no cover


def pool(dtype: pa.DataType) -> list:
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return STRINGS
    if pa.types.is_floating(dtype):
        return FLOATS
    if pa.types.is_int32(dtype):
        return INT32
    if pa.types.is_integer(dtype):
        return INT64
    if pa.types.is_timestamp(dtype):
        return TIMES
    raise TypeError(dtype)  # pragma: no cover


def awkward_rows(schema: pa.Schema, key: list[str], n: int, seed: int) -> pa.Table:
    """``n`` rows of ``schema``: nulls everywhere, empty and unicode strings, SQL wildcards and
    quotes, 1970/2100/sub-second/extreme times, extreme floats and ints. Key columns are unique."""
    rng = random.Random(seed)
    columns = {}
    for f in schema:
        if f.name in key:
            stems = ["d", "ds-%", "ds-_", "ds-'", 'ds-"', "ds-\\", "ds-é", "DS"]
            columns[f.name] = [f"{stems[i % len(stems)]}{i:06d}" for i in range(n)]
            continue
        values = pool(f.type)
        out = []
        for _ in range(n):
            r = rng.random()
            out.append(rng.choice(values) if r < 0.45 else None if r < 0.55 else _random_value(rng, f.type))
        columns[f.name] = pa.array(out, f.type)
    return pa.table(columns, schema=schema)


#: Places where sky searches go wrong first: the poles, the RA 0/360 seam, the equator.
HOT_SPOTS = [(0.0, 90.0), (123.0, 89.9), (0.0, -90.0), (200.0, -89.7), (0.0, 0.0), (359.95, 12.0),
             (0.05, -30.0), (10.68, 41.27), (180.0, 0.0)]


def _polygon_near(rng: random.Random, ra: float, dec: float) -> str | None:
    """An STC-S footprint around (ra, dec): tilted squares of 1 arcsec to 20 degrees, some
    around a pole, some across RA 0/360, some not containing their own centre."""
    from cosmoscope.sky.geometry import format_polygon, lonlat, unit

    import numpy as np

    size = rng.choice([3e-4, 0.05, 0.5, 2.0, 7.0, 20.0])
    c = unit(ra, dec)
    e1 = np.cross(c, [0.0, 0.0, 1.0] if abs(dec) < 89 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(c, e1)
    turn = rng.uniform(0, 2 * math.pi)
    offset = rng.choice([0.0, 0.0, 0.7]) * size
    corners = []
    for k in range(rng.choice([3, 4, 4, 5, 8])):
        a = turn + 2 * math.pi * k / 5 if k >= 4 else turn + math.pi / 2 * k
        t = math.radians(size) * (1 + 0.3 * rng.random())
        v = c + math.tan(t) * (math.cos(a) * e1 + math.sin(a) * e2) + math.radians(offset) * e1
        corners.append(lonlat(v))
    corners.sort(key=lambda p: math.atan2(float(np.dot(unit(*p), e2)), float(np.dot(unit(*p), e1))))
    return format_polygon([(float(r), float(d)) for r, d in corners])


def sky_rows(data: pa.Table, seed: int) -> pa.Table:
    """Observation rows with positions crowded around :data:`HOT_SPOTS` (and some anywhere),
    footprints (``s_region`` polygons, ``s_fov`` circles, all-sky ones) on a share of them, and
    the derived sky columns computed as the catalog computes them on every write."""
    from cosmoscope.sky.search import derive

    rng = random.Random(seed)
    n = data.num_rows
    ra, dec = data.column("ra").to_pylist(), data.column("dec").to_pylist()
    fov = data.column("s_fov").to_pylist()
    regions = []
    for i in range(n):
        r = rng.random()
        if r < 0.55:
            hra, hdec = rng.choice(HOT_SPOTS)
            spread = rng.choice([1e-6, 0.01, 0.3, 2.0, 8.0])
            dec[i] = max(-90.0, min(90.0, hdec + rng.uniform(-spread, spread)))
            ra[i] = (hra + rng.uniform(-spread, spread) / max(0.01, math.cos(math.radians(dec[i])))) % 360.0
            if rng.random() < 0.02:
                ra[i] = rng.choice([0.0, 360.0, 359.99999999999994])
        elif r < 0.7:
            ra[i], dec[i] = rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1)))
        f = rng.random()
        if f < 0.25 and ra[i] is not None and dec[i] is not None and 0 <= ra[i] <= 360 and -90 <= dec[i] <= 90:
            regions.append(_polygon_near(rng, ra[i], dec[i]))
            if rng.random() < 0.1:
                ra[i] = dec[i] = None  # the footprint gives the position
        else:
            regions.append(None)
            if f < 0.35:
                fov[i] = rng.choice([0.001, 0.5, 3.0, 30.0, 360.0, 0.0, -1.0, math.inf])
    data = data.set_column(data.column_names.index("ra"), "ra", pa.array(ra, pa.float64()))
    data = data.set_column(data.column_names.index("dec"), "dec", pa.array(dec, pa.float64()))
    data = data.set_column(data.column_names.index("s_fov"), "s_fov", pa.array(fov, pa.float64()))
    data = data.set_column(data.column_names.index("s_region"), "s_region", pa.array(regions, pa.string()))
    derived = derive(data)
    return derived.select(data.column_names).cast(data.schema)


@dataclass
class X:
    """A polars expression with the source that builds it."""

    expr: pl.Expr
    code: str


def lit_code(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else '-float("inf")'
    if isinstance(v, dt.datetime):
        tz = "" if v.tzinfo is None else (", tzinfo=UTC" if v.utcoffset() == dt.timedelta(0) else ", tzinfo=IST")
        return f"dt.datetime({v.year}, {v.month}, {v.day}, {v.hour}, {v.minute}, {v.second}, {v.microsecond}{tz})"
    if isinstance(v, dt.date):
        return f"dt.date({v.year}, {v.month}, {v.day})"
    return repr(v)


@dataclass
class Query:
    """One random query: a table, the steps applied to its lazy frame, and how to compare."""

    table: str
    #: (source, function of the frame, the filter expression if the step is a filter)
    steps: list[tuple[str, Callable[[pl.LazyFrame], pl.LazyFrame], pl.Expr | None]] = field(default_factory=list)
    ordered: bool = False      # the result's row order is defined (a total sort last)
    any_rows: bool = False     # a head/slice of an unordered frame: compare heights and membership

    def apply(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        for _code, step, _filter in self.steps:
            lf = step(lf)
        return lf

    def apply_eagerly(self, df: pl.DataFrame) -> pl.DataFrame:
        """The same query with its filters, ANDed as polars hands them to a scan, run by
        ``DataFrame.filter``: polars' other answer to an ill-typed filter, which a plan ending
        in ``select(pl.len())`` refuses while ``DataFrame.filter`` short-cuts it
        (``x.is_between("z", "a") & (text < 7)``)."""
        filters = [e for _code, _step, e in self.steps if e is not None]
        if filters:
            combined = filters[0]
            for e in filters[1:]:
                combined = combined & e
            df = df.filter(combined)
        lf = df.lazy()
        for _code, step, e in self.steps:
            if e is None:
                lf = step(lf)
        return lf.collect()

    @property
    def code(self) -> str:
        return f"cat.frame({self.table!r})" + "".join(code for code, _step, _filter in self.steps)


class QueryGen:
    """Random queries over a table whose rows are known (``df``)."""

    def __init__(self, table: str, df: pl.DataFrame, key: list[str], rng: random.Random):
        self.table, self.df, self.key, self.rng = table, df, key, rng
        self.columns = df.columns
        self.by_kind = {}
        for c, t in df.schema.items():
            kind = ("str" if t == pl.String else "float" if t.is_float() else "int" if t.is_integer()
                    else "time" if isinstance(t, pl.Datetime) else "other")
            self.by_kind.setdefault(kind, []).append(c)

    # -- values ------------------------------------------------------------------------

    def kind(self, column: str) -> str:
        return next(k for k, cs in self.by_kind.items() if column in cs)

    def value(self, column: str):
        """A value seen in the column, from the awkward pool, or a random one."""
        r = self.rng.random()
        if r < 0.5:
            seen = self.df[column]
            return seen[self.rng.randrange(len(seen))]
        arrow_type = self.df.select(column).to_arrow().schema.field(0).type
        if r < 0.85:
            return self.rng.choice(pool(arrow_type))
        return _random_value(self.rng, arrow_type)

    def literal(self, column: str) -> X:
        """A literal for comparisons with ``column``, in one of the forms users write."""
        v = self.value(column)
        kind, r = self.kind(column), self.rng.random()
        if v is None:
            return X(pl.lit(None), "pl.lit(None)") if r < 0.5 else X(pl.lit(None, self.df.schema[column]),
                                                                      f"pl.lit(None, pl.{self.df.schema[column]})")
        if kind == "float":
            if r < 0.08:
                return X(pl.lit(float("nan")), 'pl.lit(float("nan"))')
            if r < 0.16:
                return X(pl.lit(v, pl.Float32), f"pl.lit({lit_code(v)}, pl.Float32)")
            if r < 0.24 and math.isfinite(v) and abs(v) < 2**63:
                return X(pl.lit(int(v)), f"pl.lit({int(v)})")
        if kind == "int":
            if r < 0.1:
                return X(pl.lit(v + 0.5), f"pl.lit({v + 0.5!r})")
            if r < 0.2:
                return X(pl.lit(float(v)), f"pl.lit({float(v)!r})")
            if r < 0.25 and v >= 0:
                return X(pl.lit(v, pl.UInt64), f"pl.lit({v}, pl.UInt64)")
            if r < 0.28:
                return X(pl.lit(2**64 - 1, pl.UInt64), "pl.lit(2**64 - 1, pl.UInt64)")
        if kind == "time":
            return self.time_literal(v, r)
        if kind == "str" and r < 0.03:
            return X(pl.lit(7), "pl.lit(7)")  # polars refuses text against a number
        return X(pl.lit(v), f"pl.lit({lit_code(v)})")

    def time_literal(self, v: dt.datetime, r: float) -> X:
        if r < 0.3:
            return X(pl.lit(v), f"pl.lit({lit_code(v)})")
        if r < 0.4:
            w = v.astimezone(IST) if 1 < v.year < 9999 else v
            return X(pl.lit(w), f"pl.lit({lit_code(w)})")
        if r < 0.5:
            return X(pl.lit(v.date()), f"pl.lit({lit_code(v.date())})")
        if r < 0.55:
            n = v.replace(tzinfo=None)
            return X(pl.lit(n), f"pl.lit({lit_code(n)})")  # naive: polars refuses
        if r < 0.62:
            return X(pl.datetime(v.year, v.month, v.day, v.hour, time_zone="UTC"),
                     f'pl.datetime({v.year}, {v.month}, {v.day}, {v.hour}, time_zone="UTC")')
        if r < 0.7:
            return X(pl.lit(v).cast(pl.Datetime("ns", "UTC")) + pl.duration(nanoseconds=500),
                     f'(pl.lit({lit_code(v)}).cast(pl.Datetime("ns", "UTC")) + pl.duration(nanoseconds=500))')
        if r < 0.78:
            return X(pl.lit(v) + pl.duration(days=1), f"(pl.lit({lit_code(v)}) + pl.duration(days=1))")
        if r < 0.82:
            return X(pl.datetime(10000, 1, 1, time_zone="UTC"), 'pl.datetime(10000, 1, 1, time_zone="UTC")')
        if r < 0.86:
            return X(pl.lit(dt.datetime(1, 1, 1, tzinfo=UTC)) - pl.duration(days=1),
                     "(pl.lit(dt.datetime(1, 1, 1, tzinfo=UTC)) - pl.duration(days=1))")
        if r < 0.9:
            return X(pl.datetime(2026, 1, 1, time_zone="Europe/Paris"),
                     'pl.datetime(2026, 1, 1, time_zone="Europe/Paris")')  # another zone: polars refuses
        return X(pl.lit(v), f"pl.lit({lit_code(v)})")

    def values_list(self, column: str) -> X:
        n = self.rng.choice([0, 1, 2, 3, 5, 10, 40, 600])
        vals = [self.value(column) for _ in range(n)]
        kind = self.kind(column)
        if kind == "time":
            vals = [v for v in vals if v is not None] + ([None] if self.rng.random() < 0.3 else [])
        if kind == "float":
            vals = [v for v in vals if v is None or not math.isnan(v)]
            if self.rng.random() < 0.1:
                vals.append(float("nan"))
        if self.rng.random() < 0.2:
            vals.append(None)
        dtype = self.df.schema[column]
        series = pl.Series(vals, dtype=dtype)
        code = f"pl.Series({[lit_code(v) for v in vals]!r}, dtype=pl.{dtype})".replace("'", "") if n < 12 else \
            f"<{len(vals)} values of {column}>"
        return X(pl.lit(series).implode(), f"pl.lit({code}).implode()")

    # -- predicates --------------------------------------------------------------------

    def atom(self, column: str | None = None) -> X:
        rng = self.rng
        column = column or rng.choice(self.columns)
        kind = self.kind(column)
        c = pl.col(column)
        cc = f"pl.col({column!r})"
        r = rng.random()
        if r < 0.32:
            op = rng.choice(["==", "!=", "<", "<=", ">", ">="])
            lit = self.literal(column)
            fn = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
                  "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]
            if rng.random() < 0.2:
                return X(fn(lit.expr, c), f"({lit.code} {op} {cc})")
            return X(fn(c, lit.expr), f"({cc} {op} {lit.code})")
        if r < 0.44:
            lo, hi = self.literal(column), self.literal(column)
            closed = rng.choice(["both", "left", "right", "none"])
            return X(c.is_between(lo.expr, hi.expr, closed=closed), f"{cc}.is_between({lo.code}, {hi.code}, closed={closed!r})")
        if r < 0.56:
            lst = self.values_list(column)
            return X(c.is_in(lst.expr), f"{cc}.is_in({lst.code})")
        if r < 0.62:
            return X(c.is_null(), f"{cc}.is_null()")
        if r < 0.68:
            return X(c.is_not_null(), f"{cc}.is_not_null()")
        if kind == "str" and r < 0.86:
            v = self.value(column)
            v = v if isinstance(v, str) else rng.choice(STRINGS[1:])
            v = v[: rng.randrange(0, len(v) + 1)]
            which = rng.choice(["starts_with", "contains", "contains_re", "ends_with", "lower"])
            if which == "starts_with":
                return X(c.str.starts_with(v), f"{cc}.str.starts_with({v!r})")
            if which == "contains":
                return X(c.str.contains(v, literal=True), f"{cc}.str.contains({v!r}, literal=True)")
            if which == "contains_re":
                return X(c.str.contains("^[A-Z]"), f"{cc}.str.contains('^[A-Z]')")
            if which == "ends_with":
                return X(c.str.ends_with(v), f"{cc}.str.ends_with({v!r})")
            return X(c.str.to_lowercase() == v.lower(), f"({cc}.str.to_lowercase() == {v.lower()!r})")
        if kind == "float" and r < 0.8:
            which = rng.choice(["nan", "finite", "arith"])
            if which == "nan":
                return X(c.is_nan(), f"{cc}.is_nan()")
            if which == "finite":
                return X(c.is_finite(), f"{cc}.is_finite()")
            return X((c * 2) > 1.5, f"(({cc} * 2) > 1.5)")
        others = [o for o in self.by_kind[kind] if o != column]
        if others and r < 0.95:
            other = rng.choice(others)
            return X(c < pl.col(other), f"({cc} < pl.col({other!r}))")
        return X(c.is_not_null(), f"{cc}.is_not_null()")

    def predicate(self, depth: int = 0) -> X:
        r = self.rng.random()
        if depth >= 3 or r < 0.35:
            return self.atom()
        if r < 0.45:
            a = self.predicate(depth + 1)
            return X(~a.expr, f"~{a.code}")
        a, b = self.predicate(depth + 1), self.predicate(depth + 1)
        if r < 0.8:
            return X(a.expr & b.expr, f"({a.code} & {b.code})")
        return X(a.expr | b.expr, f"({a.code} | {b.code})")

    def same_column_or(self) -> X:
        """An OR of tests on one column (the clause form every store pushes)."""
        column = self.rng.choice(self.columns)
        parts = [self.atom(column) for _ in range(self.rng.randrange(1, 4))]
        e = parts[0]
        for p in parts[1:]:
            e = X(e.expr | p.expr, f"({e.code} | {p.code})")
        return e

    # -- whole queries -----------------------------------------------------------------

    def query(self) -> Query:
        rng = self.rng
        q = Query(self.table)
        for _ in range(rng.choice([1, 1, 1, 2])):
            p = self.predicate() if rng.random() < 0.6 else self.conjunction()
            q.steps.append((f".filter({p.code})", lambda lf, e=p.expr: lf.filter(e), p.expr))
        tail = rng.random()
        if tail < 0.2:
            cols = rng.sample(self.columns, rng.randrange(1, 5))
            q.steps.append((f".select({cols!r})", lambda lf, cs=cols: lf.select(cs), None))
        elif tail < 0.4:
            by = rng.sample(self.columns, rng.randrange(1, 3))
            desc = rng.random() < 0.5
            nulls_last = rng.random() < 0.5
            keys = by + [k for k in self.key if k not in by]
            q.steps.append((f".sort({keys!r}, descending={desc}, nulls_last={nulls_last})",
                            lambda lf, k=keys, d=desc, nl=nulls_last: lf.sort(k, descending=d, nulls_last=nl), None))
            q.ordered = True
            if rng.random() < 0.6:
                n = rng.choice([0, 1, 5, 20, 500])
                q.steps.append((f".head({n})", lambda lf, n=n: lf.head(n), None))
        elif tail < 0.5:
            n = rng.choice([0, 1, 3, 50])
            q.steps.append((f".head({n})", lambda lf, n=n: lf.head(n), None))
            q.any_rows = True
        elif tail < 0.62:
            g = rng.choice(self.columns)
            num = rng.choice(self.by_kind.get("float", []) + self.by_kind.get("int", []) or [g])
            aggs = [pl.len().alias("n"), pl.col(num).max().alias("mx"), pl.col(num).min().alias("mn"),
                    pl.col(num).null_count().alias("nulls")]
            code = f'.group_by({g!r}).agg(pl.len().alias("n"), pl.col({num!r}).max().alias("mx"), ' \
                   f'pl.col({num!r}).min().alias("mn"), pl.col({num!r}).null_count().alias("nulls"))'
            q.steps.append((code, lambda lf, g=g, a=aggs: lf.group_by(g).agg(a), None))
        elif tail < 0.7:
            cols = rng.sample(self.columns, rng.randrange(1, 3))
            q.steps.append((f".select({cols!r}).unique()", lambda lf, cs=cols: lf.select(cs).unique(), None))
        elif tail < 0.85:
            q.steps.append((".select(pl.len())", lambda lf: lf.select(pl.len()), None))
        return q

    def conjunction(self) -> X:
        parts = [self.same_column_or() for _ in range(self.rng.randrange(1, 4))]
        e = parts[0]
        for p in parts[1:]:
            e = X(e.expr & p.expr, f"({e.code} & {p.code})")
        return e
