"""The bcc samplers on this host: bpf-fault (tracepoint) and bpf-perf (software perf event).

A child process maps N fresh private anonymous pages (MADV_NOHUGEPAGE: one fault per 4 KiB page)
and touches each once after the sampler started; the samplers must see those N pages under the
child's pid and cgroup. Needs root and bcc; the unit parts (headers, event parsing, bcc missing)
run everywhere.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tierctl.errors import InputError, UnavailableError
from tierctl.kernel import bpfhost
from tierctl.kernel.bpfhost import BpfHost
from tierctl.kernel.cgroupfs import CgroupTree, cgroup2_root, cgroup_id
from tierctl.kernel.pmu import parse_event_terms
from tierctl.samplers import bpf_bcc, bpf_compile, bpf_headers
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import RAW_SAMPLE_DTYPE, Availability, SourceSampler, Targets
from tierctl.samplers.fault import FaultSampler
from tierctl.samplers.perf_addr import PerfAddrSampler

PAGE = 4096

CHILD = r"""
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
n = int(sys.argv[1])
size = n * 4096
addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
if addr in (None, ctypes.c_void_p(-1).value) or libc.madvise(addr, size, 15) != 0:  # MADV_NOHUGEPAGE
    raise SystemExit("mmap/madvise failed")
print("READY", addr, size, flush=True)
for line in sys.stdin:
    if line.strip() == "touch":
        for off in range(0, size, 4096):
            ctypes.memset(addr + off, 1, 1)
        print("TOUCHED", flush=True)
    else:
        break
"""


def _bcc_skip_reason() -> str | None:
    problem = BpfHost().privilege_problem()
    if problem:
        return problem
    try:
        bpf_bcc.load_bcc()
    except UnavailableError as e:
        return e.message
    return None


SKIP = _bcc_skip_reason()
needs_bcc = pytest.mark.skipif(SKIP is not None, reason=f"bcc samplers cannot run here: {SKIP}")


@dataclass
class Child:
    proc: subprocess.Popen[str]
    addr: int
    size: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def vpn_range(self) -> tuple[int, int]:
        return self.addr >> 12, (self.addr + self.size) >> 12

    def touch(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("touch\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "TOUCHED"

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def spawn_child(pages: int, cgroup_dir: Path | None = None) -> Child:
    """A child that has mapped ``pages`` fresh 4 KiB pages and touches them on ``touch()``."""
    cmd = [sys.executable, "-c", CHILD, str(pages)]
    if cgroup_dir is not None:  # join the cgroup, then exec the child (its faults are charged there)
        cmd = ["sh", "-c", f'echo $$ > {cgroup_dir}/cgroup.procs && exec "$@"', "sh", *cmd]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"child did not start: {line}")
    return Child(proc, int(line[1]), int(line[2]))


@pytest.fixture
def child_factory() -> Iterator[object]:
    children: list[Child] = []

    def make(pages: int, cgroup_dir: Path | None = None) -> Child:
        children.append(spawn_child(pages, cgroup_dir))
        return children[-1]

    yield make
    for c in children:
        c.stop()


@pytest.fixture
def v2_cgroup(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh cgroup in the v2 hierarchy (/sys/fs/cgroup/unified on this hybrid host).

    Request it before child_factory: fixtures tear down in reverse order, children first."""
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    d = root / f"tierctl-bpf-test-{os.getpid()}-{request.node.name[-20:]}"
    d.mkdir()
    yield d
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            d.rmdir()
            break
        time.sleep(0.05)


@pytest.fixture
def started() -> Iterator[list[SourceSampler]]:
    samplers: list[SourceSampler] = []
    yield samplers
    for s in samplers:
        s.stop()


def in_mapping(raw: np.ndarray, child: Child) -> np.ndarray:
    lo, hi = child.vpn_range
    return raw[(raw["pid"] == child.pid) & (raw["vpn"] >= lo) & (raw["vpn"] < hi)]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# --------------------------------------------------------------------------------- the samplers
