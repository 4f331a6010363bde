"""Samplers by name, in order of preference (best first).

An immutable table of import paths: a sampler module is imported only when used,
so a host without bcc never imports the BPF ones.

Every sampler is made below the same :class:`Roots` (the live mount points by default, fake trees in
tests), and the BPF ones of a process share one ``BpfHost``: its use counts decide when the BPF stats
sysctl and a tracefs mount go back, so a second host over the same guard would undo them under the
first one's samplers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from tierctl.errors import UnavailableError
from tierctl.kernel.bpfhost import BpfHost
from tierctl.kernel.pmu import EVENT_SOURCES
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.roots import Roots
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


def _idle(r: Roots) -> dict[str, Any]:
    return {"sys_root": r.sys, "proc_root": r.proc, "cgroup_root": r.cgroup}


def _damon(r: Roots) -> dict[str, Any]:
    # knob_root, run_dir: where its own record of the kdamonds is kept (without the daemon's guard)
    return {
        "sys_root": r.sys,
        "proc_root": r.proc,
        "cgroup_root": r.cgroup,
        "knob_root": r.root,
        "run_dir": r.run,
    }


def _perf(r: Roots) -> dict[str, Any]:
    return {"event_sources": r.in_sys(EVENT_SOURCES)}


def _none(r: Roots) -> dict[str, Any]:
    return {}  # a BPF sampler reads the kernel through its host


# the keyword options that put each sampler below the roots
ROOT_OPTIONS: Mapping[str, Callable[[Roots], dict[str, Any]]] = MappingProxyType(
    {"bpf-perf": _perf, "bpf-fault": _none, "damon": _damon, "idle": _idle}
)
# the samplers that record what they set up in a knob guard (``knobs=``, the daemon's when given)
GUARDED = frozenset({"damon"})


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


def _roots_for(roots: Roots | None, knobs: KnobGuard | None) -> Roots:
    """``roots``, else the usual places below the guard's root, else the live ones."""
    if roots is not None:
        return roots
    return Roots.under(knobs.root) if knobs is not None else Roots()


def bpf_host(roots: Roots | None = None, knobs: KnobGuard | None = None) -> BpfHost:
    """A BpfHost below ``roots`` (default: the usual places below the guard's root, else the live
    ones); ``knobs``: the guard recording what it changes, whose mount table it uses (default: the
    host's own record in ``roots.run``). A guard writing below another root than ``roots.root`` is
    refused (InputError)."""
    roots = _roots_for(roots, knobs)
    return BpfHost(
        knobs, root=roots.root, proc=ProcFS(roots.proc), run_dir=roots.run, cgroup_root=roots.cgroup
    )


def sampler_options(
    name: str, roots: Roots | None = None, host: BpfHost | None = None, knobs: KnobGuard | None = None
) -> dict[str, Any]:
    """The keyword options that make sampler ``name`` below ``roots`` (and, a BPF one, on ``host``; one
    that records its own changes, with ``knobs``)."""
    roots = _roots_for(roots, knobs)
    opts = ROOT_OPTIONS.get(name, _none)(roots)
    if name.startswith("bpf-") and host is not None:
        opts["host"] = host
    if name in GUARDED and knobs is not None:
        opts["knobs"] = knobs
    return opts


def make_samplers(
    names: Sequence[str],
    *,
    knobs: KnobGuard | None = None,
    host: BpfHost | None = None,
    roots: Roots | None = None,
) -> list[SourceSampler]:
    """Samplers for ``names``, below ``roots`` (default: the usual places below the guard's root, else
    the live ones); the BPF ones share ``host``, the process's one BpfHost (tracefs mount, BPF stats) —
    made here when not given, recording what it changes with ``knobs`` (default: the host's own record
    in ``roots.run``); ``damon`` records its kdamonds with ``knobs`` too (else in its own record there).
    Before the first BPF sampler, the host restores what crashed tierctl processes left there."""
    out = []
    for name in names:
        if name.startswith("bpf-"):
            if host is None:
                host = bpf_host(roots, knobs)
            host.restore_leftovers()  # once per host
        out.append(make_sampler(name, **sampler_options(name, roots, host, knobs)))
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
