"""Where the running kernel's interfaces are mounted: the defaults of every rooted adapter and of the
CLI's ``--sys-root``/``--proc-root``/``--cgroup-root`` flags (tests pass fake trees instead)."""

from __future__ import annotations

from pathlib import Path

LIVE_ROOT = Path("/")
LIVE_PROC = Path("/proc")
LIVE_SYS = Path("/sys")
LIVE_CGROUP = Path("/sys/fs/cgroup")  # the cgroup v2 (unified) mount, or the hybrid layout's top
LIVE_RUN = Path("/run")  # tmpfs cleared by a reboot: where one-shot commands keep their knob records
