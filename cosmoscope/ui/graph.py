"""The lineage of one dataset laid out for display: its parents to the left, its children to the
right, one column per generation.

Built from :meth:`Catalog.related` (one pushed-down query per generation). Shared by the
notebook :class:`~cosmoscope.ui.widgets.LineageExplorer` and the dashboard's lineage view.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

#: Nodes shown per generation; a calibration file may have thousands of children.
MAX_PER_LEVEL = 24

#: Colour of a node by processing status (shared by the widgets and the dashboard).
STATUS_COLORS = {"raw": "#6c757d", "queued": "#0d6efd", "processing": "#0dcaf0", "processed": "#198754",
                 "failed": "#dc3545", "archived": "#6f42c1", None: "#adb5bd"}

_NODE_COLUMNS = ["dataset_id", "mission_id", "instrument_type", "file_path", "processing_status",
                 "calibration_status", "calib_level", "data_quality_score"]


@dataclass
class Node:
    """A dataset in the lineage view."""

    dataset_id: str
    depth: int = 0  # < 0 upstream (parents), > 0 downstream (children), 0 the focus
    relationships: tuple[str, ...] = ()
    mission_id: str | None = None
    instrument_type: str | None = None
    file_path: str | None = None
    processing_status: str | None = None
    calibration_status: str | None = None
    calib_level: int | None = None
    data_quality_score: float | None = None
    cataloged: bool = True

    @property
    def name(self) -> str:
        """The file name, or the id when the dataset is not cataloged."""
        return os.path.basename(self.file_path) if self.file_path else self.dataset_id

    @property
    def quality_text(self) -> str:
        return f"{self.data_quality_score:.2f}" if self.data_quality_score is not None else "n/a"

    @property
    def status_text(self) -> str:
        """``processed · q 0.93`` (or ``not cataloged``)."""
        if not self.cataloged:
            return "not cataloged"
        return f"{self.processing_status or 'no status'} · q {self.quality_text}"

    @property
    def color(self) -> str:
        return STATUS_COLORS.get(self.processing_status, STATUS_COLORS[None])

    def tooltip(self) -> str:
        parts = [self.dataset_id, self.file_path or "(no file path)",
                 f"mission {self.mission_id or '?'} / {self.instrument_type or '?'}",
                 f"status {self.processing_status or '?'}, calibration {self.calibration_status or '?'}"
                 f" (level {self.calib_level if self.calib_level is not None else '?'})",
                 f"quality {self.quality_text}"]
        if self.relationships:
            parts.append("edge: " + ", ".join(self.relationships))
        return "\n".join(parts)


@dataclass
class LineageGraph:
    """The focus dataset, its generations of parents and children, and the edges between them."""

    focus: Node
    levels: dict[int, list[Node]] = field(default_factory=dict)
    hidden: dict[int, int] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def upstream(self) -> list[Node]:
        return [n for d in sorted(self.levels) if d < 0 for n in self.levels[d]]

    @property
    def downstream(self) -> list[Node]:
        return [n for d in sorted(self.levels) if d > 0 for n in self.levels[d]]

    @property
    def empty(self) -> bool:
        """True when the dataset has no recorded parents or children."""
        return not self.levels

    def columns(self) -> list[tuple[str, list[Node], int]]:
        """``(title, nodes, hidden)`` per generation, left (oldest ancestors) to right."""
        out = []
        for d in sorted({*self.levels, 0}):
            if d == 0:
                out.append(("this dataset", [self.focus], 0))
                continue
            n = abs(d)
            title = ("parents" if n == 1 else "grandparents" if n == 2 else f"ancestors ({n} up)") if d < 0 else (
                "children" if n == 1 else "grandchildren" if n == 2 else f"descendants ({n} down)")
            out.append((title, self.levels[d], self.hidden.get(d, 0)))
        return out


def lineage_graph(cat: Catalog, dataset_id: str, depth: int | None = 2) -> LineageGraph:
    """The lineage of ``dataset_id`` up to ``depth`` generations each way (None: all).

    Raises :class:`~cosmoscope.errors.DatasetNotFoundError` if the catalog knows nothing of
    the id (neither a row nor an edge).
    """
    dataset_id = dataset_id.strip()
    rel = cat.related(dataset_id, direction="both", depth=depth)
    focus_rows = cat.lookup([dataset_id], _NODE_COLUMNS)
    focus = _node(focus_rows.row(0, named=True), 0) if focus_rows.height else Node(dataset_id, cataloged=False)
    graph = LineageGraph(focus)
    seen: dict[str, Node] = {}
    for row in rel.iter_rows(named=True):
        graph.edges.append((row["parent_dataset_id"], row["child_dataset_id"], row["relationship_type"]))
        i = row["dataset_id"]
        if i == dataset_id:
            continue  # a cycle back to the focus
        depth_ = -row["depth"] if row["direction"] == "upstream" else row["depth"]
        node = seen.get(i)
        if node is None or abs(depth_) < abs(node.depth):
            node = _node(row, depth_)
            node.cataloged = row.get("mission_id") is not None or row.get("file_path") is not None
            seen[i] = node
        if row["relationship_type"] not in node.relationships:
            node.relationships = (*node.relationships, row["relationship_type"])
    for node in sorted(seen.values(), key=lambda n: (n.name, n.dataset_id)):
        level = graph.levels.setdefault(node.depth, [])
        if len(level) < MAX_PER_LEVEL:
            level.append(node)
        else:
            graph.hidden[node.depth] = graph.hidden.get(node.depth, 0) + 1
    return graph


def _node(row: dict, depth: int) -> Node:
    return Node(dataset_id=row["dataset_id"], depth=depth, **{k: row.get(k) for k in _NODE_COLUMNS[1:]})
