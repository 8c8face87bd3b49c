"""Mission profiles: TOML files that say how a mission names its files and headers.

A profile applies to paths matching its ``applies_to`` globs (or its path templates); it adds
header keywords to try first for each field, defaults, value maps (``evt2`` → calibrated
event list), sidecar file patterns and lineage keywords. Shipped profiles live in
``cosmoscope/profiles/``; more come from ``COSMOSCOPE_PROFILES`` (paths of files or
directories, separated by ``os.pathsep``) and from :func:`load_profiles` ``extra``. A later
profile with the same name replaces an earlier one. The format is documented in
``cosmoscope/profiles/README.md``.

>>> ps = load_profiles()
>>> "helios-x" in ps.names
True
>>> ps.match("/archive/helios-x/20261127/hx01234567_evt2.fits").name
'helios-x'
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cosmoscope.errors import CosmoscopeError
from cosmoscope.extract.templates import PathTemplate, TemplateError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "profiles"
ENV_VAR = "COSMOSCOPE_PROFILES"

#: Fields a profile may fill, and short names accepted for them.
PROFILE_FIELDS = ("mission_id", "satellite_name", "instrument_type", "observation_timestamp",
                  "observation_end", "exposure_time", "target_object", "ra", "dec", "calib_level",
                  "calibration_status", "dataproduct_type", "version", "processing_level")
ALIASES = {"mission": "mission_id", "satellite": "satellite_name", "spacecraft": "satellite_name",
           "telescope": "satellite_name", "instrument": "instrument_type", "target": "target_object",
           "object": "target_object", "start": "observation_timestamp",
           "end": "observation_end", "exposure": "exposure_time", "level": "processing_level"}
_SECTIONS = {"profile", "paths", "keywords", "defaults", "value_maps", "sidecars", "lineage",
             "mission_specific", "time"}
_PROFILE_KEYS = {"name", "description", "applies_to", "priority", "formats"}


class ProfileError(CosmoscopeError, ValueError):
    """A profile file is not valid TOML or not a valid profile; says which file and line."""


class AmbiguousProfileError(ProfileError):
    """Two profiles apply to one path with the same priority."""


def canonical_field(name: str) -> str | None:
    """The catalog field a profile name means (``start`` → ``observation_timestamp``)."""
    name = name.strip()
    if name in PROFILE_FIELDS:
        return name
    return ALIASES.get(name)


# --------------------------------------------------------------------------------------------
# Globs


@functools.lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern:
    """Compile a path glob: ``**`` any directories, ``*`` within a segment, ``?`` one char.

    Patterns that do not start with ``/`` or ``**`` match anywhere in the path.

    >>> bool(glob_regex("helios-x/**").fullmatch("/data/helios-x/2026/a.fits"))
    True
    >>> bool(glob_regex("*.fits").fullmatch("/data/x/a.fits.gz"))
    False
    """
    p = pattern.replace(os.sep, "/")
    if not p.startswith(("/", "**")):
        p = "**/" + p
    out, i = [], 0
    while i < len(p):
        if p.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif p.startswith("**", i):
            out.append(".*")
            i += 2
        elif p[i] == "*":
            out.append("[^/]*")
            i += 1
        elif p[i] == "?":
            out.append("[^/]")
            i += 1
        elif p[i] == "[":
            j = p.find("]", i + 1)
            if j < 0:
                out.append(re.escape(p[i]))
                i += 1
            else:
                body = p[i + 1:j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j + 1
        else:
            out.append(re.escape(p[i]))
            i += 1
    return re.compile("".join(out))


# --------------------------------------------------------------------------------------------
# Profile


@dataclass(frozen=True, eq=False)
class LineageRule:
    """Header keywords naming a file's inputs, and the kind of edge they make."""

    keys: tuple[str, ...]
    relationship: str | dict[str, str] = "auto"
    split: str = ","

    def relationship_for(self, calib_level: int | None) -> str:
        if isinstance(self.relationship, dict):
            return self.relationship.get(str(calib_level), self.relationship.get("default", "derived"))
        if self.relationship != "auto":
            return self.relationship
        return auto_relationship(calib_level)


