"""``scripts/bench pressure``: a runaway allocator beside a protected workload, the kernel alone
against tierctl's pressure ladder, in fresh boots of the two-tier guest (docs/pressure.md).

In the guest (``python -m bench.pressure guest``):
1. the contender starts (``tierctl``: the daemon with two profiles — the protected workload
   priority 10, never killed; the batch job priority -10, ``kill = "cgroup"``; ``kernel``: nothing);
2. the protected workload (cgroup /bench-protected) holds 256 MiB and touches every page of it in a
   loop, counting passes: ``--base-s`` seconds alone (its unpressured throughput), then
3. a runaway batch job (cgroup /bench-batch) allocates and touches 32 MiB every 0.1 s, with no
   limit, until something kills it or ``--phase-s`` pass;
4. every 0.25 s the machine's use (MemTotal - MemAvailable) is sampled against the 95 % target.

A third contender, ``cpu``, measures the bound the guest puts on the protected workload's throughput:
the same allocation loop (32 MiB mapped and touched every 0.1 s) but each chunk unmapped before the
next, so it costs the same CPU and makes no memory pressure, for as long as tierctl's runaway lived in
the same round. On a one-vCPU guest the protected workload cannot do better beside the runaway than
it does beside this, whoever kills the runaway.

Nobody sets memory.max or memory.high. One JSON file per boot; the host collects them into
bench/results/pressure.json with a ``summary`` list (contender, round, kernel_oom_kills,
tierctl_kills, victims, protected_stall_s, protected_throughput_ratio, seconds_above_target,
max_used_ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.procfs import ProcFS

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("kernel", "tierctl", "cpu")
TARGET = 0.95
PROTECTED, BATCH = "bench-protected", "bench-batch"

WORKER = r"""
import mmap, sys, time
kind, mib = sys.argv[1], int(sys.argv[2])
if kind == "protected":
    m = mmap.mmap(-1, mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    n = 0
    while True:
        for i in range(0, len(m), 4096):
            m[i] = (m[i] + 1) & 0xFF
        n += 1
        print(n, time.monotonic(), flush=True)
else:  # "batch": keeps every chunk (a runaway); "churn": unmaps each (the same CPU, no pressure)
    chunks = []
    while True:
        c = mmap.mmap(-1, 32 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for i in range(0, len(c), 4096):
            c[i] = 1
        if kind == "batch":
            chunks.append(c)
        else:
            c.close()
        time.sleep(0.1)
"""

PROFILES = {
    "protected.toml": f'[[match]]\ncgroup = "/{PROTECTED}"\n[pressure]\npriority = 10\nprotect = "256M"\n'
    'kill = "never"\n',
    "batch.toml": f'[[match]]\ncgroup = "/{BATCH}"\n[pressure]\npriority = -10\ntrim = false\n'
    'kill = "cgroup"\ngrace_s = 1\n',
}


def _vmstat(key: str) -> int:
    return ProcFS().vmstat().get(key, 0)


def _used_share() -> float:
    m = ProcFS().meminfo()
    return m.used / m.total


def _psi_full_us(cg: str) -> int:
    full = CgroupFS().pressure(cg).full
    return full.total_us if full is not None else 0


def _cpu_s(pid: int) -> float:
    """User + system CPU time of a process, seconds."""
    return ProcFS().cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def _spawn(cg: str, kind: str, mib: int) -> subprocess.Popen[str]:
    procs = CgroupFS().memory_root / cg / "cgroup.procs"  # the child moves itself in before exec
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, kind, str(mib)], stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: procs.write_text(str(os.getpid())),
    )  # fmt: skip


def guest(contender: str, base_s: float, phase_s: float, out: Path) -> None:
    fs = CgroupFS()
    for cg in (PROTECTED, BATCH):
        fs.create(cg, exist_ok=True)
        fs.enable_controllers(cg, ("memory",))
    work = Path(tempfile.mkdtemp(prefix="bench-pressure-"))
    daemon = None
    if contender == "tierctl":
        profiles = work / "profiles"
        profiles.mkdir()
        (profiles / "default.toml").write_text((ROOT / "tierctl/data/profiles/default.toml").read_text())
        for name, text in PROFILES.items():
            (profiles / name).write_text(text)
        sock = work / "t.sock"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "tierctl", "daemon", "--profiles", str(profiles), "--state-dir",
             str(work / "state"), "--scope", f"/{PROTECTED}", "--scope", f"/{BATCH}", "--socket", str(sock),
             "--samplers", "idle", "--hint-faults", "off"],  # the default 1 s cycle: pressure wakes it
            stdout=subprocess.DEVNULL, stderr=(out.parent / f"{out.stem}.daemon.log").open("w"),
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    protected = _spawn(PROTECTED, "protected", 256)
    passes: list[float] = []
    threading.Thread(target=lambda: [passes.append(float(ln.split()[1])) for ln in protected.stdout or ()],
                     daemon=True).start()  # fmt: skip
    while not passes:  # its first pass done: from now on it runs at its pace
        time.sleep(0.05)
    tb = time.monotonic()
    time.sleep(base_s)
    oom0, psi0 = _vmstat("oom_kill"), _psi_full_us(PROTECTED)
    batch = _spawn(BATCH, "churn" if contender == "cpu" else "batch", 0)
    cpu0 = _cpu_s(daemon.pid) if daemon is not None else 0.0
    t0, above, max_used = time.monotonic(), 0.0, 0.0
    while time.monotonic() - t0 < phase_s and batch.poll() is None:
        used = _used_share()
        max_used = max(max_used, used)
        above += 0.25 if used > TARGET else 0.0
        time.sleep(0.25)
    pressured_s = time.monotonic() - t0
    daemon_cpu_s = _cpu_s(daemon.pid) - cpu0 if daemon is not None and daemon.poll() is None else 0.0
    if contender == "cpu":
        batch.kill()  # its time is up (the bound's batch is no runaway: nobody else ends it)
    time.sleep(2.0)  # the kernel's or the daemon's kill settles
    # passes by their own time stamps (CLOCK_MONOTONIC, one clock in the guest), alone and pressured
    base_passes = sum(1 for t in passes if tb < t <= tb + base_s)
    pressured_passes = sum(1 for t in passes if t0 < t <= t0 + pressured_s)
    victims = [f"/{cg}" for cg, p in ((PROTECTED, protected), (BATCH, batch)) if p.poll() is not None]
    if contender == "cpu":
        victims = [v for v in victims if v != f"/{BATCH}"]  # killed by the bench, at its time
    result: dict[str, Any] = {
        "contender": contender,
        "kernel_oom_kills": _vmstat("oom_kill") - oom0,
        "tierctl_kills": 0,
        "victims": victims,
        "protected_stall_s": (_psi_full_us(PROTECTED) - psi0) / 1e6,
        "protected_throughput_ratio": (pressured_passes / pressured_s) / (base_passes / base_s)
        if base_passes
        else 0.0,
        "seconds_above_target": above,
        "max_used_ratio": max_used,
        "pressured_s": pressured_s,
        # the daemon's own CPU time while the runaway lived (one vCPU: it is taken from the others)
        "daemon_cpu_share": daemon_cpu_s / pressured_s if pressured_s > 0 else 0.0,
    }
    if daemon is not None and daemon.poll() is not None:  # it died: say how, instead of its events
        log = (out.parent / f"{out.stem}.daemon.log").read_text()
        result["daemon_died"] = {"exit": daemon.returncode, "log_tail": log[-3000:]}
        daemon = None
    if daemon is not None:
        from tierctl.api.client import ApiClient

        with ApiClient(work / "t.sock") as c:
            events = c.call("events", since=0)["events"]
        result["tierctl_kills"] = sum(1 for e in events if e["kind"] == "pressure_kill")
        result["tierctl_events"] = [
            [e["kind"], e.get("cgroup")] for e in events if e["kind"].startswith("pressure_")
        ][:20]
        daemon.terminate()
        daemon.wait(timeout=30)
    for p in (protected, batch):
        if p.poll() is None:
            p.kill()
    out.write_text(json.dumps(result, indent=1))


def host(rounds: int, base_s: float, phase_s: float, contenders: list[str]) -> dict[str, Any]:
    summary = []
    with tempfile.TemporaryDirectory(prefix="bench-pressure-") as tmp:
        for r in range(rounds):
            lived = phase_s  # how long tierctl's runaway lived this round: the cpu bound's phase
            for c in contenders:
                out = Path(tmp) / f"{c}-{r}.json"
                phase = lived if c == "cpu" else phase_s
                print(f"== pressure: {c}, round {r}", flush=True)
                cmd = [str(ROOT / "scripts" / "testbed"), "run", "--rwdir", tmp, "--timeout", "600", "--",
                       "env", "PYTHONDONTWRITEBYTECODE=1", f"PYTHONPATH={ROOT}", sys.executable, "-m",
                       "bench.pressure", "guest", "--contender", c, f"--base-s={base_s}",
                       f"--phase-s={phase}", "--out", str(out)]  # fmt: skip
                rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
                if rc != 0 or not out.exists():
                    print(f"   guest run failed (exit {rc})", flush=True)
                    continue
                res = json.loads(out.read_text())
                res["round"] = r
                if c == "tierctl":
                    lived = res["pressured_s"]
                summary.append(res)
    return {"target": TARGET, "base_s": base_s, "phase_s": phase_s, "summary": summary}


def table(out: dict[str, Any]) -> str:
    from tierctl.cli.table import render

    head = ["contender", "round", "kernel OOM kills", "tierctl kills", "victims", "protected stall s",
            "protected throughput", "s above 95 %", "max used", "daemon CPU"]  # fmt: skip
    rows = [
        [s["contender"], str(s["round"]), str(s["kernel_oom_kills"]), str(s["tierctl_kills"]),
         ",".join(s["victims"]) or "-", f"{s['protected_stall_s']:.2f}",
         f"{s['protected_throughput_ratio']:.2f}",
         f"{s['seconds_above_target']:.2f}", f"{s['max_used_ratio']:.3f}",
         f"{s['daemon_cpu_share']:.0%}" if s.get("daemon_cpu_share") else "-"]
        for s in out["summary"]
    ]  # fmt: skip
    return render(head, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.pressure")
    ap.add_argument("mode", choices=("guest",))
    ap.add_argument("--contender", choices=CONTENDERS, required=True)
    ap.add_argument("--base-s", type=float, default=10.0)
    ap.add_argument("--phase-s", type=float, default=60.0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    guest(a.contender, a.base_s, a.phase_s, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
