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

That trade made a long-running process grow without bound (issue 9: ~7 GB per Synthesizer replica
after repeated bursts). Measured causes and their bounds (bench/memory_engine.py, bench/serve_memory.py, docs/BENCHMARKS.md):

* oneDNN's primitive cache (1024 primitives by default, each with JIT code and buffers) fills with
  one entry per distinct sentence length: ``bound_primitive_cache`` sets
  ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` before the first convolution: 16, or
  ``Settings.onednn_primitive_cache`` in a process that serves Piper first, whose widths are
  rounded to a few sizes (``shape_buckets.py``) so that the entries kept are reused.
* glibc keeps one arena per thread that ever allocated (up to 8 per core), each holding its own
  freed memory: ``M_ARENA_MAX`` is 2.
* The high trim threshold kept every arena at its peak: it is 128 MiB now, and
  ``release_freed_memory()`` (``malloc_trim``) hands freed memory back when a replica goes idle,
  so a burst keeps its buffers mapped and the idle replica shrinks back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc rejects larger values on 64-bit (HEAP_MAX_SIZE / 2)
_TRIM_THRESHOLD = 128 * 2**20
_ARENA_MAX = 2
SMALL_PRIMITIVE_CACHE = 16  # enough for the reuse within one render (its chunks, repeated layers)

_lock = threading.Lock()
_done: bool | None = None


def bound_primitive_cache(capacity: int) -> None:
    """Keep at most ``capacity`` built oneDNN primitives in this process. oneDNN reads the value when
    it builds its first primitive, so the first call before that counts; the operator's wins."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


def keep_freed_memory_mapped() -> bool:
    """Tune glibc malloc as described above; True if it is in effect (False off glibc/Linux)."""
    global _done
    with _lock:
        if _done is None:
            _done = (_mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                     and _mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
                     and _mallopt(_M_ARENA_MAX, _ARENA_MAX))
        return _done


def release_freed_memory() -> bool:
    """Return freed heap memory of every arena to the OS (glibc ``malloc_trim``); for idle moments."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    libc.malloc_trim.restype = ctypes.c_int
    return libc.malloc_trim(0) == 1


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _mallopt(param: int, value: int) -> bool:
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # not Linux, or not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(param, value) == 1


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively here (emulated bf16 would be slower than float32)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
