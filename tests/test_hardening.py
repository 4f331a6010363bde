"""Issue 12: no input, file or client can crash the daemon, wedge it, or lock the operator out.

One test (or one parametrised family) per numbered defect of the issue; each failed before the fix.
Fuzzing lives in tests/test_hardening_fuzz.py, the connection soak in tests/api/test_connection_soak.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.service.test_daemon_faults import Daemon, daemon  # noqa: F401  (the fixture)
from tierctl.api.client import ApiClient, DaemonNotRunningError, _connect
from tierctl.api.protocol import RemoteError, parse_request
from tierctl.api.server import ApiServer
from tierctl.cli import main
from tierctl.data import profiles_dir
from tierctl.errors import DaemonUnreachableError, InputError, PermissionDeniedError
from tierctl.kernel.procfs import ProcFS
from tierctl.profiles import check_profiles
from tierctl.service.service import Service
from tierctl.sim.live import sim_service

CACHE = "/system.slice/redis-server.service"
BAD_AMOUNTS = ["1E30", "nan", "inf", "-inf", "1e400", "1e20G", "150%", "nan%", 10**30, -5]


def _svc(tmp_path: Path) -> Service:
    profiles = tmp_path / "profiles"
    if not profiles.exists():
        shutil.copytree(profiles_dir(), profiles)
    svc = sim_service(
        "multi-cgroup", state_dir=tmp_path / "state", profiles_dir=profiles, epochs=30, wall=lambda: 1e9
    )
    svc.start()
    return svc


# ---- 1. a crash loop from one request --------------------------------------------------------------


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_1_a_quota_out_of_range_is_refused_and_nothing_is_stored(tmp_path: Path, amount: object) -> None:
    svc = _svc(tmp_path)
    for field in ("fast_min", "fast_max"):
        args = {"fast_min": None, "fast_max": None, field: amount}
        with pytest.raises(InputError) as ei:
            svc.set_quota(CACHE, **args)  # type: ignore[arg-type]
        assert ei.value.where == field
    assert svc.overrides.quotas == {}
    assert not (tmp_path / "state" / "overrides.json").exists()
    for _ in range(3):
        svc.cycle()  # the daemon's next cycles run
    svc.stop()


def test_1_min_above_max_and_more_than_the_machine_are_refused(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    with pytest.raises(InputError, match="above fast_max"):
        svc.set_quota(CACHE, "60%", "10%")
    with pytest.raises(InputError, match="above fast_max"):
        svc.set_quota(CACHE, "100M", "10%")  # mixed kinds: compared in pages on this machine
    with pytest.raises(InputError, match="more than this machine's memory"):
        svc.set_quota(CACHE, "1G", None)  # the simulated machine has 320 MiB
    svc.set_quota(CACHE, "10%", "20%")
    svc.cycle()
    assert svc.overrides.quotas == {CACHE: {"fast_min": "10%", "fast_max": "20%"}}
    svc.stop()


def test_1_the_daemon_answers_input_and_stays_up(daemon: Daemon) -> None:  # noqa: F811
    daemon.start()
    for amount in BAD_AMOUNTS:
        with pytest.raises(InputError, match=r"args\.fast_min"):
            daemon.call("quota", path="/w1", fast_min=amount)
    time.sleep(0.5)  # a few cycles
    assert daemon.call("status")["overrides"]["quotas"] == {}
    assert "Traceback" not in daemon.stderr()
    daemon.stop()


# ---- 2. profiles that passed `profile check` and then killed the daemon ----------------------------


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ("promote_rate_mbps = nan", "placement.promote_rate_mbps", "finite"),
        ("demote_rate_mbps = inf", "placement.demote_rate_mbps", "finite"),
        ("demote_rate_mbps = 1e300", "placement.demote_rate_mbps", "<= 1e+06"),
        ('fast_min = "1E30"', "placement.fast_min", "within 0.."),
        ("fast_max = 99999999999999999999999999", "placement.fast_max", "within 0.."),
        ('fast_max = "1e400"', "placement.fast_max", "finite"),
        ("hot_threshold = nan", "placement.hot_threshold", "finite"),
        ("hysteresis = nan", "placement.hysteresis", "finite"),
        ("hysteresis = 1e9", "placement.hysteresis", "<= 100"),
        ("priority = 99999999999999999999", "placement.priority", "<= 2147483647"),
        ("headroom = nan", "placement.headroom", "finite"),
    ],
)
def test_2_non_finite_and_huge_profile_values_are_problems(
    tmp_path: Path, line: str, key: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "default.toml"
    path.write_text(f'name = "default"\n[placement]\n{line}\n')
    _, problems = check_profiles([path])
    assert [(p.line, p.key) for p in problems] == [(3, key)], problems
    assert message in problems[0].message
    assert main(["profile", "check", "--profiles", str(path)]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and key in out.out + out.err


# ---- 3. reload is transactional for every error ------------------------------------------------------


def _breakers(profiles: Path) -> dict[str, object]:
    return {
        "deep nesting": lambda: (profiles / "deep.toml").write_text(
            "x = " + "[" * 20000 + "]" * 20000 + "\n"
        ),
        "fast_max 1e400": lambda: (profiles / "default.toml").write_text('[placement]\nfast_max = "1e400"\n'),
        "a huge profile": lambda: (profiles / "big.toml").write_text("# " + "x" * 200_000 + "\n"),
        "a cubic dotted key": lambda: (profiles / "dots.toml").write_text("k" + ".k" * 16000 + " = 1\n"),
        "a symlink loop": lambda: os.symlink("loop.toml", profiles / "loop.toml"),
        "a dangling symlink": lambda: os.symlink("/nonexistent/x.toml", profiles / "gone.toml"),
        "a directory x.toml": lambda: (profiles / "dir.toml").mkdir(),
        "a FIFO x.toml": lambda: os.mkfifo(profiles / "fifo.toml"),
        "not UTF-8": lambda: (profiles / "u16.toml").write_bytes("name = 'x'\n".encode("utf-16")),
    }


@pytest.mark.parametrize("breaker", list(_breakers(Path("/"))))
def test_3_reload_keeps_the_running_set_whatever_is_wrong(tmp_path: Path, breaker: str) -> None:
    svc = _svc(tmp_path)
    before = svc.profiles.names()
    _breakers(tmp_path / "profiles")[breaker]()  # type: ignore[operator]
    with pytest.raises(InputError):
        svc.reload()
    assert svc.profiles.names() == before
    assert svc.status()["reload_failures"] == 1
    assert [e["kind"] for e in svc.events][-1] == "reload_failed"
    svc.cycle()
    svc.stop()


def test_3_profiles_directory_replaced_by_a_symlink_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svc = _svc(tmp_path)
    profiles = tmp_path / "profiles"
    shutil.rmtree(profiles)
    os.symlink(profiles, profiles)  # the directory is now a link to itself
    with pytest.raises(InputError, match="symlink loop"):
        svc.reload()
    assert svc.profiles.names()  # still the running set
    assert main(["profile", "check", "--profiles", str(profiles)]) == 2
    out = capsys.readouterr()
    assert "symlink loop" in out.out + out.err and "Traceback" not in out.out + out.err
    svc.stop()


def test_3_sighup_with_a_broken_set_keeps_the_daemon(tmp_path: Path, daemon: Daemon) -> None:  # noqa: F811
    profiles = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), profiles)
    daemon.profiles = profiles
    daemon.start()
    (profiles / "deep.toml").write_text("x = " + "[" * 20000 + "]" * 20000 + "\n")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while "reload refused" not in daemon.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reload refused, running set kept" in daemon.stderr()
    assert daemon.call("status")["reload_failures"] == 1
    with pytest.raises(InputError):
        daemon.call("reload")
    assert daemon.call("status")["state"] == "running"
    assert "Traceback" not in daemon.stderr()
    daemon.stop()


# ---- 4. corrupt state files are set aside, the daemon starts ------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        os.urandom(256),
        json.dumps({"version": 1, "pins": {"/w1": "slow"}}).encode("utf-16"),
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"quotas": {"/w1": {"fast_min": "inf"}}}',
        b'{"quotas": {"/w1": {"fast_min": "1E30"}}}',
        b'{"quotas": {"/w1": {"fast_max": 99999999999999999999999}}}',
        b'{"version": 99, "pins": {}}',
        b'{"pins": {"/w1": "slow", "/w1": "fast"}}',
        b'{"pins": {}, "paused": NaN}',
        b'{"pins": {"w1": "slow"}}',
        b" " * (17 << 20),
    ],
    ids=lambda r: repr(r[:24]),
)
def test_4_a_bad_overrides_file_is_set_aside_and_the_daemon_starts(daemon: Daemon, raw: bytes) -> None:  # noqa: F811
    daemon.state.mkdir()
    (daemon.state / "overrides.json").write_bytes(raw)
    daemon.start()
    st = daemon.call("status")
    assert st["state"] == "running" and st["overrides"]["pins"] == {} and st["overrides"]["quotas"] == {}
    assert (daemon.state / "overrides.json.corrupt").read_bytes() == raw
    events = daemon.call("events", since=0)["events"]
    assert [e for e in events if e["kind"] == "overrides" and "overrides.json.corrupt" in e["message"]]
    daemon.stop()


# ---- 5, 6. connection limits and bursts (the soak with real uids is in test_connection_soak.py) ------


def test_6_a_burst_of_150_clients_waits_in_the_backlog_instead_of_failing() -> None:
    """150 clients connect while the server is not accepting (its admission is held): before, the
    65th and later failed at once with EAGAIN (backlog 64, non-blocking connect); now they queue."""
    from tests.api.test_api import FakeService

    sockdir = Path(tempfile.mkdtemp(prefix="tierctl-burst-"))
    srv = ApiServer(FakeService(), sockdir / "b.sock", socket_group=None).start()
    results: list[object] = []

    def one() -> None:
        try:
            with ApiClient(srv.socket_path, timeout=30) as c:
                results.append(c.call("status")["state"])
        except Exception as e:  # recorded and asserted below
            results.append(e)

    threads = [threading.Thread(target=one) for _ in range(150)]
    try:
        with srv._state_lock:  # the accept loop stalls in admission: connects pile up in the backlog
            for t in threads:
                t.start()
            time.sleep(1.0)
        for t in threads:
            t.join(60)
    finally:
        srv.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
    assert len(results) == 150
    failed = [r for r in results if r != "running"]
    # a refusal after admission says so (unavailable, too many connections); none is a connect failure
    assert not [r for r in failed if "too many connections" not in str(r)], failed[:3]
    assert results.count("running") >= 64


def test_6_connect_retries_a_full_backlog_instead_of_failing_at_once(tmp_path: Path) -> None:
    path = Path(os.path.join("/tmp", f"tierctl-bl-{os.getpid()}.sock"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    held: list[socket.socket] = []
    drainer: threading.Thread | None = None
    try:
        for _ in range(8):  # fill the backlog
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(path))
            except BlockingIOError:
                s.close()
                break
            held.append(s)
        t0 = time.monotonic()
        with pytest.raises(DaemonUnreachableError, match="backlog full"):
            _connect(path, timeout=0.3)
        assert time.monotonic() - t0 >= 0.25  # retried until the timeout, not failed on the first EAGAIN

        def drain() -> None:
            time.sleep(0.2)
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                held.append(conn)

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        _connect(path, timeout=5).close()  # gets in once the server accepts
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        if drainer is not None:
            drainer.join(5)
        for s in held:
            s.close()
        path.unlink()


# ---- 7. big files ------------------------------------------------------------------------------------


def test_7_big_profiles_are_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text('name = "big"\n' + "".join(f"# {i:0100d}\n" for i in range(40_000)))  # 4 MB
    long_key = tmp_path / "dots.toml"
    long_key.write_text("k" + ".k" * 30_000 + " = 1\n")  # under the size limit; cubic in tomllib
    _, problems = check_profiles([big, long_key])
    assert [(p.file, p.key) for p in problems[:2]] == [(str(big), "file"), (str(long_key), "toml")]
    assert "at most 65536 bytes" in problems[0].message
    assert "30001 dotted parts" in problems[1].message


# ---- 8. the smaller ones -------------------------------------------------------------------------------


def test_7_too_many_profile_files_is_a_problem_of_the_set(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), d)
    for i in range(600):
        (d / f"p{i:03d}.toml").write_text(f'name = "p{i}"\npriority = {i + 10}\n[[match]]\ncomm = "x{i}"\n')
    _, problems = check_profiles([d])
    assert any(p.key == "file" and "at most 512 are read" in p.message for p in problems)


def test_8_odd_entries_in_the_profiles_directory_are_problems_not_skipped(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), d)
    os.symlink("/nonexistent/x.toml", d / "dangling.toml")
    os.symlink("loop.toml", d / "loop.toml")
    (d / "adir.toml").mkdir()
    os.mkfifo(d / "fifo.toml")
    _, problems = check_profiles([d])
    got = {Path(p.file).name: p.message for p in problems}
    assert got == {
        "adir.toml": "cannot read: not a regular file (a directory)",
        "dangling.toml": "cannot read: dangling symlink (to /nonexistent/x.toml)",
        "fifo.toml": "cannot read: not a regular file (a FIFO)",
        "loop.toml": "cannot read: symlink loop",
    }


def test_8_duplicate_keys_in_a_request_are_a_protocol_error() -> None:
    with pytest.raises(Exception, match="out of range") as ei:  # an overflowing number is not inf
        parse_request(b'{"v":1,"id":1e999,"op":"status"}')
    assert getattr(ei.value, "kind", None) == "protocol"
    for line in (
        b'{"v":1,"op":"status","op":"pause"}',
        b'{"v":1,"op":"pin","args":{"path":"/a","path":"/b"}}',
    ):
        with pytest.raises(Exception, match="duplicate key") as ei:
            parse_request(line)
        assert getattr(ei.value, "kind", None) == "protocol"


def test_8_long_paths_are_input_errors(daemon: Daemon) -> None:  # noqa: F811
    daemon.start()
    for path in ("/" + "x" * 4096, "/" + "x" * 300, "/a/" + "b" * 256 + "/c"):
        with pytest.raises(InputError, match=r"args\.path"):
            daemon.call("pin", path=path, tier="fast")
    daemon.stop()


def test_8_cli_numbers_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["move", "1", "--rate", "nan"]) == 2
    assert capsys.readouterr().err == "tierctl: error: --rate: must be a finite number, got 'nan'\n"
    assert main(["daemon", "--cycle-seconds", "inf", "--once", "--no-socket"]) == 2
    assert "--cycle-seconds: must be a finite number" in capsys.readouterr().err
    sock = tmp_path / "none.sock"
    assert main(["status", "--socket", str(sock)]) == 3  # unreachable: not the bad-flag code
    assert "daemon not running" in capsys.readouterr().err
    assert main(["daemon", "--mutators-group", "no-such-group-here", "--once", "--no-socket"]) == 2
    assert "--mutators-group: no such group" in capsys.readouterr().err
    assert DaemonNotRunningError("x").exit_code == 3 and PermissionDeniedError("x").exit_code == 4
    assert RemoteError("internal", "x").exit_code == 70


def test_8_status_prints_a_readable_cycle_time(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    daemon.start()
    time.sleep(0.5)
    assert main(["status", "--socket", str(daemon.sock)]) == 0
    out = capsys.readouterr().out
    assert "cycle_secondsbounds" not in out and "bounds=" not in out
    line = next(ln for ln in out.splitlines() if ln.startswith("cycle time "))
    assert " p50 " in line and ", p90 " in line and ", p99 " in line and " cycles)" in line, line
    daemon.stop()


def test_8_root_refused_by_the_ptrace_check_is_told_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "1").mkdir()
    (proc / "self" / "status").write_text("Name:\tx\nCapEff:\t000001fffeffffff\n")
    (proc / "1" / "status").write_text("Name:\tinit\nCapPrm:\t000001ffffffffff\n")
    (proc / "1" / "numa_maps").write_text("")
    real_open = open

    def denied(file: object, *a: object, **kw: object) -> object:
        if str(file).endswith("/1/numa_maps"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", denied)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(PermissionDeniedError) as ei:
        ProcFS(proc).numa_maps(1)
    assert "even as root" in ei.value.message and "CAP_SYS_RESOURCE" in ei.value.message


def test_8_internal_errors_are_one_line_with_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tierctl.cli import topology_cmd

    def boom(args: object) -> int:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(topology_cmd, "run", boom)
    monkeypatch.delenv("TIERCTL_DEBUG", raising=False)
    assert main(["topology"]) == 70
    assert capsys.readouterr().err == (
        "tierctl: internal error: ZeroDivisionError: bug "
        "(a bug in tierctl; TIERCTL_DEBUG=1 shows the traceback)\n"
    )


def test_a_save_that_fails_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the issue's list: a full disk or a read-only state directory. The mutation is refused
    and the running overrides stay as they were (before, the pin took effect, was reported as failed,
    and was gone after a restart)."""
    from tierctl.errors import KernelError

    svc = _svc(tmp_path)
    svc.pin(CACHE, "slow")
    before = svc.overrides.to_json()

    def full(o: object) -> None:
        raise KernelError("cannot save overrides: No space left on device", "state")

    monkeypatch.setattr(svc.store, "save", full)
    for mutate in (
        lambda: svc.pin(CACHE, "fast"),
        lambda: svc.unpin(CACHE),
        lambda: svc.set_quota(CACHE, "10%", None),
        svc.pause,
    ):
        with pytest.raises(KernelError, match="No space left"):
            mutate()
        assert svc.overrides.to_json() == before
    svc.cycle()
    svc.stop()


