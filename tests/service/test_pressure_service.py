"""The pressure ladder inside the Service: profiles' [pressure] tables reach it, events and the API's
pressure op report it, the CLI prints it; on the simulator (no memory model) it says it is unavailable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierctl.cli.pressure_cmd import describe
from tierctl.core.ladder import Machine
from tierctl.data import profiles_dir
from tierctl.service.metrics import snapshot_from_service
from tierctl.service.pressure import CgroupFacts
from tierctl.service.service import DaemonConfig, Service
from tierctl.sim import live
from tierctl.sim.live import SimPlatform, sim_service
from tierctl.sim.workloads import make_workload

GIB = 1 << 30
BATCH = "/batch.slice/nightly-etl.service"
DB = "/system.slice/postgresql@16-main.service"
CACHE = "/system.slice/redis-server.service"


class FakeIO:
    """A 16 GiB machine where the simulated cgroups hold most of the memory."""

    def __init__(self) -> None:
        self.charges = {BATCH: 9 * GIB, DB: 5 * GIB, CACHE: 1 * GIB}
        self.reclaimed: list[tuple[str, int]] = []
        self.killed: list[str] = []

    def machine(self) -> Machine:
        used = sum(self.charges.values()) + GIB // 2
        return Machine(16 * GIB, 16 * GIB - used)

    def machine_psi(self) -> None:
        return None

    def cgroup(self, path: str) -> CgroupFacts:
        return CgroupFacts(self.charges[path], 0.0, 0)

    def reclaim(self, path: str, nbytes: int) -> bool:
        self.reclaimed.append((path, nbytes))
        self.charges[path] = max(0, self.charges[path] - nbytes)
        return True

    def kill(self, path: str) -> None:
        self.killed.append(path)
        self.charges[path] = 0

    def own_cgroup(self) -> str:
        return "/system.slice/tierctl.service"

    def stall_source(self, knobs: object = None) -> None:  # no kernel: no stall source
        return None

    def cgroup_path(self, cgroup_id: int) -> str | None:
        return None

    def wake(self) -> None:
        return None


def test_on_the_simulator_the_ladder_runs_on_a_calm_memory_model(tmp_path: Path) -> None:
    svc = sim_service("multi-cgroup", state_dir=tmp_path, profiles_dir=profiles_dir())
    svc.start()
    for _ in range(30):
        svc.cycle()
    st = svc.pressure_status()
    assert st["active"] and st["mode"] == "on"
    m = st["machine"]
    assert 0.3 < m["used"] / m["total"] < 0.85  # under the target and the probing threshold: no action
    assert len(m["psi_history"]) == 30 and st["last_actions"] == [] and st["actions"]["trim"] == 0
    paths = {c["path"] for c in svc.cgroups()}
    assert set(st["cgroups"]) == paths
    for path, c in st["cgroups"].items():
        # anon = the trace's pages present (read before this cycle's moves: by node they may differ)
        row = next(r for r in svc.cgroups() if r["path"] == path)
        assert c["kinds"]["anon"] == row["fast_bytes"] + row["slow_bytes"]
        assert c["nodes"]["0"] + c["nodes"]["1"] == c["kinds"]["anon"] + c["kinds"]["file"]
        # the first cycle's ladder ran before discovery had matched the cgroups
        assert c["state"] in ("ok", "protected") and len(c["psi_history"]) == 29
    assert not [e for e in svc.events if e["kind"].startswith("pressure_")]
    assert "cgroup" in "\n".join(describe(st))


def test_off_says_so(tmp_path: Path) -> None:
    svc = Service(
        DaemonConfig(state_dir=tmp_path, profiles_dir=profiles_dir(), pressure="off"),
        platform=SimPlatform(make_workload("multi-cgroup", seed=0, epochs=10)),
    )
    st = svc.pressure_status()
    assert st == {"mode": "off", "active": False, "reason": "off"}
    assert describe(st) == ["pressure ladder: off (off)"]


@pytest.mark.parametrize("mode", ["on", "dry-run"])
def test_the_ladder_follows_the_shipped_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    io = FakeIO()
    monkeypatch.setattr(live.SimPlatform, "pressure_io", lambda self: io)
    svc = sim_service("multi-cgroup", state_dir=tmp_path, profiles_dir=profiles_dir(), wall=lambda: 1e9)
    svc.cfg = svc.cfg.__class__(**{**svc.cfg.__dict__, "pressure": mode})
    svc.ladder = svc.make_ladder(svc.cfg)
    svc.start()
    for _ in range(5):
        svc.cycle()
    st = svc.pressure_status()
    assert st["active"] and st["mode"] == mode and st["machine"]["total"] == 16 * GIB
    kinds = [(e["kind"], e.get("cgroup")) for e in svc.events if e["kind"].startswith("pressure_")]
    # batch (priority -10) first, every cycle; then the cache (no [pressure] table: priority 0), then
    # the database (priority 10) for what their trim rates leave, never below its protected 4 GiB
    order = [p for k, p in kinds if k == "pressure_trim"][:3]
    assert order == [BATCH, CACHE, DB]
    assert {p for k, p in kinds if k == "pressure_kill"} <= {BATCH}
    if mode == "on":
        assert io.reclaimed and io.reclaimed[0][0] == BATCH
        assert io.charges[DB] >= 4 * GIB  # protect = "4G" in the shipped database.toml
    else:
        assert io.reclaimed == [] and io.killed == []
        assert all(e["dry_run"] for e in svc.events if e["kind"].startswith("pressure_"))
    text = "\n".join(describe(st))
    assert "target 95%" in text and BATCH in text
    snap = snapshot_from_service(svc)
    assert snap.memory_used == st["machine"]["used"] and snap.memory_target == int(0.95 * 16 * GIB)
    trims = len([e for e in svc.events if e["kind"] == "pressure_trim"])
    assert snap.pressure_actions["trim"] == (0 if mode == "dry-run" else trims) and trims > 0
