# cython: language_level=3
"""Contact search on a uniform grid and bridged-synapse formation.

In each compartment, one side of the pairing (free T cells, or free CD19-bearing targets:
whichever is more numerous there) is binned each step by a counting sort into square bins
at least one contact radius wide, one grid per compartment laid end to end; every cell of
the other side scans the 3x3 bins around it (periodic). Compartments lacking either side
are skipped. For each touching pair a keyed draw decides whether enough drug
bridges form to trigger a synapse. Conflicts are settled deterministically: a T cell keeps its candidate
with the smallest (draw, target id); a target claimed by several T cells goes to the
claim with the smallest (draw, T-cell id). The draw is keyed by the pair, so both scan
directions give the same synapses.
"""
import numpy as np
from cython.parallel cimport prange
from libc.math cimport exp, floor, sqrt, ceil
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t

include "counter_rng.pxi"

cdef enum:
    KIND_CD8 = 0
    KIND_CD4 = 1
    KIND_B = 2
    KIND_BLAST = 3

cdef enum:
    SIDE_NONE = -1
    SIDE_T_CELLS = 0
    SIDE_TARGETS = 1

NO_PAIRING = SIDE_NONE
BIN_T_CELLS = SIDE_T_CELLS
BIN_TARGETS = SIDE_TARGETS


cdef inline bint is_t_cell(int8_t k) noexcept nogil:
    return k == KIND_CD8 or k == KIND_CD4


cdef inline bint is_target(int8_t k) noexcept nogil:
    return k == KIND_B or k == KIND_BLAST


def count_free(const int8_t[::1] kind, const int8_t[::1] comp, const uint8_t[::1] alive,
               const int32_t[::1] partner, Py_ssize_t n_comps):
    """Free live T cells and free live targets per compartment: (t_cells, targets)."""
    t_arr = np.zeros(n_comps, dtype=np.int64)
    g_arr = np.zeros(n_comps, dtype=np.int64)
    cdef int64_t[::1] t = t_arr, g = g_arr
    cdef Py_ssize_t i
    for i in range(kind.shape[0]):
        if alive[i] and partner[i] < 0:
            if is_t_cell(kind[i]):
                t[comp[i]] += 1
            elif is_target(kind[i]):
                g[comp[i]] += 1
    return t_arr, g_arr


def grid_shape(double width_um, double height_um, double radius_um, Py_ssize_t n_binned):
    """Bins per side: at least one contact radius wide, about one binned cell per bin."""
    cdef Py_ssize_t most = max(1, <Py_ssize_t>ceil(sqrt(<double>n_binned)))
    return (_bins_along(width_um, radius_um, most), _bins_along(height_um, radius_um, most))


cdef Py_ssize_t _bins_along(double length_um, double radius_um, Py_ssize_t most):
    cdef Py_ssize_t n = max(1, min(<Py_ssize_t>floor(length_um / radius_um), most))
    while n > 1 and length_um / n < radius_um * (1.0 + 1e-9):  # keep clear of rounding
        n -= 1
    return n


cdef struct Grid:
    # raw views of the per-compartment grid arrays (no memoryview refcounting in loops)
    const int64_t* nx
    const int64_t* ny
    const int64_t* offset
    const double* width
    const double* height


cdef inline Grid grid_of(const int64_t[::1] nx, const int64_t[::1] ny,
                         const int64_t[::1] offset, const double[::1] width,
                         const double[::1] height) noexcept:
    cdef Grid g
    g.nx = &nx[0]
    g.ny = &ny[0]
    g.offset = &offset[0]
    g.width = &width[0]
    g.height = &height[0]
    return g


cdef inline void cell_bin(const Grid* g, double x, double y, int c, Py_ssize_t* bx,
                          Py_ssize_t* by) noexcept nogil:
    bx[0] = <Py_ssize_t>(x / g.width[c] * g.nx[c])
    by[0] = <Py_ssize_t>(y / g.height[c] * g.ny[c])
    if bx[0] >= g.nx[c]:
        bx[0] = g.nx[c] - 1
    if by[0] >= g.ny[c]:
        by[0] = g.ny[c] - 1


cdef inline bint binned(int side, int8_t k) noexcept nogil:
    if side == SIDE_TARGETS:
        return is_target(k)
    return side == SIDE_T_CELLS and is_t_cell(k)


def build_grid(const int8_t[::1] side_by_comp, const double[::1] x, const double[::1] y,
               const int8_t[::1] kind, const int8_t[::1] comp, const uint8_t[::1] alive,
               const int32_t[::1] partner, const int64_t[::1] nx, const int64_t[::1] ny,
               const int64_t[::1] offset, const double[::1] width, const double[::1] height):
    """Counting sort of the free live cells of each compartment's binned side into bins.

    side_by_comp[c] is BIN_T_CELLS, BIN_TARGETS or NO_PAIRING (nothing binned).
    Returns (bin_start, rows_by_bin).
    """
    cdef Py_ssize_t i, b, bx = 0, by = 0, n = x.shape[0], total = offset[offset.shape[0] - 1]
    cdef Grid grid = grid_of(nx, ny, offset, width, height)
    start_arr = np.zeros(total + 1, dtype=np.int64)
    cdef int64_t[::1] start = start_arr
    cdef int64_t[::1] bin_of = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if alive[i] and partner[i] < 0 and binned(side_by_comp[comp[i]], kind[i]):
            cell_bin(&grid, x[i], y[i], comp[i], &bx, &by)
            b = offset[comp[i]] + by * nx[comp[i]] + bx
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


