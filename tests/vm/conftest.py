"""Fixtures for tests inside the two-tier guest."""

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

from tierctl.kernel.cgroupfs import CgroupFS

CHILD = Path(__file__).with_name("memchild.py")
PAGE = 4096


@dataclass
class Child:
    proc: subprocess.Popen[str]
    addr: int
    length: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def addrs(self, step: int = PAGE) -> np.ndarray:
        return self.addr + np.arange(0, self.length, step, dtype=np.uint64)

    def ask(self, cmd: str) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()

    def hash(self) -> str:
        return self.ask("hash")[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.ask("exit")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


def start_child(size_mib: int, *, thp: bool | None = None, prefix: list[str] | None = None) -> Child:
    """thp: True = MADV_HUGEPAGE, False = MADV_NOHUGEPAGE (4 KiB pages), None = system default."""
    flag = [] if thp is None else ["--thp" if thp else "--nothp"]
    cmd = [*(prefix or []), sys.executable, str(CHILD), str(size_mib), *flag]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"child did not start: {line}")
    return Child(proc, int(line[1]), int(line[2]))


@pytest.fixture
def child_factory() -> Iterator[object]:
    children: list[Child] = []

    def make(size_mib: int, **kw: object) -> Child:
        c = start_child(size_mib, **kw)  # type: ignore[arg-type]
        children.append(c)
        return c

    yield make
    for c in children:
        c.stop()


@pytest.fixture
def memory_cgroup(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh cgroup with the memory controller, named for the test; its processes are killed and
    it is removed afterwards. Limits, if any, are the test's to set: tierctl sets none."""
    fs = CgroupFS()
    path = f"tierctl-vm-{os.getpid()}-{request.node.name[-16:]}".replace("[", "-").replace("]", "")
    fs.create(path)
    fs.enable_controllers(path, ("memory",))
    yield path
    remove_cgroup(fs, path)


def remove_cgroup(fs: CgroupFS, path: str) -> None:
    """Kill what is left in cgroup ``path`` (10 s at most) and remove it; a test's teardown."""
    deadline = time.monotonic() + 10
    while fs.exists(path) and fs.pids(path) and time.monotonic() < deadline:
        for pid in fs.pids(path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.1)
    with contextlib.suppress(Exception):
        fs.remove(path)


def pressure_daemon(
    tmp_path: Path, profiles: Path, scope: str, target_pct: int, *, stdout: int = subprocess.DEVNULL
) -> tuple[subprocess.Popen[str], Path]:
    """``tierctl daemon`` over cgroup ``scope`` with the pressure ladder on and its target at
    ``target_pct`` %, its socket in ``tmp_path``; returns once the socket accepts. A daemon that does
    not start is an AssertionError carrying its stderr."""
    repo = Path(__file__).resolve().parents[2]
    sock = tmp_path / "t.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tierctl", "daemon", "--profiles", str(profiles), "--state-dir",
         str(tmp_path / "state"), "--scope", scope, "--socket", str(sock), "--samplers", "idle",
         "--hint-faults", "off", "--cycle-seconds", "0.5", "--memory-target", str(target_pct)],
        stdout=stdout, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if proc.poll() is not None or not sock.exists():
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the daemon did not start (exit {proc.returncode}):\n{err[-4000:]}")
    return proc, sock
