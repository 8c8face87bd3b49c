"""The fake VAST server, driven end to end by the real ``vastdb`` SDK.

Every test goes through the SDK's own request building (flatbuffers, SigV4, Arrow IPC)
and response parsing; expected results are computed independently with pyarrow.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vastdb
from ibis import _
from vastdb import errors
from vastdb.config import BackoffConfig, QueryConfig

from tests.fakevast import CATALOG_COLUMNS, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, FakeVastServer
from tests.fakevast.fixtures import *  # noqa: F403 - fixtures
from tests.fakevast.handler import MAX_REQUEST_BYTES

UTC = dt.timezone.utc
CATALOG_LIKE = pa.schema([
    ("file_path", pa.utf8()),
    ("file_size", pa.int64()),
    ("version", pa.int32()),
    ("data_quality_score", pa.float64()),
    ("observation_timestamp", pa.timestamp("us", tz="UTC")),
])


def _no_wait(max_value=None):
    """A backoff wait generator that retries at once (keeps fault tests fast)."""
    while True:
        yield 0


def quick_retry_session(server: FakeVastServer):
    return server.connect(backoff_config=BackoffConfig(wait_gen=_no_wait, max_tries=5))


def catalog_like_rows(n: int, start: int = 0) -> pa.Table:
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    return pa.table({
        "file_path": [f"/data/mission{i % 3}/obs_{i:06d}.fits" for i in range(start, start + n)],
        "file_size": pa.array([1000 + i for i in range(start, start + n)], pa.int64()),
        "version": pa.array([i % 4 for i in range(start, start + n)], pa.int32()),
        "data_quality_score": [None if i % 7 == 0 else i / 10 for i in range(start, start + n)],
        "observation_timestamp": pa.array([base + dt.timedelta(hours=i) for i in range(start, start + n)],
                                          pa.timestamp("us", tz="UTC")),
    }, schema=CATALOG_LIKE)


def make_table(session, bucket: str, schema_name: str, arrow_schema=CATALOG_LIKE, rows=None, name="obs"):
    with session.transaction() as tx:
        schema = tx.bucket(bucket).create_schema(schema_name)
        table = schema.create_table(name, arrow_schema)
        if rows is not None:
            table.insert(rows)


def read(session, bucket, schema_name, name="obs", **kwargs) -> pa.Table:
    with session.transaction() as tx:
        return tx.bucket(bucket).schema(schema_name).table(name).select(**kwargs).read_all()


# ---- connection and errors -------------------------------------------------------------

def test_connect_reports_a_vast_server(fake_vast):
    session = fake_vast.connect()
    assert session.api.vast_version == (5, 5, 0, 0)
    assert requests.head(f"{fake_vast.endpoint}/{fake_vast.bucket}").headers["Server"] == "vast 5.5.0.0"


def test_wrong_credentials_are_refused_like_s3(fake_vast):
    with pytest.raises(errors.Forbidden) as wrong_secret:
        vastdb.connect(endpoint=fake_vast.endpoint, access=fake_vast.access_key, secret="not-the-secret")
    assert wrong_secret.value.code == "SignatureDoesNotMatch"
    with pytest.raises(errors.Forbidden) as unknown_key:
        vastdb.connect(endpoint=fake_vast.endpoint, access="AKIAUNKNOWN", secret=fake_vast.secret_key)
    assert unknown_key.value.code == "InvalidAccessKeyId"
    unsigned = requests.post(f"{fake_vast.endpoint}/?transaction")
    assert unsigned.status_code == 403 and b"<Code>AccessDenied</Code>" in unsigned.content


def test_missing_bucket_schema_and_table_raise_the_sdk_errors(fake_vast_session, fake_vast, vast_schema_name):
    with fake_vast_session.transaction() as tx:
        with pytest.raises(errors.MissingBucket):
            tx.bucket("no-such-bucket")
        bucket = tx.bucket(fake_vast.bucket)
        with pytest.raises(errors.MissingSchema):
            bucket.schema(vast_schema_name)
        assert bucket.schema(vast_schema_name, fail_if_missing=False) is None
        schema = bucket.create_schema(vast_schema_name)
        with pytest.raises(errors.MissingTable):
            schema.table("nope")
        assert schema.table("nope", fail_if_missing=False) is None
        with pytest.raises(errors.SchemaExists):
            bucket.create_schema(vast_schema_name)


# ---- schemas, tables, types ------------------------------------------------------------

def test_tables_are_created_listed_and_dropped(fake_vast_session, fake_vast, vast_schema_name):
    session = fake_vast_session
    with session.transaction() as tx:
        schema = tx.bucket(fake_vast.bucket).create_schema(vast_schema_name)
        assert schema.tables() == []
        for name in ("observations", "events", "lineage"):
            schema.create_table(name, CATALOG_LIKE)
        with pytest.raises(errors.TableExists):
            schema.create_table("events", CATALOG_LIKE)
    with session.transaction() as tx:
        schema = tx.bucket(fake_vast.bucket).schema(vast_schema_name)
        assert [t.name for t in schema.tables()] == ["events", "lineage", "observations"]
        table = schema.table("observations")
        assert table.arrow_schema == CATALOG_LIKE
        assert table.arrow_schema.field("observation_timestamp").type == pa.timestamp("us", tz="UTC")
        with pytest.raises(errors.Conflict):  # VAST refuses to drop a schema that has tables
            schema.drop()
    with session.transaction() as tx:
        schema = tx.bucket(fake_vast.bucket).schema(vast_schema_name)
        for table in schema.tables():
            table.drop()
        schema.drop()
    with session.transaction() as tx:
        assert tx.bucket(fake_vast.bucket).schema(vast_schema_name, fail_if_missing=False) is None


ALL_TYPES = pa.schema([
    ("s", pa.utf8()), ("b", pa.bool_()),
    ("i8", pa.int8()), ("i16", pa.int16()), ("i32", pa.int32()), ("i64", pa.int64()),
    ("u8", pa.uint8()), ("u16", pa.uint16()), ("u32", pa.uint32()), ("u64", pa.uint64()),
    ("f32", pa.float32()), ("f64", pa.float64()),
    ("ts_s", pa.timestamp("s")), ("ts_ms", pa.timestamp("ms", tz="UTC")),
    ("ts_us", pa.timestamp("us", tz="UTC")), ("ts_ns", pa.timestamp("ns", tz="Europe/Paris")),
    ("d", pa.date32()), ("dec", pa.decimal128(12, 3)), ("bin", pa.binary()),
    ("ints", pa.list_(pa.int64())), ("pair", pa.struct([("x", pa.int32()), ("y", pa.utf8())])),
    ("tags", pa.map_(pa.utf8(), pa.utf8())),
])


def test_every_catalog_type_round_trips_with_nulls(fake_vast_session, fake_vast, vast_schema_name):
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    rows = pa.table({
        "s": ["α-β", None, ""], "b": [True, None, False],
        "i8": [-128, None, 127], "i16": [-3, None, 3], "i32": [2**31 - 1, None, -(2**31)],
        "i64": [2**62, None, -1], "u8": [255, None, 0], "u16": [1, None, 65535],
        "u32": [2**32 - 1, None, 7], "u64": [2**63 + 5, None, 0],
        "f32": [1.5, None, -0.25], "f64": [float("inf"), None, 1e-300],
        "ts_s": [dt.datetime(2020, 1, 1), None, dt.datetime(1969, 12, 31)],
        "ts_ms": [when, None, when], "ts_us": [when, None, when], "ts_ns": [when, None, when],
        "d": [dt.date(2024, 2, 29), None, dt.date(1900, 1, 1)],
        "dec": [decimal.Decimal("123.456"), None, decimal.Decimal("-0.001")],
        "bin": [b"\x00\xff", None, b""],
        "ints": [[1, 2, None], None, []],
        "pair": [{"x": 1, "y": "a"}, None, {"x": None, "y": None}],
        "tags": [[("k", "v"), ("k2", None)], None, []],
    }, schema=ALL_TYPES)
    make_table(fake_vast_session, fake_vast.bucket, vast_schema_name, ALL_TYPES, rows)
    assert read(fake_vast_session, fake_vast.bucket, vast_schema_name) == rows
    subset = read(fake_vast_session, fake_vast.bucket, vast_schema_name, columns=["tags", "s", "pair"])
    assert subset == rows.select(["tags", "s", "pair"])
    assert read(fake_vast_session, fake_vast.bucket, vast_schema_name, columns=[]).num_rows == 3


@pytest.mark.parametrize("refused", [
    pa.large_string(), pa.large_binary(), pa.large_list(pa.int64()), pa.date64(),
    pa.duration("s"), pa.decimal256(40, 2),
])
def test_types_vast_refuses_are_refused_at_create(fresh_fake_vast, refused):
    session = fresh_fake_vast.connect()
    with session.transaction() as tx:
        schema = tx.bucket(fresh_fake_vast.bucket).create_schema("s")
        with pytest.raises(errors.NotSupportedSchema):
            schema.create_table("t", pa.schema([("ok", pa.int64()), ("bad", refused)]))
    # The SDK passed the schema on: it is the server that said no.
    assert fresh_fake_vast.count("create_table", status=400) == 1


def test_inserts_with_other_types_than_the_table_are_refused(fake_vast_session, fake_vast, vast_schema_name):
    make_table(fake_vast_session, fake_vast.bucket, vast_schema_name)
    good = catalog_like_rows(3)
    wrong = [
        good.set_column(2, "version", good["version"].cast(pa.int64())),          # int64 into int32
        good.set_column(0, "file_path", good["file_path"].cast(pa.large_string())),  # polars' default
        good.set_column(4, "observation_timestamp", good["observation_timestamp"].cast(pa.timestamp("us"))),
        good.append_column("unknown", pa.array([1, 2, 3])),
    ]
    for rows in wrong:
        with pytest.raises(errors.BadRequest) as refused:
            with fake_vast_session.transaction() as tx:
                tx.bucket(fake_vast.bucket).schema(vast_schema_name).table("obs").insert(rows)
        assert refused.value.code in ("TabularMismatchColumnType", "InvalidArgument")
    assert read(fake_vast_session, fake_vast.bucket, vast_schema_name).num_rows == 0


# ---- inserts, row ids, updates, deletes ------------------------------------------------

def test_insert_returns_row_ids_and_update_delete_use_them(fake_vast_session, fake_vast, vast_schema_name):
    session, bucket = fake_vast_session, fake_vast.bucket
    make_table(session, bucket, vast_schema_name)
    with session.transaction() as tx:
        table = tx.bucket(bucket).schema(vast_schema_name).table("obs")
        assert table.insert(catalog_like_rows(5)).to_pylist() == [0, 1, 2, 3, 4]
        assert table.insert(catalog_like_rows(3, start=5)).to_pylist() == [5, 6, 7]
    with session.transaction() as tx:
        table = tx.bucket(bucket).schema(vast_schema_name).table("obs")
        columns = ["file_path", "version"]
        hits = table.select(columns=columns, predicate=_.version == 1, internal_row_id=True).read_all()
        assert columns == ["file_path", "version", "$row_id"]  # SDK quirk: it appends to the caller's list
        assert hits["$row_id"].to_pylist() == [1, 5]
        table.update(hits.set_column(1, "version", pa.array([10, 11], pa.int32())), columns=["version"])
        table.delete(table.select(columns=[], predicate=_.file_size < 1002, internal_row_id=True).read_all())
    after = read(session, bucket, vast_schema_name, columns=["file_size", "version"])
    assert after.to_pydict() == {"file_size": [1002, 1003, 1004, 1005, 1006, 1007],
                                 "version": [2, 3, 0, 11, 2, 3]}
    with session.transaction() as tx:
        assert tx.bucket(bucket).schema(vast_schema_name).table("obs").get_stats().num_rows == 6


def test_large_insert_is_split_into_5_mib_requests(fresh_fake_vast):
    server = fresh_fake_vast
    session = server.connect()
    n = 120_000
    rows = pa.table({
        "file_path": [f"/archive/{'x' * 40}/{i:08d}.h5" for i in range(n)],
        "file_size": pa.array(range(n), pa.int64()),
    })
    assert rows.nbytes > 7 * 2**20
    make_table(session, server.bucket, "big", rows.schema)
    with session.transaction() as tx:
        row_ids = tx.bucket(server.bucket).schema("big").table("obs").insert(rows)
    assert row_ids.to_pylist() == list(range(n))
    writes = [r for r in server.requests if r.verb in ("insert", "update")]
    assert len(writes) >= 2 and all(r.request_bytes <= MAX_REQUEST_BYTES for r in writes)
    back = read(session, server.bucket, "big", columns=["file_size", "file_path"])
    assert back.num_rows == n
    assert back.sort_by("file_size") == rows.select(["file_size", "file_path"])


def test_add_column_is_an_additive_migration(fake_vast_session, fake_vast, vast_schema_name):
    session, bucket = fake_vast_session, fake_vast.bucket
    make_table(session, bucket, vast_schema_name, rows=catalog_like_rows(2))
    with session.transaction() as tx, session.transaction() as other:
        table = tx.bucket(bucket).schema(vast_schema_name).table("obs")
        table.add_column(pa.schema([("calib_level", pa.int16())]))
        assert table.arrow_schema.names[-1] == "calib_level"
        table.insert(catalog_like_rows(1, start=2).append_column("calib_level", pa.array([3], pa.int16())))
        unseen = other.bucket(bucket).schema(vast_schema_name).table("obs")
        assert "calib_level" not in unseen.arrow_schema.names  # not committed yet
    rows = read(session, bucket, vast_schema_name, columns=["file_size", "calib_level"])
    assert rows.to_pydict() == {"file_size": [1000, 1001, 1002], "calib_level": [None, None, 3]}


# ---- transactions -------------------------------------------------------------------------

def test_a_failed_transaction_leaves_no_trace(fake_vast_session, fake_vast, vast_schema_name):
    session, bucket = fake_vast_session, fake_vast.bucket
    with pytest.raises(RuntimeError, match="boom"):
        with session.transaction() as tx:
            tx.bucket(bucket).create_schema(vast_schema_name).create_table("obs", CATALOG_LIKE).insert(
                catalog_like_rows(4))
            raise RuntimeError("boom")
    with session.transaction() as tx:
        assert tx.bucket(bucket).schema(vast_schema_name, fail_if_missing=False) is None

    make_table(session, bucket, vast_schema_name, rows=catalog_like_rows(2))
    with pytest.raises(errors.BadRequest):
        with session.transaction() as tx:
            table = tx.bucket(bucket).schema(vast_schema_name).table("obs")
            table.insert(catalog_like_rows(3, start=2))
            table.delete(pa.table({"$row_id": pa.array([0], pa.uint64())}))
            table.insert(pa.table({"version": pa.array([1], pa.int64())}))  # refused: int64
    assert read(session, bucket, vast_schema_name)["file_size"].to_pylist() == [1000, 1001]


def test_transactions_are_isolated_and_concurrent_commits_merge(fake_vast_session, fake_vast, vast_schema_name):
    session, bucket = fake_vast_session, fake_vast.bucket
    make_table(session, bucket, vast_schema_name, rows=catalog_like_rows(2))
    with session.transaction() as tx1, session.transaction() as tx2:
        t1 = tx1.bucket(bucket).schema(vast_schema_name).table("obs")
        t2 = tx2.bucket(bucket).schema(vast_schema_name).table("obs")
        ids1 = t1.insert(catalog_like_rows(2, start=10)).to_pylist()
        ids2 = t2.insert(catalog_like_rows(2, start=20)).to_pylist()
        assert t2.select(columns=["file_size"]).read_all()["file_size"].to_pylist() == [1000, 1001, 1020, 1021]
        assert set(ids1).isdisjoint(ids2)
    rows = read(session, bucket, vast_schema_name, columns=["file_size"], internal_row_id=True)
    assert rows["file_size"].to_pylist() == [1000, 1001, 1010, 1011, 1020, 1021]
    assert rows["$row_id"].to_pylist() == sorted(rows["$row_id"].to_pylist())

    # Two transactions deleting the same row: the second commit conflicts and leaves nothing.
    first = session.transaction().__enter__()
    second = session.transaction().__enter__()
    victim = pa.table({"$row_id": pa.array([0], pa.uint64())})
    first.bucket(bucket).schema(vast_schema_name).table("obs").delete(victim)
    second_table = second.bucket(bucket).schema(vast_schema_name).table("obs")
    second_table.delete(victim)
    second_table.insert(catalog_like_rows(1, start=99))
    first.__exit__(None, None, None)
    with pytest.raises(errors.Conflict):
        second.__exit__(None, None, None)
    assert read(session, bucket, vast_schema_name)["file_size"].to_pylist() == [1001, 1010, 1011, 1020, 1021]


def test_concurrent_writers_each_commit_their_rows(fresh_fake_vast):
    server = fresh_fake_vast
    make_table(server.connect(), server.bucket, "s")

    def writer(k: int) -> list[int]:
        session = server.connect()
        ids = []
        for batch in range(5):
            with session.transaction() as tx:
                table = tx.bucket(server.bucket).schema("s").table("obs")
                ids += table.insert(catalog_like_rows(20, start=1000 * k + 20 * batch)).to_pylist()
        return ids

    with ThreadPoolExecutor(4) as pool:
        ids = [i for chunk in pool.map(writer, range(4)) for i in chunk]
    assert sorted(ids) == list(range(400))
    rows = read(server.connect(), server.bucket, "s", columns=["file_size"])
    assert sorted(rows["file_size"].to_pylist()) == sorted(
        1000 + 1000 * k + i for k in range(4) for i in range(100))


# ---- queries -------------------------------------------------------------------------------

# Few distinct values, so that literals often equal stored values (where < and <= differ).
_INT = st.integers(-3, 3)
_FLOAT = st.sampled_from([-1.5, -0.0, 0.5, 2.0, float("inf")])
_TEXT = st.text(alphabet="abα", max_size=2)
_TIME = st.integers(0, 4).map(lambda h: dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=h))
_COLUMNS = {"i": (pa.int32(), _INT), "j": (pa.int64(), _INT), "x": (pa.float64(), _FLOAT),
            "s": (pa.utf8(), _TEXT), "t": (pa.timestamp("us", tz="UTC"), _TIME)}
_OPS = ["==", "!=", "<", "<=", ">", ">="]


@st.composite
def _test(draw, column: str):
    values = _COLUMNS[column][1]
    kinds = ["cmp", "isin", "between", "isnull", "notnull"] + (["startswith", "contains"] if column == "s" else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "cmp":
        return (kind, draw(st.sampled_from(_OPS)), draw(values))
    if kind == "isin":
        return (kind, draw(st.lists(values, min_size=1, max_size=4)))
    if kind == "between":
        return (kind, *sorted([draw(values), draw(values)]))
    if kind in ("startswith", "contains"):
        return (kind, draw(st.text(alphabet="abα", max_size=2)))
    return (kind,)


@st.composite
def predicates(draw):
    """An AND over distinct columns of ORs of simple tests: exactly what VAST pushes down."""
    columns = draw(st.lists(st.sampled_from(sorted(_COLUMNS)), min_size=1, max_size=3, unique=True))
    return [(c, draw(st.lists(_test(c), min_size=1, max_size=3))) for c in columns]


def _ibis_test(column, test):
    col, kind = _[column], test[0]
    if kind == "cmp":
        return {"==": col == test[2], "!=": col != test[2], "<": col < test[2], "<=": col <= test[2],
                ">": col > test[2], ">=": col >= test[2]}[test[1]]
    if kind == "isin":
        return col.isin(test[1])
    if kind == "between":
        return col.between(test[1], test[2])
    if kind == "isnull":
        return col.isnull()
    if kind == "notnull":
        return ~col.isnull()  # ibis' notnull() is refused by the SDK
    return col.startswith(test[1]) if kind == "startswith" else col.contains(test[1])


def _arrow_test(column, test):
    col, kind = pc.field(column), test[0]
    if kind == "cmp":
        return {"==": col == test[2], "!=": col != test[2], "<": col < test[2], "<=": col <= test[2],
                ">": col > test[2], ">=": col >= test[2]}[test[1]]
    if kind == "isin":
        return col.isin(test[1])
    if kind == "between":
        return (col >= test[1]) & (col <= test[2])
    if kind == "isnull":
        return col.is_null()
    if kind == "notnull":
        return ~col.is_null()
    if kind == "startswith":
        return pc.starts_with(col, test[1])
    return pc.match_substring(col, test[1])


def _combine(spec, one):
    result = None
    for column, tests in spec:
        group = None
        for test in tests:
            group = one(column, test) if group is None else group | one(column, test)
        result = group if result is None else result & group
    return result


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(*(st.none() | v for _t, v in _COLUMNS.values())), max_size=30),
       spec=st.lists(predicates(), min_size=1, max_size=3))
def test_pushed_down_predicates_match_pyarrow(fake_vast_session, fake_vast, vast_schema_name, rows, spec):
    arrow_schema = pa.schema([("id", pa.int64())] + [(c, t) for c, (t, _v) in _COLUMNS.items()])
    data = pa.Table.from_pylist(
        [{"id": k, **dict(zip(_COLUMNS, row))} for k, row in enumerate(rows)], schema=arrow_schema)
    with fake_vast_session.transaction() as tx:
        bucket = tx.bucket(fake_vast.bucket)
        schema = bucket.schema(vast_schema_name, fail_if_missing=False) or bucket.create_schema(vast_schema_name)
        table = schema.table("q", fail_if_missing=False)
        if table is not None:
            table.drop()
        table = schema.create_table("q", arrow_schema)
        if data.num_rows:
            table.insert(data)
        for predicate in spec:
            got = table.select(columns=["id"], predicate=_combine(predicate, _ibis_test)).read_all()
            want = data.filter(_combine(predicate, _arrow_test))["id"]
            assert sorted(got["id"].to_pylist()) == sorted(want.to_pylist()), predicate


def test_each_predicate_kind_matches_pyarrow(fake_vast_session, fake_vast, vast_schema_name):
    arrow_schema = pa.schema([("id", pa.int64())] + [(c, t) for c, (t, _v) in _COLUMNS.items()])
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    data = pa.Table.from_pylist([
        {"id": 0, "i": -2, "j": 5, "x": -1.5, "s": "a", "t": t0},
        {"id": 1, "i": 0, "j": None, "x": 0.5, "s": "ab", "t": t0 + dt.timedelta(hours=1)},
        {"id": 2, "i": 1, "j": 7, "x": None, "s": None, "t": None},
        {"id": 3, "i": None, "j": 7, "x": 2.0, "s": "b", "t": t0 + dt.timedelta(hours=2)},
        {"id": 4, "i": 1, "j": -1, "x": 0.5, "s": "α", "t": t0 + dt.timedelta(hours=1)},
        {"id": 5, "i": 3, "j": 0, "x": 3.0, "s": "", "t": t0 + dt.timedelta(hours=3)},
    ], schema=arrow_schema)
    literal = {"i": 1, "j": 7, "x": 0.5, "s": "ab", "t": t0 + dt.timedelta(hours=1)}
    pair = {"i": (0, 1), "j": (-1, 5), "x": (0.5, 2.0), "s": ("a", "b"), "t": (t0, t0 + dt.timedelta(hours=1))}
    make_table(fake_vast_session, fake_vast.bucket, vast_schema_name, arrow_schema, data)
    cases = []
    for column in _COLUMNS:
        cases += [[(column, [("cmp", op, literal[column])])] for op in _OPS]
        cases += [[(column, [("isin", list(pair[column]))])], [(column, [("between", *pair[column])])],
                  [(column, [("isnull",)])], [(column, [("notnull",)])]]
    cases += [[("s", [(kind, text)])] for kind in ("startswith", "contains") for text in ("", "a", "b", "α", "ab")]
    cases.append([("i", [("cmp", ">", 0), ("isnull",)]), ("s", [("startswith", "a"), ("cmp", "==", "b")])])
    with fake_vast_session.transaction() as tx:
        table = tx.bucket(fake_vast.bucket).schema(vast_schema_name).table("obs")
        for spec in cases:
            got = table.select(columns=["id"], predicate=_combine(spec, _ibis_test)).read_all()["id"]
            want = data.filter(_combine(spec, _arrow_test))["id"]
            assert sorted(got.to_pylist()) == want.to_pylist(), spec


def test_startswith_travels_as_a_byte_range(fake_vast_session, fake_vast, vast_schema_name):
    names = ["a", "ab", "abc", None, "abd", "α", "", "b", "a\x7f", "a\u07ff", "a\uffff"]
    schema = pa.schema([("s", pa.utf8())])
    make_table(fake_vast_session, fake_vast.bucket, vast_schema_name, schema, pa.table({"s": names}, schema))
    for prefix in ["", "a", "ab", "α", "a\x7f", "a\u07ff", "a\uffff", "zz"]:
        got = read(fake_vast_session, fake_vast.bucket, vast_schema_name, predicate=_.s.startswith(prefix))
        assert got["s"].to_pylist() == [n for n in names if n is not None and n.startswith(prefix)], prefix


def test_limit_rows_returns_that_many_matching_rows(fake_vast_session, fake_vast, vast_schema_name):
    make_table(fake_vast_session, fake_vast.bucket, vast_schema_name, rows=catalog_like_rows(500))
    got = read(fake_vast_session, fake_vast.bucket, vast_schema_name, predicate=_.version == 2, limit_rows=7)
    assert got.num_rows == 7 and set(got["version"].to_pylist()) == {2}
    everything = read(fake_vast_session, fake_vast.bucket, vast_schema_name, predicate=_.version == 2,
                      limit_rows=1000)
    assert everything.num_rows == 125


@pytest.mark.parametrize("splits,sub_splits,per_sub_split", [(1, 1, 64), (3, 4, 50), (8, 2, 1000)])
def test_splits_and_sub_splits_return_every_row_once(fresh_fake_vast, splits, sub_splits, per_sub_split):
    server = fresh_fake_vast
    server.rows_per_row_group = 100  # VAST uses 2**16; smaller groups spread 2,500 rows out
    session = server.connect()
    make_table(session, server.bucket, "s", rows=catalog_like_rows(2_500))
    config = QueryConfig(num_splits=splits, num_sub_splits=sub_splits, num_row_groups_per_sub_split=1,
                         limit_rows_per_sub_split=per_sub_split)
    server.clear_log()
    everything = read(session, server.bucket, "s", columns=["file_size"], config=config)
    assert sorted(everything["file_size"].to_pylist()) == list(range(1000, 3500))
    assert server.count("select") >= splits
    filtered = read(session, server.bucket, "s", config=config, predicate=(_.version == 3) & (_.file_size > 2000))
    assert sorted(filtered["file_size"].to_pylist()) == [s for s in range(2001, 3500) if (s - 1000) % 4 == 3]
    with session.transaction() as tx:
        readers = tx.bucket(server.bucket).schema("s").table("obs").select_splits(columns=["file_size"], config=config)
        parts = [reader.read_all() for reader in readers]
    assert len(parts) == splits
    assert sorted(pa.concat_tables(parts)["file_size"].to_pylist()) == list(range(1000, 3500))


# ---- faults --------------------------------------------------------------------------------

def test_injected_errors_surface_as_sdk_errors(fresh_fake_vast):
    server = fresh_fake_vast
    session = quick_retry_session(server)
    make_table(session, server.bucket, "s")
    server.fail_next(1, status=503, verb="insert")
    with pytest.raises(errors.ServiceUnavailable):
        with session.transaction() as tx:
            tx.bucket(server.bucket).schema("s").table("obs").insert(catalog_like_rows(2))
    server.fail_next(2, status=503, code="SlowDown", verb="insert")  # the SDK retries SlowDown
    with session.transaction() as tx:
        tx.bucket(server.bucket).schema("s").table("obs").insert(catalog_like_rows(2))
    assert server.count("insert", status=503) == 3
    assert server.count("insert", status=200) == 1
    assert read(session, server.bucket, "s").num_rows == 2


@pytest.mark.parametrize("after_apply", [False, True])
def test_a_dropped_connection_during_insert_loses_the_transaction(fresh_fake_vast, after_apply):
    server = fresh_fake_vast
    session = quick_retry_session(server)
    make_table(session, server.bucket, "s")
    server.drop_connections(1, verb="insert", after_apply=after_apply)
    with pytest.raises(errors.ConnectionError):
        with session.transaction() as tx:
            tx.bucket(server.bucket).schema("s").table("obs").insert(catalog_like_rows(3))
    assert read(session, server.bucket, "s").num_rows == 0
    assert [r.fault for r in server.requests if r.fault] == ["drop-after-apply" if after_apply else "drop"]


def test_a_cut_select_response_is_resumed_without_duplicates(fresh_fake_vast):
    server = fresh_fake_vast
    server.rows_per_row_group = 50
    session = quick_retry_session(server)
    make_table(session, server.bucket, "s", rows=catalog_like_rows(1_000))
    config = QueryConfig(num_splits=1, num_sub_splits=4, num_row_groups_per_sub_split=1,
                         limit_rows_per_sub_split=40)
    server.truncate_responses(1, verb="select")
    got = read(session, server.bucket, "s", columns=["file_size"], config=config)
    assert sorted(got["file_size"].to_pylist()) == list(range(1000, 2000))
    assert [r.fault for r in server.requests if r.verb == "select"][0] == "truncate"


def test_a_restart_loses_open_transactions_but_keeps_commits(fresh_fake_vast, tmp_path):
    server = fresh_fake_vast
    session = quick_retry_session(server)
    make_table(session, server.bucket, "s", rows=catalog_like_rows(3))
    tx = session.transaction().__enter__()
    tx.bucket(server.bucket).schema("s").table("obs").insert(catalog_like_rows(2, start=3))
    server.restart()  # same port; the open transaction dies with the old process state
    with pytest.raises(errors.BadRequest) as lost:
        tx.__exit__(None, None, None)
    assert lost.value.code == "TabularInvalidTransaction"
    assert read(session, server.bucket, "s").num_rows == 3

    server.stop()
    reborn = FakeVastServer(data_dir=tmp_path / "vast").start()  # a new server object, same data
    try:
        assert read(reborn.connect(), reborn.bucket, "s") == catalog_like_rows(3)
    finally:
        reborn.stop()


def test_the_server_runs_as_a_separate_process(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakevast", "--port", "0", "--data-dir", str(tmp_path)],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().split()[4]
        session = vastdb.connect(endpoint=endpoint, access=DEFAULT_ACCESS_KEY, secret=DEFAULT_SECRET_KEY)
        make_table(session, "cosmoscope", "s", rows=catalog_like_rows(2))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert (tmp_path / "fakevast-state.pickle").exists()


# ---- VAST Catalog ----------------------------------------------------------------------------

def test_catalog_entries_can_be_queried_through_tx_catalog(fresh_fake_vast, tmp_path):
    tree = tmp_path / "archive"
    (tree / "chandra" / "obs1").mkdir(parents=True)
    (tree / "chandra" / "obs1" / "evt2.fits").write_bytes(b"x" * 2880)
    (tree / "chandra" / "README").write_text("notes")
    (tree / "xmm").mkdir()
    (tree / "xmm" / "pn.FITS.gz").write_bytes(b"y" * 10)
    server = fresh_fake_vast
    assert server.add_catalog_directory(tree, prefix="/data/archive") == 6
    server.add_catalog_entries([{"path": "/other/tape.h5", "size": 5, "mtime": dt.datetime(2020, 1, 1)}])
    session = server.connect()
    with session.transaction() as tx:
        catalog = tx.catalog()
        assert catalog.arrow_schema == CATALOG_COLUMNS
        files = catalog.select(
            columns=["parent_path", "name", "extension", "size", "mtime"],
            predicate=_.parent_path.startswith("/data/archive/") & (_.element_type == "FILE"),
        ).read_all().sort_by("name")
        everything = catalog.select().read_all()
        with pytest.raises(errors.Forbidden):  # the catalog is the cluster's, not ours
            catalog.insert(everything.slice(0, 1))
    assert files["name"].to_pylist() == ["README", "evt2.fits", "pn.FITS.gz"]
    assert files["parent_path"].to_pylist() == ["/data/archive/chandra/", "/data/archive/chandra/obs1/",
                                                "/data/archive/xmm/"]
    assert files["extension"].to_pylist() == [None, "fits", "gz"]
    assert files["size"].to_pylist() == [5, 2880, 10]
    assert files.schema.field("mtime").type == pa.timestamp("ns")
    evt = tree / "chandra" / "obs1" / "evt2.fits"
    assert files["mtime"][1].value == os.stat(evt).st_mtime_ns
    assert everything.num_rows == 7 and set(everything["element_type"].to_pylist()) == {"FILE", "DIR"}
