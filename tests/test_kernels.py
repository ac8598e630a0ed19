"""Differential and hand-computed tests of the Cython kernels (ext/*.pyx) against the
plain-Python oracles in tests/oracles.py and blinasim.rng."""
from __future__ import annotations

import inspect
import itertools
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from blinasim import _contacts, _lysis, _migration, _motility, _population, _random, rng
from blinasim.rng import Purpose, oracle_bits, oracle_uniform

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/oracles.py under any import mode
from oracles import (NO_PAIRING, oracle_bridges, oracle_deliver_hits, oracle_form_synapses,
                     oracle_move, oracle_trigger, oracle_wrap)

U64 = st.integers(0, 2**64 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# =========================================================================== RNG

@FAST
@given(seed=U64, cell_id=U64, step=U64, purpose=U64, extra=U64)
def test_kernel_bits_equal_the_python_oracle(seed, cell_id, step, purpose, extra):
    assert _random.bits(seed, cell_id, step, purpose, extra) == oracle_bits(seed, cell_id, step, purpose, extra)


def test_bits_of_known_keys_are_pinned():
    # splitmix64 of a zero key is a fixed word: pin one so that both kernel and oracle
    # cannot drift together unnoticed (value computed once from the documented fold).
    z = (0 + 0x9E3779B97F4A7C15) & rng.MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & rng.MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & rng.MASK64
    z ^= z >> 31
    assert z == 0xE220A8397B1DCDAF  # the first splitmix64 output of seed 0 (published value)
    assert rng._mix64(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    assert _random.bits(0, 0, 0, 0, 0) == oracle_bits(0, 0, 0, 0, 0)


@FAST
@given(seed=U64, step=U64, purpose=st.sampled_from(list(Purpose)), extra=U64,
       ids=st.lists(I64, min_size=1, max_size=40))
def test_uniforms_equal_oracle_elementwise(seed, step, purpose, extra, ids):
    got = rng.uniforms(seed, np.array(ids, dtype=np.int64), step, purpose, extra)
    want = [oracle_uniform(seed, i & rng.MASK64, step, int(purpose), extra) for i in ids]
    assert got.dtype == np.float64
    assert got.tolist() == want
    assert np.all((got >= 0.0) & (got < 1.0))


def test_uniform_of_all_ones_word_is_below_one():
    # the largest 53-bit value maps strictly below 1
    assert ((2**64 - 1) >> 11) * (1.0 / 9007199254740992.0) < 1.0


def test_uniforms_are_uniform_on_100k_draws():
    u = rng.uniforms(12345, np.arange(100_000), 7, Purpose.DIE)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    counts = np.bincount((u * 100).astype(int), minlength=100)
    assert stats.chisquare(counts).pvalue > 1e-3
    # successive ids are not correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.015
    # the low bits (heading index in the motility kernel) are uniform too
    low = np.array([_random.bits(3, i, 5, Purpose.TURN) & 2047 for i in range(20_000)])
    assert stats.chisquare(np.bincount(low // 64, minlength=32)).pvalue > 1e-3


def test_normals_and_poisson_have_the_right_moments():
    z = rng.normals(9, np.arange(100_000), 3, Purpose.INIT_CD19)
    assert abs(z.mean()) < 0.015 and abs(z.std() - 1.0) < 0.015
    counts = np.array([rng.poisson(9, k, 3, Purpose.PRODUCE, 2.5) for k in range(20_000)])
    assert abs(counts.mean() - 2.5) < 0.05 and abs(counts.var() - 2.5) < 0.1


def test_poisson_inverts_its_one_uniform():
    # hand check: with mean 1, P(0) = e^-1 = 0.3679, P(<=1) = 0.7358, P(<=2) = 0.9197
    for key in range(50):
        u = oracle_uniform(4, key, 2, int(Purpose.PRODUCE))
        expected = 0 if u <= 0.36787944 else 1 if u <= 0.73575888 else 2 if u <= 0.91969860 else None
        if expected is not None:
            assert rng.poisson(4, key, 2, Purpose.PRODUCE, 1.0) == expected
    assert rng.poisson(4, 0, 2, Purpose.PRODUCE, 0.0) == 0


@pytest.mark.parametrize("change", ["seed", "step", "purpose", "extra"])
def test_each_key_gives_a_different_stream(change):
    ids = np.arange(2000)
    base = dict(seed=1, step=10, purpose=Purpose.DIE, extra=0)
    other = dict(base)
    other[change] = {"seed": 2, "step": 11, "purpose": Purpose.PROLIFERATE, "extra": 1}[change]
    a = rng.uniforms(base["seed"], ids, base["step"], base["purpose"], base["extra"])
    b = rng.uniforms(other["seed"], ids, other["step"], other["purpose"], other["extra"])
    assert np.count_nonzero(a == b) == 0
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1


def test_ids_and_steps_are_not_interchangeable():
    # (id, step) = (1, 2) and (2, 1) must not give the same draw
    assert oracle_bits(5, 1, 2, 10) != oracle_bits(5, 2, 1, 10)
    assert _random.bits(5, 1, 2, 10) != _random.bits(5, 2, 1, 10)


@FAST
@given(data=st.data())
def test_a_draw_does_not_depend_on_the_other_ids(data):
    ids = np.array(data.draw(st.lists(I64, min_size=1, max_size=50, unique=True)), dtype=np.int64)
    full = rng.uniforms(77, ids, 3, Purpose.MIGRATE, 2)
    perm = np.array(data.draw(st.permutations(range(len(ids)))), dtype=np.int64)
    assert np.array_equal(rng.uniforms(77, ids[perm], 3, Purpose.MIGRATE, 2), full[perm])
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids))))
    assert np.array_equal(rng.uniforms(77, ids[keep], 3, Purpose.MIGRATE, 2), full[keep])
    # one id alone
    assert rng.uniforms(77, ids[:1], 3, Purpose.MIGRATE, 2)[0] == full[0]


def test_kernel_purposes_match_the_registry():
    # counter_rng.pxi hard-codes TURN = 1, BRIDGE = 3 and HIT = 4
    assert int(Purpose.TURN) == 1 and int(Purpose.BRIDGE) == 3 and int(Purpose.HIT) == 4
    assert len({int(p) for p in Purpose}) == len(Purpose)


# =========================================================================== motility

TABLE = _motility.heading_table()


def test_heading_table_is_unit_vectors_in_float32():
    hx, hy = (np.array(a) for a in TABLE)
    assert hx.shape == (2048,)
    assert np.array_equal(hx.astype(np.float32).astype(np.float64), hx)
    assert hx[0] == 1.0 and hy[0] == 0.0
    assert hx[512] == np.float32(math.cos(math.pi / 2)) and hy[512] == 1.0
    assert hx[1024] == -1.0
    np.testing.assert_allclose(hx**2 + hy**2, 1.0, atol=1e-6)
    np.testing.assert_allclose(np.arctan2(hy, hx) % (2 * np.pi),
                               2 * np.pi * np.arange(2048) / 2048, atol=1e-6)


def random_walkers(r: np.random.Generator, n: int, n_comps: int = 3):
    width = r.choice([12.0, 50.0, 333.3, 1000.0], n_comps)
    height = r.choice([12.0, 77.7, 1000.0], n_comps)
    kind = r.integers(0, 4, n).astype(np.int8)
    comp = r.integers(0, n_comps, n).astype(np.int8)
    step_um = r.choice([0.0, 0.5, 5.0, 10.0, 40.0], (n_comps, 4)).astype(np.float64)
    step_um[0, 0] = 10.0
    x = r.uniform(0, 1, n) * width[comp]
    y = r.uniform(0, 1, n) * height[comp]
    headed = r.random(n) < 0.5
    angle = r.uniform(0, 2 * np.pi, n)
    ux = np.where(headed, np.cos(angle), 0.0).astype(np.float32)
    uy = np.where(headed, np.sin(angle), 0.0).astype(np.float32)
    partner = np.where(r.random(n) < 0.2, r.integers(0, n, n), -1).astype(np.int32)
    alive = (r.random(n) < 0.9).astype(np.uint8)
    ids = (r.permutation(n) * 7 + 3).astype(np.int64)
    return dict(x=x, y=y, ux=ux, uy=uy, kind=kind, comp=comp, partner=partner, alive=alive,
                ids=ids, step_um=step_um, width=width, height=height)


def run_move(c, p_turn, seed, step, threads=1):
    x, y, ux, uy = c["x"].copy(), c["y"].copy(), c["ux"].copy(), c["uy"].copy()
    _motility.move(x, y, ux, uy, c["kind"], c["comp"], c["partner"], c["alive"], c["ids"],
                   c["step_um"], c["width"], c["height"], p_turn, seed, step, threads)
    return x, y, ux, uy


@pytest.mark.parametrize("case", range(6))
def test_move_equals_oracle_bit_for_bit_over_many_steps(case):
    r = np.random.default_rng(case)
    c = random_walkers(r, 300)
    p_turn = [0.0, 0.28, 1.0, 0.5, 0.05, 0.9][case]
    seed = int(r.integers(0, 2**63))
    for step in range(1, 6):
        got = run_move(c, p_turn, seed, step)
        want = oracle_move(c["x"], c["y"], c["ux"], c["uy"], c["kind"], c["comp"], c["partner"],
                           c["alive"], c["ids"], c["step_um"], c["width"], c["height"],
                           p_turn, seed, step, TABLE)
        for g, w, name in zip(got, want, ("x", "y", "ux", "uy")):
            assert g.dtype == w.dtype, name
            assert np.array_equal(g, w), f"{name} differs at step {step}"
        c["x"], c["y"], c["ux"], c["uy"] = got
    assert np.all((c["x"] >= 0) & (c["x"] < c["width"][c["comp"]]))
    assert np.all((c["y"] >= 0) & (c["y"] < c["height"][c["comp"]]))


