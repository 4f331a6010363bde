"""The pressure ladder in the daemon, on fake facts and actuators: trims, notifications with their
hook and events, kills with prekill and cleanup hooks, dry-run, and who is never killed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tierctl.core.ladder import Limits, Machine
from tierctl.core.workingset import ProbeLimits
from tierctl.errors import InputError
from tierctl.profiles.schema import PressurePolicy
from tierctl.samplers.stall import CgroupStall, OomVictim, StallReport
from tierctl.service.pressure import (
    CgroupFacts,
    PressureConfig,
    PressureControl,
    ProcessHooks,
    PsiFigures,
    never_killed,
)

GIB, MIB = 1 << 30, 1 << 20
TOTAL = 16 * GIB


class FakeKernel:
    def __init__(self, charges: dict[str, int], other: int) -> None:
        self.charges = charges
        self.other = other  # memory used outside the managed cgroups
        self.reclaimed: list[tuple[str, int]] = []
        self.killed: list[str] = []

    def machine(self) -> Machine:
        return Machine(TOTAL, TOTAL - self.other - sum(self.charges.values()))

    def machine_psi(self) -> PsiFigures | None:
        return None

    def cgroup(self, path: str) -> CgroupFacts:
        return CgroupFacts(self.charges[path], psi_some=0.0, refaults=0)

    def reclaim(self, path: str, nbytes: int) -> bool:
        self.reclaimed.append((path, nbytes))
        self.charges[path] -= nbytes
        return True

    def kill(self, path: str) -> None:
        self.killed.append(path)
        self.charges[path] = 0


class RecordingHooks:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], dict[str, str], float | None]] = []

    def run(self, argv: Sequence[str], env: Mapping[str, str], *, wait_s: float | None) -> None:
        self.calls.append((tuple(argv), dict(env), wait_s))


def cycle(pc: PressureControl, t: float, cgroups: dict[str, tuple[PressurePolicy, float]]) -> list:
    pols = {p: pol for p, (pol, _) in cgroups.items()}
    return pc.cycle(t, 1.0, pols, lambda: {p: c for p, (_, c) in cgroups.items()})


def control(kernel: FakeKernel, mode: str = "on", own: str = "/system.slice/tierctl.service"):
    events: list[tuple[str, dict[str, Any]]] = []
    hooks = RecordingHooks()
    cfg = PressureConfig(mode=mode, limits=Limits(kill_interval_s=5.0), probe=ProbeLimits(), own_cgroup=own)
    pc = PressureControl(cfg, kernel, kernel, hooks, lambda kind, **info: events.append((kind, info)))
    return pc, events, hooks


HOOKS = (("notify", ("/bin/shed",)), ("prekill", ("/bin/ckpt",)), ("cleanup", ("/bin/requeue",)))
BATCH = PressurePolicy(priority=-10, kill="cgroup", grace_s=3.0, trim_rate_mbps=512, hooks=HOOKS)
RUNAWAY = PressurePolicy(priority=-10, kill="cgroup", trim=False, grace_s=3.0, hooks=HOOKS)
DB = PressurePolicy(priority=10, protect=6 * GIB)


def test_overcommit_trims_the_low_priority_one_first_and_keeps_the_protected_memory() -> None:
    k = FakeKernel({"/batch": 6 * GIB, "/db": 6 * GIB}, other=3 * GIB + 512 * MIB)
    pc, events, _ = control(k)
    cgroups = {"/batch": (BATCH, 0.8), "/db": (DB, 0.2)}
    for t in range(20):
        cycle(pc, float(t), cgroups)
    assert k.machine().used <= 0.95 * TOTAL
    assert k.charges["/db"] >= 6 * GIB  # protected
    trims = [i["cgroup"] for kind, i in events if kind == "pressure_trim"]
    assert trims and set(trims) == {"/batch"}
    assert k.killed == []


def test_a_runaway_is_notified_then_killed_with_its_hooks_and_nothing_else_dies() -> None:
    k = FakeKernel({"/batch": 13 * GIB, "/db": 2 * GIB}, other=int(0.6 * GIB))
    pc, events, hooks = control(k)
    cgroups = {"/batch": (RUNAWAY, 0.0), "/db": (DB, 0.0)}
    for t in range(10):
        cycle(pc, float(t), cgroups)
    assert k.killed == ["/batch"]
    kinds = [kind for kind, _ in events]
    assert kinds.index("pressure_notify") < kinds.index("pressure_kill")
    argvs = [c[0] for c in hooks.calls]
    assert argvs == [("/bin/shed",), ("/bin/ckpt",), ("/bin/requeue",)]
    _, env, wait = hooks.calls[1]
    assert (
        wait == pytest.approx(10.0) and env["TIERCTL_EVENT"] == "kill" and env["TIERCTL_CGROUP"] == "/batch"
    )
    assert int(env["TIERCTL_MEM_TOTAL"]) == TOTAL and "TIERCTL_DEADLINE" not in env
    assert hooks.calls[0][1]["TIERCTL_DEADLINE"]


def test_dry_run_decides_the_same_and_does_nothing() -> None:
    k = FakeKernel({"/batch": 13 * GIB, "/db": 2 * GIB}, other=int(0.6 * GIB))
    pc, events, hooks = control(k, mode="dry-run")
    cgroups = {"/batch": (RUNAWAY, 0.0), "/db": (DB, 0.0)}
    for t in range(10):
        cycle(pc, float(t), cgroups)
    assert k.killed == [] and k.reclaimed == [] and hooks.calls == []
    assert {kind for kind, _ in events} >= {"pressure_notify", "pressure_kill"}
    assert all(info["dry_run"] for kind, info in events if kind.startswith("pressure_"))


def test_the_daemon_its_ancestors_and_init_scope_are_never_killed() -> None:
    own = "/system.slice/tierctl.service"
    for path in (own, "/system.slice", "/", "/init.scope"):
        assert never_killed(path, own), path
    assert not never_killed("/batch.slice/etl.service", own)
    k = FakeKernel({"/system.slice": 15 * GIB}, other=int(0.9 * GIB))
    pc, _, _ = control(k, own=own)
    for t in range(10):
        cycle(pc, float(t), {"/system.slice": (PressurePolicy(kill="cgroup", trim=False), 0.0)})
    assert k.killed == []


def test_off_does_nothing_and_bad_modes_are_refused() -> None:
    k = FakeKernel({"/a": 15 * GIB}, other=GIB)
    pc, events, _ = control(k, mode="off")
    assert cycle(pc, 0.0, {"/a": (BATCH, 0.0)}) == [] and events == []
    with pytest.raises(InputError, match="--pressure"):
        PressureConfig(mode="maybe")


def test_process_hooks_get_the_facts_and_a_hung_one_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    hooks = ProcessHooks()
    hooks.run(
        ["/bin/sh", "-c", f'echo "$TIERCTL_CGROUP $TIERCTL_BYTES" > {out}'],
        {"TIERCTL_CGROUP": "/a", "TIERCTL_BYTES": "42"},
        wait_s=10.0,
    )
    assert out.read_text().split() == ["/a", "42"]
    hooks.run(["/bin/sleep", "30"], {}, wait_s=0.2)
    assert hooks.timed_out == 1
    from tierctl.errors import UnavailableError

    with pytest.raises(UnavailableError, match="/nonexistent/hook"):
        hooks.run(["/nonexistent/hook"], {}, wait_s=None)


def test_a_trim_that_only_demotes_is_judged_by_the_charge_and_the_ladder_escalates() -> None:
    """memory.reclaim with demotion on moves pages to the slow node and frees nothing (measured in the
    guest, docs/pressure-sensing.md): the yield falls, trims stop, the workload is notified."""

    class Demoting(FakeKernel):
        def reclaim(self, path: str, nbytes: int) -> bool:
            self.reclaimed.append((path, nbytes))
            return True  # the write succeeded, the charge did not fall

    k = Demoting({"/batch": 12 * GIB}, other=int(3.4 * GIB))
    pc, events, _ = control(k)
    lowest = 1.0
    for t in range(8):
        cycle(pc, float(t), {"/batch": (BATCH, 0.0)})
        lowest = min(lowest, pc.yields["/batch"])
    kinds = [kind for kind, _ in events]
    assert kinds.index("pressure_trim") < kinds.index("pressure_notify") < kinds.index("pressure_kill")
    assert lowest < 0.05 and k.killed == ["/batch"]  # killed after its grace: trims freed nothing


class FakeStalls:
    def __init__(self, reports: list) -> None:
        self.reports = reports
        self.stopped = False

    def drain(self):
        return self.reports.pop(0) if self.reports else StallReport("bpf-stall", True, 1.0)

    def watchdog(self) -> list[str]:
        return []

    def stop(self) -> None:
        self.stopped = True


def test_the_kernels_oom_kills_are_attributed_logged_and_cleaned_up_after() -> None:
    k = FakeKernel({"/batch": GIB}, other=GIB)
    pc, events, hooks = control(k)
    victim = OomVictim(
        pid=4242, tgid=4242, cgroup_id=77, comm="etl", exited=True, invoker_cgroup_id=77, at_ns=1
    )
    stalls = FakeStalls([
        StallReport("bpf-stall", True, 1.0, (CgroupStall(77, episodes=3, stall_ns=5_000_000),), (victim,)),
        StallReport("stall-fallback", False, 1.0, (CgroupStall(0, oom_kills=2, path="batch"),)),
    ])  # fmt: skip
    pc.stalls, pc.cgroup_path = stalls, {77: "/batch"}.get
    cycle(pc, 0.0, {"/batch": (BATCH, 0.0)})
    assert (
        "oom_kill",
        {"cgroup": "/batch", "kills": 1, "pid": 4242, "comm": "etl", "source": "bpf-stall"},
    ) in events
    assert pc.stall_ms == {"/batch": 5.0}
    argv, env, _ = hooks.calls[-1]
    assert argv == ("/bin/requeue",) and env["TIERCTL_EVENT"] == "oom_kill" and env["TIERCTL_PID"] == "4242"
    cycle(pc, 1.0, {"/batch": (BATCH, 0.0)})  # the fallback's counters (no pids)
    assert pc.oom_kills == 3 and events[-1][1]["kills"] == 2 and events[-1][1]["source"] == "stall-fallback"
    pc.close()
    assert stalls.stopped
