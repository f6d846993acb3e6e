"""Keep freed CPU memory inside the process (glibc malloc), so a step does not page-fault.

A training step on a CPU allocates and frees the same few hundred megabytes of activations every
SGLD or attack iteration. glibc's defaults hand large blocks back to the kernel (mmap for blocks
above a threshold it raises only as far as 32 MiB, and it trims the heap top), so each iteration
takes fresh pages again. One SGLD pass of WRN-28-2 at batch 64 (benchmarks/results/allocator_cpu.md):
29,500 minor page faults -> 0, system time 0.058 -> 0.001 s, wall 0.290 -> 0.273 s (median of
3 processes each; docs/PARITY.md, "Speed"). ``cpu_malloc=cached`` (the default)
turns that off for the process: no mmap for large blocks, and the heap top is trimmed only past
2 GiB. The price is that the process keeps its peak heap. ``system`` leaves malloc alone.

The setting is per process and cannot be undone: glibc has no call that restores its adaptive
thresholds. Elsewhere (macOS, musl) ``mallopt`` is absent or refuses, and nothing changes.
"""

from __future__ import annotations

import ctypes
import sys

CPU_MALLOC_CHOICES = ("cached", "system")

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_TRIM_BYTES = 2**31 - 1  # mallopt takes an int: the largest value, 2 GiB

_state = {"cached": False}


def cache_cpu_memory() -> bool:
    """Set glibc malloc to keep freed memory (once per process); True when it is now in effect."""
    if _state["cached"]:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # glibc returns 1 on success; musl's stub returns 0 and changes nothing.
    _state["cached"] = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES) == 1
    return _state["cached"]


def cpu_memory_cached() -> bool:
    """Whether :func:`cache_cpu_memory` took effect in this process."""
    return _state["cached"]


def apply_cpu_malloc(choice: str, device_type: str) -> bool:
    """The run's ``cpu_malloc`` setting: ``cached`` on a CPU device tunes malloc, else nothing."""
    if choice not in CPU_MALLOC_CHOICES:
        raise ValueError(f"cpu_malloc must be one of {', '.join(CPU_MALLOC_CHOICES)}, got {choice!r}")
    return cache_cpu_memory() if choice == "cached" and device_type == "cpu" else False
