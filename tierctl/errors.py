"""The one exception hierarchy of tierctl.

Every error says what went wrong (``message``) and where (``where``: a file, a
file:line, an array name, a pid or a cgroup path).  Command-line front ends
print ``str(err)`` as one line and exit with ``err.exit_code``:

====  =====================================================================================
0     success
1     failed: the kernel or the host could not do it (``KernelError``, ``UnavailableError``)
2     usage or bad input: a flag, a value, a profile, a pid or cgroup that does not exist
3     the daemon is unreachable: not running, not accepting, or the connection broke
4     permission denied: root, the mutators group, a capability or ptrace access is needed
70    internal error: a bug in tierctl, or the daemon answered ``internal``/``protocol``
130   interrupted (Ctrl-C)
====  =====================================================================================
"""

from __future__ import annotations


class TierctlError(Exception):
    """Base of every error tierctl raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InputError(TierctlError):
    """Bad input from the user: a trace, a profile, a command-line value."""

    exit_code = 2


class KernelError(TierctlError):
    """A kernel interface failed or answered something we cannot parse."""


class UnavailableError(TierctlError):
    """A component (sampler, syscall, file) cannot work on this host; ``message`` says why."""


class PermissionDeniedError(TierctlError):
    """The operation needs privileges the caller lacks (root, ptrace access, a capability)."""

    exit_code = 4


class DaemonUnreachableError(UnavailableError):
    """The daemon cannot be reached: no socket, connection refused or broken, no answer in time."""

    exit_code = 3


EXIT_INTERNAL = 70


class NoSuchProcessError(InputError):
    """The pid does not exist (or exited)."""