@needs_bcc
def test_fault_sampler_counts_the_pages_a_child_touches_under_its_pid_and_cgroup(
    v2_cgroup: Path, child_factory, started: list[SourceSampler]
) -> None:
    n = 2000
    child = child_factory(n, v2_cgroup)
    s = FaultSampler()
    assert s.probe().ok, s.probe().reason
    started.append(s)
    s.start(Targets(pids=(child.pid,)))
    child.touch()
    raw = s.drain()
    assert raw.dtype == RAW_SAMPLE_DTYPE
    mine = in_mapping(raw, child)
    assert abs(int(mine["count"].sum()) - n) <= n // 100, (len(mine), int(mine["count"].sum()))
    assert len(mine) >= n * 0.99 and (mine["count"] == 1).mean() > 0.99  # one fault per page
    assert set(raw["pid"].tolist()) == {child.pid}  # the pid filter keeps everyone else out
    # bpf_get_current_cgroup_id() is the v2 id = inode of the child's v2 cgroup directory, also on
    # a hybrid (v1 memory controller + v2 "unified") host like this one
    tree = CgroupTree.mounted()
    assert tree is not None and tree.pid_dir(child.pid) == v2_cgroup
    assert set(mine["cgroup"].tolist()) == {v2_cgroup.stat().st_ino} == {tree.pid_id(child.pid)}
    assert tree.path_of(int(mine["cgroup"][0])) == v2_cgroup
    want = L.SampleFlag.FAULT | L.SampleFlag.USER | L.SampleFlag.WRITE
    assert np.all(mine["flags"] & want == want)
    assert len(s.drain()) == 0  # drained means deleted
    h = s.health()
    assert h.samples == len(raw) and h.dropped == 0
    assert s.counters()["events"] >= n


@needs_bcc
def test_cgroup_targets_select_by_cgroup(v2_cgroup: Path, child_factory, started) -> None:
    inside = child_factory(300, v2_cgroup)
    outside = child_factory(300)
    s = FaultSampler(migrations=False)
    started.append(s)
    s.start(Targets(cgroup_ids=(cgroup_id(v2_cgroup),)))
    inside.touch()
    outside.touch()
    raw = s.drain()
    assert int(in_mapping(raw, inside)["count"].sum()) == 300
    assert len(in_mapping(raw, outside)) == 0
    assert set(raw["cgroup"].tolist()) == {cgroup_id(v2_cgroup)}


@needs_bcc
def test_perf_sampler_software_event_sees_the_child_addresses(child_factory, started) -> None:
    n = 2000
    child = child_factory(n)
    s = PerfAddrSampler(sample_period=1)
    av = s.probe()
    assert av.ok, av.reason
    if not (
        Path("/sys/bus/event_source/devices/cpu").exists()
        or Path("/sys/bus/event_source/devices/ibs_op").exists()
    ):
        assert "software page-faults" in av.reason and "no PEBS" in av.reason and "no AMD IBS" in av.reason
    started.append(s)
    s.start(Targets(pids=(child.pid,)))
    assert s.chosen is not None
    child.touch()
    raw = s.drain()
    mine = in_mapping(raw, child)
    lo, hi = child.vpn_range
    theirs = raw[raw["pid"] == child.pid]
    if s.chosen.kind == "software":
        assert abs(int(mine["count"].sum()) - n) <= n // 100
        # every sample of the child's touching loop lies in its mapping (others: its interpreter)
        assert int(mine["count"].sum()) / max(1, int(theirs["count"].sum())) > 0.5
    assert len(mine) > 0 and np.all((mine["vpn"] >= lo) & (mine["vpn"] < hi))
    assert np.all(raw["flags"] == L.SampleFlag.PERF)


@needs_bcc
def test_tiny_map_counts_drops(child_factory, started) -> None:
    child = child_factory(1000)
    s = FaultSampler(max_entries=16, migrations=False)
    started.append(s)
    s.start(Targets(pids=(child.pid,)))
    child.touch()
    raw = s.drain()
    h = s.health()
    assert len(raw) <= 16
    assert h.dropped > 0
    assert h.dropped + int(raw["count"].sum()) >= 1000  # nothing vanishes silently
    assert s.counters()["drop_map_full"] == h.dropped


@needs_bcc
def test_batch_and_iterate_drains_agree(child_factory, started) -> None:
    results = {}
    for mode in ("batch", "iterate"):
        child = child_factory(500)
        s = FaultSampler(migrations=False, drain_mode=mode)
        started.append(s)
        s.start(Targets(pids=(child.pid,)))
        child.touch()
        mine = in_mapping(s.drain(), child)
        results[mode] = (len(mine), int(mine["count"].sum()))
        s.stop()
    assert results["batch"] == results["iterate"] == (500, 500)