def test_bound_dead_and_still_cells_do_not_move():
    r = np.random.default_rng(11)
    c = random_walkers(r, 400)
    x, y, ux, uy = run_move(c, 0.5, 3, 9)
    still = ((c["alive"] == 0) | (c["partner"] >= 0)
             | (c["step_um"][c["comp"], c["kind"]] <= 0.0))
    assert still.any() and (~still).any()
    assert np.array_equal(x[still], c["x"][still]) and np.array_equal(y[still], c["y"][still])
    assert np.array_equal(ux[still], c["ux"][still]) and np.array_equal(uy[still], c["uy"][still])
    moved = np.hypot(x - c["x"], y - c["y"])[~still]
    assert np.all(moved > 0)


def test_a_cell_without_heading_always_takes_one_and_moves_exactly_d():
    n = 200
    c = dict(x=np.full(n, 500.0), y=np.full(n, 500.0), ux=np.zeros(n, np.float32),
             uy=np.zeros(n, np.float32), kind=np.zeros(n, np.int8), comp=np.zeros(n, np.int8),
             partner=np.full(n, -1, np.int32), alive=np.ones(n, np.uint8),
             ids=np.arange(n, dtype=np.int64), step_um=np.array([[7.0, 0, 0, 0]]),
             width=np.array([1000.0]), height=np.array([1000.0]))
    x, y, ux, uy = run_move(c, 0.0, 1, 1)  # p_turn = 0: only missing headings are drawn
    assert np.all((ux != 0) | (uy != 0))
    np.testing.assert_allclose(np.hypot(x - 500.0, y - 500.0), 7.0, rtol=1e-6)
    # the heading index is the low 11 bits of the (seed, id, step, TURN) word
    h = [oracle_bits(1, i, 1, Purpose.TURN) & 2047 for i in range(n)]
    assert np.array_equal(ux, np.array([TABLE[0][k] for k in h], np.float32))
    # with p_turn = 0 and a heading, the next step keeps it: straight line
    c.update(x=x, y=y, ux=ux, uy=uy)
    x2, y2, ux2, uy2 = run_move(c, 0.0, 1, 2)
    assert np.array_equal(ux2, ux) and np.array_equal(uy2, uy)
    np.testing.assert_allclose(x2 - 500.0, 2 * (x - 500.0), rtol=1e-9, atol=1e-9)


def test_move_wraps_periodically_by_hand():
    c = dict(x=np.array([99.5, 0.25]), y=np.array([50.0, 50.0]),
             ux=np.array([1.0, -1.0], np.float32), uy=np.array([0.0, 0.0], np.float32),
             kind=np.zeros(2, np.int8), comp=np.zeros(2, np.int8),
             partner=np.full(2, -1, np.int32), alive=np.ones(2, np.uint8),
             ids=np.arange(2, dtype=np.int64), step_um=np.array([[1.0, 0, 0, 0]]),
             width=np.array([100.0]), height=np.array([100.0]))
    x, y, ux, uy = run_move(c, 0.0, 1, 1)
    assert x.tolist() == [0.5, 99.25] and y.tolist() == [50.0, 50.0]
    assert ux.tolist() == [1.0, -1.0]
    c["step_um"] = np.array([[250.0, 0, 0, 0]])  # several widths in one step
    x, _, _, _ = run_move(c, 0.0, 1, 1)
    assert x.tolist() == [49.5, 50.25]


@pytest.mark.parametrize("v,size,expected", [(0.0, 10.0, 0.0), (10.0, 10.0, 0.0),
                                              (-1e-18, 10.0, 0.0), (-2.5, 10.0, 7.5),
                                              (25.0, 10.0, 5.0), (9.999, 10.0, 9.999)])
def test_oracle_wrap_by_hand(v, size, expected):
    # -1e-18 + 10 rounds to exactly 10.0: must fold to 0, never to `size`
    assert oracle_wrap(v, size) == expected


def test_move_is_the_same_with_two_threads():
    c = random_walkers(np.random.default_rng(5), 5000)
    one = run_move(c, 0.3, 99, 4, threads=1)
    two = run_move(c, 0.3, 99, 4, threads=2)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_move_depends_on_seed_and_step():
    c = random_walkers(np.random.default_rng(2), 500)
    a = run_move(c, 0.5, 1, 1)[0]
    assert not np.array_equal(a, run_move(c, 0.5, 2, 1)[0])
    assert not np.array_equal(a, run_move(c, 0.5, 1, 2)[0])


# =========================================================================== contacts

RADIUS = 10.0
AREA = 150.0
K2D19 = 1.49e-9 * 6.02214076e23 * 1e-15 * 0.01
K2D3 = 2.6e-7 * 6.02214076e23 * 1e-15 * 0.01


def random_population(r: np.random.Generator, n: int, widths, heights, pre_bound=0.1,
                      dead=0.1, cd19_negative=0.1):
    n_comps = len(widths)
    width, height = np.array(widths, float), np.array(heights, float)
    kind = r.integers(0, 4, n).astype(np.int8)
    comp = r.integers(0, n_comps, n).astype(np.int8)
    x = r.random(n) * width[comp]
    y = r.random(n) * height[comp]
    is_target = kind >= 2
    cd19 = np.where(is_target, r.lognormal(np.log(22000), 0.5, n), 0.0).astype(np.float32)
    cd19[is_target & (r.random(n) < cd19_negative)] = 0.0
    cd3 = np.where(~is_target, r.lognormal(np.log(30000), 0.2, n), 0.0).astype(np.float32)
    alive = (r.random(n) >= dead).astype(np.uint8)
    partner = np.full(n, -1, np.int32)
    t_rows = r.permutation(np.flatnonzero(~is_target & (alive == 1)))
    g_rows = r.permutation(np.flatnonzero(is_target & (alive == 1)))
    k = int(pre_bound * min(len(t_rows), len(g_rows)))
    partner[t_rows[:k]] = g_rows[:k]
    partner[g_rows[:k]] = t_rows[:k]
    ids = np.sort(r.choice(10 * n, n, replace=False)).astype(np.int64)
    return dict(x=x, y=y, kind=kind, comp=comp, alive=alive, ids=ids, cd19=cd19, cd3=cd3,
                partner=partner, width=width, height=height)


GRID_SIZES = ["counted", "one_bin", "coarse", "finest"]
"""How a test sizes the grid (the synapses must not depend on it): for the free cells of
the larger side (as the model does), one bin per compartment, about 1/10 of that, or as
many bins as the radius allows."""


def pairs_of(pairs, n_comps: int) -> np.ndarray:
    """Which compartments pair, as the kernels take it: one uint8 each (a scalar is broadcast)."""
    return np.broadcast_to(np.asarray(pairs, dtype=np.uint8), (n_comps,)).copy()


def grid_for(p, sizing, radius=RADIUS):
    """(nx, ny, offset) of the grids of p's compartments for a GRID_SIZES entry."""
    free_t, free_g = _contacts.count_free(p["kind"], p["comp"], p["alive"], p["partner"], p["cd19"],
                                          len(p["width"]))
    binned = {"counted": np.maximum(free_t, free_g), "one_bin": np.zeros_like(free_t),
              "coarse": np.maximum(free_t, free_g) // 10,
              "finest": np.full_like(free_t, 10**12)}[sizing]
    shape = [_contacts.grid_shape(w, h, radius, b) for w, h, b in zip(p["width"], p["height"], binned)]
    nx = np.array([s[0] for s in shape], np.int64)
    ny = np.array([s[1] for s in shape], np.int64)
    return nx, ny, np.concatenate([[0], np.cumsum(nx * ny)]).astype(np.int64)


def build(p, pairs=1, threads=1, sizing="counted", radius=RADIUS, nx=None, ny=None, grid=None):
    """A ContactGrid of p, or `grid` rebuilt for p (and the per-compartment free counts
    build_grid returns)."""
    if nx is None:
        nx, ny, offset = grid_for(p, sizing, radius)
    else:
        nx, ny = np.asarray(nx, np.int64), np.asarray(ny, np.int64)
        offset = np.concatenate([[0], np.cumsum(nx * ny)]).astype(np.int64)
    grid = _contacts.ContactGrid() if grid is None else grid
    counts = _contacts.build_grid(grid, pairs_of(pairs, len(p["width"])), p["x"], p["y"],
                                  p["kind"], p["comp"], p["alive"], p["partner"], p["ids"],
                                  p["cd19"], p["cd3"], nx, ny, offset, p["width"], p["height"],
                                  threads)
    return grid, counts


def kernel_synapses(p, occ19, occ3, pairs=1, threads=1, needed=1, seed=1, step=1,
                    contact_fraction=0.2, radius=RADIUS, sizing="counted", grid=None):
    """The kernel's pairing; `needed` is one threshold for all, or one per subset (then
    p["subset"] gives each row's subset)."""
    grid, _ = build(p, pairs, threads, sizing, radius, grid=grid)
    partner = p["partner"].copy()
    subset = p.get("subset", np.zeros(len(partner), np.int8))
    by_subset = np.broadcast_to(np.asarray(needed, np.int32), (4,)).copy()
    t_rows = _contacts.form_synapses(grid, partner, np.asarray(occ19, float),
                                     np.asarray(occ3, float), radius, contact_fraction, AREA,
                                     K2D19, K2D3, subset, by_subset, seed, step, threads)
    return partner, np.sort(t_rows)


