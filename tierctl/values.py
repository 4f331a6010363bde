"""Every number that enters tierctl is parsed here: profiles, API arguments, state files, CLI flags.

Each parser returns a finite value within a documented range or raises ``InputError`` naming the
field. Values already on disk (the overrides state file) are re-validated at load with the same code,
so a value the daemon accepted once can never crash it later.

Ranges (docs/profiles.md and docs/api.md repeat them):

- bytes: integers 0..``MAX_BYTES`` (1 PiB, above any machine's memory), or a size string such as
  ``"512M"``, ``"2G"``, ``"1.5T"`` (units K, M, G, T, optionally followed by ``iB`` or ``B``, powers
  of 1024); the daemon also refuses a quota above the machine's own memory;
- shares: a float in [0, 1] or a string ``"0%"``..``"100%"``;
- rates: MB/s in (0, ``MAX_RATE_MBPS``];
- hot thresholds in (0, ``MAX_HOT_THRESHOLD``], hysteresis in [0, ``MAX_HYSTERESIS``];
- integers such as priorities within a signed 32-bit range.

NaN, infinities and numbers too large for their range are refused with the field's name, never
clamped: a typo must not silently become "no limit".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from tierctl.errors import InputError

MAX_BYTES = 1 << 50
MAX_RATE_MBPS = 1e6
MAX_HOT_THRESHOLD = 1e15
MAX_HYSTERESIS = 100.0
INT32 = (-(2**31), 2**31 - 1)
MAX_AMOUNT_TEXT = 64
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

AmountKind = Literal["bytes", "share"]
_INT_RE = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() also takes other scripts' digits and "1_0"


@dataclass(frozen=True)
class Amount:
    """A checked amount: ``bytes`` (an int) or ``share`` of the fast tier (a float in [0, 1])."""

    kind: AmountKind
    value: int | float

    def pages(self, page_size: int, fast_capacity: int) -> int:
        if self.kind == "share":
            return int(self.value * fast_capacity)
        return int(self.value) // page_size

    def magnitude(self) -> float:
        return float(self.value)


def _got(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)


def _finite(x: float, where: str, shown: Any) -> float:
    if not math.isfinite(x):
        raise InputError(f"must be a finite number, got {shown!r}", where)
    return x


def amount(value: Any, where: str, *, max_bytes: int = MAX_BYTES, max_share: float = 1.0) -> Amount:
    """Bytes (int, or a size string) or a share of the fast tier (float, or ``"N%"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"expected bytes (e.g. 512M, 2G) or a share (e.g. 30%), got {_got(value)}", where)
    if isinstance(value, float):
        share = _finite(value, where, value)
        if not 0.0 <= share <= max_share:
            raise InputError(f"a share must be within 0..{max_share:g}, got {value!r}", where)
        return Amount("share", share)
    if isinstance(value, int):
        if not 0 <= value <= max_bytes:
            raise InputError(f"bytes must be within 0..{max_bytes}, got {value}", where)
        return Amount("bytes", value)
    if len(value) > MAX_AMOUNT_TEXT:
        raise InputError(f"an amount is at most {MAX_AMOUNT_TEXT} characters, got {len(value)}", where)
    text = value.strip().upper()
    if text.endswith("%"):
        pct = _number_text(text[:-1], where, value)
        if not 0.0 <= pct <= max_share * 100.0:
            raise InputError(f"a share must be within 0..{max_share * 100:g} %, got {value!r}", where)
        return Amount("share", pct / 100.0)
    text = text.removesuffix("IB").removesuffix("B")
    unit = text[-1:] if text[-1:] in UNITS else ""
    number = _number_text(text[: len(text) - len(unit)], where, value)
    if number < 0:
        raise InputError(f"must be >= 0, got {value!r}", where)
    n = number * UNITS[unit]
    if n > max_bytes:
        raise InputError(f"bytes must be within 0..{max_bytes} ({max_bytes >> 40}T), got {value!r}", where)
    return Amount("bytes", int(n))


def _number_text(text: str, where: str, shown: Any) -> float:
    try:
        x = float(text)
    except ValueError:
        raise InputError(
            f"expected bytes (e.g. 512M, 2G) or a share (e.g. 30%), got {shown!r}", where
        ) from None
    return _finite(x, where, shown)


def number(
    value: Any, where: str, *, lo: float, hi: float, lo_open: bool = False, text_ok: bool = False
) -> float:
    """A finite number in [lo, hi] (or (lo, hi] with ``lo_open``); ``text_ok`` accepts a numeric string."""
    x: float
    if isinstance(value, str) and text_ok:
        try:
            x = float(value.strip())
        except ValueError:
            raise InputError(f"expected a number, got {value!r}", where) from None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"expected a number, got {_got(value)}", where)
    else:
        try:
            x = float(value)
        except OverflowError:
            raise InputError(f"must be within {lo:g}..{hi:g}, got {value}", where) from None
    _finite(x, where, value)
    if x < lo or (lo_open and x == lo):
        raise InputError(f"must be {'>' if lo_open else '>='} {lo:g}, got {value!r}", where)
    if x > hi:
        raise InputError(f"must be <= {hi:g}, got {value!r}", where)
    return x


def integer(value: Any, where: str, *, lo: int = INT32[0], hi: int = INT32[1], text_ok: bool = False) -> int:
    """An integer in [lo, hi]; ``text_ok`` accepts a decimal string."""
    if isinstance(value, str) and text_ok:
        text = value.strip()
        if not _INT_RE.fullmatch(text) or len(text) > 24:
            raise InputError(f"expected an integer, got {value!r}", where)
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"expected an integer, got {_got(value)}", where)
    if value < lo:
        raise InputError(f"must be >= {lo}, got {value}", where)
    if value > hi:
        raise InputError(f"must be <= {hi}, got {value}", where)
    return value