@needs_bcc
def test_kernel_without_batch_ops_falls_back_to_iterate(child_factory, started) -> None:
    import ctypes
    import errno

    child = child_factory(300)
    s = FaultSampler(migrations=False)
    started.append(s)
    s.start(Targets(pids=(child.pid,)))
    real = s._lib

    class NoBatch:  # a libbcc on a kernel before 5.6: BPF_MAP_LOOKUP_AND_DELETE_BATCH is EINVAL
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        @staticmethod
        def bpf_lookup_and_delete_batch(*_: object) -> int:
            ctypes.set_errno(errno.EINVAL)
            return -1

    s._lib = NoBatch()
    child.touch()
    mine = in_mapping(s.drain(), child)
    assert (len(mine), int(mine["count"].sum())) == (300, 300)
    assert s.drain_mode == "iterate"
    assert any("batch lookup-and-delete unsupported (Invalid argument)" in n for n in s.health().notes)
    assert len(s.drain()) == 0


@needs_bcc
def test_shipped_header_tree_compiles_even_when_kernel_headers_exist(child_factory, started) -> None:
    child = child_factory(100)
    for cls in (FaultSampler, PerfAddrSampler):
        s = cls(headers="shipped")
        started.append(s)
        s.start(Targets(pids=(child.pid,)))
        assert s.headers is not None and s.headers.kind == "shipped"
        assert s.headers.path == bpf_headers.shipped_headers()
        assert s.compile_seconds < 30
        s.stop()


@needs_bcc
def test_stop_detaches_and_restores(child_factory) -> None:
    stats_before = bpfhost.BPF_STATS_SYSCTL.read_text() if bpfhost.BPF_STATS_SYSCTL.exists() else None
    tracefs_before = bpfhost.Tracefs().dir()
    child = child_factory(200)
    fds_before = open_fds()
    s = FaultSampler()
    s.start(Targets(pids=(child.pid,)))
    child.touch()
    assert s.health().bpf_run_ns > 0  # kernel BPF stats were on
    s.stop()
    s.stop()  # idempotent
    assert len(s.drain()) == 0
    assert open_fds() == fds_before  # programs, maps, perf fds all closed
    assert bpfhost.Tracefs().dir() == tracefs_before
    if stats_before is not None:
        assert bpfhost.BPF_STATS_SYSCTL.read_text() == stats_before


# -------------------------------------------------------------------------------- error paths
@needs_bcc
def test_compile_error_gives_the_first_compiler_error_line() -> None:
    bad = (
        bpf_headers.bpf_dir() / "fault_sampler.c"
    ).read_text() + "\nint tierctl_broken(void) { return no_such_symbol; }\n"
    s = FaultSampler(source=bad)
    assert s.probe().ok  # probe does not compile
    fds_before = open_fds()
    with pytest.raises(UnavailableError) as ei:
        s.start(Targets())
    msg = ei.value.message
    assert msg.startswith("compile error in fault_sampler.c: line ")
    assert "error: use of undeclared identifier 'no_such_symbol'" in msg
    assert "\n" not in msg
    assert open_fds() == fds_before
    assert len(s.drain()) == 0


@needs_bcc
def test_verifier_refusal_gives_the_verifier_verdict() -> None:
    text = (bpf_headers.bpf_dir() / "addr_sampler.c").read_text()
    bad = text.replace("u64 addr = ctx->addr;", "u64 addr = *(u64 *)((char *)ctx + 4096);")
    assert bad != text
    fds_before = open_fds()
    with pytest.raises(UnavailableError) as ei:
        PerfAddrSampler(source=bad).start(Targets())
    msg = ei.value.message
    assert msg.startswith("the kernel refused to load the program: Failed to load BPF program")
    assert msg.endswith("(verifier: invalid bpf_context access off=4096 size=8)"), msg
    assert open_fds() == fds_before


@needs_bcc
def test_refused_attach_is_one_reason_and_leaves_nothing_attached(monkeypatch) -> None:
    import bcc.utils  # type: ignore[import-not-found]

    monkeypatch.setattr(bcc.utils, "get_online_cpus", lambda: [0, 4095])  # CPU 4095 does not exist
    fds_before = open_fds()
    s = PerfAddrSampler(event="software")
    with pytest.raises(
        UnavailableError, match=r"^attach refused: perf_event_open\(software page-faults .* on CPU 4095: "
    ):
        s.start(Targets())
    assert open_fds() == fds_before  # the CPU 0 event was closed again


