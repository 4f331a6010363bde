"""Finding bcc, and keeping its process-wide side effects in check.

tierctl runs on its own Python (pyenv, a venv) while bcc comes from the distribution (Debian's
python3-bpfcc installs ``bcc`` into /usr/lib/python3/dist-packages). ``load_bcc`` first tries a plain
``import bcc`` (a venv with a .pth file, the system Python) and then loads *only* the ``bcc`` package
from the Debian folder through ``importlib`` (``PathFinder.find_spec`` with that one folder; the folder
is never put on ``sys.path``, so no other distribution package can shadow the project's own
dependencies). Nothing is written to disk.

bcc's compile-time environment variables (libbcc reads the header tree only from the environment: see
``environ``) and libbcc/clang's diagnostics on fds 1 and 2 are process-wide: ``environ`` and
``captured_output`` change them under ``LOCK`` and restore them in ``finally``.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType

from tierctl.errors import UnavailableError

DIST_PACKAGES: tuple[str, ...] = ("/usr/lib/python3/dist-packages",)

# bcc's compile-time environment variables and fd redirection are process-wide, so the lock that
# serialises them is too (it holds no data).
LOCK = threading.Lock()


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


@contextlib.contextmanager
def environ(pairs: Sequence[tuple[str, str | None]]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the block; the old values come back, in
    ``finally``, whatever the block raised. Hold ``LOCK`` around it.

    Why the process environment, while other daemon threads run: libbcc reads the kernel header tree
    only from ``getenv("BCC_KERNEL_SOURCE")`` (ClangLoader::parse; else /lib/modules/$(uname -r)/build).
    That directory is not a cflag: libbcc chdirs into it for the compile and derives its -I flags
    from it (KBuildHelper), and ``bcc.BPF()`` takes no argument for it, so ``-I``/``cflags`` cannot
    replace it (without the variable, a host with no kernel headers fails with "Unable to find
    kernel headers"). Only names that differ are written (``putenv``/``unsetenv``), so a compile that
    needs the environment as it is touches nothing; other threads that read one of these names
    meanwhile see the temporary value (tierctl itself reads BCC_KERNEL_SOURCE only in
    ``bpf_headers.find_headers``, before taking ``LOCK``). libbcc's chdir for the compile is just as
    process-wide and not ours to avoid: a relative path another thread opens meanwhile resolves
    there.
    """
    saved = {k: os.environ.get(k) for k, _ in pairs}
    try:
        for k, v in pairs:
            _put(k, v)
        yield
    finally:
        for k, v in saved.items():
            _put(k, v)


def _put(name: str, value: str | None) -> None:
    if os.environ.get(name) == value:
        return
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


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
