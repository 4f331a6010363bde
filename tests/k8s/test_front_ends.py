"""``tierctl cgroups`` and ``tierctl top`` show each pod cgroup's pod: ``namespace/name`` when the API
server named it, ``pod:<uid>`` from the cgroup path alone; no pod column off Kubernetes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.fake_api import FakeApi, pod
from tierctl.cli import cgroups_cmd, client_cmds

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kubelet"
WEB = "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c"
PSI = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def cgroup_tree(tmp_path: Path, listing: str) -> tuple[Path, Path]:
    """A cgroup v2 tree with every directory of a tests/fixtures/kubelet listing, 1 MiB charged each."""
    root, proc = tmp_path / "cg", tmp_path / "proc"
    (proc / "pressure").mkdir(parents=True)
    (proc / "pressure" / "memory").write_text(PSI)
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset memory\n")
    for line in (FIXTURES / listing).read_text().splitlines():
        if line and not line.startswith("#"):
            d = root / line.strip("/")
            d.mkdir(parents=True, exist_ok=True)
            (d / "memory.current").write_text(f"{1 << 20}\n")
            (d / "memory.pressure").write_text(PSI)
    return root, proc


def cgroups(capsys: pytest.CaptureFixture[str], root: Path, proc: Path, *argv: str) -> tuple[str, str]:
    parser = argparse.ArgumentParser()
    cgroups_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["cgroups", "--cgroup-root", str(root), "--proc-root", str(proc), *argv])
    assert args.func(args) == 0
    got = capsys.readouterr()
    return got.out, got.err


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TIERCTL_NODE_NAME",
        "TIERCTL_KUBELET_CGROUP_DRIVER",
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("listing", ["systemd-containerd.txt", "cgroupfs-crio.txt"])
def test_cgroups_pod_column_from_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listing: str
) -> None:
    root, proc = cgroup_tree(tmp_path, listing)
    out, err = cgroups(capsys, root, proc)
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["cgroup", "pod", "memory"]
    by_path = {ln.split()[0]: ln.split()[1] for ln in lines[2:]}
    web = [p for p in by_path if WEB in p or WEB.replace("-", "_") in p]
    listed = (FIXTURES / listing).read_text().count(WEB) + (FIXTURES / listing).read_text().count(
        WEB.replace("-", "_")
    )
    assert len(web) == listed and {by_path[p] for p in web} == {"pod:8f3c2a1e"}  # the pod and its containers
    assert by_path["/system.slice/sshd.service"] == "-"
    rows = {r["path"]: r for r in json.loads(cgroups(capsys, root, proc, "--json")[0])}
    assert all(rows[p]["pod"]["uid"] == WEB for p in web)
    assert "pod" not in rows["/system.slice/sshd.service"] and "pod" not in rows["/"]


def test_cgroups_without_pods_has_no_pod_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, proc = cgroup_tree(tmp_path, "systemd-containerd.txt")
    out, _ = cgroups(capsys, root, proc, "--kubelet-cgroup-driver", "cgroupfs")  # systemd names: no pods
    assert out.splitlines()[0].split()[:2] == ["cgroup", "memory"]


def test_cgroups_names_pods_through_the_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, proc = cgroup_tree(tmp_path, "systemd-containerd.txt")
    api = FakeApi().start()
    try:
        api.add(pod(WEB, "shop", "web-0"), event=None)
        kc = str(api.kubeconfig(tmp_path / "kc"))
        out, err = cgroups(capsys, root, proc, "--node-name", "node-1", "--kubeconfig", kc)
        assert err == "" and out.count("shop/web-0") == 4
        assert "pod:1b2c3d4e" in out  # a pod the API server did not list: its UID only
    finally:
        api.stop()
    out, err = cgroups(capsys, root, proc, "--node-name", "node-1", "--kubeconfig", kc)  # the API is gone
    assert err.startswith("tierctl cgroups: pods known from cgroup paths only: ")
    assert out.count("pod:8f3c2a1e") == 4


def top(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]]
) -> str:
    monkeypatch.setattr(client_cmds, "_call", lambda args, op: rows)
    parser = argparse.ArgumentParser()
    client_cmds.register(parser.add_subparsers())
    args = parser.parse_args(["top"])
    assert args.func(args) == 0
    return capsys.readouterr().out


def _row(path: str, fast: int, pod_info: dict[str, Any] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"path": path, "profile": "default", "override": "auto", "fast_bytes": fast}
    row.update(slow_bytes=0, hot_bytes=0, est_fast_hit_ratio=None)
    if pod_info is not None:
        row["pod"] = pod_info
    return row


def test_top_pod_column(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    named = {"namespace": "shop", "name": "web-0", "uid": WEB, "qos": "burstable", "container": None}
    bare = {"namespace": None, "name": None, "uid": "1b2c3d4e-0f1a", "qos": None, "container": None}
    out = top(
        capsys, monkeypatch, [_row("/a", 3 << 20, named), _row("/b", 2 << 20, bare), _row("/c", 1 << 20)]
    )
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["cgroup", "pod", "profile"]
    assert [ln.split()[1] for ln in lines[2:]] == ["shop/web-0", "pod:1b2c3d4e", "-"]
    assert len(lines[1].split()[1]) == len("pod:1b2c3d4e")  # the column is as wide as its widest cell
    out = top(capsys, monkeypatch, [_row("/c", 1 << 20)])
    assert out.splitlines()[0].split()[:2] == ["cgroup", "profile"]
