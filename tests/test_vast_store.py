"""The VAST Database store beyond the shared contract: URLs, credentials, types, pushdown,
faults, bad input and discovery from the VAST Catalog, all through the real vastdb SDK
against the wire-level fake server (tests/fakevast)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
import uuid

import polars as pl
import pyarrow as pa
import pytest

import cosmoscope
from cosmoscope.errors import CatalogOpenError, InvalidArgumentError, SchemaError, StoreError, UnknownNameError
from cosmoscope.predicate import Clause, Predicate, Test
from cosmoscope.store.base import open_store
from cosmoscope.store.vast_config import credentials_from_env, parse_vast_url
from cosmoscope.store.vast_predicate import compile_for_vast
from tests.fakevast import FakeVastServer
from tests.fakevast.fixtures import fresh_fake_vast, vast_schema_name  # noqa: F401 - fixtures

from .conftest import FAKE_VAST_OPTIONS, make_records

UTC = dt.timezone.utc
SCHEMA = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("n", pa.int32()),
                    pa.field("x", pa.float64()), pa.field("t", pa.timestamp("us", tz="UTC"))])


def rows(n, offset=0) -> pa.Table:
    t0 = dt.datetime(2026, 11, 27, tzinfo=UTC)
    return pa.table({"id": [f"r{i:05d}" for i in range(offset, offset + n)],
                     "n": pa.array([i % 50 for i in range(offset, offset + n)], pa.int32()),
                     "x": [i / 4 for i in range(offset, offset + n)],
                     "t": pa.array([t0 + dt.timedelta(seconds=i) for i in range(offset, offset + n)],
                                   pa.timestamp("us", tz="UTC"))}, schema=SCHEMA)


def url_of(server, schema=None, **options) -> str:
    query = "&".join([FAKE_VAST_OPTIONS] + [f"{k}={v}" for k, v in options.items()])
    return f"vast+http://{server.host}:{server.port}/{server.bucket}/{schema or 's' + uuid.uuid4().hex[:8]}?{query}"


@pytest.fixture
def creds(monkeypatch, fake_vast):
    monkeypatch.setenv("COSMOSCOPE_VAST_ACCESS_KEY", fake_vast.access_key)
    monkeypatch.setenv("COSMOSCOPE_VAST_SECRET_KEY", fake_vast.secret_key)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fresh(fresh_fake_vast, creds):  # noqa: F811 - the imported fixture
    """A server of this test's own (for faults), with a store holding table ``t``."""
    store = open_store(url_of(fresh_fake_vast))
    store.create_table("t", SCHEMA, ["id"])
    yield fresh_fake_vast, store
    store.close()


def read(store, table="t", **kw) -> pa.Table:
    batches = list(store.scan(table, **kw))
    cols = kw.get("columns") or store.tables()[table].names
    out = pa.Table.from_batches(batches, schema=pa.schema([store.tables()[table].field(c) for c in cols]))
    return out.sort_by("id") if "id" in cols else out


# -- URLs and credentials ---------------------------------------------------------------------

@pytest.mark.parametrize("url, endpoint, schema", [
    ("vast://http://10.0.0.1:8080/b/s", "http://10.0.0.1:8080", ("s",)),
    ("vast+http://10.0.0.1:8080/b/s", "http://10.0.0.1:8080", ("s",)),
    ("vast://10.0.0.1:8080/b/s?tls=0", "http://10.0.0.1:8080", ("s",)),
    ("vast://vip.example/b/a/b", "https://vip.example", ("a", "b")),
    ("vast+https://[::1]:443/b/s", "https://[::1]:443", ("s",)),
])
def test_url_forms(url, endpoint, schema):
    loc = parse_vast_url(url)
    assert (loc.endpoint, loc.bucket, loc.schema, loc.url) == (endpoint, "b", schema, url)


def test_url_options_become_query_config():
    loc = parse_vast_url("vast+http://h:1/b/s?splits=8&subsplits=2&data_endpoints=http://a:1,http://a:1"
                         "&limit_per_subsplit=1000&queue_priority=3")
    qc = loc.query_config()
    assert (qc.num_splits, qc.num_sub_splits, qc.limit_rows_per_sub_split, qc.queue_priority) == (8, 2, 1000, 3)
    assert qc.data_endpoints == ["http://a:1", "http://a:1"]
    assert parse_vast_url("vast+http://h:1/b/s").query_config().num_splits is None  # the SDK's estimate


