"""Rollups stay exactly what a recount of the rows gives, through every write, on every store.

Random write sequences (hypothesis) go through every write verb the catalog and the store offer;
after each, the stored rollups are compared with a recount by polars and the summaries read
from them with polars over the collected rows. A writer killed mid-batch leaves them consistent,
an older catalog gets them on open, and reads are routed to them only when they answer exactly.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import cosmoscope
from cosmoscope import schema as S
from cosmoscope.store import rollup
from cosmoscope.summaries import summarize_frame

UTC = dt.timezone.utc
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSIONS = ["COSMOS-7", "LYRA", "", "Ω-1", None]
TIMES = [None, dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(2026, 11, 3, 0, 0, tzinfo=UTC),
         dt.datetime(2026, 11, 3, 23, 59, 59, 999999, tzinfo=UTC), dt.datetime(2026, 11, 4, 12, tzinfo=UTC),
         dt.datetime(9999, 12, 31, 23, 59, tzinfo=UTC)]
QUALITY = [None, 0.0, 0.05, 0.049999999999999996, 0.5, 0.8, 0.95, 0.9999999999999999, 1.0]
SIZES = [None, 0, 1, 2**32 - 1, 2**32, 2**62, 2**63 - 1]
IDS = [f"ds-{i}" for i in range(12)]


def _rows(draw_values) -> st.SearchStrategy:
    row = st.fixed_dictionaries({
        "dataset_id": st.sampled_from(IDS),
        "mission_id": st.sampled_from(MISSIONS),
        "satellite_name": st.sampled_from(["A", None]),
        "instrument_type": st.sampled_from(["WFI", "HRS", None]),
        "observation_timestamp": st.sampled_from(TIMES),
        "observation_end": st.sampled_from(TIMES),
        "data_quality_score": st.sampled_from(draw_values),
        "file_size": st.sampled_from(SIZES),
        "processing_status": st.sampled_from([s.value for s in S.ProcessingStatus] + [None]),
        "calibration_status": st.sampled_from([s.value for s in S.CalibrationStatus] + [None]),
        "extraction_status": st.sampled_from([s.value for s in S.ExtractionStatus] + [None]),
        "file_status": st.sampled_from([s.value for s in S.FileStatus] + [None]),
        "validation_status": st.sampled_from([None, "passed", "problems"]),
        "calib_level": st.sampled_from([None, 0, 2, 3, 4]),
        "dataproduct_type": st.sampled_from([None, "image", "spectrum", ""]),
        "ra": st.sampled_from([None, 0.0, -0.0, 359.99999999999994, 180.5, -1e-20]),
        "dec": st.sampled_from([None, -90.0, 0.0, 89.99999999, 90.0]),
    })
    return st.lists(row, min_size=1, max_size=6)


#: One write: (verb, rows). Raw store writes may hold what the catalog refuses (quality 7.5, NaN).
WRITES = st.one_of(
    st.tuples(st.just("add_records"), _rows(QUALITY)),
    st.tuples(st.just("store_upsert"), _rows(QUALITY + [7.5, -2.0, float("nan")])),
    st.tuples(st.just("store_upsert_preserving"), _rows(QUALITY)),
    st.tuples(st.just("update_status"), st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True)),
    st.tuples(st.just("store_update"), _rows(QUALITY)),
    st.tuples(st.just("delete"), st.lists(st.sampled_from(IDS + ["ds-missing"]), min_size=1, max_size=4)),
    st.tuples(st.just("transaction"), _rows(QUALITY)),
)


def table_of(rows: list[dict], columns=None) -> pa.Table:
    columns = columns or list(rows[0])
    schema = pa.schema([S.OBSERVATIONS.schema.field(c) for c in columns])
    return pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=schema)


def write(cat, verb: str, arg) -> None:
    store = cat.store
    if verb == "add_records":
        cat.add_records([dict(r, file_path=f"/x/{r['dataset_id']}") for r in arg])
    elif verb == "store_upsert":
        store.upsert("observations", table_of(arg), ["dataset_id"])
    elif verb == "store_upsert_preserving":
        store.upsert("observations", table_of(arg), ["dataset_id"], preserve=["processing_status", "file_size"])
    elif verb == "update_status":
        have = set(cat.observations().select("dataset_id").collect()["dataset_id"])
        ids = [i for i in arg if i in have]
        if ids:
            cat.set_status(ids, "processed")
    elif verb == "store_update":
        store.update("observations", table_of(arg, ["dataset_id", "data_quality_score", "observation_timestamp",
                                                    "calibration_status", "calib_level", "dataproduct_type"]),
                     ["dataset_id"])
    elif verb == "delete":
        store.delete("observations", pa.table({"dataset_id": pa.array(arg, pa.string())}))
    elif verb == "transaction":
        with store.transaction():
            store.upsert("observations", table_of(arg), ["dataset_id"])
            store.delete("observations", pa.table({"dataset_id": [arg[0]["dataset_id"]]}))
            store.upsert("observations", table_of(arg[:1]), ["dataset_id"])


def assert_rollups_exact(cat) -> None:
    """The stored rollups equal a recount; what is read from them equals polars on the rows."""
    check = cat.check_rollups()
    assert check.ok, str(check)
    rows = cat.observations().collect()
    assert_frame_equal(cat.mission_summary(), summarize_frame(rows), check_exact=False, rel_tol=1e-9)
    for mission in ("LYRA", None):
        want = rows.filter(pl.col("mission_id").eq_missing(mission)).height if mission else rows.height
        assert cat.count(mission=mission) == want
    counts = cat.facet_counts(["validation_status", "file_status"])
    assert counts["n"].sum() == rows.height
    for by in (["calib_level"], ["dataproduct_type", "mission_id"]):  # schema 7's dimensions
        want = rows.group_by(by).agg(pl.len().cast(pl.Int64).alias("n"))
        assert_frame_equal(cat.facet_counts(by), want, check_row_order=False)
    assert cat.route(calib_level=2, product_type="image").table == S.ROLLUP_PRODUCTS.name
    assert cat.count(calib_level=2, product_type="image") == rows.filter(
        (pl.col("calib_level") >= 2) & (pl.col("dataproduct_type") == "image")).height
    q = rows["data_quality_score"]
    if not ((q < 0) | (q > 1)).any():
        assert cat.route(min_quality=0.8).rollups
    assert cat.count(min_quality=0.8) == rows.filter(pl.col("data_quality_score") >= 0.8).height


@pytest.fixture(scope="module", params=["sqlite", "vast"])
def shared_catalog(request, tmp_path_factory):
    """One catalog per backend that the random sequences keep writing to."""
    from .conftest import module_store_url

    with pytest.MonkeyPatch.context() as mp:
        cat = cosmoscope.open_catalog(module_store_url(request, tmp_path_factory, mp, "rollups"))
        yield cat
        cat.close()


@settings(max_examples=int(os.environ.get("COSMOSCOPE_ROLLUP_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=st.lists(WRITES, min_size=1, max_size=5))
def test_rollups_equal_a_recount_after_random_writes(shared_catalog, writes):
    cat = shared_catalog
    for verb, arg in writes:
        write(cat, verb, arg)
    assert_rollups_exact(cat)


@pytest.mark.parametrize("fold_at", [2, 3])
def test_appended_entries_fold_and_stay_exact(store_url, monkeypatch, fold_at):
    """A store that appends entries (VAST) folds a group's entries into one at FOLD_AT; SQLite
    keeps one entry per group whatever FOLD_AT says."""
    monkeypatch.setattr(rollup, "FOLD_AT", fold_at)
    with cosmoscope.open_catalog(store_url) as cat:
        for i in range(7):
            cat.add_records({"file_path": f"/f/{i}", "mission_id": "LYRA", "file_size": 10 + i,
                             "observation_timestamp": dt.datetime(2026, 1, 1, i, tzinfo=UTC)})
            entries = pl.from_arrow(pa.Table.from_batches(list(cat.store.scan(S.ROLLUP_STATUSES.name))))
            assert entries["group_key"].n_unique() == 1
            assert entries.height <= (fold_at - 1 if store_url.startswith("vast") else 1)
        assert_rollups_exact(cat)
        assert cat.mission_summary()["total_bytes"].item() == sum(10 + i for i in range(7))


def test_a_removed_extreme_is_counted_again(store_url):
    """Moving the earliest and the latest file out of a group, or deleting the lowest quality,
    leaves minimum and maximum exact."""
    with cosmoscope.open_catalog(store_url) as cat:
        cat.add_records([{"file_path": f"/e/{i}", "mission_id": "LYRA", "data_quality_score": q,
                          "observation_timestamp": dt.datetime(2026, 1, 1, h, tzinfo=UTC)}
                         for i, (h, q) in enumerate([(1, 0.5), (5, 0.2), (9, 0.9)])])
        ids = cat.search(mission="LYRA").sort("observation_timestamp").select("dataset_id").collect()["dataset_id"]
        cat.set_status([ids[0], ids[2]], "processed")
        raw = cat.summarize(["processing_status"]).filter(pl.col("processing_status") == "raw").row(0, named=True)
        assert raw["first_observation"] == raw["last_observation"] == dt.datetime(2026, 1, 1, 5, tzinfo=UTC)
        cat.store.delete("observations", pa.table({"dataset_id": [ids[1]]}))
        s = cat.mission_summary().row(0, named=True)
        assert s["min_quality"] == 0.5 and s["n_datasets"] == 2
        assert_rollups_exact(cat)


WRITER = textwrap.dedent("""
    import sys
    import cosmoscope
    cat = cosmoscope.open_catalog(sys.argv[1])
    i = 0
    while True:  # until killed: batches of 3,000 rows, each a transaction of rows and rollups
        cat.add_records([{"file_path": f"/k/{i}/{j}", "mission_id": ["A", "B"][j % 2], "file_size": j,
                          "data_quality_score": (j % 100) / 100} for j in range(3000)])
        i += 1
        print(i, flush=True)
