"""The Python mirror of tierctl/data/bpf/tierctl.h: map key/value dtypes, enums, map names.

tests/samplers/test_bpf_layout.py compiles the header with gcc and checks every size, offset and enum
value here against it; change both together. Converting drained map rows into the raw sample
layout of the sampler contract (``RAW_SAMPLE_DTYPE``) is vectorised: no per-row Python work.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

import numpy as np

from tierctl.samplers.base import RAW_SAMPLE_DTYPE

PAGE_SHIFT = 12  # TIERCTL_PAGE_SHIFT
USER_ADDR_END = 1 << 56  # TIERCTL_USER_ADDR_END: perf samples at or above it are not user data
MAX_ENTRIES_DEFAULT = 65536  # TIERCTL_MAX_ENTRIES (the loader always passes its own with -D)
MAX_TARGETS_DEFAULT = 1024  # TIERCTL_MAX_TARGETS

# struct tierctl_key (24 bytes) and struct tierctl_val (8 bytes), little-endian like the kernel here.
KEY_DTYPE = np.dtype([("cgroup", "<u8"), ("pid", "<u4"), ("flags", "<u4"), ("vpn", "<u8")])
VAL_DTYPE = np.dtype([("count", "<u8")])
# struct tierctl_migrate_val (24 bytes), one per migrate reason slot.
MIGRATE_VAL_DTYPE = np.dtype([("calls", "<u8"), ("succeeded", "<u8"), ("failed", "<u8")])

# C struct name -> dtype, for the layout test.
STRUCTS: dict[str, np.dtype] = {
    "tierctl_key": KEY_DTYPE,
    "tierctl_val": VAL_DTYPE,
    "tierctl_migrate_val": MIGRATE_VAL_DTYPE,
}


class SampleFlag(IntFlag):
    """enum tierctl_sample_flags: x86 page-fault error code bits, then the source bits."""

    PROT = 1 << 0
    WRITE = 1 << 1
    USER = 1 << 2
    INSTR = 1 << 4
    FAULT_MASK = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 4)
    FAULT = 1 << 16
    PERF = 1 << 17
    DAMON = 1 << 18
    IDLE = 1 << 19
    SOFT_DIRTY = 1 << 20


class Counter(IntEnum):
    """enum tierctl_counter: indices of the per-CPU counters array."""

    EVENTS = 0
    DROP_MAP_FULL = 1
    DROP_NO_ADDR = 2
    NR = 3


DROP_COUNTERS = (Counter.DROP_MAP_FULL, Counter.DROP_NO_ADDR)


class Config(IntEnum):
    """enum tierctl_config: indices of the config array."""

    ENABLED = 0
    FILTER_PIDS = 1
    FILTER_CGROUPS = 2
    SAMPLE_SHIFT = 3
    NR = 4


class MigrateReason(IntEnum):
    """enum tierctl_migrate_reason (= the kernel's enum migrate_reason on 6.x)."""

    COMPACTION = 0
    MEMORY_FAILURE = 1
    MEMORY_HOTPLUG = 2
    SYSCALL = 3
    MEMPOLICY_MBIND = 4
    NUMA_MISPLACED = 5
    CONTIG_RANGE = 6
    LONGTERM_PIN = 7
    DEMOTION = 8
    DAMON = 9
    SLOTS = 16


# Every enum constant of the header, by its C name (checked by the layout test).
ENUMS: dict[str, int] = {
    f"{prefix}{name}": int(member)
    for prefix, enum in (
        ("TIERCTL_SAMPLE_", SampleFlag),
        ("TIERCTL_CNT_", Counter),
        ("TIERCTL_CFG_", Config),
        ("TIERCTL_MR_", MigrateReason),
    )
    for name, member in enum.__members__.items()  # (iterating a Flag skips multi-bit members)
}
MACROS: dict[str, int] = {
    "TIERCTL_PAGE_SHIFT": PAGE_SHIFT,
    "TIERCTL_USER_ADDR_END": USER_ADDR_END,
    "TIERCTL_MAX_ENTRIES": MAX_ENTRIES_DEFAULT,
    "TIERCTL_MAX_TARGETS": MAX_TARGETS_DEFAULT,
}

# Map names in tierctl/data/bpf/*.c.
MAP_SAMPLES = "samples"
MAP_COUNTERS = "counters"
MAP_CONFIG = "config"
MAP_FILTER_PIDS = "filter_pids"
MAP_FILTER_CGROUPS = "filter_cgroups"
MAP_MIGRATIONS = "migrations"

_KEY_FIELDS = tuple(KEY_DTYPE.names or ())
assert RAW_SAMPLE_DTYPE.names == (*_KEY_FIELDS, "count"), "RAW_SAMPLE_DTYPE must be key fields + count"


def rows_to_raw(keys: np.ndarray, vals: np.ndarray, *, merge_flags: bool = True) -> np.ndarray:
    """Drained (key, value) rows -> RAW_SAMPLE_DTYPE, one row per (cgroup, pid, vpn).

    The BPF key includes ``flags``, so a page seen with a read fault and a write fault comes out
    of the map as two rows; with ``merge_flags`` they become one row (flags OR'ed, counts
    summed). The result is sorted by (cgroup, pid, vpn).
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=RAW_SAMPLE_DTYPE)
    order = np.lexsort((keys["flags"], keys["vpn"], keys["pid"], keys["cgroup"]))
    k = keys[order]
    count = np.asarray(vals["count"], dtype=np.uint64)[order]
    if merge_flags and n > 1:
        same = (
            (k["cgroup"][1:] == k["cgroup"][:-1])
            & (k["pid"][1:] == k["pid"][:-1])
            & (k["vpn"][1:] == k["vpn"][:-1])
        )
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        if len(starts) < n:
            out = np.empty(len(starts), dtype=RAW_SAMPLE_DTYPE)
            for f in _KEY_FIELDS:
                out[f] = k[f][starts]
            out["flags"] = np.bitwise_or.reduceat(k["flags"], starts)
            out["count"] = np.add.reduceat(count, starts)
            return out
    out = np.empty(n, dtype=RAW_SAMPLE_DTYPE)
    for f in _KEY_FIELDS:
        out[f] = k[f]
    out["count"] = count
    return out
