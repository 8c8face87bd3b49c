"""``extract_file``: one file in, one catalog record out, never an exception."""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_mod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cosmoscope.extract import quality, registry
from cosmoscope.extract.base import ExtractionError, jsonable
from cosmoscope.extract.mapping import map_fields
from cosmoscope.extract.profiles import ENV_VAR, Profile, ProfileError, ProfileSet, default_profiles
from cosmoscope.extract.sidecar import CSV_DEFAULT_PATTERNS, read_sidecar, sidecar_paths

log = logging.getLogger(__name__)

#: Version of the extraction rules; stored with every record so re-extraction can be targeted.
EXTRACTOR_VERSION = "1.1"  # 1.1: footprints (s_region, s_fov) from celestial WCS
HEAD_BYTES = 2880
_FORMAT_NAMES = {"fits": "FITS", "hdf5": "HDF5", "netcdf": "netCDF", "csv": "CSV"}
HDF4_MAGIC = b"\x0e\x03\x13\x01"


def sniff_format(path: str | os.PathLike | bytes, head: bytes | None = None) -> str | None:
    """The format of a file from its first bytes, then its name: ``fits``, ``hdf5``,
    ``netcdf``, ``csv`` (or a plugin's name), or None. Never raises.

    Magic bytes decide: a ``.nc`` of random bytes is not netCDF, a ``.fits`` of text is not
    FITS, gzip-compressed FITS is FITS whatever its name. The suffix only separates netCDF-4
    from plain HDF5 and tells a CSV from other text.
    """
    try:
        p = Path(os.fsdecode(path))
        if head is None:
            with open(p, "rb") as fh:
                head = fh.read(HEAD_BYTES)
        ex = registry.choose(p, head)
        return ex.name if ex is not None else None
    except Exception as exc:  # noqa: BLE001 - sniffing must never raise
        log.debug("sniff_format(%r) failed: %s", path, exc)
        return None


def _storable(path: str) -> tuple[str, bool]:
    """A UTF-8-encodable form of ``path`` (non-UTF-8 bytes shown as ``\\xNN``)."""
    try:
        path.encode("utf-8")
        return path, True
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"), False


def _os_reason(exc: OSError, path: str) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop: the link leads back to itself"
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return f"broken symbolic link: its target {os.readlink(path)!r} does not exist"
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a data file"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long for the operating system"
    return f"cannot read the file: {exc.strerror or exc}"


def _unrecognised(guess: str | None, head: bytes, path: str) -> str:
    from cosmoscope.extract.compressed import TOOLS, compression_of, head_of
    from cosmoscope.extract.csv import looks_like_text

    compression = compression_of(head)
    if guess and compression:
        name = _FORMAT_NAMES.get(guess, guess)
        inner = head_of(path, head) or b""
        if registry.choose(path, inner) is not None:
            return (f"{compression}-compressed {name} file: cosmoscope reads compressed FITS and CSV files only; "
                    f"decompress it first ({TOOLS[compression]})")
        return f"not a compressed {name} file: its {compression}-compressed data are not {name}"
    if head.startswith(HDF4_MAGIC):
        return "HDF4 file: cosmoscope reads HDF5 (and netCDF-4), not HDF4; convert it with h4toh5"
    text = looks_like_text(head)
    if guess:
        name = _FORMAT_NAMES.get(guess, guess)
        a = "an" if name.startswith("HDF") else "a"  # an HDF5 file; a FITS, a netCDF, a CSV file
        if guess == "csv":
            return "not a CSV file: it contains binary data"
        if text:
            snippet = head[:40].decode("utf-8", errors="replace").splitlines()[0] if head.strip() else ""
            return f"not {a} {name} file: the first {min(80, len(head))} bytes are text ({snippet!r}...)"
        return f"not {a} {name} file: the first bytes are binary data without the {name} signature"
    if text:
        return ("not a data file cosmoscope can read: it is text and its name does not end in "
                ".csv, .ecsv, .tsv or .psv")
    return "not a data file cosmoscope can read: unknown binary format (FITS, HDF5, netCDF and CSV are supported)"


#: What the path and the mission profile may say of a file that cannot be read.
PATH_FIELDS = ("mission_id", "satellite_name", "instrument_type", "observation_timestamp", "calib_level",
               "calibration_status", "dataproduct_type")


