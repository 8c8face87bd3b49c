"""Observation times from header text and numbers, always returned as UTC ``datetime``.

Real files write times in many ways: ISO 8601 with or without ``T``/``Z``, compact
``20190821T174811Z``, legacy FITS ``dd/mm/yy`` (years 1900-1999), day-of-year
``2026-331T08:15:00``, MJD numbers, and mission elapsed time (``TSTART`` seconds since
``MJDREF``) in the time scale named by ``TIMESYS``. Common shapes are parsed with regular
expressions (fast: ingest reads thousands of files a second); anything else goes to
:class:`astropy.time.Time`. Scale conversion (TT, TAI, GPS, TDB → UTC) uses astropy.time once
per scale and day and caches the offset, since it only changes at leap seconds.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

MJD_EPOCH = datetime(1858, 11, 17)

_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T _](\d{1,2}):(\d{2})(?::(\d{2})(\.\d*)?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?$", re.IGNORECASE)
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T?(\d{2})(\d{2})(?:(\d{2})(\.\d*)?)?)?\s*(Z)?$",
                      re.IGNORECASE)
_LEGACY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})$")
_DOY = re.compile(r"^(\d{4})[-:.](\d{3})(?:[T:_ ](\d{2}):(\d{2})(?::(\d{2})(\.\d*)?)?)?\s*(Z)?$",
                  re.IGNORECASE)
_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d*)?)?\s*(Z)?$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")
_STRPTIME_FORMATS = ("%a %b %d %H:%M:%S %Y", "%d-%b-%Y %H:%M:%S", "%d-%b-%Y", "%Y/%m/%d %H:%M:%S",
                     "%Y/%m/%d", "%d %b %Y %H:%M:%S", "%b %d %Y %H:%M:%S")

#: Time scale names as FITS TIMESYS and friends write them, to astropy's names.
_SCALES = {"UTC": "utc", "UT": "utc", "GMT": "utc", "Z": "utc", "UT1": "ut1", "TT": "tt",
           "TDT": "tt", "ET": "tt", "TAI": "tai", "IAT": "tai", "GPS": "gps", "TDB": "tdb",
           "TCG": "tcg", "TCB": "tcb", "LOCAL": "utc"}


class TimeParseError(ValueError):
    """A time value is present but cannot be read."""


def normalise_scale(name: str | None) -> str:
    """astropy's name of a FITS ``TIMESYS`` value; unknown or missing means UTC.

    >>> normalise_scale("TT "), normalise_scale(None), normalise_scale("GMT")
    ('tt', 'utc', 'utc')
    """
    if not name:
        return "utc"
    return _SCALES.get(str(name).strip().upper(), "utc")


def _frac(text: str | None) -> int:
    return int((text[1:] + "000000")[:6]) if text and len(text) > 1 else 0


def _build(y, mo, d, h=None, mi=None, s=None, frac=None) -> datetime:
    sec = int(s) if s else 0
    micro = _frac(frac)
    if sec >= 60:  # a leap second: datetime cannot hold 23:59:60
        sec, micro = 59, 999999
    return datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), sec, micro)


def parse_string(text: str, *, allow_year: bool = False, century: int = 1900) -> tuple[datetime, bool] | None:
    """Parse a date/time string into a naive ``datetime`` and whether it was marked UTC.

    ``century`` is added to two-digit years of legacy ``dd/mm/yy`` dates: the FITS standard
    says 1900, a mission that kept the form past 1999 needs 2000 (a profile says so).

    Returns None when the text has no recognisable shape; raises :class:`TimeParseError` when
    it has one but the date is impossible (``2021-02-30``).

    >>> parse_string("19/02/94")
    (datetime.datetime(1994, 2, 19, 0, 0), False)
    >>> parse_string("20190821T174811Z")
    (datetime.datetime(2019, 8, 21, 17, 48, 11), True)
    """
    s = text.strip()
    try:
        m = _ISO.match(s)
        if m:
            dt = _build(*m.group(1, 2, 3, 4, 5, 6, 7))
            tz = m.group(8)
            if tz and tz.upper() not in ("Z", "UTC", "GMT"):
                sign = 1 if tz[0] == "+" else -1
                hh, mm = int(tz[1:3]), int(tz[-2:])
                dt -= sign * timedelta(hours=hh, minutes=mm)
            return dt, bool(tz)
        m = _COMPACT.match(s)
        if m:
            return _build(*m.group(1, 2, 3, 4, 5, 6, 7)), bool(m.group(8))
        m = _LEGACY.match(s)
        if m:
            day, month, yy = m.groups()
            return datetime(century + int(yy), int(month), int(day)), False
        m = _DOY.match(s)
        if m:
            y, doy, h, mi, sec, frac, z = m.groups()
            if not 1 <= int(doy) <= 366:
                raise TimeParseError(f"day of year {doy} is out of range")
            dt = _build(y, 1, 1, h, mi, sec, frac) + timedelta(days=int(doy) - 1)
            return dt, bool(z)
        if allow_year:
            m = _YEAR.match(s)
            if m:
                return datetime(int(m.group(1)), 1, 1), False
    except ValueError as exc:
        raise TimeParseError(f"{text!r} is not a valid date: {exc}") from None
    for fmt in _STRPTIME_FORMATS:
        try:
            return datetime.strptime(s.replace(" GMT", "").replace(" UTC", ""), fmt), True
        except ValueError:
            continue
    return None


def parse_time_of_day(text: str) -> timedelta | None:
    """``'08:42:00'`` → ``timedelta(hours=8, minutes=42)``; None if not a time of day."""
    m = _TIME_OF_DAY.match(str(text).strip())
    if not m:
        return None
    h, mi, s, frac, _ = m.groups()
    return timedelta(hours=int(h), minutes=int(mi), seconds=int(s or 0), microseconds=_frac(frac))


@functools.lru_cache(maxsize=4096)
def _offset_to_utc(scale: str, day: tuple[int, int, int]) -> timedelta:
    """UTC minus ``scale`` on ``day``; exact except within a minute of a leap second."""
    from astropy.time import Time

    t = Time(datetime(*day, 12), scale=scale)
    return t.utc.to_datetime() - datetime(*day, 12)


def to_utc(dt: datetime, scale: str = "utc") -> datetime:
    """A naive ``datetime`` in ``scale`` (astropy name) as a timezone-aware UTC ``datetime``."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
        scale = "utc"
    if scale not in ("utc", "ut1"):
        dt = dt + _offset_to_utc(scale, (dt.year, dt.month, dt.day))
    return dt.replace(tzinfo=UTC)


