"""Fuzzing of everything that enters the daemon from outside (issue 12): profile files, API requests and
state files, with non-finite numbers, huge integers, deep nesting, large inputs, non-UTF-8 bytes and
file-system tricks. Every case must end in a clean, located error (or a clean accept whose values the
daemon can use) and a daemon that still answers and cycles.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tierctl.api.client import ApiClient
from tierctl.api.server import ApiServer
from tierctl.core.policy import Quota, amount_to_pages
from tierctl.data import profiles_dir
from tierctl.errors import InputError, TierctlError
from tierctl.kernel.knobs import KnobGuard
from tierctl.profiles import check_profiles, loader
from tierctl.profiles.schema import ProfileProblem
from tierctl.service.overrides import OverrideStore
from tierctl.service.service import Service
from tierctl.sim.live import sim_service

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
INT64 = 2**63 - 1

# ---- building blocks -------------------------------------------------------------------------------

TOML_NUMBERS = st.sampled_from(
    [
        "nan",
        "+nan",
        "-nan",
        "inf",
        "-inf",
        "0",
        "-0.0",
        "1e308",
        "1e-320",
        "0.3",
        "1.0",
        "2",
        "-1",
        "99999999999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
        "0x7fffffff",
        "1_000",
    ]
)
TOML_STRINGS = st.sampled_from(
    [
        '"1E30"',
        '"nan"',
        '"inf"',
        '"1e400"',
        '"-1G"',
        '"150%"',
        '"nan%"',
        '"1e20G"',
        '"4G"',
        '"25%"',
        '"0.5T"',
        '"\\u0000"',
        '""',
        '"auto"',
        '"fast"',
        '"x"' * 3,
        '"' + "9" * 400 + '"',
    ]
)
PLACEMENT_KEYS = st.sampled_from([*loader.PLACEMENT_KEYS, "bogus"])


def _nest(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


TOML_VALUES = st.one_of(
    TOML_NUMBERS,
    TOML_STRINGS,
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=1, max_value=30000).map(_nest),
    st.sampled_from(["true", "[]", "{}", "{a = 1}", '["damon", "damon"]', "1979-05-27"]),
)


@st.composite
def profile_texts(draw: st.DrawFn) -> bytes:
    lines = [f'name = "{draw(st.sampled_from(["default", "p-1", "bad name", ""]))}"']
    if draw(st.booleans()):
        lines.append("[[match]]\ncgroup = " + draw(st.sampled_from(['"/a/*"', '"a"', "1", '"*"'])))
    lines.append("[placement]")
    for _ in range(draw(st.integers(0, 6))):
        lines.append(f"{draw(PLACEMENT_KEYS)} = {draw(TOML_VALUES)}")
    text = "\n".join(lines) + "\n"
    extra = draw(st.sampled_from(["", "dotted", "big", "bytes", "utf16", "deeptable", "junk"]))
    raw = text.encode()
    if extra == "dotted":
        raw += b"k" + b".k" * draw(st.integers(3, 20000)) + b" = 1\n"
    elif extra == "big":
        raw += b"# " + b"x" * draw(st.integers(60_000, 300_000)) + b"\n"
    elif extra == "bytes":
        raw += draw(st.binary(min_size=1, max_size=200))
    elif extra == "utf16":
        raw = text.encode("utf-16")
    elif extra == "deeptable":
        raw += b"[" + b".".join(b"t%d" % i for i in range(draw(st.integers(1, 40)))) + b"]\nk = 1\n"
    elif extra == "junk":
        raw = draw(st.binary(max_size=400))
    return raw


# ---- profiles --------------------------------------------------------------------------------------


@SETTINGS
@given(raw=profile_texts(), kind=st.sampled_from(["file", "file", "file", "dangling", "loop", "dir", "fifo"]))
def test_profile_files_give_located_problems_or_usable_profiles(raw: bytes, kind: str) -> None:
    d = Path(tempfile.mkdtemp(prefix="tierctl-pfuzz-"))
    try:
        shutil.copy(profiles_dir() / "default.toml", d / "default.toml")
        target = d / "fuzz.toml"
        if kind == "file":
            target.write_bytes(raw)
        elif kind == "dangling":
            os.symlink(d / "missing", target)
        elif kind == "loop":
            os.symlink(target.name, target)
        elif kind == "dir":
            target.mkdir()
        else:
            os.mkfifo(target)
        good, problems = check_profiles([d])  # never raises, never blocks
        assert all(isinstance(p, ProfileProblem) and p.file and p.key and p.message for p in problems)
        if kind != "file":
            assert any(p.file == str(target) for p in problems)
        for profile in good:  # whatever was accepted, the daemon can turn into finite page counts
            pl = profile.placement
            q = pl.quota(4096, 1 << 20)
            assert 0 <= q.min_pages <= INT64 and (q.max_pages is None or q.max_pages <= INT64)
            for rate in (pl.promote_rate_mbps, pl.demote_rate_mbps):
                assert rate is None or 0 < rate < float("inf")
            assert 0 <= pl.hysteresis < float("inf")
            Quota(q.min_pages, q.max_pages, hysteresis=pl.hysteresis)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- API requests against the real Service ---------------------------------------------------------

AMOUNTS = st.one_of(
    st.none(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.sampled_from(
        ["1E30", "nan", "inf", "-inf", "1e400", "150%", "0%", "100%", "64M", "1G", "nan%", " 5K "]
    ),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)
VALID_PATHS = st.sampled_from(["/system.slice/redis-server.service", "/batch.slice/nightly-etl.service"])
PATHS = st.one_of(
    VALID_PATHS,
    VALID_PATHS,
    st.sampled_from(
        ["/system.slice/redis-server.service", "/batch.slice/nightly-etl.service", "/", "/nope", "", "x"]
    ),
    st.text(max_size=60),
    st.integers(min_value=1, max_value=5000).map(lambda n: "/" + "a" * n),
)


@pytest.fixture(scope="module")
def sim_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, ApiServer]]:
    root = tmp_path_factory.mktemp("apifuzz")
    profiles = root / "profiles"
    shutil.copytree(profiles_dir(), profiles)
    svc = sim_service(
        "multi-cgroup", state_dir=root / "state", profiles_dir=profiles, epochs=30, wall=lambda: 1e9
    )
    svc.start()
    lock = threading.Lock()
    sockdir = Path(tempfile.mkdtemp(prefix="tierctl-afz-"))
    srv = ApiServer(svc, sockdir / "f.sock", socket_group=None, service_lock=lock).start()
    yield svc, srv
    srv.stop()
    svc.stop()
    shutil.rmtree(sockdir, ignore_errors=True)


@SETTINGS
@given(
    op=st.sampled_from(["quota", "pin", "unpin", "cgroup", "migrate"]),
    path=PATHS,
    lo=AMOUNTS,
    hi=AMOUNTS,
    tier=st.one_of(st.sampled_from(["fast", "slow", "auto", "warm"]), st.integers()),
)
@example(op="quota", path="/system.slice/redis-server.service", lo="1E30", hi=None, tier="fast")
@example(op="quota", path="/system.slice/redis-server.service", lo=None, hi=10**30, tier="fast")
@example(op="quota", path="/system.slice/redis-server.service", lo="inf", hi="nan", tier="fast")
def test_api_mutations_get_clean_answers_and_the_service_keeps_cycling(
    sim_daemon: tuple[Service, ApiServer], op: str, path: Any, lo: Any, hi: Any, tier: Any
) -> None:
    svc, srv = sim_daemon
    args: dict[str, Any] = {"path": path}
    if op == "quota":
        args.update(fast_min=lo, fast_max=hi)
    elif op == "pin":
        args["tier"] = tier
    with ApiClient(srv.socket_path, timeout=10) as c:
        try:
            c.call(op, **args)
        except TierctlError as e:
            assert getattr(e, "kind", "input") in ("input", "permission", "unavailable"), e
            assert "Traceback" not in str(e)
        assert c.call("status")["state"] in ("running", "paused")
    with srv._service_lock:
        svc.cycle()  # whatever was accepted, a cycle runs
    for quota in svc.overrides.quotas.values():  # and what was stored is what the next start accepts
        for v in quota.values():
            if v is not None:
                pages = amount_to_pages(v, page_size=4096, fast_capacity=1 << 20, where="x")
                assert pages <= svc.tracked_pages() + (1 << 20)  # never more than the machine


# ---- state files -------------------------------------------------------------------------------------

JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.text(max_size=20),
        st.floats(),
    ),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def override_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["structured", "structured", "raw", "deep", "nan", "dupe"]))
    if kind == "raw":
        return draw(st.binary(max_size=500))
    if kind == "deep":
        n = draw(st.integers(100, 200_000))
        return b"[" * n + (b"]" * n if draw(st.booleans()) else b"")
    if kind == "nan":
        return b'{"version": 1, "quotas": {"/a": {"fast_min": NaN}}}'
    if kind == "dupe":
        return b'{"version": 1, "pins": {"/a": "slow"}, "pins": {}}'
    doc = {
        "version": draw(st.sampled_from([1, 1, 1, 2, 99, "1", None])),
        "pins": draw(
            st.dictionaries(
                st.sampled_from(["/a", "/b", "a", ""]), st.sampled_from(["fast", "slow", "auto", 1])
            )
        ),
        "quotas": draw(
            st.dictionaries(
                st.sampled_from(["/a", "/b/c", "x"]),
                st.one_of(st.fixed_dictionaries({"fast_min": AMOUNTS, "fast_max": AMOUNTS}), JSONISH),
            )
        ),
        "paused": draw(st.one_of(st.booleans(), JSONISH)),
    }
    return json.dumps(doc, default=str).encode()


@SETTINGS
@given(raw=override_files())
def test_overrides_files_load_or_are_set_aside(raw: bytes) -> None:
    d = Path(tempfile.mkdtemp(prefix="tierctl-ofz-"))
    try:
        (d / "overrides.json").write_bytes(raw)
        store = OverrideStore(d / "overrides.json")
        o = store.load()  # never raises for the content of the file
        if store.problem is not None:
            assert (d / "overrides.json.corrupt").read_bytes() == raw and o.pins == {} and o.quotas == {}
        for quota in o.quotas.values():  # loaded values are usable by every cycle
            for v in quota.values():
                if v is not None:
                    assert 0 <= amount_to_pages(v, page_size=4096, fast_capacity=1 << 20, where="x") <= INT64
        assert isinstance(o.paused, bool)
        assert all(t in ("fast", "slow") for t in o.pins.values())
    finally:
        shutil.rmtree(d, ignore_errors=True)


@SETTINGS
@given(raw=st.one_of(override_files(), st.binary(max_size=300)))
def test_knob_records_load_or_are_set_aside(raw: bytes) -> None:
    d = Path(tempfile.mkdtemp(prefix="tierctl-kfz-"))
    try:
        (d / "knobs.json").write_bytes(raw)
        try:
            g = KnobGuard(d / "knobs.json", d)
        except InputError as e:  # only an unreadable file (permissions) may refuse
            pytest.fail(f"a knob record's content made the guard raise: {e}")
        assert g.problem is None or (d / "knobs.json.corrupt").exists()
    finally:
        shutil.rmtree(d, ignore_errors=True)
