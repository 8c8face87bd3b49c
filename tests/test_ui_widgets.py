"""The notebook explorers, driven without a browser: set controls, click buttons, read the results.

Also the query layer they share with the dashboard (pages, counts, problems, freshness), checked
against polars on the same rows held in memory.
"""

from __future__ import annotations

import datetime as dt
import logging

import polars as pl
import pytest

import cosmoscope
from cosmoscope.ui import query as Q
from cosmoscope.ui.widgets import LineageExplorer, SearchExplorer
from tests.conftest import make_records

UTC = dt.timezone.utc
TIE = dt.datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def build_catalog(path) -> tuple[cosmoscope.Catalog, dict]:
    """A catalog with four missions, tied start times, unreadable rows, problems and lineage.

    Returns the catalog and a dict naming the datasets of the lineage chain.
    """
    cat = cosmoscope.open_catalog(path)
    records = make_records(120, seed=7)
    for i in range(3):  # same start time: pages must still split them consistently
        records.append({"file_path": f"/archive/lyra/tie_{i}.fits", "mission_id": "LYRA", "instrument_type": "LYCAM",
                        "observation_timestamp": TIE, "data_quality_score": 0.5, "file_size": 1000 + i})
    records.append({"file_path": "/archive/broken/unreadable.fits", "mission_id": "LYRA",
                    "extraction_status": "error", "extraction_error": "not a FITS file: no SIMPLE card"})
    records.append({"file_path": "/archive/lyra/partial.fits", "mission_id": "LYRA", "extraction_status": "partial",
                    "instrument_type": "LYCAM"})
    cat.add_records(records)
    ids = cat.observations().select("dataset_id", "file_path").collect().sort("file_path")["dataset_id"].to_list()
    chain = {"raw": ids[10], "calibrated": ids[11], "derived": ids[12], "calib_input": ids[13], "lonely": ids[20]}
    cat.link(chain["raw"], chain["calibrated"], "raw->calibrated")
    cat.link(chain["calibrated"], chain["derived"], "calibrated->derived")
    cat.link(chain["calib_input"], chain["calibrated"], "calibration")
    cat.update(chain["calibrated"], processing_status="processed")
    cat.update(chain["derived"], processing_status="failed")
    cat.update(ids[40], validation_status="problems", validation_problems='["time after end"]')
    cat.update(ids[41], file_status="missing")
    return cat, chain


@pytest.fixture
def cat(tmp_path):
    c, _ = build_catalog(f"sqlite://{tmp_path}/ui.sqlite")
    yield c
    c.close()


@pytest.fixture
def chain_cat(tmp_path):
    c, chain = build_catalog(f"sqlite://{tmp_path}/ui.sqlite")
    yield c, chain
    c.close()


def everything(cat) -> pl.DataFrame:
    return cat.observations().collect()


def reference(df: pl.DataFrame, sort: str) -> list[str]:
    column, descending = Q.SORTS[sort]
    return df.sort([column, "dataset_id"], descending=[descending, False], nulls_last=True)["dataset_id"].to_list()


def n_rows(html: str) -> int:
    return html.count("<tr>") - 1  # minus the header


# -- the query layer ------------------------------------------------------------------------

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


def test_counts_choices_problems_and_freshness(cat):
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


# -- SearchExplorer --------------------------------------------------------------------------

def test_explorer_offers_the_catalog_choices_and_a_first_page(cat):
    df = everything(cat)
    ex = SearchExplorer(cat, page_size=10)
    assert list(ex.mission.options) == sorted(df["mission_id"].unique())
    assert list(ex.instrument.options) == sorted(df["instrument_type"].drop_nulls().unique())
    assert ex.total == df.height
    assert f"1-10 of {df.height} observations (page 1 of {-(-df.height // 10)})" in ex.count_label.value
    assert n_rows(ex.table.value) == 10
    assert ex.page.rows["dataset_id"].to_list() == reference(df, "newest first")[:10]
    assert ex.prev_button.disabled and not ex.next_button.disabled
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()


