"""bpf-stall in the two-tier guest (Debian 6.12, cgroup v2, no swap): reclaim stalls that PSI confirms,
and an OOM victim with the right cgroup id.

One sampler session (a compile costs seconds under TCG) and two fresh cgroups under /sys/fs/cgroup,
each with memory.max = 32 MiB set by the test:

1. a child writes 128 MiB into a file on a disk-backed file system (the guest's only one is the
   ``--rwdir`` folder, virtiofs; tmpfs and the tmpfs-backed overlays cannot be reclaimed without
   swap): its page cache is reclaimed by the memcg over and over. The sampler must count episodes
   and stall time for that cgroup id, and the cgroup's PSI ``some`` and ``full`` totals must have
   grown too — by at least half the stall time BPF measured (one thread: its stalls do not overlap,
   and PSI counts the whole reclaim call as a memory stall);
2. a child allocates anonymous memory past the limit: the memcg OOM killer takes it, and the
   sampler reports it as a victim with that cgroup's id, its pid and its comm.
"""

from __future__ import annotations

import time

import pytest

from tests.samplers.test_bpf_samplers import SKIP
from tests.samplers.test_stall_sampler import MIB, limited_cgroup, scratch_dir
from tierctl.kernel.bpfhost import Tracefs
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.samplers.base import Targets
from tierctl.samplers.stall import CgroupStall, OomVictim, StallSampler

pytestmark = pytest.mark.vm
LIMIT = 32 * MIB


def _mark_victim_fields() -> list[str]:
    d = Tracefs().dir()
    assert d is not None, "the guest mounts tracefs"
    text = (d / "events" / "oom" / "mark_victim" / "format").read_text()
    return [line.split(";")[0].split()[-1] for line in text.splitlines() if "field:" in line]


def test_bpf_stall_counts_reclaim_that_psi_confirms_and_sees_the_oom_victim() -> None:
    assert SKIP is None, SKIP
    fs = CgroupFS()
    assert fs.v2, f"the guest has cgroup v2, not {fs.layout.value}"
    fields = _mark_victim_fields()
    print(f"\nguest: oom:mark_victim fields {fields}")
    assert "pid" in fields  # the only one the program reads
    where = scratch_dir()
    assert where is not None, "no disk-backed writable folder: run the guest with --rwdir"
    s = StallSampler()
    av = s.probe()
    assert av.ok, av.reason
    s.start(Targets())
    try:
        print(f"guest: compile+attach {s.compile_seconds:.2f} s")
        with limited_cgroup("reclaim", LIMIT) as cg:
            t0 = time.monotonic()
            done = cg.run("write", where, "128", timeout=600)
            assert done.returncode == 0, done.stderr
            took = time.monotonic() - t0
            row = s.drain().cgroup(cg.id)
            psi = fs.pressure(cg.rel)  # the cgroup is new: its totals are this run's
            assert psi.some is not None and psi.full is not None
            some_ns, full_ns = psi.some.total_us * 1000, psi.full.total_us * 1000
            print(f"guest: wrote 128 MiB under memory.max 32 MiB in {took:.1f} s: {row}")
            print(f"guest: PSI some {some_ns / 1e6:.1f} ms, full {full_ns / 1e6:.1f} ms")
            assert row.episodes > 0 and row.stall_ns > 0 and row.memcg_episodes > 0
            assert some_ns > 0 and full_ns > 0
            assert some_ns >= row.stall_ns // 2, (some_ns, row.stall_ns)
        with limited_cgroup("oom", LIMIT) as cg:
            done = cg.run("oom", timeout=600)
            assert done.returncode == -9, (done.returncode, done.stderr[-500:])
            victims: list[OomVictim] = []
            rows: list[CgroupStall] = []
            deadline = time.monotonic() + 15
            while not victims and time.monotonic() < deadline:
                rep = s.drain()
                victims += [v for v in rep.victims if v.pid == done.pid]
                rows.append(rep.cgroup(cg.id))
                time.sleep(0.2)
            print(f"guest: OOM victims {victims}; kills per drain {[r.oom_kills for r in rows]}")
            assert len(victims) == 1, victims
            v = victims[0]
            assert v.exited and v.cgroup_id == cg.id and v.invoker_cgroup_id == cg.id
            assert v.tgid == done.pid and v.comm.startswith("python")
            assert sum(r.oom_kills for r in rows) == 1
        h = s.health()
        print(
            f"guest: counters {s.counters()}; BPF run time {h.bpf_run_ns / 1e6:.2f} ms; dropped {h.dropped}"
        )
        assert h.dropped == 0 and h.bpf_run_ns > 0
    finally:
        s.stop()