""")


def test_a_killed_writer_leaves_rollups_consistent(store_url, tmp_path):
    cosmoscope.open_catalog(store_url).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), store_url], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert proc.stdout.readline().strip() == "1"  # one batch committed; the next one is under way
        proc.stdout.readline()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    with cosmoscope.open_catalog(store_url) as cat:
        n = cat.observations().select(pl.len()).collect().item()
        assert n % 3000 == 0 and n >= 6000  # whole batches only
        assert cat.count() == n
        assert_rollups_exact(cat)


def test_an_older_catalog_answers_from_rows_then_gets_rollups_on_open(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with cosmoscope.open_catalog(path) as cat:
        cat.add_records([{"file_path": f"/o/{i}", "mission_id": ["A", "B"][i % 2], "file_size": i,
                          "observation_timestamp": dt.datetime(2026, 1, 1 + i % 3, tzinfo=UTC)} for i in range(50)])
        want = cat.mission_summary()
    con = sqlite3.connect(path)  # as schema 3 left it: no rollup tables
    for name in S.DERIVED_TABLES:
        con.execute(f"DROP TABLE {name}")
        con.execute("DELETE FROM _cosmoscope_tables WHERE name = ?", (name,))
    con.execute("DELETE FROM cosmoscope_meta WHERE key = 'rollups'")
    con.execute("UPDATE cosmoscope_meta SET value = '3' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with cosmoscope.open_catalog(path, readonly=True) as old:
        assert not old.route().rollups and "no rollups yet" in str(old.route())
        assert_frame_equal(old.mission_summary(), want)
        assert old.count(mission="A") == 25
    with cosmoscope.open_catalog(path) as cat:  # writable: migrated, rollups built
        assert cat.schema_version == S.SCHEMA_VERSION and cat.route().rollups
        assert_frame_equal(cat.mission_summary(), want)
        assert_rollups_exact(cat)
        assert "migrate" in cat.events().collect()["action"].to_list()


def test_a_schema_6_catalog_gets_the_level_and_product_type_rollup_on_open(tmp_path):
    """Schema 7 added rollup_products (per calibration level and product type): read-only, a
    schema-6 catalog reads the rows; writable, the table is made and every rollup counted again."""
    import sqlite3

    path = tmp_path / "six.sqlite"
    records = [{"file_path": f"/s/{i}", "mission_id": ["A", "B"][i % 2], "file_size": i, "calib_level": i % 4,
                "dataproduct_type": ["image", "spectrum", None][i % 3], "data_quality_score": i / 60,
                "observation_timestamp": dt.datetime(2026, 1, 1 + i % 3, tzinfo=UTC)} for i in range(60)]
    with cosmoscope.open_catalog(path) as cat:
        cat.add_records(records)
        want = cat.facet_counts(["calib_level", "dataproduct_type"], mission="A")
    con = sqlite3.connect(path)  # as schema 6 left it
    con.execute(f"DROP TABLE {S.ROLLUP_PRODUCTS.name}")
    con.execute("DELETE FROM _cosmoscope_tables WHERE name = ?", (S.ROLLUP_PRODUCTS.name,))
    con.execute("UPDATE cosmoscope_meta SET value = '6' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with cosmoscope.open_catalog(path, readonly=True) as old:
        assert old.schema_version == 6
        assert not old.route(calib_level=1).rollups and "no rollups yet" in str(old.route())
        assert_frame_equal(old.facet_counts(["calib_level", "dataproduct_type"], mission="A"), want)
    with cosmoscope.open_catalog(path) as cat:  # writable: migrated, rollups rebuilt
        assert cat.schema_version == S.SCHEMA_VERSION
        assert cat.route(calib_level=1, mission="A").table == S.ROLLUP_PRODUCTS.name
        assert cat.route(mission="A", status="raw").table == S.ROLLUP_STATUSES.name  # the smaller table still
        assert_frame_equal(cat.facet_counts(["calib_level", "dataproduct_type"], mission="A"), want)
        assert_rollups_exact(cat)
        cat.add_records([dict(records[0], file_path="/s/new", calib_level=4)])  # kept from now on
        assert cat.count(calib_level=4) == 1
        assert_rollups_exact(cat)
        assert "migrate" in cat.events().collect()["action"].to_list()


def test_a_count_of_many_chunks_folds_them_as_it_goes(store_url, monkeypatch):
    """A rebuild or check reads the rows in chunks and folds its partial counts every few chunks
    (at 10M rows: after 4.5M): the folded parts and the next chunk's must add up."""
    class SmallBatches:  # the store's own reads, in batches of 10 rows as a big store gives many
        def __init__(self, ops):
            self.ops = ops

        def scan(self, table, columns, predicate):
            for batch in self.ops.scan(table, columns, predicate):
                yield from pa.Table.from_batches([batch]).to_batches(max_chunksize=10)

    with cosmoscope.open_catalog(store_url) as cat:
        cat.add_records([{"file_path": f"/c/{i}", "mission_id": ["A", "B", "C"][i % 3], "calib_level": i % 5,
                          "data_quality_score": i / 200, "file_size": i,
                          "observation_timestamp": dt.datetime(2026, 1, 1 + i % 20, tzinfo=UTC)} for i in range(200)])
        monkeypatch.setattr(rollup, "BUILD_CHUNK", 10)  # 20 chunks: folded twice on the way
        chunked = cat.store.atomically(lambda ops: rollup.source_contributions(SmallBatches(ops)), write=False)
        whole = cat.store.atomically(lambda ops: rollup.source_contributions(ops), write=False)
        for r in rollup.ROLLUPS:
            assert_frame_equal(chunked[r.name].select(whole[r.name].columns), whole[r.name],
                               check_row_order=False)