def test_bcc_missing_is_one_clear_reason(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(UnavailableError, match=r"^bcc is not installed: .*apt install python3-bpfcc"):
        bpf_bcc.load_bcc(search=(str(tmp_path),))
    monkeypatch.setattr(BpfHost, "privilege_problem", lambda self: None)
    av = FaultSampler(bcc_search=(str(tmp_path),)).probe()
    assert not av.ok and av.reason.startswith("bcc is not installed")
    with pytest.raises(UnavailableError, match=r"^bcc is not installed"):
        PerfAddrSampler(bcc_search=(str(tmp_path),)).start(Targets())


def test_bcc_that_fails_to_import_is_one_clear_reason(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "bcc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise OSError('libbcc.so.0: cannot open shared object file')\n")
    for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(UnavailableError, match=r"^bcc at .*failed to import: libbcc\.so\.0: cannot open"):
        bpf_bcc.load_bcc(search=(str(tmp_path),))
    assert "bcc" not in sys.modules


def test_not_root_is_one_clear_reason(monkeypatch) -> None:
    monkeypatch.setattr(BpfHost, "privilege_problem", lambda self: "not root: test")
    for s in (FaultSampler(), PerfAddrSampler()):
        assert s.probe() == Availability(False, "not root: test")
        with pytest.raises(UnavailableError, match=r"^not root: test$"):
            s.start(Targets())


def test_bad_parameters_are_input_errors() -> None:
    with pytest.raises(InputError):
        FaultSampler(max_entries=0)
    with pytest.raises(InputError):
        PerfAddrSampler(event="pmu")
    with pytest.raises(InputError):
        FaultSampler(drain_mode="fast")


# ------------------------------------------------------------------------ headers, text, parsing
def _tree(root: Path) -> Path:
    (root / "include" / "linux").mkdir(parents=True)
    (root / "include" / "linux" / "kconfig.h").write_text("")
    return root


def test_header_resolution_order(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    mods = tmp_path / "modules"
    # nothing for this release: the shipped tree, with the running kernel's version code
    h = bpf_headers.find_headers(release="6.18.44-x", modules_dir=mods)
    assert h.kind == "shipped" and h.path == bpf_headers.shipped_headers()
    assert dict(h.env)["BCC_KERNEL_SOURCE"] == str(bpf_headers.shipped_headers())
    assert h.cflags == (f"-DLINUX_VERSION_CODE={(6 << 16) + (18 << 8) + 44}",)
    with pytest.raises(UnavailableError, match=r"no kernel headers for 6\.18\.44-x"):
        bpf_headers.find_headers("kernel", release="6.18.44-x", modules_dir=mods)
    # auto prefers the shipped tree even where the kernel's headers exist (10-20x faster to compile)
    _tree(mods / "6.12.1" / "build")
    assert bpf_headers.find_headers(release="6.12.1", modules_dir=mods).kind == "shipped"
    h = bpf_headers.find_headers("kernel", release="6.12.1", modules_dir=mods)
    assert h.kind == "kernel" and dict(h.env) == {"BCC_KERNEL_SOURCE": None}  # bcc not pointed elsewhere
    # Debian's split: build/ (generated) + source/ (the headers), as bcc reads them
    (mods / "6.12.2" / "build").mkdir(parents=True)
    _tree(mods / "6.12.2" / "source")
    assert bpf_headers.find_headers("kernel", release="6.12.2", modules_dir=mods).kind == "kernel"
    assert bpf_headers.find_headers("shipped", release="6.12.2", modules_dir=mods).kind == "shipped"
    # without the shipped tree, auto falls back to the kernel's
    monkeypatch.setenv("TIERCTL_BPF_DIR", str(tmp_path / "gone"))
    assert bpf_headers.find_headers(release="6.12.1", modules_dir=mods).kind == "kernel"
    monkeypatch.undo()
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    # a user's BCC_KERNEL_SOURCE comes first
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(_tree(tmp_path / "mine")))
    assert bpf_headers.find_headers(release="6.12.1", modules_dir=mods).kind == "env"
    assert bpf_headers.kernel_version_code("6.12.117+deb13-amd64") == (6 << 16) + (12 << 8) + 117
    assert bpf_headers.kernel_version_code("5.4.300") == (5 << 16) + (4 << 8) + 255


def test_shipped_tree_is_small_and_documented() -> None:
    files = [p for p in bpf_headers.shipped_headers().rglob("*") if p.is_file()]
    assert (bpf_headers.shipped_headers() / "README").exists()
    assert len(files) <= 20 and sum(p.stat().st_size for p in files) < 64 * 1024
    readme = (bpf_headers.shipped_headers() / "README").read_text()
    for p in files:
        if p.name != "README":
            assert str(p.relative_to(bpf_headers.shipped_headers())) in readme, p


def test_print_bpf_returns_the_generated_program() -> None:
    fault = bpf_compile.print_bpf("bpf-fault")
    assert "TRACEPOINT_PROBE(exceptions, page_fault_user)" in fault
    assert "TRACEPOINT_PROBE(migrate, mm_migrate_pages)" in fault
    assert "struct tierctl_key {" in fault and '#include "tierctl.h"' not in fault
    assert fault.startswith(
        "// tierctl BPF program fault_sampler.c, compiled by bcc with: -DTIERCTL_MAX_ENTRIES=65536"
    )
    perf = bpf_compile.print_bpf("addr_sampler", {"TIERCTL_MAX_ENTRIES": 16})
    assert "ctx->addr" in perf and "-DTIERCTL_MAX_ENTRIES=16" in perf.splitlines()[0]
    assert bpf_compile.program_text("fault") in fault
    with pytest.raises(InputError):
        bpf_compile.print_bpf("nope")


def test_pebs_event_terms_and_a_refused_pmu_falls_back_to_software(tmp_path: Path, monkeypatch) -> None:
    cpu = tmp_path / "cpu"
    (cpu / "events").mkdir(parents=True)
    (cpu / "format").mkdir()
    (cpu / "type").write_text("4\n")
    (cpu / "events" / "mem-loads").write_text("event=0xcd,umask=0x1,ldlat=3\n")
    for name, fmt in (("event", "config:0-7"), ("umask", "config:8-15"), ("ldlat", "config1:0-15")):
        (cpu / "format" / name).write_text(fmt + "\n")
    assert parse_event_terms("event=0xcd,umask=0x1,ldlat=3", cpu / "format") == {
        "config": 0x1CD,
        "config1": 3,
        "config2": 0,
    }
    (cpu / "format" / "split").write_text("config:0-3,8-11\n")
    assert parse_event_terms("split=0xab", cpu / "format")["config"] == 0xB | (0xA << 8)
    if SKIP is not None:
        pytest.skip(f"the perf_event_open probe needs root and bcc: {SKIP}")
    s = PerfAddrSampler(event_sources=tmp_path)
    av = s.probe()
    if Path("/sys/bus/event_source/devices/cpu/events/mem-loads").exists():
        return  # a real PMU: the fake one may well open
    assert av.ok and "software page-faults" in av.reason
    assert "Intel PEBS cpu/mem-loads/: perf_event_open: " in av.reason
    assert not PerfAddrSampler(event="pebs", event_sources=tmp_path).probe().ok


def test_cgroup_ids_resolve_to_directories() -> None:
    tree = CgroupTree.mounted()
    if tree is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    root = tree.root
    assert root == cgroup2_root()
    assert tree.path_of(cgroup_id(root)) == root
    assert tree.path_of(2**63 + 12345) is None
    mine = tree.pid_dir(os.getpid())
    assert mine is not None and tree.pid_id(os.getpid()) == cgroup_id(mine)
    assert tree.descendant_ids(cgroup_id(root))[0] == cgroup_id(root)


@needs_bcc
@pytest.mark.parametrize("cls", [FaultSampler, PerfAddrSampler], ids=["fault", "perf"])
def test_throttle_keeps_one_event_in_2k_and_counts_estimate_them(cls, child_factory, started) -> None:
    n = 16384
    child = child_factory(n)
    s = cls()
    started.append(s)
    s.start(Targets(pids=(child.pid,)))
    assert s.throttle() and s.throttle()  # 1 in 4
    child.touch()
    mine = in_mapping(s.drain(), child)
    # ~n/4 pages sampled (binomial: sd ~55), each counted as 4 events
    assert abs(len(mine) - n / 4) < 6 * 55, len(mine)
    assert set(mine["count"].tolist()) == {4}
    assert abs(int(mine["count"].sum()) - n) < 0.1 * n
    assert any("1 in 4" in note for note in s.health().notes)
    for _ in range(4):
        s.throttle()
    assert not s.throttle()  # 1 in 64 is the floor