def auto_relationship(calib_level: int | None) -> str:
    """``raw->calibrated`` for a calibrated child, ``calibrated->derived`` above, else ``derived``."""
    if calib_level == 2:
        return "raw->calibrated"
    if calib_level is not None and calib_level >= 3:
        return "calibrated->derived"
    return "derived"


@dataclass(frozen=True, eq=False)
class Profile:
    """One mission's conventions. Build with :func:`load_profile` or :meth:`from_dict`."""

    name: str
    description: str = ""
    source: str = "<memory>"
    applies_to: tuple[str, ...] = ()
    priority: int = 0
    formats: tuple[str, ...] = ()
    templates: tuple[PathTemplate, ...] = ()
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    value_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    sidecars: tuple[str, ...] = ()
    lineage: tuple[LineageRule, ...] = ()
    keep: tuple[str, ...] = ()
    #: Added to two-digit years of legacy dd/mm/yy dates (FITS says 1900).
    two_digit_year_base: int = 1900
    #: Time scale of header times when the file does not say (no TIMESYS); None means UTC.
    default_scale: str | None = None
    #: Take the end as start + exposure when the file gives no end (single-exposure frames).
    end_from_exposure: bool = False

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, priority={self.priority}, source={self.source!r})"

    def applies(self, path: str, fmt: str | None = None) -> bool:
        """Whether this profile is meant for ``path`` (and format ``fmt`` if given)."""
        if fmt is not None and self.formats and fmt not in self.formats:
            return False
        p = _posix(path)
        if self.applies_to:
            return any(glob_regex(g).fullmatch(p) for g in self.applies_to)
        return any(t.match(p) is not None for t in self.templates)

    def match_path(self, path: str) -> tuple[PathTemplate, dict[str, Any]] | None:
        """The first template that fits ``path`` and its placeholder values."""
        p = _posix(path)
        for t in self.templates:
            got = t.match(p)
            if got is not None:
                return t, got
        return None

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<memory>", text: str | None = None) -> Profile:
        """Validate a parsed TOML document; errors name ``source`` and the line."""
        return _build(data, source, text)


def _posix(path: str) -> str:
    return os.fspath(path).replace(os.sep, "/")


# --------------------------------------------------------------------------------------------
# Validation


def _line_of(text: str | None, *needles: str) -> str:
    if not text:
        return ""
    for needle in needles:
        pat = re.compile(rf"^\s*(?:\[+\s*)?{re.escape(needle)}\b", re.M)
        m = pat.search(text)
        if m:
            return f", line {text.count(chr(10), 0, m.start()) + 1}"
    return ""


class _Checker:
    def __init__(self, source: str, text: str | None):
        self.source, self.text = source, text

    def fail(self, what: str, *needles: str):
        raise ProfileError(f"profile {self.source}{_line_of(self.text, *needles)}: {what}")

    def strings(self, value, where: str, needle: str) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"{where} must be a string or a list of strings, not {value!r}", needle)
        return tuple(value)

    def field_name(self, name: str, where: str) -> str:
        f = canonical_field(name)
        if f is None:
            self.fail(f"{where}: {name!r} is not a field a profile can set; valid fields: "
                      f"{', '.join(PROFILE_FIELDS)}", name)
        return f


