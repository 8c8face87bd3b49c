"""The plan of a simulated tree: which files, with which ground truth, in which order.

Planning writes nothing. Each group of files (one observation or one day: raw, calibrated,
derived products) is planned from its own random generator seeded by (seed, mission, group
number), so the plan is deterministic, any group can be planned on its own, and memory stays flat
in the number of files. Groups of all missions come out merged in order of observation start.
"""

from __future__ import annotations

import heapq
import importlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone

from cosmoscope.errors import InvalidArgumentError, UnknownNameError

DAY = 86400.0

#: Lineage edge types (values of :class:`cosmoscope.schema.RelationshipType`).
RAW_TO_CALIBRATED = "raw->calibrated"
CALIBRATED_TO_DERIVED = "calibrated->derived"

#: Everyday imperfections of readable files (``quirks=``), which cost quality points: no target
#: name recorded, no end time, a garbled end time, an exposure longer than the observation.
QUIRK_KINDS = ("no_target", "no_end", "garbled_end", "long_exposure")

#: Ways a file can be deliberately broken (``faults=``), and the formats each applies to.
FAULT_KINDS = ("truncated", "zero_bytes", "bad_checksum", "missing_keywords", "wrong_format")
_FAULTS_BY_FORMAT = {
    "fits": FAULT_KINDS,
    "hdf5": ("truncated", "zero_bytes", "missing_keywords", "wrong_format"),
    "netcdf": ("truncated", "zero_bytes", "missing_keywords", "wrong_format"),
    "csv": ("truncated", "zero_bytes", "missing_keywords"),
}


@dataclass(frozen=True)
class Mission:
    """A simulated mission: its spacecraft, instruments, formats and the module that writes it."""

    name: str
    satellite: str
    instruments: tuple[str, ...]
    formats: tuple[str, ...]
    module: str
    summary: str
    #: One group per instrument and day (daily files) instead of one per observation.
    daily: bool = False
    #: Observations of one instrument must start at least this many seconds apart.
    min_spacing: float = 0.0

    @property
    def writer(self):
        """The module that plans and writes this mission's files."""
        return importlib.import_module(f"cosmoscope.simulate.{self.module}")

    def capacity(self, days: int) -> int | None:
        """Most files the mission can have over ``days`` days (None: no limit)."""
        return 3 * len(self.instruments) * days if self.daily else None


MISSIONS: dict[str, Mission] = {m.name: m for m in (
    Mission("COSMOS-7", "COSMOS-7", ("WFI", "HRS"), ("hdf5", "netcdf"), "cosmos7",
            "new mission: raw HDF5 (l0), calibrated and derived netCDF4 (l1, l2)", min_spacing=2.0),
    Mission("HELIOS-X", "HELIOS-X", ("XIS",), ("fits",), "heliosx",
            "X-ray observatory: FITS event lists, images, spectra; some gzip-compressed"),
    Mission("LYRA", "LYRA", ("LYCAM",), ("fits",), "lyra",
            "optical survey: raw frames with legacy dates and HIERARCH keywords, "
            "tile-compressed reduced frames and stacks"),
    Mission("AURORA-2", "AURORA-2", ("MAG", "PES"), ("csv",), "aurora2",
            "Earth observation: daily CSV files, ECSV derived products, JSON sidecars",
            daily=True),
)}


@dataclass(frozen=True)
class FileSpec:
    """Everything needed to write one file, and the ground truth a catalog should find in it.

    ``relpath`` and ``parents`` are POSIX paths relative to the simulation root; ``extra``
    holds mission-specific header values.
    """

    relpath: str
    mission: str
    satellite: str
    instrument: str
    product: str
    calib_level: int
    file_format: str
    start: datetime
    end: datetime
    target: str | None
    ra: float | None
    dec: float | None
    exposure: float | None
    version: str | None
    dataproduct_type: str
    parents: tuple[str, ...] = ()
    relationship: str | None = None
    compression: str | None = None
    sidecar: str | None = None
    fault: str | None = None
    fault_detail: str | None = None
    quirks: tuple[str, ...] = ()
    size_hint: int | None = None
    data_seed: int = 0
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """File name without directories."""
        return self.relpath.rsplit("/", 1)[-1]


@dataclass
class GroupContext:
    """Where and when one group of files falls, handed to a mission's ``plan_group``."""

    mission: Mission
    index: int
    instrument: str
    slot_start: datetime
    slot_seconds: float
    rnd: random.Random
    #: Files planned by the mission's earlier groups (for running frame numbers).
    files_before: int
    #: Files in this group, as drawn by the mission's ``group_size``.
    size: int


