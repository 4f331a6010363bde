"""Samplers by name, in order of preference (best first).

An immutable table of import paths: a sampler module is imported only when used,
so a host without bcc never imports the BPF ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from tierctl.errors import UnavailableError
from tierctl.registry import pick
from tierctl.samplers.base import Availability, Health, SourceSampler, Targets, empty_raw

if TYPE_CHECKING:
    from tierctl.kernel.knobs import KnobGuard

SAMPLERS: Mapping[str, str] = MappingProxyType(
    {
        "bpf-perf": "tierctl.samplers.perf_addr:PerfAddrSampler",
        "bpf-fault": "tierctl.samplers.fault:FaultSampler",
        "damon": "tierctl.samplers.damon:DamonSampler",
        "idle": "tierctl.samplers.idle:IdlePageSampler",
    }
)


def make_sampler(name: str, **options: Any) -> SourceSampler:
    """The sampler called ``name``; a module that cannot even be loaded (a missing dependency, a
    broken install) gives a stand-in whose probe says so, so callers treat it like any other
    unavailable sampler."""
    module, _, cls = pick(SAMPLERS, name, kind="sampler", where="--source").partition(":")
    try:
        factory = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        return Unloadable(name, f"cannot load {module}: {e}")
    return factory(**options)  # type: ignore[no-any-return]


def make_samplers(names: Sequence[str], *, knobs: KnobGuard | None = None) -> list[SourceSampler]:
    """Samplers for ``names``; the BPF ones share one BpfHost (tracefs mount, BPF stats). ``knobs``: the
    guard that records what that host changes (default: the host's own record under /run/tierctl)."""
    host = None
    out = []
    for name in names:
        if name.startswith("bpf-"):
            if host is None:
                from tierctl.kernel.bpfhost import BpfHost, restore_leftovers

                host = BpfHost(knobs)
                host.restored_at_start = restore_leftovers()  # what crashed tierctl processes left
            out.append(make_sampler(name, host=host))
        else:
            out.append(make_sampler(name))
    return out


class Unloadable:
    """Stands in for a sampler whose code could not be loaded."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def probe(self) -> Availability:
        return Availability(False, self.reason)

    def start(self, targets: Targets) -> None:
        raise UnavailableError(self.reason, self.name)

    def drain(self) -> np.ndarray:
        return empty_raw()

    def stop(self) -> None:
        return None

    def health(self) -> Health:
        return Health()
