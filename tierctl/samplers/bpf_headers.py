"""Where bcc gets kernel headers (bcc compiles against a kernel tree; it has no BTF-only route).

In this order: ``$BCC_KERNEL_SOURCE`` when the user set it, tierctl's minimal tree shipped in
``tierctl/data/bpf/include/`` (passed to bcc as ``BCC_KERNEL_SOURCE`` plus ``-DLINUX_VERSION_CODE`` of
the running kernel), else ``/lib/modules/$(uname -r)/build`` (with its ``source`` sibling). The
programs read no kernel struct, so the shipped tree holds only integer types, the UAPI perf-context
header and stubs for what bcc's built-in helpers.h includes (see tierctl/data/bpf/include/README).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tierctl import data
from tierctl.errors import InputError, UnavailableError


def bpf_dir() -> Path:
    """The BPF sources: ``$TIERCTL_BPF_DIR``, else the ones shipped as package data."""
    env = os.environ.get("TIERCTL_BPF_DIR")
    return Path(env) if env else data.bpf_dir()


def shipped_headers() -> Path:
    """tierctl's minimal kernel header tree (for kernels that ship none)."""
    return bpf_dir() / "include"


MODULES_DIR = Path("/lib/modules")


@dataclass(frozen=True)
class HeaderTree:
    path: Path
    # "env" ($BCC_KERNEL_SOURCE), "kernel" (/lib/modules/R/build), "shipped" (tierctl/data/bpf/include)
    kind: str
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
