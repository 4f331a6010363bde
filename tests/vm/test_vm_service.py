"""The Service on the real kernel: profiles, a pin that takes effect and survives a restart, reload."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.vm.test_vm_nonbpf import Child
from tierctl.cli import main
from tierctl.errors import InputError
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.numa import NumaSyscalls
from tierctl.profiles import ProfileError
from tierctl.service.service import DaemonConfig, Service

pytestmark = pytest.mark.vm
PAGE = 4096
REPO = Path(__file__).resolve().parents[2]


def in_cgroup(child_args: tuple[int, int], path: str) -> Child:
    """A Child started inside cgroup ``path`` (joined before it allocates, so its memory is charged there)."""
    fs = CgroupFS()
    old = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
    fs.attach(path, os.getpid())  # the child inherits our cgroup at fork; we move back right after
    try:
        return Child(*child_args)
    finally:
        fs.attach(old.lstrip("/"), os.getpid())


def test_service_pins_persist_and_reload_is_transactional(tmp_path: Path, capsys) -> None:
    fs = CgroupFS()
    base = f"tierctl-svc-{os.getpid()}"
    fs.create(base)
    fs.create(f"{base}/crit")
    fs.create(f"{base}/batch")
    profiles = tmp_path / "profiles"
    shutil.copytree(REPO / "tierctl" / "data" / "profiles", profiles)
    # two workloads under two different profiles; batch's demotions are rate-limited to 8 MB/s
    (profiles / "t-crit.toml").write_text(
        'name = "t-crit"\npriority = 200\n[[match]]\ncgroup = "/tierctl-svc-*/crit"\n'
        '[placement]\nfast_min = "16M"\n'
    )
    (profiles / "t-batch.toml").write_text(
        'name = "t-batch"\npriority = 200\n[[match]]\ncgroup = "/tierctl-svc-*/batch"\n'
        "[placement]\ndemote_rate_mbps = 8\n"
    )
    limit = int(8e6 // PAGE)  # pages per 1 s cycle
    cfg = DaemonConfig(
        profiles_dir=profiles,
        state_dir=tmp_path / "state",
        scope=(f"/{base}",),
        hint_faults="on",
        samplers=("bpf-fault",),
    )
    crit = in_cgroup((8, 16), f"{base}/crit")  # hot 16 MiB, moved to the slow node below
    batch = in_cgroup((16, 1), f"{base}/batch")  # 16 MiB on the fast node, idle
    svc = None
    try:
        assert main(["move", str(crit.pid), "--to", "slow"]) == 0
        capsys.readouterr()
        svc = Service(cfg)
        svc.start()
        svc.pin(f"/{base}/batch", "slow")
        with pytest.raises(InputError, match="no such cgroup"):
            svc.pin(f"/{base}/nope", "fast")
        crit.send("loop")
        numa = NumaSyscalls()
        hot = np.arange(crit.hot[0], crit.hot[1], PAGE, dtype=np.uint64)
        idle = np.arange(batch.cold[0], batch.cold[1], PAGE, dtype=np.uint64)
        left = [int((numa.query(batch.pid, idle) == 0).sum())]
        for _ in range(8):
            time.sleep(1.0)
            svc.cycle()
            left.append(int((numa.query(batch.pid, idle) == 0).sum()))
        steps = -np.diff(left)
        assert steps.max() <= limit and steps.max() >= limit // 2, left  # the rate limit binds
        rows = {c["path"]: c for c in svc.cgroups()}
        assert rows[f"/{base}/crit"]["profile"] == "t-crit" and rows[f"/{base}/batch"]["profile"] == "t-batch"
        assert (numa.query(crit.pid, hot) == 0).mean() >= 0.9  # the hot set came back to DRAM
        assert (numa.query(batch.pid, idle) == 1).mean() >= 0.95  # the pin sent batch to the slow node
        # all of batch's own (exclusively mapped) memory left DRAM
        assert (
            rows[f"/{base}/batch"]["override"] == "slow" and rows[f"/{base}/batch"]["fast_bytes"] < 1 << 20
        ), left
        detail = svc.cgroup_detail(f"/{base}/crit")
        assert {p["pid"] for p in detail["processes"]} == {crit.pid}
        assert svc.status()["state"] == "running" and svc.status()["moved"]["promoted"] > 0
        # reload with a broken profile keeps the running set
        (profiles / "broken.toml").write_text("[placement]\nfast_mn = 1\n")
        with pytest.raises(ProfileError, match="fast_mn"):
            svc.reload()
        assert "default" in svc.status()["profiles"]
        svc.stop()
        svc = None
        # a new daemon (restart after SIGKILL: nothing but the state file carries over) keeps the pin
        (profiles / "broken.toml").unlink()
        svc2 = Service(cfg)
        assert svc2.overrides.pins == {f"/{base}/batch": "slow"}
    finally:
        if svc is not None:
            svc.stop()
        for c in (crit, batch):
            c.kill()
        for path in (f"{base}/crit", f"{base}/batch", base):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    fs.remove(path)
                    break
                except Exception:
                    time.sleep(0.1)
