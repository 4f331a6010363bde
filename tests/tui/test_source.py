"""Sources: the in-process Service and the daemon's socket (refusals, daemon gone, reconnect)."""

from __future__ import annotations

import inspect
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tui.synthetic import SyntheticService
from tierctl.api.protocol import OPS
from tierctl.api.server import ApiServer, Limits
from tierctl.errors import InputError, KernelError, PermissionDeniedError, UnavailableError
from tierctl.tui.source import GONE, LocalSource, SocketSource

FAST = Limits(service_timeout=5.0)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tt-", dir="/tmp") as d:  # short: AF_UNIX paths <= 107 bytes
        yield Path(d)


@pytest.fixture
def sources() -> Iterator[list[SocketSource]]:
    """Sources made in a test, closed after it (no socket left open)."""
    made: list[SocketSource] = []
    yield made
    for s in made:
        s.stop()


def serve(svc: SyntheticService, path: Path, *, uid: int = 0) -> ApiServer:
    return ApiServer(svc, path, limits=FAST, credentials=lambda s: (os.getpid(), uid, uid), socket_group=None)


def test_a_kernel_error_in_the_pressure_view_or_the_detail_is_shown_not_a_lost_frame() -> None:
    """The pressure view and the detail are extras: when the in-process service cannot read them (a
    KernelError from the machine, not a refusal of the arguments) the frame still comes, with the
    error in their place."""

    class Failing(SyntheticService):
        def pressure_status(self) -> dict[str, Any]:
            raise KernelError("cannot read memory.stat: Input/output error", "/sys/fs/cgroup/a")

        def cgroup_detail(self, path: str) -> dict[str, Any]:
            raise KernelError("cannot read numa_stat: Input/output error", path)

    svc = Failing(3, wall=lambda: 1.0)
    f = LocalSource(svc, period_s=None).poll(svc.paths[0])
    assert f.connected and len(f.cgroups) == 3
    assert f.pressure["active"] is False and "memory.stat" in f.pressure["reason"]
    assert f.detail is None and "numa_stat" in f.detail_error


def test_local_source_polls_steps_and_acts() -> None:
    svc = SyntheticService(4, wall=lambda: 1.0)
    src = LocalSource(svc, period_s=None)
    f = src.poll()
    assert f.connected and f.status["cycle"] == 0 and len(f.cgroups) == 4 and f.events == []
    src.step()
    path = svc.paths[2]
    f = src.poll(path)
    assert f.status["cycle"] == 1 and [e["kind"] for e in f.events] == ["migrated"]
    assert f.detail is not None and f.detail["path"] == path
    assert src.poll().events == []  # only new events
    src.act("pin", path=path, tier="slow")
    assert svc.pins == {path: "slow"}
    assert src.poll("/nope").detail_error == "/nope: no such cgroup"
    with pytest.raises(InputError, match="unknown action"):
        src.act("cycle")


def test_local_source_cycles_on_its_period_until_stopped() -> None:
    svc = SyntheticService(2, wall=lambda: 1.0)
    src = LocalSource(svc, period_s=0.01)
    src.start()
    deadline = time.monotonic() + 10
    while svc.cycles < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    src.stop()
    stopped_at = svc.cycles
    time.sleep(0.05)
    assert stopped_at >= 3 and svc.cycles == stopped_at


def test_socket_source_reads_and_mutates_through_the_daemon(
    sockdir: Path, sources: list[SocketSource]
) -> None:
    svc = SyntheticService(3, wall=lambda: 1.0)
    svc.cycle()
    with serve(svc, sockdir / "s.sock"):
        src = SocketSource(sockdir / "s.sock")
        sources.append(src)
        f = src.poll(svc.paths[0])
        assert f.connected and f.status["cycle"] == 1 and len(f.cgroups) == 3 and len(f.events) == 1
        assert f.detail is not None and f.detail["path"] == svc.paths[0]
        src.act("set_quota", path=svc.paths[1], fast_min="1G", fast_max=None)
        src.act("migrate_now", path=None)
        src.act("pause")
        f = src.poll()
        assert f.status["state"] == "paused" and f.status["cycle"] == 2
        assert [e["kind"] for e in f.events] == ["quota", "migrated", "paused"]
        assert svc.quotas == {svc.paths[1]: {"fast_min": "1G", "fast_max": None}}
        assert src.poll("/nope").detail_error == "/nope: no such cgroup"


def test_socket_source_refused_mutation_raises_permission_denied(
    sockdir: Path, sources: list[SocketSource]
) -> None:
    svc = SyntheticService(2, wall=lambda: 1.0)
    with serve(svc, sockdir / "s.sock", uid=4242):
        src = SocketSource(sockdir / "s.sock")
        sources.append(src)
        assert src.poll().connected  # reads are allowed
        with pytest.raises(PermissionDeniedError):
            src.act("pin", path=svc.paths[0], tier="fast")
        assert svc.pins == {}
        assert src.poll().connected  # the connection survives a refusal


