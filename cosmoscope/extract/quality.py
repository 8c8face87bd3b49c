"""Data quality score of an extracted record, 0.0 (unusable) to 1.0, and why it lost points.

The score starts at 1.0 and each component below deducts up to its weight. Every deduction
adds a flag to ``quality_flags`` naming it, so a score can always be explained.

=========================  ======  ===========================================================
component                  weight  deductions (flag)
=========================  ======  ===========================================================
required fields            0.40    0.40/3 for each of mission_id, instrument_type,
                                   observation_timestamp missing (``missing:<field>``); half of
                                   that when the value came only from the file's path or a
                                   profile default, not from the file (``from_path:<field>``,
                                   ``from_default:<field>``)
useful fields              0.10    0.02 each for satellite_name, target_object, observation_end,
                                   exposure_time, ra/dec missing (``missing:<field>``)
time parsed                0.10    a time keyword was present but unreadable
                                   (``time_unparseable:<field>``)
integrity                  0.15    CHECKSUM or DATASUM present and wrong
                                   (``checksum_mismatch``, ``datasum_mismatch``), or a table whose
                                   last row is cut short (``truncated_table``); files without
                                   checksums, or too large to verify, lose nothing
calibration state          0.05    calibration level unknown (``calibration_unknown``)
header sanity              0.15    0.05 each: end before start (``time_order:end_before_start``);
                                   position unreadable or out of range (``coords_out_of_range``,
                                   ``coords_unparseable``); exposure negative, unreadable or longer
                                   than the observation (``exposure_negative``,
                                   ``exposure_unparseable``, ``exposure_exceeds_duration``)
path/header agreement      0.05    the path disagrees with the header
                                   (``time_conflict:path_vs_header``,
                                   ``conflict:<field>:path_vs_header``) or fits no template of
                                   the mission's profile (``path_template_mismatch``)
=========================  ======  ===========================================================

Some things are noted with a flag but no deduction: structural oddities the reader saw (bytes
after the last HDU: ``fits_structure``), a file name that is not UTF-8 (``path_not_utf8``; the
stored path shows those bytes as backslash escapes), a sidecar that could not be parsed
(``sidecar_unreadable``). A file that cannot be read has no score (nothing was read to judge, and a
0.0 would drag every quality statistic down) and the flag ``unreadable``.
"""

from __future__ import annotations

from typing import Any

from cosmoscope.extract.base import REQUIRED_FIELDS

WEIGHTS = {"required": 0.40, "useful": 0.10, "time": 0.10, "integrity": 0.15, "calibration": 0.05,
           "sanity": 0.15, "agreement": 0.05}
USEFUL_FIELDS = ("satellite_name", "target_object", "observation_end", "exposure_time", "ra")
#: Exposure may exceed end - start by this factor before it is called inconsistent
#: (summed exposures of several detectors, clock rounding).
EXPOSURE_SLACK = 1.05


def required_fields() -> tuple[str, ...]:
    """:data:`cosmoscope.schema.REQUIRED_FIELDS` (as repeated in :mod:`cosmoscope.extract.base`,
    which does not load pyarrow)."""
    return REQUIRED_FIELDS


def score(rec: dict[str, Any], problems: dict[str, list], checks: dict[str, Any],
          extractor_flags: list[str] | None = None) -> tuple[float, list[str]]:
    """Score a mapped record; return ``(score, flags)``."""
    flags: list[str] = []
    total = 1.0

    required = required_fields()
    per = WEIGHTS["required"] / len(required)
    sources = rec.get("field_sources") or {}
    for f in required:
        if rec.get(f) is None:
            total -= per
            flags.append(f"missing:{f}")
        else:
            src = sources.get(f, "")
            if src.startswith("path:"):
                total -= per / 2
                flags.append(f"from_path:{f}")
            elif src.startswith("profile:") and src.endswith(":default"):
                total -= per / 2
                flags.append(f"from_default:{f}")

    per = WEIGHTS["useful"] / len(USEFUL_FIELDS)
    for f in USEFUL_FIELDS:
        if rec.get(f) is None:
            total -= per
            flags.append(f"missing:{'ra/dec' if f == 'ra' else f}")

    bad_times = sorted({field for field, _, _ in problems.get("time_unparseable", [])})
    if bad_times:
        total -= WEIGHTS["time"]
        flags += [f"time_unparseable:{f}" for f in bad_times]

    if checks.get("checksum") == "invalid" or checks.get("truncated"):
        total -= WEIGHTS["integrity"]
        if checks.get("checksum") == "invalid":
            flags += checks.get("checksum_flags") or ["checksum_mismatch"]
        if checks.get("truncated"):
            flags.append("truncated_table")

    if rec.get("calib_level") is None:
        total -= WEIGHTS["calibration"]
        flags.append("calibration_unknown")

    sanity = WEIGHTS["sanity"] / 3
    start, end = rec.get("observation_timestamp"), rec.get("observation_end")
    if start is not None and end is not None and end < start:
        total -= sanity
        flags.append("time_order:end_before_start")
    coords = problems.get("coords", [])
    if coords:
        total -= sanity
        flags.append("coords_out_of_range" if any(c.startswith("out of range") for c in coords)
                     else "coords_unparseable")
    exp = rec.get("exposure_time")
    exp_flag = None
    if problems.get("exposure"):
        exp_flag = "exposure_unparseable"
    elif exp is not None and exp < 0:
        exp_flag = "exposure_negative"
    elif exp is not None and start is not None and end is not None and end >= start:
        if exp > (end - start).total_seconds() * EXPOSURE_SLACK + 1.0:
            exp_flag = "exposure_exceeds_duration"
    if exp_flag:
        total -= sanity
        flags.append(exp_flag)

    conflicts = problems.get("conflicts", [])
    if conflicts or problems.get("path"):
        total -= WEIGHTS["agreement"]
        for c in conflicts:
            f = c["field"]
            flag = ("time_conflict:path_vs_header" if f in ("observation_timestamp", "observation_end")
                    else f"conflict:{f}:path_vs_header")
            if flag not in flags:
                flags.append(flag)
        if problems.get("path"):
            flags.append("path_template_mismatch")

    for f in extractor_flags or []:
        if f not in flags:
            flags.append(f)
    return round(max(0.0, min(1.0, total)), 4), flags
