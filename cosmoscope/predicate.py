"""polars expressions -> a small predicate IR that every store can push down, plus a residual.

The IR is exactly what VAST Database pushes down (DESIGN.md): an AND of clauses, each clause an
OR of simple tests on one column (``== != < <= > >=``, ``is_in``, ``is_between``, ``is_null``,
``is_not_null``, ``starts_with``, literal ``contains``). Whatever does not fit stays a residual
polars expression that the lazy-frame glue applies to every batch.

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
import io
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

    ``schema`` (column name -> polars dtype) lets literals be normalised to the column's type:
    naive datetimes and dates compared with a UTC timestamp column are read as UTC.
    The residual is None when everything was pushed.
    """
    if expr is None:
        return Predicate(), None
    tree = json.loads(expr.meta.serialize(format="json"))
    pushed, residual = [], []
    for node in _conjuncts(tree):
        try:
            pushed.append(_clause(node, schema or {}))
        except _Untranslatable as why:
            log.debug("kept as residual (%s): %s", why, _describe(node))
            residual.append(node)
    rest = None
    for node in residual:
        e = _to_expr(node)
        rest = e if rest is None else rest & e
    pred = Predicate(tuple(pushed))
    log.debug("pushed down: %s; residual: %s", pred, rest)
    return pred, rest


def _describe(node) -> str:
    try:
        return str(_to_expr(node))
    except Exception:  # pragma: no cover - describing is best effort
        return json.dumps(node)[:200]


def _to_expr(node) -> pl.Expr:
    import polars as pl

    return pl.Expr.deserialize(io.StringIO(json.dumps(node)), format="json")


def _conjuncts(node):
    be = node.get("BinaryExpr") if isinstance(node, dict) else None
    if be and be["op"] in ("And", "LogicalAnd"):
        yield from _conjuncts(be["left"])
        yield from _conjuncts(be["right"])
    else:
        yield node


def _disjuncts(node):
    be = node.get("BinaryExpr") if isinstance(node, dict) else None
    if be and be["op"] in ("Or", "LogicalOr"):
        yield from _disjuncts(be["left"])
        yield from _disjuncts(be["right"])
    else:
        yield node


def _clause(node, schema) -> Clause:
    tests = tuple(_test(n, schema) for n in _disjuncts(node))
    if len({t.column for t in tests}) != 1:
        raise _Untranslatable("an OR across different columns")
    return Clause(tests)


def _column_name(node) -> str | None:
    if isinstance(node, dict) and "Column" in node and isinstance(node["Column"], str):
        return node["Column"]
    return None


def _has_column(node) -> bool:
    if isinstance(node, dict):
        return any(k == "Column" or _has_column(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_column(v) for v in node)
    return False


def _constant(node, column: str, schema):
    """Evaluate a column-free subtree with polars itself and normalise it for ``column``."""
    if _has_column(node):
        raise _Untranslatable("the value side refers to a column")
    import polars as pl

    try:
        value = pl.select(_to_expr(node).alias("v")).to_series()
    except Exception as exc:  # a literal polars itself cannot evaluate stays residual
        raise _Untranslatable(f"literal could not be evaluated: {exc}") from None
    if len(value) != 1:
        raise _Untranslatable("literal is not a scalar")
    if value.dtype == pl.List:
        inner = value[0]
        return tuple(_normalise(v, column, schema) for v in inner.to_list())
    return _normalise(value[0], column, schema)


def _normalise(v, column, schema):
    import polars as pl

    dtype = schema.get(column)
    is_ts = dtype is not None and isinstance(dtype, pl.Datetime)
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=dt.timezone.utc) if v.tzinfo is None else v.astimezone(dt.timezone.utc)
    if isinstance(v, dt.date) and is_ts:
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc)
    if isinstance(v, float) and v != v:
        raise _Untranslatable("NaN literal")
    if isinstance(v, (dt.time, dt.timedelta, bytes, list, dict)):
        raise _Untranslatable(f"{type(v).__name__} literal")
    return v


def _test(node, schema) -> Test:
    if not isinstance(node, dict):
        raise _Untranslatable("not an expression node")
    if "BinaryExpr" in node:
        be = node["BinaryExpr"]
        op = COMPARISONS.get(be["op"])
        if op is None:
            raise _Untranslatable(f"operator {be['op']}")
        left, right = _column_name(be["left"]), _column_name(be["right"])
        if left is not None and right is None:
            value = _constant(be["right"], left, schema)
            return _comparison(left, op, value)
        if right is not None and left is None:
            value = _constant(be["left"], right, schema)
            return _comparison(right, _FLIP[op], value)
        raise _Untranslatable("comparison is not column vs literal")
    if "Function" in node:
        fn = node["Function"]
        inputs, function = fn["input"], fn["function"]
        column = _column_name(inputs[0]) if inputs else None
        if column is None:
            raise _Untranslatable("function of something other than a column")
        if function == {"Boolean": "IsNull"}:
            return Test(column, "is_null")
        if function == {"Boolean": "IsNotNull"}:
            return Test(column, "is_not_null")
        if isinstance(function, dict) and "Boolean" in function:
            b = function["Boolean"]
            if isinstance(b, dict) and "IsIn" in b:
                if b["IsIn"].get("nulls_equal"):
                    raise _Untranslatable("is_in with nulls_equal=True")
                values = _constant(inputs[1], column, schema)
                if not isinstance(values, tuple):
                    values = (values,)
                if any(v is None for v in values):
                    values = tuple(v for v in values if v is not None)  # null never matches
                return Test(column, "is_in", values)
            if isinstance(b, dict) and "IsBetween" in b:
                lo = _constant(inputs[1], column, schema)
                hi = _constant(inputs[2], column, schema)
                if lo is None or hi is None:
                    raise _Untranslatable("is_between with a null bound")
                return Test(column, "between", (lo, hi, b["IsBetween"]["closed"].lower()))
        if isinstance(function, dict) and "StringExpr" in function:
            s = function["StringExpr"]
            if s == "StartsWith":
                value = _constant(inputs[1], column, schema)
                if not isinstance(value, str):
                    raise _Untranslatable("starts_with of a non-string")
                return Test(column, "starts_with", value)
            if isinstance(s, dict) and "Contains" in s and s["Contains"].get("literal"):
                value = _constant(inputs[1], column, schema)
                if not isinstance(value, str):
                    raise _Untranslatable("contains of a non-string")
                return Test(column, "contains", value)
        raise _Untranslatable(f"function {json.dumps(function)[:80]}")
    raise _Untranslatable(f"node {next(iter(node))}")


def _comparison(column: str, op: str, value) -> Test:
    if value is None:
        # polars: a comparison with null is null for every row, so nothing matches.
        raise _Untranslatable("comparison with null")
    if isinstance(value, tuple):
        raise _Untranslatable("comparison with a list")
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
