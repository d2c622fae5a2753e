"""Runs a bench child inside a memory cgroup with a hard limit, so that "fits in X GiB" is
measured, not inferred: everything the child is charged for counts - its anonymous memory
*and* the file cache of what it reads and writes (the memory-mapped vectors included). At the
limit the kernel must reclaim the child's file pages (writing back dirty ones) or kill it, so a
child that finishes within the limit fits; its time says what the reclaiming cost.

Linux only, as root (or with a delegated cgroup): cgroup v2 (``memory.max``, ``memory.peak``)
where the memory controller is enabled, else cgroup v1 (``memory.limit_in_bytes``,
``memory.max_usage_in_bytes``). :func:`limited` raises ``SystemExit`` with the reason where
neither can be used.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

V1 = Path("/sys/fs/cgroup/memory")
V2_MOUNTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))


def _own(controller: str):
    """This process's cgroup path for ``controller`` ("" for the v2 line)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return path
    return None


def _v2_dir():
    path = _own("")
    for mount in V2_MOUNTS:
        ctl = mount / "cgroup.controllers"
        if path is not None and ctl.exists() and "memory" in ctl.read_text().split():
            parent = mount / path.lstrip("/")
            sub = parent / "cgroup.subtree_control"
            if sub.exists() and "memory" in sub.read_text().split():
                return parent
    return None


@contextlib.contextmanager
def limited(gib: float, name: str = "vc_bench"):
    """A fresh cgroup limited to ``gib`` GiB; yields ``(preexec_fn, peak)``: pass
    ``preexec_fn`` to ``subprocess.run`` to start the child inside it, then ``peak()`` gives
    ``dict(limit_gib, peak_gib)`` (the most the cgroup was charged) and, on cgroup v1,
    ``limit_hits`` (how often the limit was reached)."""
    limit = int(gib * 2 ** 30)
    parent = _v2_dir()
    if parent is not None:
        files = dict(limit="memory.max", peak="memory.peak", swap="memory.swap.max")
    else:
        own = _own("memory")
        if own is None or not (V1 / own.lstrip("/")).is_dir():
            raise SystemExit("a memory limit needs a cgroup memory controller (cgroup v2 with "
                             "memory enabled, or v1 at /sys/fs/cgroup/memory); none here")
        parent = V1 / own.lstrip("/")
        files = dict(limit="memory.limit_in_bytes", peak="memory.max_usage_in_bytes",
                     fails="memory.failcnt")
    cg = parent / f"{name}_{os.getpid()}"
    try:
        cg.mkdir()
        (cg / files["limit"]).write_text(str(limit))
        if "swap" in files and (cg / files["swap"]).exists():
            (cg / files["swap"]).write_text("0")
    except OSError as e:
        raise SystemExit(f"cannot create a memory cgroup under {parent} ({e}): run as root "
                         "or without the memory limit") from None
    procs = str(cg / "cgroup.procs")

    def enter():                     # runs in the child between fork and exec
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    def peak():
        out = dict(limit_gib=gib, peak_gib=int((cg / files["peak"]).read_text()) / 2 ** 30)
        if "fails" in files:
            out["limit_hits"] = int((cg / files["fails"]).read_text())
        return out

    try:
        yield enter, peak
    finally:
        with contextlib.suppress(OSError):
            cg.rmdir()