def test_rollups_that_disagree_are_not_read_until_rebuilt(store_url):
    with cosmoscope.open_catalog(store_url) as cat:
        cat.add_records([{"file_path": f"/d/{i}", "mission_id": "LYRA", "file_size": 1} for i in range(5)])
        entries = pa.Table.from_batches(list(cat.store.scan(S.ROLLUP_STATUSES.name)))
        bad = entries.set_column(entries.schema.get_field_index("n"), "n", pa.array([99] * entries.num_rows))
        cat.store.upsert(S.ROLLUP_STATUSES.name, bad, ["entry_id"])  # a rollup that drifted
        assert cat.count(mission="LYRA") == 99  # nothing has looked yet
        check = cat.check_rollups()
        assert not check.ok and "99" in str(check) and "validate --fix" in str(check)
        assert not cat.route(mission="LYRA").rollups and "disagreed" in str(cat.route(mission="LYRA"))
        assert cat.count(mission="LYRA") == 5  # counted from the rows meanwhile
        fixed = cat.check_rollups(fix=True)
        assert not fixed.ok  # what was found; the rebuild follows
        assert cat.route(mission="LYRA").rollups and cat.count(mission="LYRA") == 5
        assert cat.check_rollups().ok
        assert "rebuild_rollups" in cat.events().collect()["action"].to_list()


