"""Wake the pressure ladder between cycles: on a PSI poll trigger, or when the machine crossed its
target.

The daemon's loop sleeps between placement cycles. While it does, ``PressureWake.wait`` blocks in
poll(2) on PSI triggers (kernel/psi.py: the system's ``/proc/pressure/memory`` and each managed
cgroup's ``memory.pressure``, armed ``some 100 ms per 1 s`` by default) for at most the time given,
then reads /proc/meminfo once (a few microseconds). It says why the ladder should run now — a
trigger fired, or memory used is above the target — and the daemon then runs a ladder step at once
instead of at the next cycle. Nothing is polled faster than the daemon's wait granularity (0.1 s),
and the PSI itself is never polled: the kernel wakes us.

Where triggers cannot be armed (no PSI, psi=0, cgroup v1, no CAP_SYS_RESOURCE for sub-2 s windows),
the wake still checks the target after each wait, and ``notes`` says why the triggers are missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tierctl.core.ladder import Machine
from tierctl.errors import TierctlError
from tierctl.kernel.psi import PsiWatcher, TriggerGoneError, TriggerSpec

SYSTEM = ""  # the watcher's key of the system-wide trigger
DEFAULT_SPEC = TriggerSpec("some", 100_000, 1_000_000)


@dataclass(frozen=True)
class Wake:
    reason: str  # "psi" (a trigger fired) or "target" (memory used above the target)
    cgroups: tuple[str, ...] = ()  # the cgroups whose trigger fired ("" = the system's)


class PressureWake:
    def __init__(
        self,
        watcher: PsiWatcher | None,
        machine: Callable[[], Machine],
        *,
        spec: TriggerSpec = DEFAULT_SPEC,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.watcher = watcher
        self.machine = machine
        self.spec = spec
        self.sleep = sleep
        self.notes: list[str] = []  # why a trigger could not be armed (each said once)
        self.counts = {"psi": 0, "target": 0}
        self._refused: set[str] = set()
        if watcher is not None:
            self._arm(SYSTEM)

    def sync(self, cgroups: Iterable[str]) -> None:
        """Arm a trigger on each of ``cgroups`` (paths like "/system.slice/x.service") not armed yet,
        and remove those of cgroups no longer listed. The system's trigger stays."""
        if self.watcher is None:
            return
        want = {"/" + c.strip("/") for c in cgroups if c.strip("/")}
        have = set(self.watcher.keys) - {SYSTEM}
        for gone in have - {k.strip("/") for k in want}:
            self.watcher.remove(gone)
        for path in sorted(want):
            if path.strip("/") not in have and path not in self._refused:
                self._arm(path)

    def wait(self, timeout_s: float, target_ratio: float) -> Wake | None:
        """Block at most ``timeout_s``; a Wake when the ladder should run now, else None."""
        fired: list[str] = []
        if self.watcher is not None and self.watcher.keys:
            try:
                fired = self.watcher.wait(timeout_s)
            except TriggerGoneError as e:  # a cgroup went away: its trigger is removed
                fired = e.fired
        else:
            self.sleep(timeout_s)
        if fired:
            self.counts["psi"] += 1
            return Wake("psi", tuple("/" + k if k else k for k in fired))
        try:
            m = self.machine()
        except TierctlError:
            return None
        if m.used > target_ratio * m.total:
            self.counts["target"] += 1
            return Wake("target")
        return None

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()

    def _arm(self, cgroup: str) -> None:
        assert self.watcher is not None
        try:
            self.watcher.add(cgroup, self.spec)
        except TierctlError as e:
            self._refused.add(cgroup)
            self.notes.append(f"no PSI trigger on {cgroup or 'the system'}: {e}")
