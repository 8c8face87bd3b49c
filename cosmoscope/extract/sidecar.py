"""Sidecar metadata files kept beside a data file (JSON, YAML or ``key = value`` text).

A pattern names the sidecar from the data file's name: ``{name}`` is the whole file name,
``{stem}`` the name without its last suffix, ``{base}`` the name up to its first dot. So
``{stem}.json`` beside ``aur2_mag_20261127_l1a.csv`` is ``aur2_mag_20261127_l1a.json``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from cosmoscope.extract.base import Source

MAX_SIDECAR = 1 << 20
#: Sidecars looked for beside every CSV file even without a profile.
CSV_DEFAULT_PATTERNS = ("{stem}.json", "{name}.json")
_LINE = re.compile(r"^\s*([A-Za-z_][\w .\-]*?)\s*[:=]\s*(.*?)\s*$")


def sidecar_paths(path: str, patterns) -> list[str]:
    """Existing sidecar files for ``path``, in pattern order, without duplicates."""
    directory, name = os.path.split(path)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    base = name.split(".", 1)[0]
    found: list[str] = []
    for pattern in patterns:
        try:
            candidate = os.path.join(directory, pattern.format(name=name, stem=stem, base=base))
        except (KeyError, IndexError, ValueError):
            continue
        if candidate != path and candidate not in found and os.path.isfile(candidate):
            found.append(candidate)
    return found


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_sidecar(path: str) -> Source:
    """Parse a sidecar file into a source labelled ``sidecar:<file name>:<key>``.

    Raises ``ValueError`` with a readable message when the file cannot be parsed.
    """
    p = Path(path)
    if p.stat().st_size > MAX_SIDECAR:
        raise ValueError(f"sidecar {p.name} is larger than {MAX_SIDECAR} bytes")
    text = p.read_text(encoding="utf-8", errors="replace")
    suffix = p.suffix.lower()
    data: Any
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"sidecar {p.name} is not valid JSON: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # PyYAML is optional: fall back to flat key: value lines
            data = _lines(text)
        else:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"sidecar {p.name} is not valid YAML: {exc}") from None
    else:
        data = _lines(text)
    if not isinstance(data, dict):
        raise ValueError(f"sidecar {p.name} does not hold a mapping of keys to values")
    return Source("sidecar:", f"{p.name}:", _flatten(data), kind="sidecar", info={"file": p.name})


def _lines(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for ln in text.splitlines():
        if ln.lstrip().startswith(("#", ";", "//")):
            continue
        m = _LINE.match(ln)
        if m:
            out.setdefault(m.group(1), m.group(2).strip("'\""))
    return out
