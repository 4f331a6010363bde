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
CONTENDERS = ("kernel", "tierctl")
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
else:
    chunks = []
    while True:
        c = mmap.mmap(-1, 32 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for i in range(0, len(c), 4096):
            c[i] = 1
        chunks.append(c)
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
             "--samplers", "idle", "--hint-faults", "off", "--cycle-seconds", "0.5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    protected = _spawn(PROTECTED, "protected", 256)
    passes: list[float] = []
    threading.Thread(target=lambda: [passes.append(float(ln.split()[1])) for ln in protected.stdout or ()],
                     daemon=True).start()  # fmt: skip
    time.sleep(base_s)
    base_passes = len(passes)
    oom0, psi0 = _vmstat("oom_kill"), _psi_full_us(PROTECTED)
    batch = _spawn(BATCH, "batch", 0)
    t0, above, max_used = time.monotonic(), 0.0, 0.0
    while time.monotonic() - t0 < phase_s and batch.poll() is None:
        used = _used_share()
        max_used = max(max_used, used)
        above += 0.25 if used > TARGET else 0.0
        time.sleep(0.25)
    pressured_s = time.monotonic() - t0
    time.sleep(2.0)  # the kernel's or the daemon's kill settles
    pressured_passes = len(passes) - base_passes
    victims = [f"/{cg}" for cg, p in ((PROTECTED, protected), (BATCH, batch)) if p.poll() is not None]
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
    }
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
            for c in contenders:
                out = Path(tmp) / f"{c}-{r}.json"
                print(f"== pressure: {c}, round {r}", flush=True)
                cmd = [str(ROOT / "scripts" / "testbed"), "run", "--rwdir", tmp, "--timeout", "600", "--",
                       "env", "PYTHONDONTWRITEBYTECODE=1", f"PYTHONPATH={ROOT}", sys.executable, "-m",
                       "bench.pressure", "guest", "--contender", c, f"--base-s={base_s}",
                       f"--phase-s={phase_s}", "--out", str(out)]  # fmt: skip
                rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
                if rc != 0 or not out.exists():
                    print(f"   guest run failed (exit {rc})", flush=True)
                    continue
                res = json.loads(out.read_text())
                res["round"] = r
                summary.append(res)
    return {"target": TARGET, "base_s": base_s, "phase_s": phase_s, "summary": summary}


def table(out: dict[str, Any]) -> str:
    from tierctl.cli.table import render

    head = ["contender", "round", "kernel OOM kills", "tierctl kills", "victims", "protected stall s",
            "protected throughput", "s above 95 %", "max used"]  # fmt: skip
    rows = [
        [s["contender"], str(s["round"]), str(s["kernel_oom_kills"]), str(s["tierctl_kills"]),
         ",".join(s["victims"]) or "-", f"{s['protected_stall_s']:.2f}",
         f"{s['protected_throughput_ratio']:.2f}",
         f"{s['seconds_above_target']:.2f}", f"{s['max_used_ratio']:.3f}"]
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