def test_an_unlistable_profiles_directory_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the issue's list: pathlib's glob finds nothing in a directory it may not read, which
    read as "no profiles in this directory". Hidden files (editor locks such as .#x.toml) are skipped."""
    from tierctl.profiles import loader

    d = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), d)
    os.symlink("user@host.1234", d / ".#default.toml")  # an editor's lock file: ignored
    good, problems = check_profiles([d])
    assert problems == [] and good.names()

    def denied(path: object) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(loader.os, "scandir", denied)
    _, problems = check_profiles([d])
    assert [(p.key, p.message) for p in problems] == [("file", "cannot list: Permission denied")]


def test_a_connection_reaped_as_idle_never_carries_out_a_late_request() -> None:
    """Found in review: a request that arrived as its connection was reaped was carried out while
    its client saw the connection closed (exit 3 for a change that was made). Now, whatever the
    order: either the request is answered, or it is not carried out and the connection closes."""
    from tests.api.test_api import FakeService
    from tierctl.api.server import Limits

    sockdir = Path(tempfile.mkdtemp(prefix="tierctl-reap-"))
    fake = FakeService()
    limits = Limits(max_connections=8, reserved_privileged=2, busy_idle_timeout=0.3)
    srv = ApiServer(fake, sockdir / "r.sock", socket_group=None, limits=limits).start()
    socks = []
    try:
        for _ in range(6):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(srv.socket_path))
            socks.append(s)
        time.sleep(0.5)  # all idle for longer than busy_idle_timeout
        for i, (s, wait) in enumerate(zip(socks, (0.0, 0.05, 0.1, 0.2), strict=False)):
            before = len(fake.calls)
            with srv._state_lock:  # the accept thread reaps under this lock, as a request arrives
                with contextlib.suppress(OSError):
                    s.sendall(b'{"v":1,"id":%d,"op":"pause"}\n' % i)
                time.sleep(wait)
                srv._reap_idle(time.monotonic())
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            made = len(fake.calls) - before
            if data:
                assert json.loads(data)["ok"] is True and made == 1
            else:
                time.sleep(0.2)
                assert len(fake.calls) == before, "closed on the client, but carried out"
    finally:
        for s in socks:
            s.close()
        srv.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_a_profile_with_a_long_blank_line_is_checked(tmp_path: Path) -> None:
    """Found in review: the dotted-key pre-check backtracked quadratically on a long run of blanks
    (65 000 spaces: 40 s, which would outlast the systemd watchdog on reload)."""
    path = tmp_path / "default.toml"
    path.write_text('name = "default"\n' + " " * 65000 + "\n")
    good, problems = check_profiles([path])
    assert problems == [] and good.names() == ["default"]
