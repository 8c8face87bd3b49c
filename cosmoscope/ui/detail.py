"""Everything the catalog knows of one dataset, laid out for reading: each field with its value
and where the value came from, the mission's own keywords, the audit trail, and the datasets it
was made from and made into.

``field_sources`` records, per field, the header keyword, attribute, path part or profile
rule that gave it; :func:`source_text` puts that in words.

>>> source_text("FITS[1]:TELESCOP")
'FITS header of HDU 1, keyword TELESCOP'
>>> source_text("path:{yyyy}/{mm}/{dd}")
'the file path ({yyyy}/{mm}/{dd})'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from cosmoscope import schema as S
from cosmoscope.ui.columns import HEADINGS, human_bytes, level_text

if TYPE_CHECKING:
    import polars as pl

    from cosmoscope.catalog import Catalog

#: Where fields that no extraction rule gives come from.
_BOOKKEEPING = {
    "dataset_id": "catalog (derived from the file path)", "file_path": "the file system", "file_name": "the file system",
    "file_size": "the file system", "file_mtime": "the file system", "file_format": "the file's first bytes",
    "checksum": "validate --checksums", "extraction_status": "extraction", "extraction_error": "extraction",
    "extractor_version": "extraction", "data_quality_score": "quality rules (see quality flags)",
    "quality_flags": "quality rules", "processing_status": "catalog (pipelines and status changes)",
    "file_status": "validate", "validation_status": "validate", "validation_problems": "validate",
    "last_validated": "validate", "ingested_at": "catalog", "updated_at": "catalog",
}
#: Fields shown apart (as tables of their own), not in the list of fields.
_APART = ("field_sources", "mission_specific")
#: Headings that differ from the tables' (where a record shows both the path and the name).
_HEADINGS = {"file_path": "path", "file_name": "file name", "dataset_id": "dataset id"}
#: Styles of the HTML of :meth:`RecordDetail.to_html` (and of other key-value tables).
CSS = """
table.cs-kv {border-collapse: collapse; font-size: 12.5px; width: 100%; margin-bottom: 10px;}
table.cs-kv th {text-align: left; color: #495057; font-weight: 600; padding: 3px 8px 3px 0; vertical-align: top;
                white-space: nowrap;}
