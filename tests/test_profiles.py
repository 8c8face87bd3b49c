"""Mission profiles: loading and validation, matching, templates, value maps, the shipped
profiles on files of each mission, the preview and the ``profiles`` command."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime

import pytest

from cosmoscope.errors import UnknownNameError
from cosmoscope.extract import extract_file
from cosmoscope.extract.preview import format_rows, preview, rows_to_json
from cosmoscope.extract.profiles import (AmbiguousProfileError, Profile, ProfileError, ProfileSet, glob_regex,
                                         load_profile, load_profiles)
from cosmoscope.extract.templates import PathTemplate, TemplateError
from tests.test_extract_synth import START, aurora2, cosmos7_l0, cosmos7_l1, helios_x, lyra

SHIPPED = {"aurora-2", "cosmos-7", "helios-x", "lyra"}


def _profile(tmp_path, text: str, name: str = "p.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# Loading and validation


def test_shipped_profiles_load_and_match_their_trees():
    ps = load_profiles()
    assert SHIPPED <= set(ps.names)
    cases = {"/a/COSMOS7/WFI/2026/331/c7_wfi_l0_20261127T081500_v01.h5": "cosmos-7",
             "/a/helios-x/20261127/hx01234567_evt2.fits.gz": "helios-x",
             "/a/lyra/raw/2026-11-27/LY000123.fit": "lyra", "/a/lyra/reduced/2026-11-27/LY000124_red.fits": "lyra",
             "/a/aurora2/2026/11/aur2_mag_20261127_l1a.csv": "aurora-2", "/a/other/x.fits": None}
    for path, name in cases.items():
        got = ps.match(path)
        assert (got.name if got else None) == name, path
        if got:
            assert got.match_path(path) is not None, path
    assert ps.match("/a/helios-x/x.h5", "hdf5") is None  # formats = ["fits"]


@pytest.mark.parametrize("text, where, what", [
    ("[profile]\nname = 'x'\napplies_to = [\n", "line 4", "invalid TOML"),
    ("[profile]\nname = 'x'\n\n[defaults]\ncalib_level = 9\n", "line 5", "calib_level must be an integer 0-4"),
    ("[profile]\nname = 'x'\n[keywords]\nstart_time = ['A']\n", "line 4", "'start_time' is not a field"),
    ("[profile]\nname = 'x'\n[paths]\ntemplates = ['a/{d:%Q}.fits']\n", "line 4", "'%Q' is not a supported"),
    ("[profile]\nname = 'x'\n[value_maps.product]\nevt1 = 1\n", "line 4", "must map to a table of fields"),
    ("[profile]\nname = 'x'\n[defaults]\ndataproduct_type = 'picture'\n", "line 4", "dataproduct_type must be one of"),
    ("[profiles]\nname = 'x'\n", "line 1", "unknown section [profiles]"),
    ("[profile]\nnom = 'x'\n", "line 2", "unknown key 'nom' in [profile]"),
    ("[profile]\nname = 'x'\n[time]\ntwo_digit_year_base = 1950\n", "line 4", "must be 1900 or 2000"),
])
def test_bad_profiles_name_file_line_and_problem(tmp_path, text, where, what):
    path = _profile(tmp_path, text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    msg = str(err.value)
    assert msg.startswith(f"profile {path}, {where}") and what in msg, msg


def test_profiles_from_the_environment_and_extra(tmp_path, monkeypatch):
    d = tmp_path / "profiles"
    d.mkdir()
    _profile(d, "[profile]\nname = 'mine'\napplies_to = ['**/mine/**']\n", "mine.toml")
    _profile(d, "[profile]\nname = 'lyra'\napplies_to = ['**/lyra2/**']\n", "lyra.toml")  # replaces the shipped
    monkeypatch.setenv("COSMOSCOPE_PROFILES", str(d))
    ps = load_profiles()
    assert {"mine", "lyra"} <= set(ps.names) and ps["lyra"].applies_to == ("**/lyra2/**",)
    extra = _profile(tmp_path, "[profile]\nname = 'extra'\n", "extra.toml")
    assert "extra" in load_profiles(extra=extra).names
    assert "extra" in load_profiles(extra=[Profile(name="extra")]).names
    monkeypatch.setenv("COSMOSCOPE_PROFILES", str(tmp_path / "absent"))
    with pytest.raises(ProfileError, match="does not exist"):
        load_profiles()


def test_resolve_by_name_or_path_and_unknown_names(tmp_path):
    ps = load_profiles()
    assert ps.resolve("lyra").name == "lyra"
    path = _profile(tmp_path, "[profile]\nname = 'byfile'\n")
    assert ps.resolve(str(path)).name == "byfile"
    with pytest.raises(UnknownNameError, match="Did you mean 'lyra'"):
        ps.resolve("lira")


def test_ambiguous_ties_are_refused_and_priority_breaks_them(tmp_path):
    a = Profile.from_dict({"profile": {"name": "a", "applies_to": ["**/x/**"]}}, source="a.toml")
    b = Profile.from_dict({"profile": {"name": "b", "applies_to": ["**/x/*.fits"]}}, source="b.toml")
    with pytest.raises(AmbiguousProfileError, match="profiles 'a' .a.toml. and 'b' .b.toml. both apply"):
        ProfileSet([a, b]).match("/d/x/f.fits")
    b2 = Profile.from_dict({"profile": {"name": "b", "applies_to": ["**/x/*.fits"], "priority": 5}})
    assert ProfileSet([a, b2]).match("/d/x/f.fits").name == "b"
    p = helios_x(tmp_path / "x", "evt2")
    p = p.rename(tmp_path / "x" / "f.fits")
    rec = extract_file(p, profiles=ProfileSet([a, b]))
    assert rec["extraction_status"] == "error" and "both apply" in rec["extraction_error"]


@pytest.mark.parametrize("glob, path, hit", [
    ("**/helios-x/**", "/data/helios-x/2026/a.fits", True), ("helios-x/**", "/data/helios-x/a.fits", True),
    ("*.fits", "/d/a.fits.gz", False), ("/abs/*.fits", "/abs/a.fits", True), ("/abs/*.fits", "/x/abs/a.fits", False),
    ("**/lyra/raw/**", "/d/lyra/reduced/x.fits", False), ("**/LY[0-9]*.fit", "/d/LY1.fit", True),
    ("**/LY[!0-9]*.fit", "/d/LY1.fit", False),
])
def test_globs(glob, path, hit):
    assert bool(glob_regex(glob).fullmatch(path)) is hit


# --------------------------------------------------------------------------------------------
# Templates


def test_templates_parse_times_digits_and_repeated_names():
    t = PathTemplate.compile("m/{yyyy}/{doy}/x_{start:%Y%m%dT%H%M%S}_{n:03d}_{yyyy}.dat")
    got = t.match("/root/m/2026/331/x_20261127T081500_007_2026.dat")
    assert got["start"] == datetime(2026, 11, 27, 8, 15, tzinfo=UTC) and got["n"] == "007"
    assert t.match("/root/m/2026/331/x_20261127T081500_007_2025.dat") is None  # {yyyy} twice must agree
    assert t.match("/root/m/2026/331/x_20261327T081500_007_2026.dat") is None  # month 13
    assert t.match("/root/m/2026/331/x_20261127T081500_7_2026.dat") is None  # 03d needs 3 digits
    assert t.resolution("start") == 1.0
    for bad in ("/abs/{x}", "a/{x", "a/{n:5z}"):
        with pytest.raises(TemplateError):
            PathTemplate.compile(bad)


def test_path_fills_missing_fields_and_disagreement_is_recorded(tmp_path):
    # the packed header has no OBS_START: the path's {start} fills it, flagged as from the path
    p = cosmos7_l0(tmp_path, header="TARGET=NGC 253;EXPOSURE=600.0;")
    rec = extract_file(p)
    assert rec["observation_timestamp"] == START and rec["field_sources"]["observation_timestamp"] == "path:{start}"
    assert "from_path:observation_timestamp" in rec["quality_flags"]
    # a header start that disagrees with the file name by an hour
    q = cosmos7_l1(tmp_path, attrs={"time_coverage_start": "2026-11-27T09:15:00Z"})
    rec = extract_file(q)
    assert "time_conflict:path_vs_header" in rec["quality_flags"]
    assert rec["mission_specific"]["conflicts"][0]["source"] == "netCDF:@time_coverage_start"
    # instrument in the path vs the header
    r = cosmos7_l1(tmp_path, "l2", attrs={"instrument": "HRS"})
    assert "conflict:instrument_type:path_vs_header" in extract_file(r)["quality_flags"]


def test_value_map_on_a_field_renames(tmp_path):
    prof = Profile.from_dict({"profile": {"name": "ren"}, "value_maps": {"mission_id": {"HELIOS-X": "HX"}}})
    rec = extract_file(helios_x(tmp_path, "img"), profiles=prof)
    assert rec["mission_id"] == "HX" and rec["field_sources"]["mission_id"] == "profile:ren:value_maps.mission_id"


def test_forced_profile_applies_whatever_the_path(tmp_path):
    p = helios_x(tmp_path, "evt1")
    moved = tmp_path / "elsewhere.fits"
    p.rename(moved)
    assert extract_file(moved).get("calib_level") is None  # generic: nothing says the level
    rec = extract_file(moved, profiles="helios-x")
    assert rec["mission_specific"]["profile"] == "helios-x"
    assert "path_template_mismatch" in rec["quality_flags"]  # a HELIOS-X file outside its layout


# --------------------------------------------------------------------------------------------
# The shipped profiles on files of their missions


@pytest.mark.parametrize("make, want", [
    (lambda d: helios_x(d, "evt1", parents=()), {"calib_level": 1, "dataproduct_type": "event", "parents": []}),
    (lambda d: helios_x(d, "evt2", gz=True), {"calib_level": 2, "dataproduct_type": "event",
                                               "parents": [("hx01234567_evt1.fits", "raw->calibrated")]}),
    (lambda d: helios_x(d, "img", parents=("hx01234567_evt2.fits",)),
     {"calib_level": 3, "dataproduct_type": "image", "parents": [("hx01234567_evt2.fits", "calibrated->derived")]}),
    (lambda d: helios_x(d, "spec"), {"calib_level": 3, "dataproduct_type": "spectrum"}),
    (lambda d: lyra(d, "raw"), {"calib_level": 1, "dataproduct_type": "image", "parents": []}),
    (lambda d: lyra(d, "raw", legacy=False), {"calib_level": 1}),
    (lambda d: lyra(d, "reduced"), {"calib_level": 2, "parents": [("LY000123.fit", "raw->calibrated")]}),
    (lambda d: lyra(d, "reduced", seq=9, extra={"IMAGETYP": "STACK", "IMCMB002": "LY000124_red.fits"}),
     {"calib_level": 3, "parents": [("LY000009.fit", "calibrated->derived"), ("LY000124_red.fits", "calibrated->derived")]}),
    (lambda d: cosmos7_l0(d), {"calib_level": 1, "dataproduct_type": "image", "version": "01"}),
    (lambda d: cosmos7_l1(d, "l1", "HRS"), {"calib_level": 2, "dataproduct_type": "spectrum",
                                           "parents": [("c7_hrs_l0_20261127T081500_v01.h5", "raw->calibrated")]}),
    (lambda d: cosmos7_l1(d, "l2"), {"calib_level": 3, "parents": [("c7_wfi_l1_20261127T081500_v01.nc", "calibrated->derived")]}),
    (lambda d: aurora2(d, "l1a", sidecar=True), {"calib_level": 1, "dataproduct_type": "timeseries"}),
    (lambda d: aurora2(d, "l1b", source="aur2_mag_20261127_l1a.csv"),
     {"calib_level": 2, "parents": [("aur2_mag_20261127_l1a.csv", "raw->calibrated")]}),
    (lambda d: aurora2(d, "l2"), {"calib_level": 3}),
])
def test_shipped_profiles_on_synthetic_mission_files(tmp_path, make, want):
    rec = extract_file(make(tmp_path))
    assert rec["extraction_status"] == "ok", rec.get("extraction_error")
    assert rec["mission_specific"]["profile"] in SHIPPED
    assert rec["mission_id"] == rec["satellite_name"]
    assert rec["field_sources"]["mission_id"].split(":")[0] in ("FITS[0]", "FITS[1]", "HDF5", "netCDF", "CSV",
                                                                 "ECSV", "sidecar")
    assert not [f for f in rec["quality_flags"] if not f.startswith("missing:")], rec["quality_flags"]
    for k, v in want.items():
        if k == "parents":
            assert [(p["name"], p["relationship"]) for p in rec["_parents"]] == v
        else:
            assert rec[k] == v, (k, rec[k], rec["field_sources"].get(k))
    assert rec["calibration_status"] == ("uncalibrated" if rec["calib_level"] == 1 else "calibrated")


def test_simulated_tree_matches_its_ground_truth(tmp_path):
    """The other side of the missions.md contract: files written by ``cosmoscope simulate``."""
    from cosmoscope.simulate import simulate

    sky = simulate(tmp_path / "sky", files=90, days=2, seed=3, progress=False)
    checked = 0
    for row in sky.manifest.iter_rows(named=True):
        rec = extract_file(row["path"])
        assert rec["extraction_status"] == "ok", (row["relpath"], rec.get("extraction_error"))
        for ours, theirs in (("mission_id", "mission"), ("instrument_type", "instrument"),
                             ("calib_level", "calib_level"), ("target_object", "target"),
                             ("dataproduct_type", "dataproduct_type"), ("version", "version")):
            if row[theirs] is not None:
                assert rec[ours] == row[theirs], (row["relpath"], ours)
        assert sorted(p["name"] for p in rec["_parents"]) == sorted(p.rsplit("/", 1)[-1] for p in row["parents"])
        if row["relationship"]:
            assert {p["relationship"] for p in rec["_parents"]} == {row["relationship"]}
        # times in UTC (HELIOS-X headers are in TT), positions in ICRS (LYRA legacy frames are FK5)
        assert abs((rec["observation_timestamp"] - row["start"]).total_seconds()) < 1.0, row["relpath"]
        if row["product"] != "stack":  # a stack's end is inferred as start + total exposure
            assert abs((rec["observation_end"] - row["end"]).total_seconds()) < 1.0, row["relpath"]
        if row["ra"] is not None:
            assert abs(rec["ra"] - row["ra"]) < 1e-6 and abs(rec["dec"] - row["dec"]) < 1e-6, row["relpath"]
        checked += 1
    assert checked == sky.manifest.height


# --------------------------------------------------------------------------------------------
# Preview and the command


def test_preview_rows_and_formats(tmp_path):
    p = helios_x(tmp_path, "evt2")
    rows = preview([tmp_path])
    fields = {r.field: r for r in rows}
    assert fields["mission_id"].value == "HELIOS-X" and fields["mission_id"].source == "FITS[1]:TELESCOP"
    assert fields["profile"].value == "helios-x" and fields["parent"].value == "hx01234567_evt1.fits"
    assert all(r.path == str(p) for r in rows)
    text = format_rows(rows)
    assert text.splitlines()[0] == str(p) and "FITS[1]:DATE-OBS" in text and "2026-11-27T08:15:00Z" in text
    assert json.loads(rows_to_json(rows))[0] == {"path": str(p), "field": "file_format", "value": "fits",
                                                 "source": "sniff"}


def _cli(argv):
    from cosmoscope.cli import profiles_cmd

    parser = argparse.ArgumentParser(prog="cosmoscope")
    profiles_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_profiles_check_command(tmp_path, capsys):
    good = helios_x(tmp_path, "evt2")
    assert _cli(["profiles", "check", str(good)]) == 0
    assert "FITS[1]:TELESCOP" in capsys.readouterr().out
    bad = tmp_path / "bad.fits"
    bad.write_text("not fits")
    assert _cli(["profiles", "check", str(good), str(bad), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert {"path": str(bad), "field": "extraction_status", "value": "error", "source": ""} in out
    assert _cli(["profiles", "check", str(good), "--profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    broken = _profile(tmp_path, "[profile]\nname = \n", "broken.toml")
    assert _cli(["profiles", "check", str(good), "--profile", str(broken)]) == 2
    assert f"profile {broken}, line 2" in capsys.readouterr().err
    assert _cli(["profiles", "check", str(good), "--profile", "lyra"]) == 0  # forced, mismatching
    assert "path_template_mismatch" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        _cli(["profiles", "check"])
    assert exit_.value.code == 2


def test_profiles_list_command(capsys):
    assert _cli(["profiles", "list"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in SHIPPED) and "**/helios-x/**" in text
    assert _cli(["profiles", "list", "--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert SHIPPED <= {i["name"] for i in items} and all(os.path.exists(i["source"]) for i in items)


def test_a_list_of_profile_files_is_matched_among_themselves(tmp_path):
    mine = _profile(tmp_path, "[profile]\nname = 'mine'\napplies_to = ['**/hx*_img.fits']\n"
                              "[defaults]\ncalib_level = 4\n", "mine.toml")
    rec = extract_file(helios_x(tmp_path, "img"), profiles=[mine])
    assert rec["mission_specific"]["profile"] == "mine" and rec["calib_level"] == 4
    assert rec["field_sources"]["calib_level"] == "profile:mine:default"
