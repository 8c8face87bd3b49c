"""Facets: for each filterable property (mission, instrument, level, product type, statuses,
quality band, whether the metadata could be read), how many of the current matches have each
value. A facet's own filter is left out of its counts, so they say what choosing another value
would add, as in any faceted search.

Counts come from the rollups when the filters allow, else are grouped in the store (one
pushed-down query per facet, :func:`cosmoscope.ui.query.facet_counts`); imports no UI toolkit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cosmoscope.ui.columns import level_text
from cosmoscope.ui.query import EXTRACTION_WORDS, QUALITY_BANDS, Filters, facet_counts

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog


@dataclass(frozen=True)
class Facet:
    """A filter of :class:`~cosmoscope.ui.query.Filters` shown with counts."""

    field: str  # the Filters field it sets
    title: str
    column: str | None  # the observation column it counts (None: quality bands)

    def label(self, value) -> str:
        if self.field == "levels":
            return level_text(value)
        if self.field == "extraction":
            return EXTRACTION_WORDS.get(value, value)
        if self.field == "quality_bands":
            return QUALITY_BANDS[value][0]
        return str(value)

    def parse(self, text: str):
        """A value as the filter takes it (levels are numbers)."""
        return int(text) if self.field == "levels" else text


FACETS = (
    Facet("missions", "Mission", "mission_id"),
    Facet("instruments", "Instrument", "instrument_type"),
    Facet("levels", "Level", "calib_level"),
    Facet("product_types", "Product type", "dataproduct_type"),
    Facet("statuses", "Processing status", "processing_status"),
    Facet("calibrations", "Calibration", "calibration_status"),
    Facet("quality_bands", "Quality", None),
    Facet("extraction", "Metadata", "extraction_status"),
)
BY_FIELD = {f.field: f for f in FACETS}


def facet_items(cat: Catalog, facet: Facet, filters: Filters) -> list[dict]:
    """The values of ``facet`` with their counts among the matches of ``filters`` (without the
    facet's own filter): ``[{"value": text, "label": ..., "n": count}]``, most first; values
    chosen but matching nothing are kept (with 0) so they can be un-chosen."""
    others = filters.without(facet.field)
    chosen = [str(v) for v in getattr(filters, facet.field)]
    if facet.column is None:
        counts = quality_band_counts(cat, others)
        items = [{"value": k, "label": facet.label(k), "n": counts[k]} for k in QUALITY_BANDS]
        return [i for i in items if i["n"] or i["value"] in chosen]
    df = facet_counts(cat, facet.column, others)
    items = [{"value": str(v), "label": facet.label(v), "n": int(n)} for v, n in df.iter_rows() if v is not None]
    if facet.field == "levels":
        items.sort(key=lambda i: int(i["value"]))
    present = {i["value"] for i in items}
    return items + [{"value": v, "label": facet.label(facet.parse(v)), "n": 0} for v in chosen if v not in present]


def quality_band_counts(cat: Catalog, filters: Filters) -> dict[str, int]:
    """Matches of ``filters`` per quality band (:data:`~cosmoscope.ui.query.QUALITY_BANDS`): sums
    of the quality histogram (one read of the rollups when the filters allow), or a count per
    band where some score lies outside 0-1 (the histogram leaves those out)."""
    from cosmoscope import schema as S
    from cosmoscope.summaries import raw_grouped
    from cosmoscope.ui.query import count, filter_expr

    # sums only: the histogram needs no minima, so filters outside rollup_days (a level) still route
    raw, _ = raw_grouped(cat, filter_expr(cat, filters), [], sums_only=True)
    if raw.height and int(raw["q_odd"].sum() or 0) > 0:
        return {k: count(cat, filters.but(quality_bands=(k,))) for k in QUALITY_BANDS}

    def total(column: str) -> int:
        return int(raw[column].sum() or 0) if raw.height else 0

    out = {}
    for key, (_, low, high) in QUALITY_BANDS.items():
        if low is None:
            out[key] = total("n") - total("q_n")
            continue
        # Band edges are histogram edges (a ValueError here if a band ever stops being one).
        first = S.QUALITY_EDGES.index(low)
        last = S.QUALITY_EDGES.index(high) if high is not None else len(S.QUALITY_BINS)
        out[key] = sum(total(b) for b in S.QUALITY_BINS[first:last])
    return out
