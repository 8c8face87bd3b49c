"""Checking paths that clients send: only under the server's output roots, never anywhere else."""

from __future__ import annotations

import os

from cosmoscope.errors import InvalidArgumentError


def inside_roots(path: str, roots: tuple[str, ...], param: str, *, must_exist: bool = True) -> str:
    """The real path of ``path`` if it lies under one of ``roots``; else a clear refusal.

    The path must be absolute; symlinks are resolved before the check, so a link inside a root
    that points outside it is refused. Whether a file exists is only said for paths inside a
    root, so the answer reveals nothing about the rest of the machine.
    """
    if not roots:
        raise InvalidArgumentError(f"parameter {param!r}: this server accepts no paths; start it with "
                                   "--output-root DIR to allow outputs under DIR")
    if not isinstance(path, str) or not path or "\x00" in path or len(path) > 4096:
        raise InvalidArgumentError(f"parameter {param!r}: not a usable path")
    if not os.path.isabs(path):
        raise InvalidArgumentError(f"parameter {param!r}: give an absolute path, not {path!r}")
    real = os.path.realpath(path)
    for root in roots:
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            break
    else:
        raise InvalidArgumentError(f"parameter {param!r}: {path} is not under this server's output "
                                   f"root{'s' if len(roots) > 1 else ''} ({', '.join(roots)})")
    if must_exist and not os.path.isfile(real):
        raise InvalidArgumentError(f"parameter {param!r}: {path} is not an existing regular file")
    return real
