"""Files tierctl ships beside its code, found through ``importlib.resources`` so that a source
checkout, an installed wheel and an sdist build all find them the same way:

- ``profiles/``: the built-in placement profiles (``*.toml``) and their README;
- ``bpf/``: the BPF C sources, their shared headers and a minimal kernel header tree
  (``bpf/include``) for kernels that ship none;
- ``tierctl.service``: the systemd unit.

``path(name)`` gives a real filesystem path: bcc compiles from files, and profiles are listed and
re-read like any directory. An installation whose package data is not on a filesystem (a zip
import) is refused with an error naming what is missing, never a traceback.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tierctl.errors import UnavailableError

PROFILES = "profiles"
BPF = "bpf"
UNIT = "tierctl.service"


def path(name: str) -> Path:
    """The filesystem path of shipped file or directory ``name`` (one of the names above)."""
    ref = resources.files(__name__) / name
    if not isinstance(ref, Path):
        raise UnavailableError(
            f"tierctl's package data is not on a filesystem ({ref!r}): install tierctl from a wheel "
            "or a source tree, not a zip",
            f"tierctl.data/{name}",
        )
    if not ref.exists():
        raise UnavailableError(
            f"{ref} is missing: this installation of tierctl lacks its package data (was it built "
            "without it?); reinstall it from the wheel",
            f"tierctl.data/{name}",
        )
    return ref


def profiles_dir() -> Path:
    """The built-in profiles."""
    return path(PROFILES)


def bpf_dir() -> Path:
    """The BPF sources and headers."""
    return path(BPF)


def unit_file() -> Path:
    """The systemd unit."""
    return path(UNIT)
