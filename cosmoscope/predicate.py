"""polars expressions -> a small predicate IR that every store can push down, plus a residual.

The IR is exactly what VAST Database pushes down (DESIGN.md): an AND of clauses, each clause an
OR of simple tests on one column (``== != < <= > >=``, ``is_in``, ``is_between``, ``is_null``,
``is_not_null``, ``starts_with``, literal ``contains``). Whatever does not fit stays a residual
polars expression that the lazy-frame glue applies to every batch.

A test is pushed only when the store evaluates it exactly as polars does on the stored values:
literals are evaluated by polars itself and converted as polars compares them with the column's
type. NaN, infinities, times outside the years 1-9999 or finer than a microsecond, and types
polars would cast lossily (a float against a 64-bit integer column) stay residual; so does
anything polars refuses (a naive datetime against a UTC column), for polars to refuse.

The split works conjunct by conjunct: the top-level AND is flattened and each conjunct is
translated on its own, so one untranslatable term never stops the others from being pushed.

Examples
--------
>>> import polars as pl
>>> ir, rest = split_predicate((pl.col("mission_id") == "XMM") & (pl.col("ra") + 1 > 2))
>>> print(ir)
mission_id == 'XMM'
>>> rest is not None
True
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cosmoscope.times import EPOCH

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

#: Comparison operators of the IR, with their polars JSON names.
COMPARISONS = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtEq": "<=", "Gt": ">", "GtEq": ">="}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
OPS = (*_FLIP, "is_in", "between", "is_null", "is_not_null", "starts_with", "contains")


@dataclass(frozen=True)
class Test:
    """One test on one column.

    ``value`` is a Python scalar for comparisons, ``starts_with`` and ``contains``; a tuple for
    ``is_in``; ``(low, high, closed)`` for ``between`` with closed one of "both", "left",
    "right", "none"; None for the null tests. Datetimes are timezone-aware UTC.
    """

    __test__ = False  # not a pytest test class, despite the name

    column: str
    op: str
    value: Any = None

    def __str__(self) -> str:
        if self.op in ("is_null", "is_not_null"):
            return f"{self.column} {self.op.replace('_', ' ')}"
        if self.op == "between":
            lo, hi, closed = self.value
            return f"{self.column} between {lo!r} and {hi!r} ({closed})"
        if self.op == "is_in":
            shown = ", ".join(map(repr, self.value[:5])) + (", ..." if len(self.value) > 5 else "")
            return f"{self.column} in [{shown}] ({len(self.value)} values)"
        return f"{self.column} {self.op} {self.value!r}"

    def to_polars(self) -> pl.Expr:
        """The same test as a polars expression (used to re-apply pushed filters)."""
        import polars as pl

        c = pl.col(self.column)
        op, v = self.op, self.value
        if op == "is_null":
            return c.is_null()
        if op == "is_not_null":
            return c.is_not_null()
        if op == "is_in":
            if not v:
                return pl.lit(False)
            return c.is_in(pl.lit(pl.Series(list(v), dtype=_literal_dtype(v))).implode())
        if op == "between":
            lo, hi, closed = v
            return c.is_between(pl.lit(lo), pl.lit(hi), closed=closed)
        if op == "starts_with":
            return c.str.starts_with(v)
        if op == "contains":
            return c.str.contains(v, literal=True)
        lit = pl.lit(v)
        return {"==": c == lit, "!=": c != lit, "<": c < lit, "<=": c <= lit,
                ">": c > lit, ">=": c >= lit}[op]


@dataclass(frozen=True)
class Clause:
    """An OR of tests, all on the same column."""

    tests: tuple[Test, ...]

    @property
    def column(self) -> str:
        return self.tests[0].column

    def __str__(self) -> str:
        parts = [str(t) for t in self.tests]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def to_polars(self) -> pl.Expr:
        expr = self.tests[0].to_polars()
        for t in self.tests[1:]:
            expr = expr | t.to_polars()
        return expr


@dataclass(frozen=True)
class Predicate:
    """An AND of clauses. The empty predicate matches every row."""

    clauses: tuple[Clause, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.clauses)

    def __str__(self) -> str:
        return " AND ".join(str(c) for c in self.clauses) if self.clauses else "(all rows)"

    def __and__(self, other: Predicate) -> Predicate:
        return Predicate(self.clauses + other.clauses)

    @property
    def columns(self) -> set[str]:
        return {c.column for c in self.clauses}

    def to_polars(self) -> pl.Expr | None:
        if not self.clauses:
            return None
        expr = self.clauses[0].to_polars()
        for c in self.clauses[1:]:
            expr = expr & c.to_polars()
        return expr

    @classmethod
    def of(cls, *tests: Test | Clause) -> Predicate:
        """Build a predicate from tests (each its own clause) and clauses."""
        return cls(tuple(t if isinstance(t, Clause) else Clause((t,)) for t in tests))


def _literal_dtype(values):
    import polars as pl

    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, dt.datetime):
        return pl.Datetime("us", "UTC")
    return None


class _Untranslatable(Exception):
    """This node is not of a form the IR can carry."""


def split_predicate(expr: pl.Expr | None, schema: dict | None = None) -> tuple[Predicate, pl.Expr | None]:
    """Split a polars predicate into a pushable :class:`Predicate` and a residual expression.

    ``schema`` (column name -> polars dtype) lets each literal be converted exactly as polars
    would compare it with that column (a date with a UTC timestamp column is midnight UTC, an
    integer with a float column is that float); a literal whose comparison polars would refuse
    or could round differently from the store stays in the residual, where polars itself
    evaluates it. The residual is None when everything was pushed.

    The tree is read from polars' JSON form only for its shape; every value is evaluated from
    the expression objects themselves (``Expr.meta.pop``), because the JSON form rounds about
    one double in ten and cannot carry NaN or infinity.
    """
    if expr is None:
        return Predicate(), None
    schema = schema or {}
    pushed, residual = [], []
    for node in _conjuncts(_Node.of(expr)):
        try:
            pushed.append(_clause(node, schema))
        except _Untranslatable as why:
            log.debug("kept as residual (%s): %s", why, node.expr)
            residual.append(node.expr)
    rest = None
    for e in residual:
        rest = e if rest is None else rest & e
    pred = Predicate(tuple(pushed))
    log.debug("pushed down: %s; residual: %s", pred, rest)
    return pred, rest


@dataclass(frozen=True)
class _Node:
    """One node of an expression: its JSON form (for the shape) and the expression itself."""

    tree: Any
    expr: pl.Expr

    @classmethod
    def of(cls, expr: pl.Expr) -> _Node:
        try:
            tree = json.loads(expr.meta.serialize(format="json"))
        except Exception as exc:  # an expression polars cannot describe: filtered by polars alone
            log.debug("cannot read the shape of %s: %s", expr, exc)
            tree = None
        return cls(tree, expr)

    def kind(self) -> str | None:
        return next(iter(self.tree), None) if isinstance(self.tree, dict) else None

    def inputs(self) -> list[_Node]:
        """The node's inputs, in the order of its JSON form."""
        kind = self.kind()
        if kind == "BinaryExpr":
            trees = [self.tree[kind]["left"], self.tree[kind]["right"]]
        elif kind == "Function":
            trees = self.tree[kind]["input"]
        else:
            return []
        exprs = list(reversed(self.expr.meta.pop()))  # pop() lists the inputs last first
        if len(exprs) != len(trees):
            raise _Untranslatable("the expression's inputs do not match its shape")
        return [_Node(t, e) for t, e in zip(trees, exprs)]

    def column(self) -> str | None:
        tree = self.tree
        if isinstance(tree, dict) and "Column" in tree and isinstance(tree["Column"], str):
            return tree["Column"]
        return None

    def binary_op(self) -> str | None:
        return self.tree["BinaryExpr"]["op"] if self.kind() == "BinaryExpr" else None


