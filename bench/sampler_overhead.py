"""Sampling overhead: a memory-bound workload's time without and with each sampler attached.

The workload runs in a child process (its own wall time is measured there); the
sampler runs in this process, attached to the child, draining once a second —
its user-space cost is on another core, its kernel cost (BPF programs, perf
events) lands on the workload. Two workloads:

- ``touch``: random 8-byte increments over a prefaulted 512 MiB buffer into preallocated
  arrays (memory-bound, steady state: no page faults — the issue's workload);
- ``fault``: map 64 MiB, touch every page, unmap — repeated (every access a fault:
  the fault samplers' worst case).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
from typing import Any

from tierctl.samplers.base import Targets
from tierctl.samplers.registry import make_sampler

WORKLOAD = r"""
import mmap, sys, time
import numpy as np
kind, seconds = sys.argv[1], float(sys.argv[2])
rng = np.random.default_rng(1)
if kind == "touch":  # set up (and fault in) everything before the clock starts
    buf = np.ones(512 << 17, dtype=np.int64)  # 512 MiB
    idx = rng.integers(0, buf.shape[0], 1 << 22)
    tmp = np.empty(idx.shape[0], dtype=np.int64)
    np.take(buf, idx, out=tmp)
print("READY", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
ops = 0
if kind == "touch":
    while time.perf_counter() - t0 < seconds:
        np.take(buf, idx, out=tmp)  # random gather
        tmp += 1
        buf[idx] = tmp  # random scatter: memory-bound, allocates (and faults) nothing
        ops += idx.shape[0]
else:
    while time.perf_counter() - t0 < seconds:
        m = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        a = np.frombuffer(m, dtype=np.uint8)
        a[::4096] = 1
        ops += a.shape[0] // 4096
        del a
        m.close()
dt = time.perf_counter() - t0
print(f"DONE {ops} {dt}", flush=True)
"""


def _run(kind: str, seconds: float, sampler_name: str | None) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKLOAD, kind, str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "READY"
    sampler = None
    stop = threading.Event()
    rows = 0
    if sampler_name:
        sampler = make_sampler(sampler_name)
        sampler.start(Targets(pids=(proc.pid,)))

        def drain_loop() -> None:
            nonlocal rows
            while not stop.wait(1.0):
                rows += sampler.drain().shape[0]

        th = threading.Thread(target=drain_loop, daemon=True)
        th.start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    _, ops, dt = proc.stdout.readline().split()
    proc.wait()
    health = None
    if sampler is not None:
        stop.set()
        rows += sampler.drain().shape[0]
        health = sampler.health()
        sampler.stop()
    return {
        "ops_per_s": int(ops) / float(dt),
        "rows": rows,
        "bpf_run_ns": health.bpf_run_ns if health else 0,
        "dropped": health.dropped if health else 0,
    }


def run(samplers: list[str], seconds: float = 5.0, repeats: int = 5) -> dict[str, Any]:
    out: dict[str, Any] = {"seconds": seconds, "repeats": repeats, "results": []}
    for kind in ("touch", "fault"):
        base = [_run(kind, seconds, None)["ops_per_s"] for _ in range(repeats)]
        base_med = statistics.median(base)
        for name in samplers:
            probe = make_sampler(name).probe()
            if not probe.ok:
                out["results"].append(
                    {"workload": kind, "sampler": name, "available": False, "reason": probe.reason}
                )
                continue
            runs = [_run(kind, seconds, name) for _ in range(repeats)]
            med = statistics.median(r["ops_per_s"] for r in runs)
            out["results"].append(
                {
                    "workload": kind,
                    "sampler": name,
                    "available": True,
                    "reason": probe.reason,
                    "baseline_ops_per_s": base_med,
                    "ops_per_s": med,
                    "slowdown": base_med / med - 1.0,
                    "rows_per_run": statistics.median(r["rows"] for r in runs),
                    "dropped_per_run": statistics.median(r["dropped"] for r in runs),
                }
            )
    out["checks"] = {
        f"{r['workload']}/{r['sampler']}_within_3pct": r["slowdown"] <= 0.03
        for r in out["results"]
        if r.get("available") and r["sampler"].startswith("bpf")
    }
    return out