def oracle_synapses(p, occ19, occ3, needed=1, seed=1, step=1, contact_fraction=0.2, radius=RADIUS,
                    pairs=None):
    side = None if pairs is None else np.where(pairs_of(pairs, len(p["width"])) > 0, 0, NO_PAIRING)
    if np.ndim(needed):  # one threshold per subset: per row through p["subset"]
        needed = np.asarray(needed)[p["subset"]]
    return oracle_form_synapses(p["x"], p["y"], p["kind"], p["comp"], p["alive"], p["ids"],
                                p["cd19"], p["cd3"], p["partner"], p["width"], p["height"],
                                occ19, occ3, radius, contact_fraction, AREA, K2D19, K2D3,
                                needed, seed, step, side_by_comp=side)


PAIR_PATTERNS = ["all", "some_not"]


def pair_pattern(pattern: str, n_comps: int, r: np.random.Generator) -> np.ndarray:
    """Per-compartment pairing flags: all pair, or a random mix with at least one compartment
    that does not pair (and, given 2+ compartments, at least one that does)."""
    if pattern == "all":
        return pairs_of(1, n_comps)
    pairs = r.integers(0, 2, n_comps).astype(np.uint8)
    pairs[int(r.integers(0, n_comps))] = 0
    if n_comps > 1 and not pairs.any():
        pairs[0] = 1
    return pairs

CONTACT_CASES = {
    # name: (n cells, widths, heights, occ19, occ3, bridges needed)
    "one_big_high_drug": (400, [200.0], [200.0], [0.05], [5e-4], 1),
    "tiny_comps_high_drug": (300, [200.0, 15.0, 25.0, 35.0, 12.0], [150.0, 15.0, 25.0, 12.0, 31.0],
                             [0.05, 0.05, 0.02, 0.05, 0.1], [1e-3, 1e-3, 0.0, 1e-4, 0.0], 1),
    "low_drug": (500, [150.0, 60.0], [150.0, 60.0], [2e-5, 1e-4], [2e-7, 1e-6], 1),
    "needs_three_bridges": (400, [120.0, 40.0, 22.0], [90.0, 40.0, 22.0], [2e-4, 1e-3, 5e-4],
                            [1e-6, 5e-6, 0.0], 3),
    "drug_in_one_comp_only": (300, [100.0, 100.0], [100.0, 100.0], [0.0, 0.05], [0.0, 1e-3], 1),
    "crowded_1x1_and_2x2": (200, [19.0, 21.0], [19.0, 21.0], [0.05, 0.05], [1e-3, 1e-3], 1),
}


@pytest.mark.parametrize("threads", [1, 2])
def test_form_synapses_with_a_threshold_per_subset_equals_the_oracle(threads):
    # each T cell needs the bridges of its subset: 1, 3, 6 or 12
    needed = np.array([12, 6, 3, 1], np.int32)
    made_by_subset = np.zeros(4, int)
    for rep in range(4):
        r = np.random.default_rng([rep, 77])
        p = random_population(r, 500, [150.0, 60.0], [150.0, 60.0])
        p["subset"] = r.integers(0, 4, 500).astype(np.int8)
        seed, step = int(r.integers(0, 2**63)), int(r.integers(0, 10**6))
        occ19, occ3 = [2e-3, 5e-3], [1e-5, 0.0]
        want_partner, want_t = oracle_synapses(p, occ19, occ3, needed, seed, step)
        got_partner, got_t = kernel_synapses(p, occ19, occ3, 1, threads, needed, seed, step)
        assert np.array_equal(got_t, want_t) and np.array_equal(got_partner, want_partner)
        made_by_subset += np.bincount(p["subset"][want_t], minlength=4)
    # the rule is exercised: every subset pairs, the lowest threshold most
    assert np.all(made_by_subset > 0) and made_by_subset[3] > made_by_subset[0]


@pytest.mark.parametrize("pattern", PAIR_PATTERNS)
@pytest.mark.parametrize("sizing", GRID_SIZES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(CONTACT_CASES))
def test_form_synapses_equals_brute_force_oracle(name, threads, sizing, pattern):
    n, widths, heights, occ19, occ3, needed = CONTACT_CASES[name]
    made = 0
    for rep in range(3):
        r = np.random.default_rng([rep, len(name), PAIR_PATTERNS.index(pattern)])
        p = random_population(r, n, widths, heights)
        pairs = pair_pattern(pattern, len(widths), r)
        seed, step = int(r.integers(0, 2**63)), int(r.integers(0, 10**6))
        want_partner, want_t = oracle_synapses(p, occ19, occ3, needed, seed, step, pairs=pairs)
        got_partner, got_t = kernel_synapses(p, occ19, occ3, pairs, threads, needed, seed, step,
                                              sizing=sizing)
        assert np.array_equal(got_t, want_t)
        assert np.array_equal(got_partner, want_partner)
        # nothing changes in a compartment that does not pair
        skipped = np.isin(p["comp"], np.flatnonzero(pairs == 0))
        assert np.array_equal(got_partner[skipped], p["partner"][skipped])
        made += len(want_t)
    # the case must exercise the rule: some synapses form (except where drug is too low, or
    # the only compartment does not pair)
    if name != "low_drug" and not (pattern == "some_not" and len(widths) == 1):
        assert made > 0


@pytest.mark.parametrize("threads", [1, 2])
def test_every_choice_of_pairing_compartments_gives_the_same_synapses(threads):
    """All 2^3 choices of pairing compartments of a 3-compartment population: the synapses in
    a pairing compartment do not depend on which others pair, and one that does not pair
    forms none."""
    widths, heights = [120.0, 40.0, 25.0], [100.0, 40.0, 25.0]
    p = random_population(np.random.default_rng(77), 600, widths, heights)
    occ19, occ3 = [0.05, 0.01, 0.05], [1e-3, 1e-4, 1e-3]
    every = oracle_synapses(p, occ19, occ3, 1, 3, 4)[0]   # every compartment pairs
    per_comp = [np.isin(np.arange(len(p["x"])), np.flatnonzero(p["comp"] == c)) for c in range(3)]
    for c in range(3):
        assert np.any(every[per_comp[c]] != p["partner"][per_comp[c]])   # synapses form in each
    for pairs in itertools.product([0, 1], repeat=3):
        pairs = np.array(pairs, np.uint8)
        got, _ = kernel_synapses(p, occ19, occ3, pairs, threads, 1, 3, 4)
        for c in range(3):
            want = every if pairs[c] else p["partner"]
            assert np.array_equal(got[per_comp[c]], want[per_comp[c]]), (pairs.tolist(), c)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_reused_grid_equals_the_oracle_step_after_step(threads):
    """One ContactGrid for a sequence of populations of changing size, some with
    compartments that have T cells but no targets (their buffers keep the earlier steps'
    contents): every step matches the oracle."""
    grid = _contacts.ContactGrid()
    widths, heights = [150.0, 60.0, 40.0], [120.0, 60.0, 40.0]
    occ19, occ3 = [0.05, 0.02, 0.05], [1e-3, 1e-4, 1e-3]
    for rep, n in enumerate([900, 300, 1200, 150, 700, 700]):
        r = np.random.default_rng([rep, 99])
        p = random_population(r, n, widths, heights)
        if rep % 2:  # no live targets in compartment 1, or no T cells in compartment 2
            p["alive"][(p["comp"] == 1) & (p["kind"] >= 2)] = 0
            p["alive"][(p["comp"] == 2) & (p["kind"] <= 1)] = 0
            p["partner"][p["alive"] == 0] = -1
            p["partner"][(p["partner"] >= 0) & (p["alive"][p["partner"]] == 0)] = -1
        want = oracle_synapses(p, occ19, occ3, 1, rep, rep)
        got = kernel_synapses(p, occ19, occ3, 1, threads, 1, rep, rep,
                              sizing=GRID_SIZES[rep % len(GRID_SIZES)], grid=grid)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), rep


def test_no_pairing_everywhere_forms_nothing():
    p = random_population(np.random.default_rng(5), 300, [60.0, 30.0], [60.0, 30.0])
    partner, t_rows = kernel_synapses(p, [0.5, 0.5], [0.5, 0.5], 0)
    assert len(t_rows) == 0 and np.array_equal(partner, p["partner"])
    grid, _ = build(p, 0)
    assert grid.n_t == grid.n_g == 0 and not grid.t_start.any() and not grid.g_start.any()


def test_contact_cases_have_conflicts_and_refusals():
    """The oracle comparison is only meaningful if the random cases contain contacts that
    fail their draw, T cells with several candidates and T cells that lose their pick to
    another T cell: check that each case family does."""
    total = dict(contacts=0, candidates=0, picks=0, synapses=0)
    for name, (n, widths, heights, occ19, occ3, needed) in CONTACT_CASES.items():
        p = random_population(np.random.default_rng([0, len(name)]), n, widths, heights)
        stats = {}
        _, t_rows = oracle_form_synapses(p["x"], p["y"], p["kind"], p["comp"], p["alive"],
                                         p["ids"], p["cd19"], p["cd3"], p["partner"],
                                         p["width"], p["height"], occ19, occ3, RADIUS, 0.2,
                                         AREA, K2D19, K2D3, needed, 1, 1, stats)
        for key in stats:
            total[key] += stats[key]
        total["synapses"] += len(t_rows)
        if name == "crowded_1x1_and_2x2":
            assert stats["picks"] > len(t_rows) and stats["candidates"] > stats["picks"]
        if name in ("low_drug", "needs_three_bridges"):
            assert stats["contacts"] > stats["candidates"]
    assert total["contacts"] > total["candidates"] > total["picks"] > total["synapses"] > 0


