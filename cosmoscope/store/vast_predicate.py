"""The predicate IR as ibis ``_`` expressions of exactly the forms ``vastdb`` pushes down.

vastdb 2.1 serialises an AND of per-column ORs of ``== != < <= > >=``, ``isin`` (as an OR of
equalities), ``between`` (inclusive), ``isnull``, ``~isnull``, ``startswith`` and literal
``contains``. Anything else raises ``NotImplementedError`` in the SDK at select time, with no
fallback. So each clause of a :class:`~cosmoscope.predicate.Predicate` is either pushed whole,
pushed as a superset and re-checked here (a half-open ``between`` inside an OR), or kept as a
*residual* that the store applies to every batch with polars. A user never sees the SDK's
``NotImplementedError``.

Literals are converted to the column's storage type first: the SDK types every literal as its
column and silently truncates (``int(2.5)``), overflows (int32) or refuses (uint64 >= 2**63)
what does not fit, so such tests stay residual instead.

>>> import pyarrow as pa
>>> from cosmoscope.predicate import Predicate, Test
>>> c = compile_for_vast(Predicate.of(Test("n", "<", 2.5), Test("s", "starts_with", "NG")),
...                      pa.schema([("n", pa.int32()), ("s", pa.string())]))
>>> print(c.pushed_text, "|", c.residual)
s starts_with 'NG' | n < 2.5
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmoscope.predicate import Clause, Predicate, Test

if TYPE_CHECKING:
    import pyarrow as pa

_UTC = dt.timezone.utc


class _NotPushable(Exception):
    """This test has no exact vastdb form."""


@dataclass
class CompiledPredicate:
    """What one scan sends to vastdb and what it checks itself afterwards."""

    #: The ibis deferred expression to pass as ``predicate=`` (None: every row).
    pushed: object = None
    #: Clauses vastdb cannot evaluate exactly; the store filters each batch with them.
    residual: Predicate = field(default_factory=Predicate)
    #: The predicate cannot match any row (an empty ``is_in`` alone in its clause).
    empty: bool = False
    #: The pushed clauses in words (for logs and ``explain``).
    pushed_text: str = "(all rows)"


def compile_for_vast(pred: Predicate | None, storage: pa.Schema) -> CompiledPredicate:
    """Compile ``pred`` against the table's *storage* schema (the Arrow types VAST holds)."""
    if not pred:
        return CompiledPredicate()
    from ibis import _

    pushed_exprs, pushed_words, residual = [], [], []
    for clause in pred.clauses:
        field_ = storage.field(clause.column)
        tests = [t for t in clause.tests if not (t.op == "is_in" and not t.value)]
        if not tests:
            return CompiledPredicate(empty=True, pushed_text="(no rows)")
        if len(tests) == 1 and tests[0].op == "between" and tests[0].value[2] != "both":
            tests_as_clauses = _split_between(tests[0])  # a half-open range alone: two exact clauses
        else:
            tests_as_clauses = [tests]
        for group in tests_as_clauses:
            try:
                parts = [_test_expr(_, t, field_.type) for t in group]
            except _NotPushable:
                residual.append(clause)
                break
            expr = parts[0][0]
            for e, _exact in parts[1:]:
                expr = expr | e
            pushed_exprs.append(expr)
            pushed_words.append(str(Clause(tuple(group))))
            if not all(exact for _e, exact in parts):
                residual.append(clause)
    pushed = None
    for e in pushed_exprs:
        pushed = e if pushed is None else pushed & e
    return CompiledPredicate(pushed=pushed, residual=Predicate(tuple(dict.fromkeys(residual))),
                             pushed_text=" AND ".join(pushed_words) if pushed_words else "(all rows)")


def _split_between(t: Test) -> list[list[Test]]:
    lo, hi, closed = t.value
    lo_op = ">=" if closed in ("both", "left") else ">"
    hi_op = "<=" if closed in ("both", "right") else "<"
    return [[Test(t.column, lo_op, lo)], [Test(t.column, hi_op, hi)]]


def _test_expr(_, t: Test, type_: pa.DataType):
    """(ibis expression, exact) for one test, or raise :class:`_NotPushable`."""
    import pyarrow as pa

    if pa.types.is_nested(type_) or pa.types.is_dictionary(type_):
        raise _NotPushable(f"{t.column} is a nested column")
    col = _[t.column]
    op, v = t.op, t.value
    if op == "is_null":
        return col.isnull(), True
    if op == "is_not_null":
        return ~col.isnull(), True  # vastdb has no notnull(); it pushes NOT(is_null)
    if op in ("starts_with", "contains"):
        if not pa.types.is_string(type_) or not isinstance(v, str):
            raise _NotPushable("text test on a non-text column")
        if v == "":
            return ~col.isnull(), True  # every non-null string starts with and contains ""
        return (col.startswith(v) if op == "starts_with" else col.contains(v)), True
    if op == "is_in":
        values = list(dict.fromkeys(literal(x, type_) for x in v))
        if len(values) == 1:
            return col == values[0], True
        return col.isin(values), True
    if op == "between":
        lo, hi, closed = v
        expr = col.between(literal(lo, type_), literal(hi, type_))
        return expr, closed == "both"  # half-open inside an OR: push the closed range, re-check here
    if op in ("==", "!=", "<", "<=", ">", ">="):
        lit = literal(v, type_)
        return {"==": col == lit, "!=": col != lit, "<": col < lit, "<=": col <= lit,
                ">": col > lit, ">=": col >= lit}[op], True
    raise _NotPushable(f"operator {op}")


