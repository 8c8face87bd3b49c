"""A little processing history for a freshly cataloged simulated tree, so that every status
shows somewhere: some raw files queued for processing, some whose processing failed, some
archived. Each change is an ordinary audited status change, with its reason.

>>> play_history(cat)  # doctest: +SKIP
{'queued': 12, 'failed': 5, 'archived': 9}
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

#: Share of the readable raw files given each status.
SHARES = {"queued": 0.08, "failed": 0.04, "archived": 0.06}
#: Why, as the audit trail says.
REASONS = {"queued": "simulated: waiting for the next calibration run",
           "failed": "simulated: calibration failed (no matching dark frame)",
           "archived": "simulated: raw frame archived to tape after calibration"}


def play_history(cat: Catalog, *, seed: int = 0) -> dict[str, int]:
    """Give shares of the catalog's readable raw files the statuses of :data:`SHARES`; returns
    how many got each."""
    import polars as pl

    raw = (cat.search(status="raw").filter(pl.col("extraction_status") == "ok")
           .select("dataset_id").collect()["dataset_id"].sort().to_list())
    rnd = random.Random(f"cosmoscope-history:{seed}")
    rnd.shuffle(raw)
    done, start = {}, 0
    for status, share in SHARES.items():
        ids = raw[start:start + round(len(raw) * share)]
        start += len(ids)
        if ids:
            cat.set_status(ids, status, reason=REASONS[status])
        done[status] = len(ids)
    return done
