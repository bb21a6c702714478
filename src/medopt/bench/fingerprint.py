"""The machine a number was measured on: CPU model, the ISA flags that change kernel speed, cores, library versions.

The same int8 model is 2.9x faster than fp32 with AVX-512 VNNI and 1.9x with AVX2 only: a ratio means little
without the ISA it was measured on.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
PACKAGES = ("torch", "onnxruntime", "ray", "flwr", "kserve", "timm", "numpy")


def _cpuinfo(path: Path) -> tuple[str, set[str]]:
    """The first processor's model name and flags from /proc/cpuinfo (empty when the file is absent)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return platform.processor() or "unknown", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        if model and flags:
            break
    return model or platform.processor() or "unknown", flags


def _total_memory_bytes(path: Path) -> int | None:
    """MemTotal from /proc/meminfo, else page size x page count, else None."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def package_version(name: str) -> str:
    """The installed distribution's version, read from its metadata (no import), or ``"absent"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _torch_threads() -> int | None:
    """torch's intra-op thread count when torch is already imported (the benchmarks import it; we do not)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None and hasattr(torch, "get_num_threads") else None


def fingerprint(*, cpuinfo: Path = Path("/proc/cpuinfo"), meminfo: Path = Path("/proc/meminfo")) -> dict[str, Any]:
    """The machine fingerprint stored in every results JSON."""
    model, flags = _cpuinfo(cpuinfo)
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "cpu_model": model,
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_bytes": _total_memory_bytes(meminfo),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: package_version(name) for name in PACKAGES},
        "torch_threads": _torch_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
