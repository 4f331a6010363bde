"""``tierctl daemon`` takes the pod settings from flags, else from the environment the DaemonSet sets
(TIERCTL_KUBELET_CGROUP_DRIVER, TIERCTL_NODE_NAME), and refuses a driver it does not know."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tierctl.cli import build_parser, daemon_cmd
from tierctl.errors import InputError


class _Built(Exception):
    pass


def _config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *argv: str) -> Any:
    seen: list[Any] = []

    def fake_service(cfg: Any, **_: Any) -> Any:
        seen.append(cfg)
        raise _Built()

    monkeypatch.setattr(daemon_cmd, "Service", fake_service)  # the name daemon_cmd builds it by
    args = build_parser().parse_args(["daemon", "--state-dir", str(tmp_path), "--no-socket", *argv])
    with pytest.raises(_Built):
        args.func(args)
    return seen[0]


def test_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERCTL_KUBELET_CGROUP_DRIVER", "systemd")
    monkeypatch.setenv("TIERCTL_NODE_NAME", "node-7")
    cfg = _config(monkeypatch, tmp_path)
    assert (cfg.kubelet_cgroup_driver, cfg.node_name, cfg.kubeconfig) == ("systemd", "node-7", None)


def test_flags_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERCTL_NODE_NAME", "node-7")
    cfg = _config(
        monkeypatch,
        tmp_path,
        "--kubelet-cgroup-driver",
        "cgroupfs",
        "--node-name",
        "n1",
        "--kubeconfig",
        str(tmp_path / "kc"),
    )
    assert (cfg.kubelet_cgroup_driver, cfg.node_name, cfg.kubeconfig) == ("cgroupfs", "n1", tmp_path / "kc")


def test_nothing_set_means_auto_and_no_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TIERCTL_KUBELET_CGROUP_DRIVER", raising=False)
    monkeypatch.delenv("TIERCTL_NODE_NAME", raising=False)
    cfg = _config(monkeypatch, tmp_path)
    assert (cfg.kubelet_cgroup_driver, cfg.node_name) == ("auto", None)


def test_unknown_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERCTL_KUBELET_CGROUP_DRIVER", "cgroupv2")
    args = build_parser().parse_args(["daemon", "--state-dir", str(tmp_path), "--no-socket"])
    with pytest.raises(InputError, match="--kubelet-cgroup-driver: must be one of systemd, cgroupfs, auto"):
        args.func(args)
