"""Follow the profiles directory: tell the daemon when its files changed, so it reloads them as on SIGHUP.

Two ways to notice, one decision:

- **inotify** on the directory (``tierctl.kernel.inotify.DirWatch``): a Kubernetes ConfigMap volume is
  swapped atomically by renaming a new ``..data`` symlink over the old one (``IN_MOVED_TO``), its
  per-key symlinks are created or deleted (``IN_CREATE``/``IN_DELETE``) when keys come and go, and a
  plain directory edited in place shows ``IN_CLOSE_WRITE`` (or ``IN_MOVED_TO`` for editors that write a
  copy and rename it). Costs nothing while nothing happens, and a change is seen at once.
- **a fingerprint poll**: where inotify cannot be had (no instance or watch left under the per-user
  limits, a file system without it), every ``poll_s``. Also, with inotify, every ``verify_s`` as a safety
  net: a profile symlinked to a file outside the directory changes without an event on the directory.

The fingerprint (``fingerprint()``) is what a reload would read: the directory's own device and inode
(a replaced directory is a change) and, for each profile file the loader would load
(``profiles.loader.profile_files``), its resolved path, device, inode, mtime and size; an entry that
cannot be read counts by its error. ~10 ``stat`` calls, well under a millisecond.

**Debounce**: a swap is several events (new timestamped directory, ``..data_tmp``, the rename, the old
directory deleted); an editor's save may be several writes. ``due()`` answers only once no event came
for ``debounce_s`` (a poll: the fingerprint stayed the same for ``debounce_s``), and at the latest
``max_delay_s`` after the first event of a burst that never ends. It then compares the fingerprint
with the one of the last reload (or of the start): nothing to do when the profile files are unchanged
(an editor's swap file came and went). A failed reload is not retried until the files change again.

Nothing here reloads: ``due()`` returns why a reload is due and the daemon runs the same transactional
reload as for SIGHUP (``service.daemon``). No thread: the daemon calls ``due()`` from its loop's waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tierctl.errors import TierctlError, UnavailableError
from tierctl.kernel.inotify import DirWatch, Event
from tierctl.profiles.loader import profile_files

Fingerprint = tuple[tuple[object, ...], ...]
MODES = ("auto", "on", "off")
CONFIGMAP_DATA = "..data"  # the symlink kubelet swaps on a ConfigMap update


def fingerprint(directory: Path) -> Fingerprint:
    """What a reload of ``directory`` would read, as (path, realpath, dev, inode, mtime_ns, size) rows."""
    rows: list[tuple[object, ...]] = []
    try:
        st = os.stat(directory)
        rows.append(("<dir>", st.st_dev, st.st_ino))
    except OSError as e:
        return (("<dir>", "error", e.errno),)
    files, problems = profile_files([directory])
    rows += [("<problem>", p.message) for p in problems]
    for f in files:
        try:
            st = os.stat(f)
            rows.append((f.name, os.path.realpath(f), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError as e:
            rows.append((f.name, "error", e.errno))
    return tuple(rows)


_ANY: Fingerprint = (("<any>",),)  # after inotify events: no need to see the files settle twice


class ProfileWatch:
    """Tells when the profiles under ``directory`` changed. ``start()`` first (it takes the baseline:
    call it before the profiles are first read), then ``due()`` often, ``close()`` at the end."""

    def __init__(
        self,
        directory: Path,
        *,
        use_inotify: bool = True,
        debounce_s: float = 0.3,
        max_delay_s: float = 5.0,
        poll_s: float = 2.0,
        verify_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        inotify: Callable[[Path], DirWatch] = DirWatch,
    ) -> None:
        self.directory = Path(directory)
        self.use_inotify = use_inotify
        self.debounce_s, self.max_delay_s = debounce_s, max_delay_s
        self.poll_s, self.verify_s = poll_s, verify_s
        self.clock = clock
        self._open = inotify
        self._watch: DirWatch | None = None
        self.mode = "off"  # "inotify" or "poll" once started
        self.reason = ""  # why polling, when it is
        self._loaded: Fingerprint = ()  # the files as of the start or of the last reload
        self._probe: Fingerprint | None = None  # pending: the files when the change was last seen
        self._first_at = self._last_at = 0.0  # pending: when the burst started, when last seen
        self._names: set[str] = set()  # pending: entries named by inotify events
        self._check_at = 0.0  # the next fingerprint poll (poll mode) or safety check (inotify mode)
        self.changes = 0  # how many times due() said a reload was due

    # ---- life -----------------------------------------------------------------------------------------
    def start(self) -> str:
        """Open the watch and take the baseline; one line saying how the directory is followed."""
        self._loaded = fingerprint(self.directory)
        if self.use_inotify:
            try:
                self._watch = self._open(self.directory)
                self.mode = "inotify"
            except UnavailableError as e:
                self.reason = str(e)
        if self._watch is None:
            self.mode = "poll"
        self._check_at = self.clock() + (self.verify_s if self.mode == "inotify" else self.poll_s)
        return self.describe()

    def describe(self) -> str:
        if self.mode == "inotify":
            return f"following {self.directory} by inotify (and a check every {self.verify_s:g} s)"
        why = f" ({self.reason})" if self.reason else ""
        return f"following {self.directory} by a check every {self.poll_s:g} s{why}"

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    # ---- the question ---------------------------------------------------------------------------------
    def due(self) -> str | None:
        """Why the profiles should be reloaded now, or None. Cheap when nothing happened."""
        now = self.clock()
        self._gather(now)
        if self._probe is None:
            return None
        if now - self._last_at < self.debounce_s and now - self._first_at < self.max_delay_s:
            return None
        fp = fingerprint(self.directory)
        if self._probe is not _ANY and fp != self._probe and now - self._first_at < self.max_delay_s:
            self._seen(now, fp)  # a poll found the files still changing: wait for them to settle
            return None
        names, self._names, self._probe = self._names, set(), None
        if fp == self._loaded:
            return None  # events, but the profile files are as loaded (a swap file, a touch of nothing)
        self._loaded = fp
        self.changes += 1
        return _why(names)

    def _gather(self, now: float) -> None:
        if self._watch is not None:
            try:
                events = self._watch.read()
            except TierctlError as e:  # fall back to polling for the rest of the run
                self._fallback(str(e), now)
                return
            if events:
                self._on_events(events, now)
            if not self._watch.watching:  # the directory itself went away: watch it again once it is back
                try:
                    self._watch.rewatch()
                    self._seen(now, _ANY, "the directory was replaced")
                except UnavailableError:
                    pass  # not there (yet): the poll below notices when it comes back
        if now >= self._check_at:
            watching = self._watch is not None and self._watch.watching
            self._check_at = now + (self.verify_s if watching else self.poll_s)
            if self._probe is None:
                fp = fingerprint(self.directory)
                if fp != self._loaded:
                    self._seen(now, fp)

    def _on_events(self, events: list[Event], now: float) -> None:
        names = {e.name for e in events if e.name}
        if any(e.overflow for e in events):
            names.add("(events lost)")
        if any(e.gone for e in events):
            names.add("the directory itself")
        self._seen(now, _ANY, *names)

    def _seen(self, now: float, fp: Fingerprint, *names: str) -> None:
        if self._probe is None:
            self._first_at = now
        if self._probe is not _ANY:  # inotify's word is final; a poll's only once the files settle
            self._probe = fp
        self._last_at = now
        self._names.update(names)

    def _fallback(self, why: str, now: float) -> None:
        self.close()
        self.mode, self.reason = "poll", why
        self._check_at = now


def _why(names: set[str]) -> str:
    if CONFIGMAP_DATA in names:
        return f"{CONFIGMAP_DATA} was swapped (a ConfigMap update)"
    shown = sorted(n for n in names if n.endswith(".toml") or not n.startswith("."))
    if shown:
        more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
        return f"changed: {', '.join(shown[:5])}{more}"
    return "the profile files changed (found by a check of their fingerprint)"
