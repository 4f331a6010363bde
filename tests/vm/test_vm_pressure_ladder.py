"""The pressure ladder of a running `tierctl daemon` on the guest's real kernel: a runaway allocator in
a cgroup whose profile allows killing is notified, then killed whole by the daemon (cgroup.kill)
before the kernel's OOM killer fires; its hooks run with the facts; the test process (another cgroup,
no kill policy) lives on. No memory.max or memory.high is set by anyone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.vm.conftest import pressure_daemon
from tierctl.api.client import ApiClient
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.memstat import MemStat
from tierctl.kernel.procfs import ProcFS

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20

# allocates and touches 32 MiB chunks until it is killed
RUNAWAY = r"""
import mmap, time
chunks = []
while True:
    m = mmap.mmap(-1, 32 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(0, len(m), 4096):
        m[i] = 1
    chunks.append(m)
    time.sleep(0.05)
"""


def test_a_runaway_is_killed_by_the_ladder_before_the_oom_killer(tmp_path: Path, memory_cgroup: str) -> None:
    cgroup = memory_cgroup
    fs, procs = CgroupFS(), ProcFS()
    m = procs.meminfo()
    target = 60  # percent: reached long before the guest runs out of memory
    hook_out = tmp_path / "hook.txt"
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(REPO / "tierctl" / "data" / "profiles" / "default.toml", profiles)
    (profiles / "runaway.toml").write_text(
        f'[[match]]\ncgroup = "/{cgroup}"\n[pressure]\npriority = -10\ntrim = false\nkill = "cgroup"\n'
        "grace_s = 1\n[pressure.hooks]\n"
        f'cleanup = ["/bin/sh", "-c", "echo $TIERCTL_EVENT $TIERCTL_CGROUP > {hook_out}"]\n'
    )
    daemon, sock = pressure_daemon(tmp_path, profiles, f"/{cgroup}", target, stdout=subprocess.PIPE)
    runaway = None
    try:
        runaway = subprocess.Popen(
            [sys.executable, "-c", RUNAWAY], stdout=subprocess.DEVNULL,
            preexec_fn=lambda: (fs.memory_root / cgroup / "cgroup.procs").write_text(str(os.getpid())),
        )  # fmt: skip
        runaway.wait(timeout=120)
        assert runaway.returncode == -9  # SIGKILL
        events = MemStat(fs).memory_events(cgroup)
        assert events.oom_kill == 0, "the kernel's OOM killer fired first"
        deadline = time.monotonic() + 10
        while not hook_out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hook_out.read_text().split() == ["kill", f"/{cgroup}"]
        with ApiClient(sock) as c:
            log = c.call("events", since=0)["events"]
            st = c.call("pressure")
        kinds = [(e["kind"], e.get("cgroup")) for e in log if e["kind"].startswith("pressure_")]
        assert ("pressure_kill", f"/{cgroup}") in kinds
        assert kinds.index(("pressure_notify", f"/{cgroup}")) < kinds.index(("pressure_kill", f"/{cgroup}"))
        assert st["active"] and st["actions"]["kill"] == 1
        print(json.dumps({"mem_total": m.total, "target_pct": target, "events": kinds[:6]}))
        assert daemon.poll() is None  # the daemon lives on
    finally:
        if runaway is not None and runaway.poll() is None:
            runaway.kill()
        daemon.terminate()
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
