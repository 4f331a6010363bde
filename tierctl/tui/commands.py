"""The command palette (ctrl+p or ``:``): every action by name, and every cgroup to open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tierctl.tui.keys import shown_keys

if TYPE_CHECKING:
    from tierctl.tui.app import TierctlApp

ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("Pin selected cgroup…", "pin", "fast, slow or auto"),
    ("Set fast-tier quota of selected cgroup…", "quota", "min / max"),
    ("Migrate now", "migrate", "run a migration pass now"),
    ("Pause or resume the controller", "toggle_pause", "stop / restart moving pages"),
    ("Reload profiles", "reload", "all or nothing"),
    ("Show overview", "tab('overview')", "tiers, rates, controller, samplers"),
    ("Show cgroups", "tab('cgroups')", "the cgroups table"),
    ("Show events", "tab('events')", "the events log"),
    ("Show pressure", "tab('pressure')", "memory pressure: machine, ladder, cgroups by PSI"),
    ("Filter cgroups…", "filter", "by path, profile or pin"),
    ("Help: keys", "help", "every key"),
)


class TierctlCommands(Provider):
    def _entries(self) -> list[tuple[str, Callable[[], object], str]]:
        app: TierctlApp = self.app  # type: ignore[assignment]
        out: list[tuple[str, Callable[[], object], str]] = [
            (name, _runner(app, action), with_key(action, help_text)) for name, action, help_text in ACTIONS
        ]
        for path in app.cgroup_paths():
            out.append((f"Open cgroup {path}", _opener(app, path), "detail view"))
        return out

    async def discover(self) -> Hits:
        for name, run, help_text in self._entries()[: len(ACTIONS)]:
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for name, run, help_text in self._entries():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)


KEY_OF = {"toggle_pause": "pause"}  # palette actions whose keys are bound under another action


def with_key(action: str, help_text: str) -> str:
    """The entry's help with its key first: ``key p · fast, slow or auto``."""
    keys = shown_keys(KEY_OF.get(action, action))
    return f"key {keys} · {help_text}" if keys else help_text


def _runner(app: TierctlApp, action: str) -> Callable[[], object]:
    return lambda: app.run_action(action)


def _opener(app: TierctlApp, path: str) -> Callable[[], object]:
    return lambda: app.open_detail(path)
