"""Walking directory trees fast (``os.scandir``), without opening a single file.

The crawl yields every regular file with the size and modification time its directory entry
already carries, so deciding that a file is unchanged costs no ``open``. Problems (a directory
that cannot be listed, a symlink loop) are reported through a callback and never stop the walk.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from cosmoscope.errors import InvalidArgumentError

#: Names that are never data: editor and OS droppings, and files still being written by common
#: tools (rsync's ``.name.XXXXXX``, partial downloads).
_SKIP_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".swp", "~")
_SKIP_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file found by the crawl."""

    path: str
    size: int
    mtime_ns: int

    @property
    def mtime_us(self) -> int:
        return self.mtime_ns // 1000


@dataclass(frozen=True)
class Shard:
    """Share ``index`` of ``count`` (0-based): N machines each take one share of one crawl."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Read ``I/N`` (1-based, as a user writes it: ``1/4`` .. ``4/4``)."""
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise InvalidArgumentError(f"could not read shard {text!r}; write it as I/N, e.g. 2/4") from None
        if not 1 <= i <= n:
            raise InvalidArgumentError(f"shard {text!r}: I must be between 1 and N, e.g. 1/4 .. 4/4")
        return cls(i - 1, n)

    def owns(self, path: str) -> bool:
        """Whether this share owns ``path`` (a stable hash, so every machine agrees)."""
        if self.count == 1:
            return True
        digest = hashlib.blake2b(os.fsencode(path), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index


def given_paths(paths, *, what: str = "a file or directory") -> list[str]:
    """The paths a user gave, as strings, refusing empty ones.

    An empty path would mean the current directory to the OS, so ``cosmoscope watch "$INCOMING"``
    with the variable unset would catalog wherever it happens to run (``/`` under systemd).

    >>> given_paths(["/data", "."])
    ['/data', '.']
    """
    out = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, bytes, os.PathLike)) else paths)]
    out = [os.fsdecode(p) if isinstance(p, bytes) else p for p in out]
    if any(not p.strip() for p in out):
        raise InvalidArgumentError(f"an empty path was given (an unset variable?); give {what}, or '.' for the "
                                   "current directory")
    return out


def is_candidate(name: str) -> bool:
    """Whether a file name could be a data file (hidden and temporary files are not)."""
    return not (name.startswith(".") or name in _SKIP_NAMES or name.endswith(_SKIP_SUFFIXES))


def crawl(paths: Iterable[str | os.PathLike], *, follow_symlinks: bool | str = False, shard: Shard | None = None,
          on_problem: Callable[[str, str], None] | None = None,
          on_outside: Callable[[str, str], None] | None = None, roots=None) -> Iterator[FileEntry]:
    """Yield every candidate data file under ``paths`` (files given directly are yielded too).

    ``on_problem(path, reason)`` hears about directories that cannot be listed, missing paths
    and symlink loops. Directory symlinks are followed only with ``follow_symlinks`` (then each
    directory is visited once, so loops end). A link whose real path leaves ``paths`` is not
    followed unless ``follow_symlinks='all'`` (see :mod:`cosmoscope.ingest.roots`):
    ``on_outside(path, reason)`` hears of it (``on_problem`` when not given). ``roots`` (a
    :class:`~cosmoscope.ingest.roots.Roots`) replaces ``paths`` as the limit, e.g. when a watcher
    scans one directory of its trees.
    """
    from cosmoscope.ingest.roots import Roots, follow_mode

    report = on_problem or (lambda path, reason: None)
    descend, everywhere = follow_mode(follow_symlinks)
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    roots = roots if roots is not None else Roots(paths, everywhere=everywhere)
    outside = on_outside or report
    seen_dirs: set[tuple[int, int]] = set()
    for root in paths:
        root = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(root)
        except OSError as exc:
            report(root, _reason(exc))
            continue
        if stat_mod.S_ISDIR(st.st_mode):
            yield from _walk(root, st, descend, shard, report, seen_dirs, roots, outside)
        elif stat_mod.S_ISREG(st.st_mode):
            if shard is None or shard.owns(root):
                yield FileEntry(root, st.st_size, st.st_mtime_ns)
        else:
            report(root, "not a regular file or directory")


def _walk(root, root_stat, follow, shard, report, seen_dirs, roots, outside) -> Iterator[FileEntry]:
    stack = [root]
    seen_dirs.add((root_stat.st_dev, root_stat.st_ino))
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            report(directory, f"cannot list the directory: {_reason(exc)}")
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=follow):
                    if name.startswith("."):
                        continue  # .git, .snapshot, .Trash: not observation data
                    if entry.is_symlink():
                        if why := roots.outside(entry.path):
                            outside(entry.path, why)
                            continue
                        st = entry.stat(follow_symlinks=True)
                        key = (st.st_dev, st.st_ino)
                        if key in seen_dirs:
                            report(entry.path, "symbolic link loop: this directory was already visited")
                            continue
                        seen_dirs.add(key)
                    elif follow:
                        st = entry.stat(follow_symlinks=False)
                        seen_dirs.add((st.st_dev, st.st_ino))
                    subdirs.append(entry.path)
                    continue
                if not is_candidate(name):
                    continue
                if entry.is_symlink():
                    st = entry.stat(follow_symlinks=True)  # raises on loops and dangling links
                    if stat_mod.S_ISREG(st.st_mode) and (why := roots.outside(entry.path)):
                        outside(entry.path, why)
                        continue
                else:
                    st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                report(entry.path, _reason(exc))
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                continue
            if shard is not None and not shard.owns(entry.path):
                continue
            yield FileEntry(entry.path, st.st_size, st.st_mtime_ns)
        stack.extend(sorted(subdirs, reverse=True))  # depth first, in name order


def _reason(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if isinstance(exc, FileNotFoundError):
        return "does not exist (or is a broken symbolic link)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


def count_files(paths: Iterable[str | os.PathLike], *, follow_symlinks: bool | str = False,
                shard: Shard | None = None, **_) -> int:
    """About how many files :func:`crawl` would yield, from directory listings alone (no stat
    per file), for a progress bar's total. Unreadable directories simply count nothing."""
    from cosmoscope.ingest.roots import follow_mode

    follow_symlinks = follow_mode(follow_symlinks)[0]
    n = 0
    stack = [os.path.abspath(os.fspath(p)) for p in paths]
    seen: set[str] = {os.path.realpath(p) for p in stack}
    while stack:
        top = stack.pop()
        if os.path.isfile(top):
            n += 1
            continue
        try:
            with os.scandir(top) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=follow_symlinks):
                        real = os.path.realpath(entry.path) if entry.is_symlink() else entry.path
                        if not entry.name.startswith(".") and real not in seen:
                            seen.add(real)
                            stack.append(entry.path)
                    elif is_candidate(entry.name) and (shard is None or shard.owns(entry.path)):
                        n += 1
        except OSError:
            continue
    return n
