"""The pod of a cgroup: UID, QoS class and container from the kubelet's cgroup names, namespace, name
and labels from the API server when the watcher has them (docs/pods.md).

``PodResolver.pod(path)`` is what the daemon asks for each managed cgroup each cycle: the path is
parsed once (``KubeletCgroups`` remembers it), the API's part is a dict lookup by UID.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tierctl.errors import TierctlError
from tierctl.k8s.cache import PodCache
from tierctl.k8s.watcher import PodWatcher, WatchConfig
from tierctl.kernel.kubelet import Driver, KubeletCgroups
from tierctl.profiles.match import Pod

log = logging.getLogger("tierctl.k8s")


class PodResolver:
    def __init__(self, driver: Driver = "auto", watcher: PodWatcher | None = None) -> None:
        self.kubelet = KubeletCgroups(driver)
        self.watcher = watcher
        self.cache: PodCache | None = watcher.cache if watcher is not None else None
        self.api_reason = "" if watcher is not None else "no node name"  # why there is no API lookup

    @classmethod
    def from_config(
        cls,
        driver: Driver = "auto",
        node: str | None = None,
        kubeconfig: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> PodResolver:
        """Path parsing always; the API server too when this node's name is known."""
        if not node:
            return cls(driver)
        cfg = WatchConfig(node=node, kubeconfig=kubeconfig, **({} if env is None else {"env": dict(env)}))
        return cls(driver, PodWatcher(cfg, PodCache()))

    def start(self) -> str | None:
        """Start following the API server; the one line to log about it, or None when there is nothing
        to say (not a Kubernetes node: no node name given). Never raises."""
        if self.watcher is None:
            return None
        try:
            self.watcher.start()
        except TierctlError as e:
            self.api_reason = e.message
            self.watcher = None
            msg = f"pods known from cgroup paths only (no namespace, name or labels): {e.message}"
            log.warning("pods: %s", msg)
            return msg
        return f"pods of node {self.watcher.cfg.node} followed through the API server"

    def list_once(self) -> str | None:
        """Read this node's pods once, without a thread; what went wrong, or None."""
        if self.watcher is None:
            return None
        try:
            self.watcher.list_once()
        except TierctlError as e:
            return f"pods known from cgroup paths only: {e.message}"
        return None

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def pod(self, path: str) -> Pod | None:
        """The pod cgroup ``path`` belongs to, or None when it is not a pod's."""
        pc = self.kubelet.pod_of(path)
        if pc is None:
            return None
        meta = self.cache.get(pc.uid) if self.cache is not None else None
        if meta is None:
            return Pod(pc.uid, pc.qos, pc.container)
        return Pod(pc.uid, pc.qos, pc.container, meta.namespace, meta.name, meta.labels)

    def row(self, path: str) -> dict[str, Any] | None:
        """The ``"pod"`` of a ``Service.cgroups()`` row (service/contract.py), or None."""
        p = self.pod(path)
        return None if p is None else p.to_json()

    def status(self) -> dict[str, Any]:
        if self.watcher is None:
            return {"api": False, "reason": self.api_reason}
        return {"api": True, **self.watcher.status()}
