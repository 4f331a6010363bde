"""Human-readable numbers shared by the CLI clients and the TUI."""

from __future__ import annotations

from typing import Any


def fmt_bytes(n: Any) -> str:
    """Bytes as 512B, 4.0K, 1.5M, 2.0G ... (binary units); "-" for anything that is not a number."""
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return str(n)  # pragma: no cover
