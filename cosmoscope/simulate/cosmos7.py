"""COSMOS-7: the new mission, raw HDF5 (l0) and calibrated/derived netCDF4 (l1, l2).

Layout ``COSMOS7/{instrument}/{year}/{doy}/c7_{instrument}_{level}_{start:%Y%m%dT%H%M%S}_v{NN}``.
l0 files carry root attributes ``mission``, ``spacecraft``, ``instrument`` and a packed
``/Metadata`` ``header`` attribute (``KEY=value;`` pairs); l1/l2 files carry CF/ACDD global
attributes with ``source`` naming their input file. Sparse files hold a contiguous dataset whose
storage is allocated but never written, so it reads as zeros and costs no disk.
"""

from __future__ import annotations

from cosmoscope.simulate._common import imperfect, iso, later, obs_window, rows_for, written_rows
from cosmoscope.simulate.plan import CALIBRATED_TO_DERIVED, RAW_TO_CALIBRATED, FileSpec, GroupContext
from cosmoscope.simulate.targets import IMAGING, SPECTRO, TARGETS

MISSION = "COSMOS-7"
LEVELS = {"l0": (1, ".h5"), "l1": (2, ".nc"), "l2": (3, ".nc")}
_MISSING_H5 = ("instrument", "OBS_START")
_MISSING_NC = ("instrument", "time_coverage_start")
_TITLES = {("WFI", "l1"): "COSMOS-7 WFI calibrated image",
           ("WFI", "l2"): "COSMOS-7 WFI background-subtracted image with source mask",
           ("HRS", "l1"): "COSMOS-7 HRS calibrated echelle spectrum",
           ("HRS", "l2"): "COSMOS-7 HRS extracted 1-D spectrum"}


def group_size(rnd) -> int:
    """Files per observation: l0, l1, l2."""
    return 3


def missing_keys(spec: FileSpec) -> tuple[str, ...]:
    """Attributes a ``missing_keywords`` fault removes."""
    return _MISSING_H5 if spec.file_format == "hdf5" else _MISSING_NC


def quirk_keys(spec: FileSpec) -> dict[str, tuple[str, ...]]:
    """Attributes each everyday imperfection (see ``plan.QUIRK_KINDS``) leaves out or garbles."""
    if spec.file_format == "hdf5":
        return {"no_target": ("TARGET",), "no_end": ("OBS_END",), "garbled_end": ("OBS_END",)}
    return {"no_target": ("target_name",), "no_end": ("time_coverage_end",), "garbled_end": ("time_coverage_end",)}


def plan_group(ctx: GroupContext) -> list[FileSpec]:
    """One observation of a WFI field or an HRS spectrum, through three processing levels."""
    rnd = ctx.rnd
    wfi = ctx.instrument == "WFI"
    names = IMAGING if wfi else SPECTRO
    target = names[rnd.randrange(len(names))]
    ra, dec = (round(v, 3) for v in TARGETS[target])  # as the packed l0 header writes them
    start, exposure = obs_window(ctx, *((60, 900) if wfi else (600, 3600)), whole=False)
    end = later(start, seconds=exposure)
    l1_version = "02" if rnd.random() < 0.15 else "01"
    versions = {"l0": "01", "l1": l1_version, "l2": l1_version}
    folder = f"COSMOS7/{ctx.instrument}/{start:%Y}/{start:%j}/"
    stamp = f"{start:%Y%m%dT%H%M%S}"
    common = {"obs_id": f"C7-{ctx.instrument}-{ctx.index:07d}", "gain": rnd.choice(("LOW", "HIGH")),
              "mode": rnd.choice(("SURVEY", "POINTED", "DEEP"))}
    specs: list[FileSpec] = []
    previous = None
    for level, (calib, ext) in LEVELS.items():
        relpath = f"{folder}c7_{ctx.instrument.lower()}_{level}_{stamp}_v{versions[level]}{ext}"
        relation = {"l0": None, "l1": RAW_TO_CALIBRATED, "l2": CALIBRATED_TO_DERIVED}[level]
        specs.append(FileSpec(
            relpath=relpath, mission=MISSION, satellite=MISSION, instrument=ctx.instrument,
            product=level, calib_level=calib, file_format="hdf5" if ext == ".h5" else "netcdf",
            start=start, end=end, target=target, ra=ra, dec=dec, exposure=exposure,
            version=versions[level], dataproduct_type="image" if wfi else "spectrum",
            parents=(previous,) if previous else (), relationship=relation,
            extra={**common, "created": later(end, minutes=20 + 90 * calib + rnd.randrange(30))}))
        previous = relpath
    return specs


def write(spec: FileSpec, path) -> None:
    """Write one COSMOS-7 file: HDF5 for l0, netCDF4 for l1 and l2."""
    if spec.file_format == "hdf5":
        _write_l0(spec, path)
    else:
        _write_nc(spec, path)


def packed_header(spec: FileSpec) -> str:
    """The ``/Metadata`` ``header`` attribute of an l0 file."""
    fields = [("OBS_ID", spec.extra["obs_id"]), ("OBS_START", iso(spec.start, ms=True, z=True)),
              ("OBS_END", iso(spec.end, ms=True, z=True)), ("TARGET", spec.target),
              ("RA", f"{spec.ra:.3f}"), ("DEC", f"{spec.dec:.3f}"), ("EXPOSURE", f"{spec.exposure:.1f}"),
              ("MODE", spec.extra["mode"]), ("GAIN", spec.extra["gain"])]
    if spec.fault == "missing_keywords":
        fields = [f for f in fields if f[0] not in _MISSING_H5]
    return "".join(f"{k}={v};" for k, v in imperfect(fields, spec))


