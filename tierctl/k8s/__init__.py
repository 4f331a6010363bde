"""Kubernetes pods as workloads: which pod a cgroup belongs to, and its namespace, name and labels.

``PodResolver`` (resolver.py) joins what the kubelet's cgroup names say (``tierctl.kernel.kubelet``:
pod UID, QoS class, container id; always available) with what the API server says
(``PodWatcher`` in watcher.py, read-only list and watch of this node's pods through the official
``kubernetes`` client, an optional dependency imported only when used). docs/pods.md.
"""

from __future__ import annotations

from tierctl.k8s.cache import PodCache, PodMeta, pod_meta
from tierctl.k8s.resolver import PodResolver
from tierctl.k8s.watcher import PodWatcher, WatchConfig, connect


def pod_text(pod: object) -> str:
    """How front ends show a cgroup row's ``"pod"``: ``namespace/name`` when the API server named it,
    else ``pod:`` and the first 8 characters of its UID; ``""`` for no pod."""
    if not isinstance(pod, dict):
        return ""
    ns, name, uid = pod.get("namespace"), pod.get("name"), pod.get("uid")
    if isinstance(ns, str) and isinstance(name, str):
        return f"{ns}/{name}"
    return f"pod:{uid[:8]}" if isinstance(uid, str) and uid else "pod:?"


__all__ = [
    "PodCache",
    "PodMeta",
    "PodResolver",
    "PodWatcher",
    "WatchConfig",
    "connect",
    "pod_meta",
    "pod_text",
]
