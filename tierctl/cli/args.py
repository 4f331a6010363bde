"""Argument types for numeric command-line flags, backed by ``tierctl.values``: a flag's value is
finite and within its documented range, or argparse reports a usage error (exit 2) naming the flag."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from tierctl import values
from tierctl.errors import InputError


def _wrap(parse: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def check(text: str) -> float | int:
        try:
            return parse(text)
        except InputError as e:
            raise argparse.ArgumentTypeError(e.message) from None

    return check


def real(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float | int]:
    """A finite number in [lo, hi] ((lo, hi] with ``lo_open``)."""
    return _wrap(lambda t: values.number(t, "", lo=lo, hi=hi, lo_open=lo_open, text_ok=True))


def count(lo: int, hi: int) -> Callable[[str], float | int]:
    """An integer in [lo, hi]."""
    return _wrap(lambda t: values.integer(t, "", lo=lo, hi=hi, text_ok=True))


SECONDS = real(0.0, 86400.0, lo_open=True)  # a period or duration: (0 s, 1 day]
RATE_MBPS = real(0.0, values.MAX_RATE_MBPS, lo_open=True)
PROBABILITY = real(0.0, 1.0, lo_open=True)
SEED = count(0, 2**32 - 1)
PAGES = count(1, 1 << 40)


def key_value(text: str) -> tuple[str, int | float | bool | str]:
    """``KEY=VALUE``: the value as an integer, a finite number, true/false, or else the text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    raw = raw.strip()
    if raw.lower() in ("true", "false"):
        return key.strip(), raw.lower() == "true"
    for parse in (int, float):
        try:
            value = parse(raw)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{key.strip()}: must be a finite number, got {raw!r}")
        return key.strip(), value
    return key.strip(), raw


def pod_options(p: argparse.ArgumentParser | argparse._ArgumentGroup, *, node_help: str) -> None:
    """``--kubelet-cgroup-driver``, ``--node-name``, ``--kubeconfig`` (docs/pods.md), with the defaults
    the DaemonSet sets through the environment."""
    import os
    from pathlib import Path

    p.add_argument(
        "--kubelet-cgroup-driver",
        default=os.environ.get("TIERCTL_KUBELET_CGROUP_DRIVER", "auto"),
        metavar="DRIVER",
        help="how the kubelet names pod cgroups: systemd, cgroupfs or auto (default "
        "$TIERCTL_KUBELET_CGROUP_DRIVER, else auto)",
    )
    p.add_argument(
        "--node-name", default=os.environ.get("TIERCTL_NODE_NAME") or None, metavar="NODE", help=node_help
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="API server credentials (default $KUBECONFIG, else the in-cluster service account)",
    )
