"""Finding bcc and kernel headers, compiling tierctl's BPF programs, and the shared sampler machinery.

Nothing here may hurt the system when BPF does not work: every failure becomes an
``UnavailableError`` (or, from ``probe()``, an ``Availability(ok=False, reason)``) with one reason —
not root, bcc missing, no kernel headers, tracefs/tracepoint missing, the compiler's first error
line, the verifier's refusal, or the refused attach.

bcc. tierctl runs on its own Python (pyenv, a venv) while bcc comes from the distribution
(Debian's python3-bpfcc installs ``bcc`` into /usr/lib/python3/dist-packages). ``load_bcc``
first tries a plain ``import bcc`` (a venv with a .pth file, the system Python) and then loads
*only* the ``bcc`` package from the Debian folder through ``importlib`` (``PathFinder.find_spec``
with that one folder; the folder is never put on ``sys.path``, so no other distribution package
can shadow the project's own dependencies). Nothing is written to disk.

Kernel headers (bcc compiles against a kernel tree; it has no BTF-only route), in this order:
``$BCC_KERNEL_SOURCE`` when the user set it, ``/lib/modules/$(uname -r)/build`` (with its
``source`` sibling), else the minimal tree shipped in ``tierctl/data/bpf/include/`` passed to bcc as
``BCC_KERNEL_SOURCE`` plus ``-DLINUX_VERSION_CODE`` of the running kernel. The programs read no
kernel struct, so that tree holds only integer types, the UAPI perf-context header and stubs for
what bcc's built-in helpers.h includes (see tierctl/data/bpf/include/README).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from tierctl import data
from tierctl.errors import InputError, UnavailableError
from tierctl.kernel.bpfhost import BpfHost, cgroup2_root, effective_caps, prog_run_ns
from tierctl.kernel.bpfhost import TracefsMount as TracefsMount
from tierctl.kernel.bpfhost import tracepoint_available as tracepoint_available
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import Availability, Health, Targets, empty_raw
from tierctl.samplers.targets import TargetResolver


def bpf_dir() -> Path:
    """The BPF sources: ``$TIERCTL_BPF_DIR``, else the ones shipped as package data."""
    env = os.environ.get("TIERCTL_BPF_DIR")
    return Path(env) if env else data.bpf_dir()


def shipped_headers() -> Path:
    """tierctl's minimal kernel header tree (for kernels that ship none)."""
    return bpf_dir() / "include"


DIST_PACKAGES: tuple[str, ...] = ("/usr/lib/python3/dist-packages",)
MODULES_DIR = Path("/lib/modules")
MAX_SAMPLE_SHIFT = 6  # the watchdog may lower a sampler's rate down to 1 event in 64

# program file -> the sampler names that use it (print_bpf accepts either)
PROGRAMS = {"fault_sampler": ("bpf-fault", "fault"), "addr_sampler": ("bpf-perf", "perf")}

# bcc's compile-time environment variables and fd redirection are process-wide, so the lock that
# serialises them is too (it holds no data).
_lock = threading.Lock()


