"""From file-system events to a bounded, coalescing set of paths the watcher must look at.

watchdog's observer thread calls :class:`EventHandler`, which reduces each event to a few bits
per path in an :class:`Intake`: a file written in a thousand chunks is one entry, so a burst
costs memory per file, not per event. Only names the catalog could hold get in: hidden files,
files in hidden directories and temporary names (``.name.XXXXXX``, ``*.part``, ``*.tmp``) are
ignored, so a file written under a temporary name and renamed arrives once, under its final name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from cosmoscope.ingest.crawl import is_candidate

# What happened to a path (bits, merged while it waits in the intake).
CREATED, WRITTEN, CLOSED, MOVED_IN, GONE, SCAN, DIR_GONE, DIR_NEW = (1 << i for i in range(8))
#: Bits that concern a file (the others concern a directory).
FILE_FLAGS = CREATED | WRITTEN | CLOSED | MOVED_IN | GONE | SCAN


class Intake:
    """Paths heard of and not looked at yet: ``path -> flags``, bounded at ``limit`` paths.

    When full, :meth:`add` drops new paths and sets ``overflowed`` (the watcher then scans the
    trees, which finds them); :meth:`add_waiting`, for the scanner, waits for room instead.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._items: dict[str, int] = {}
        self._moved_to: dict[str, str] = {}
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self.wake = threading.Event()
        self.overflowed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, path: str, flag: int, *, moved_to: str | None = None) -> bool:
        """Note ``flag`` for ``path``; False (and ``overflowed``) if the intake is full."""
        with self._lock:
            old = self._items.get(path)
            if old is None and len(self._items) >= self.limit:
                self.overflowed = True
                self.dropped += 1
                return False
            self._merge(path, old or 0, flag, moved_to)
        self.wake.set()
        return True

    def add_waiting(self, path: str, flag: int, stop: threading.Event) -> bool:
        """Like :meth:`add`, but wait for room (leaving half for live events); False if stopped."""
        with self._room:
            while path not in self._items and len(self._items) >= max(self.limit // 2, 1):
                if stop.is_set():
                    return False
                self._room.wait(0.2)
            self._merge(path, self._items.get(path, 0), flag, None)
        self.wake.set()
        return True

    def _merge(self, path: str, old: int, flag: int, moved_to: str | None) -> None:
        if flag & WRITTEN:
            old &= ~CLOSED  # written after it was last closed: open again
        self._items[path] = old | flag
        if moved_to:
            self._moved_to[path] = moved_to

    def take(self, n: int) -> list[tuple[str, int, str | None]]:
        """Remove and return up to ``n`` entries ``(path, flags, moved_to)``, oldest first."""
        with self._room:
            if n >= len(self._items):
                items, self._items = self._items, {}
            else:
                items = {}
                for path in list(self._items)[:n]:
                    items[path] = self._items.pop(path)
            out = [(p, f, self._moved_to.pop(p, None)) for p, f in items.items()]
            self._room.notify_all()
        return out


def wanted(roots: Sequence[str], path: str) -> bool:
    """Whether ``path`` is a file name the catalog could hold: under one of ``roots``, not
    hidden or temporary, not inside a hidden directory (as :func:`~cosmoscope.ingest.crawl.crawl`
    decides).

    >>> wanted(["/data"], "/data/c7/obs.fits"), wanted(["/data"], "/data/c7/.obs.fits.Xy12ab")
    (True, False)
    """
    if not is_candidate(os.path.basename(path)):
        return False
    for root in roots:
        if root == "/" or path.startswith(root + "/"):
            rel = path[len(root):].lstrip("/")
            return not any(part.startswith(".") for part in rel.split("/")[:-1])
    return False


class EventHandler:
    """Turns watchdog events into intake entries. It runs in the observer's thread, so it only
    sorts and records; everything slow happens in the watcher's loop."""

    def __init__(self, intake: Intake, is_wanted: Callable[[str], bool]):
        self.intake = intake
        self.wanted = is_wanted

    def dispatch(self, event) -> None:
        intake, kind = self.intake, event.event_type
        src = os.fsdecode(event.src_path) if event.src_path else ""
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        if event.is_directory:
            if kind == "deleted" or (kind == "moved" and src):
                intake.add(src, DIR_GONE)
            if kind == "created" or (kind == "moved" and dest):
                target = dest or src
                if self.wanted(os.path.join(target, "x")):
                    intake.add(target, DIR_NEW)  # look inside: files may be there already
            return
        if kind == "moved":
            if src and self.wanted(src):
                intake.add(src, GONE, moved_to=dest if dest and self.wanted(dest) else None)
            if dest and self.wanted(dest):
                intake.add(dest, MOVED_IN)  # a rename delivers a whole file
            return
        # A touch or chmod (attrib) is only a reason to look again, like a creation.
        flag = {"created": CREATED, "modified": WRITTEN, "attrib": CREATED, "closed": CLOSED,
                "deleted": GONE}.get(kind)
        if flag is not None and self.wanted(src):
            intake.add(src, flag)
