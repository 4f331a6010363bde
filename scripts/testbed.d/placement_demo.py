"""Show the daemon placing two workloads on the two-tier guest (run through scripts/placement-demo).

A batch job fills DRAM first; then a latency-critical service allocates a hot set, which
therefore lands on the slow node. `tierctl daemon` starts with the shipped profiles plus one
profile per workload, and every two seconds this prints where each workload's memory is.
At the end: `tierctl top` and `tierctl status` from the daemon's socket.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tierctl.api.client import ApiClient
from tierctl.errors import TierctlError
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.topology import SysfsTopology

REPO = Path(__file__).resolve().parents[2]
PAGE = 4096
# the workload: map SIZE MiB, touch it all, print "READY addr len", then (if HOT) touch every page forever
WORKLOAD = """
import mmap, ctypes, sys, time
size, hot = int(sys.argv[1]) << 20, sys.argv[2] == "hot"
m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, size, 4096):
    m[i] = 1
print("READY", ctypes.addressof(ctypes.c_char.from_buffer(m)), size, flush=True)
while True:
    if hot:
        for i in range(0, size, 4096):
            m[i] = 2
    else:
        time.sleep(1)
"""
CRIT_PROFILE = """name = "demo-critical"
description = "the demo's latency-critical service"
priority = 300
[[match]]
cgroup = "/tierctl-demo/crit"
[placement]
fast_min = "{hot}M"
"""
BATCH_PROFILE = """name = "demo-batch"
description = "the demo's batch job: at most 15 % of DRAM, demoted at up to 200 MB/s"
priority = 300
[[match]]
cgroup = "/tierctl-demo/batch"
[placement]
fast_max = "15%"
demote_rate_mbps = 200
"""


def start(fs: CgroupFS, cgroup: str, mib: int, kind: str) -> tuple[subprocess.Popen[str], np.ndarray]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKLOAD, str(mib), kind],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: fs.attach(cgroup, os.getpid()),
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().split()
    if not ready or ready[0] != "READY":
        raise SystemExit(f"placement-demo: the {kind} workload did not start")
    return proc, int(ready[1]) + np.arange(0, int(ready[2]), PAGE, dtype=np.uint64)


VMSTAT = ("pgmigrate_success", "pgpromote_success", "pgdemote_kswapd", "numa_hint_faults")


def vmstat() -> dict[str, int]:
    pairs = (line.split() for line in Path("/proc/vmstat").read_text().splitlines())
    return {k: int(v) for k, v in pairs if k in VMSTAT}


def wait_ready(sock: Path, daemon: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    """Until the daemon answers on its socket and has run a cycle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"placement-demo: the daemon exited with {daemon.returncode}")
        try:
            with ApiClient(sock, timeout=10) as client:
                if client.call("status")["cycle"] >= 1:
                    return
        except TierctlError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"placement-demo: the daemon did not answer on {sock} within {timeout:.0f} s")


def share_fast(numa: NumaSyscalls, pid: int, addrs: np.ndarray) -> tuple[float, float]:
    where = numa.query(pid, addrs)
    return float((where == 0).mean()), float((where == 0).sum() * PAGE / 2**20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=30.0, help="how long the daemon runs (default 30)")
    ap.add_argument("--hot", type=int, default=128, help="the critical hot set, MiB (default 128)")
    args = ap.parse_args()
    fs, numa = CgroupFS(), NumaSyscalls()
    topo = SysfsTopology().read().topology
    free_fast = next(n.free_pages for n in topo.nodes if n.id == 0) * PAGE >> 20
    work = Path(tempfile.mkdtemp(prefix="tierctl-demo-"))
    profiles = work / "profiles"
    shutil.copytree(REPO / "tierctl" / "data" / "profiles", profiles)
    (profiles / "demo-critical.toml").write_text(CRIT_PROFILE.format(hot=args.hot))
    (profiles / "demo-batch.toml").write_text(BATCH_PROFILE)
    for path in ("tierctl-demo", "tierctl-demo/crit", "tierctl-demo/batch"):
        if not fs.exists(path):
            fs.create(path)
    procs: list[subprocess.Popen[str]] = []
    daemon = None
    try:
        batch_mib = max(64, free_fast - 48)  # leave less than the hot set free
        print(f"node 0 has {free_fast} MiB free: batch fills {batch_mib} MiB of it first", flush=True)
        batch, batch_pages = start(fs, "tierctl-demo/batch", batch_mib, "cold")
        crit, hot = start(fs, "tierctl-demo/crit", args.hot, "hot")
        procs += [batch, crit]
        share, _ = share_fast(numa, crit.pid, hot)
        print(f"first touch left {share:.0%} of the critical {args.hot} MiB hot set in DRAM", flush=True)
        sock = work / "tierctl.sock"
        cmd = [
            sys.executable,
            "-m",
            "tierctl",
            "daemon",
            "--profiles",
            str(profiles),
            "--scope",
            "/tierctl-demo",
            "--state-dir",
            str(work / "state"),
            "--socket",
            str(sock),
            "--hint-faults",
        ]
        print("$", " ".join(cmd[2:]), flush=True)
        log = (work / "daemon.log").open("w")
        daemon = subprocess.Popen(cmd, stderr=log)
        vm0 = vmstat()
        started = time.monotonic()
        wait_ready(sock, daemon)  # bcc compiles the sampler first: seconds on real hardware, more in TCG
        print(f"daemon ready after {time.monotonic() - started:.1f} s", flush=True)
        t0 = time.monotonic()
        print(f"{'t (s)':>6}  {'critical hot set in DRAM':>24}  {'batch in DRAM':>13}", flush=True)
        while time.monotonic() - t0 < args.seconds:
            time.sleep(2.0)
            share, _ = share_fast(numa, crit.pid, hot)
            _, batch_fast = share_fast(numa, batch.pid, batch_pages)
            print(f"{time.monotonic() - t0:6.1f}  {share:>24.0%}  {batch_fast:>9.0f} MiB", flush=True)
        vm1 = vmstat()
        print("kernel /proc/vmstat during the run:", ", ".join(f"{k} +{vm1[k] - vm0[k]}" for k in VMSTAT))
        for sub in (["top"], ["status"]):
            subprocess.run([sys.executable, "-m", "tierctl", *sub, "--socket", str(sock)], check=False)
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            print(
                "daemon log (last lines):", *(work / "daemon.log").read_text().splitlines()[-15:], sep="\n  "
            )
        for p in procs:
            p.kill()
            p.wait()
        for path in ("tierctl-demo/crit", "tierctl-demo/batch", "tierctl-demo"):
            for _ in range(50):
                try:
                    fs.remove(path)
                    break
                except Exception:
                    time.sleep(0.1)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
