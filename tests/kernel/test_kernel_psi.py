"""PSI triggers and the watcher, with pipes and sockets standing in for the kernel's pressure files (a
regular file never raises POLLPRI), and the PSI text parser on captures."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tierctl.errors import InputError, KernelError, PermissionDeniedError, UnavailableError
from tierctl.kernel.cgroupfs import CgroupFS, Pressure, PressureLine, parse_pressure
from tierctl.kernel.psi import (
    PsiTrigger,
    PsiWatcher,
    TriggerGoneError,
    TriggerSpec,
    has_cap_sys_resource,
    open_pressure_file,
)

FIX = Path(__file__).parents[1] / "fixtures"
PRESS_CG = FIX / "cgroupfs" / "guest-v2-pressure"
PRESS_PROC = FIX / "procfs" / "guest-pressure"
HOST_CG = FIX / "cgroupfs" / "host-hybrid-pressure"


class FakeKernel:
    """An opener handing out one end of a socketpair per pressure file (the latest one per path is the
    one acted on): ``fire(path)`` sends OOB data (POLLPRI on the trigger's end), ``vanish(path)`` puts
    a pipe's write end whose reader is gone under the trigger's fd (POLLERR), as a removed cgroup does."""

    def __init__(self) -> None:
        self.peers: dict[Path, socket.socket] = {}
        self.ends: dict[Path, socket.socket] = {}
        self.fds: dict[Path, int] = {}
        self.opened: list[Path] = []
        self._all: list[socket.socket] = []

    def open(self, path: Path) -> int:
        self.opened.append(path)
        a, b = socket.socketpair()
        self._all += [a, b]
        self.ends[path], self.peers[path] = a, b
        self.fds[path] = os.dup(a.fileno())  # the trigger owns (and closes) this one
        return self.fds[path]

    def written(self, path: Path) -> bytes:
        return self.peers[path].recv(100)

    def fire(self, path: Path) -> None:
        self.peers[path].send(b"!", socket.MSG_OOB)

    def consume(self, path: Path) -> None:
        self.ends[path].recv(1, socket.MSG_OOB)

    def vanish(self, path: Path) -> None:
        r, w = os.pipe()
        os.close(r)
        os.dup2(w, self.fds[path])
        os.close(w)

    def close(self) -> None:
        for s in self._all:
            s.close()


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    k = FakeKernel()
    yield k
    k.close()


def fs_v2() -> CgroupFS:
    return CgroupFS(PRESS_CG, proc_root=PRESS_PROC, page_size=4096)


# --- the spec --------------------------------------------------------------------------------
def test_spec_line_and_defaults() -> None:
    assert TriggerSpec().line() == "some 150000 1000000"  # the example
    assert TriggerSpec("full", 50_000, 500_000).line() == "full 50000 500000"
    TriggerSpec("some", 10_000_000, 10_000_000).validate()  # stall == window is allowed
    TriggerSpec("some", 1, 2_000_000).validate(privileged=False)
    TriggerSpec("some", 1, 10_000_000).validate(privileged=False)


@pytest.mark.parametrize(
    ("spec", "privileged", "where", "match"),
    [
        (TriggerSpec("half", 1, 1_000_000), True, "kind", "some' or 'full"),
        (TriggerSpec("some", 1, 499_999), True, "window_us", "500 ms"),
        (TriggerSpec("some", 1, 10_000_001), True, "window_us", "10 s"),
        (TriggerSpec("some", 0, 1_000_000), True, "stall_us", "> 0"),
        (TriggerSpec("some", 1_000_001, 1_000_000), True, "stall_us", "<= the window"),
        (TriggerSpec("some", 1, 1_000_000), False, "window_us", "multiple of 2 s"),
        (TriggerSpec("some", 1, 3_000_000), False, "window_us", "CAP_SYS_RESOURCE"),
        (TriggerSpec("some", 1.5, 1_000_000), True, "stall_us", "int"),  # type: ignore[arg-type]
        (TriggerSpec("some", True, 1_000_000), True, "stall_us", "int"),  # type: ignore[arg-type]
    ],
)
def test_spec_validation_names_the_field(spec: TriggerSpec, privileged: bool, where: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as e:
        spec.validate(privileged=privileged)
    assert e.value.where == f"psi trigger {where}"


def test_has_cap_sys_resource_reads_cap_eff(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text("Name:\tx\nCapEff:\t0000000001000000\n")
    assert has_cap_sys_resource(tmp_path)
    (tmp_path / "self" / "status").write_text("Name:\tx\nCapEff:\t0000000000ffffff\n")
    assert not has_cap_sys_resource(tmp_path)
    (tmp_path / "self" / "status").write_text("Name:\tx\n")  # no line: fall back to euid 0
    assert has_cap_sys_resource(tmp_path) == (os.geteuid() == 0)
    assert has_cap_sys_resource(tmp_path / "absent") == (os.geteuid() == 0)


# --- one trigger -----------------------------------------------------------------------------
def test_trigger_writes_a_nul_terminated_line_and_waits(kernel: FakeKernel) -> None:
    path = Path("/fake/memory.pressure")
    with PsiTrigger(path, TriggerSpec("some", 150_000, 1_000_000), opener=kernel.open, privileged=True) as t:
        # the kernel overwrites the last byte written to /proc/pressure/* with NUL: write one
        assert kernel.written(path) == b"some 150000 1000000\0"
        assert not t.wait(0.01)
        kernel.fire(path)
        assert t.wait(1.0)
        kernel.consume(path)
        assert not t.wait(0)
        fd = t.fileno()
        assert not t.closed
    assert t.closed
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with the trigger
    with pytest.raises(InputError, match="closed"):
        t.fileno()
    t.close()  # idempotent


def test_trigger_gone_on_pollerr(kernel: FakeKernel) -> None:
    path = Path("/fake/a/memory.pressure")
    t = PsiTrigger(path, opener=kernel.open, privileged=True)
    kernel.vanish(path)
    with pytest.raises(TriggerGoneError, match="went away") as e:
        t.wait(1.0)
    assert e.value.where == str(path) and isinstance(e.value, UnavailableError)
    t.close()


def test_trigger_read_parses_the_same_file(tmp_path: Path) -> None:
    f = tmp_path / "memory.pressure"
    f.write_text("")
    with PsiTrigger(f, opener=lambda p: os.open(p, os.O_RDWR), privileged=True) as t:
        assert f.read_bytes() == b"some 150000 1000000\0"
        f.write_text((PRESS_CG / "tierctl-press" / "memory.pressure").read_text())  # what the kernel shows
        p = t.read()
        assert p.some == PressureLine(6.99, 2.32, 0.55, 1761676) and p.full is not None
        f.write_text("some avg10=x\n")
        with pytest.raises(KernelError) as e:
            t.read()
        assert e.value.where == f"{f}:1"


def test_trigger_validation_happens_before_opening(kernel: FakeKernel) -> None:
    with pytest.raises(InputError):
        PsiTrigger(Path("/x"), TriggerSpec("some", 1, 1_000_000), opener=kernel.open, privileged=False)
    assert kernel.opened == []


def _failing_opener(code: int) -> Callable[[Path], int]:
    def opener(path: Path) -> int:
        raise OSError(code, os.strerror(code))

    return opener


@pytest.mark.parametrize(
    ("code", "exc", "match"),
    [
        (errno.ENOENT, UnavailableError, "no such pressure file"),
        (errno.EACCES, PermissionDeniedError, "CAP_SYS_RESOURCE"),
        (errno.EPERM, PermissionDeniedError, "permission denied"),
        (errno.EOPNOTSUPP, UnavailableError, "psi=0"),
        (errno.EIO, KernelError, "opening"),
    ],
)
def test_open_errors_name_the_file(code: int, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match) as e:
        PsiTrigger(Path("/p/memory.pressure"), opener=_failing_opener(code), privileged=True)
    assert e.value.where == "/p/memory.pressure"


@pytest.mark.parametrize(
    ("code", "exc", "match"),
    [
        (errno.EINVAL, KernelError, "refused the trigger"),
        (errno.EBUSY, KernelError, "already set"),
        (errno.ENODEV, UnavailableError, "being removed"),
        (errno.EOPNOTSUPP, UnavailableError, "psi=0"),
        (errno.EPERM, PermissionDeniedError, "permission denied"),
    ],
)
def test_write_errors_close_the_file(
    code: int, exc: type[Exception], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, w = os.pipe()
    os.close(r)
    from tierctl.kernel import psi

    def bad_write(fd: int, data: bytes) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(psi.os, "write", bad_write)
    with pytest.raises(exc, match=match) as e:
        PsiTrigger(Path("/p/memory.pressure"), opener=lambda p: w, privileged=True)
    assert "writing trigger 'some 150000 1000000'" in str(e.value)
    monkeypatch.undo()
    with pytest.raises(OSError):
        os.fstat(w)  # closed on failure


def test_open_pressure_file_is_rdwr_nonblock(tmp_path: Path) -> None:
    f = tmp_path / "p"
    f.write_text("")
    fd = open_pressure_file(f)
    try:
        import fcntl

        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert flags & os.O_ACCMODE == os.O_RDWR and flags & os.O_NONBLOCK
    finally:
        os.close(fd)


# --- the watcher -----------------------------------------------------------------------------
def test_watcher_system_and_cgroups(kernel: FakeKernel) -> None:
    fs = fs_v2()
    sys_path = PRESS_PROC / "pressure" / "memory"
    cg_path = PRESS_CG / "tierctl-press" / "memory.pressure"
    with PsiWatcher(fs, opener=kernel.open, privileged=True) as w:
        assert w.add("") == "" and w.add("/tierctl-press/") == "tierctl-press"
        assert (
            w.add("tierctl-press", TriggerSpec("full", 100_000, 1_000_000), key="press-full") == "press-full"
        )
        assert w.keys == ["", "press-full", "tierctl-press"]
        assert kernel.opened == [sys_path, cg_path, cg_path]
        assert w.wait(0.01) == []
        kernel.fire(sys_path)
        kernel.fire(cg_path)  # the latest trigger on that file: the "full" one
        assert w.wait(1.0) == ["", "press-full"]
        assert w.path_of("") == sys_path and w.path_of("tierctl-press") == cg_path
        assert w.remove("press-full") and not w.remove("press-full")
        assert w.trigger("").path == sys_path
        with pytest.raises(InputError, match="no trigger"):
            w.trigger("nope")
        t = w.trigger("tierctl-press")
    assert w.keys == [] and t.closed


def test_watcher_reports_which_fired(kernel: FakeKernel, tmp_path: Path) -> None:
    root = tmp_path / "cg"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "memory.pressure").write_text("")
    (root / "cgroup.controllers").write_text("memory\n")
    fs = CgroupFS(root, proc_root=tmp_path / "proc")
    with PsiWatcher(fs, opener=kernel.open, privileged=True) as w:
        w.add("a")
        w.add("b")
        kernel.fire(root / "b" / "memory.pressure")
        assert w.wait(1.0) == ["b"]
        kernel.consume(root / "b" / "memory.pressure")
        kernel.fire(root / "a" / "memory.pressure")
        kernel.fire(root / "b" / "memory.pressure")
        assert w.wait(1.0) == ["a", "b"]
        w.add("a")  # re-adding replaces (the old trigger is closed)
        assert w.keys == ["a", "b"]


def test_watcher_gone_removes_the_trigger_and_keeps_the_others(kernel: FakeKernel, tmp_path: Path) -> None:
    root = tmp_path / "cg"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    fs = CgroupFS(root, proc_root=tmp_path / "proc")
    w = PsiWatcher(fs, opener=kernel.open, privileged=True)
    w.add("a")
    w.add("b")
    kernel.fire(root / "b" / "memory.pressure")
    kernel.vanish(root / "a" / "memory.pressure")
    with pytest.raises(TriggerGoneError) as e:
        w.wait(1.0)
    assert e.value.key == "a" and e.value.fired == ["b"]
    assert e.value.where == str(root / "a" / "memory.pressure")
    assert w.keys == ["b"]
    assert w.wait(0.5) == ["b"]  # still pending: the watcher goes on with the rest
    w.close()
    w.close()


def test_watcher_errors(kernel: FakeKernel, tmp_path: Path) -> None:
    w = PsiWatcher(fs_v2(), opener=kernel.open, privileged=True)
    with pytest.raises(InputError, match="waiting forever"):
        w.wait()
    assert w.wait(0) == []
    with pytest.raises(InputError, match="no such cgroup"):
        w.add("nope")
    with pytest.raises(InputError):
        w.add("../etc")
    with pytest.raises(InputError, match="multiple of 2 s"):
        PsiWatcher(fs_v2(), opener=kernel.open, privileged=False).add("")
    v1 = PsiWatcher(CgroupFS(HOST_CG, proc_root=PRESS_PROC), opener=kernel.open, privileged=True)
    with pytest.raises(UnavailableError, match="no per-cgroup PSI"):
        v1.add("process_api/23c2eec628634bcff92ae0eac622332c")
    assert v1.add("") == ""  # the system file exists on every layout
    v1.close()
    real = PsiWatcher(CgroupFS(tmp_path / "none", proc_root=tmp_path / "proc"), privileged=True)
    with pytest.raises(UnavailableError, match="no such pressure file") as e:
        real.add("")  # no PSI in this kernel: no /proc/pressure/memory
    assert e.value.where == str(tmp_path / "proc" / "pressure" / "memory")


# --- the text parser (shared with CgroupFS.pressure) ---------------------------------------------
def test_parse_pressure_on_captures() -> None:
    p = parse_pressure((PRESS_PROC / "pressure" / "memory").read_text(), "x")
    assert p == Pressure(PressureLine(6.98, 2.30, 0.54, 1787257), PressureLine(5.96, 2.08, 0.49, 1660328))
    assert fs_v2().pressure("tierctl-press").some == PressureLine(6.99, 2.32, 0.55, 1761676)
    assert fs_v2().pressure("") == p
    with pytest.raises(KernelError) as e:
        parse_pressure("some avg10=1 avg60=2\n", "f")
    assert e.value.where == "f:1"
