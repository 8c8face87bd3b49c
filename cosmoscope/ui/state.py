"""What a dashboard view is (filters, order, page, tab, columns, the dataset in focus) and
its address: every part of it goes into the page's URL, so a link reproduces the view.

Values are kept as the user typed them (``from=7d`` stays an age, not a time), keys are
short and repeated for several values: ``?mission=LYRA&mission=COSMOS-7&from=2026-329&tab=charts``.
Anything unreadable in a URL is dropped, with a note, rather than refusing the page.

>>> s = ViewState(missions=("LYRA",), start="2026-329", sort="-file_size", page=3)
>>> s.to_query()
'mission=LYRA&from=2026-329&sort=-file_size&page=3'
>>> ViewState.from_query(s.to_query()) == s
True
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace
from urllib.parse import parse_qs, urlencode

from cosmoscope import schema as S
from cosmoscope.ui.columns import DEFAULT_SHOWN, SHOWN
from cosmoscope.ui.query import QUALITY_BANDS, Filters, read_when

#: Tabs of the dashboard, by their URL name.
TABS = {"search": "Search", "charts": "Charts", "summary": "Summary", "lineage": "Lineage", "problems": "Problems"}
DEFAULT_SORT = "-observation_timestamp"

#: Field -> URL key, for the multi-valued filters (field names are those of Filters).
_LISTS = {"missions": "mission", "instruments": "instrument", "levels": "level", "product_types": "type",
          "statuses": "status", "calibrations": "calibration", "quality_bands": "quality", "extraction": "metadata"}
#: Field -> URL key, for the single values.
_TEXTS = {"target": "target", "start": "from", "end": "to", "near": "near", "radius": "radius", "sort": "sort",
          "tab": "tab", "focus": "id"}


@dataclass(frozen=True)
class ViewState:
    """One view of the dashboard."""

    missions: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()
    product_types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    calibrations: tuple[str, ...] = ()
    quality_bands: tuple[str, ...] = ()
    extraction: tuple[str, ...] = ()
    target: str = ""
    #: Times as typed: ISO, day of year, or an age (7d).
    start: str = ""
    end: str = ""
    #: A cone: a position or target name, and a radius (e.g. 30arcmin).
    near: str = ""
    radius: str = ""
    sort: str = DEFAULT_SORT
    page: int = 1
    tab: str = "search"
    columns: tuple[str, ...] = DEFAULT_SHOWN
    #: The dataset in focus (the row chosen; the lineage view's centre) and whether its record
    #: is open in the details drawer.
    focus: str = ""
    open: bool = False
    #: What could not be read from the URL (not part of the address).
    notes: tuple[str, ...] = field(default=(), compare=False)

    def filters(self, *, now: dt.datetime | None = None) -> Filters:
        """The search filters of this view (raises InvalidArgumentError for an unreadable time)."""
        return Filters(missions=self.missions, instruments=self.instruments, levels=self.levels,
                       product_types=self.product_types, statuses=self.statuses, calibrations=self.calibrations,
                       quality_bands=self.quality_bands, extraction=self.extraction, target=self.target,
                       start=read_when(self.start, name="start"), end=read_when(self.end, end=True, name="end"),
                       near=self.near, radius=self.radius)

    def but(self, **changes) -> ViewState:
        return replace(self, **changes)

    def to_query(self) -> str:
        """The URL query of this view (defaults left out)."""
        pairs: list[tuple[str, str]] = []
        for name, key in _LISTS.items():
            pairs += [(key, str(v)) for v in getattr(self, name)]
        defaults = {"sort": DEFAULT_SORT, "tab": "search"}
        for name, key in _TEXTS.items():
            value = getattr(self, name)
            if value and value != defaults.get(name):
                pairs.append((key, value))
        if self.open and self.focus:
            pairs.append(("open", "1"))
        if self.page > 1:
            pairs.append(("page", str(self.page)))
        if tuple(self.columns) != DEFAULT_SHOWN:
            pairs.append(("cols", ",".join(self.columns)))
        return urlencode(pairs)

    @classmethod
    def from_query(cls, query: str | dict) -> ViewState:
        """The view a URL query describes; values it cannot use are dropped and noted."""
        args = parse_qs(query.lstrip("?")) if isinstance(query, str) else {
            k: [v.decode() if isinstance(v, bytes) else str(v) for v in vs] for k, vs in query.items()}
        values: dict = {}
        notes: list[str] = []
        for name, key in _LISTS.items():
            got = [v.strip() for v in args.get(key, []) if v.strip()]
            if name == "levels":
                good = [int(v) for v in got if v.isdigit() and 0 <= int(v) <= 4]
            elif name == "quality_bands":
                good = [v for v in got if v in QUALITY_BANDS]
            elif name == "statuses":
                good = [v for v in got if v in {s.value for s in S.ProcessingStatus}]
            elif name == "extraction":
                good = [v for v in got if v in {s.value for s in S.ExtractionStatus}]
            else:
                good = got
            if len(good) < len(got):
                notes.append(f"ignored {key}={', '.join(v for v in got if v not in map(str, good))}")
            values[name] = tuple(dict.fromkeys(good))
        for name, key in _TEXTS.items():
            if args.get(key):
                values[name] = args[key][-1].strip()
        if values.get("tab") and values["tab"] not in TABS:
            notes.append(f"ignored tab={values.pop('tab')}")
        if "sort" in values:
            from cosmoscope.ui.query import parse_sort

            try:
                parse_sort(values["sort"])
            except Exception:  # noqa: BLE001 - a bad link shows the default order, with a note
                notes.append(f"ignored sort={values.pop('sort')}")
        values["open"] = bool(args.get("open")) and args["open"][-1] not in ("0", "false", "")
        if args.get("page"):
            text = args["page"][-1]
            if text.isdigit() and int(text) >= 1:
                values["page"] = int(text)
            else:
                notes.append(f"ignored page={text}")
        if args.get("cols"):
            cols = [c for c in args["cols"][-1].split(",") if c]
            good = tuple(c for c in cols if c in SHOWN)
            if len(good) < len(cols):
                notes.append(f"ignored columns {', '.join(c for c in cols if c not in SHOWN)}")
            if good:
                values["columns"] = good
        return cls(**values, notes=tuple(notes))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "notes"]
