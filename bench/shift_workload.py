"""The shift benchmark's workload: DRAM full of cold memory, two hot sets on the slow node.

    python -m bench.shift_workload --hot-mib 192 --leave-free-mib 16 [--cgroup PATH] [--cold-mib N]

1. Joins ``--cgroup`` (a cgroup v2 directory, created if missing) so its memory is charged there.
2. Fills the fast node with cold memory: 32 MiB private anonymous chunks (4 KiB pages,
   MADV_NOHUGEPAGE), each page written once, until node 0 has less than ``--leave-free-mib`` free
   above its high watermarks (or ``--cold-mib`` is reached).
3. Binds itself to the slow node (set_mempolicy MPOL_BIND), maps and writes two hot sets of
   ``--hot-mib`` each, then resets its policy to MPOL_DEFAULT (a user-set policy would hide its
   mappings from NUMA balancing, see docs/hint-faults.md).
4. Prints one JSON line: the address ranges (``hot``: [[addr, len], [addr, len]], ``cold``: [...]).
5. Reads commands on stdin: ``touch K`` touches hot set K (0 or 1) continuously, one cache line per
   page per pass (a numpy strided read-modify-write), until the next command; ``idle`` stops
   touching; ``passes`` answers ``PASSES <n>`` (passes since the last ``touch``); ``exit`` ends.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import platform
import select
import sys
import time
from pathlib import Path

import numpy as np

PAGE = mmap.PAGESIZE
CHUNK = 8 << 20
MPOL_DEFAULT = 0
MPOL_BIND = 2
SET_MEMPOLICY = {"x86_64": 238, "aarch64": 237}
FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS


def free_above_high(node: int) -> int:
    """Free bytes of ``node`` above the sum of its zones' high watermarks (what allocations can take
    before the allocator falls back to another node and kswapd wakes up)."""
    free = 0
    for line in Path(f"/sys/devices/system/node/node{node}/meminfo").read_text().splitlines():
        p = line.split()
        if p[2] == "MemFree:":
            free = int(p[3]) << 10
    high, mine = 0, False
    for line in Path("/proc/zoneinfo").read_text().splitlines():
        if line.startswith("Node "):
            mine = line.split(",")[0] == f"Node {node}"
        elif mine and line.split()[:1] == ["high"]:
            high += int(line.split()[1]) * PAGE
    return max(0, free - high)


def node_total(node: int) -> int:
    for line in Path(f"/sys/devices/system/node/node{node}/meminfo").read_text().splitlines():
        p = line.split()
        if p[2] == "MemTotal:":
            return int(p[3]) << 10
    raise RuntimeError(f"no MemTotal for node {node}")


def set_mempolicy(mode: int, nodes: tuple[int, ...] = ()) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    mask = ctypes.c_ulong(sum(1 << n for n in nodes))
    nr = SET_MEMPOLICY[platform.machine()]
    ptr = ctypes.byref(mask) if nodes else None
    if libc.syscall(ctypes.c_long(nr), ctypes.c_long(mode), ptr, ctypes.c_ulong(64 if nodes else 0)) != 0:
        raise OSError(ctypes.get_errno(), "set_mempolicy failed")


def mapped(n: int) -> tuple[mmap.mmap, np.ndarray, int]:
    m = mmap.mmap(-1, n, flags=FLAGS)
    m.madvise(mmap.MADV_NOHUGEPAGE)
    arr = np.frombuffer(m, dtype=np.uint8)
    arr[::PAGE] = 1  # first touch: one write per page
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    return m, arr, addr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.shift_workload")
    ap.add_argument("--hot-mib", type=int, default=192)
    ap.add_argument("--leave-free-mib", type=int, default=16, help="stop the cold fill below this")
    ap.add_argument("--cold-mib", type=int, default=1 << 20, help="cap on the cold fill")
    ap.add_argument("--cgroup", type=Path, help="cgroup v2 directory to join first")
    ap.add_argument("--fast-node", type=int, default=0)
    ap.add_argument("--slow-node", type=int, default=1)
    args = ap.parse_args(argv)
    if args.cgroup is not None:
        args.cgroup.mkdir(exist_ok=True)
        (args.cgroup / "cgroup.procs").write_text(f"{os.getpid()}\n")
    keep: list[tuple[mmap.mmap, np.ndarray, int]] = []
    cold = 0
    # never more than the fast node holds: with demotion on, the node may never look full
    cap = min(args.cold_mib << 20, node_total(args.fast_node))
    while free_above_high(args.fast_node) > args.leave_free_mib << 20 and cold < cap:
        keep.append(mapped(CHUNK))
        cold += CHUNK
    set_mempolicy(MPOL_BIND, (args.slow_node,))
    hot = [mapped(args.hot_mib << 20) for _ in range(2)]
    set_mempolicy(MPOL_DEFAULT)
    out = {
        "pid": os.getpid(),
        "page_size": PAGE,
        "hot": [[a, arr.shape[0]] for _, arr, a in hot],
        "cold": [[a, arr.shape[0]] for _, arr, a in keep],
    }
    print(json.dumps(out), flush=True)
    active: np.ndarray | None = None
    passes = 0
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0 if active is not None else None)
        if ready:
            cmd = sys.stdin.readline().split()
            if not cmd or cmd[0] == "exit":
                return 0
            if cmd[0] == "touch":
                active, passes = hot[int(cmd[1])][1][::PAGE], 0
            elif cmd[0] == "idle":
                active = None
            elif cmd[0] == "passes":
                print(f"PASSES {passes}", flush=True)
            continue
        if active is not None:
            active += np.uint8(1)  # read + write one byte of every page
            passes += 1
            time.sleep(0)


if __name__ == "__main__":
    sys.exit(main())
