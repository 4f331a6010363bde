"""The socket API server: one thread per connection in front of one Service object.

Design (docs/api.md has the user-facing version):

- A thread per connection, plus one accept thread. Connections are bounded (``Limits.max_connections``,
  default 64): one more is answered with an ``unavailable`` error and closed. Threads keep each handler
  a plain blocking loop with its own deadlines, and a stuck or slow client only ever holds its own thread.
- Calls into the Service are serialised by one lock (the Service need not be thread-safe); a request that
  cannot get the lock within ``Limits.service_timeout`` is answered ``unavailable`` ("busy").
- Every connection has deadlines: a request line must be complete ``line_timeout`` seconds after its first
  byte (slowloris), an idle connection is closed after ``idle_timeout``, a client must take a response
  within ``write_timeout``. A line longer than ``MAX_LINE`` bytes gets a ``protocol`` error and the
  connection is closed; other malformed lines get an error and the connection stays usable.
- Peer credentials (SO_PEERCRED) are read once at accept. Reads are open to whoever may connect (the
  socket is mode 0660, group ``tierctl`` when it exists); mutations need uid 0, or ``mutators_gid`` as the
  peer's primary group or among its supplementary groups (``Groups:`` of /proc/PID/status).

This module holds ``ApiServer`` (lifecycle, accept, admission bookkeeping, the dispatcher) and re-exports
every name it had; one connection's request loop is :mod:`~tierctl.api.connection`, limits and admission
rules :mod:`~tierctl.api.admission`, the socket file :mod:`~tierctl.api.socket_file`, peer credentials
and the right to mutate :mod:`~tierctl.api.peers`.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tierctl.api import socket_file
from tierctl.api.admission import ConnState, Limits, near_limit, reap_idle, refusal
from tierctl.api.connection import Closed, Connection
from tierctl.api.peers import Credentials, may_mutate, peer_credentials, proc_groups
from tierctl.api.protocol import Request, error_response
from tierctl.api.socket_file import SOCKET_GROUP, SOCKET_MODE
from tierctl.errors import TierctlError, UnavailableError
from tierctl.service.contract import ServiceContract

__all__ = [
    "SOCKET_GROUP", "SOCKET_MODE", "ApiServer", "Credentials", "Limits", "peer_credentials", "proc_groups",
]  # fmt: skip

log = logging.getLogger("tierctl.api")


class ApiServer:
    """Serve ``service`` on a Unix stream socket at ``socket_path``; ``start()``/``stop()`` or ``with``."""

    def __init__(
        self,
        service: ServiceContract,
        socket_path: Path | str,
        *,
        mutators_gid: int | None = None,
        limits: Limits | None = None,
        credentials: Callable[[socket.socket], Credentials] = peer_credentials,
        groups: Callable[[int], frozenset[int]] = proc_groups,
        socket_group: str | None = SOCKET_GROUP,
        service_lock: threading.Lock | None = None,
    ) -> None:
        self.service = service
        self.socket_path = Path(socket_path)
        self.mutators_gid = mutators_gid
        self.limits = limits or Limits()
        self._credentials = credentials
        self._groups = groups
        self._socket_group = socket_group
        # shared with the daemon loop when it passes its own lock; serialises every Service call
        self._service_lock = service_lock if service_lock is not None else threading.Lock()
        self._state_lock = threading.Lock()
        self._conns: dict[socket.socket, ConnState] = {}
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._inode: tuple[int, int] | None = None
        self.requests_served = 0
        self.errors_sent = 0
        self.connections_refused = 0
        self.idle_closed = 0

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ApiServer:
        if self._listener is not None:
            raise UnavailableError("already started", str(self.socket_path))
        path = self.socket_path
        sock, self._inode = socket_file.listen_at(path, self._chgrp)
        self._stopping.clear()
        self._listener = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="tierctl-api-accept", daemon=True
        )
        self._accept_thread.start()
        log.info("socket API listening on %s", path)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every connection, join the threads, remove the socket file."""
        listener = self._listener
        if listener is None:
            return
        self._stopping.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        listener.close()
        self._listener = None
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_r = self._wake_w = None
        with self._state_lock:
            conns = dict(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for info in conns.values():
            info.thread.join(max(0.0, deadline - time.monotonic()))
        self._remove_own_socket()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def active_connections(self) -> int:
        with self._state_lock:
            return len(self._conns)

    # ---- socket file ----------------------------------------------------------------------------

    def _remove_own_socket(self) -> None:
        socket_file.remove_own(self.socket_path, self._inode)
        self._inode = None

    def _chgrp(self, path: Path) -> None:
        socket_file.chgrp(path, self._socket_group)

    # ---- connections ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener, wake = self._listener, self._wake_r
        assert listener is not None and wake is not None
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(wake, select.POLLIN)
        while not self._stopping.is_set():
            if not poller.poll(1000) or self._stopping.is_set():
                continue
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # EMFILE and friends: back off, keep serving
                continue
            try:
                conn.setblocking(True)
                self._admit(conn)
            except Exception:  # never let one connection kill the accept loop
                log.exception("socket API: admitting a connection failed")
                conn.close()

    def _admit(self, conn: socket.socket) -> None:
        """Admit a connection, or answer ``unavailable`` and close it. Unprivileged peers share
        ``max_connections - reserved_privileged`` slots, at most ``per_uid`` each, so no reader can lock
        root or the mutators out; near the limit, connections idle for ``busy_idle_timeout`` are closed."""
        lim = self.limits
        try:
            pid, uid, gid = self._credentials(conn)
        except OSError:
            pid, uid, gid = 0, -1, -1
        privileged = self._privileged(pid, uid, gid)
        now = time.monotonic()
        with self._state_lock:
            if near_limit(len(self._conns), lim):
                self._reap_idle(now)
            if self._stopping.is_set():
                why: str | None = "the daemon is stopping"
            else:
                why = refusal(self._conns.values(), uid, privileged, lim)
            if why is None:
                thread = threading.Thread(
                    target=self._serve, args=(conn,), name="tierctl-api-conn", daemon=True
                )
                self._conns[conn] = ConnState(thread, uid, privileged, now)
        if why is not None:
            self.connections_refused += 1
            conn.settimeout(0.2)
            with contextlib.suppress(OSError):
                conn.sendall(error_response(None, "unavailable", why, "connection"), socket.MSG_NOSIGNAL)
            conn.close()
            return
        thread.start()

    def _reap_idle(self, now: float) -> None:
        """Close (shut down; their threads exit) connections idle for ``busy_idle_timeout``; holds
        ``_state_lock``."""
        self.idle_closed += reap_idle(self._conns, now, self.limits)

    def _mark(self, conn: socket.socket, *, busy: bool | None = None, stream: bool | None = None) -> bool:
        """Note activity; False when the connection was reaped as idle (its request must be dropped:
        the client will never read the answer, so it must not be carried out)."""
        with self._state_lock:
            info = self._conns.get(conn)
            if info is None or info.reaped:
                return False
            info.last_active = time.monotonic()
            if busy is not None:
                info.busy = busy
            if stream is not None:
                info.stream = stream
            return True

    def _serve(self, conn: socket.socket) -> None:
        try:
            allowed = self._may_mutate(conn)
            Connection(self, conn, allowed).read_loop()
        except Closed:
            pass
        except Exception:
            log.exception("socket API: connection handler failed")
        finally:
            with self._state_lock:
                self._conns.pop(conn, None)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _privileged(self, pid: int, uid: int, gid: int) -> bool:
        """May mutate: uid 0, or the mutators group as primary or supplementary group."""
        return may_mutate(pid, uid, gid, self.mutators_gid, self._groups)

    def _may_mutate(self, conn: socket.socket) -> bool:
        with self._state_lock:
            info = self._conns.get(conn)
        return info is not None and info.privileged

    # ---- dispatch: every Service call under one lock -------------------------------------------

    def _locked(self, fn: Callable[..., Any], *args: Any) -> Any:
        if not self._service_lock.acquire(timeout=self.limits.service_timeout):
            raise UnavailableError(f"service busy for more than {self.limits.service_timeout:g} s; try again")
        try:
            return fn(*args)
        finally:
            self._service_lock.release()

    def _call(self, req: Request) -> Any:
        """Serve ``req`` as its OpSpec declares: the Service method with the arguments in order."""
        spec = req.spec
        args = [req.args[a.name] for a in spec.args]
        if spec.prepare is not None:  # outside the lock; its failure is the method's to report
            try:
                args.append(getattr(self.service, spec.prepare)())
            except TierctlError as e:
                args.append(e)
        result = self._locked(getattr(self.service, spec.method), *args)
        return spec.shape(result) if spec.shape is not None else result
