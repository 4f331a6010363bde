"""Access traces (.npz) as specified in DESIGN.md, with strict validation.

Arrays: ``page_size`` (int), ``n_pages`` (int), ``epoch_s`` (float), ``offsets``
(int64[E+1]), ``page`` (int64[N]), ``count`` (int64[N] > 0); optional ``cgroup``
(int64[n_pages]) and ``cgroup_names``.  Every problem raises InputError naming
the file and the array.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tierctl.errors import InputError

REQUIRED = ("page_size", "n_pages", "epoch_s", "offsets", "page", "count")


@dataclass(frozen=True)
class Trace:
    page_size: int
    n_pages: int
    epoch_s: float
    offsets: np.ndarray
    page: np.ndarray
    count: np.ndarray
    cgroup: np.ndarray | None = None
    cgroup_names: tuple[str, ...] | None = None

    @property
    def n_epochs(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def epoch(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(self.offsets[e]), int(self.offsets[e + 1])
        return self.page[lo:hi], self.count[lo:hi]

    def head(self, epochs: int) -> Trace:
        """The first ``epochs`` epochs of this trace."""
        offsets = self.offsets[: epochs + 1]
        end = int(offsets[-1])
        return Trace(
            self.page_size,
            self.n_pages,
            self.epoch_s,
            offsets.copy(),
            self.page[:end],
            self.count[:end],
            self.cgroup,
            self.cgroup_names,
        )

    def owners(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Cgroup index per page (all 0 when the trace has none) and the cgroup names."""
        if self.cgroup is None:
            return np.zeros(self.n_pages, dtype=np.int64), ("all",)
        n = int(self.cgroup.max()) + 1 if self.cgroup.size else 1
        names = self.cgroup_names or tuple(f"cgroup{i}" for i in range(n))
        return self.cgroup, names

    def arrays(self) -> dict[str, np.ndarray]:
        """The named arrays of the file format (docs/formats.md)."""
        arrays: dict[str, np.ndarray] = {
            "page_size": np.int64(self.page_size),
            "n_pages": np.int64(self.n_pages),
            "epoch_s": np.float64(self.epoch_s),
            "offsets": self.offsets,
            "page": self.page,
            "count": self.count,
        }
        if self.cgroup is not None:
            arrays["cgroup"] = self.cgroup
        if self.cgroup_names is not None:
            arrays["cgroup_names"] = np.array(self.cgroup_names)
        return arrays

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as f:
            np.savez_compressed(f, **self.arrays())


def load_trace(path: str | Path, *, what: str = "trace") -> Trace:
    where = str(path)
    try:
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise InputError(f"{what} must be an .npz archive of named arrays, not a single array", where)
            with loaded as z:
                arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(f"{what} file not found", where) from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"cannot read {what} as .npz: {e}", where) from None
    return validate_trace(arrays, where)


def _scalar(arrays: dict[str, np.ndarray], name: str, where: str, kind: str) -> np.ndarray:
    a = np.asarray(arrays[name])
    if a.shape not in ((), (1,)):
        raise InputError(f"array '{name}' must be a scalar, has shape {a.shape}", where)
    ok = a.dtype.kind in "iu" if kind == "int" else a.dtype.kind in "iuf"
    if not ok:
        raise InputError(f"array '{name}' must be {kind}, has dtype {a.dtype}", where)
    return a.reshape(())


def _int_vector(arrays: dict[str, np.ndarray], name: str, where: str) -> np.ndarray:
    a = np.asarray(arrays[name])
    if a.ndim != 1:
        raise InputError(f"array '{name}' must be 1-D, has shape {a.shape}", where)
    if a.dtype.kind not in "iu":
        raise InputError(f"array '{name}' must be an integer array, has dtype {a.dtype}", where)
    if a.dtype.kind == "u" and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise InputError(f"array '{name}' has values beyond int64", where)
    return a.astype(np.int64, copy=False)