cdef inline double bridges(double cd19, double cd3, double occ19, double occ3,
                           double contact_fraction, double area_um2, double k2d19,
                           double k2d3) noexcept nogil:
    return contact_fraction * (cd19 * occ19 * capture(cd3, area_um2, k2d3)
                               + cd3 * occ3 * capture(cd19, area_um2, k2d19))


def expected_bridges(double cd19, double cd3, double occ19, double occ3,
                     double contact_fraction, double area_um2, double k2d19, double k2d3):
    """Expected drug bridges in one T-cell/target contact (exposed for tests)."""
    return bridges(cd19, cd3, occ19, occ3, contact_fraction, area_um2, k2d19, k2d3)


cdef inline double trigger_probability(double mean_bridges, int needed) noexcept nogil:
    """P(N >= needed) for N ~ Poisson(mean_bridges): the contact triggers a synapse.

    Below the mean the upper tail is summed directly (accurate for tiny means); above it,
    one minus the lower terms.
    """
    cdef double term = exp(-mean_bridges), total = 0.0
    cdef int k
    if mean_bridges <= 0.0:
        return 0.0 if needed > 0 else 1.0
    if mean_bridges < needed:
        for k in range(needed):
            term *= mean_bridges / (k + 1)
        k = needed
        while term > 1e-18 * total or total == 0.0:
            total += term
            k += 1
            term *= mean_bridges / k
            if term == 0.0:
                break
        return total
    for k in range(needed):
        total += term
        term *= mean_bridges / (k + 1)
    return 1.0 - total if total < 1.0 else 0.0


def synapse_probability(double mean_bridges, int needed):
    """Probability that a contact minute with this many expected bridges triggers (tests)."""
    return trigger_probability(mean_bridges, needed)


cdef struct Pairing:
    # inputs and outputs shared by both scan directions, as raw pointers
    Grid grid
    const double* x
    const double* y
    const int64_t* ids
    const float* cd19
    const float* cd3
    const int8_t* comp
    const int32_t* partner
    const int64_t* bin_start
    const int64_t* rows_by_bin
    const double* occ19_by_comp
    const double* occ3_by_comp
    int64_t* choice
    double* key
    double occ19
    double occ3
    double radius2
    double contact_fraction
    double area_um2
    double k2d19
    double k2d3
    int bridges_needed
    uint64_t bridge_key


cdef inline double pair_draw(Pairing* pp, Py_ssize_t t, Py_ssize_t g, double width,
                             double height) noexcept nogil:
    """Keyed draw of a touching pair that bridges, or 2.0 (no synapse from this pair)."""
    cdef double dx = pp.x[g] - pp.x[t], dy = pp.y[g] - pp.y[t], p, u
    if dx > 0.5 * width:
        dx -= width
    elif dx < -0.5 * width:
        dx += width
    if dy > 0.5 * height:
        dy -= height
    elif dy < -0.5 * height:
        dy += height
    if dx * dx + dy * dy > pp.radius2 or pp.cd19[g] <= 0.0:
        return 2.0
    p = trigger_probability(bridges(pp.cd19[g], pp.cd3[t], pp.occ19, pp.occ3,
                                    pp.contact_fraction, pp.area_um2, pp.k2d19, pp.k2d3),
                            pp.bridges_needed)
    u = keyed_uniform(pp.bridge_key, <uint64_t>pp.ids[t], <uint64_t>pp.ids[g])
    return u if u < p else 2.0


cdef inline bint better(double u, Py_ssize_t candidate, double best_u, Py_ssize_t best,
                        const int64_t* ids) noexcept nogil:
    """Smaller draw wins; equal draws go to the smaller id."""
    return u < best_u or (u == best_u and u < 2.0 and ids[candidate] < ids[best])


