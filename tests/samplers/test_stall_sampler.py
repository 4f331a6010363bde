"""bpf-stall on this host, the memory.events/PSI fallback on fake trees, and the chain between them.

The BPF tests make real memcg reclaim happen: a child process joins a cgroup whose memory limit the
test sets (cgroup v2: memory.max of /sys/fs/cgroup/tierctl-test-*; on this hybrid host the v1 memory
cgroup's limit_in_bytes below the test's own memory cgroup, plus a v2 cgroup under the unified mount
for the id bpf_get_current_cgroup_id reports) and writes more file data than the limit holds, or
allocates anonymous memory until the OOM killer takes it. Needs root and bcc (else skipped).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.samplers.test_bpf_samplers import SKIP, open_fds
from tierctl.errors import InputError, KernelError, UnavailableError
from tierctl.kernel import bpfhost
from tierctl.kernel.bpfhost import BpfHost
from tierctl.kernel.cgroupfs import CgroupFS, cgroup2_root, cgroup_id
from tierctl.kernel.procfs import ProcFS
from tierctl.samplers import bpf_bcc, bpf_compile, bpf_headers
from tierctl.samplers.base import Availability, Health, Targets
from tierctl.samplers.chain import Budget
from tierctl.samplers.stall import (
    STALL_VAL_FIELDS,
    TRACEPOINTS,
    CgroupStall,
    StallCounter,
    StallReport,
    StallSampler,
)
from tierctl.samplers.stall_fallback import StallChain, StallFallback

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cgroupfs"
STALL_FIX = FIX / "stall-v2"
MIB = 1 << 20

needs_bcc = pytest.mark.skipif(SKIP is not None, reason=f"bcc samplers cannot run here: {SKIP}")

# The child: joins the cgroups (writes its pid into each cgroup.procs given), then
#   write DIR MIB   writes MIB MiB into a new file in DIR (page cache charged to the cgroup), unlinks it
#   read MIB DIR..  reads up to MIB MiB of the regular files below the DIRs (uncached file pages)
#   oom             allocates and touches anonymous memory until it is killed
ALLOC = r"""
import os, sys
args = sys.argv[1:]
while args and args[0] == "--join":
    with open(args[1], "w") as f:
        f.write(str(os.getpid()))
    args = args[2:]
mode, rest = args[0], args[1:]
done = 0
if mode == "write":
    path = os.path.join(rest[0], f"tierctl-stall-{os.getpid()}")
    try:
        with open(path, "wb") as f:
            buf = b"x" * (1 << 20)
            for _ in range(int(rest[1])):
                f.write(buf)
                done += len(buf)
    finally:
        os.unlink(path)
elif mode == "read":
    want = int(rest[0]) << 20
    for top in rest[1:]:
        for d, _, files in os.walk(top):
            for name in files:
                p = os.path.join(d, name)
                if done >= want or os.path.islink(p) or not os.path.isfile(p):
                    continue
                try:
                    with open(p, "rb", buffering=0) as f:
                        while chunk := f.read(1 << 20):
                            done += len(chunk)
                except OSError:
                    pass
elif mode == "oom":
    keep = []
    while True:
        keep.append(bytearray(b"y" * (1 << 20)))
print("DONE", done, flush=True)
"""


# ---------------------------------------------------------------------------------- test cgroups
@dataclass
class LimitedCgroup:
    id_dir: Path  # the v2 directory: its inode is the id BPF reports
    memory_dir: Path  # where the limit is set (the same directory on cgroup v2)
    procs: tuple[Path, ...]  # the cgroup.procs files a child joins

    @property
    def id(self) -> int:
        return cgroup_id(self.id_dir)

    @property
    def rel(self) -> str:
        """The memory cgroup's path for CgroupFS."""
        return str(self.memory_dir.relative_to(CgroupFS().memory_root))

    def run(self, *args: str, timeout: float = 120) -> Ran:
        """Run the ALLOC child in the cgroup with ``args`` and wait for it."""
        joins = [a for p in self.procs for a in ("--join", str(p))]
        cmd = [sys.executable, "-c", ALLOC, *joins, *args]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            return Ran(proc.pid, proc.returncode, out, err)


@dataclass(frozen=True)
class Ran:
    pid: int
    returncode: int
    stdout: str
    stderr: str


def _rmdir(d: Path) -> None:
    deadline = time.monotonic() + 10
    while d.exists() and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            d.rmdir()
            return
        time.sleep(0.05)