def test_changing_filters_updates_the_table_and_count(cat):
    df = everything(cat)
    ex = SearchExplorer(cat, page_size=25)
    ex.mission.value = ("COSMOS-7",)
    expected = df.filter(pl.col("mission_id") == "COSMOS-7")
    assert ex.total == expected.height
    assert set(ex.page.rows["mission_id"]) == {"COSMOS-7"}
    assert f"of {expected.height} observations" in ex.count_label.value
    assert "HELIOS-X" not in ex.table.value

    ex.instrument.value = ("WFI",)
    ex.min_quality.value = 0.4
    ex.target.value = "NGC*"
    ex.start.value = dt.date(2026, 11, 3)
    ex.end.value = dt.date(2026, 11, 15)  # inclusive in the explorer
    expected = expected.filter(
        (pl.col("instrument_type") == "WFI") & (pl.col("data_quality_score") >= 0.4)
        & pl.col("target_object").str.starts_with("NGC")
        & (pl.col("observation_timestamp") >= dt.datetime(2026, 11, 3, tzinfo=UTC))
        & (pl.col("observation_timestamp") < dt.datetime(2026, 11, 16, tzinfo=UTC)))
    assert expected.height > 0
    assert ex.total == expected.height
    assert ex.page.rows["dataset_id"].to_list() == reference(expected, "newest first")
    assert ex.message.value == ""

    ex.status.value = ("processed",)
    assert ex.total == 0
    assert "No observations match" in ex.message.value and "status processed" in ex.message.value
    assert n_rows(ex.table.value) == -1  # no table at all

    ex.reset()
    assert ex.total == df.height and ex.mission.value == () and ex.target.value == ""

    ex.target.value = "ngc253"  # forgiving by default: case, spaces and punctuation ignored
    assert ex.total == df.filter(pl.col("target_object") == "NGC 253").height > 0
    ex.reset()


def test_paging_with_buttons(cat):
    df = everything(cat)
    ex = SearchExplorer(cat, page_size=10, sort="oldest first")
    order = reference(df, "oldest first")
    ex.next_button.click()
    assert ex.page_number == 2 and ex.page.rows["dataset_id"].to_list() == order[10:20]
    ex.prev_button.click()
    assert ex.page.rows["dataset_id"].to_list() == order[:10]
    ex.go(10_000)
    assert ex.next_button.disabled and ex.page.rows["dataset_id"].to_list() == order[(ex.page.n_pages - 1) * 10:]
    ex.page_size.value = 50  # a new page size starts again at page 1
    assert ex.page_number == 1 and n_rows(ex.table.value) == 50


def test_bad_input_is_said_not_raised(cat, tmp_path):
    ex = SearchExplorer(cat)
    ex.start.value = dt.date(2026, 11, 20)
    ex.end.value = dt.date(2026, 11, 2)
    assert "is not after the start time" in ex.message.value and ex.page is None
    ex.reset()
    ex.target.value = "No Such Target"
    assert ex.total == 0 and "No observations match target No Such Target" in ex.message.value
    ex.export_path.value = str(tmp_path / "out.xlsx")
    ex.export_button.click()
    assert "Not exported" in ex.export_status.value and "choose csv or parquet" in ex.export_status.value


def test_empty_catalog_says_so(tmp_path):
    with cosmoscope.open_catalog(f"sqlite://{tmp_path}/empty.sqlite") as cat:
        ex = SearchExplorer(cat)
        assert ex.total == 0 and ex.mission.options == ()
        assert "This catalog is empty" in ex.message.value
        assert ex.selected.height == 0


def test_selection_as_a_frame_and_exported(cat, tmp_path):
    ex = SearchExplorer(cat)
    ex.mission.value = ("AURORA-2",)
    ex.min_quality.value = 0.5
    sel = ex.selected
    expected = everything(cat).filter((pl.col("mission_id") == "AURORA-2") & (pl.col("data_quality_score") >= 0.5))
    assert isinstance(sel, pl.DataFrame) and sel.columns == expected.columns
    assert sel["dataset_id"].to_list() == reference(expected, "newest first")
    assert ex.query.select(pl.len()).collect().item() == expected.height

    ex.export_path.value = str(tmp_path / "sel.parquet")
    ex.export_button.click()
    assert f"Wrote {expected.height} rows" in ex.export_status.value
    back = pl.read_parquet(tmp_path / "sel.parquet")
    assert back["dataset_id"].to_list() == sel["dataset_id"].to_list()
    assert back["observation_timestamp"].to_list() == sel["observation_timestamp"].to_list()

    assert ex.export(tmp_path / "sel.csv") == expected.height
    csv = pl.read_csv(tmp_path / "sel.csv")
    assert csv["dataset_id"].to_list() == sel["dataset_id"].to_list()
    assert csv["observation_timestamp"][0].endswith("Z")


