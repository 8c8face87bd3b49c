"""AURORA-2: an Earth-observation spacecraft writing one CSV file per instrument and day.

Layout ``aurora2/{yyyy}/{mm}/aur2_{instrument}_{yyyymmdd}_{level}.csv`` with levels ``l1a``
(raw), ``l1b`` (calibrated) and ``l2`` (derived, written as ECSV, ``.ecsv``). Metadata are
``# key: value`` comment lines; some l1a files instead have a sidecar ``{stem}.json`` beside them
and no comment lines. CSV files are small in every mode (``sparse_bytes`` does not apply).
"""

from __future__ import annotations

import json
from datetime import timedelta

from cosmoscope.simulate._common import drop, imperfect, iso, later
from cosmoscope.simulate.plan import CALIBRATED_TO_DERIVED, RAW_TO_CALIBRATED, FileSpec, GroupContext

MISSION = "AURORA-2"
LEVELS = {"l1a": 1, "l1b": 2, "l2": 3}
CADENCE = {"MAG": 60, "PES": 300}  # seconds between rows of l1a/l1b; l2 is hourly
_MISSING = ("instrument", "start_time")


def group_size(rnd) -> int:
    """Files per instrument and day: l1a, l1b, l2."""
    return 3


def missing_keys(spec: FileSpec) -> tuple[str, ...]:
    """Metadata keys a ``missing_keywords`` fault removes."""
    return _MISSING


def quirk_keys(spec: FileSpec) -> dict[str, tuple[str, ...]]:
    """Keys each everyday imperfection (see ``plan.QUIRK_KINDS``) leaves out or garbles (the
    mission observes the Earth: no target; a missing end is read from the time column)."""
    return {"no_target": (), "no_end": (), "garbled_end": ("end_time",)}


def plan_group(ctx: GroupContext) -> list[FileSpec]:
    """One day of one instrument, at three processing levels."""
    rnd = ctx.rnd
    day = ctx.slot_start
    end = later(day, seconds=86399)
    inst = ctx.instrument.lower()
    folder = f"aurora2/{day:%Y}/{day:%m}/"
    version = rnd.choice(("0201", "0202", "0300"))
    orbit = 48000 + (day.toordinal() - 739000) * 15
    specs: list[FileSpec] = []
    previous = None
    for level, calib in LEVELS.items():
        ext = ".ecsv" if level == "l2" else ".csv"
        relpath = f"{folder}aur2_{inst}_{day:%Y%m%d}_{level}{ext}"
        sidecar = None
        if level == "l1a" and rnd.random() < 0.3:
            sidecar = relpath[: -len(ext)] + ".json"
        specs.append(FileSpec(
            relpath=relpath, mission=MISSION, satellite=MISSION, instrument=ctx.instrument,
            product=level, calib_level=calib, file_format="csv", start=day, end=end, target=None,
            ra=None, dec=None, exposure=None, version=version, dataproduct_type="timeseries",
            parents=(previous,) if previous else (),
            relationship={"l1a": None, "l1b": RAW_TO_CALIBRATED, "l2": CALIBRATED_TO_DERIVED}[level],
            sidecar=sidecar,
            extra={"orbit": orbit, "created": later(day, days=1, hours=1 + 2 * calib,
                                                    minutes=rnd.randrange(60))}))
        previous = relpath
    return specs


def metadata(spec: FileSpec) -> list[tuple[str, str]]:
    """The (key, value) metadata of a file, in the order they are written."""
    items = [("mission", spec.mission), ("spacecraft", spec.satellite), ("instrument", spec.instrument),
             ("start_time", iso(spec.start, z=True)), ("end_time", iso(spec.end, z=True)),
             ("processing_level", spec.product.upper())]
    if spec.parents:
        items.append(("source", ",".join(p.rsplit("/", 1)[-1] for p in spec.parents)))
    items += [("product_version", spec.version), ("orbit_start", str(spec.extra["orbit"])),
              ("creation_date", iso(spec.extra["created"], z=True))]
    if spec.fault == "missing_keywords":
        items = drop(items, _MISSING)
    return imperfect(items, spec)


def _columns(spec: FileSpec, rng):
    import numpy as np

    hourly = spec.product == "l2"
    step = 3600 if hourly else CADENCE[spec.instrument]
    n = 86400 // step
    times = [iso(spec.start + timedelta(seconds=i * step), z=True) for i in range(n)]
    if spec.instrument == "MAG":
        base = np.array([18500.0, -1200.0, 46000.0])
        field = base + rng.normal(0, 25.0, (n, 3)).cumsum(axis=0) * 0.1
        if spec.product == "l1a":
            raw = np.round(field * 4.0 + 2**15).astype(int)
            return {"time": times, "bx_counts": raw[:, 0], "by_counts": raw[:, 1], "bz_counts": raw[:, 2],
                    "sensor_temp_c": np.round(rng.normal(21.0, 0.3, n), 2)}
        total = np.sqrt((field ** 2).sum(axis=1))
        cols = {"time": times, "bx_nt": np.round(field[:, 0], 2), "by_nt": np.round(field[:, 1], 2),
                "bz_nt": np.round(field[:, 2], 2), "b_total_nt": np.round(total, 2)}
        if hourly:
            cols["b_std_nt"] = np.round(rng.uniform(2, 30, n), 2)
        else:
            cols["quality_flag"] = (rng.random(n) < 0.01).astype(int)
        return cols
    energies = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # keV channels
    spectrum = rng.lognormal(8.0, 0.5, (n, len(energies))) / np.array(energies)
    if spec.product == "l1a":
        counts = {f"ch{i}_counts": rng.poisson(spectrum[:, i] / 50) for i in range(len(energies))}
        return {"time": times, **counts}
    cols = {"time": times, **{f"flux_{e:g}kev": np.round(spectrum[:, i], 3) for i, e in enumerate(energies)}}
    if hourly:
        cols["energy_flux_mw_m2"] = np.round(spectrum.sum(axis=1) * 1e-5, 5)
    return cols


def write(spec: FileSpec, path) -> None:
    """Write one AURORA-2 file: CSV with comment header, CSV plus JSON sidecar, or ECSV."""
    import numpy as np

    rng = np.random.default_rng(spec.data_seed)
    cols = _columns(spec, rng)
    meta = metadata(spec)
    if spec.product == "l2":
        from astropy.table import Table

        table = Table({k: np.asarray(v) for k, v in cols.items()}, meta=dict(meta))
        table.write(path, format="ascii.ecsv", overwrite=True)
        return
    names = list(cols)
    lines = []
    if spec.sidecar:
        sidecar = path.parent / spec.sidecar.rsplit("/", 1)[-1]
        sidecar.write_text(json.dumps(dict(meta), indent=2) + "\n")
    else:
        lines += [f"# {k}: {v}" for k, v in meta]
    lines.append(",".join(names))
    rows = zip(*(cols[n] for n in names), strict=True)
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
