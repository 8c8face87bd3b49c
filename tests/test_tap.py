"""The VO face of the API, with real clients: pyvo's TAPService and SCSService against a uvicorn
server this test starts, and astropy reading the VOTables."""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import pyvo

import cosmoscope
from cosmoscope.api import create_app
from cosmoscope.api.server import BackgroundServer

from .conftest import make_records

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    url = f"sqlite://{tmp_path_factory.mktemp('tap')}/tap.sqlite"
    with cosmoscope.open_catalog(url) as cat:
        records = make_records(400, seed=3)
        records[0].update(target_object="M 31", ra=10.6847, dec=41.2690, mission_id="XMM")
        records[1].update(target_object="wide", ra=13.3, dec=41.27, mission_id="XMM",
                          s_region="POLYGON ICRS 10.9 40.5 15.6 40.5 15.6 42.0 10.9 42.0")
        cat.add_records(records)
        frame = cat.obscore().collect()
    cat = cosmoscope.open_catalog(url, readonly=True)
    with BackgroundServer(create_app(cat)) as srv:
        yield srv, frame
    cat.close()


@pytest.fixture(scope="module")
def tap(server):
    return pyvo.dal.TAPService(server[0].url + "/tap")


def test_tables_lists_obscore_with_units_and_ucds(tap):
    tables = {t.name: t for t in tap.tables}
    assert {"ivoa.obscore", "tap_schema.columns", "tap_schema.tables"} <= set(tables)
    cols = {c.name: c for c in tables["ivoa.obscore"].columns}
    assert len(cols) == 31
    assert (cols["s_ra"].unit, cols["s_ra"].ucd) == ("deg", "pos.eq.ra")
    assert cols["t_min"].utype == "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StartTime"


def test_contains_top_and_order_by(tap, server):
    _, frame = server
    r = tap.run_sync("SELECT TOP 5 obs_id, s_ra, s_dec FROM ivoa.obscore "
                     "WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10.68, 41.27, 30)) = 1 "
                     "ORDER BY s_dec DESC")
    t = r.to_table()
    d = np.degrees(2 * np.arcsin(np.sqrt(np.clip(
        np.sin(np.radians(frame["s_dec"].to_numpy() - 41.27) / 2) ** 2 + np.cos(np.radians(frame["s_dec"].to_numpy()))
        * np.cos(np.radians(41.27)) * np.sin(np.radians(frame["s_ra"].to_numpy() - 10.68) / 2) ** 2, 0, 1))))
    inside = frame.filter(d <= 30).sort("s_dec", descending=True).head(5)
    assert list(t["obs_id"]) == inside["obs_id"].to_list()
    assert t["s_ra"].unit == "deg" and r.query_status == "OK"


def test_intersects_counts_footprints_and_distance_orders(tap):
    ids = tap.run_sync("SELECT obs_id, target_name FROM ivoa.obscore WHERE "
                       "INTERSECTS(s_region, CIRCLE('ICRS', 10.68, 41.27, 0.5)) = 1").to_table()
    assert {"M 31", "wide"} <= set(ids["target_name"])
    points = tap.run_sync("SELECT target_name FROM ivoa.obscore WHERE "
                          "CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10.68, 41.27, 0.5)) = 1").to_table()
    assert "wide" not in set(points["target_name"])  # its centre is 2 degrees away
    near = tap.run_sync("SELECT TOP 3 target_name, DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', 10.68, 41.27)) "
                        "AS d FROM ivoa.obscore WHERE DISTANCE(POINT('ICRS', s_ra, s_dec), "
                        "POINT('ICRS', 10.68, 41.27)) < 5 ORDER BY d").to_table()
    assert near["target_name"][0] == "M 31" and list(near["d"]) == sorted(near["d"])
    box = tap.run_sync("SELECT target_name FROM ivoa.obscore WHERE "
                       "CONTAINS(POINT('ICRS', s_ra, s_dec), BOX('ICRS', 10.68, 41.27, 0.2, 0.2)) = 1").to_table()
    assert list(box["target_name"]) == ["M 31"]


def test_aggregate_without_join(tap, server):
    _, frame = server
    t = tap.run_sync("SELECT obs_collection, COUNT(*) AS n, MAX(t_exptime) AS longest FROM ivoa.obscore "
                     "GROUP BY obs_collection ORDER BY n DESC, obs_collection").to_table()
    want = frame.group_by("obs_collection").len().sort(["len", "obs_collection"], descending=[True, False])
    assert list(t["obs_collection"]) == want["obs_collection"].to_list()
    assert list(t["n"]) == want["len"].to_list()
    total = tap.run_sync("SELECT COUNT(*) AS n FROM ivoa.obscore WHERE calib_level >= 2").to_table()
    assert total["n"][0] == frame.filter(frame["calib_level"] >= 2).height


