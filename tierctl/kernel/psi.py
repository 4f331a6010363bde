"""PSI poll triggers: be woken when a cgroup (or the system) stalls on memory, without busy polling.

A trigger is a line ``some|full <stall_us> <window_us>`` written to a pressure file opened
O_RDWR|O_NONBLOCK (a cgroup's ``memory.pressure`` or ``<proc>/pressure/memory``); the kernel then
raises POLLPRI on that file descriptor at most once per window while the tasks of the cgroup stall
for more than ``stall_us`` in any ``window_us``. One trigger per open file (a second write is EBUSY);
closing the file removes it. When the cgroup is removed, poll reports POLLERR (with POLLPRI).

Kernel rules (Documentation/accounting/psi.rst and kernel/sched/psi.c psi_trigger_create):
windows of 500 ms .. 10 s (the floor was lowered for privileged writers in later kernels; tierctl
keeps it), 0 < stall <= window; without CAP_SYS_RESOURCE (checked on the opener's credentials)
the window must be a multiple of 2 s (6.5+; earlier kernels refuse unprivileged triggers).
The kernel overwrites the LAST byte written to a /proc/pressure file with NUL, so the line is written
with a trailing NUL, as the kernel's example does (without it "... 1000000" becomes a 100 ms window).

``PsiTrigger`` is one such file; ``PsiWatcher`` polls many (the system and any number of cgroups) and
returns which fired. The opener is injectable so tests can stand a pipe or socket in for the kernel
file (a regular file never raises POLLPRI).
"""

from __future__ import annotations

import errno
import os
import select
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tierctl.errors import InputError, KernelError, PermissionDeniedError, TierctlError, UnavailableError
from tierctl.kernel.cgroupfs import CgroupFS, Pressure, _norm, parse_pressure
from tierctl.kernel.procfs import status_caps
from tierctl.kernel.roots import LIVE_PROC

WINDOW_MIN_US = 500_000
WINDOW_MAX_US = 10_000_000
UNPRIVILEGED_WINDOW_STEP_US = 2_000_000
CAP_SYS_RESOURCE = 24

Opener = Callable[[Path], int]
"""Opens a pressure file for a trigger and returns the file descriptor (the trigger owns it)."""


def open_pressure_file(path: Path) -> int:
    """The kernel's way: O_RDWR | O_NONBLOCK (| O_CLOEXEC)."""
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)