def _conjuncts(node: _Node):
    if node.binary_op() in ("And", "LogicalAnd"):
        for child in node.inputs():
            yield from _conjuncts(child)
    else:
        yield node


def _disjuncts(node: _Node):
    if node.binary_op() in ("Or", "LogicalOr"):
        for child in node.inputs():
            yield from _disjuncts(child)
    else:
        yield node


def _clause(node: _Node, schema) -> Clause:
    if node.tree is None:
        raise _Untranslatable("unreadable expression")
    tests = tuple(_test(n, schema) for n in _disjuncts(node))
    if len({t.column for t in tests}) != 1:
        raise _Untranslatable("an OR across different columns")
    return Clause(tests)


def _evaluate(node: _Node):
    """The value of a column-free subtree, computed by polars itself, as a Series."""
    if node.expr.meta.root_names():
        raise _Untranslatable("the value side refers to a column")
    import polars as pl

    try:
        series = pl.select(node.expr.alias("v")).to_series()
    except Exception as exc:  # a literal polars itself cannot evaluate stays residual
        raise _Untranslatable(f"literal could not be evaluated: {exc}") from None
    if len(series) != 1:
        raise _Untranslatable("literal is not a scalar")
    return series


def _scalar(node: _Node, column: str, schema):
    """A column-free subtree as one value of the IR for comparisons with ``column``."""
    import polars as pl

    series = _evaluate(node)
    if series.dtype == pl.List or series.dtype == pl.Array:
        raise _Untranslatable("a list where one value was expected")
    if series.null_count():
        return None
    values = _convert(series, schema.get(column))
    return values[0]


