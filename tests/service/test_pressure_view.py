"""What the front ends see of the ladder (service/pressure_view.py): per cgroup memory by kind and
node, PSI and its history, working set, what the profile allows and the state; the machine's PSI."""

from __future__ import annotations

from typing import Any

from tierctl.core.ladder import Limits, Machine
from tierctl.profiles.schema import PressurePolicy
from tierctl.service.pressure import CgroupFacts, PressureConfig, PressureControl, PsiFigures
from tierctl.service.pressure_view import PsiHistory, status

GIB, MIB = 1 << 30, 1 << 20
LOW, HIGH = "/batch.slice/etl.service", "/system.slice/db.service"


class IO:
    def __init__(self) -> None:
        self.charges = {LOW: 6 * GIB, HIGH: 4 * GIB}
        self.other = 2 * GIB
        self.tick = 0

    def machine(self) -> Machine:
        return Machine(16 * GIB, 16 * GIB - self.other - sum(self.charges.values()))

    def machine_psi(self) -> PsiFigures | None:
        self.tick += 1
        return PsiFigures(some_avg10=float(self.tick), some_total_us=1000 * self.tick)

    def cgroup(self, path: str) -> CgroupFacts:
        c = self.charges[path]
        return CgroupFacts(
            c,
            psi_some=0.5,
            refaults=0,
            psi=PsiFigures(0.5, 10, 0.25, 5),
            kinds={"anon": c // 2, "file": c // 2, "shmem": None},
            nodes={"0": c // 4, "1": c - c // 4},
            events={"max": 0, "oom_kill": 0},
        )

    def reclaim(self, path: str, nbytes: int) -> bool:
        self.charges[path] -= nbytes
        return True

    def kill(self, path: str) -> None:
        self.charges[path] = 0


def run(io: IO, cycles: int, pols: dict[str, PressurePolicy], target: float = 0.95) -> PressureControl:
    events: list[tuple[str, dict[str, Any]]] = []
    pc = PressureControl(
        PressureConfig(limits=Limits(target_ratio=target, critical_ratio=max(target, 0.98))),
        io,
        io,
        hooks=None,  # type: ignore[arg-type]  # no hook in these policies
        emit=lambda kind, **info: events.append((kind, info)),
    )
    for t in range(cycles):
        pc.cycle(1000.0 + t, 1.0, pols)
    return pc


def test_status_carries_each_cgroups_breakdown_and_the_machines_psi() -> None:
    pols = {LOW: PressurePolicy(priority=0, trim=False), HIGH: PressurePolicy(priority=10, trim=False)}
    st = status(run(IO(), 3, pols))
    assert st["active"] and st["machine"]["psi"]["some_avg10"] == 3.0
    assert st["machine"]["psi_history"] == [1.0, 2.0, 3.0]
    low = st["cgroups"][LOW]
    assert low["current"] == 6 * GIB and low["kinds"] == {"anon": 3 * GIB, "file": 3 * GIB, "shmem": None}
    assert low["nodes"] == {"0": 6 * GIB // 4, "1": 6 * GIB - 6 * GIB // 4}
    assert low["psi"] == {"some_avg10": 0.5, "full_avg10": 0.25, "some_total_us": 10, "full_total_us": 5}
    assert low["psi_history"] == [0.5, 0.5, 0.5] and low["state"] == "ok"
    assert st["cgroups"][HIGH]["priority"] == 10 and not st["cgroups"][HIGH]["killable"]


def test_states_follow_the_ladder_trimming_the_low_priority_one_and_protecting_the_other() -> None:
    io = IO()
    io.other = 5 * GIB + 512 * MIB  # 15.5 of 16 GiB used: above the 95 % target, under 98 %
    pols = {
        LOW: PressurePolicy(priority=0, trim=True, trim_rate_mbps=512),
        HIGH: PressurePolicy(priority=10, trim=True, protect="8G"),
    }
    st = status(run(io, 1, pols))
    assert st["cgroups"][LOW]["state"] == "trimming"
    assert st["cgroups"][HIGH]["state"] == "protected" and st["cgroups"][HIGH]["protect"] == 8 * GIB
    assert [a["cgroup"] for a in st["last_actions"]] == [LOW]


def test_history_is_bounded_and_drops_cgroups_no_longer_managed() -> None:
    h = PsiHistory(maxlen=4)
    facts = {LOW: CgroupFacts(1, 1.0, 0), HIGH: CgroupFacts(1, 2.0, 0, psi=PsiFigures(3.0, 0))}
    for _ in range(6):
        h.record(PsiFigures(1.0, 0), facts)
    assert len(h.machine) == 4 and h.of(LOW) == [1.0] * 4 and h.of(HIGH) == [3.0] * 4
    h.record(None, {LOW: facts[LOW]})
    assert len(h.machine) == 4 and h.of(HIGH) == [] and len(h.of(LOW)) == 4


def test_tierctl_pressure_prints_the_breakdown_leaving_out_kinds_this_kernel_lacks() -> None:
    from tierctl.cli.pressure_cmd import describe

    pols = {LOW: PressurePolicy(priority=0, trim=False), HIGH: PressurePolicy(priority=10, trim=False)}
    st = status(run(IO(), 2, pols))
    text = "\n".join(describe(st))
    header = next(line for line in text.splitlines() if line.startswith("cgroup "))
    assert header.split() == [
        "cgroup", "state", "prio", "charge", "anon", "file", "node0", "node1", "PSI", "%", "working",
        "set", "probe", "ended", "by",
    ]  # fmt: skip
    assert "shmem" not in header  # None for every cgroup: not shown
    row = next(line for line in text.splitlines() if line.startswith(LOW))
    assert row.split()[1:6] == ["ok", "0", "6.0G", "3.0G", "3.0G"] and "0.5/0.2" in row
    assert "PSI some/full avg10 2.0 %" in text
