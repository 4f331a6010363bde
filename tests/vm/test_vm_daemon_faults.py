"""`tierctl daemon` as a process under faults, on the real kernel.

One daemon session, in order: a pin from the CLI takes effect; a non-root client may read but its
mutations are refused (and the daemon keeps running); a burst of mutations is cut by SIGKILL; the daemon
restarted from the same --state-dir has the pin and every acknowledged override, and enforces the pin
again; at SIGTERM every kernel knob is back where it was before the first (killed) daemon started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vm.conftest import Child, start_child
from tierctl.api.client import ApiClient
from tierctl.cli import main
from tierctl.errors import TierctlError
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.knobs import KnobGuard
from tierctl.kernel.numa import NumaSyscalls
from tierctl.samplers.hint import SETTINGS

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
N_BURST = 60


class Daemon:
    """``python -m tierctl daemon`` with its stderr in a file (never a pipe nobody reads)."""

    def __init__(self, args: list[str], err: Path, sock: Path) -> None:
        self.args, self.err, self.sock = args, err, sock
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Daemon:
        with self.err.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tierctl", "daemon", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the daemon exited {self.proc.returncode}: {self.stderr()}"
            try:
                self.call("status")
                return self
            except TierctlError:
                if time.monotonic() > deadline:
                    self.proc.send_signal(signal.SIGUSR1)  # the daemon writes every thread's stack
                    time.sleep(2)
                    raise AssertionError(
                        f"no answer on {self.sock} in {timeout} s: {self.stderr()}"
                    ) from None
                time.sleep(0.2)

    def call(self, op: str, **args: Any) -> Any:
        with ApiClient(self.sock, timeout=30) as c:
            return c.call(op, **args)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def cli_as(uid: int, gid: int, groups: list[int], argv: list[str]) -> tuple[int, str, str]:
    """Run ``tierctl ARGV`` (the real CLI code) in a forked child with these credentials.

    A fork rather than setpriv + exec: the venv's interpreter lives below /root (mode 0700), which an
    unprivileged user cannot reach."""
    pipes = [os.pipe(), os.pipe()]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        rc = 99
        try:
            for (r, w), fd in zip(pipes, (1, 2), strict=True):
                os.close(r)
                os.dup2(w, fd)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            rc = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(rc)
    texts = []
    for _, w in pipes:
        os.close(w)
    for r, _ in pipes:  # the outputs are small (a few KiB): reading one after the other cannot block
        with os.fdopen(r, "rb") as f:
            texts.append(f.read().decode())
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), texts[0], texts[1]


def child_in(cgroup: str, size_mib: int) -> Child:
    """A memchild that joins ``cgroup`` before it allocates (so its memory is charged there)."""
    procs = f"/sys/fs/cgroup/{cgroup}/cgroup.procs"
    return start_child(size_mib, thp=False, prefix=["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"])


def on_slow(numa: NumaSyscalls, child: Child) -> float:
    return float((numa.query(child.pid, child.addrs()) == 1).mean())


def wait_for(what: str, cond: Any, timeout: float, daemon: Daemon) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert daemon.alive(), f"the daemon died while waiting for {what}: {daemon.stderr()}"
        if time.monotonic() > deadline:
            st = daemon.call("status")
            seen = {k: st.get(k) for k in ("cycle", "tracked_pages", "moved", "overrides", "samplers")}
            raise AssertionError(
                f"{what}: not within {timeout} s; status {seen}; cgroups {daemon.call('cgroups')}"
            )
        time.sleep(0.2)


@pytest.fixture
def base() -> Iterator[str]:
    fs = CgroupFS()
    name = f"tierctl-dfault-{os.getpid()}"
    paths = [name, f"{name}/app", *(f"{name}/w{i}" for i in range(N_BURST))]
    for p in paths:
        fs.create(p)
    yield name
    for p in reversed(paths):
        deadline = time.monotonic() + 10
        while True:
            try:
                fs.remove(p)
                break
            except TierctlError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def burst(sock: Path, base: str, acked: dict[str, str]) -> None:
    """Pins on distinct cgroups, one connection, until the daemon dies; ``acked`` = answered ones."""
    try:
        with ApiClient(sock, timeout=30) as c:
            for i in range(N_BURST):
                path, tier = f"/{base}/w{i}", ("fast", "slow")[i % 2]
                c.call("pin", path=path, tier=tier)
                acked[path] = tier
    except TierctlError:
        return  # killed: the request in flight got no answer


def test_cli_pin_survives_sigkill_nonroot_refused_no_override_lost(
    tmp_path: Path, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sockdir = Path(tempfile.mkdtemp(prefix="tierctl-", dir="/tmp"))  # pytest's tmp_path is root-only
    sockdir.chmod(0o755)
    sock = sockdir / "api.sock"
    state = tmp_path / "state"
    profiles = tmp_path / "profiles"
    shutil.copytree(REPO / "tierctl" / "data" / "profiles", profiles)
    args = ["--profiles", str(profiles), "--state-dir", str(state), "--scope", f"/{base}", "--hint-faults"]
    args += ["--cycle-seconds", "0.5", "--socket", str(sock)]
    d = Daemon(args, tmp_path / "daemon.err", sock)
    probe = KnobGuard(tmp_path / "probe.json")
    knobs_before = {k: probe.get(k) for k, _, _ in SETTINGS if Path(k).exists()}
    numa = NumaSyscalls()
    app = child_in(f"{base}/app", 32)
    app_cg = f"/{base}/app"
    try:
        d.start()
        assert on_slow(numa, app) < 0.5  # first touch left it in DRAM
        # 1. a pin from the CLI (its code, run here: an interpreter start costs ~5 s under TCG) takes effect
        capsys.readouterr()
        assert main(["pin", app_cg, "--tier", "slow", "--socket", str(sock)]) == 0
        out = capsys.readouterr().out  # the pin's real outcome, not a blanket "pinned" (issue 16)
        assert out.split()[0] in ("accepted", "in_progress", "done") and "pin slow" in out, out
        wait_for("the pinned cgroup's pages on node 1", lambda: on_slow(numa, app) >= 0.95, 30, d)

        # 2. a non-root client: may connect (member of the socket's group) and read, may not mutate
        gid = sock.stat().st_gid
        rc, txt, err = cli_as(NOBODY, NOBODY, [gid], ["status", "--json", "--socket", str(sock)])
        assert rc == 0, err
        assert json.loads(txt)["overrides"]["pins"] == {app_cg: "slow"}
        for argv in (["pin", app_cg, "--tier", "fast"], ["pause"], ["reload"]):
            rc, txt, err = cli_as(NOBODY, NOBODY, [gid], [*argv, "--socket", str(sock)])
            assert (rc, txt) == (4, ""), err  # permission denied
            assert err == f"tierctl: error: {argv[0]}: {argv[0]} needs root or the tierctl mutators group\n"
        rc, _, err = cli_as(NOBODY, NOBODY, [], ["status", "--socket", str(sock)])  # not in the group
        assert rc == 4 and "permission denied" in err, err
        assert d.alive()
        st = d.call("status")
        assert st["overrides"]["pins"] == {app_cg: "slow"} and st["state"] == "running"

        # 3. SIGKILL in the middle of a burst of mutations
        acked: dict[str, str] = {}
        t = threading.Thread(target=burst, args=(sock, base, acked))
        t.start()
        wait_for("10 acknowledged pins", lambda: len(acked) >= 10 or not t.is_alive(), 30, d)
        d.kill()
        t.join(30)
        assert 10 <= len(acked) < N_BURST, "the kill did not land inside the burst"
        left = KnobGuard(state / "knobs.json").pending()  # knobs the killed daemon could not restore
        assert all(probe.get(r.knob) == r.expected for r in left)
        # while it is down, the pinned memory comes back to DRAM: the restarted daemon must send it back
        numa.move_pages(app.pid, app.addrs(), 0)
        assert on_slow(numa, app) < 0.1

        # 4. restart from the same state dir: the pin and every acknowledged override are there
        d.start()
        capsys.readouterr()
        assert main(["status", "--json", "--socket", str(sock)]) == 0  # the CLI, in this process
        pins = json.loads(capsys.readouterr().out)["overrides"]["pins"]
        assert pins.get(app_cg) == "slow"
        assert {k: pins.get(k) for k in acked} == acked  # 0 lost overrides
        extra = set(pins) - set(acked) - {app_cg}
        assert extra <= {f"/{base}/w{len(acked)}"}  # at most the request in flight at the kill
        wait_for("the pin enforced again after the restart", lambda: on_slow(numa, app) >= 0.95, 30, d)
        events = d.call("events", since=0)["events"]
        assert not [e for e in events if e["kind"] == "overrides"]  # the file was whole

        # 5. SIGTERM: every knob back to its value before the first (killed) daemon
        assert d.terminate() == 0, d.stderr()
        assert {k: probe.get(k) for k in knobs_before} == knobs_before
        assert KnobGuard(state / "knobs.json").pending() == []
    finally:
        if d.alive():
            d.kill()
        with contextlib.suppress(TierctlError):
            KnobGuard(state / "knobs.json").restore_all()  # after a failure: leave the guest as found
        app.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
