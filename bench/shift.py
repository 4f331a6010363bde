"""The shift benchmark, inside the two-tier guest: one contender, one workload, two phases.

The workload (``bench.shift_workload``) fills the fast node with cold memory and puts two hot sets on
the slow node. After the contender has started and a warm-up with nothing touched, phase 1 touches hot
set 0 and phase 2 hot set 1. A monitor asks move_pages (status query, nothing moves) every
``--sample-s`` which node each page of the active hot set is on.

Per phase: the time-weighted share of the hot set on the fast node (step-wise, each sample holds
until the next), the seconds from the phase start to the first sample with >= 80 %, and the minimum
number of page moves: P = hot pages not on the fast node at the phase start, plus the demotions needed
to make room for them, max(0, P - F), F = free fast-node pages above the node's high watermarks.
Pages moved = the delta of /proc/vmstat ``pgmigrate_success`` over both phases (every migration, by
anyone, for any reason). CPU = utime + stime of the contender's own processes (the tierctl daemon, the
kdamonds) and of kswapd, and the workload's system time (where NUMA hint faults are paid).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.shift_contenders import Contender, make
from bench.shift_workload import free_above_high
from tierctl.kernel.numa import NumaSyscalls

CGROUP = Path("/sys/fs/cgroup/bench-shift")
VMSTAT_KEYS = (
    "pgmigrate_success",
    "pgmigrate_fail",
    "pgpromote_success",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "numa_hint_faults",
    "numa_pages_migrated",
    "compact_migrate_scanned",
)


@dataclass(frozen=True)
class ShiftConfig:
    contender: str
    extra: tuple[str, ...] = ()
    hot_mib: int = 192
    leave_free_mib: int = 16
    cold_mib: int = 1 << 20
    warmup_s: float = 10.0
    phase_s: float = 30.0
    sample_s: float = 0.25
    fast: int = 0
    slow: int = 1


def vmstat() -> dict[str, int]:
    out = {}
    for line in Path("/proc/vmstat").read_text().splitlines():
        k, v = line.split()
        out[k] = int(v)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stime_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def kswapd_pids() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().startswith("kswapd"):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def free_fast_pages(node: int, page: int) -> int:
    """Free pages of ``node`` above the sum of its zones' high watermarks."""
    return free_above_high(node) // page


@dataclass
class Phase:
    start: float
    t: list[float] = field(default_factory=list)
    frac: list[float] = field(default_factory=list)

    def summary(self, end: float) -> dict[str, Any]:
        t = np.asarray(self.t) - self.start
        f = np.asarray(self.frac)
        dt = np.diff(np.r_[t, end - self.start])
        tw = float((f * dt).sum() / dt.sum()) if dt.sum() > 0 else float("nan")
        hit = np.flatnonzero(f >= 0.8)
        return {
            "time_weighted_fast": tw,
            "t80_s": float(t[hit[0]]) if hit.size else None,
            "start_fast": float(f[0]) if f.size else None,
            "end_fast": float(f[-1]) if f.size else None,
            "samples": int(f.size),
            "trace": [[round(float(a), 2), round(float(b), 4)] for a, b in zip(t, f, strict=True)],
        }