def parse_any(value, scale: str = "utc", *, allow_year: bool = False, century: int = 1900) -> datetime:
    """Parse text (any shape :func:`parse_string` knows, else astropy) into aware UTC.

    ``scale`` is the time scale of the value when the text itself does not say ``Z``/``UTC``.
    Raises :class:`TimeParseError` when it cannot.
    """
    if isinstance(value, datetime):
        return to_utc(value, scale)
    text = str(value).strip()
    if not text:
        raise TimeParseError("empty time value")
    got = parse_string(text, allow_year=allow_year, century=century)
    if got is None:
        got = _astropy_parse(text, scale)
        if got is None:
            raise TimeParseError(f"{text!r} is not a date or time cosmoscope can read")
        return _checked(got)
    dt, marked_utc = got
    return _checked(to_utc(dt, "utc" if marked_utc else scale))


def _astropy_parse(text: str, scale: str) -> datetime | None:
    from astropy.time import Time

    try:
        t = Time(text, scale=scale if scale != "ut1" else "utc")
        return t.utc.to_datetime().replace(tzinfo=UTC)
    except Exception:  # noqa: BLE001 - astropy raises many types for text it cannot parse
        return None


def _checked(dt: datetime) -> datetime:
    if not 1000 <= dt.year <= 9000:
        raise TimeParseError(f"year {dt.year} is not a plausible observation year")
    return dt


