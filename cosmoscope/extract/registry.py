"""The extractor registry: built-in formats plus plugins from the ``cosmoscope.extractors``
entry-point group.

An extractor is any object (or class, instantiated without arguments) with

- ``name`` (str), ``priority`` (int, higher wins when two can read a file),
  ``suffixes`` (tuple of lower-case suffixes it usually sees);
- ``can_read(path, head) -> bool`` given the first bytes of the file (cheap; no heavy imports);
- ``extract(path) -> Metadata`` (see :mod:`cosmoscope.extract.base`), raising
  :class:`~cosmoscope.extract.base.ExtractionError` with a readable sentence when it cannot.

A plugin declares itself in its own ``pyproject.toml``::

    [project.entry-points."cosmoscope.extractors"]
    pds4 = "cosmoscope_pds4:Pds4Extractor"

Listing extractors imports no format library (astropy, h5py, netCDF4): those load inside
``extract``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cosmoscope.extractors"
#: Built-in extractors: name -> (module, class).
BUILTIN = {
    "netcdf": ("cosmoscope.extract.netcdf", "NetcdfExtractor"),
    "fits": ("cosmoscope.extract.fits", "FitsExtractor"),
    "hdf5": ("cosmoscope.extract.hdf5", "Hdf5Extractor"),
    "csv": ("cosmoscope.extract.csv", "CsvExtractor"),
}


class AmbiguousFormatError(ValueError):
    """Two extractors of the same priority both claim a file."""


def _load(target: Any) -> Any:
    return target() if isinstance(target, type) else target


@functools.lru_cache(maxsize=1)
def list_extractors() -> dict[str, Any]:
    """Name -> extractor, built-ins first, then entry-point plugins (which may replace them)."""
    out: dict[str, Any] = {}
    for name, (module, cls) in BUILTIN.items():
        out[name] = _load(getattr(importlib.import_module(module), cls))
    try:
        from importlib.metadata import entry_points

        eps = entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:  # noqa: BLE001 - broken metadata of some unrelated package
        log.warning("cannot list %s entry points: %s", ENTRY_POINT_GROUP, exc)
        eps = ()
    for ep in eps:
        try:
            out[ep.name] = _load(ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop ingest
            log.warning("extractor plugin %r could not be loaded: %s", ep.name, exc)
    return out


def refresh_extractors() -> None:
    """Forget the cached registry (after installing a plugin in a running session)."""
    list_extractors.cache_clear()


def register(extractor: Any) -> None:
    """Add an extractor for this process (tests, notebooks); entry points are the lasting way."""
    list_extractors()[extractor.name] = _load(extractor)


def choose(path: Path, head: bytes) -> Any | None:
    """The extractor for a file: every ``can_read`` asked, highest priority wins.

    A ``can_read`` that raises is logged and treated as "no". Two claimants of equal top
    priority raise :class:`AmbiguousFormatError` listing them.
    """
    claims = []
    for name, ex in list_extractors().items():
        try:
            if ex.can_read(path, head):
                claims.append(ex)
        except Exception as exc:  # noqa: BLE001 - a guesser that crashes becomes a warning
            log.warning("extractor %r failed to examine %s: %s", name, path, exc)
    if not claims:
        return None
    top = max(ex.priority for ex in claims)
    best = [ex for ex in claims if ex.priority == top]
    if len(best) > 1:
        raise AmbiguousFormatError(
            f"format is ambiguous: extractors {', '.join(sorted(e.name for e in best))} all claim "
            f"this file with priority {top}")
    return best[0]


def guess_by_suffix(path: Path) -> str | None:
    """The format a file's name suggests, compression suffixes aside (``.fits.gz``, ``.fits.Z``
    → fits; ``.csv.bz2`` → csv; ``.h5.gz`` → hdf5), or None."""
    from cosmoscope.extract.compressed import without_compression_suffix

    full = os.path.basename(os.fspath(path)).lower()
    best, best_len = None, 0
    for name in dict.fromkeys((full, without_compression_suffix(full))):
        for ex in list_extractors().values():
            for suffix in getattr(ex, "suffixes", ()):
                if name.endswith(suffix) and len(suffix) > best_len:
                    best, best_len = ex.name, len(suffix)
    return best
