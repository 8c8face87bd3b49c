"""The Store contract. Every backend in conftest.BACKENDS runs this file unchanged."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from cosmoscope.errors import StoreError, UnknownNameError
from cosmoscope.predicate import Clause, Predicate, Test

UTC = dt.timezone.utc
SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("n32", pa.int32()),
    pa.field("n64", pa.int64()),
    pa.field("x", pa.float64()),
    pa.field("t", pa.timestamp("us", tz="UTC")),
    pa.field("doc", pa.string()),
])
T0 = dt.datetime(2026, 11, 27, 8, 15, 0, 123456, tzinfo=UTC)


def rows(n, offset=0):
    return pa.table({
        "id": [f"r{i:05d}" for i in range(offset, offset + n)],
        "name": [None if i % 7 == 0 else f"name-{i % 5}" for i in range(offset, offset + n)],
        "n32": pa.array([i % 100 - 50 for i in range(offset, offset + n)], pa.int32()),
        "n64": [None if i % 11 == 0 else i * 10_000_000_000 for i in range(offset, offset + n)],
        "x": [None if i % 13 == 0 else i / 3 for i in range(offset, offset + n)],
        "t": pa.array([T0 + dt.timedelta(seconds=i) for i in range(offset, offset + n)], pa.timestamp("us", tz="UTC")),
        "doc": ['{"k": "ü ✓", "i": %d}' % i for i in range(offset, offset + n)],
    }, schema=SCHEMA)


@pytest.fixture
def table(store):
    store.create_table("things", SCHEMA, ["id"], indexes=[["name"], ["t"]])
    return "things"


def read(store, table, **kw) -> pa.Table:
    batches = list(store.scan(table, **kw))
    for b in batches:
        assert isinstance(b, pa.RecordBatch)
    if not batches:
        cols = kw.get("columns") or SCHEMA.names
        return pa.schema([SCHEMA.field(c) for c in cols]).empty_table()
    return pa.Table.from_batches(batches).sort_by("id") if "id" in batches[0].schema.names else pa.Table.from_batches(batches)


def test_created_table_is_listed_with_its_schema(store, table):
    assert store.tables()[table].equals(SCHEMA)
    store.create_table(table, SCHEMA, ["id"])  # idempotent
    assert list(store.tables()).count(table) == 1


def test_values_round_trip_exactly(store, table):
    data = rows(500)
    assert store.upsert(table, data, ["id"]) == 500
    back = read(store, table)
    assert back.schema.equals(SCHEMA)
    assert back.equals(data)


def test_upsert_overwrites_given_columns_and_keeps_others(store, table):
    store.upsert(table, rows(10), ["id"])
    change = pa.table({"id": ["r00003", "r00099"], "name": ["renamed", "new"]})
    store.upsert(table, change, ["id"])
    back = read(store, table)
    assert back.num_rows == 11
    r3 = back.filter(pa.compute.equal(back["id"], "r00003")).to_pylist()[0]
    assert r3["name"] == "renamed" and r3["n64"] == 30_000_000_000
    r99 = back.filter(pa.compute.equal(back["id"], "r00099")).to_pylist()[0]
    assert r99["name"] == "new" and r99["n64"] is None


def test_upsert_preserve_keeps_stored_value_on_existing_rows_only(store, table):
    store.upsert(table, rows(2), ["id"])
    later = pa.table({"id": ["r00000", "r00005"], "doc": ["changed", "fresh"], "name": ["a", "b"]})
    store.upsert(table, later, ["id"], preserve=["doc"])
    back = {r["id"]: r for r in read(store, table).to_pylist()}
    assert back["r00000"]["doc"] == rows(1)["doc"][0].as_py() and back["r00000"]["name"] == "a"
    assert back["r00005"]["doc"] == "fresh"


def test_projection_and_limit(store, table):
    store.upsert(table, rows(100), ["id"])
    back = read(store, table, columns=["x", "id"])
    assert back.column_names == ["x", "id"] and back.num_rows == 100
    assert sum(b.num_rows for b in store.scan(table, limit=7)) == 7
    assert sum(b.num_rows for b in store.scan(table, limit=0)) == 0


@pytest.mark.parametrize("test, expected", [
    (Test("name", "==", "name-1"), lambda r: r["name"] == "name-1"),
    (Test("name", "!=", "name-1"), lambda r: r["name"] is not None and r["name"] != "name-1"),
    (Test("n32", "<", -40), lambda r: r["n32"] < -40),
    (Test("n32", "<=", -40), lambda r: r["n32"] <= -40),
    (Test("x", ">", 100.5), lambda r: r["x"] is not None and r["x"] > 100.5),
    (Test("x", ">=", 100.0), lambda r: r["x"] is not None and r["x"] >= 100.0),
    (Test("n64", "is_in", (10_000_000_000, 50_000_000_000, 7)), lambda r: r["n64"] in (10_000_000_000, 50_000_000_000)),
    (Test("name", "is_in", ()), lambda r: False),
    (Test("id", "is_in", tuple(f"r{i:05d}" for i in range(0, 400, 2))), lambda r: int(r["id"][1:]) % 2 == 0),
    (Test("n32", "between", (-10, 10, "both")), lambda r: -10 <= r["n32"] <= 10),
    (Test("n32", "between", (-10, 10, "left")), lambda r: -10 <= r["n32"] < 10),
    (Test("n32", "between", (-10, 10, "right")), lambda r: -10 < r["n32"] <= 10),
    (Test("n32", "between", (-10, 10, "none")), lambda r: -10 < r["n32"] < 10),
    (Test("name", "is_null"), lambda r: r["name"] is None),
    (Test("x", "is_not_null"), lambda r: r["x"] is not None),
    (Test("id", "starts_with", "r001"), lambda r: r["id"].startswith("r001")),
    (Test("doc", "contains", '"i": 12'), lambda r: '"i": 12' in r["doc"]),
    (Test("doc", "contains", "ü ✓"), lambda r: True),
    (Test("t", ">=", T0 + dt.timedelta(seconds=150)), lambda r: r["t"] >= T0 + dt.timedelta(seconds=150)),
    (Test("t", "between", (T0, T0 + dt.timedelta(seconds=9), "both")), lambda r: r["t"] <= T0 + dt.timedelta(seconds=9)),
])
def test_each_pushed_test_selects_what_python_selects(store, table, test, expected):
    data = rows(300)
    store.upsert(table, data, ["id"])
    want = sorted(r["id"] for r in data.to_pylist() if expected(r))
    got = read(store, table, columns=["id"], predicate=Predicate.of(test))["id"].to_pylist()
    assert sorted(got) == want


def test_and_of_ors(store, table):
    store.upsert(table, rows(300), ["id"])
    pred = Predicate((Clause((Test("name", "==", "name-1"), Test("name", "==", "name-2"))),
                      Clause((Test("n32", "<", 0), Test("n32", "is_null")))))
    got = read(store, table, columns=["id", "name", "n32"], predicate=pred).to_pylist()
    want = [r for r in rows(300).to_pylist() if r["name"] in ("name-1", "name-2") and r["n32"] < 0]
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in want) and want


def test_limit_applies_after_the_filter(store, table):
    store.upsert(table, rows(300), ["id"])
    got = read(store, table, predicate=Predicate.of(Test("name", "==", "name-3")), limit=5)
    assert got.num_rows == 5 and set(got["name"].to_pylist()) == {"name-3"}


def test_update_and_delete_by_key(store, table):
    store.upsert(table, rows(20), ["id"])
    n = store.update(table, pa.table({"id": ["r00001", "r00002", "nope"], "x": [-1.0, -2.0, 9.0]}), ["id"])
    assert n == 2
    back = {r["id"]: r for r in read(store, table).to_pylist()}
    assert back["r00001"]["x"] == -1.0 and back["r00002"]["x"] == -2.0 and "nope" not in back
    assert back["r00001"]["name"] == rows(2)["name"][1].as_py()
    assert store.delete(table, pa.table({"id": ["r00001", "r00003", "nope"]})) == 2
    assert {r["id"] for r in read(store, table, columns=["id"]).to_pylist()} == {f"r{i:05d}" for i in range(20)} - {"r00001", "r00003"}


def test_transaction_rolls_back_everything_on_error(store, table):
    store.upsert(table, rows(5), ["id"])
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.upsert(table, rows(5, offset=100), ["id"])
            store.update(table, pa.table({"id": ["r00000"], "name": ["changed"]}), ["id"])
            store.delete(table, pa.table({"id": ["r00004"]}))
            raise RuntimeError("boom")
    back = read(store, table)
    assert back.equals(rows(5))


def test_reads_inside_a_transaction_see_its_own_writes(store, table):
    with store.transaction():
        store.upsert(table, rows(3), ["id"])
        inside = read(store, table, predicate=Predicate.of(Test("id", "==", "r00002")))
        assert inside.num_rows == 1 and inside.equals(rows(3).slice(2))


def test_large_upsert_is_complete(store, table):
    store.upsert(table, rows(45_000), ["id"])
    assert sum(b.num_rows for b in store.scan(table, columns=["id"])) == 45_000


def test_add_columns_keeps_rows(store, table):
    store.upsert(table, rows(3), ["id"])
    store.add_columns(table, [pa.field("extra", pa.string())])
    assert store.tables()[table].names[-1] == "extra"
    store.update(table, pa.table({"id": ["r00001"], "extra": ["hello"]}), ["id"])
    back = {r["id"]: r for r in read(store, table, columns=["id", "extra"]).to_pylist()}
    assert back["r00001"]["extra"] == "hello" and back["r00000"]["extra"] is None


def test_unknown_names_are_refused_with_the_valid_ones(store, table):
    with pytest.raises(UnknownNameError, match="Valid names: .*doc"):
        list(store.scan(table, columns=["nonsense"]))
    with pytest.raises(UnknownNameError, match="nonsense"):
        list(store.scan(table, predicate=Predicate.of(Test("nonsense", "==", 1))))
    with pytest.raises(UnknownNameError):
        store.upsert(table, pa.table({"id": ["a"], "bogus": [1]}), ["id"])
    with pytest.raises(UnknownNameError):
        list(store.scan("no_such_table"))


def test_upsert_without_the_key_is_refused(store, table):
    with pytest.raises(StoreError, match="key"):
        store.upsert(table, pa.table({"name": ["a"]}), ["id"])
