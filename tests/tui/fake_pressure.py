"""A fixed ``pressure_status()`` answer in the shape docs/pressure.md gives (the TUI's tests).

``fake_pressure(paths)`` fills every key the pressure views read with round, known numbers: the tests
check the screen against them. ``WithPressure`` puts it on any service (the simulated machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
WALL = 1_700_000_000.0  # as conftest.WALL
HISTORY = 30  # psi_history points per series
STATES = ("trimming", "ok", "notified", "protected", "killed")

# the first cgroup's kinds: the bar's parts are anon 512M, file 256M (320M - 64M of shmem), shmem 64M,
# kernel 128M, sock 32M, swap 64M; zswap is None (not configured) and is left out
KINDS0: dict[str, int | None] = {
    "anon": 512 * MiB,
    "file": 320 * MiB,
    "shmem": 64 * MiB,
    "kernel": 128 * MiB,
    "sock": 32 * MiB,
    "swap": 64 * MiB,
    "zswap": None,
    "dirty": 8 * MiB,
    "writeback": 0,
}


def psi(some: float, full: float) -> dict[str, Any]:
    return {"some_avg10": some, "full_avg10": full, "some_total_us": 1_000_000, "full_total_us": 250_000}


def ramp(top: float, n: int = HISTORY) -> list[float]:
    """0 .. top in n points (the sparkline's blocks rise left to right)."""
    return [round(top * i / (n - 1), 2) for i in range(n)]


def cgroup_entry(i: int) -> dict[str, Any]:
    current = 1024 * MiB if i == 0 else (i + 1) * 256 * MiB
    kinds = (
        dict(KINDS0)
        if i == 0
        else {k: (v // (i + 1) if isinstance(v, int) else v) for k, v in KINDS0.items()}
    )
    return {
        "current": current,
        "kinds": kinds,
        "nodes": {"0": current * 3 // 4, "1": current // 4},
        "psi": psi(12.5 if i == 0 else 0.5 * i, 2.5 if i == 0 else 0.0),
        "psi_history": ramp(20.0 if i == 0 else 1.0),
        "events": {"low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 3 if i == 0 else 0},
        "refaults": 1234 * (i + 1),
        "working_set": 640 * MiB if i == 0 else current // 2,
        "priority": -10 if i == 0 else 10 * (i % 2),
        "protect": 256 * MiB if i == 0 else 0,
        "killable": i == 0,
        "state": STATES[i % len(STATES)],
    }


def fake_pressure(paths: Sequence[str], *, mode: str = "on") -> dict[str, Any]:
    """``mode``: on or dry-run (active); off; unavailable (the platform has no ladder)."""
    if mode == "off":
        return {"mode": "off", "active": False, "reason": "off"}
    if mode == "unavailable":
        return {"mode": "on", "active": False, "reason": "unavailable on the sim platform"}
    cgroups = {p: cgroup_entry(i) for i, p in enumerate(paths)}
    first = paths[0] if paths else "/"
    last = paths[-1] if paths else "/"
    return {
        "mode": mode,
        "active": True,
        "target_ratio": 0.95,
        "machine": {
            "total": 64 * GiB,
            "used": 62 * GiB,  # 96.9 %: above the target
            "available": 2 * GiB,
            "psi": psi(8.25, 1.5),
            "psi_history": ramp(10.0),
        },
        "above_since": WALL - 12,
        "notified": {last: {"deadline": WALL + 10, "bytes": 512 * MiB}},
        "working_sets": {p: {"estimate": c["working_set"], "ended": "psi"} for p, c in cgroups.items()},
        "last_actions": [
            {"kind": "trim", "cgroup": first, "bytes": 64 * MiB, "reason": "down to its working set"},
            {"kind": "notify", "cgroup": last, "bytes": 512 * MiB, "reason": "shed within 10 s"},
        ],
        "actions": {"trim": 12, "notify": 1},
        "oom_kills": 0,
        "stall_ms": {p: 0.0 for p in paths},
        "cgroups": cgroups,
    }


class WithPressure:
    """Wraps a service so its ``pressure_status()`` is ``fake_pressure`` over its own cgroups."""

    def __init__(self, service: Any, mode: str = "on") -> None:
        self._service = service
        self.mode = mode

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def pressure_status(self) -> dict[str, Any]:
        paths = sorted(str(c["path"]) for c in self._service.cgroups())
        return fake_pressure(paths, mode=self.mode)
