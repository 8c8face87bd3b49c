"""Field mapping: ordered fallbacks per catalog field, with where each value came from.

For every field a list of rules is tried in order (a profile's keywords first, then the
generic ones below); each rule is tried on every source in file order (FITS HDU 0, 1, ...;
HDF5 root then groups; sidecars last) and the first value wins. ``field_sources`` records the
label of what supplied it. Then, for fields still empty: values the extractor settled itself
(CSV time columns, netCDF time coordinates), the profile's path template, the profile's
defaults, and generic fallbacks (mission from the satellite). Value maps of the profile are
applied last and override. Calibration level, calibration status and product type are
inferred from processing levels, HDU structure and file-name tokens when nothing says them.
Disagreements between the path and the header are recorded, not hidden.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from cosmoscope.extract import timeparse as tp
from cosmoscope.extract.base import Metadata, Source, clean, jsonable
from cosmoscope.extract.coords import CoordinateError, frame_of, parse_angle, to_icrs
from cosmoscope.extract.profiles import Profile
from cosmoscope.extract.rules import (CLOCK_RE, COLUMN_KEYS, DATE_RE, FEATURE_TYPES, GENERIC_KEYS, KEY_SPECS,
                                      SEPARATORS_RE, STRING_FIELDS, TOKEN_CALIB, TOKEN_SPLIT_RE, VERSION_RE,
                                      VOCABULARY, calib_from_level, glob_lines, key_spec, natural_key,
                                      norm_set, normalise_level, plan_for)

class _Mapper:
    def __init__(self, meta: Metadata, path: str, profile: Profile | None, pmatch, sidecars: list[Source]):
        self.meta, self.path, self.profile, self.pmatch = meta, path, profile, pmatch
        self.plan = plan_for(profile)
        self.sources = list(meta.sources) + list(sidecars)
        self.primary = self.sources[0] if self.sources and self.sources[0].prefix == "FITS" else None
        self.century = profile.two_digit_year_base if profile else 1900
        self.default_scale = profile.default_scale if profile else None
        self.values: dict[str, Any] = {}
        self.labels: dict[str, str] = {}
        self.ms: dict[str, Any] = {}
        self.problems: dict[str, list] = {"time_unparseable": [], "coords": [], "exposure": [],
                                          "conflicts": [], "path": []}
        # Which sources hold a key, by normalised key, for the keys the plan may look up: most
        # of the ~300 keys tried per file are in no source, and a dict miss tells that fastest.
        self._order = {id(src): i for i, src in enumerate(self.sources)}
        self._plain = [src for src in self.sources if src.kind != "column"]
        self._key_texts: dict[int, str] = {}
        known = self.plan.known
        self._known = known
        self._where: dict[str, list[Source]] = {}
        for src in self._plain:
            for norm in known.intersection(src.index):
                self._where.setdefault(norm, []).append(src)

    # -- lookups ------------------------------------------------------------------------------

    def _lookup(self, src: Source, key: str) -> tuple[Any, str] | None:
        fmt, k, qualified, ku, kl = KEY_SPECS.get(key) or key_spec(key)
        if fmt is not None and fmt != src.prefix:
            return None
        if qualified:
            if not src.scope or not k.startswith(src.scope) or len(k) == len(src.scope):
                return None
            return src.get(k[len(src.scope):])
        if src.kind == "column":
            return None  # columns answer only COLUMN_KEYS or explicitly qualified keys
        return src.get_norm(ku if src.upper else kl)

    def _holders(self, norm: str):
        """Sources whose keys include ``norm`` (indexed, or found by looking)."""
        if norm in self._known:
            return self._where.get(norm)
        return [src for src in self._plain if norm in src.index] or None

    def _absent(self, norms: tuple[frozenset, bool]) -> bool:
        """True when no source can hold any of these normalised keys."""
        names, qualified = norms
        if qualified or not self._where.keys().isdisjoint(names):
            return False
        extra = names - self._known
        return not extra or all(src.index.keys().isdisjoint(extra) for src in self._plain)

    def candidates(self, *keys: str) -> list[Source]:
        """Sources that may hold any of ``keys`` (qualified keys: every source), in file order."""
        holders = self._holders
        if len(keys) == 1:
            spec = KEY_SPECS.get(keys[0]) or key_spec(keys[0])
            if spec[2]:
                return self.sources
            a = holders(spec[3])
            b = holders(spec[4]) if spec[4] != spec[3] else None
            if b is None:
                return a or ()
            if a is None:
                return b
            found = a + b
        else:
            found = []
            for key in keys:
                spec = KEY_SPECS.get(key) or key_spec(key)
                if spec[2]:
                    return self.sources
                found += holders(spec[3]) or ()
                if spec[4] != spec[3]:
                    found += holders(spec[4]) or ()
            if len(found) < 2:
                return found
        return sorted(set(found), key=lambda src: self._order[id(src)])

    def find(self, keys, *, field: str | None = None, root_only: bool = False, norms=None):
        holders = self._holders
        if norms is None:
            norms = norm_set(tuple(keys))
        for key in (() if self._absent(norms) else keys):
            spec = KEY_SPECS.get(key) or key_spec(key)
            if spec[2]:
                srcs = self.sources
            else:
                srcs = holders(spec[3])
                if spec[4] != spec[3]:
                    lower = holders(spec[4])
                    if lower:
                        srcs = self.candidates(key) if srcs else lower
                if not srcs:
                    continue
            for src in srcs:
                if root_only and src.info.get("path", "/") != "/":
                    continue
                got = self._lookup(src, key)
                if got is not None:
                    return got[0], got[1], src
        if field in COLUMN_KEYS or field in GENERIC_KEYS:
            for src in self.sources:
                if src.kind != "column":
                    continue
                for key in COLUMN_KEYS.get(field, ()) + GENERIC_KEYS.get(field, ()):
                    got = src.get(key)
                    if got is not None:
                        return got[0], got[1], src
        return None

    def keys_for(self, field: str) -> tuple[str, ...]:
        return self.plan.keys.get(field, ())

    def find_field(self, field: str, **kw):
        return self.find(self.plan.keys.get(field, ()), field=field, norms=self.plan.norms.get(field), **kw)

    def set(self, field: str, value: Any, label: str) -> None:
        self.values[field] = value
        self.labels[field] = label

    # -- fields -------------------------------------------------------------------------------

    def strings(self) -> None:
        for f in STRING_FIELDS:
            got = self.find_field(f, root_only=(f == "version"))
            if got is not None:
                value = got[0]
                if isinstance(value, list):
                    value = ", ".join(str(v) for v in value)
                self.set(f, str(value).strip(), got[1])

    def scale_of(self, src: Source) -> str:
        ts = clean(src.raw("TIMESYS"))
        if ts is None and self.primary is not None and src.prefix == "FITS":
            ts = clean(self.primary.raw("TIMESYS"))
        return tp.normalise_scale(ts if ts is not None else self.default_scale)

    def _time_value(self, value: Any, key: str, src: Source) -> datetime:
        if isinstance(value, datetime):
            return tp.to_utc(value, "utc")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self._mjdref(src) is not None and "MJD" not in key.upper():
                return self._met(value, src)
            if "MJD" in key.upper():
                return tp.from_mjd(value, self.scale_of(src))
            raise tp.TimeParseError(f"{key} = {value} is a number, not a date")
        return tp.parse_any(str(value), self.scale_of(src), century=self.century)

    def _mjdref(self, src: Source) -> float | None:
        ref = clean(src.raw("MJDREF"))
        if isinstance(ref, (int, float)) and not isinstance(ref, bool):
            return float(ref)
        refi = clean(src.raw("MJDREFI"))
        if isinstance(refi, (int, float)) and not isinstance(refi, bool):
            reff = clean(src.raw("MJDREFF"))
            return float(refi) + (float(reff) if isinstance(reff, (int, float)) else 0.0)
        return None

    def _met(self, value: Any, src: Source) -> datetime:
        ref = self._mjdref(src)
        tz = clean(src.raw("TIMEZERO"))
        unit = clean(src.raw("TIMEUNIT"))
        return tp.from_met(float(value), ref, unit=str(unit or "s"), scale=self.scale_of(src),
                           timezero=float(tz) if isinstance(tz, (int, float)) else 0.0)

    def _rule(self, rule: tuple, src: Source) -> tuple[datetime, str] | None:
        kind = rule[0]
        if kind == "pair":
            dkey, tkey = rule[1], rule[2]
            d = self._lookup(src, dkey)
            t = self._lookup(src, tkey)
            if d is not None:
                text = str(d[0])
                tod = None if (_has_clock(text) or t is None) else tp.parse_time_of_day(str(t[0]))
                if tod is None:
                    return self._time_value(d[0], dkey, src), d[1]
                got = tp.parse_string(text, century=self.century)
                if got is None:
                    raise tp.TimeParseError(f"{text!r} is not a date cosmoscope can read")
                naive, marked_utc = got
                when = tp.to_utc(naive + tod, "utc" if marked_utc else self.scale_of(src))
                return when, f"{d[1]}+{t[1][len(src.prefix) + len(src.scope):]}"
            if t is not None and _has_date(str(t[0])):
                return self._time_value(t[0], tkey, src), t[1]
            return None
        key = rule[1]
        got = self._lookup(src, key)
        if got is None:
            return None
        if kind == "mjd":
            return tp.from_mjd(float(got[0]), self.scale_of(src)), got[1]
        if kind == "met":
            if self._mjdref(src) is None or isinstance(got[0], str):
                return None
            ref_key = "MJDREF" if src.real_key("MJDREF") else "MJDREFI"
            return self._met(got[0], src), f"{got[1]}+{ref_key}"
        return self._time_value(got[0], key, src), got[1]

    def times(self) -> None:
        for field in ("observation_timestamp", "observation_end"):
            done = False
            for rule, norms in self.plan.time_rules[field]:
                if self._absent(norms):
                    continue
                for src in self.candidates(*rule[1:]):
                    if src.kind == "column":
                        continue
                    try:
                        got = self._rule(rule, src)
                    except (tp.TimeParseError, ValueError, OverflowError, TypeError) as exc:
                        self.problems["time_unparseable"].append((field, _rule_label(rule, src), str(exc)))
                        continue
                    if got is not None:
                        self.set(field, got[0], got[1])
                        done = True
                        break
                if done:
                    break

    def exposure(self) -> None:
        keys = self.keys_for("exposure_time")
        for key in (() if self._absent(self.plan.norms["exposure_time"]) else keys):
            for src in self.candidates(key):
                got = self._lookup(src, key)
                if got is None:
                    continue
                try:
                    value = float(got[0])
                except (TypeError, ValueError):
                    value = tp.parse_duration(got[0]) if isinstance(got[0], str) else None
                    if value is None:
                        self.problems["exposure"].append(f"{got[1]} = {got[0]!r} is not a number")
                        continue
                self.set("exposure_time", value, got[1])
                return

    def position(self) -> None:
        for rk, dk, norms in self.plan.pairs:
            if self._absent(norms):
                continue
            for src in self.candidates(rk):
                r, d = self._lookup(src, rk), self._lookup(src, dk)
                if r is None or d is None:
                    continue
                swap = False
                if rk == "CRVAL1":
                    c1, c2 = str(clean(src.raw("CTYPE1")) or ""), str(clean(src.raw("CTYPE2")) or "")
                    if c1.startswith("DEC-") and c2.startswith("RA--"):
                        swap = True
                    elif not (c1.startswith("RA--") and c2.startswith("DEC-")):
                        continue
                if swap:
                    r, d = d, r
                try:
                    sexagesimal = isinstance(r[0], str) and (":" in r[0] or " " in r[0].strip())
                    ra = parse_angle(r[0], hours=sexagesimal)
                    dec = parse_angle(d[0])
                except CoordinateError as exc:
                    self.problems["coords"].append(f"unparseable: {exc}")
                    continue
                radesys = src.raw("RADESYS") or src.raw("RADECSYS")
                equinox = src.raw("EQUINOX") or src.raw("EPOCH")
                if radesys is None and equinox is None and self.primary is not None:
                    radesys = self.primary.raw("RADESYS") or self.primary.raw("RADECSYS")
                    equinox = self.primary.raw("EQUINOX")
                if not (-90.0 <= dec <= 90.0) or not (-360.0 <= ra <= 720.0):
                    self.problems["coords"].append(f"out of range: {r[1]} = {r[0]}, {d[1]} = {d[0]}")
                    return
                frame, eq = frame_of(clean(radesys), clean(equinox))
                try:
                    ra, dec = to_icrs(ra % 360.0, dec, frame, eq)
                except (CoordinateError, ValueError) as exc:
                    self.problems["coords"].append(f"unparseable: {exc}")
                    continue
                label_r, label_d = r[1], d[1]
                if frame != "icrs":
                    label_r += f" ({frame.upper()}->ICRS)"
                    label_d += f" ({frame.upper()}->ICRS)"
                self.set("ra", ra, label_r)
                self.set("dec", dec, label_d)
                return

    def footprint(self) -> None:
        """``s_region`` and ``s_fov`` from the extractor's footprint (a FITS image's WCS); its
        centre is the position when no keyword gave one, or when the only one was the WCS
        reference point (CRVAL) and that lies outside the image (a reference pixel far off it, as
        in many radio cubes: CRVAL2 = 0 for a field at +30°)."""
        if "s_region" in self.values or "s_fov" in self.values:
            return
        hint = self.meta.hints.get("footprint")
        found = hint() if callable(hint) else hint
        if not found:
            return
        label = found["label"]
        if found.get("s_region"):
            self.set("s_region", found["s_region"], label)
        self.set("s_fov", found["s_fov"], label)
        off_image = False
        if "CRVAL" in str(self.labels.get("ra", "")) and "dec" in self.values:
            from cosmoscope.sky.geometry import separation

            off_image = float(separation(self.values["ra"], self.values["dec"], found["ra"], found["dec"])) \
                > found["s_fov"] / 2
        if off_image or ("ra" not in self.values and "dec" not in self.values):
            self.set("ra", found["ra"], label + ":centre")
            self.set("dec", found["dec"], label + ":centre")

    def level(self) -> None:
        got = self.find_field("processing_level")
        if got is not None:
            level = normalise_level(got[0])
            self.ms["processing_level"] = level or str(got[0])
            self.labels["processing_level"] = got[1]

    # -- path template ------------------------------------------------------------------------

    def path_values(self) -> None:
        if self.profile is None:
            return
        if self.pmatch is None:
            if self.profile.templates:
                self.problems["path"].append(
                    f"the path does not fit any template of profile {self.profile.name!r}")
            return
        template, values = self.pmatch
        self.ms["path_template"] = template.text
        day_parts = {}
        for name, value in values.items():
            f = _placeholder_field(name)
            label = f"path:{{{name}}}"
            if f in STRING_FIELDS:
                if f not in self.values:
                    self.set(f, value, label)
                elif _norm(self.values[f]) != _norm(value):
                    self.conflict(f, value, self.values[f])
            elif f in ("observation_timestamp", "observation_end"):
                if f not in self.values:
                    self.set(f, value, label)
                else:
                    tol = max(template.resolution(name), 1.0)
                    if abs((self.values[f] - value).total_seconds()) > tol + 1.0:
                        self.conflict(f, value, self.values[f], time=True)
            elif f == "processing_level":
                self.ms.setdefault("level", value)
                if "processing_level" not in self.ms:
                    self.ms["processing_level"] = normalise_level(value) or value
                    self.labels["processing_level"] = label
            elif name in ("date", "year", "yyyy", "month", "mm", "day", "dd", "doy"):
                day_parts[name] = value
            elif name not in ("ext", "suffix"):
                key = name if name not in self.ms else f"path_{name}"
                self.ms[key] = value
        if day_parts:
            self._path_date(day_parts)

    def _path_date(self, parts: dict[str, Any]) -> None:
        try:
            if "date" in parts and isinstance(parts["date"], datetime):
                day = parts["date"].date()
            else:
                year = int(parts.get("year") or parts.get("yyyy"))
                if "doy" in parts:
                    day = (datetime(year, 1, 1) + timedelta(days=int(parts["doy"]) - 1)).date()
                else:
                    day = datetime(year, int(parts.get("month") or parts.get("mm")),
                                   int(parts.get("day") or parts.get("dd"))).date()
        except (TypeError, ValueError):
            return  # not enough parts for a day, or an impossible one
        label = "path:" + "/".join(f"{{{k}}}" for k in parts)
        start = self.values.get("observation_timestamp")
        if start is None:
            from datetime import UTC

            self.set("observation_timestamp", datetime(day.year, day.month, day.day, tzinfo=UTC), label)
            return
        # TT/UTC differences move times by about a minute: accept either side of midnight.
        slack = timedelta(minutes=2)
        if day not in ((start - slack).date(), (start + slack).date()):
            self.conflict("observation_timestamp", day.isoformat(), start, time=True)

    def conflict(self, field: str, path_value: Any, header_value: Any, *, time: bool = False) -> None:
        self.problems["conflicts"].append({
            "field": field, "path": _show(path_value), "header": _show(header_value),
            "source": self.labels.get(field, "")})

    # -- profile defaults, fallbacks, value maps ------------------------------------------------

    def defaults(self) -> None:
        if self.profile is None:
            return
        for f, v in self.profile.defaults.items():
            if f == "processing_level":
                if "processing_level" not in self.ms:
                    self.ms["processing_level"] = normalise_level(v) or v
                    self.labels["processing_level"] = f"profile:{self.profile.name}:default"
            elif f not in self.values:
                self.set(f, v, f"profile:{self.profile.name}:default")

    def explicit(self) -> None:
        """Calibration level, status and product type written in the file itself."""
        for f in ("calib_level", "calibration_status", "dataproduct_type"):
            got = self.find_field(f)
            if got is None:
                continue
            value = got[0]
            if f == "calib_level":
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    continue
                if not 0 <= value <= 4:
                    continue
            else:
                value = str(value).strip().lower()
                if value not in VOCABULARY[f]:
                    continue
            self.set(f, value, got[1])

    def fallbacks(self) -> None:
        if "mission_id" not in self.values and "satellite_name" in self.values:
            self.set("mission_id", self.values["satellite_name"], self.labels["satellite_name"])
        v = self.values
        if (self.profile is not None and self.profile.end_from_exposure and "observation_end" not in v
                and "observation_timestamp" in v and v.get("exposure_time") is not None
                and 0 <= v["exposure_time"] < 1e9):
            self.set("observation_end", v["observation_timestamp"] + timedelta(seconds=v["exposure_time"]),
                     f"inferred:{self.labels['observation_timestamp']}+{self.labels['exposure_time']}")

    def value_maps(self) -> None:
        if self.profile is None or not self.profile.value_maps:
            return
        placeholders = self.pmatch[1] if self.pmatch else {}
        for key, table in self.profile.value_maps.items():
            value = None
            if key in placeholders:
                value = placeholders[key]
            elif key in self.values:
                value = self.values[key]
            elif key in self.ms:
                value = self.ms[key]
            else:
                got = self.find((key,))
                value = got[0] if got else None
            if value is None or isinstance(value, datetime):
                continue
            mapped = table.get(str(value).strip().lower())
            if mapped is None:
                continue
            for f, v in mapped.items():
                label = f"profile:{self.profile.name}:value_maps.{key}"
                if f == "processing_level":
                    self.ms["processing_level"] = normalise_level(v) or v
                    self.labels["processing_level"] = label
                else:
                    self.set(f, v, label)

    def infer(self) -> None:
        level = self.ms.get("processing_level")
        if "calib_level" not in self.values and level:
            c = calib_from_level(str(level))
            if c is not None:
                self.set("calib_level", c, f"inferred:processing_level={level}")
        if "calib_level" not in self.values:
            stem = os.path.basename(self.path).lower()
            for token in TOKEN_SPLIT_RE.split(stem):
                if token in TOKEN_CALIB:
                    self.set("calib_level", TOKEN_CALIB[token], f"path:token:{token}")
                    break
        if "calibration_status" not in self.values and "calib_level" in self.values:
            c = self.values["calib_level"]
            self.set("calibration_status", "calibrated" if c >= 2 else "uncalibrated",
                     f"inferred:calib_level={c}")
        if "dataproduct_type" not in self.values:
            hint = self.meta.hints.get("dataproduct_type")
            if callable(hint):  # computed only when needed
                hint = hint()
            if hint:
                self.set("dataproduct_type", hint[0], hint[1])
            else:
                got = self.find(("featureType", "cdm_data_type"))
                if got is not None:
                    kind = FEATURE_TYPES.get(str(got[0]).strip().lower().replace("_", ""))
                    if kind:
                        self.set("dataproduct_type", kind, got[1])

    # -- lineage, kept keys ---------------------------------------------------------------------

    def parents(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        seen: set[str] = set()
        calib = self.values.get("calib_level")
        for rule in self.plan.lineage:
            rel = rule.relationship_for(calib)
            for key in rule.keys:
                for value in self._key_values(key):
                    items = value if isinstance(value, list) else [value]
                    for item in items:
                        parts = str(item).split(rule.split) if rule.split else [str(item)]
                        for name in (p.strip() for p in parts):
                            if name and clean(name) is not None and name not in seen:
                                seen.add(name)
                                out.append({"name": name, "relationship": rel})
        return out

    def _key_values(self, key: str) -> list[Any]:
        """Values of ``key`` in every source, in file order; ``key`` may be a glob (PARENT*)."""
        if not any(c in key for c in "*?["):
            if self._absent(norm_set((key,))):
                return []
            out = []
            for src in self.candidates(key):
                got = self._lookup(src, key)
                if got is not None:
                    out.append(got[0])
            return out
        out = []
        for src in self._plain:
            # one regex search over the keys joined by newlines, rather than a test per key
            text = self._key_texts.get(id(src))
            if text is None:
                text = self._key_texts[id(src)] = "\n".join(src.index)
            names = glob_lines(key, src.upper).findall(text)
            for n in sorted(names, key=natural_key):
                got = src.get_norm(n)
                if got is not None:
                    out.append(got[0])
        return out

    def keep(self) -> None:
        plan, where = self.plan, self._where
        for norm in where.keys() & plan.keep_by_norm.keys():
            for key in plan.keep_by_norm[norm]:
                if key in self.ms:
                    continue
                for src in where[norm]:
                    got = src.get_norm(norm)
                    if got is not None:
                        self.ms[key] = jsonable(got[0])
                        break
        for key in plan.keep_qualified:
            if key not in self.ms:
                got = self.find((key,))
                if got is not None:
                    self.ms[key] = jsonable(got[0])


def _rule_label(rule: tuple, src: Source) -> str:
    return src.label("+".join(rule[1:]))


def _has_clock(text: str) -> bool:
    return ":" in text or bool(CLOCK_RE.search(text))


def _has_date(text: str) -> bool:
    return bool(DATE_RE.search(text))


def _placeholder_field(name: str) -> str | None:
    from cosmoscope.extract.profiles import canonical_field

    return canonical_field(name)


def _norm(value: Any) -> str:
    s = SEPARATORS_RE.sub("", str(value)).lower()
    if VERSION_RE.fullmatch(s):
        return s.lstrip("v").lstrip("0") or "0"
    return s


def _show(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def map_fields(meta: Metadata, path: str, profile: Profile | None, pmatch, sidecars: list[Source]) -> dict:
    """Run every mapping step; return record fields plus internal ``_problems``."""
    m = _Mapper(meta, path, profile, pmatch, sidecars)
    m.strings()
    m.times()
    m.exposure()
    m.position()
    m.footprint()
    m.level()
    m.explicit()
    for f, (value, label) in meta.fields.items():
        if f not in m.values and value is not None:
            m.set(f, value, label)
    m.path_values()
    m.defaults()
    m.fallbacks()
    m.value_maps()
    m.infer()
    m.keep()
    parents = m.parents()
    rec: dict[str, Any] = dict(m.values)
    if m.problems["conflicts"]:
        m.ms["conflicts"] = m.problems["conflicts"]
    if profile is not None:
        m.ms["profile"] = profile.name
    rec["field_sources"] = dict(m.labels)
    rec["mission_specific"] = m.ms
    rec["_parents"] = parents
    rec["_problems"] = m.problems
    return rec

