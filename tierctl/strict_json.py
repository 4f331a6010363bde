"""Strict JSON for everything tierctl reads from outside (API requests, state files).

``loads`` refuses what ``json.loads`` lets through: NaN and Infinity (also spelled ``1e999``), a key
given twice in one object (``{"op": "status", "op": "pause"}`` must not mean "pause"), and nesting past
the parser's recursion limit (a ``ValueError`` instead of a ``RecursionError``). Every failure is a
``ValueError``.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k[:40]!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"number {text[:40]} is out of range")
    return x


def loads(text: str | bytes) -> Any:
    """Parse ``text`` strictly (see the module docstring); bytes must be UTF-8."""
    try:
        return json.loads(
            text, parse_constant=_no_constant, parse_float=_finite_float, object_pairs_hook=_no_duplicates
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None