def exact_poisson_tail(mean: float, needed: int) -> Fraction:
    """sum_{k >= needed} mean^k / k! in exact rationals (truncated once the terms fall below
    1e-30 of the sum; they shrink geometrically for mean < needed): P(N >= needed) / e^-mean."""
    b = Fraction(mean)
    term, total = b ** needed / math.factorial(needed), Fraction(0)
    k = needed
    while True:
        total += term
        k += 1
        term = term * b / k
        if term < total * Fraction(1, 10**30):
            break
    return total


@pytest.mark.parametrize("mean,needed", [(m, k) for m in (1e-300, 1e-120, 1e-40, 1e-12, 1e-6, 1e-3, 0.05, 0.9, 2.5)
                                         for k in (1, 2, 3, 5, 12) if m < k])
def test_synapse_probability_is_accurate_for_tiny_means(mean, needed):
    got = _contacts.synapse_probability(mean, needed)
    series = exact_poisson_tail(mean, needed)  # e^-B is applied in floating point below
    want = float(series) * math.exp(-mean) if float(series) > 0 else 0.0
    if want == 0.0 or want < 1e-300:  # below the normal range of doubles
        assert got == pytest.approx(want, abs=1e-300)
        return
    assert got == pytest.approx(want, rel=1e-13)
    assert got == pytest.approx(stats.poisson.sf(needed - 1, mean), rel=1e-12)
    assert got == pytest.approx(oracle_trigger(mean, needed), rel=1e-13)


def test_synapse_probability_by_hand_for_tiny_means():
    # P(N >= 3) ~ B^3 / 6 for tiny B: 1 - (1 + B + B^2/2) e^-B cancels to 0 in doubles
    assert _contacts.synapse_probability(1e-6, 3) == pytest.approx(1e-18 / 6, rel=1e-5)
    assert _contacts.synapse_probability(1e-30, 3) == pytest.approx(1e-90 / 6, rel=1e-12)
    assert _contacts.synapse_probability(1e-30, 1) == pytest.approx(1e-30, rel=1e-12)
    assert _contacts.synapse_probability(1e-10, 2) == pytest.approx(0.5e-20, rel=1e-9)


@pytest.mark.parametrize("mean,needed", [(2.0, 3), (3.0, 3), (3.0000001, 3), (10.0, 3), (50.0, 40),
                                         (40.0, 50), (300.0, 320), (600.0, 650), (700.0, 720)])
