"""The pressure ladder with its clients, on the guest's real kernel: a subscribed client (the
documented 20-line example) receives its cgroup's notification and sheds; a daemon SIGKILLed while
it trims leaves no limit behind (it never sets one: trims are memory.reclaim writes)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.vm.conftest import pressure_daemon
from tierctl.api.client import ApiClient
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.procfs import ProcFS

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
LIMITS = ("memory.min", "memory.low", "memory.high", "memory.max")

# touches N MiB of private anonymous memory, prints READY, then holds it until stdin closes
HOG = r"""
import mmap, sys
m = mmap.mmap(-1, int(sys.argv[1]) << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, len(m), 4096):
    m[i] = 1
print("READY", flush=True)
sys.stdin.read()
"""


def _hog(cgroup: str, mib: int) -> subprocess.Popen[str]:
    procs = CgroupFS().memory_root / cgroup / "cgroup.procs"
    p = subprocess.Popen(
        [sys.executable, "-c", HOG, str(mib)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: procs.write_text(str(os.getpid())),
    )  # fmt: skip
    assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    return p


def _daemon(tmp_path: Path, cgroup: str, pressure: str) -> tuple[subprocess.Popen[str], Path]:
    """A daemon managing ``cgroup`` with profile ``[pressure]`` lines ``pressure``, its target set so
    that 256 MiB more than the guest uses now crosses it (at least 50 %, the flag's floor)."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(REPO / "tierctl" / "data" / "profiles" / "default.toml", profiles)
    (profiles / "mine.toml").write_text(f'[[match]]\ncgroup = "/{cgroup}"\n[pressure]\n{pressure}\n')
    m = ProcFS().meminfo()
    target = max(50, int(100 * (m.used + 256 * MiB) / m.total))
    return pressure_daemon(tmp_path, profiles, f"/{cgroup}", target)


def _above(daemon: subprocess.Popen[str], sock: Path) -> int:
    """Bytes the hog has to hold so that the machine goes above the daemon's target."""
    if daemon.poll() is not None:
        _, err = daemon.communicate()
        raise AssertionError(f"the daemon exited ({daemon.returncode}):\n{err[-4000:]}")
    with ApiClient(sock) as c:
        st = c.call("pressure")
    deadline = time.monotonic() + 10
    while st.get("machine") is None and time.monotonic() < deadline:
        time.sleep(0.5)
        with ApiClient(sock) as c:
            st = c.call("pressure")
    m = st["machine"]
    return max(0, int(st["target_ratio"] * m["total"]) - m["used"]) + 192 * MiB


def test_a_subscribed_client_is_notified_and_sheds(tmp_path: Path, memory_cgroup: str) -> None:
    cgroup = memory_cgroup
    daemon, sock = _daemon(tmp_path, cgroup, 'trim = false\nnotify = true\ngrace_s = 30\nkill = "never"')
    client = hog = None
    try:
        client = subprocess.Popen(
            [sys.executable, str(REPO / "examples" / "shed_on_pressure.py"), "--socket", str(sock),
             "--cgroup", f"/{cgroup}", "--once"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)  # subscribed ("from now on")
        hog = _hog(cgroup, _above(daemon, sock) // MiB)
        out, _ = client.communicate(timeout=60)
        assert client.returncode == 0
        assert out.startswith("shedding ") and " bytes before " in out, out
        print(f"\nclient: {out.strip()}")
    finally:
        for p in (client, hog):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
        daemon.terminate()
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err


def test_a_daemon_killed_mid_trim_leaves_no_limit_behind(tmp_path: Path, memory_cgroup: str) -> None:
    cgroup = memory_cgroup
    fs = CgroupFS()
    before = {f: (fs.memory_root / cgroup / f).read_text() for f in LIMITS}
    daemon, sock = _daemon(tmp_path, cgroup, 'trim = true\ntrim_rate_mbps = 16\nkill = "never"')
    hog = None
    try:
        hog = _hog(cgroup, _above(daemon, sock) // MiB)
        deadline, trims = time.monotonic() + 60, []
        while not trims and time.monotonic() < deadline:
            time.sleep(0.5)
            with ApiClient(sock) as c:
                trims = [e for e in c.call("events", since=0)["events"] if e["kind"] == "pressure_trim"]
        assert trims, "the daemon never trimmed"
        with ApiClient(sock) as c:
            st = c.call("pressure")
        # PSI poll triggers armed on the system and the managed cgroup; the ladder woken between cycles
        assert {"/", f"/{cgroup}"} <= set(st["psi_triggers"]), st["psi_triggers"]
        assert sum(st["wakes"].values()) > 0, st["wakes"]
        print(f"\nwakes between cycles: {st['wakes']}")
        daemon.send_signal(signal.SIGKILL)  # mid-trim: no clean stop
        daemon.wait(timeout=30)
        after = {f: (fs.memory_root / cgroup / f).read_text() for f in LIMITS}
        assert after == before, (before, after)  # nothing set, so nothing left set
        assert hog.poll() is None  # and the workload was neither killed nor throttled to death
    finally:
        if hog is not None and hog.poll() is None:
            hog.kill()
            hog.communicate()
        if daemon.poll() is None:
            daemon.kill()
        daemon.communicate()
