"""The notebook explorers, driven without a browser: set controls, click buttons, read the results.

Also the query layer they share with the dashboard (pages, counts, problems, freshness), checked
against polars on the same rows held in memory.
"""

from __future__ import annotations

import datetime as dt
from html import escape

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
    records.append({"file_path": "/archive/broken/unreadable.fits", "mission_id": "LYRA", "data_quality_score": None,
                    "extraction_status": "error", "extraction_error": "not a FITS file: no SIMPLE card"})
    records.append({"file_path": "/archive/lyra/partial.fits", "mission_id": "LYRA", "extraction_status": "partial",
                    "instrument_type": "LYCAM", "mission_specific": {"FILTER": "V"},
                    "quality_flags": ["missing:observation_timestamp"]})
    cat.add_records(records)
    ids = cat.observations().select("dataset_id", "file_path").collect().sort("file_path")["dataset_id"].to_list()
    chain = {"raw": ids[10], "calibrated": ids[11], "derived": ids[12], "calib_input": ids[13], "lonely": ids[20]}
    cat.link(chain["raw"], chain["calibrated"], "raw->calibrated")
    cat.link(chain["calibrated"], chain["derived"], "calibrated->derived")
    cat.link(chain["calib_input"], chain["calibrated"], "calibration")
    cat.update(chain["calibrated"], processing_status="processed")
    cat.update(chain["derived"], processing_status="failed",
               field_sources='{"target_object": "FITS[1]:OBJECT", "mission_id": "FITS[1]:TELESCOP"}')
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
    column, descending = Q.parse_sort(sort)
    return df.sort([column, "dataset_id"], descending=[descending, False], nulls_last=True)["dataset_id"].to_list()


def n_rows(html: str) -> int:
    return html.count("<tr>") - 1  # minus the header


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
    ex.start.value = "2026-307"  # a day of the year: 3 November
    ex.end.value = "2026-11-15"  # a whole day counts in full
    expected = expected.filter(
        (pl.col("instrument_type") == "WFI") & (pl.col("data_quality_score") >= 0.4)
        & pl.col("target_object").str.starts_with("NGC")
        & (pl.col("observation_timestamp") >= dt.datetime(2026, 11, 3, tzinfo=UTC))
        & (pl.col("observation_timestamp") < dt.datetime(2026, 11, 16, tzinfo=UTC)))
    assert expected.height > 0
    assert ex.total == expected.height
    assert ex.page.rows["dataset_id"].to_list() == reference(expected, "newest first")
    assert ex.message.value == ""

    ex.status.value = ("archived",)
    assert ex.total == 0
    assert "No observations match" in ex.message.value and "status archived" in ex.message.value
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
    ex.start.value = "2026-11-20"
    ex.end.value = "2026-11-02"
    assert "is not after the start time" in ex.message.value and ex.page is None
    ex.end.value = "yesterday"
    assert "could not read 'yesterday' as the end" in ex.message.value and ex.table.value == ""
    ex.reset()
    ex.target.value = "No Such Target"
    assert ex.total == 0 and "No observations match target No Such Target" in ex.message.value
    ex.export_path.value = str(tmp_path / "out.xlsx")
    ex.export_button.click()
    assert "Not exported" in ex.export_status.value and "choose csv, parquet or votable" in ex.export_status.value


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
    ids = [v for _, v in ex.lineage_choice.options]
    assert ids == ex.page.rows["dataset_id"].to_list()
    assert ex.lineage_choice.value == ids[0]  # something is chosen from the start: the button always works
    ex.lineage_button.click()
    assert ex.lineage is not None and ex.lineage.dataset_id == ids[0]
    ex.lineage_choice.value = chain["calibrated"]
    assert ex.lineage is None and ex.lineage_box.children == ()  # the old lineage goes with the old choice
    ex.lineage_button.click()
    assert ex.lineage.dataset_id == chain["calibrated"] and ex.lineage_box.children == (ex.lineage.widget,)
    ex.mission.value = ("HELIOS-X",)
    assert ex.lineage is None and ex.lineage_box.children == ()  # new results: the lineage below them goes
    assert ex.lineage_choice.value == ex.page.rows["dataset_id"][0]


# -- LineageExplorer -------------------------------------------------------------------------

def test_lineage_is_a_graph_and_a_click_moves_the_focus_or_opens_the_record(chain_cat):
    cat, chain = chain_cat
    lx = LineageExplorer(cat, chain["calibrated"])
    g = lx.graph
    assert {n.dataset_id for n in g.upstream} == {chain["raw"], chain["calib_input"]}
    assert [n.dataset_id for n in g.downstream] == [chain["derived"]]
    derived = g.downstream[0]
    assert derived.processing_status == "failed" and derived.relationships == ("calibrated->derived",)
    assert {n.relationships for n in g.upstream} == {("raw->calibrated",), ("calibration",)}
    assert [n.column for n in g.nodes] == [0, 0, 1, 2]  # inputs left, products right
    svg = lx.picture.svg
    for label in ("raw->calibrated", "calibration", "calibrated->derived"):  # labelled edges
        assert f">{escape(label)}</text>" in svg
    assert svg.count('class="cs-edge"') == 3 and svg.count('data-id="') == 4
    assert '#dc3545' in svg  # the failed product's status colour
    assert lx._repr_mimebundle_()["text/html"].count("<svg") == 1  # a picture where widgets cannot draw

    lx.clicked({"action": "open", "id": chain["derived"]})
    assert "where it came from" in lx.details.value and lx.dataset_id == chain["calibrated"]
    lx.clicked({"action": "focus", "id": chain["raw"]})
    assert lx.dataset_id == chain["raw"] and lx.id_input.value == chain["raw"] and lx.details.value == ""
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
    assert lx.picture.svg == ""
    lx.id_input.value = chain["lonely"]  # typing an id moves the focus
    assert lx.dataset_id == chain["lonely"] and lx.graph.empty
    assert "no recorded parents or children" in lx.message.value
    assert lx.picture.svg.count('data-id="') == 1


def test_charts_tab_draws_the_current_selection(cat):
    ex = SearchExplorer(cat)
    ex.mission.value = ("LYRA",)
    ex.charts_button.click()
    assert len(ex.last_charts) == 5
    timeline = ex.last_charts[0].object
    assert [item.label.value for item in timeline.legend[0].items] == ["LYRA"]  # its legend names only LYRA
