"""Record-first writes of kernel knobs, restored when tierctl stops (or on its next start after a crash).

``KnobGuard(state_file, root)`` writes knobs below ``root`` (``/`` on the real machine, a fake tree in
tests); knob paths are the absolute paths the kernel documents (``/proc/sys/kernel/numa_balancing``,
``/sys/kernel/debug/sched/numa_balancing/scan_size_mb``, a cgroup's ``memory.high`` ...).

- ``set(knob, value)``: the first time a knob is set, its current value is read and recorded, and the
  record is persisted to ``state_file`` (write a temporary file, fsync, rename: a crash leaves either
  the old or the new record, never half of one) *before* the knob is written. Later sets of the same
  knob keep the first original. The value the kernel reads back after the write is what ``verify``
  expects (``demotion_enabled`` takes ``1`` and reads back ``true``).
- ``restore_all()``: writes every original back, last recorded first, and clears the record. A knob
  that disappeared meanwhile (its cgroup removed, debugfs unmounted) is reported ``gone`` and dropped;
  a knob that cannot be written stays in the record so a later run can try again.
- ``mount(target, fstype)``: a filesystem tierctl mounts (tracefs where nothing was mounted) is a knob
  too: recorded (kind ``mount``) and persisted before mounting; restoring it unmounts it.
- ``record_damon(DAMON_KDAMONDS, expected)``: the kdamonds ``DamonSysfs.create`` is about to set up
  (kind ``damon``; ``expected`` as :func:`format_kdamonds` writes it: ``2: vaddr 4242, vaddr 4243``),
  persisted before ``nr_kdamonds`` is written. Restoring it turns those kdamonds off and writes
  ``nr_kdamonds`` 0 — only while the tree still holds them (that many kdamonds, each targeting the
  recorded pid); other kdamonds found there instead are left alone (``gone``). The session's normal
  teardown undoes them itself and ``drop``s the record.
- ``restore(knob)``: restores one record (a sampler releasing what it alone used) and drops it.
- ``verify()``: the knobs whose current value differs from what was set (someone else changed them).
- ``pending()``: the record a previous run left behind (it crashed or was killed before restoring).
  A new guard adopts that record: its ``restore_all()`` restores those knobs too, and ``set()`` of such a
  knob keeps the original from the old record rather than reading tierctl's own leftover value.

Values are compared and recorded as the kernel prints them, stripped; a selection list like
``always [madvise] never`` (transparent_hugepage/enabled) records the selected word.

Errors name the knob (``where``): :class:`UnavailableError` when the file does not exist,
:class:`PermissionDeniedError` on EACCES/EPERM, :class:`KernelError` when the kernel rejects a value,
:class:`InputError` for a state file that does not parse or a knob path that is not absolute.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tierctl import strict_json
from tierctl.errors import InputError, KernelError, PermissionDeniedError, TierctlError, UnavailableError
from tierctl.kernel.knob_record import (  # re-exported: the record's format, beside the guard
    BOOT_ID,
    BPF_STATS_ENABLED,
    DAMON,
    DAMON_KDAMONDS,
    KINDS,
    MAX_STATE_BYTES,
    MOUNT,
    NUMA_BALANCING,
    NUMA_BALANCING_SCAN,
    PROMOTE_RATE_LIMIT,
    STATE_VERSION,
    VALUE,
    Drift,
    KnobRecord,
    RecordError,
    Restored,
    check_header,
    check_knob,
    check_record,
    format_kdamonds,
    normalise,
    parse_entries,
    parse_kdamonds,
    record_json,
)
from tierctl.kernel.mounts import LibcMounts, Mounts
from tierctl.kernel.roots import LIVE_ROOT, below
from tierctl.kernel.statefile import pid_alive, read_capped, set_aside, write_atomic

__all__ = [
    "BOOT_ID",
    "BPF_STATS_ENABLED",
    "DAMON",
    "DAMON_KDAMONDS",
    "KINDS",
    "MAX_STATE_BYTES",
    "MOUNT",
    "NUMA_BALANCING",
    "NUMA_BALANCING_SCAN",
    "PROMOTE_RATE_LIMIT",
    "STATE_VERSION",
    "VALUE",
    "Drift",
    "KnobGuard",
    "KnobRecord",
    "RecordError",
    "Restored",
    "boot_id",
    "check_header",
    "check_knob",
    "check_record",
    "current_value",
    "format_kdamonds",
    "normalise",
    "parse_entries",
    "parse_kdamonds",
    "record_json",
    "restore_dead_records",
]

if TYPE_CHECKING:
    from tierctl.kernel.damon import DamonSysfs

T = TypeVar("T")


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    """Run a KnobGuard method under its lock (the loop changes records while metrics verify them)."""

    @functools.wraps(method)
    def run(self: KnobGuard, *args: Any, **kwargs: Any) -> T:
        with self.lock:
            return method(self, *args, **kwargs)

    return run


class KnobGuard:
    """Writes knobs below ``root`` after recording their originals in ``state_file``. Thread-safe:
    every method runs under ``lock``, which a caller also holds across a change of several steps
    (DAMON's create and teardown) so that ``verify`` never sees it half done."""

    def __init__(
        self,
        state_file: Path,
        root: Path = LIVE_ROOT,
        *,
        mounts: Mounts | None = None,
        damon: Callable[[Path], DamonSysfs] | None = None,
    ) -> None:
        """``mounts``: the mount table (kind mount); ``damon``: the DAMON adapter of an ``admin``
        directory below ``root`` (kind damon; default ``DamonSysfs(admin)``). Both replaceable by fakes."""
        self.state_file = Path(state_file)
        self.root = Path(root)
        self.mounts: Mounts = mounts if mounts is not None else LibcMounts()
        self.damon: Callable[[Path], DamonSysfs] = damon if damon is not None else _damon_sysfs
        self.problem: str | None = None  # set when an unusable record was set aside at load
        self.lock = threading.RLock()
        self._records: list[KnobRecord] = self._load()

    # -- public API ---------------------------------------------------------------------------
    def get(self, knob: str) -> str:
        """The knob's current value (the selected word of a ``[x]`` list)."""
        return normalise(self._read(knob))

    @_locked
    def set(self, knob: str, value: str | int) -> str:
        """Record the original (once, persisted), then write ``value``; returns the value read back."""
        knob = check_knob(knob)
        text = str(value).strip()
        idx = self._index(knob)
        if idx is not None and self._records[idx].kind != VALUE:
            raise InputError(f"is recorded as a {self._records[idx].kind}, not a value", knob)
        new = idx is None
        if idx is None:
            original = self.get(knob)
            self._save_or_keep([*self._records, KnobRecord(knob, original, original)])
            idx = len(self._records) - 1
        try:
            self._write(knob, text)
        except TierctlError:
            if new:  # nothing changed: forget the record again
                del self._records[idx]
                self._save()
            raise
        try:
            actual = self.get(knob)
        except TierctlError:
            actual = text
        rec = self._records[idx]
        self._records[idx] = KnobRecord(knob, rec.original, actual)
        self._save()
        return actual

    @_locked
    def mount(self, target: str, fstype: str, source: str | None = None) -> bool:
        """Mount ``fstype`` at ``target`` (below ``root``) after recording it; False (and nothing
        recorded) when a filesystem is mounted there already. The record makes ``restore``/``restore_all``
        (here or in the next run, after a crash) unmount it."""
        target = check_knob(target)
        path = self.path_of(target)
        if self._index(target) is not None:
            raise InputError("is recorded already", target)
        if self.mounts.is_mounted(path):
            return False
        self._save_or_keep([*self._records, KnobRecord(target, "", fstype, MOUNT)])
        try:
            self.mounts.mount(source or fstype, path, fstype)
        except TierctlError:
            self._records.pop()
            self._save()
            raise
        return True

    @_locked
    def record_damon(self, knob: str, expected: str) -> None:
        """Record (persisted before returning) the kdamonds about to be set up at ``knob``
        (DAMON_KDAMONDS), ``expected`` as :func:`format_kdamonds` writes it. A previous damon record of
        the same knob is replaced: the caller found DAMON free, so nothing of it is left."""
        rec = KnobRecord(check_knob(knob), "0", expected, DAMON)
        check_record(rec)
        idx = self._index(rec.knob)
        if idx is not None and self._records[idx].kind != DAMON:
            raise InputError(f"is recorded as a {self._records[idx].kind}, not kdamonds", rec.knob)
        records = list(self._records)
        if idx is None:
            records.append(rec)
        else:
            records[idx] = rec
        self._save_or_keep(records)

    @_locked
    def drop(self, knob: str) -> bool:
        """Forget the record of ``knob`` without restoring it (its owner undid the change itself, as a
        DAMON session's teardown does); False when it was not recorded."""
        idx = self._index(check_knob(knob))
        if idx is None:
            return False
        del self._records[idx]
        self._save()
        return True

    def recorded(self, knob: str) -> KnobRecord | None:
        """The record of ``knob`` (adopted from a previous run or set here), None when there is none."""
        idx = self._index(check_knob(knob))
        return None if idx is None else self._records[idx]

    @_locked
    def restore(self, knob: str) -> Restored | None:
        """Restore one knob (write its original back, unmount it, or turn its kdamonds off) and drop its
        record unless that failed; None when it is not recorded."""
        idx = self._index(check_knob(knob))
        if idx is None:
            return None
        rec = self._records[idx]
        out = self._restore(rec)
        if out.outcome != "failed":
            del self._records[idx]
            self._save()
        return out

    @_locked
    def restore_all(self) -> list[Restored]:
        """Restore every knob, last recorded first; keeps only the failures in the record."""
        out: list[Restored] = []
        kept: list[KnobRecord] = []
        for rec in reversed(self._records):
            res = self._restore(rec)
            out.append(res)
            if res.outcome == "failed":
                kept.append(rec)
        self._records = list(reversed(kept))
        self._save()
        return out

    def _restore(self, rec: KnobRecord) -> Restored:
        try:
            if rec.kind == MOUNT:
                self.mounts.umount(self.path_of(rec.knob))
            elif rec.kind == DAMON:
                # UnavailableError when the kdamonds are not tierctl's any more: left alone ("gone")
                self.damon(self._damon_admin(rec.knob)).release(rec.expected)
            else:
                self._write(rec.knob, rec.original)
        except UnavailableError as e:
            return Restored(rec.knob, rec.original, "gone", e.message)
        except TierctlError as e:
            return Restored(rec.knob, rec.original, "failed", e.message)
        return Restored(rec.knob, rec.original, "restored")

    @_locked
    def verify(self) -> list[Drift]:
        """Knobs whose current value differs from the value tierctl set (or that disappeared), each
        read as :func:`current_value` reads it."""
        drifts = []
        for rec in self._records:
            now = current_value(self.root, self.mounts, rec, damon=self.damon)
            if rec.kind == MOUNT and now == "":
                now = None  # unmounted
            if now != rec.expected:
                drifts.append(Drift(rec.knob, rec.expected, now))
        return drifts

    def pending(self) -> list[KnobRecord]:
        """What ``state_file`` holds now: knobs set and not yet restored (by this or an earlier run)."""
        return self._load()

    @property
    def records(self) -> list[KnobRecord]:
        """This guard's record (adopted from the state file, plus what it set), in recording order."""
        return list(self._records)

    # -- plumbing -------------------------------------------------------------------------------
    def path_of(self, knob: str) -> Path:
        return below(self.root, check_knob(knob))

    def _damon_admin(self, knob: str) -> Path:
        return self.path_of(knob).parent.parent  # <admin>/kdamonds/nr_kdamonds

    def _index(self, knob: str) -> int | None:
        for i, rec in enumerate(self._records):
            if rec.knob == knob:
                return i
        return None

    def _read(self, knob: str) -> str:
        path = self.path_of(knob)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError as e:
            raise _error(e, knob, "read") from None

    def _write(self, knob: str, text: str) -> None:
        path = self.path_of(knob)
        try:
            # no O_CREAT: a knob that vanished must not come back as a regular file
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as e:
            raise _error(e, knob, "write") from None
        try:
            data = (text + "\n").encode()
            if os.write(fd, data) != len(data):
                raise KernelError(f"short write of {text!r}", knob)
        except OSError as e:
            raise _error(e, knob, f"write {text!r} to") from None
        finally:
            os.close(fd)

    def _load(self) -> list[KnobRecord]:
        """The record on disk; an unusable one (too big, not UTF-8/JSON, nested too deeply, another
        version, a knob outside the allowed set, an unknown kind, a damon record that does not parse) is
        set aside as ``<name>.corrupt`` (kept for the
        operator: it may name originals to restore by hand), reported in ``problem``, and ignored."""
        try:
            raw = read_capped(self.state_file, MAX_STATE_BYTES)
            if raw is None:
                return []
            data = check_header(strict_json.loads(raw.decode("utf-8")))
            boot, now = data.get("boot_id"), self._boot_id()
            if isinstance(boot, str) and now is not None and boot != now:
                # written before a reboot: the kernel started from its own settings again, and
                # writing the old originals now would undo what the administrator set since
                self.state_file.unlink(missing_ok=True)
                self.problem = (
                    f"{self.state_file}: a knob record from an earlier boot (boot id {boot}); the "
                    "reboot reset those knobs, so nothing was restored and the record was removed"
                )
                return []
            recs = parse_entries(data)
        except OSError as e:
            raise InputError(f"cannot read the knob record: {e.strerror}", str(self.state_file)) from None
        except (ValueError, KeyError, TypeError, AttributeError, InputError) as e:
            why = e.message if isinstance(e, InputError) else str(e) or type(e).__name__
            aside = set_aside(self.state_file, "not a tierctl knob record", why)
            self.problem = (
                f"{self.state_file}: not a tierctl knob record ({why}); kept as {aside} — "
                "knobs it named were not restored"
            )
            return []
        return recs

    def _boot_id(self) -> str | None:
        return boot_id(self.root)

    def _save_or_keep(self, records: list[KnobRecord]) -> None:
        """Make ``records`` the record, on disk first: when it cannot be saved the guard keeps what
        it had (so it never counts a knob it did not record)."""
        before, self._records = self._records, records
        try:
            self._save()
        except TierctlError:
            self._records = before
            raise

    def _save(self) -> None:
        if not self._records:
            try:
                self.state_file.unlink(missing_ok=True)
            except OSError as e:
                raise KernelError(
                    f"cannot remove the knob record: {e.strerror}", str(self.state_file)
                ) from None
            return
        data = {
            "version": STATE_VERSION,
            "pid": os.getpid(),
            "time": time.time(),
            "boot_id": self._boot_id(),  # a record from another boot is not restored (see _load)
            "knobs": [record_json(r) for r in self._records],
        }
        try:
            write_atomic(self.state_file, (json.dumps(data, indent=1) + "\n").encode())
        except OSError as e:
            raise KernelError(f"cannot write the knob record: {e.strerror}", str(self.state_file)) from None


def restore_dead_records(
    run_dir: Path,
    prefix: str,
    *,
    root: Path = LIVE_ROOT,
    mounts: Mounts | None = None,
    damon: Callable[[Path], DamonSysfs] | None = None,
) -> list[Restored]:
    """Restore the records ``<run_dir>/<prefix><pid>.json`` that processes now gone (crashed, killed)
    left — the per-process records of one-shot commands. A record that restores completely is removed."""
    out: list[Restored] = []
    try:
        files = sorted(run_dir.glob(f"{prefix}*.json"))
    except OSError:
        return out
    for f in files:
        pid = f.name[len(prefix) : -len(".json")]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        try:
            out += KnobGuard(f, root, mounts=mounts, damon=damon).restore_all()
        except TierctlError as e:
            out.append(Restored(str(f), "", "failed", e.message))
    return out


def _damon_sysfs(admin: Path) -> DamonSysfs:
    from tierctl.kernel.damon import DamonSysfs  # here: the DAMON adapter imports this module

    return DamonSysfs(admin)


def boot_id(root: Path) -> str | None:
    """This boot's id (``/proc/sys/kernel/random/boot_id`` below ``root``), None if unknown."""
    try:
        text = below(root, BOOT_ID).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def current_value(
    root: Path, mounts: Mounts, rec: KnobRecord, *, damon: Callable[[Path], DamonSysfs] | None = None
) -> str | None:
    """What ``rec``'s knob holds now below ``root``, as ``KnobGuard.get`` reads it (a mount: its fs
    type while mounted, else ""; kdamonds: as :func:`format_kdamonds` writes them); None when the knob
    no longer exists (or DAMON's sysfs does not). Another failure to read is a TierctlError (permission
    denied, the kernel's error)."""
    path = below(root, check_knob(rec.knob))
    if rec.kind == MOUNT:
        return rec.expected if mounts.is_mounted(path) else ""
    if rec.kind == DAMON:
        try:
            return (damon or _damon_sysfs)(path.parent.parent).kdamonds_now()
        except UnavailableError:
            return None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return normalise(fh.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise _error(e, rec.knob, "read") from None


def _error(e: OSError, knob: str, verb: str) -> TierctlError:
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return UnavailableError("no such knob on this kernel (or it disappeared)", knob)
    if e.errno in (errno.EACCES, errno.EPERM):
        return PermissionDeniedError(f"permission denied: cannot {verb} the knob (root needed)", knob)
    return KernelError(f"cannot {verb} the knob: {e.strerror or e}", knob)
