"""Socket API: protocol validation, server + client round trips, permissions, limits, subscribe, CLI."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tierctl.api import ApiClient, ApiServer, DaemonNotRunningError, Limits, RemoteError
from tierctl.api.protocol import MAX_LINE, OPS, RequestError, dump_line, parse_request
from tierctl.api.server import peer_credentials, proc_groups
from tierctl.cli import client_cmds
from tierctl.errors import InputError, PermissionDeniedError, TierctlError, UnavailableError
from tierctl.service.contract import API_VERSION, ServiceContract

MUTATING = ("pin", "unpin", "set_quota", "pause", "resume", "migrate_now", "reload")


class FakeService:
    """A ServiceContract with canned answers that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.raise_on: dict[str, BaseException] = {}
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self.state = "running"

    @property
    def mutations(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [c for c in self.calls if c[0] in MUTATING]

    def _rec(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.raise_on:
            raise self.raise_on[name]

    def push(self, **event: Any) -> int:
        with self._lock:
            seq = len(self._events) + 1
            self._events.append({"seq": seq, **event})
            return seq

    def status(self) -> dict[str, Any]:
        self._rec("status")
        return {
            "version": "0.1.0",
            "state": self.state,
            "cycle": 42,
            "uptime_s": 3725.0,
            "samplers": ["hint-faults"],
            "tracked_pages": 1000,
            "last_cycle_s": 0.012,
            "moved": {"promoted": 10, "demoted": 3},
            "profiles": ["cache", "default"],
            "overrides": {"/app": {"pin": "fast"}},
        }

    def topology(self) -> dict[str, Any]:
        self._rec("topology")
        return {"nodes": [{"id": 0, "tier": "fast"}, {"id": 1, "tier": "slow"}]}

    def pressure_status(self) -> dict[str, Any]:
        self._rec("pressure_status")
        return {"mode": "off", "active": False, "reason": "off"}

    def cgroups(self) -> list[dict[str, Any]]:
        self._rec("cgroups")
        return [
            _cg("/batch", 1 << 20, 8 << 30, None),
            _cg("/app", 3 << 30, 1 << 30, {"pin": "fast"}),
            _cg("/idle", 0, 0, None, ratio=float("nan")),
        ]

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        self._rec("cgroup_detail", path)
        if path != "/app":
            raise InputError("no such managed cgroup", path)
        return {
            "path": path,
            "profile": "cache",
            "heat_histogram": {"fast": [1, 2], "slow": [3]},
            "processes": [],
            "recent_migrations": [],
        }

    def events_since(self, seq: int) -> tuple[int, list[dict[str, Any]]]:
        self._rec("events_since", seq)
        with self._lock:
            return len(self._events), [dict(e) for e in self._events[seq:]]

    def pin(self, path: str, tier: str) -> dict[str, Any]:
        self._rec("pin", path, tier)
        return {"path": path, "pin": tier}

    def unpin(self, path: str) -> dict[str, Any]:
        self._rec("unpin", path)
        return {"path": path, "pin": None}

    def set_quota(self, path: str, fast_min: str | int | None, fast_max: str | int | None) -> dict[str, Any]:
        self._rec("set_quota", path, fast_min, fast_max)
        return {"path": path, "fast_min": fast_min, "fast_max": fast_max}

    def pause(self) -> dict[str, Any]:
        self._rec("pause")
        self.state = "paused"
        return {"state": "paused"}

    def resume(self) -> dict[str, Any]:
        self._rec("resume")
        self.state = "running"
        return {"state": "running"}

    def migrate_now(self, path: str | None) -> dict[str, Any]:
        self._rec("migrate_now", path)
        return {"queued": path or "all"}

    def read_profiles(self) -> Any:
        return None

    def reload(self, prepared: Any = None) -> dict[str, Any]:
        self._rec("reload")
        return {"profiles": 2}


def _cg(path: str, fast: int, slow: int, override: Any, ratio: float = 0.9) -> dict[str, Any]:
    return {
        "path": path,
        "profile": "default",
        "override": override,
        "bytes_per_node": {"0": fast, "1": slow},
        "fast_bytes": fast,
        "slow_bytes": slow,
        "hot_bytes": fast // 2,
        "est_fast_hit_ratio": ratio,
    }


def test_fake_service_implements_the_contract() -> None:
    svc: ServiceContract = FakeService()  # type-checked structurally
    for name in ServiceContract.__dict__:
        if not name.startswith("_"):
            assert callable(getattr(svc, name)), name


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def sockdir() -> Iterator[Path]:
    # short path: sun_path holds 107 bytes and pytest's tmp_path can be longer
    d = Path(tempfile.mkdtemp(prefix="tierctl-api-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


FAST = Limits(line_timeout=0.5, write_timeout=2.0, service_timeout=2.0, poll_interval=0.02)


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def server(fake: FakeService, sockdir: Path) -> Iterator[ApiServer]:
    with ApiServer(fake, sockdir / "t.sock", limits=FAST) as srv:
        yield srv


@pytest.fixture
def client(server: ApiServer) -> Iterator[ApiClient]:
    with ApiClient(server.socket_path, timeout=5) as c:
        yield c


def raw_exchange(path: Path, data: bytes, *, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Send bytes, half-close, read every line until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return [json.loads(line) for line in out.splitlines()]


# ---- protocol -------------------------------------------------------------------------------------


def test_parse_request_accepts_a_well_formed_line() -> None:
    req = parse_request(b'{"v": 1, "id": "a", "op": "pin", "args": {"path": "/app", "tier": "fast"}}\n')
    assert (req.id, req.op, req.args) == ("a", "pin", {"path": "/app", "tier": "fast"})
    assert req.spec.mutation
    assert parse_request(b'{"v":1,"op":"migrate"}').args == {"path": None}
    assert parse_request(b'{"v":1,"op":"events","args":null}').args == {"since": 0}


@pytest.mark.parametrize(
    ("line", "kind", "where", "fragment"),
    [
        (b"\xff\xfe", "protocol", "request", "not UTF-8"),
        (b"   ", "protocol", "request", "empty"),
        (b"{nope", "protocol", "request", "not valid JSON"),
        (b'{"v":1,"op":"status","x":NaN}', "protocol", "request", "NaN is not valid JSON"),
        (b"[" * 60_000, "protocol", "request", "not valid JSON"),
        (b'{"v":1,"op":"events","args":{"since":' + b"9" * 5000 + b"}}", "protocol", "request", "JSON"),
        (b"[1, 2]", "protocol", "request", "must be a JSON object, got array"),
        (b'{"op":"status"}', "protocol", "v", 'missing "v"'),
        (b'{"v":2,"op":"status"}', "protocol", "v", "unsupported protocol version integer 2"),
        (b'{"v":true,"op":"status"}', "protocol", "v", "unsupported protocol version boolean"),
        (b'{"v":1,"op":"statsu"}', "protocol", "op", "did you mean 'status'"),
        (b'{"v":1,"op":7}', "protocol", "op", '"op" must be a string, got integer 7'),
        (b'{"v":1,"op":"status","arg":{}}', "protocol", "arg", "did you mean 'args'"),
        (b'{"v":1,"op":"status","args":[]}', "protocol", "args", "must be an object"),
        (b'{"v":1,"op":"status","args":{"x":1}}', "input", "args.x", "status takes no arguments"),
        (b'{"v":1,"op":"pin","args":{"path":"/a"}}', "input", "args.tier", "missing argument of pin"),
        (
            b'{"v":1,"op":"pin","args":{"path":"/a","tier":"fsat"}}',
            "input",
            "args.tier",
            "did you mean 'fast'",
        ),
        (b'{"v":1,"op":"pin","args":{"path":"/a","tier":1}}', "input", "args.tier", "got integer 1"),
        (b'{"v":1,"op":"pin","args":{"pth":"/a","tier":"fast"}}', "input", "args.pth", "did you mean 'path'"),
        (b'{"v":1,"op":"unpin","args":{"path":""}}', "input", "args.path", "non-empty"),
        (b'{"v":1,"op":"unpin","args":{"path":["/a"]}}', "input", "args.path", "got array"),
        (b'{"v":1,"op":"events","args":{"since":-1}}', "input", "args.since", "0..2**63-1"),
        (b'{"v":1,"op":"events","args":{"since":true}}', "input", "args.since", "got boolean"),
        (b'{"v":1,"op":"events","args":{"since":1.5}}', "input", "args.since", "got number 1.5"),
        (b'{"v":1,"op":"quota","args":{"path":"/a","fast_min":false}}', "input", "args.fast_min", "boolean"),
        (b'{"v":1,"op":"quota","args":{"path":"/a","fast_max":-5}}', "input", "args.fast_max", "within 0.."),
        (
            b'{"v":1,"op":"quota","args":{"path":"/a","fast_min":"1E30"}}',
            "input",
            "args.fast_min",
            "within 0..",
        ),
        (b'{"v":1,"op":"quota","args":{"path":"/a","fast_min":"nan"}}', "input", "args.fast_min", "finite"),
        (b'{"v":1,"op":"quota","args":{"path":"/a","fast_min":"inf"}}', "input", "args.fast_min", "finite"),
        (b'{"v":1,"op":"quota","args":{"path":"/a","fast_min":"1e400"}}', "input", "args.fast_min", "finite"),
        (
            b'{"v":1,"op":"quota","args":{"path":"/a","fast_min":"150%"}}',
            "input",
            "args.fast_min",
            "0..100 %",
        ),
        (b'{"v":1,"op":"status","op":"pause"}', "protocol", "request", "duplicate key 'op'"),
        (
            b'{"v":1,"op":"pin","args":{"path":"/a","tier":"fast","tier":"slow"}}',
            "protocol",
            "request",
            "duplicate",
        ),
        (
            b'{"v":1,"op":"pin","args":{"path":"/' + b"x" * 256 + b'","tier":"fast"}}',
            "input",
            "args.path",
            "NAME_MAX",
        ),
    ],
    ids=lambda v: None if not isinstance(v, bytes) else v[:40].decode("latin-1"),
)
def test_parse_request_rejects(line: bytes, kind: str, where: str, fragment: str) -> None:
    with pytest.raises(RequestError) as ei:
        parse_request(line)
    assert ei.value.kind == kind
    assert ei.value.where == where
    assert fragment in ei.value.message


def test_parse_request_rejects_a_line_over_the_limit() -> None:
    line = b'{"v":1,"op":"status","id":"' + b"x" * MAX_LINE + b'"}'
    with pytest.raises(RequestError, match="longer than 65536 bytes"):
        parse_request(line)


def test_request_errors_keep_the_id() -> None:
    with pytest.raises(RequestError) as ei:
        parse_request(b'{"v":1,"id":[1,"x"],"op":"pin","args":{"path":"/a","tier":"warm"}}')
    assert ei.value.req_id == [1, "x"]


def test_dump_line_is_one_ascii_line_without_nan() -> None:
    line = dump_line({"r": float("nan"), "s": "caf\u00e9\n", "t": (1, float("inf"))})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"r": None, "s": "caf\u00e9\n", "t": [1, None]}


def test_every_op_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    for name in OPS:
        assert f"`{name}`" in doc, name


# ---- round trips ----------------------------------------------------------------------------------

ROUND_TRIPS: list[tuple[str, dict[str, Any], tuple[str, tuple[Any, ...]], Any]] = [
    ("status", {}, ("status", ()), None),
    ("topology", {}, ("topology", ()), {"nodes": [{"id": 0, "tier": "fast"}, {"id": 1, "tier": "slow"}]}),
    ("cgroups", {}, ("cgroups", ()), None),
    ("cgroup", {"path": "/app"}, ("cgroup_detail", ("/app",)), None),
    ("events", {"since": 0}, ("events_since", (0,)), {"seq": 0, "events": []}),
    ("pin", {"path": "/app", "tier": "slow"}, ("pin", ("/app", "slow")), {"path": "/app", "pin": "slow"}),
    ("unpin", {"path": "/app"}, ("unpin", ("/app",)), {"path": "/app", "pin": None}),
    (
        "quota",
        {"path": "/app", "fast_min": "1G", "fast_max": 1 << 33},
        ("set_quota", ("/app", "1G", 1 << 33)),
        {"path": "/app", "fast_min": "1G", "fast_max": 1 << 33},
    ),
    ("quota", {"path": "/a"}, ("set_quota", ("/a", None, None)), None),
    ("pause", {}, ("pause", ()), {"state": "paused"}),
    ("resume", {}, ("resume", ()), {"state": "running"}),
    ("migrate", {"path": "/app"}, ("migrate_now", ("/app",)), {"queued": "/app"}),
    ("migrate", {}, ("migrate_now", (None,)), {"queued": "all"}),
    ("reload", {}, ("reload", ()), {"profiles": 2}),
]


@pytest.mark.parametrize(("op", "args", "call", "expected"), ROUND_TRIPS)
def test_round_trip(
    client: ApiClient, fake: FakeService, op: str, args: dict[str, Any], call: Any, expected: Any
) -> None:
    result = client.call(op, **args)
    assert fake.calls == [call]
    if expected is not None:
        assert result == expected


def test_round_trip_results_are_json_clean(client: ApiClient) -> None:
    status = client.call("status")
    assert status["state"] == "running" and status["moved"] == {"promoted": 10, "demoted": 3}
    cgroups = client.call("cgroups")
    assert [c["path"] for c in cgroups] == ["/batch", "/app", "/idle"]
    assert cgroups[2]["est_fast_hit_ratio"] is None  # NaN travels as null
    assert client.call("cgroup", path="/app")["heat_histogram"] == {"fast": [1, 2], "slow": [3]}


def test_one_connection_serves_many_requests_and_pipelining(server: ApiServer, fake: FakeService) -> None:
    lines = (
        b"".join(json.dumps({"v": 1, "id": i, "op": "status"}).encode() + b"\n" for i in range(5))
        + b'{"v":1,"id":"p","op":"pause"}\n'
    )
    out = raw_exchange(server.socket_path, lines)
    assert [r["id"] for r in out] == [0, 1, 2, 3, 4, "p"]
    assert all(r["ok"] and r["v"] == API_VERSION for r in out)
    assert fake.mutations == [("pause", ())]


@pytest.mark.parametrize(
    ("exc", "cls", "kind"),
    [
        (InputError("no such managed cgroup", "/x"), InputError, "input"),
        (PermissionDeniedError("needs CAP_SYS_NICE", "move_pages"), PermissionDeniedError, "permission"),
        (UnavailableError("no BPF", "sampler"), UnavailableError, "unavailable"),
        (TierctlError("kernel said no", "cpuset.mems"), RemoteError, "internal"),
        (RuntimeError("boom"), RemoteError, "internal"),
    ],
)
def test_service_errors_map_to_kinds_and_the_server_keeps_running(
    client: ApiClient, fake: FakeService, server: ApiServer, exc: Exception, cls: type, kind: str
) -> None:
    fake.raise_on["pin"] = exc
    with pytest.raises(cls) as ei:
        client.call("pin", path="/x", tier="fast")
    assert getattr(ei.value, "kind", kind) == kind
    assert "boom" in str(ei.value) if isinstance(exc, RuntimeError) else ei.value.where == exc.where
    # same connection and a fresh one still work
    assert client.call("status")["state"] == "running"
    with ApiClient(server.socket_path) as other:
        assert other.call("topology")["nodes"]


def test_input_error_of_the_service_names_the_cgroup(client: ApiClient) -> None:
    with pytest.raises(InputError) as ei:
        client.call("cgroup", path="/nope")
    assert str(ei.value) == "/nope: no such managed cgroup"


def test_client_raises_input_error_for_bad_arguments(client: ApiClient, fake: FakeService) -> None:
    with pytest.raises(InputError, match="did you mean 'fast'"):
        client.call("pin", path="/a", tier="fsat")
    with pytest.raises(RemoteError, match=r"unknown op 'stauts'.*did you mean 'status'") as ei:
        client.call("stauts")
    assert ei.value.kind == "protocol"
    assert fake.mutations == []
    assert client.call("status")["cycle"] == 42


def test_results_that_cannot_be_serialised_are_internal_errors(client: ApiClient, fake: FakeService) -> None:
    fake.status = lambda: {"x": object()}  # type: ignore[method-assign]
    with pytest.raises(RemoteError, match="not JSON serialisable") as ei:
        client.call("status")
    assert ei.value.kind == "internal"
    assert client.call("topology")


# ---- socket file ----------------------------------------------------------------------------------


def test_socket_mode_and_removal(fake: FakeService, sockdir: Path) -> None:
    path = sockdir / "run" / "tierctl.sock"
    with ApiServer(fake, path, limits=FAST):
        st = path.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
    assert not path.exists()


def test_socket_group_is_used_when_it_exists(fake: FakeService, sockdir: Path) -> None:
    import grp

    root_group = grp.getgrgid(os.getgid()).gr_name
    path = sockdir / "g.sock"
    with ApiServer(fake, path, limits=FAST, socket_group=root_group):
        assert path.stat().st_gid == os.getgid()
    with ApiServer(fake, path, limits=FAST, socket_group="no-such-group-tierctl-test"):
        assert path.exists()  # a missing group is not an error


def test_the_socket_path_appears_only_once_it_accepts(
    fake: FakeService, sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client polling for the path (systemd, scripts, the guest tests) must never see a socket that
    refuses: the guest's slow group lookup once held that window open between bind and listen."""
    path = sockdir / "w.sock"
    seen: list[bool] = []

    def slow_chgrp(self: ApiServer, bound: Path) -> None:
        seen.append(path.exists())
        assert stat.S_ISSOCK(bound.lstat().st_mode) and bound != path
        time.sleep(0.05)

    monkeypatch.setattr(ApiServer, "_chgrp", slow_chgrp)
    with ApiServer(fake, path, limits=FAST), ApiClient(path) as c:
        assert c.call("status")
        assert sorted(p.name for p in sockdir.iterdir()) == ["w.sock"]  # no temporary name left
    assert seen == [False]
    assert not path.exists()


def test_a_failed_listen_leaves_no_socket_file(
    fake: FakeService, sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: ApiServer, bound: Path) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(ApiServer, "_chgrp", refuse)
    with pytest.raises(UnavailableError, match="cannot listen: Operation not permitted"):
        ApiServer(fake, sockdir / "f.sock").start()
    assert list(sockdir.iterdir()) == []


def test_stale_socket_is_replaced_live_one_is_not(fake: FakeService, sockdir: Path) -> None:
    path = sockdir / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # file left behind, nobody listening
    with ApiServer(fake, path, limits=FAST), ApiClient(path) as c:
        assert c.call("status")
        with pytest.raises(UnavailableError, match="another daemon"):
            ApiServer(fake, path).start()
        assert c.call("status")  # the failed second server did not remove the live socket


def test_refuses_to_replace_a_regular_file(fake: FakeService, sockdir: Path) -> None:
    path = sockdir / "f.sock"
    path.write_text("not a socket")
    with pytest.raises(InputError, match="not a socket"):
        ApiServer(fake, path).start()
    assert path.read_text() == "not a socket"


def test_socket_path_too_long(fake: FakeService, sockdir: Path) -> None:
    with pytest.raises(InputError, match="longer than 107 bytes"):
        ApiServer(fake, sockdir / ("x" * 120)).start()


def test_stop_closes_open_connections_and_subscriptions(fake: FakeService, sockdir: Path) -> None:
    srv = ApiServer(fake, sockdir / "x.sock", limits=FAST).start()
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.settimeout(5)
    idle.connect(str(srv.socket_path))
    sub = ApiClient(srv.socket_path).subscribe(timeout=5)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 3
    assert srv.active_connections == 0
    assert idle.recv(10) == b""
    idle.close()
    assert list(sub) == []
    sub.close()
    srv.stop()  # idempotent


# ---- client ---------------------------------------------------------------------------------------


def test_client_daemon_not_running(sockdir: Path) -> None:
    with ApiClient(sockdir / "missing.sock") as c, pytest.raises(DaemonNotRunningError) as ei:
        c.call("status")
    assert str(ei.value) == f"daemon not running (no socket at {sockdir / 'missing.sock'})"
    assert isinstance(ei.value, UnavailableError) and ei.value.exit_code == 3  # daemon unreachable


def test_client_connection_refused_is_not_running(sockdir: Path) -> None:
    path = sockdir / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    with ApiClient(path) as c, pytest.raises(DaemonNotRunningError):
        c.call("status")


def test_client_reconnects_after_server_restart(fake: FakeService, sockdir: Path) -> None:
    path = sockdir / "r.sock"
    with ApiClient(path, timeout=5) as c:
        with ApiServer(fake, path, limits=FAST):
            assert c.call("status")
        with pytest.raises(UnavailableError):
            c.call("status")  # the connection went away with the server
        with ApiServer(fake, path, limits=FAST):
            assert c.call("status")


# ---- permissions ----------------------------------------------------------------------------------


def _server_as(fake: FakeService, path: Path, uid: int, gid: int, **kw: Any) -> ApiServer:
    return ApiServer(fake, path, limits=FAST, credentials=lambda s: (os.getpid(), uid, gid), **kw)


@pytest.mark.parametrize("op", sorted(n for n, s in OPS.items() if s.mutation))
def test_non_root_peer_cannot_mutate(fake: FakeService, sockdir: Path, op: str) -> None:
    args = {"pin": {"path": "/a", "tier": "fast"}, "unpin": {"path": "/a"}, "quota": {"path": "/a"}}.get(
        op, {}
    )
    with (
        _server_as(fake, sockdir / "p.sock", 1000, 1000, mutators_gid=4242) as srv,
        ApiClient(srv.socket_path) as c,
    ):
        with pytest.raises(PermissionDeniedError, match="needs root") as ei:
            c.call(op, **args)
        assert ei.value.exit_code == 4
        assert c.call("status")["state"] == "running"  # reads are fine
        assert c.call("cgroups")
        assert c.call("events", since=0) == {"seq": 0, "events": []}
    assert fake.mutations == []


def test_mutators_group_as_primary_or_supplementary(fake: FakeService, sockdir: Path) -> None:
    path = sockdir / "m.sock"
    with _server_as(fake, path, 1000, 4242, mutators_gid=4242), ApiClient(path) as c:
        assert c.call("pause") == {"state": "paused"}
    with (
        _server_as(fake, path, 1000, 1000, mutators_gid=4242, groups=lambda pid: frozenset({10, 4242})),
        ApiClient(path) as c,
    ):
        assert c.call("resume") == {"state": "running"}
    with (
        _server_as(fake, path, 1000, 4242, mutators_gid=None),
        ApiClient(path) as c,
        pytest.raises(PermissionDeniedError),
    ):
        c.call("reload")
    with _server_as(fake, path, 0, 0), ApiClient(path) as c:
        assert c.call("reload") == {"profiles": 2}
    assert [m[0] for m in fake.mutations] == ["pause", "resume", "reload"]


def test_failed_credential_lookup_means_read_only(fake: FakeService, sockdir: Path) -> None:
    def broken(s: socket.socket) -> tuple[int, int, int]:
        raise OSError("no creds")

    with (
        ApiServer(fake, sockdir / "b.sock", limits=FAST, credentials=broken) as srv,
        ApiClient(srv.socket_path) as c,
    ):
        assert c.call("status")
        with pytest.raises(PermissionDeniedError):
            c.call("pause")


def test_real_peer_credentials_of_this_process() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert peer_credentials(a) == (os.getpid(), os.getuid(), os.getgid())


def test_proc_groups(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "status").write_text("Name:\tx\nGid:\t5\t5\t5\t5\nGroups:\t10 4242 \nNgid:\t0\n")
    assert proc_groups(7, tmp_path) == {10, 4242}
    assert proc_groups(8, tmp_path) == frozenset()
    assert proc_groups(os.getpid()) == frozenset(os.getgroups())


_CHILD = textwrap.dedent(
    """
    import json, socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sys.argv[1])
    f = s.makefile("rwb")
    out = []
    for op in ("status", "pause"):
        f.write(json.dumps({"v": 1, "id": op, "op": op}).encode() + b"\\n")
        f.flush()
        out.append(json.loads(f.readline()))
    print(json.dumps(out))
    """
)


def _python_for_nobody() -> str | None:
    """An interpreter user 65534 may execute (pyenv's under /root is not)."""
    if os.geteuid() != 0:
        return None
    for exe in (sys.executable, "/usr/bin/python3"):
        try:
            ok = subprocess.run([exe, "-I", "-c", "pass"], user=65534, capture_output=True, timeout=30)
        except OSError:
            continue
        if ok.returncode == 0:
            return exe
    return None


@pytest.fixture(scope="module")
def nobody_python() -> str:
    exe = _python_for_nobody()
    if exe is None:
        pytest.skip("needs root and a Python interpreter user 65534 can run")
    return exe


@pytest.mark.parametrize(
    ("group", "extra", "may_mutate"),
    [(65534, [], False), (4242, [], True), (65534, [4242], True)],
    ids=["nobody", "primary-group", "supplementary-group"],
)
def test_real_non_root_client(
    fake: FakeService, nobody_python: str, group: int, extra: list[int], may_mutate: bool
) -> None:
    d = Path(tempfile.mkdtemp(prefix="tierctl-api-"))
    try:
        d.chmod(0o711)
        path = d / "t.sock"
        with ApiServer(fake, path, limits=FAST, mutators_gid=4242):
            path.chmod(0o666)  # the test client is not in the socket's group
            proc = subprocess.run(
                [nobody_python, "-I", "-c", _CHILD, str(path)],
                user=65534,
                group=group,
                extra_groups=extra,
                capture_output=True,
                timeout=30,
                check=False,
            )
        assert proc.returncode == 0, proc.stderr.decode()
        status, pause = json.loads(proc.stdout)
        assert status["ok"] is True
        assert pause["ok"] is may_mutate
        if not may_mutate:
            assert pause["error"]["kind"] == "permission"
        assert fake.mutations == ([("pause", ())] if may_mutate else [])
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- limits and misbehaving clients -----------------------------------------------------------------


def test_huge_line_gets_protocol_error_and_close(server: ApiServer, fake: FakeService) -> None:
    out = raw_exchange(server.socket_path, b"x" * (MAX_LINE + 10) + b'\n{"v":1,"op":"pause"}\n')
    assert len(out) == 1
    assert out[0]["ok"] is False and out[0]["error"]["kind"] == "protocol"
    assert "longer than 65536" in out[0]["error"]["message"]
    assert fake.mutations == []


def test_line_of_exactly_max_size_is_accepted(server: ApiServer) -> None:
    head = b'{"v":1,"op":"status","id":"'
    pad = MAX_LINE - len(head) - len(b'"}\n')
    out = raw_exchange(server.socket_path, head + b"x" * pad + b'"}\n')
    assert out[0]["ok"] is True and len(out[0]["id"]) == pad


def test_garbage_lines_get_errors_and_the_connection_stays(server: ApiServer) -> None:
    out = raw_exchange(server.socket_path, b'garbage\n\xff\n[]\n{"v":1,"id":9,"op":"status"}\n')
    assert [r["ok"] for r in out] == [False, False, False, True]
    assert {r["error"]["kind"] for r in out[:3]} == {"protocol"}
    assert out[3]["id"] == 9


def test_slowloris_is_cut_off_without_hurting_others(server: ApiServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.settimeout(5)
        slow.connect(str(server.socket_path))
        slow.sendall(b'{"v":1,')
        with ApiClient(server.socket_path) as c:
            assert c.call("status")  # served while the slow one dawdles
        t0 = time.monotonic()
        data = slow.recv(65536)
        assert 0.1 < time.monotonic() - t0 < 3
        resp = json.loads(data)
        assert resp["error"]["kind"] == "protocol" and "not completed within" in resp["error"]["message"]
        assert slow.recv(10) == b""


def test_disconnect_mid_line_is_harmless(server: ApiServer, fake: FakeService) -> None:
    for _ in range(20):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(server.socket_path))
            s.sendall(b'{"v":1,"op":"pause"')
    with ApiClient(server.socket_path) as c:
        assert c.call("status")
    assert fake.mutations == []


def test_idle_connections_are_closed(fake: FakeService, sockdir: Path) -> None:
    with (
        ApiServer(fake, sockdir / "i.sock", limits=Limits(idle_timeout=0.2)) as srv,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s,
    ):
        s.settimeout(5)
        s.connect(str(srv.socket_path))
        assert s.recv(10) == b""


def test_connection_limit(fake: FakeService, sockdir: Path) -> None:
    limits = Limits(max_connections=2, line_timeout=5, poll_interval=0.02)
    with ApiServer(fake, sockdir / "c.sock", limits=limits) as srv:
        held = [ApiClient(srv.socket_path, timeout=5) for _ in range(2)]
        try:
            for c in held:
                c.call("status")
            with ApiClient(srv.socket_path, timeout=5) as third, pytest.raises(UnavailableError) as ei:
                third.call("status")
            assert "too many connections (limit 2)" in str(ei.value)
            assert srv.connections_refused == 1
        finally:
            for c in held:
                c.close()
        deadline = time.monotonic() + 5
        while srv.active_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        with ApiClient(srv.socket_path) as again:
            assert again.call("status")


def test_busy_service_answers_unavailable(fake: FakeService, sockdir: Path) -> None:
    gate = threading.Event()
    entered = threading.Event()

    def slow_reload(prepared: Any = None) -> dict[str, Any]:
        entered.set()
        gate.wait(5)
        return {"profiles": 2}

    fake.reload = slow_reload  # type: ignore[method-assign]
    limits = Limits(service_timeout=0.2, poll_interval=0.02)
    with ApiServer(fake, sockdir / "busy.sock", limits=limits) as srv:
        result: list[Any] = []

        def reload_in_background() -> None:
            with ApiClient(srv.socket_path) as c:
                result.append(c.call("reload"))

        t = threading.Thread(target=reload_in_background)
        t.start()
        try:
            assert entered.wait(5)
            with ApiClient(srv.socket_path) as c, pytest.raises(UnavailableError, match="busy"):
                c.call("status")
        finally:
            gate.set()
            t.join(5)
        assert result == [{"profiles": 2}]


# ---- subscribe ------------------------------------------------------------------------------------


def test_subscribe_streams_new_events(server: ApiServer, fake: FakeService) -> None:
    fake.push(kind="old")
    with ApiClient(server.socket_path).subscribe(timeout=5) as sub:
        assert sub.seq == 1
        fake.push(kind="pin", path="/app")
        fake.push(kind="migrated", pages=12)
        got = [next(sub), next(sub)]
    assert got == [{"seq": 2, "kind": "pin", "path": "/app"}, {"seq": 3, "kind": "migrated", "pages": 12}]
    deadline = time.monotonic() + 5
    while server.active_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.active_connections == 0  # the server noticed the client left


def test_subscribe_since_replays(server: ApiServer, fake: FakeService) -> None:
    for i in range(3):
        fake.push(n=i)
    with ApiClient(server.socket_path).subscribe(since=1, timeout=5) as sub:
        assert [next(sub)["n"], next(sub)["n"]] == [1, 2]


def test_subscribe_wire_format(server: ApiServer, fake: FakeService) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(server.socket_path))
        f = s.makefile("rb")
        s.sendall(b'{"v":1,"id":"s","op":"subscribe"}\n')
        assert json.loads(f.readline()) == {"v": 1, "id": "s", "ok": True, "result": {"seq": 0}}
        fake.push(kind="x")
        assert json.loads(f.readline()) == {"v": 1, "event": {"seq": 1, "kind": "x"}}
        s.sendall(b"chatter is ignored\n")
        fake.push(kind="y")
        assert json.loads(f.readline())["event"]["kind"] == "y"
        f.close()


def test_subscribe_ends_with_an_error_when_the_service_fails(server: ApiServer, fake: FakeService) -> None:
    with ApiClient(server.socket_path).subscribe(timeout=5) as sub:
        fake.raise_on["events_since"] = UnavailableError("event log gone")
        with pytest.raises(UnavailableError, match="subscription ended: event log gone"):
            next(sub)
        assert list(sub) == []


def test_subscribers_do_not_block_requests(server: ApiServer, fake: FakeService) -> None:
    subs = [ApiClient(server.socket_path).subscribe(timeout=5) for _ in range(5)]
    try:
        with ApiClient(server.socket_path) as c:
            for _ in range(20):
                assert c.call("status")
        fake.push(kind="all")
        assert all(next(s)["kind"] == "all" for s in subs)
    finally:
        for s in subs:
            s.close()


# ---- CLI ------------------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Parse with client_cmds.register and run like tierctl.cli.main does."""
    parser = argparse.ArgumentParser(prog="tierctl")
    sub = parser.add_subparsers(dest="command", required=True)
    client_cmds.register(sub)
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
    except TierctlError as err:
        print(f"tierctl: error: {err}", file=sys.stderr)
        code = err.exit_code
    out, err_text = capsys.readouterr()
    return code, out, err_text


def test_cli_status(server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["status", "--socket", str(server.socket_path)], capsys)
    assert code == 0
    assert "state      running" in out
    assert "cycle      42 (last took 0.012 s)" in out
    assert "uptime     1h 2m 5s" in out
    assert "moved      10 promoted, 3 demoted" in out
    code, out, _ = run_cli(["status", "--json", "--socket", str(server.socket_path)], capsys)
    assert json.loads(out)["tracked_pages"] == 1000


def test_cli_socket_from_environment(
    server: ApiServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERCTL_SOCKET", str(server.socket_path))
    code, out, _ = run_cli(["status", "--json"], capsys)
    assert code == 0 and json.loads(out)["state"] == "running"


def test_cli_top_sorted_by_fast_bytes(server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["top", "--socket", str(server.socket_path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["cgroup", "profile", "override", "fast", "slow", "hot", "est", "hit"]
    assert [ln.split()[0] for ln in lines[2:]] == ["/app", "/batch", "/idle"]
    assert "pin=fast" in lines[2] and "3.0G" in lines[2] and "0.900" in lines[2]
    assert lines[4].rstrip().endswith("-")  # NaN ratio shows as "-"
    code, out, _ = run_cli(["top", "--json", "-n", "1", "--socket", str(server.socket_path)], capsys)
    assert [c["path"] for c in json.loads(out)] == ["/app"]


@pytest.mark.parametrize(
    ("argv", "mutation", "text"),
    [
        (["pin", "/app", "--tier", "fast"], ("pin", ("/app", "fast")), "pinned /app to fast"),
        (["pin", "/app", "--tier", "auto"], ("pin", ("/app", "auto")), "pinned /app to auto"),
        (["unpin", "/app"], ("unpin", ("/app",)), "unpinned /app"),
        (["pause"], ("pause", ()), "paused (state=paused)"),
        (["resume"], ("resume", ()), "resumed (state=running)"),
        (["reload"], ("reload", ()), "reloaded (profiles=2)"),
    ],
)
def test_cli_mutations(
    server: ApiServer,
    fake: FakeService,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    mutation: Any,
    text: str,
) -> None:
    code, out, _ = run_cli([*argv, "--socket", str(server.socket_path)], capsys)
    assert (code, out.strip()) == (0, text)
    code, out, _ = run_cli([*argv, "--json", "--socket", str(server.socket_path)], capsys)
    assert code == 0 and isinstance(json.loads(out), dict)
    assert fake.mutations == [mutation, mutation]


def test_cli_pin_rejects_a_bad_tier(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        run_cli(["pin", "/app", "--tier", "warm"], capsys)
    assert ei.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["top"],
        ["pin", "/a", "--tier", "slow"],
        ["unpin", "/a"],
        ["pause"],
        ["resume"],
        ["reload"],
    ],
)
def test_cli_daemon_not_running(sockdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    path = sockdir / "nothing.sock"
    code, out, err = run_cli([*argv, "--socket", str(path)], capsys)
    assert code == 3  # daemon unreachable: not the usage/bad-input code
    assert out == ""
    assert err == f"tierctl: error: daemon not running (no socket at {path})\n"


def test_cli_permission_denied(fake: FakeService, sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _server_as(fake, sockdir / "np.sock", 1000, 1000) as srv:
        code, out, err = run_cli(["pause", "--socket", str(srv.socket_path)], capsys)
        assert code == 4 and out == ""  # permission denied
        assert err == "tierctl: error: pause: pause needs root or the tierctl mutators group\n"
        code, _, _ = run_cli(["status", "--socket", str(srv.socket_path)], capsys)
        assert code == 0
    assert fake.mutations == []


def test_cli_service_input_error(
    server: ApiServer, fake: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.raise_on["unpin"] = InputError("not pinned", "/zzz")
    code, _, err = run_cli(["unpin", "/zzz", "--socket", str(server.socket_path)], capsys)
    assert (code, err) == (2, "tierctl: error: /zzz: not pinned\n")


def test_shared_service_lock(fake: FakeService, sockdir: Path) -> None:
    lock = threading.Lock()
    limits = Limits(service_timeout=0.2, poll_interval=0.02)
    with (
        ApiServer(fake, sockdir / "l.sock", limits=limits, service_lock=lock) as srv,
        ApiClient(srv.socket_path) as c,
    ):
        with lock, pytest.raises(UnavailableError, match="busy"):
            c.call("status")  # the daemon loop holds the lock
        assert c.call("status")["state"] == "running"
