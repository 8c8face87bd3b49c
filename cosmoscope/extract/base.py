"""What a format extractor hands back: attribute sets in search order, plus what it saw.

An extractor does not decide which keyword means what. It returns a :class:`Metadata` whose
``sources`` are the attribute sets of the file (FITS HDU headers, HDF5 group attributes, netCDF
global attributes, CSV comment headers, ...) in the order they should be searched, each with
the label prefix that goes into ``field_sources``. :mod:`cosmoscope.extract.mapping` then walks
the ordered fallbacks of every catalog field over them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Text values that mean "no value" in real headers (JWST pools write NULL, Swift DETNAM NONE).
NULL_TOKENS = frozenset({"", "NULL", "NONE", "N/A", "NA", "UNKNOWN", "UNDEFINED", "-", "--", "NAN", "?",
                         "??", "???"})

#: Longest text kept from a single attribute in mission_specific (cells are ~128 KiB at most).
MAX_TEXT = 1000

#: The vocabularies of :mod:`cosmoscope.schema` (``CalibrationStatus``, ``DATAPRODUCT_TYPES``,
#: ``REQUIRED_FIELDS``), repeated here so that extraction does not import pyarrow (an extraction
#: worker process starts sooner without it); a test keeps them equal.
REQUIRED_FIELDS = ("mission_id", "instrument_type", "observation_timestamp")
CALIBRATION_STATUSES = ("uncalibrated", "partial", "calibrated", "unknown")
DATAPRODUCT_TYPES = ("image", "cube", "spectrum", "sed", "timeseries", "visibility", "event", "measurements")


class ExtractionError(Exception):
    """A file could not be read; the message is a sentence a scientist understands."""


def clean(value: Any) -> Any:
    """Turn a raw attribute value into a plain Python value, or None when it says nothing.

    Bytes are decoded, numpy scalars and one-element arrays unwrapped, text stripped, and the
    usual null spellings (``''``, ``NULL``, ``N/A``, NaN) become None.

    >>> clean(b"  XMM ")
    'XMM'
    >>> clean("NULL") is None
    True
    """
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    if isinstance(value, str):
        value = value.strip()
        return None if value.upper() in NULL_TOKENS else value
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    # numpy scalars and arrays, without importing numpy here
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        try:
            value = tolist()
        except Exception:  # noqa: BLE001 - exotic dtypes; fall through to str()
            return clean(str(value))
        if isinstance(value, list):
            flat = [clean(v) for v in _flatten(value)]
            flat = [v for v in flat if v is not None]
            if not flat:
                return None
            return flat[0] if len(flat) == 1 else flat
        return clean(value)
    return clean(str(value))


def _flatten(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of ``value``: long text cut, non-finite floats dropped."""
    if value is None or value is True or value is False or type(value) is int:
        return value
    if type(value) is str:
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in list(value)[:200]]
    if isinstance(value, datetime):
        return value.isoformat()
    value = clean(value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else jsonable(value)


class Source:
    """One attribute set of a file: an HDU header, a group's attributes, a comment header.

    Parameters
    ----------
    prefix : str
        Format label that starts every ``field_sources`` entry, e.g. ``"FITS"``, ``"HDF5:"``.
    scope : str
        Where in the file the set lives, e.g. ``"[1]:"``, ``"/Metadata@header:"``, ``"@"``.
        The label of key ``K`` is ``prefix + scope + K``; a profile may name a key with its
        scope (``"[1]:OBJECT"``, ``"/Metadata@header:OBS_START"``) to look only there.
    attrs : mapping
        Key to value. Anything with ``get`` and ``keys`` will do (FITS headers parse lazily).
    upper : bool
        Keys are upper case (FITS): look keys up upper-cased instead of through a
        case-insensitive index.
    kind : str
        What the set is (``"hdu"``, ``"group"``, ``"packed"``, ``"column"``, ``"sidecar"``...).
    """

    __slots__ = ("prefix", "scope", "attrs", "upper", "kind", "_index", "info")

    def __init__(self, prefix: str, scope: str, attrs: Mapping[str, Any], *, upper: bool = False,
                 kind: str = "", info: dict | None = None):
        self.prefix, self.scope, self.attrs, self.upper, self.kind = prefix, scope, attrs, upper, kind
        self._index: dict[str, str] | None = None
        self.info = info or {}

    def __repr__(self) -> str:
        return f"Source({self.prefix}{self.scope}, {len(list(self.attrs.keys()))} keys)"

    @property
    def index(self) -> dict[str, Any]:
        """Normalised key (upper case for FITS, lower case otherwise) -> key as in the file.

        A FITS header's own keyword index (keyword -> card number) serves as is: its keys are
        already the normalised, as-written keywords.
        """
        if self._index is None:
            own = getattr(self.attrs, "index", None)
            if self.upper and isinstance(own, dict):
                self._index = own
            else:
                idx: dict[str, Any] = {}
                for k in self.attrs.keys():
                    idx.setdefault(k.upper() if self.upper else k.lower(), k)
                self._index = idx
        return self._index

    def _real(self, norm_key: str) -> str | None:
        k = self.index.get(norm_key)
        if k is None:
            return None
        return norm_key if not isinstance(k, str) else k

    def label(self, key: str) -> str:
        return f"{self.prefix}{self.scope}{key}"

    def real_key(self, key: str) -> str | None:
        """The key as spelled in the file, or None if the set does not have it."""
        if self.upper:
            k = key.upper()
            if k.startswith("HIERARCH "):
                k = k[9:]
            return self._real(k)
        return self._real(key.lower())

    def get(self, key: str) -> tuple[Any, str] | None:
        """``(clean value, label)`` for ``key``, or None when absent or null."""
        k = self.real_key(key)
        if k is None:
            return None
        value = clean(self.attrs.get(k))
        if value is None:
            return None
        return value, self.label(k)

    def get_norm(self, norm_key: str) -> tuple[Any, str] | None:
        """Like :meth:`get` for a key already normalised (upper or lower case as the set wants)."""
        k = self._real(norm_key)
        if k is None:
            return None
        value = clean(self.attrs.get(k))
        if value is None:
            return None
        return value, f"{self.prefix}{self.scope}{k}"

    def raw(self, key: str) -> Any:
        """The value as stored (not cleaned), or None."""
        if self.upper:  # the common case: an upper-case FITS keyword, one dict lookup
            k = self._real(key)
            if k is not None:
                return self.attrs.get(k)
        k = self.real_key(key)
        return None if k is None else self.attrs.get(k)

    def keys(self) -> list[str]:
        return list(self.attrs.keys())


@dataclass
class Metadata:
    """Everything an extractor read from one file, before field mapping.

    Attributes
    ----------
    format : str
        ``fits``, ``hdf5``, ``netcdf``, ``csv`` or a plugin's own name.
    sources : list of Source
        Attribute sets in search order.
    fields : dict
        Field values the extractor settled itself, as ``field -> (value, label)``; they are
        used when no attribute gives the field (e.g. a CSV ``INSTRUME`` column).
    extra : dict
        Goes into ``mission_specific`` as is (HDU names, column names, group counts ...).
    checks : dict
        Integrity results: ``{"checksum": "valid" | "invalid" | "absent" | "not verified",
        "checksum_problems": [...]}``.
    hints : dict
        Inference hints: ``dataproduct_type`` (value, label), ``time_columns`` ...
    flags : list of str
        Quality deductions the extractor already knows about.
    """

    format: str
    sources: list[Source] = field(default_factory=list)
    fields: dict[str, tuple[Any, str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    hints: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
