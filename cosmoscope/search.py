"""Search filters as polars expressions.

Every filter here is of a form the predicate IR carries, so it reaches the store; the two
exceptions are the forgiving name match, which polars applies, and the exact half of a sky
search, whose ``sky_index`` half reaches the store.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from cosmoscope import schema as S
from cosmoscope.errors import InvalidArgumentError
from cosmoscope.times import epoch_us, to_time

if TYPE_CHECKING:
    import polars as pl


def _values(value, name: str, valid=None) -> list:
    values = [value] if isinstance(value, (str, int, float)) else list(value)
    if not values:
        raise InvalidArgumentError(f"{name} was given an empty list; give at least one value or leave it out")
    if valid is not None:
        for v in values:
            if v not in valid:
                raise InvalidArgumentError(f"{name} {v!r} is not one of {', '.join(valid)}")
    return values


def _any_of(column: str, value, name: str, valid=None) -> pl.Expr:
    import polars as pl

    values = _values(value, name, valid)
    return pl.col(column) == values[0] if len(values) == 1 else pl.col(column).is_in(values)


def target_filter(target: str) -> pl.Expr:
    """Exact name, ``prefix*`` or ``*part*`` (a ``*`` elsewhere is taken literally)."""
    import polars as pl

    col = pl.col("target_object")
    if len(target) > 2 and target.startswith("*") and target.endswith("*"):
        return col.str.contains(target[1:-1], literal=True)
    if len(target) > 1 and target.endswith("*") and not target.startswith("*"):
        return col.str.starts_with(target[:-1])
    return col == target


def _utc(t: dt.datetime) -> pl.Expr:
    """A UTC time as a value of the observations' time type: microseconds since 1970 cast to
    it, the same value polars makes of an aware datetime in a twentieth of the time (polars
    converts through a one-value Series and a time-zone replacement: 0.17 ms; an API page
    builds two per request)."""
    import polars as pl

    micros = epoch_us(t.astimezone(dt.timezone.utc))
    return pl.lit(micros, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))


def search_filter(*, mission=None, instrument=None, target=None, start=None, end=None, min_quality=None,
                  status=None, calibration=None, satellite=None, product_type=None, file_format=None,
                  calib_level=None, name=None, sky=None) -> pl.Expr | None:
    """The AND of the given search filters (None when no filter is given).

    ``name`` is a forgiving target name (case, spaces and punctuation ignored); ``sky`` a
    :class:`~cosmoscope.sky.shapes.Cone`, ``Box`` or ``Polygon`` (see :mod:`cosmoscope.sky.search`).
    """
    import polars as pl

    terms = []
    if sky is not None:
        from cosmoscope.sky.search import sky_filter

        terms.append(sky_filter(sky))
    if name is not None:
        from cosmoscope.sky.positions import name_filter

        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError("name must be a non-empty target name, e.g. 'NGC 253'")
        terms.append(name_filter(name))
    if mission is not None:
        terms.append(_any_of("mission_id", mission, "mission"))
    if instrument is not None:
        terms.append(_any_of("instrument_type", instrument, "instrument"))
    if satellite is not None:
        terms.append(_any_of("satellite_name", satellite, "satellite"))
    if status is not None:
        terms.append(_any_of("processing_status", status, "status", [s.value for s in S.ProcessingStatus]))
    if calibration is not None:
        terms.append(_any_of("calibration_status", calibration, "calibration",
                             [s.value for s in S.CalibrationStatus]))
    if product_type is not None:
        terms.append(_any_of("dataproduct_type", product_type, "product type"))
    if file_format is not None:
        terms.append(_any_of("file_format", file_format, "file format"))
    if target is not None:
        if not isinstance(target, str) or not target.strip():
            raise InvalidArgumentError("target must be a non-empty name, e.g. 'NGC 253' or 'NGC*'")
        terms.append(target_filter(target))
    t0 = to_time(start, name="start time") if start is not None else None
    t1 = to_time(end, name="end time") if end is not None else None
    if t0 is not None and t1 is not None and t1 <= t0:
        raise InvalidArgumentError(f"the end time {t1.isoformat()} is not after the start time {t0.isoformat()}")
    if t0 is not None:
        terms.append(pl.col("observation_timestamp") >= _utc(t0))
    if t1 is not None:
        terms.append(pl.col("observation_timestamp") < _utc(t1))
    if min_quality is not None:
        if isinstance(min_quality, bool) or not isinstance(min_quality, (int, float)) or not 0 <= min_quality <= 1:
            raise InvalidArgumentError(f"min_quality must be a number from 0 to 1, got {min_quality!r}")
        terms.append(pl.col("data_quality_score") >= float(min_quality))
    if calib_level is not None:
        if isinstance(calib_level, bool) or not isinstance(calib_level, int) or not 0 <= calib_level <= 4:
            raise InvalidArgumentError(f"calib_level must be an integer from 0 to 4, got {calib_level!r}")
        terms.append(pl.col("calib_level") >= calib_level)
    if not terms:
        return None
    expr = terms[0]
    for t in terms[1:]:
        expr = expr & t
    return expr