table.cs-kv td {padding: 3px 8px 3px 0; vertical-align: top; overflow-wrap: anywhere; text-align: left;}
table.cs-kv tr {border-bottom: 1px solid #f1f3f5;}
table.cs-kv td.cs-src {color: #6c757d; font-size: 11.5px;}
table.cs-kv td.cs-path {color: #6c757d; font-size: 11.5px; overflow-wrap: anywhere;}
ul.cs-list {padding-left: 18px; font-size: 12.5px;}
table.cs-kv code, ul.cs-list code {color: #212529; font-size: 12px;}
.cs-muted {color: #6c757d; font-size: 12px;}
"""
#: Audit events shown (newest first).
HISTORY_SHOWN = 50


def source_text(label: str | None) -> str:
    """A ``field_sources`` label in words."""
    if not label:
        return ""
    kind, _, rest = label.partition(":")
    if kind.startswith("FITS"):
        hdu = kind[5:-1] if kind.startswith("FITS[") else "0"
        return f"FITS header of HDU {hdu}, keyword {rest}"
    if kind == "HDF5":
        where, _, key = rest.rpartition(":")
        return f"HDF5 {where.replace('@', ' attribute ')}" + (f", key {key}" if key else "")
    if kind == "netCDF":
        return f"netCDF {'global attribute ' + rest[1:] if rest.startswith('@') else rest}"
    if kind == "CSV":
        return f"CSV {rest}"
    if kind == "path":
        return f"the file path ({rest})"
    if kind == "profile":
        name, _, how = rest.partition(":")
        return f"mission profile {name}" + (" (its default)" if how == "default" else
                                            f" ({how.replace('value_maps.', 'mapped from ')})" if how else "")
    if kind == "inferred":
        return f"inferred from {rest}"
    if kind == "sidecar":
        return f"sidecar file {rest}"
    return label


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "file_size":
        return f"{human_bytes(value)} ({value:,} bytes)"
    if name == "calib_level":
        return level_text(value)
    if name == "data_quality_score":
        return f"{value:.3f}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".") + " UTC"
    if name in ("quality_flags", "validation_problems"):
        try:
            items = json.loads(value)
        except (TypeError, ValueError):
            return str(value)
        return "; ".join(f"{i.get('kind')}: {i.get('detail')}" if isinstance(i, dict) else str(i) for i in items)
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


@dataclass
class RecordDetail:
    """One dataset, for the details drawer."""

    dataset_id: str
    row: dict[str, Any]
    #: ``(field, heading, value as text, where it came from)`` for every stored field.
    fields: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: The mission's own keywords (``mission_specific``), as ``(key, value)``.
    keywords: list[tuple[str, str]] = field(default_factory=list)
    history: pl.DataFrame | None = None
    n_events: int = 0
    parents: list[dict] = field(default_factory=list)
    children: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.row.get("file_name") or (self.row.get("file_path") or self.dataset_id).rsplit("/", 1)[-1]

    @property
    def path(self) -> str:
        return self.row.get("file_path") or ""

    def to_html(self) -> str:
        """Fields with their sources, mission keywords, lineage and audit trail, as HTML."""
        return detail_html(self)


def record_detail(cat: Catalog, dataset_id: str) -> RecordDetail:
    """The :class:`RecordDetail` of ``dataset_id`` (raises DatasetNotFoundError when unknown)."""
    import polars as pl

    row = cat.get(dataset_id)
    try:
        sources = json.loads(row.get("field_sources") or "{}")
    except ValueError:
        sources = {}
    fields_ = []
    for name in S.OBSERVATIONS.schema.names:
        if name in _APART:
            continue
        source = source_text(sources.get(name)) or _BOOKKEEPING.get(name, "")
        if row.get(name) is None and name not in sources:
            source = ""
        heading = _HEADINGS.get(name) or HEADINGS.get(name, name.replace("_", " "))
        fields_.append((name, heading, _text(name, row.get(name)), source))
    try:
        ms = json.loads(row.get("mission_specific") or "{}")
    except ValueError:
        ms = {"(unreadable)": row.get("mission_specific")}
    keywords = [(str(k), v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in
                (ms.items() if isinstance(ms, dict) else [])]
    events = cat.history(dataset_id)
    history = (events.sort("ts", "event_id", descending=True).head(HISTORY_SHOWN)
               .select("ts", "actor", "action", "field", "from_value", "to_value", "run_id"))
    rel = cat.related(dataset_id, direction="both", depth=1)
    near = rel.select("direction", "dataset_id", "relationship_type", "file_path", "calib_level").unique(
        ["direction", "dataset_id", "relationship_type"]).sort("file_path", nulls_last=True)
    parents = near.filter(pl.col("direction") == "upstream").to_dicts()
    children = near.filter(pl.col("direction") == "downstream").to_dicts()
    return RecordDetail(dataset_id, row, fields_, keywords, history, events.height, parents, children)


def detail_html(detail: RecordDetail) -> str:
    """The fields (with sources), mission keywords, lineage and audit trail of a record, as HTML."""
    rows = "".join(f"<tr><th title='{escape(name)}'>{escape(heading)}</th><td>{escape(value)}</td>"
                   f"<td class='cs-src'>{escape(source)}</td></tr>"
                   for name, heading, value, source in detail.fields if value)
    empty = ", ".join(heading for _, heading, value, _ in detail.fields if not value)
    out = [f"<h5>Fields</h5><table class='cs-kv'><tr><th>field</th><th>value</th><th>where it came from</th></tr>"
           f"{rows}</table>", f"<p class='cs-muted'>Empty: {escape(empty)}</p>" if empty else ""]
    if detail.keywords:
        kw = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in detail.keywords)
        out.append(f"<h5>Mission keywords</h5><table class='cs-kv'>{kw}</table>")
    for title, items in (("Made from", detail.parents), ("Made into", detail.children)):
        if items:
            lis = "".join(f"<li><code>{escape((i['file_path'] or i['dataset_id']).rsplit('/', 1)[-1])}</code> "
                          f"<span class='cs-muted'>{escape(i['relationship_type'])} · {escape(i['dataset_id'])}"
                          "</span></li>" for i in items)
            out.append(f"<h5>{title}</h5><ul class='cs-list'>{lis}</ul>")
    if detail.history is not None and detail.history.height:
        ev = "".join(
            f"<tr><td>{r['ts']:%Y-%m-%d %H:%M:%S}</td><td>{escape(r['action'] or '')}</td>"
            f"<td>{escape(_change(r))}</td><td>{escape(r['actor'] or '')}</td></tr>"
            for r in detail.history.iter_rows(named=True))
        more = (f"<p class='cs-muted'>the newest {detail.history.height} of {detail.n_events:,} events</p>"
                if detail.n_events > detail.history.height else "")
        out.append(f"<h5>Audit trail</h5><table class='cs-kv'><tr><th>when (UTC)</th><th>what</th><th>change</th>"
                   f"<th>who</th></tr>{ev}</table>{more}")
    return "".join(out)


def _change(event: dict) -> str:
    if event["field"]:
        return f"{event['field']}: {event['from_value'] or '∅'} → {event['to_value'] or '∅'}"
    return event["to_value"] or ""