def test_synapse_probability_matches_scipy_on_both_branches(mean, needed):
    assert _contacts.synapse_probability(mean, needed) == \
        pytest.approx(stats.poisson.sf(needed - 1, mean), rel=1e-10, abs=1e-300)
    assert oracle_trigger(mean, needed) == \
        pytest.approx(stats.poisson.sf(needed - 1, mean), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("mean,needed", [(999.0, 1000), (746.0, 700), (740.0, 745), (700.5, 720), (701.0, 690),
                                         (1e4, 1), (800.0, 0), (800.0, 1000), (1000.0, 1)])
def test_synapse_probability_for_huge_means_and_thresholds(mean, needed):
    """Above a mean of 700 e^-B is denormal or zero: the terms are formed in log space."""
    assert _contacts.synapse_probability(mean, needed) == \
        pytest.approx(stats.poisson.sf(needed - 1, mean), rel=1e-9, abs=1e-300)
    assert oracle_trigger(mean, needed) == \
        pytest.approx(stats.poisson.sf(needed - 1, mean), rel=1e-9, abs=1e-300)


def test_form_synapses_low_drug_forms_some_synapses():
    n, widths, heights, occ19, occ3, needed = CONTACT_CASES["low_drug"]
    made = 0
    for step in range(1, 30):
        p = random_population(np.random.default_rng(step), n, widths, heights)
        want_partner, want_t = oracle_synapses(p, occ19, occ3, needed, 5, step)
        got_partner, got_t = kernel_synapses(p, occ19, occ3, 1, 1, needed, 5, step)
        assert np.array_equal(got_partner, want_partner)
        made += len(want_t)
    assert 0 < made


def test_form_synapses_many_cells_any_grid_any_threads_agree():
    p = random_population(np.random.default_rng(42), 6000, [400.0, 300.0, 30.0], [400.0, 200.0, 30.0])
    occ19, occ3 = [0.01, 0.002, 0.05], [1e-4, 0.0, 1e-3]
    results = [kernel_synapses(p, occ19, occ3, 1, threads, 2, 11, 12, sizing=sizing)
               for sizing in GRID_SIZES for threads in (1, 2, 3)]
    for partner, t_rows in results[1:]:
        assert np.array_equal(partner, results[0][0]) and np.array_equal(t_rows, results[0][1])
    assert len(results[0][1]) > 100


def test_new_synapses_are_consistent_pairs():
    p = random_population(np.random.default_rng(3), 800, [200.0, 25.0], [200.0, 25.0])
    partner, t_rows = kernel_synapses(p, [0.05, 0.05], [1e-3, 1e-3])
    assert len(t_rows) > 0
    g_rows = partner[t_rows]
    assert np.array_equal(partner[g_rows], t_rows)             # symmetric
    assert len(np.unique(g_rows)) == len(g_rows)               # one T per target
    assert np.all(p["partner"][t_rows] < 0) and np.all(p["partner"][g_rows] < 0)  # were free
    assert np.all(p["kind"][t_rows] <= 1) and np.all(p["kind"][g_rows] >= 2)
    assert np.all(p["alive"][t_rows] == 1) and np.all(p["alive"][g_rows] == 1)
    assert np.all(p["cd19"][g_rows] > 0) and np.array_equal(p["comp"][t_rows], p["comp"][g_rows])
    w = p["width"][p["comp"][t_rows]]
    dx = np.abs(p["x"][t_rows] - p["x"][g_rows])
    dx = np.minimum(dx, w - dx)
    h = p["height"][p["comp"][t_rows]]
    dy = np.abs(p["y"][t_rows] - p["y"][g_rows])
    dy = np.minimum(dy, h - dy)
    assert np.all(dx**2 + dy**2 <= RADIUS**2)
    # old synapses untouched
    old = p["partner"] >= 0
    assert np.array_equal(partner[old], p["partner"][old])


def two_cells(dx, dy, width=100.0, height=100.0, cd19=22000.0, cd3=30000.0, kinds=(0, 3)):
    x0, y0 = 1.0, 1.0
    return dict(x=np.array([x0, (x0 + dx) % width]), y=np.array([y0, (y0 + dy) % height]),
                kind=np.array(kinds, np.int8), comp=np.zeros(2, np.int8),
                alive=np.ones(2, np.uint8), ids=np.array([0, 1], np.int64),
                cd19=np.array([0.0, cd19], np.float32), cd3=np.array([cd3, 0.0], np.float32),
                partner=np.full(2, -1, np.int32), width=np.array([width]), height=np.array([height]))


@pytest.mark.parametrize("sizing", GRID_SIZES)
def test_pair_across_the_periodic_corner_binds(sizing):
    # (1, 1) and (99.5, 98) in a 100 um box are 3.35 um apart through the corner
    p = two_cells(-2.5, -4.0)
    partner, t_rows = kernel_synapses(p, [0.5], [0.5], sizing=sizing)   # B huge: p = 1
    assert partner.tolist() == [1, 0] and t_rows.tolist() == [0]


@pytest.mark.parametrize("sizing", GRID_SIZES)
@pytest.mark.parametrize("dist,binds", [(9.99, True), (10.01, False), (50.0, False)])
def test_contact_radius_is_the_cutoff(sizing, dist, binds):
    p = two_cells(dist, 0.0)
    partner, _ = kernel_synapses(p, [0.5], [0.5], sizing=sizing)
    assert bool(partner[0] == 1) is binds


def test_no_synapse_without_drug_cd19_or_cd3():
    assert kernel_synapses(two_cells(3, 0), [0.0], [0.0])[0].tolist() == [-1, -1]
    assert kernel_synapses(two_cells(3, 0, cd19=0.0), [0.5], [0.5])[0].tolist() == [-1, -1]
    assert kernel_synapses(two_cells(3, 0, cd3=0.0), [0.5], [0.0])[0].tolist() == [-1, -1]
    # with CD3 absent, drug on CD19 alone cannot bridge; with CD3 and drug it binds
    assert kernel_synapses(two_cells(3, 0), [0.5], [0.0])[0].tolist() == [1, 0]
    # two T cells or two targets never pair
    assert kernel_synapses(two_cells(3, 0, kinds=(0, 1)), [0.5], [0.5])[0].tolist() == [-1, -1]
    assert kernel_synapses(two_cells(3, 0, kinds=(2, 3)), [0.5], [0.5])[0].tolist() == [-1, -1]


def test_form_synapses_on_empty_population():
    z = np.zeros(0)
    p = dict(x=z, y=z, kind=np.zeros(0, np.int8), comp=np.zeros(0, np.int8),
             alive=np.zeros(0, np.uint8), ids=np.zeros(0, np.int64),
             cd19=np.zeros(0, np.float32), cd3=np.zeros(0, np.float32),
             partner=np.zeros(0, np.int32), width=np.ones(1) * 100, height=np.ones(1) * 100)
    partner, t_rows = kernel_synapses(p, [1.0], [1.0])
    assert len(t_rows) == 0 and len(partner) == 0


def test_the_pair_draw_decides_binding():
    """With p between 0 and 1 the pair binds exactly when its keyed draw is below p."""
    needed = 1
    binds, expected = [], []
    for step in range(1, 200):
        p = two_cells(3.0, 4.0)
        partner, _ = kernel_synapses(p, [1e-4], [0.0], 1, 1, needed, 8, step)
        prob = oracle_trigger(oracle_bridges(22000.0, 30000.0, 1e-4, 0.0, 0.2, AREA, K2D19, K2D3), needed)
        binds.append(partner[0] == 1)
        expected.append(oracle_uniform(8, 0, step, Purpose.BRIDGE, 1) < prob)
    assert binds == expected
    assert 0 < sum(binds) < len(binds)


def test_conflict_goes_to_the_smallest_draw():
    """Three T cells around one target: the target goes to the T cell with the smallest draw."""
    x = np.array([50.0, 53.0, 47.0, 50.0])
    y = np.array([50.0, 50.0, 50.0, 54.0])
    p = dict(x=x, y=y, kind=np.array([3, 0, 1, 0], np.int8), comp=np.zeros(4, np.int8),
             alive=np.ones(4, np.uint8), ids=np.array([10, 20, 30, 40], np.int64),
             cd19=np.array([22000, 0, 0, 0], np.float32), cd3=np.array([0, 3e4, 3e4, 3e4], np.float32),
             partner=np.full(4, -1, np.int32), width=np.array([100.0]), height=np.array([100.0]))
    for step in range(1, 20):
        draws = {t: oracle_uniform(1, tid, step, Purpose.BRIDGE, 10) for t, tid in ((1, 20), (2, 30), (3, 40))}
        best = min(draws, key=draws.get)
        for sizing in GRID_SIZES:
            partner, t_rows = kernel_synapses(p, [0.5], [0.5], step=step, sizing=sizing)
            assert t_rows.tolist() == [best] and partner[0] == best


# --------------------------------------------------------------------------- grid

def float_grid_rule(side: float, radius: float, most: int) -> int:
    """The documented bin count: the most bins, at most `most` and at most
    floor(side / radius), that are at least one radius (plus a 1e-9 relative margin against
    rounding) wide in floating point (or 1)."""
    n = max(1, min(math.floor(side / radius), most))
    while n > 1 and side / n < radius * (1 + 1e-9):
        n -= 1
    return n


@FAST
@given(width=st.floats(10.0, 1e6), height=st.floats(10.0, 1e6), radius=st.floats(1.0, 100.0),
       n=st.integers(0, 10**7))
def test_grid_shape_bins_are_wide_enough_and_few_enough(width, height, radius, n):
    nx, ny = _contacts.grid_shape(width, height, radius, n)
    most = max(1, math.isqrt(n - 1) + 1 if n > 0 else 1)  # ceil(sqrt(n)) in exact integers
    for bins, side in ((nx, width), (ny, height)):
        assert 1 <= bins <= most
        if bins > 1:  # the floating-point quotient never falls below the radius
            assert side / bins >= radius, "bin narrower than the contact radius"
        # as many bins as both limits allow
        assert bins == float_grid_rule(side, radius, most)
        if bins < min(most, math.floor(side / radius)):
            assert side / (bins + 1) < radius * (1 + 1e-9)


def test_grid_shape_backs_off_when_the_quotient_rounds_up_to_a_whole_number():
    # fl(5227.575668617261 / 80.42424105565017) == 65.0 although the exact quotient is below
    # 65: the old floor() gave 65 bins; 65 still passes the float check (see the xfail below)
    width, radius = 5227.575668617261, 80.42424105565017
    assert width / radius == 65.0 and Fraction(width) / Fraction(radius) < 65
    nx, _ = _contacts.grid_shape(width, 1000.0, radius, 10**8)
    assert width / nx >= radius
    # here fl(w / r) == 2078.0 too but fl(w / 2078) < r: the kernel backs off to 2077 bins
    w, r = 55240.850661044344, 26.583662493284095
    assert w / r == 2078.0 and w / 2078 < r
    assert _contacts.grid_shape(w, 1000.0, r, 10**8)[0] == 2077


def test_grid_shape_rounding_never_gives_bins_narrower_than_the_radius():
    width, radius = 5227.575668617261, 80.42424105565017
    nx, _ = _contacts.grid_shape(width, 1000.0, radius, 10**8)
    assert Fraction(width) / nx >= Fraction(radius)


def test_a_touching_pair_two_bins_apart_is_not_missed():
    """Bins barely one radius wide in floating point (3x3 scan): a pair just under one
    radius apart, in neighbouring bins, binds."""
    width, radius = 36946.27651043097, 76.33528204634499
    p = dict(x=np.array([18702.14410135452, 18778.479383400863]), y=np.array([5.0, 5.0]),
             kind=np.array([0, 3], np.int8), comp=np.zeros(2, np.int8), alive=np.ones(2, np.uint8),
             ids=np.array([0, 1], np.int64), cd19=np.array([0, 22000], np.float32),
             cd3=np.array([30000, 0], np.float32), partner=np.full(2, -1, np.int32),
             width=np.array([width]), height=np.array([100.0]))
    want, _ = oracle_synapses(p, [0.5], [0.5], radius=radius)
    assert want.tolist() == [1, 0]  # the pair touches: the rule binds it (p = 1)
    got, _ = kernel_synapses(p, [0.5], [0.5], radius=radius, sizing="finest")
    assert got.tolist() == [1, 0]


@pytest.mark.parametrize("offset", [0.0, 1e-9, 0.5, 1.0 - 1e-9])
@pytest.mark.parametrize("dx", [-9.999999, 9.999999])
def test_two_by_two_scan_reaches_across_either_bin_edge(offset, dx):
    """Bins just over two radii wide (2x2 scan along both axes): a T cell anywhere in its
    bin reaches a target just under one radius away on either side, across bin edges."""
    radius, n = 10.0, 50
    width = n * 2 * radius * (1 + 2e-6)
    bin_w = width / n
    for b in (0, 1, 17, n - 1):
        x0 = (b + offset) * bin_w
        p = two_cells(dx, dx, width=width, height=width)
        p["x"][0], p["y"][0] = x0, x0
        p["x"][1], p["y"][1] = (x0 + dx / math.sqrt(2)) % width, (x0 + dx / math.sqrt(2)) % width
        want, _ = oracle_synapses(p, [0.5], [0.5], radius=radius)
        assert want.tolist() == [1, 0]
        grid, _ = build(p, radius=radius, nx=[n], ny=[n])
        partner = p["partner"].copy()
        _contacts.form_synapses(grid, partner, np.array([0.5]), np.array([0.5]), radius, 0.2,
                                AREA, K2D19, K2D3, np.zeros(2, np.int8), np.ones(4, np.int32),
                                1, 1, 1)
        assert partner.tolist() == [1, 0], (b, offset, dx)


@pytest.mark.parametrize("args,expected", [((1000.0, 1000.0, 10.0, 2500), (50, 50)),
                                           # 100 bins would be exactly one radius wide: the
                                           # 1e-9 rounding margin keeps 99
                                           ((1000.0, 1000.0, 10.0, 1_000_000), (99, 99)),
                                           ((1000.0, 500.0, 10.0, 10), (4, 4)),
                                           ((15.0, 25.0, 10.0, 100), (1, 2)),
                                           ((5.0, 5.0, 10.0, 100), (1, 1)),
                                           ((1000.0, 1000.0, 10.0, 0), (1, 1)),
                                           ((1000.0, 1000.0, 10.0, 1), (1, 1)),
                                           ((1000.0, 1000.0, 10.0, 2), (2, 2))])
def test_grid_shape_by_hand(args, expected):
    assert _contacts.grid_shape(*args) == expected


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("pairs", [[1, 1, 1], [1, 0, 1], [0, 1, 0]])
def test_build_grid_is_a_counting_sort_of_both_sides(pairs, threads):
    p = random_population(np.random.default_rng(8), 700, [200.0, 25.0, 12.0], [170.0, 40.0, 12.0])
    n_comps = 3
    pairs = np.array(pairs, np.uint8)
    free = (p["alive"] == 1) & (p["partner"] < 0)
    grid, (free_t, free_g) = build(p, pairs, threads)
    nx, ny, offset = grid.nx, grid.ny, grid.offset
    for c in range(n_comps):  # free cells per compartment, pairing or not
        assert free_t[c] == np.count_nonzero(free & (p["kind"] <= 1) & (p["comp"] == c))
        assert free_g[c] == np.count_nonzero(free & (p["kind"] >= 2) & (p["cd19"] > 0)
                                             & (p["comp"] == c))
    in_pairing = free & (pairs[p["comp"]] == 1)
    for start, cells, want, receptors in (
            (grid.t_start, grid.t_cells, np.flatnonzero(in_pairing & (p["kind"] <= 1)), p["cd3"]),
            (grid.g_start, grid.g_cells, np.flatnonzero(in_pairing & (p["kind"] >= 2) & (p["cd19"] > 0)),
             p["cd19"])):
        rows = cells["row"]
        assert len(start) == offset[-1] + 1 and start[0] == 0 and np.all(np.diff(start) >= 0)
        assert sorted(rows.tolist()) == want.tolist()
        for name, column in (("x", p["x"]), ("y", p["y"]), ("id", p["ids"]), ("receptors", receptors)):
            assert np.array_equal(cells[name], column[rows]), name
        for b in range(offset[-1]):
            members = rows[start[b]:start[b + 1]]
            assert list(members) == sorted(members)  # stable: row order within a bin
            for i in members:
                c = p["comp"][i]
                bx = min(int(p["x"][i] * (nx[c] / p["width"][c])), nx[c] - 1)
                by = min(int(p["y"][i] * (ny[c] / p["height"][c])), ny[c] - 1)
                assert b == offset[c] + by * nx[c] + bx


# =========================================================================== lysis

PARAMS = dict(delay=5, interval=8, hits_to_kill=3, max_gap=50, units=10.0, capacity=100.0,
              refill=0.5, max_synapse=60, unarmed_synapse=10**6)


def synapse_cells(n_pairs=1, granules=100.0, synapse_step=10, armed_step=-1,
                  granule_step=0, kind_t=0, kind_g=3):
    """Rows 0..n-1 T cells bound to rows n..2n-1 targets."""
    n = 2 * n_pairs
    kind = np.array([kind_t] * n_pairs + [kind_g] * n_pairs, np.int8)
    partner = np.array(list(range(n_pairs, n)) + list(range(n_pairs)), np.int32)
    return dict(partner=partner, kind=kind, alive=np.ones(n, np.uint8),
                granules=np.array([granules] * n_pairs + [0.0] * n_pairs, np.float32),
                granule_step=np.full(n, granule_step, np.int32),
                armed_step=np.full(n, armed_step, np.int32),
                synapse_step=np.full(n, synapse_step, np.int32),
                next_hit_step=np.zeros(n, np.int32), hits=np.zeros(n, np.int16),
                last_hit_step=np.full(n, -1, np.int32), kills=np.zeros(n, np.int32))


LYSIS_PARAMETERS = list(inspect.signature(_lysis.deliver_hits).parameters)


def hit(cells, step, **overrides):
    """One deliver_hits step. Columns regulatory, comp, exhaustion, pdl1 and ids, and
    parameters success_by_comp, kill_loss, max_pd1, unarmed_synapse and seed, default to
    neutral values (no Tregs, one compartment with success 1, no exhaustion: every hit
    lands; no early release of unarmed T cells)."""
    p = dict(PARAMS, **overrides)
    n = len(cells["partner"])
    neutral = dict(regulatory=np.zeros(n, np.uint8), comp=np.zeros(n, np.int8),
                   exhaustion=np.zeros(n, np.float32), pdl1=np.zeros(n, np.float32),
                   ids=np.arange(n, dtype=np.int64))
    extra = {name: cells.get(name, value) for name, value in neutral.items()}
    args = dict(partner=cells["partner"], kind=cells["kind"], alive=cells["alive"],
                granules=cells["granules"], granule_step=cells["granule_step"],
                armed_step=cells["armed_step"], synapse_step=cells["synapse_step"],
                next_hit_step=cells["next_hit_step"], hits=cells["hits"],
                last_hit_step=cells["last_hit_step"], kills=cells["kills"], step=step,
                first_hit_delay_steps=p["delay"], hit_interval_steps=p["interval"],
                hits_to_kill=p["hits_to_kill"], max_hit_gap_steps=p["max_gap"],
                units_per_hit=p["units"], capacity_units=p["capacity"],
                refill_units_per_step=p["refill"], max_synapse_steps=p["max_synapse"],
                unarmed_synapse_steps=p["unarmed_synapse"],
                hit_success_by_comp=np.asarray(p.get("success_by_comp", [1.0]), dtype=np.float64),
                exhaustion_kill_loss=p.get("kill_loss", 0.0),
                max_pd1_inhibition=p.get("max_pd1", 0.0), seed=p.get("seed", 1),
                threads=p.get("threads", 1), **extra)
    missing = set(LYSIS_PARAMETERS) - set(args)
    assert not missing, f"deliver_hits has new parameters the tests do not know: {missing}"
    return _lysis.deliver_hits(*[args[name] for name in LYSIS_PARAMETERS])


def timeline(cells, steps, **overrides):
    """Run the kernel over steps; return {step: (target hits, T granules)} for every step
    in which row 1 was hit, and the kills."""
    events, kills = {}, []
    for s in steps:
        killers, victims = hit(cells, s, **overrides)
        if cells["last_hit_step"][1] == s:
            events[s] = (int(cells["hits"][1]), float(cells["granules"][0]))
        if len(victims):
            kills.append((s, killers.tolist(), victims.tolist()))
    return events, kills


def test_full_store_kills_on_the_third_hit_at_the_hand_computed_steps():
    c = synapse_cells(synapse_step=10)
    events, kills = timeline(c, range(10, 80))
    # synapse at 10, first hit at 10 + 5 = 15, then every 8 steps: 23, 31 (3rd hit kills)
    assert events == {15: (1, 90.0), 23: (2, 80.0), 31: (3, 70.0)}
    assert kills == [(31, [0], [1])]
    assert c["alive"].tolist() == [1, 0]
    assert c["partner"].tolist() == [-1, -1]
    assert c["kills"].tolist() == [1, 0]
    assert c["last_hit_step"][1] == 31 and c["next_hit_step"][0] == 39


def test_cd4_t_cells_kill_too_and_b_cells_die_as_targets():
    c = synapse_cells(synapse_step=0, kind_t=1, kind_g=2)
    _, kills = timeline(c, range(0, 40))
    assert kills == [(21, [0], [1])]  # 5, 13, 21


def test_hit_delay_zero_hits_in_the_synapse_step():
    c = synapse_cells(synapse_step=7)
    events, _ = timeline(c, range(7, 10), delay=0)
    assert list(events) == [7]


def test_kills_come_back_in_row_order_and_count_per_killer():
    c = synapse_cells(n_pairs=3, synapse_step=0)
    c["synapse_step"][1] = 2  # pair 1 one step later
    killers_all, victims_all = [], []
    for s in range(0, 40):
        k, v = hit(c, s)
        killers_all += [(s, r) for r in k.tolist()]
        victims_all += [(s, r) for r in v.tolist()]
    assert killers_all == [(21, 0), (21, 2), (23, 1)]
    assert victims_all == [(21, 3), (21, 5), (23, 4)]
    assert c["kills"].tolist() == [1, 1, 1, 0, 0, 0]


def test_without_granules_no_hit_and_the_synapse_dissolves_at_max_duration():
    c = synapse_cells(granules=9.99, synapse_step=10)
    for s in range(10, 70):
        hit(c, s)
        assert c["partner"].tolist() == [1, 0], s
        assert c["hits"][1] == 0
    hit(c, 70)  # 70 - 10 = 60 = max duration
    assert c["partner"].tolist() == [-1, -1]
    assert c["alive"].tolist() == [1, 1] and c["kills"].tolist() == [0, 0]
    assert c["granules"][0] == np.float32(9.99)


def test_synapse_without_a_kill_dissolves_after_max_duration_even_with_hits():
    c = synapse_cells(synapse_step=0)
    events, kills = timeline(c, range(0, 30), hits_to_kill=10, max_synapse=20)
    assert list(events) == [5, 13]     # then 21 is past the dissolution at 20
    assert kills == [] and c["partner"].tolist() == [-1, -1]
    assert c["hits"][1] == 2 and c["alive"][1] == 1


def test_store_runs_dry_after_the_last_full_hit():
    c = synapse_cells(granules=25.0, synapse_step=0)
    events, kills = timeline(c, range(0, 60))
    assert events == {5: (1, 15.0), 13: (2, 5.0)} and kills == []


def test_lazy_refill_after_arming():
    # armed at step 100, last update at 50, empty store, 0.5 units/step:
    # at step 120 it holds 0.5 * (120 - 100) = 10 units -> one hit -> 0
    c = synapse_cells(granules=0.0, synapse_step=100, armed_step=100, granule_step=50)
    hit(c, 120)
    assert c["hits"][1] == 1 and c["granules"][0] == 0.0 and c["granule_step"][0] == 120
    # updated at 120: at step 127 it gained 3.5 only (no double counting), no hit possible
    hit(c, 127)
    assert c["granules"][0] == np.float32(3.5) and c["hits"][1] == 1
    # at step 141: 3.5 + 0.5 * 14 = 10.5 -> hit -> 0.5
    hit(c, 141)
    assert c["hits"][1] == 2 and c["granules"][0] == np.float32(0.5)


def test_refill_counts_from_the_later_of_update_and_arming():
    c = synapse_cells(granules=0.0, synapse_step=0, armed_step=30, granule_step=80)
    hit(c, 95, delay=1000)  # no hit: only the store update is checked
    assert c["granules"][0] == np.float32(0.5 * 15)


def test_refill_is_capped_at_capacity():
    c = synapse_cells(granules=95.0, synapse_step=0, armed_step=0, granule_step=0)
    hit(c, 80)  # +40 -> capped at 100, then a hit -> 90
    assert c["granules"][0] == 90.0 and c["hits"][1] == 1


def test_no_refill_before_arming():
    c = synapse_cells(granules=5.0, synapse_step=0, armed_step=-1, granule_step=0)
    for s in range(0, 50):
        hit(c, s)
    assert c["granules"][0] == np.float32(5.0) and c["hits"][1] == 0
    assert c["granule_step"][0] == 49


def test_hits_more_than_max_gap_apart_do_not_accumulate():
    c = synapse_cells(synapse_step=0)
    events, kills = timeline(c, range(0, 400), interval=51, max_gap=50, max_synapse=1000)
    assert kills == [] and c["alive"][1] == 1
    assert [h for h, _ in events.values()] == [1] * len(events) and len(events) >= 7
    assert list(events)[:3] == [5, 56, 107]
    # one step shorter interval: hits 50 apart accumulate and kill on the third
    c = synapse_cells(synapse_step=0)
    _, kills = timeline(c, range(0, 400), interval=49, max_gap=50, max_synapse=1000)
    assert kills == [(103, [0], [1])]


def test_old_damage_is_repaired_before_the_next_hit():
    # a target hit twice long ago by another T cell needs three fresh hits
    c = synapse_cells(synapse_step=200)
    c["hits"][1] = 2
    c["last_hit_step"][1] = 100
    events, kills = timeline(c, range(200, 260))
    assert events == {205: (1, 90.0), 213: (2, 80.0), 221: (3, 70.0)}
    # whereas recent damage counts
    c = synapse_cells(synapse_step=200)
    c["hits"][1] = 2
    c["last_hit_step"][1] = 180
    _, kills = timeline(c, range(200, 260))
    assert kills == [(205, [0], [1])]


def test_hits_exactly_max_gap_apart_do_not_accumulate():
    # the schema: hits must each be LESS than max_hit_gap after the previous one; a target
    # that goes max_hit_gap without a hit has repaired its damage
    c = synapse_cells(synapse_step=0)
    events, kills = timeline(c, range(0, 400), interval=50, max_gap=50, max_synapse=1000)
    assert kills == [] and list(events)[:3] == [5, 55, 105]
    assert [h for h, _ in events.values()] == [1] * len(events)


def test_targets_and_free_cells_are_skipped():
    # only T cells drive synapses: a target row never acts, a free T cell is untouched
    c = synapse_cells(synapse_step=0)
    c["kind"][0] = 2   # row 0 is now a target bound to a target: nobody acts
    for s in range(0, 40):
        hit(c, s)
    assert c["hits"].tolist() == [0, 0] and c["granule_step"].tolist() == [0, 0]


def many_pairs(n_pairs, **columns):
    """n_pairs fresh synapses (formed at step 0, full stores) with distinct T-cell ids."""
    c = synapse_cells(n_pairs=n_pairs, synapse_step=0)
    n = 2 * n_pairs
    c.update(ids=np.arange(1000, 1000 + n, dtype=np.int64), regulatory=np.zeros(n, np.uint8),
             comp=np.zeros(n, np.int8), exhaustion=np.zeros(n, np.float32),
             pdl1=np.zeros(n, np.float32))
    c.update(columns)
    return c


def test_a_hit_lands_exactly_when_its_keyed_draw_is_below_the_success():
    n_pairs, seed, step = 400, 12345, 5
    c = many_pairs(n_pairs)
    hit(c, step, success_by_comp=[0.35], seed=seed)
    u = np.array([oracle_uniform(seed, int(i), step, Purpose.HIT) for i in c["ids"][:n_pairs]])
    lands = u < 0.35
    assert np.array_equal(c["hits"][n_pairs:], lands.astype(np.int16))
    assert np.array_equal(c["last_hit_step"][n_pairs:], np.where(lands, step, -1))
    assert 0.25 < lands.mean() < 0.45
    # every hit spends its granules and restarts the hit timer, landed or not
    assert np.all(c["granules"][:n_pairs] == 90.0)
    assert np.all(c["next_hit_step"][:n_pairs] == step + PARAMS["interval"])
    assert np.all(c["partner"][:n_pairs] == np.arange(n_pairs, 2 * n_pairs))


def test_zero_success_never_hits_but_spends_granules_and_the_synapse_dissolves():
    c = synapse_cells(synapse_step=0)
    events, kills = timeline(c, range(0, 61), success_by_comp=[0.0])
    assert events == {} and kills == [] and c["hits"][1] == 0
    # hits tried at 5, 13, ..., 53: 7 x 10 units
    assert c["granules"][0] == np.float32(30.0)
    assert c["partner"].tolist() == [-1, -1]   # dissolved at 60


def test_success_is_read_from_the_t_cells_compartment():
    n_pairs = 300
    comp = np.array([0, 1, 2] * (n_pairs // 3) * 2, np.int8)
    comp[n_pairs:] = 0   # targets say compartment 0: the T cell's compartment must count
    c = many_pairs(n_pairs, comp=comp)
    hit(c, 5, success_by_comp=[1.0, 0.0, 0.5], seed=3)
    landed = c["hits"][n_pairs:].astype(bool)
    t_comp = comp[:n_pairs]
    assert np.all(landed[t_comp == 0]) and not np.any(landed[t_comp == 1])
    u = np.array([oracle_uniform(3, int(i), 5, Purpose.HIT) for i in c["ids"][:n_pairs]])
    assert np.array_equal(landed[t_comp == 2], u[t_comp == 2] < 0.5)


@pytest.mark.parametrize("exhaustion,pdl1,expected", [
    (0.5, 1.0, 0.48),   # (1 - 0.4 * 0.5) * (1 - 0.8 * 0.5 * 1) = 0.8 * 0.6
    (0.75, 0.5, 0.49),  # (1 - 0.3) * (1 - 0.8 * 0.75 * 0.5) = 0.7 * 0.7
    (0.0, 1.0, 1.0),    # not exhausted: no PD-1
    (0.5, 0.0, 0.8),    # no PD-L1 on the target: exhaustion alone
    (1.0, 1.0, 0.12),   # (1 - 0.4) * (1 - 0.8)
])
def test_exhaustion_and_pdl1_lower_the_hit_success_by_hand(exhaustion, pdl1, expected):
    n_pairs, seed = 500, 99
    c = many_pairs(n_pairs, exhaustion=np.full(2 * n_pairs, exhaustion, np.float32),
                   pdl1=np.full(2 * n_pairs, pdl1, np.float32))
    c["exhaustion"][n_pairs:] = 0.0  # the target's own column must not count...
    c["pdl1"][:n_pairs] = 0.0        # ...nor the T cell's PD-L1
    hit(c, 5, success_by_comp=[1.0], kill_loss=0.4, max_pd1=0.8, seed=seed)
    u = np.array([oracle_uniform(seed, int(i), 5, Purpose.HIT) for i in c["ids"][:n_pairs]])
    landed = c["hits"][n_pairs:].astype(bool)
    margin = np.abs(u - expected) > 1e-6   # away from the boundary (float32 exhaustion)
    assert np.array_equal(landed[margin], (u < expected)[margin])
    # the same success with the compartment factor: 0.5 x expected
    c = many_pairs(n_pairs, exhaustion=np.full(2 * n_pairs, exhaustion, np.float32),
                   pdl1=np.full(2 * n_pairs, pdl1, np.float32))
    hit(c, 5, success_by_comp=[0.5], kill_loss=0.4, max_pd1=0.8, seed=seed)
    landed = c["hits"][n_pairs:].astype(bool)
    margin = np.abs(u - 0.5 * expected) > 1e-6
    assert np.array_equal(landed[margin], (u < 0.5 * expected)[margin])


def test_an_unarmed_t_cell_leaves_its_target_after_the_unarmed_duration():
    # arms at step 20: before that it holds its target only `unarmed_synapse` steps
    c = synapse_cells(granules=0.0, synapse_step=0, armed_step=20)
    hit(c, 2, unarmed_synapse=3)
    assert c["partner"].tolist() == [1, 0]
    hit(c, 3, unarmed_synapse=3)
    assert c["partner"].tolist() == [-1, -1]
    # armed (armed_step <= step): the long rule applies
    c = synapse_cells(granules=0.0, synapse_step=20, armed_step=20)
    hit(c, 23, unarmed_synapse=3, delay=1000)
    assert c["partner"].tolist() == [1, 0]
    # never armed and regulatory: Tregs hold their synapses the long time
    c = synapse_cells(granules=0.0, synapse_step=0, armed_step=-1)
    c["regulatory"] = np.array([1, 0], np.uint8)
    hit(c, 30, unarmed_synapse=3)
    assert c["partner"].tolist() == [1, 0]


def test_regulatory_t_cells_hold_synapses_but_never_hit():
    c = synapse_cells(synapse_step=0, kind_t=1, armed_step=0, granules=50.0)
    c["regulatory"] = np.array([1, 0], np.uint8)
    for s in range(0, 60):
        hit(c, s)
        assert c["partner"].tolist() == [1, 0], s
    assert c["hits"][1] == 0 and c["last_hit_step"][1] == -1 and c["kills"][0] == 0
    # the store is still brought up to date (refill from activation, capped), never spent
    assert c["granules"][0] == np.float32(min(100.0, 50.0 + 0.5 * 59)) and c["granule_step"][0] == 59
    assert c["next_hit_step"][0] == 0
    hit(c, 60)   # and the synapse dissolves at the maximum duration
    assert c["partner"].tolist() == [-1, -1] and c["alive"].tolist() == [1, 1]


def test_a_failed_hit_does_not_refresh_the_targets_damage_clock():
    """Only landed hits count for the gap rule: with success 0.5 and hits tried every 8
    steps, the count restarts whenever 30+ steps pass between LANDED hits."""
    c = many_pairs(1, armed_step=np.zeros(2, np.int32))   # refills: never runs dry
    tried, landed, counts = [], [], []
    for s in range(0, 400):
        hit(c, s, success_by_comp=[0.5], seed=1, interval=8, max_gap=30, hits_to_kill=100,
            max_synapse=1000, refill=2.0)
        if c["next_hit_step"][0] == s + 8:
            tried.append(s)
            if oracle_uniform(1, 1000, s, Purpose.HIT) < 0.5:
                landed.append(s)
                counts.append(int(c["hits"][1]))
            assert c["last_hit_step"][1] == (landed[-1] if landed else -1)
    assert tried == list(range(5, 400, 8))
    want, previous = [], None
    for s in landed:
        want.append(1 if previous is None or s - previous >= 30 else want[-1] + 1)
        previous = s
    assert counts == want
    # the seed exercises both branches: a restart after failed tries, and accumulation
    # across a failed try (two landed hits 16 steps apart)
    gaps = np.diff(landed)
    assert np.any(gaps >= 30) and np.any(gaps == 16)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_deliver_hits_equals_oracle_on_random_synapses(seed, threads):
    r = np.random.default_rng(seed)
    n = 400
    kind = r.integers(0, 4, n).astype(np.int8)
    t = r.permutation(np.flatnonzero(kind <= 1))
    g = r.permutation(np.flatnonzero(kind >= 2))
    k = min(len(t), len(g)) * 3 // 4
    partner = np.full(n, -1, np.int32)
    partner[t[:k]], partner[g[:k]] = g[:k], t[:k]
    armed = np.where(r.random(n) < 0.5, r.integers(0, 120, n), -1).astype(np.int32)
    cells = dict(partner=partner, kind=kind, alive=np.ones(n, np.uint8),
                 granules=np.where(kind <= 1, r.choice([0.0, 7.5, 30.0, 100.0], n), 0).astype(np.float32),
                 granule_step=r.integers(0, 50, n).astype(np.int32), armed_step=armed,
                 synapse_step=r.integers(0, 60, n).astype(np.int32),
                 next_hit_step=r.integers(0, 70, n).astype(np.int32),
                 hits=r.integers(0, 3, n).astype(np.int16),
                 last_hit_step=r.integers(0, 60, n).astype(np.int32),
                 kills=r.integers(0, 3, n).astype(np.int32),
                 regulatory=((kind == 1) & (r.random(n) < 0.3)).astype(np.uint8),
                 comp=r.integers(0, 3, n).astype(np.int8),
                 exhaustion=r.choice([0.0, 0.3, 1.0], n).astype(np.float32),
                 pdl1=np.where(kind == 3, r.choice([0.0, 0.5, 1.0], n), 0.0).astype(np.float32),
                 ids=np.sort(r.choice(10 * n, n, replace=False)).astype(np.int64))
    p = dict(delay=int(r.integers(0, 6)), interval=int(r.integers(1, 10)), hits_to_kill=3,
             max_gap=int(r.integers(5, 30)), units=10.0, capacity=100.0,
             refill=float(r.choice([0.0, 0.3, 0.6667])), max_synapse=int(r.integers(20, 60)),
             success_by_comp=[1.0, float(r.uniform(0.3, 0.9)), 0.0] if seed % 2 else [1.0, 1.0, 1.0],
             kill_loss=float(r.choice([0.0, 0.7])), max_pd1=float(r.choice([0.0, 0.8, 1.0])),
             unarmed_synapse=int(r.integers(2, 20)),
             seed=int(r.integers(0, 2**63)), threads=threads)
    mine = {name: a.copy() for name, a in cells.items()}
    total = 0
    for step in range(60, 160):
        killers, victims = hit(cells, step, **p)
        want_k, want_v = oracle_deliver_hits(mine, step, p)
        assert killers.tolist() == want_k.tolist() and victims.tolist() == want_v.tolist()
        for name in cells:
            assert np.array_equal(cells[name], mine[name]), (name, step)
        total += len(victims)
    assert total > 0


def oracle_poisson(seed, key, step, purpose, mean):
    """Sum over ceil(mean / 100) chunks c of the inversion of oracle_uniform(..., extra=c) at
    mean / chunks: P(k) = e^-m m^k / k!, the smallest k whose cumulative reaches u."""
    chunks = max(1, math.ceil(mean / 100.0))
    m, total = mean / chunks, 0
    for c in range(chunks):
        u = oracle_uniform(seed, key, step, int(purpose), c)
        k, p = 0, math.exp(-m)
        cumulative = p
        while u > cumulative and p > 0.0:
            k += 1
            p *= m / k
            cumulative += p
        total += k
    return total


@pytest.mark.parametrize("mean", [0.0, 0.7, 99.9, 100.0, 100.5, 250.0, 800.0, 5000.0])
def test_poisson_is_the_sum_of_chunk_inversions_keyed_by_chunk(mean):
    for key in range(20):
        assert rng.poisson(11, key, 5, Purpose.PRODUCE, mean) == oracle_poisson(11, key, 5, Purpose.PRODUCE, mean)


def test_poisson_large_mean_is_not_zero():
    counts = [rng.poisson(1, k, 1, Purpose.PRODUCE, 800.0) for k in range(50)]
    assert abs(np.mean(counts) - 800.0) < 20.0


@pytest.mark.parametrize("mean,draws", [(150.0, 4000), (800.0, 3000), (20000.0, 300)])
def test_poisson_large_mean_has_poisson_moments(mean, draws):
    counts = np.array([rng.poisson(3, k, 7, Purpose.PRODUCE, mean) for k in range(draws)], dtype=float)
    # mean: sd of the sample mean is sqrt(mean / draws); allow 4.5 sd
    assert abs(counts.mean() - mean) < 4.5 * math.sqrt(mean / draws)
    # variance: sd of the sample variance ~ mean * sqrt(2 / draws) (nearly normal counts)
    assert abs(counts.var(ddof=1) - mean) < 4.5 * mean * math.sqrt(2.0 / draws)


# =========================================================================== compaction

def compaction_case(r: np.random.Generator, n: int, dead: float):
    """A population's columns (with slack capacity) whose dead rows are all unbound."""
    from blinasim.populations import COLUMNS
    cap = n + 7
    cols = {name: (r.integers(-100, 100, cap) if np.dtype(dtype).kind in "iu"
                   else r.random(cap)).astype(dtype) for name, (dtype, _fill) in COLUMNS.items()}
    cols["alive"][:n] = r.random(n) >= dead
    live = np.flatnonzero(cols["alive"][:n])
    pairs = r.permutation(live)[: 2 * (len(live) // 4)].reshape(-1, 2)
    cols["partner"][:] = -1
    cols["partner"][pairs[:, 0]], cols["partner"][pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    return cols


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n,dead", [(0, 0.0), (1, 1.0), (500, 0.0), (500, 0.3), (3000, 0.9), (64, 1.0)])
def test_compact_equals_the_oracle(n, dead, threads):
    from oracles import oracle_compact
    cols = compaction_case(np.random.default_rng([n, int(dead * 10)]), n, dead)
    want = oracle_compact({k: v[:n] for k, v in cols.items()}, cols["alive"][:n], cols["partner"][:n])
    count = _population.compact(list(cols.values()), cols["alive"][:n], cols["partner"][:n], threads)
    assert count == len(want["id"])
    for name, col in cols.items():
        assert np.array_equal(col[:count], want[name]), name


def test_compact_refuses_a_live_cell_bound_to_a_dead_one_and_changes_nothing():
    cols = compaction_case(np.random.default_rng(4), 300, 0.2)
    bound = np.flatnonzero(cols["partner"][:300] >= 0)[0]
    cols["alive"][cols["partner"][bound]] = 0
    before = {k: v.copy() for k, v in cols.items()}
    with pytest.raises(RuntimeError, match="dead partner"):
        _population.compact(list(cols.values()), cols["alive"][:300], cols["partner"][:300])
    for name, col in cols.items():
        assert np.array_equal(col, before[name]), name


@FAST
@given(seed=st.integers(0, 2**32), n=st.integers(0, 300), n_comps=st.integers(1, 6))
def test_free_by_compartment_groups_free_live_rows_in_row_order(seed, n, n_comps):
    r = np.random.default_rng(seed)
    alive = r.integers(0, 2, n).astype(np.uint8)
    partner = np.where(r.random(n) < 0.3, r.integers(0, max(1, n), n), -1).astype(np.int32)
    comp = r.integers(-1, n_comps + 1, n).astype(np.int8)  # with codes outside the range
    rows, start = _population.free_by_compartment(alive, partner, comp, n_comps)
    assert start[0] == 0 and len(start) == n_comps + 1
    for c in range(n_comps):
        want = np.flatnonzero((alive == 1) & (partner < 0) & (comp == c))
        assert rows[start[c]:start[c + 1]].tolist() == want.tolist()
    assert start[-1] == len(rows)


# =========================================================================== migration

@FAST
@given(seed=st.integers(0, 2**32), n=st.integers(0, 200), per_row=st.booleans(),
       step=st.integers(0, 10**6), extra=st.integers(0, 20))
def test_movers_are_the_rows_whose_draw_is_below_their_chance(seed, n, per_row, step, extra):
    r = np.random.default_rng(seed)
    kind = r.integers(0, 4, n).astype(np.int8)
    ids = r.permutation(10 * n + 1)[:n].astype(np.int64)
    moved = (r.random(n) < 0.2).astype(np.uint8)
    rows = np.flatnonzero(r.random(n) < 0.7).astype(np.int64)
    chance_of_kind = np.array([0.0, 0.3, 0.9, 1.0])
    chance_of_row = r.random(len(rows)) * (r.random(len(rows)) < 0.8) if per_row else None
    before = moved.copy()
    got = _migration.movers(rows, kind, ids, moved, chance_of_kind, chance_of_row, 7, step,
                            int(Purpose.MIGRATE), extra)
    chance = chance_of_row if per_row else chance_of_kind[kind[rows]]
    draws = rng.uniforms(7, ids[rows], step, Purpose.MIGRATE, extra)
    want = rows[(before[rows] == 0) & (chance > 0) & (draws < chance)]
    assert got.tolist() == want.tolist()
    assert np.flatnonzero(moved != before).tolist() == sorted(want.tolist())


def test_movers_refuses_a_chance_per_row_of_the_wrong_length():
    with pytest.raises(ValueError, match="as long as rows"):
        _migration.movers(np.arange(3), np.zeros(3, np.int8), np.arange(3), np.zeros(3, np.uint8),
                          np.ones(4), np.ones(2), 1, 0, 23, 0)


def test_movers_give_a_kind_outside_the_chance_table_no_chance():
    moved = np.zeros(2, np.uint8)
    got = _migration.movers(np.arange(2), np.array([9, 1], np.int8), np.arange(2), moved,
                            np.array([1.0, 1.0]), None, 1, 0, 23, 0)
    assert got.tolist() == [1] and moved.tolist() == [0, 1]
