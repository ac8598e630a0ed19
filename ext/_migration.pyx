# cython: language_level=3
"""The cells that take one migration route this interval (processes/migration.py)."""
import numpy as np
from libc.stdint cimport int8_t, int64_t, uint8_t, uint64_t

include "counter_rng.pxi"


def movers(const int64_t[::1] rows, const int8_t[::1] kind, const int64_t[::1] ids,
           uint8_t[::1] moved, const double[::1] chance_of_kind, chance_of_row,
           uint64_t seed, uint64_t step, uint64_t purpose, uint64_t extra):
    """The rows (in order) that take the route: not yet moved this interval, with a
    positive chance, and a keyed draw for their id below it. Marks them in `moved`.

    The chance of rows[i] is chance_of_row[i] when that is given (an array as long as
    rows), else chance_of_kind[kind[rows[i]]] (0 for a kind code outside it). The draw is
    rng.uniforms(seed, id, step, purpose, extra), so a cell's decision does not depend on
    which other cells are drawn. Every row must index kind, ids and moved.
    """
    cdef Py_ssize_t i, r, k, made = 0, n = rows.shape[0], n_kinds = chance_of_kind.shape[0]
    cdef bint per_row = chance_of_row is not None
    cdef const double[::1] row_chance
    if per_row:
        row_chance = chance_of_row
        if row_chance.shape[0] != n:
            raise ValueError("chance_of_row must be as long as rows")
    cdef double chance
    cdef uint64_t key = stream_key(seed, step, purpose)
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(n):
            r = rows[i]
            if moved[r]:
                continue
            k = kind[r]
            if per_row:
                chance = row_chance[i]
            else:
                chance = chance_of_kind[k] if 0 <= k < n_kinds else 0.0
            if chance > 0.0 and keyed_uniform(key, <uint64_t>ids[r], extra) < chance:
                moved[r] = 1
                o[made] = r
                made += 1
    return out[:made]
