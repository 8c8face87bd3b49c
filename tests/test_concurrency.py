"""Real processes at once: a reader never waits long and never sees half a batch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cosmoscope

BATCHES, ROWS = 25, 2_000

#: Waits for a file another process creates (a condition, with a generous deadline).
WAIT_FILE = """
def wait_file(path):
    deadline = time.monotonic() + 300
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"waited 300 s for {path}")
        time.sleep(0.01)
"""

WRITER = textwrap.dedent("""
    import os, sys, time, cosmoscope
    cat = cosmoscope.open_catalog(sys.argv[1])
    signals = sys.argv[2]
""") + WAIT_FILE + textwrap.dedent(f"""
    for b in range({BATCHES}):
        with cat.store.transaction():  # holds the write lock until the reader has read
            cat.add_records([{{"file_path": f"/w/{{b}}/{{i}}.fits", "mission_id": "COSMOS-7", "version": str(b)}}
                             for i in range({ROWS})])
            open(os.path.join(signals, f"holding-{{b}}"), "w").close()
            wait_file(os.path.join(signals, f"read-{{b}}"))
    print("done", flush=True)
""")

READER = textwrap.dedent("""
    import json, os, sys, time, cosmoscope
    cat = cosmoscope.open_catalog(sys.argv[1], readonly=True)
    signals, rows, batches = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
""") + WAIT_FILE + textwrap.dedent("""
    partial, during = [], 0
    for b in range(batches):
        wait_file(os.path.join(signals, f"holding-{b}"))
        seen = dict(cat.observations().group_by("version").len().collect().iter_rows())
        partial += [[v, n] for v, n in seen.items() if n != rows or v == str(b)]
        during += set(seen) == {str(i) for i in range(b)}  # every committed batch, whole
        open(os.path.join(signals, f"read-{b}"), "w").close()
    print(json.dumps({"during": during, "partial": partial}))
""")


def test_reader_never_waits_or_sees_half_a_batch(tmp_path):
    """A reader reads while the writer holds its write transaction open (the writer commits
    only once the reader has read: a reader that had to wait for the writer would never
    finish), and sees every committed batch whole and nothing of the open one."""
    path = str(tmp_path / "c.sqlite")
    signals = tmp_path / "signals"
    signals.mkdir()
    cosmoscope.open_catalog(path).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, str(signals)], stdout=subprocess.PIPE, text=True)
    reader = subprocess.run([sys.executable, "-c", READER, path, str(signals), str(ROWS), str(BATCHES)],
                            capture_output=True, text=True, timeout=600)
    assert writer.wait(timeout=600) == 0
    assert reader.returncode == 0, reader.stderr
    result = json.loads(reader.stdout)
    assert result["partial"] == [], "a reader saw part of a batch, or a batch not yet committed"
    assert result["during"] == BATCHES, "the reader did not read while the writer held the lock"
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
