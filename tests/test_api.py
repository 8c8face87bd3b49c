"""The HTTP API, through real HTTP requests to a uvicorn server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import httpx
import polars as pl
import pyarrow as pa
import pytest

import cosmoscope
from cosmoscope.api import serve_in_background
from cosmoscope.records import dataset_id_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOKEN = "test-write-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from cosmoscope.simulate import simulate

    root = tmp_path_factory.mktemp("api") / "tree"
    simulate(root, missions=["HELIOS-X", "COSMOS-7"], files=12, days=1, seed=5, progress=False,
             write_manifest=False)
    return root


def _catalog(path, tree):
    cat = cosmoscope.open_catalog(f"sqlite://{path}", actor="api-tests")
    assert cat.ingest(tree, workers=0, progress=False).ok
    return cat


@pytest.fixture(scope="module")
def api(tree, tmp_path_factory):
    """A writable server (token, one output root) over a small simulated catalog."""
    base = tmp_path_factory.mktemp("api-server")
    out = base / "out"
    out.mkdir()
    cat = _catalog(base / "cat.sqlite", tree)
    server = serve_in_background(cat, token=TOKEN, output_roots=[out], max_stream_seconds=4)
    client = httpx.Client(base_url=server.url, timeout=30)
    yield SimpleNamespace(url=server.url, cat=cat, out=out, base=base, client=client)
    client.close()
    server.stop()
    cat.close()


def write_fits(path, target="M31"):
    import numpy as np
    from astropy.io import fits

    hdu = fits.PrimaryHDU(np.ones((4, 4), dtype="f4"))
    hdu.header.update({"TELESCOP": "HELIOS-X", "INSTRUME": "XIS", "DATE-OBS": "2026-11-25T03:00:00",
                       "OBJECT": target})
    hdu.writeto(path, overwrite=True)
    return str(path)


def ids_of(cat, **filters) -> list[str]:
    return sorted(cat.search(**filters).select("dataset_id").collect()["dataset_id"])


# -- reading ---------------------------------------------------------------------------------

def test_openapi_describes_every_endpoint(api):
    spec = api.client.get("/openapi.json").json()
    for path in ("/datasets", "/available", "/missions", "/missions/{mission}", "/datasets/{dataset_id}",
                 "/datasets/{dataset_id}/related", "/datasets/{dataset_id}/history", "/datasets/batch",
                 "/preflight", "/stream", "/runs", "/runs/{run_id}", "/runs/{run_id}/outputs"):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    media = spec["paths"]["/datasets"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/csv", "application/vnd.apache.parquet",
            "application/vnd.apache.arrow.stream"} <= set(media)
    info = api.client.get("/").json()
    assert info["writable"] and info["accepts_outputs"]


def test_search_pages_by_cursor_and_offset(api):
    every = ids_of(api.cat, mission="HELIOS-X")
    assert len(every) > 4
    seen, params = [], {"mission": "HELIOS-X", "limit": 3}
    while True:
        page = api.client.get("/datasets", params=params).json()
        seen += [r["dataset_id"] for r in page["results"]]
        if page["next_cursor"] is None:
            assert page["next"] is None
            break
        params = {**params, "cursor": page["next_cursor"]}
    assert seen == every
    page = api.client.get("/datasets", params={"mission": "HELIOS-X", "limit": 3, "offset": 3, "total": True}).json()
    assert [r["dataset_id"] for r in page["results"]] == every[3:6] and page["total"] == len(every)
    nxt = api.client.get(api.client.get("/datasets", params={"mission": "HELIOS-X", "limit": 2}).json()["next"])
    assert [r["dataset_id"] for r in nxt.json()["results"]] == every[2:4]
    # The total counts every match on every page, not only those after the cursor.
    later = api.client.get("/datasets", params={"mission": "HELIOS-X", "limit": 2, "cursor": every[1],
                                                "total": True}).json()
    assert [r["dataset_id"] for r in later["results"]] == every[2:4] and later["total"] == len(every)


def test_search_filters_match_the_python_api(api):
    query = {"mission": ["HELIOS-X", "COSMOS-7"], "calibration": "calibrated", "min_quality": 0.5,
             "start": "2026-11-25T00:00:00Z", "end": "2026-11-26", "limit": 1000}
    got = [r["dataset_id"] for r in api.client.get("/datasets", params=query).json()["results"]]
    assert got == ids_of(api.cat, mission=["HELIOS-X", "COSMOS-7"], calibration="calibrated", min_quality=0.5,
                         start="2026-11-25T00:00:00Z", end="2026-11-26")
    assert got
    page = api.client.get("/datasets", params={"target": "*e*", "columns": ["target_object", "file_name"]}).json()
    assert all(set(r) == {"dataset_id", "target_object", "file_name"} and "e" in r["target_object"]
               for r in page["results"])


def test_search_results_as_csv_parquet_arrow_and_ndjson(api):
    every = ids_of(api.cat, mission="COSMOS-7")
    params = {"mission": "COSMOS-7", "limit": 4}
    csv = api.client.get("/datasets", params={**params, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert pl.read_csv(io.BytesIO(csv.content))["dataset_id"].to_list() == every[:4]
    assert csv.headers["x-next-cursor"] == every[3] and 'rel="next"' in csv.headers["link"]
    parquet = api.client.get("/datasets", params=params, headers={"Accept": "application/vnd.apache.parquet"})
    df = pl.read_parquet(io.BytesIO(parquet.content))
    assert df["dataset_id"].to_list() == every[:4] and df.schema["observation_timestamp"] == pl.Datetime("us", "UTC")
    arrow = api.client.get("/datasets", params={**params, "format": "arrow"})
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert table.column("dataset_id").to_pylist() == every[:4]
    nd = api.client.get("/datasets", params={**params, "format": "ndjson"})
    assert [json.loads(line)["dataset_id"] for line in nd.text.splitlines()] == every[:4]
    picky = api.client.get("/datasets", params=params, headers={"Accept": "text/html, text/csv;q=0.5"})
    assert picky.headers["content-type"].startswith("text/csv")


@pytest.mark.parametrize("path, params, name", [
    ("/datasets", {"limit": 0}, "limit"),
    ("/datasets", {"limit": 10_001}, "limit"),
    ("/datasets", {"min_quality": 1.5}, "min_quality"),
    ("/datasets", {"min_quality": "nan"}, "min_quality"),
    ("/datasets", {"start": "last tuesday"}, "start"),
    ("/datasets", {"start": "2026-11-27", "end": "2026-11-01"}, "end time"),
    ("/datasets", {"status": "done"}, "status"),
    ("/datasets", {"columns": "colour"}, "columns"),
    ("/datasets", {"format": "xlsx"}, "format"),
    ("/datasets", {"offset": -1}, "offset"),
    ("/available", {"window_days": 0}, "window_days"),
    ("/datasets/ds-x/related", {"direction": "sideways"}, "direction"),
    ("/datasets/ds-x/related", {"depth": 0}, "depth"),
    ("/stream", {"since": "yesterday-ish"}, "since"),
])
def test_invalid_parameters_get_422_naming_them(api, path, params, name):
    r = api.client.get(path, params=params)
    assert r.status_code == 422, r.text
    assert name in r.json()["detail"]


def test_unknown_things_are_404(api):
    for path in ("/datasets/ds-0000000000000000", "/datasets/ds-0000000000000000/related",
                 "/datasets/ds-0000000000000000/history", "/missions/NOT-A-MISSION", "/runs/run-nope"):
        r = api.client.get(path)
        assert r.status_code == 404, path
        assert str(api.base) not in r.json()["detail"], "error messages do not reveal where the catalog lives"


def test_dataset_detail_related_and_history(api):
    rel = api.cat.relationships().collect().row(0, named=True)
    parent, child = rel["parent_dataset_id"], rel["child_dataset_id"]
    detail = api.client.get(f"/datasets/{child}").json()
    assert detail["dataset_id"] == child and isinstance(detail["mission_specific"], dict)
    assert detail["file_path"] == api.cat.get(child)["file_path"]
    related = api.client.get(f"/datasets/{child}/related", params={"direction": "upstream", "depth": 1}).json()
    assert parent in [r["dataset_id"] for r in related["related"]]
    events = api.client.get(f"/datasets/{child}/history").json()["events"]
    assert events[0]["action"] == "ingest" and events[0]["actor"] == "api-tests"
    summary = {m["mission_id"]: m for m in api.client.get("/missions").json()}
    assert summary["HELIOS-X"]["n_datasets"] == api.cat.count(api.cat.search(mission="HELIOS-X"))
    assert api.client.get("/missions/COSMOS-7").json()["mission_id"] == "COSMOS-7"


def test_batch_lookup_is_bounded(api):
    every = ids_of(api.cat)
    r = api.client.post("/datasets/batch", json={"ids": every[:3] + ["ds-missing"], "columns": ["file_name"]})
    body = r.json()
    assert sorted(row["dataset_id"] for row in body["found"]) == every[:3] and body["missing"] == ["ds-missing"]
    assert set(body["found"][0]) == {"dataset_id", "file_name"}
    too_many = api.client.post("/datasets/batch", json={"ids": [f"ds-{i:016x}" for i in range(1001)]})
    assert too_many.status_code == 413 and "ids" in too_many.json()["detail"]
    huge = api.client.post("/datasets/batch", content=b'{"ids": ["' + b"x" * (2 << 20) + b'"]}',
                           headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert api.client.post("/datasets/batch", json={"ids": ["a"], "colour": 1}).status_code == 422


def test_preflight_over_http(api):
    ids = ids_of(api.cat, mission="COSMOS-7")
    r = api.client.post("/preflight", json={"dataset_ids": ids[:2] + ["ds-nope"], "output_dir": str(api.out)})
    report = r.json()
    assert r.status_code == 200 and report["go"] is False
    verdicts = {d["dataset_id"]: d for d in report["datasets"]}
    assert verdicts["ds-nope"]["reasons"] == ["not_cataloged"] and report["space"]["ok"] is True
    by_query = api.client.post("/preflight", json={"query": {"mission": ["COSMOS-7"], "calibration": ["calibrated"]},
                                                   "min_quality": 0.5}).json()
    assert by_query["go"] is True and by_query["n_datasets"] == len(ids_of(api.cat, mission="COSMOS-7",
                                                                              calibration="calibrated"))
    outside = api.client.post("/preflight", json={"dataset_ids": ids[:1], "output_dir": "/etc"})
    assert outside.status_code == 422 and "output_dir" in outside.json()["detail"]
    both = api.client.post("/preflight", json={"dataset_ids": ids[:1], "query": {"mission": ["X"]}})
    assert both.status_code == 422


# -- writing ---------------------------------------------------------------------------------

def test_writes_need_the_token(api):
    some = ids_of(api.cat, mission="COSMOS-7", status="raw")[0]
    body = {"status": "queued"}
    missing = api.client.post(f"/datasets/{some}/status", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = api.client.post(f"/datasets/{some}/status", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert api.client.post("/runs", json={"name": "x"}).status_code == 401
    assert api.cat.get(some)["processing_status"] == "raw", "nothing was written"
    ok = api.client.post(f"/datasets/{some}/status", json={"status": "queued", "reason": "tonight"}, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["processing_status"] == "queued"
    event = api.cat.history(some).row(-1, named=True)
    assert event["to_value"] == "queued" and json.loads(event["details"]) == {"reason": "tonight"}
    q = api.client.post(f"/datasets/{some}/quality", json={"score": 0.61}, headers=AUTH)
    assert q.json()["data_quality_score"] == 0.61
    assert api.client.post(f"/datasets/{some}/quality", json={"score": 2}, headers=AUTH).status_code == 422
    assert api.client.post("/datasets/ds-nope/status", json=body, headers=AUTH).status_code == 404


def test_a_server_without_token_is_read_only(api, tree):
    server = serve_in_background(api.cat.url)  # opened read-only: no token
    try:
        with httpx.Client(base_url=server.url) as c:
            some = ids_of(api.cat)[0]
            assert c.get(f"/datasets/{some}").status_code == 200
            r = c.post(f"/datasets/{some}/status", json={"status": "queued"}, headers=AUTH)
            assert r.status_code == 403 and "read-only" in r.json()["detail"]
            assert c.get("/").json()["writable"] is False
    finally:
        server.stop()


def test_a_processing_run_over_http(api):
    raws = ids_of(api.cat, mission="HELIOS-X", calibration="uncalibrated")
    c = api.client
    started = c.post("/runs", json={"name": "http-calibrate", "inputs": raws, "params": {"v": 3},
                                    "lease_seconds": 60}, headers=AUTH)
    assert started.status_code == 201, started.text
    run = started.json()
    assert run["status"] == "running" and sorted(run["held_inputs"]) == raws and run["params"] == {"v": 3}
    clash = c.post("/runs", json={"name": "other", "inputs": raws[:1]}, headers=AUTH)
    assert clash.status_code == 409 and "http-calibrate" in clash.json()["detail"]
    held = c.post(f"/datasets/{raws[0]}/status", json={"status": "raw"}, headers=AUTH)
    assert held.status_code == 409, "a held dataset changes only through its run"
    beat = c.post(f"/runs/{run['run_id']}/heartbeat", headers=AUTH).json()
    assert beat["heartbeat_at"] >= run["heartbeat_at"]
    path = write_fits(api.out / "http_cal.fits")
    out = c.post(f"/runs/{run['run_id']}/outputs", json={"path": path, "relationship": "raw->calibrated",
                                                          "parents": raws[:1]}, headers=AUTH)
    assert out.status_code == 201, out.text
    out_id = out.json()["dataset_id"]
    assert out_id == dataset_id_for(path) and out.json()["processing_status"] == "processing"
    q = c.post(f"/runs/{run['run_id']}/quality", json={"dataset_id": out_id, "score": 0.9}, headers=AUTH)
    assert q.status_code == 200
    done = c.post(f"/runs/{run['run_id']}/finish", json={"outcome": "succeeded"}, headers=AUTH).json()
    assert done["status"] == "succeeded" and done["held_inputs"] == []
    upstream = c.get(f"/datasets/{out_id}/related", params={"direction": "upstream"}).json()["related"]
    assert [(r["dataset_id"], r["run_id"]) for r in upstream] == [(raws[0], run["run_id"])]
    assert c.post(f"/runs/{run['run_id']}/finish", json={"outcome": "failed"}, headers=AUTH).status_code == 409
    trail = c.get(f"/datasets/{out_id}/history", params={"upstream": True}).json()["events"]
    assert {"run_start", "run_succeeded", "link"} <= {e["action"] for e in trail}
    listed = c.get("/runs", params={"name": "http-calibrate"}).json()
    assert [r["run_id"] for r in listed] == [run["run_id"]]


def test_output_paths_cannot_leave_the_output_roots(api, tmp_path):
    c = api.client
    run = c.post("/runs", json={"name": "paths", "inputs": []}, headers=AUTH).json()["run_id"]
    outside = write_fits(tmp_path / "secret.fits")
    link = api.out / "innocent.fits"
    os.symlink(outside, link)
    for path in (outside, str(link), str(api.out / ".." / os.path.basename(tmp_path) / "secret.fits"),
                 "innocent.fits", "/etc/passwd", str(api.out / "not-there.fits"), str(api.out)):
        r = c.post(f"/runs/{run}/outputs", json={"path": path}, headers=AUTH)
        assert r.status_code == 422, (path, r.text)
        assert "path" in r.json()["detail"]
    assert api.cat.lookup([dataset_id_for(outside), dataset_id_for(link)]).height == 0, "nothing outside was read"
    c.post(f"/runs/{run}/finish", json={"outcome": "failed", "error": "only testing paths"}, headers=AUTH)


# -- the stream of new datasets ----------------------------------------------------------------

def _events(response, want: int, deadline: float) -> list[dict]:
    """Read server-sent events until ``want`` dataset events (or an end event, or the deadline)."""
    out, current = [], {}
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            break
        if line == "":
            if current.get("event") == "dataset":
                out.append(current)
                if len(out) >= want:
                    break
            if current.get("event") == "end":
                break
            current = {}
        elif not line.startswith(":") and ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    return out


def test_stream_sends_new_datasets_and_resumes(api):
    def add(name):
        api.cat.add_records([{"file_path": f"/incoming/{name}.fits", "mission_id": "STREAM-TEST",
                              "data_quality_score": 0.9}])

    add("before")  # already there when the stream starts: not sent
    params = {"mission": "STREAM-TEST", "interval": 0.1}
    with api.client.stream("GET", "/stream", params=params) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        timer = threading.Timer(0.3, add, args=("first",))
        timer.start()
        events = _events(r, 1, time.monotonic() + 10)
        timer.join()
    assert len(events) == 1
    first = json.loads(events[0]["data"])
    assert first["file_path"] == "/incoming/first.fits" and first["mission_id"] == "STREAM-TEST"
    assert re.fullmatch(r"\d+:ds-[0-9a-f]{16}", events[0]["id"])
    add("second")
    with api.client.stream("GET", "/stream", params={**params, "timeout": 0.5},
                           headers={"Last-Event-ID": events[0]["id"]}) as r:
        resumed = _events(r, 2, time.monotonic() + 5)  # until the server ends the stream
    assert [json.loads(e["data"])["file_path"] for e in resumed] == ["/incoming/second.fits"]
    with api.client.stream("GET", "/stream", params={**params, "since": "2026-01-01", "timeout": 0.5}) as r:
        replay = _events(r, 10, time.monotonic() + 5)
    assert [json.loads(e["data"])["file_path"] for e in replay] == [
        "/incoming/before.fits", "/incoming/first.fits", "/incoming/second.fits"]


# -- property-based: no input makes the server fail --------------------------------------------

def _fuzz(op, mode, n, checks):
    """A hypothesis test sending ``n`` generated requests for ``op`` and checking each answer."""
    from hypothesis import HealthCheck, given, settings

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case):
        case.validate_response(case.call(headers=AUTH, timeout=10), **checks)

    return check


def test_no_request_the_openapi_description_allows_causes_a_server_error(tree, tmp_path):
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    (tmp_path / "out").mkdir()
    cat = _catalog(tmp_path / "fuzz.sqlite", tree)
    server = serve_in_background(cat, token=TOKEN, output_roots=[tmp_path / "out"], max_stream_seconds=0.2)
    try:
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
        failures = []
        for result in schema.get_all_operations():
            op = result.ok()
            # Valid requests: every check except "valid data is accepted" (a date the schema
            # cannot express, or an id that is not there, is rightly refused); invalid ones: no 5xx.
            modes = [(schemathesis.GenerationMode.POSITIVE, 12, dict(excluded_checks=[positive_data_acceptance]))]
            if op.path_parameters or op.query or op.body:
                modes.append((schemathesis.GenerationMode.NEGATIVE, 6, dict(checks=[not_a_server_error])))
            for mode, n, checks in modes:
                check = _fuzz(op, mode, n, checks)
                try:
                    check()
                except Exception as exc:  # collect every operation's failure, then report them all
                    failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(exc)[:2000]}")
        assert not failures, "\n\n".join(failures)
    finally:
        server.stop()
        cat.close()


# -- the command -------------------------------------------------------------------------------

def test_api_command_serves_a_catalog(api):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("COSMOSCOPE_API_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "cosmoscope", "--catalog", api.cat.url, "api", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = None
        deadline = time.monotonic() + 30
        lines = []
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if m and m.group(1) != "0":
                port = int(m.group(1))
        assert port, "".join(lines)
        assert "read-only" in "".join(lines)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get("/health").json() == {"ok": True}
            assert c.post("/lineage", json={"parent": "a", "child": "b"}, headers=AUTH).status_code == 403
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    assert proc.returncode == 0