def from_mjd(mjd: float, scale: str = "utc") -> datetime:
    """A Modified Julian Date in ``scale`` as aware UTC.

    >>> from_mjd(51544.5, "utc").isoformat()
    '2000-01-01T12:00:00+00:00'
    """
    mjd = float(mjd)
    if not -100000 < mjd < 1000000:
        raise TimeParseError(f"MJD {mjd} is out of range")
    return _checked(to_utc(MJD_EPOCH + timedelta(days=mjd), scale))


def from_met(value: float, mjdref: float, *, unit: str = "s", scale: str = "tt",
             timezero: float = 0.0) -> datetime:
    """Mission elapsed time (``TSTART`` style) since ``MJDREF`` as aware UTC.

    ``unit`` is FITS ``TIMEUNIT`` (``s`` default, ``d`` for days); ``timezero`` is added first.
    """
    seconds = float(value) + float(timezero or 0.0)
    unit = (unit or "s").strip().lower()
    if unit in ("d", "day", "days"):
        seconds *= 86400.0
    elif unit in ("min",):
        seconds *= 60.0
    elif unit in ("h", "hr", "hour"):
        seconds *= 3600.0
    elif unit not in ("s", "sec", "second", "seconds"):
        raise TimeParseError(f"TIMEUNIT {unit!r} is not a unit of time cosmoscope knows")
    if abs(seconds) > 1e12:
        raise TimeParseError(f"elapsed time {value} is out of range")
    base = MJD_EPOCH + timedelta(days=float(mjdref))
    return _checked(to_utc(base + timedelta(seconds=seconds), scale))


_CF_UNITS = re.compile(r"^\s*(\w+)\s+since\s+(.+?)\s*$", re.IGNORECASE)
_CF_SECONDS = {"second": 1.0, "seconds": 1.0, "sec": 1.0, "secs": 1.0, "s": 1.0, "minute": 60.0,
               "minutes": 60.0, "min": 60.0, "hour": 3600.0, "hours": 3600.0, "hr": 3600.0,
               "h": 3600.0, "day": 86400.0, "days": 86400.0, "d": 86400.0}


def from_cf(value: float, units: str, calendar: str | None = None) -> datetime:
    """A CF time coordinate value (``"hours since 1970-01-01"``) as aware UTC.

    Only the standard (Gregorian) calendars are read; model calendars (360_day, noleap)
    raise :class:`TimeParseError` rather than give a wrong date.
    """
    if calendar and str(calendar).lower() not in ("standard", "gregorian", "proleptic_gregorian"):
        raise TimeParseError(f"calendar {calendar!r} is not a real-world calendar")
    m = _CF_UNITS.match(str(units))
    if not m or m.group(1).lower() not in _CF_SECONDS:
        raise TimeParseError(f"time units {units!r} are not 'UNIT since DATE'")
    epoch = parse_any(m.group(2).replace("UTC", "").strip() or "1970-01-01")
    return _checked(epoch + timedelta(seconds=float(value) * _CF_SECONDS[m.group(1).lower()]))


_DURATION = re.compile(r"^P(?:(\d+(?:\.\d*)?)D)?(?:T(?:(\d+(?:\.\d*)?)H)?(?:(\d+(?:\.\d*)?)M)?"
                       r"(?:(\d+(?:\.\d*)?)S)?)?$", re.IGNORECASE)


def parse_duration(text: str) -> float | None:
    """Seconds of an ISO 8601 duration (``PT890.5S``, ``P1DT2H``), or None if it is not one.

    >>> parse_duration("PT1H30M"), parse_duration("P1D"), parse_duration("soon")
    (5400.0, 86400.0, None)
    """
    m = _DURATION.match(str(text).strip())
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s
