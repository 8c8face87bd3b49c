"""``cosmoscope report`` and :mod:`cosmoscope.reports`: finding notebooks, reading parameters,
the HTML it writes (tables, charts, verdict), failing cells, and the shipped notebooks themselves."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import polars as pl
import pytest

from cosmoscope.cli import main
from cosmoscope.errors import InvalidArgumentError, UnknownNameError
from cosmoscope.reports import (
    NOTEBOOK_DIR,
    NotebookInfo,
    Parameter,
    list_notebooks,
    notebook_info,
    output_paths,
    parse_parameters,
    run_report,
    table,
)
from tests.notebook_env import SKY_END, SKY_START, jupyter_env, sky  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["explore", "ingest", "pipeline_preflight", "validation_report"]


# -- the notebooks as files ---------------------------------------------------------------------

def test_the_top_level_notebooks_are_the_packaged_ones():
    packaged = {p.name: p.read_bytes() for p in NOTEBOOK_DIR.glob("*.ipynb")}
    top = {p.name: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert sorted(packaged) == sorted(top) == [f"{n}.ipynb" for n in NAMES]
    for name in packaged:
        assert packaged[name] == top[name], (
            f"notebooks/{name} differs from cosmoscope/notebooks/{name} (which `cosmoscope report` runs); "
            "edit one, then copy it over the other")


@pytest.mark.parametrize("name", NAMES)
def test_each_notebook_is_clean_and_parameterised(name):
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"  # present in every Jupyter, binder's included
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0]
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == len(ids)
    info = notebook_info(name)
    assert {"catalog_url", "result_path"} <= set(info.parameters)
    for p in info.parameters.values():
        assert p.type != "None" and p.help, f"{name}: give parameter {p.name} a type and a # comment"
    assert info.title and info.description


def test_list_shows_every_notebook_with_its_parameters(capsys):
    assert main(["report", "--list"]) == 0
    out = capsys.readouterr().out
    for info in list_notebooks():
        assert f"{info.name}: {info.title}" in out
        for p in info.parameters.values():
            assert f"-p {p.name}" in out
    assert "fail_on_problems" in out and "bool = False" in out
    assert main(["report", "ingest", "--list"]) == 0
    only = capsys.readouterr().out
    assert only.startswith("ingest: ") and "validation_report" not in only


# -- parameters and paths ---------------------------------------------------------------------

def _info(**types):
    return NotebookInfo("x", Path("x.ipynb"), "x", "", {k: Parameter(k, t, "None") for k, t in types.items()})


def test_parameters_are_read_by_their_annotation():
    info = _info(flag="bool", n="Optional[int]", q="float", paths="list[str]", since="Optional[str]", any="None")
    got = parse_parameters(info, [("flag", "yes"), ("n", "none"), ("q", "0.25"), ("paths", "/a"), ("paths", "/b c"),
                                  ("since", "2026"), ("any", "3")])
    assert got == {"flag": True, "n": None, "q": 0.25, "paths": ["/a", "/b c"], "since": "2026", "any": 3}
    assert parse_parameters(info, [("paths", '["/x", "/y"]')]) == {"paths": ["/x", "/y"]}
    assert parse_parameters(info, [("flag", "FALSE"), ("n", "1_000")]) == {"flag": False, "n": 1000}
    for pair, words in [(("flag", "maybe"), "write true or false"), (("n", "ten"), "write a number"),
                        (("paths", "[1,"), "JSON list")]:
        with pytest.raises(InvalidArgumentError, match=words):
            parse_parameters(info, [pair])
    with pytest.raises(UnknownNameError, match="Did you mean 'paths'"):
        parse_parameters(info, [("path", "/a")])


def test_output_paths_put_the_notebook_beside_the_html(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_paths("ingest", None) == (Path("ingest.html"), Path("ingest.ipynb"))
    daily = tmp_path / "r" / "daily.html"
    assert output_paths("x", daily) == (daily, daily.with_suffix(".ipynb"))
    assert output_paths("x", "daily") == (Path("daily.html"), Path("daily.ipynb"))
    with pytest.raises(InvalidArgumentError, match="executed notebook is written beside it"):
        output_paths("x", "daily.ipynb")


@pytest.mark.parametrize("argv, words", [
    (["report", "nope"], "unknown report notebook 'nope'"),
    (["report", "ingest", "-p", "pathz", "/a"], "unknown parameter of ingest 'pathz'"),
    (["report", "validation_report", "-p", "fail_on_problems", "maybe"], "write true or false"),
    (["report"], "name the notebook to run"),
    (["report", "ingest", "--timeout", "-1"], "a timeout in seconds must be more than 0"),
])
def test_usage_errors_exit_2_and_say_what_to_do(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_an_unknown_kernel_is_refused_before_anything_runs(jupyter_env, tmp_path):
    with pytest.raises(UnknownNameError, match="unknown kernel 'no-such-kernel'"):
        run_report("explore", out=tmp_path / "x.html", kernel="no-such-kernel", progress=False)
    assert not list(tmp_path.iterdir())


def test_a_long_table_in_a_report_shows_its_first_rows_and_attaches_the_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOSCOPE_REPORT_ATTACHMENTS", str(tmp_path / "daily_files"))
    monkeypatch.setenv("COSMOSCOPE_REPORT_ATTACHMENTS_URL", "daily_files")
    df = pl.DataFrame({"file": [f"/d/{i}.fits" for i in range(240)], "n": range(240),
                       "reasons": [["a", "b"]] * 240,
                       "t": [dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)] * 240})
    html = table(df, caption="Files missing or changed")._repr_html_()
    assert html.count("<tr>") == 26  # the header and 25 rows
    assert "The first 25 of 240 rows; the whole table:" in html
    assert 'href="daily_files/files-missing-or-changed.csv"' in html
    assert pl.read_parquet(tmp_path / "daily_files/files-missing-or-changed.parquet").height == 240
    assert pl.read_csv(tmp_path / "daily_files/files-missing-or-changed.csv")["reasons"][0] == "a, b"
    again = table(df, caption="Files missing or changed")._repr_html_()  # a second table of that name
    assert 'href="daily_files/files-missing-or-changed-2.csv"' in again
    assert "the whole table" not in table(df.head(25))._repr_html_()


def test_tables_show_values_as_people_read_them():
    df = pl.DataFrame({"file": ["<a&b>.fits", None], "n": [1234567, 5], "q": [0.98765, None], "ok": [True, False],
                       "t": [dt.datetime(2026, 11, 25, 8, 30, tzinfo=dt.timezone.utc), None],
                       "reasons": [["file_missing", "low_quality"], []]})
    html = table(df)._repr_html_()
    assert 'class="cosmoscope-report-table"' in html and "&lt;a&amp;b&gt;.fits" in html
    for text in ("1,234,567", "0.988", "yes", "2026-11-25 08:30:00", "file_missing, low_quality"):
        assert text in html
    assert "<td class=\"num\"></td>" in html  # missing values are blank, not "None"
    assert "The first 3 of 5 rows; 2 more" in table(pl.DataFrame({"a": range(5)}), max_rows=3)._repr_html_()
    assert "(no rows)" in table(df.clear())._repr_html_()


# -- running -------------------------------------------------------------------------------------

def test_report_command_writes_html_with_tables_and_charts_and_names_the_failing_cell(
        jupyter_env, sky, tmp_path, capsys):
    out = tmp_path / "reports" / "validation.html"
    code = main(["--catalog", sky.catalogs["validation"], "report", "validation_report",
                 "-p", "fail_on_problems", "true", "-p", "max_gap", "6h", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "validation_report.ipynb failed in cell" in err and "id 'verdict'" in err
    assert "CheckFailed: FAIL:" in err and str(out) in err
    # Both files are written even though the check failed; the notebook records the parameters.
    nb = nbformat.read(out.with_suffix(".ipynb"), as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "fail_on_problems = True" in injected.source and sky.catalogs["validation"] in injected.source
    html = out.read_text(encoding="utf-8")
    assert html.count('<table class="cosmoscope-report-table">') >= 4
    for words in ("file missing", "size or modification time changed since cataloged", os.path.basename(sky.missing),
                  'data-verdict="FAIL"'):
        assert words in html
    # Charts: holoviews' bokeh plots, with BokehJS itself inside the page (it opens offline).
    assert html.count("Bokeh.embed.embed_items_notebook") >= 3
    assert len(html) > 2_000_000
    assert os.environ["COSMOSCOPE_CATALOG"] != sky.catalogs["validation"]  # the CLI restored the environment


def test_report_command_in_a_subprocess_with_cdn_charts_and_no_code(jupyter_env, sky, tmp_path):
    out = tmp_path / "preflight.html"
    proc = subprocess.run(
        [sys.executable, "-m", "cosmoscope", "report", "pipeline_preflight", "--catalog", sky.catalogs["preflight"],
         "-p", "start", SKY_START, "-p", "end", SKY_END, "--out", str(out), "--cdn", "--no-input"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    # NO-GO (a file is missing), but fail_on_nogo is false: the report is written and the exit is 0.
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "running pipeline_preflight.ipynb" in proc.stderr and "Executing" in proc.stderr
    html = out.read_text(encoding="utf-8")
    assert 'data-verdict="NO-GO"' in html and "file missing" in html
    assert '<table class="cosmoscope-report-table">' in html
    assert "https://cdn.bokeh.org/bokeh/release/bokeh-" in html and len(html) < 1_500_000
    assert html.count("Bokeh.embed.embed_items_notebook") >= 2
    assert "cat.available_datasets(" not in html  # --no-input: no code
    assert out.with_suffix(".ipynb").exists()


def test_any_notebook_file_runs_and_a_cell_past_the_timeout_is_named(jupyter_env, tmp_path, capsys):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    params = nbformat.v4.new_code_cell("seconds: float = 0.0  # how long the slow cell sleeps", id="parameters")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import os\nprint(os.getcwd())", id="where"),
                nbformat.v4.new_code_cell("# the slow part\nimport time\ntime.sleep(seconds)", id="slow")]
    path = tmp_path / "mine.ipynb"
    nbformat.write(nb, path)
    work = tmp_path / "work"
    work.mkdir()
    code = main(["report", str(path), "-p", "seconds", "30", "--timeout", "2", "--out", str(work / "mine.html"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "mine.ipynb failed in cell 4 of 4 (id 'slow'" in err and "first line '# the slow part'" in err
    assert "ran longer than the timeout of 2 s" in err
    ran = nbformat.read(work / "mine.ipynb", as_version=4)
    assert ran.cells[2].outputs[0]["text"].strip() == os.getcwd()  # the kernel ran where the command was run
    assert (work / "mine.html").exists()


def test_a_report_opens_offline_with_its_charts_and_explorers_and_no_code(jupyter_env, sky, tmp_path, page,
                                                                          artifacts, capsys):
    out = tmp_path / "tour.html"
    assert main(["--catalog", sky.catalogs["preflight"], "report", "explore", "--out", str(out), "-q"]) == 0
    html = out.read_text(encoding="utf-8")
    assert "setup_notebook" not in html  # code is left out unless --show-code
    outside = []

    def only_local(route):
        if route.request.url.startswith(("file:", "data:")):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_local)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.locator(".bk-Figure").first.wait_for(timeout=60_000)
    assert page.locator("table.cosmoscope-table").count() == 1  # the search explorer, as a picture
    assert page.locator("svg.cs-graph").count() == 1  # the lineage explorer's graph
    assert page.locator(".jp-CodeCell .jp-InputArea").count() == 0
    page.screenshot(path=os.path.join(artifacts, "report-explore.png"), full_page=True)
    assert outside == [] and errors == []

    # An earlier report is never overwritten by accident.
    with pytest.raises(SystemExit) as stop:
        main(["--catalog", sky.catalogs["preflight"], "report", "explore", "--out", str(out), "-q"])
    assert stop.value.code == 2 and "replace them with --force" in capsys.readouterr().err
    before = out.stat().st_mtime_ns
    assert main(["--catalog", sky.catalogs["preflight"], "report", "explore", "--out", str(out), "-q",
                 "--force", "--show-code"]) == 0
    assert out.stat().st_mtime_ns != before and "setup_notebook" in out.read_text(encoding="utf-8")