def form_synapses(const int8_t[::1] side_by_comp, const double[::1] x, const double[::1] y,
                  const int8_t[::1] kind, const int8_t[::1] comp, const uint8_t[::1] alive,
                  const int64_t[::1] ids, const float[::1] cd19, const float[::1] cd3,
                  int32_t[::1] partner,
                  const int64_t[::1] bin_start, const int64_t[::1] rows_by_bin,
                  const int64_t[::1] nx, const int64_t[::1] ny, const int64_t[::1] offset,
                  const double[::1] width, const double[::1] height,
                  const double[::1] occ19, const double[::1] occ3,
                  double radius_um, double contact_fraction, double area_um2,
                  double k2d19, double k2d3, int bridges_needed, uint64_t seed, uint64_t step,
                  int threads=1):
    """Pair free T cells with touching free targets; returns the new synapses' T rows.

    side_by_comp says, per compartment, which cells the grid holds (BIN_TARGETS: T cells
    scan, in parallel; BIN_T_CELLS: targets scan, serially; NO_PAIRING: skipped). The probability that a contact minute becomes a
    synapse is P(N >= bridges_needed), N ~ Poisson(B), B the expected number of drug
    bridges in the contact (docs/model.md).
    partner is updated in place for both cells of every new synapse.
    """
    cdef Py_ssize_t n = x.shape[0], i
    choice_arr = np.full(n, -1, dtype=np.int64)
    key_arr = np.full(n, 2.0, dtype=np.float64)
    cdef int64_t[::1] choice = choice_arr
    cdef double[::1] key = key_arr
    cdef Pairing pp
    if n == 0:
        return np.empty(0, dtype=np.int64)
    pp.grid = grid_of(nx, ny, offset, width, height)
    pp.x = &x[0]
    pp.y = &y[0]
    pp.ids = &ids[0]
    pp.cd19 = &cd19[0]
    pp.cd3 = &cd3[0]
    pp.comp = &comp[0]
    pp.partner = &partner[0]
    pp.bin_start = &bin_start[0]
    pp.rows_by_bin = &rows_by_bin[0] if rows_by_bin.shape[0] else NULL
    pp.occ19_by_comp = &occ19[0]
    pp.occ3_by_comp = &occ3[0]
    pp.choice = &choice[0]
    pp.key = &key[0]
    pp.radius2 = radius_um * radius_um
    pp.contact_fraction = contact_fraction
    pp.area_um2 = area_um2
    pp.k2d19 = k2d19
    pp.k2d3 = k2d3
    pp.bridges_needed = bridges_needed
    pp.bridge_key = stream_key(seed, step, PURPOSE_BRIDGE)
    for i in prange(n, nogil=True, num_threads=threads, schedule="dynamic", chunksize=256):
        if alive[i] and partner[i] < 0 and is_t_cell(kind[i]) \
                and side_by_comp[comp[i]] == SIDE_TARGETS:
            _scan(&pp, i, True)
    for i in range(n):
        if alive[i] and partner[i] < 0 and is_target(kind[i]) \
                and side_by_comp[comp[i]] == SIDE_T_CELLS:
            _scan(&pp, i, False)
    return _resolve(choice, key, ids, partner)


cdef void _scan(const Pairing* proto, Py_ssize_t i, bint from_t_cell) noexcept nogil:
    """Scan the 3x3 bins around cell i and record T-cell candidates in choice/key.

    From a T cell, i's best target is written to choice[i]. From a target, each touching T
    cell's best is updated (serial use only).
    """
    cdef Pairing pp = proto[0]
    cdef const Grid* g = &pp.grid
    cdef int c = pp.comp[i]
    cdef Py_ssize_t bx = 0, by = 0, ox, oy, cx, cy, b, k, j, t, tg
    cdef Py_ssize_t nbx = g.nx[c], nby = g.ny[c]
    cdef Py_ssize_t dx_lo = -1 if nbx >= 3 else 0, dx_hi = 1 if nbx >= 2 else 0
    cdef Py_ssize_t dy_lo = -1 if nby >= 3 else 0, dy_hi = 1 if nby >= 2 else 0
    cdef double u, best_u = 2.0
    cdef Py_ssize_t best = -1
    pp.occ19 = pp.occ19_by_comp[c]
    pp.occ3 = pp.occ3_by_comp[c]
    if (pp.occ19 <= 0.0 and pp.occ3 <= 0.0) or \
            pp.bin_start[g.offset[c + 1]] == pp.bin_start[g.offset[c]]:
        return  # no drug here, or nothing binned in this compartment
    cell_bin(g, pp.x[i], pp.y[i], c, &bx, &by)
    for oy in range(dy_lo, dy_hi + 1):
        cy = (by + oy + nby) % nby
        for ox in range(dx_lo, dx_hi + 1):
            cx = (bx + ox + nbx) % nbx
            b = g.offset[c] + cy * nbx + cx
            for k in range(pp.bin_start[b], pp.bin_start[b + 1]):
                j = pp.rows_by_bin[k]
                if pp.partner[j] >= 0:
                    continue
                t = i if from_t_cell else j
                tg = j if from_t_cell else i
                u = pair_draw(&pp, t, tg, g.width[c], g.height[c])
                if from_t_cell:
                    if better(u, tg, best_u, best, pp.ids):
                        best_u = u
                        best = tg
                elif better(u, tg, pp.key[t], pp.choice[t], pp.ids):
                    pp.key[t] = u
                    pp.choice[t] = tg
    if from_t_cell:
        pp.choice[i] = best
        pp.key[i] = best_u


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
    return np.asarray(t_rows, dtype=np.int64)