def _error(rec: dict, reason: str, flags: list[str] | None = None) -> dict:
    path = rec.pop("_path", rec.get("file_path"))
    if rec.get("file_format") is None and path:
        try:
            rec["file_format"] = registry.guess_by_suffix(path)
        except Exception:  # noqa: BLE001 - a guess is only a courtesy
            pass
    # No score: nothing was read to judge, and a 0.0 would count in every quality statistic.
    rec.update(extraction_status="error", extraction_error=reason, data_quality_score=None,
               quality_flags=["unreadable"] + (flags or []), field_sources={}, _parents=[])
    rec.setdefault("mission_specific", {})
    return rec


def from_path(path: str, profiles: Any = None, fmt: str | None = None) -> dict[str, Any]:
    """What the path of a file that cannot be read tells: the mission, instrument, start, level
    and product type its profile's path template and defaults give (with ``field_sources``
    saying so), so an unreadable file still shows under its mission. Never raises."""
    try:
        profile = _resolve_profile(profiles, path, fmt or registry.guess_by_suffix(path) or "")
        if profile is None:
            return {}
        from cosmoscope.extract.base import Metadata

        mapped = map_fields(Metadata(format=fmt or ""), path, profile, profile.match_path(path), [])
    except Exception as exc:  # noqa: BLE001 - only a courtesy to an unreadable file
        log.debug("no fields from the path of %s: %s", path, exc)
        return {}
    out = {f: mapped[f] for f in PATH_FIELDS if mapped.get(f) is not None}
    out["field_sources"] = {f: src for f, src in mapped["field_sources"].items() if f in out}
    return out


def _resolve_profile(profiles: Any, path: str, fmt: str):
    if profiles is None:
        return default_profiles(os.environ.get(ENV_VAR)).match(path, fmt)
    if isinstance(profiles, Profile):
        return profiles
    if isinstance(profiles, ProfileSet):
        return profiles.match(path, fmt)
    if isinstance(profiles, (str, os.PathLike)):
        return default_profiles(os.environ.get(ENV_VAR)).resolve(profiles)
    items = list(profiles)  # several profiles (objects or TOML paths): matched among themselves
    if all(isinstance(p, Profile) for p in items):
        return ProfileSet(items).match(path, fmt)
    from cosmoscope.extract.profiles import load_profile

    return ProfileSet(p if isinstance(p, Profile) else load_profile(p) for p in items).match(path, fmt)


def extract_file(path: str | os.PathLike | bytes, profiles: Any = None,
                 stat: os.stat_result | None = None) -> dict[str, Any]:
    """Extract one file's catalog record. Never raises (except KeyboardInterrupt, SystemExit,
    MemoryError).

    Parameters
    ----------
    path : str, path-like or bytes
        The file. Its absolute path (symlinks kept as named) becomes ``file_path``.
    profiles : None, ProfileSet, Profile, str, or a list of Profile or TOML paths
        None uses the shipped profiles plus ``COSMOSCOPE_PROFILES`` (loaded once per process;
        ``default_profiles.cache_clear()`` re-reads them), matched by path; a ProfileSet or a
        list is matched by path; a ``Profile``, or a profile name or TOML path, is forced.
    stat : os.stat_result, optional
        The caller's ``os.stat`` of the file, to avoid a second one.

    Returns
    -------
    dict
        Observation columns (see :data:`cosmoscope.schema.OBSERVATIONS`) with Python values,
        plus ``mission_specific`` (dict), ``quality_flags`` (list), ``field_sources`` (dict)
        and ``_parents`` (list of ``{"name", "relationship"}``). ``extraction_status`` is
        ``ok``, ``partial`` (required fields missing) or ``error`` (``extraction_error`` says
        why); a file that is gone by then also gets ``file_status='missing'``.
    """
    raw = os.fsdecode(path) if isinstance(path, bytes) else os.fspath(path)
    abspath = os.path.abspath(raw)
    shown, utf8 = _storable(abspath)
    flags = [] if utf8 else ["path_not_utf8"]
    rec: dict[str, Any] = {"file_path": shown, "extractor_version": EXTRACTOR_VERSION,
                           "file_format": None, "file_size": None, "file_mtime": None, "_path": abspath}
    try:
        rec = _extract(abspath, rec, flags, profiles, stat)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except RecursionError:
        rec = _error(rec, "the file's structure is nested too deeply to read", flags)
    except Exception as exc:  # noqa: BLE001 - the contract: never raise into the ingest loop
        log.debug("extraction of %s failed", shown, exc_info=True)
        rec = _error(rec, f"cosmoscope could not extract metadata: {type(exc).__name__}: {exc}", flags)
    if rec["extraction_status"] == "error" and "mission_id" not in rec:
        rec.update(from_path(abspath, profiles, rec.get("file_format")))
    if rec["extraction_status"] == "error" and not os.path.exists(abspath):
        rec["file_status"] = "missing"  # it went away while being read: say so now, not at the next validate
    return rec


