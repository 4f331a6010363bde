"""Where the running kernel's interfaces are mounted: the defaults of every rooted adapter and of the
CLI's ``--sys-root``/``--proc-root``/``--cgroup-root`` flags (tests pass fake trees instead)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LIVE_ROOT = Path("/")
LIVE_PROC = Path("/proc")
LIVE_SYS = Path("/sys")
LIVE_CGROUP = Path("/sys/fs/cgroup")  # the cgroup v2 (unified) mount, or the hybrid layout's top
LIVE_RUN = Path("/run")  # tmpfs cleared by a reboot: where one-shot commands keep their knob records
RUN_DIR = LIVE_RUN / "tierctl"  # one-shot commands' knob records (bpf-knobs.PID.json, damon-knobs.PID.json)


def below(root: Path, live: Path | str) -> Path:
    """Where a path as the kernel documents it (``/proc/...``, ``/sys/...``) is in the tree at ``root``
    (``live`` itself at the live root)."""
    return Path(root) / Path(live).relative_to(LIVE_ROOT)


@dataclass(frozen=True)
class Roots:
    """Where the kernel's interfaces are: the live mount points by default, fake trees in tests.

    ``root``: knobs are written (and tracefs mounted) below it; ``proc``, ``sys``, ``cgroup``: procfs,
    sysfs and the cgroup hierarchy; ``run``: where a BPF host without a guard keeps its knob record and
    finds those of crashed processes."""

    root: Path = LIVE_ROOT
    proc: Path = LIVE_PROC
    sys: Path = LIVE_SYS
    cgroup: Path = LIVE_CGROUP
    run: Path = RUN_DIR

    @classmethod
    def under(cls, root: Path) -> Roots:
        """Every interface at its usual place below ``root`` (the live roots for ``/``)."""
        root = Path(root)
        return cls(root, *(below(root, p) for p in (LIVE_PROC, LIVE_SYS, LIVE_CGROUP, RUN_DIR)))

    def in_sys(self, live: Path) -> Path:
        """A sysfs path as the kernel documents it (``/sys/...``), below ``sys``."""
        return self.sys / live.relative_to(LIVE_SYS)
