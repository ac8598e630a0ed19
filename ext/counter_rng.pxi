# Counter-based random numbers shared by every kernel (textually included).
#
# A draw is a pure function of (seed, step, purpose, cell id, extra): the splitmix64
# finaliser applied after folding in each key with its own odd multiplier. The first three
# keys are folded once per step into a `stream_key`; each cell then costs two rounds. No
# state is carried between draws, so results do not depend on iteration order or thread
# count. blinasim/rng.py holds the plain-Python oracle of the same arithmetic.
from libc.stdint cimport uint64_t

# Purposes of draws made inside kernels; must match blinasim.rng.Purpose.
cdef enum:
    PURPOSE_TURN = 1
    PURPOSE_BRIDGE = 3
    PURPOSE_HIT = 4

cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * <uint64_t>0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94d049bb133111ebULL
    return z ^ (z >> 31)

cdef inline uint64_t stream_key(uint64_t seed, uint64_t step, uint64_t purpose) noexcept nogil:
    """The per-(seed, step, purpose) prefix of every draw."""
    cdef uint64_t h = mix64(seed + <uint64_t>0x9e3779b97f4a7c15ULL)
    h = mix64(h + step * <uint64_t>0xaef17502108ef2d9ULL)
    return mix64(h + purpose * <uint64_t>0xf1357aea2e62a9c5ULL)

cdef inline uint64_t keyed_bits(uint64_t key, uint64_t cell_id, uint64_t extra) noexcept nogil:
    return mix64(mix64(key + cell_id * <uint64_t>0xd1b54a32d192ed03ULL)
                 + extra * <uint64_t>0x9fb21c651e98df25ULL)

cdef inline double keyed_uniform(uint64_t key, uint64_t cell_id, uint64_t extra) noexcept nogil:
    """Uniform on [0, 1) with 53 random bits."""
    return <double>(keyed_bits(key, cell_id, extra) >> 11) * (1.0 / 9007199254740992.0)
