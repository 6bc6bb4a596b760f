"""Keep glibc's malloc from handing activation buffers back to the kernel between calls.

Why: glibc serves large blocks with ``mmap`` and unmaps them on ``free``; its
threshold for "large" moves with the process's allocation history. Measured on
this machine (fbnet CIFAR nets, torch CPU, 1 thread, same module and input):
some networks took ~1,400 minor page faults per forward pass (every activation
buffer freshly mapped and zeroed by the kernel), which cost 3-4 ms of a 10 ms
call, and whether a network was hit depended on what the process had allocated
before -- the same network measured minutes apart differed by up to 25%. With
the thresholds fixed (``mallopt(M_MMAP_THRESHOLD, 32 MiB)``, ``M_TRIM_THRESHOLD``
1 GiB) the faults vanished (0 per call) and those networks ran in 10.8 ms every
time. A deployment runtime with an arena allocator (ONNX Runtime's own arena,
TensorRT, jemalloc/tcmalloc) does not pay these faults either, so the steady
number is also the representative one.

The setting is process-wide and is applied once, when a profiler is created; it
is recorded in the fingerprint (``malloc``) so numbers taken with and without it
are never mixed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20   # glibc's maximum on 64-bit
TRIM_THRESHOLD = 2**30

_applied: str | None = None


def steady_malloc() -> str:
    """Fix glibc's mmap/trim thresholds (once) and say what is in force."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = "default"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to pin
            return _applied
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
            _applied = f"glibc mmap_threshold={MMAP_THRESHOLD >> 20}MiB trim_threshold={TRIM_THRESHOLD >> 30}GiB"
    return _applied