@dataclass(frozen=True)
class TriggerSpec:
    """``kind`` "some" (at least one task stalled) or "full" (all non-idle tasks stalled at once);
    fire when stalled more than ``stall_us`` within any ``window_us``."""

    kind: str = "some"
    stall_us: int = 150_000
    window_us: int = 1_000_000

    def validate(self, *, privileged: bool = True) -> None:
        """InputError naming the field the kernel would refuse (EINVAL)."""
        if self.kind not in ("some", "full"):
            raise InputError(f"must be 'some' or 'full', got {self.kind!r}", "psi trigger kind")
        for name in ("stall_us", "window_us"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise InputError(f"must be an int (microseconds), got {v!r}", f"psi trigger {name}")
        if not WINDOW_MIN_US <= self.window_us <= WINDOW_MAX_US:
            raise InputError(
                f"must be {WINDOW_MIN_US}..{WINDOW_MAX_US} us (500 ms .. 10 s), got {self.window_us}",
                "psi trigger window_us",
            )
        if not 0 < self.stall_us <= self.window_us:
            raise InputError(
                f"must be > 0 and <= the window ({self.window_us} us), got {self.stall_us}",
                "psi trigger stall_us",
            )
        if not privileged and self.window_us % UNPRIVILEGED_WINDOW_STEP_US:
            raise InputError(
                f"without CAP_SYS_RESOURCE the window must be a multiple of 2 s, got {self.window_us} us",
                "psi trigger window_us",
            )

    def line(self) -> str:
        return f"{self.kind} {self.stall_us} {self.window_us}"


class TriggerGoneError(UnavailableError):
    """The pressure file's source went away (POLLERR: the cgroup was removed). ``key`` names the
    watcher entry (already closed and removed), ``fired`` the keys that fired in the same poll."""

    def __init__(self, message: str, where: str, key: str = "", fired: list[str] | None = None) -> None:
        super().__init__(message, where)
        self.key = key
        self.fired = fired or []


def has_cap_sys_resource(proc_root: Path = LIVE_PROC) -> bool:
    """Whether this process has CAP_SYS_RESOURCE in its effective set (privileged PSI triggers)."""
    try:
        text = (Path(proc_root) / "self" / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return os.geteuid() == 0
    caps = status_caps(text)
    return os.geteuid() == 0 if caps is None else bool(caps >> CAP_SYS_RESOURCE & 1)


class PsiTrigger:
    """One PSI trigger on ``path``. ``privileged`` (default: whether this process has
    CAP_SYS_RESOURCE) selects the 2 s window rule. Errors name the file: a missing file is
    UnavailableError (no PSI, or not a v2 cgroup with the memory controller); EACCES/EPERM
    PermissionDeniedError; a refused line KernelError; psi=0 (EOPNOTSUPP) UnavailableError."""

    def __init__(
        self,
        path: Path,
        spec: TriggerSpec | None = None,
        *,
        opener: Opener = open_pressure_file,
        privileged: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.spec = spec if spec is not None else TriggerSpec()
        self.spec.validate(privileged=has_cap_sys_resource() if privileged is None else privileged)
        try:
            self._fd: int | None = opener(self.path)
        except OSError as e:
            raise _error(e, self.path, "opening") from None
        try:
            os.write(self._fd, self.spec.line().encode() + b"\0")
        except OSError as e:
            self.close()
            raise _error(e, self.path, f"writing trigger {self.spec.line()!r} to") from None

    def fileno(self) -> int:
        if self._fd is None:
            raise InputError("trigger is closed", str(self.path))
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the trigger fires (True) or ``timeout_s`` passes (False; None = forever).
        TriggerGoneError when the source went away."""
        p = select.poll()
        p.register(self.fileno(), select.POLLPRI)
        for _fd, ev in p.poll(None if timeout_s is None else max(0, int(timeout_s * 1000))):
            if ev & (select.POLLERR | select.POLLNVAL | select.POLLHUP):
                raise TriggerGoneError("pressure source went away (cgroup removed?)", str(self.path))
            if ev & select.POLLPRI:
                return True
        return False

    def read(self) -> Pressure:
        """The file's current averages and totals (the same fd; pread from offset 0)."""
        try:
            data = os.pread(self.fileno(), 4096, 0)
        except OSError as e:
            raise _error(e, self.path, "reading") from None
        return parse_pressure(data.decode("ascii", "replace"), str(self.path))

    def close(self) -> None:
        """Remove the trigger (close its file). Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> PsiTrigger:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PsiWatcher:
    """Triggers on the system and on cgroups, polled together.

    ``add(cgroup, spec)`` arms one on ``<cgroup_root>/<cgroup>/memory.pressure``, or on
    ``<proc_root>/pressure/memory`` for ``cgroup == ""`` (the system, CgroupFS's convention); the key
    is the normalised cgroup path unless ``key`` is given (e.g. one "some" and one "full" trigger on
    the same cgroup). ``wait(timeout_s)`` returns the keys that fired, sorted. A trigger whose cgroup
    went away is closed and removed, then TriggerGoneError (``key``, ``fired``) is raised.
    """

    def __init__(
        self,
        cgroupfs: CgroupFS | None = None,
        *,
        opener: Opener = open_pressure_file,
        privileged: bool | None = None,
    ) -> None:
        self.fs = cgroupfs if cgroupfs is not None else CgroupFS()
        self._opener = opener
        self._privileged = privileged
        self._triggers: dict[str, PsiTrigger] = {}
        self._by_fd: dict[int, str] = {}
        self._poll = select.poll()

    @property
    def keys(self) -> list[str]:
        return sorted(self._triggers)

    def path_of(self, cgroup: str) -> Path:
        """The pressure file a trigger on ``cgroup`` uses (UnavailableError on v1: no per-cgroup PSI)."""
        if not _norm(cgroup):
            return self.fs.proc_root / "pressure" / "memory"
        d = self.fs._dir(self.fs.memory_root, cgroup)
        if not self.fs.v2:
            raise UnavailableError(f"cgroup v1 ({self.fs.layout.value}) has no per-cgroup PSI", str(d))
        return d / "memory.pressure"

    def add(self, cgroup: str, spec: TriggerSpec | None = None, *, key: str | None = None) -> str:
        """Arm a trigger; returns its key. An existing trigger with the same key is replaced."""
        k = _norm(cgroup) if key is None else key
        trig = PsiTrigger(self.path_of(cgroup), spec, opener=self._opener, privileged=self._privileged)
        self.remove(k)
        self._triggers[k] = trig
        self._by_fd[trig.fileno()] = k
        self._poll.register(trig.fileno(), select.POLLPRI)
        return k

    def remove(self, key: str) -> bool:
        """Close and forget the trigger ``key``; False when there was none."""
        trig = self._triggers.pop(key, None)
        if trig is None:
            return False
        fd = trig.fileno()
        self._poll.unregister(fd)
        del self._by_fd[fd]
        trig.close()
        return True

    def trigger(self, key: str) -> PsiTrigger:
        try:
            return self._triggers[key]
        except KeyError:
            raise InputError("no trigger with this key", key) from None

    def wait(self, timeout_s: float | None = None) -> list[str]:
        """Keys of the triggers that fired within ``timeout_s`` (None = until one fires; [] on timeout
        or when nothing is armed and a timeout is given)."""
        if not self._triggers and timeout_s is None:
            raise InputError("no trigger armed: waiting forever", "PsiWatcher")
        events = self._poll.poll(None if timeout_s is None else max(0, int(timeout_s * 1000)))
        fired: set[str] = set()
        gone: list[str] = []
        for fd, ev in events:
            k = self._by_fd.get(fd)
            if k is None:
                continue
            if ev & (select.POLLERR | select.POLLNVAL | select.POLLHUP):
                gone.append(k)
            elif ev & select.POLLPRI:
                fired.add(k)
        if gone:
            paths = [str(self._triggers[k].path) for k in gone]
            for k in gone:
                self.remove(k)
            raise TriggerGoneError(
                "pressure source went away (cgroup removed?); trigger removed",
                ", ".join(paths),
                key=gone[0],
                fired=sorted(fired),
            )
        return sorted(fired)

    def close(self) -> None:
        """Close every trigger. Idempotent."""
        for k in list(self._triggers):
            self.remove(k)

    def __enter__(self) -> PsiWatcher:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _error(e: OSError, path: Path, what: str) -> TierctlError:
    if e.errno in (errno.EACCES, errno.EPERM):
        return PermissionDeniedError(
            f"permission denied {what} the pressure file (needs write access; CAP_SYS_RESOURCE for "
            "windows that are not a multiple of 2 s)",
            str(path),
        )
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return UnavailableError(f"{what}: no such pressure file (no PSI, or no such cgroup)", str(path))
    if e.errno == errno.EOPNOTSUPP:
        return UnavailableError(f"{what}: PSI is disabled (psi=0)", str(path))
    if e.errno == errno.EBUSY:
        return KernelError(f"{what}: a trigger is already set on this file descriptor", str(path))
    if e.errno == errno.EINVAL:
        return KernelError(f"{what}: the kernel refused the trigger (EINVAL)", str(path))
    if e.errno == errno.ENODEV:
        return UnavailableError(f"{what}: the cgroup is being removed", str(path))
    return KernelError(f"{what}: {e.strerror or e}", str(path))
