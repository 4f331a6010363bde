"""Physical address ranges of a NUMA node's online memory blocks, read from sysfs: the initial regions
of a DAMON ``paddr`` kdamond that monitors that node.
"""

from __future__ import annotations

import os
from pathlib import Path

from tierctl.errors import InputError, KernelError, UnavailableError
from tierctl.kernel.roots import LIVE_SYS


def node_phys_ranges(node: int, sys_root: Path = LIVE_SYS) -> list[tuple[int, int]]:
    """Physical address ranges [start, end) of the online memory blocks of ``node`` (for paddr regions).

    From ``devices/system/memory/block_size_bytes`` (hex) and the ``memoryN`` links of
    ``devices/system/node/nodeX``; consecutive blocks are merged.
    """
    mem = Path(sys_root) / "devices" / "system" / "memory"
    bs_path = mem / "block_size_bytes"
    try:
        block = int(bs_path.read_text().strip(), 16)
    except FileNotFoundError:
        raise UnavailableError("no memory block information (CONFIG_MEMORY_HOTPLUG?)", str(bs_path)) from None
    except (OSError, ValueError) as e:
        raise KernelError(f"not a hex block size: {e}", str(bs_path)) from None
    node_dir = Path(sys_root) / "devices" / "system" / "node" / f"node{node}"
    try:
        names = os.listdir(node_dir)
    except FileNotFoundError:
        raise InputError(f"no node {node}", str(node_dir)) from None
    blocks = []
    for n in names:
        if n.startswith("memory") and n[6:].isdigit():
            state = node_dir / n / "state"
            if state.exists() and state.read_text().strip() != "online":
                continue
            blocks.append(int(n[6:]))
    ranges: list[tuple[int, int]] = []
    for b in sorted(blocks):
        start, end = b * block, (b + 1) * block
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges
