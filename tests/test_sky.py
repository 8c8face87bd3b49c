"""Sky searches: geometry, positions and names, footprints, the migration that indexes old rows,
validate --fix, coverage maps. The agreement of searches with brute force on every backend is
in tests/test_differential.py."""

from __future__ import annotations

import math
import os
import shutil
import sqlite3

import numpy as np
import polars as pl
import pytest

import cosmoscope
from cosmoscope import schema as S
from cosmoscope.errors import InvalidArgumentError
from cosmoscope.sky import Box, Cone, Polygon
from cosmoscope.sky.geometry import Polygons, format_polygon, parse_polygon, separation, unit

from .conftest import CORPUS, needs_corpus

DATA = __import__("pathlib").Path(__file__).parent / "data"


def _edge_points(vertices, n=2000):
    """Dense points along a polygon's great-circle edges."""
    v = unit(np.asarray(vertices)[:, 0], np.asarray(vertices)[:, 1])
    pts = []
    for a, b in zip(v, np.roll(v, -1, axis=0)):
        t = np.linspace(0, 1, n)[:, None]
        p = a * (1 - t) + b * t
        pts.append(p / np.linalg.norm(p, axis=1, keepdims=True))
    pts = np.concatenate(pts)
    ra = np.degrees(np.arctan2(pts[:, 1], pts[:, 0])) % 360
    dec = np.degrees(np.arcsin(np.clip(pts[:, 2], -1, 1)))
    return ra, dec


@pytest.mark.parametrize("vertices", [
    [(10, 40), (11, 40), (11, 41), (10, 41)],
    [(359.5, -1), (0.5, -1), (0.5, 1), (359.5, 1)],            # across RA 0/360
    [(0, 88), (90, 88), (180, 88), (270, 88)],                   # around the north pole
    [(30, -10), (40, -10), (35, -2), (34, -9), (31, -3)],        # not convex
])
def test_cone_overlap_of_polygons_matches_dense_sampling(vertices):
    polys = Polygons.of([np.asarray(vertices, float)])
    ra, dec = _edge_points(vertices)
    rng = np.random.default_rng(1)
    for _ in range(60):
        i = rng.integers(len(ra))
        cra, cdec = (ra[i] + rng.normal(0, 2)) % 360, float(np.clip(dec[i] + rng.normal(0, 2), -90, 90))
        radius = float(rng.uniform(0.01, 3))
        sampled = (separation(cra, cdec, ra, dec) <= radius).any()
        exact = Cone(cra, cdec, radius).overlaps_polygons(polys)[0]
        # a cone reaching the sampled edge overlaps; one that does not is inside or apart
        assert exact or not sampled
        inside = Polygon(tuple(vertices)).contains([cra], [cdec])[0]
        if not sampled:
            assert exact == inside or separation(cra, cdec, ra, dec).min() < radius + 0.01


def test_polygon_contains_and_box_overlaps():
    square = Polygon(((10, 40), (11, 40), (11, 41), (10, 41)))
    assert square.contains([10.5, 12.0], [40.5, 40.5]).tolist() == [True, False]
    band = Box(350, 10, -5, 5)  # across RA 0
    assert band.contains([355, 5, 180, 0], [0, 4, 0, 6]).tolist() == [True, True, False, False]
    crossing = Polygons.of([np.array([(8.0, -10), (12, -10), (12, 10), (8, 10)])])  # straddles the RA 10 edge
    outside = Polygons.of([np.array([(20.0, -1), (21, -1), (21, 1), (20, 1)])])
    around = Polygons.of([np.array([(300.0, -30), (60, -30), (60, 30), (300, 30)])])  # holds the whole box
    assert band.overlaps_polygons(crossing)[0] and not band.overlaps_polygons(outside)[0]
    assert band.overlaps_polygons(around)[0]
    # a footprint crossing the box's top parallel between its corners, no vertex inside
    bridge = Polygons.of([np.array([(0.0, 4.0), (1.0, 4.0), (1.0, 8.0), (0.0, 8.0)])])
    assert Box(355, 5, -5, 4.5).overlaps_polygons(bridge)[0]
    assert not Box(355, 5, -5, 3.9).overlaps_polygons(bridge)[0]


def test_stcs_round_trip_and_refusals():
    text = format_polygon([(10, 40), (370, 41), (11, 41)])
    assert parse_polygon(text).tolist() == [[10, 40], [10, 41], [11, 41]]
    assert parse_polygon("POLYGON ICRS TOPOCENTER 1 2 3 4 5 6") is not None
    for bad in ("CIRCLE ICRS 1 2 3", "POLYGON ICRS 1 2 3 4", "POLYGON 1 2 3 95 5 6", "polygon x y z", ""):
        assert parse_polygon(bad) is None


@pytest.fixture
def sky_catalog(tmp_path):
    cat = cosmoscope.open_catalog(f"sqlite://{tmp_path}/sky.sqlite")
    cat.add_records([
        {"file_path": "/d/m31.fits", "mission_id": "XMM", "target_object": "M 31", "ra": 10.6847, "dec": 41.2690},
        {"file_path": "/d/ngc253.fits", "mission_id": "XMM", "target_object": "NGC 253", "ra": 11.888, "dec": -25.288},
        {"file_path": "/d/near.fits", "mission_id": "HST", "target_object": "M31 field", "ra": 10.9, "dec": 41.4},
        # centre 2 degrees away, but its footprint reaches the cone
        {"file_path": "/d/wide.fits", "mission_id": "HST", "target_object": "wide", "ra": 13.3, "dec": 41.27,
         "s_region": "POLYGON ICRS 10.9 40.5 15.6 40.5 15.6 42.0 10.9 42.0"},
        {"file_path": "/d/sun.fits", "mission_id": "SOHO", "target_object": "Sun"},  # no position
        {"file_path": "/d/pole.fits", "mission_id": "X", "target_object": "NCP", "ra": 200.0, "dec": 89.9},
        {"file_path": "/d/allsky.fits", "mission_id": "ROSAT", "target_object": "all sky", "ra": 266.4, "dec": -28.9,
         "s_fov": 360.0},
    ])
    yield cat
    cat.close()


def names(lf) -> set[str]:
    return set(lf.select("target_object").collect()["target_object"].to_list())


def test_search_near_takes_every_form_of_position(sky_catalog):
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    cat = sky_catalog
    want = {"M 31", "M31 field", "wide", "all sky"}
    for near in ("10.68 41.27", "00h42m44s +41d16m", "00:42:44.3 +41:16:09", (10.68, 41.27),
                 SkyCoord(121.17 * u.deg, -21.57 * u.deg, frame="galactic"), "m31"):
        assert names(cat.search(near=near, radius="30arcmin")) == want, near
    assert names(cat.search(near="10.68 41.27", radius=0.5, footprints=False)) == {"M 31", "M31 field"}
    assert names(cat.search(near="10.68 41.27", radius=1 * u.arcmin, footprints=False)) == {"M 31"}
    assert names(cat.search(near="0 90", radius=0.2)) == {"NCP", "all sky"}
    assert names(cat.search(box=(350, 20, 40, 42))) == want
    assert names(cat.search(near="10.68 41.27", radius="30arcmin", mission="HST")) == {"M31 field", "wide"}


def test_the_search_reaches_the_store_through_sky_index(sky_catalog):
    plan = sky_catalog.explain(sky_catalog.search(near="10.68 41.27", radius=0.5))
    pushed = next(line for line in plan.splitlines() if line.strip().startswith("pushed:"))
    assert "sky_index between" in pushed


@pytest.mark.parametrize("kwargs, words", [
    ({"near": "10 41", "radius": 0}, "more than 0°"),
    ({"near": "10 41", "radius": "200deg"}, "at most 180°"),
    ({"near": "10 95", "radius": 1}, "declination of 95°"),
    ({"near": "10 41"}, "needs a radius"),
    ({"radius": 1}, "needs a centre"),
    ({"near": "10 41", "radius": "five"}, "cannot read 'five' as a radius"),
    ({"box": (0, 10, 20, 10)}, "lower declination"),
    ({"near": "10 41", "radius": 1, "box": (0, 1, 0, 1)}, "one sky region"),
    ({"polygon": [(0, 0), (1, 1)]}, "at least three vertices"),
])
def test_bad_sky_input_is_one_clear_sentence(sky_catalog, kwargs, words):
    with pytest.raises(InvalidArgumentError, match=words):
        sky_catalog.search(**kwargs)


