"""What a cgroup row says beyond its numbers (pure): its pod, the outcome of the newest action on it,
and the state a row is coloured by (pinned, over its quota, a low hit ratio).

Outcomes (the Service's ``"outcome"`` on cgroup rows, details, mutation results and ``outcome``
events): ``{"action": "pin"|"unpin"|"quota"|"migrate", "target", "state": "accepted"|"in_progress"|
"done"|"impossible"|"stuck", "waiting_for", "moved_pages", "since", "updated", "message"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rich.text import Text

from tierctl.tui.model import fmt_time

OUTCOME_STYLE: Mapping[str, str] = MappingProxyType(
    {
        "accepted": "cyan",
        "in_progress": "bold yellow",
        "done": "bold green",
        "impossible": "bold red",
        "stuck": "bold white on red",
    }
)
OUTCOME_WORD: Mapping[str, str] = MappingProxyType(
    {
        "accepted": "accepted",
        "in_progress": "in progress",
        "done": "done",
        "impossible": "impossible",
        "stuck": "stuck",
    }
)
# the mark a row carries while its outcome is not final (shown in the pin column)
OUTCOME_MARK: Mapping[str, str] = MappingProxyType({"accepted": "…", "in_progress": "…", "stuck": "!"})
LOW_HIT = 0.5  # an estimated fast-tier hit ratio below this colours the row
ROW_STYLE: Mapping[str, str] = MappingProxyType(
    {"stuck": "red", "over_quota": "yellow", "low_hit": "dark_orange", "pinned": "cyan"}
)


def pod_label(c: Mapping[str, Any]) -> str:
    """``namespace/name`` (``/container`` for a container's own cgroup), ``pod:<uid8>`` while the API
    server has not named it; "" for a cgroup that is not a pod's."""
    pod = c.get("pod")
    if not isinstance(pod, Mapping):
        return ""
    ns, name = pod.get("namespace"), pod.get("name")
    label = f"{ns}/{name}" if ns and name else f"pod:{str(pod.get('uid') or '?')[:8]}"
    return f"{label}/{pod['container']}" if pod.get("container") else label


def has_pods(cgroups: list[dict[str, Any]]) -> bool:
    return any(isinstance(c.get("pod"), Mapping) for c in cgroups)


def outcome_of(c: Mapping[str, Any] | None) -> dict[str, Any] | None:
    o = c.get("outcome") if isinstance(c, Mapping) else None
    return o if isinstance(o, dict) and o.get("state") else None


def outcome_open(c: Mapping[str, Any]) -> str | None:
    """The outcome's state while it is not final (accepted, in_progress, stuck), else None."""
    o = outcome_of(c)
    return str(o["state"]) if o and o["state"] in OUTCOME_MARK else None


def outcome_text(o: Mapping[str, Any] | None) -> Text:
    """One or two lines: ``pin fast: in progress · waiting for room in the fast tier · 120 pages moved``
    and the service's message."""
    if not o:
        return Text("none", "dim")
    state = str(o.get("state", "?"))
    t = Text(f"{o.get('action', '?')} {o.get('target') or ''}".rstrip() + ": ", "bold")
    t.append(OUTCOME_WORD.get(state, state), OUTCOME_STYLE.get(state, "bold"))
    if o.get("waiting_for"):
        t.append(f" · waiting for {o['waiting_for']}", "yellow")
    t.append(f" · {int(o.get('moved_pages') or 0)} pages moved")
    if isinstance(o.get("since"), int | float):
        t.append(f" · since {fmt_time(o['since'])}", "dim")
    if o.get("message"):
        t.append(f"\n{o['message']}", "italic")
    return t


def result_message(result: Any, fallback: str) -> tuple[str, str, str]:
    """(message, title, severity) of a mutation's result: its outcome's message when it carries one
    (``{"ok": true, "outcome": {...}}``), else ``fallback`` (an older daemon)."""
    o = result.get("outcome") if isinstance(result, Mapping) else None
    if not isinstance(o, Mapping) or not o.get("state"):
        return fallback, "done", "information"
    state = str(o["state"])
    msg = str(o.get("message") or fallback)
    if o.get("waiting_for") and str(o["waiting_for"]) not in msg:
        msg += f" (waiting for {o['waiting_for']})"
    severity = {"impossible": "error", "stuck": "error", "in_progress": "warning"}.get(state, "information")
    return msg, OUTCOME_WORD.get(state, state), severity


def _quota_max_bytes(q: Any, fast_capacity: int) -> int | None:
    """A quota bound in bytes (a share of the fast tier's capacity), read by the one amount parser
    (``values.amount``: bytes, a size, ``60%`` or a float share); None when there is none or it does
    not read."""
    from tierctl import values
    from tierctl.errors import InputError

    if q is None or q == "":
        return None
    try:
        a = values.amount(q, "fast_max")
    except InputError:
        return None
    return int(a.value * fast_capacity) if a.kind == "share" else int(a.value)


def row_state(c: Mapping[str, Any], quota: Mapping[str, Any] | None, fast_capacity: int) -> str | None:
    """What colours a row, the most urgent first: a stuck outcome, over the quota's max, a low hit
    ratio, pinned; None for a row that is as it should be."""
    if outcome_open(c) == "stuck":
        return "stuck"
    q = c.get("quota") if isinstance(c.get("quota"), Mapping) else quota
    top = _quota_max_bytes((q or {}).get("fast_max"), fast_capacity) if q else None
    fast = c.get("fast_bytes")
    if top is not None and isinstance(fast, int | float) and fast > top:
        return "over_quota"
    hit = c.get("est_fast_hit_ratio")
    if isinstance(hit, int | float) and not isinstance(hit, bool) and hit < LOW_HIT and c.get("hot_bytes"):
        return "low_hit"
    if str(c.get("override") or "auto") not in ("auto", ""):
        return "pinned"
    return None


def quota_bound(q: Mapping[str, Any], key: str) -> str:
    """A quota bound as written (the detail's ``<key>_amount``: ``4G``, ``60%``), else its bytes."""
    from tierctl.fmt import fmt_amount

    written = q.get(f"{key}_amount", q.get(key))
    return written if isinstance(written, str) else fmt_amount(written)
