"""The lifecycle of the kdamonds one :meth:`DamonSysfs.create` wrote: start them, ask for and read
their regions and scheme stats, stop them, tear them down (and drop the knob guard's record of them).

A ``vaddr`` kdamond stops by itself when its target exits: ``regions()`` then raises
:class:`NoSuchProcessError`. See :mod:`tierctl.kernel.damon` for the sysfs tree and the facts behind it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tierctl.errors import InputError, KernelError, NoSuchProcessError, TierctlError, UnavailableError
from tierctl.kernel.damon_files import parse_int, sysfs_error
from tierctl.kernel.damon_spec import REGION_DTYPE, STAT_FILES, KdamondSpec
from tierctl.kernel.knobs import DAMON_KDAMONDS, KnobGuard

if TYPE_CHECKING:
    from tierctl.kernel.damon import DamonSysfs


class DamonSession:
    """The kdamonds one ``create()`` made (indices 0..n-1); ``teardown()`` removes them all (and the
    ``guard``'s record of them, once they are gone)."""

    def __init__(
        self, fs: DamonSysfs, specs: tuple[KdamondSpec, ...], guard: KnobGuard | None = None
    ) -> None:
        self.fs = fs
        self.specs = specs
        self.guard = guard
        self.closed = False
        self._stopped_by_us: set[int] = set()

    def __enter__(self) -> DamonSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def __len__(self) -> int:
        return len(self.specs)

    def kdamond_dir(self, k: int) -> Path:
        if not 0 <= k < len(self.specs):
            raise InputError(f"no kdamond {k} in this session (0..{len(self.specs) - 1})", "kdamond")
        return self.fs.root / "kdamonds" / str(k)

    def _scheme_dir(self, k: int) -> Path:
        return self.kdamond_dir(k) / "contexts" / "0" / "schemes" / "0"

    # -- run ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Turn every kdamond on."""
        self._need_open()
        for k, spec in enumerate(self.specs):
            state = self.kdamond_dir(k) / "state"
            try:
                self.fs._write(state, "on")
            except KernelError as e:
                if spec.pid is not None and not self._alive(spec.pid):
                    raise NoSuchProcessError(
                        f"no process {spec.pid}: kdamond {k} cannot start", str(state)
                    ) from e
                raise
            self._stopped_by_us.discard(k)

    def state(self, k: int) -> str:
        return self.fs._read(self.kdamond_dir(k) / "state").strip()

    def kdamond_pid(self, k: int) -> int | None:
        text = self.fs._read_opt(self.kdamond_dir(k) / "pid")
        pid = int(text) if text and text.strip().lstrip("-").isdigit() else -1
        return pid if pid > 0 else None

    def running(self, k: int) -> bool:
        return self.state(k) == "on"

    def regions(self, k: int) -> np.ndarray:
        """The regions of kdamond ``k`` as of its next aggregation interval (REGION_DTYPE, by address).

        Blocks up to about two aggregation intervals. Raises NoSuchProcessError when a vaddr kdamond
        stopped because its target exited, KernelError when it is off for another reason.
        """
        self.update_regions(k)
        return self.read_regions(k)

    def update_regions(self, k: int) -> None:
        """Ask kdamond ``k`` to refresh its tried regions; returns when it has (up to about two
        aggregation intervals). Several kdamonds may be asked at once from several threads."""
        self._need_open()
        spec = self.specs[k]
        if spec.scheme is None:
            raise UnavailableError(
                "kdamond has no scheme: sysfs shows regions only as tried regions", "damon"
            )
        state = self.kdamond_dir(k) / "state"
        self._need_running(k)
        try:
            self.fs._write(state, "update_schemes_tried_regions")
        except KernelError:
            self._need_running(k)  # the target exited meanwhile: the clearer error
            raise

    def read_regions(self, k: int) -> np.ndarray:
        """The tried regions of kdamond ``k`` as its last update left them (REGION_DTYPE, by address)."""
        self._need_open()
        tried = self._scheme_dir(k) / "tried_regions"
        try:
            names = os.listdir(tried)
        except OSError as e:
            raise sysfs_error(e, tried, "list") from None
        idx = sorted(int(n) for n in names if n.isdigit())
        out = np.zeros(len(idx), dtype=REGION_DTYPE)
        for row, n in enumerate(idx):
            d = tried / str(n)
            out[row] = tuple(
                parse_int(self.fs._read(d / f), d / f) for f in ("start", "end", "nr_accesses", "age")
            )
        if out.size and (np.any(out["end"] <= out["start"])):
            raise KernelError("a tried region ends before it starts", str(tried))
        return out[np.argsort(out["start"], kind="stable")]

    def stats(self, k: int) -> dict[str, int]:
        """The scheme's counters (``update_schemes_stats`` first): regions and bytes tried / applied."""
        self._need_open()
        if self.specs[k].scheme is None:
            raise UnavailableError("kdamond has no scheme", "damon")
        self._need_running(k)
        self.fs._write(self.kdamond_dir(k) / "state", "update_schemes_stats")
        d = self._scheme_dir(k) / "stats"
        return {f: parse_int(self.fs._read(d / f), d / f) for f in STAT_FILES}

    def stop(self) -> None:
        """Turn every running kdamond off (a stopped one answers EPERM: ignored)."""
        for k in range(len(self.specs)):
            if self.closed:
                return
            if self.fs._turn_off(k):
                self._stopped_by_us.add(k)

    def teardown(self, *, quiet: bool = False) -> None:
        """Stop, then write ``nr_kdamonds`` = 0 (retrying while EBUSY), then drop the guard's record;
        idempotent. When the kdamonds could not be undone, the record stays for a later restore."""
        if self.closed:
            return
        errors: list[TierctlError] = []
        # under the guard's lock: its verify (the metrics) never sees the kdamonds gone but recorded
        with self.guard.lock if self.guard is not None else contextlib.nullcontext():
            try:
                self.stop()
            except TierctlError as e:
                errors.append(e)
            try:
                self.fs._clear()
            except TierctlError as e:
                errors.append(e)
            self.closed = not errors or quiet
            if not errors and self.guard is not None:
                self.guard.drop(DAMON_KDAMONDS)
        if errors and not quiet:
            raise KernelError(f"teardown incomplete: {errors[-1]}", str(self.fs.nr_path))

    # -- helpers --------------------------------------------------------------------------------
    def _need_open(self) -> None:
        if self.closed:
            raise KernelError("the DAMON session was torn down", str(self.fs.nr_path))

    def _need_running(self, k: int) -> None:
        state_path = self.kdamond_dir(k) / "state"
        if self.state(k) == "on":
            return
        spec = self.specs[k]
        if k in self._stopped_by_us:
            raise KernelError(f"kdamond {k} is off (stopped by this session)", str(state_path))
        if spec.pid is not None and not self._alive(spec.pid):
            raise NoSuchProcessError(
                f"kdamond {k} stopped by itself: its target process {spec.pid} exited (DAMON stops a "
                "vaddr kdamond when its targets exit; read regions before the process ends)",
                str(state_path),
            )
        raise KernelError(f"kdamond {k} is off although this session did not stop it", str(state_path))

    def _alive(self, pid: int) -> bool:
        return (self.fs.proc_root / str(pid)).is_dir()
