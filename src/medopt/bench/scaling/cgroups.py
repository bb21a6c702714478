"""CPU limits for replica processes, as a pod's ``resources.limits.cpu`` sets them: a CFS quota per cgroup.

Why: on a 2-core machine, replicas without limits all share the same two cores, so adding a replica adds no capacity
and autoscaling shows nothing. A quota makes each replica a fixed slice of a core, like a pod on a node, so capacity
grows with the replica count up to the machine. The period defaults to the kubelet's 100 ms, so a replica that has
spent its quota stalls until the next period exactly as a throttled pod does (the simulator models the same quota). cgroup v1 (``cpu`` controller) and v2 (``cpu.max``) both work;
without either, asking for a limit is an error, never silently ignored.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from medopt.errors import MedoptError

_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup")


class CpuLimitError(MedoptError, RuntimeError):
    """CPU limits were asked for but this machine's cgroups cannot be written (not root, or no cpu controller)."""


def _flavour() -> tuple[str, Path] | None:
    if (_V1 / "cpu.cfs_quota_us").exists() and os.access(_V1, os.W_OK):
        return "v1", _V1
    if (_V2 / "cgroup.controllers").exists() and "cpu" in (_V2 / "cgroup.controllers").read_text().split() \
            and os.access(_V2, os.W_OK):
        return "v2", _V2
    return None


def cpu_limits_available() -> bool:
    """True when this process may create CPU-limited cgroups."""
    return _flavour() is not None


class CpuLimits:
    """A parent cgroup for one run; ``limit(pid, cores)`` puts a process in its own child with that quota.

    Use as a context manager: on exit every child cgroup is emptied (processes moved back to the root) and removed.
    """

    def __init__(self, *, period_us: int = 100_000) -> None:
        found = _flavour()
        if found is None:
            raise CpuLimitError("replica CPU limits need a writable cgroup cpu controller (run as root on a machine "
                                "with /sys/fs/cgroup/cpu or cgroup v2 with the cpu controller), or set no cpu_limit")
        self.kind, self.root = found
        self.period_us = period_us
        self.parent = self.root / f"medopt-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.parent.mkdir()
        if self.kind == "v2":
            with contextlib.suppress(OSError):
                (self.parent / "cgroup.subtree_control").write_text("+cpu")
        self.children: list[Path] = []

    def limit(self, pid: int, cores: float, name: str) -> None:
        """Move ``pid`` (all its threads) into a new child cgroup capped at ``cores`` CPUs."""
        child = self.parent / name
        child.mkdir(exist_ok=True)
        quota = max(1000, int(round(cores * self.period_us)))
        if self.kind == "v1":
            (child / "cpu.cfs_period_us").write_text(str(self.period_us))
            (child / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (child / "cpu.max").write_text(f"{quota} {self.period_us}")
        (child / "cgroup.procs").write_text(str(pid))
        self.children.append(child)

    def close(self) -> None:
        for child in [*self.children, self.parent]:
            with contextlib.suppress(OSError):
                for pid in (child / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.root / "cgroup.procs").write_text(pid)
                child.rmdir()
        self.children.clear()

    def __enter__(self) -> CpuLimits:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