def _many(node: _Node, column: str, schema) -> tuple:
    """The values of an ``is_in`` list, nulls dropped (null is never in a list for polars)."""
    import polars as pl

    series = _evaluate(node)
    if series.dtype == pl.List or series.dtype == pl.Array:
        series = series.explode()
    series = series.drop_nulls()
    if series.is_empty():
        return ()
    return tuple(_convert(series, schema.get(column), allow_nan=True))


_INT64 = (-2**63, 2**63 - 1)


def _convert(series, column_dtype, *, allow_nan: bool = False) -> list:
    """Python values that compare with a ``column_dtype`` column in the store exactly as
    ``series`` compares with it in polars; raises :class:`_Untranslatable` otherwise."""
    import polars as pl

    dtype = series.dtype
    col_dtype = column_dtype
    if col_dtype is None:  # no schema: only values whose meaning does not depend on the column
        col_dtype = dtype if dtype in (pl.String, pl.Int64, pl.Int32, pl.Float64) else \
            (dtype if isinstance(dtype, pl.Datetime) and dtype.time_zone == "UTC" else None)
        if col_dtype is None:
            raise _Untranslatable(f"{dtype} literal with no column type to compare it with")
    if isinstance(col_dtype, pl.Datetime):
        return _times(series, col_dtype)
    if col_dtype == pl.String:
        if dtype != pl.String:
            raise _Untranslatable(f"{dtype} literal for a text column")
        return series.to_list()
    if col_dtype.is_float():
        if not (dtype.is_float() or dtype.is_integer()):
            raise _Untranslatable(f"{dtype} literal for a float column")
        if col_dtype != pl.Float64 and dtype != col_dtype:
            raise _Untranslatable(f"{dtype} literal for a {col_dtype} column")
        values = [float(v) for v in series.cast(pl.Float64).to_list()]
        if allow_nan:  # a stored float is never NaN (the stores keep NaN as null)
            values = [v for v in values if v == v]
        if any(v != v or v in (math.inf, -math.inf) for v in values):
            raise _Untranslatable("NaN or infinite literal")
        return [v + 0.0 for v in values]  # -0.0 and 0.0 are one value to polars; stores keep 0.0
    if col_dtype.is_integer():
        if dtype.is_integer():
            values = series.to_list()
            if any(not _INT64[0] <= v <= _INT64[1] for v in values):
                raise _Untranslatable("integer literal outside the 64-bit range")
            return values
        if dtype.is_float() and col_dtype.bit_width <= 32:
            # polars compares as Float64, which holds every 32-bit integer exactly: so does SQLite
            values = series.cast(pl.Float64).to_list()
            if any(v != v or v in (math.inf, -math.inf) for v in values):
                raise _Untranslatable("NaN or infinite literal")
            return [v + 0.0 for v in values]
        raise _Untranslatable(f"{dtype} literal for a {col_dtype} column")
    raise _Untranslatable(f"no pushdown for {col_dtype} columns")