def test_socket_source_daemon_gone_then_back(sockdir: Path, sources: list[SocketSource]) -> None:
    path = sockdir / "s.sock"
    svc = SyntheticService(2, wall=lambda: 1.0)
    svc.pause()
    svc.resume()
    srv = serve(svc, path).start()
    src = SocketSource(path, timeout=2.0)
    sources.append(src)
    assert src.poll().connected and src.seq == 2
    srv.stop()
    f = src.poll()
    assert not f.connected and f.message.startswith(GONE)
    with pytest.raises(UnavailableError):
        src.act("pause")
    # a restarted daemon numbers its events afresh: the source starts over from 0
    svc2 = SyntheticService(2, wall=lambda: 1.0)
    svc2.pause()
    with serve(svc2, path):
        f = src.poll()
        assert f.connected and [e["kind"] for e in f.events] == ["paused"] and src.seq == 1


def test_socket_source_without_daemon_is_gone_not_an_error(sockdir: Path) -> None:
    f = SocketSource(sockdir / "none.sock").poll()  # nothing to close: the connection failed
    assert not f.connected and "daemon not running" in f.message


def test_socket_source_serialises_calls_from_two_threads(sockdir: Path, sources: list[SocketSource]) -> None:
    svc = SyntheticService(50, wall=lambda: 1.0)
    with serve(svc, sockdir / "s.sock"):
        src = SocketSource(sockdir / "s.sock")
        sources.append(src)
        errors: list[BaseException] = []

        def hammer() -> None:
            try:
                for _ in range(20):
                    assert src.poll().connected
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_local_source_reports_a_failing_cycle_and_recovers() -> None:
    svc = SyntheticService(2, wall=lambda: 1.0)
    src = LocalSource(svc, period_s=None)
    real = svc.cycle
    svc.cycle = lambda: 1 / 0  # type: ignore[method-assign]
    src.step()
    assert src.poll().message == "cycle failed: ZeroDivisionError: division by zero"
    svc.cycle = real  # type: ignore[method-assign]
    src.step()
    assert src.poll().message == "" and svc.cycles == 1


# ---- one declaration: the sources speak the API's ops (tierctl.api.protocol.OPS) --------------------


def test_both_sources_read_the_same_frame(sockdir: Path, sources: list[SocketSource]) -> None:
    """The in-process source serves each op as the daemon does: the same service gives the same frame
    through either source."""
    svc = SyntheticService(3, wall=lambda: 1.0)
    svc.cycle()
    svc.pin(svc.paths[1], "slow")
    local = LocalSource(svc, period_s=None)
    with serve(svc, sockdir / "s.sock"):
        remote = SocketSource(sockdir / "s.sock")
        sources.append(remote)
        for detail in (svc.paths[0], "/nope", None):
            assert local.poll(detail) == remote.poll(detail), detail
        assert local.seq == remote.seq == svc.seq
        assert local.cgroup_detail(svc.paths[2]) == remote.cgroup_detail(svc.paths[2])


def test_poll_is_written_once_over_call() -> None:
    """Neither source names an op in its poll: the reads are read_frame's, over the source's call."""
    for cls in (LocalSource, SocketSource):
        text = inspect.getsource(cls.poll)
        assert "read_frame(self.call" in text, cls.__name__
        for op in OPS:
            assert f'"{op}"' not in text, (cls.__name__, op)


def test_local_source_checks_arguments_as_the_daemon_does() -> None:
    svc = SyntheticService(2, wall=lambda: 1.0)
    src = LocalSource(svc, period_s=None)
    with pytest.raises(InputError) as e:
        src.call("pin", path=svc.paths[0], tier="warm")
    assert e.value.where == "args.tier" and svc.pins == {}
    with pytest.raises(InputError, match="unknown argument of unpin"):
        src.act("unpin", path=svc.paths[0], tier="fast")
    with pytest.raises(InputError, match="unknown op"):
        src.call("subscribe")  # a stream is the socket's alone
    src.act("pause")
    assert src.call("events", since=0) == {"seq": 1, "events": list(svc.events)}  # the declared shape


def test_local_reload_prepares_outside_the_lock() -> None:
    svc = SyntheticService(2, wall=lambda: 1.0)
    src = LocalSource(svc, period_s=None)
    seen: list[tuple[bool, Any]] = []
    real_reload = svc.reload

    def read_profiles() -> Any:
        seen.append((src.lock._is_owned(), "read"))  # type: ignore[attr-defined]
        return "prepared"

    def reload(prepared: Any = None) -> dict[str, Any]:
        seen.append((src.lock._is_owned(), prepared))  # type: ignore[attr-defined]
        return real_reload(prepared)

    svc.read_profiles = read_profiles  # type: ignore[method-assign]
    svc.reload = reload  # type: ignore[method-assign]
    src.act("reload")
    assert seen == [(False, "read"), (True, "prepared")]
