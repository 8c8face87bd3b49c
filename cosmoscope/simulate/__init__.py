"""Simulated multi-mission trees of observation files, with their ground truth.

Four missions (see ``MISSIONS`` and ``notes/missions.md``) write FITS, HDF5, netCDF4 and CSV files
with realistic headers, lineage (raw -> calibrated -> derived, inputs named in the headers),
optional sparse data (a 500 MB file that costs a few kB of disk) and optional deliberate faults.

>>> from cosmoscope.simulate import simulate, MISSIONS
>>> result = simulate("/tmp/sky", files=200, days=3, seed=0, progress=False)  # doctest: +SKIP
>>> result.manifest.filter(result.manifest["calib_level"] == 3)  # doctest: +SKIP

Building blocks for trees that grow over time (a watcher's load test)::

    for spec in iter_file_specs(files=1000, days=1):
        write_slowly(spec, root, chunk_bytes=1 << 20, delay=0.05)   # or write_file(spec, root)
"""

from __future__ import annotations

from cosmoscope.simulate.plan import FAULT_KINDS, MISSIONS, FileSpec, Mission, iter_file_specs

__all__ = ["FAULT_KINDS", "MISSIONS", "FileSpec", "Mission", "SimulationResult", "generate_one",
           "iter_file_specs", "parse_size", "simulate", "write_file", "write_slowly"]


def __getattr__(name: str):
    # The writers pull in numpy, h5py, netCDF4 and polars: load them on first use only.
    if name in ("simulate", "SimulationResult"):
        from cosmoscope.simulate import run

        return getattr(run, name)
    if name in ("write_file", "write_slowly", "generate_one"):
        from cosmoscope.simulate import writer

        return getattr(writer, "write_file" if name == "generate_one" else name)
    if name == "parse_size":
        from cosmoscope.simulate.sizes import parse_size

        return parse_size
    raise AttributeError(f"module 'cosmoscope.simulate' has no attribute {name!r}")
