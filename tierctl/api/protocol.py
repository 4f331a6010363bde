"""The wire format of the socket API: versioned JSON lines (spec in docs/api.md).

A request is one line ``{"v": 1, "id": <any JSON>, "op": "<name>", "args": {...}}``; the answer is one
line ``{"v": 1, "id": <same>, "ok": true, "result": ...}`` or ``{"v": 1, "id": <same>, "ok": false,
"error": {"kind": ..., "message": ..., "where": ...}}``. After a successful ``subscribe`` the server pushes
``{"v": 1, "event": {...}}`` lines until the client closes.

Everything here is pure (bytes in, objects out) so both ends and the fuzz tests share one definition.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from tierctl import strict_json, values
from tierctl.errors import EXIT_INTERNAL, InputError, PermissionDeniedError, TierctlError, UnavailableError
from tierctl.service.contract import API_VERSION

MAX_LINE = 64 * 1024
"""Longest request line in bytes, newline included; a longer one is a protocol error and closes."""

MAX_PATH = 4096
NAME_MAX = 255
TIERS = ("fast", "slow", "auto")
ERROR_KINDS = ("input", "permission", "unavailable", "internal", "protocol")
REQUEST_KEYS = ("v", "id", "op", "args")


class ProtocolError(TierctlError):
    """The peer broke the wire format (not JSON, wrong version, unknown op, bad envelope)."""

    kind = "protocol"


class RemoteError(TierctlError):
    """An error the server reported that has no more specific class (kinds ``internal``, ``protocol``)."""

    exit_code = EXIT_INTERNAL

    def __init__(self, kind: str, message: str, where: str | None = None) -> None:
        super().__init__(message, where)
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind} error: {super().__str__()}"


class RequestError(TierctlError):
    """A request failed validation; carries the error ``kind`` and the request ``id`` when known."""

    def __init__(self, kind: str, message: str, where: str | None = None, req_id: Any = None) -> None:
        super().__init__(message, where)
        self.kind = kind
        self.req_id = req_id


# ---- ops and their arguments ----------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    name: str
    check: Callable[[str, Any], Any]  # (where, value) -> value, raises RequestError("input", ...)
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class Cli:
    """How ``tierctl`` offers an op as a subcommand of its own name (tierctl/cli/client_cmds.py adds
    the op's arguments): ``help``, its line in ``tierctl --help`` (default: the op's help);
    ``description``, the text of ``tierctl NAME --help`` (default: the help as a sentence); ``done``,
    what a success prints when the answer has no outcome to follow (an op without arguments)."""

    help: str = ""
    description: str = ""
    done: str = ""


@dataclass(frozen=True)
class OpSpec:
    """One operation of the API, declared once: the server dispatches it, the client and the TUI
    name it, the CLI offers it (``cli``), and tests check it against ``ServiceContract`` and the CLI.

    ``method``: the Service method that serves it, called with the ``args`` values in order (under
    the service lock); ``prepare``: a Service method called first *outside* the lock, whose result
    (or the TierctlError it raised) is passed as one more argument; ``shape``: turns the method's
    result into the wire result."""

    name: str
    mutation: bool
    args: tuple[Arg, ...] = ()
    stream: bool = False
    help: str = ""
    method: str = ""
    prepare: str | None = None
    shape: Callable[[Any], Any] | None = None
    cli: Cli | None = None


def _bad(where: str, message: str) -> RequestError:
    return RequestError("input", message, where)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for t, name in ((int, "integer"), (float, "number"), (str, "string"), (list, "array"), (dict, "object")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def _got(value: Any) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool) and len(repr(value)) <= 40:
        return f"{_type_name(value)} {value!r}"
    return _type_name(value)


def check_path(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(where, f"expected a cgroup path (string), got {_got(value)}")
    if not value or len(value) > MAX_PATH or "\0" in value:
        raise _bad(where, f"expected a non-empty cgroup path of at most {MAX_PATH} characters without NUL")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(where, "a cgroup path must be valid UTF-8 text") from None
    if len(raw) >= MAX_PATH:
        raise _bad(where, f"a cgroup path is shorter than {MAX_PATH} bytes (PATH_MAX), got {len(raw)}")
    longest = max(len(part) for part in raw.split(b"/"))
    if longest > NAME_MAX:
        raise _bad(where, f"a cgroup name is at most {NAME_MAX} bytes (NAME_MAX), got one of {longest}")
    return value


def check_optional_path(where: str, value: Any) -> str | None:
    return None if value is None else check_path(where, value)


def check_tier(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(where, f"expected one of {', '.join(TIERS)}, got {_got(value)}")
    if value not in TIERS:
        raise _bad(where, f"expected one of {', '.join(TIERS)}, got {_got(value)}{_hint(value, TIERS)}")
    return value


def check_seq(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, f"expected an integer >= 0, got {_got(value)}")
    if value < 0 or value >= 2**63:
        raise _bad(where, f"expected an integer within 0..2**63-1, got {value}")
    return value


def check_optional_seq(where: str, value: Any) -> int | None:
    return None if value is None else check_seq(where, value)


def check_amount(where: str, value: Any) -> str | int | None:
    """A quota bound: null (none), bytes as an integer, or a size or share string ("4G", "25%"),
    checked by ``values.amount`` (finite, within range); the service also checks it against the
    machine."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _bad(where, f"expected bytes (integer), a size string or null, got {_got(value)}")
    try:
        values.amount(value, where)
    except InputError as e:
        raise _bad(where, e.message) from None
    return value