@contextlib.contextmanager
def limited_cgroup(name: str, limit: int) -> Iterator[LimitedCgroup]:
    """A fresh cgroup whose memory the test limits to ``limit`` bytes, removed afterwards."""
    fs = CgroupFS()
    tag = f"tierctl-test-{os.getpid()}-{name}"
    made: list[Path] = []
    try:
        if fs.v2:
            d = fs.root / tag
            d.mkdir()
            made.append(d)
            fs.enable_controllers(tag, ("memory",))  # in the root's subtree_control, when missing
            (d / "memory.max").write_text(str(limit))
            if (d / "memory.swap.max").exists():
                (d / "memory.swap.max").write_text("0")
            yield LimitedCgroup(d, d, (d / "cgroup.procs",))
            return
        v2root = cgroup2_root()
        if v2root is None:
            pytest.skip("no cgroup v2 hierarchy mounted: BPF cgroup ids mean nothing here")
        mem = fs.memory_root / ProcFS().cgroup_path("self") / tag  # below the test's own memory cgroup
        mem.mkdir()
        made.append(mem)
        (mem / "memory.limit_in_bytes").write_text(str(limit))
        v2 = v2root / tag
        v2.mkdir()
        made.append(v2)
        yield LimitedCgroup(v2, mem, (mem / "cgroup.procs", v2 / "cgroup.procs"))
    finally:
        for d in reversed(made):
            _rmdir(d)


@pytest.fixture
def sampler() -> Iterator[StallSampler]:
    s = StallSampler()
    yield s
    s.stop()


DISK_FS = frozenset({"ext4", "ext3", "xfs", "btrfs", "f2fs", "virtiofs", "9p", "nfs", "nfs4"})


def scratch_dir() -> str | None:
    """A writable folder on a file system whose page cache can be reclaimed without swap (not tmpfs,
    not an overlay whose upper layer is tmpfs): /var/tmp or the temp folder, else a writable mount
    point of such a file system (in the guest: the --rwdir folder); None when there is none."""
    mounts = ProcFS().mounts()

    def fstype(p: Path) -> str:
        best = max(
            (m for m in mounts if p == m.point or m.point in p.parents), key=lambda m: len(m.point.parts)
        )
        return best.fstype

    candidates = [Path("/var/tmp"), Path(tempfile.gettempdir())]
    candidates += [m.point for m in reversed(mounts) if m.fstype in DISK_FS]
    for d in candidates:
        if not d.is_dir() or fstype(d) not in DISK_FS:
            continue
        try:
            with tempfile.NamedTemporaryFile(dir=d):
                return str(d)
        except OSError:
            continue  # read-only
    return None


# ------------------------------------------------------------------------------- the program
def test_program_is_registered_and_printed() -> None:
    text = bpf_compile.print_bpf("bpf-stall")
    assert text.startswith(
        "// tierctl BPF program stall_sampler.c, compiled by bcc with: -DTIERCTL_MAX_TARGETS="
    )
    assert "-DTIERCTL_STALL_MAX_TASKS=8192" in text.splitlines()[0]
    for category, event in TRACEPOINTS:
        assert f"TRACEPOINT_PROBE({category}, {event})" in text
    assert "enum tierctl_config {" in text and '#include "tierctl.h"' not in text  # inlined
    assert "BPF_HASH(samples" not in text  # self-contained: no page-sample map
    assert bpf_compile.program_file("stall") == bpf_compile.program_file("bpf-stall") == "stall_sampler"
    assert bpf_compile.program_file("bpf-fault") == "fault_sampler"  # the others still resolve


def test_counters_and_value_layout_match_the_program() -> None:
    text = (bpf_headers.bpf_dir() / "stall_sampler.c").read_text()
    in_c = {m[0]: int(m[1]) for m in re.findall(r"\bSTALL_CNT_(\w+) = (\d+)", text)}
    assert in_c == {c.name: int(c) for c in StallCounter}
    body = re.search(r"struct stall_val \{(.*?)\};", text, re.S)
    assert body is not None
    assert tuple(re.findall(r"u64 (\w+);", body.group(1))) == STALL_VAL_FIELDS


