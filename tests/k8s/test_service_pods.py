"""Pods through the Service on the simulated machine, its "cache" cgroup placed where the kubelet puts a
pod's container: the profile that matches on pods applies, and the cgroup rows carry "pod" (the
contract in service/contract.py); with the fake API server the namespace and labels are matched too."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from tests.k8s.fake_api import FakeApi, pod
from tierctl.k8s import PodCache, PodResolver, PodWatcher, WatchConfig
from tierctl.service.service import Service
from tierctl.sim import live
from tierctl.sim.live import sim_service

UID = "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c"
CID = "c" * 64
POD_CGROUP = (
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice"
    f"/cri-containerd-{CID}.scope"
)


@pytest.fixture()
def profiles(tmp_path: Path) -> Path:
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "default.toml").write_text("priority = -100\n")
    (d / "burstable.toml").write_text('priority = 10\n[[match]]\nqos = "burstable"\n')
    (d / "shop.toml").write_text(
        textwrap.dedent(
            """
            priority = 20
            [[match]]
            namespace = "shop"
            pod_label = { app = "redis" }
            """
        )
    )
    return d


@pytest.fixture()
def svc(tmp_path: Path, profiles: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    paths = dict(live.PATHS)
    paths["cache"] = (POD_CGROUP, "redis-server")
    monkeypatch.setattr(live, "PATHS", MappingProxyType(paths))
    s = sim_service("multi-cgroup", state_dir=tmp_path / "state", profiles_dir=profiles, epochs=10)
    yield s
    s.stop()


def _cycles(s: Service, n: int = 3) -> None:
    for _ in range(n):
        s.cycle()


def test_pod_cgroups_match_and_carry_their_pod(svc: Service) -> None:
    svc.start()
    _cycles(svc)
    assert svc.matches[POD_CGROUP] == "burstable"  # from the path alone: the QoS class
    assert svc.matches["/system.slice/postgresql@16-main.service"] == "default"  # not a pod: no qos rule
    rows = {r["path"]: r for r in svc.cgroups()}
    assert rows[POD_CGROUP]["pod"] == {
        "namespace": None,
        "name": None,
        "uid": UID,
        "qos": "burstable",
        "container": CID,
    }
    assert all("pod" not in r for p, r in rows.items() if p != POD_CGROUP)
    assert svc.cgroup_detail(POD_CGROUP)["pod"]["uid"] == UID


def test_with_the_api_server_namespace_and_labels_match(svc: Service, tmp_path: Path) -> None:
    api = FakeApi().start()
    try:
        api.add(pod(UID, "shop", "cart-0", app="redis"), event=None)
        cfg = WatchConfig(node="node-1", kubeconfig=api.kubeconfig(tmp_path / "kc"), env={})
        svc.pods = PodResolver("auto", PodWatcher(cfg, PodCache()))
        svc.start()
        assert [e["message"] for e in svc.events if e["kind"] == "pods"] == [
            "pods of node node-1 followed through the API server"
        ]
        for _ in range(200):
            _cycles(svc, 1)
            if svc.matches.get(POD_CGROUP) == "shop":
                break
        assert svc.matches[POD_CGROUP] == "shop"
        row = next(r for r in svc.cgroups() if r["path"] == POD_CGROUP)
        assert (row["pod"]["namespace"], row["pod"]["name"]) == ("shop", "cart-0")
    finally:
        api.end_watches.set()
        svc.pods.stop()
        api.stop()


def test_a_bad_driver_name_refuses_to_start(tmp_path: Path, profiles: Path) -> None:
    from tierctl.errors import InputError
    from tierctl.service.service import DaemonConfig

    cfg = DaemonConfig(profiles_dir=profiles, state_dir=tmp_path / "s", kubelet_cgroup_driver="cgroupv2")
    with pytest.raises(InputError, match="kubelet cgroup driver: must be one of systemd, cgroupfs, auto"):
        Service(cfg, platform=None)