def _times(series, col_dtype) -> list:
    """Datetimes as polars compares them with a UTC timestamp column."""
    import polars as pl

    if col_dtype.time_zone != "UTC" or col_dtype.time_unit != "us":
        raise _Untranslatable(f"no pushdown for {col_dtype} columns")
    dtype = series.dtype
    if dtype == pl.Date:
        series = series.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")  # midnight UTC, as polars
    elif not isinstance(dtype, pl.Datetime) or dtype.time_zone != "UTC":
        raise _Untranslatable(f"{dtype} literal for a UTC timestamp column")  # polars refuses it
    micros = series.dt.epoch("ns") if series.dtype.time_unit == "ns" else series.dt.epoch("us")
    values = []
    for v in micros.to_list():
        if series.dtype.time_unit == "ns":
            if v % 1000:
                raise _Untranslatable("a time finer than the column's microseconds")
            v //= 1000
        try:
            values.append(EPOCH + dt.timedelta(microseconds=v))
        except OverflowError:
            raise _Untranslatable("a time outside the years 1-9999") from None
    return values


def _test(node: _Node, schema) -> Test:
    kind = node.kind()
    if kind == "BinaryExpr":
        op = COMPARISONS.get(node.binary_op())
        if op is None:
            raise _Untranslatable(f"operator {node.binary_op()}")
        left, right = node.inputs()
        lcol, rcol = left.column(), right.column()
        if lcol is not None and rcol is None:
            return _comparison(_known(lcol, schema), op, _scalar(right, lcol, schema))
        if rcol is not None and lcol is None:
            return _comparison(_known(rcol, schema), _FLIP[op], _scalar(left, rcol, schema))
        raise _Untranslatable("comparison is not column vs literal")
    if kind == "Function":
        function = node.tree["Function"]["function"]
        inputs = node.inputs()
        column = inputs[0].column() if inputs else None
        if column is None:
            raise _Untranslatable("function of something other than a column")
        _known(column, schema)
        if function == {"Boolean": "IsNull"}:
            return Test(column, "is_null")
        if function == {"Boolean": "IsNotNull"}:
            return Test(column, "is_not_null")
        b = function.get("Boolean") if isinstance(function, dict) else None
        if isinstance(b, dict) and "IsIn" in b and len(inputs) == 2:
            if b["IsIn"].get("nulls_equal"):
                raise _Untranslatable("is_in with nulls_equal=True")
            return Test(column, "is_in", _many(inputs[1], column, schema))
        if isinstance(b, dict) and "IsBetween" in b and len(inputs) == 3:
            lo = _scalar(inputs[1], column, schema)
            hi = _scalar(inputs[2], column, schema)
            if lo is None or hi is None:
                raise _Untranslatable("is_between with a null bound")
            return Test(column, "between", (lo, hi, b["IsBetween"]["closed"].lower()))
        s = function.get("StringExpr") if isinstance(function, dict) else None
        if s == "StartsWith" or (isinstance(s, dict) and s.get("Contains", {}).get("literal")):
            value = _scalar(inputs[1], column, schema)
            if not isinstance(value, str):
                raise _Untranslatable("a text test with a non-text value")
            return Test(column, "starts_with" if s == "StartsWith" else "contains", value)
        raise _Untranslatable(f"function {json.dumps(function)[:80]}")
    raise _Untranslatable(f"node {kind}")


def _known(column: str, schema) -> str:
    if schema and column not in schema:
        raise _Untranslatable("a column the table does not have")  # polars says so itself
    return column


def _comparison(column: str, op: str, value) -> Test:
    if value is None:
        # polars: a comparison with null is null for every row, so nothing matches.
        raise _Untranslatable("comparison with null")
    return Test(column, op, value)


def successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``, or None.

    Lets ``starts_with`` run as an index-friendly range ``prefix <= x < successor(prefix)``
    under binary (code point) ordering.

    >>> successor("NGC")
    'NGD'
    >>> successor("") is None
    True
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000  # skip surrogates, which cannot be stored as UTF-8
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None
