"""Helpers shared by the mission modules: observation windows, time text, data sizes."""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta

from cosmoscope.simulate.plan import GroupContext


def obs_window(ctx: GroupContext, shortest: float, longest: float,
               whole: bool = True) -> tuple[datetime, float]:
    """Start (whole seconds) and duration of an observation that fits inside the group's slot.

    Durations are drawn between ``shortest`` and ``longest`` seconds and shrunk when many
    observations share a day, so that one instrument never observes two things at once.
    """
    rnd = ctx.rnd
    offset = rnd.random() * 0.1 * ctx.slot_seconds
    start = ctx.slot_start + timedelta(seconds=offset)
    start = start.replace(microsecond=0)
    budget = max(1.0, ctx.slot_seconds * 0.85 - offset)
    duration = min(rnd.uniform(shortest, longest), budget)
    duration = max(1.0, float(int(duration)) if whole else round(duration, 1))
    return start, duration


def iso(t: datetime, ms: bool = False, z: bool = False) -> str:
    """ISO 8601 text of a UTC time, to the second or millisecond, with an optional 'Z'."""
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if ms:
        text += f".{t.microsecond // 1000:03d}"
    return text + ("Z" if z else "")


def rows_for(size_hint: int | None, row_bytes: int, default: int) -> int:
    """Number of rows (or frames) of ``row_bytes`` each that make about ``size_hint`` bytes."""
    if not size_hint:
        return default
    return max(default, size_hint // row_bytes)


def side_for(size_hint: int | None, itemsize: int, default: int) -> int:
    """Side of a square image of ``itemsize``-byte pixels that makes about ``size_hint`` bytes."""
    if not size_hint:
        return default
    return max(default, math.isqrt(size_hint // itemsize))


def written_rows(size_hint: int | None, rows: int, row_bytes: int, limit: int = 8192) -> int:
    """Rows of real data to write: all of them for small files, about ``limit`` bytes when sparse."""
    if not size_hint:
        return rows
    return max(1, min(rows, limit // max(1, row_bytes)))


def sparse_prefix(data: bytes, size_hint: int | None, limit: int = 8192) -> bytes:
    """All of ``data`` for a small file; only its first ``limit`` bytes for a sparse one."""
    return data[:limit] if size_hint else data


def drop(items, missing: tuple[str, ...]):
    """``items`` ((key, ...) tuples) without those whose key is in ``missing``."""
    return [item for item in items if item[0] not in missing]


#: What a garbled time looks like in a header written by hand or by a buggy tool.
GARBLED_TIME = "2026-13-45T25:61:00"


def imperfect(items, spec):
    """``items`` ((key, value, ...) tuples) with the everyday imperfections the spec was given
    (``spec.extra["drop"]``: keys left out; ``spec.extra["garble"]``: time keys written wrong)."""
    gone = spec.extra.get("drop", ())
    garbled = spec.extra.get("garble", ())
    return [(item[0], GARBLED_TIME, *item[2:]) if item[0] in garbled else item
            for item in items if item[0] not in gone]


def ensure_parent(path) -> None:
    """Create the directory of ``path`` if needed."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)


def later(t: datetime, **kwargs) -> datetime:
    """``t`` plus a timedelta given as keyword arguments (a readable shorthand)."""
    return t + timedelta(**kwargs)
