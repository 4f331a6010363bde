"""Where the TUI's data comes from: one protocol, two implementations, no Textual.

Both speak the API's ops (``call(op, **args)``, declared once in ``tierctl.api.protocol.OPS``):
``LocalSource`` serves them from an in-process Service (the simulated machine of ``tierctl tui --sim``)
as the daemon would — each op's method, arguments and result shape as declared — holding one lock, and
``start()`` runs ``service.cycle()`` on a period in a background thread. ``SocketSource`` sends them to
the daemon (``tierctl tui``): a lost daemon becomes a frame with ``connected=False`` and the next poll
reconnects.

``poll()`` returns a ``Frame``: everything every view needs, collected whatever the screen shows, by
one function over ``call`` (``read_frame``) for both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from tierctl.api.client import DEFAULT_SOCKET, ApiClient
from tierctl.api.protocol import OP_OF_METHOD, OPS, RemoteError, RequestError, check_args
from tierctl.errors import (
    DaemonUnreachableError,
    InputError,
    PermissionDeniedError,
    TierctlError,
    UnavailableError,
)
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


Call = Callable[..., Any]
"""``call(op, **args)``: one read or mutation of the API (``OPS``) and its result as the wire has it."""


class Source(Protocol):
    label: str

    def poll(self, detail_path: str | None = None) -> Frame: ...

    def act(self, action: str, **args: Any) -> Any:
        """Run one of ACTIONS (Service method names); raises the TierctlError the service raised."""
        ...

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        """The ``cgroup`` op's answer for ``path`` alone (a dialog wants it now, not at the next poll)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def read_frame(call: Call, seq: int, detail_path: str | None = None) -> tuple[Frame, int]:
    """Every read a frame carries, one op each, and the newest event sequence number (the next
    ``seq``). The main reads' errors propagate — the source knows what a lost daemon is. The pressure
    view and the detail are extras: an error the service answers for them (not a lost connection) is
    shown in their place (the pressure view's reason, the frame's ``detail_error``)."""
    status = call("status")
    topology = call("topology")
    cgroups = call("cgroups")
    ev = call("events", since=seq)
    if int(ev.get("seq", 0)) < seq:  # a restarted daemon numbers events afresh
        ev = call("events", since=0)
    pressure = _pressure(call)
    detail, detail_error = None, ""
    if detail_path is not None:
        try:
            detail = call("cgroup", path=detail_path)
        except DaemonUnreachableError:
            raise
        except TierctlError as e:
            detail_error = str(e)
    events = list(ev.get("events", []))
    frame = Frame(True, "", status, topology, list(cgroups), events, detail, detail_error, pressure)
    return frame, int(ev.get("seq", 0))


def _pressure(call: Call) -> dict[str, Any]:
    """The ``pressure`` op's answer; an older daemon without the op, or a refusal, is shown as such
    (a pressure view without data), not as a daemon gone."""
    try:
        got = call("pressure")
    except RemoteError as e:
        if e.kind == "protocol" and "unknown op" in str(e):
            return {"mode": "?", "active": False, "reason": NO_PRESSURE_OP}
        return {"mode": "?", "active": False, "reason": str(e)}  # the daemon answered: it is there
    except DaemonUnreachableError:
        raise
    except TierctlError as e:  # the in-process service could not read the machine's pressure
        return {"mode": "?", "active": False, "reason": str(e)}
    return got if isinstance(got, dict) else {"mode": "?", "active": False, "reason": "bad answer"}


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
        self.lock = threading.RLock()  # a poll holds it over its reads, each read takes it again
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
        with self.lock:  # one consistent reading: no cycle between the reads
            frame, self.seq = read_frame(self.call, self.seq, detail_path)
        return replace(frame, message=self.problem)

    def call(self, op: str, **args: Any) -> Any:
        """Serve ``op`` as the daemon does (tierctl.api.server): its arguments checked as declared
        (an InputError, as the socket client raises it), its ``prepare`` outside the lock, its method
        under it, the result in the declared shape."""
        spec = OPS.get(op)
        if spec is None or spec.stream:
            raise InputError(f"unknown op {op!r}", "tui")
        try:
            checked = check_args(spec, args)
        except RequestError as e:
            raise InputError(e.message, e.where) from None
        values = [checked[a.name] for a in spec.args]
        if spec.prepare is not None:  # its failure is the method's to report
            try:
                values.append(getattr(self.service, spec.prepare)())
            except TierctlError as e:
                values.append(e)
        with self.lock:
            result = getattr(self.service, spec.method)(*values)
        return spec.shape(result) if spec.shape is not None else result

    def act(self, action: str, **args: Any) -> Any:
        _check_action(action)
        return self.call(OP_OF_METHOD[action], **args)

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        got = self.call("cgroup", path=path)
        return got if isinstance(got, dict) else {}


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
        self._lock = threading.RLock()  # one request at a time on the connection (a poll: all its reads)
        self.seq = 0
        self.reached = False  # whether any poll has succeeded

    def start(self) -> None:
        pass

    def stop(self) -> None:
        with self._lock:
            self._client.close()

    def poll(self, detail_path: str | None = None) -> Frame:
        with self._lock:
            try:
                frame, self.seq = read_frame(self.call, self.seq, detail_path)
            except PermissionDeniedError as e:
                self._client.close()
                return Frame(connected=False, message=str(e))
            except (UnavailableError, RemoteError) as e:
                self._client.close()
                lost = GONE if self.reached else f"{NEVER} at {self.path}, retrying…"
                return Frame(connected=False, message=f"{lost} ({e})")
        self.reached = True
        return frame

    def call(self, op: str, **args: Any) -> Any:
        """One request on the connection (reopened after the daemon went away)."""
        with self._lock:
            return self._client.call(op, **args)

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        with self._lock:
            try:
                got = self.call("cgroup", path=path)
            except (UnavailableError, RemoteError):
                self._client.close()
                raise
        return got if isinstance(got, dict) else {}

    def act(self, action: str, **args: Any) -> Any:
        _check_action(action)
        with self._lock:
            try:
                return self.call(OP_OF_METHOD[action], **args)
            except (UnavailableError, RemoteError):
                self._client.close()
                raise
