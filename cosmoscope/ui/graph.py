"""The lineage of one dataset laid out as a graph: generations left (ancestors) to right
(descendants), nodes placed to keep edges from crossing, and the labelled edges between them.

Built from :meth:`Catalog.related` (one pushed-down query per generation) and one lookup of the
nodes' rows. Shared by the notebook :class:`~cosmoscope.ui.widgets.LineageExplorer`, the
dashboard's lineage view and the report notebooks; :mod:`cosmoscope.ui.lineage_svg` draws it.

>>> middle_ellipsis("hx01000001_evt2_calibrated.fits", 20)
'hx01000001…ated.fits'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmoscope.ui.columns import level_text, state_of

if TYPE_CHECKING:
    from cosmoscope.catalog import Catalog

#: Nodes shown per generation; a calibration file may have thousands of children.
MAX_PER_LEVEL = 24

#: Colour of a node by the state its status column shows (shared by every view).
STATUS_COLORS = {"raw": "#6c757d", "queued": "#0d6efd", "processing": "#0aa2c0", "processed": "#198754",
                 "failed": "#dc3545", "archived": "#6f42c1", "unreadable": "#8c510a", "file missing": "#d9480f",
                 None: "#adb5bd"}

_NODE_COLUMNS = ["dataset_id", "mission_id", "instrument_type", "file_path", "file_name", "processing_status",
                 "calibration_status", "calib_level", "dataproduct_type", "data_quality_score", "target_object",
                 "observation_timestamp", "ra", "dec", "extraction_status", "file_status"]


def middle_ellipsis(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters by an ellipsis in the middle, keeping the end (where
    file names say what they are: ``_evt2.fits``, ``_l1.nc``); unchanged when it fits."""
    if len(text) <= n:
        return text
    tail = (n - 1) // 2
    return text[: n - 1 - tail] + "…" + text[len(text) - tail:]


@dataclass
class Node:
    """A dataset in the lineage view."""

    dataset_id: str
    depth: int = 0  # < 0 upstream (parents), > 0 downstream (children), 0 the focus
    relationships: tuple[str, ...] = ()
    mission_id: str | None = None
    instrument_type: str | None = None
    file_path: str | None = None
    file_name: str | None = None
    processing_status: str | None = None
    calibration_status: str | None = None
    calib_level: int | None = None
    dataproduct_type: str | None = None
    data_quality_score: float | None = None
    target_object: str | None = None
    observation_timestamp: object = None
    ra: float | None = None
    dec: float | None = None
    extraction_status: str | None = None
    file_status: str | None = None
    cataloged: bool = True
    #: Place in the drawing: column (0 = leftmost generation) and row within it.
    column: int = 0
    row: float = 0.0

    @property
    def name(self) -> str:
        """The file name, or the id when the dataset is not cataloged."""
        if self.file_name:
            return self.file_name
        return os.path.basename(self.file_path) if self.file_path else self.dataset_id

    @property
    def quality_text(self) -> str:
        if self.extraction_status == "error":
            return "n/a (unreadable)"
        return f"{self.data_quality_score:.2f}" if self.data_quality_score is not None else "n/a"

    @property
    def state(self) -> str | None:
        """What the status column says: unreadable, file missing, or the processing status."""
        if not self.cataloged:
            return None
        return state_of(self.extraction_status, self.file_status, self.processing_status).split(" · ")[0] or None

    @property
    def status_text(self) -> str:
        """``processed · q 0.93`` (or ``not cataloged``)."""
        if not self.cataloged:
            return "not cataloged"
        if self.extraction_status == "error":
            return "unreadable"
        return f"{self.state or 'no status'} · q {self.quality_text}"

    @property
    def color(self) -> str:
        return STATUS_COLORS.get(self.state, STATUS_COLORS[None])

    @property
    def when(self) -> str:
        t = self.observation_timestamp
        return t.strftime("%Y-%m-%d %H:%M") if t is not None else ""

    @property
    def position(self) -> str:
        return f"RA {self.ra:.4f}°, Dec {self.dec:+.4f}°" if self.ra is not None and self.dec is not None else ""

    def subtitle(self) -> str:
        """``L2 calibrated · image · NGC 253``: what the product is and what it looks at."""
        return " · ".join(p for p in (level_text(self.calib_level), self.dataproduct_type, self.target_object) if p)

    def tooltip(self) -> str:
        if not self.cataloged:
            return f"{self.dataset_id}\nnamed by lineage but not cataloged"
        parts = [self.name, self.file_path or "(no file path)", self.dataset_id,
                 f"mission {self.mission_id or '?'} / {self.instrument_type or '?'}",
                 " · ".join(p for p in (level_text(self.calib_level), self.dataproduct_type) if p) or "level unknown",
                 f"status {self.state or '?'}, calibration {self.calibration_status or '?'}",
                 f"quality {self.quality_text}"]
        parts += [p for p in (f"target {self.target_object}" if self.target_object else "", self.position,
                              f"start {self.when} UTC" if self.when else "") if p]
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
    def nodes(self) -> list[Node]:
        """Every node shown, the focus included, left to right."""
        return [n for _, ns, _ in self.columns() for n in ns]

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

    def shown_edges(self) -> list[tuple[str, str, str]]:
        """``(parent, child, relationship types)`` between shown nodes, one per pair."""
        shown = {n.dataset_id for n in self.nodes}
        pairs: dict[tuple[str, str], list[str]] = {}
        for p, c, t in self.edges:
            if p in shown and c in shown and t not in pairs.setdefault((p, c), []):
                pairs[(p, c)].append(t)
        return [(p, c, ", ".join(ts)) for (p, c), ts in pairs.items()]

    def layout(self) -> None:
        """Give each node its column and row: the focus's generation is placed first, then each
        generation outwards ordered by the mean row of its neighbours towards the focus (the
        barycentre rule), which keeps edges from crossing in the usual tree-like lineage."""
        cols = self.columns()
        index = {d: i for i, d in enumerate(sorted({*self.levels, 0}))}
        rows: dict[str, float] = {}
        neighbours: dict[str, list[str]] = {}
        for p, c, _ in self.edges:
            neighbours.setdefault(p, []).append(c)
            neighbours.setdefault(c, []).append(p)
        order = sorted(index, key=abs)
        for d in order:
            nodes = [self.focus] if d == 0 else self.levels[d]

            def centre(node, d=d):
                near = [rows[i] for i in neighbours.get(node.dataset_id, ()) if i in rows]
                return (sum(near) / len(near) if near else float("inf"), node.name, node.dataset_id)

            placed = sorted(nodes, key=centre)
            for r, node in enumerate(placed):
                node.column, node.row = index[d], float(r)
                rows[node.dataset_id] = float(r)
            if d != 0:
                self.levels[d] = placed
        tallest = max((len(ns) + (1 if hidden else 0) for _, ns, hidden in cols), default=1)
        for _, ns, _ in self.columns():  # centre every column on the tallest
            offset = (tallest - len(ns)) / 2
            for node in ns:
                node.row += offset


