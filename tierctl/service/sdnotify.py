"""A tiny sd_notify(3) client: tell systemd (``Type=notify``) that the daemon is ready, what it is doing,
that it is stopping, and that it is alive (``WATCHDOG=1``). No dependency.

- The address comes from ``$NOTIFY_SOCKET``: an absolute path, or ``@name`` for an abstract socket.
  Unset (not started by systemd, or ``Type=`` is not notify): every call is a no-op returning False,
  ``enabled`` is False.
- One AF_UNIX datagram per call, newline-separated ``KEY=VALUE`` lines, with a send timeout so a full
  receive queue never stalls the control loop.
- Nothing here raises into the daemon: a failure returns False and ``reason`` says why.

Usage in the daemon::

    notify = SdNotify()
    ...setup...
    notify.ready("managing 3 cgroups")
    every cycle:  notify.watchdog()   # from the loop itself, so a stuck loop is restarted
    on SIGHUP:    notify.reloading(); ...; notify.ready()
    on SIGTERM:   notify.stopping("restoring kernel knobs")
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class SdNotify:
    def __init__(
        self, address: str | None = None, *, environ: Mapping[str, str] | None = None, timeout: float = 1.0
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.address = address if address is not None else (self.environ.get("NOTIFY_SOCKET") or None)
        self.timeout = timeout
        self.reason = "" if self.address else "NOTIFY_SOCKET is not set (not run by systemd as Type=notify)"

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    # ---- the messages ------------------------------------------------------------------------
    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """Before a reload; send ``ready()`` when done. MONOTONIC_USEC is what Type=notify-reload wants."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time to start or stop (e.g. while restoring many kernel knobs)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def watchdog_interval(self) -> float | None:
        """``WatchdogSec=`` in seconds if systemd expects pings from this process, else None.

        Ping at least every half of it.
        """
        usec, pid = self.environ.get("WATCHDOG_USEC"), self.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            value = int(usec)
        except ValueError:
            return None
        return value / 1e6 if value > 0 else None

    # ---- the transport -----------------------------------------------------------------------
    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram. True if sent; else False and ``reason`` says why."""
        if not self.address:
            return False
        for line in lines:
            if "=" not in line or "\n" in line:
                self.reason = f"malformed notify line {line!r}"
                return False
        if self.address.startswith("@"):
            target: str | bytes = b"\0" + self.address[1:].encode()
        elif self.address.startswith("/"):
            target = os.fsencode(self.address)
        else:  # vsock:CID:PORT (systemd >= 254) and anything else
            self.reason = f"unsupported NOTIFY_SOCKET address {self.address!r}"
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.settimeout(self.timeout)
                s.sendto("\n".join(lines).encode(), target)
        except (OSError, ValueError) as e:
            self.reason = f"sd_notify to {self.address}: {e}"
            return False
        self.reason = ""
        return True


def _status(text: str | None) -> tuple[str, ...]:
    """STATUS= is one line: newlines become spaces."""
    return () if text is None else ("STATUS=" + " ".join(text.splitlines()),)
