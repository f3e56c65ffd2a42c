"""Which knob fields a change of the knob document touched, for the ``KnobsApplied`` event.

A revision is a hash: it tells that something changed, not what. Knob documents are the
camelCase JSON the engines receive (``Knobs.model_dump(by_alias=True)``); nested documents
(``sloDefaults``) are named by dotted path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``field: old → new`` for every leaf that differs, sorted by path; a field present on
    one side only shows ``-`` on the other."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "-"), new.get(key, "-")
        path = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changed_fields(a, b, f"{path}.")
        elif a != b:
            out.append(f"{path}: {_show(a)} → {_show(b)}")
    return out


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
