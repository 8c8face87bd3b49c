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
