"""Name -> factory lookups with a close-match hint, shared by every registry of tierctl."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

from tierctl.errors import InputError

T = TypeVar("T")


def pick(registry: Mapping[str, T], name: str, *, kind: str, where: str) -> T:
    """``registry[name]``, or an InputError naming the known entries and the closest one."""
    try:
        return registry[name]
    except KeyError:
        hint = difflib.get_close_matches(name, list(registry), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise InputError(f"unknown {kind} {name!r}{extra}; known: {', '.join(registry)}", where) from None
