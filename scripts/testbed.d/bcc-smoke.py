#!/usr/bin/python3
"""Guest-side smoke test: compile and attach a tiny bcc TRACEPOINT_PROBE.

Run with: scripts/testbed run -- /usr/bin/python3 scripts/testbed.d/bcc-smoke.py
Prints the number of user page faults seen while touching 16 MiB, then "bcc ok".
"""

import mmap
import os
import time

from bcc import BPF

PROG = r"""
BPF_ARRAY(faults, u64, 1);
TRACEPOINT_PROBE(exceptions, page_fault_user) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET_PID)
        return 0;
    int k = 0;
    u64 *v = faults.lookup(&k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}
"""

t0 = time.monotonic()
b = BPF(text=PROG.replace("TARGET_PID", str(os.getpid())), cflags=["-Wno-ignored-attributes"])
t1 = time.monotonic()
size = 16 << 20
m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_NOHUGEPAGE)  # else THP serves 16 MiB with ~8 faults
for off in range(0, size, mmap.PAGESIZE):
    m[off] = 1
n = b["faults"][0].value
print(f"compile+attach {t1 - t0:.1f} s, user page faults while touching 16 MiB: {n}")
if n < size // mmap.PAGESIZE // 2:
    raise SystemExit("bcc: too few faults counted")
print("bcc ok")
