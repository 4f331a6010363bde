"""tierctl.kernel.damon against an emulated DAMON sysfs tree and a tree captured in the guest."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.damon.fake_damon import FakeDamonSysfs, make_admin_tree
from tierctl.errors import InputError, KernelError, NoSuchProcessError, TierctlError, UnavailableError
from tierctl.kernel.damon import (
    STAT_FILES,
    ULONG_MAX,
    DamonBusyError,
    DamonSession,
    DamonSysfs,
    KdamondSpec,
    KdamondState,
    MonitoringAttrs,
    node_phys_ranges,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "damon" / "guest-6.12-vaddr"
ADMIN = "sys/kernel/mm/damon/admin"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


@pytest.fixture
def fake(tmp_path: Path) -> FakeDamonSysfs:
    proc = tmp_path / "proc"
    (proc / "100").mkdir(parents=True)
    (proc / "200").mkdir(parents=True)
    clock = Clock()
    return FakeDamonSysfs(make_admin_tree(tmp_path / "admin"), proc, clock=clock, sleep=clock.sleep)


def read(fs: DamonSysfs, rel: str) -> str:
    return (fs.root / rel).read_text().strip()


def test_create_writes_one_kdamond_per_spec_with_attrs_target_and_a_match_all_stat_scheme(fake) -> None:
    attrs = MonitoringAttrs(
        sample_us=2_000, aggr_us=40_000, update_us=500_000, min_nr_regions=5, max_nr_regions=50
    )
    s = fake.create([KdamondSpec("vaddr", 100, attrs=attrs), KdamondSpec("vaddr", 200)])
    assert read(fake, "kdamonds/nr_kdamonds") == "2"
    ctx = "kdamonds/0/contexts/0"
    assert read(fake, f"{ctx}/operations") == "vaddr"
    assert read(fake, f"{ctx}/targets/0/pid_target") == "100"
    assert read(fake, "kdamonds/1/contexts/0/targets/0/pid_target") == "200"
    iv = f"{ctx}/monitoring_attrs"
    assert [read(fake, f"{iv}/intervals/{f}") for f in ("sample_us", "aggr_us", "update_us")] == [
        "2000",
        "40000",
        "500000",
    ]
    assert (read(fake, f"{iv}/nr_regions/min"), read(fake, f"{iv}/nr_regions/max")) == ("5", "50")
    sch = f"{ctx}/schemes/0"
    assert read(fake, f"{sch}/action") == "stat"
    assert read(fake, f"{sch}/access_pattern/sz/max") == str(
        ULONG_MAX
    )  # the kernel's default 0 matches nothing
    assert read(fake, f"{sch}/access_pattern/nr_accesses/max") == str(2**32 - 1)
    assert read(fake, f"{sch}/access_pattern/nr_accesses/min") == "0"
    assert read(fake, f"{sch}/access_pattern/age/max") == str(2**32 - 1)
    assert read(fake, "kdamonds/0/state") == "off"  # created, not started
    assert len(s) == 2


def test_lifecycle_start_regions_stats_stop_teardown(fake) -> None:
    s = fake.create([KdamondSpec("vaddr", 100)])
    s.start()
    assert s.running(0) and s.kdamond_pid(0) == 4000
    fake.regions[0] = [(0x3000, 0x5000, 0, 9), (0x1000, 0x3000, 7, 2)]
    regs = s.regions(0)
    assert regs.tolist() == [(0x1000, 0x3000, 7, 2), (0x3000, 0x5000, 0, 9)]  # sorted by address
    assert s.stats(0)["nr_tried"] == 2
    s.stop()
    assert s.state(0) == "off"
    s.stop()  # already off: fine
    s.teardown()
    assert read(fake, "kdamonds/nr_kdamonds") == "0"
    assert not (fake.root / "kdamonds" / "0").exists()
    s.teardown()  # idempotent
    with pytest.raises(KernelError, match="torn down"):
        s.regions(0)


def test_session_is_a_context_manager_that_tears_down(fake) -> None:
    with fake.create([KdamondSpec("vaddr", 100)]) as s:
        s.start()
    assert read(fake, "kdamonds/nr_kdamonds") == "0"


def test_paddr_spec_writes_its_regions(fake) -> None:
    fake.create([KdamondSpec("paddr", regions=((0, 1 << 30), (1 << 32, 1 << 33)))])
    t = "kdamonds/0/contexts/0/targets/0"
    assert read(fake, "kdamonds/0/contexts/0/operations") == "paddr"
    assert read(fake, f"{t}/regions/nr_regions") == "2"
    assert (read(fake, f"{t}/regions/1/start"), read(fake, f"{t}/regions/1/end")) == (
        str(1 << 32),
        str(1 << 33),
    )
    assert read(fake, f"{t}/pid_target") == "0"  # not written for paddr


def test_no_scheme_means_no_regions(fake) -> None:
    s = fake.create([KdamondSpec("vaddr", 100, scheme=None)])
    assert read(fake, "kdamonds/0/contexts/0/schemes/nr_schemes") == "0"
    s.start()
    with pytest.raises(UnavailableError, match="no scheme"):
        s.regions(0)


def test_busy_when_another_kdamond_runs_and_nothing_is_written(fake) -> None:
    other = fake.create([KdamondSpec("vaddr", 200)])
    other.start()
    fake.writes.clear()
    with pytest.raises(UnavailableError, match="busy: kdamond 0 is running") as ei:
        fake.create([KdamondSpec("vaddr", 100)])
    assert isinstance(ei.value, DamonBusyError)
    assert ei.value.where == str(fake.nr_path)
    assert fake.writes == []
    assert fake.kdamonds() == [KdamondState(0, "on", 4000)]


def test_ebusy_from_the_kernel_is_unavailable_busy(fake) -> None:
    fake.fail["kdamonds/nr_kdamonds"] = errno.EBUSY
    with pytest.raises(DamonBusyError, match="busy") as ei:
        fake.create([KdamondSpec("vaddr", 100)])
    assert ei.value.where == str(fake.nr_path)


def test_idle_foreign_kdamonds_are_kept_unless_replace_idle(fake) -> None:
    fake._write(fake.nr_path, "1")  # someone set one up and left it off
    with pytest.raises(UnavailableError, match="1 idle kdamond directory already set up"):
        fake.create([KdamondSpec("vaddr", 100)])
    s = fake.create([KdamondSpec("vaddr", 100)], replace_idle=True)
    assert read(fake, "kdamonds/0/contexts/0/targets/0/pid_target") == "100"
    s.teardown()


def test_no_damon_sysfs(tmp_path: Path) -> None:
    fs = DamonSysfs(tmp_path / "nothing")
    assert not fs.present()
    with pytest.raises(UnavailableError, match="CONFIG_DAMON_SYSFS") as ei:
        fs.check_free()
    assert ei.value.where == str(tmp_path / "nothing")


def test_operations_missing_from_avail_operations(fake) -> None:
    class NoPaddr(FakeDamonSysfs):
        def _write(self, path: Path, text: str) -> None:
            super()._write(path, text)
            if path.name == "nr_contexts":
                (path.parent / "0" / "avail_operations").write_text("vaddr fvaddr\n")

    fs = NoPaddr(fake.root, fake.proc_root)
    with pytest.raises(UnavailableError, match="'paddr' not offered") as ei:
        fs.create([KdamondSpec("paddr", regions=((0, 4096),))])
    assert ei.value.where.endswith("avail_operations")
    assert read(fs, "kdamonds/nr_kdamonds") == "0"  # what it created was removed


def test_target_exit_stops_the_kdamond_and_regions_raise_no_such_process(fake) -> None:
    s = fake.create([KdamondSpec("vaddr", 100)])
    s.start()
    fake.regions[0] = [(0x1000, 0x2000, 1, 0)]
    assert s.regions(0).size == 1
    fake.exit_target(0)
    (fake.proc_root / "100").rmdir()
    with pytest.raises(NoSuchProcessError, match="target process 100 exited") as ei:
        s.regions(0)
    assert ei.value.where == str(fake.root / "kdamonds" / "0" / "state")
    s.teardown()  # "off" on a stopped kdamond is EPERM in the kernel: ignored
    assert read(fake, "kdamonds/nr_kdamonds") == "0"


def test_update_failing_because_the_target_exits_meanwhile(fake) -> None:
    s = fake.create([KdamondSpec("vaddr", 100)])
    s.start()

    class Racy(FakeDamonSysfs):
        def _write(self, path: Path, text: str) -> None:
            if text == "update_schemes_tried_regions":
                fake.exit_target(0)
                (fake.proc_root / "100").rmdir()
            super()._write(path, text)

    s.fs = Racy(fake.root, fake.proc_root)
    with pytest.raises(NoSuchProcessError):
        s.regions(0)


def test_kdamond_off_for_another_reason_is_a_kernel_error(fake) -> None:
    s = fake.create([KdamondSpec("vaddr", 100)])
    s.start()
    fake.exit_target(0)  # off, but pid 100 still runs
    with pytest.raises(KernelError, match="did not stop it"):
        s.regions(0)
    s.start()
    s.stop()
    with pytest.raises(KernelError, match="stopped by this session"):
        s.regions(0)


def test_start_with_a_vanished_pid(fake) -> None:
    s = fake.create([KdamondSpec("vaddr", 100)])
    (fake.proc_root / "100").rmdir()
    with pytest.raises(NoSuchProcessError, match="no process 100"):
        s.start()
    s.teardown()


def test_teardown_waits_while_the_kernel_is_busy_then_gives_up(fake) -> None:
    s = fake.create([KdamondSpec("vaddr", 100)])
    s.start()
    fake.busy_nr_writes = 3  # the thread takes a moment to finish after "off"
    s.teardown()
    assert read(fake, "kdamonds/nr_kdamonds") == "0"
    s2 = fake.create([KdamondSpec("vaddr", 100)])
    s2.start()
    fake.busy_nr_writes = 10**6
    with pytest.raises(KernelError, match="teardown incomplete") as ei:
        s2.teardown()
    assert ei.value.where == str(fake.nr_path)
    assert fake.clock() >= fake.settle_s


def test_permission_errors_name_the_file(fake) -> None:
    s = fake.create([KdamondSpec("vaddr", 100)])
    fake.fail["kdamonds/0/state"] = errno.EACCES
    with pytest.raises(TierctlError, match="permission denied") as ei:
        s.start()
    assert ei.value.where == str(fake.root / "kdamonds" / "0" / "state")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"ops": "vaddr"}, "needs a target pid"),
        ({"ops": "paddr"}, "needs initial regions"),
        ({"ops": "paddr", "pid": 3, "regions": ((0, 1),)}, "no pid"),
        ({"ops": "xaddr", "pid": 1}, "unknown operations"),
        ({"ops": "paddr", "regions": ((10, 20), (15, 30))}, "disjoint"),
        ({"ops": "vaddr", "pid": 1, "scheme": "pageout"}, "only 'stat'"),
    ],
)
def test_spec_validation(kw: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        KdamondSpec(**kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sample_us": 0}, "> 0"),
        ({"sample_us": 10, "aggr_us": 5}, "sample_us"),
        ({"min_nr_regions": 2}, ">= 3"),
        ({"min_nr_regions": 20, "max_nr_regions": 10}, "min_nr_regions"),
    ],
)
def test_attrs_validation(kw: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        MonitoringAttrs(**kw)
    assert MonitoringAttrs().max_nr_accesses == 20


# -- the tree captured in the guest (6.12, a vaddr kdamond on a child touching 16 MiB of 80 MiB) ---------
@pytest.fixture
def captured(tmp_path: Path) -> DamonSysfs:
    root = tmp_path / "admin"
    shutil.copytree(FIXTURE / ADMIN, root)
    return DamonSysfs(root, proc_root=FIXTURE / "proc")


def test_captured_tree_shows_a_running_kdamond_so_we_are_busy(captured: DamonSysfs) -> None:
    assert captured.kdamonds() == [KdamondState(0, "on", 182)]
    with pytest.raises(DamonBusyError, match=r"kdamond 0 is running \(kdamond thread pid 182\)"):
        captured.check_free()


def test_captured_tried_regions_parse(captured: DamonSysfs) -> None:
    class ReadOnly(DamonSysfs):
        def _write(self, path: Path, text: str) -> None:  # the capture holds the result of the update
            assert text in ("update_schemes_tried_regions", "update_schemes_stats")

    child = json.loads((FIXTURE / "child.json").read_text())
    fs = ReadOnly(captured.root, proc_root=Path("/nonexistent"))
    s = DamonSession(fs, (KdamondSpec("vaddr", child["pid"]),))
    regs = s.regions(0)
    assert regs.shape == (15,)
    assert np.all(regs["start"][1:] >= regs["end"][:-1])
    (h0, h1), (c0, c1) = child["hot"], child["cold"]
    hot = regs[(regs["start"] >= h0) & (regs["end"] <= h1)]
    assert hot["nr_accesses"].tolist() == [10, 8]
    assert int((hot["end"] - hot["start"]).sum()) == (16 << 20) - 10 * 4096
    cold = regs[(regs["end"] > c0) & (regs["start"] < c1)]
    assert cold.size >= 1 and not cold["nr_accesses"].any()
    # captured before any update_schemes_stats: the counters still read 0
    assert s.stats(0) == dict.fromkeys(STAT_FILES, 0)


def test_node_phys_ranges(tmp_path: Path) -> None:
    mem = tmp_path / "devices" / "system" / "memory"
    mem.mkdir(parents=True)
    (mem / "block_size_bytes").write_text("8000000\n")
    node = tmp_path / "devices" / "system" / "node" / "node1"
    for b, state in ((8, "online"), (9, "online"), (10, "offline"), (12, "online")):
        (node / f"memory{b}").mkdir(parents=True)
        (node / f"memory{b}" / "state").write_text(state + "\n")
    (node / "cpulist").write_text("\n")
    bs = 0x8000000
    assert node_phys_ranges(1, tmp_path) == [(8 * bs, 10 * bs), (12 * bs, 13 * bs)]
    with pytest.raises(InputError, match="no node 3"):
        node_phys_ranges(3, tmp_path)


@pytest.mark.skipif(
    not Path("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds").exists(), reason="no DAMON sysfs here"
)
def test_this_host_read_only(tmp_path: Path) -> None:
    """Reads only: on the CI host a kdamond started by the VM's init runs, so we must report busy.
    Some hosts refuse even reading its state with EBUSY: that is the same answer."""
    fs = DamonSysfs()
    try:
        states = fs.kdamonds()
    except DamonBusyError:
        with pytest.raises(DamonBusyError):
            fs.check_free()
        return
    if not any(k.state == "on" for k in states):
        pytest.skip("no kdamond runs on this host")
    with pytest.raises(DamonBusyError):
        fs.check_free()