def test_an_unresolvable_name_says_why_and_names_close_targets(sky_catalog):
    from cosmoscope.sky.positions import UnresolvedNameError

    with pytest.raises(UnresolvedNameError) as exc:
        sky_catalog.search(near="NGC 2533", radius=1)
    text = str(exc.value)
    assert "no observation in this catalog has that target" in text
    assert "Sesame" in text and "'NGC 253'" not in text and "NGC 253" in text


def test_forgiving_name_match(sky_catalog):
    for name in ("NGC253", "ngc 253", "NGC-253", " N.G.C. 253 "):
        assert names(sky_catalog.search(name=name)) == {"NGC 253"}
    assert names(sky_catalog.search(target="NGC253")) == set()  # --target stays exact
    assert sky_catalog.closest_targets("NGC 25")[0] == "NGC 253"


def test_online_name_resolution_is_cached_by_astropy(tmp_path, sky_catalog):
    """With Sesame's answer in astropy's download cache, a name resolves offline."""
    from urllib.parse import quote

    from astropy.config.paths import set_temp_cache
    from astropy.coordinates import name_resolve
    from astropy.utils.data import import_file_to_cache

    from cosmoscope.sky.positions import resolve_online

    answer = tmp_path / "sesame.txt"
    answer.write_text("# Vega\n%J 279.23473479 +38.78368896 = 18 36 56.33635 +38 47 01.2802\n")
    with set_temp_cache(tmp_path / "cache"):
        # the address astropy asks (get_icrs_coordinates): each mirror, the all-databases code "SNV"
        for base in name_resolve.sesame_url.get():
            import_file_to_cache(os.path.join(base, f"SNV?{quote('Vega')}"), str(answer), remove_original=False)
        resolve_online.cache_clear()
        ra, dec = sky_catalog.position_of("Vega")
    resolve_online.cache_clear()
    assert (ra, dec) == pytest.approx((279.23473479, 38.78368896))


def test_an_older_catalog_gets_its_positions_indexed(tmp_path):
    p = tmp_path / "v3.sqlite"
    with cosmoscope.open_catalog(str(p)) as cat:
        cat.add_records([{"file_path": "/a", "mission_id": "X", "ra": 10.68, "dec": 41.27},
                         {"file_path": "/b", "mission_id": "X"}])
    con = sqlite3.connect(p)  # as schema 3 left it: no sky columns
    old = S.OBSERVATIONS.schema
    con.execute("DROP INDEX ix_observations_sky_index")
    for col in ("s_region", "s_fov", "sky_index"):
        con.execute(f'ALTER TABLE observations DROP COLUMN "{col}"')
        old = old.remove(old.get_field_index(col))
    con.execute("UPDATE _cosmoscope_tables SET arrow_schema=? WHERE name='observations'", (old.serialize().to_pybytes(),))
    con.execute("UPDATE cosmoscope_meta SET value='3' WHERE key='schema_version'")
    con.commit()
    con.close()
    with cosmoscope.open_catalog(str(p)) as cat:
        assert cat.schema_version == S.SCHEMA_VERSION
        assert cat.search(near="10.68 41.27", radius=0.1).collect()["file_path"].to_list() == ["/a"]
        assert cat.observations().filter(pl.col("sky_index").is_null()).collect()["file_path"].to_list() == ["/b"]


def test_validate_fix_fills_footprints_and_mends_a_stale_index(tmp_path):
    src = tmp_path / "files"
    src.mkdir()
    shutil.copy(DATA / "checksum_false.fits", src / "img.fits")
    cat = cosmoscope.open_catalog(f"sqlite://{tmp_path}/v.sqlite")
    cat.ingest(src, progress=False)
    row = cat.observations().collect().row(0, named=True)
    assert row["s_region"].startswith("POLYGON ICRS 51.22") and row["s_fov"] == pytest.approx(0.0972, abs=1e-3)
    assert row["sky_index"] is not None
    import json

    assert json.loads(row["field_sources"])["s_region"] == "FITS[0]:WCS(RA---SIN)"
    # an older extractor's row (no footprint), and an index written around the catalog
    import pyarrow as pa

    cat.store.update("observations", pa.table({"dataset_id": [row["dataset_id"]], "s_region": pa.nulls(1, pa.string()),
                                               "extractor_version": ["1.0"], "sky_index": pa.array([7], pa.int64())}),
                     ["dataset_id"])
    report = cat.validate(progress=False)
    assert report.found[("sky_index", row["mission_id"])] == 1
    report = cat.validate(fix=True, progress=False)
    fixed = cat.observations().collect().row(0, named=True)
    assert fixed["s_region"] == row["s_region"] and fixed["sky_index"] == row["sky_index"]
    assert report.remaining.get(("sky_index", row["mission_id"]), 0) == 0
    cat.close()


