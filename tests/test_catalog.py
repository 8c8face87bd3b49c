"""The Catalog API: search helpers, summaries, lineage, SQL, ObsCore, audited writes, bad input."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3

import polars as pl
import pytest

import cosmoscope
from cosmoscope import schema as S
from cosmoscope.errors import (CatalogOpenError, DatasetNotFoundError, InvalidArgumentError, SchemaError,
                               UnknownNameError)

from .conftest import UTC, make_records


@pytest.fixture
def filled(catalog):
    recs = make_records(400)
    assert catalog.add_records(recs) == 400
    return catalog, pl.DataFrame(recs, infer_schema_length=None)


def ids_of(lf) -> set[str]:
    return set(lf.select("dataset_id").collect()["dataset_id"].to_list())


def test_search_equals_the_same_filter_done_by_polars(filled):
    cat, df = filled
    df = df.with_columns(dataset_id=pl.col("file_path").map_elements(cosmoscope.records.dataset_id_for,
                                                                    return_dtype=pl.String))
    start, end = dt.datetime(2026, 11, 5, tzinfo=UTC), dt.datetime(2026, 11, 12, tzinfo=UTC)
    got = ids_of(cat.search(mission="COSMOS-7", start=start, end=end, min_quality=0.5))
    want = set(df.filter((pl.col("mission_id") == "COSMOS-7") & (pl.col("observation_timestamp") >= start)
                         & (pl.col("observation_timestamp") < end) & (pl.col("data_quality_score") >= 0.5))
               ["dataset_id"].to_list())
    assert got == want and len(want) > 3


def test_search_accepts_lists_strings_dates_and_target_patterns(filled):
    cat, _ = filled
    both = cat.search(mission=["LYRA", "AURORA-2"]).collect()
    assert set(both["mission_id"]) == {"LYRA", "AURORA-2"}
    by_text = ids_of(cat.search(start="2026-11-05", end="2026-11-06T00:00:00Z"))
    by_date = ids_of(cat.search(start=dt.date(2026, 11, 5), end=dt.date(2026, 11, 6)))
    assert by_text == by_date and by_text
    assert set(cat.search(target="NGC*").collect()["target_object"]) == {"NGC 253"}
    assert set(cat.search(target="*27*").collect()["target_object"]) == {"3C 273"}
    assert set(cat.search(target="Sgr A*").collect()["target_object"]) == {"Sgr A*"}  # a literal star
    # New rows are raw, except calibrated and derived products, which were processed to be made.
    df = cat.observations().collect()
    product = (pl.col("calib_level") >= 2) | (pl.col("calibration_status") == "calibrated")
    assert cat.search(status="raw").collect().height == df.filter(~product).height > 0
    assert cat.search(status="processed").collect().height == df.filter(product).height > 0
    assert cat.search(calibration="calibrated", instrument="WFI").collect().height > 0


def test_search_is_fully_pushed_down(filled):
    cat, _ = filled
    text = cat.explain(cat.search(mission="LYRA", start="2026-11-03", min_quality=0.2, target="M*").head(5))
    pushed = text.split("Pushed down to the store:")[1]
    assert "residual: (none)" in pushed
    assert "mission_id == 'LYRA'" in pushed and "target_object starts_with 'M'" in pushed
    # polars passes a limit to the scan only when it has no filter to apply; search() carries
    # its filter inside the scan, so its limit reaches the store too
    assert "reading:  at most 5 rows" in pushed
    assert "reading:  at most 5 rows" in cat.explain(cat.observations().head(5))
    filtered = cat.explain(cat.observations().filter(pl.col("mission_id") == "LYRA").head(5))
    assert "reading:  small first batches" in filtered
    assert "reading:  every matching row" in cat.explain(cat.search(mission="LYRA"))


@pytest.mark.parametrize("kwargs, message", [
    ({"min_quality": 1.5}, "min_quality must be a number from 0 to 1"),
    ({"status": "done"}, "status 'done' is not one of raw"),
    ({"start": "27/11/2026"}, "give an ISO 8601 time"),
    ({"start": "2026-11-02", "end": "2026-11-01"}, "is not after the start"),
    ({"mission": []}, "empty list"),
])
def test_bad_search_arguments_say_what_is_wrong(catalog, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        catalog.search(**kwargs)


def test_mission_summary_matches_polars(filled):
    cat, df = filled
    s = cat.mission_summary()
    assert s["mission_id"].to_list() == sorted(set(df["mission_id"]))
    for row in s.iter_rows(named=True):
        sub = df.filter(pl.col("mission_id") == row["mission_id"])
        assert row["n_datasets"] == sub.height
        assert row["total_bytes"] == sub["file_size"].sum()
        assert row["first_observation"] == sub["observation_timestamp"].min()
        assert row["last_observation"] == sub["observation_end"].max()
        assert row["mean_quality"] == pytest.approx(sub["data_quality_score"].mean())
        assert row["min_quality"] == sub["data_quality_score"].min()
        assert row["n_calibrated"] == (sub["calibration_status"] == "calibrated").sum()
        products = sub.filter((pl.col("calib_level") >= 2) | (pl.col("calibration_status") == "calibrated")).height
        assert row["n_processed"] == products and row["n_raw"] == sub.height - products
    one = cat.mission_summary("LYRA")
    assert one["mission_id"].to_list() == ["LYRA"]


def test_summary_in_the_store_equals_polars_over_a_scan(filled):
    from cosmoscope.store.base import Agg, aggregate, aggregate_by_scan

    cat, _ = filled
    cat.add_records({"file_path": "/x/no-times.fits", "mission_id": "LYRA"})  # nulls in every aggregate
    aggs = [Agg("n", "count"), Agg("bytes", "sum", "file_size"), Agg("exact", "isum", "file_size"),
            Agg("first", "min", "observation_timestamp"), Agg("last", "max_of", "observation_timestamp",
                                                             "observation_end"),
            Agg("mean", "mean", "data_quality_score"), Agg("calibrated", "count_eq", "calibration_status",
                                                            "calibrated")]
    native = pl.from_arrow(aggregate(cat.store, "observations", ["mission_id"], aggs))
    scanned = pl.from_arrow(aggregate_by_scan(cat.store, "observations", ["mission_id"], aggs))
    assert native.sort("mission_id").equals(scanned.sort("mission_id").select(native.columns).cast(native.schema))


def test_empty_catalog_summary_and_search(catalog):
    assert catalog.mission_summary().height == 0
    assert catalog.search(mission="X").collect().height == 0
    assert catalog.count() == 0


def test_add_records_is_idempotent_and_keeps_status_and_ingest_time(filled):
    cat, _ = filled
    rec = make_records(1)[0]
    did = cosmoscope.records.dataset_id_for(rec["file_path"])
    first = cat.get(did)
    cat.set_status(did, "archived", reason="test")
    assert cat.add_records([rec]) == 1
    again = cat.get(did)
    assert cat.count() == 400
    assert again["processing_status"] == "archived"
    assert again["ingested_at"] == first["ingested_at"] and again["updated_at"] >= first["updated_at"]
    history = cat.history(did)  # written again unchanged: no event (the status change is one)
    assert history["action"].to_list() == ["add", "update"] and history["field"][1] == "processing_status"
    changed = dict(rec, target_object="M 31", data_quality_score=0.5)
    cat.add_records([changed])
    last = cat.history(did).filter(pl.col("action") == "update").tail(2).sort("field")
    assert last["field"].to_list() == ["data_quality_score", "target_object"]
    assert last["to_value"].to_list() == ["0.5", "M 31"]


def test_values_round_trip_through_the_catalog(catalog):
    t = dt.datetime(2026, 11, 27, 8, 15, 0, 123456, tzinfo=UTC)
    rec = {"file_path": "/x/ü/файл.fits", "mission_id": "COSMOS-7", "observation_timestamp": t,
           "data_quality_score": 0.25, "file_size": 2**62, "mission_specific": {"nested": {"a": [1, 2]}, "ü": "✓"},
           "quality_flags": ["missing:target_object"], "calib_level": 2}
    catalog.add_records(rec)
    row = catalog.get(cosmoscope.records.dataset_id_for(rec["file_path"]))
    assert row["observation_timestamp"] == t and row["file_size"] == 2**62 and row["calib_level"] == 2
    assert json.loads(row["mission_specific"]) == rec["mission_specific"]
    assert json.loads(row["quality_flags"]) == ["missing:target_object"]
    assert row["file_path"] == "/x/ü/файл.fits" and row["target_object"] is None


def test_undecodable_path_bytes_are_kept_readable(catalog):
    path = os.fsdecode(b"/data/bad-\xff-name.fits")
    catalog.add_records({"file_path": path, "mission_id": "LYRA"})
    row = catalog.observations().collect().row(0, named=True)
    assert row["file_path"] == "/data/bad-\\xff-name.fits"
    assert row["dataset_id"] == cosmoscope.records.dataset_id_for(path)


@pytest.mark.parametrize("record, message", [
    ({"file_path": "/a", "data_quality_score": 1.2}, "between 0.0 and 1.0"),
    ({"file_path": "/a", "calib_level": 7}, "from 0 to 4"),
    ({"file_path": "/a", "processing_status": "half-done"}, "not one of raw"),
    ({"file_path": "/a", "file_size": "big"}, "file_size"),
    ({"mission_id": "X"}, "needs a dataset_id or a file_path"),
])
def test_bad_records_are_refused_and_nothing_is_written(catalog, record, message):
    with pytest.raises(InvalidArgumentError, match=message):
        catalog.add_records([{"file_path": "/ok", "mission_id": "X"}, record])
    assert catalog.count() == 0


def test_unknown_field_lists_valid_names(catalog):
    with pytest.raises(UnknownNameError, match="Did you mean 'mission_id'.*Valid names:.*target_object"):
        catalog.add_records({"file_path": "/a", "misson_id": "X"})
    with pytest.raises(UnknownNameError, match="Valid names"):
        catalog.observations().select("nope").collect() if False else catalog.update("x", nope=1)


def test_update_records_changes_as_events_and_refuses_unknown_ids(filled):
    cat, _ = filled
    ids = sorted(ids_of(cat.search(mission="LYRA", status="raw")))[:3]
    assert cat.update(ids, processing_status="queued", data_quality_score=0.1, reason="re-run") == 3
    assert cat.update(ids, processing_status="queued", data_quality_score=0.1) == 0  # no change, no event
    h = cat.history(ids[0]).filter(pl.col("action") == "update")
    assert set(h["field"]) == {"processing_status", "data_quality_score"}
    st = h.filter(pl.col("field") == "processing_status").row(0, named=True)
    assert (st["from_value"], st["to_value"], st["actor"]) == ("raw", "queued", "tester@tests")
    assert json.loads(st["details"]) == {"reason": "re-run"}
    with pytest.raises(DatasetNotFoundError, match="nothing was updated"):
        cat.update([ids[0], "ds-missing"], processing_status="failed")
    assert cat.get(ids[0])["processing_status"] == "queued"


def test_lineage_walks_transitively_both_ways(catalog):
    recs = [{"file_path": f"/l/{n}.fits", "mission_id": "HELIOS-X"} for n in ("raw", "cal", "img", "spec", "other")]
    catalog.add_records(recs)
    i = {n: cosmoscope.records.dataset_id_for(f"/l/{n}.fits") for n in ("raw", "cal", "img", "spec", "other")}
    catalog.link(i["raw"], i["cal"], "raw->calibrated")
    catalog.link_many([(i["cal"], i["img"], "calibrated->derived"), (i["cal"], i["spec"], "calibrated->derived")],
                      run_id="run-1")
    down = catalog.related(i["raw"], direction="downstream")
    assert dict(zip(down["dataset_id"], down["depth"])) == {i["cal"]: 1, i["img"]: 2, i["spec"]: 2}
    up = catalog.related(i["spec"], direction="upstream")
    assert dict(zip(up["dataset_id"], up["depth"])) == {i["cal"]: 1, i["raw"]: 2}
    assert up["mission_id"].to_list() == ["HELIOS-X", "HELIOS-X"]
    both = catalog.related(i["cal"], depth=1)
    assert set(zip(both["direction"], both["dataset_id"])) == {("upstream", i["raw"]), ("downstream", i["img"]),
                                                               ("downstream", i["spec"])}
    assert catalog.related(i["other"]).height == 0
    with pytest.raises(DatasetNotFoundError):
        catalog.related("ds-nope")
    with pytest.raises(DatasetNotFoundError, match="ingest them first"):
        catalog.link(i["raw"], "ds-nope")
    catalog.link(i["spec"], i["raw"], "derived")  # a cycle must not loop forever
    assert set(catalog.related(i["raw"], direction="downstream")["dataset_id"]) >= {i["cal"], i["spec"], i["raw"]}


def test_sql_over_catalog_tables(filled):
    cat, df = filled
    out = cat.sql("SELECT mission_id, count(*) AS n FROM observations WHERE data_quality_score > 0.5 "
                  "GROUP BY mission_id ORDER BY mission_id").collect()
    want = df.filter(pl.col("data_quality_score") > 0.5).group_by("mission_id").len().sort("mission_id")
    assert out["n"].to_list() == want["len"].to_list()


def test_obscore_names_and_units(filled):
    cat, df = filled
    oc = cat.obscore().collect()
    for col in ("dataproduct_type", "calib_level", "obs_collection", "obs_id", "obs_publisher_did", "access_url",
                "access_format", "access_estsize", "target_name", "s_ra", "s_dec", "t_min", "t_max", "t_exptime",
                "facility_name", "instrument_name", "em_min", "pol_states"):
        assert col in oc.columns
    row = oc.filter(pl.col("obs_id") == cosmoscope.records.dataset_id_for(df["file_path"][0])).row(0, named=True)
    t = df["observation_timestamp"][0]
    assert row["t_min"] == pytest.approx((t - dt.datetime(1858, 11, 17, tzinfo=UTC)).total_seconds() / 86400)
    assert row["access_estsize"] == -(-df["file_size"][0] // 1024)
    assert row["access_format"] == "application/fits" and row["access_url"].startswith("file:///archive/")


# -- opening: locations, foreign files, versions ---------------------------------------------

def test_default_location_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOSCOPE_CATALOG", str(tmp_path / "env.sqlite"))
    with cosmoscope.open_catalog() as cat:
        assert cat.url == f"sqlite://{tmp_path}/env.sqlite"
    monkeypatch.delenv("COSMOSCOPE_CATALOG")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with cosmoscope.open_catalog() as cat:
        assert cat.url == f"sqlite://{tmp_path}/xdg/cosmoscope/catalog.sqlite"
    assert (tmp_path / "xdg" / "cosmoscope" / "catalog.sqlite").exists()


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    p = tmp_path / "notes.sqlite"
    p.write_bytes(b"these are my notes, not a database\n" * 10)
    before = p.read_bytes()
    with pytest.raises(CatalogOpenError, match="not a SQLite catalog.*left untouched"):
        cosmoscope.open_catalog(str(p))
    assert p.read_bytes() == before


def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path):
    p = tmp_path / "other.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE stars (name TEXT)")
    con.commit()
    con.close()
    before = p.read_bytes()
    with pytest.raises(SchemaError, match="not a cosmoscope catalog.*stars"):
        cosmoscope.open_catalog(f"sqlite://{p}")
    assert p.read_bytes() == before and not (tmp_path / "other.db-wal").exists()


def test_a_newer_schema_version_is_refused_untouched(tmp_path):
    p = tmp_path / "future.sqlite"
    with cosmoscope.open_catalog(str(p)) as cat:
        cat.add_records({"file_path": "/a", "mission_id": "X"})
        cat._set_meta(schema_version=str(S.SCHEMA_VERSION + 1))
    before = p.read_bytes()
    with pytest.raises(SchemaError, match="newer cosmoscope.*not modified"):
        cosmoscope.open_catalog(str(p))
    assert p.read_bytes() == before


def test_an_older_catalog_is_migrated_on_open(tmp_path):
    p = tmp_path / "old.sqlite"
    with cosmoscope.open_catalog(str(p)) as cat:
        cat.add_records({"file_path": "/a", "mission_id": "X"})
    # Make it look like a catalog from before the validation columns existed.
    con = sqlite3.connect(p)
    for col in ("validation_status", "validation_problems", "last_validated"):
        con.execute(f'ALTER TABLE observations DROP COLUMN "{col}"')
    import pyarrow as pa
    old = S.OBSERVATIONS.schema
    for col in ("validation_status", "validation_problems", "last_validated"):
        old = old.remove(old.get_field_index(col))
    con.execute("UPDATE _cosmoscope_tables SET arrow_schema=? WHERE name='observations'", (old.serialize().to_pybytes(),))
    con.execute("DROP TABLE events")
    con.execute("DELETE FROM _cosmoscope_tables WHERE name='events'")
    con.execute("DROP INDEX ix_observations_observation_timestamp")  # an index added since
    con.execute("UPDATE cosmoscope_meta SET value='0' WHERE key='schema_version'")
    con.commit()
    con.close()
    with cosmoscope.open_catalog(str(p)) as cat:
        assert cat.schema_version == S.SCHEMA_VERSION
        assert cat.store.tables()["observations"].names[-3:] == ["validation_status", "validation_problems", "last_validated"]
        row = cat.observations().collect().row(0, named=True)
        assert row["mission_id"] == "X" and row["validation_status"] is None
        assert cat.events().collect()["action"].to_list() == ["migrate"]
    del pa
    con = sqlite3.connect(p)
    indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    con.close()
    assert "ix_observations_observation_timestamp" in indexes


def test_unwritable_location_says_where_and_why(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/cosmoscope-cannot-be-here/catalog.sqlite"  # even root cannot create this
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "sub" / "catalog.sqlite")
    with pytest.raises(CatalogOpenError, match="cannot create the catalog at .*catalog.sqlite"):
        cosmoscope.open_catalog(target)


def test_directory_as_catalog_is_refused(tmp_path):
    with pytest.raises(CatalogOpenError, match="is a directory"):
        cosmoscope.open_catalog(str(tmp_path))


def test_readonly_catalog_refuses_writes(tmp_path):
    p = tmp_path / "c.sqlite"
    cosmoscope.open_catalog(str(p)).close()
    with cosmoscope.open_catalog(str(p), readonly=True) as cat:
        with pytest.raises(cosmoscope.CosmoscopeError, match="read-only"):
            cat.add_records({"file_path": "/a"})
    with pytest.raises(CatalogOpenError, match="no catalog at .* yet"):
        cosmoscope.open_catalog(str(tmp_path / "missing.sqlite"), readonly=True)


def test_repr_html_lists_missions(filled):
    cat, _ = filled
    html = cat._repr_html_()
    assert "COSMOS-7" in html and "<table>" in html