# ------------------------------------------------------------------------------ on this host
@needs_bcc
def test_counts_the_reclaim_stalls_of_a_child_in_a_limited_cgroup(sampler: StallSampler) -> None:
    where = scratch_dir()
    if where is None:
        pytest.skip("no writable disk-backed file system: no page cache to reclaim without swap")
    with limited_cgroup("write", 24 * MIB) as cg:
        other = StallSampler(host=sampler.host)  # another cgroup's targets: must not see this one
        sampler.start(Targets(cgroup_ids=(cg.id,)))
        try:
            other.start(Targets(cgroup_ids=(1 << 40,)))
            done = cg.run("write", where, "128")
            assert done.returncode == 0, done.stderr
            rep, rep_other = sampler.drain(), other.drain()
        finally:
            other.stop()
        row = rep.cgroup(cg.id)
        print(f"host: {row}; {sampler.counters()}; {sampler.health()}")
        assert rep.source == "bpf-stall" and rep.exact
        assert row.episodes > 0 and row.stall_ns > 0
        assert row.episodes == row.direct_episodes + row.memcg_episodes
        assert row.stall_ns == row.direct_ns + row.memcg_ns
        assert row.memcg_episodes > 0  # the limit, not the machine, was short of memory
        assert 0 < row.max_ns <= row.stall_ns
        assert rep_other.cgroup(cg.id) == CgroupStall(cg.id)
        assert sampler.drain().cgroup(cg.id) == CgroupStall(cg.id)  # drained: deltas, not totals
        h = sampler.health()
        assert h.bpf_run_ns > 0 and h.dropped == 0 and h.samples >= 1
        assert sampler.counters()["episodes"] >= row.episodes


@needs_bcc
def test_an_oom_kill_is_a_victim_with_its_cgroup_and_comm(sampler: StallSampler) -> None:
    with limited_cgroup("oom", 32 * MIB) as cg:
        sampler.start(Targets())
        done = cg.run("oom")
        assert done.returncode == -9, (done.returncode, done.stderr)
        deadline = time.monotonic() + 10
        victims: list = []
        rows: list[CgroupStall] = []
        while not victims and time.monotonic() < deadline:
            rep = sampler.drain()
            victims += [v for v in rep.victims if v.cgroup_id == cg.id]
            rows.append(rep.cgroup(cg.id))
            time.sleep(0.1)
        print(f"host: {victims}; {rows}")
        assert len(victims) == 1, victims
        v = victims[0]
        assert v.exited and v.pid == v.tgid == done.pid and v.comm.startswith("python")
        assert v.invoker_cgroup_id == cg.id  # a memcg OOM: the allocator ran the killer
        assert sum(r.oom_kills for r in rows) == 1
        assert sum(r.memcg_episodes for r in rows) > 0  # reclaim was tried before the kill
        assert sampler.counters()["victims"] >= 1


@needs_bcc
def test_stop_detaches_and_restores() -> None:
    stats_before = bpfhost.BPF_STATS_SYSCTL.read_text() if bpfhost.BPF_STATS_SYSCTL.exists() else None
    tracefs_before = bpfhost.Tracefs().dir()
    fds_before = open_fds()
    s = StallSampler()
    s.start(Targets(pids=(os.getpid(),)))
    assert any(n.startswith("compiled in") for n in s.health().notes)
    with pytest.raises(InputError, match="already started"):
        s.start(Targets())
    s.stop()
    s.stop()  # idempotent
    assert s.drain().cgroups == () and s.counters() == {}
    assert open_fds() == fds_before
    assert bpfhost.Tracefs().dir() == tracefs_before
    if stats_before is not None:
        assert bpfhost.BPF_STATS_SYSCTL.read_text() == stats_before


@needs_bcc
def test_compile_error_is_one_line_and_leaves_nothing() -> None:
    bad = (bpf_headers.bpf_dir() / "stall_sampler.c").read_text() + "\nint broken(void) { return nope; }\n"
    fds_before = open_fds()
    with pytest.raises(UnavailableError) as ei:
        StallSampler(source=bad).start(Targets())
    assert ei.value.message.startswith("compile error in stall_sampler.c: line ")
    assert "undeclared identifier 'nope'" in ei.value.message and "\n" not in ei.value.message
    assert open_fds() == fds_before


def _fake_tracefs(root: Path, without: tuple[str, str]) -> None:
    for category, event in TRACEPOINTS:
        if (category, event) != without:
            d = root / "sys/kernel/tracing/events" / category / event
            d.mkdir(parents=True)
            (d / "format").write_text("name: x\n")


def test_probe_names_the_missing_tracepoint(tmp_path: Path, monkeypatch) -> None:
    try:
        bpf_bcc.load_bcc()
    except UnavailableError as e:
        pytest.skip(f"the tracepoint check comes after bcc: {e.message}")
    monkeypatch.setattr(BpfHost, "privilege_problem", lambda self: None)
    _fake_tracefs(tmp_path, ("oom", "mark_victim"))
    s = StallSampler(host=BpfHost(root=tmp_path, run_dir=tmp_path / "run"))
    av = s.probe()
    missing = tmp_path / "sys/kernel/tracing/events/oom/mark_victim"
    assert av == Availability(False, f"the kernel has no tracepoint oom:mark_victim ({missing} missing)")
    with pytest.raises(UnavailableError, match="no tracepoint oom:mark_victim"):
        s.start(Targets())
    assert s.host.tracefs.users == 0  # released again


