"""bpf/tierctl.h vs its Python mirror (tierctl/samplers/bpf_layout.py), checked by gcc.

A tiny C program includes the header (with typedefs for u32/u64, which bcc provides to the
BPF programs) and prints sizeof/offsetof of every field and the value of every enum constant
and macro; the test compares them with the numpy dtypes and enums.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import RAW_SAMPLE_DTYPE

HEADER = Path(__file__).resolve().parents[2] / "tierctl" / "data" / "bpf" / "tierctl.h"


def header_enum_names() -> list[str]:
    """Every enumerator declared in the header (``NAME = value`` inside ``enum ... { }``)."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    names: list[str] = []
    for body in re.findall(r"enum\s+\w+\s*\{(.*?)\}", text, flags=re.S):
        names += re.findall(r"\b(TIERCTL_\w+)\s*=", body)
    return names


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc/cc) on PATH")
    lines = []
    for struct, dtype in L.STRUCTS.items():
        lines.append(f'printf("sizeof.{struct} %zu\\n", sizeof(struct {struct}));')
        for field in dtype.names or ():
            lines.append(f'printf("offsetof.{struct}.{field} %zu\\n", offsetof(struct {struct}, {field}));')
            lines.append(
                f'printf("sizeof.{struct}.{field} %zu\\n", sizeof(((struct {struct} *)0)->{field}));'
            )
    for name in sorted(set(header_enum_names()) | set(L.ENUMS) | set(L.MACROS)):
        lines.append(f'printf("value.{name} %lld\\n", (long long)({name}));')
    src = "\n".join(
        [
            "#include <stdio.h>",
            "#include <stddef.h>",
            "typedef unsigned int u32;",
            "typedef unsigned long long u64;",
            f'#include "{HEADER}"',
            "int main(void) {",
            *lines,
            "return 0; }",
        ]
    )
    d = tmp_path_factory.mktemp("layout")
    (d / "layout.c").write_text(src)
    cc = subprocess.run(
        [gcc, "-std=c11", "-Wall", "-Werror", "-o", str(d / "layout"), str(d / "layout.c")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cc.returncode == 0, f"gcc failed on bpf/tierctl.h:\n{cc.stderr}"
    out = subprocess.run([str(d / "layout")], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


@pytest.mark.parametrize("struct", sorted(L.STRUCTS))
def test_struct_sizes_and_offsets_match(c_layout: dict[str, int], struct: str) -> None:
    dtype = L.STRUCTS[struct]
    assert c_layout[f"sizeof.{struct}"] == dtype.itemsize
    for field in dtype.names or ():
        off = dtype.fields[field][1]  # type: ignore[index]
        assert c_layout[f"offsetof.{struct}.{field}"] == off, field
        assert c_layout[f"sizeof.{struct}.{field}"] == dtype[field].itemsize, field


def test_every_enum_value_and_macro_matches(c_layout: dict[str, int]) -> None:
    for name, value in {**L.ENUMS, **L.MACROS}.items():
        assert c_layout[f"value.{name}"] == value, name


def test_mirror_lists_every_enum_constant_of_the_header() -> None:
    names = header_enum_names()
    assert len(names) > 20
    assert set(names) == set(L.ENUMS), set(names) ^ set(L.ENUMS)


def test_raw_sample_dtype_is_key_then_count() -> None:
    assert RAW_SAMPLE_DTYPE.names == (*(L.KEY_DTYPE.names or ()), "count")
    for f in L.KEY_DTYPE.names or ():
        assert RAW_SAMPLE_DTYPE[f] == L.KEY_DTYPE[f]
        assert RAW_SAMPLE_DTYPE.fields[f][1] == L.KEY_DTYPE.fields[f][1]  # type: ignore[index]
    assert RAW_SAMPLE_DTYPE.itemsize == L.KEY_DTYPE.itemsize + L.VAL_DTYPE.itemsize
    assert RAW_SAMPLE_DTYPE["count"] == L.VAL_DTYPE["count"]


def test_fault_flag_bits_are_the_x86_error_code_bits() -> None:
    # arch/x86/include/asm/trap_pf.h: PROT=bit0, WRITE=bit1, USER=bit2, INSTR=bit4
    assert (L.SampleFlag.PROT, L.SampleFlag.WRITE, L.SampleFlag.USER, L.SampleFlag.INSTR) == (1, 2, 4, 16)
    assert L.SampleFlag.FAULT_MASK & (L.SampleFlag.FAULT | L.SampleFlag.PERF) == 0


def test_rows_to_raw_merges_flags_per_page_and_sorts() -> None:
    keys = np.zeros(4, L.KEY_DTYPE)
    keys["cgroup"] = [7, 7, 7, 1]
    keys["pid"] = [10, 10, 10, 11]
    keys["vpn"] = [5, 3, 5, 9]
    keys["flags"] = [L.SampleFlag.FAULT | 4, L.SampleFlag.FAULT, L.SampleFlag.FAULT | 7, L.SampleFlag.FAULT]
    vals = np.array([(2,), (1,), (3,), (4,)], L.VAL_DTYPE)
    raw = L.rows_to_raw(keys, vals)
    assert raw.dtype == RAW_SAMPLE_DTYPE
    assert raw[["cgroup", "pid", "vpn"]].tolist() == [(1, 11, 9), (7, 10, 3), (7, 10, 5)]
    assert raw["count"].tolist() == [4, 1, 5]
    assert raw["flags"][2] == L.SampleFlag.FAULT | 7
    unmerged = L.rows_to_raw(keys, vals, merge_flags=False)
    assert len(unmerged) == 4 and unmerged["count"].sum() == 10
    assert len(L.rows_to_raw(keys[:0], vals[:0])) == 0
