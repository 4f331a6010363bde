"""A child process holding private anonymous memory for migration tests.

    python memchild.py SIZE_MIB [--thp | --nothp] [--seed N]

Maps SIZE_MIB of MAP_PRIVATE|MAP_ANONYMOUS memory (2 MiB aligned; --thp asks for
transparent huge pages with madvise(MADV_HUGEPAGE), --nothp forbids them with
MADV_NOHUGEPAGE, neither leaves the system default), fills it with seeded random bytes, prints
"READY <addr> <length>" and then answers commands on stdin, one per line:
"hash" -> "HASH <sha256>", "alloc MIB" -> maps and touches more, "ALLOC <addr> <len>",
"exit" -> exits 0.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import random
import sys

PROT = mmap.PROT_READ | mmap.PROT_WRITE
FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
HUGE = 2 << 20
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def map_aligned(length: int, advice: int | None) -> int:
    raw = libc.mmap(None, length + HUGE, PROT, FLAGS, -1, 0)
    if raw in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    addr = (raw + HUGE - 1) // HUGE * HUGE
    if advice is not None and libc.madvise(addr, length, advice) != 0:
        raise OSError(ctypes.get_errno(), f"madvise({advice}) failed")
    return addr


def fill(addr: int, length: int, seed: int) -> None:
    data = random.Random(seed).randbytes(1 << 20)
    for off in range(0, length, len(data)):
        ctypes.memmove(addr + off, data, min(len(data), length - off))


def main() -> int:
    size = int(sys.argv[1]) << 20
    advice = MADV_HUGEPAGE if "--thp" in sys.argv else MADV_NOHUGEPAGE if "--nothp" in sys.argv else None
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1
    addr = map_aligned(size, advice)
    fill(addr, size, seed)
    print(f"READY {addr} {size}", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "hash":
            print("HASH " + hashlib.sha256(ctypes.string_at(addr, size)).hexdigest(), flush=True)
        elif cmd[0] == "alloc":
            n = int(cmd[1]) << 20
            a = map_aligned(n, advice)
            fill(a, n, seed + 1)
            print(f"ALLOC {a} {n}", flush=True)
        elif cmd[0] == "exit":
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