def validate_trace(arrays: dict[str, np.ndarray], where: str = "trace") -> Trace:
    for name in REQUIRED:
        if name not in arrays:
            raise InputError(f"missing array '{name}'", where)
    page_size = int(_scalar(arrays, "page_size", where, "int"))
    if page_size <= 0 or page_size & (page_size - 1):
        raise InputError(f"array 'page_size' must be a positive power of two, got {page_size}", where)
    n_pages = int(_scalar(arrays, "n_pages", where, "int"))
    if n_pages <= 0:
        raise InputError(f"array 'n_pages' must be > 0, got {n_pages}", where)
    epoch_s = float(_scalar(arrays, "epoch_s", where, "float"))
    if not np.isfinite(epoch_s) or epoch_s <= 0:
        raise InputError(f"array 'epoch_s' must be > 0, got {epoch_s}", where)

    offsets = _int_vector(arrays, "offsets", where)
    page = _int_vector(arrays, "page", where)
    count = _int_vector(arrays, "count", where)
    if offsets.shape[0] < 2:
        raise InputError("array 'offsets' needs at least 2 entries (one epoch)", where)
    if offsets[0] != 0:
        raise InputError(f"array 'offsets' must start at 0, starts at {offsets[0]}", where)
    steps = np.diff(offsets)
    if (steps < 0).any():
        e = int(np.argmax(steps < 0))
        raise InputError(
            f"array 'offsets' is not monotonic: offsets[{e + 1}]={offsets[e + 1]} < "
            f"offsets[{e}]={offsets[e]}",
            where,
        )
    if page.shape != count.shape:
        raise InputError(
            f"arrays 'page' ({page.shape[0]}) and 'count' ({count.shape[0]}) differ in length", where
        )
    if offsets[-1] != page.shape[0]:
        raise InputError(f"array 'offsets' ends at {offsets[-1]} but 'page' has {page.shape[0]} rows", where)
    if page.size:
        bad = (page < 0) | (page >= n_pages)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"array 'page' row {i}: page id {page[i]} out of range 0..{n_pages - 1}", where)
        if (count <= 0).any():
            i = int(np.argmax(count <= 0))
            raise InputError(f"array 'count' row {i}: count {count[i]} must be > 0", where)

    cgroup = None
    names = None
    if "cgroup" in arrays:
        cgroup = _int_vector(arrays, "cgroup", where)
        if cgroup.shape[0] != n_pages:
            raise InputError(
                f"array 'cgroup' must have n_pages={n_pages} entries, has {cgroup.shape[0]}", where
            )
        if cgroup.size and cgroup.min() < 0:
            raise InputError("array 'cgroup' has negative cgroup indices", where)
        if cgroup.size and cgroup.max() >= 65535:
            raise InputError("array 'cgroup' has more than 65535 cgroups", where)
    if "cgroup_names" in arrays:
        raw = np.asarray(arrays["cgroup_names"])
        if raw.ndim != 1 or raw.dtype.kind not in "US":
            raise InputError(f"array 'cgroup_names' must be a 1-D string array, has dtype {raw.dtype}", where)
        names = tuple(str(x) for x in raw)
        if cgroup is not None and cgroup.size and len(names) <= int(cgroup.max()):
            raise InputError(
                f"array 'cgroup_names' has {len(names)} names but 'cgroup' uses index {int(cgroup.max())}",
                where,
            )
    return Trace(page_size, n_pages, epoch_s, offsets, page, count, cgroup, names)


def check_observed(trace: Trace, observed: Trace, where: str) -> None:
    """An observed file must describe the same pages and epochs as its trace."""
    if observed.n_pages != trace.n_pages:
        raise InputError(
            f"observed n_pages={observed.n_pages} differs from the trace's {trace.n_pages}", where
        )
    if observed.n_epochs != trace.n_epochs:
        raise InputError(f"observed has {observed.n_epochs} epochs, the trace {trace.n_epochs}", where)


def from_epochs(
    rows: list[tuple[np.ndarray, np.ndarray]],
    *,
    n_pages: int,
    page_size: int = 4096,
    epoch_s: float = 1.0,
    cgroup: np.ndarray | None = None,
    cgroup_names: tuple[str, ...] | None = None,
) -> Trace:
    """Assemble a trace from per-epoch (page, count) rows."""
    lengths = np.array([p.shape[0] for p, _ in rows], dtype=np.int64)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    page = np.concatenate([p for p, _ in rows]).astype(np.int64) if rows else np.zeros(0, np.int64)
    count = np.concatenate([c for _, c in rows]).astype(np.int64) if rows else np.zeros(0, np.int64)
    return Trace(page_size, n_pages, epoch_s, offsets, page, count, cgroup, cgroup_names)
