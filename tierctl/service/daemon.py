"""The daemon's main loop: cycles on a period, signals, and the front ends around one Service.

SIGTERM / SIGINT: finish the cycle, stop the front ends, detach samplers, restore
every knob, exit 0. SIGHUP: reload the profiles transactionally (problems are
logged and the running set stays). A ``ProfileWatch`` (service/profile_watch.py: a
ConfigMap swap, a file edited in place) asks for the same reload from the loop's
waits. Signals only set flags; all work happens in the loop, so a signal never
interrupts a migration half-way. SIGUSR1 writes the stack
of every thread to the log (stderr, the journal under systemd): what a daemon that
stopped answering is doing, without a debugger. Nothing is written to the log while
the Service lock is held, so a slow log (a pipe nobody reads) can stall the loop but
never the socket API's readers.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from tierctl.errors import TierctlError
from tierctl.profiles import ProfileSet
from tierctl.service.profile_watch import ProfileWatch
from tierctl.service.service import Service


class FrontEnd(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> Any: ...


@dataclass
class _Flags:
    stop: bool = False
    reload: bool = False
    signals: list[int] = field(default_factory=list)


def run_daemon(
    service: Service,
    *,
    cycle_s: float = 1.0,
    cycles: int | None = None,
    front_ends: tuple[FrontEnd, ...] = (),
    notify: Callable[[str], Any] | None = None,
    log: TextIO = sys.stderr,
    install_signals: bool = True,
    lock: threading.Lock | None = None,
    watch: ProfileWatch | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the loop until SIGTERM/SIGINT, ``stop`` is set (an embedding thread's way) or ``cycles`` ran.
    ``watch``: a started ``ProfileWatch``, checked between cycles and closed at the end. Reloads, by
    signal, the watch or the API, are counted by the Service (``service.reload_counts``)."""
    flags = _Flags()
    stopping = (lambda: flags.stop) if stop is None else (lambda: flags.stop or stop.is_set())
    lock = lock or threading.Lock()  # shared with the front ends: one caller in the Service at a time

    def on_signal(signum: int, _frame: Any) -> None:
        flags.signals.append(signum)
        if signum == signal.SIGHUP:
            flags.reload = True
        else:
            flags.stop = True

    previous = {}
    dumps = False
    if install_signals:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous[s] = signal.signal(s, on_signal)
        with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
            faulthandler.register(signal.SIGUSR1, file=log, all_threads=True)
            dumps = True
    started: list[FrontEnd] = []
    try:
        service.start()
        for fe in front_ends:
            fe.start()
            started.append(fe)
        warnings = degraded(service)
        for w in warnings:  # loud, not silent: a controller that cannot place says so at once
            print(f"tierctl daemon: warning: {w}", file=log, flush=True)
        if notify:
            notify("READY=1")
            if warnings:
                notify(f"STATUS=degraded: {warnings[0]}")
        n = 0
        next_at = time.monotonic()
        while not stopping() and (cycles is None or n < cycles):
            next_at += cycle_s
            while not stopping() and (left := next_at - time.monotonic()) > 0:
                if service.wait_pressure(min(left, 0.1)):  # a PSI trigger, or above the target
                    try:
                        with lock:
                            service.pressure_step()
                    except TierctlError as e:
                        print(f"tierctl daemon: pressure step failed: {e}", file=log, flush=True)
                if flags.reload:
                    flags.reload = False
                    print(_reload(service, lock, "signal", "SIGHUP"), file=log, flush=True)
                if watch is not None and (why := watch.due()) is not None:
                    print(_reload(service, lock, "watch", why), file=log, flush=True)
            if stopping():
                break
            try:
                with lock:
                    service.cycle()
            except TierctlError as e:  # a failed cycle is logged; the daemon goes on
                print(f"tierctl daemon: cycle failed: {e}", file=log, flush=True)
            n += 1
            if notify:  # every cycle: the watchdog ping (WatchdogSec in the unit) and a status line
                notify("WATCHDOG=1")
                notify(f"STATUS=cycle {service.cycles}, {service.tracked_pages()} pages tracked")
        return 0
    finally:
        if notify:
            notify("STOPPING=1")
        for fe in reversed(started):
            try:
                fe.stop()
            except Exception as e:  # stopping one front end must not keep the knobs unrestored
                print(f"tierctl daemon: stopping {type(fe).__name__} failed: {e}", file=log, flush=True)
        service.stop()
        if watch is not None:
            watch.close()
        if dumps:
            faulthandler.unregister(signal.SIGUSR1)
        for s, h in previous.items():
            signal.signal(s, h)


def degraded(service: Service) -> list[str]:
    """What keeps this daemon from placing pages, in words: no sampler running, one memory tier only.
    The pressure ladder works either way, and each line says so."""
    out = []
    samplers = service.status().get("samplers") or []
    if not any(s.get("state") == "running" for s in samplers):
        why = "; ".join(f"{s.get('name')}: {s.get('state')}, {s.get('reason')}" for s in samplers)
        out.append(
            f"no sampler is running ({why or 'none configured'}): no page is placed until one starts "
            "(tierctl samplers says what each needs); the pressure ladder still runs"
        )
    nodes = service.topology().get("nodes") or []
    if len({n.get("tier") for n in nodes}) < 2:
        ids = ", ".join(str(n.get("id")) for n in nodes)
        out.append(
            f"this machine has one memory tier (node {ids or '?'}): there is nothing to place between "
            "tiers; the pressure ladder still runs"
        )
    return out


def _reload(service: Service, lock: threading.Lock, trigger: str, why: str) -> str:
    """Read and check the profiles without the lock (a slow parse must not stall the API or the loop),
    then install them, or count the failure, under it: one path for SIGHUP and the directory watch.
    A ``reload_requested`` event says what asked for it; the Service's ``reloaded`` / ``reload_failed``
    event that follows says what came of it."""
    prepared: ProfileSet | TierctlError
    try:
        prepared = service.read_profiles()
    except TierctlError as e:
        prepared = e
    with lock:
        service.events.emit("reload_requested", trigger=trigger, message=why)
        try:
            names = service.reload(prepared, trigger=trigger)["profiles"]
            line = f"tierctl daemon: profiles reloaded: {', '.join(names)} ({trigger}: {why})"
        except TierctlError as e:
            line = f"tierctl daemon: reload refused, running set kept ({trigger}: {why}):\n{e}"
    return line
