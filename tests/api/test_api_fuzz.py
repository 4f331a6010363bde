"""Socket fuzzing with hypothesis against a running ApiServer.

After every malformed input (random bytes, bad JSON, wrong types, unknown ops, huge lines, half lines
and disconnects) the server answered with well-formed error lines only, a fresh connection still gets
``status``, and the service never saw a mutation.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.api.test_api import FakeService
from tierctl.api import ApiServer, Limits
from tierctl.api.protocol import ERROR_KINDS, MAX_LINE, OPS, RequestError, parse_request

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = Limits(line_timeout=2.0, write_timeout=2.0, service_timeout=2.0, poll_interval=0.02)


class Target:
    def __init__(self, server: ApiServer, fake: FakeService) -> None:
        self.server = server
        self.fake = fake
        self.path = server.socket_path

    def exchange(self, data: bytes) -> list[dict[str, Any]]:
        """Send, half-close, collect every response line until the server closes."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            out = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := s.recv(65536):
                    out += chunk
        assert out == b"" or out.endswith(b"\n")
        return [json.loads(line) for line in out.splitlines()]

    def send_and_vanish(self, data: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(data)

    def still_healthy(self) -> None:
        out = self.exchange(b'{"v":1,"id":"probe","op":"status"}\n')
        assert out and out[-1]["id"] == "probe" and out[-1]["ok"] is True
        assert out[-1]["result"]["state"] == "running"
        assert self.fake.mutations == []


def _serve(uid: int) -> Iterator[Target]:
    d = Path(tempfile.mkdtemp(prefix="tierctl-fuzz-"))
    fake = FakeService()
    creds = lambda s: (os.getpid(), uid, uid)  # noqa: E731
    try:
        with ApiServer(fake, d / "f.sock", limits=LIMITS, credentials=creds) as srv:
            yield Target(srv, fake)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def root_target() -> Iterator[Target]:
    """Peer is root: any mutation that got through validation would be executed."""
    yield from _serve(0)


@pytest.fixture(scope="module")
def user_target() -> Iterator[Target]:
    """Peer is uid 1000 without the mutators group."""
    yield from _serve(1000)


def _is_valid(line: bytes) -> bool:
    try:
        parse_request(line)
    except RequestError:
        return False
    return True


def _assert_errors(out: list[dict[str, Any]], n: int | None = None) -> None:
    if n is not None:
        assert len(out) == n
    for r in out:
        assert r["v"] == 1 and r["ok"] is False
        assert set(r) == {"v", "id", "ok", "error"}
        assert r["error"]["kind"] in ERROR_KINDS
        assert isinstance(r["error"]["message"], str) and r["error"]["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
arg_names = st.sampled_from(sorted({a.name for s in OPS.values() for a in s.args})) | st.text(max_size=8)


@FUZZ
@given(data=st.binary(max_size=3000))
def test_random_bytes(root_target: Target, data: bytes) -> None:
    lines = data.split(b"\n")
    assume(not any(_is_valid(ln) for ln in lines))
    out = root_target.exchange(data)
    _assert_errors(out)
    # at most one answer per line
    assert len(out) <= data.count(b"\n") + 1
    root_target.still_healthy()


@FUZZ
@given(value=json_values)
def test_any_json_value(root_target: Target, value: Any) -> None:
    line = json.dumps(value).encode() + b"\n"
    assume(not _is_valid(line))
    _assert_errors(root_target.exchange(line), 1)
    root_target.still_healthy()


@FUZZ
@given(
    req_id=json_values,
    v=st.just(1) | json_values,
    op=st.sampled_from(sorted(OPS)),
    args=st.dictionaries(arg_names, json_values, max_size=4) | json_values,
)
def test_wrong_types_and_arguments(root_target: Target, req_id: Any, v: Any, op: str, args: Any) -> None:
    line = json.dumps({"v": v, "id": req_id, "op": op, "args": args}).encode() + b"\n"
    assume(not _is_valid(line))
    (resp,) = root_target.exchange(line)
    _assert_errors([resp])
    assert resp["error"]["kind"] in ("input", "protocol")
    assert resp["id"] in (req_id, None)
    root_target.still_healthy()


@FUZZ
@given(op=st.text(max_size=30).filter(lambda s: s not in OPS), req_id=st.integers())
def test_unknown_ops(root_target: Target, op: str, req_id: int) -> None:
    line = json.dumps({"v": 1, "id": req_id, "op": op}).encode() + b"\n"
    (resp,) = root_target.exchange(line)
    _assert_errors([resp])
    assert resp["id"] == req_id and resp["error"]["kind"] == "protocol"
    assert "unknown op" in resp["error"]["message"]
    assert "did you mean" in resp["error"]["message"] or "known:" in resp["error"]["message"]
    root_target.still_healthy()


@settings(FUZZ, max_examples=25)
@given(
    size=st.integers(MAX_LINE + 1, 3 * MAX_LINE),
    fill=st.sampled_from([b"x", b"{", b'{"v":1,"op":"pause","id":"', b"\xff"]),
    newline=st.booleans(),
)
def test_huge_lines(root_target: Target, size: int, fill: bytes, newline: bool) -> None:
    data = (fill * (size // len(fill) + 1))[:size] + (b"\n" if newline else b"")
    data += b'{"v":1,"op":"pause"}\n'  # must never be read: the connection is closed
    out = root_target.exchange(data)
    _assert_errors(out, 1)
    assert out[0]["error"]["kind"] == "protocol" and "longer than" in out[0]["error"]["message"]
    root_target.still_healthy()


def _mutation_lines() -> st.SearchStrategy[bytes]:
    reqs = [
        {"v": 1, "id": 1, "op": "pin", "args": {"path": "/app", "tier": "fast"}},
        {"v": 1, "id": 2, "op": "unpin", "args": {"path": "/app"}},
        {"v": 1, "id": 3, "op": "quota", "args": {"path": "/app", "fast_min": "1G", "fast_max": None}},
        {"v": 1, "id": 4, "op": "pause"},
        {"v": 1, "id": 5, "op": "resume"},
        {"v": 1, "id": 6, "op": "migrate", "args": {"path": None}},
        {"v": 1, "id": 7, "op": "reload"},
    ]
    return st.sampled_from([json.dumps(r).encode() for r in reqs])


@FUZZ
@given(line=_mutation_lines(), cut=st.floats(0, 1, exclude_max=True), noise=st.binary(max_size=50))
def test_half_lines_and_disconnects(root_target: Target, line: bytes, cut: float, noise: bytes) -> None:
    assume(b"\n" not in noise)
    partial = line[: int(len(line) * cut)]
    root_target.send_and_vanish(noise + partial)  # no newline ever arrives
    root_target.still_healthy()


@FUZZ
@given(line=_mutation_lines(), chunks=st.integers(1, 8))
def test_valid_mutations_from_a_non_root_peer_are_refused(
    user_target: Target, line: bytes, chunks: int
) -> None:
    step = max(1, len(line) // chunks)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(user_target.path))
        for i in range(0, len(line), step):  # split writes: framing must not care
            s.sendall(line[i : i + step])
        s.sendall(b"\n")
        with s.makefile("rb") as f:
            resp = json.loads(f.readline())
    assert resp["ok"] is False and resp["error"]["kind"] == "permission"
    user_target.still_healthy()


def test_connections_are_released_after_the_fuzzing(root_target: Target) -> None:
    root_target.still_healthy()
    deadline = time.monotonic() + 5
    while root_target.server.active_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert root_target.server.active_connections == 0
