"""Handing freed memory back to the system between the steps of a run.

A run's steps follow one another in one process: what a step freed stays mapped by the
allocators (Arrow's mimalloc pool, glibc's arenas) and adds to every later step's resident
size unless it is given back."""

import ctypes
import ctypes.util

import pyarrow as pa

_LIBC = ctypes.util.find_library("c")


def give_back_memory() -> None:
    pa.default_memory_pool().release_unused()
    if _LIBC:
        try:
            ctypes.CDLL(_LIBC).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc: nothing to trim
            pass
