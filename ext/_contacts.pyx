# cython: language_level=3
"""Contact search on a uniform grid and bridged-synapse formation.

Each step, the free live T cells and the free live CD19-bearing targets of every
compartment where a synapse can form (drug bound, and free cells of both kinds: the
model's contact_compartments) are counting-sorted into one grid per compartment (square
bins at least one contact radius wide, about one cell of the more numerous side per bin;
the grids of all compartments laid end to end). The grid keeps bin-ordered copies of what the scan
reads (x, y, id, CD19 or CD3, row), so the scan walks memory in order. Every free T cell
then scans the bins that can hold a touching target: its own and its neighbours, 3x3, or
2x2 along an axis whose bins are at least two radii wide (a contact disc then reaches only
the neighbour on the cell's side of its bin's middle). For each touching pair a keyed draw
decides whether enough drug bridges form to trigger a synapse. Conflicts are settled
deterministically: a T cell keeps its candidate with the smallest (draw, target id); a
target claimed by several T cells goes to the claim with the smallest (draw, T-cell id).

Results do not depend on the thread count: the counting sort splits the rows into one
contiguous chunk per thread and lays the chunks out in row order (the same layout as one
thread), each T cell writes only its own choice, and the rule is a minimum over keys.
"""
import numpy as np
from cython.parallel cimport prange
from libc.math cimport exp, floor, sqrt, ceil, lgamma, log
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t, uintptr_t
from libc.string cimport memset

include "counter_rng.pxi"

cdef enum:
    KIND_CD8 = 0
    KIND_CD4 = 1
    KIND_B = 2
    KIND_BLAST = 3

cdef enum:
    NOT_BINNED = -1
    SIDE_T_CELL = 0
    SIDE_TARGET = 1

WIDE_MARGIN = 1e-6
"""A bin counts as two radii wide when it is at least 2 r (1 + WIDE_MARGIN) wide."""


cdef inline bint is_t_cell(int8_t k) noexcept nogil:
    return k == KIND_CD8 or k == KIND_CD4


cdef inline bint is_target(int8_t k) noexcept nogil:
    return k == KIND_B or k == KIND_BLAST


def count_free(const int8_t[::1] kind, const int8_t[::1] comp, const uint8_t[::1] alive,
               const int32_t[::1] partner, const float[::1] cd19, Py_ssize_t n_comps):
    """Free live T cells and free live CD19+ targets per compartment: (t_cells, targets),
    the cells build_grid bins."""
    t_arr = np.zeros(n_comps, dtype=np.int64)
    g_arr = np.zeros(n_comps, dtype=np.int64)
    cdef int64_t[::1] t = t_arr, g = g_arr
    cdef Py_ssize_t i
    with nogil:
        for i in range(kind.shape[0]):
            if alive[i] and partner[i] < 0:
                if is_t_cell(kind[i]):
                    t[comp[i]] += 1
                elif is_target(kind[i]) and cd19[i] > 0.0:
                    g[comp[i]] += 1
    return t_arr, g_arr


def grid_shape(double width_um, double height_um, double radius_um, Py_ssize_t n_binned):
    """Bins per side: at least one contact radius wide, about one binned cell per bin."""
    cdef Py_ssize_t most = max(1, <Py_ssize_t>ceil(sqrt(<double>n_binned)))
    return (_bins_along(width_um, radius_um, most), _bins_along(height_um, radius_um, most))


cdef Py_ssize_t _bins_along(double length_um, double radius_um, Py_ssize_t most):
    cdef double fit = floor(length_um / radius_um)  # compared as a double: a cast of a
    cdef Py_ssize_t n = most                         # huge or NaN quotient is undefined
    if fit < <double>most:
        n = 1 if fit < 1.0 else <Py_ssize_t>fit
    while n > 1 and length_um / n < radius_um * (1.0 + 1e-9):  # keep clear of rounding
        n -= 1
    return n


cdef inline double bin_coord(double v, double bins_per_um) noexcept nogil:
    """Position along an axis in bin widths (its floor is the bin, before clamping)."""
    return v * bins_per_um


cdef inline Py_ssize_t bin_index(double coord, Py_ssize_t n) noexcept nogil:
    """The bin of a position `coord` bin widths along an axis of n bins, clamped to 0..n-1
    whatever coord is (negative, huge or NaN): the result indexes the grid."""
    if not (coord >= 0.0):
        return 0
    if coord >= <double>n:
        return n - 1
    return <Py_ssize_t>coord