def _events_result(got: tuple[int, list[dict[str, Any]]]) -> dict[str, Any]:
    seq, events = got
    return {"seq": seq, "events": events}


def _filled(s: OpSpec) -> OpSpec:
    """An explicit method, and a complete ``cli``: an op is served by the Service method of its own
    name unless it names another; the CLI's texts default to the op's help."""
    s = s if s.method else replace(s, method=s.name)
    if s.cli is None:
        return s
    short = s.cli.help or s.help
    return replace(s, cli=replace(s.cli, help=short, description=s.cli.description or _sentence(short)))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _declare(*specs: OpSpec) -> Mapping[str, OpSpec]:
    return MappingProxyType({s.name: _filled(s) for s in specs})


OPS: Mapping[str, OpSpec] = _declare(
    OpSpec("status", False, help="daemon state, cycle, samplers, moved pages, profiles, overrides"),
    OpSpec("topology", False, help="memory tiers and nodes"),
    OpSpec("cgroups", False, help="one entry per managed cgroup"),
    OpSpec(
        "pressure",
        False,
        help="memory pressure: the machine, the ladder, working sets",
        method="pressure_status",
    ),
    OpSpec(
        "cgroup",
        False,
        (Arg("path", check_path),),
        help="detail of one cgroup",
        method="cgroup_detail",
    ),
    OpSpec(
        "events",
        False,
        (Arg("since", check_seq, required=False, default=0),),
        help="events after sequence number `since`",
        method="events_since",
        shape=_events_result,
    ),
    OpSpec(
        "subscribe",
        False,
        (Arg("since", check_optional_seq, required=False, default=None),),
        stream=True,
        help="stream of events (default: from now on)",
        method="events_since",
    ),
    # the mutations, in the order `tierctl --help` lists them
    OpSpec(
        "pin",
        True,
        (Arg("path", check_path), Arg("tier", check_tier)),
        help="pin a cgroup's memory to a tier",
        cli=Cli(
            help="pin a cgroup's memory to a tier (needs root or the mutators group)",
            description="Operator override: keep a cgroup's memory in the fast or slow tier, or let the "
            "policy decide (auto). Persisted by the daemon across restarts.",
        ),
    ),
    OpSpec(
        "unpin",
        True,
        (Arg("path", check_path),),
        help="drop a cgroup's pin",
        cli=Cli(description="Drop a cgroup's pin override."),
    ),
    OpSpec(
        "quota",
        True,
        (
            Arg("path", check_path),
            Arg("fast_min", check_amount, required=False),
            Arg("fast_max", check_amount, required=False),
        ),
        help="set a cgroup's fast-tier min/max",
        method="set_quota",
        cli=Cli(
            help="set or drop a cgroup's fast-tier min/max (needs root or the mutators group)",
            description="Operator override of a cgroup's fast-tier quota: --fast-min and/or --fast-max "
            "as bytes (4G, 512M) or a share of the fast tier (25%); --clear drops it (the profile's "
            "applies). A quota set while the cgroup is pinned is stored and inactive until it is "
            "unpinned.",
        ),
    ),
    OpSpec(
        "migrate",
        True,
        (Arg("path", check_optional_path, required=False),),
        help="queue a migration pass for the next cycle (one cgroup or all); its outcome reports what moved",
        method="migrate_now",
        cli=Cli(
            help="run a placement pass at the next cycle (one cgroup or all; needs root or the mutators "
            "group)",
            description="Queue a placement pass: the next cycle decides even without news; the outcome "
            "reports the pages it moved.",
        ),
    ),
    OpSpec("pause", True, help="stop moving pages (sampling continues)", cli=Cli(done="paused")),
    OpSpec("resume", True, help="resume moving pages after pause", cli=Cli(done="resumed")),
    # the profiles are read and checked outside the lock: a slow parse never stalls the rest
    OpSpec(
        "reload",
        True,
        help="reload profiles (all or nothing: a broken set keeps the running one)",
        prepare="read_profiles",
        cli=Cli(done="reloaded"),
    ),
)
OP_OF_METHOD: Mapping[str, str] = MappingProxyType({s.method: s.name for s in OPS.values() if not s.stream})
MUTATIONS = frozenset(name for name, s in OPS.items() if s.mutation)


