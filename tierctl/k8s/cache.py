"""What the API server says about the pods of this node, by UID, shared between the watcher's thread
(writes) and the daemon's loop (reads).

A static pod runs under the UID the kubelet made for it (its cgroup's name) while the API server shows
its mirror pod under another UID, with the kubelet's in the ``kubernetes.io/config.mirror``
annotation; the cache answers for both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_QOS = {"guaranteed": "guaranteed", "burstable": "burstable", "besteffort": "besteffort"}


@dataclass(frozen=True)
class PodMeta:
    """One pod as the API server has it (only what matching and the front ends need)."""

    uid: str
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...]  # sorted (key, value)
    qos: str | None  # status.qosClass in lowercase (guaranteed, burstable, besteffort); None before set
    mirror_of: str | None = None  # a mirror pod: the static pod's UID (its cgroup's name)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def pod_meta(obj: Any) -> PodMeta | None:
    """A pod object (a JSON dict as the API server sends it) -> PodMeta; None when it has no UID,
    namespace or name (not a pod)."""
    if not isinstance(obj, Mapping):
        return None
    md = obj.get("metadata")
    if not isinstance(md, Mapping):
        return None
    uid, ns, name = md.get("uid"), md.get("namespace"), md.get("name")
    if not (isinstance(uid, str) and uid and isinstance(ns, str) and isinstance(name, str)):
        return None
    status = obj.get("status")
    qos_class = status.get("qosClass") if isinstance(status, Mapping) else None
    qos = _QOS.get(qos_class.lower()) if isinstance(qos_class, str) else None
    mirror = _str_map(md.get("annotations")).get(MIRROR_ANNOTATION) or None
    labels = tuple(sorted(_str_map(md.get("labels")).items()))
    return PodMeta(uid.lower(), ns, name, labels, qos, mirror.lower() if mirror else None)


class PodCache:
    """Pods by UID (and mirror pods by their static pod's UID too); every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uid: dict[str, PodMeta] = {}

    def replace(self, items: Iterable[Any]) -> int:
        """All pods at once (a fresh list); returns how many there are."""
        fresh: dict[str, PodMeta] = {}
        for obj in items:
            if (meta := pod_meta(obj)) is not None:
                fresh[meta.uid] = meta
                if meta.mirror_of:
                    fresh[meta.mirror_of] = meta
        with self._lock:
            self._by_uid = fresh
        return len({m.uid for m in fresh.values()})

    def put(self, obj: Any) -> None:
        if (meta := pod_meta(obj)) is None:
            return
        with self._lock:
            self._by_uid[meta.uid] = meta
            if meta.mirror_of:
                self._by_uid[meta.mirror_of] = meta

    def remove(self, obj: Any) -> None:
        if (meta := pod_meta(obj)) is None:
            return
        with self._lock:
            self._by_uid.pop(meta.uid, None)
            if meta.mirror_of and self._by_uid.get(meta.mirror_of, meta).uid == meta.uid:
                self._by_uid.pop(meta.mirror_of, None)

    def get(self, uid: str) -> PodMeta | None:
        with self._lock:
            return self._by_uid.get(uid)

    def __len__(self) -> int:
        with self._lock:
            return len({m.uid for m in self._by_uid.values()})
