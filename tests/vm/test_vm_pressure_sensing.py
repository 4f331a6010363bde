"""Pressure sensing and actuators on the guest's real kernel: PSI triggers, memory by kind, memory events,
memory.reclaim (with and without demotion), cgroup.kill.

Each test makes its own cgroup; the limits (memory.max) are set by the tests on their own cgroups,
never by tierctl. Measured figures are printed and attached to the junit report (``record_property``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tierctl.errors import InputError
from tierctl.kernel.cgroupfs import CgroupFS, ReclaimIncompleteError
from tierctl.kernel.memstat import MemStat
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.psi import PsiTrigger, PsiWatcher, TriggerGoneError, TriggerSpec

pytestmark = pytest.mark.vm
MiB = 1 << 20
DEMOTION = Path("/sys/kernel/mm/numa/demotion_enabled")
FILES = "/usr/lib/x86_64-linux-gnu"  # ~680 MB of files on the virtiofs root: page cache to thrash

# anon MiB (private, 4 KiB pages, touched), then reads the first WARM files once and prints READY, then
# re-reads all the files under FILES until SECONDS pass or a line arrives on stdin
CHILD = r"""
import mmap, os, select, sys, time
anon = mmap.mmap(-1, int(sys.argv[1]) << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
anon.madvise(mmap.MADV_NOHUGEPAGE)
for i in range(0, len(anon), 4096):
    anon[i] = 1
files = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[2]) for f in fs]

def read(f):
    try:
        fd = os.open(f, os.O_RDONLY)
    except OSError:
        return
    try:
        while os.read(fd, 1 << 20):
            pass
    except OSError:
        pass
    os.close(fd)

for f in files[: int(sys.argv[4])]:
    read(f)
print("READY", flush=True)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end and not select.select([sys.stdin], [], [], 0)[0]:
    for f in files:
        read(f)
        if time.monotonic() > end:
            break
