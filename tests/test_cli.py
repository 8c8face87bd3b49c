"""The command line, run as a user runs it: a subprocess."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import polars as pl
import pytest

import cosmoscope
from cosmoscope import schema as S

from .conftest import make_records


def run(*args, env=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "cosmoscope", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def cat_path(tmp_path):
    p = tmp_path / "cli.sqlite"
    with cosmoscope.open_catalog(str(p)) as cat:
        cat.add_records(make_records(120))
    return str(p)


def test_help_teaches(cat_path):
    out = run("--help").stdout
    for word in ("search", "summary", "related", "--catalog", "Exit codes"):
        assert word in out
    assert "cosmoscope search --mission COSMOS-7" in run("search", "--help").stdout


def test_search_table_csv_json_parquet_agree(cat_path, tmp_path):
    base = ("--catalog", cat_path, "search", "--mission", "LYRA", "--min-quality", "0.3")
    table = run(*base).stdout
    assert "matching observations" in table and "LYRA" in table
    csv = pl.read_csv(io.StringIO(run(*base, "--format", "csv").stdout))
    js = json.loads(run(*base, "--format", "json").stdout)
    run(*base, "--format", "parquet", "-o", str(tmp_path / "out.parquet"))
    pq = pl.read_parquet(tmp_path / "out.parquet")
    assert csv.height == len(js) == pq.height > 0
    assert set(csv["mission_id"]) == {"LYRA"} and (csv["data_quality_score"] >= 0.3).all()
    assert int(run(*base, "--count").stdout) == csv.height


def test_catalog_option_after_the_command_and_from_the_environment(cat_path):
    a = run("search", "--catalog", cat_path, "--count").stdout
    b = run("search", "--count", env={"COSMOSCOPE_CATALOG": cat_path}).stdout
    assert a == b == "120\n"


def test_bad_date_exits_2_with_an_example(cat_path):
    proc = run("--catalog", cat_path, "search", "--start", "yesterday", check=False)
    assert proc.returncode == 2
    assert "could not read 'yesterday'" in proc.stderr and "2026-11-27" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    (("search", "--min-quality", "2"), "quality must be between 0 and 1, not 2"),
    (("search", "--status", "done"), "invalid choice"),
    (("search", "--columns", "mission_id,nope"), "unknown column 'nope'"),
    (("frobnicate",), "invalid choice"),
    (("sql", "SELEC nonsense"), "start with SELECT or WITH, not 'SELEC'"),
    (("sql", "SELECT nonsense FROM"), "SQL query failed"),
])
def test_usage_errors_exit_2_with_one_line(cat_path, args, message):
    proc = run("--catalog", cat_path, *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_failures_exit_1_with_a_sentence(tmp_path, cat_path):
    proc = run("--catalog", str(tmp_path / "none.sqlite"), "summary", check=False)
    assert proc.returncode == 1 and "no catalog at" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("--catalog", cat_path, "show", "ds-nope", check=False)
    assert proc.returncode == 1 and "no dataset 'ds-nope'" in proc.stderr


def test_summary_related_show_history_info(cat_path):
    out = run("--catalog", cat_path, "summary").stdout
    assert "COSMOS-7" in out and "datasets" in out and re.search(r"raw \d+, processed \d+", out)
    assert max(len(line) for line in out.splitlines()) <= 160
    js = json.loads(run("--catalog", cat_path, "summary", "--format", "json").stdout)
    assert sum(r["n_datasets"] for r in js) == 120
    with cosmoscope.open_catalog(cat_path) as cat:
        ids = sorted(cat.observations().select("dataset_id").collect()["dataset_id"])[:2]
        cat.link(ids[0], ids[1], "raw->calibrated")
    rel = run("--catalog", cat_path, "related", ids[0]).stdout
    assert ids[1] in rel and "downstream" in rel
    show = run("--catalog", cat_path, "show", ids[0]).stdout
    assert f"dataset_id" in show and ids[0] in show
    hist = run("--catalog", cat_path, "history", ids[1]).stdout
    assert "link" in hist and "add" in hist
    info = run("--catalog", cat_path, "info").stdout
    assert "120 rows" in info and f"schema version:  {S.SCHEMA_VERSION}" in info


def test_sql_command(cat_path):
    out = run("--catalog", cat_path, "sql", "SELECT count(*) AS n FROM observations WHERE mission_id = 'LYRA'",
              "--format", "csv").stdout
    assert out.splitlines() == ["n", "30"]


@pytest.mark.parametrize("statement", ["DELETE FROM observations", "DROP TABLE observations",
                                       "TRUNCATE observations", "UPDATE observations SET mission_id = 'X'",
                                       "/* sneaky */ (DELETE FROM observations)"])
def test_sql_refuses_statements_that_are_not_queries(cat_path, statement):
    proc = run("--catalog", cat_path, "sql", statement, check=False)
    assert proc.returncode == 2, proc.stdout
    assert "only queries can be run: start with SELECT or WITH" in proc.stderr and "(no rows)" not in proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and "Token" not in proc.stderr
    with cosmoscope.open_catalog(cat_path, readonly=True) as cat:
        with pytest.raises(cosmoscope.errors.InvalidArgumentError, match="only queries"):
            cat.sql(statement)
        assert cat.count() == 120


def test_empty_catalog_says_so(tmp_path):
    p = str(tmp_path / "empty.sqlite")
    cosmoscope.open_catalog(p).close()
    assert "The catalog is empty." in run("--catalog", p, "summary").stdout
    assert "0 matching observations" in run("--catalog", p, "search").stdout
