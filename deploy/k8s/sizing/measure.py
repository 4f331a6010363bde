"""Measure what ``tierctl daemon`` costs (RSS and CPU) while it manages a ~1 GiB workload, to size the
DaemonSet's resources (docs/deploy.md, "Resources").

Run as root on a machine where the BPF samplers work (``tierctl samplers``)::

    python deploy/k8s/sizing/measure.py --seconds 300 --mib 1024 --out deploy/k8s/sizing/daemon_cost.json

It starts a workload in a fresh memory cgroup (cgroup v2, or the v1 memory hierarchy of a hybrid host):
``--mib`` of anonymous memory touched once, then each second a hot quarter read and a 16 MiB slice
dropped (MADV_DONTNEED) and touched again, so the samplers see ~4096 page faults a second. Then it
runs ``tierctl daemon --scope <that cgroup>`` with the DaemonSet's flags plus ``--dry-run`` and
``--pressure dry-run`` (nothing on this machine is moved, trimmed or killed), and samples the daemon's
``VmRSS`` / ``VmHWM`` and utime + stime from /proc every ``--every`` seconds, scraping /metrics too
(the cost of a Prometheus scrape is part of the figure).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

WORKLOAD = r"""
import mmap, sys, time
mib = int(sys.argv[1]); page = mmap.PAGESIZE; size = mib << 20
m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for off in range(0, size, page):
    m[off] = 1
print("ready", flush=True)
hot = size // 4; churn = 16 << 20; pos = hot
while True:
    t = time.monotonic()
    s = 0
    for off in range(0, hot, page * 8):
        s += m[off]
    m.madvise(mmap.MADV_DONTNEED, pos, churn)
    for off in range(pos, pos + churn, page):
        m[off] = 1
    pos = hot if pos + 2 * churn > size else pos + churn
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
"""

CLK_TCK = os.sysconf("SC_CLK_TCK")


def memory_cgroup_root() -> tuple[Path, str]:
    """The memory hierarchy's mount and this process's path in it."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            return Path("/sys/fs/cgroup/memory"), path
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup"), line[3:]
    raise SystemExit("no memory cgroup found")


def proc_stat(pid: int) -> tuple[float, int, int]:
    """(utime + stime in seconds, VmRSS bytes, VmHWM bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    kib = {k: int(status[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}
    return cpu, kib["VmRSS"], kib["VmHWM"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="measured time after the warm-up")
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--port", type=int, default=19464)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    mount, own = memory_cgroup_root()
    cg_rel = f"{own.rstrip('/')}/tierctl-sizing-{os.getpid()}"
    cg_dir = mount / cg_rel.lstrip("/")
    cg_dir.mkdir()
    work = tempfile.mkdtemp(prefix="tierctl-sizing-")
    tierctl = shutil.which("tierctl") or sys.exit("tierctl not on PATH")
    wl = subprocess.Popen(
        [sys.executable, "-c", WORKLOAD, str(args.mib)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: (cg_dir / "cgroup.procs").write_text(str(os.getpid())),
    )
    daemon: subprocess.Popen[str] | None = None
    try:
        assert wl.stdout is not None and wl.stdout.readline().strip() == "ready"
        cmd = [
            tierctl, "daemon", "--scope", cg_rel, "--dry-run", "--pressure", "dry-run",
            "--hint-faults", "off", "--no-socket", "--state-dir", f"{work}/state",
            "--metrics-listen", f"127.0.0.1:{args.port}",
            "--profiles", str(Path(__file__).parents[1] / "base" / "profiles"),
        ]  # fmt: skip
        daemon = subprocess.Popen(cmd, stderr=open(f"{work}/daemon.log", "w"), text=True)  # noqa: SIM115
        time.sleep(args.warmup)
        samples: list[dict[str, Any]] = []
        t0 = time.monotonic()
        cpu0 = proc_stat(daemon.pid)[0]
        while time.monotonic() - t0 < args.seconds:
            if daemon.poll() is not None:
                raise SystemExit(
                    f"daemon exited {daemon.returncode}: {Path(work, 'daemon.log').read_text()[-2000:]}"
                )
            scrape = len(urllib.request.urlopen(f"http://127.0.0.1:{args.port}/metrics", timeout=5).read())
            cpu, rss, hwm = proc_stat(daemon.pid)
            samples.append({"t": round(time.monotonic() - t0, 1), "cpu_s": cpu - cpu0, "rss": rss, "hwm": hwm,
                            "scrape_bytes": scrape})  # fmt: skip
            time.sleep(args.every)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{args.port}/metrics", timeout=5).read().decode()
        tracked = next(
            (
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("tierctl_tracked_pages ")
            ),
            None,
        )
        cycles = next(
            (
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("tierctl_cycles_total ")
            ),
            None,
        )
        sampler_lines = [
            line
            for line in metrics.splitlines()
            if line.startswith(("tierctl_sampler_up", "tierctl_sampler_samples_total"))
        ]
        wall = samples[-1]["t"]
        result = {
            "benchmark": "daemon_sizing",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "command": cmd,
            "workload_mib": args.mib,
            "measured_s": wall,
            "tracked_pages": tracked,
            "cycles": cycles,
            "cpu_share_of_one_core": samples[-1]["cpu_s"] / wall if wall else None,
            "cpu_share_max_interval": max(
                (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"]) for a, b in itertools.pairwise(samples)
            ),
            "rss_bytes_last": samples[-1]["rss"],
            "rss_bytes_peak": samples[-1]["hwm"],
            "samplers": sampler_lines,
            "samples": samples,
        }
        text = json.dumps(result, indent=1)
        if args.out:
            args.out.write_text(text + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
        return 0
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(30)
        wl.kill()
        wl.wait()
        for _ in range(50):
            try:
                cg_dir.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
