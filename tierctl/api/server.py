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
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import logging
import os
import select
import socket
import stat
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tierctl.api.protocol import (
    MAX_LINE,
    Request,
    RequestError,
    error_kind,
    error_response,
    event_line,
    ok_response,
    parse_request,
)
from tierctl.errors import InputError, TierctlError, UnavailableError
from tierctl.kernel.procfs import LIVE_PROC, ProcFS
from tierctl.service.contract import ServiceContract

log = logging.getLogger("tierctl.api")

SOCKET_GROUP = "tierctl"
SOCKET_MODE = 0o660
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1

Credentials = tuple[int, int, int]
"""(pid, uid, gid) of the peer process, as SO_PEERCRED reports them at connect time."""


@dataclass(frozen=True)
class Limits:
    max_connections: int = 64
    """connections in all"""
    reserved_privileged: int = 16
    """of ``max_connections``, kept for root and the mutators group: unprivileged peers share the rest"""
    per_uid: int = 8
    """connections one unprivileged uid may hold"""
    busy_idle_timeout: float = 5.0
    """when a quarter or less of the connections is left, idle ones older than this are closed"""
    max_line: int = MAX_LINE
    line_timeout: float = 10.0
    """seconds from a request line's first byte to its newline"""
    idle_timeout: float = 3600.0
    """seconds a connection may sit without sending a request (not applied to subscribers)"""
    write_timeout: float = 10.0
    """seconds the client has to take one response or event"""
    service_timeout: float = 30.0
    """seconds a request waits for the Service (busy with another call) before ``unavailable``"""
    poll_interval: float = 0.25
    """seconds between event polls of a subscription"""


def peer_credentials(sock: socket.socket) -> Credentials:
    """SO_PEERCRED of a connected Unix socket: (pid, uid, gid)."""
    fmt = "3i"
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize(fmt))
    pid, uid, gid = struct.unpack(fmt, raw)
    return pid, uid, gid


def proc_groups(pid: int, proc: Path = LIVE_PROC) -> frozenset[int]:
    """Supplementary groups of a process (``Groups:`` of /proc/PID/status); empty if it is gone."""
    try:
        return ProcFS(proc).groups(pid)
    except TierctlError:
        return frozenset()


