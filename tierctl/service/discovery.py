"""Which cgroups the daemon manages, the processes in them, and the profile each one matches.

Every cycle the loop asks :meth:`Discovery.targets` for ``(pid, cgroup path)`` pairs: the cgroups
below the root that hold processes and lie within the configured scope (path prefixes; none = all),
each matched to its profile (by path, and by pod where the kubelet's naming says which pod it is).
A cgroup that vanishes between the listing and the read of its processes is left out, not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tierctl.errors import TierctlError
from tierctl.profiles import ProfileSet, Workload
from tierctl.profiles.match import Pod
from tierctl.service.platform import Cgroups


class Discovery:
    def __init__(
        self,
        cgroups: Cgroups,
        scope: Sequence[str],
        pod_of: Callable[[str], Pod | None],
        profiles: Callable[[], ProfileSet],
    ) -> None:
        self.cgroups = cgroups
        self.scope = tuple(scope)
        self.pod_of = pod_of  # a cgroup path's pod, where the kubelet's naming and the API say
        self.profiles = profiles  # the running set (a reload swaps it)
        self.matches: dict[str, str] = {}  # cgroup path -> profile name ("-": none), of the last call

    def in_scope(self, path: str) -> bool:
        return not self.scope or any(path == s or path.startswith(s.rstrip("/") + "/") for s in self.scope)

    def targets(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        matches: dict[str, str] = {}
        profiles = self.profiles()
        for path in self.cgroups.list():
            norm = "/" + path.strip("/")
            if not self.in_scope(norm):
                continue
            try:
                pids = self.cgroups.pids(path)
            except TierctlError:
                continue  # vanished between list and read
            if not pids:
                continue
            m = profiles.match(Workload(cgroup=norm, pod=self.pod_of(norm)))
            matches[norm] = m.profile.name if m else "-"
            out += [(pid, norm) for pid in pids]
        self.matches = matches
        return out
