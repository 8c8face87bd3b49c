"""The toolkit-free layer under the explorers: filters, sorted pages, counts and facets, typed
times, the view's URL, problems in sentences, a record's details and exports -- each checked
against polars on the same rows held in memory."""

from __future__ import annotations

import datetime as dt
import json
import logging

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cosmoscope
from cosmoscope.errors import InvalidArgumentError
from cosmoscope.ui import query as Q
from cosmoscope.ui.columns import DEFAULT_SHOWN, SHOWN, shown_frame
from cosmoscope.ui.detail import record_detail, source_text
from cosmoscope.ui.facets import FACETS, facet_items
from cosmoscope.ui.problems import group_problems, problem_groups
from cosmoscope.ui.state import ViewState
from tests.test_ui_widgets import build_catalog, everything, reference

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def chain_cat(tmp_path_factory):
    c, chain = build_catalog(f"sqlite://{tmp_path_factory.mktemp('q')}/ui.sqlite")
    yield c, chain
    c.close()


@pytest.fixture(scope="module")
def cat(chain_cat):
    return chain_cat[0]


# -- pages, sorting and counts -----------------------------------------------------------------

@pytest.mark.parametrize("sort", list(Q.SORTS))
def test_pages_put_together_are_the_whole_sorted_selection(cat, sort):
    df = everything(cat)
    for filters, expected in [(Q.Filters(), df),
                              (Q.Filters(missions=("LYRA",)), df.filter(pl.col("mission_id") == "LYRA"))]:
        rs = Q.ResultSet(cat, filters, sort)
        assert rs.total == expected.height
        for size in (7, 50):
            pages = [rs.page(n, size) for n in range(1, rs.page(1, size).n_pages + 1)]
            ids = [i for p in pages for i in p.rows["dataset_id"].to_list()]
            assert ids == reference(expected, sort), (filters, size)
            assert all(p.rows.height == size for p in pages[:-1])


