"""Which pod (and container) a cgroup belongs to, read from the kubelet's cgroup naming alone.

Pure parsing of cgroup paths as ``/proc/PID/cgroup`` or ``CgroupFS.list`` give them; no I/O. Where
the names come from (read, not copied):

- the kubelet's QoS and pod cgroups: ``kubepods`` / ``burstable`` / ``besteffort`` / ``pod<UID>``
  (kubernetes ``pkg/kubelet/cm/qos_container_manager_linux.go``, ``pod_container_manager_linux.go``);
  Guaranteed pods sit directly below ``kubepods``;
- the systemd driver's spelling of those names (``pkg/kubelet/cm/cgroup_manager_linux.go``: each
  component becomes a slice named after all its ancestors, ``-`` inside a component is escaped as
  ``_``): ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID with _>.slice``;
  with ``--cgroup-root=/kubelet.slice`` every name gains that prefix (``kubelet-kubepods.slice`` ...);
- the container runtimes' container cgroups below the pod: with systemd, containerd's
  ``cri-containerd-<ID>.scope``, CRI-O's ``crio-<ID>.scope`` (and its monitor ``crio-conmon-<ID>.scope``),
  Docker's (cri-dockerd) ``docker-<ID>.scope``; with cgroupfs the bare ``<ID>`` (containerd, Docker)
  or ``crio-<ID>``.

The kubelet's tree may sit below a prefix (``--cgroup-root``, k3s or kind inside another
cgroup: ``/system.slice/k3s.service/kubepods/...``, ``/docker/<id>/kubepods/...``); the first
``kubepods`` (cgroupfs) or ``*kubepods.slice`` (systemd) component marks it. Anything below the
container's cgroup (a container that made sub-cgroups of its own) belongs to that container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tierctl.errors import InputError

Driver = Literal["systemd", "cgroupfs", "auto"]
DRIVERS: tuple[str, ...] = ("systemd", "cgroupfs", "auto")
QosClass = Literal["guaranteed", "burstable", "besteffort"]
QOS_CLASSES: tuple[str, ...] = ("guaranteed", "burstable", "besteffort")

# a pod UID: an RFC 4122 UUID, or for a static pod the 32 hex digits of the kubelet's hash of it
_UID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}"
)
_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]*")  # container ids are 64 hex digits; allow others
# systemd scope prefixes of the container runtimes, longest first (crio-conmon- before crio-)
_SCOPE_RUNTIMES: tuple[tuple[str, str], ...] = (
    ("cri-containerd-", "containerd"),
    ("crio-conmon-", "crio-conmon"),
    ("crio-", "crio"),
    ("docker-", "docker"),
)
_MAX_CACHE = 8192  # cgroup paths remembered by a KubeletCgroups (cleared whole when exceeded)


@dataclass(frozen=True)
class PodCgroup:
    """What a cgroup path says about its pod.

    ``container`` is the runtime's container id (None for the pod's own cgroup, and for CRI-O's
    monitor process ``crio-conmon-<ID>``, which is not a container: ``runtime`` says so)."""

    uid: str  # the pod's UID as the API server has it (systemd's ``_`` turned back into ``-``)
    qos: QosClass
    container: str | None
    runtime: str | None  # containerd, crio, crio-conmon, docker; None when the name does not say
    driver: Literal["systemd", "cgroupfs"]
    pod_path: str  # the pod's own cgroup ("/kubepods.slice/.../kubepods-burstable-pod<uid>.slice")


def driver(text: str, where: str = "kubelet cgroup driver") -> Driver:
    """A driver name (``systemd``, ``cgroupfs`` or ``auto``), else InputError naming ``where``."""
    value = text.strip().lower()
    if value not in DRIVERS:
        raise InputError(f"must be one of {', '.join(DRIVERS)}, got {text!r}", where)
    return value  # type: ignore[return-value]


def parse(path: str, drv: Driver = "auto") -> PodCgroup | None:
    """The pod of cgroup ``path``, or None when the path is not inside a kubelet pod cgroup.

    ``drv``: the kubelet's cgroup driver; ``auto`` takes whichever naming the path uses."""
    parts = [p for p in path.strip().split("/") if p]
    if drv in ("systemd", "auto"):
        found = _systemd(parts)
        if found is not None or drv == "systemd":
            return found
    return _cgroupfs(parts)


