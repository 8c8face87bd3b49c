"""The lazy frames' contract, checked by difference: any polars query on a catalog frame gives
exactly what the same query gives on the collected rows in memory, or raises the same error.

Random queries (``tests/querygen.py``) run over awkward rows on every backend. The default run
is sized for ``make test``; a long run is a matter of environment variables::

    COSMOSCOPE_DIFF_CASES=20000 COSMOSCOPE_DIFF_ROWS=5000 COSMOSCOPE_DIFF_SEED=7 \\
        .venv/bin/python -m pytest tests/test_differential.py -q

``COSMOSCOPE_DIFF_CASES`` is the number of random queries per backend (plus a quarter as many
searches); a failure names its seed and case number and prints the query as Python, and
``COSMOSCOPE_DIFF_ONLY=N`` runs case N alone.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import threading
from collections import Counter

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cosmoscope import schema as S
from cosmoscope.errors import CosmoscopeError
from cosmoscope.search import search_filter

from .conftest import module_store_url
from .querygen import HOT_SPOTS, STRINGS, TIMES, Query, QueryGen, awkward_rows, sky_rows

CASES = int(os.environ.get("COSMOSCOPE_DIFF_CASES", "250"))
ROWS = int(os.environ.get("COSMOSCOPE_DIFF_ROWS", "600"))
SEED = int(os.environ.get("COSMOSCOPE_DIFF_SEED", "2026"))
ONLY = os.environ.get("COSMOSCOPE_DIFF_ONLY")
TABLES = {"observations": 0.7, "dataset_relationships": 0.15, "events": 0.15}


class RecordingStore:
    """The real store, with every scan it is asked for written down."""

    def __init__(self, store):
        self._store = store
        self.scans: list[tuple] = []
        self._lock = threading.Lock()

    def scan(self, table, columns=None, predicate=None, limit=None, batch_size=None, **options):
        with self._lock:
            self.scans.append((table, list(columns) if columns is not None else None, str(predicate), limit))
        return self._store.scan(table, columns, predicate, limit, batch_size, **options)

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture(scope="module", autouse=True)
def small_read_steps():
    """Read steps small enough that a few hundred rows go through every way a store reads:
    growing first batches, the rows after them, and (SQLite) parallel rowid ranges."""
    from cosmoscope.store import lazy, sqlite_read

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lazy, "FIRST_ROWS", 16)
        mp.setattr(sqlite_read, "GROW_UNTIL", 100)
        mp.setattr(sqlite_read, "PARALLEL_MIN", 50)
        mp.setattr(sqlite_read, "RANGE_ROWIDS", 37)
        yield


@pytest.fixture(scope="module", params=["sqlite", "vast"])
def loaded(request, tmp_path_factory):
    """A catalog of awkward rows on each backend, and those rows as read back."""
    import cosmoscope
    from cosmoscope.catalog import Catalog
    from cosmoscope.store.base import open_store

    with pytest.MonkeyPatch.context() as mp:
        url = module_store_url(request, tmp_path_factory, mp, "diff")
        cosmoscope.open_catalog(url).close()  # creates the tables
        store = RecordingStore(open_store(url))
        cat = Catalog(store, actor="differential@tests")
        frames = {}
        for i, table in enumerate(TABLES):
            spec = S.table_spec(table)
            store.upsert(spec.name, rows_of(spec, SEED + i), spec.key)
            frames[spec.name] = cat.frame(spec.name).collect()
            assert frames[spec.name].height == ROWS
        yield request.param, cat, frames
        cat.close()


def rows_of(spec, seed: int):
    """The awkward rows of a table; observations also get sky positions and footprints, with
    the derived sky columns the catalog computes on every write."""
    rows = awkward_rows(spec.schema, list(spec.key), ROWS, seed)
    return sky_rows(rows, seed) if spec.name == "observations" else rows


def outcome(run):
    try:
        return "rows", run()
    except (pl.exceptions.PolarsError, CosmoscopeError, TypeError, ValueError, OverflowError) as exc:
        return "error", type(exc).__name__


def differs(q: Query, got, want) -> str | None:
    """Why the catalog's answer differs from polars', or None."""
    if got[0] != want[0] or got[0] == "error":
        return None if got == want else f"catalog: {got[0]} {got[1] if got[0] == 'error' else ''}; " \
                                         f"polars: {want[0]} {want[1] if want[0] == 'error' else ''}"
    g, w = got[1], want[1]
    if g.schema != w.schema:
        return f"schema {g.schema} != {w.schema}"
    if q.any_rows:  # head() of an unordered frame: any rows of the full answer will do
        if g.height != w.height:
            return f"{g.height} rows, polars {w.height}"
        extra = Counter(g.rows()) - Counter(want[2])  # want[2]: the full answer's rows
        return f"rows not in the full answer: {list(extra)[:3]}" if extra else None
    if not q.ordered:
        g, w = g.sort(g.columns, nulls_last=True), w.sort(w.columns, nulls_last=True)
    try:
        assert_frame_equal(g, w, check_exact=True)
    except AssertionError as exc:
        return f"{g.height} rows, polars {w.height}: {str(exc)[:300]}"
    return None


def run_case(cat, frames, q: Query):
    got = outcome(lambda: q.apply(cat.frame(q.table)).collect())
    want = outcome(lambda: q.apply(frames[q.table].lazy()).collect())
    if q.any_rows and want[0] == "rows":
        without_head = Query(q.table, q.steps[:-1])
        full = outcome(lambda: without_head.apply(frames[q.table].lazy()).collect())
        want = (*want, full[1].rows() if full[0] == "rows" else [])
    return got, want


def queries(frames, seed: int, n: int):
    rng = random.Random(seed)
    gens = {t: QueryGen(t, frames[t], list(S.table_spec(t).key), rng) for t in TABLES}
    for i in range(n):
        table = rng.choices(list(TABLES), weights=list(TABLES.values()))[0]
        yield i, gens[table].query()


@pytest.mark.timeout(max(300, CASES // 10))
def test_random_queries_agree_with_polars(loaded):
    backend, cat, frames = loaded
    failures, kinds = [], Counter()
    for i, q in queries(frames, SEED, CASES):
        if ONLY is not None and i != int(ONLY):
            continue
        got, want = run_case(cat, frames, q)
        kinds[want[0]] += 1
        why = differs(q, got, want)
        if why and got[0] != want[0]:
            eager = outcome(lambda: q.apply_eagerly(frames[q.table]))
            if not differs(q, got, (*eager, *want[2:])):
                kinds["polars disagrees with itself"] += 1
                continue
        if why:
            failures.append(f"case {i} (seed {SEED}, {backend}): {why}\n    {q.code}")
    print(f"{backend}: {CASES} queries: {dict(kinds)}")
    assert not failures, f"{len(failures)} of {CASES} queries differ from polars:\n" + "\n".join(failures[:15])
    assert ONLY or kinds["rows"] > CASES // 2  # the generator mostly makes queries polars accepts


def search_kwargs(rng: random.Random, df: pl.DataFrame) -> dict:
    def seen(column):
        return df[column][rng.randrange(df.height)]

    kw = {}
    for name, column in [("mission", "mission_id"), ("instrument", "instrument_type"), ("satellite", "satellite_name"),
                         ("product_type", "dataproduct_type"), ("file_format", "file_format")]:
        if rng.random() < 0.25:
            values = [v for v in (seen(column) for _ in range(rng.randrange(1, 4))) if v is not None] or ["LYRA"]
            kw[name] = values[0] if len(values) == 1 else values
    if rng.random() < 0.3:
        name = seen("target_object") or rng.choice(STRINGS[1:]) or "M31"
        form = rng.random()
        kw["target"] = name if form < 0.5 else (name[:3] + "*") if form < 0.75 else f"*{name[1:4]}*"
    for bound in ("start", "end"):
        if rng.random() < 0.3:
            t = rng.choice([t for t in TIMES if t is not None and 1 < t.year < 9999])
            kw[bound] = rng.choice([t, t.replace(tzinfo=None), t.date(), t.isoformat(), t.strftime("%Y-%m-%dT%H:%M:%S")])
    if rng.random() < 0.3:
        kw["min_quality"] = rng.choice([0.0, 0.5, 0.9999999999999999, 1.0, 5e-324, 0.30000000000000004])
    if rng.random() < 0.15:
        kw["status"] = rng.choice([s.value for s in S.ProcessingStatus])
    if rng.random() < 0.15:
        kw["calibration"] = rng.choice([s.value for s in S.CalibrationStatus])
    if rng.random() < 0.15:
        kw["calib_level"] = rng.randrange(0, 5)
    return kw


def test_search_agrees_with_polars(loaded):
    backend, cat, frames = loaded
    rng = random.Random(SEED + 1)
    df = frames["observations"]
    failures = []
    for i in range(max(CASES // 4, 20)):
        kw = search_kwargs(rng, df)
        try:
            expr = search_filter(**kw)
        except CosmoscopeError as exc:
            with pytest.raises(type(exc)):
                cat.search(**kw)
            continue
        got = outcome(lambda: cat.search(**kw).collect())
        want = outcome(lambda: (df.lazy().filter(expr) if expr is not None else df.lazy()).collect())
        why = differs(Query("observations"), got, want)
        if why:
            failures.append(f"search case {i} ({backend}): {why}\n    cat.search(**{kw!r})")
    assert not failures, "\n".join(failures[:15])


def brute_force_cone(ra0: float, dec0: float, radius: float) -> pl.Expr:
    """Positions within ``radius`` degrees of (ra0, dec0), by the haversine formula in polars."""
    rad = math.pi / 180
    ra, dec = pl.col("ra"), pl.col("dec")
    h = ((dec - dec0) * rad / 2).sin() ** 2 + (dec * rad).cos() * math.cos(dec0 * rad) * (
        (ra - ra0) * rad / 2).sin() ** 2
    distance = 2 * h.clip(0.0, 1.0).sqrt().arcsin() / rad
    return on_sky() & (distance <= radius)


def on_sky() -> pl.Expr:
    return pl.col("ra").is_between(0.0, 360.0) & pl.col("dec").is_between(-90.0, 90.0)


def brute_force_box(ra_min: float, ra_max: float, dec_min: float, dec_max: float) -> pl.Expr:
    width = (ra_max - ra_min) % 360.0
    ra_ok = ((pl.col("ra") - ra_min) % 360.0) <= width
    pole = ((pl.col("dec") == 90.0) & (dec_max == 90.0)) | ((pl.col("dec") == -90.0) & (dec_min == -90.0))
    return on_sky() & pl.col("dec").is_between(dec_min, dec_max) & (ra_ok | pole)


def sky_case(rng: random.Random) -> tuple[dict, pl.Expr | None]:
    """Keyword arguments of a sky search, and the brute-force filter of positions it must equal
    (None for polygons: their positions are checked by the geometry tests)."""
    ra, dec = rng.choice(HOT_SPOTS)
    ra = (ra + rng.uniform(-1, 1)) % 360.0
    dec = max(-90.0, min(90.0, dec + rng.uniform(-1, 1)))
    form = rng.random()
    if form < 0.6:
        radius = rng.choice([2e-4, 0.0123, 0.5, 1.7, 5.0, 23.4, 95.0, 180.0])
        near = rng.choice([f"{ra!r} {dec!r}", (ra, dec), f"{ra!r}, {dec!r}"])
        return {"near": near, "radius": radius}, brute_force_cone(ra, dec, radius)
    if form < 0.85:
        w, h = rng.choice([0.01, 1.3, 7.0, 40.0]), rng.choice([0.02, 2.2, 9.0])
        box = ((ra - w / 2) % 360.0, (ra + w / 2) % 360.0, max(-90.0, dec - h / 2), min(90.0, dec + h / 2))
        return {"box": box}, brute_force_box(*box)
    size = rng.choice([0.01, 1.0, 6.0])
    poly = [((ra + dx * size / max(0.05, math.cos(math.radians(dec)))) % 360.0, max(-89.99, min(89.99, dec + dy * size)))
            for dx, dy in ((-1, -1), (1, -1.2), (1.1, 1), (-0.8, 1.3))]
    return {"polygon": poly}, None


def test_sky_searches_agree_with_brute_force(loaded):
    """Cones, boxes and polygons near the poles and across RA 0/360: the positions found equal a
    brute-force distance filter in polars, and footprints that overlap count, whatever the
    pushed sky_index ranges read."""
    from cosmoscope.sky.positions import shape_of
    from cosmoscope.sky.search import exact_filter

    backend, cat, frames = loaded
    df = frames["observations"]
    has_footprint = pl.col("s_region").is_not_null() | (pl.col("s_fov") > 0)
    rng = random.Random(SEED + 4)
    failures, found = [], 0
    for i in range(max(CASES // 5, 40)):
        kw, brute = sky_case(rng)
        footprints = rng.random() < 0.8
        extra = search_kwargs(rng, df) if rng.random() < 0.3 else {}
        shape = shape_of(cat, kw.get("near"), kw.get("radius"), kw.get("box"), kw.get("polygon"), footprints)
        if brute is None:
            brute = exact_filter(shape.__class__(shape.vertices, footprints=False))
        want_expr = brute | (has_footprint & exact_filter(shape)) if footprints else brute
        try:
            other = search_filter(**extra)
        except CosmoscopeError:
            continue  # refused filters: test_search_agrees_with_polars checks the refusal
        if other is not None:
            want_expr = want_expr & other
        got = outcome(lambda: cat.search(**kw, **extra, footprints=footprints).collect())
        want = outcome(lambda: df.lazy().filter(want_expr).collect())
        found += want[1].height if want[0] == "rows" else 0
        why = differs(Query("observations"), got, want)
        if why:
            failures.append(f"sky case {i} ({backend}): {why}\n    cat.search(**{kw!r}, **{extra!r}, "
                            f"footprints={footprints})")
    assert not failures, "\n".join(failures[:10])
    assert found > CASES // 5  # the searches find rows, not only empty answers


def test_search_heads_and_orders_agree_with_polars(loaded, monkeypatch):
    """search(...).head(n) hands the store a limit; search(sort=...) an order; a filter on top
    makes the store read small first batches. Each gives what polars gives on the same rows.
    SQLite looks for an ordered head among the first rows of an index (ORDER_WINDOW, made small
    here so that both the window and the scan after a window too sparse are taken)."""
    from cosmoscope.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "ORDER_WINDOW", 37)
    backend, cat, frames = loaded
    rng = random.Random(SEED + 4)
    df = frames["observations"]
    failures = []
    for i in range(max(CASES // 4, 20)):
        kw = search_kwargs(rng, df)
        try:
            expr = search_filter(**kw)
        except CosmoscopeError:
            continue
        full = df.lazy().filter(expr) if expr is not None else df.lazy()
        n = rng.choice([0, 1, 3, 20, 1500])
        column = rng.choice(["observation_timestamp", "data_quality_score", "mission_id", "file_size", "calib_level"])
        descending = rng.random() < 0.5
        extra = rng.choice([None, pl.col("exposure_time") > 0, pl.col("target_object").is_null()])
        cases = [
            ("head", Query("observations", any_rows=True),
             lambda: cat.search(**kw).head(n), lambda: full.head(n), full),
            ("sorted head", Query("observations", ordered=True),
             lambda: cat.search(**kw, sort=column, descending=descending).head(n),
             lambda: full.sort([column, "dataset_id"], descending=[descending, False], nulls_last=True).head(n), None),
            ("sorted slice", Query("observations", ordered=True),
             lambda: cat.search(**kw, sort=column, descending=descending).slice(n, 7).select(column, "dataset_id"),
             lambda: full.sort([column, "dataset_id"], descending=[descending, False], nulls_last=True)
             .slice(n, 7).select(column, "dataset_id"), None),
        ]
        by_id = full.sort("dataset_id")
        after = rng.choice([None, *df["dataset_id"].sample(2, seed=i).to_list()]) if df.height else None
        if after is not None:
            by_id = by_id.filter(pl.col("dataset_id") > after)
        offset = rng.choice([0, 0, 2, 40])
        cases.append(("search_page", Query("observations", ordered=True),
                      lambda: cat.search_page(n, offset=offset, after=after, **kw).lazy(),
                      lambda: by_id.slice(offset, n), None))
        if extra is not None:
            cases.append(("filtered head", Query("observations", any_rows=True),
                          lambda: cat.search(**kw).filter(extra).head(n), lambda: full.filter(extra).head(n),
                          full.filter(extra)))
        for name, q, got_fn, want_fn, whole in cases:
            got = outcome(lambda: got_fn().collect())
            want = outcome(lambda: want_fn().collect())
            if q.any_rows and want[0] == "rows":
                want = (*want, whole.collect().rows())
            why = differs(q, got, want)
            if why:
                failures.append(f"{name} case {i} ({backend}): {why}\n    cat.search(**{kw!r}) n={n} "
                                f"sort={column} descending={descending} extra={extra}")
    assert not failures, "\n".join(failures[:15])


def test_explain_says_what_the_store_received(loaded):
    from cosmoscope.store.lazy import pushdowns

    backend, cat, frames = loaded
    store = cat.store
    for i, q in queries(frames, SEED + 2, 60):
        lf = q.apply(cat.frame(q.table))
        try:
            said = pushdowns(lf)
        except (pl.exceptions.PolarsError, CosmoscopeError):
            continue  # a query polars refuses; test_random_queries checks the error itself
        with store._lock:
            store.scans.clear()
        if outcome(lf.collect)[0] == "error":
            continue  # refused by a filter polars keeps above the scan, once it sees rows
        received = sorted(map(repr, store.scans))
        expected = sorted(repr((p.table, p.columns, str(p.predicate), p.limit)) for p in said)
        assert received == expected, f"case {i}: explain said {expected}, the store received {received}\n{q.code}"


def test_the_same_answers_from_eight_threads_while_others_write_and_explain(loaded):
    """Queries, explain, writes and direct scans at once: every query answers as it did alone."""
    backend, cat, frames = loaded
    fresh = ~pl.col("dataset_id").str.starts_with("w-")  # rows the writers add are not asked for
    df = frames["observations"]
    cases = []
    for _i, q in queries({**frames, "observations": df}, SEED + 3, 200):
        if q.table != "observations" or q.any_rows:
            continue
        q.steps.insert(0, (".filter(fresh)", lambda lf: lf.filter(fresh), fresh))
        want = outcome(lambda q=q: q.apply(df.lazy()).collect())
        if want[0] == "rows":
            cases.append((q, want))
    cases = cases[:24]
    errors: list[str] = []
    stop = threading.Event()

    def reader(k):
        for q, want in cases[k::4] * 2:
            got = outcome(lambda q=q: q.apply(cat.observations()).collect())
            why = differs(q, got, want)
            if why:
                errors.append(f"reader {k}: {why}\n    {q.code}")

    def explainer():
        while not stop.is_set():
            cat.explain(cat.observations().filter(pl.col("mission_id") == "LYRA").head(1))

    def writer(k):
        n = 0
        while not stop.is_set() and n < 200:
            cat.add_records([{"dataset_id": f"w-{k}-{n}", "file_path": f"/w/{k}/{n}.fits", "mission_id": "LYRA"}])
            cat.log_event("note", dataset_id=f"w-{k}-{n}")
            n += 1

    def scanner():
        from cosmoscope.predicate import Predicate, Test

        pred = Predicate.of(Test("calib_level", "is_not_null"))
        want = df.filter(pl.col("calib_level").is_not_null()).height
        while not stop.is_set():
            # the writers' rows have no calib_level, so the count stays what it was
            rows = sum(b.num_rows for b in cat.store.scan("observations", ["dataset_id", "calib_level"], pred))
            if rows != want:
                errors.append(f"a direct scan found {rows} rows, expected {want}")

    readers = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    others = [threading.Thread(target=explainer), threading.Thread(target=writer, args=(0,)),
              threading.Thread(target=writer, args=(1,)), threading.Thread(target=scanner)]
    for t in readers + others:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    for t in others:
        t.join()
    assert not errors, "\n".join(errors[:10])


def test_awkward_rows_survive_the_round_trip(loaded):
    """The rows the differential test compares against are the rows that were written."""
    backend, cat, frames = loaded
    spec = S.table_spec("observations")
    written = pl.from_arrow(rows_of(spec, SEED))
    back = frames["observations"].sort("dataset_id")
    # the stores keep NaN as null and -0.0 as 0.0; nothing else changes
    floats = [c for c, t in written.schema.items() if t.is_float()]
    written = written.with_columns(pl.col(floats).fill_nan(None) + 0.0).sort("dataset_id")
    assert_frame_equal(back, written, check_exact=True)
    assert (back["exposure_time"] == 0.0).sum() == (written["exposure_time"] == 0.0).sum()
    assert dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc) in back["observation_timestamp"].to_list()
