"""CPU runtime tuning for the torch engine (process-wide, opt-in, idempotent).

``keep_freed_memory_mapped()``: glibc's malloc serves every block above its mmap threshold
with a fresh ``mmap`` and unmaps it on free; its adaptive threshold only rises *above* the size
of a freed block, so blocks of one recurring size (the vocoder's per-layer activations, 7-14 MB
for a 3-5 s sentence) are mapped, page-faulted in and unmapped again on every call. On the
2-core VM of docs/BENCHMARKS.md that was 8-14 thousand page faults per call for a 5 s sentence,
10-15 % of its vocoder time. Raising the mmap threshold to glibc's maximum (32 MiB) and the trim
threshold well above it keeps freed heap memory mapped for reuse: steady-state page faults drop
to zero, at the price of the process keeping its peak heap (the vocoder's working set for the
longest sentence served, ~100 MB for 10 s of audio) instead of returning it to the OS.
Blocks above 32 MiB (single activations of sentences longer than ~12 s) still use mmap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc rejects larger values on 64-bit (HEAP_MAX_SIZE / 2)
_TRIM_THRESHOLD = 1 << 30

_lock = threading.Lock()
_done: bool | None = None


def keep_freed_memory_mapped() -> bool:
    """Tune glibc malloc as described above; True if it is in effect (False off glibc/Linux)."""
    global _done
    with _lock:
        if _done is None:
            _done = (_mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                     and _mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
        return _done


def _mallopt(param: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(param, value) == 1