@pytest.mark.parametrize("url, error, message", [
    ("vast+http://h:1/b/s?splitz=3", UnknownNameError, "Did you mean 'splits'"),
    ("vast+http://h:1/b/s?splits=many", InvalidArgumentError, "splits='many' is not valid"),
    ("vast+http://h:1/b/s?tls=1", CatalogOpenError, "contradicts the http endpoint"),
    ("vast+http://h:1/bucket-only", CatalogOpenError, "needs a bucket and a schema"),
    ("vast+http://h:port/b/s", CatalogOpenError, "port is not a number"),
])
def test_bad_urls_say_what_is_wrong(url, error, message):
    with pytest.raises(error, match=message):
        parse_vast_url(url)


def test_credentials_in_the_url_are_refused_without_being_repeated():
    with pytest.raises(CatalogOpenError, match="carries credentials") as info:
        parse_vast_url("vast://http://AKIAXYZ:TopSecret@10.0.0.1/b/s")
    assert "TopSecret" not in str(info.value) and "AKIAXYZ" not in str(info.value)


def test_credentials_come_from_the_environment():
    both = {"COSMOSCOPE_VAST_ACCESS_KEY": "a1", "COSMOSCOPE_VAST_SECRET_KEY": "s1",
            "AWS_ACCESS_KEY_ID": "a2", "AWS_SECRET_ACCESS_KEY": "s2"}
    c = credentials_from_env(both)
    assert (c.access, c.secret) == ("a1", "s1") and "s1" not in repr(c)
    assert credentials_from_env({"AWS_ACCESS_KEY_ID": "a2", "AWS_SECRET_ACCESS_KEY": "s2"}).secret == "s2"
    with pytest.raises(CatalogOpenError, match="COSMOSCOPE_VAST_SECRET_KEY is not set"):
        credentials_from_env({"COSMOSCOPE_VAST_ACCESS_KEY": "a1"})
    with pytest.raises(CatalogOpenError, match="no VAST credentials: set COSMOSCOPE_VAST_ACCESS_KEY"):
        credentials_from_env({})


def test_wrong_credentials_fail_at_once_and_never_leak(fake_vast, monkeypatch, caplog):
    secret = "wrong-secret-" + uuid.uuid4().hex
    monkeypatch.setenv("COSMOSCOPE_VAST_ACCESS_KEY", fake_vast.access_key)
    monkeypatch.setenv("COSMOSCOPE_VAST_SECRET_KEY", secret)
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(CatalogOpenError, match="refused the credentials from COSMOSCOPE_VAST_ACCESS_KEY") as info:
        cosmoscope.open_catalog(url_of(fake_vast))
    assert time.monotonic() - started < 5
    for text in (str(info.value), repr(info.value), caplog.text):
        assert secret not in text


def test_secret_never_appears_in_logs_reprs_or_errors(fake_vast, creds, caplog):
    caplog.set_level(logging.DEBUG)
    cat = cosmoscope.open_catalog(url_of(fake_vast))
    cat.add_records(make_records(20))
    assert cat.search(mission="LYRA").collect().height == 5
    with pytest.raises(UnknownNameError) as info:
        list(cat.store.scan("observations", ["nope"]))
    texts = [caplog.text, repr(cat), repr(cat.store), cat.url, str(info.value)]
    cat.close()
    assert caplog.text  # the SDK and the store did log at DEBUG
    for text in texts:
        assert fake_vast.secret_key not in text


def test_unreachable_endpoint_fails_at_once(creds):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    started = time.monotonic()
    with pytest.raises(CatalogOpenError, match=r"cannot reach VAST Database at http://127.0.0.1:\d+"):
        open_store(f"vast+http://127.0.0.1:{port}/b/s")
    assert time.monotonic() - started < 5


def test_missing_bucket_is_named(fake_vast, creds):
    with pytest.raises(CatalogOpenError, match="has no bucket 'no-such-bucket'"):
        open_store(f"vast+http://{fake_vast.host}:{fake_vast.port}/no-such-bucket/s")


