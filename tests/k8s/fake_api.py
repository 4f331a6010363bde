"""A fake Kubernetes API server on loopback, enough for the official client's pod list and watch:
``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>`` answers a PodList (in pages of ``page``
items, with ``continue`` tokens), ``&watch=true`` a stream of JSON lines (chunked) fed from
``events``; a bearer token is required. ``kubeconfig(path)`` writes a kubeconfig pointing at it, so
the real client code path (config loading, auth header, query, streaming) runs in the tests."""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake-token"


def pod(uid: str, ns: str, name: str, *, node: str = "node-1", qos: str = "Burstable", **labels: str) -> dict:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"uid": uid, "namespace": ns, "name": name, "labels": labels, "resourceVersion": "1"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
        "status": {"qosClass": qos, "phase": "Running"},
    }


class FakeApi:
    def __init__(self, node: str = "node-1", port: int = 0, page: int = 100) -> None:
        self.node = node
        self.page = page
        self.pods: dict[str, dict] = {}  # uid -> pod
        self.rv = 100
        self.events: queue.Queue[dict] = queue.Queue()
        self.lists = 0  # list requests without a continue token
        self.pages = 0  # every list request
        self.watches = 0
        self.selectors: list[str] = []
        self.gone = False  # the next watch answers 410 Gone
        self.forbidden = False  # lists answer 403 (RBAC)
        self.end_watches = threading.Event()
        self.closing = False
        self._port = port
        self.httpd: ThreadingHTTPServer | None = None

    # ---- control ----------------------------------------------------------------------------------
    def start(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.handle(self)

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self.httpd.daemon_threads = True
        self._port = self.httpd.server_address[1]
        self.closing = False
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.closing = True
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "tierctl", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tierctl"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    def add(self, obj: dict, *, event: str | None = "ADDED") -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if event == "DELETED":
            self.pods.pop(obj["metadata"]["uid"], None)
        else:
            self.pods[obj["metadata"]["uid"]] = obj
        if event is not None:
            self.events.put({"type": event, "object": obj})

    # ---- serving ----------------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._json(h, 401, _status(401, "Unauthorized"))
        if url.path != "/api/v1/pods":
            return self._json(h, 404, _status(404, "NotFound"))
        self.selectors.append(q.get("fieldSelector", ""))
        if q.get("fieldSelector") != f"spec.nodeName={self.node}":
            return self._json(h, 400, _status(400, "BadRequest"))
        if q.get("watch") == "true":
            return self._watch(h, float(q.get("timeoutSeconds", "30")))
        if self.forbidden:
            return self._json(h, 403, _status(403, "Forbidden"))
        self.pages += 1
        self.lists += "continue" not in q
        items = sorted(self.pods.values(), key=lambda p: p["metadata"]["uid"])
        start = int(q.get("continue", "0") or 0)
        chunk = items[start : start + self.page]
        meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
        if start + self.page < len(items):
            meta["continue"] = str(start + self.page)
        self._json(h, 200, {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": chunk})

    def _json(self, h: BaseHTTPRequestHandler, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _watch(self, h: BaseHTTPRequestHandler, timeout: float) -> None:
        self.watches += 1
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(obj: dict) -> None:
            line = json.dumps(obj).encode() + b"\n"
            h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            h.wfile.flush()

        try:
            if self.gone:
                self.gone = False
                chunk({"type": "ERROR", "object": _status(410, "Expired", "too old resource version")})
            else:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and not self.closing and not self.end_watches.is_set():
                    try:
                        chunk(self.events.get(timeout=0.05))
                    except queue.Empty:
                        continue
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            pass
        h.close_connection = True


def _status(code: int, reason: str, message: str = "") -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message or reason,
        "reason": reason,
        "code": code,
    }