def test_not_root_and_no_bcc_are_one_reason_each(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(BpfHost, "privilege_problem", lambda self: "not root: test")
    assert StallSampler().probe() == Availability(False, "not root: test")
    with pytest.raises(UnavailableError, match=r"^not root: test$"):
        StallSampler().start(Targets())
    monkeypatch.setattr(BpfHost, "privilege_problem", lambda self: None)
    av = StallSampler(bcc_search=(str(tmp_path),)).probe()
    assert not av.ok and av.reason.startswith("bcc is not installed")


def test_bad_bounds_are_input_errors() -> None:
    for kw in ({"max_tasks": 0}, {"max_cgroups": 0}, {"max_victims": 0}, {"victim_grace_s": -1}):
        with pytest.raises(InputError):
            StallSampler(**kw)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        StallFallback(max_cgroups=0)


# ------------------------------------------------------------------------------- the fallback
def _tree(tmp_path: Path) -> tuple[CgroupFS, Path]:
    shutil.copytree(STALL_FIX, tmp_path / "t")
    root = tmp_path / "t" / "cgroup"
    return CgroupFS(root, proc_root=tmp_path / "t" / "proc", page_size=4096), root


def _events(d: Path, **kw: int) -> None:
    text = (d / "memory.events").read_text()
    ev = {k: int(v) for k, v in (line.split() for line in text.splitlines())}
    ev.update(kw)
    (d / "memory.events").write_text("".join(f"{k} {v}\n" for k, v in ev.items()))


def _full(d: Path, total_us: int) -> None:
    lines = (d / "memory.pressure").read_text().splitlines()
    lines[1] = re.sub(r"total=\d+", f"total={total_us}", lines[1])
    (d / "memory.pressure").write_text("\n".join(lines) + "\n")


def test_fallback_reports_deltas_of_memory_events_and_psi_full(tmp_path: Path) -> None:
    fs, root = _tree(tmp_path)
    fb = StallFallback(fs)
    av = fb.probe()
    assert av.ok and av.reason.startswith("memory.events (max, high, oom_kill) and PSI full totals below ")
    fb.start(Targets())
    assert fb.drain().cgroups == ()  # nothing changed since start
    _events(root / "work", max=52, high=3, oom_kill=2)
    _full(root / "work", 640_000)
    _events(root / "work" / "batch", max=45)
    rep = fb.drain()
    assert rep.source == "stall-fallback" and not rep.exact and rep.victims == ()
    work, batch = cgroup_id(root / "work"), cgroup_id(root / "work" / "batch")
    assert rep.cgroup(work) == CgroupStall(
        work, 15, 30_000_000, memcg_episodes=15, memcg_ns=30_000_000, oom_kills=1, path="work"
    )
    assert rep.cgroup(batch) == CgroupStall(batch, 5, 0, memcg_episodes=5, path="work/batch")
    assert {c.path for c in rep.cgroups} == {"work", "work/batch"}  # idle unchanged, nomem skipped
    assert fb.drain().cgroups == ()
    assert fb.health().samples == 2 and fb.health().bpf_run_ns == 0
    fb.stop()
    assert fb.drain().cgroups == ()


def test_fallback_counts_a_new_cgroup_from_zero_and_forgets_a_removed_one(tmp_path: Path) -> None:
    fs, root = _tree(tmp_path)
    fb = StallFallback(fs)
    fb.start(Targets())
    new = root / "late"
    shutil.copytree(root / "work" / "batch", new)
    shutil.rmtree(root / "idle")
    rep = fb.drain()
    assert rep.cgroup(cgroup_id(new)) == CgroupStall(
        cgroup_id(new), 40, 600_000_000, memcg_episodes=40, memcg_ns=600_000_000, oom_kills=1, path="late"
    )
    assert [c.path for c in rep.cgroups] == ["late"]


def test_fallback_targets_select_subtrees(tmp_path: Path) -> None:
    fs, root = _tree(tmp_path)
    fb = StallFallback(fs)
    fb.start(Targets(cgroup_ids=(cgroup_id(root / "work" / "batch"),)))
    _events(root / "work", max=50)
    _events(root / "work" / "batch", max=50)
    assert [c.path for c in fb.drain().cgroups] == ["work/batch"]
    with pytest.raises(InputError, match="name only 0 cgroups"):
        StallFallback(fs).start(Targets(cgroup_ids=(1 << 40,)))


def test_fallback_needs_cgroup_v2(tmp_path: Path) -> None:
    fs = CgroupFS(FIX / "host-hybrid", proc_root=tmp_path, page_size=4096)
    fb = StallFallback(fs)
    assert fb.probe() == Availability(
        False, "cgroup hybrid layout: per-cgroup memory.events and PSI need cgroup v2"
    )
    with pytest.raises(UnavailableError, match="hybrid layout"):
        fb.start(Targets())


# ---------------------------------------------------------------------------------- the chain
@dataclass
class FakeSource:
    name: str
    avail: Availability = dataclasses.field(default_factory=lambda: Availability(True, "fake"))
    fail_start: bool = False
    fail_drain: bool = False
    cpu: float = 0.0
    started: int = 0
    stopped: int = 0

    def probe(self) -> Availability:
        return self.avail

    def start(self, targets: Targets) -> None:
        if self.fail_start:
            raise UnavailableError("cannot")
        self.started += 1

    def drain(self) -> StallReport:
        if self.fail_drain:
            raise KernelError("broken", "somewhere")
        return StallReport(self.name, self.name == "bpf", 1.0, (CgroupStall(5, 1, 2),))

    def stop(self) -> None:
        self.stopped += 1

    def health(self) -> Health:
        return Health(cpu_seconds=self.cpu)


def test_chain_uses_the_first_source_that_starts() -> None:
    bpf, fb = FakeSource("bpf", Availability(False, "not root: test")), FakeSource("fallback")
    chain = StallChain([bpf, fb])
    status = chain.start(Targets())
    assert [(s.name, s.state, s.reason) for s in status] == [
        ("bpf", "unavailable", "not root: test"),
        ("fallback", "running", "fake"),
    ]
    assert chain.running == "fallback" and chain.drain().source == "fallback"
    assert chain.watchdog() == ["fallback: running (fake)"]
    chain.stop()
    assert fb.stopped == 1 and chain.running is None


def test_chain_hands_over_when_start_or_drain_fails() -> None:
    bpf, fb = FakeSource("bpf", fail_drain=True), FakeSource("fallback")
    chain = StallChain([bpf, fb])
    chain.start(Targets())
    assert chain.running == "bpf" and fb.started == 0  # the fallback waits
    assert chain.drain() == StallReport("fallback", False, 0.0)
    assert chain.running == "fallback" and bpf.stopped == 1
    notes = chain.watchdog()
    assert "bpf: detached (failed during drain: KernelError: somewhere: broken)" in notes
    assert chain.drain().source == "fallback"
    chain2 = StallChain([FakeSource("bpf", fail_start=True), FakeSource("fallback")])
    status = chain2.start(Targets())
    assert status[0].reason == "start failed: UnavailableError: cannot" and chain2.running == "fallback"


def test_chain_watchdog_detaches_a_source_over_budget() -> None:
    now = [0.0]
    bpf, fb = FakeSource("bpf"), FakeSource("fallback")
    chain = StallChain([bpf, fb], budget=Budget(cpu_share=0.05), clock=lambda: now[0])
    chain.start(Targets())
    chain.watchdog()
    now[0], bpf.cpu = 10.0, 0.2  # 2 % of a core: fine
    assert chain.watchdog() == [] and chain.running == "bpf"
    now[0], bpf.cpu = 20.0, 1.2  # 10 %
    notes = chain.watchdog()
    assert notes[0] == "bpf: detached (over budget: user CPU 10.0% > 5.0%)"
    assert chain.running == "fallback"


def test_chain_without_any_source_reports_nothing() -> None:
    chain = StallChain([FakeSource("bpf", Availability(False, "no"))])
    chain.start(Targets())
    assert chain.running is None and chain.drain() == StallReport("", False, 0.0)


def test_chain_falls_back_to_the_fallback_on_a_fake_tree(tmp_path: Path, monkeypatch) -> None:
    """The real pair: no bcc (a search path without it) → the fallback reads the fake tree."""
    monkeypatch.setattr(BpfHost, "privilege_problem", lambda self: None)
    fs, root = _tree(tmp_path)
    chain = StallChain([StallSampler(bcc_search=(str(tmp_path),)), StallFallback(fs)])
    status = chain.start(Targets())
    assert status[0].state == "unavailable" and status[0].reason.startswith("bcc is not installed")
    assert chain.running == "stall-fallback"
    _events(root / "work", oom_kill=3)
    assert chain.drain().cgroup(cgroup_id(root / "work")).oom_kills == 2
    chain.stop()


def test_report_rows_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CgroupStall(1).episodes = 2  # type: ignore[misc]