@pytest.mark.parametrize(("filters", "table"), [
    ({}, "rollup_statuses"),
    ({"mission": ["LYRA", "A"], "status": "raw"}, "rollup_statuses"),
    ({"calibration": "calibrated", "satellite": "X"}, "rollup_statuses"),
    ({"min_quality": 0.8}, "rollup_statuses"),
    ({"start": "2026-01-02", "end": dt.date(2026, 1, 3)}, "rollup_days"),
    ({"start": dt.datetime(2026, 1, 2, tzinfo=UTC), "mission": "A", "instrument": "WFI"}, "rollup_days"),
    ({"start": "2026-01-02", "calibration": "calibrated"}, None),  # no rollup has both
    ({"start": "2026-01-02T06:00"}, None),
    ({"min_quality": 0.81}, None),
    ({"target": "M31"}, None),
    ({"calib_level": 2}, "rollup_products"),  # schema 7
    ({"calib_level": 3, "product_type": ["image", "cube"], "mission": "A"}, "rollup_products"),
    ({"product_type": "spectrum", "min_quality": 0.5, "status": "raw"}, "rollup_products"),
    ({"calib_level": 2, "start": "2026-01-02"}, None),  # no rollup has both
])
def test_counts_are_routed_only_where_the_rollups_are_exact(catalog, filters, table):
    catalog.add_records([{"file_path": f"/r/{i}", "mission_id": ["A", "LYRA"][i % 2], "instrument_type": "WFI",
                          "satellite_name": "X", "calibration_status": "calibrated", "data_quality_score": i / 40,
                          "target_object": "M31", "calib_level": 2 + i % 2,
                          "dataproduct_type": ["image", "spectrum", None][i % 3],
                          "observation_timestamp": dt.datetime(2026, 1, 1, 6 * i, tzinfo=UTC)} for i in range(4 * 4)
                         if 6 * i < 24] + [{"file_path": f"/r/x{i}", "mission_id": "A", "instrument_type": "WFI",
                                            "satellite_name": "X", "data_quality_score": 0.9,
                                            "observation_timestamp": dt.datetime(2026, 1, 2 + i, 12, tzinfo=UTC)}
                                           for i in range(3)])
    route = catalog.route(**filters)
    assert route.rollups == (table is not None) and route.table == table, str(route)
    from cosmoscope.search import search_filter

    expr = search_filter(**filters)
    rows = catalog.observations().collect()
    assert catalog.count(**filters) == (rows.filter(expr) if expr is not None else rows).height


@pytest.mark.parametrize("bands", [("high",), ("good",), ("fair", "poor"), ("none",), ("good", "none"),
                                   ("high", "good", "fair", "poor", "none")])
def test_the_dashboards_quality_bands_are_counted_from_the_histogram(catalog, bands):
    """Every quality band the dashboard offers lies between histogram edges (or is 'no score'),
    so its counts come from the rollups, alone or with other filters, and equal the rows'."""
    from cosmoscope.routing import route
    from cosmoscope.ui.query import Filters, count

    catalog.add_records([{"file_path": f"/q/{i}", "mission_id": ["A", "B"][i % 2], "calib_level": i % 3,
                          "data_quality_score": QUALITY[i % len(QUALITY)]} for i in range(40)])
    rows = catalog.observations().collect()
    for filters in (Filters(quality_bands=bands), Filters(quality_bands=bands, levels=(1, 2), min_quality=0.5)):
        r = route(filters.expr())
        assert r.rollups and r.counts_only, str(r)
        assert count(catalog, filters) == rows.filter(filters.expr()).height