def test_page_numbers_are_clamped_and_captioned(cat):
    rs = Q.ResultSet(cat, Q.Filters(missions=("HELIOS-X",)))
    total = everything(cat).filter(pl.col("mission_id") == "HELIOS-X").height
    last = rs.page(10_000, 10)
    assert last.number == last.n_pages == -(-total // 10)
    assert last.caption() == f"{(last.number - 1) * 10 + 1}-{total} of {total} observations (page {last.number} of {last.n_pages})"
    assert rs.page(-3, 10).number == 1


def test_search_queries_are_pushed_down_and_projected(cat, caplog):
    rs = Q.ResultSet(cat, Q.Filters(missions=("LYRA",), min_quality=0.3))
    with caplog.at_level(logging.DEBUG, logger="cosmoscope.store.lazy"):
        rs.page(2, 10)
    scans = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scan observations")]
    assert len(scans) == 1  # the page itself: the total comes from the rollups
    text = scans[0]
    assert "mission_id == 'LYRA'" in text and "data_quality_score >= 0.3" in text
    assert "residual: (none)" in text
    assert "order:    observation_timestamp descending" in text and "at most 20 rows" in text
    columns = text.split("columns:", 1)[1].split("\n", 1)[0].split(",")
    assert len(columns) == len(Q.PAGE_COLUMNS)  # never whole rows
    assert cat.route(mission="LYRA", min_quality=0.3).rollups


def test_counts_choices_problems_and_freshness(tmp_path):
    cat, _ = build_catalog(f"sqlite://{tmp_path}/own.sqlite")  # this test writes to its catalog
    df = everything(cat)
    assert Q.count(cat) == df.height
    assert Q.count(cat, Q.Filters(missions=("LYRA",), min_quality=0.5)) == df.filter(
        (pl.col("mission_id") == "LYRA") & (pl.col("data_quality_score") >= 0.5)).height
    assert Q.distinct_values(cat, "instrument_type") == sorted(df["instrument_type"].drop_nulls().unique())
    assert Q.problem_counts(cat) == {"unreadable": 1, "incomplete metadata": 1, "failed validation": 1,
                                     "file missing": 1}
    problems = Q.problems(cat)
    assert problems.height == 4
    assert set(problems["problem"]) == set(Q.PROBLEM_KINDS)
    assert problems.filter(pl.col("problem") == "unreadable")["extraction_error"][0].startswith("not a FITS")
    token = Q.freshness(cat)
    assert Q.freshness(cat) == token
    cat.update(df["dataset_id"][0], processing_status="archived")
    assert Q.freshness(cat) != token  # an update changes no count, but it is an event


def test_filters_describe_themselves_and_reject_bad_orders(cat):
    f = Q.Filters(missions=("LYRA", "AURORA-2"), min_quality=0.8, target="NGC*", end=dt.date(2026, 11, 5))
    assert f.describe() == "mission LYRA or AURORA-2, target NGC*, before 2026-11-05, quality >= 0.8"
    assert Q.Filters().describe() == "no filters" and not Q.Filters().active
    with pytest.raises(cosmoscope.CosmoscopeError, match="unknown order"):
        Q.ResultSet(cat, f, sort="alphabetical")




def test_any_column_sorts_both_ways_with_missing_values_last(cat):
    df = everything(cat)
    for sort in ("target_object", "-target_object", "-exposure_time", "calib_level", "-file_name"):
        rs = Q.ResultSet(cat, Q.Filters(missions=("LYRA", "HELIOS-X")), sort)
        expected = df.filter(pl.col("mission_id").is_in(["LYRA", "HELIOS-X"]))
        ids = [i for n in range(1, rs.page(1, 9).n_pages + 1) for i in rs.page(n, 9).rows["dataset_id"]]
        assert ids == reference(expected, sort), sort
    with pytest.raises(InvalidArgumentError, match="unknown order 'nonsense'"):
        Q.ResultSet(cat, Q.Filters(), "nonsense")


def test_levels_quality_bands_and_readability_filter_in_the_store(cat, caplog):
    df = everything(cat)
    f = Q.Filters(levels=(1, 2), quality_bands=("high", "poor", "none"), extraction=("ok", "error"))
    q = pl.col("data_quality_score")
    # The test rows leave extraction_status empty but for an unreadable and an incomplete one.
    expected = df.filter(pl.col("calib_level").is_in([1, 2]) & ((q >= 0.9) | (q < 0.5) | q.is_null()))
    assert Q.count(cat, Q.Filters(extraction=("error",))) == 1
    f = f.but(extraction=())
    with caplog.at_level(logging.DEBUG, logger="cosmoscope.store.lazy"):
        assert Q.ResultSet(cat, f).total == expected.height > 0
    assert all("residual: (none)" in r.getMessage() for r in caplog.records
               if r.getMessage().startswith("scan observations"))
    assert Q.count(cat, f) == expected.height
    assert f.but(extraction=("ok", "error")).describe() == (
        "level L1 or L2, quality 0.9-1 or below 0.5 or no score, metadata read or unreadable")
    assert f.without("levels").levels == () and f.without("levels").quality_bands == f.quality_bands
    with pytest.raises(InvalidArgumentError, match="unknown quality band 'great'"):
        Q.Filters(quality_bands=("great",))


@pytest.mark.parametrize("text, end, expected", [
    ("2026-11-25", False, dt.datetime(2026, 11, 25, tzinfo=UTC)),
    ("2026-11-25", True, dt.datetime(2026, 11, 26, tzinfo=UTC)),  # a whole day counts in full
    ("2026-11-25 08:30", True, dt.datetime(2026, 11, 25, 8, 30, tzinfo=UTC)),
    ("2026-329", False, dt.datetime(2026, 11, 25, tzinfo=UTC)),
    ("2026:329:08:30:15", False, dt.datetime(2026, 11, 25, 8, 30, 15, tzinfo=UTC)),
    ("2026-329T08:30+01:00", False, dt.datetime(2026, 11, 25, 7, 30, tzinfo=UTC)),
    ("2024.366", True, dt.datetime(2025, 1, 1, tzinfo=UTC)),
    ("", False, None),
])
def test_typed_times(text, end, expected):
    assert Q.read_when(text, end=end) == expected


def test_ages_and_unreadable_times():
    before = dt.datetime.now(UTC)
    got = Q.read_when("7d")
    assert before - dt.timedelta(days=7, seconds=5) < got <= dt.datetime.now(UTC) - dt.timedelta(days=7)
    for bad in ("yesterday", "2026-13-01", "2026-400", "27/11/2026"):
        with pytest.raises(InvalidArgumentError, match="type a date .* or an age such as 24h or 7d"):
            Q.read_when(bad)


# -- the view's address -------------------------------------------------------------------------

_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12).map(
    str.strip).filter(bool)