def _check_value(ck: _Checker, fieldname: str, value: Any, where: str, needle: str) -> Any:
    from cosmoscope.extract.base import CALIBRATION_STATUSES, DATAPRODUCT_TYPES

    if fieldname == "calib_level":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4:
            ck.fail(f"{where}: calib_level must be an integer 0-4, not {value!r}", needle)
    elif fieldname == "calibration_status":
        if value not in CALIBRATION_STATUSES:
            ck.fail(f"{where}: calibration_status must be one of {', '.join(CALIBRATION_STATUSES)}, "
                    f"not {value!r}", needle)
    elif fieldname == "dataproduct_type":
        if value not in DATAPRODUCT_TYPES:
            ck.fail(f"{where}: dataproduct_type must be one of {', '.join(DATAPRODUCT_TYPES)}, "
                    f"not {value!r}", needle)
    elif fieldname in ("ra", "dec", "exposure_time"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ck.fail(f"{where}: {fieldname} must be a number, not {value!r}", needle)
        value = float(value)
    elif fieldname in ("observation_timestamp", "observation_end"):
        if isinstance(value, datetime):
            value = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif isinstance(value, date):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        else:
            ck.fail(f"{where}: {fieldname} must be a TOML date-time such as 2026-11-27T08:15:00Z", needle)
    elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
        ck.fail(f"{where}: {fieldname} must be text, not {value!r}", needle)
    else:
        value = str(value)
    return value


def _build(data: dict, source: str, text: str | None) -> Profile:
    ck = _Checker(source, text)
    unknown = set(data) - _SECTIONS
    if unknown:
        name = sorted(unknown)[0]
        ck.fail(f"unknown section [{name}]; valid sections: {', '.join(sorted(_SECTIONS))}", name)
    head = data.get("profile")
    if not isinstance(head, dict):
        ck.fail("missing [profile] section with at least name = \"...\"", "profile")
    bad = set(head) - _PROFILE_KEYS
    if bad:
        k = sorted(bad)[0]
        ck.fail(f"unknown key {k!r} in [profile]; valid keys: {', '.join(sorted(_PROFILE_KEYS))}", k)
    name = head.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][\w.\-]*", name or ""):
        ck.fail(f"[profile] name must be a word such as 'helios-x', not {name!r}", "name", "profile")
    priority = head.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        ck.fail(f"[profile] priority must be an integer, not {priority!r}", "priority")
    applies_to = ck.strings(head.get("applies_to", []), "[profile] applies_to", "applies_to")
    formats = ck.strings(head.get("formats", []), "[profile] formats", "formats")
    for f in formats:
        if f not in ("fits", "hdf5", "netcdf", "csv") and not re.fullmatch(r"\w+", f):
            ck.fail(f"[profile] formats: {f!r} is not a format name", "formats")

    paths = data.get("paths", {})
    if not isinstance(paths, dict):
        ck.fail("[paths] must be a table", "paths")
    if set(paths) - {"templates"}:
        ck.fail(f"unknown key {sorted(set(paths) - {'templates'})[0]!r} in [paths]; valid keys: templates",
                "paths")
    templates = []
    for t in ck.strings(paths.get("templates", []), "[paths] templates", "templates"):
        try:
            templates.append(PathTemplate.compile(t))
        except TemplateError as exc:
            ck.fail(str(exc), "templates")

    keywords: dict[str, tuple[str, ...]] = {}
    kw = data.get("keywords", {})
    if not isinstance(kw, dict):
        ck.fail("[keywords] must be a table of field = [\"KEY\", ...]", "keywords")
    for k, v in kw.items():
        keywords[ck.field_name(k, "[keywords]")] = ck.strings(v, f"[keywords] {k}", k)

    defaults: dict[str, Any] = {}
    for k, v in (data.get("defaults") or {}).items():
        f = ck.field_name(k, "[defaults]")
        defaults[f] = _check_value(ck, f, v, f"[defaults] {k}", k)

    value_maps: dict[str, dict[str, Any]] = {}
    vm = data.get("value_maps", {})
    if not isinstance(vm, dict):
        ck.fail("[value_maps] must be tables such as [value_maps.product]", "value_maps")
    for key, table in vm.items():
        if not isinstance(table, dict):
            ck.fail(f"[value_maps.{key}] must be a table of value = ... entries", key)
        target = canonical_field(key)
        entries: dict[str, Any] = {}
        for value, mapped in table.items():
            where = f"[value_maps.{key}] {value}"
            if isinstance(mapped, dict):
                out = {}
                for fk, fv in mapped.items():
                    f = ck.field_name(fk, where)
                    out[f] = _check_value(ck, f, fv, where, value)
                entries[value.lower()] = out
            elif target is not None:
                entries[value.lower()] = {target: _check_value(ck, target, mapped, where, value)}
            else:
                ck.fail(f"{where}: {key!r} is not a field, so each value must map to a table of "
                        "fields, e.g. evt2 = { calib_level = 2 }", value)
        value_maps[key] = entries

    side = data.get("sidecars", {})
    if isinstance(side, list):
        side = {"patterns": side}
    if not isinstance(side, dict) or set(side) - {"patterns"}:
        ck.fail("[sidecars] must be a table with patterns = [\"{stem}.json\", ...]", "sidecars")
    sidecars = ck.strings(side.get("patterns", []), "[sidecars] patterns", "patterns")

    lineage = []
    lin = data.get("lineage", [])
    if isinstance(lin, dict):
        lin = [lin]
    if not isinstance(lin, list):
        ck.fail("[[lineage]] must be tables with keys = [...] and relationship = \"...\"", "lineage")
    for rule in lin:
        if not isinstance(rule, dict) or set(rule) - {"keys", "relationship", "split"}:
            ck.fail("each [[lineage]] takes keys, relationship and split", "lineage")
        keys = ck.strings(rule.get("keys", []), "[[lineage]] keys", "keys")
        if not keys:
            ck.fail("[[lineage]] keys must name at least one keyword", "lineage")
        rel = rule.get("relationship", "auto")
        if isinstance(rel, dict):
            rel = {str(k): str(v) for k, v in rel.items()}
        elif not isinstance(rel, str) or not rel.strip():
            ck.fail(f"[[lineage]] relationship must be text or a table by calib_level, not {rel!r}",
                    "relationship")
        split = rule.get("split", ",")
        if not isinstance(split, str):
            ck.fail("[[lineage]] split must be text", "split")
        lineage.append(LineageRule(keys=keys, relationship=rel, split=split))

    ms = data.get("mission_specific", {})
    if not isinstance(ms, dict) or set(ms) - {"keep"}:
        ck.fail("[mission_specific] takes keep = [\"KEY\", ...]", "mission_specific")
    keep = ck.strings(ms.get("keep", []), "[mission_specific] keep", "keep")

    tm = data.get("time", {})
    if not isinstance(tm, dict) or set(tm) - {"two_digit_year_base", "default_scale", "end_from_exposure"}:
        ck.fail("[time] takes two_digit_year_base, default_scale and end_from_exposure", "time")
    end_from_exposure = tm.get("end_from_exposure", False)
    if not isinstance(end_from_exposure, bool):
        ck.fail(f"[time] end_from_exposure must be true or false, not {end_from_exposure!r}", "end_from_exposure")
    base = tm.get("two_digit_year_base", 1900)
    if isinstance(base, bool) or not isinstance(base, int) or base % 100 or not 1800 <= base <= 2100:
        ck.fail(f"[time] two_digit_year_base must be 1900 or 2000, not {base!r}", "two_digit_year_base")
    scale = tm.get("default_scale")
    if scale is not None:
        from cosmoscope.extract.timeparse import _SCALES

        if not isinstance(scale, str) or scale.upper() not in _SCALES:
            ck.fail(f"[time] default_scale must be one of {', '.join(sorted(_SCALES))}, not {scale!r}",
                    "default_scale")

    return Profile(name=name, description=str(head.get("description", "")), source=source,
                   two_digit_year_base=base, default_scale=scale, end_from_exposure=end_from_exposure,
                   applies_to=applies_to, priority=priority, formats=formats,
                   templates=tuple(templates), keywords=keywords, defaults=defaults,
                   value_maps=value_maps, sidecars=sidecars, lineage=tuple(lineage), keep=keep)


