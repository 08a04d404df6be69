"""Keep freed memory in the process heap while torch works on a CPU (glibc).

glibc serves every allocation above its mmap threshold (at most 32 MB, 128 KB at start) with a fresh
``mmap`` and gives it back with ``munmap`` when it is freed. A training step or a scoring batch frees and
re-allocates the same large buffers every time (the weights' bf16 casts and their gradients, the logits,
a tied embedding's dense gradient), so each step pays a page fault and a zero-fill per 4 KB page of every
one of them: on SmolLM2-135M full fine-tuning a quarter of the step was ``copy_``/``fill_`` into new pages.

:func:`retained_heap` turns ``mmap`` allocation off (``M_MMAP_MAX=0``) and raises the trim threshold, so
freed buffers stay in the heap and the next step reuses their pages, as CUDA's caching allocator does on a
GPU. On exit it turns ``mmap`` back on and returns the free pages to the system (``malloc_trim(0)``). Setting
any of these parameters ends glibc's dynamic adjustment of the mmap threshold for the process, so the exit
sets the state that adjustment converges to when large buffers are freed (mmap threshold 32 MB, trim
threshold 64 MB): the rest of the process (another library's training, say) runs as it would after its own
first step. Nested uses are counted; only the outermost one switches. Elsewhere (not Linux, not
glibc, or ``LORAFAIR_RETAIN_HEAP=0``) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from typing import Iterator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # <malloc.h>
DEFAULT_MMAP_MAX = 65536
CONVERGED_MMAP_THRESHOLD = 32 * 1024 * 1024  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: where the dynamic threshold stops
CONVERGED_TRIM_THRESHOLD = 2 * CONVERGED_MMAP_THRESHOLD  # glibc raises the trim threshold to twice the mmap threshold
RETAINED_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int

_lock = threading.Lock()
_depth = 0
_libc: ctypes.CDLL | None | bool = False  # False: not looked up yet


def glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None where there is none (macOS, Windows, musl)."""
    global _libc
    if _libc is False:
        _libc = None
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(None)
                lib.gnu_get_libc_version  # glibc only: musl has mallopt as a stub
                lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                _libc = lib
            except (OSError, AttributeError):
                _libc = None
    return _libc


def enabled() -> bool:
    """Whether :func:`retained_heap` acts here: glibc, and ``LORAFAIR_RETAIN_HEAP`` is not ``0``."""
    return os.environ.get("LORAFAIR_RETAIN_HEAP", "1") != "0" and glibc() is not None


def active() -> bool:
    """Whether a :func:`retained_heap` block is open now."""
    return _depth > 0


@contextlib.contextmanager
def retained_heap(on: bool = True) -> Iterator[bool]:
    """Within the block, freed memory stays in the heap for reuse (see the module). Yields whether it acts."""
    global _depth
    if not (on and enabled()):
        yield False
        return
    lib = glibc()
    with _lock:
        _depth += 1
        if _depth == 1:
            lib.mallopt(M_MMAP_MAX, 0)
            lib.mallopt(M_TRIM_THRESHOLD, RETAINED_TRIM_THRESHOLD)
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                lib.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                lib.mallopt(M_MMAP_THRESHOLD, CONVERGED_MMAP_THRESHOLD)
                lib.mallopt(M_TRIM_THRESHOLD, CONVERGED_TRIM_THRESHOLD)
                lib.malloc_trim(0)
