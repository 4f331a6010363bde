"""The one exception hierarchy of tierctl.

Every error says what went wrong (``message``) and where (``where``: a file, a
file:line, an array name, a pid or a cgroup path).  Command-line front ends
print ``str(err)`` as one line and exit with ``err.exit_code``.
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
    """The operation needs privileges the caller lacks (root, CAP_SYS_NICE, ptrace access)."""

    exit_code = 2


class NoSuchProcessError(InputError):
    """The pid does not exist (or exited)."""