def _pending(conn: socket.socket) -> bool:
    """Bytes the peer sent that the connection's thread has not read yet (FIONREAD)."""
    try:
        raw = fcntl.ioctl(conn.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return struct.unpack("i", raw)[0] > 0


class _Closed(Exception):
    """The connection is done (peer gone, write failed, or we closed it on purpose)."""


@dataclass
class _Conn:
    """What admission and idle reaping need to know about one connection."""

    thread: threading.Thread
    uid: int
    privileged: bool
    last_active: float
    busy: bool = False  # answering a request (never reaped)
    stream: bool = False  # a subscription (long-lived by design; not reaped)
    reaped: bool = False  # closed as idle: a request that still arrives is not carried out


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
        self._conns: dict[socket.socket, _Conn] = {}
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
        if len(os.fsencode(path)) > _SUN_PATH_MAX:
            raise InputError(f"socket path longer than {_SUN_PATH_MAX} bytes", str(path))
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as e:
            raise UnavailableError(
                f"cannot create the socket directory: {e.strerror or e}", str(path.parent)
            ) from None
        self._remove_stale(path)
        # bound under a temporary name, given its mode and group, listening, and only then renamed into
        # place: a client that sees the path can connect (no window where it exists but refuses)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        if len(os.fsencode(tmp)) > _SUN_PATH_MAX:
            tmp = path.with_name(f".t{os.getpid()}")
        if len(os.fsencode(tmp)) > _SUN_PATH_MAX:
            tmp = path  # no room for a temporary name: bind in place (not listening yet = refused)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound: Path | None = None
        try:
            if tmp != path:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()  # left by a daemon of the same pid that died between bind and rename
            sock.bind(str(tmp))
            bound = tmp
            os.chmod(tmp, SOCKET_MODE)
            self._chgrp(tmp)
            sock.listen(socket.SOMAXCONN)  # bursts wait in the backlog, not in EAGAIN at the client
            sock.setblocking(False)
            st = tmp.stat()
            if tmp != path:
                os.rename(tmp, path)
                bound = path
            self._inode = (st.st_dev, st.st_ino)
        except OSError as e:
            sock.close()
            if bound is not None:
                with contextlib.suppress(OSError):
                    bound.unlink()
            raise UnavailableError(f"cannot listen: {e.strerror or e}", str(path)) from None
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

    def _remove_stale(self, path: Path) -> None:
        try:
            st = path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise InputError("exists and is not a socket; refusing to replace it", str(path))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: left by a daemon that died
            return
        finally:
            probe.close()
        raise UnavailableError("another daemon is serving this socket", str(path))

    def _remove_own_socket(self) -> None:
        try:
            st = self.socket_path.lstat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) == self._inode:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        self._inode = None

    def _chgrp(self, path: Path) -> None:
        if not self._socket_group:
            return
        try:
            gid = grp.getgrnam(self._socket_group).gr_gid
        except KeyError:
            return  # no such group: root-only socket
        try:
            os.chown(path, -1, gid)
        except OSError as e:
            log.warning("cannot give %s to group %s: %s", path, self._socket_group, e)

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
            if len(self._conns) >= lim.max_connections - max(1, lim.max_connections // 4):
                self._reap_idle(now)
            total = len(self._conns)
            why = None
            if self._stopping.is_set():
                why = "the daemon is stopping"
            elif total >= lim.max_connections:
                why = f"too many connections (limit {lim.max_connections}); try again"
            elif not privileged:
                mine = sum(1 for c in self._conns.values() if c.uid == uid)
                others = sum(1 for c in self._conns.values() if not c.privileged)
                if mine >= lim.per_uid:
                    why = f"too many connections from uid {uid} (limit {lim.per_uid} per user); try again"
                elif others >= lim.max_connections - lim.reserved_privileged:
                    why = (
                        f"too many connections from unprivileged users (limit "
                        f"{lim.max_connections - lim.reserved_privileged}); try again"
                    )
            if why is None:
                thread = threading.Thread(
                    target=self._serve, args=(conn,), name="tierctl-api-conn", daemon=True
                )
                self._conns[conn] = _Conn(thread, uid, privileged, now)
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
        for conn, info in self._conns.items():
            idle = now - info.last_active >= self.limits.busy_idle_timeout
            if not info.busy and not info.stream and not info.reaped and idle and not _pending(conn):
                info.reaped = True
                self.idle_closed += 1
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

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
            self._read_loop(conn, allowed)
        except _Closed:
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
        if uid == 0:
            return True
        if self.mutators_gid is None or uid < 0:
            return False
        return gid == self.mutators_gid or self.mutators_gid in self._groups(pid)

    def _may_mutate(self, conn: socket.socket) -> bool:
        with self._state_lock:
            info = self._conns.get(conn)
        return info is not None and info.privileged

    def _send(self, conn: socket.socket, data: bytes) -> None:
        conn.settimeout(self.limits.write_timeout)
        try:
            conn.sendall(data, socket.MSG_NOSIGNAL)
        except OSError:
            raise _Closed from None

    def _send_error(
        self, conn: socket.socket, req_id: Any, kind: str, message: str, where: str | None
    ) -> None:
        self.errors_sent += 1
        self._send(conn, error_response(req_id, kind, message, where))

    def _read_loop(self, conn: socket.socket, allowed: bool) -> None:
        lim = self.limits
        buf = bytearray()
        scanned = 0  # bytes of buf known to hold no newline
        line_started = 0.0
        last_request = time.monotonic()
        while not self._stopping.is_set():
            nl = buf.find(b"\n", scanned)
            if nl >= 0:
                line = bytes(buf[: nl + 1])
                del buf[: nl + 1]
                scanned = 0
                line_started = time.monotonic()  # leftover bytes start the next line now
                if len(line) > lim.max_line:
                    self._send_error(
                        conn, None, "protocol", f"request line longer than {lim.max_line} bytes", "request"
                    )
                    raise _Closed
                if not self._mark(conn, busy=True):
                    raise _Closed  # reaped as idle just before this line arrived
                try:
                    if not self._handle(conn, line, allowed):
                        return
                finally:
                    self._mark(conn, busy=False)
                last_request = time.monotonic()
                continue
            scanned = len(buf)
            if len(buf) > lim.max_line:
                self._send_error(
                    conn, None, "protocol", f"request line longer than {lim.max_line} bytes", "request"
                )
                raise _Closed
            now = time.monotonic()
            deadline = line_started + lim.line_timeout if buf else last_request + lim.idle_timeout
            if now >= deadline:
                if buf:
                    msg = f"request line not completed within {lim.line_timeout:g} s"
                    self._send_error(conn, None, "protocol", msg, "request")
                raise _Closed
            conn.settimeout(deadline - now)
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                raise _Closed from None
            if not chunk:
                raise _Closed  # peer closed (possibly mid-line: the partial line is dropped)
            if not buf:
                line_started = time.monotonic()
            buf += chunk
            self._mark(conn)

    def _handle(self, conn: socket.socket, line: bytes, allowed: bool) -> bool:
        """Answer one request line; False when the connection is done (a finished subscription)."""
        try:
            req = parse_request(line)
        except RequestError as e:
            self._send_error(conn, e.req_id, e.kind, e.message, e.where)
            return True
        if req.spec.mutation and not allowed:
            self._send_error(
                conn, req.id, "permission", f"{req.op} needs root or the tierctl mutators group", req.op
            )
            return True
        if req.spec.stream:
            self._mark(conn, stream=True)
            self._subscribe(conn, req)
            return False
        try:
            result = self._call(req)
            data = ok_response(req.id, result)
        except TierctlError as e:
            self._send_error(conn, req.id, error_kind(e), e.message, e.where or req.op)
            return True
        except Exception as e:
            log.exception("socket API: %s failed", req.op)
            self._send_error(conn, req.id, "internal", f"{type(e).__name__}: {e}", req.op)
            return True
        self.requests_served += 1
        self._send(conn, data)
        return True

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

    # ---- subscriptions --------------------------------------------------------------------------

    def _subscribe(self, conn: socket.socket, req: Request) -> None:
        since = req.args["since"]
        try:
            seq, pending = self._locked(self.service.events_since, 0 if since is None else since)
            if since is None:
                pending = []  # from now on
            self._send(conn, ok_response(req.id, {"seq": seq}))
        except TierctlError as e:
            self._send_error(conn, req.id, error_kind(e), e.message, e.where or req.op)
            return
        except Exception as e:
            log.exception("socket API: subscribe failed")
            self._send_error(conn, req.id, "internal", f"{type(e).__name__}: {e}", req.op)
            return
        poller = select.poll()
        poller.register(conn, select.POLLIN)
        while True:
            for event in pending:
                self._send(conn, event_line(event))
            if self._stopping.is_set():
                return
            if poller.poll(self.limits.poll_interval * 1000):
                try:
                    chunk = conn.recv(65536)  # the client has nothing to say on a stream: discard
                except OSError:
                    return
                if not chunk:
                    return
            try:
                seq, pending = self._locked(self.service.events_since, seq)
            except Exception as e:
                kind = error_kind(e)
                msg = e.message if isinstance(e, TierctlError) else f"{type(e).__name__}: {e}"
                self._send_error(conn, req.id, kind, f"subscription ended: {msg}", "subscribe")
                return