@settings(max_examples=60, deadline=None)
@given(missions=st.lists(_names, max_size=3, unique=True), levels=st.lists(st.integers(0, 4), max_size=3, unique=True),
       bands=st.lists(st.sampled_from(sorted(Q.QUALITY_BANDS)), max_size=2, unique=True), target=_names | st.just(""),
       start=st.sampled_from(["", "2026-11-25", "2026-329", "7d", "2026-11-25 08:30"]), page=st.integers(1, 500),
       sort=st.sampled_from(["-observation_timestamp", "file_size", "-target_object", "calib_level"]),
       tab=st.sampled_from(["search", "charts", "lineage", "problems", "summary"]),
       columns=st.lists(st.sampled_from(sorted(SHOWN)), min_size=1, max_size=5, unique=True),
       focus=st.sampled_from(["", "ds-0123456789abcdef"]), opened=st.booleans())
def test_every_part_of_a_view_round_trips_through_its_url(missions, levels, bands, target, start, page, sort, tab,
                                                          columns, focus, opened):
    state = ViewState(missions=tuple(missions), levels=tuple(levels), quality_bands=tuple(bands), target=target,
                      start=start, page=page, sort=sort, tab=tab, columns=tuple(columns), focus=focus,
                      open=opened and bool(focus))
    back = ViewState.from_query(state.to_query())
    assert back == state and not back.notes


def test_a_mangled_url_keeps_what_it_can_and_says_what_it_dropped():
    s = ViewState.from_query("mission=LYRA&level=7&quality=great&status=done&tab=nope&sort=x&page=-2&cols=file,zz")
    assert s.missions == ("LYRA",) and s.levels == () and s.tab == "search" and s.page == 1
    assert s.columns == ("file",)
    assert set(s.notes) == {"ignored level=7", "ignored quality=great", "ignored status=done", "ignored tab=nope",
                            "ignored sort=x", "ignored page=-2", "ignored columns zz"}
    assert ViewState.from_query("").to_query() == "" and ViewState().columns == DEFAULT_SHOWN


# -- facets ----------------------------------------------------------------------------------------

def test_facets_count_the_matches_without_their_own_filter(cat):
    df = everything(cat)
    f = Q.Filters(missions=("LYRA",), levels=(2,))
    items = {facet.field: facet_items(cat, facet, f) for facet in FACETS}
    # Missions are counted as if no mission were chosen (choosing another adds it), levels too.
    lvl2 = df.filter(pl.col("calib_level") == 2)
    assert {i["value"]: i["n"] for i in items["missions"]} == dict(lvl2.group_by("mission_id").len().iter_rows())
    lyra = df.filter(pl.col("mission_id") == "LYRA")
    assert [(i["value"], i["n"]) for i in items["levels"]] == sorted(
        (str(k), n) for k, n in lyra.group_by("calib_level").len().drop_nulls().iter_rows())
    both = lyra.filter(pl.col("calib_level") == 2)
    assert {i["value"]: i["n"] for i in items["statuses"]} == dict(both.group_by("processing_status").len().iter_rows())
    q = both["data_quality_score"]
    quality = {i["value"]: i["n"] for i in items["quality_bands"]}
    assert quality.get("high", 0) == (q >= 0.9).sum() and quality.get("none", 0) == q.is_null().sum()
    assert sum(quality.values()) == both.height
    assert [i["label"] for i in items["levels"]][0].startswith("L")
    nothing = facet_items(cat, FACETS[0], Q.Filters(missions=("NOPE",), target="No Such Target"))
    assert nothing == [{"value": "NOPE", "label": "NOPE", "n": 0}]  # a choice matching nothing stays



def band_counts_of(df: pl.DataFrame) -> dict[str, int]:
    q = df["data_quality_score"]
    return {key: int(q.is_null().sum() if low is None else
                     ((q >= low) & (q < high) if high is not None else q >= low).sum())
            for key, (_, low, high) in Q.QUALITY_BANDS.items()}


