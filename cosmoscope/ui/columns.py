"""The columns people see in the explorers, and their values as people read them.

A results row leads with what tells observations apart to a scientist: the file's own name,
the product's level and type, target, position, start, exposure, band or filter, quality and
state. Some of these are read from several stored columns (:data:`SHOWN` says which): the
*state* is ``unreadable`` or ``file missing`` before any processing status, the *level* is
the ObsCore calibration level in words, the *band* comes from the mission's own keywords.
Unreadable files have no quality score to show.

Shared by the notebook explorers, the dashboard and the report notebooks; imports no UI toolkit.

>>> level_text(2)
'L2 calibrated'
>>> human_bytes(1_534_000)
'1.5 MB'
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from cosmoscope import schema as S

if TYPE_CHECKING:
    import polars as pl

#: ObsCore calibration levels in words.
LEVEL_NAMES = {0: "raw (native)", 1: "raw", 2: "calibrated", 3: "derived", 4: "analysis"}

#: Mission keywords that name a band or filter, most specific first (kept in mission_specific).
BAND_KEYS = ("BAND", "band", "FILTER", "filter", "FILTER1", "FILTNAM1", "wavelength_band", "WAVEBAND",
             "channel")

#: Shown column -> the stored columns it is read from. The first stored column is what the
#: column sorts by (None: it cannot be sorted).
SHOWN: dict[str, tuple[str | None, ...]] = {
    "file": ("file_name", "file_path"),
    "level": ("calib_level",),
    "type": ("dataproduct_type",),
    "target": ("target_object",),
    "ra": ("ra",),
    "dec": ("dec",),
    "start": ("observation_timestamp",),
    "exposure": ("exposure_time",),
    "band": (None, "mission_specific"),
    "quality": ("data_quality_score", "extraction_status"),
    "state": (None, "extraction_status", "file_status", "processing_status"),
    "mission": ("mission_id",),
    "instrument": ("instrument_type",),
    "calibration": ("calibration_status",),
    "end": ("observation_end",),
    "size": ("file_size",),
    "format": ("file_format",),
    "version": ("version",),
    "path": ("file_path",),
    "dataset": ("dataset_id",),
}

#: Headings of the shown columns.
TITLES = {"file": "file", "level": "level", "type": "type", "target": "target", "ra": "RA (°)", "dec": "Dec (°)",
          "start": "start (UTC)", "exposure": "exposure (s)", "band": "band / filter", "quality": "quality",
          "state": "status", "mission": "mission", "instrument": "instrument", "calibration": "calibration",
          "end": "end (UTC)", "size": "size", "format": "format", "version": "version", "path": "path",
          "dataset": "dataset id"}

#: What the results table shows unless the user chooses otherwise.
DEFAULT_SHOWN = ("file", "level", "type", "target", "ra", "dec", "start", "exposure", "band", "quality", "state",
                 "mission")
#: Fewer columns for narrow screens and notebooks.
COMPACT_SHOWN = ("file", "level", "target", "start", "quality", "state", "mission")


def stored_columns(shown) -> list[str]:
    """The stored columns needed to show ``shown`` (always with ``dataset_id``)."""
    cols = ["dataset_id"]
    for name in shown:
        cols += [c for c in SHOWN[name] if c is not None]
    return list(dict.fromkeys(cols))


def sort_column(shown: str) -> str | None:
    """The stored column a shown column sorts by (None: it cannot be sorted)."""
    return SHOWN[shown][0] if shown in SHOWN else None


def level_text(level) -> str:
    """``L2 calibrated`` for ObsCore calibration level 2 ('' when unknown)."""
    if level is None:
        return ""
    return f"L{level} {LEVEL_NAMES.get(int(level), '')}".strip()


def band_of(mission_specific: str | dict | None) -> str:
    """The band or filter a mission's own keywords give ('' when none does)."""
    if not mission_specific:
        return ""
    try:
        ms = json.loads(mission_specific) if isinstance(mission_specific, str) else mission_specific
    except ValueError:
        return ""
    if not isinstance(ms, dict):
        return ""
    for key in BAND_KEYS:
        value = ms.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def state_of(extraction_status, file_status, processing_status) -> str:
    """What a row's status column says: a file that cannot be read or is gone says so first."""
    if extraction_status == S.ExtractionStatus.ERROR.value:
        return "unreadable"
    if file_status == S.FileStatus.MISSING.value:
        return "file missing"
    if file_status == S.FileStatus.CHANGED.value:
        return f"{processing_status or 'no status'} · changed on disk"
    if extraction_status == S.ExtractionStatus.PARTIAL.value:
        return f"{processing_status or 'no status'} · incomplete"
    return processing_status or ""


