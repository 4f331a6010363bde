"""``/healthz`` and ``/readyz`` of the metrics server, judged from the snapshot the Service reports.

- **live** (``/healthz``): the control loop completes cycles. The Service's completed-cycle counter
  (``status()["cycle"]``) is watched at every probe and every scrape; 200 while it was last seen to
  advance within ``max(3 x the cycle period, 10 s)``, 503 when it has not (the loop stalled, or every
  cycle fails), when every sampler reports ``stopped`` (the Service stopped) or when the Service cannot
  be read. A paused controller completes no counted cycles: it is live (the loop still runs — the
  simulator advances, the pressure ladder acts) and the watch restarts when it resumes. A Service that
  reports ``status()["last_cycle_age_s"]`` (seconds since the loop's last cycle, paused or not) is
  judged by that instead, exactly.
- **ready** (``/readyz``): 200 once the first cycle completed (or the controller is paused), 503 before.

The watch is per server (no global state): the age it reports is the time since a probe or scrape
first saw the current count, so it is exact to within the interval between two of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tierctl.service.metrics_snapshot import MetricsSnapshot

MIN_LIVENESS_S = 10.0
LIVENESS_PERIODS = 3.0


@dataclass(frozen=True)
class Verdict:
    ok: bool
    text: str

    @property
    def status(self) -> int:
        return 200 if self.ok else 503


class Health:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._cycles: int | None = None
        self._since = 0.0  # when the current count was first seen (or last seen paused)

    @staticmethod
    def limit_s(snap: MetricsSnapshot) -> float:
        return max(LIVENESS_PERIODS * snap.cycle_period_s, MIN_LIVENESS_S)

    def observe(self, snap: MetricsSnapshot) -> float:
        """Note the snapshot's cycle count; the age of the last cycle seen, in seconds."""
        now = self.clock()
        with self._lock:
            if snap.cycles != self._cycles or snap.state == "paused":
                self._cycles, self._since = snap.cycles, now
            watched = now - self._since
        return watched if snap.last_cycle_age_s is None else snap.last_cycle_age_s

    def live(self, snap: MetricsSnapshot) -> Verdict:
        age, limit = self.observe(snap), self.limit_s(snap)
        if snap.samplers and all(s.state_name == "stopped" for s in snap.samplers):
            return Verdict(False, "stopped: every sampler has stopped (the service is shutting down)\n")
        if snap.state == "paused" and snap.last_cycle_age_s is None:
            return Verdict(True, f"ok: paused at cycle {snap.cycles} (placement paused, the loop runs)\n")
        if age > limit:
            return Verdict(False, f"stalled: no cycle completed for {age:.1f} s (limit {limit:.0f} s)\n")
        return Verdict(True, f"ok: cycle {snap.cycles}, last cycle {age:.1f} s ago (limit {limit:.0f} s)\n")

    def ready(self, snap: MetricsSnapshot) -> Verdict:
        self.observe(snap)
        if snap.cycles >= 1:
            return Verdict(True, f"ready: {snap.cycles} cycles completed\n")
        if snap.state == "paused":
            return Verdict(True, "ready: paused before its first cycle\n")
        return Verdict(False, "not ready: no cycle completed yet\n")

    def judge(self, path: str, snapshot_fn: Callable[[], MetricsSnapshot]) -> Verdict:
        """The verdict for ``/healthz`` or ``/readyz``; a Service that cannot be read is not healthy."""
        try:
            snap = snapshot_fn()
        except Exception as e:
            return Verdict(False, f"unhealthy: the service cannot be read: {type(e).__name__}: {e}\n")
        return self.live(snap) if path == "/healthz" else self.ready(snap)