def _write_l0(spec: FileSpec, path) -> None:
    import h5py
    import numpy as np

    rng = np.random.default_rng(spec.data_seed)
    wfi = spec.instrument == "WFI"
    inner = (32, 32) if wfi else (64,)
    itemsize = 2
    frame_bytes = itemsize * int(np.prod(inner))
    nframes = rows_for(spec.size_hint, frame_bytes + 8, 4)  # a frame and its time stamp
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    # No sieve buffer: it would write 64 kB of zeros around each small write of a sparse file.
    fapl.set_sieve_buf_size(0)
    fid = h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fapl=fapl)
    with h5py.File(fid) as f:
        f.attrs["mission"] = spec.mission
        f.attrs["spacecraft"] = spec.satellite
        if spec.fault != "missing_keywords":
            f.attrs["instrument"] = spec.instrument
        f.attrs["product_version"] = spec.version
        f.attrs["creation_date"] = iso(spec.extra["created"], z=True)
        meta = f.create_group("Metadata")
        # A fixed-length ASCII string, as instrument teams often pack their header.
        meta.attrs["header"] = np.bytes_(packed_header(spec))
        data = f.create_group("Data")
        name = "frames" if wfi else "readouts"
        frames = _dataset(data, name, (nframes, *inner), "<u2", spec.size_hint)
        times = _dataset(data, "frame_time", (nframes,), "<f8", spec.size_hint)
        n = written_rows(spec.size_hint, nframes, frame_bytes)
        frames[:n] = rng.poisson(400, (n, *inner)).astype("<u2")
        times[:n] = np.arange(n) * (spec.exposure / nframes)
        frames.attrs["units"] = "DN"
        times.attrs["units"] = "s since OBS_START"
        hk = f.create_group("Housekeeping")
        hk.create_dataset("detector_temperature", data=rng.normal(-80.0, 0.2, 16).astype("<f4"))


def _dataset(group, name: str, shape: tuple, dtype: str, sparse: int | None):
    """A contiguous dataset; when ``sparse``, its storage is reserved now and never filled."""
    import h5py

    if not sparse:
        return group.create_dataset(name, shape=shape, dtype=dtype)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # reserve the space at once...
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # ...but never write it: it stays a hole
    return group.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl)


def _write_nc(spec: FileSpec, path) -> None:
    import netCDF4
    import numpy as np

    rng = np.random.default_rng(spec.data_seed)
    wfi = spec.instrument == "WFI"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        attrs = {
            "Conventions": "CF-1.10, ACDD-1.3",
            "title": _TITLES[(spec.instrument, spec.product)],
            "summary": f"{spec.product.upper()} product of a {spec.exposure:g} s {spec.instrument} "
                       f"observation of {spec.target}",
            "institution": "COSMOS-7 Science Operations Centre",
            "project": "COSMOS-7",
            "platform": spec.satellite,
            "instrument": spec.instrument,
            "source": ",".join(p.rsplit("/", 1)[-1] for p in spec.parents),
            "processing_level": spec.product.upper(),
            "product_version": spec.version,
            "time_coverage_start": iso(spec.start, ms=True, z=True),
            "time_coverage_end": iso(spec.end, ms=True, z=True),
            "time_coverage_duration": f"PT{spec.exposure:g}S",
            "target_name": spec.target,
            "ra_targ": spec.ra,
            "dec_targ": spec.dec,
            "id": spec.name.rsplit(".", 1)[0],
            "naming_authority": "int.cosmos7",
            "date_created": iso(spec.extra["created"], z=True),
            "history": f"{iso(spec.extra['created'], z=True)} c7pipe {spec.version}: made from "
                       + ", ".join(p.rsplit("/", 1)[-1] for p in spec.parents),
        }
        if spec.fault == "missing_keywords":
            attrs = {k: v for k, v in attrs.items() if k not in _MISSING_NC}
        ds.setncatts(dict(imperfect(list(attrs.items()), spec)))
        if wfi:
            side = 32
            if spec.size_hint:
                side = max(side, int((spec.size_hint // 4) ** 0.5))
            ds.createDimension("y", side)
            ds.createDimension("x", side)
            name, dims, units = "radiance", ("y", "x"), "W m-2 sr-1 um-1"
        else:
            n = rows_for(spec.size_hint, 8, 512)  # wavelength and flux, 4 bytes each
            ds.createDimension("wavelength", n)
            wl = ds.createVariable("wavelength", "f4", ("wavelength",), contiguous=True, fill_value=False)
            wl.units = "nm"
            if spec.size_hint:
                wl[n - 1] = 900.0
            else:
                wl[:] = np.linspace(380.0, 900.0, n)
            name, dims, units = "flux", ("wavelength",), "W m-2 nm-1"
        var = ds.createVariable(name, "f4", dims, contiguous=True, fill_value=False)
        var.units = units
        var.long_name = f"{'calibrated' if spec.product == 'l1' else 'derived'} {name}"
        if spec.size_hint:
            # Writing the last element allocates the whole contiguous variable without
            # writing the rest (no fill value): the file gets its full size as a hole.
            var[tuple(d.size - 1 for d in var.get_dims())] = 0.0
        else:
            var[:] = rng.normal(1.0, 0.05, tuple(d.size for d in var.get_dims())).astype("f4")
        if spec.product == "l2":
            # Chunked and never written when sparse: unallocated chunks read as the fill value.
            q = ds.createVariable("quality", "u1", dims[-1:], zlib=True, fill_value=0)
            q.flag_values = np.array([0, 1, 2], dtype="u1")
            q.flag_meanings = "good suspect bad"
            if not spec.size_hint:
                q[:] = (rng.random(q.shape) < 0.02).astype("u1")
