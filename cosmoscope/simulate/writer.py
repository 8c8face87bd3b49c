"""Writing planned files: at once, atomically, partly, or slowly in chunks (files that arrive).

Deliberate faults that break a finished file (truncation, emptiness, a text page under a data
file's name) are applied here, after the mission module has written it; faults inside a header
(missing keywords, a wrong CHECKSUM) are written by the mission modules themselves.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from pathlib import Path

from cosmoscope.simulate.plan import MISSIONS, FileSpec

_ERROR_PAGE = """<!DOCTYPE html>
<html><head><title>503 Service Unavailable</title></head>
<body>
<h1>Service Unavailable</h1>
<p>The archive could not deliver {name}: the server is temporarily unable to service your
request due to maintenance downtime or capacity problems. Please try again later.</p>
<hr>
<address>Apache/2.4.58 (Unix) Server at archive.example.org Port 443</address>
</body></html>
"""


def render(spec: FileSpec, path: Path) -> None:
    """Write ``spec`` to ``path`` (and its sidecar beside it), applying its fault if any."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    MISSIONS[spec.mission].writer.write(spec, path)
    if spec.fault == "truncated":
        size = path.stat().st_size
        os.truncate(path, max(1, min(size - 1, int(size * spec.extra["cut"]))))
    elif spec.fault == "zero_bytes":
        os.truncate(path, 0)
    elif spec.fault == "wrong_format":
        path.write_text(_ERROR_PAGE.format(name=spec.name))


def write_file(spec: FileSpec, root, partial: bool | float = False, atomic: bool = False) -> Path:
    """Write one planned file under ``root`` and return its path.

    Parameters
    ----------
    spec : FileSpec
        One item of :func:`~cosmoscope.simulate.iter_file_specs`.
    root : str or Path
        Root of the simulated tree.
    partial : bool or float
        Leave the file incomplete, as a transfer still under way would: ``True`` writes the first
        half of its bytes, a float that fraction.
    atomic : bool
        Write to a hidden ``.name.part`` file in the same directory, then rename it into place,
        so that watchers only ever see the complete file.
    """
    dest = Path(root) / spec.relpath
    if partial:
        fraction = 0.5 if partial is True else float(partial)
        return _via_temp(spec, dest, chunk_bytes=1 << 20, delay=0.0, stop=fraction)
    if atomic:
        tmp = dest.with_name(f".{dest.name}.part")
        render(spec, tmp)
        os.replace(tmp, dest)
        return dest
    render(spec, dest)
    return dest


def write_slowly(spec: FileSpec, root, chunk_bytes: int = 1 << 20, delay: float = 0.1) -> Path:
    """Write one planned file in chunks of ``chunk_bytes``, sleeping ``delay`` s between chunks.

    The file appears at once (empty) and grows, as it would while being copied in; holes of a
    sparse file stay holes. A sidecar, if any, is put in place first. Returns the path.
    """
    if chunk_bytes < 1:
        from cosmoscope.errors import InvalidArgumentError

        raise InvalidArgumentError(f"chunk_bytes must be at least 1, not {chunk_bytes!r}")
    return _via_temp(spec, Path(root) / spec.relpath, chunk_bytes, delay, stop=None)


def _via_temp(spec: FileSpec, dest: Path, chunk_bytes: int, delay: float, stop: float | None) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cosmoscope-sim-") as tmpdir:
        src = Path(tmpdir) / dest.name
        render(spec, src)
        if spec.sidecar:
            name = spec.sidecar.rsplit("/", 1)[-1]
            shutil.copyfile(Path(tmpdir) / name, dest.parent / name)
        _copy_in_chunks(src, dest, chunk_bytes, delay, stop)
    return dest


def _copy_in_chunks(src: Path, dest: Path, chunk_bytes: int, delay: float, stop: float | None) -> None:
    size = src.stat().st_size
    end = size if stop is None else int(size * stop)
    # pread, not a buffered reader: probing holes with lseek(SEEK_DATA) moves the descriptor
    # under a buffered reader's feet, which corrupted chunks not aligned to 4096 bytes.
    with open(src, "rb", buffering=0) as fin, open(dest, "wb", buffering=0) as fout:
        fd = fin.fileno()
        offset = 0
        while offset < end:
            n = min(chunk_bytes, end - offset)
            if _has_data(fd, offset, n):
                chunk = os.pread(fd, n, offset)
                if chunk.count(0) == len(chunk):
                    fout.truncate(offset + n)  # zeros: leave a hole
                else:
                    fout.seek(offset)
                    fout.write(chunk)
            else:
                fout.truncate(offset + n)
            offset += n
            if delay and offset < end:
                time.sleep(delay)
        fout.truncate(end)


def _has_data(fd: int, offset: int, n: int) -> bool:
    """Whether [offset, offset + n) of the file holds any data (False if it is all hole)."""
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        return True
    try:
        return os.lseek(fd, offset, seek_data) < offset + n
    except OSError as exc:  # ENXIO: nothing but a hole from here to the end
        return exc.errno != errno.ENXIO