def test_readonly_needs_an_existing_catalog_and_refuses_writes(fake_vast, creds):
    url = url_of(fake_vast)
    with pytest.raises(CatalogOpenError, match="no catalog at .* yet"):
        cosmoscope.open_catalog(url, readonly=True)
    cosmoscope.open_catalog(url).close()
    with cosmoscope.open_catalog(url, readonly=True) as cat:
        assert cat.count() == 0
        with pytest.raises(StoreError, match="read-only"):
            cat.store.upsert("observations", pa.table({"dataset_id": ["x"]}), ["dataset_id"])


# -- bad catalogs ---------------------------------------------------------------------------

def test_a_foreign_vast_schema_is_refused_untouched(fake_vast, creds, vast_schema_name):
    session = fake_vast.connect()
    with session.transaction() as tx:
        tx.bucket(fake_vast.bucket).create_schema(vast_schema_name).create_table("other", pa.schema([("a", pa.int64())]))
    with pytest.raises(SchemaError, match="holds tables \\(other\\) but is not a cosmoscope catalog"):
        cosmoscope.open_catalog(url_of(fake_vast, vast_schema_name))
    with session.transaction() as tx:
        assert tx.bucket(fake_vast.bucket).schema(vast_schema_name).tablenames() == ["other"]


def test_a_table_changed_outside_cosmoscope_is_reported(fake_vast, creds, vast_schema_name):
    url = url_of(fake_vast, vast_schema_name)
    cosmoscope.open_catalog(url).close()
    with fake_vast.connect().transaction() as tx:
        table = tx.bucket(fake_vast.bucket).schema(vast_schema_name).table("observations")
        table.drop_column(pa.schema([("file_size", pa.int64())]))
        table.add_column(pa.schema([("file_size", pa.string())]))
    with pytest.raises(SchemaError, match="column 'file_size' of table 'observations' is string in VAST, not int64"):
        cosmoscope.open_catalog(url)


def test_an_older_catalog_is_migrated_on_open(fake_vast, creds):
    from cosmoscope import schema as S

    url = url_of(fake_vast)
    store = open_store(url)  # a catalog from before the events table and the validation columns
    old = S.OBSERVATIONS.schema
    for col in ("validation_status", "validation_problems", "last_validated"):
        old = old.remove(old.get_field_index(col))
    for spec in S.TABLES.values():
        if spec.name not in ("events", *S.DERIVED_TABLES):  # rollups came with schema 6
            store.create_table(spec.name, old if spec.name == "observations" else spec.schema, spec.key)
    store.upsert("cosmoscope_meta", pa.table({"key": ["schema_version"], "value": ["0"]}), ["key"])
    store.upsert("observations", pa.table({"dataset_id": ["ds-1"], "mission_id": ["X"]}), ["dataset_id"])
    store.close()
    with cosmoscope.open_catalog(url) as cat:
        assert cat.schema_version == S.SCHEMA_VERSION
        assert cat.store.tables()["observations"].names[-3:] == ["validation_status", "validation_problems",
                                                                  "last_validated"]
        row = cat.observations().collect().row(0, named=True)
        assert row["mission_id"] == "X" and row["validation_status"] is None
        assert cat.events().collect()["action"].to_list() == ["migrate"]
    with cosmoscope.open_catalog(url) as again:  # what the migration wrote is what a new open reads
        assert again.store.tables() == cat.store.tables()


