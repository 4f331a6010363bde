"""The contract every sampler implements, and the raw sample layout they all produce.

A sampler observes page accesses of target processes/cgroups and hands over *raw*
samples keyed by (cgroup id, pid, virtual page number). Turning them into tracked
page indices for the heat model is the controller's business, not the sampler's.

Lifecycle: ``probe()`` (no side effects: can this work here, and if not, why) →
``start(targets)`` (attach; raises UnavailableError with the reason) → ``drain()``
each cycle → ``stop()`` (detach, restore anything changed). ``health()`` reports
cost and losses at any time.

Optional abilities are declared here as protocols of their own (``Throttleable``,
``Retargetable``, ``SharesBpfHost``): the chain and the loop ask ``isinstance(s, Ability)``
rather than probing for attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Mirrors `struct tierctl_key` + `struct tierctl_val` of tierctl/data/bpf/tierctl.h (a test checks the
# layout).
RAW_SAMPLE_DTYPE = np.dtype(
    [
        ("cgroup", np.uint64),  # cgroup v2 id (the cgroup directory's inode number); 0 = unknown
        ("pid", np.uint32),  # thread group id
        ("flags", np.uint32),  # source-specific bits (fault error code, SAMPLE_* flags)
        ("vpn", np.uint64),  # virtual address >> PAGE_SHIFT
        ("count", np.uint64),  # observations of this page since the last drain
    ]
)


def empty_raw() -> np.ndarray:
    return np.zeros(0, dtype=RAW_SAMPLE_DTYPE)


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str  # why not (or, when ok, what it will use: "bcc 0.26, kernel headers at ...")


@dataclass(frozen=True)
class Targets:
    """What to observe. Empty tuples mean "everything the sampler can see"."""

    pids: tuple[int, ...] = ()
    cgroup_ids: tuple[int, ...] = ()


@dataclass
class Health:
    samples: int = 0  # raw rows handed over so far
    dropped: int = 0  # observations lost (full maps, lost perf records)
    cpu_seconds: float = 0.0  # user-space CPU spent in start/drain
    bpf_run_ns: int = 0  # kernel time in BPF programs (kernel BPF stats), when known
    notes: list[str] = field(default_factory=list)


class SourceSampler(Protocol):
    name: str

    def probe(self) -> Availability: ...

    def start(self, targets: Targets) -> None: ...

    def drain(self) -> np.ndarray:
        """RAW_SAMPLE_DTYPE rows observed since the last drain (aggregated per page)."""
        ...

    def stop(self) -> None: ...

    def health(self) -> Health: ...


@runtime_checkable
class Throttleable(Protocol):
    """A sampler whose rate the chain's watchdog can lower when it costs too much."""

    def throttle(self) -> bool:
        """Halve the sampling rate; False when it is at its lowest already."""
        ...


@runtime_checkable
class Retargetable(Protocol):
    """A sampler that can follow new target processes without a restart."""

    def retarget(self, targets: Targets) -> None:
        """Observe ``targets`` from now on; raises (UnavailableError) when it cannot."""
        ...


@runtime_checkable
class SharesBpfHost(Protocol):
    """A BPF sampler whose compiler and stats host other BPF samplers can share."""

    host: Any  # tierctl.kernel.bpfhost.BpfHost, or None before one is made