def human_bytes(n) -> str:
    """``1.5 GB`` for 1.5e9 (decimal units, as file browsers show them)."""
    if n is None:
        return ""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


def _number(fmt: str):
    return lambda v: "" if v is None else format(v, fmt)


def shown_frame(df: pl.DataFrame, shown=DEFAULT_SHOWN) -> pl.DataFrame:
    """The shown columns of stored rows, as text people read (plus ``dataset_id`` first)."""
    import polars as pl

    def col(name, default=None):
        return df[name] if name in df.columns else pl.Series(name, [default] * df.height)

    out = {"dataset_id": df["dataset_id"]}
    unreadable = [s == S.ExtractionStatus.ERROR.value for s in col("extraction_status")]
    for name in shown:
        if name == "file":
            values = [n or (os.path.basename(p) if p else "") for n, p in zip(col("file_name"), col("file_path"))]
        elif name == "level":
            values = [level_text(v) for v in col("calib_level")]
        elif name == "band":
            values = [band_of(v) for v in col("mission_specific")]
        elif name == "state":
            values = [state_of(e, f, p) for e, f, p in zip(col("extraction_status"), col("file_status"),
                                                            col("processing_status"))]
        elif name == "quality":
            values = ["n/a" if bad else "" if v is None else f"{v:.2f}"
                      for v, bad in zip(col("data_quality_score"), unreadable)]
        elif name in ("ra", "dec"):
            values = [_number(".5f")(v) for v in col(SHOWN[name][0])]
        elif name == "exposure":
            values = [_number(",.1f")(v) for v in col("exposure_time")]
        elif name == "size":
            values = [human_bytes(v) for v in col("file_size")]
        elif name in ("start", "end"):
            values = [v.strftime("%Y-%m-%d %H:%M:%S") if v is not None else "" for v in col(SHOWN[name][0])]
        else:
            values = ["" if v is None else str(v) for v in col(SHOWN[name][0])]
        out[name] = pl.Series(name, values, dtype=pl.String)
    return pl.DataFrame(out)


def display_frame(df: pl.DataFrame) -> pl.DataFrame:
    """The same stored columns with values as people read them: times to the second (UTC),
    quality to two decimals, sizes in kB/MB/GB, missing values blank."""
    import polars as pl

    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.strftime("%Y-%m-%d %H:%M:%S"))
        elif name == "data_quality_score":
            exprs.append(col.map_elements(lambda v: f"{v:.2f}", return_dtype=pl.String))
        elif name == "file_size":
            exprs.append(col.map_elements(human_bytes, return_dtype=pl.String))
        else:
            exprs.append(col.cast(pl.String))
    return df.select(exprs).fill_null("")


#: Column headings of stored columns in tables.
HEADINGS = {"dataset_id": "dataset", "mission_id": "mission", "instrument_type": "instrument",
            "observation_timestamp": "start (UTC)", "target_object": "target", "data_quality_score": "quality",
            "processing_status": "status", "calibration_status": "calibration", "file_size": "size",
            "file_path": "file", "file_name": "file", "calib_level": "level", "dataproduct_type": "type",
            "exposure_time": "exposure (s)", "observation_end": "end (UTC)", "ra": "RA (°)", "dec": "Dec (°)",
            "extraction_status": "extraction", "extraction_error": "extraction error",
            "validation_status": "validation", "validation_problems": "validation problems",
            "file_status": "file status", "last_validated": "validated", "problem": "problem"}
