"""What the front ends see of the pressure ladder (``tierctl pressure``, the TUI, metrics).

``PsiHistory`` keeps the memory PSI ``some`` avg10 of the machine and of each managed cgroup, one
value per cycle (the TUI's sparklines). ``status(pc)`` is ``Service.pressure_status()`` while the
ladder runs: the machine against its target, the episode, and per managed cgroup its charge, memory
by kind and by node, PSI, memory.events, working-set estimate, what its profile allows and its state
(docs/pressure.md, "What the front ends show").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tierctl.service.pressure import CgroupFacts, PressureControl, PsiFigures

HISTORY = 120  # cycles of PSI kept per series


class PsiHistory:
    def __init__(self, maxlen: int = HISTORY) -> None:
        self.maxlen = maxlen
        self.machine: deque[float] = deque(maxlen=maxlen)
        self.cgroups: dict[str, deque[float]] = {}

    def record(self, machine: PsiFigures | None, facts: Mapping[str, CgroupFacts]) -> None:
        """One cycle: the machine's and each cgroup's ``some`` avg10 (%); series of cgroups no longer
        managed are dropped."""
        if machine is not None:
            self.machine.append(float(machine.some_avg10))
        for gone in self.cgroups.keys() - facts.keys():
            del self.cgroups[gone]
        for path, f in facts.items():
            series = self.cgroups.setdefault(path, deque(maxlen=self.maxlen))
            series.append(float(f.psi.some_avg10 if f.psi is not None else f.psi_some))

    def of(self, path: str) -> list[float]:
        return list(self.cgroups.get(path, ()))


def cgroup_state(pc: PressureControl, path: str, current: int, protect: int) -> str:
    """killed / notified / trimming (an action of the last cycle or an open notification), else
    protected (at or under its protected bytes: never trimmed) or ok."""
    kinds = {a.kind for a in pc.last if a.path == path}
    if "kill" in kinds:
        return "killed"
    if "notify" in kinds or path in pc.ladder.state.notified:
        return "notified"
    if "trim" in kinds:
        return "trimming"
    if protect > 0 and current <= protect:
        return "protected"
    return "ok"


def _cgroup(pc: PressureControl, path: str, f: CgroupFacts, total: int) -> dict[str, Any]:
    pol = pc.policies.get(path)
    protect = pol.protect_bytes(total) if pol is not None else 0
    probe = pc.probes.get(path)
    return {
        "current": f.current,
        "kinds": dict(f.kinds),
        "nodes": dict(f.nodes),
        "psi": None if f.psi is None else f.psi.to_json(),
        "psi_history": pc.history.of(path),
        "events": dict(f.events),
        "refaults": f.refaults,
        "working_set": None if probe is None else probe.estimate,
        "priority": 0 if pol is None else pol.priority,
        "protect": protect,
        "killable": bool(pol is not None and pol.kill == "cgroup"),
        "state": cgroup_state(pc, path, f.current, protect),
    }


def status(pc: PressureControl) -> dict[str, Any]:
    m = pc.machine
    st = pc.ladder.state
    total = m.total if m is not None else 0
    machine = None
    if m is not None:
        machine = {
            "total": m.total,
            "used": m.used,
            "available": m.available,
            "psi": None if pc.machine_psi is None else pc.machine_psi.to_json(),
            "psi_history": list(pc.history.machine),
        }
    return {
        "mode": pc.cfg.mode,
        "active": True,
        "target_ratio": pc.cfg.limits.target_ratio,
        "machine": machine,
        "above_since": st.above_since,
        "notified": {p: {"deadline": d, "bytes": n} for p, (d, n) in st.notified.items()},
        "working_sets": {
            p: {"estimate": probe.estimate, "ended": probe.ended} for p, probe in sorted(pc.probes.items())
        },
        "cgroups": {p: _cgroup(pc, p, f, total) for p, f in sorted(pc.facts_last.items())},
        "last_actions": [
            {"kind": a.kind, "cgroup": a.path, "bytes": a.nbytes, "reason": a.reason} for a in pc.last
        ],
        "actions": dict(pc.counts),
        "oom_kills": pc.oom_kills,  # by the kernel's OOM killer, as the stall source saw them
        "stall_ms": dict(sorted(pc.stall_ms.items())),  # reclaim stall per cgroup, last cycle
    }