sys.stdin.readline()
"""


def start(cg: str, anon_mib: int, seconds: float, warm: int = 0) -> subprocess.Popen[str]:
    cmd = [
        "sh", "-c", f'echo $$ > /sys/fs/cgroup/{cg}/cgroup.procs && exec "$@"', "sh",
        sys.executable, "-c", CHILD, str(anon_mib), FILES, str(seconds), str(warm),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    for f in (proc.stdin, proc.stdout):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()


@pytest.fixture
def fs() -> CgroupFS:
    return CgroupFS()


@pytest.fixture
def cgroup(fs: CgroupFS, request: pytest.FixtureRequest) -> Iterator[str]:
    path = f"tierctl-test-{os.getpid()}-{request.node.name[-24:]}"
    fs.create(path)
    fs.enable_controllers(path, ("memory",))  # "+memory" in the root's cgroup.subtree_control
    yield path
    for sub in reversed(fs.list(path) if fs.exists(path) else []):  # children first
        deadline = time.monotonic() + 10
        while fs.pids(sub) and time.monotonic() < deadline:
            for pid in fs.pids(sub):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            time.sleep(0.1)
        fs.remove(sub)


@pytest.fixture
def demotion() -> Iterator[Path]:
    before = DEMOTION.read_text().strip()
    yield DEMOTION
    DEMOTION.write_text("1" if before == "true" else "0")


# --- PSI triggers ----------------------------------------------------------------------------
def test_triggers_fire_under_pressure(fs: CgroupFS, cgroup: str, record_property) -> None:
    (fs.memory_root / cgroup / "memory.max").write_text(str(64 * MiB))  # the test's own limit
    spec = TriggerSpec("some", 100_000, 1_000_000)
    with PsiWatcher(fs) as w:
        assert w.add(cgroup, spec) == cgroup and w.add("", spec) == ""
        assert w.wait(0.2) == []  # nothing stalls yet
        child = start(cgroup, 40, 60)
        # the test's own throttle on its own cgroup: 40 MiB of anon (no swap) over memory.high stalls
        # every page-cache charge of the child's reads, a stall sure to cross the trigger (thrashing
        # alone gave ~50 ms/s here once, under the 100 ms/s it waits for)
        (fs.memory_root / cgroup / "memory.high").write_text(str(32 * MiB))
        t0, seen = time.monotonic(), {}
        try:
            while time.monotonic() - t0 < 45 and len(seen) < 2:
                for key in w.wait(1.0):
                    seen.setdefault(key, round(time.monotonic() - t0, 2))
            now = w.trigger(cgroup).read()
        finally:
            stop(child)
    print(f"fired after {seen} s; cgroup PSI {now}")
    for key, t in seen.items():
        record_property(f"fired_s[{key or 'system'}]", t)
    assert cgroup in seen, f"the cgroup trigger did not fire in 45 s: {now}"
    assert "" in seen, "the system trigger did not fire (NUL-terminated write?)"
    assert now.some is not None and now.some.total_us > 100_000
    ev = MemStat(fs).memory_events(cgroup)
    assert (ev.high or 0) > 0, ev  # the throttle the test set, as memory.events counts it


def test_removed_cgroup_raises_trigger_gone(fs: CgroupFS, cgroup: str) -> None:
    sub = f"{cgroup}/gone"
    fs.create(sub)
    fs.enable_controllers(sub, ("memory",))
    with PsiWatcher(fs) as w:
        w.add(sub)
        fs.remove(sub)
        with pytest.raises(TriggerGoneError) as e:
            w.wait(2.0)
        assert e.value.key == sub and "memory.pressure" in str(e.value)
        assert w.keys == []


def test_kernel_trigger_rules_match_the_validation(tmp_path: Path) -> None:
    """The kernel refuses what TriggerSpec refuses: threshold > window; without CAP_SYS_RESOURCE a window
    that is not a multiple of 2 s (6.5+), while a 2 s window works unprivileged."""
    with PsiTrigger(Path("/proc/pressure/memory"), TriggerSpec("full", 50_000, 500_000), privileged=True):
        pass
    code = (
        "import os, errno\n"
        "from pathlib import Path\n"
        "from tierctl.kernel.psi import PsiTrigger, TriggerSpec, has_cap_sys_resource\n"
        "print('cap', has_cap_sys_resource())\n"
        "with PsiTrigger(Path('/proc/pressure/memory'), TriggerSpec('some', 100000, 2000000)):\n"
        "    print('2s ok')\n"
        "fd = os.open('/proc/pressure/memory', os.O_RDWR | os.O_NONBLOCK)\n"
        "try:\n    os.write(fd, b'some 100000 1000000\\0'); print('1s ok')\n"
        "except OSError as e:\n    print('1s', errno.errorcode[e.errno])\n"
    )
    out = subprocess.run(
        ["setpriv", "--inh-caps=-sys_resource", "--bounding-set=-sys_resource", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    print(out.stdout, out.stderr)
    assert out.stdout.split("\n")[:3] == ["cap False", "2s ok", "1s EINVAL"], out.stderr


# --- memory facts ----------------------------------------------------------------------------
def test_memory_by_kind_and_events_on_real_cgroups(fs: CgroupFS, cgroup: str, record_property) -> None:
    ms = MemStat(fs)
    child = start(cgroup, 48, 0, warm=50)
    try:
        kinds = ms.memory_by_kind(cgroup)
        nodes = ms.memory_by_node(cgroup)
    finally:
        stop(child)
    print(kinds, nodes)
    assert kinds.anon >= 48 * MiB and kinds.file > 0 and kinds.kernel and kinds.slab is not None
    assert kinds.swap == 0 and kinds.zswap == 0 and kinds.refault_file is not None
    assert abs(sum(n["anon"] for n in nodes.values()) - kinds.anon) <= MiB
    sys_mem = ProcFS().meminfo()
    assert 0 < sys_mem.available < sys_mem.total and sys_mem.used > kinds.anon

    oom = f"{cgroup}/oom"
    fs.create(oom)
    fs.enable_controllers(oom, ("memory",))
    (fs.memory_root / oom / "memory.max").write_text(str(16 * MiB))
    proc = subprocess.run(
        ["sh", "-c", f'echo $$ > /sys/fs/cgroup/{oom}/cgroup.procs && exec "$@"', "sh", sys.executable, "-c",
         "import mmap\nm = mmap.mmap(-1, 64 << 20)\nfor i in range(0, len(m), 4096): m[i] = 1"],
        timeout=60, check=False,
    )  # fmt: skip
    ev, local, parent = ms.memory_events(oom), ms.memory_events(oom, local=True), ms.memory_events(cgroup)
    print(proc.returncode, ev, local, parent)
    record_property("oom_events", str(ev))
    assert proc.returncode == -9
    assert ev.oom_kill == 1 and ev.oom >= 1 and ev.max > 0 and local.oom_kill == 1 and local.local
    assert parent.oom_kill == 1 and ms.memory_events(cgroup, local=True).oom_kill == 0  # hierarchical
    fs.remove(oom)


# --- actuators -------------------------------------------------------------------------------
def test_reclaim_shrinks_memory_current(fs: CgroupFS, cgroup: str, demotion: Path, record_property) -> None:
    demotion.write_text("0")
    child = start(cgroup, 8, 0, warm=400)  # reads ~400 files once: page cache, then idles
    try:
        before = fs.memory_current(cgroup)
        fs.reclaim(cgroup, 32 * MiB)
        after = fs.memory_current(cgroup)
        fs.reclaim(cgroup, 4 * MiB, swappiness=0)  # accepted by 6.12
        with pytest.raises(ReclaimIncompleteError):
            fs.reclaim(cgroup, 1 << 30)  # anon without swap cannot go: EAGAIN
        left = fs.memory_current(cgroup)
    finally:
        stop(child)
    print(f"memory.current {before} -> {after} after 32 MiB -> {left} after 1 GiB (EAGAIN)")
    record_property("reclaim_32M_freed", before - after)
    assert before - after >= 24 * MiB
    assert left < after


def test_reclaim_with_demotion_enabled_demotes(
    fs: CgroupFS, cgroup: str, demotion: Path, child_factory, record_property
) -> None:
    """The measurement of docs/pressure-sensing.md: memory.reclaim on a cgroup whose anonymous pages are
    on node 0, demotion on, no swap."""
    demotion.write_text("1")
    proc = ProcFS()
    join = ["sh", "-c", f'echo $$ > /sys/fs/cgroup/{cgroup}/cgroup.procs && exec "$@"', "sh"]
    child = child_factory(96, thp=False, prefix=join)
    digest = child.hash()
    ms = MemStat(fs)

    def snap() -> dict[str, int]:
        nodes, vm = ms.memory_by_node(cgroup), proc.vmstat()
        return {
            "current": fs.memory_current(cgroup),
            "anon_n0": nodes[0]["anon"], "anon_n1": nodes[1]["anon"],
            "file_n0": nodes[0]["file"], "file_n1": nodes[1]["file"],
            "pgdemote_direct": vm["pgdemote_direct"], "pgsteal_anon": vm["pgsteal_anon"],
            "pgsteal_file": vm["pgsteal_file"], "pswpout": vm["pswpout"],
        }  # fmt: skip

    a = snap()
    t0 = time.monotonic()
    try:
        fs.reclaim(cgroup, 64 * MiB)
        outcome = "ok"
    except ReclaimIncompleteError:
        outcome = "EAGAIN"
    took = time.monotonic() - t0
    b = snap()
    delta = {k: b[k] - a[k] for k in a}
    print(f"reclaim 64 MiB with demotion: {outcome} in {took:.2f} s\nbefore {a}\nafter  {b}\ndelta  {delta}")
    for k, v in delta.items():
        record_property(f"delta_{k}", v)
    record_property("outcome", outcome)
    assert child.hash() == digest  # demoted, not lost
    assert a["anon_n0"] >= 90 * MiB and delta["pgdemote_direct"] > 0 and delta["anon_n1"] >= 32 * MiB
    assert delta["pswpout"] == 0


def test_kill_empties_the_cgroup(fs: CgroupFS, cgroup: str) -> None:
    a, b = start(cgroup, 4, 0), start(cgroup, 4, 0)
    assert sorted(fs.pids(cgroup)) == sorted([a.pid, b.pid])
    with pytest.raises(InputError):
        fs.kill("")
    with pytest.raises(InputError):
        fs.kill("init.scope")
    t0 = time.monotonic()
    fs.kill(cgroup)
    while fs.pids(cgroup) and time.monotonic() - t0 < 10:
        time.sleep(0.02)
    took = time.monotonic() - t0
    assert fs.pids(cgroup) == [] and a.wait(10) == -9 and b.wait(10) == -9, took
    assert "populated 0" in (fs.memory_root / cgroup / "cgroup.events").read_text()
    stop(a)
    stop(b)