def test_a_schema_6_catalog_gets_the_level_and_product_type_rollup_on_open(fake_vast, creds):
    """Schema 7 added rollup_products: read-only, reads count the rows; writable, the table is
    made and the rollups counted again."""
    from cosmoscope import schema as S

    url = url_of(fake_vast)
    store = open_store(url)
    for spec in S.TABLES.values():
        if spec.name != S.ROLLUP_PRODUCTS.name:
            store.create_table(spec.name, spec.schema, spec.key)
    store.upsert("cosmoscope_meta", pa.table({"key": ["schema_version", "rollups"], "value": ["6", "ok"]}), ["key"])
    store.upsert("observations", pa.table({"dataset_id": [f"ds-{i}" for i in range(6)], "mission_id": ["X"] * 6,
                                           "calib_level": pa.array([1, 2, 2, 3, None, 2], pa.int32()),
                                           "dataproduct_type": ["image", "cube", "image", None, "image", "image"]}),
                 ["dataset_id"])
    store.close()
    with cosmoscope.open_catalog(url, readonly=True) as old:
        assert not old.route(calib_level=2).rollups and old.count(calib_level=2) == 4
    with cosmoscope.open_catalog(url) as cat:
        assert cat.schema_version == S.SCHEMA_VERSION
        assert cat.route(calib_level=2).table == S.ROLLUP_PRODUCTS.name
        assert cat.count(calib_level=2) == 4 and cat.count(calib_level=2, product_type="image") == 2
        assert cat.check_rollups().ok


def test_a_cell_over_the_limit_is_refused_before_writing(fresh):
    server, store = fresh
    big = pa.table({"id": ["a", "b"], "n": pa.array([1, 2], pa.int32())}).append_column(
        "x", pa.array([1.0, 2.0])).append_column("t", pa.nulls(2, pa.timestamp("us", tz="UTC")))
    store.add_columns("t", [pa.field("doc", pa.string())])
    big = big.append_column("doc", pa.array(["ok", "x" * 200_000]))
    with pytest.raises(StoreError, match="column 'doc' of t is 200,000 bytes; VAST Database keeps at most 128 KiB"):
        store.upsert("t", big, ["id"])
    assert store.tables()["t"].names[-1] == "doc" and read(store).num_rows == 0


# -- types ------------------------------------------------------------------------------------

def test_types_vastdb_rejects_are_cast_and_read_back_as_written(fake_vast, creds):
    schema = pa.schema([
        pa.field("id", pa.large_string(), nullable=False),
        pa.field("view", pa.string_view()),
        pa.field("blob", pa.large_binary()),
        pa.field("day", pa.date64()),
        pa.field("took", pa.duration("ms")),
        pa.field("kind", pa.dictionary(pa.int32(), pa.string())),
        pa.field("doc", pa.json_()),
        pa.field("local", pa.timestamp("ns", tz="Europe/Paris")),
        pa.field("tags", pa.large_list(pa.large_string())),
        pa.field("pos", pa.struct([("ra", pa.float64()), ("when", pa.timestamp("us", tz="UTC"))])),
        pa.field("x", pa.float64()),
    ])
    when = dt.datetime(2026, 11, 27, 8, 15, 1, 123456, tzinfo=UTC)
    data = pa.table({
        "id": ["a", "b", "c"], "view": ["v", None, "ü"], "blob": [b"\x00\xff", None, b""],
        "day": pa.array([dt.date(2026, 11, 27), None, dt.date(1970, 1, 1)], pa.date64()),
        "took": pa.array([1500, None, -3], pa.duration("ms")),
        "kind": pa.array(["raw", "cal", None]).cast(pa.dictionary(pa.int32(), pa.string())),
        "doc": pa.array(['{"a": 1}', None, "[]"], pa.string()).cast(pa.json_()),
        "local": pa.array([when, None, when], pa.timestamp("ns", tz="Europe/Paris")),
        "tags": pa.array([["x", "y"], [], None], pa.large_list(pa.large_string())),
        "pos": pa.array([{"ra": 1.5, "when": when}, None, {"ra": None, "when": None}], schema.field("pos").type),
        "x": [1.0, float("nan"), None],
    }, schema=schema)
    store = open_store(url_of(fake_vast))
    try:
        store.create_table("typed", schema, ["id"])
        store.upsert("typed", data, ["id"])
        back = pa.Table.from_batches(list(store.scan("typed")), schema=schema)
    finally:
        store.close()
    want = data.set_column(10, schema.field("x"), pa.array([1.0, None, None]))  # NaN is kept as null, as in SQLite
    assert back.schema.equals(schema)
    assert all(back.column(c).type == want.column(c).type for c in schema.names)
    assert sorted(back.to_pylist(), key=lambda r: r["id"]) == want.to_pylist()


# -- reads --------------------------------------------------------------------------------------