def _hint(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


# ---- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    id: Any
    op: str
    args: dict[str, Any]

    @property
    def spec(self) -> OpSpec:
        return OPS[self.op]


def loads_strict(data: str) -> Any:
    """JSON without NaN/Infinity or duplicate keys (``{"op":"status","op":"pause"}`` is an error, not
    last-wins); nesting or number size beyond the parser's limits is a ValueError."""
    return strict_json.loads(data)


def parse_request(line: bytes) -> Request:
    """Validate one request line (without or with its trailing newline); raise RequestError."""
    if len(line) > MAX_LINE:
        raise RequestError("protocol", f"request line longer than {MAX_LINE} bytes", "request")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError("protocol", f"request is not UTF-8 (byte {e.start})", "request") from None
    if not text.strip():
        raise RequestError("protocol", "empty request line", "request")
    try:
        obj = loads_strict(text)
    except ValueError as e:
        raise RequestError("protocol", f"request is not valid JSON: {e}", "request") from None
    if not isinstance(obj, dict):
        raise RequestError("protocol", f"request must be a JSON object, got {_type_name(obj)}", "request")
    req_id = obj.get("id")
    for key in obj:
        if key not in REQUEST_KEYS:
            raise RequestError(
                "protocol", f"unknown request key {key!r}{_hint(key, REQUEST_KEYS)}", key, req_id
            )
    v = obj.get("v")
    if v is None:
        raise RequestError("protocol", f'missing "v" (protocol version, {API_VERSION})', "v", req_id)
    if isinstance(v, bool) or v != API_VERSION:
        raise RequestError(
            "protocol",
            f"unsupported protocol version {_got(v)}; this server speaks {API_VERSION}",
            "v",
            req_id,
        )
    op = obj.get("op")
    if not isinstance(op, str):
        raise RequestError("protocol", f'"op" must be a string, got {_got(op)}', "op", req_id)
    spec = OPS.get(op)
    if spec is None:
        shown = op if len(op) <= 40 else op[:40] + "..."
        raise RequestError("protocol", f"unknown op {shown!r}{_hint(op, OPS)}", "op", req_id)
    raw_args = obj.get("args", {})
    if raw_args is None:
        raw_args = {}
    if not isinstance(raw_args, dict):
        raise RequestError(
            "protocol", f'"args" must be an object, got {_type_name(raw_args)}', "args", req_id
        )
    return Request(req_id, op, check_args(spec, raw_args, req_id))


def check_args(spec: OpSpec, raw: Mapping[str, Any], req_id: Any = None) -> dict[str, Any]:
    known = [a.name for a in spec.args]
    for key in raw:
        if key not in known:
            extra = _hint(key, known) if known else f" ({spec.name} takes no arguments)"
            err = _bad(f"args.{key}", f"unknown argument of {spec.name}{extra}")
            err.req_id = req_id
            raise err
    out: dict[str, Any] = {}
    for a in spec.args:
        where = f"args.{a.name}"
        if a.name not in raw:
            if a.required:
                err = _bad(where, f"missing argument of {spec.name}")
                err.req_id = req_id
                raise err
            out[a.name] = a.default
            continue
        try:
            out[a.name] = a.check(where, raw[a.name])
        except RequestError as err:
            err.req_id = req_id
            raise
    return out


def encode_request(op: str, args: Mapping[str, Any] | None = None, req_id: Any = None) -> bytes:
    return dump_line({"v": API_VERSION, "id": req_id, "op": op, "args": dict(args or {})})


# ---- responses ------------------------------------------------------------------------------------


def _default(o: Any) -> Any:
    """numpy scalars/arrays, tuples-in-disguise, sets and paths become plain JSON."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, set | frozenset):
        return sorted(o, key=repr)
    if hasattr(o, "__fspath__"):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def dump_line(obj: Any) -> bytes:
    """One JSON line (ASCII, no NaN: non-finite floats become null)."""
    try:
        text = json.dumps(obj, allow_nan=False, default=_default, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_finite(json.loads(json.dumps(obj, default=_default))), allow_nan=False)
    return text.encode("ascii") + b"\n"


def ok_response(req_id: Any, result: Any) -> bytes:
    return dump_line({"v": API_VERSION, "id": req_id, "ok": True, "result": result})


def error_response(req_id: Any, kind: str, message: str, where: str | None = None) -> bytes:
    err: dict[str, Any] = {"kind": kind, "message": message}
    if where is not None:
        err["where"] = where
    return dump_line({"v": API_VERSION, "id": req_id, "ok": False, "error": err})


def event_line(event: Any) -> bytes:
    return dump_line({"v": API_VERSION, "event": event})


def error_kind(err: BaseException) -> str:
    """The wire kind of an exception raised by the service."""
    if isinstance(err, RequestError):
        return err.kind
    if isinstance(err, InputError):
        return "input"
    if isinstance(err, PermissionDeniedError):
        return "permission"
    if isinstance(err, UnavailableError):
        return "unavailable"
    return "internal"


def raise_for_error(error: Any) -> None:
    """Raise the TierctlError subclass matching a response's ``error`` object."""
    if not isinstance(error, dict):
        raise RemoteError("protocol", f"malformed error in response: {_type_name(error)}")
    kind = error.get("kind")
    message = str(error.get("message", "unknown error"))
    where = error.get("where")
    where = str(where) if where is not None else None
    if kind == "input":
        raise InputError(message, where)
    if kind == "permission":
        raise PermissionDeniedError(message, where)
    if kind == "unavailable":
        raise UnavailableError(message, where)
    raise RemoteError(str(kind), message, where)


def parse_response(line: bytes) -> dict[str, Any]:
    """Decode a response or event line from the server; a malformed one raises RemoteError(protocol)."""
    try:
        obj = loads_strict(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RemoteError("protocol", f"malformed line from the server: {e}") from None
    if not isinstance(obj, dict) or obj.get("v") != API_VERSION:
        raise RemoteError("protocol", "malformed line from the server (not a version-1 object)")
    return obj