cdef struct Cell:
    # a binned cell as the scan reads it: 32 bytes, two to a cache line
    double x
    double y
    int64_t id
    float receptors   # CD3 copies of a T cell, CD19 copies of a target
    int32_t row

CELL_DTYPE = np.dtype([("x", "f8"), ("y", "f8"), ("id", "i8"), ("receptors", "f4"),
                       ("row", "i4")])


cdef inline Cell* cells_of(arr) except NULL:
    """The Cell array in `arr` (a byte buffer from _grown_cells), 64-byte aligned."""
    cdef uint8_t[::1] raw = arr
    return <Cell*>(&raw[0] + (-<uintptr_t>&raw[0]) % 64)


def _grown_cells(arr, Py_ssize_t size):
    """A byte buffer holding `size` Cells from a 64-byte boundary (see _grown)."""
    return _grown(arr, size * sizeof(Cell) + 64, np.uint8)


def _cell_view(arr, Py_ssize_t size):
    """The first `size` Cells of a _grown_cells buffer as a structured numpy array."""
    if size == 0:
        return np.empty(0, CELL_DTYPE)
    cdef Py_ssize_t skip = <Py_ssize_t>(<uintptr_t>cells_of(arr) - <uintptr_t>arr.ctypes.data)
    return arr[skip:skip + size * sizeof(Cell)].view(CELL_DTYPE)


