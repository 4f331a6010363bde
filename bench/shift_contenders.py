"""The contenders of the shift benchmark, each set up inside the two-tier guest.

- ``tierctl``: ``python -m tierctl daemon`` at its defaults (extra command-line options for experiments);
- ``nb2-default``: NUMA balancing mode 2 with demotion, every other knob as booted;
- ``nb2-tuned``: the same with scan and threshold knobs tuned for this workload;
- ``damon``: two paddr kdamonds with DAMOS ``migrate_hot`` (slow node -> fast) and ``migrate_cold``
  (fast node -> slow), through DAMON's sysfs interface.

Each has ``start()``, ``cpu_pids()`` (the threads whose CPU time is the contender's own cost),
``info()`` (what it reports about itself at the end) and ``stop()``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from tierctl.errors import TierctlError
from tierctl.kernel.damon import node_phys_ranges

REPO = Path(__file__).resolve().parents[1]
NB = Path("/proc/sys/kernel/numa_balancing")
DEMOTION = Path("/sys/kernel/mm/numa/demotion_enabled")
DBG = Path("/sys/kernel/debug/sched/numa_balancing")
DAMON = Path("/sys/kernel/mm/damon/admin/kdamonds")
# tuned by hand for this workload (docs/bench-shift.md); hot_threshold_ms is generous because a hint
# fault costs ~45 us under TCG and late faults would otherwise be judged "too old"
NB2_TUNED = {
    DBG / "scan_delay_ms": "0",
    DBG / "scan_period_min_ms": "100",
    DBG / "scan_period_max_ms": "1000",
    DBG / "scan_size_mb": "64",
    DBG / "hot_threshold_ms": "5000",
}


class Contender(Protocol):
    name: str

    def start(self) -> None: ...

    def cpu_pids(self) -> list[int]: ...

    def info(self) -> dict[str, Any]: ...

    def stop(self) -> None: ...


def _write(path: Path, value: str) -> None:
    path.write_text(value + "\n")


def kdamond_pids() -> list[int]:
    out = []
    for f in DAMON.glob("*/pid"):
        with contextlib.suppress(OSError, ValueError):
            if (pid := int(f.read_text())) > 0:
                out.append(pid)
    return out


class TierctlDaemon:
    def __init__(self, workdir: Path, extra: Sequence[str] = ()) -> None:
        self.name = "tierctl" + (" " + " ".join(extra) if extra else "")
        self.workdir = workdir
        self.extra = list(extra)
        self.sock = workdir / "tierctl.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "daemon.log"
        self.cycle_log = workdir / "cycles.jsonl"
        self.ready_s = 0.0

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "tierctl",
            "daemon",
            "--profiles",
            str(REPO / "tierctl" / "data" / "profiles"),
        ]
        cmd += ["--state-dir", str(self.workdir / "state"), "--socket", str(self.sock)]
        cmd += ["--cycle-log", str(self.cycle_log), *self.extra]
        t0 = time.monotonic()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = t0 + 120
        while time.monotonic() < deadline:  # ready = the socket answers (samplers started)
            if self.proc.poll() is not None:
                raise RuntimeError(f"tierctl daemon exited {self.proc.returncode}: {self.log.read_text()}")
            with contextlib.suppress(TierctlError, OSError):
                if self.status().get("cycle", 0) >= 1:
                    self.ready_s = time.monotonic() - t0
                    return
            time.sleep(0.5)
        raise RuntimeError("tierctl daemon did not become ready in 120 s")

    def status(self) -> dict[str, Any]:
        from tierctl.api.client import ApiClient

        with ApiClient(self.sock, timeout=10) as c:
            out: dict[str, Any] = c.call("status")
            return out

    def cpu_pids(self) -> list[int]:
        """The daemon, and the kdamonds it runs (DAMON sampler) at the time of asking."""
        if self.proc is None:
            return []
        return [self.proc.pid, *kdamond_pids()]

    def info(self) -> dict[str, Any]:
        try:
            st = self.status()
        except (TierctlError, OSError) as e:
            return {"status_error": str(e)}
        return {
            "ready_s": self.ready_s,
            "cycles": st.get("cycle"),
            "tracked_pages": st.get("tracked_pages"),
            "cycle_seconds": st.get("cycle_seconds"),
            "moved": st.get("moved"),
            "samplers": [(s["name"], s["state"], s["reason"], s["health"]) for s in st.get("samplers", [])],
            "log_tail": self.log.read_text(errors="replace")[-3000:],
            "cycles_log": [json.loads(x) for x in self.cycle_log.read_text().splitlines() if x.strip()]
            if self.cycle_log.exists()
            else [],
        }

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class NumaBalancing:
    def __init__(self, tuned: bool) -> None:
        self.name = "nb2-tuned" if tuned else "nb2-default"
        self.knobs = dict(NB2_TUNED) if tuned else {}
        self.saved: dict[Path, str] = {}

    def start(self) -> None:
        for path, value in [*self.knobs.items(), (DEMOTION, "1"), (NB, "2")]:  # the mode last
            self.saved[path] = path.read_text().strip()
            _write(path, value)

    def cpu_pids(self) -> list[int]:
        return []  # its cost is in the workload's own time (hint faults, task_numa_work) and kswapd

    def info(self) -> dict[str, Any]:
        return {"knobs": {str(p): p.read_text().strip() for p in self.saved}}

    def stop(self) -> None:
        for path, value in reversed(list(self.saved.items())):
            _write(path, "1" if path == DEMOTION and value == "true" else value)


class DamonTiering:
    """Two paddr kdamonds: migrate_hot over the slow node's memory, migrate_cold over the fast node's."""

    def __init__(self, fast: int = 0, slow: int = 1) -> None:
        self.name = "damon"
        self.fast, self.slow = fast, slow
        self.saved_nb: str | None = None

    def _ctx(self, k: int) -> Path:
        return DAMON / str(k) / "contexts" / "0"

    def _setup(
        self, k: int, monitor: int, action: str, target: int, pattern: dict[str, tuple[int, int]]
    ) -> None:
        ctx = self._ctx(k)
        _write(DAMON / str(k) / "contexts" / "nr_contexts", "1")
        _write(ctx / "operations", "paddr")
        iv = ctx / "monitoring_attrs" / "intervals"
        for name, v in (("sample_us", 5000), ("aggr_us", 100000), ("update_us", 1000000)):
            _write(iv / name, str(v))
        _write(ctx / "monitoring_attrs" / "nr_regions" / "min", "10")
        _write(ctx / "monitoring_attrs" / "nr_regions" / "max", "1000")
        _write(ctx / "targets" / "nr_targets", "1")
        ranges = node_phys_ranges(monitor)
        regions = ctx / "targets" / "0" / "regions"
        _write(regions / "nr_regions", str(len(ranges)))
        for i, (start, end) in enumerate(ranges):
            _write(regions / str(i) / "start", str(start))
            _write(regions / str(i) / "end", str(end))
        _write(ctx / "schemes" / "nr_schemes", "1")
        s = ctx / "schemes" / "0"
        _write(s / "action", action)
        _write(s / "target_nid", str(target))
        for key, (lo, hi) in pattern.items():
            _write(s / "access_pattern" / key / "min", str(lo))
            _write(s / "access_pattern" / key / "max", str(hi))
        _write(s / "quotas" / "reset_interval_ms", "1000")
        _write(s / "quotas" / "bytes", str(256 << 20 if action == "migrate_hot" else 128 << 20))
        _write(s / "quotas" / "ms", "100")  # at most 10 % of a core per scheme

    def start(self) -> None:
        self.saved_nb = NB.read_text().strip()
        _write(NB, "0")  # DAMON alone decides (the guest boots with NUMA balancing mode 1)
        _write(DAMON / "nr_kdamonds", "2")
        big, size = (1 << 32) - 1, (0, (1 << 64) - 1)  # sz max defaults to 0: nothing would match
        # hot: any access seen in an aggregation interval (100 ms); cold: none for >= 5 s (50 intervals)
        hot = {"sz": size, "nr_accesses": (1, big), "age": (0, big)}
        cold = {"sz": size, "nr_accesses": (0, 0), "age": (50, big)}
        self._setup(0, self.slow, "migrate_hot", self.fast, hot)
        self._setup(1, self.fast, "migrate_cold", self.slow, cold)
        for k in (0, 1):
            _write(DAMON / str(k) / "state", "on")

    def cpu_pids(self) -> list[int]:
        out = []
        for k in (0, 1):
            with contextlib.suppress(OSError, ValueError):
                pid = int((DAMON / str(k) / "pid").read_text())
                if pid > 0:
                    out.append(pid)
        return out

    def info(self) -> dict[str, Any]:
        out = {}
        for k, name in ((0, "migrate_hot"), (1, "migrate_cold")):
            with contextlib.suppress(OSError):
                _write(DAMON / str(k) / "state", "update_schemes_stats")
                st = self._ctx(k) / "schemes" / "0" / "stats"
                out[name] = {f.name: int(f.read_text()) for f in sorted(st.iterdir())}
        return out

    def stop(self) -> None:
        for k in (0, 1):
            with contextlib.suppress(OSError):
                _write(DAMON / str(k) / "state", "off")
        with contextlib.suppress(OSError):
            _write(DAMON / "nr_kdamonds", "0")
        if self.saved_nb is not None:
            _write(NB, self.saved_nb)


def make(name: str, workdir: Path, extra: Sequence[str] = ()) -> Contender:
    if name == "tierctl":
        return TierctlDaemon(workdir, extra)
    if name in ("nb2-default", "nb2-tuned"):
        return NumaBalancing(name == "nb2-tuned")
    if name == "damon":
        return DamonTiering()
    raise ValueError(f"unknown contender {name!r}")
