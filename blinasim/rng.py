"""Counter-based random streams keyed by (seed, step, purpose, cell id, extra).

Every random number in blinasim is a pure function of those keys (splitmix64-style
hashing, implemented in ext/counter_rng.pxi). Nothing carries generator state, so results
do not depend on the order cells are visited, on the thread count, or on where a run was
checkpointed. This module holds the purpose registry, vectorised helpers built on the
compiled kernel, and a slow plain-Python oracle used by the tests.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

from blinasim import _random

MASK64 = (1 << 64) - 1


class Purpose(IntEnum):
    """What a draw is for; TURN, BRIDGE and HIT are used inside kernels (counter_rng.pxi)."""
    TURN = 1
    BRIDGE = 3
    HIT = 4
    INIT_X = 10
    INIT_Y = 11
    INIT_CD19 = 12
    INIT_CD3 = 13
    INIT_ROLE = 14
    INIT_SUBSET = 15
    INIT_GRANULES = 16
    PROLIFERATE = 20
    DAUGHTER_ANGLE = 21
    DIE = 22
    MIGRATE = 23
    ARRIVE_X = 24
    ARRIVE_Y = 25
    PRODUCE = 26
    LINEAGE_SWITCH = 27
    ARMING = 28
    DIVISION_TIME = 29
    DESTINY = 30
    RESOLVE = 31
    SPLIT_X = 32
    SPLIT_Y = 33
    DISCRETISE = 34
    THIN = 35
    ASSAY_MORPHOLOGY = 36
    ASSAY_FLOW = 37
    ASSAY_NGS = 38
    INIT_MYELOID = 39
    MYELOID_CONTACT = 40
    INIT_ENDOTHELIUM = 41
    ENGAGED_SHARE = 42


def uniforms(seed: int, ids: np.ndarray, step: int, purpose: Purpose, extra: int = 0) -> np.ndarray:
    """One uniform draw on [0, 1) per cell id."""
    return _random.uniforms(seed, np.ascontiguousarray(ids, dtype=np.int64), step, int(purpose), extra)


def normals(seed: int, ids: np.ndarray, step: int, purpose: Purpose) -> np.ndarray:
    """Standard normal draws per cell id (Box-Muller on two keyed uniforms)."""
    u1 = uniforms(seed, ids, step, purpose, 0)
    u2 = uniforms(seed, ids, step, purpose, 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


POISSON_CHUNK = 100.0
"""Means above this are split into chunks (exp(-mean) would underflow for large means)."""


def poisson(seed: int, key: int, step: int, purpose: Purpose, mean: float) -> int:
    """A Poisson count by inversion of keyed uniforms, summed over chunks of the mean."""
    chunks = max(1, int(np.ceil(mean / POISSON_CHUNK)))
    u = np.array([float(uniforms(seed, np.array([key]), step, purpose, extra)[0]) for extra in range(chunks)])
    return sum(_poisson_by_inversion(float(x), mean / chunks) for x in u)


def _poisson_by_inversion(u: float, mean: float) -> int:
    k, p = 0, float(np.exp(-mean))
    cumulative = p
    while u > cumulative and p > 0.0:
        k += 1
        p *= mean / k
        cumulative += p
    return k


# ---------------------------------------------------------------- plain-Python oracle

def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def oracle_bits(seed: int, cell_id: int, step: int, purpose: int, extra: int = 0) -> int:
    """The 64-bit word the kernels compute, in plain Python integers."""
    key = _mix64((seed + 0x9E3779B97F4A7C15) & MASK64)
    key = _mix64((key + step * 0xAEF17502108EF2D9) & MASK64)
    key = _mix64((key + purpose * 0xF1357AEA2E62A9C5) & MASK64)
    h = _mix64((key + cell_id * 0xD1B54A32D192ED03) & MASK64)
    return _mix64((h + extra * 0x9FB21C651E98DF25) & MASK64)


def oracle_uniform(seed: int, cell_id: int, step: int, purpose: int, extra: int = 0) -> float:
    return (oracle_bits(seed, cell_id, step, purpose, extra) >> 11) * (1.0 / 9007199254740992.0)
