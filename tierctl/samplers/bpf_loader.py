"""Former home of the BPF sampler machinery; its last importer is ``tests/samplers/test_bpf_samplers.py``
(``pid_cgroup_id``, and a check of the re-exports). Delete this module once that test uses
``tierctl.kernel.cgroupfs.CgroupTree.mounted().pid_id`` instead.

The machinery now lives by concern: ``bpf_bcc`` (finding bcc, its process-wide side effects),
``bpf_headers`` (kernel header discovery), ``bpf_compile`` (program text, flags, compiling with bcc),
``bpf_maps`` (draining the sample map), ``bpf_sampler`` (the sampler base class), and the host side in
``tierctl.kernel.bpfhost`` (tracefs, BPF stats, privileges) and ``tierctl.kernel.cgroupfs`` (cgroup
ids).
"""

from __future__ import annotations

from tierctl.kernel.cgroupfs import CgroupTree, cgroup2_root
from tierctl.samplers.bpf_compile import PROGRAMS, print_bpf

__all__ = ["PROGRAMS", "cgroup2_root", "pid_cgroup_id", "print_bpf"]


def pid_cgroup_id(pid: int) -> int | None:
    """The id of the process's cgroup in the mounted v2 hierarchy; None when unknown."""
    tree = CgroupTree.mounted()
    return None if tree is None else tree.pid_id(pid)
