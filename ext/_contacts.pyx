# cython: language_level=3
"""Contact search on a uniform grid and bridged-synapse formation.

Targets (CD19-bearing kinds) are binned each step by a counting sort into square bins at
least one contact radius wide, one grid per compartment laid end to end. Every free T cell
then scans the 3x3 bins around it (periodic), and for each touching free target draws
whether drug bridges form a synapse. Conflicts are settled deterministically: a T cell
keeps its candidate with the smallest draw; a target claimed by several T cells goes to
the claim with the smallest (draw, T-cell id).
"""
import numpy as np
from cython.parallel cimport prange
from libc.math cimport exp, floor, sqrt, ceil
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t

include "counter_rng.pxi"

cdef int KIND_CD8 = 0
cdef int KIND_CD4 = 1
cdef int KIND_B = 2
cdef int KIND_BLAST = 3


cdef inline bint is_t_cell(int8_t k) noexcept nogil:
    return k == KIND_CD8 or k == KIND_CD4


cdef inline bint is_target(int8_t k) noexcept nogil:
    return k == KIND_B or k == KIND_BLAST


def grid_shape(double width_um, double height_um, double radius_um, Py_ssize_t n_targets):
    """Bins per side: at least one contact radius wide, about one target per bin."""
    cdef Py_ssize_t most = max(1, <Py_ssize_t>ceil(sqrt(<double>n_targets)))
    cdef Py_ssize_t nx = max(1, min(<Py_ssize_t>floor(width_um / radius_um), most))
    cdef Py_ssize_t ny = max(1, min(<Py_ssize_t>floor(height_um / radius_um), most))
    return nx, ny


cdef inline Py_ssize_t bin_index(double x, double y, int c, const int64_t[::1] nx,
                                 const int64_t[::1] ny, const int64_t[::1] offset,
                                 const double[::1] width, const double[::1] height) noexcept nogil:
    cdef Py_ssize_t bx = <Py_ssize_t>(x / width[c] * nx[c])
    cdef Py_ssize_t by = <Py_ssize_t>(y / height[c] * ny[c])
    if bx >= nx[c]:
        bx = nx[c] - 1
    if by >= ny[c]:
        by = ny[c] - 1
    return offset[c] + by * nx[c] + bx


def build_grid(const double[::1] x, const double[::1] y, const int8_t[::1] kind,
               const int8_t[::1] comp, const uint8_t[::1] alive,
               const int64_t[::1] nx, const int64_t[::1] ny, const int64_t[::1] offset,
               const double[::1] width, const double[::1] height):
    """Counting sort of live targets into bins; returns (bin_start, rows_by_bin)."""
    cdef Py_ssize_t i, b, n = x.shape[0], total = offset[offset.shape[0] - 1]
    start_arr = np.zeros(total + 1, dtype=np.int64)
    cdef int64_t[::1] start = start_arr
    cdef int64_t[::1] bin_of = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if alive[i] and is_target(kind[i]):
            b = bin_index(x[i], y[i], comp[i], nx, ny, offset, width, height)
            bin_of[i] = b
            start[b + 1] += 1
    for b in range(total):
        start[b + 1] += start[b]
    cdef int64_t[::1] fill = start_arr[:total].copy()
    rows_arr = np.empty(start[total], dtype=np.int64)
    cdef int64_t[::1] rows = rows_arr
    for i in range(n):
        if bin_of[i] >= 0:
            rows[fill[bin_of[i]]] = i
            fill[bin_of[i]] += 1
    return start_arr, rows_arr


cdef inline double capture(double copies, double area_um2, double k2d_per_um2) noexcept nogil:
    """Probability that a drug arm in the contact finds a free receptor: rho / (rho + K2D)."""
    cdef double rho = copies / area_um2
    if rho <= 0.0:
        return 0.0
    return rho / (rho + k2d_per_um2)


def expected_bridges(double cd19, double cd3, double occ19, double occ3,
                     double contact_fraction, double area_um2, double k2d19, double k2d3):
    """Expected drug bridges in one T-cell/target contact (exposed for tests)."""
    return bridges(cd19, cd3, occ19, occ3, contact_fraction, area_um2, k2d19, k2d3)


cdef inline double bridges(double cd19, double cd3, double occ19, double occ3,
                           double contact_fraction, double area_um2, double k2d19,
                           double k2d3) noexcept nogil:
    return contact_fraction * (cd19 * occ19 * capture(cd3, area_um2, k2d3)
                               + cd3 * occ3 * capture(cd19, area_um2, k2d19))


