"""The HTTP side of the metrics endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on one listener."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from tierctl.errors import InputError, UnavailableError
from tierctl.service.metrics_health import Health
from tierctl.service.metrics_snapshot import MetricsSnapshot
from tierctl.service.metrics_table import SnapshotCollector

log = logging.getLogger("tierctl.service.metrics")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464
MAX_CLIENTS = 32  # concurrent scrapes; a Prometheus server makes one at a time
REQUEST_TIMEOUT_S = 5.0
HEALTH_PATHS = ("/healthz", "/readyz")


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request, at most ``MAX_CLIENTS`` at once: a connection beyond that is closed at
    once, so a flood of idle connections cannot grow the daemon's threads without bound."""

    daemon_threads = True  # a stuck client never blocks the daemon's exit
    block_on_close = False
    request_queue_size = 128  # the listen backlog (socketserver's default is 5)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self.refused = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away is not news (socketserver would print a traceback)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, TimeoutError | ConnectionError):
            return
        log.warning("metrics: a request from %s failed: %s", client_address, exc)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S  # per read: a client that sends nothing is dropped

    def setup(self) -> None:
        super().setup()
        # and per request: one that trickles a byte at a time is dropped too, its slot freed
        self._deadline = threading.Timer(2 * REQUEST_TIMEOUT_S, self._expire)
        self._deadline.daemon = True
        self._deadline.start()

    def _expire(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass


def parse_listen(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT`` → (host, port); host defaults to 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or not host:
        raise InputError(f"expected PORT, HOST:PORT or [IPV6]:PORT, got {text!r}", where="metrics listen")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"bad port {port!r}", where="metrics listen")
    return host, int(port)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _routes(metrics: WsgiApp, health: Health, snapshot_fn: Callable[[], MetricsSnapshot]) -> WsgiApp:
    """``/healthz`` and ``/readyz`` (text/plain, 200 or 503), everything else to the metrics app."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in HEALTH_PATHS:
            return metrics(environ, start_response)
        verdict = health.judge(path, snapshot_fn)
        body = verdict.text.encode()
        reason = "OK" if verdict.ok else "Service Unavailable"
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
        start_response(f"{verdict.status} {reason}", headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    return app


class MetricsServer:
    """``/metrics`` over HTTP from a private registry, and ``/healthz`` / ``/readyz`` judged from the
    same snapshots (``tierctl.service.metrics_health``). Nothing listens until ``start()``.

    Serves the Prometheus text format, or OpenMetrics (with ``# UNIT``) when the scraper asks for it.
    ``port=0`` picks a free port (``address`` tells which).
    """

    def __init__(
        self,
        snapshot_fn: Callable[[], MetricsSnapshot],
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        health: Health | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.snapshot_fn = snapshot_fn
        self.health = health or Health()
        self.registry = CollectorRegistry(auto_describe=True)
        self.collector = SnapshotCollector(snapshot_fn)
        self.collector.on_snapshot = self.health.observe  # every scrape is a look at the loop too
        self.registry.register(self.collector)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self._httpd is None else tuple(self._httpd.server_address[:2])  # type: ignore[return-value]

    def start(self) -> tuple[str, int]:
        if self._httpd is not None:
            raise RuntimeError("metrics server already started")
        cls = _Server6 if ":" in self.host else _Server
        app = _routes(make_wsgi_app(self.registry), self.health, self.snapshot_fn)
        try:
            httpd = make_server(self.host, self.port, app, server_class=cls, handler_class=_QuietHandler)
        except OSError as e:
            raise UnavailableError(
                f"cannot listen on {self.host}:{self.port}: {e.strerror or e}", where="metrics"
            ) from e
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.1,), name="tierctl-metrics", daemon=True
        )
        self._thread.start()
        log.info("metrics: serving on http://%s:%d/metrics", *httpd.server_address[:2])
        return self.address  # type: ignore[return-value]

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
