"""Pods from the kubelet's cgroup naming: both drivers, the three runtimes' container names, QoS classes,
a --cgroup-root prefix and a nested (k3s) tree, on the hand-written trees in tests/fixtures/kubelet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierctl.errors import InputError
from tierctl.kernel import kubelet
from tierctl.kernel.kubelet import KubeletCgroups, PodCgroup, parse

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kubelet"
WEB = "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c"  # burstable, three containers (pause, nginx, sidecar)
DB = "1b2c3d4e-0f1a-4b2c-9d3e-4f5a6b7c8d9e"  # guaranteed
BATCH = "c0ffee00-1234-4abc-8def-0123456789ab"  # besteffort
ETCD = "3e1f0c6a9b2d4e5f8a7b6c5d4e3f2a1b"  # a static pod: the kubelet's 32-hex-digit hash as UID
QOS = {WEB: "burstable", DB: "guaranteed", BATCH: "besteffort", ETCD: "burstable"}

TREES = {
    "systemd-containerd.txt": ("systemd", "containerd"),
    "systemd-crio.txt": ("systemd", "crio"),
    "systemd-docker.txt": ("systemd", "docker"),
    "systemd-cgroup-root.txt": ("systemd", "containerd"),
    "cgroupfs-containerd.txt": ("cgroupfs", None),
    "cgroupfs-crio.txt": ("cgroupfs", "crio"),
    "k3s-nested.txt": ("cgroupfs", None),
}


def tree(name: str) -> list[str]:
    lines = (FIXTURES / name).read_text().splitlines()
    return [ln for ln in lines if ln and not ln.startswith("#")]


@pytest.mark.parametrize("name", sorted(TREES))
def test_every_pod_of_every_tree(name: str) -> None:
    drv, runtime = TREES[name]
    pods: dict[str, list[PodCgroup]] = {}
    for path in tree(name):
        uid = next((u for u in QOS if u in path or u.replace("-", "_") in path), None)
        for d in (drv, "auto"):
            got = parse(path, d)  # type: ignore[arg-type]
            if uid is None:
                assert got is None, path
                continue
            assert got is not None and got.uid == uid, path
            assert got.driver == drv and got.qos == QOS[uid]
            assert path.startswith(got.pod_path) and uid.replace("-", "_") in got.pod_path.replace("-", "_")
        if uid is not None:
            pods.setdefault(uid, []).append(got)
    assert set(pods) == set(QOS)
    for uid, found in pods.items():
        containers = [p.container for p in found if p.container is not None]
        # the pod's own cgroup, then pause + its containers (web has two), each with its id
        assert len(containers) == (3 if uid == WEB else 2), (uid, found)
        assert all(len(c) == 64 and int(c, 16) >= 0 for c in containers)
        assert {p.runtime for p in found if p.container} == {runtime}


@pytest.mark.parametrize("name", sorted(TREES))
def test_cgroups_outside_pods_are_not_pods(name: str) -> None:
    outside = [p for p in tree(name) if not any(u.replace("-", "_") in p.replace("-", "_") for u in QOS)]
    assert outside  # system.slice, kubepods and its QoS cgroups
    assert all(parse(p) is None for p in outside)


def test_systemd_names_in_detail() -> None:
    uid_ = WEB.replace("-", "_")
    cid = "a" * 64
    pod = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"
    path = f"{pod}/cri-containerd-{cid}.scope"
    got = parse(path, "systemd")
    assert got == PodCgroup(
        WEB,
        "burstable",
        cid,
        "containerd",
        "systemd",
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice",
    )
    assert parse(path, "cgroupfs") is None  # the cgroupfs driver never names a slice
    guaranteed = parse(
        f"kubepods.slice/kubepods-pod{DB.replace('-', '_')}.slice/crio-{cid}.scope/", "systemd"
    )
    assert guaranteed is not None and (guaranteed.qos, guaranteed.uid, guaranteed.runtime) == (
        "guaranteed",
        DB,
        "crio",
    )
    conmon = parse(f"/kubepods.slice/kubepods-pod{DB.replace('-', '_')}.slice/crio-conmon-{cid}.scope")
    assert conmon is not None and conmon.container is None and conmon.runtime == "crio-conmon"
    # a container's own sub-cgroups belong to it
    deeper = parse(path + "/init")
    assert deeper is not None and deeper.container == cid


def test_cgroupfs_names_in_detail() -> None:
    cid = "b" * 64
    got = parse(f"/kubepods/besteffort/pod{BATCH}/{cid}", "cgroupfs")
    assert got == PodCgroup(BATCH, "besteffort", cid, None, "cgroupfs", f"/kubepods/besteffort/pod{BATCH}")
    assert parse(f"/kubepods/besteffort/pod{BATCH}/{cid}", "systemd") is None
    pod_only = parse(f"/kubepods/pod{DB}")
    assert pod_only is not None and pod_only.qos == "guaranteed" and pod_only.container is None
    nested = parse(f"/docker/{'c' * 64}/kubepods/burstable/pod{WEB}/crio-{cid}")  # kind: a node in docker
    assert nested is not None and nested.uid == WEB and nested.container == cid and nested.runtime == "crio"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/kubepods.slice",
        "/kubepods.slice/kubepods-burstable.slice",
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podnot_a_uid.slice",
        "/kubepods.slice/kubepods-burstable.slice/kubepods-pod" + WEB.replace("-", "_") + ".slice",
        "/kubepods/burstable",
        "/kubepods/burstable/pod",
        "/kubepods/burstable/podxyz",
        "/kubepods/guaranteed/pod" + WEB,  # there is no "guaranteed" cgroup: Guaranteed pods sit in kubepods
        "/system.slice/kubepods.service",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/cri-containerd-" + "d" * 64 + ".scope",
    ],
)
def test_not_pods(path: str) -> None:
    assert parse(path) is None


def test_uid_is_kept_lowercase_and_dashes_come_back() -> None:
    got = parse("/kubepods.slice/kubepods-pod" + DB.upper().replace("-", "_") + ".slice")
    assert got is not None and got.uid == DB


def test_driver_names() -> None:
    assert kubelet.driver(" Systemd ") == "systemd" and kubelet.driver("auto") == "auto"
    with pytest.raises(InputError, match="--kubelet-cgroup-driver: must be one of systemd, cgroupfs, auto"):
        kubelet.driver("cgroup", "--kubelet-cgroup-driver")


def test_the_cache_answers_each_path_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = kubelet.parse

    def counting(path: str, drv: kubelet.Driver = "auto") -> PodCgroup | None:
        calls.append(path)
        return real(path, drv)

    monkeypatch.setattr(kubelet, "parse", counting)
    kc = KubeletCgroups("auto")
    path = f"/kubepods/pod{DB}/{'e' * 64}"
    assert kc.pod_of(path) == kc.pod_of(path) and kc.pod_of("/system.slice") is None
    assert kc.pod_of("/system.slice") is None
    assert calls == [path, "/system.slice"]