def test_quality_band_counts_come_from_the_histogram_and_equal_the_rows(tmp_path, caplog):
    import logging

    import pyarrow as pa

    from cosmoscope import schema as S
    from cosmoscope.ui.facets import quality_band_counts

    cat, _ = build_catalog(f"sqlite://{tmp_path}/own.sqlite")  # this test writes to its catalog
    df = everything(cat)
    for f in (Q.Filters(), Q.Filters(missions=("LYRA", "AURORA-2")), Q.Filters(start=dt.date(2026, 11, 8)),
              Q.Filters(levels=(1, 2)), Q.Filters(product_types=("image",), statuses=("raw",))):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="cosmoscope.summaries"):
            got = quality_band_counts(cat, f)
        assert "-> rollups" in caplog.text and "-> rows" not in caplog.text, caplog.text
        assert got == band_counts_of(df.filter(f.expr(cat)) if f.active else df), f
    # A score outside 0-1 (only a raw store write can make one) is left out of the histogram:
    # the bands are then counted from the rows, and "high" still counts 1.5.
    first = df.filter(pl.col("data_quality_score").is_not_null())["dataset_id"][0]
    cat.store.update(S.OBSERVATIONS.name, pa.table({"dataset_id": [first], "data_quality_score": [1.5]}),
                     S.OBSERVATIONS.key)
    df = everything(cat)
    assert quality_band_counts(cat, Q.Filters()) == band_counts_of(df)
    cat.close()


# -- what a row says ---------------------------------------------------------------------------------

def test_rows_say_what_the_file_is_and_unreadable_files_say_so(cat):
    rows = cat.observations().collect()
    shown = shown_frame(rows, DEFAULT_SHOWN)
    assert shown.columns == ["dataset_id", *DEFAULT_SHOWN]
    unreadable = rows.filter(pl.col("extraction_status") == "error")["dataset_id"].to_list()
    bad = shown.filter(pl.col("dataset_id").is_in(unreadable))
    assert bad["state"].to_list() == ["unreadable"] and bad["quality"].to_list() == ["n/a"]
    assert bad["file"].to_list() == ["unreadable.fits"]  # the file's own name, not its directory
    banded = shown.filter(pl.col("band") != "")
    assert set(banded["band"]) == {"V"} and banded.height == 1
    levels = set(shown["level"])
    assert {"L0 raw (native)", "L1 raw", "L2 calibrated", "L3 derived"} <= levels


def test_problems_are_sentences_grouped_worst_first_with_the_command_that_mends_them(cat):
    groups = problem_groups(cat)
    assert [(g.severity, g.kind) for g in groups] == [("error", "unreadable"), ("error", "missing"),
                                                      ("warning", "incomplete"), ("warning", "impossible")]
    assert groups[0].sentence == "Not a FITS file: 1 file cannot be read."
    assert groups[0].details == ["no SIMPLE card"]
    assert groups[0].command == "cosmoscope validate --fix --mission LYRA --path /archive/broken"
    assert groups[1].sentence == "1 file is missing from disk." and "--fix" not in groups[1].command
    assert groups[3].sentence == "Time after end: 1 file has impossible values."
    rows = [{"dataset_id": f"ds-{i}", "mission_id": "X", "file_path": f"/d/{i}.fits", "extraction_status": "ok",
             "validation_status": "problems",
             "validation_problems": json.dumps([{"kind": "changed", "detail": "size 10 -> 20"},
                                                {"kind": "missing", "detail": "the file does not exist"}])}
            for i in range(3)]
    grouped = group_problems(rows)
    assert [(g.kind, g.n) for g in grouped] == [("missing", 3), ("changed", 3)]
    assert grouped[0].sentence == "3 files are missing from disk." and grouped[1].details[0] == "size 10 -> 20"
    assert "{" not in "".join(g.sentence + g.advice for g in grouped)  # no raw JSON