_INT_RANGES = {8: (-2**7, 2**7 - 1), 16: (-2**15, 2**15 - 1), 32: (-2**31, 2**31 - 1), 64: (-2**63, 2**63 - 1)}


def literal(v, type_: pa.DataType):
    """``v`` as a Python value of the storage type ``type_``, or raise :class:`_NotPushable`."""
    import pyarrow as pa

    if v is None:
        raise _NotPushable("null literal")
    if pa.types.is_integer(type_):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _NotPushable("non-number for an integer column")
        if isinstance(v, float):
            if not v.is_integer():
                raise _NotPushable("fractional literal for an integer column")
            v = int(v)
        bits = type_.bit_width
        lo, hi = (0, 2**bits - 1) if pa.types.is_unsigned_integer(type_) else _INT_RANGES[bits]
        if pa.types.is_uint64(type_):
            hi = 2**63 - 1  # the SDK refuses larger uint64 literals itself
        if not lo <= v <= hi:
            raise _NotPushable("literal outside the column's range")
        return v
    if pa.types.is_floating(type_):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
            raise _NotPushable("non-number for a float column")
        return float(v)
    if pa.types.is_string(type_):
        if not isinstance(v, str):
            raise _NotPushable("non-text literal for a text column")
        return v
    if pa.types.is_boolean(type_):
        if not isinstance(v, bool):
            raise _NotPushable("non-boolean literal")
        return v
    if pa.types.is_timestamp(type_):
        if isinstance(v, dt.datetime):
            v = v.replace(tzinfo=_UTC) if v.tzinfo is None else v.astimezone(_UTC)
        elif isinstance(v, dt.date):
            v = dt.datetime(v.year, v.month, v.day, tzinfo=_UTC)
        else:
            raise _NotPushable("non-time literal for a time column")
        if type_.unit in ("s", "ms") and v.microsecond % (1_000_000 if type_.unit == "s" else 1_000):
            raise _NotPushable("literal finer than the column's unit")
        return v.replace(tzinfo=None)  # VAST keeps UTC times without a zone
    if pa.types.is_date32(type_):
        if isinstance(v, dt.datetime) or not isinstance(v, dt.date):
            raise _NotPushable("non-date literal for a date column")
        return v
    raise _NotPushable(f"no pushdown for {type_} columns")


# -- reading plans ----------------------------------------------------------------------------

#: vastdb builds each ``isin`` value into the request in Python (~0.2 ms of client CPU each), so
#: many keys are first looked up as one ``between(min, max)`` range, which is exact after a
#: client-side check and far cheaper when the keys are close together (time-ordered event ids,
#: a small table). Reading more than this many rows per key costs more than ``isin``: then the
#: range read is abandoned for ``isin`` in chunks.
RANGE_ROWS_PER_KEY = {"match": 64, "scan": 16}
#: Lists shorter than this go straight to ``isin``.
RANGE_MIN_KEYS = 200
#: A range read may always read this many rows.
RANGE_MIN_BUDGET = 10_000


class OverBudget(Exception):
    """A range read found more rows than reading by ``isin`` would cost."""


def chunk_is_in(pred: Predicate, size: int) -> list[Predicate]:
    """Split the longest lone ``is_in`` into chunks of ``size`` values: each chunk is read on its
    own (the rows they match are disjoint), which keeps every request under the size limit."""
    big = [i for i, c in enumerate(pred.clauses)
           if len(c.tests) == 1 and c.tests[0].op == "is_in" and len(c.tests[0].value) > size]
    if not big:
        return [pred]
    i = max(big, key=lambda j: len(pred.clauses[j].tests[0].value))
    test = pred.clauses[i].tests[0]
    values = list(dict.fromkeys(test.value))
    return [Predicate(pred.clauses[:i] + (Clause((Test(test.column, "is_in", tuple(values[j:j + size])),)),)
                      + pred.clauses[i + 1:]) for j in range(0, len(values), size)]


def as_range(pred: Predicate, storage: pa.Schema) -> list | None:
    """A plan reading the values of a long lone ``is_in`` as one ``between`` range, checked here."""
    big = [c for c in pred.clauses if len(c.tests) == 1 and c.tests[0].op == "is_in"
           and len(c.tests[0].value) >= RANGE_MIN_KEYS]
    if not big:
        return None
    clause = max(big, key=lambda c: len(c.tests[0].value))
    try:
        lo, hi = min(clause.tests[0].value), max(clause.tests[0].value)
    except TypeError:  # values that do not order (mixed types): no range
        return None
    rest = tuple(c for c in pred.clauses if c is not clause)
    compiled = compile_for_vast(Predicate((Clause((Test(clause.column, "between", (lo, hi, "both")),)), *rest)),
                                storage)
    if any(c.column == clause.column for c in compiled.residual.clauses):
        return None  # the range itself cannot be pushed
    compiled.residual = Predicate(compiled.residual.clauses + (clause,))
    return [compiled]


def range_budget(residual: Predicate) -> int:
    """Rows a range read may return before ``isin`` chunks would have been cheaper."""
    n = max((len(c.tests[0].value) for c in residual.clauses if c.tests[0].op == "is_in"), default=0)
    return max(RANGE_MIN_BUDGET, RANGE_ROWS_PER_KEY["scan"] * n)


def filter_batch(batch: pa.RecordBatch, expr) -> pa.RecordBatch:
    """The rows of ``batch`` where the polars expression ``expr`` is true (null counts as false)."""
    import polars as pl
    import pyarrow.compute as pc

    mask = pl.from_arrow(batch).select(expr.alias("_keep")).to_series().to_arrow()
    return batch.filter(pc.fill_null(mask, False))
