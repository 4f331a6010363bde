"""Files below a /proc root: where a pid's file is, reading and opening it, and how a failure becomes
a typed tierctl error naming the file and what it needs.

``ProcFiles(root)`` is the plumbing :class:`tierctl.kernel.procfs.ProcFS` reads through. A vanished
pid is :class:`NoSuchProcessError`; EACCES/EPERM is :class:`PermissionDeniedError` naming the
privilege needed (for root refused by the kernel's ptrace check: the capabilities the target holds
that this process lacks); a file the kernel does not provide is :class:`UnavailableError` naming the
config option; anything else is :class:`KernelError` (likewise for writes of clear_refs).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from tierctl.errors import (
    InputError,
    KernelError,
    NoSuchProcessError,
    PermissionDeniedError,
    TierctlError,
    UnavailableError,
)
from tierctl.kernel.proc_parsers import status_caps
from tierctl.kernel.proc_records import Pid, pid_name
from tierctl.kernel.roots import LIVE_PROC

_NEEDS = {
    "maps": "ptrace read access to the process (same user, or root / CAP_SYS_PTRACE)",
    "numa_maps": "ptrace read access to the process (same user, or root / CAP_SYS_PTRACE)",
    "pagemap": "ptrace read access to the process (same user, or root / CAP_SYS_PTRACE)",
    "kpageflags": "root (CAP_SYS_ADMIN and read access to the 0400 file)",
}
_CONFIG = {
    "numa_maps": "CONFIG_NUMA",
    "pagemap": "CONFIG_PROC_PAGE_MONITOR",
    "kpageflags": "CONFIG_PROC_PAGE_MONITOR",
    "pressure": "CONFIG_PSI",
}
_PTRACE_GATED = frozenset({"maps", "numa_maps", "pagemap", "smaps", "smaps_rollup"})
# fmt: off
_CAP_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
# fmt: on


class ProcFiles:
    """Opens and reads files below ``root`` (``/proc``); ``page_size`` is this machine's unless given."""

    def __init__(self, root: Path = LIVE_PROC, *, page_size: int | None = None) -> None:
        self.root = Path(root)
        self.page_size = page_size if page_size is not None else os.sysconf("SC_PAGE_SIZE")
        if self.page_size <= 0 or self.page_size & (self.page_size - 1):
            raise InputError(f"must be a power of two, got {self.page_size}", "page_size")

    def exists(self, pid: Pid) -> bool:
        """Whether /proc/PID exists now (it may vanish right after)."""
        return (self.root / pid_name(pid)).is_dir()

    def _pid_file(self, pid: Pid, name: str) -> Path:
        return self.root / pid_name(pid) / name

    def _read(self, path: Path, pid: Pid | None) -> str:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                return fh.read()
        except OSError as e:
            raise self._error(e, path, pid) from None

    def _open(self, path: Path, pid: Pid | None) -> int:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise self._error(e, path, pid) from None

    def _pread(self, fd: int, n: int, offset: int, path: Path, pid: Pid | None) -> bytes:
        try:
            return os.pread(fd, n, offset)
        except OSError as e:
            raise self._error(e, path, pid) from None

    def _clear_refs_error(self, e: OSError, path: Path, pid: Pid, value: int) -> TierctlError:
        """The error for ``e`` raised writing ``value`` to /proc/PID/clear_refs at ``path``."""
        if e.errno in (errno.EACCES, errno.EPERM):
            return PermissionDeniedError(
                "permission denied: clear_refs needs the process's owner or root", str(path)
            )
        if e.errno in (errno.ENOENT, errno.ESRCH) and not self.exists(pid):
            return NoSuchProcessError(f"no process {pid}", str(path.parent))
        return KernelError(f"cannot write {value}: {e.strerror}", str(path))

    def _root_denied(self, name: str, pid: Pid) -> str:
        """Why root may not read a ptrace-gated file: the kernel's check wants the reader's capabilities
        to cover the target's permitted set (or CAP_SYS_PTRACE in the target's user namespace)."""
        base = (
            "permission denied even as root: the kernel's ptrace access check refused reading "
            f"{name} of pid {pid}"
        )
        try:
            own = status_caps((self.root / "self" / "status").read_text(), "CapEff")
            target = status_caps((self.root / pid_name(pid) / "status").read_text(), "CapPrm")
        except OSError:
            own = target = None
        if own is not None and target is not None and target & ~own:
            return (
                f"{base}: it holds capabilities this process lacks ({_cap_names(target & ~own)}); run "
                "tierctl with a full capability set, or from the same user namespace as the target"
            )
        return f"{base} (another user namespace, or an LSM such as Yama with kernel.yama.ptrace_scope = 3)"

    def _error(self, e: OSError, path: Path, pid: Pid | None) -> TierctlError:
        name = path.name
        if e.errno == errno.ESRCH or (e.errno == errno.ENOENT and pid is not None and not self.exists(pid)):
            return NoSuchProcessError(f"no process {pid}", str(path.parent))
        if e.errno in (errno.EACCES, errno.EPERM):
            if pid is not None and name in _PTRACE_GATED and os.geteuid() == 0:
                return PermissionDeniedError(self._root_denied(name, pid), str(path))
            need = _NEEDS.get(name, "read access")
            return PermissionDeniedError(f"permission denied: reading {name} needs {need}", str(path))
        if e.errno == errno.ENOENT:
            hint = f" (needs {_CONFIG[name]})" if name in _CONFIG else ""
            return UnavailableError(f"not provided by this kernel{hint}", str(path))
        return KernelError(f"cannot read: {e.strerror or e}", str(path))


def _cap_names(mask: int) -> str:
    return ", ".join(
        f"CAP_{_CAP_NAMES[b]}" if b < len(_CAP_NAMES) else f"capability {b}"
        for b in range(64)
        if mask >> b & 1
    )
