# cython: language_level=3
"""Compaction of the struct-of-arrays population: drop dead rows in place, keep order."""
import numpy as np
from cython.parallel cimport prange
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uintptr_t


def compact(columns, const uint8_t[::1] alive, int32_t[::1] partner, int threads=1):
    """Move the live rows of every column (1-, 2-, 4- or 8-byte numpy arrays of at least
    len(alive) items) to the front, in row order, and remap partner rows.

    `partner` must be one of the columns. Returns the live count. Raises RuntimeError,
    changing nothing, when a live cell is bound to a dead partner.
    """
    cdef Py_ssize_t n = alive.shape[0], n_cols = len(columns), i, c, count = 0
    kept_arr = np.empty(n, dtype=np.int32)
    new_row_arr = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] kept = kept_arr, new_row = new_row_arr
    cdef bint orphan = False
    with nogil:
        for i in range(n):
            new_row[i] = <int32_t>count
            if alive[i]:
                kept[count] = <int32_t>i
                count += 1
                if partner[i] >= 0 and not alive[partner[i]]:
                    orphan = True
    if orphan:
        raise RuntimeError("a live cell is bound to a dead partner")
    if count == n:
        return count
    for col in columns:
        if col.itemsize not in (1, 2, 4, 8) or not col.flags.c_contiguous or len(col) < n:
            raise ValueError("columns must be contiguous 1-, 2-, 4- or 8-byte arrays of n rows")
    data_arr = np.array([col.ctypes.data for col in columns], dtype=np.uintp)
    size_arr = np.array([col.itemsize for col in columns], dtype=np.intp)
    cdef uintptr_t[::1] data = data_arr
    cdef Py_ssize_t[::1] size = size_arr
    cdef Py_ssize_t first_dead = 0  # rows before it stay where they are
    while alive[first_dead]:
        first_dead += 1
    for c in prange(n_cols, nogil=True, num_threads=max(1, threads), schedule="dynamic"):
        _take(<void*>data[c], size[c], &kept[0], first_dead, count)
    with nogil:
        for i in range(count):
            if partner[i] >= 0:
                partner[i] = new_row[partner[i]]
    return count


cdef void _take(void* column, Py_ssize_t itemsize, const int32_t* kept, Py_ssize_t first,
                Py_ssize_t count) noexcept nogil:
    """column[k] = column[kept[k]] for first <= k < count (kept ascending, so in place is
    safe; kept[k] == k below the first dead row)."""
    cdef Py_ssize_t k
    cdef int8_t* c1 = <int8_t*>column
    cdef int16_t* c2 = <int16_t*>column
    cdef int32_t* c4 = <int32_t*>column
    cdef int64_t* c8 = <int64_t*>column
    if itemsize == 1:
        for k in range(first, count):
            c1[k] = c1[kept[k]]
    elif itemsize == 2:
        for k in range(first, count):
            c2[k] = c2[kept[k]]
    elif itemsize == 4:
        for k in range(first, count):
            c4[k] = c4[kept[k]]
    elif itemsize == 8:
        for k in range(first, count):
            c8[k] = c8[kept[k]]


def free_by_compartment(const uint8_t[::1] alive, const int32_t[::1] partner,
                        const int8_t[::1] comp, Py_ssize_t n_comps):
    """The live rows without a synapse partner, grouped by compartment in row order:
    (rows, start) with compartment c's rows at rows[start[c]:start[c + 1]]. Rows whose
    compartment code is outside 0..n_comps-1 are left out."""
    cdef Py_ssize_t n = alive.shape[0], i, c
    start_arr = np.zeros(n_comps + 1, dtype=np.int64)
    cdef int64_t[::1] start = start_arr
    with nogil:
        for i in range(n):
            if alive[i] and partner[i] < 0 and 0 <= comp[i] < n_comps:
                start[comp[i] + 1] += 1
        for c in range(n_comps):
            start[c + 1] += start[c]
    rows_arr = np.empty(start[n_comps], dtype=np.int64)
    cursor_arr = start_arr[:n_comps].copy()
    cdef int64_t[::1] rows = rows_arr, cursor = cursor_arr
    with nogil:
        for i in range(n):
            if alive[i] and partner[i] < 0 and 0 <= comp[i] < n_comps:
                rows[cursor[comp[i]]] = i
                cursor[comp[i]] += 1
    return rows_arr, start_arr