def test_predicates_vastdb_cannot_push_are_filtered_here():
    storage = pa.schema([("n", pa.int32()), ("u", pa.uint64()), ("s", pa.string()), ("t", pa.timestamp("us")),
                         ("l", pa.list_(pa.string()))])
    c = compile_for_vast(Predicate((
        Clause((Test("n", "<", 2.5),)),                                          # fractional: int() would cut it
        Clause((Test("u", "==", 2**63 + 1),)),                                   # the SDK refuses it itself
        Clause((Test("n", "between", (1, 5, "left")), Test("n", "==", 9))),      # half-open inside an OR
        Clause((Test("n", "between", (1, 5, "right")),)),                        # alone: two exact clauses
        Clause((Test("s", "is_not_null"),)),                                     # pushed as ~isnull
        Clause((Test("l", "is_null"),)),                                         # nested: not pushable
        Clause((Test("n", "is_in", ()), Test("n", "==", 3))),                    # empty isin dropped from OR
    )), storage)
    assert [str(cl) for cl in c.residual.clauses] == [
        "n < 2.5", "u == 9223372036854775809", "(n between 1 and 5 (left) OR n == 9)", "l is null"]
    assert c.pushed_text == ("(n between 1 and 5 (left) OR n == 9) AND n > 1 AND n <= 5 AND s is not null "
                             "AND n == 3")
    assert compile_for_vast(Predicate.of(Test("n", "is_in", ())), storage).empty


def test_unpushable_tests_give_the_same_rows_as_python(fresh):
    server, store = fresh
    store.upsert("t", rows(200), ["id"])
    pred = Predicate((Clause((Test("n", "<", 2.5),)), Clause((Test("x", "between", (1, 20, "left")),
                                                                Test("x", "==", 40.0)))))
    got = read(store, columns=["id"], predicate=pred)["id"].to_pylist()
    want = [r["id"] for r in rows(200).to_pylist() if r["n"] < 2.5 and (1 <= r["x"] < 20 or r["x"] == 40.0)]
    assert got == want and want
    limited = read(store, columns=["id"], predicate=pred, limit=3)
    assert limited.num_rows == 3 and set(limited["id"].to_pylist()) <= set(want)


@pytest.mark.parametrize("spread", [False, True])
def test_a_huge_is_in_is_read_as_a_range_or_in_chunks(fresh_fake_vast, creds, monkeypatch, spread):  # noqa: F811
    from cosmoscope.store import vast_predicate

    if spread:  # keys far apart: the range would read too many rows, so isin chunks are used
        monkeypatch.setattr(vast_predicate, "RANGE_MIN_BUDGET", 100)
        monkeypatch.setattr(vast_predicate, "RANGE_ROWS_PER_KEY", {"match": 0, "scan": 0})
    store = open_store(url_of(fresh_fake_vast, key_chunk=500))
    store.create_table("t", SCHEMA, ["id"])
    store.upsert("t", rows(3000), ["id"])
    fresh_fake_vast.clear_log()
    ids = tuple(f"r{i:05d}" for i in range(0, 6000, 2))  # 3000 values, half of them stored
    got = read(store, columns=["id"], predicate=Predicate.of(Test("id", "is_in", ids)))
    assert got["id"].to_pylist() == [f"r{i:05d}" for i in range(0, 3000, 2)]
    assert (fresh_fake_vast.count("select", table="t") >= 7) if spread else (fresh_fake_vast.count("select", table="t") == 1)
    fresh_fake_vast.clear_log()
    store.upsert("t", pa.table({"id": list(ids[:2000]), "n": pa.array([-1] * 2000, pa.int32())}), ["id"])
    assert (fresh_fake_vast.count("select", table="t") >= 5) if spread else (fresh_fake_vast.count("select", table="t") == 1)
    assert fresh_fake_vast.committed_rows(store.loc.schema_path, "t").num_rows == 3000 + 500
    assert read(store, predicate=Predicate.of(Test("n", "==", -1))).num_rows == 2000
    store.close()