def _grown(arr, Py_ssize_t size, dtype):
    """arr if it holds at least `size` items, else a new empty array: of that size the
    first time, with a quarter more when it has to grow again."""
    if arr is None:
        return np.empty(max(size, 16), dtype=dtype)
    if arr.shape[0] >= size:
        return arr
    return np.empty(size + size // 4, dtype=dtype)


cdef class ContactGrid:
    """The grid of one step and the buffers behind it, reused from step to step.

    After `build_grid`, bin b of the concatenated grids holds the T cells
    t_start[b]..t_start[b+1]-1 of t_cells and the targets g_start[b]..g_start[b+1]-1 of
    g_cells (within a bin, in row order). A binned cell is one 32-byte record (x, y, id,
    receptors, row), so that writing it in bin order touches one cache line, not five.
    """
    cdef public object nx, ny, offset, width, height, x_bins_per_um, y_bins_per_um
    cdef public Py_ssize_t n_t, n_g, n_bins
    cdef object _row_code, _t_hist, _g_hist, _t_start, _g_start
    cdef object _t_cells, _g_cells
    cdef object _choice, _key, _winner, _out

    def __init__(self):
        self.n_t = self.n_g = self.n_bins = 0

    @property
    def t_start(self):
        return self._t_start[:self.n_bins + 1]

    @property
    def g_start(self):
        return self._g_start[:self.n_bins + 1]

    @property
    def t_cells(self):
        """The binned T cells in bin order (a structured view: x, y, id, receptors, row)."""
        return _cell_view(self._t_cells, self.n_t)

    @property
    def g_cells(self):
        """The binned targets in bin order."""
        return _cell_view(self._g_cells, self.n_g)


def build_grid(ContactGrid grid, const uint8_t[::1] pairs, const double[::1] x,
               const double[::1] y, const int8_t[::1] kind, const int8_t[::1] comp,
               const uint8_t[::1] alive, const int32_t[::1] partner, const int64_t[::1] ids,
               const float[::1] cd19, const float[::1] cd3, const int64_t[::1] nx,
               const int64_t[::1] ny, const int64_t[::1] offset, const double[::1] width,
               const double[::1] height, int threads=1):
    """Counting sort of the free live T cells and CD19+ targets of every compartment with
    pairs[c] != 0 into `grid` (nx[c] x ny[c] bins starting at offset[c]).

    Returns (t_cells, targets): the free live T cells and CD19+ targets per compartment,
    in every compartment (as count_free counts them).
    """
    cdef Py_ssize_t n = x.shape[0], n_comps = nx.shape[0], nb = offset[n_comps]
    cdef Py_ssize_t chunks = max(1, threads), ch
    grid.nx, grid.ny, grid.offset = np.array(nx), np.array(ny), np.array(offset)
    grid.width, grid.height = np.array(width), np.array(height)
    grid.x_bins_per_um = grid.nx / grid.width   # one rounding, the same for every use
    grid.y_bins_per_um = grid.ny / grid.height
    cdef double[::1] x_per_um = grid.x_bins_per_um, y_per_um = grid.y_bins_per_um
    grid._row_code = _grown(grid._row_code, n, np.int32)
    grid.n_bins = nb
    grid._t_hist = _grown(grid._t_hist, chunks * nb, np.int32)
    grid._g_hist = _grown(grid._g_hist, chunks * nb, np.int32)
    grid._t_start = _grown(grid._t_start, nb + 1, np.int32)
    grid._g_start = _grown(grid._g_start, nb + 1, np.int32)
    counts_arr = np.zeros((chunks, n_comps, 2), dtype=np.int64)
    cdef int32_t[::1] code = grid._row_code
    cdef int32_t[::1] t_hist = grid._t_hist, g_hist = grid._g_hist
    cdef int64_t[:, :, ::1] counts = counts_arr
    cdef Rows r
    with nogil:
        memset(&t_hist[0], 0, chunks * nb * sizeof(int32_t))
        memset(&g_hist[0], 0, chunks * nb * sizeof(int32_t))
    if n:
        r = Rows(&pairs[0], &x[0], &y[0], &kind[0], &comp[0], &alive[0], &partner[0],
                 &cd19[0], &nx[0], &ny[0], &offset[0], &x_per_um[0], &y_per_um[0], &code[0])
        for ch in prange(chunks, nogil=True, num_threads=chunks, schedule="static",
                         chunksize=1):
            _classify(&r, ch * n // chunks, (ch + 1) * n // chunks, &t_hist[ch * nb],
                      &g_hist[ch * nb], &counts[ch, 0, 0])
    grid.n_t = _prefix(t_hist, grid._t_start, chunks, nb, threads)
    grid.n_g = _prefix(g_hist, grid._g_start, chunks, nb, threads)
    _reserve(grid)
    cdef Cell* t_cells = cells_of(grid._t_cells)
    cdef Cell* g_cells = cells_of(grid._g_cells)
    cdef Py_ssize_t i, b, pos, lo, hi
    for ch in prange(chunks, nogil=True, num_threads=chunks, schedule="static", chunksize=1):
        lo = ch * n // chunks
        hi = (ch + 1) * n // chunks
        for i in range(lo, hi):
            if code[i] < 0:
                continue
            b = code[i] >> 1
            if code[i] & 1:
                pos = g_hist[ch * nb + b]
                g_hist[ch * nb + b] = <int32_t>(pos + 1)
                g_cells[pos] = Cell(x[i], y[i], ids[i], cd19[i], <int32_t>i)
            else:
                pos = t_hist[ch * nb + b]
                t_hist[ch * nb + b] = <int32_t>(pos + 1)
                t_cells[pos] = Cell(x[i], y[i], ids[i], cd3[i], <int32_t>i)
    total = counts_arr.sum(axis=0)
    return total[:, SIDE_T_CELL].copy(), total[:, SIDE_TARGET].copy()


cdef struct Rows:
    # the population columns and per-compartment grid shapes build_grid reads
    const uint8_t* pairs
    const double* x
    const double* y
    const int8_t* kind
    const int8_t* comp
    const uint8_t* alive
    const int32_t* partner
    const float* cd19
    const int64_t* nx
    const int64_t* ny
    const int64_t* offset
    const double* x_bins_per_um
    const double* y_bins_per_um
    int32_t* code


cdef void _classify(const Rows* r, Py_ssize_t lo, Py_ssize_t hi, int32_t* t_hist,
                    int32_t* g_hist, int64_t* counts) noexcept nogil:
    """Rows lo..hi-1: code = 2 bin + side (or NOT_BINNED), counts per bin; and the free
    cells per compartment, binned or not."""
    cdef Py_ssize_t i, b
    cdef int c, side
    for i in range(lo, hi):
        r.code[i] = NOT_BINNED
        c = r.comp[i]
        if not r.alive[i] or r.partner[i] >= 0:
            continue
        if is_t_cell(r.kind[i]):
            side = SIDE_T_CELL
        elif is_target(r.kind[i]) and r.cd19[i] > 0.0:
            side = SIDE_TARGET
        else:
            continue
        counts[2 * c + side] += 1
        if not r.pairs[c]:
            continue
        b = r.offset[c] + bin_index(bin_coord(r.y[i], r.y_bins_per_um[c]), r.ny[c]) * r.nx[c] \
            + bin_index(bin_coord(r.x[i], r.x_bins_per_um[c]), r.nx[c])
        r.code[i] = <int32_t>(2 * b + side)
        if side == SIDE_TARGET:
            g_hist[b] += 1
        else:
            t_hist[b] += 1


cdef Py_ssize_t _prefix(int32_t[::1] hist, start_arr, Py_ssize_t chunks, Py_ssize_t nb,
                        int threads):
    """Turn per-chunk bin counts into write cursors (bin-major, chunks in row order) and
    fill start[b], the first slot of bin b. Returns the total.

    In parallel over `threads` contiguous ranges of bins: each range's total, then each
    range's cursors from the totals of the ranges before it.
    """
    cdef int32_t[::1] start = start_arr
    cdef Py_ssize_t parts = max(1, threads), part, b, ch
    base_arr = np.zeros(parts + 1, dtype=np.int64)
    cdef int64_t[::1] base = base_arr
    cdef int32_t run, v
    for part in prange(parts, nogil=True, num_threads=parts, schedule="static", chunksize=1):
        run = 0
        for b in range(part * nb // parts, (part + 1) * nb // parts):
            for ch in range(chunks):
                run = run + hist[ch * nb + b]
        base[part + 1] = run
    for part in range(parts):
        base[part + 1] += base[part]
    for part in prange(parts, nogil=True, num_threads=parts, schedule="static", chunksize=1):
        run = <int32_t>base[part]
        for b in range(part * nb // parts, (part + 1) * nb // parts):
            start[b] = run
            for ch in range(chunks):
                v = hist[ch * nb + b]
                hist[ch * nb + b] = run
                run = run + v
    start[nb] = <int32_t>base[parts]
    return base[parts]


cdef void _reserve(ContactGrid grid):
    """Bin-ordered buffers large enough for this step's binned cells."""
    grid._t_cells = _grown_cells(grid._t_cells, grid.n_t)
    grid._choice = _grown(grid._choice, grid.n_t, np.int32)
    grid._key = _grown(grid._key, grid.n_t, np.float64)
    grid._out = _grown(grid._out, grid.n_t, np.int64)
    grid._g_cells = _grown_cells(grid._g_cells, grid.n_g)
    grid._winner = _grown(grid._winner, grid.n_g, np.int32)


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


cdef inline double poisson_term(double mean, int k) noexcept nogil:
    """e^-B B^k / k!, formed in log space (no underflow of e^-B for large means)."""
    return exp(-mean + k * log(mean) - lgamma(k + 1.0))


cdef inline double upper_tail(double term, double mean, int k) noexcept nogil:
    """The Poisson terms from k upwards, summed until they no longer count, given the k-th."""
    cdef double total = 0.0
    while term > 1e-18 * total or total == 0.0:
        total += term
        k += 1
        term *= mean / k
        if term == 0.0:
            break
    return total


cdef double trigger_probability_large(double mean_bridges, int needed) noexcept nogil:
    """trigger_probability for means above 700, where e^-B is denormal or zero: the sum
    starts from the term next to `needed` (formed in log space) and runs away from it."""
    cdef double term, total = 0.0
    cdef int k
    if mean_bridges < needed:
        return upper_tail(poisson_term(mean_bridges, needed), mean_bridges, needed)
    if needed <= 0:
        return 1.0
    k = needed - 1                      # lower terms, downwards from needed - 1
    term = poisson_term(mean_bridges, k)
    while k >= 0 and (term > 1e-18 * total or total == 0.0):
        total += term
        term *= k / mean_bridges
        k -= 1
    return 1.0 - total if total < 1.0 else 0.0


cdef inline double trigger_probability(double mean_bridges, int needed) noexcept nogil:
    """P(N >= needed) for N ~ Poisson(mean_bridges): the contact triggers a synapse.

    Below the mean the upper tail is summed directly (accurate for tiny means); above it,
    one minus the lower terms. Means above 700 go to trigger_probability_large.
    """
    cdef double term = exp(-mean_bridges), total = 0.0
    cdef int k
    if mean_bridges <= 0.0:
        return 0.0 if needed > 0 else 1.0
    if mean_bridges > 700.0:
        return trigger_probability_large(mean_bridges, needed)
    if mean_bridges < needed:
        for k in range(needed):
            term *= mean_bridges / (k + 1)
        return upper_tail(term, mean_bridges, needed)
    for k in range(needed):
        total += term
        term *= mean_bridges / (k + 1)
    return 1.0 - total if total < 1.0 else 0.0


def synapse_probability(double mean_bridges, int needed):
    """Probability that a contact minute with this many expected bridges triggers (tests)."""
    return trigger_probability(mean_bridges, needed)


cdef struct Scan:
    # one compartment's grid and the bin-ordered arrays, as raw pointers
    const int32_t* t_start
    const int32_t* g_start
    const Cell* t
    const Cell* g
    int32_t* choice
    double* key
    Py_ssize_t offset
    Py_ssize_t nx
    Py_ssize_t ny
    double width
    double height
    double x_bins_per_um
    double y_bins_per_um
    bint wide_x     # bins at least two radii wide along x: scan 2 columns, not 3
    bint wide_y
    double occ19
    double occ3
    double radius2
    double contact_fraction
    double area_um2
    double k2d19
    double k2d3
    const int8_t* subset
    const int32_t* needed_by_subset
    uint64_t bridge_key


def form_synapses(ContactGrid grid, int32_t[::1] partner, const double[::1] occ19,
                  const double[::1] occ3, double radius_um, double contact_fraction,
                  double area_um2, double k2d19, double k2d3, const int8_t[::1] subset,
                  const int32_t[::1] needed_by_subset, uint64_t seed, uint64_t step,
                  int threads=1):
    """Pair the binned T cells with touching binned targets; returns the new synapses'
    T rows (in bin order).

    The probability that a contact minute becomes a synapse is P(N >= m), N ~ Poisson(B),
    B the expected number of drug bridges in the contact (docs/model.md) and
    m = needed_by_subset[subset[T row]] the bridges the T cell's subset needs. subset must
    hold a valid code for every binned T cell. partner is updated in place for both cells
    of every new synapse.
    """
    cdef Scan s
    cdef Py_ssize_t c, b, lo, hi
    cdef int64_t[::1] nx = grid.nx, ny = grid.ny, offset = grid.offset
    cdef double[::1] width = grid.width, height = grid.height
    cdef double[::1] x_per_um = grid.x_bins_per_um, y_per_um = grid.y_bins_per_um
    if grid.n_t == 0 or grid.n_g == 0:
        return np.empty(0, dtype=np.int64)
    _scan_arrays(grid, &s)
    s.radius2 = radius_um * radius_um
    s.contact_fraction = contact_fraction
    s.area_um2 = area_um2
    s.k2d19 = k2d19
    s.k2d3 = k2d3
    if grid.n_t and subset.shape[0] < partner.shape[0]:
        raise ValueError("subset must have one entry per row")
    s.subset = &subset[0]
    s.needed_by_subset = &needed_by_subset[0]
    s.bridge_key = stream_key(seed, step, PURPOSE_BRIDGE)
    for c in range(nx.shape[0]):
        lo, hi = offset[c], offset[c + 1]
        if s.t_start[hi] == s.t_start[lo] or s.g_start[hi] == s.g_start[lo]:
            for b in range(s.t_start[lo], s.t_start[hi]):
                s.choice[b] = -1  # nothing to pair here
            continue
        s.offset, s.nx, s.ny = lo, nx[c], ny[c]
        s.width, s.height = width[c], height[c]
        s.x_bins_per_um, s.y_bins_per_um = x_per_um[c], y_per_um[c]
        s.wide_x = width[c] / nx[c] >= 2.0 * radius_um * (1.0 + WIDE_MARGIN)
        s.wide_y = height[c] / ny[c] >= 2.0 * radius_um * (1.0 + WIDE_MARGIN)
        s.occ19, s.occ3 = occ19[c], occ3[c]
        for b in prange(lo, hi, nogil=True, num_threads=max(1, threads), schedule="dynamic",
                        chunksize=512):
            _scan_bin(&s, b)
    return _resolve(grid, partner)


cdef void _scan_arrays(ContactGrid grid, Scan* s):
    cdef int32_t[::1] t_start = grid._t_start, g_start = grid._g_start
    cdef int32_t[::1] choice = grid._choice
    cdef double[::1] key = grid._key
    s.t_start, s.g_start = &t_start[0], &g_start[0]
    s.t, s.g = cells_of(grid._t_cells), cells_of(grid._g_cells)
    s.choice, s.key = &choice[0], &key[0]


cdef inline void axis_range(double coord, Py_ssize_t b, Py_ssize_t n, bint wide,
                            Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Neighbour offsets lo..hi along one axis for a cell at `coord` (bin widths) in bin b."""
    if n == 1:
        lo[0] = 0
        hi[0] = 0
    elif wide:
        lo[0] = -1 if coord - b < 0.5 else 0
        hi[0] = lo[0] + 1
    else:
        lo[0] = -1 if n >= 3 else 0
        hi[0] = 1


cdef inline Py_ssize_t wrap_bin(Py_ssize_t b, Py_ssize_t n) noexcept nogil:
    """A neighbour's bin index -1..n folded into 0..n-1 (periodic; no integer division)."""
    if b < 0:
        return b + n
    if b >= n:
        return b - n
    return b


cdef void _scan_bin(const Scan* s, Py_ssize_t b) noexcept nogil:
    """Every T cell of bin b picks its best touching target: choice/key of its slot."""
    if s.t_start[b] == s.t_start[b + 1]:
        return
    cdef Py_ssize_t rel = b - s.offset, by = rel // s.nx, bx = rel - by * s.nx
    cdef Py_ssize_t k, m, ox, oy, x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0, cx, cy, nb
    cdef Py_ssize_t best
    cdef int needed
    cdef double best_u, u, dx, dy, half_w = 0.5 * s.width, half_h = 0.5 * s.height
    for k in range(s.t_start[b], s.t_start[b + 1]):
        needed = s.needed_by_subset[s.subset[s.t[k].row]]
        axis_range(bin_coord(s.t[k].x, s.x_bins_per_um), bx, s.nx, s.wide_x, &x_lo, &x_hi)
        axis_range(bin_coord(s.t[k].y, s.y_bins_per_um), by, s.ny, s.wide_y, &y_lo, &y_hi)
        best = -1
        best_u = 2.0
        for oy in range(y_lo, y_hi + 1):
            cy = wrap_bin(by + oy, s.ny)
            for ox in range(x_lo, x_hi + 1):
                cx = wrap_bin(bx + ox, s.nx)
                nb = s.offset + cy * s.nx + cx
                for m in range(s.g_start[nb], s.g_start[nb + 1]):
                    dx = s.g[m].x - s.t[k].x
                    if dx > half_w:
                        dx = dx - s.width
                    elif dx < -half_w:
                        dx = dx + s.width
                    dy = s.g[m].y - s.t[k].y
                    if dy > half_h:
                        dy = dy - s.height
                    elif dy < -half_h:
                        dy = dy + s.height
                    if dx * dx + dy * dy > s.radius2:
                        continue
                    u = keyed_uniform(s.bridge_key, <uint64_t>s.t[k].id, <uint64_t>s.g[m].id)
                    if u > best_u or (u == best_u and s.g[m].id > s.g[best].id):
                        continue  # cannot beat the current pick, whatever its probability
                    if u < trigger_probability(
                            bridges(s.g[m].receptors, s.t[k].receptors, s.occ19, s.occ3, s.contact_fraction,
                                    s.area_um2, s.k2d19, s.k2d3), needed):
                        best = m
                        best_u = u
        s.choice[k] = <int32_t>best
        s.key[k] = best_u


cdef _resolve(ContactGrid grid, int32_t[::1] partner):
    """Give each claimed target to its claim with the smallest (draw, T-cell id); link the
    pairs in `partner` and return their T rows."""
    cdef int32_t[::1] choice = grid._choice, winner = grid._winner
    cdef const Cell* t = cells_of(grid._t_cells)
    cdef const Cell* g = cells_of(grid._g_cells)
    cdef double[::1] key = grid._key
    cdef int64_t[::1] out = grid._out
    cdef Py_ssize_t k, m, w, made = 0, n_t = grid.n_t
    with nogil:
        for k in range(n_t):
            m = choice[k]
            if m >= 0:
                winner[m] = -1
        for k in range(n_t):
            m = choice[k]
            if m < 0:
                continue
            w = winner[m]
            if w < 0 or key[k] < key[w] or (key[k] == key[w] and t[k].id < t[w].id):
                winner[m] = <int32_t>k
        for k in range(n_t):
            m = choice[k]
            if m >= 0 and winner[m] == k:
                partner[t[k].row] = g[m].row
                partner[g[m].row] = t[k].row
                out[made] = t[k].row
                made += 1
    return grid._out[:made].copy()
