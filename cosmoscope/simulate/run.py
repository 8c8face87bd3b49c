"""``simulate()``: plan a tree, write it (in a process pool when large), return the ground truth."""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from cosmoscope.errors import InvalidArgumentError
from cosmoscope.simulate.plan import (
    MISSIONS,
    FileSpec,
    allocate,
    check_arguments,
    iter_file_specs,
    resolve_missions,
)

MANIFEST_NAME = "manifest.parquet"
_BATCH = 200
_PARALLEL_FROM = 2000  # below this, starting worker processes costs more than it saves
_MANIFEST_COLUMNS = ("path", "relpath", "mission", "satellite", "instrument", "product",
                     "calib_level", "file_format", "compression", "start", "end", "target", "ra",
                     "dec", "exposure", "version", "dataproduct_type", "parents", "relationship",
                     "sidecar", "fault", "fault_detail", "quirks", "apparent_bytes", "disk_bytes")


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote, and the ground truth a catalog of it should match.

    Attributes
    ----------
    root : Path
        Root of the tree.
    files : dict
        Files written, ``{mission: {file_format: count}}`` (sidecars not included).
    apparent_bytes, disk_bytes : int
        Total size of everything written as ``ls`` shows it, and as it occupies the disk
        (``st_blocks``); sparse files make the first much larger than the second.
    sidecars : int
        JSON sidecar files written beside AURORA-2 l1a files.
    faults : dict
        Deliberately broken files by kind.
    manifest : polars.DataFrame
        One row per data file: absolute ``path``, ``relpath``, mission, satellite, instrument,
        product, calib_level, file_format, compression, start, end (UTC), target, ra, dec,
        exposure, version, dataproduct_type, ``parents`` (absolute paths), relationship,
        sidecar, fault, fault_detail, ``quirks`` (the everyday imperfections, comma separated), apparent_bytes,
        disk_bytes. A file whose target name was left out has no target here either.
    lineage : polars.DataFrame
        ``parent_path, child_path, relationship_type``, one row per edge.
    """

    root: Path
    files: dict[str, dict[str, int]]
    apparent_bytes: int
    disk_bytes: int
    sidecars: int
    faults: dict[str, int]
    manifest: object
    lineage: object
    seconds: float
    manifest_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_files(self) -> int:
        """Number of data files written."""
        return sum(sum(by_format.values()) for by_format in self.files.values())

    @property
    def edges(self) -> list[tuple[str, str, str]]:
        """Lineage edges as ``(parent_path, child_path, relationship_type)`` tuples."""
        return list(self.lineage.iter_rows())

    def as_dict(self) -> dict:
        """The summary as plain Python values (no frames), e.g. for JSON."""
        return {"root": str(self.root), "files": self.files, "total_files": self.total_files,
                "sidecars": self.sidecars, "apparent_bytes": self.apparent_bytes,
                "disk_bytes": self.disk_bytes, "faults": self.faults, "edges": self.lineage.height,
                "seconds": round(self.seconds, 3), "notes": list(self.notes)}

    def __repr__(self) -> str:
        per_mission = ", ".join(f"{m} {sum(c.values())}" for m, c in self.files.items())
        return (f"<SimulationResult {self.total_files} files ({per_mission}) in {self.root}: "
                f"{_human(self.apparent_bytes)} apparent, {_human(self.disk_bytes)} on disk, "
                f"{self.lineage.height} lineage edges, {sum(self.faults.values())} faulty>")

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><td>{escape(m)}</td><td>{escape(f)}</td><td>{n}</td></tr>"
                       for m, by in self.files.items() for f, n in by.items())
        return (f"<b>Simulated tree</b> <code>{escape(str(self.root))}</code>: {self.total_files} "
                f"files, {_human(self.apparent_bytes)} apparent, {_human(self.disk_bytes)} on disk, "
                f"{self.lineage.height} lineage edges, faults {escape(str(self.faults or 'none'))}"
                f"<table><tr><th>mission</th><th>format</th><th>files</th></tr>{rows}</table>")


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _write_batch(specs: list[FileSpec], root: str) -> list[tuple[int, int, int, int]]:
    """Write specs; return (apparent, disk, sidecar apparent, sidecar disk) bytes for each."""
    from cosmoscope.simulate.writer import render

    out = []
    for spec in specs:
        path = Path(root) / spec.relpath
        render(spec, path)
        st = os.stat(path)
        side = (0, 0)
        if spec.sidecar:
            ss = os.stat(Path(root) / spec.sidecar)
            side = (ss.st_size, ss.st_blocks * 512)
        out.append((st.st_size, st.st_blocks * 512, *side))
    return out


def _batches(iterable, n: int):
    it = iter(iterable)
    while batch := list(islice(it, n)):
        yield batch


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def simulate(root, missions: Sequence[str] = tuple(MISSIONS), files: int = 200, days: int = 3,
             start="2026-11-25", seed: int = 0, sparse_bytes: int | None = None,
             faults: float = 0.0, quirks: float = 0.0, progress: bool = True, workers: int | None = None,
             write_manifest: bool = True) -> SimulationResult:
    """Write a realistic multi-mission tree of observation files, and return its ground truth.

    Parameters
    ----------
    root : str or Path
        Directory to write into (created if needed; existing files of the same names are
        overwritten).
    missions : sequence of str
        Any of ``MISSIONS`` (COSMOS-7, HELIOS-X, LYRA, AURORA-2), in any letter case.
    files : int
        Number of data files in total, split evenly across missions and days. AURORA-2 writes
        daily files, so it holds at most 6 a day; its share beyond that goes to the others.
    days : int
        Observations are spread over this many days from ``start``.
    start : str or date
        First day, ``YYYY-MM-DD`` (UTC).
    seed : int
        Same seed, same arguments: same paths and same bytes.
    sparse_bytes : int, optional
        Make each FITS/HDF5/netCDF file about this large (±10 %) by declaring data it never
        writes: the file is mostly holes and costs almost no disk, yet opens in its library.
        Compressed files (``.fits.gz``, tile-compressed) and CSV stay small.
    faults : float
        Fraction of files deliberately broken (truncated, empty, wrong CHECKSUM, missing
        required keywords, an HTML page under a data file's name); see ``manifest["fault"]``.
    quirks : float
        Fraction of the other files given the everyday imperfections of real archives, which
        lower their quality score: no target name, no end time or a garbled one, an exposure
        longer than the observation; see ``manifest["quirks"]``.
    progress : bool
        Show a progress bar (tqdm).
    workers : int, optional
        Worker processes; by default one per CPU (at most 8) from 2000 files on, else none.
    write_manifest : bool
        Also write the manifest as ``manifest.parquet`` in ``root``.

    Returns
    -------
    SimulationResult

    Examples
    --------
    >>> from cosmoscope.simulate import simulate
    >>> result = simulate("/tmp/sky", files=40, days=1, progress=False)  # doctest: +SKIP
    >>> result.manifest.group_by("mission").len()  # doctest: +SKIP
    """
    import polars as pl
    from tqdm.auto import tqdm

    chosen = resolve_missions(missions)
    check_arguments(files, days, seed, sparse_bytes, faults, quirks)
    alloc = allocate(chosen, files, days)
    planned = sum(alloc.values())
    notes = []
    if planned < files:
        names = ", ".join(m.name for m in chosen)
        notes.append(f"only {planned} of {files} files fit: {names} write daily files "
                     "(at most 6 a day); add days or another mission for more")
        warnings.warn(notes[-1], stacklevel=2)
    specs = iter_file_specs([m.name for m in chosen], files, days, start, seed, sparse_bytes, faults, quirks)
    root = Path(root).absolute()
    if root.exists() and not root.is_dir():
        raise InvalidArgumentError(f"{root} is a file; give a directory to write the tree into")
    root.mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = _default_workers() if planned >= _PARALLEL_FROM else 1

    t0 = time.perf_counter()
    acc = _Accumulator(root, [m.name for m in chosen if alloc[m.name]])
    bar = tqdm(total=planned, unit="file", desc="simulate", disable=not progress)
    try:
        if workers <= 1:
            for batch in _batches(specs, _BATCH):
                acc.add(batch, _write_batch(batch, str(root)))
                bar.update(len(batch))
        else:
            _run_pool(specs, root, workers, acc, bar)
    finally:
        bar.close()
    manifest, lineage = acc.frames(pl)
    manifest_path = None
    if write_manifest:
        manifest_path = root / MANIFEST_NAME
        manifest.write_parquet(manifest_path)
    return SimulationResult(
        root=root, files=acc.counts, apparent_bytes=acc.apparent, disk_bytes=acc.disk,
        sidecars=acc.sidecars, faults=dict(sorted(acc.faults.items())), manifest=manifest,
        lineage=lineage, seconds=time.perf_counter() - t0, manifest_path=manifest_path, notes=notes)


def _run_pool(specs, root: Path, workers: int, acc: _Accumulator, bar) -> None:
    import multiprocessing

    # fork: workers need no re-import of the caller's script (which may lack a __main__ guard).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: dict = {}
        done_out: dict[int, tuple] = {}
        next_out = 0
        batches = enumerate(_batches(specs, _BATCH))
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * workers:  # bounded: memory stays flat
                try:
                    index, batch = next(batches)
                except StopIteration:
                    exhausted = True
                    break
                pending[pool.submit(_write_batch, batch, str(root))] = (index, batch)
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index, batch = pending.pop(future)
                done_out[index] = (batch, future.result())
                bar.update(len(batch))
            while next_out in done_out:  # keep the manifest in plan order
                acc.add(*done_out.pop(next_out))
                next_out += 1


class _Accumulator:
    """Collects manifest rows column-wise and flushes them into frames every few thousand."""

    def __init__(self, root: Path, missions: Sequence[str]):
        self.root = root
        self.prefix = str(root) + os.sep
        self.counts: dict[str, dict[str, int]] = {name: {} for name in missions}
        self.apparent = self.disk = self.sidecars = 0
        self.faults: Counter = Counter()
        self._rows: list[tuple] = []
        self._edges: list[tuple] = []
        self._chunks: list = []
        self._edge_chunks: list = []

    def add(self, specs: list[FileSpec], sizes: list[tuple[int, int, int, int]]) -> None:
        p = self.prefix
        for s, (apparent, disk, side_apparent, side_disk) in zip(specs, sizes, strict=True):
            by = self.counts.setdefault(s.mission, {})
            by[s.file_format] = by.get(s.file_format, 0) + 1
            self.apparent += apparent + side_apparent
            self.disk += disk + side_disk
            self.sidecars += bool(s.sidecar)
            if s.fault:
                self.faults[s.fault] += 1
            parents = [p + q for q in s.parents]
            self._rows.append((
                p + s.relpath, s.relpath, s.mission, s.satellite, s.instrument, s.product,
                s.calib_level, s.file_format, s.compression, s.start, s.end,
                None if "no_target" in s.quirks else s.target, s.ra, s.dec,
                s.exposure, s.version, s.dataproduct_type, parents, s.relationship,
                p + s.sidecar if s.sidecar else None, s.fault, s.fault_detail, ",".join(s.quirks) or None,
                apparent, disk))
            self._edges += [(q, p + s.relpath, s.relationship) for q in parents]
        if len(self._rows) >= 20_000:
            self._flush()

    def _flush(self) -> None:
        import polars as pl

        if self._rows:
            self._chunks.append(pl.DataFrame(self._rows, schema=_manifest_schema(pl), orient="row"))
            self._rows = []
        if self._edges:
            self._edge_chunks.append(pl.DataFrame(self._edges, schema=_edge_schema(pl), orient="row"))
            self._edges = []

    def frames(self, pl):
        self._flush()
        manifest = pl.concat(self._chunks) if self._chunks else pl.DataFrame(schema=_manifest_schema(pl))
        lineage = (pl.concat(self._edge_chunks) if self._edge_chunks
                   else pl.DataFrame(schema=_edge_schema(pl)))
        return manifest, lineage


def _edge_schema(pl) -> dict:
    return {"parent_path": pl.String, "child_path": pl.String, "relationship_type": pl.String}


def _manifest_schema(pl) -> dict:
    utc = pl.Datetime("us", "UTC")
    types = {"calib_level": pl.Int32, "start": utc, "end": utc, "ra": pl.Float64, "dec": pl.Float64,
             "exposure": pl.Float64, "parents": pl.List(pl.String), "apparent_bytes": pl.Int64,
             "disk_bytes": pl.Int64}
    return {name: types.get(name, pl.String) for name in _MANIFEST_COLUMNS}