def form_synapses(const double[::1] x, const double[::1] y, const int8_t[::1] kind,
                  const int8_t[::1] comp, const uint8_t[::1] alive,
                  const int64_t[::1] ids, const float[::1] cd19, const float[::1] cd3,
                  int32_t[::1] partner,
                  const int64_t[::1] bin_start, const int64_t[::1] rows_by_bin,
                  const int64_t[::1] nx, const int64_t[::1] ny, const int64_t[::1] offset,
                  const double[::1] width, const double[::1] height,
                  const double[::1] occ19, const double[::1] occ3,
                  double radius_um, double contact_fraction, double area_um2,
                  double k2d19, double k2d3, uint64_t seed, uint64_t step, int threads=1):
    """Pair free T cells with touching free targets; returns new (t_rows, target_rows).

    The probability that a contact minute becomes a synapse is 1 - exp(-B), B the
    expected number of drug bridges (see docs/model.md). partner is updated in place.
    """
    cdef Py_ssize_t n = x.shape[0], i, j, k, b
    cdef int c
    cdef Py_ssize_t bx, by, ox, oy, cx, cy, nbx, nby, dx_lo, dx_hi, dy_lo, dy_hi
    cdef double r2 = radius_um * radius_um, ddx, ddy, u, p, best_u
    cdef Py_ssize_t best_j
    choice_arr = np.full(n, -1, dtype=np.int64)
    key_arr = np.full(n, 2.0, dtype=np.float64)
    cdef int64_t[::1] choice = choice_arr
    cdef double[::1] key = key_arr
    for i in prange(n, nogil=True, num_threads=threads, schedule="dynamic", chunksize=256):
        if not alive[i] or partner[i] >= 0 or not is_t_cell(kind[i]):
            continue
        c = comp[i]
        if (occ19[c] <= 0.0 and occ3[c] <= 0.0) or \
                bin_start[offset[c + 1]] == bin_start[offset[c]]:
            continue  # no drug, or no target in this compartment
        nbx = nx[c]
        nby = ny[c]
        bx = <Py_ssize_t>(x[i] / width[c] * nbx)
        by = <Py_ssize_t>(y[i] / height[c] * nby)
        if bx >= nbx:
            bx = nbx - 1
        if by >= nby:
            by = nby - 1
        # visit each neighbouring bin once, also when a side has fewer than 3 bins
        dx_lo = -1 if nbx >= 3 else 0
        dx_hi = 1 if nbx >= 2 else 0
        dy_lo = -1 if nby >= 3 else 0
        dy_hi = 1 if nby >= 2 else 0
        best_j = -1
        best_u = 2.0
        for oy in range(dy_lo, dy_hi + 1):
            cy = (by + oy + nby) % nby
            for ox in range(dx_lo, dx_hi + 1):
                cx = (bx + ox + nbx) % nbx
                b = offset[c] + cy * nbx + cx
                for k in range(bin_start[b], bin_start[b + 1]):
                    j = rows_by_bin[k]
                    if partner[j] >= 0 or cd19[j] <= 0.0:
                        continue
                    ddx = x[j] - x[i]
                    ddy = y[j] - y[i]
                    if ddx > 0.5 * width[c]:
                        ddx = ddx - width[c]
                    elif ddx < -0.5 * width[c]:
                        ddx = ddx + width[c]
                    if ddy > 0.5 * height[c]:
                        ddy = ddy - height[c]
                    elif ddy < -0.5 * height[c]:
                        ddy = ddy + height[c]
                    if ddx * ddx + ddy * ddy > r2:
                        continue
                    p = 1.0 - exp(-bridges(cd19[j], cd3[i], occ19[c], occ3[c],
                                           contact_fraction, area_um2, k2d19, k2d3))
                    u = stream_uniform(seed, <uint64_t>ids[i], step, PURPOSE_BRIDGE,
                                       <uint64_t>ids[j])
                    if u < p and (u < best_u or (u == best_u and ids[j] < ids[best_j])):
                        best_u = u
                        best_j = j
        choice[i] = best_j
        key[i] = best_u
    return _resolve(choice, key, ids, partner)


cdef _resolve(int64_t[::1] choice, double[::1] key, const int64_t[::1] ids,
              int32_t[::1] partner):
    """Give each claimed target to its claim with the smallest (draw, T-cell id)."""
    cdef Py_ssize_t n = choice.shape[0], i, j, w
    cdef int64_t[::1] winner = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        j = choice[i]
        if j < 0:
            continue
        w = winner[j]
        if w < 0 or key[i] < key[w] or (key[i] == key[w] and ids[i] < ids[w]):
            winner[j] = i
    t_rows = []
    for i in range(n):
        j = choice[i]
        if j >= 0 and winner[j] == i:
            partner[i] = <int32_t>j
            partner[j] = <int32_t>i
            t_rows.append(i)
    t_arr = np.asarray(t_rows, dtype=np.int64)
    return t_arr, np.asarray(partner, dtype=np.int32)[t_arr].astype(np.int64)