def _systemd(parts: list[str]) -> PodCgroup | None:
    top = (n for n, part in enumerate(parts) if part == "kubepods.slice" or part.endswith("-kubepods.slice"))
    i = next(top, None)
    if i is None:
        return None
    base = parts[i][: -len(".slice")]  # "kubepods", or "kubelet-kubepods" below a --cgroup-root
    rest = parts[i + 1 :]
    if not rest:
        return None
    qos: QosClass = "guaranteed"
    pod_prefix = f"{base}-pod"
    for cls in ("burstable", "besteffort"):
        if rest[0] == f"{base}-{cls}.slice":
            qos = cls  # type: ignore[assignment]
            pod_prefix = f"{base}-{cls}-pod"
            rest = rest[1:]
            break
    if not rest or not rest[0].startswith(pod_prefix) or not rest[0].endswith(".slice"):
        return None
    uid = rest[0][len(pod_prefix) : -len(".slice")].replace("_", "-")
    if not _UID_RE.fullmatch(uid):
        return None
    pod_path = "/" + "/".join(parts[: len(parts) - len(rest) + 1])
    container, runtime = _systemd_container(rest[1]) if len(rest) > 1 else (None, None)
    return PodCgroup(uid.lower(), qos, container, runtime, "systemd", pod_path)


def _systemd_container(name: str) -> tuple[str | None, str | None]:
    stem = name.removesuffix(".scope")
    for prefix, runtime in _SCOPE_RUNTIMES:
        if stem.startswith(prefix) and _ID_RE.fullmatch(stem[len(prefix) :]):
            return (None if runtime == "crio-conmon" else stem[len(prefix) :]), runtime
    return (stem, None) if _ID_RE.fullmatch(stem) else (None, None)


def _cgroupfs(parts: list[str]) -> PodCgroup | None:
    try:
        i = parts.index("kubepods")
    except ValueError:
        return None
    rest = parts[i + 1 :]
    qos: QosClass = "guaranteed"
    if rest and rest[0] in ("burstable", "besteffort"):
        qos = rest[0]  # type: ignore[assignment]
        rest = rest[1:]
    if not rest or not rest[0].startswith("pod"):
        return None
    uid = rest[0][3:]
    if not _UID_RE.fullmatch(uid):
        return None
    pod_path = "/" + "/".join(parts[: len(parts) - len(rest) + 1])
    container: str | None = None
    runtime: str | None = None
    if len(rest) > 1 and _ID_RE.fullmatch(rest[1]):
        container = rest[1]
        for prefix, rt in (("crio-conmon-", "crio-conmon"), ("crio-", "crio")):
            if container.startswith(prefix):
                container, runtime = (None if rt == "crio-conmon" else container[len(prefix) :]), rt
                break
    return PodCgroup(uid.lower(), qos, container, runtime, "cgroupfs", pod_path)


class KubeletCgroups:
    """``parse`` with the driver chosen once and the answer remembered per cgroup path (the daemon
    asks for every managed cgroup every cycle; the kubelet never renames a cgroup)."""

    def __init__(self, drv: Driver = "auto") -> None:
        self.driver: Driver = drv
        self._cache: dict[str, PodCgroup | None] = {}

    def pod_of(self, path: str) -> PodCgroup | None:
        try:
            return self._cache[path]
        except KeyError:
            pass
        if len(self._cache) >= _MAX_CACHE:  # pods come and go: forget them all now and then
            self._cache.clear()
        found = self._cache[path] = parse(path, self.driver)
        return found
