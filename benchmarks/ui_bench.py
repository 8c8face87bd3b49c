"""How quickly the explorers answer on a large catalog: a filter change to its first page and
total, the next page, the charts, the choices, the freshness check and the problems count.

    python benchmarks/ui_bench.py                  # 1,000,000 rows, embedded SQLite (builds it: ~30 s)
    python benchmarks/ui_bench.py --rows 100000    # smaller
    python benchmarks/ui_bench.py --catalog sqlite:///tmp/big.sqlite   # reuse a filled catalog

Times are medians of several runs, each with a new result set (nothing cached between runs).
"Filter change" is what a user waits for after touching a control: the total and the first
page of 25 rows, newest first; the target is under one second at 1M rows. The notebook widget and
the dashboard rows add their own rendering (HTML table, Tabulator frame) on top. Writes
benchmarks/results/ui_bench.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, median_time, write_results  # noqa: E402
from query_bench import synthetic  # noqa: E402

import cosmoscope  # noqa: E402
from cosmoscope.ui import plots  # noqa: E402
from cosmoscope.ui import query as Q  # noqa: E402

UTC = dt.timezone.utc
#: The target for a filter change at 1M rows (the issue's "under a second").
TARGET_S = 1.0

FILTER_CHANGES = {
    "no filters": Q.Filters(),
    "one mission": Q.Filters(missions=("HELIOS-X",)),
    "mission + one week": Q.Filters(missions=("HELIOS-X",), start=dt.date(2023, 3, 1), end=dt.date(2023, 3, 8)),
    "quality >= 0.9 + status raw": Q.Filters(min_quality=0.9, statuses=("raw",)),
    "target prefix 'NGC*'": Q.Filters(target="NGC*"),
    "two instruments + quality >= 0.5": Q.Filters(instruments=("WFI", "XIS"), min_quality=0.5),
    "a filter matching nothing": Q.Filters(target="No Such Target"),
}


def fill(cat, rows: int) -> None:
    data = synthetic(rows)
    step = 50_000
    for i in range(0, rows, step):
        with cat.store.transaction():  # the bare store verb: the benchmark is about reads
            cat.store.upsert("observations", data.slice(i, step), ["dataset_id"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--catalog", help="catalog URL to use; filled with --rows rows if it is empty")
    ap.add_argument("--out", type=Path, help="directory for results (default: benchmarks/results)")
    ap.add_argument("--name", default="ui_bench")
    args = ap.parse_args(argv)

    url = args.catalog or os.path.join(tempfile.mkdtemp(prefix="cosmoscope-ui-bench-"), "bench.sqlite")
    cat = cosmoscope.open_catalog(url)
    if Q.count(cat) == 0:
        t = time.perf_counter()
        fill(cat, args.rows)
        print(f"filled {url} with {args.rows:,} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    n = Q.count(cat)
    results = {"rows": n, "store": cat.url.split("://")[0], "target_s": TARGET_S, "machine": machine(),
               "filter_change_s": {}, "other_s": {}}
    rows = []

    def timed(fn):
        return median_time(fn, args.repeat)

    for label, filters in FILTER_CHANGES.items():
        s = timed(lambda f=filters: Q.ResultSet(cat, f).page(1, 25))
        total = Q.ResultSet(cat, filters).total
        results["filter_change_s"][label] = {"seconds": s, "matches": total}
        rows.append([f"filter change: {label}", f"{total:,}", f"{s * 1000:.0f} ms",
                     "yes" if s < TARGET_S else "**no**"])

    def other(label, fn, matches=""):
        s = timed(fn)
        results["other_s"][label] = s
        rows.append([label, matches, f"{s * 1000:.0f} ms", ""])

    rs = Q.ResultSet(cat, Q.Filters(missions=("HELIOS-X",)))
    rs.page(1, 25)
    other("next page (same filters)", lambda: rs.page(2, 25))
    other("order by quality instead (first page)", lambda: Q.ResultSet(cat, Q.Filters(), "best quality first").page(1, 25))
    other("page 1,000 of all rows", lambda: Q.ResultSet(cat, Q.Filters()).page(1_000, 25))

    from cosmoscope.ui.widgets import SearchExplorer

    explorer = SearchExplorer(cat)
    choices = iter([("LYRA",), ("HELIOS-X",)] * (args.repeat + 2))
    other("notebook widget: pick a mission (query + HTML table)", lambda: setattr(explorer.mission, "value", next(choices)))
    other("notebook widget: open (choices + first page)", lambda: SearchExplorer(cat))

    from cosmoscope.ui.dashboard import Dashboard

    board = Dashboard(catalog=cat, refresh_seconds=0)
    board.refresh()
    picks = iter([["LYRA"], ["HELIOS-X"]] * (args.repeat + 2))
    other("dashboard: pick a mission (query + table frame)", lambda: setattr(board.mission, "value", next(picks)))

    other("charts data, all rows (one projected scan)", lambda: plots.chart_data(cat))
    other("charts data, one mission", lambda: plots.chart_data(cat, Q.Filters(missions=("HELIOS-X",))))
    data = plots.chart_data(cat)
    other("charts drawn (holoviews objects from the frames)", lambda: plots.charts(data))
    other("freshness check (count + newest event)", lambda: Q.freshness(cat))
    other("problem counts (one pass)", lambda: Q.problem_counts(cat))

    slow = [k for k, v in results["filter_change_s"].items() if v["seconds"] >= TARGET_S]
    results["all_filter_changes_under_target"] = not slow
    table = (f"Explorers over a catalog of {n:,} rows in {results['store']}; medians of {args.repeat} runs, "
             f"nothing cached between runs.\n\n"
             + markdown_table(["operation", "matches", "time", f"under {TARGET_S:g} s"], rows))
    print(table)
    path = write_results(args.name, results, table, args.out)
    print(f"\nwrote {path}")
    cat.close()
    return 0 if not slow else 1


if __name__ == "__main__":
    sys.exit(main())