# ----------------------------------------------------------------------------------------- bcc
def load_bcc(search: Sequence[str] | None = None) -> ModuleType:
    """The ``bcc`` module. ``search``: only these folders (tests use it to simulate a missing bcc)."""
    if search is None:
        if "bcc" in sys.modules:
            return sys.modules["bcc"]
        try:
            import bcc  # type: ignore[import-not-found]

            return bcc
        except ImportError:
            pass
        except Exception as e:  # a bcc that is there but broken (e.g. libbcc.so missing)
            raise UnavailableError(f"bcc is installed but failed to import: {e}") from e
        search = DIST_PACKAGES
    spec = importlib.machinery.PathFinder.find_spec("bcc", list(search))
    if spec is None or spec.loader is None or spec.origin is None:
        raise UnavailableError(
            "bcc is not installed: no `bcc` Python package importable or in "
            + ", ".join(search)
            + " (Debian/Ubuntu: apt install python3-bpfcc)"
        )
    loaded = sys.modules.get("bcc")
    if loaded is not None:
        if getattr(loaded, "__file__", None) == spec.origin:
            return loaded
        raise UnavailableError(f"another bcc is already imported ({loaded.__file__}), not {spec.origin}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bcc"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
            del sys.modules[name]
        raise UnavailableError(f"bcc at {spec.origin} failed to import: {e}") from e
    return module


def bcc_version(bcc: ModuleType) -> str:
    with contextlib.suppress(Exception):
        from bcc.version import __version__  # type: ignore[import-not-found]

        return str(__version__)
    return "unknown version"


# ------------------------------------------------------------------------------------- headers
@dataclass(frozen=True)
class HeaderTree:
    path: Path
    kind: str  # "env" ($BCC_KERNEL_SOURCE), "kernel" (/lib/modules/R/build), "shipped" (tierctl/data/bpf/include)
    env: tuple[tuple[str, str | None], ...] = ()  # environment for bcc while it compiles
    cflags: tuple[str, ...] = ()

    def describe(self) -> str:
        what = {
            "env": "kernel headers from $BCC_KERNEL_SOURCE",
            "kernel": "kernel headers",
            "shipped": "tierctl's minimal header tree",
        }[self.kind]
        return f"{what} at {self.path}"


def kernel_version_code(release: str) -> int:
    """``KERNEL_VERSION(a, b, c)`` of a release string such as ``6.12.117+deb13-amd64``."""
    nums = [int(x) for x in re.findall(r"\d+", release.split("-")[0])[:3]]
    a, b, c = [*nums, 0, 0, 0][:3]
    return (a << 16) + (b << 8) + min(c, 255)


def _has_kconfig(p: Path) -> bool:
    return (p / "include" / "linux" / "kconfig.h").is_file()


def find_headers(
    prefer: str = "auto", *, release: str | None = None, modules_dir: Path = MODULES_DIR
) -> HeaderTree:
    """Where bcc gets kernel headers. ``prefer``: auto | kernel | shipped.

    auto: $BCC_KERNEL_SOURCE if set, else tierctl's shipped tree, else the kernel's build tree. The
    programs need only stable uapi definitions, which the 13-file shipped tree has; compiling
    against a full kernel tree gives the same program 10-20x slower (21 s against ~1 s in the TCG
    guest), so the kernel's headers are the fallback, not the first choice.
    """
    if prefer not in ("auto", "kernel", "shipped"):
        raise InputError(f"headers must be auto, kernel or shipped, not {prefer!r}")
    release = release or os.uname().release
    if prefer == "auto":
        env = os.environ.get("BCC_KERNEL_SOURCE")
        if env and _has_kconfig(Path(env)):
            return HeaderTree(Path(env), "env")
    kdir = modules_dir / release
    build, source = kdir / "build", kdir / "source"
    shipped = shipped_headers()
    if prefer in ("auto", "shipped") and _has_kconfig(shipped):
        return _shipped(release)
    if prefer in ("auto", "kernel"):
        # bcc's own rule: with both build/ and source/ it reads source/ (+ build/ for generated files)
        top = source if build.is_dir() and source.is_dir() else build
        if _has_kconfig(top):
            return HeaderTree(build, "kernel", env=(("BCC_KERNEL_SOURCE", None),))
        if prefer == "kernel":
            raise UnavailableError(
                f"no kernel headers for {release}: {top}/include/linux/kconfig.h is missing"
            )
    raise UnavailableError(
        f"no kernel headers: {build} has none and tierctl's header tree {shipped} is missing"
    )


def _shipped(release: str) -> HeaderTree:
    tree = shipped_headers()
    return HeaderTree(
        tree,
        "shipped",
        env=(("BCC_KERNEL_SOURCE", str(tree)),),
        cflags=(f"-DLINUX_VERSION_CODE={kernel_version_code(release)}",),
    )


# ------------------------------------------------------------------------------------ programs
def _program_file(name: str) -> str:
    for stem, aliases in PROGRAMS.items():
        if name in (stem, f"{stem}.c", *aliases):
            return stem
    raise InputError(f"unknown BPF program {name!r} (known: {', '.join(PROGRAMS)})")


def program_text(name: str, source: str | None = None) -> str:
    """The program as compiled: <name>.c with tierctl.h and tierctl_prog.h inlined (line
    numbers in compiler messages refer to this text)."""
    stem = _program_file(name)
    where = bpf_dir()
    text = source if source is not None else (where / f"{stem}.c").read_text()
    for inc in ("tierctl.h", "tierctl_prog.h"):
        header = (where / inc).read_text()
        text = text.replace(f'#include "{inc}"', header.rstrip("\n"), 1)
    return text


def program_cflags(defines: Mapping[str, int | str], headers: HeaderTree | None = None) -> list[str]:
    flags = [f"-D{k}={v}" for k, v in defines.items()]
    return flags + list(headers.cflags if headers else ())


def print_bpf(name: str, defines: Mapping[str, int | str] | None = None, *, headers: str = "auto") -> str:
    """The generated program text for ``--print-bpf``: a comment with the compiler flags, then the source."""
    if defines is None:
        stem = _program_file(name)
        defines = {"TIERCTL_MAX_ENTRIES": L.MAX_ENTRIES_DEFAULT, "TIERCTL_MAX_TARGETS": L.MAX_TARGETS_DEFAULT}
        if stem == "fault_sampler":
            defines["TIERCTL_WITH_MIGRATE"] = 1
    try:
        tree: HeaderTree | None = find_headers(headers)
    except UnavailableError:
        tree = None
    where = tree.describe() if tree else "no kernel headers found"
    flags = " ".join(program_cflags(defines, tree))
    return f"// tierctl BPF program {_program_file(name)}.c, compiled by bcc with: {flags}\n// {where}\n" + (
        program_text(name)
    )


@contextlib.contextmanager
def _environ(pairs: Sequence[tuple[str, str | None]]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k, _ in pairs}
    try:
        for k, v in pairs:
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Redirect fds 1 and 2 (libbcc/clang print diagnostics there, not to Python) into a buffer."""
    out: list[str] = []
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile() as tmp:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            libc.fflush(None)  # std::cout shares C stdio's buffer
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def first_error_line(log: str) -> str | None:
    for line in log.splitlines():
        if re.search(r"\b(fatal )?error:", line):
            return line.strip().replace("/virtual/main.c:", "line ")
    return None


def verifier_hint(log: str) -> str:
    """The verifier's verdict: its last line before the "processed N insns" summary."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and not ln.startswith("processed ")]
    return f" (verifier: {lines[-1]})" if lines else ""


def load_function(bpf: Any, fn_name: bytes, prog_type: int) -> Any:
    """bcc's load_func with the verifier log captured into the one-line reason."""
    with _lock, captured_output() as log:
        try:
            fn = bpf.load_func(fn_name, prog_type)
            err: Exception | None = None
        except Exception as e:
            err = e
    if err is not None:
        raise UnavailableError(_failure_reason(err, log[0], fn_name.decode())) from err
    return fn


def _failure_reason(exc: Exception, log: str, program: str) -> str:
    msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    err = first_error_line(log)
    if err or "compile" in msg.lower():
        if "Unable to find kernel headers" in log:
            return "compile failed: bcc found no kernel headers"
        return f"compile error in {program}.c: {err or msg} (see the text from print_bpf)"
    if "Failed to load" in msg:
        return f"the kernel refused to load the program: {msg}" + verifier_hint(log)
    if "attach" in msg.lower():
        return f"attach refused: {msg}"
    return f"bcc failed: {msg}"


@dataclass
class Compiled:
    bpf: Any
    text: str
    cflags: list[str]
    headers: HeaderTree
    seconds: float
    log: str


def compile_program(
    bcc: ModuleType,
    name: str,
    defines: Mapping[str, int | str],
    headers: HeaderTree,
    source: str | None = None,
) -> Compiled:
    """Compile (and, for TRACEPOINT_PROBEs, attach) a program; UnavailableError with one reason."""
    stem = _program_file(name)
    text = program_text(stem, source)
    cflags = program_cflags(defines, headers)
    t0 = time.monotonic()
    with _lock, _environ(headers.env), captured_output() as log:
        try:
            bpf = bcc.BPF(text=text.encode(), cflags=cflags)  # bytes: bcc warns about str
            err: Exception | None = None
        except Exception as e:
            err = e
    if err is not None:
        raise UnavailableError(_failure_reason(err, log[0], stem)) from err
    return Compiled(bpf, text, cflags, headers, time.monotonic() - t0, log[0])


# ------------------------------------------------------------------------------------- cgroups
def cgroup_id(path: str | Path) -> int:
    """cgroup v2 id of a cgroup directory = its inode number (what bpf_get_current_cgroup_id returns)."""
    return os.stat(path).st_ino


def pid_cgroup_path(pid: int, root: Path | None = None) -> Path | None:
    """The v2 cgroup directory of a process (see targets.TargetResolver.cgroup_dir)."""
    root = root or cgroup2_root()
    return None if root is None else TargetResolver(cgroup_root=root).cgroup_dir(pid)


def pid_cgroup_id(pid: int) -> int | None:
    p = pid_cgroup_path(pid)
    try:
        return cgroup_id(p) if p is not None else None
    except OSError:
        return None


def cgroup_path(cgid: int, root: Path | None = None) -> Path | None:
    """Resolve a cgroup id to its directory by walking the v2 hierarchy (ids are inode numbers)."""
    root = root or cgroup2_root()
    if root is None:
        return None
    stack = [root]
    with contextlib.suppress(OSError):
        if cgroup_id(root) == cgid:
            return root
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            if e.inode() == cgid:
                return Path(e.path)
            stack.append(Path(e.path))
    return None


def cgroup_descendant_ids(cgid: int, root: Path | None = None) -> list[int]:
    """The id and every descendant's id (the programs match exact ids; targets mean subtrees)."""
    top = cgroup_path(cgid, root)
    if top is None:
        return [cgid]
    ids = [cgid]
    for dirpath, dirnames, _ in os.walk(top):
        for d in dirnames:
            with contextlib.suppress(OSError):
                ids.append(cgroup_id(os.path.join(dirpath, d)))
    return ids


# ----------------------------------------------------------------------------------- privileges
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def privilege_problem() -> str | None:
    """None when this process may load tracing BPF programs and open system-wide perf events."""
    caps = effective_caps()
    if caps is None:
        caps = -1 if os.geteuid() == 0 else 0
    if caps & (1 << CAP_SYS_ADMIN) or (caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON)):
        return None
    return f"not root: loading BPF programs needs CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON (uid {os.geteuid()})"