def _extract(abspath: str, rec: dict, flags: list[str], profiles: Any, st) -> dict:
    p = abspath  # extractors take str or os.PathLike; a Path per file costs more than it gives
    if st is None:
        try:
            st = os.stat(abspath)
        except OSError as exc:
            return _error(rec, _os_reason(exc, abspath), flags)
    rec["file_size"] = int(st.st_size)
    rec["file_mtime"] = datetime.fromtimestamp(st.st_mtime, tz=UTC)
    if stat_mod.S_ISDIR(st.st_mode):
        return _error(rec, "is a directory, not a data file", flags)
    if not stat_mod.S_ISREG(st.st_mode):
        return _error(rec, "not a regular file (a FIFO, socket or device)", flags)
    if st.st_size == 0:
        return _error(rec, "empty file (0 bytes)", flags)
    try:
        with open(abspath, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        return _error(rec, _os_reason(exc, abspath), flags)
    try:
        ex = registry.choose(p, head)
    except registry.AmbiguousFormatError as exc:
        return _error(rec, str(exc), flags)
    if ex is None:
        return _error(rec, _unrecognised(registry.guess_by_suffix(abspath), head, abspath), flags)
    rec["file_format"] = ex.name
    try:
        profile = _resolve_profile(profiles, abspath, ex.name)
    except ProfileError as exc:
        return _error(rec, str(exc), flags)

    try:
        meta = ex.extract(p)
    except ExtractionError as exc:
        return _error(rec, str(exc), flags)
    except PermissionError:
        return _error(rec, "permission denied", flags)
    except OSError as exc:
        return _error(rec, f"cannot read the {_FORMAT_NAMES.get(ex.name, ex.name)} file: "
                           f"{exc.strerror or exc}", flags)
    rec["file_format"] = meta.format or ex.name
    return _finish(rec, meta, abspath, profile, flags)


def _finish(rec: dict, meta, abspath: str, profile, flags: list[str]) -> dict:
    rec.pop("_path", None)
    sidecars, sidecar_errors = [], []
    patterns = tuple(profile.sidecars) if profile is not None else ()
    if meta.format == "csv":
        patterns += CSV_DEFAULT_PATTERNS
    for sp in sidecar_paths(abspath, patterns) if patterns else ():
        try:
            sidecars.append(read_sidecar(sp))
        except (OSError, ValueError) as exc:
            sidecar_errors.append(str(exc))
    pmatch = profile.match_path(abspath) if profile is not None else None
    mapped = map_fields(meta, abspath, profile, pmatch, sidecars)
    problems = mapped.pop("_problems")
    ms = dict(meta.extra)
    ms.update(mapped.pop("mission_specific"))
    if meta.checks.get("checksum"):
        ms["checksum"] = meta.checks["checksum"]
    if meta.checks:
        for k in ("checksum_problems", "checksum_note", "datasum_blank_hdus", "truncated"):
            if k in meta.checks:
                ms[k] = meta.checks[k]
    if sidecars:
        ms["sidecars"] = [s.info["file"] for s in sidecars]
    if sidecar_errors:
        ms["sidecar_errors"] = sidecar_errors
        flags = flags + ["sidecar_unreadable"]
    if problems["time_unparseable"]:
        ms["time_problems"] = [f"{label}: {msg}" for _, label, msg in problems["time_unparseable"]][:10]
    if problems["coords"] or problems["exposure"]:
        ms["header_problems"] = (problems["coords"] + problems["exposure"])[:10]
    rec.update(mapped)
    score, qflags = quality.score(rec, problems, meta.checks, list(meta.flags) + flags)
    rec["data_quality_score"] = score
    rec["quality_flags"] = qflags
    rec["mission_specific"] = jsonable(ms)
    missing = [f for f in quality.required_fields() if rec.get(f) is None]
    rec["extraction_status"] = "partial" if missing else "ok"
    rec["extraction_error"] = None
    return rec
