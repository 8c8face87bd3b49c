"""The generic rules of field mapping: which keywords mean which catalog field, in what order.

These tables are what cosmoscope knows without a mission profile; a profile's ``[keywords]``
are tried before them. :class:`Plan` merges the two once per profile, with the normalised
spellings of every key, so that mapping a file costs set operations rather than loops.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from cosmoscope.extract.base import CALIBRATION_STATUSES, DATAPRODUCT_TYPES
from cosmoscope.extract.profiles import LineageRule, Profile

STRING_FIELDS = ("mission_id", "satellite_name", "instrument_type", "target_object", "version")

GENERIC_KEYS: dict[str, tuple[str, ...]] = {
    "satellite_name": ("TELESCOP", "OBSERVAT", "platform_long_name", "platform", "platform_ID",
                       "mission_name", "spacecraft", "satellite", "satid", "SatelliteName"),
    "mission_id": ("MISSION", "mission", "project"),
    "instrument_type": ("INSTRUME", "instrument", "sensor", "instrument_name", "instrument_type",
                        "InstrumentName", "sensorid", "altimeter_sensor_name", "sensor_name"),
    "target_object": ("OBJECT", "TARGNAME", "target_name", "TARGET", "OBJNAME"),
    "version": ("product_version", "PRODVER", "VERSION", "VersionID", "DATAVERS"),
    "exposure_time": ("XPOSURE", "EXPTIME", "EXPOSURE", "ONTIME", "exposure_time"),
    "processing_level": ("processing_level", "ProcessingLevel", "PROCLEVL", "PROC_LEVEL", "LEVEL"),
    "calib_level": ("CALIB_LEVEL", "CALIBLEV"),
    "calibration_status": ("CALIBRATION_STATUS", "CALSTAT"),
    "dataproduct_type": ("DATAPRODUCT_TYPE", "DPTYPE"),
}
#: Extra names that count only in CSV columns (too generic for headers).
COLUMN_KEYS: dict[str, tuple[str, ...]] = {"target_object": ("NAME", "target")}

START_RULES = (("key", "DATE-BEG"), ("pair", "DATE-OBS", "TIME-OBS"), ("pair", "DATE_OBS", "TIME_OBS"),
               ("mjd", "MJD-OBS"), ("mjd", "MJD_OBS"), ("met", "TSTART"), ("key", "time_coverage_start"),
               ("key", "OBS_START"), ("pair", "start_date", "start_time"),
               ("key", "RangeBeginningDateTime"), ("pair", "RangeBeginningDate", "RangeBeginningTime"),
               ("key", "StartGranuleDateTime"), ("key", "first_meas_time"),
               ("key", "first_measurement_time"), ("key", "start_sensing_data_time"),
               ("key", "begin_time"), ("key", "time_start"))
END_RULES = (("pair", "DATE-END", "TIME-END"), ("mjd", "MJD-END"), ("met", "TSTOP"),
             ("key", "time_coverage_end"), ("key", "OBS_END"), ("pair", "stop_date", "stop_time"),
             ("pair", "end_date", "end_time"), ("key", "RangeEndingDateTime"),
             ("pair", "RangeEndingDate", "RangeEndingTime"), ("key", "StopGranuleDateTime"),
             ("key", "last_meas_time"), ("key", "last_measurement_time"),
             ("key", "end_sensing_data_time"), ("key", "time_end"))
POSITION_PAIRS = (("RA_TARG", "DEC_TARG"), ("RA_OBJ", "DEC_OBJ"), ("RA_PNT", "DEC_PNT"),
                  ("RA_NOM", "DEC_NOM"), ("CRVAL1", "CRVAL2"), ("RA", "DEC"), ("OBJCTRA", "OBJCTDEC"))
#: Kept in mission_specific when present (first value found).
KEEP = ("OBS_ID", "OBSID", "DETNAM", "OBS_MODE", "DATAMODE", "FILTER", "GRATING", "EXP_TYPE",
        "PROGRAM", "SEQ_NUM", "ORIGIN", "CALDBVER", "title", "institution", "ShortName",
        "product_name", "product_type", "orbit_number", "cycle_number", "pass_number",
        "Conventions", "featureType", "cdm_data_type")
GENERIC_LINEAGE = (LineageRule(keys=("PARENT", "PARENT[0-9]*", "IMCMB[0-9]*", "parent_granule_name"),
                               relationship="auto", split=","),)
#: Normalised processing level -> ObsCore calib_level (raw 1, calibrated 2, derived 3, analysis 4).
LEVEL_CALIB = {"L0": 1, "L1A": 1, "L1": 2, "L1B": 2, "L1C": 2, "L2": 3, "L3": 3, "L4": 4}
#: File-name tokens that say how processed a product is (used only when nothing else does).
TOKEN_CALIB = {"raw": 1, "uncal": 1, "evt1": 1, "l0": 1, "l1a": 1, "evt2": 2, "cal": 2, "calib": 2,
               "calibrated": 2, "l1b": 2, "reduced": 2, "evt3": 3, "l2": 3, "l3": 3, "i2d": 3, "x1d": 3}
FEATURE_TYPES = {"image": "image", "grid": "image", "swath": "image", "timeseries": "timeseries",
                 "station": "timeseries", "point": "measurements", "trajectory": "measurements",
                 "profile": "measurements"}
QUALIFIED = ("[", "/", "@", "#", "column:", "meta:")
VOCABULARY = {"calibration_status": CALIBRATION_STATUSES, "dataproduct_type": DATAPRODUCT_TYPES}
_LEVEL_FULL = re.compile(r"(?:L|LEVEL[\s_-]*)?0*(\d)([A-Za-z]?)\w*", re.I)
_LEVEL_SEARCH = re.compile(r"\b(?:L|Level\s*)(\d)([A-Za-z]?)\b", re.I)
TOKEN_SPLIT_RE = re.compile(r"[_\-.]+")
CLOCK_RE = re.compile(r"\d[T_]\d")
DATE_RE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{8}T|/\d{2}/")
SEPARATORS_RE = re.compile(r"[\s_\-]+")
VERSION_RE = re.compile(r"v?\d+")
FORMAT_PREFIXES = ("FITS", "HDF5:", "netCDF:", "CSV:", "ECSV:")


def normalise_level(value: Any) -> str | None:
    """``'L1B'``, ``'1b'``, ``'02'``, ``'NASA L2'`` → ``'L1B'``, ``'L1B'``, ``'L2'``, ``'L2'``.

    >>> normalise_level("National Aeronautics and Space Administration (NASA) L2")
    'L2'
    """
    s = str(value).strip()
    m = _LEVEL_FULL.fullmatch(s)
    if not m:
        m = _LEVEL_SEARCH.search(s)
    if not m:
        return None
    return f"L{m.group(1)}{m.group(2).upper()}"


def calib_from_level(level: str) -> int | None:
    return LEVEL_CALIB.get(level, LEVEL_CALIB.get(level[:2]))


class Plan:
    """Key lists of one profile (or none), with their normalised spellings, computed once."""

    def __init__(self, profile: Profile | None):
        kw = profile.keywords if profile else {}
        fields = set(GENERIC_KEYS) | set(kw)
        self.keys = {f: tuple(kw.get(f, ())) + GENERIC_KEYS.get(f, ()) for f in fields}
        self.norms = {f: norm_set(k) for f, k in self.keys.items()}
        self.time_rules = {}
        for field, rules in (("observation_timestamp", START_RULES), ("observation_end", END_RULES)):
            extra = tuple(("key", k) for k in kw.get(field, ()))
            self.time_rules[field] = [(r, norm_set(r[1:])) for r in extra + rules]
        pairs = list(zip(kw.get("ra", ()), kw.get("dec", ()))) + list(POSITION_PAIRS)
        self.pairs = [(rk, dk, norm_set((rk,))) for rk, dk in pairs]
        keep = KEEP + (profile.keep if profile else ())
        self.keep = [(k, norm_set((k,))) for k in keep]
        self.keep_norms = norm_set(keep)
        self.keep_qualified = [k for k, n in self.keep if n[1]]
        self.keep_by_norm: dict[str, list[str]] = {}
        for k, (norms, qualified) in self.keep:
            for n in norms:
                self.keep_by_norm.setdefault(n, []).append(k)
        self.lineage = profile.lineage if profile and profile.lineage else GENERIC_LINEAGE
        # Every key the mapper may look up by name: only these are indexed per file (a header of
        # 300 cards has a dozen of them), anything else is looked up source by source.
        looked_up: list[str] = [k for keys in self.keys.values() for k in keys]
        looked_up += [k for rules in self.time_rules.values() for r, _ in rules for k in r[1:]]
        looked_up += [k for rk, dk, _ in self.pairs for k in (rk, dk)] + list(keep)
        looked_up += [k for rule in self.lineage for k in rule.keys if not any(c in k for c in "*?[")]
        looked_up += list(profile.value_maps) if profile else []
        looked_up += ["featureType", "cdm_data_type"]
        self.known = norm_set(tuple(looked_up))[0]


@functools.lru_cache(maxsize=64)
def plan_for(profile: Profile | None) -> Plan:
    return Plan(profile)


KEY_SPECS: dict[str, tuple[str | None, str, bool, str, str]] = {}


@functools.lru_cache(maxsize=2048)
def norm_set(keys: tuple[str, ...]) -> tuple[frozenset, bool]:
    """Every normalised spelling of ``keys``, and whether any is qualified by a scope."""
    norms: set[str] = set()
    qualified = False
    for k in keys:
        spec = KEY_SPECS.get(k) or key_spec(k)
        qualified = qualified or spec[2]
        norms.add(spec[3])
        norms.add(spec[4])
    return frozenset(norms), qualified


def key_spec(key: str) -> tuple[str | None, str, bool, str, str]:
    """Split a profile key: (format prefix or None, key, qualified by scope?, upper, lower)."""
    k, fmt = key, None
    for fp in FORMAT_PREFIXES:
        if k.startswith(fp):
            fmt, k = fp, k[len(fp):]
            break
    upper = k.upper()
    if upper.startswith("HIERARCH "):
        upper = upper[9:]
    spec = (fmt, k, k.startswith(QUALIFIED), upper, k.lower())
    if len(KEY_SPECS) < 100_000:
        KEY_SPECS[key] = spec
    return spec


@functools.lru_cache(maxsize=512)
def glob_lines(key: str, upper: bool) -> re.Pattern:
    """A glob (``PARENT*``, ``IMCMB[0-9]*``) as a regex matching whole lines of joined keys."""
    pat = key.upper() if upper else key.lower()
    out, i = [], 0
    while i < len(pat):
        c = pat[i]
        if c == "*":
            out.append("[^\n]*")
        elif c == "?":
            out.append("[^\n]")
        elif c == "[" and "]" in pat[i + 1:]:
            j = pat.index("]", i + 1)
            body = pat[i + 1:j]
            out.append("[^" + body[1:] + "\n]" if body.startswith("!") else "[" + body + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.M)


def natural_key(name: str) -> tuple:
    """Sort key that puts PARENT2 before PARENT10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
