"""Path templates: ``COSMOS7/{instrument}/{year}/{doy}/c7_{level}_{start:%Y%m%dT%H%M%S}.nc``.

A template is matched against the end of a file's path, one ``/`` segment for each of its
own. Placeholders:

``{name}``
    any text within a path segment (shortest match); well-known names are stricter:
    ``year``/``yyyy`` four digits, ``month``/``mm``/``day``/``dd`` two, ``doy`` three.
``{name:%Y%m%d}``
    a time in ``strftime`` form, parsed to a UTC ``datetime``.
``{name:08d}`` / ``{name:d}``
    digits (exactly 8 / any number), kept as text so leading zeros survive.

The same name twice in one template must match the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_PLACEHOLDER = re.compile(r"\{(\w+)(?::([^{}]*))?\}")
_STRICT = {"year": r"\d{4}", "yyyy": r"\d{4}", "month": r"\d{1,2}", "mm": r"\d{2}", "day": r"\d{1,2}",
           "dd": r"\d{2}", "doy": r"\d{1,3}", "hh": r"\d{2}"}
_DIRECTIVES = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}", "M": r"\d{2}",
               "S": r"\d{2}", "j": r"\d{3}", "f": r"\d{1,6}", "b": r"[A-Za-z]{3}", "B": r"[A-Za-z]+",
               "z": r"[+-]\d{4}|Z", "%": "%"}


class TemplateError(ValueError):
    """A path template cannot be compiled."""


_FAST = set("YymdHMSjf")


def _time_regex(fmt: str, name: str = "") -> str:
    """Regex for a strftime format; each directive becomes a named group ``<name>__<d>`` so
    common formats turn into a ``datetime`` without ``strptime``."""
    out, i, seen = [], 0, set()
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            if i + 1 >= len(fmt) or fmt[i + 1] not in _DIRECTIVES:
                bad = fmt[i:i + 2]
                raise TemplateError(f"time format {fmt!r}: {bad!r} is not a supported directive "
                                    f"(use one of {', '.join('%' + k for k in _DIRECTIVES)})")
            d = fmt[i + 1]
            if d == "%":
                out.append("%")
            elif name and d in _FAST and d not in seen:
                seen.add(d)
                out.append(f"(?P<{name}__{d}>{_DIRECTIVES[d]})")
            else:
                out.append(f"(?:{_DIRECTIVES[d]})")
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _fast_time(m: re.Match, name: str, spec: str) -> datetime | None:
    """Build the datetime from the directive groups; None if the format needs strptime."""
    if not set(re.findall(r"%(.)", spec)) <= _FAST:
        return None
    g = m.groupdict()

    def part(d, default=0):
        v = g.get(f"{name}__{d}")
        return int(v) if v is not None else default

    year = part("Y", None)
    if year is None:
        yy = part("y", None)
        year = (1900 + yy if yy >= 69 else 2000 + yy) if yy is not None else 1900
    frac = g.get(f"{name}__f")
    micro = int((frac + "000000")[:6]) if frac else 0
    jday = part("j", None)
    if jday is not None:
        from datetime import timedelta

        base = datetime(year, 1, 1, part("H"), part("M"), part("S"), micro, tzinfo=UTC)
        if not 1 <= jday <= 366:
            raise ValueError("day of year out of range")
        return base + timedelta(days=jday - 1)
    return datetime(year, part("m", 1), part("d", 1), part("H"), part("M"), part("S"), micro, tzinfo=UTC)


@dataclass(frozen=True, eq=False)
class PathTemplate:
    """A compiled template; :meth:`match` returns placeholder values or None."""

    text: str
    regex: re.Pattern = field(repr=False)
    formats: dict[str, str] = field(repr=False)  # placeholder -> spec
    segments: int = 1

    @classmethod
    def compile(cls, text: str) -> PathTemplate:
        if not text or text.startswith("/"):
            raise TemplateError(f"template {text!r} must be a relative path such as 'mission/{{year}}/x.fits'")
        parts: list[str] = []
        formats: dict[str, str] = {}
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            literal = text[pos:m.start()]
            if "{" in literal or "}" in literal:
                raise TemplateError(f"template {text!r} has an unbalanced brace near {literal!r}")
            parts.append(re.escape(literal))
            name, spec = m.group(1), m.group(2)
            if name in formats:
                parts.append(f"(?P={name})")
            else:
                formats[name] = spec or ""
                parts.append(f"(?P<{name}>{_spec_regex(name, spec, text)})")
            pos = m.end()
        tail = text[pos:]
        if "{" in tail or "}" in tail:
            raise TemplateError(f"template {text!r} has an unbalanced brace near {tail!r}")
        parts.append(re.escape(tail))
        try:
            regex = re.compile(r"(?:^|/)" + "".join(parts) + r"$")
        except re.error as exc:
            raise TemplateError(f"template {text!r} does not compile: {exc}") from None
        return cls(text=text, regex=regex, formats=formats, segments=text.count("/") + 1)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.formats)

    def match(self, path: str) -> dict[str, Any] | None:
        """Placeholder values for ``path`` (POSIX form), or None if it does not fit.

        >>> t = PathTemplate.compile("hx/{date:%Y%m%d}/hx{obsid:08d}_{product}.fits")
        >>> m = t.match("/data/hx/20261127/hx01234567_evt2.fits")
        >>> m["obsid"], m["product"], m["date"].isoformat()
        ('01234567', 'evt2', '2026-11-27T00:00:00+00:00')
        """
        m = self.regex.search(path)
        if not m:
            return None
        out: dict[str, Any] = {}
        for name, spec in self.formats.items():
            raw = m.group(name)
            if "%" in spec:
                try:
                    t = _fast_time(m, name, spec)
                    out[name] = t if t is not None else datetime.strptime(raw, spec).replace(tzinfo=UTC)
                except ValueError:
                    return None  # digits in the right places but not a real date
            else:
                out[name] = raw
        return out

    def resolution(self, name: str) -> float:
        """Seconds of precision of a time placeholder (1 for ``%S``, 60 for ``%M`` ...)."""
        spec = self.formats.get(name, "")
        for directive, seconds in (("%f", 1e-6), ("%S", 1.0), ("%M", 60.0), ("%H", 3600.0)):
            if directive in spec:
                return seconds
        return 86400.0


def _spec_regex(name: str, spec: str | None, text: str) -> str:
    if not spec:
        return _STRICT.get(name, r"[^/]+?")
    if "%" in spec:
        return _time_regex(spec, name)
    m = re.fullmatch(r"0?(\d*)d", spec)
    if m:
        return rf"\d{{{int(m.group(1))}}}" if m.group(1) else r"\d+"
    raise TemplateError(f"template {text!r}: placeholder {{{name}:{spec}}} has an unknown format; "
                        "use a strftime format like %Y%m%d, or 08d / d for digits")
