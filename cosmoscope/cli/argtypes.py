"""Argument types for the command line: each turns text into a value or says, in one line, what
it could not read and what a good value looks like (argparse then exits 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def number(kind: type = int, *, low: float | None = None, high: float | None = None, above: float | None = None,
           what: str = "a number", example: str | None = None) -> Callable[[str], float]:
    """An argparse type reading an ``int`` or ``float`` within bounds.

    ``low``/``high`` are inclusive bounds, ``above`` an exclusive lower bound. Underscores and
    commas are allowed as thousands separators (``100_000``, ``100,000``).

    >>> number(int, low=1, what="a file count")("1,000")
    1000
    """
    hint = f", e.g. {example}" if example else ""

    def parse(text: str):
        try:
            value = kind(text.replace(",", "").replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"could not read {text!r} as {what}{hint}") from None
        if (low is not None and value < low) or (high is not None and value > high) or (
                above is not None and not value > above):
            if low is not None and high is not None:
                bounds = f"between {low:g} and {high:g}"
            elif above is not None:
                bounds = f"more than {above:g}"
            elif low is not None:
                bounds = f"at least {low:g}"
            else:
                bounds = f"at most {high:g}"
            raise argparse.ArgumentTypeError(f"{what} must be {bounds}, not {text}{hint}")
        return value

    parse.__name__ = what.replace(" ", "_")  # argparse names the type in its messages
    return parse


#: A TCP port (0 lets the system choose).
port = number(int, low=0, high=65535, what="port", example="8000")
#: A count that may be zero.
count = number(int, low=0, what="a whole number")
#: Extraction worker processes (0: in the command's own process).
workers = number(int, low=0, what="a number of workers", example="4 (0 reads in this process)")
#: A quality score.
quality = number(float, low=0, high=1, what="quality", example="0.8")
#: A fraction.
fraction = number(float, low=0, high=1, what="a fraction", example="0.02")


def utc_time(text: str):
    """A time as ISO 8601 text (UTC unless an offset is given), or an age before now (``24h``)."""
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.times import to_time

    try:
        return to_time(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seconds(text: str) -> float:
    """A duration in seconds, as a number (``90``) or with a unit (``30s``, ``10min``, ``6h``, ``2d``)."""
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.times import to_duration

    try:
        value = float(text)
    except ValueError:
        try:
            return to_duration(text).total_seconds()
        except InvalidArgumentError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a duration cannot be negative: {text}")
    return value


def radius(text: str) -> float:
    """A search radius: degrees, or with a unit (``30arcmin``, ``10arcsec``, ``0.5deg``)."""
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.sky.positions import parse_radius

    try:
        return parse_radius(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def degrees(text: str) -> float:
    """An angle in degrees (a box edge)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"could not read {text!r} as an angle in degrees, e.g. 10.5") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite angle")
    return value
