"""One API connection's thread: request lines read under deadlines, each one parsed, checked against
the peer's rights and dispatched to the Service (through the server's lock), or a subscription streamed.

Every connection has deadlines (``Limits``): a request line must be complete ``line_timeout`` seconds
after its first byte (slowloris), an idle connection is closed after ``idle_timeout``, a client must take
a response within ``write_timeout``. A line longer than ``max_line`` bytes gets a ``protocol`` error and
the connection is closed; other malformed lines get an error and the connection stays usable.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from typing import TYPE_CHECKING, Any

from tierctl.api.protocol import (
    Request,
    RequestError,
    error_kind,
    error_response,
    event_line,
    ok_response,
    parse_request,
)
from tierctl.errors import TierctlError

if TYPE_CHECKING:
    from tierctl.api.server import ApiServer

log = logging.getLogger("tierctl.api")


class Closed(Exception):
    """The connection is done (peer gone, write failed, or we closed it on purpose)."""


class Connection:
    """An admitted connection ``conn`` of ``server``, whose peer may mutate when ``allowed``."""

    def __init__(self, server: ApiServer, conn: socket.socket, allowed: bool) -> None:
        self.server = server
        self.conn = conn
        self.allowed = allowed

    def send(self, data: bytes) -> None:
        """Send ``data`` within ``write_timeout``; Closed when the peer does not take it."""
        self.conn.settimeout(self.server.limits.write_timeout)
        try:
            self.conn.sendall(data, socket.MSG_NOSIGNAL)
        except OSError:
            raise Closed from None

    def send_error(self, req_id: Any, kind: str, message: str, where: str | None) -> None:
        """Send an error response (counted in the server's ``errors_sent``)."""
        self.server.errors_sent += 1
        self.send(error_response(req_id, kind, message, where))

    def read_loop(self) -> None:
        """Read and answer request lines until the peer, a deadline, a subscription or the server ends."""
        conn, srv = self.conn, self.server
        lim = srv.limits
        buf = bytearray()
        scanned = 0  # bytes of buf known to hold no newline
        line_started = 0.0
        last_request = time.monotonic()
        while not srv._stopping.is_set():
            nl = buf.find(b"\n", scanned)
            if nl >= 0:
                line = bytes(buf[: nl + 1])
                del buf[: nl + 1]
                scanned = 0
                line_started = time.monotonic()  # leftover bytes start the next line now
                if len(line) > lim.max_line:
                    self.send_error(
                        None, "protocol", f"request line longer than {lim.max_line} bytes", "request"
                    )
                    raise Closed
                if not srv._mark(conn, busy=True):
                    raise Closed  # reaped as idle just before this line arrived
                try:
                    if not self.handle(line):
                        return
                finally:
                    srv._mark(conn, busy=False)
                last_request = time.monotonic()
                continue
            scanned = len(buf)
            if len(buf) > lim.max_line:
                self.send_error(None, "protocol", f"request line longer than {lim.max_line} bytes", "request")
                raise Closed
            now = time.monotonic()
            deadline = line_started + lim.line_timeout if buf else last_request + lim.idle_timeout
            if now >= deadline:
                if buf:
                    msg = f"request line not completed within {lim.line_timeout:g} s"
                    self.send_error(None, "protocol", msg, "request")
                raise Closed
            conn.settimeout(deadline - now)
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                raise Closed from None
            if not chunk:
                raise Closed  # peer closed (possibly mid-line: the partial line is dropped)
            if not buf:
                line_started = time.monotonic()
            buf += chunk
            srv._mark(conn)

    def handle(self, line: bytes) -> bool:
        """Answer one request line; False when the connection is done (a finished subscription)."""
        try:
            req = parse_request(line)
        except RequestError as e:
            self.send_error(e.req_id, e.kind, e.message, e.where)
            return True
        if req.spec.mutation and not self.allowed:
            self.send_error(
                req.id, "permission", f"{req.op} needs root or the tierctl mutators group", req.op
            )
            return True
        if req.spec.stream:
            self.server._mark(self.conn, stream=True)
            self.subscribe(req)
            return False
        try:
            result = self.server._call(req)
            data = ok_response(req.id, result)
        except TierctlError as e:
            self.send_error(req.id, error_kind(e), e.message, e.where or req.op)
            return True
        except Exception as e:
            log.exception("socket API: %s failed", req.op)
            self.send_error(req.id, "internal", f"{type(e).__name__}: {e}", req.op)
            return True
        self.server.requests_served += 1
        self.send(data)
        return True

    def subscribe(self, req: Request) -> None:
        """Answer ``req`` with the current event sequence number, then stream events until the peer
        leaves, the server stops or the Service fails."""
        conn, srv = self.conn, self.server
        since = req.args["since"]
        try:
            seq, pending = srv._locked(srv.service.events_since, 0 if since is None else since)
            if since is None:
                pending = []  # from now on
            self.send(ok_response(req.id, {"seq": seq}))
        except TierctlError as e:
            self.send_error(req.id, error_kind(e), e.message, e.where or req.op)
            return
        except Exception as e:
            log.exception("socket API: subscribe failed")
            self.send_error(req.id, "internal", f"{type(e).__name__}: {e}", req.op)
            return
        poller = select.poll()
        poller.register(conn, select.POLLIN)
        while True:
            for event in pending:
                self.send(event_line(event))
            if srv._stopping.is_set():
                return
            if poller.poll(srv.limits.poll_interval * 1000):
                try:
                    chunk = conn.recv(65536)  # the client has nothing to say on a stream: discard
                except OSError:
                    return
                if not chunk:
                    return
            try:
                seq, pending = srv._locked(srv.service.events_since, seq)
            except Exception as e:
                kind = error_kind(e)
                msg = e.message if isinstance(e, TierctlError) else f"{type(e).__name__}: {e}"
                self.send_error(req.id, kind, f"subscription ended: {msg}", "subscribe")
                return
