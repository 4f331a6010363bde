"""Samplers by name, in order of preference (best first).

An immutable table of import paths: a sampler module is imported only when used,
so a host without bcc never imports the BPF ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from tierctl.registry import pick
from tierctl.samplers.base import SourceSampler

SAMPLERS: Mapping[str, str] = MappingProxyType(
    {
        "bpf-perf": "tierctl.samplers.perf_addr:PerfAddrSampler",
        "bpf-fault": "tierctl.samplers.fault:FaultSampler",
        "damon": "tierctl.samplers.damon:DamonSampler",
        "idle": "tierctl.samplers.idle:IdlePageSampler",
    }
)


def make_sampler(name: str, **options: Any) -> SourceSampler:
    module, _, cls = pick(SAMPLERS, name, kind="sampler", where="--source").partition(":")
    return getattr(importlib.import_module(module), cls)(**options)  # type: ignore[no-any-return]
