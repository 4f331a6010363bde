"""Keep the pods of this node in a ``PodCache``: list, then watch, in a background thread, read-only.

Through the official ``kubernetes`` client (the ``k8s`` extra), imported only here and only when the
watcher connects. ``connect`` finds credentials: ``--kubeconfig``, else ``$KUBECONFIG``, else the
in-cluster service account (``$KUBERNETES_SERVICE_HOST`` and the mounted token). The thread lists the
node's pods (``fieldSelector=spec.nodeName=<node>``, in pages), then watches from the list's
``resourceVersion``; a watch the server ends is resumed from the last version seen, an expired one
(410 Gone) and any error lead to a fresh list, errors after a backoff (doubling up to ``backoff_max``).
While the API server is unreachable the cache keeps what it last knew; nothing escapes the thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierctl.errors import UnavailableError
from tierctl.k8s.cache import PodCache

log = logging.getLogger("tierctl.k8s")

WHERE = "pod lookup"
HTTP_GONE = 410
LIST_PAGE = 500


@dataclass(frozen=True)
class WatchConfig:
    node: str  # spec.nodeName of the pods to follow
    kubeconfig: Path | None = None  # else $KUBECONFIG, else the in-cluster service account
    watch_timeout_s: int = 240  # the server ends each watch after this long; it is then resumed
    request_timeout_s: float = 10.0  # connecting, and reading a list
    backoff_s: float = 1.0  # the first wait after an error
    backoff_max_s: float = 60.0
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def connect(cfg: WatchConfig) -> tuple[Any, str]:
    """(a ``kubernetes.client.CoreV1Api``, where its credentials come from), or UnavailableError
    saying why there is no API access (no client installed, no credentials, a broken kubeconfig)."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise UnavailableError(
            "the kubernetes client is not installed (pip install 'tierctl[k8s]')", WHERE
        ) from None
    kubeconfig = cfg.kubeconfig or cfg.env.get("KUBECONFIG") or None
    try:
        if kubeconfig is not None:
            first = str(kubeconfig).split(os.pathsep)[0]
            api_client = config.new_client_from_config(config_file=first)
            source = f"kubeconfig {first}"
        elif cfg.env.get("KUBERNETES_SERVICE_HOST"):
            conf = client.Configuration()
            config.load_incluster_config(client_configuration=conf)
            api_client = client.ApiClient(conf)
            source = "the in-cluster service account"
        else:
            raise UnavailableError(
                "no kubeconfig (--kubeconfig, $KUBECONFIG) and not running in a cluster "
                "($KUBERNETES_SERVICE_HOST unset)",
                WHERE,
            )
    except UnavailableError:
        raise
    except Exception as e:  # ConfigException, yaml errors, an unreadable file, a bad certificate...
        why = str(e).replace("\n", " ")[:300]
        raise UnavailableError(f"cannot load the API credentials: {type(e).__name__}: {why}", WHERE) from None
    return client.CoreV1Api(api_client), source


class PodWatcher:
    """The list-then-watch loop over this node's pods, in a daemon thread, feeding ``cache``."""

    def __init__(self, cfg: WatchConfig, cache: PodCache, api: Any = None) -> None:
        self.cfg = cfg
        self.cache = cache
        self.api = api  # a CoreV1Api; ``connect`` makes one when None
        self.state = "stopped"  # stopped, listing, watching, retrying
        self.reason = ""  # the last error, while retrying
        self.lists = 0  # successful lists, the first included
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None
        self._lock = threading.Lock()

    @property
    def selector(self) -> str:
        return f"spec.nodeName={self.cfg.node}"

    def start(self) -> None:
        if self.api is None:
            self.api, _ = connect(self.cfg)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tierctl-pods", daemon=True)
        self._thread.start()

    def list_once(self) -> int:
        """One list, no thread (``tierctl cgroups``): how many pods; UnavailableError when the API
        cannot be read."""
        if self.api is None:
            self.api, _ = connect(self.cfg)
        try:
            self._list()
        except Exception as e:
            raise UnavailableError(f"the API server cannot be read: {_describe(e)}", WHERE) from None
        return len(self.cache)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            w = self._watch
        if w is not None:
            w.stop()  # shuts the socket down: a blocked read returns
        if self._thread is not None:
            self._thread.join(timeout)
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        return {
            "node": self.cfg.node,
            "state": self.state,
            "reason": self.reason,
            "pods": len(self.cache),
            "lists": self.lists,
            "errors": self.errors,
        }

    # ---- the thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.cfg.backoff_s
        while not self._stop.is_set():
            try:
                rv = self._list()
                delay = self.cfg.backoff_s
                if self.reason:
                    log.warning(
                        "pods: the API server answers again; %d pods on node %s",
                        len(self.cache),
                        self.cfg.node,
                    )
                self.reason = ""
                while not self._stop.is_set():
                    began = time.monotonic()
                    rv = self._watch_once(rv)
                    if time.monotonic() - began < 1.0:  # a server that ends watches at once: no busy loop
                        self._stop.wait(self.cfg.backoff_s)
            except _Expired:
                continue  # list again at once
            except Exception as e:  # never let the thread die: the API is optional
                if self._stop.is_set():
                    break
                self.errors += 1
                why = _describe(e)
                if not self.reason:
                    log.warning(
                        "pods: the API server cannot be read (%s); pods are known from cgroup paths only "
                        "(and what was listed before) until it can, retrying",
                        why,
                    )
                self.reason = why
                self.state = "retrying"
                self._stop.wait(delay)
                delay = min(delay * 2, self.cfg.backoff_max_s)

    def _list(self) -> str:
        self.state = "listing"
        items: list[Any] = []
        cont: str | None = None
        while True:
            resp = self.api.list_pod_for_all_namespaces(
                field_selector=self.selector,
                limit=LIST_PAGE,
                _continue=cont,
                _preload_content=False,
                _request_timeout=self.cfg.request_timeout_s,
            )
            try:
                body = json.loads(resp.data)
            finally:
                resp.release_conn()
            items += body.get("items") or []
            meta = body.get("metadata") or {}
            cont = meta.get("continue") or None
            if cont is None:
                break
        self.cache.replace(items)
        self.lists += 1
        return str(meta.get("resourceVersion") or "")

    def _watch_once(self, rv: str) -> str:
        """One watch from ``rv`` until the server ends it; the last resourceVersion seen."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        w = watch.Watch()
        with self._lock:
            self._watch = w
        if self._stop.is_set():
            return rv
        self.state = "watching"
        try:
            for ev in w.stream(
                self.api.list_pod_for_all_namespaces,
                field_selector=self.selector,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=self.cfg.watch_timeout_s,
                _request_timeout=(self.cfg.request_timeout_s, self.cfg.watch_timeout_s + 30),
            ):
                obj = ev.get("raw_object")
                md = obj.get("metadata") if isinstance(obj, Mapping) else None
                if isinstance(md, Mapping) and md.get("resourceVersion"):
                    rv = str(md["resourceVersion"])
                kind = ev.get("type")
                if kind in ("ADDED", "MODIFIED"):
                    self.cache.put(obj)
                elif kind == "DELETED":
                    self.cache.remove(obj)
        except ApiException as e:
            if e.status == HTTP_GONE:
                log.info("pods: watch expired (410 Gone); listing again")
                raise _Expired() from None
            raise
        finally:
            with self._lock:
                self._watch = None
        return rv


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def _describe(e: BaseException) -> str:
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", None)
    if status:  # an ApiException: 401, 403 (RBAC), 5xx
        return f"HTTP {status} {reason or ''}".strip()
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}"[:300]
