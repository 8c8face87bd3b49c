"""How SQLite runs the catalog's hot reads: each test takes the statements a read sent from
the store's log and asks the SQLite the store runs on (ADBC's: planners differ between
versions) for their plans. The answers are
checked elsewhere (the differential test); these catch a read that silently turns into a
scan of every row, which the answers cannot show.
"""

from __future__ import annotations

import datetime as dt
import logging

import adbc_driver_sqlite.dbapi as adbc
import pytest

import cosmoscope

UTC = dt.timezone.utc


@pytest.fixture
def plans(caplog):
    """``plans(path, read, table)``: the plan of each statement ``read()`` sent that reads ``table``."""

    def run(path, read, table: str) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="cosmoscope.store.sqlite"):
            read()
        out = []
        with adbc.connect(f"file:{path}?mode=ro") as con, con.cursor() as cur:
            for rec in caplog.records:
                if len(rec.args or ()) != 3 or f'FROM "{table}"' not in str(rec.args[1]):
                    continue
                cur.execute("EXPLAIN QUERY PLAN " + rec.args[1], parameters=rec.args[2] or None)
                out.append(" | ".join(r[3] for r in cur.fetchall()))
        assert out, f"no read of {table} was logged"
        return out

    return run


def test_rollup_reads_use_an_index_and_never_walk_one_they_must_leave(tmp_path, plans):
    """A mission's month is counted by an index search of rollup_days, a mission summary's
    minima and maxima by a walk of the index that covers them, and a grouping no index covers
    by a scan and a sort: walking a non-covering index visits every entry from it (a mission
    summary at 1M rows: 700 ms against 140 for the scan, 31 for the covering walk)."""
    path = tmp_path / "plans.sqlite"
    with cosmoscope.open_catalog(str(path)) as cat:
        cat.add_records([{"file_path": f"/p/{i}", "mission_id": ["A", "B"][i % 2], "data_quality_score": 0.5,
                          "observation_timestamp": dt.datetime(2026, 1, 1 + i % 28, tzinfo=UTC)} for i in range(60)])
    with cosmoscope.open_catalog(str(path), readonly=True) as cat:
        month = plans(path, lambda: cat.count(mission="A", start="2026-01-01", end="2026-02-01", min_quality=0.5),
                      "rollup_days")
        assert all("SEARCH rollup_days USING" in p for p in month), month
        summary = plans(path, cat.mission_summary, "rollup_days")
        assert any("USING COVERING INDEX" in p for p in summary), summary
        by_day = plans(path, lambda: cat.summarize(["day", "instrument_type"]), "rollup_days")
        assert all("SCAN rollup_days USING INDEX" not in p for p in by_day), by_day


@pytest.mark.parametrize("filters", [{"calib_level": 2}, {"product_type": "image"}, {"status": "failed"}, {},
                                     {"calib_level": 3, "status": "failed"}, {"product_type": "nothing"}])
@pytest.mark.parametrize("descending", [True, False])
def test_the_newest_rows_of_a_filter_are_found_in_a_window_of_the_time_index(tmp_path, plans, monkeypatch, filters,
                                                                             descending):
    """The dashboard's first page (newest first) of a filter on a column without an index looks
    among the newest rows through the time index instead of sorting the whole table (ties are
    ordered by the key, which made SQLite sort: 8 s at 10M rows, 10 ms in the window); when
    the window holds too few matches, the whole table is read as before. Either way the rows
    are polars' rows."""
    import polars as pl

    from cosmoscope.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "ORDER_WINDOW", 20)  # 80 rows: a window of a quarter
    path = tmp_path / "newest.sqlite"
    with cosmoscope.open_catalog(str(path)) as cat:
        cat.add_records([{"file_path": f"/n/{i}", "calib_level": i % 4, "dataproduct_type": ["image", "cube"][i % 2],
                          "processing_status": ["raw", "failed"][i % 3 == 0],
                          "observation_timestamp": dt.datetime(2026, 1, 1 + i % 9, i % 24, tzinfo=UTC)
                          if i % 7 else None} for i in range(80)])
    with cosmoscope.open_catalog(str(path), readonly=True) as cat:
        got = []
        found = plans(path, lambda: got.append(
            cat.search(**filters, sort="observation_timestamp", descending=descending).head(5).collect()),
            "observations")
        expr = cat.search_filter(**filters)
        rows = cat.observations().collect()
        matching = rows.filter(expr) if expr is not None else rows
        want = matching.sort(["observation_timestamp", "dataset_id"], descending=[descending, False],
                             nulls_last=True).head(5)
        assert got[0]["dataset_id"].to_list() == want["dataset_id"].to_list()
        assert isinstance(got[0], pl.DataFrame)
        window = [p for p in found if "SEARCH observations USING INDEX ix_observations_observation_timestamp" in p]
        newest = matching.sort("observation_timestamp", descending=descending, nulls_last=True).head(20)
        if filters and newest.filter(pl.col("observation_timestamp").is_not_null()).height >= 5:
            assert window, found  # the window answered


def test_a_page_of_a_mission_month_and_quality_is_found_in_the_index_alone(tmp_path, plans):
    """The API's page (mission, time range, lowest quality, in dataset_id order) finds its rows'
    ids in the mission/time index, which holds quality and dataset_id too, and reads only those
    rows: SQLite read every matching row whole to sort it (1.7 ms against 0.6 at 1M rows). A
    catalog of schema 7 (the narrow index) reads the same rows read-only and gets the index
    when opened writable."""
    import sqlite3

    from polars.testing import assert_frame_equal

    from cosmoscope import schema as S

    path = tmp_path / "page.sqlite"
    with cosmoscope.open_catalog(str(path)) as cat:
        cat.add_records([{"file_path": f"/g/{i}", "mission_id": ["A", "B", "C"][i % 3],
                          "data_quality_score": (i * 7 % 10) / 10,
                          "observation_timestamp": dt.datetime(2026, 1 + i % 3, 1 + i % 28, tzinfo=UTC)}
                         for i in range(300)])
    query = dict(mission="A", start="2026-01-01", end="2026-02-01", min_quality=0.5)

    def page(cat):
        return cat.search_page(7, offset=2, **query)

    def expected(cat):
        return cat.search(**query).sort("dataset_id").slice(2, 7).collect()

    with cosmoscope.open_catalog(str(path), readonly=True) as cat:
        assert_frame_equal(page(cat), expected(cat))
        assert page(cat).height == 7
        seen = plans(path, lambda: page(cat), "observations")
        wide = "ix_observations_mission_id_observation_timestamp_data_quality_score_dataset_id"
        assert any(f"SEARCH observations USING COVERING INDEX {wide}" in p for p in seen), seen
    con = sqlite3.connect(path)  # as schema 7 left it
    con.execute(f"DROP INDEX {wide}")
    con.execute("CREATE INDEX ix_observations_mission_id_observation_timestamp ON observations "
                "(mission_id, observation_timestamp)")
    con.execute("UPDATE cosmoscope_meta SET value = '7' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with cosmoscope.open_catalog(str(path), readonly=True) as old:
        assert old.schema_version == 7
        assert_frame_equal(page(old), expected(old))
    with cosmoscope.open_catalog(str(path)) as cat:
        assert cat.schema_version == S.SCHEMA_VERSION
        assert_frame_equal(page(cat), expected(cat))
        indexes = {r[0] for r in sqlite3.connect(path).execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'observations'")}
        assert wide in indexes and "ix_observations_mission_id_observation_timestamp" not in indexes
        assert page(cat)["data_quality_score"].min() >= 0.5