def run_one(cfg: ShiftConfig) -> dict[str, Any]:
    numa = NumaSyscalls()
    page = os.sysconf("SC_PAGE_SIZE")
    work = Path(tempfile.mkdtemp(prefix="shift-"))
    wl_cmd = [sys.executable, "-m", "bench.shift_workload", "--hot-mib", str(cfg.hot_mib)]
    wl_cmd += ["--leave-free-mib", str(cfg.leave_free_mib), "--cold-mib", str(cfg.cold_mib)]
    wl_cmd += ["--cgroup", str(CGROUP), "--fast-node", str(cfg.fast), "--slow-node", str(cfg.slow)]
    contender: Contender = make(cfg.contender, work, cfg.extra)
    contender.start()  # first, as on a real machine: the workload arrives while it runs
    t_setup = time.monotonic()
    wl = subprocess.Popen(wl_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert wl.stdin is not None and wl.stdout is not None
    layout = json.loads(wl.stdout.readline())
    setup_s = time.monotonic() - t_setup
    hot = [a + np.arange(0, n, page, dtype=np.uint64) for a, n in layout["hot"]]
    cold_pages = sum(n for _, n in layout["cold"]) // page

    def send(cmd: str) -> None:
        assert wl.stdin is not None
        wl.stdin.write(cmd + "\n")
        wl.stdin.flush()

    def passes() -> int:
        assert wl.stdout is not None
        send("passes")
        return int(wl.stdout.readline().split()[1])

    out: dict[str, Any] = {"contender": contender.name, "config": cfg.__dict__ | {"extra": list(cfg.extra)}}
    try:
        placed0 = [np.bincount(np.maximum(numa.query(wl.pid, h), 0), minlength=2)[:2].tolist() for h in hot]
        time.sleep(cfg.warmup_s)
        pids = contender.cpu_pids()
        swapd = kswapd_pids()
        vm0 = vmstat()
        cpu0 = {p: cpu_seconds(p) for p in pids + swapd}
        wl_sys0 = stime_seconds(wl.pid)
        t0 = time.monotonic()
        phases, minimum, rates = [], [], []
        for k in (0, 1):
            t_start = time.monotonic()
            where = numa.query(wl.pid, hot[k])
            p_need = int(np.count_nonzero(where != cfg.fast))
            free = free_fast_pages(cfg.fast, page)
            minimum.append({"promote": p_need, "demote": max(0, p_need - free), "free_fast_pages": free})
            send(f"touch {k}")
            ph = Phase(t_start)
            ph.t.append(t_start)
            ph.frac.append(float(np.mean(where == cfg.fast)))
            next_at = t_start + cfg.sample_s
            while (now := time.monotonic()) < t_start + cfg.phase_s:
                time.sleep(max(0.0, next_at - now))
                next_at += cfg.sample_s
                ts = time.monotonic()
                ph.frac.append(float(np.mean(numa.query(wl.pid, hot[k]) == cfg.fast)))
                ph.t.append(ts)
            n_pass = passes()
            end = time.monotonic()
            phases.append(ph.summary(end))
            rates.append(n_pass / (end - t_start))
        wall = time.monotonic() - t0
        vm1 = vmstat()
        wl_sys = stime_seconds(wl.pid) - wl_sys0
        send("idle")
        cpu = {p: cpu_seconds(p) - c for p, c in cpu0.items()}
        info = contender.info()
    finally:
        contender.stop()
        send("exit")
        try:
            wl.wait(timeout=120)
        except subprocess.TimeoutExpired:
            wl.kill()
            wl.wait()
    need = sum(m["promote"] + m["demote"] for m in minimum)
    moved = vm1["pgmigrate_success"] - vm0["pgmigrate_success"]
    own = sum(cpu[p] for p in pids)
    out |= {
        "setup_s": setup_s,
        "hot_pages": int(hot[0].shape[0]),
        "cold_pages": int(cold_pages),
        "placement_before_start": placed0,
        "phases": phases,
        "minimum": minimum,
        "minimum_pages": need,
        "moved_pages": moved,
        "moved_over_minimum": moved / need if need else None,
        "vmstat_delta": {k: vm1.get(k, 0) - vm0.get(k, 0) for k in VMSTAT_KEYS},
        "wall_s": wall,
        "contender_cpu_s": own,
        "contender_cpu_share": own / wall,
        "kswapd_cpu_s": sum(cpu[p] for p in swapd),
        "workload_sys_cpu_s": wl_sys,
        "workload_passes_per_s": rates,
        "contender_info": info,
    }
    return out


def run_cost(cfg: ShiftConfig, seconds: float) -> dict[str, Any]:
    """The tierctl daemon's CPU share with ~1 GiB tracked: idle workload, then one hot set touched."""
    work = Path(tempfile.mkdtemp(prefix="cost-"))
    wl_cmd = [sys.executable, "-m", "bench.shift_workload", "--hot-mib", str(cfg.hot_mib)]
    wl_cmd += ["--leave-free-mib", str(cfg.leave_free_mib), "--cold-mib", str(cfg.cold_mib)]
    wl_cmd += ["--cgroup", str(CGROUP)]
    wl = subprocess.Popen(wl_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert wl.stdin is not None and wl.stdout is not None
    layout = json.loads(wl.stdout.readline())
    tracked_mib = (sum(n for _, n in layout["hot"]) + sum(n for _, n in layout["cold"])) >> 20
    d = make("tierctl", work, cfg.extra)
    rows = []
    try:
        d.start()
        time.sleep(cfg.warmup_s)
        for what in ("idle", "touch 0"):
            wl.stdin.write(what + "\n")
            wl.stdin.flush()
            pids = d.cpu_pids()  # the daemon and its kdamonds
            c0, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
            time.sleep(seconds)
            c1, t1 = sum(cpu_seconds(p) for p in pids), time.monotonic()
            st = d.status()
            rows.append(
                {
                    "workload": "idle" if what == "idle" else "one hot set touched",
                    "seconds": t1 - t0,
                    "daemon_cpu_s": c1 - c0,
                    "cpu_share": (c1 - c0) / (t1 - t0),
                    "tracked_pages": st.get("tracked_pages"),
                    "cycle_seconds": st.get("cycle_seconds"),
                }
            )
        info = d.info()
    finally:
        d.stop()
        wl.stdin.write("exit\n")
        wl.stdin.flush()
        wl.wait(timeout=60)
    return {"contender": d.name, "workload_mib": tracked_mib, "rows": rows, "contender_info": info}
