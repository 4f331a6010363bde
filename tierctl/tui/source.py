"""Where the TUI's data comes from: one protocol, two implementations, no Textual.

``LocalSource`` wraps an in-process Service (the simulated machine of ``tierctl tui --sim``): every call
holds one lock, and ``start()`` runs ``service.cycle()`` on a period in a background thread.
``SocketSource`` wraps the socket API client (``tierctl tui``): a lost daemon becomes a frame with
``connected=False`` and the next poll reconnects.

``poll()`` returns a ``Frame``: everything every view needs, collected whatever the screen shows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tierctl.api.client import DEFAULT_SOCKET, ApiClient
from tierctl.api.protocol import OP_OF_METHOD, OPS, RemoteError
from tierctl.errors import InputError, PermissionDeniedError, TierctlError, UnavailableError
from tierctl.service.contract import ServiceContract

GONE = "daemon gone, reconnecting…"
NEVER = "daemon never reached"  # no connection has succeeded yet (is it running? the right socket?)
NO_PRESSURE_OP = "this daemon does not report memory pressure (it is older than the pressure op)"
# the Service methods the TUI may call: the mutations the API declares (tierctl.api.protocol.OPS)
ACTIONS = tuple(spec.method for spec in OPS.values() if spec.mutation)


@dataclass(frozen=True)
class Frame:
    """One consistent reading of the service (``events`` are the ones new since the previous frame)."""

    connected: bool = True
    message: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    topology: dict[str, Any] = field(default_factory=dict)
    cgroups: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] | None = None
    detail_error: str = ""
    # the Service's pressure_status() (docs/pressure.md); {"active": False, "reason"} when it is off
    pressure: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    label: str

    def poll(self, detail_path: str | None = None) -> Frame: ...

    def act(self, action: str, **args: Any) -> Any:
        """Run one of ACTIONS (Service method names); raises the TierctlError the service raised."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class CyclingService(ServiceContract, Protocol):
    def cycle(self) -> None: ...


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})", "tui")


class LocalSource:
    """An in-process Service; ``period_s=None`` leaves cycling to the caller (``step()``; tests)."""

    def __init__(
        self, service: CyclingService, *, period_s: float | None = 1.0, label: str = "local"
    ) -> None:
        self.service = service
        self.period_s = period_s
        self.label = label
        self.lock = threading.Lock()
        self.seq = 0
        self.problem = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        """Run one service cycle (in the simulator: one epoch of the simulated machine)."""
        try:
            with self.lock:
                self.service.cycle()
            self.problem = ""
        except TierctlError as e:
            self.problem = f"cycle failed: {e}"
        except Exception as e:  # shown on the summary line instead of killing the cycle thread
            self.problem = f"cycle failed: {type(e).__name__}: {e}"

    def start(self) -> None:
        if self.period_s is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tierctl-tui-cycle", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.period_s is not None
        while not self._stop.wait(self.period_s):
            self.step()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def poll(self, detail_path: str | None = None) -> Frame:
        with self.lock:
            status = self.service.status()
            topology = self.service.topology()
            cgroups = self.service.cgroups()
            self.seq, events = self.service.events_since(self.seq)
            try:
                pressure = self.service.pressure_status()
            except TierctlError as e:
                pressure = {"mode": "?", "active": False, "reason": str(e)}
            detail, detail_error = None, ""
            if detail_path is not None:
                try:
                    detail = self.service.cgroup_detail(detail_path)
                except TierctlError as e:
                    detail_error = str(e)
        return Frame(True, self.problem, status, topology, cgroups, events, detail, detail_error, pressure)

    def act(self, action: str, **args: Any) -> Any:
        _check_action(action)
        with self.lock:
            return getattr(self.service, action)(**args)

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        with self.lock:
            return self.service.cgroup_detail(path)


class SocketSource:
    """The daemon's socket API; one connection, reopened after the daemon went away."""

    def __init__(
        self,
        socket_path: Path | str,
        *,
        timeout: float = 5.0,
        client_factory: Callable[[Path], ApiClient] | None = None,
    ) -> None:
        self.path = Path(socket_path)
        self.label = "daemon" if self.path == DEFAULT_SOCKET else f"daemon {self.path}"
        self.timeout = timeout
        self._factory = client_factory or (lambda p: ApiClient(p, timeout=self.timeout))
        self._client = self._factory(self.path)
        self._lock = threading.Lock()  # one request at a time on the connection
        self.seq = 0
        self.reached = False  # whether any poll has succeeded

    def start(self) -> None:
        pass

    def stop(self) -> None:
        with self._lock:
            self._client.close()

    def poll(self, detail_path: str | None = None) -> Frame:
        with self._lock:
            c = self._client
            try:
                status = c.call("status")
                topology = c.call("topology")
                cgroups = c.call("cgroups")
                ev = c.call("events", since=self.seq)
                if int(ev.get("seq", 0)) < self.seq:  # a restarted daemon numbers events afresh
                    ev = c.call("events", since=0)
                self.seq = int(ev.get("seq", 0))
                pressure = self._pressure(c)
                detail, detail_error = None, ""
                if detail_path is not None:
                    try:
                        detail = c.call("cgroup", path=detail_path)
                    except InputError as e:
                        detail_error = str(e)
            except PermissionDeniedError as e:
                c.close()
                return Frame(connected=False, message=str(e))
            except (UnavailableError, RemoteError) as e:
                c.close()
                lost = GONE if self.reached else f"{NEVER} at {self.path}, retrying…"
                return Frame(connected=False, message=f"{lost} ({e})")
        self.reached = True
        return Frame(
            True,
            "",
            status,
            topology,
            list(cgroups),
            list(ev.get("events", [])),
            detail,
            detail_error,
            pressure,
        )

    @staticmethod
    def _pressure(c: ApiClient) -> dict[str, Any]:
        """The ``pressure`` op's answer; an older daemon without the op is shown as such, not as gone."""
        try:
            got = c.call("pressure")
        except RemoteError as e:
            if e.kind == "protocol" and "unknown op" in str(e):
                return {"mode": "?", "active": False, "reason": NO_PRESSURE_OP}
            raise
        return got if isinstance(got, dict) else {"mode": "?", "active": False, "reason": "bad answer"}

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        with self._lock:
            try:
                got = self._client.call("cgroup", path=path)
            except (UnavailableError, RemoteError):
                self._client.close()
                raise
        return got if isinstance(got, dict) else {}

    def act(self, action: str, **args: Any) -> Any:
        _check_action(action)
        with self._lock:
            try:
                return self._client.call(OP_OF_METHOD[action], **args)
            except (UnavailableError, RemoteError):
                self._client.close()
                raise
