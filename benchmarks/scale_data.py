"""Synthetic observation rows shaped like a production catalog, generated one day at a time.

Day ``d`` of a catalog of ``total`` rows is the same whatever else was generated, so a catalog
can be built a day at a time, stopped, and continued (``benchmarks/scale_bench.py`` caches what
it built). Files arrive as they do in production: each day brings that day's observations.

The shape follows the missions the project serves: COSMOS-7 brings 60% of the rows at a steady
daily rate over the last 100 days, five other missions share the rest over two years; most rows
are raw (recent) or processed (older), calibrated or not, extracted fine and present; a few
percent failed extraction, went missing or failed validation. Quality scores have three
decimals, like the extractor's; 30% of the positions are spread over the whole sky, the rest
cluster on a few targets.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pyarrow as pa

from cosmoscope import schema as S
from cosmoscope.records import dataset_id_for

#: Days the catalog spans, and the newest day's end.
DAYS = 730
END = dt.datetime(2027, 3, 1, tzinfo=dt.timezone.utc)
#: mission -> (share of rows, days back from END it spans, instruments, satellite)
MISSIONS = {
    "COSMOS-7": (0.60, 100, ["WFI", "HRS"], "COSMOS-7"),
    "HELIOS-X": (0.16, 730, ["XIS", "SPEC"], "HELIOS-X"),
    "LYRA": (0.10, 730, ["LYCAM"], "LYRA"),
    "AURORA-2": (0.08, 730, ["MAG", "PES", "ESA"], "AURORA-2"),
    "CHANDRA": (0.04, 730, ["ACIS", "HRC"], "Chandra"),
    "XMM": (0.02, 730, ["EPIC", "RGS", "OM"], "XMM-Newton"),
}
TARGETS = ["NGC 253", "M31", "Crab", "Cas A", "3C 273", "Sgr A*", "M87", "Vela", "LMC", "SMC", None]
#: (ra, dec) of each target (None: no position).
POSITIONS = [(11.888, -25.288), (10.685, 41.269), (83.633, 22.014), (350.85, 58.815), (187.278, 2.052),
             (266.417, -29.008), (187.706, 12.391), (128.836, -45.176), (80.894, -69.756), (13.187, -72.829),
             None]


def rows_per_day(total: int) -> dict[str, np.ndarray]:
    """Rows of each mission on each day (index 0: the oldest day) for a catalog of ``total`` rows."""
    out = {}
    for m, (share, span, _, _) in MISSIONS.items():
        n = round(share * total)
        per = np.zeros(DAYS, dtype=np.int64)
        per[DAYS - span:] = n // span
        per[DAYS - 1] += n - per.sum()  # the remainder arrives on the last day
        out[m] = per
    return out


def _choice(rng, values, p, n) -> list:
    return np.array(values, dtype=object)[rng.choice(len(values), size=n, p=p)].tolist()


_STATUSES = ["raw", "queued", "processing", "processed", "failed", "archived"]


def _processing(rng, age_us) -> list:
    """Processing runs in campaigns: the last month is mostly raw, older data mostly processed."""
    recent = age_us < 30 * 86_400_000_000
    fresh = rng.choice(6, size=len(age_us), p=[0.80, 0.10, 0.04, 0.06, 0.0, 0.0])
    old = rng.choice(6, size=len(age_us), p=[0.03, 0.0, 0.0, 0.85, 0.02, 0.10])
    return np.array(_STATUSES, dtype=object)[np.where(recent, fresh, old)].tolist()


def day(d: int, total: int, seed: int = 14) -> pa.Table:
    """The observations of day ``d`` (0: the oldest) of a catalog of ``total`` rows (days from
    :data:`DAYS` on come after the catalog's span, with as many rows as its last day)."""
    rng = np.random.default_rng([seed, d])
    counts = rows_per_day(total)
    names = list(MISSIONS)
    mission = np.repeat(np.arange(len(names)), [int(counts[m][min(d, DAYS - 1)]) for m in names])
    n = len(mission)
    day_start = int((END - dt.timedelta(days=DAYS - d)).timestamp() * 1_000_000)
    start_us = np.sort(day_start + rng.integers(0, 86_400_000_000, n))
    end_us = int(END.timestamp() * 1_000_000)
    exposure = rng.choice([60.0, 300.0, 600.0, 1800.0, 3600.0], n)
    missions = np.array(names, dtype=object)[mission]
    instruments = np.array([MISSIONS[m][2][rng.integers(len(MISSIONS[m][2]))] for m in missions], dtype=object)
    satellites = np.array([MISSIONS[m][3] for m in names], dtype=object)[mission]
    target_i = rng.integers(0, len(TARGETS), n)
    ra = np.array([p[0] if p else np.nan for p in POSITIONS])[target_i] + rng.normal(0, 0.5, n)
    dec = np.array([p[1] if p else np.nan for p in POSITIONS])[target_i] + rng.normal(0, 0.5, n)
    scattered = rng.random(n) < 0.3  # surveys: positions all over the sky
    ra = np.where(scattered, rng.uniform(0, 360, n), ra)
    dec = np.where(scattered, np.degrees(np.arcsin(rng.uniform(-1, 1, n))), dec)
    paths = [f"/archive/{m.lower()}/d{d:04d}/obs_{k:06d}.fits" for k, m in enumerate(missions)]
    extraction = _choice(rng, ["ok", "partial", "error"], [0.975, 0.018, 0.007], n)
    quality = np.round(np.clip(rng.beta(8, 2, n), 0, 1), 3)
    quality = np.where(np.array(extraction) == "error", 0.0, quality)
    validation = _choice(rng, [None, "passed", "problems"], [0.79, 0.20, 0.01], n)
    ingested = start_us + rng.integers(3_600_000_000, 86_400_000_000, n)
    df = pl.DataFrame({
        "dataset_id": [dataset_id_for(p) for p in paths],
        "mission_id": missions.tolist(), "satellite_name": satellites.tolist(), "instrument_type": instruments.tolist(),
        "observation_timestamp": start_us, "target_object": np.array(TARGETS, dtype=object)[target_i].tolist(),
        "data_quality_score": quality,
        "calibration_status": _choice(rng, ["calibrated", "uncalibrated", "partial", "unknown"],
                                      [0.55, 0.30, 0.10, 0.05], n),
        "file_path": paths, "file_size": rng.lognormal(17, 1.2, n).astype(np.int64),
        "file_name": [p.rsplit("/", 1)[1] for p in paths],
        "processing_status": _processing(rng, end_us - start_us),
        "version": _choice(rng, ["v01", "v02", "v03"], [0.6, 0.3, 0.1], n),
        "mission_specific": [json.dumps({"obs_id": f"{d:04d}{k:06d}", "seq": int(k % 997), "mode": "survey"})
                             for k in range(n)],
        "observation_end": start_us + (exposure * 1e6).astype(np.int64), "exposure_time": exposure,
        "ra": ra % 360, "dec": np.clip(dec, -90, 90),
        "calib_level": rng.integers(0, 4, n).astype(np.int32),
        "dataproduct_type": _choice(rng, ["image", "spectrum", "timeseries", "event"], [0.5, 0.2, 0.2, 0.1], n),
        "file_format": _choice(rng, ["fits", "hdf5", "netcdf", "csv"], [0.7, 0.15, 0.1, 0.05], n),
        "file_mtime": ingested - 1_000_000, "checksum": None,
        "quality_flags": np.where(quality < 0.5, '["low signal"]', "[]"),
        "extraction_status": extraction,
        "extraction_error": [("could not read the primary header" if e == "error" else None) for e in extraction],
        "field_sources": '{"mission_id": "path", "instrument_type": "INSTRUME", "observation_timestamp": '
                         '"DATE-OBS", "target_object": "OBJECT", "ra": "RA_NOM", "dec": "DEC_NOM"}',
        "extractor_version": "fits 1.4",
        "file_status": _choice(rng, ["present", "missing", "changed"], [0.985, 0.01, 0.005], n),
        "validation_status": validation,
        "validation_problems": [('[{"kind": "missing", "detail": "gone"}]' if v == "problems" else None)
                                for v in validation],
        "last_validated": [None if v is None else int(t) + 86_400_000_000 for v, t in zip(validation, ingested)],
        "ingested_at": ingested, "updated_at": ingested,
    }, strict=False)
    times = [f.name for f in S.OBSERVATIONS.schema if pa.types.is_timestamp(f.type)]
    df = df.with_columns([pl.col(c).cast(pl.Int64).cast(pl.Datetime("us", "UTC")) for c in times]
                         + [pl.col("ra", "dec").fill_nan(None)])
    return S.conform("observations", df.to_arrow())
