"""Human-readable numbers shared by every front end: the CLI commands, the clients of the daemon and the
TUI. One convention, the one ``htop`` and ``systemctl status`` use:

- **bytes** (:func:`fmt_bytes`): binary multiples (K = 1024, M = 1024², G, T), short form with no space
  and no ``iB``: ``0B``, ``512B``, ``4.0K``, ``38.1M``, ``2.0G``, ``1.5T``. Below 1 KiB a whole number of
  bytes; above it one decimal, so a column of sizes lines up. The unit is the largest one that keeps the
  rounded number below 1024 (``1023.96K`` is ``1.0M``, never ``1024.0K``); terabytes are the largest
  unit. Anything that is not a number prints ``-``.
- **shares** of the fast tier (:func:`fmt_share`): ``60%`` (one decimal only when needed: ``12.5%``).
- **amounts** (:func:`fmt_amount`): a profile's or an override's quota, bytes or a share, as above.

What these print, the parsers of every input take back (:func:`parse_bytes`, :func:`parse_amount`, both
``tierctl.values.amount``: profiles, API arguments, CLI flags, the TUI's dialogs), which also accept
``4G``, ``4GiB``, ``4 GiB``, ``4096M`` and plain byte counts: ``parse_bytes(fmt_bytes(n))`` is ``n``
within the rounding of one decimal (under 5 % of it, exact below 1 KiB).
"""

from __future__ import annotations

from typing import Any

from tierctl import values
from tierctl.errors import InputError

BYTE_UNITS = ("K", "M", "G", "T")  # powers of 1024, as tierctl.values.UNITS parses them


def _number(n: Any) -> float | None:
    if isinstance(n, bool) or not isinstance(n, int | float):
        return None
    x = float(n)
    return x if x == x and abs(x) != float("inf") else None


def fmt_bytes(n: Any) -> str:
    """Bytes as ``512B``, ``4.0K``, ``38.1M``, ``2.0G``, ``1.5T`` (binary units, htop's short form);
    ``-`` for anything that is not a finite number."""
    x = _number(n)
    if x is None:
        return "-"
    if abs(round(x)) < 1024:
        return f"{x:.0f}B"
    for i, unit in enumerate(BYTE_UNITS):
        value = x / 1024 ** (i + 1)
        if abs(round(value, 1)) < 1024 or unit == BYTE_UNITS[-1]:
            return f"{value:.1f}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def fmt_share(share: Any) -> str:
    """A share in [0, 1] as a percentage: ``60%``, ``12.5%``; ``-`` for anything that is not a number."""
    x = _number(share)
    if x is None:
        return "-"
    pct = round(100.0 * x, 1)
    return f"{pct:.0f}%" if pct == int(pct) else f"{pct:.1f}%"


def fmt_amount(value: Any) -> str:
    """A quota amount as a profile or the API gives it: a ``tierctl.values.Amount``, an int (bytes), a
    float (a share), or a string (``"4G"``, ``"60%"``, shown normalised); ``-`` for None and what does
    not parse."""
    if value is None:
        return "-"
    if not isinstance(value, values.Amount):
        try:
            value = values.amount(value, "amount")
        except InputError:
            return "-"
    return fmt_share(value.value) if value.kind == "share" else fmt_bytes(value.value)


def parse_amount(text: str, where: str = "amount") -> values.Amount:
    """What :func:`fmt_bytes`, :func:`fmt_share` and :func:`fmt_amount` print, and what profiles take:
    ``4G``, ``38.1M``, ``512B``, ``4 GiB``, ``60%`` (InputError naming ``where`` otherwise)."""
    return values.amount(text, where)


def parse_bytes(text: str, where: str = "bytes") -> int:
    """A size as :func:`fmt_bytes` prints it (``38.1M``, ``0B``) or as people type it (``4G``, ``4GiB``,
    ``4096``); a share (``60%``) is an InputError naming ``where``."""
    found = values.amount(text, where)
    if found.kind != "bytes":
        raise InputError(f"expected bytes (e.g. 512M, 2G), got {text!r}", where)
    return int(found.value)