def test_split_parallel_scan_reads_every_row_once(creds):
    with FakeVastServer(rows_per_row_group=128) as server:
        endpoint = f"http://{server.host}:{server.port}"
        store = open_store(url_of(server, splits=4, subsplits=2, data_endpoints=f"{endpoint},{endpoint}"))
        store.create_table("t", SCHEMA, ["id"])
        store.upsert("t", rows(5000), ["id"])
        server.clear_log()
        got = read(store, columns=["id", "n"])
        assert got["id"].to_pylist() == rows(5000)["id"].to_pylist()
        assert server.count("select", table="t") >= 4  # one answer stream per split at least
        store.close()


def test_lazy_frames_work_unchanged(fake_vast, creds):
    with cosmoscope.open_catalog(url_of(fake_vast)) as cat:
        cat.add_records(make_records(60))
        lf = cat.observations().filter((pl.col("file_size") % 2 == 0) & (pl.col("mission_id") == "LYRA"))
        got = lf.select("dataset_id", "file_size").collect()
        assert got.height > 0 and (got["file_size"] % 2 == 0).all()
        assert cat.count(cat.observations().filter(pl.col("target_object").str.contains("^N", literal=False))) >= 0
        assert cat.observations().head(7).collect().height == 7


# -- writes, transactions and faults -----------------------------------------------------------

def test_upsert_folds_rows_duplicated_by_racing_writers(fresh):
    server, store = fresh
    store.upsert("t", rows(3), ["id"])
    schema_name = store.loc.schema_path
    with server.connect().transaction() as tx:  # a second writer that inserted the same key
        tx.bucket(server.bucket).schema(schema_name).table("t").insert(
            pa.table({"id": ["r00001"], "n": pa.array([7], pa.int32()), "x": [0.0],
                      "t": pa.array([None], pa.timestamp("us"))}))
    store.upsert("t", pa.table({"id": ["r00001"], "n": pa.array([99], pa.int32())}), ["id"])
    assert server.committed_rows(schema_name, "t").num_rows == 3
    assert read(store).to_pylist()[1]["n"] == 99


@pytest.mark.parametrize("fault", ["slowdown", "unavailable", "dropped insert", "lost commit answer",
                                   "commit dropped before it arrived", "conflict"])
def test_transient_failures_are_retried_without_duplicates(fresh, fault):
    server, store = fresh
    store.upsert("t", rows(10), ["id"])
    {"slowdown": lambda: server.fail_next(2, 503, "SlowDown", verb="insert"),
     "unavailable": lambda: server.fail_next(2, 503, verb="insert"),
     "dropped insert": lambda: server.drop_connections(1, verb="insert", after_apply=True),
     "lost commit answer": lambda: server.drop_connections(1, verb="commit", after_apply=True),
     "commit dropped before it arrived": lambda: server.drop_connections(1, verb="commit"),
     "conflict": lambda: server.fail_next(1, 409, verb="commit")}[fault]()
    assert store.upsert("t", rows(30, offset=5), ["id"]) == 30
    assert any(r.fault for r in server.requests), "the fault was not hit"
    stored = server.committed_rows(store.loc.schema_path, "t")
    assert stored.num_rows == 35 and sorted(stored["id"].to_pylist()) == [f"r{i:05d}" for i in range(35)]
    assert read(store).equals(rows(35))


@pytest.mark.parametrize("after_apply", [True, False])
def test_a_lost_commit_answer_of_an_open_transaction_is_resolved(fresh, after_apply):
    server, store = fresh
    with cosmoscope.open_catalog(url_of(server, store.loc.schema_path + "c")) as cat:
        server.drop_connections(1, verb="commit", after_apply=after_apply)
        cat.add_records(make_records(50))  # rows and their events in one transaction
        assert [r.fault for r in server.requests if r.verb == "commit" and r.fault] == [
            "drop-after-apply" if after_apply else "drop"]
        assert cat.count() == 50 and cat.count(cat.events()) == 50
        stored = server.committed_rows(cat.store.loc.schema_path, "events")
        assert stored.num_rows == 50


def test_permanent_failures_are_reported_at_once(fresh):
    server, store = fresh
    server.clear_log()
    server.fail_next(1, 403, "AccessDenied", verb="insert")
    with pytest.raises(StoreError, match="could not write 5 rows to t: .*refused the credentials.*nothing of it"):
        store.upsert("t", rows(5), ["id"])
    assert server.count("insert") == 1 and read(store).num_rows == 0


