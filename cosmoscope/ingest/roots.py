"""Which files may be read: none whose real path leaves the directories being cataloged, unless asked.

Anyone who can write into a watched drop folder can put a symbolic link there. Followed blindly,
``tree/leak.csv -> /root/secret.txt`` would put the first line of a file only its owner may read
into the catalog, and from there into the HTTP API. So bulk ingest, the watcher and ``validate
--fix`` read a file only when its real path (every link resolved) lies under the real path of one
of their roots; other files are reported by name with the reason and not opened. The roots are the
paths given to ``ingest`` or ``watch`` (a file named on the command line is its own root), and for
validation those given to it plus every directory ingest runs and watchers of the catalog were
given.

``follow_symlinks`` says how far links are followed:

- ``False`` (the default): a linked file is read if it lies inside the roots; linked directories
  are not entered;
- ``True`` or ``"inside"``: linked directories are entered too, if they lie inside the roots;
- ``"all"``: every link is followed, wherever it leads (the user's explicit choice; on the
  command line ``--allow-outside-links``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from cosmoscope.errors import InvalidArgumentError

def from_flags(follow_symlinks: bool, allow_outside_links: bool) -> bool | str:
    """The ``follow_symlinks`` value of the command-line flags."""
    return "all" if allow_outside_links else bool(follow_symlinks)


def follow_mode(value) -> tuple[bool, bool]:
    """``(enter linked directories, read links that leave the roots)`` for a ``follow_symlinks`` value.

    >>> follow_mode(False), follow_mode(True), follow_mode("all")
    ((False, False), (True, False), (True, True))
    """
    if value is None or value is False or value == "none":
        return False, False
    if value is True or value == "inside":
        return True, False
    if value == "all":
        return True, True
    raise InvalidArgumentError(f"follow_symlinks must be False, True ('inside') or 'all', not {value!r}")


class Roots:
    """The real paths under which files may be read (``everywhere``: any path)."""

    def __init__(self, paths: Iterable[str | os.PathLike], *, everywhere: bool = False):
        self.everywhere = everywhere
        self.real = tuple(sorted({os.path.realpath(os.fspath(p)) for p in paths}))

    def __repr__(self) -> str:
        return "Roots(everywhere)" if self.everywhere else f"Roots({list(self.real)!r})"

    def contains(self, real: str) -> bool:
        """Whether the real path ``real`` lies under (or is) one of the roots."""
        return self.everywhere or any(real == r or real.startswith(r.rstrip("/") + "/") for r in self.real)

    def outside(self, path: str) -> str | None:
        """Why ``path`` may not be read (reached through a link, its real path leaves the roots),
        or None when it may. A path with no link on the way is the file it names: always readable."""
        if self.everywhere:
            return None
        real = os.path.realpath(path)
        if real == os.path.abspath(path) or self.contains(real):
            return None
        return outside_reason(real)


class CatalogRoots:
    """:class:`Roots` of a catalog's ingest runs and watchers (plus ``paths``), looked up the first
    time a file reached through a link has to be checked (most never are)."""

    def __init__(self, catalog, paths=(), *, everywhere: bool = False):
        self.catalog, self.paths, self.everywhere = catalog, list(paths), everywhere
        self._roots: Roots | None = None

    def outside(self, path: str) -> str | None:
        if self.everywhere:
            return None
        real = os.path.realpath(path)
        if real == os.path.abspath(path):
            return None
        return None if self.resolved().contains(real) else outside_reason(real)

    def resolved(self) -> Roots:
        """The roots, looked up now (a plain :class:`Roots` travels to other processes)."""
        if self._roots is None:
            self._roots = Roots([*self.paths, *catalog_roots(self.catalog)], everywhere=self.everywhere)
        return self._roots


def outside_reason(real: str) -> str:
    from cosmoscope.records import printable

    return (f"a symbolic link to {printable(real)}, outside the directories being cataloged: not read "
            "(--allow-outside-links reads it)")


def catalog_roots(catalog) -> list[str]:
    """Every directory the catalog's ingest runs and watchers were given (absolute paths only)."""
    import json

    import polars as pl

    out: set[str] = set()
    runs = catalog.events().filter(pl.col("action") == "ingest_run").select("details").collect()
    for text in runs["details"]:
        try:
            details = json.loads(text or "{}")
        except ValueError:
            continue
        out.update(p for p in details.get("roots") or details.get("paths") or () if os.path.isabs(p))
    for text in catalog.watchers()["paths"]:
        try:
            out.update(p for p in json.loads(text or "[]") if os.path.isabs(p))
        except ValueError:
            continue
    return sorted(out)
