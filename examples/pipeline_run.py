"""A two-step pipeline on simulated HELIOS-X data: calibrate the raw event files, then combine the
calibrated ones into one derived product, with pre-flight checks, claims, lineage and the audit
trail. Run it with a scratch directory, in the Python cosmoscope is installed in (after
`make demo`, the checkout's venv):

    $ .venv/bin/python examples/pipeline_run.py /tmp/cosmoscope-pipeline

It writes a small simulated tree, a catalog and the products under that directory, and prints
what a pipeline operator would look at. See docs/pipelines.md.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from astropy.io import fits

import cosmoscope
from cosmoscope.simulate import simulate


def calibrate(src: str, dst: str, gain: float) -> None:
    """Stand-in for a real calibration: scale the events' energies, record what was done."""
    with fits.open(src) as hdul:
        primary = fits.PrimaryHDU(header=hdul[0].header)
        primary.header["CALSTAT"] = ("CALIBRATED", "calibrated by examples/pipeline_run.py")
        primary.header["GAIN"] = gain
        for key in ("PARENT", "CREATOR"):  # this step names its inputs through the catalog instead
            primary.header.pop(key, None)
        out = [primary]
        for hdu in hdul[1:]:
            if isinstance(hdu, fits.BinTableHDU) and "PI" in hdu.columns.names:
                hdu = hdu.copy()
                hdu.data["PI"] = (hdu.data["PI"] * gain).astype(hdu.data["PI"].dtype)
            out.append(hdu.copy())
        fits.HDUList(out).writeto(dst, overwrite=True)


def combine(srcs: list[str], dst: str) -> None:
    """Stand-in for a derived product: a tiny image with one pixel per input file."""
    hdu = fits.PrimaryHDU(np.arange(len(srcs), dtype="f4").reshape(1, -1))
    with fits.open(srcs[0]) as first:
        for key in ("TELESCOP", "INSTRUME", "OBJECT", "DATE-OBS", "RA_OBJ", "DEC_OBJ"):
            if key in first[0].header:
                hdu.header[key] = first[0].header[key]
    hdu.header["NCOMBINE"] = len(srcs)
    hdu.writeto(dst, overwrite=True)


def main(workdir: str) -> int:
    import polars as pl

    tree, out = os.path.join(workdir, "archive"), os.path.join(workdir, "products")
    os.makedirs(out, exist_ok=True)
    simulate(tree, missions=["HELIOS-X"], files=8, days=1, start="2026-11-25", seed=7, progress=False)
    cat = cosmoscope.open_catalog(os.path.join(workdir, "catalog.sqlite"))
    cat.ingest(tree, workers=0, progress=False)

    # 1. What is there to process: raw (uncalibrated) event files of the last 30 days.
    raw = (cat.available_datasets("HELIOS-X", min_quality=0.8, until="2026-11-26")
           .filter(pl.col("calibration_status") == "uncalibrated"))
    report = cat.preflight(raw, min_quality=0.8, output_dir=out)
    print(report)
    if not report.go:
        return 1

    # 2. Calibrate: claim the inputs, write one product per input, catalog it with its lineage.
    with cat.processing_run("calibrate-xis", inputs=report, params={"gain": 1.02}) as run:
        calibrated = []
        for dataset_id in run.inputs:
            src = cat.get(dataset_id)["file_path"]
            dst = os.path.join(out, os.path.basename(src).replace("_evt1", "_evt1_cal"))
            calibrate(src, dst, gain=1.02)
            calibrated.append(run.add_output(dst, relationship="raw->calibrated", parents=[dataset_id]))
    print(f"\n{run.name}: {len(run.inputs)} inputs -> {len(calibrated)} calibrated products")

    # 3. Combine the calibrated products into one derived product; the run records its quality.
    with cat.processing_run("combine", inputs=calibrated) as run:
        combined = os.path.join(out, "hx_combined.fits")
        combine([cat.get(i)["file_path"] for i in run.inputs], combined)
        mosaic = run.add_output(combined, relationship="calibrated->derived")
        run.set_quality(mosaic, 0.93, reason="all inputs combined")

    # 4. Where did the final product come from, and what happened on the way?
    with pl.Config(tbl_rows=40, tbl_cols=-1, tbl_width_chars=140, fmt_str_lengths=40,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print("\nlineage of the combined product:")
        print(cat.related(mosaic, direction="upstream").select("depth", "dataset_id", "relationship_type", "run_id"))
        print("\naudit trail from the raw files to the combined product:")
        print(cat.history(mosaic, upstream=True).select("ts", "action", "dataset_id", "field", "to_value"))
    cat.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} WORKDIR")
    sys.exit(main(sys.argv[1]))