def test_coverage_is_a_moc_of_positions_and_footprints(sky_catalog, tmp_path):
    from mocpy import MOC
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude

    moc = sky_catalog.coverage(mission="HST")
    inside = moc.contains_lonlat(Longitude([10.9, 14.0, 200.0], u.deg), Latitude([41.4, 41.0, 89.9], u.deg))
    assert inside.tolist() == [True, True, False]
    moc.save(tmp_path / "hst.fits", format="fits")
    assert MOC.from_fits(tmp_path / "hst.fits") == moc
    assert sky_catalog.coverage(mission="ROSAT").sky_fraction == pytest.approx(1.0)
    density = sky_catalog.sky_density(depth=3)
    assert density["n"].sum() == 6 and set(density.columns) == {"cell", "ra", "dec", "n"}


@needs_corpus
@pytest.mark.parametrize("name, frame", [
    ("fits/optical_ir_radio/HorseHead.fits", "RA---TAN"),
    ("fits/optical_ir_radio/gc_msx_e.fits", "GLON-CAR"),
    ("fits/optical_ir_radio/l1448_13co.fits", "RA---SFL"),
])
def test_real_image_footprints_match_astropy_wcs(name, frame):
    from astropy.io import fits
    from astropy.wcs import WCS

    from cosmoscope.extract import extract_file

    path = f"{CORPUS}/{name}"
    rec = extract_file(path)
    got = parse_polygon(rec["s_region"])
    with fits.open(path) as h:
        w = WCS(h[0].header).celestial
        n1, n2 = h[0].header["NAXIS1"], h[0].header["NAXIS2"]
    want = w.pixel_to_world([-0.5, n1 - 0.5, n1 - 0.5, -0.5], [-0.5, -0.5, n2 - 0.5, n2 - 0.5]).icrs
    corners = got[:: max(1, len(got) // 4)]
    assert separation(corners[:, 0], corners[:, 1], want.ra.deg, want.dec.deg).max() < 1 / 3600
    assert rec["field_sources"]["s_region"] == f"FITS[0]:WCS({frame})"
    # the position lies on the image, even where the WCS reference point is far off it (l1448)
    assert separation(rec["ra"], rec["dec"], want.ra.deg.mean(), want.dec.deg.mean()) < rec["s_fov"] / 2


def test_no_footprint_is_invented_for_a_header_without_a_pixel_scale(tmp_path):
    """CTYPE and CRVAL but no CDELT or CD: wcslib would assume 1° a pixel (a 40° "footprint"
    for a 32-pixel frame, centred far from CRVAL); the position stays CRVAL, with no footprint."""
    from astropy.io import fits

    from cosmoscope.extract import extract_file

    header = fits.Header([("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", 10.6847), ("CRVAL2", 41.269)])
    fits.PrimaryHDU(np.zeros((32, 32), np.float32), header=header).writeto(tmp_path / "noscale.fits")
    rec = extract_file(tmp_path / "noscale.fits")
    assert rec.get("s_region") is None and rec.get("s_fov") is None
    assert (rec["ra"], rec["dec"]) == (10.6847, 41.269)


@needs_corpus
def test_maps_of_the_whole_sky_and_files_without_celestial_axes():
    from cosmoscope.extract import extract_file

    allsky = extract_file(f"{CORPUS}/fits/optical_ir_radio/allsky_rosat.fits")
    assert allsky["s_fov"] == 360.0 and allsky.get("s_region") is None
    solar = extract_file(f"{CORPUS}/fits/solar/trace_1998-05-19T22:21:43.000_171_1024.fits")  # Solar-x/y axes
    earth = extract_file(DATA / "20171025_2056.Cloud_Top_Height.nc")
    for rec in (solar, earth):
        assert rec.get("s_region") is None and rec.get("s_fov") is None and rec.get("ra") is None


def test_sky_index_levels_follow_footprint_size():
    from cosmoscope.sky.index import LEVELS, POINT_DEPTH, sky_index

    idx = sky_index([10.0, 10.0, 10.0, 10.0, 400.0], [41.0, 41.0, 41.0, 41.0, 0.0], [0.0, 0.5, 30.0, 180.0, 0.0])
    depth = [int(math.log(i // 4, 4)) if i > 0 else None for i in idx]
    assert depth[0] == POINT_DEPTH and depth[3] == 0 and LEVELS.index(depth[1]) > LEVELS.index(depth[2])
    assert idx[4] == -1  # RA 400 is not on the sky


def test_the_index_cells_are_cdshealpix_cells_to_the_bit_corners_and_poles_included():
    """sky_index computes HEALPix cells in numpy (importing cdshealpix costs a small ingest
    0.2-0.4 s); searches find cells with cdshealpix, so both must number every position alike,
    including positions on a cell's edge or corner (RA 0, Dec 0 is a common placeholder) and
    near the poles, or a stored index would look stale to validate."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    from cosmoscope.sky.index import LEVELS, nested_cell

    rng = np.random.default_rng(20261204)
    ra = [rng.uniform(0, 360, 200_000), rng.uniform(0, 360, 20_000), np.arange(0, 360, 0.5).repeat(361)]
    dec = [np.degrees(np.arcsin(rng.uniform(-1, 1, 200_000))),
           np.concatenate([90 - rng.exponential(1e-5, 10_000), rng.exponential(1e-5, 10_000) - 90]),
           np.tile(np.arange(-90, 90.25, 0.5), 720)]
    for depth in (2, 5):  # every corner and centre of the cells at two depths
        cells = np.arange(12 * 4 ** depth, dtype=np.uint64)
        lon, lat = nested.vertices(cells, depth)
        clon, clat = nested.healpix_to_lonlat(cells, depth)
        ra += [lon.to_value(u.deg).ravel(), clon.to_value(u.deg)]
        dec += [lat.to_value(u.deg).ravel(), clat.to_value(u.deg)]
    ra, dec = np.concatenate(ra), np.concatenate(dec)
    for depth in (*LEVELS, 1, 3, 6, 29):
        want = nested.lonlat_to_healpix(Longitude(ra % 360, u.deg), Latitude(dec, u.deg), depth).astype(np.int64)
        got = nested_cell(ra, dec, depth)
        bad = np.flatnonzero(got != want)
        assert not len(bad), f"depth {depth}: {len(bad)} differ, e.g. RA {ra[bad[0]]!r} Dec {dec[bad[0]]!r}"


def test_the_sky_index_of_new_rows_needs_no_astropy_coordinates():
    """Writing rows computes their sky_index; the import it avoids is the point of nested_cell."""
    import subprocess
    import sys

    code = ("import sys; from cosmoscope.sky.search import derive; import pyarrow as pa\n"
            "t = derive(pa.table({'ra': [10.5, 200.0], 'dec': [41.2, -30.0]}))\n"
            "assert t.column('sky_index').null_count == 0, t\n"
            "print('astropy.coordinates' in sys.modules, 'cdshealpix' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_command_line_cone_search_coverage_and_one_sentence_errors(sky_catalog, tmp_path, capsys):
    from mocpy import MOC

    from cosmoscope.cli import main

    url = ["--catalog", sky_catalog.url]
    assert main(["search", *url, "--near", "00h42m44s +41d16m", "--radius", "30arcmin", "--format", "csv",
                 "--columns", "target_object"]) == 0
    assert set(capsys.readouterr().out.splitlines()[1:]) == {"M 31", "M31 field", "wide", "all sky"}
    assert main(["search", *url, "--name", "ngc 25", "--count"]) == 0
    assert capsys.readouterr().out.strip() == "0"
    assert main(["search", *url, "--name", "ngc 25"]) == 0
    assert "targets with similar names: NGC 253" in capsys.readouterr().err
    for args, words in ((["--near", "10 95", "--radius", "1"], "declination of 95°"),
                        (["--near", "10 41", "--radius", "0"], "more than 0°"),
                        (["--near", "Nowhere Land", "--radius", "1"], "cannot place 'Nowhere Land'")):
        with pytest.raises(SystemExit) as exc:
            main(["search", *url, *args])
        err = capsys.readouterr().err.strip()  # the reason, then where the help is
        assert exc.value.code == 2 and words in err.splitlines()[0] and "Traceback" not in err
    out = tmp_path / "hst.fits"
    assert main(["coverage", *url, "--mission", "HST", "--out", str(out)]) == 0
    assert MOC.from_fits(out) == sky_catalog.coverage(mission="HST")