def test_a_failed_batch_rolls_back_and_nothing_is_half_written(fresh):
    server, store = fresh
    store.upsert("t", rows(5), ["id"])
    with pytest.raises(StoreError, match="transaction was lost"):
        with store.transaction():
            store.upsert("t", rows(20, offset=5), ["id"])
            server.restart()  # the server forgets open transactions, as after a crash
            store.delete("t", pa.table({"id": ["r00000"]}))
    assert server.committed_rows(store.loc.schema_path, "t").num_rows == 5
    assert read(store).equals(rows(5))


def test_a_stopped_server_is_reported_and_then_reused(fresh):
    server, store = fresh
    server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"could not write 3 rows to t after \d+ attempts: lost the connection"):
            store.upsert("t", rows(3), ["id"])
        assert time.monotonic() - started < 15
    finally:
        server.start()
    store.upsert("t", rows(3), ["id"])
    assert read(store).equals(rows(3))


# -- discovery from the VAST Catalog -------------------------------------------------------------

@pytest.fixture(scope="module")
def small_sky(tmp_path_factory):
    from cosmoscope.simulate import simulate

    return simulate(tmp_path_factory.mktemp("vsky"), files=24, days=1, seed=3, progress=False)


def test_catalog_entries_equal_the_crawl(fake_vast, creds, small_sky):
    from cosmoscope.ingest.crawl import crawl
    from cosmoscope.ingest.vast_catalog import catalog_entries

    prefix = f"/sky-{uuid.uuid4().hex[:6]}"
    fake_vast.add_catalog_directory(small_sky.root, prefix)
    endpoint = f"http://{fake_vast.host}:{fake_vast.port}"
    listed = sorted(catalog_entries(endpoint, prefix, mounted_at=small_sky.root), key=lambda e: e.path)
    walked = sorted(crawl([small_sky.root]), key=lambda e: e.path)
    assert listed == walked and len(listed) >= 24
    only_fits = {e.path for e in catalog_entries(endpoint, prefix + "/", mounted_at=small_sky.root,
                                                 extensions=[".fits"])}
    assert only_fits == {e.path for e in walked if e.path.endswith(".fits")} and only_fits
    future = dt.datetime.now(UTC) + dt.timedelta(days=1)
    assert list(catalog_entries(endpoint, prefix, mounted_at=small_sky.root, since=future)) == []


def test_catalog_entries_say_when_the_mount_is_wrong(fake_vast, creds, tmp_path):
    from cosmoscope.ingest.vast_catalog import catalog_entries

    prefix = f"/elsewhere-{uuid.uuid4().hex[:6]}"
    fake_vast.add_catalog_entries([{"path": f"{prefix}/d/f{i}.fits", "size": 10, "mtime": 1.0e9} for i in range(6)])
    with pytest.raises(InvalidArgumentError, match=f"none of the first 5 is at {tmp_path}.*--mounted-at"):
        list(catalog_entries(f"http://{fake_vast.host}:{fake_vast.port}", prefix, mounted_at=tmp_path))


def test_cli_ingests_from_the_vast_catalog_into_a_vast_catalog(fake_vast, creds, small_sky, capsys):
    from cosmoscope.cli import main

    prefix = f"/cli-{uuid.uuid4().hex[:6]}"
    fake_vast.add_catalog_directory(small_sky.root, prefix)
    url = url_of(fake_vast)
    args = ["--catalog", url, "-q", "ingest", "--from-vast-catalog", prefix, "--mounted-at", str(small_sky.root),
            "--workers", "0", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["new"] == small_sky.manifest.height and first["failed"] == 0
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, small_sky.manifest.height)
    with pytest.raises(SystemExit) as info:
        main(["--catalog", url, "ingest", str(small_sky.root), "--from-vast-catalog", prefix])
    assert info.value.code == 2 and "not both" in capsys.readouterr().err
    with cosmoscope.open_catalog(url) as cat:
        assert cat.count() == small_sky.manifest.height
        assert os.path.commonpath(cat.observations().select("file_path").collect()["file_path"].to_list()) \
            .startswith(str(small_sky.root))
