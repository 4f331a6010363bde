"""Pure rules of the TUI's pressure views: what the ``pressure`` op's answer means on screen.

No Textual and no Rich here. The data is the Service's ``pressure_status()`` (docs/pressure.md):
``machine`` with ``psi`` and ``psi_history``, and per cgroup with a ``[pressure]`` policy ``cgroups``
{path: {"current", "kinds", "nodes", "psi", "psi_history", "events", "refaults", "working_set",
"priority", "protect", "killable", "state"}}. A daemon that reports less shows less, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from tierctl.fmt import fmt_bytes

# the memory-kind bar, in the order it stacks (memory.stat; swap and zswap from memory.swap/zswap)
KINDS: tuple[str, ...] = ("anon", "file", "shmem", "kernel", "sock", "swap", "zswap")
FILE_PARTS: tuple[str, ...] = ("dirty", "writeback")  # parts of file, shown as numbers only
EVENTS: tuple[str, ...] = ("low", "high", "max", "oom", "oom_kill")
STATE_SHORT: Mapping[str, str] = MappingProxyType(
    {"ok": "ok", "trimming": "trim", "notified": "notif", "killed": "kill", "protected": "prot"}
)
SPARK = "▁▂▃▄▅▆▇█"


def num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def whole(v: Any) -> int | None:
    f = num(v)
    return None if f is None else int(f)


def dict_of(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


# ---- the ladder as a whole ---------------------------------------------------------------------------


def active(pressure: Mapping[str, Any] | None) -> bool:
    return bool(pressure) and pressure.get("active") is True  # type: ignore[union-attr]


def ladder_line(pressure: Mapping[str, Any] | None) -> tuple[str, str]:
    """(what the ladder is doing, its level: "ok" | "dry" | "off" | "missing") — never blank."""
    if not pressure:
        return "pressure: no data from the service", "missing"
    mode = str(pressure.get("mode") or "?")
    if not active(pressure):
        reason = str(pressure.get("reason") or "inactive")
        if reason == mode:  # "off" (off)
            return f"pressure ladder: {mode}", "off"
        return f"pressure ladder {mode}, not running: {reason}", "off"
    if mode == "dry-run":
        return "pressure ladder: dry-run (actions are logged, not taken)", "dry"
    return f"pressure ladder: {mode}", "ok"


def cgroup_pressure(pressure: Mapping[str, Any] | None, path: str) -> dict[str, Any] | None:
    if not active(pressure):
        return None
    got = dict_of(pressure.get("cgroups")).get(path)  # type: ignore[union-attr]
    return got if isinstance(got, dict) else None


def working_set(pressure: Mapping[str, Any] | None, path: str) -> int | None:
    """The cgroup's working-set estimate: from ``cgroups`` or else the older ``working_sets``."""
    cg = cgroup_pressure(pressure, path)
    if cg is not None and whole(cg.get("working_set")) is not None:
        return whole(cg.get("working_set"))
    if not active(pressure):
        return None
    ws = dict_of(dict_of(pressure.get("working_sets")).get(path))  # type: ignore[union-attr]
    return whole(ws.get("estimate"))


def psi_some(entry: Mapping[str, Any] | None) -> float | None:
    return num(dict_of((entry or {}).get("psi")).get("some_avg10"))


def psi_full(entry: Mapping[str, Any] | None) -> float | None:
    return num(dict_of((entry or {}).get("psi")).get("full_avg10"))


def history(entry: Mapping[str, Any] | None) -> list[float]:
    h = (entry or {}).get("psi_history")
    return [v for v in (num(x) for x in h) if v is not None] if isinstance(h, list) else []


# ---- the table's pressure columns ----------------------------------------------------------------


def has_columns(pressure: Mapping[str, Any] | None) -> bool:
    """The table shows pressure columns only while the ladder runs and reports cgroups."""
    return active(pressure) and isinstance(pressure.get("cgroups"), dict)  # type: ignore[union-attr]


def merge(cgroups: list[dict[str, Any]], pressure: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The table's rows with ``psi_some``, ``working_set`` and ``ladder_state`` added (None if unknown)."""
    if not active(pressure):
        return cgroups
    out = []
    for c in cgroups:
        path = str(c.get("path", ""))
        cg = cgroup_pressure(pressure, path)
        state = cg.get("state") if cg else None
        out.append(
            {
                **c,
                "psi_some": psi_some(cg),
                "working_set": working_set(pressure, path),
                "ladder_state": str(state) if state else None,
            }
        )
    return out


def fmt_pct(v: float | None) -> str:
    if v is None:
        return "-"
    return "100" if v >= 99.95 else f"{v:.1f}"


def pressure_cells(c: Mapping[str, Any]) -> dict[str, str]:
    state = c.get("ladder_state")
    return {
        "psi": fmt_pct(num(c.get("psi_some"))),
        "wset": fmt_bytes(c.get("working_set")),
        "state": STATE_SHORT.get(str(state), str(state)) if state else "-",
    }


# ---- bars ------------------------------------------------------------------------------------------


def kind_sizes(kinds: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The memory-kind bar's parts with their bytes, in stacking order. A kind the kernel does not
    report (None or missing) is left out; ``file`` is file minus shmem (the kernel counts shmem in
    file), so the parts do not overlap."""
    out = []
    for k in KINDS:
        v = whole(kinds.get(k))
        if v is None:
            continue
        if k == "file":
            v -= whole(kinds.get("shmem")) or 0
        out.append((k, max(v, 0)))
    return out


def split_cells(sizes: Sequence[int], width: int) -> list[int]:
    """Cells per part, proportional to its size and summing to ``width`` (when anything is > 0); a
    part > 0 gets at least one cell while there are enough cells (largest remainder otherwise)."""
    total = sum(max(s, 0) for s in sizes)
    if total <= 0 or width <= 0:
        return [0] * len(sizes)
    exact = [width * max(s, 0) / total for s in sizes]
    cells = [int(e) for e in exact]
    for i, s in enumerate(sizes):
        if s > 0 and cells[i] == 0:
            cells[i] = 1
    by_remainder = sorted(
        (i for i, s in enumerate(sizes) if s > 0), key=lambda i: (-(exact[i] - int(exact[i])), i)
    )
    diff = width - sum(cells)
    k = 0
    while diff > 0 and by_remainder:
        cells[by_remainder[k % len(by_remainder)]] += 1
        diff -= 1
        k += 1
    while diff < 0:  # the minimum of one cell over-spent: take from the largest
        i = max(range(len(cells)), key=lambda j: (cells[j], -j))
        cells[i] -= 1
        diff += 1
    return cells


def scale(value: float, top: float, width: int) -> int:
    """Cells of ``width`` that ``value`` fills at ``top`` = all of it (clipped to 0..width)."""
    if top <= 0:
        return 0
    return max(0, min(width, round(width * value / top)))


def spark(values: Sequence[float], width: int) -> tuple[str, float]:
    """One block per value (the last ``width`` of them, oldest first) and the top it was scaled to:
    the largest shown, at least 1 % (so that noise under 1 % stays flat). Zero is the lowest block."""
    shown = list(values)[-width:] if width > 0 else []
    top = max([*shown, 1.0])
    return "".join(SPARK[max(0, min(7, round(7 * v / top)))] for v in shown), top