def test_maxrec_marks_overflow(tap):
    r = tap.run_sync("SELECT obs_id FROM ivoa.obscore", maxrec=7)
    assert len(r) == 7 and r.query_status == "OVERFLOW"
    r = tap.run_sync("SELECT TOP 7 obs_id FROM ivoa.obscore", maxrec=100)
    assert len(r) == 7 and r.query_status == "OK"


@pytest.mark.parametrize("query, words", [
    ("SELEC obs_id FRM ivoa.obscore", "could not be parsed"),
    ("SELECT nope FROM ivoa.obscore", "unknown column 'nope'"),
    ("SELECT * FROM ivoa.nothing", "unknown table 'ivoa.nothing'"),
    ("DELETE FROM ivoa.obscore", "read-only"),
    ("DROP TABLE ivoa.obscore", "read-only"),
    ("SELECT * FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10, 95, 1)) = 1",
     "declination of 95°"),
    ("SELECT * FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10, 5, 0)) = 1",
     "more than 0°"),
    ("SELECT * FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10, 5, 181)) = 1",
     "at most 180°"),
    ("SELECT a.obs_id FROM ivoa.obscore AS a JOIN ivoa.obscore AS b ON a.obs_id = b.obs_id", "joins"),
])
def test_bad_adql_is_a_votable_error(tap, query, words):
    with pytest.raises(pyvo.dal.DALQueryError, match=words):
        tap.run_sync(query)


def test_errors_are_votables_with_http_400(server):
    """Read with astropy alone: a VOTable with QUERY_STATUS ERROR, and no write happened."""
    from astropy.io.votable import parse

    srv, frame = server
    q = urllib.parse.urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "UPDATE ivoa.obscore SET s_ra = 0"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{srv.url}/tap/sync?{q}")
    assert exc.value.code == 400
    doc = parse(io.BytesIO(exc.value.read()))
    status = [i for i in doc.resources[0].infos if i.name == "QUERY_STATUS"][0]
    assert status.value == "ERROR" and "read-only" in status.content


def test_votables_read_by_astropy(server):
    from astropy.io.votable import parse_single_table

    srv, _ = server
    q = urllib.parse.urlencode({"query": "SELECT TOP 3 obs_id, s_region, t_min FROM ivoa.obscore", "lang": "ADQL"})
    with urllib.request.urlopen(f"{srv.url}/tap/sync?{q}") as r:  # lower-case names: DALI says any case
        table = parse_single_table(io.BytesIO(r.read())).to_table()
    assert table.colnames == ["obs_id", "s_region", "t_min"] and len(table) == 3
    assert table["t_min"].unit == "d"


def test_vosi_capabilities_and_availability(server):
    srv, _ = server
    with urllib.request.urlopen(f"{srv.url}/tap/capabilities") as r:
        caps = r.read().decode()
    assert 'standardID="ivo://ivoa.net/std/TAP"' in caps and "<form>CONTAINS</form>" in caps
    with urllib.request.urlopen(f"{srv.url}/tap/availability") as r:
        assert "<vosi:available>true</vosi:available>" in r.read().decode()


def test_simple_cone_search(server):
    srv, _ = server
    scs = pyvo.dal.SCSService(srv.url + "/scs")
    res = scs.search(pos=(10.68, 41.27), radius=0.5)
    names = set(res.to_table()["target_name"])
    assert {"M 31", "wide"} <= names
    assert "obs_id" in res.fieldnames
    q = urllib.parse.urlencode({"RA": 10, "DEC": 95, "SR": 1})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{srv.url}/scs?{q}")
    assert exc.value.code == 400 and b"declination of 95" in exc.value.read()


def test_json_api_sky_search_and_its_refusals(server):
    import json

    srv, _ = server
    with urllib.request.urlopen(f"{srv.url}/datasets?near=00h42m44s%20%2B41d16m&radius=30arcmin&columns=target_object") as r:
        assert {"M 31", "wide"} <= {row["target_object"] for row in json.load(r)["results"]}
    with urllib.request.urlopen(f"{srv.url}/datasets?name=ngc25&columns=target_object") as r:
        body = json.load(r)
    assert body["count"] == 0 and body["closest_targets"][0] == "NGC 253"
    for query, words in (("near=10%2095&radius=1", "declination of 95"), ("near=10%2041&radius=0", "more than 0"),
                         ("near=Nowhere%20Land&radius=1", "Sesame"), ("box=1&box=2", "four values")):
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{srv.url}/datasets?{query}")
        assert exc.value.code == 400 and words in json.load(exc.value)["detail"]
