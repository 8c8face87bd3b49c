"""Turning what users type or pass into UTC datetimes, with errors that show an example."""

from __future__ import annotations

import datetime as dt
import re

from cosmoscope.errors import InvalidArgumentError

UTC = dt.timezone.utc
#: The start of Unix time, which stored times count microseconds from.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_EXAMPLE = "use ISO 8601, e.g. 2026-11-27 or 2026-11-27T08:15:00Z, or a day of the year, e.g. 2026-331"
#: A day of the year as missions write it: 2026-331, 2026:331, 2026.331, with an optional time of
#: day (2026-331T08:15, 2026:331:08:15:00.5, as astropy's ``yday`` format) and offset.
_YDAY = re.compile(r"^(\d{4})[-:.](\d{3})(?:[T: ](\d{2})(?::(\d{2})(?::(\d{2})(\.\d+)?)?)?)?"
                   r"\s*(Z|[+-]\d{2}:?\d{2})?$", re.I)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|days|w|wk|weeks?)\s*$", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400,
          "days": 86400, "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800}


def now() -> dt.datetime:
    """The current time, UTC, to the microsecond."""
    return dt.datetime.now(UTC)


def to_utc(value, *, name: str = "time") -> dt.datetime:
    """Read a time as a timezone-aware UTC datetime.

    Accepts datetimes (naive ones are taken as UTC), dates (midnight UTC), ISO 8601 strings
    (``2026-11-27``, ``2026-11-27T08:15:00``, with ``Z`` or an offset), days of the year
    (``2026-331``, ``2026:331:08:15:00``), ``numpy.datetime64`` and ``astropy.time.Time``.

    >>> to_utc("2026-11-27T08:15:00+01:00")
    datetime.datetime(2026, 11, 27, 7, 15, tzinfo=datetime.timezone.utc)
    >>> to_utc("2026:331:08:15")
    datetime.datetime(2026, 11, 27, 8, 15, tzinfo=datetime.timezone.utc)
    >>> to_utc("27/11/2026")
    Traceback (most recent call last):
    ...
    cosmoscope.errors.InvalidArgumentError: could not read '27/11/2026' as the time: use ISO 8601, e.g. 2026-11-27 or 2026-11-27T08:15:00Z, or a day of the year, e.g. 2026-331
    """
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            parsed = _day_of_year(text)
            if parsed is None:
                raise InvalidArgumentError(f"could not read {value!r} as the {name}: {_EXAMPLE}") from None
        return to_utc(parsed)
    type_name = type(value).__module__ + "." + type(value).__name__
    if type_name.startswith("numpy.") and "datetime64" in type_name:
        import numpy as np

        micros = value.astype("datetime64[us]").astype(np.int64)
        return EPOCH + dt.timedelta(microseconds=int(micros))
    if type_name.startswith("astropy.time"):
        return value.utc.to_datetime(timezone=UTC)
    raise InvalidArgumentError(f"could not read {value!r} (a {type(value).__name__}) as the {name}: {_EXAMPLE}")


def to_time(value, *, name: str = "time") -> dt.datetime:
    """Read a time as :func:`to_utc` does, or an age before now written as a duration
    (``24h``, ``7d``, ``30 min``: that long ago), as every command that takes a time accepts.

    >>> to_time("2026-11-27").isoformat()
    '2026-11-27T00:00:00+00:00'
    >>> now() - to_time("24h") < dt.timedelta(hours=24, seconds=5)
    True
    """
    if not isinstance(value, str) or not _DURATION.match(value):
        try:
            return to_utc(value, name=name)
        except InvalidArgumentError:
            if isinstance(value, str):
                raise InvalidArgumentError(f"could not read {value!r} as the {name}: give an ISO 8601 time "
                                           "(2026-11-27, 2026-11-27T08:15:00Z) or an age before now such as 24h or 7d") from None
            raise
    return now() - to_duration(value, name=name)


def to_duration(value, *, name: str = "duration") -> dt.timedelta:
    """Read a duration: a timedelta, seconds as a number, or text like ``6h``, ``30 min``, ``7d``.

    >>> to_duration("6h")
    datetime.timedelta(seconds=21600)
    """
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])
    raise InvalidArgumentError(f"could not read {value!r} as the {name}: write it like 90s, 30min, 6h or 7d")


def _day_of_year(text: str) -> dt.datetime | None:
    """``2026-331``, ``2026:331:08:15:00`` ... as a datetime (None if the text is not one)."""
    m = _YDAY.match(text.strip())
    if m is None:
        return None
    import calendar

    year, day, hh, mm, ss, frac, offset = m.groups()
    if not 1 <= int(day) <= 365 + calendar.isleap(int(year)) or int(hh or 0) > 23 or int(mm or 0) > 59 \
            or int(ss or 0) > 59:
        return None
    t = dt.datetime(int(year), 1, 1) + dt.timedelta(days=int(day) - 1, hours=int(hh or 0), minutes=int(mm or 0),
                                                     seconds=int(ss or 0), microseconds=round(float(frac or 0) * 1e6))
    if offset and offset.upper() != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        return t.replace(tzinfo=dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))))
    return t.replace(tzinfo=UTC) if offset else t


def has_time_of_day(text: str) -> bool:
    """Whether typed time ``text`` gives a time of day (``2026-11-27T08:00``, ``2026-331 08:00``),
    not a whole day (``2026-11-27``, ``2026-331``): a whole day given as an end includes that day.

    >>> has_time_of_day("2026-11-27"), has_time_of_day("2026:331:08:00")
    (False, True)
    """
    text = text.strip()
    m = _YDAY.match(text)
    if m is not None:
        return m.group(3) is not None
    return bool(re.search(r"\d[T ]\d", text))


def epoch_us(t: dt.datetime) -> int:
    """Microseconds from :data:`EPOCH` to ``t``, exactly (a time without a zone is taken as UTC).

    >>> epoch_us(dt.datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
    1000005
    """
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t - EPOCH) // dt.timedelta(microseconds=1)