def _utc(start) -> datetime:
    if isinstance(start, datetime):
        day = start.date()
    elif isinstance(start, date):
        day = start
    else:
        try:
            day = date.fromisoformat(str(start))
        except ValueError:
            raise InvalidArgumentError(
                f"start {start!r} is not a date; give it as YYYY-MM-DD, e.g. 2026-11-25") from None
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def resolve_missions(missions) -> tuple[Mission, ...]:
    """The :class:`Mission` objects for names given in any letter case; raises on unknown names."""
    if isinstance(missions, str):
        missions = (missions,)
    by_upper = {name.upper(): m for name, m in MISSIONS.items()}
    out: list[Mission] = []
    for name in missions:
        mission = by_upper.get(str(name).strip().upper())
        if mission is None:
            raise UnknownNameError("mission", name, MISSIONS)
        if mission not in out:
            out.append(mission)
    if not out:
        raise InvalidArgumentError(f"no mission given; choose from {', '.join(MISSIONS)}")
    return tuple(out)


def allocate(missions: Sequence[Mission], files: int, days: int) -> dict[str, int]:
    """Split ``files`` evenly across missions; a mission with a daily cap passes its excess on."""
    alloc = {m.name: 0 for m in missions}
    open_ = list(missions)
    remaining = files
    while remaining > 0 and open_:
        share, extra = divmod(remaining, len(open_))
        for i, m in enumerate(open_):
            alloc[m.name] += share + (1 if i < extra else 0)
        remaining = 0
        for m in list(open_):
            cap = m.capacity(days)
            if cap is not None and alloc[m.name] >= cap:
                remaining += alloc[m.name] - cap
                alloc[m.name] = cap
                open_.remove(m)
    return alloc