# ------------------------------------------------------------------------------ drain machinery
_BATCH_UNSUPPORTED = (errno.EINVAL, errno.EOPNOTSUPP, 524)  # 524: the kernel's ENOTSUPP


def drain_batch(lib: Any, fd: int, keys: np.ndarray, vals: np.ndarray) -> tuple[int, int]:
    """BPF_MAP_LOOKUP_AND_DELETE_BATCH (Linux 5.6) into preallocated numpy buffers.

    Returns (rows, errno): errno 0 or ENOENT = done; EINVAL/ENOTSUPP on the first call = the
    kernel cannot batch this map. No per-row Python work.
    """
    cap = len(keys)
    in_batch, out_batch = ctypes.c_uint32(0), ctypes.c_uint32(0)
    count = ctypes.c_uint32(0)
    kp, vp = keys.ctypes.data, vals.ctypes.data
    ks, vs = keys.dtype.itemsize, vals.dtype.itemsize
    total, first = 0, True
    while total < cap:
        count.value = cap - total
        res = lib.bpf_lookup_and_delete_batch(
            fd,
            None if first else ctypes.byref(in_batch),
            ctypes.byref(out_batch),
            ctypes.c_void_p(kp + total * ks),
            ctypes.c_void_p(vp + total * vs),
            ctypes.byref(count),
        )
        err = ctypes.get_errno() if res != 0 else 0
        if err in _BATCH_UNSUPPORTED:
            return total, err  # refused before doing anything: count was not written
        total += count.value  # also on ENOENT (the last chunk) and ENOSPC
        if res != 0:
            if err == errno.ENOENT:
                return total, 0
            return total, err or errno.EIO
        if count.value == 0:
            break  # no progress (concurrent inserts into one bucket): the rest waits for the next drain
        in_batch.value = out_batch.value
        first = False
    return total, 0


