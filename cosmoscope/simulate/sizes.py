"""Byte sizes written the way people write them: ``500MB``, ``1.5GB``, ``64MiB``, ``2e9``."""

from __future__ import annotations

import re

from cosmoscope.errors import InvalidArgumentError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text) -> int:
    """Number of bytes in ``text``; decimal units (kB, MB, GB, TB) and binary ones (KiB, MiB...).

    >>> parse_size("500MB"), parse_size("1.5GB"), parse_size("64MiB"), parse_size(4096)
    (500000000, 1500000000, 67108864, 4096)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _PATTERN.match(str(text))
        if not match or match.group(2).lower() not in _UNITS:
            raise InvalidArgumentError(
                f"{text!r} is not a size; write it like 500MB, 1.5GB, 64MiB or a number of bytes")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size < 1:
        raise InvalidArgumentError(f"size {text!r} must be at least 1 byte")
    return size
