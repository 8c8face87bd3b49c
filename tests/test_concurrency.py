"""Real processes at once: a reader never waits long and never sees half a batch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cosmoscope

BATCHES, ROWS = 25, 2_000

WRITER = textwrap.dedent(f"""
    import sys, time, cosmoscope
    cat = cosmoscope.open_catalog(sys.argv[1])
    for b in range({BATCHES}):
        cat.add_records([{{"file_path": f"/w/{{b}}/{{i}}.fits", "mission_id": "COSMOS-7", "version": str(b)}}
                         for i in range({ROWS})])
        time.sleep(0.02)
    print("done", flush=True)
""")

READER = textwrap.dedent("""
    import sys, time, json, polars as pl, cosmoscope
    cat = cosmoscope.open_catalog(sys.argv[1], readonly=True)
    worst, seen, partial = 0.0, 0, []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        t = time.monotonic()
        counts = cat.observations().group_by("version").len().collect()
        worst = max(worst, time.monotonic() - t)
        seen += 1
        partial += [r for r in counts.iter_rows() if r[1] != int(sys.argv[2])]
        if counts.height == int(sys.argv[3]):
            break
    print(json.dumps({"worst": worst, "reads": seen, "partial": partial, "final": counts.height}))
""")


def test_reader_never_waits_or_sees_half_a_batch(tmp_path):
    path = str(tmp_path / "c.sqlite")
    cosmoscope.open_catalog(path).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
    reader = subprocess.run([sys.executable, "-c", READER, path, str(ROWS), str(BATCHES)],
                            capture_output=True, text=True, timeout=120)
    assert writer.wait(timeout=120) == 0
    assert reader.returncode == 0, reader.stderr
    result = json.loads(reader.stdout)
    assert result["final"] == BATCHES, result
    assert result["partial"] == [], "a reader saw part of a batch"
    assert result["reads"] > 3, "the reader should have read while the writer wrote"
    assert result["worst"] < 1.0, f"a read waited {result['worst']:.2f} s"
    with cosmoscope.open_catalog(path) as cat:
        assert cat.count() == BATCHES * ROWS
        assert cat.count(cat.events()) == BATCHES * ROWS


def test_two_writers_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "c.sqlite")
    cosmoscope.open_catalog(path).close()
    script = textwrap.dedent("""
        import sys, cosmoscope
        cat = cosmoscope.open_catalog(sys.argv[1])
        tag = sys.argv[2]
        for b in range(10):
            cat.add_records([{"file_path": f"/{tag}/{b}/{i}", "mission_id": tag} for i in range(1000)])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, path, tag]) for tag in ("A", "B")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with cosmoscope.open_catalog(path) as cat:
        s = cat.mission_summary()
        assert dict(zip(s["mission_id"], s["n_datasets"])) == {"A": 10_000, "B": 10_000}