@pytest.mark.parametrize("filters", [None, Q.Filters(missions=("LYRA",)), Q.Filters(target="NGC*")])
def test_problem_rows_are_capped_by_the_store(cat, filters):
    """The rows of each kind of problem are read with their cap handed to the store: with the
    filter above the scan polars passed none and read ahead (0.5 s a kind at 10M rows)."""
    for column, values in Q.PROBLEM_KINDS.values():
        assert "the limit reached the store" in cat.explain(Q.problem_frame(cat, filters, column, values).head(7))
    got = Q.problem_frame(cat, filters, "extraction_status", ["error"]).collect()
    rows = (filters or Q.Filters()).frame(cat).collect()
    assert sorted(got["dataset_id"]) == sorted(rows.filter(pl.col("extraction_status") == "error")["dataset_id"])


def test_a_page_of_nothing_reads_no_rows(cat, caplog):
    """When the total is 0 the page is empty without a read: with a filter polars applies (a
    forgiving name) the read of an ordered page went through every row (30 s at 10M rows)."""
    import logging

    rs = Q.ResultSet(cat, Q.Filters(target="No Such Target"))
    assert rs.total == 0
    with caplog.at_level(logging.DEBUG, logger="cosmoscope.store"):
        page = rs.page(1, 25)
    assert page.rows.height == 0 and page.rows.columns == rs.columns
    assert not [r for r in caplog.records if "scan observations" in r.getMessage()]
    assert Q.ResultSet(cat, Q.Filters(target="NGC 253")).page(1, 25).rows.height > 0

def test_a_record_says_where_each_value_came_from(chain_cat):
    cat, chain = chain_cat
    d = record_detail(cat, chain["derived"])
    by_name = {f[0]: f for f in d.fields}
    assert by_name["target_object"][3] == "FITS header of HDU 1, keyword OBJECT"
    assert by_name["file_size"][3] == "the file system"
    assert [p["dataset_id"] for p in d.parents] == [chain["calibrated"]] and d.children == []
    assert set(d.history["action"]) >= {"add", "update", "link"}
    html = d.to_html()
    assert "where it came from" in html and "Audit trail" in html and "Made from" in html
    assert source_text("profile:lyra:value_maps.IMAGETYP") == "mission profile lyra (mapped from IMAGETYP)"
    assert source_text("netCDF:@time_coverage_start") == "netCDF global attribute time_coverage_start"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "votable"])
def test_exports_hold_the_selection_in_order(cat, tmp_path, fmt):
    from astropy.table import Table

    rs = Q.ResultSet(cat, Q.Filters(missions=("HELIOS-X",)), "-file_size")
    path = tmp_path / f"sel.{ {'votable': 'vot'}.get(fmt, fmt) }"
    assert rs.export(path) == rs.total > 0
    if fmt == "votable":
        back = Table.read(path, format="votable")
        assert list(back["dataset_id"]) == rs.collect()["dataset_id"].to_list()
        assert str(back["ra"].unit) == "deg" and back["ra"].description.startswith("Right ascension")
    else:
        back = pl.read_csv(path) if fmt == "csv" else pl.read_parquet(path)
        assert back["dataset_id"].to_list() == rs.collect()["dataset_id"].to_list()


def test_a_cone_reaches_the_store_and_needs_the_catalog_to_place_names(cat):
    import numpy as np

    df = everything(cat).filter(pl.col("ra").is_not_null() & pl.col("dec").is_not_null())
    ra0, dec0 = df["ra"][0], df["dec"][0]
    f = Q.Filters(near=f"{ra0} {dec0}", radius="20deg", missions=("LYRA", "HELIOS-X", "COSMOS-7", "AURORA-2"))
    r0, d0, r, d = (np.radians(v) for v in (ra0, dec0, df["ra"].to_numpy(), df["dec"].to_numpy()))
    sep = np.degrees(np.arccos(np.clip(np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0), -1, 1)))
    assert Q.ResultSet(cat, f).total == Q.count(cat, f) == int((sep <= 20).sum()) >= 1
    assert f.describe().endswith("within 20deg of " + f"{ra0} {dec0}")
    assert Q.Filters(near=f"{ra0} {dec0}").search_kwargs()["radius"] == Q.DEFAULT_RADIUS
    with pytest.raises(InvalidArgumentError, match="needs the catalog"):
        f.expr()
    with pytest.raises(InvalidArgumentError, match="cannot place 'Nowhere Nebula' on the sky"):
        Q.count(cat, Q.Filters(near="Nowhere Nebula"))
