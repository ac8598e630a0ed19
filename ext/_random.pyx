# cython: language_level=3
"""Vectorised access to the counter-based streams for Python-level processes."""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t

include "counter_rng.pxi"


def uniforms(uint64_t seed, const int64_t[::1] ids, uint64_t step, uint64_t purpose,
             uint64_t extra=0):
    """One uniform draw on [0, 1) per id for the given (seed, step, purpose, extra)."""
    cdef Py_ssize_t i, n = ids.shape[0]
    cdef uint64_t key = stream_key(seed, step, purpose)
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = keyed_uniform(key, <uint64_t>ids[i], extra)
    return out


def bits(uint64_t seed, uint64_t cell_id, uint64_t step, uint64_t purpose, uint64_t extra=0):
    """The raw 64-bit word of one draw (for tests against the Python oracle)."""
    return keyed_bits(stream_key(seed, step, purpose), cell_id, extra)
