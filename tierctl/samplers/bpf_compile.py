"""tierctl's BPF programs: their text as compiled, the compiler flags, compiling and loading with bcc.

Every failure becomes an ``UnavailableError`` with one reason: the compiler's first error line, the
verifier's verdict, or the refused attach (the full text is what ``print_bpf`` shows).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tierctl.errors import InputError, UnavailableError
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.bpf_bcc import LOCK, captured_output, environ
from tierctl.samplers.bpf_headers import HeaderTree, bpf_dir, find_headers

# program file -> the sampler names that use it (print_bpf accepts either)
PROGRAMS = {
    "fault_sampler": ("bpf-fault", "fault"),
    "addr_sampler": ("bpf-perf", "perf"),
    "stall_sampler": ("bpf-stall", "stall"),
}

# Bounds of stall_sampler.c's maps (tierctl/samplers/stall.py passes its own with -D).
STALL_DEFINES_DEFAULT: dict[str, int | str] = {
    "TIERCTL_STALL_MAX_TASKS": 8192,  # threads in reclaim at the same time
    "TIERCTL_STALL_MAX_CGROUPS": 4096,  # cgroups with stalls between two drains
    "TIERCTL_STALL_MAX_VICTIMS": 256,  # OOM victims not yet handed over
}


def program_file(name: str) -> str:
    """The program file's stem for a program or sampler name."""
    for stem, aliases in PROGRAMS.items():
        if name in (stem, f"{stem}.c", *aliases):
            return stem
    raise InputError(f"unknown BPF program {name!r} (known: {', '.join(PROGRAMS)})")


def program_text(name: str, source: str | None = None) -> str:
    """The program as compiled: <name>.c with tierctl.h and tierctl_prog.h inlined (line
    numbers in compiler messages refer to this text)."""
    stem = program_file(name)
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
        stem = program_file(name)
        defines = {"TIERCTL_MAX_ENTRIES": L.MAX_ENTRIES_DEFAULT, "TIERCTL_MAX_TARGETS": L.MAX_TARGETS_DEFAULT}
        if stem == "fault_sampler":
            defines["TIERCTL_WITH_MIGRATE"] = 1
        if stem == "stall_sampler":
            defines = {"TIERCTL_MAX_TARGETS": L.MAX_TARGETS_DEFAULT, **STALL_DEFINES_DEFAULT}
    try:
        tree: HeaderTree | None = find_headers(headers)
    except UnavailableError:
        tree = None
    where = tree.describe() if tree else "no kernel headers found"
    flags = " ".join(program_cflags(defines, tree))
    return f"// tierctl BPF program {program_file(name)}.c, compiled by bcc with: {flags}\n// {where}\n" + (
        program_text(name)
    )


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
    with LOCK, captured_output() as log:
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
    stem = program_file(name)
    text = program_text(stem, source)
    cflags = program_cflags(defines, headers)
    t0 = time.monotonic()
    with LOCK, environ(headers.env), captured_output() as log:
        try:
            bpf = bcc.BPF(text=text.encode(), cflags=cflags)  # bytes: bcc warns about str
            err: Exception | None = None
        except Exception as e:
            err = e
    if err is not None:
        raise UnavailableError(_failure_reason(err, log[0], stem)) from err
    return Compiled(bpf, text, cflags, headers, time.monotonic() - t0, log[0])