def test_refresh_shows_new_data(cat):
    ex = SearchExplorer(cat)
    before = ex.total
    cat.add_records([{"file_path": "/archive/new/one.fits", "mission_id": "NEW-1", "instrument_type": "NEWCAM",
                      "observation_timestamp": dt.datetime(2027, 1, 1, tzinfo=UTC)}])
    ex.mission.value = ("LYRA",)
    ex.refresh()
    assert "NEW-1" in ex.mission.options and "NEWCAM" in ex.instrument.options
    assert ex.mission.value == ("LYRA",)  # a choice still offered stays chosen
    ex.reset()
    assert ex.total == before + 1 and ex.page.rows["mission_id"][0] == "NEW-1"  # newest first


def test_opening_lineage_from_the_results(chain_cat):
    cat, chain = chain_cat
    ex = SearchExplorer(cat, page_size=100)
    ex.page_size.value = 100
    ex.go(1)
    ids = [v for _, v in ex.lineage_choice.options]
    assert ids == ex.page.rows["dataset_id"].to_list()
    ex.lineage_choice.value = chain["calibrated"] if chain["calibrated"] in ids else ids[0]
    ex.lineage_button.click()
    assert ex.lineage is not None and ex.lineage.dataset_id == ex.lineage_choice.value
    assert ex.lineage_box.children == (ex.lineage.widget,)


# -- LineageExplorer -------------------------------------------------------------------------

def test_lineage_shows_parents_and_children_and_moves_focus_on_click(chain_cat):
    cat, chain = chain_cat
    lx = LineageExplorer(cat, chain["calibrated"])
    g = lx.graph
    assert {n.dataset_id for n in g.upstream} == {chain["raw"], chain["calib_input"]}
    assert [n.dataset_id for n in g.downstream] == [chain["derived"]]
    derived = g.downstream[0]
    assert derived.processing_status == "failed" and derived.relationships == ("calibrated->derived",)
    assert {n.relationships for n in g.upstream} == {("raw->calibrated",), ("calibration",)}
    assert set(lx.node_buttons) == {chain["raw"], chain["calib_input"], chain["calibrated"], chain["derived"]}
    assert lx.node_buttons[chain["derived"]].style.button_color == "#dc3545"  # failed is red
    assert "failed · q" in lx.columns.children[2].children[1].children[1].value
    assert chain["calibrated"] in lx.details.value and "processed" in lx.details.value

    lx.node_buttons[chain["raw"]].click()
    assert lx.dataset_id == chain["raw"] and lx.id_input.value == chain["raw"]
    assert [n.dataset_id for n in lx.graph.downstream if n.depth == 1] == [chain["calibrated"]]
    assert [n.dataset_id for n in lx.graph.downstream if n.depth == 2] == [chain["derived"]]
    assert not lx.back_button.disabled
    lx.back_button.click()
    assert lx.dataset_id == chain["calibrated"] and lx.back_button.disabled

    lx.depth.value = 1
    assert lx.graph.levels.keys() == {-1, 1}


def test_lineage_bad_ids_and_lonely_datasets(chain_cat):
    cat, chain = chain_cat
    lx = LineageExplorer(cat, "ds-does-not-exist")
    assert lx.graph is None and "No dataset 'ds-does-not-exist' in this catalog" in lx.message.value
    assert lx.columns.children == ()
    lx.id_input.value = chain["lonely"]  # typing an id moves the focus
    assert lx.dataset_id == chain["lonely"] and lx.graph.empty
    assert "No recorded parents or children" in lx.message.value
    assert list(lx.node_buttons) == [chain["lonely"]]


def test_charts_tab_draws_the_current_selection(cat):
    ex = SearchExplorer(cat)
    ex.mission.value = ("LYRA",)
    ex.charts_button.click()
    assert len(ex.last_charts) == 5
    assert [d.name for d in ex.last_charts[0].vdims] == ["LYRA"]  # one area per mission: only LYRA