def drain_iterate(lib: Any, fd: int, keys: np.ndarray, vals: np.ndarray) -> int:
    """Fallback for kernels without batch ops: walk the keys, then look up + delete each one.

    Per row: one get_next_key, one lookup, one delete syscall (what bcc's table API does too).
    Increments that land between a row's lookup and its delete are lost.
    """
    cap = len(keys)
    kp, vp = keys.ctypes.data, vals.ctypes.data
    ks, vs = keys.dtype.itemsize, vals.dtype.itemsize
    if lib.bpf_get_first_key(fd, ctypes.c_void_p(kp), ks) != 0:
        return 0
    n = 1
    while (
        n < cap
        and lib.bpf_get_next_key(fd, ctypes.c_void_p(kp + (n - 1) * ks), ctypes.c_void_p(kp + n * ks)) == 0
    ):
        n += 1
    for i in range(n):
        k = ctypes.c_void_p(kp + i * ks)
        if lib.bpf_lookup_elem(fd, k, ctypes.c_void_p(vp + i * vs)) != 0:
            vals[i] = 0
        lib.bpf_delete_elem(fd, k)
    return n


class BccSampler:
    """Lifecycle shared by the bcc samplers: probe → start → drain → stop, health at any time.

    Subclasses set ``name`` and ``program`` and implement ``_check_source`` (is the hook there?
    returns the text for the reason), ``_defines`` and ``_attach``.
    """

    name = "bcc"
    program = ""

    def __init__(
        self,
        *,
        max_entries: int = L.MAX_ENTRIES_DEFAULT,
        max_targets: int = L.MAX_TARGETS_DEFAULT,
        headers: str = "auto",
        bcc_search: Sequence[str] | None = None,
        source: str | None = None,
        drain_mode: str = "auto",
        bpf_stats: bool = True,
        host: BpfHost | None = None,
    ) -> None:
        if max_entries < 1 or max_targets < 1:
            raise InputError("max_entries and max_targets must be positive")
        if headers not in ("auto", "kernel", "shipped"):
            raise InputError(f"headers must be auto, kernel or shipped, not {headers!r}")
        if drain_mode not in ("auto", "batch", "iterate"):
            raise InputError(f"drain_mode must be auto, batch or iterate, not {drain_mode!r}")
        self.max_entries = max_entries
        self.max_targets = max_targets
        self.headers_pref = headers
        self.bcc_search = bcc_search
        self.source = source
        self.drain_mode = drain_mode
        self.want_bpf_stats = bpf_stats
        self.host = host or BpfHost()
        self._bpf: Any = None
        self._lib: Any = None
        self._compiled: Compiled | None = None
        self._health = Health()
        self._stats_held = False
        self._tracefs_held = False
        self._shift = 0  # events kept: 1 in 2**shift (throttle)
        self._keys = np.zeros(0, L.KEY_DTYPE)
        self._vals = np.zeros(0, L.VAL_DTYPE)
        self.compile_seconds = 0.0
        self.headers: HeaderTree | None = None

    # -- hooks
    def _check_source(self, bcc: ModuleType) -> str:
        raise NotImplementedError

    def _defines(self) -> dict[str, int | str]:
        return {"TIERCTL_MAX_ENTRIES": self.max_entries, "TIERCTL_MAX_TARGETS": self.max_targets}

    def _attach(self, bcc: ModuleType) -> None:
        """Attach what BPF() did not attach by itself."""

    def _needs_tracefs(self) -> bool:
        return False

    # -- contract
    def _check(self) -> tuple[ModuleType, HeaderTree, str]:
        problem = privilege_problem()
        if problem:
            raise UnavailableError(problem)
        bcc = load_bcc(self.bcc_search)
        headers = find_headers(self.headers_pref)
        what = self._check_source(bcc)
        return bcc, headers, f"bcc {bcc_version(bcc)}; {what}; {headers.describe()}"

    def probe(self) -> Availability:
        try:
            return Availability(True, self._check()[2])
        except UnavailableError as e:
            return Availability(False, e.message)

    def start(self, targets: Targets) -> None:
        if self._bpf is not None:
            raise InputError(f"{self.name} is already started")
        t0 = time.thread_time()
        pids = tuple(int(p) for p in targets.pids)
        cgroups: list[int] = []
        for cg in targets.cgroup_ids:
            cgroups += cgroup_descendant_ids(int(cg))
        for what, items in (("pids", pids), ("cgroup ids (with descendants)", cgroups)):
            if len(set(items)) > self.max_targets:
                raise InputError(f"{len(set(items))} target {what}: more than max_targets={self.max_targets}")
        problem = privilege_problem()
        if problem:
            raise UnavailableError(problem)
        self._health = Health()
        try:
            if self._needs_tracefs():  # before _check(): it looks the tracepoints up in tracefs
                note = self.host.tracefs.acquire()
                self._tracefs_held = True
                if note:
                    self._health.notes.append(note)
            bcc, headers, reason = self._check()
            self.headers = headers
            self._health.notes.insert(0, reason)
            self._compiled = compile_program(bcc, self.program, self._defines(), headers, self.source)
            self._bpf = self._compiled.bpf
            self.compile_seconds = self._compiled.seconds
            self._lib = sys.modules["bcc.libbcc"].lib
            self._health.notes.append(f"compiled in {self._compiled.seconds:.2f} s")
            self._set_filters(pids, cgroups)
            self._attach(bcc)
            self._keys = np.zeros(self.max_entries, L.KEY_DTYPE)
            self._vals = np.zeros(self.max_entries, L.VAL_DTYPE)
            if self.want_bpf_stats:
                self._health.notes.append(self.host.stats.acquire())
                self._stats_held = True
            self._config(L.Config.ENABLED, 1)
        except BaseException:
            self._teardown()
            raise
        self._health.cpu_seconds += time.thread_time() - t0

    def retarget(self, targets: Targets) -> None:
        """Observe ``targets`` from now on: the filter maps are rewritten in place (no recompiling),
        so processes that appeared after ``start`` are seen too."""
        if self._bpf is None:
            return
        t0 = time.thread_time()
        pids = tuple(int(p) for p in targets.pids)
        cgroups: list[int] = []
        for cg in targets.cgroup_ids:
            cgroups += cgroup_descendant_ids(int(cg))
        if max(len(set(pids)), len(set(cgroups))) > self.max_targets:
            raise InputError(f"more than max_targets={self.max_targets} targets")
        for name in (L.MAP_FILTER_PIDS, L.MAP_FILTER_CGROUPS):
            self._table(name).clear()
        self._set_filters(pids, cgroups)
        self._health.cpu_seconds += time.thread_time() - t0

    def _set_filters(self, pids: Sequence[int], cgroups: Sequence[int]) -> None:
        tp = self._table(L.MAP_FILTER_PIDS)
        for p in set(pids):
            tp[tp.Key(p)] = tp.Leaf(1)
        tc = self._table(L.MAP_FILTER_CGROUPS)
        for c in set(cgroups):
            tc[tc.Key(c)] = tc.Leaf(1)
        self._config(L.Config.FILTER_PIDS, 1 if pids else 0)
        self._config(L.Config.FILTER_CGROUPS, 1 if cgroups else 0)

    def _table(self, name: str) -> Any:
        return self._bpf[name.encode()]  # bcc wants bytes (it warns about str)

    def _config(self, idx: int, value: int) -> None:
        t = self._table(L.MAP_CONFIG)
        t[t.Key(int(idx))] = t.Leaf(value)

    def counters(self) -> dict[str, int]:
        """Cumulative per-CPU counters, summed (events, drops by cause)."""
        if self._bpf is None:
            return {}
        t = self._table(L.MAP_COUNTERS)
        return {c.name.lower(): int(t.sum(t.Key(int(c))).value) for c in L.Counter if c != L.Counter.NR}

    def drain(self) -> np.ndarray:
        if self._bpf is None:
            return empty_raw()
        t0 = time.thread_time()
        fd = self._table(L.MAP_SAMPLES).map_fd
        n = -1
        if self.drain_mode in ("auto", "batch"):
            n, err = drain_batch(self._lib, fd, self._keys, self._vals)
            if err and n == 0 and self.drain_mode == "auto" and err in _BATCH_UNSUPPORTED:
                self.drain_mode = "iterate"  # for good: the kernel cannot batch (before 5.6)
                self._health.notes.append(
                    f"batch lookup-and-delete unsupported ({os.strerror(err)}): iterate + delete"
                )
                n = -1
            elif err:  # keep what was drained; the rest stays in the map for the next drain
                note = f"batch lookup-and-delete stopped early: {os.strerror(err)}"
                if note not in self._health.notes:
                    self._health.notes.append(note)
            elif self.drain_mode == "auto":
                self.drain_mode = "batch"
        if n < 0:
            n = drain_iterate(self._lib, fd, self._keys, self._vals)
        raw = L.rows_to_raw(self._keys[:n], self._vals[:n])
        if self._shift:  # one event in 2^shift was kept: counts estimate the events
            raw["count"] <<= np.uint64(self._shift)
        self._health.samples += len(raw)
        self._health.cpu_seconds += time.thread_time() - t0
        return raw

    def throttle(self) -> bool:
        """Lower the sampling rate by half (the watchdog's first resort); False when it cannot."""
        if self._bpf is None or self._shift >= MAX_SAMPLE_SHIFT:
            return False
        self._shift += 1
        self._config(L.Config.SAMPLE_SHIFT, self._shift)
        self._health.notes.append(f"rate lowered: 1 in {1 << self._shift} events kept, counts scaled")
        return True

    def stop(self) -> None:
        if self._bpf is not None:
            with contextlib.suppress(Exception):
                self._config(L.Config.ENABLED, 0)
            self._refresh_health()
        self._teardown()

    def _teardown(self) -> None:
        bpf, self._bpf = self._bpf, None
        if bpf is None and self._compiled is not None:
            bpf = self._compiled.bpf
        self._compiled = None
        if bpf is not None:
            with _lock, captured_output(), contextlib.suppress(Exception):
                bpf.cleanup()
            atexit.unregister(bpf.cleanup)
        if self._stats_held:
            self._stats_held = False
            self.host.stats.release()
        if self._tracefs_held:
            self._tracefs_held = False
            self.host.tracefs.release()

    def _refresh_health(self) -> None:
        if self._bpf is None:
            return
        c = self.counters()
        self._health.dropped = sum(c[d.name.lower()] for d in L.DROP_COUNTERS)
        runs = [prog_run_ns(f.fd) for f in self._bpf.funcs.values()]
        known = [r for r in runs if r is not None]
        if known:
            self._health.bpf_run_ns = sum(known)

    def health(self) -> Health:
        self._refresh_health()
        h = self._health
        return Health(h.samples, h.dropped, h.cpu_seconds, h.bpf_run_ns, list(h.notes))
