# cython: language_level=3
"""Persistent random walk of free cells on periodic 2D compartments."""
from cython.parallel cimport prange
from libc.math cimport cos, sin, floor, M_PI
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t

include "counter_rng.pxi"


cdef inline double wrap(double v, double size) noexcept nogil:
    if v >= size or v < 0.0:
        v = v - size * floor(v / size)
        if v >= size:  # rounding can land exactly on size
            v = 0.0
    return v


def move(double[::1] x, double[::1] y, float[::1] ux, float[::1] uy,
         const int8_t[::1] kind, const int8_t[::1] comp, const int32_t[::1] partner,
         const uint8_t[::1] alive, const int64_t[::1] ids,
         const double[:, ::1] step_um, const double[::1] width_um,
         const double[::1] height_um, double p_turn, uint64_t seed, uint64_t step,
         int threads=1):
    """Move every live, free cell one step along its heading, turning with p_turn.

    step_um[comp, kind] is the distance moved per step. A cell with no heading yet
    (ux == uy == 0) always draws one. Each cell's draws are keyed by its id and the step.
    """
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double d, angle
    cdef int c
    for i in prange(n, nogil=True, num_threads=threads, schedule="static"):
        if not alive[i] or partner[i] >= 0:
            continue
        c = comp[i]
        d = step_um[c, kind[i]]
        if d <= 0.0:
            continue
        if (ux[i] == 0.0 and uy[i] == 0.0) or \
                stream_uniform(seed, <uint64_t>ids[i], step, PURPOSE_TURN, 0) < p_turn:
            angle = 2.0 * M_PI * stream_uniform(seed, <uint64_t>ids[i], step, PURPOSE_HEADING, 0)
            ux[i] = <float>cos(angle)
            uy[i] = <float>sin(angle)
        x[i] = wrap(x[i] + d * ux[i], width_um[c])
        y[i] = wrap(y[i] + d * uy[i], height_um[c])
