"""What a user meant: the dataset named by an id, a start of one or a file path, and the stored
values close to a filter value that matches nothing (a mistyped mission or instrument).

Examples
--------
>>> close_values("cosmos7", ["COSMOS-7", "HELIOS-X", "LYRA"])
['COSMOS-7']
>>> close_values("wfi", ["HRS", "WFI"])
['WFI']
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from cosmoscope.errors import DatasetNotFoundError, InvalidArgumentError

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

#: The search filters whose values are names stored in the catalog, and the column of each.
NAMED_FILTERS = {"mission": "mission_id", "instrument": "instrument_type", "satellite": "satellite_name",
                 "product_type": "dataproduct_type"}
_ID = re.compile(r"^ds-[0-9a-f]{0,16}$|^[0-9a-f]{1,16}$")


def resolve_dataset(catalog: Catalog, ref: str) -> str:
    """The dataset id ``ref`` names: an id, a unique start of one (``ds-1a2b3c`` or ``1a2b3c``),
    or the path of a cataloged file. Raises :class:`DatasetNotFoundError` saying what was tried."""
    import polars as pl

    from cosmoscope.records import dataset_id_for

    ref = str(ref).strip()
    if not ref:
        raise InvalidArgumentError("give a dataset id (ds-...), a start of one, or a file path")
    obs = catalog.observations()
    if ref.startswith("ds-") and len(ref) == 19 and _ids(obs.filter(pl.col("dataset_id") == ref), 1):
        return ref
    if os.sep in ref or os.path.exists(ref):
        path = os.path.abspath(os.path.expanduser(ref))
        found = _ids(obs.filter(pl.col("dataset_id") == dataset_id_for(path)), 1) or \
            _ids(obs.filter(pl.col("file_path") == path), 2)
        if found:
            return found[0]
        raise DatasetNotFoundError(f"no dataset in {catalog.url} has the file {path}; catalog it with "
                                   f"`cosmoscope ingest {path}`")
    if _ID.match(ref.lower()):
        prefix = ref.lower() if ref.lower().startswith("ds-") else "ds-" + ref.lower()
        found = _ids(obs.filter(pl.col("dataset_id").str.starts_with(prefix)), 6)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise InvalidArgumentError(f"{ref!r} is the start of several dataset ids ({shown}); give more of it")
    raise DatasetNotFoundError(f"no dataset {ref!r} in {catalog.url}: give its id (ds-...), a unique start of "
                               "it, or its file path")


def _ids(lf, limit: int) -> list[str]:
    return lf.select("dataset_id").head(limit).collect()["dataset_id"].to_list()


def _key(text: str) -> str:
    """``text`` without case and punctuation: ``COSMOS-7``, ``cosmos_7`` and ``Cosmos 7`` agree."""
    return re.sub(r"[\W_]+", "", text.casefold())


def close_values(value: str, existing: Iterable[str], n: int = 3) -> list[str]:
    """The stored values that ``value`` may have meant: equal but for case and punctuation
    first, then near misses (difflib) among those keys."""
    existing = [e for e in dict.fromkeys(existing) if isinstance(e, str)]
    key = _key(value)
    same = [e for e in existing if _key(e) == key]
    if same:
        return same[:n]
    keys = {_key(e): e for e in existing}
    return [keys[k] for k in difflib.get_close_matches(key, list(keys), n=n, cutoff=0.6)]


def unmatched(catalog: Catalog, filters: Mapping[str, Iterable[str] | str | None]) -> list[str]:
    """One sentence for each filter value (``mission``, ``instrument``, ``satellite``,
    ``product_type``) that no observation in the catalog has, naming the close ones that exist.

    Each check costs one grouped count of the given values in the store; the whole column is
    read only for a value that is missing.
    """
    from cosmoscope.predicate import Predicate, Test
    from cosmoscope.store.base import Agg, aggregate

    notes = []
    for name, values in filters.items():
        column = NAMED_FILTERS.get(name)
        if column is None or not values:
            continue
        values = [values] if isinstance(values, str) else list(values)
        found = aggregate(catalog.store, "observations", [column], [Agg("n", "count")],
                          Predicate.of(Test(column, "is_in", tuple(values)))).column(column).to_pylist()
        missing = [v for v in values if v not in found]
        if not missing:
            continue
        everything = aggregate(catalog.store, "observations", [column], [Agg("n", "count")]).column(column)
        stored = sorted(v for v in everything.to_pylist() if v is not None)
        label = name.replace("_", " ")
        for v in missing:
            close = close_values(v, stored)
            if close:
                hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
            elif stored:
                hint = (f"the catalog has {label}s {', '.join(stored[:12])}" + (", ..." if len(stored) > 12 else ""))
            else:
                hint = f"no observation has any {label} yet"
            notes.append(f"no observation has {label} {v!r}; {hint}")
    return notes
