"""Predicate pushdown: what the store returns must equal what polars computes itself."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmoscope.predicate import Predicate, Test, split_predicate, successor
from cosmoscope.store.lazy import scan_table

from .test_store_contract import SCHEMA, T0, rows

UTC = dt.timezone.utc
N = 400


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from cosmoscope.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path_factory.mktemp("pred") / "p.sqlite"))
    store.create_table("things", SCHEMA, ["id"])
    data = rows(N)
    store.upsert("things", data, ["id"])
    yield store, pl.from_arrow(data)
    store.close()


def check(loaded, expr, reference=None, *, pushed_fully=None):
    store, df = loaded
    reference = expr if reference is None else reference
    want = df.filter(reference).sort("id")
    lf = scan_table(store, "things")
    got = lf.filter(expr).collect().sort("id")
    assert got.equals(want), f"{expr}: store gave {got.height} rows, polars {want.height}"
    if pushed_fully is not None:
        _, rest = split_predicate(expr, lf.collect_schema())
        assert (rest is None) == pushed_fully, f"{expr}: residual {rest}"
    return got


def test_search_like_filters_are_pushed_and_correct(loaded):
    got = check(loaded, (pl.col("name") == "name-2") & (pl.col("x") >= 50.0) & (pl.col("t") < T0 + dt.timedelta(seconds=300)),
                pushed_fully=True)
    assert got.height > 0


@pytest.mark.parametrize("literal, reference", [
    (dt.datetime(2026, 11, 27, 9, 17, tzinfo=dt.timezone(dt.timedelta(hours=1))), None),         # offset
    (pl.datetime(2026, 11, 27, 8, 17, time_zone="UTC"), None),                                    # function call
    (dt.date(2026, 11, 28), None),                                                                # date
])
def test_datetime_literals_of_every_kind(loaded, literal, reference):
    expr = pl.col("t") >= literal
    ref = pl.col("t") >= (reference if reference is not None else literal)
    got = check(loaded, expr, ref, pushed_fully=True)
    assert 0 <= got.height < N


@pytest.mark.parametrize("literal", [dt.datetime(2026, 11, 27, 8, 17), pl.datetime(2026, 11, 27, time_zone="Europe/Paris")])
def test_datetimes_polars_refuses_are_refused_with_polars_error(loaded, literal):
    """A naive time or another zone against a UTC column: polars raises, so does the catalog,
    whether the term would be pushed or not (search() is where naive times mean UTC)."""
    store, df = loaded
    lf = scan_table(store, "things")
    for expr in (pl.col("t") >= literal, (pl.col("t") >= literal) | (pl.col("x") > 1)):
        with pytest.raises(pl.exceptions.SchemaError):
            df.filter(expr)
        with pytest.raises(pl.exceptions.SchemaError):
            lf.filter(expr).collect()
        with pytest.raises(pl.exceptions.SchemaError):
            lf.filter((pl.col("name") == "no such name") & expr).collect()  # even when nothing is read


def test_is_in_lists_of_each_type(loaded):
    check(loaded, pl.col("name").is_in(["name-1", "name-4"]), pushed_fully=True)
    check(loaded, pl.col("n32").is_in([-50, 0, 49, 1000]), pushed_fully=True)
    check(loaded, pl.col("id").is_in([f"r{i:05d}" for i in range(0, N, 3)]), pushed_fully=True)  # > inline limit
    check(loaded, pl.col("t").is_in([T0, T0 + dt.timedelta(seconds=5)]), pushed_fully=True)


def test_untranslatable_terms_stay_residual_and_results_stay_right(loaded):
    check(loaded, (pl.col("n32") + 1) > 3, pushed_fully=False)
    check(loaded, (pl.col("name") == "name-1") | (pl.col("n32") > 40), pushed_fully=False)
    check(loaded, ~(pl.col("name") == "name-1"), pushed_fully=False)
    check(loaded, pl.col("t").dt.hour() == 8, pushed_fully=False)
    check(loaded, pl.col("name").str.contains("name-[12]"), pushed_fully=False)  # a regex
    # a mix: the pushable part is pushed, the rest filtered in polars
    expr = (pl.col("name") == "name-1") & ((pl.col("n32") * 2) > 10)
    pushed, rest = split_predicate(expr, loaded[0] and scan_table(loaded[0], "things").collect_schema())
    assert str(pushed) == "name == 'name-1'" and rest is not None
    check(loaded, expr)


def test_limits_with_and_without_residual(loaded):
    store, df = loaded
    lf = scan_table(store, "things")
    assert lf.filter(pl.col("name") == "name-1").head(4).collect().height == 4
    got = lf.filter((pl.col("n32") % 7) == 0).head(3).collect()
    assert got.height == 3 and (got["n32"] % 7 == 0).all()
    assert lf.head(0).collect().height == 0
    assert lf.select(pl.len()).collect().item() == N


def test_comparisons_with_null_match_nothing_like_polars(loaded):
    check(loaded, pl.col("name") == pl.lit(None, pl.String))


def test_successor_gives_prefix_ranges():
    assert successor("abc") == "abd"
    assert successor("a\U0010ffff") == "b"
    assert successor("\U0010ffff") is None
    assert successor("\ud7ff") == "\ue000"


# Property: random conjunctions of per-column disjunctions agree with polars.
names = st.sampled_from(["name-0", "name-1", "name-2", "name-9", ""])
ints = st.integers(-60, 60)
floats = st.floats(-10, 150, allow_nan=False)
times = st.integers(-20, N + 20).map(lambda s: T0 + dt.timedelta(seconds=s))
CMP = ["==", "!=", "<", "<=", ">", ">="]


def _cmp(col, op, v):
    c = pl.col(col)
    return {"==": c == v, "!=": c != v, "<": c < v, "<=": c <= v, ">": c > v, ">=": c >= v}[op]


@st.composite
def atom(draw, column):
    kind = draw(st.sampled_from(["cmp", "in", "between", "null", "notnull"] + (["sw", "contains"] if column == "name" else [])))
    values = {"name": names, "n32": ints, "x": floats, "t": times}[column]
    if kind == "cmp":
        return _cmp(column, draw(st.sampled_from(CMP)), draw(values))
    if kind == "in":
        return pl.col(column).is_in(draw(st.lists(values, max_size=6)))
    if kind == "between":
        a, b = sorted([draw(values), draw(values)])
        return pl.col(column).is_between(pl.lit(a), pl.lit(b), closed=draw(st.sampled_from(["both", "left", "right", "none"])))
    if kind == "null":
        return pl.col(column).is_null()
    if kind == "notnull":
        return pl.col(column).is_not_null()
    if kind == "sw":
        return pl.col(column).str.starts_with(draw(st.sampled_from(["na", "name-1", "", "x"])))
    return pl.col(column).str.contains(draw(st.sampled_from(["-1", "me", "zz"])), literal=True)


@st.composite
def conjunction(draw):
    terms = []
    for column in draw(st.lists(st.sampled_from(["name", "n32", "x", "t"]), min_size=1, max_size=3)):
        ors = draw(st.lists(atom(column), min_size=1, max_size=3))
        e = ors[0]
        for o in ors[1:]:
            e = e | o
        terms.append(e)
    e = terms[0]
    for t in terms[1:]:
        e = e & t
    return e


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=conjunction())
def test_random_predicates_agree_with_polars(loaded, expr):
    check(loaded, expr, pushed_fully=True)


def test_ir_prints_readably():
    p = Predicate.of(Test("mission_id", "is_in", tuple("abcdefg")), Test("ra", "is_null"))
    assert str(p) == "mission_id in ['a', 'b', 'c', 'd', 'e', ...] (7 values) AND ra is null"
