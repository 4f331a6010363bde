"""Three workloads overcommit the guest's memory under a running `tierctl daemon` (issue 14, test a):
the machine is brought back under its target by trimming, the low-priority workload is trimmed first,
the protected one keeps its memory, nobody is killed or throttled (no memory.high/max anywhere).

Trimming frees memory only where reclaimed pages have somewhere to go: page cache counts as available
already (MemAvailable), and anonymous memory needs swap. The guest has none, so the test gives it
compressed swap in RAM (zram, as many production machines have: zram or zswap) for its duration. The
workloads hold anonymous memory with a small hot part, re-touched every second; the rest is cold.
Demotion stays as the guest has it: on the tiered guest memory.reclaim first demotes node 0's cold
pages to node 1 and then swaps node 1's out (what a trim frees is judged by the charge it removes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.conftest import pressure_daemon, remove_cgroup
from tierctl.api.client import ApiClient
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.procfs import ProcFS

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
LIMITS = ("memory.min", "memory.low", "memory.high", "memory.max")

# touches ANON MiB of private anonymous memory (4 KiB pages), prints READY, then re-touches its first
# HOT MiB every second until stdin closes
HOLDER = r"""
import mmap, select, sys
anon_mib, hot_mib = int(sys.argv[1]), int(sys.argv[2])
anon = mmap.mmap(-1, anon_mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
anon.madvise(mmap.MADV_NOHUGEPAGE)
for i in range(0, len(anon), 4096):
    anon[i] = 1
print("READY", flush=True)
while not select.select([sys.stdin], [], [], 1.0)[0]:
    for i in range(0, hot_mib << 20, 4096):
        anon[i] = 2
"""

# name -> (anon MiB, hot MiB, [pressure] lines); priorities low < mid < protected
WORKLOADS = {
    "low": (480, 32, 'priority = -10\ntrim = true\ntrim_rate_mbps = 64\nnotify = false\nkill = "never"'),
    "mid": (256, 64, 'priority = 0\ntrim = true\ntrim_rate_mbps = 64\nnotify = false\nkill = "never"'),
    "protected": (256, 256, None),  # its lines are written once its charge is known: protect = all of it
}


@pytest.fixture
def zram_swap() -> Iterator[str]:
    """1 GiB of compressed swap in RAM for the test's duration (swapoff and reset after)."""
    subprocess.run(["modprobe", "zram"], check=True)
    dev = Path("/sys/block/zram0")
    assert (dev / "disksize").read_text().strip() == "0", "zram0 is in use"
    (dev / "disksize").write_text(str(1 << 30))
    subprocess.run(["mkswap", "/dev/zram0"], check=True, capture_output=True)
    subprocess.run(["swapon", "-p", "100", "/dev/zram0"], check=True)
    yield "/dev/zram0"
    subprocess.run(["swapoff", "/dev/zram0"], check=False)
    (dev / "reset").write_text("1")


@pytest.fixture
def cgroups(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    fs = CgroupFS()
    parent = f"tierctl-vm-{os.getpid()}-overcommit"
    fs.create(parent)
    paths = {name: f"{parent}/{name}" for name in WORKLOADS}
    for p in paths.values():
        fs.create(p)
        fs.enable_controllers(p, ("memory",))  # in each ancestor's subtree_control
    yield paths
    for p in [*paths.values(), parent]:
        remove_cgroup(fs, p)


def _limits(fs: CgroupFS, cgroup: str) -> dict[str, str]:
    return {f: (fs.memory_root / cgroup / f).read_text() for f in LIMITS}


def _hold(cgroup: str, anon: int, hot: int) -> subprocess.Popen[str]:
    procs = CgroupFS().memory_root / cgroup / "cgroup.procs"
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(anon), str(hot)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: procs.write_text(str(os.getpid())),
    )  # fmt: skip
    assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    return p


def test_overcommit_trims_the_low_priority_one_first_and_keeps_the_protected_memory(
    tmp_path: Path, cgroups: dict[str, str], zram_swap: str
) -> None:
    fs, procs = CgroupFS(), ProcFS()
    holders = {}
    daemon = None
    try:
        for name, (anon, hot, _) in WORKLOADS.items():
            holders[name] = _hold(cgroups[name], anon, hot)
        charge = {n: fs.memory_current(cgroups[n]) for n in WORKLOADS}
        protect = charge["protected"]
        limits_before = {n: _limits(fs, cgroups[n]) for n in WORKLOADS}
        m = procs.meminfo()
        # the target: 160 MiB under what the machine uses now, so that trimming the low one (448 MiB
        # of it cold) covers the excess and the protected one is never needed
        target_pct = int(100 * (m.used - 160 * MiB) / m.total)
        assert target_pct >= 50, f"the guest uses too little to overcommit it: {m}"
        profiles = tmp_path / "profiles"
        profiles.mkdir()
        shutil.copy(REPO / "tierctl" / "data" / "profiles" / "default.toml", profiles)
        for name, (_, _, lines) in WORKLOADS.items():
            if lines is None:
                lines = f'priority = 10\ntrim = true\nprotect = "{protect // MiB}M"\nkill = "never"'
            (profiles / f"{name}.toml").write_text(
                f'[[match]]\ncgroup = "/{cgroups[name]}"\n[pressure]\n{lines}\n'
            )
        parent = cgroups["low"].split("/")[0]
        daemon, sock = pressure_daemon(tmp_path, profiles, f"/{parent}", target_pct)
        t0 = time.monotonic()
        under_at = None
        used_series = []
        while time.monotonic() - t0 < 90:
            time.sleep(0.5)
            m = procs.meminfo()
            used_series.append(round(m.used / m.total, 4))
            if m.used <= target_pct / 100 * m.total:
                under_at = round(time.monotonic() - t0, 1)
                break
        with ApiClient(sock) as c:
            events = c.call("events", since=0)["events"]
            st = c.call("pressure")
        trims = [e["cgroup"] for e in events if e["kind"] == "pressure_trim"]
        kills = [e for e in events if e["kind"] in ("pressure_kill", "oom_kill")]
        print(
            f"\ntarget {target_pct}%, under it after {under_at} s; "
            f"used share {used_series[:3]}..{used_series[-3:]}"
            f"\ntrims by cgroup: { {n: trims.count('/' + p) for n, p in cgroups.items()} }"
            f"\ncharges before { ({n: c // MiB for n, c in charge.items()}) } MiB, after "
            f"{ ({n: fs.memory_current(cgroups[n]) // MiB for n in WORKLOADS}) } MiB; wakes {st.get('wakes')}"
        )
        assert under_at is not None, f"still above the {target_pct}% target after 90 s: {used_series[-5:]}"
        assert trims and trims[0] == f"/{cgroups['low']}", trims[:5]  # the lowest priority first
        assert f"/{cgroups['protected']}" not in trims  # never below its protected bytes
        assert fs.memory_current(cgroups["protected"]) >= protect * 0.95  # it keeps its memory
        assert fs.memory_current(cgroups["low"]) < charge["low"] - 100 * MiB  # the low one gave it
        assert not kills, kills
        assert all(h.poll() is None for h in holders.values())  # nobody killed
        after = {n: _limits(fs, cgroups[n]) for n in WORKLOADS}
        assert after == limits_before  # nothing throttled: no limit set by anyone
    finally:
        if daemon is not None:
            daemon.terminate()
            _, err = daemon.communicate(timeout=30)
            assert daemon.returncode == 0, err[-3000:]
        for h in holders.values():
            if h.poll() is None:
                h.kill()
            h.communicate()
