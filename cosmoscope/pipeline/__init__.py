"""Pipeline integration: pre-flight checks, processing runs with claims and leases, lineage and
the audit trail.

>>> import cosmoscope
>>> cat = cosmoscope.open_catalog()                                        # doctest: +SKIP
>>> ready = cat.available_datasets("COSMOS-7", min_quality=0.8)            # doctest: +SKIP
>>> report = cat.preflight(ready, require_calibrated=False, output_dir="/scratch/out")  # doctest: +SKIP
>>> with cat.processing_run("calibrate", inputs=report, params={"v": 2}) as run:       # doctest: +SKIP
...     run.add_output("/scratch/out/c7_wfi_l1.fits", relationship="raw->calibrated")
>>> cat.history(run.outputs[0], upstream=True)                             # doctest: +SKIP

See ``docs/pipelines.md`` for a walk-through, and :mod:`cosmoscope.pipeline.runs` for how
claims and leases keep two runs from processing the same data.
"""

from __future__ import annotations

from cosmoscope.pipeline.audit import trail
from cosmoscope.pipeline.preflight import (REASONS, DatasetVerdict, PreflightReport, SpaceVerdict,
                                           available_datasets, preflight)
from cosmoscope.pipeline.runs import (DEFAULT_LEASE, ClaimConflictError, ProcessingRun, RunStateError,
                                      release_stale_runs, start_run)

__all__ = ["DEFAULT_LEASE", "REASONS", "ClaimConflictError", "DatasetVerdict", "PreflightReport", "ProcessingRun",
           "RunStateError", "SpaceVerdict", "available_datasets", "preflight", "release_stale_runs", "start_run",
           "trail"]