def load_profile(path: str | os.PathLike) -> Profile:
    """Read and validate one profile file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"profile {p}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ProfileError(f"profile {p}: is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            where = f", line {m.group(1)}, column {m.group(2)}"
        elif "end of document" in msg:
            where = f", line {text.count(chr(10)) + 1} (the end of the file)"
        else:
            where = ""
        what = re.sub(r" ?[(]at (line|end of document).*[)]", "", msg)
        raise ProfileError(f"profile {p}{where}: invalid TOML: {what}") from None
    return _build(data, str(p), text)


# --------------------------------------------------------------------------------------------
# Sets


class ProfileSet:
    """Profiles by name, with :meth:`match` choosing the one for a path."""

    def __init__(self, profiles: Iterable[Profile] = ()):
        self._by_name: dict[str, Profile] = {}
        for p in profiles:
            self._by_name[p.name] = p  # later ones replace earlier ones of the same name

    def __repr__(self) -> str:
        return f"ProfileSet({', '.join(self.names)})"

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Profile:
        try:
            return self._by_name[name]
        except KeyError:
            from cosmoscope.errors import UnknownNameError

            raise UnknownNameError("profile", name, self.names) from None

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def resolve(self, name_or_path: str | os.PathLike | Profile) -> Profile:
        """A profile given by name, by path of a TOML file, or itself."""
        if isinstance(name_or_path, Profile):
            return name_or_path
        s = os.fspath(name_or_path)
        if s in self._by_name:
            return self._by_name[s]
        if s.endswith(".toml") or os.sep in s or os.path.exists(s):
            return load_profile(s)
        return self[s]

    def candidates(self, path: str, fmt: str | None = None) -> list[Profile]:
        return [p for p in self._by_name.values() if p.applies(path, fmt)]

    def match(self, path: str | os.PathLike, fmt: str | None = None) -> Profile | None:
        """The profile for ``path``: highest priority wins; a tie raises
        :class:`AmbiguousProfileError`; None when no profile applies."""
        found = self.candidates(os.fspath(path), fmt)
        if not found:
            return None
        top = max(p.priority for p in found)
        best = [p for p in found if p.priority == top]
        if len(best) > 1:
            names = " and ".join(f"{p.name!r} ({p.source})" for p in best)
            raise AmbiguousProfileError(
                f"profiles {names} both apply to {os.fspath(path)} with priority {top}; give one a "
                "higher priority or choose one with --profile")
        return best[0]


def _expand(entry: str | os.PathLike) -> list[Path]:
    p = Path(entry).expanduser()
    if p.is_dir():
        return sorted(p.glob("*.toml"))
    if p.exists():
        return [p]
    raise ProfileError(f"profile path {p} does not exist")


@functools.lru_cache(maxsize=8)
def _shipped() -> tuple[Profile, ...]:
    return tuple(load_profile(p) for p in sorted(SHIPPED_DIR.glob("*.toml")))


def load_profiles(extra: Any = None) -> ProfileSet:
    """Shipped profiles, then those in ``COSMOSCOPE_PROFILES``, then ``extra``.

    ``extra`` may be a path (file or directory), a :class:`Profile`, or a list of either.
    """
    profiles: list[Profile] = list(_shipped())
    env = os.environ.get(ENV_VAR, "")
    for entry in filter(None, env.split(os.pathsep)):
        profiles.extend(load_profile(p) for p in _expand(entry))
    if extra is not None:
        items = extra if isinstance(extra, (list, tuple)) else [extra]
        for item in items:
            if isinstance(item, Profile):
                profiles.append(item)
            else:
                profiles.extend(load_profile(p) for p in _expand(item))
    return ProfileSet(profiles)


@functools.lru_cache(maxsize=4)
def default_profiles(env_value: str | None = None) -> ProfileSet:
    """The cached default set (shipped + environment) used when no profiles are passed."""
    return load_profiles()
