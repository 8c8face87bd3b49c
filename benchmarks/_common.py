"""Helpers shared by the benchmarks: timing, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> dict:
    """What the figures were measured on."""
    import polars as pl
    import pyarrow as pa

    from cosmoscope import __version__

    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None  # other work on the machine meanwhile
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_bytes": mem, "platform": platform.platform(),
            "load_average_1_5_15min": [round(x, 2) for x in load] if load else None,
            "python": platform.python_version(), "polars": pl.__version__, "pyarrow": pa.__version__,
            "cosmoscope": __version__, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_results(name: str, results: dict, table: str, out_dir: Path | None = None) -> Path:
    """Write ``name.json`` and ``name.md`` (the markdown table plus the machine) and return the json path."""
    out = Path(out_dir) if out_dir else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    m = results.get("machine", {})
    (out / f"{name}.md").write_text(
        f"{table}\n\nMachine: {m.get('cpus')} CPUs ({m.get('cpu')}), "
        f"{(m.get('memory_bytes') or 0) / 2**30:.0f} GiB, {m.get('platform')}, Python {m.get('python')}, "
        f"polars {m.get('polars')}, pyarrow {m.get('pyarrow')}; measured {m.get('when')}"
        + (f", load average {m['load_average_1_5_15min'][0]:g} when it began" if m.get("load_average_1_5_15min")
           else "") + ".\n")
    return out / f"{name}.json"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def percentile(values, q: int) -> float | None:
    """The ``q``-th percentile of ``values`` (seconds), rounded to the millisecond."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)


def wait_for(cond, timeout: float, what: str, poll: float = 0.2) -> None:
    """Poll ``cond()`` until it is true; end the benchmark after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def watching(url: str) -> bool:
    """Whether a watcher of the catalog at ``url`` reports itself running."""
    import cosmoscope

    try:
        with cosmoscope.open_catalog(url, readonly=True) as cat:
            w = cat.watchers()
            return bool(w.height and (w["status"] == "running").any())
    except cosmoscope.CosmoscopeError:
        return False


def catalog_rows(url: str) -> int:
    """Rows in the catalog at ``url``."""
    import cosmoscope

    with cosmoscope.open_catalog(url, readonly=True) as cat:
        return cat.count()
