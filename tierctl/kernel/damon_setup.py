"""Writing one kdamond's setup into the DAMON sysfs tree: its context (operations, monitoring
attributes), its target (pid, initial regions) and its ``stat`` scheme matching every region.

The order of the writes is the kernel's contract: each ``nr_*`` file rebuilds its children with
defaults, so a count is written before what lies below it, and each max before its min.
:meth:`tierctl.kernel.damon.DamonSysfs.create` calls ``write_kdamond`` through its own file access.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tierctl.errors import UnavailableError
from tierctl.kernel.damon_spec import UINT_MAX, ULONG_MAX, KdamondSpec


def write_kdamond(
    kd: Path, spec: KdamondSpec, write: Callable[[Path, str], None], read_opt: Callable[[Path], str | None]
) -> None:
    """Set up the kdamond directory ``kd`` (which ``nr_kdamonds`` created) as ``spec`` says, by
    ``write(path, text)``; ``read_opt(path)`` (None when absent) reads ``avail_operations``."""
    write(kd / "contexts" / "nr_contexts", "1")
    ctx = kd / "contexts" / "0"
    avail = read_opt(ctx / "avail_operations")
    if avail is not None and spec.ops not in avail.split():
        raise UnavailableError(
            f"operations {spec.ops!r} not offered by this kernel (avail_operations: {avail.strip()})",
            str(ctx / "avail_operations"),
        )
    write(ctx / "operations", spec.ops)
    a = spec.attrs
    iv = ctx / "monitoring_attrs" / "intervals"
    write(iv / "sample_us", str(a.sample_us))
    write(iv / "aggr_us", str(a.aggr_us))
    write(iv / "update_us", str(a.update_us))
    nr = ctx / "monitoring_attrs" / "nr_regions"
    # max before min: the pair never reads min > max (the kernel checks them when the kdamond starts)
    write(nr / "max", str(a.max_nr_regions))
    write(nr / "min", str(a.min_nr_regions))
    write(ctx / "targets" / "nr_targets", "1")
    tgt = ctx / "targets" / "0"
    if spec.pid is not None:
        write(tgt / "pid_target", str(spec.pid))
    if spec.regions:
        write(tgt / "regions" / "nr_regions", str(len(spec.regions)))
        for j, (start, end) in enumerate(spec.regions):
            write(tgt / "regions" / str(j) / "start", str(start))
            write(tgt / "regions" / str(j) / "end", str(end))
    if spec.scheme is None:
        return
    write(ctx / "schemes" / "nr_schemes", "1")
    sch = ctx / "schemes" / "0"
    write(sch / "action", spec.scheme)
    ap = sch / "access_pattern"
    for name, lo, hi in (
        ("sz", 0, ULONG_MAX),
        ("nr_accesses", spec.min_accesses, UINT_MAX),
        ("age", 0, UINT_MAX),
    ):
        write(ap / name / "max", str(hi))
        write(ap / name / "min", str(lo))