def check_arguments(files, days, seed, sparse_bytes, faults, quirks=0.0) -> None:
    """Raise :class:`InvalidArgumentError` with a one-sentence reason for an unusable value."""
    if isinstance(files, bool) or not isinstance(files, int) or files < 1:
        raise InvalidArgumentError(f"files must be a whole number of at least 1, not {files!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidArgumentError(f"days must be a whole number of at least 1, not {days!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"seed must be a whole number, not {seed!r}")
    if sparse_bytes is not None and (isinstance(sparse_bytes, bool) or not isinstance(sparse_bytes, int)
                                     or sparse_bytes < 1):
        raise InvalidArgumentError(
            f"sparse_bytes must be a positive number of bytes (e.g. 500_000_000) or None, "
            f"not {sparse_bytes!r}")
    if isinstance(faults, bool) or not isinstance(faults, (int, float)) or not 0.0 <= faults <= 1.0:
        raise InvalidArgumentError(f"faults must be a fraction between 0 and 1, not {faults!r}")
    if isinstance(quirks, bool) or not isinstance(quirks, (int, float)) or not 0.0 <= quirks <= 1.0:
        raise InvalidArgumentError(f"quirks must be a fraction between 0 and 1, not {quirks!r}")


def _rng(seed: int, mission: str, index: int) -> random.Random:
    return random.Random(f"cosmoscope-simulate:{seed}:{mission}:{index}")


def _group_sizes(mission: Mission, n_files: int, seed: int) -> list[int]:
    sizes: list[int] = []
    total = 0
    writer = mission.writer
    while total < n_files:
        size = writer.group_size(_rng(seed, mission.name, len(sizes)))
        sizes.append(size)
        total += size
    return sizes


def _first_of_day(day: int, count: int, days: int) -> int:
    return (day * count + days - 1) // days


def _mission_streams(mission: Mission, order: int, n_files: int, days: int, t0: datetime,
                     seed: int, sparse_bytes: int | None, faults: float, quirks: float = 0.0) -> list[Iterator]:
    sizes = _group_sizes(mission, n_files, seed)
    n_groups = len(sizes)
    ninstr = len(mission.instruments)
    before = [0] * n_groups
    for g in range(1, n_groups):
        before[g] = before[g - 1] + sizes[g - 1]
    takes = sizes[:-1] + [n_files - before[-1]] if n_groups else []

    def layout(g: int) -> tuple[str, datetime, float]:
        if mission.daily:
            pair = g * ninstr * days // n_groups
            return mission.instruments[pair % ninstr], t0 + timedelta(days=pair // ninstr), DAY
        i, j = g % ninstr, g // ninstr
        count = (n_groups - i + ninstr - 1) // ninstr
        day = j * days // count
        first, nxt = _first_of_day(day, count, days), _first_of_day(day + 1, count, days)
        slot = DAY / (nxt - first)
        start = t0 + timedelta(days=day, seconds=(j - first) * slot)
        return mission.instruments[i], start, slot

    def stream(groups: range) -> Iterator:
        for g in groups:
            instrument, slot_start, slot = layout(g)
            rnd = _rng(seed, mission.name, g)
            mission.writer.group_size(rnd)  # replay the draw _group_sizes made
            ctx = GroupContext(mission, g, instrument, slot_start, slot, rnd, before[g], sizes[g])
            specs = _finish(mission.writer.plan_group(ctx), rnd, sparse_bytes, faults, quirks)
            specs = specs[: takes[g]]
            # A group's observation starts inside its slot, before the next slot: sorted keys.
            yield (specs[0].start, order, g), specs

    if mission.daily:
        return [stream(range(n_groups))]
    if n_groups:
        busiest = -(-((n_groups + ninstr - 1) // ninstr) // days)
        if busiest > 1 and DAY / busiest < mission.min_spacing:
            raise InvalidArgumentError(
                f"{n_files} {mission.name} files over {days} day(s) need observations less than "
                f"{mission.min_spacing:g} s apart, which its file names (timed to the second) cannot "
                "tell apart; spread them over more days")
    return [stream(range(i, n_groups, ninstr)) for i in range(ninstr)]


def _finish(specs: list[FileSpec], rnd: random.Random, sparse_bytes: int | None,
            faults: float, quirks: float = 0.0) -> list[FileSpec]:
    out = []
    for spec in specs:
        # Always draw the same numbers, so that a different `faults` or `sparse_bytes` changes
        # nothing else in the plan.
        u_fault, u_size, u_cut = rnd.random(), rnd.uniform(0.9, 1.1), rnd.uniform(0.3, 0.9)
        kinds = _FAULTS_BY_FORMAT[spec.file_format]
        kind = kinds[rnd.randrange(len(kinds))]
        changes: dict = {"data_seed": rnd.getrandbits(32)}
        if sparse_bytes and spec.file_format != "csv":
            changes["size_hint"] = int(sparse_bytes * u_size)
        if u_fault < faults:
            changes["fault"] = kind
            changes["fault_detail"] = _fault_detail(spec, kind, u_cut)
            changes["extra"] = {**spec.extra, "cut": u_cut}
        elif quirks:
            changes.update(_quirks(spec, quirks))
        out.append(replace(spec, **changes))
    return out


def _quirks(spec: FileSpec, fraction: float) -> dict:
    """The everyday imperfections of one file (none for most), drawn from a generator of its
    own so that asking for them changes nothing else in the plan."""
    rnd = random.Random(f"cosmoscope-simulate-quirks:{spec.relpath}")
    if rnd.random() >= fraction:
        return {}
    kinds = tuple(k for k in QUIRK_KINDS if rnd.random() < 0.45) or (QUIRK_KINDS[rnd.randrange(len(QUIRK_KINDS))],)
    # A writer lists the keys each imperfection touches; an empty list: it cannot have that one.
    keys = {"long_exposure": ("exposure",) if spec.exposure else (), **MISSIONS[spec.mission].writer.quirk_keys(spec)}
    if "no_end" in kinds:
        kinds = tuple(k for k in kinds if k != "garbled_end")  # one or the other
    kinds = tuple(k for k in kinds if keys.get(k))
    if not kinds:
        return {}
    extra = {**spec.extra, "drop": tuple(key for k in ("no_target", "no_end") if k in kinds for key in keys[k]),
             "garble": keys["garbled_end"] if "garbled_end" in kinds else ()}
    changes: dict = {"quirks": kinds, "extra": extra}
    if "long_exposure" in kinds:
        changes["exposure"] = round((spec.end - spec.start).total_seconds() * 1.25, 1)
    return changes


def _fault_detail(spec: FileSpec, kind: str, cut: float) -> str:
    if kind == "truncated":
        return f"cut to {cut:.0%} of its length, as by an interrupted transfer"
    if kind == "zero_bytes":
        return "empty file (0 bytes)"
    if kind == "bad_checksum":
        return "CHECKSUM of the metadata HDU does not match its content"
    if kind == "missing_keywords":
        keys = MISSIONS[spec.mission].writer.missing_keys(spec)
        return "missing " + ", ".join(keys)
    return f"an HTML error page saved under the name of a {spec.file_format} file"


def iter_file_specs(missions: Sequence[str] = tuple(MISSIONS), files: int = 200, days: int = 3,
                    start="2026-11-25", seed: int = 0, sparse_bytes: int | None = None,
                    faults: float = 0.0, quirks: float = 0.0) -> Iterator[FileSpec]:
    """Plan a simulated tree without writing it, one :class:`FileSpec` at a time.

    Files come in order of observation start across missions; within an observation, inputs
    come before the products made from them. Arguments are those of
    :func:`cosmoscope.simulate.simulate`.

    Examples
    --------
    >>> specs = list(iter_file_specs(["HELIOS-X"], files=4, days=1))
    >>> [s.product for s in specs]
    ['evt1', 'evt2', 'img', 'spec']
    """
    chosen = resolve_missions(missions)
    check_arguments(files, days, seed, sparse_bytes, faults, quirks)
    t0 = _utc(start)
    alloc = allocate(chosen, files, days)
    streams = []
    for order, mission in enumerate(chosen):
        if alloc[mission.name]:
            streams += _mission_streams(mission, order, alloc[mission.name], days, t0, seed,
                                        sparse_bytes, float(faults), float(quirks))
    # Arguments are checked above, when called; the files are planned lazily, when iterated.
    return (spec for _key, specs in heapq.merge(*streams, key=lambda item: item[0]) for spec in specs)
