"""The kernel loop and platform below fake roots: the guard, its mount table, every adapter and the PMU
check are below them; the loop makes the process's one BpfHost, which every BPF sampler (the hint-fault
one too) and the pressure ladder's stall source share, so one user releasing leaves the others' knobs
set and the last one restores them."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from tierctl.errors import InputError
from tierctl.kernel.knobs import BPF_STATS_ENABLED, KnobGuard
from tierctl.kernel.mounts import LibcMounts
from tierctl.kernel.roots import Roots
from tierctl.service.kernel_loop import KernelLoop, LoopConfig
from tierctl.service.platform import KernelPlatform

FIX = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    """The two-tier guest's sysfs and procfs, NUMA balancing off, the BPF stats sysctl off, a cgroup
    v2 hierarchy, tracefs mounted (so nothing is ever mounted for real)."""
    r = Roots.under(tmp_path / "root")
    shutil.copytree(FIX / "topology" / "guest-two-tier", r.root)
    (r.proc / "sys/kernel/numa_balancing").write_text("0\n")
    (r.root / BPF_STATS_ENABLED.lstrip("/")).write_text("0\n")
    (r.root / "sys/kernel/tracing/events").mkdir(parents=True)
    r.cgroup.mkdir(parents=True)
    (r.cgroup / "cgroup.controllers").write_text("cpuset cpu memory\n")
    return r


def no_enable_stats() -> int:
    return -errno.EINVAL


def loop(tmp_path: Path, roots: Roots, **cfg: object) -> KernelLoop:
    opts: dict[str, object] = {"samplers": ["bpf-fault", "bpf-perf"], "knob_state": tmp_path / "knobs.json"}
    return KernelLoop(lambda: [], LoopConfig(roots=roots, **(opts | cfg)))  # type: ignore[arg-type]


def test_the_guard_and_every_adapter_are_below_the_roots(tmp_path: Path, roots: Roots) -> None:
    kl = loop(tmp_path, roots, hint_faults="on")
    assert kl.guard is not None and kl.guard.root == roots.root
    assert isinstance(kl.guard.mounts, LibcMounts) and kl.guard.mounts.proc_root == roots.proc
    assert kl.procfs.root == roots.proc
    host = kl.bpf_host
    assert host.guard is kl.guard and host.mounts is kl.guard.mounts
    assert (host.root, host.proc.root, host.run_dir, host.cgroup_root) == (
        roots.root,
        roots.proc,
        roots.run,
        roots.cgroup,
    )
    samplers = [e.sampler for e in kl.chain._entries]
    assert [s.name for s in samplers] == ["bpf-fault", "bpf-perf"]  # the hint-fault one leads
    assert all(s.host is host for s in samplers)  # type: ignore[attr-defined]
    assert samplers[1].sources.root == roots.sys / "bus/event_source/devices"  # type: ignore[attr-defined]
    assert kl.guard.damon(roots.sys / "kernel/mm/damon/admin").proc_root == roots.proc


def test_damon_records_its_kdamonds_with_the_loops_guard(tmp_path: Path, roots: Roots) -> None:
    kl = loop(tmp_path, roots, samplers=["damon", "idle"], hint_faults="off")
    damon, idle = (e.sampler for e in kl.chain._entries)
    assert damon.knobs() is kl.guard  # type: ignore[attr-defined]
    assert damon.fs.root == roots.sys / "kernel/mm/damon/admin"  # type: ignore[attr-defined]
    assert idle.bitmap_path == roots.sys / "kernel/mm/page_idle/bitmap"  # type: ignore[attr-defined]


def test_the_pmu_check_reads_the_roots_sysfs(tmp_path: Path, roots: Roots) -> None:
    assert loop(tmp_path, roots).hint_reason == ""  # no PMU listed: hint faults on
    ibs = roots.sys / "bus/event_source/devices/ibs_op"
    ibs.mkdir(parents=True)
    (ibs / "type").write_text("11\n")
    assert loop(tmp_path, roots).hint_reason == "not needed: AMD IBS op samples data addresses"


def test_the_stall_source_shares_the_loops_host(tmp_path: Path, roots: Roots) -> None:
    """Two users of the one host (a page sampler, the stall sampler): one releases, the sysctl stays
    set; both release, it is restored and the record is empty."""
    platform = KernelPlatform(roots=roots)
    kl = platform.make_loop(lambda: [], LoopConfig(samplers=["bpf-fault"], knob_state=tmp_path / "k.json"))
    assert kl.roots == roots and platform.topology.sys_root == roots.sys
    assert platform.cgroups.root == roots.cgroup and platform.cgroups.proc_root == roots.proc
    io = platform.pressure_io()
    chain = io.stall_source(kl.guard)
    try:
        stall = chain._entries[0].source
        assert stall.host is kl.bpf_host  # type: ignore[attr-defined]
    finally:
        chain.stop()
    host = kl.bpf_host
    host.stats.enable = no_enable_stats
    sysctl = roots.root / BPF_STATS_ENABLED.lstrip("/")
    host.stats.acquire()  # the page sampler
    host.stats.acquire()  # the stall sampler
    host.stats.release()
    assert sysctl.read_text() == "1\n" and kl.guard is not None and kl.guard.recorded(BPF_STATS_ENABLED)
    host.stats.release()
    assert sysctl.read_text() == "0\n" and kl.guard.pending() == []


def test_a_guard_that_is_not_the_hosts_is_refused(tmp_path: Path, roots: Roots) -> None:
    platform = KernelPlatform(roots=roots)
    platform.make_loop(lambda: [], LoopConfig(samplers=[], knob_state=tmp_path / "k.json"))
    other = KnobGuard(tmp_path / "other.json", roots.root)
    with pytest.raises(InputError, match="one guard per process"):
        platform.pressure_io().stall_source(other)


def test_a_loop_config_with_other_roots_is_refused(tmp_path: Path, roots: Roots) -> None:
    with pytest.raises(InputError, match="are not the platform's"):
        KernelPlatform(roots=roots).make_loop(lambda: [], LoopConfig(samplers=[], roots=Roots()))


def test_the_platform_defaults_to_the_live_roots(tmp_path: Path) -> None:
    p = KernelPlatform(tmp_path)
    assert p.roots == Roots(cgroup=tmp_path) and p.procs.root == Path("/proc")
    assert p.topology.sys_root == Path("/sys") and p.cgroups.proc_root == Path("/proc")
