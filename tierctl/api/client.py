"""Client of the socket API (used by the CLI and the TUI).

``ApiClient(path).call("pin", path="/app", tier="fast")`` returns the result or raises the TierctlError
subclass matching the error kind: InputError, PermissionDeniedError, UnavailableError; kinds ``protocol``
and ``internal`` raise RemoteError (a TierctlError with ``.kind``). A missing socket or a refused
connection raises DaemonNotRunningError; any other failure to reach the daemon (backlog full, no answer
in time, connection broken) raises DaemonUnreachableError, its base (exit code 3).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from tierctl.api.protocol import RemoteError, encode_request, parse_response, raise_for_error
from tierctl.errors import DaemonUnreachableError, PermissionDeniedError, UnavailableError

DEFAULT_SOCKET = Path("/run/tierctl/tierctl.sock")
SOCKET_ENV = "TIERCTL_SOCKET"
MAX_RESPONSE = 256 * 1024 * 1024


class DaemonNotRunningError(DaemonUnreachableError):
    """Nothing listens on the socket: the daemon is not running (or listens elsewhere)."""


def default_socket() -> Path:
    """``$TIERCTL_SOCKET`` if set, else /run/tierctl/tierctl.sock."""
    env = os.environ.get(SOCKET_ENV)
    return Path(env) if env else DEFAULT_SOCKET


def _connect(path: Path, timeout: float | None) -> socket.socket:
    """Connect, retrying EAGAIN (the daemon's listen backlog is full: a burst of clients) with a short
    backoff until ``timeout`` (10 s when None)."""
    deadline = time.monotonic() + (timeout if timeout is not None else 10.0)
    delay = 0.005
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # a blocking connect would wait on a full backlog for ever: connect with a timeout always
        sock.settimeout(timeout if timeout is not None else max(0.0, deadline - time.monotonic()))
        try:
            sock.connect(str(path))
            sock.settimeout(timeout)
            return sock
        except BlockingIOError:
            sock.close()
            left = deadline - time.monotonic()
            if left <= 0:
                raise DaemonUnreachableError(
                    "cannot connect to the daemon: it does not accept connections fast enough (backlog full)",
                    str(path),
                ) from None
            time.sleep(min(delay, left) * (0.5 + random.random()))
            delay = min(delay * 2, 0.2)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonNotRunningError(f"daemon not running (no socket at {path})") from None
        except PermissionError:
            sock.close()
            raise PermissionDeniedError(
                "cannot connect to the daemon: permission denied (are you in the tierctl group?)", str(path)
            ) from None
        except OSError as e:
            sock.close()
            raise DaemonUnreachableError(
                f"cannot connect to the daemon: {e.strerror or e}", str(path)
            ) from None


class _LineReader:
    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path
        self.buf = bytearray()

    def readline(self) -> bytes:
        start = 0
        while True:
            nl = self.buf.find(b"\n", start)
            if nl >= 0:
                line = bytes(self.buf[: nl + 1])
                del self.buf[: nl + 1]
                return line
            start = len(self.buf)
            if len(self.buf) > MAX_RESPONSE:
                raise RemoteError("protocol", f"response longer than {MAX_RESPONSE} bytes", str(self.path))
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                raise DaemonUnreachableError("the daemon did not answer in time", str(self.path)) from None
            except OSError as e:
                raise DaemonUnreachableError(
                    f"connection to the daemon failed: {e.strerror or e}", str(self.path)
                ) from None
            if not chunk:
                raise DaemonUnreachableError("the daemon closed the connection", str(self.path))
            self.buf += chunk


class ApiClient:
    """A connection to the daemon, opened on first use and kept until ``close()`` (or ``with``)."""

    def __init__(self, socket_path: Path | str | None = None, *, timeout: float | None = 30.0) -> None:
        self.socket_path = Path(socket_path) if socket_path is not None else default_socket()
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader: _LineReader | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._reader = None

    def call(self, op: str, **args: Any) -> Any:
        """Send one request and return its result (or raise the matching TierctlError)."""
        if self._sock is None:
            self._sock = _connect(self.socket_path, self.timeout)
            self._reader = _LineReader(self._sock, self.socket_path)
        assert self._reader is not None
        req_id = next(self._ids)
        try:
            try:
                self._sock.sendall(encode_request(op, args, req_id))
            except OSError as e:
                # the server may have answered and closed first (e.g. "too many connections"): read that
                failed = DaemonUnreachableError(
                    f"connection to the daemon failed: {e.strerror or e}", str(self.socket_path)
                )
                try:
                    line = self._reader.readline()
                except UnavailableError:
                    raise failed from None
                resp = parse_response(line)
            else:
                resp = parse_response(self._reader.readline())
        except (UnavailableError, RemoteError):
            self.close()  # the stream is in an unknown state: start afresh next time
            raise
        if resp.get("id") not in (req_id, None):
            self.close()
            raise RemoteError("protocol", f"response id {resp.get('id')!r} does not match request {req_id}")
        if resp.get("ok") is True:
            return resp.get("result")
        error = resp.get("error")
        if resp.get("id") is None and isinstance(error, dict) and error.get("kind") == "protocol":
            self.close()  # the server may have closed the connection after this one
        raise_for_error(error)
        return None  # pragma: no cover

    def subscribe(self, since: int | None = None, *, timeout: float | None = None) -> Subscription:
        """Open a separate connection streaming events (``since`` = a sequence number, default: from now)."""
        args = {} if since is None else {"since": since}
        sock = _connect(self.socket_path, self.timeout)
        try:
            sock.sendall(encode_request("subscribe", args, "subscribe"))
            reader = _LineReader(sock, self.socket_path)
            resp = parse_response(reader.readline())
            if resp.get("ok") is not True:
                raise_for_error(resp.get("error"))
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        return Subscription(sock, reader, int((resp.get("result") or {}).get("seq", 0)))


class Subscription:
    """Iterator of events from a ``subscribe`` stream; close it (or use ``with``) when done."""

    def __init__(self, sock: socket.socket, reader: _LineReader, seq: int) -> None:
        self._sock: socket.socket | None = sock
        self._reader = reader
        self.seq = seq
        """the newest sequence number when the subscription started"""

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._sock is None:
            raise StopIteration
        try:
            msg = parse_response(self._reader.readline())
        except UnavailableError as e:
            if "closed the connection" in e.message:
                self.close()
                raise StopIteration from None
            raise
        if "event" in msg:
            return msg["event"]
        self.close()
        raise_for_error(msg.get("error"))
        raise StopIteration  # pragma: no cover

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        self._sock = None