def lineage_graph(cat: Catalog, dataset_id: str, depth: int | None = 2) -> LineageGraph:
    """The lineage of ``dataset_id`` up to ``depth`` generations each way (None: all), laid out.

    Raises :class:`~cosmoscope.errors.DatasetNotFoundError` if the catalog knows nothing of
    the id (neither a row nor an edge).
    """
    dataset_id = dataset_id.strip()
    rel = cat.related(dataset_id, direction="both", depth=depth)
    ids = list(dict.fromkeys([dataset_id, *rel["dataset_id"].to_list()]))
    rows = {r["dataset_id"]: r for r in cat.lookup(ids, _NODE_COLUMNS).iter_rows(named=True)}
    focus = _node(rows.get(dataset_id), dataset_id, 0)
    graph = LineageGraph(focus)
    seen: dict[str, Node] = {}
    for row in rel.select("dataset_id", "direction", "depth", "parent_dataset_id", "child_dataset_id",
                          "relationship_type").iter_rows(named=True):
        graph.edges.append((row["parent_dataset_id"], row["child_dataset_id"], row["relationship_type"]))
        i = row["dataset_id"]
        if i == dataset_id:
            continue  # a cycle back to the focus
        depth_ = -row["depth"] if row["direction"] == "upstream" else row["depth"]
        node = seen.get(i)
        if node is None or abs(depth_) < abs(node.depth):
            node = _node(rows.get(i), i, depth_)
            seen[i] = node
        if row["relationship_type"] not in node.relationships:
            node.relationships = (*node.relationships, row["relationship_type"])
    for node in sorted(seen.values(), key=lambda n: (n.name, n.dataset_id)):
        level = graph.levels.setdefault(node.depth, [])
        if len(level) < MAX_PER_LEVEL:
            level.append(node)
        else:
            graph.hidden[node.depth] = graph.hidden.get(node.depth, 0) + 1
    graph.edges = list(dict.fromkeys(graph.edges))
    graph.layout()
    return graph


def _node(row: dict | None, dataset_id: str, depth: int) -> Node:
    if row is None:
        return Node(dataset_id, depth=depth, cataloged=False)
    return Node(dataset_id=dataset_id, depth=depth, **{k: row.get(k) for k in _NODE_COLUMNS[1:]})
