# cython: language_level=3
"""Persistent random walk of free cells on periodic 2D compartments."""
from cython.parallel cimport prange
from libc.math cimport cos, sin, floor, M_PI
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t

include "counter_rng.pxi"

# New headings are one of HEADINGS evenly spaced directions (0.18 degrees apart), looked
# up instead of computing cos/sin per turn. The index comes from the low bits of the same
# draw whose top 53 bits decide the turn.
cdef enum:
    HEADINGS = 2048  # a power of two: the index is the draw's low 11 bits
cdef float[HEADINGS] HEADING_X
cdef float[HEADINGS] HEADING_Y
for _h in range(HEADINGS):
    HEADING_X[_h] = <float>cos(2.0 * M_PI * _h / HEADINGS)
    HEADING_Y[_h] = <float>sin(2.0 * M_PI * _h / HEADINGS)


def heading_table():
    """The (x, y) unit vectors of all headings (for tests)."""
    return [HEADING_X[h] for h in range(HEADINGS)], [HEADING_Y[h] for h in range(HEADINGS)]


cdef inline double wrap(double v, double size) noexcept nogil:
    """v folded into [0, size), whatever v is: the contact grid uses it as an index.

    Far from the domain, v / size can round to a whole number and leave the result just
    below 0 (one more size fixes it) or land it on size (0). A coordinate that is not a
    number, or a size that is not positive and finite, gives 0.
    """
    if not (0.0 <= v < size):
        v = v - size * floor(v / size)
        if v < 0.0:
            v = v + size
        if not (0.0 <= v < size):  # rounding landed on size, or inf/NaN in v or size
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
    (ux == uy == 0) always takes one. One draw per cell, keyed by its id and the step,
    decides the turn (top 53 bits) and the new heading (low 11 bits).
    """
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double d
    cdef int c
    cdef uint64_t bits, turn_key = stream_key(seed, step, PURPOSE_TURN)
    for i in prange(n, nogil=True, num_threads=threads, schedule="static"):
        if not alive[i] or partner[i] >= 0:
            continue
        c = comp[i]
        d = step_um[c, kind[i]]
        if d <= 0.0:
            continue
        bits = keyed_bits(turn_key, <uint64_t>ids[i], 0)
        if (ux[i] == 0.0 and uy[i] == 0.0) or \
                <double>(bits >> 11) * (1.0 / 9007199254740992.0) < p_turn:
            ux[i] = HEADING_X[bits & (HEADINGS - 1)]
            uy[i] = HEADING_Y[bits & (HEADINGS - 1)]
        x[i] = wrap(x[i] + d * ux[i], width_um[c])
        y[i] = wrap(y[i] + d * uy[i], height_um[c])
