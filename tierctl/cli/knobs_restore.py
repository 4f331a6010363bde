"""``tierctl knobs --restore``: whether restoring may run now (no daemon answering on its socket, no
recording process alive), and restoring every record through ``KnobGuard.restore_all`` newest first,
with one :class:`Outcome` per knob.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tierctl.api.client import ApiClient, DaemonNotRunningError
from tierctl.cli.knobs_render import shown_value
from tierctl.cli.knobs_survey import Knob, Places, Survey
from tierctl.errors import PermissionDeniedError, TierctlError
from tierctl.kernel.knobs import MOUNT, KnobGuard, Restored

SOCKET_TIMEOUT_S = 2.0  # how long a daemon may take to answer before it counts as busy (still refused)


@dataclass(frozen=True)
class Outcome:
    record: Path
    knob: str
    kind: str
    original: str
    outcome: str  # "restored" | "already" (at its original value) | "gone" | "failed" | "removed"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    def line(self) -> str:
        shown = shown_value(self.original, self.kind)
        if self.kind == "mount" and self.outcome in ("restored", "already"):
            return f"{self.knob}: " + ("unmounted" if self.outcome == "restored" else "already unmounted")
        if self.outcome == "restored":
            return f"{self.knob}: restored to {shown}" + (f" ({self.detail})" if self.detail else "")
        if self.outcome == "already":
            return f"{self.knob}: already at its original value {shown}"
        if self.outcome == "gone":
            return f"{self.knob}: gone, nothing to restore ({self.detail})"
        if self.outcome == "removed":
            return self.detail
        return f"{self.knob}: failed: {self.detail}"


def refusal(places: Places, found: Survey) -> str | None:
    """Why --restore must not run now (None: it may)."""
    try:
        with ApiClient(places.socket, timeout=SOCKET_TIMEOUT_S) as client:
            client.call("status")
        return (
            f"a tierctl daemon answers on {places.socket}: stop it first (systemctl stop tierctl); "
            "it restores its own knobs when it stops"
        )
    except DaemonNotRunningError:
        pass
    except TierctlError as e:
        return (
            f"something listens on the daemon's socket {places.socket} ({e.message}): a running daemon "
            "would fight over the knobs; stop it first"
        )
    for r in found.records:
        if r.alive:
            kind = "DAMON" if r.label.startswith("damon.") else "BPF"
            who = "the daemon" if r.label == "daemon" else f"a tierctl command (its {kind} sampler)"
            return (
                f"{r.path} is in use by PID {r.pid} (alive): {who} holds these knobs and would fight "
                "over them; stop it first (it restores them when it stops)"
            )
    return None


def restore(places: Places, found: Survey) -> list[Outcome]:
    """Restore every record ``found`` (newest first) through KnobGuard.restore_all, as the daemon does."""
    out: list[Outcome] = []
    for r in sorted(found.records, key=lambda r: r.time, reverse=True):
        if not _writable(r.path):
            raise PermissionDeniedError(
                "permission denied: restoring rewrites or removes this knob record (root needed)", str(r.path)
            )
        before = {k.record.knob: k for k in r.knobs}
        try:
            guard = KnobGuard(r.path, places.root, mounts=places.mounts)
            if guard.problem:  # an earlier boot's record, removed; or one that changed since the survey
                what = "removed" if r.earlier_boot else "failed"
                out.append(Outcome(r.path, "(the record)", "", "", what, guard.problem))
                continue
            done = guard.restore_all()
        except PermissionError as e:
            raise PermissionDeniedError(
                f"permission denied: {e.strerror or e} (root needed)", e.filename or str(r.path)
            ) from None
        except TierctlError as e:
            out.append(Outcome(r.path, str(r.path), "", "", "failed", str(e)))
            continue
        out += [_outcome(r.path, d, before.get(d.knob)) for d in done]
    return out


def _writable(path: Path) -> bool:
    """Whether this process may replace or remove ``path`` (KnobGuard rewrites it in its folder)."""
    eff = os.access in os.supports_effective_ids
    return os.access(path.parent, os.W_OK | os.X_OK, effective_ids=eff)


def _outcome(path: Path, done: Restored, was: Knob | None) -> Outcome:
    kind = was.record.interface if was is not None else ""
    if done.outcome == "failed":
        return Outcome(path, done.knob, kind, done.value, "failed", done.error)
    if was is not None and was.at_original:
        return Outcome(path, done.knob, kind, done.value, "already")
    if done.outcome == "gone":
        return Outcome(path, done.knob, kind, done.value, "gone", done.error)
    detail = ""
    if was is not None and was.drifted and was.current is not None and was.record.kind != MOUNT:
        detail = f"it had drifted to {was.current}"
    return Outcome(path, done.knob, kind, done.value, "restored", detail)
