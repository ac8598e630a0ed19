"""Hand-computed unit tests of the mechanisms: PK, units, bridging, populations, cells,
process helpers, and the processes run on tiny hand-built models."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from blinasim import _contacts, rng
from blinasim.cells import DAUGHTER_OFFSET_UM, INHERITED, divide, lognormal_with, seed_cells
from blinasim.compartments import build_geometry, migration_graph
from blinasim.model import KILL_COLUMNS, BlinaModel
from blinasim.pk import InfusionPeriod, Pharmacokinetics, infusion_periods
from blinasim.populations import CLONE_CODE, COLUMNS, KIND_CODE, NEVER, Population
from blinasim.processes.b_cells import BCellTurnover
from blinasim.processes.base import probability
from blinasim.processes.lysis import GranuleLysis, steps_of
from blinasim.processes.migration import Migration
from blinasim.processes.motility import RandomWalk
from blinasim.rng import Purpose, oracle_uniform
from blinasim.processes.cytokines import CYTOKINES
from blinasim.processes.protocol import ACTIONS
from blinasim.schema import (PK, Antigen, Blasts, Compartment, Cycle, Exhaustion,
                             Infusion, Interventions, KindValues, Lysis, Motility, Receptors,
                             Regulation, Route, Scenario, Schedule, check_consistency)
from blinasim.units import kd_2d_per_um2, occupancy, pg_per_ml_to_molar

# =========================================================================== PK

STANDARD = Schedule()  # the schema default: adult step-up cycle 1


def test_standard_cycle_infusion_periods():
    assert infusion_periods(STANDARD) == (InfusionPeriod(0.0, 10080.0, 0.375),
                                          InfusionPeriod(10080.0, 40320.0, 28.0 / 24.0))


def test_cycles_are_laid_back_to_back():
    schedule = Schedule(cycles=(Cycle(42, (Infusion(1, 7, 9.0), Infusion(8, 28, 28.0))),
                                Cycle(42, (Infusion(1, 28, 28.0),))))
    periods = infusion_periods(schedule)
    assert periods[2] == InfusionPeriod(60480.0, 60480.0 + 40320.0, 28.0 / 24.0)
    pk = Pharmacokinetics(PK(), schedule)
    assert pk.rate_ug_per_h(0.0) == 0.375
    assert pk.rate_ug_per_h(10079.999) == 0.375
    assert pk.rate_ug_per_h(10080.0) == 28.0 / 24.0
    assert pk.rate_ug_per_h(40319.0) == 28.0 / 24.0
    assert pk.rate_ug_per_h(40320.0) == 0.0          # day 29: drug-free interval
    assert pk.rate_ug_per_h(50000.0) == 0.0
    assert pk.rate_ug_per_h(60479.0) == 0.0
    assert pk.rate_ug_per_h(60480.0) == 28.0 / 24.0  # cycle 2 day 1
    assert pk.rate_ug_per_h(200000.0) == 0.0         # after the last cycle


def test_steady_state_by_hand():
    pk = Pharmacokinetics(PK(), STANDARD)
    # 28 ug/day = 1.1667 ug/h; / 2.22 L/h = 0.5255 ug/L = 525.5 pg/mL
    assert pk.steady_state_pg_per_ml(28.0 / 24.0) == pytest.approx(525.53, abs=0.01)
    assert pk.steady_state_pg_per_ml(9.0 / 24.0) == pytest.approx(168.92, abs=0.01)
    assert pk.elimination_per_h == pytest.approx(2.22 / 5.98)


@pytest.mark.parametrize("step_min", [1.0, 0.5, 10.0])
def test_stepping_equals_the_analytic_solution(step_min):
    schedule = Schedule(cycles=(Cycle(42, (Infusion(1, 28, 28.0),)),))
    pk = Pharmacokinetics(PK(), schedule)
    css, k = 1000.0 * (28.0 / 24.0) / 2.22, 2.22 / 5.98
    checks = {1.0, 60.0, 600.0, 1440.0, 2880.0}
    t = 0.0
    seen = set()
    while t < 2880.0:
        c = pk.advance(t, step_min)
        t += step_min
        if t in checks:
            assert c == pytest.approx(css * (1.0 - math.exp(-k * t / 60.0)), rel=1e-12)
            seen.add(t)
    assert seen == checks - ({1.0} if step_min > 1.0 else set())
    # within a day it is at steady state (biology brief: "reached within about a day")
    assert pk.conc_pg_per_ml == pytest.approx(525.53, abs=0.01)


def test_step_up_reaches_the_second_plateau():
    pk = Pharmacokinetics(PK(), STANDARD)
    for step in range(0, 10080):
        pk.advance(float(step), 1.0)
    assert pk.conc_pg_per_ml == pytest.approx(168.92, abs=0.01)
    # one hour into 28 ug/day: C = Css28 + (C9 - Css28) e^{-k}
    for step in range(10080, 10140):
        pk.advance(float(step), 1.0)
    k = 2.22 / 5.98
    assert pk.conc_pg_per_ml == pytest.approx(525.525 + (168.919 - 525.525) * math.exp(-k), rel=1e-4)


def test_washout_half_life():
    schedule = Schedule(cycles=(Cycle(2, (Infusion(1, 1, 28.0),)),))
    pk = Pharmacokinetics(PK(), schedule)
    for step in range(1440):
        pk.advance(float(step), 1.0)
    c0 = pk.conc_pg_per_ml
    half_life_h = math.log(2.0) * 5.98 / 2.22
    assert half_life_h == pytest.approx(1.867, abs=1e-3)
    assert pk.advance(1440.0, half_life_h * 60.0) == pytest.approx(c0 / 2.0, rel=1e-12)
    assert pk.advance(1440.0 + half_life_h * 60.0, half_life_h * 60.0) == pytest.approx(c0 / 4.0, rel=1e-12)


def test_fixed_concentration_stays_constant():
    pk = Pharmacokinetics(PK(model="fixed", fixed_pg_per_ml=100.0), STANDARD)
    assert pk.conc_pg_per_ml == 100.0
    assert all(pk.advance(t, 1.0) == 100.0 for t in (0.0, 10.0, 50000.0))
    assert Pharmacokinetics(PK(), STANDARD).conc_pg_per_ml == 0.0  # infusion starts at 0


def test_many_small_steps_equal_one_big_step_at_constant_rate():
    a = Pharmacokinetics(PK(), STANDARD)
    b = Pharmacokinetics(PK(), STANDARD)
    for step in range(60):
        a.advance(float(step), 1.0)
    b.advance(0.0, 60.0)
    assert a.conc_pg_per_ml == pytest.approx(b.conc_pg_per_ml, rel=1e-12)


# =========================================================================== units

def test_pg_per_ml_to_molar_by_hand():
    # 1 pg/mL = 1e-9 g/L; / 55,000 g/mol = 1.818e-14 M
    assert pg_per_ml_to_molar(1.0, 55.0) == pytest.approx(1.8182e-14, rel=1e-4)
    assert pg_per_ml_to_molar(600.0, 55.0) == pytest.approx(1.0909e-11, rel=1e-4)  # ~11 pM


def test_occupancy_by_hand():
    assert occupancy(0.0, 1e-9) == 0.0
    assert occupancy(1e-9, 1e-9) == 0.5
    assert occupancy(3e-9, 1e-9) == 0.75
    # 100 pg/mL on the CD19 arm: 1.818e-12 / (1.818e-12 + 1.49e-9) = 1.2188e-3
    assert occupancy(pg_per_ml_to_molar(100.0, 55.0), 1.49e-9) == pytest.approx(1.2188e-3, rel=1e-4)


def test_kd_2d_by_hand():
    # 1.49e-9 mol/L * 6.022e23 /mol * 1e-15 L/um3 * 0.01 um = 8.973e-3 /um2
    assert kd_2d_per_um2(1.49e-9, 10.0) == pytest.approx(8.973e-3, rel=1e-4)
    assert kd_2d_per_um2(2.6e-7, 10.0) == pytest.approx(1.5658, rel=1e-4)
    assert kd_2d_per_um2(2.6e-7, 1.0) == pytest.approx(0.15658, rel=1e-4)


# =========================================================================== bridging

K2D19 = kd_2d_per_um2(1.49e-9, 10.0)
K2D3 = kd_2d_per_um2(2.6e-7, 10.0)


def test_expected_bridges_by_hand():
    # CD19 arm only: 0.2 * 22000 * 2.06e-3 * capture of CD3 (200/um2 vs K2D 1.5658/um2)
    capture3 = 200.0 / (200.0 + 1.5658)
    assert capture3 == pytest.approx(0.99223, abs=1e-5)
    b19 = _contacts.expected_bridges(22000, 30000, 2.06e-3, 0.0, 0.2, 150.0, K2D19, K2D3)
    assert b19 == pytest.approx(8.9936, rel=1e-4)
    # add the CD3 arm: 0.2 * 30000 * 1.18e-5 * capture of CD19 (146.7/um2 vs 0.00897/um2)
    both = _contacts.expected_bridges(22000, 30000, 2.06e-3, 1.18e-5, 0.2, 150.0, K2D19, K2D3)
    assert both - b19 == pytest.approx(0.070796, rel=1e-4)
    # linear in the contact fraction
    assert _contacts.expected_bridges(22000, 30000, 2.06e-3, 1.18e-5, 0.1, 150.0, K2D19, K2D3) == \
        pytest.approx(both / 2, rel=1e-12)


def test_no_drug_or_no_cd19_means_no_bridges():
    assert _contacts.expected_bridges(22000, 30000, 0.0, 0.0, 0.2, 150.0, K2D19, K2D3) == 0.0
    # a CD19-negative target bridges nothing whatever the drug
    assert _contacts.expected_bridges(0.0, 30000, 0.5, 0.5, 0.2, 150.0, K2D19, K2D3) == 0.0
    # a T cell without CD3 bridges nothing either
    assert _contacts.expected_bridges(22000, 0.0, 0.5, 0.5, 0.2, 150.0, K2D19, K2D3) == 0.0
    for needed in (1, 2, 3, 10):
        assert _contacts.synapse_probability(0.0, needed) == 0.0


def test_synapse_probability_is_the_poisson_tail():
    assert _contacts.synapse_probability(1.0, 1) == pytest.approx(1 - math.exp(-1), rel=1e-15)
    # P(N >= 3 | mean 1) = 1 - e^-1 (1 + 1 + 1/2) = 0.0803014
    assert _contacts.synapse_probability(1.0, 3) == pytest.approx(0.0803014, rel=1e-6)
    for mean in (0.01, 0.3, 2.0, 9.06, 40.0):
        for needed in (1, 2, 3, 5):
            assert _contacts.synapse_probability(mean, needed) == \
                pytest.approx(stats.poisson.sf(needed - 1, mean), rel=1e-9, abs=1e-15)
    assert _contacts.synapse_probability(800.0, 3) == 1.0
    # more bridges needed, lower probability
    assert _contacts.synapse_probability(2.0, 3) < _contacts.synapse_probability(2.0, 2)


# =========================================================================== populations

def test_add_assigns_fresh_ids_and_defaults():
    pop = Population(capacity=4)
    rows = pop.add(3, kind=KIND_CODE["blast"], x=np.array([1.0, 2.0, 3.0]))
    assert rows.tolist() == [0, 1, 2] and pop.id.tolist() == [0, 1, 2]
    assert pop.kind.tolist() == [3, 3, 3] and pop.x.tolist() == [1.0, 2.0, 3.0]
    assert pop.partner.tolist() == [-1, -1, -1] and pop.alive.tolist() == [1, 1, 1]
    assert pop.activated_step.tolist() == [NEVER] * 3
    rows = pop.add(5, kind=0)  # grows past the capacity of 4
    assert rows.tolist() == [3, 4, 5, 6, 7] and pop.capacity >= 8 and pop.n == 8
    assert pop.x.tolist() == [1.0, 2.0, 3.0, 0, 0, 0, 0, 0]
    assert pop.id.tolist() == list(range(8))
    with pytest.raises(KeyError):
        pop.add(1, colour=3)
    with pytest.raises(KeyError):
        pop.add(1, id=99)


def bound_population() -> Population:
    """Six cells: T0-target3 and T2-target5 in synapses; 1 and 4 free."""
    pop = Population(capacity=8)
    pop.add(6, kind=np.array([0, 0, 1, 3, 2, 3]), x=np.arange(6, dtype=float))
    pop.partner[:] = [3, -1, 5, 0, -1, 2]
    return pop


def test_compact_drops_dead_rows_keeps_ids_and_remaps_partners():
    pop = bound_population()
    pop.alive[[1, 4]] = 0
    pop.compact()
    assert pop.n == 4
    assert pop.id.tolist() == [0, 2, 3, 5]
    assert pop.x.tolist() == [0.0, 2.0, 3.0, 5.0]
    assert pop.partner.tolist() == [2, 3, 0, 1]
    assert pop.id[pop.partner].tolist() == [3, 5, 0, 2]
    # ids are never reused
    assert pop.add(1).tolist() == [4] and pop.id[4] == 6


def test_compact_keeps_everything_when_all_alive():
    pop = bound_population()
    before = {k: v.copy() for k, v in pop.state().items() if k != "pop.next_id"}
    pop.compact()
    assert all(np.array_equal(getattr(pop, k[4:]), v) for k, v in before.items())


def test_compact_refuses_a_live_cell_bound_to_a_dead_one():
    pop = bound_population()
    pop.alive[3] = 0   # target 3 dies but T0 still points at it
    with pytest.raises(RuntimeError, match="dead partner"):
        pop.compact()


def test_dead_cells_bound_to_each_other_are_dropped():
    pop = bound_population()
    pop.alive[[2, 5]] = 0
    pop.compact()
    assert pop.id.tolist() == [0, 1, 3, 4] and pop.partner.tolist() == [2, -1, 0, -1]


def test_state_round_trip():
    pop = bound_population()
    pop.granules[:] = np.linspace(0, 100, 6)
    pop.alive[1] = 0
    pop.compact()
    state = pop.state()
    again = Population.from_state(state)
    assert again.n == pop.n and again.next_id == pop.next_id == 6
    for name, (dtype, _fill) in COLUMNS.items():
        assert getattr(again, name).dtype == dtype
        assert np.array_equal(getattr(again, name), getattr(pop, name)), name
    # the state is a copy: changing the population afterwards does not change it
    pop.x[0] = 99.0
    assert state["pop.x"][0] == 0.0
    assert again.add(1).tolist() == [5] and again.id[5] == 6


def test_count_by_counts_live_cells_per_compartment_and_kind():
    pop = Population()
    pop.add(4, kind=np.array([0, 0, 3, 2]), comp=np.array([0, 1, 1, 1]))
    pop.alive[1] = 0
    counts = pop.count_by(3)
    assert counts.tolist() == [[1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]


# =========================================================================== cells

def test_lognormal_with_has_the_requested_mean_and_sd():
    z = np.random.default_rng(0).standard_normal(400_000)
    v = lognormal_with(22000.0, 7000.0, z)
    assert np.all(v > 0)
    assert v.mean() == pytest.approx(22000.0, rel=0.005)
    assert v.std() == pytest.approx(7000.0, rel=0.02)
    # log-normal: the log is normal with sigma^2 = ln(1 + cv^2)
    assert np.log(v).std() == pytest.approx(math.sqrt(math.log1p((7000 / 22000) ** 2)), rel=0.01)
    assert np.array_equal(lognormal_with(0.0, 10.0, z[:5]), np.zeros(5))
    assert np.all(lognormal_with(100.0, 0.0, z[:5]) == pytest.approx(100.0))


def test_divide_places_daughters_five_um_away_and_copies_inherited_columns():
    pop = Population()
    width, height = np.array([100.0, 50.0]), np.array([100.0, 40.0])
    pop.add(3, kind=np.array([0, 3, 1]), comp=np.array([0, 1, 0]),
            x=np.array([1.0, 49.0, 50.0]), y=np.array([99.0, 20.0, 50.0]),
            cd19=np.array([0, 30000, 0]), cd3=np.array([31000, 0, 29000]),
            granules=np.array([55.0, 0.0, 70.0]), granule_step=np.array([3, 4, 5]),
            activated_step=np.array([10, NEVER, 12]), engaged_step=np.array([20, NEVER, 22]),
            kills=np.array([4, 0, 1]), hits=np.array([0, 2, 0]),
            regulatory=np.array([0, 0, 1]), engagements=np.array([7, 0, 3]),
            clone=np.array([0, CLONE_CODE["cd19_low"], 0]), cd19_set=np.array([0, 30000, 0]),
            pdl1=np.array([0.0, 0.75, 0.0]))
    pop.partner[:] = [-1, -1, -1]
    mothers = np.array([0, 1])
    daughters = divide(pop, mothers, width, height, seed=9, step=77)
    assert daughters.tolist() == [3, 4] and pop.id[daughters].tolist() == [3, 4]
    for m, d in zip(mothers, daughters):
        c = pop.comp[m]
        angle = 2 * math.pi * oracle_uniform(9, int(pop.id[m]), 77, int(Purpose.DAUGHTER_ANGLE))
        assert pop.x[d] == pytest.approx((pop.x[m] + 5 * math.cos(angle)) % width[c], abs=1e-12)
        assert pop.y[d] == pytest.approx((pop.y[m] + 5 * math.sin(angle)) % height[c], abs=1e-12)
        dx = abs(pop.x[d] - pop.x[m])
        dy = abs(pop.y[d] - pop.y[m])
        dx, dy = min(dx, width[c] - dx), min(dy, height[c] - dy)
        assert math.hypot(dx, dy) == pytest.approx(DAUGHTER_OFFSET_UM, rel=1e-9)
        assert 0 <= pop.x[d] < width[c] and 0 <= pop.y[d] < height[c]
        for name in INHERITED:
            assert getattr(pop, name)[d] == getattr(pop, name)[m], name
        assert pop.born_step[d] == 77 and pop.kills[d] == 0 and pop.hits[d] == 0
        assert pop.partner[d] == -1 and pop.alive[d] == 1
    assert set(INHERITED) >= {"kind", "comp", "cd19", "cd3", "granules", "activated_step",
                              "regulatory", "engagements", "clone", "cd19_set", "pdl1"}
    assert pop.clone[4] == CLONE_CODE["cd19_low"] and pop.pdl1[4] == np.float32(0.75)


ONE_COMPARTMENT = {"well": Compartment()}


def test_seed_cells_places_cells_inside_and_draws_receptors():
    s = Scenario(compartments=ONE_COMPARTMENT)
    pop = Population()
    t = seed_cells(pop, s, "cd8", 0, 500, 300.0, 200.0, seed=3, step=0)
    b = seed_cells(pop, s, "blast", 0, 500, 300.0, 200.0, seed=3, step=0)
    assert np.all((pop.x >= 0) & (pop.x < 300.0) & (pop.y >= 0) & (pop.y < 200.0))
    assert np.all(pop.cd3[t] > 0) and np.all(pop.cd19[t] == 0)
    assert np.all(pop.cd19[b] > 0) and np.all(pop.cd3[b] == 0)
    # perforin-positive T cells start armed with a full store, the others empty
    armed = pop.granules[t] == 100.0
    assert np.all(armed | (pop.granules[t] == 0.0)) and np.all(pop.granules[b] == 0.0)
    assert np.array_equal(pop.armed_step[t] == 0, armed) and np.all(pop.armed_step[t][~armed] == NEVER)
    assert np.median(pop.cd19[b]) == pytest.approx(22000, rel=0.1)
    # mean CD3: 30,000 x (0.8 for TEMRA, 20% of CD8 by default; 1 otherwise) = 28,800
    assert pop.cd3[t].mean() == pytest.approx(30000 * (1 - 0.2 * 0.2), rel=0.05)
    # x is keyed by the cell id: x = width * U(seed, id, step, INIT_X)
    assert pop.x[7] == pytest.approx(300.0 * oracle_uniform(3, 7, 0, int(Purpose.INIT_X)), rel=1e-15)


def test_seed_cells_flags_regulatory_cd4_cells_by_their_keyed_draw():
    s = Scenario(regulation=Regulation(treg_fraction_of_cd4=0.25), compartments=ONE_COMPARTMENT)
    pop = Population()
    cd8 = seed_cells(pop, s, "cd8", 0, 2000, 100.0, 100.0, seed=4, step=3)
    cd4 = seed_cells(pop, s, "cd4", 0, 4000, 100.0, 100.0, seed=4, step=3)
    assert not np.any(pop.regulatory[cd8])   # only CD4 T cells can be regulatory
    u = np.array([oracle_uniform(4, int(i), 3, int(Purpose.INIT_ROLE)) for i in pop.id[cd4]])
    assert np.array_equal(pop.regulatory[cd4].astype(bool), u < 0.25)
    assert pop.regulatory[cd4].mean() == pytest.approx(0.25, abs=0.03)
    # a regulatory T cell is otherwise an ordinary CD4 T cell
    assert np.all(pop.kind[cd4] == KIND_CODE["cd4"]) and np.all(pop.cd3[cd4] > 0)
    assert np.all(pop.clone[cd4] == 0) and np.all(pop.pdl1[cd4] == 0.0)
    # default: 4.8% of CD4 cells
    pop = Population()
    rows = seed_cells(pop, Scenario(compartments=ONE_COMPARTMENT), "cd4", 0, 20000, 100.0, 100.0, seed=1, step=0)
    assert pop.regulatory[rows].mean() == pytest.approx(0.048, abs=0.005)


def test_seed_cells_draws_blast_clones_with_their_cd19_and_pdl1():
    a = Antigen(cd19_negative_fraction=0.2, cd19_low_fraction=0.3, cd19_low_factor=0.1)
    s = Scenario(antigen=a, exhaustion=Exhaustion(pdl1_blast_level=0.6))
    pop = Population()
    rows = seed_cells(pop, s, "blast", 0, 3000, 100.0, 100.0, seed=8, step=0)
    u = np.array([oracle_uniform(8, int(i), 0, int(Purpose.INIT_ROLE)) for i in pop.id[rows]])
    want = np.where(u < 0.2, CLONE_CODE["cd19_negative"],
                    np.where(u < 0.5, CLONE_CODE["cd19_low"], CLONE_CODE["cd19_positive"]))
    assert np.array_equal(pop.clone[rows], want)
    # the parental CD19 draw (median 22000, sigma_ln 0.5) scaled by the clone's factor
    z = rng.normals(8, pop.id[rows], 0, Purpose.INIT_CD19)
    parental = (22000.0 * np.exp(0.5 * z)).astype(np.float32)
    factor = np.select([want == CLONE_CODE["cd19_negative"], want == CLONE_CODE["cd19_low"]], [0.0, 0.1], 1.0)
    np.testing.assert_allclose(pop.cd19[rows], parental * factor, rtol=1e-6)
    assert np.all(pop.cd19[rows][want == CLONE_CODE["cd19_negative"]] == 0.0)
    # the heritable level is the level at birth; PD-L1 is the scenario's blast level
    assert np.array_equal(pop.cd19_set[rows], pop.cd19[rows])
    assert np.all(pop.pdl1[rows] == np.float32(0.6))
    assert np.bincount(want, minlength=4)[:3] / 3000 == pytest.approx([0.5, 0.3, 0.2], abs=0.03)
    # B cells: CD19 set to their draw, no clone, no PD-L1
    b = seed_cells(pop, s, "b", 0, 50, 100.0, 100.0, seed=8, step=0)
    assert np.array_equal(pop.cd19_set[b], pop.cd19[b]) and np.all(pop.cd19[b] > 0)
    assert np.all(pop.clone[b] == 0) and np.all(pop.pdl1[b] == 0.0)


def test_new_population_columns_have_neutral_defaults():
    pop = Population()
    pop.add(2)
    assert pop.regulatory.tolist() == [0, 0] and pop.engagements.tolist() == [0, 0]
    assert pop.clone.tolist() == [CLONE_CODE["cd19_positive"]] * 2
    assert pop.cd19_set.tolist() == [0.0, 0.0] and pop.pdl1.tolist() == [0.0, 0.0]
    assert CLONE_CODE == {"cd19_positive": 0, "cd19_low": 1, "cd19_negative": 2, "myeloid": 3}


# =========================================================================== process helpers

def test_probability_by_hand():
    assert probability(1.0, 60.0) == pytest.approx(1 - math.exp(-1), rel=1e-15)
    assert probability(2.0, 30.0) == pytest.approx(1 - math.exp(-1), rel=1e-15)
    assert probability(0.0, 10.0) == 0.0
    assert probability(1e-9, 60.0) == pytest.approx(1e-9, rel=1e-8)  # no cancellation
    assert probability(1000.0, 60.0) == 1.0


def test_steps_of():
    assert steps_of(8.0, 1.0) == 8 and steps_of(8.0, 0.5) == 16
    assert steps_of(0.2, 1.0) == 1  # at least one step


# =========================================================================== tiny models

def tiny(cd8=250_000.0, cd4=0.0, blast=250_000.0, b=0.0, conc=0.0, cd19_blast=22000.0,
         duration_h=2.0, dt=1.0, **overrides) -> Scenario:
    """One 200 x 200 x 10 um well (0.0004 uL): 250,000 cells/uL = 100 cells."""
    fields = dict(
        name="tiny", duration_h=duration_h, time_step_min=dt,
        pk=PK(model="fixed", fixed_pg_per_ml=conc), schedule=Schedule(cycles=()),
        receptors=Receptors(cd19_blast_median=cd19_blast),
        compartments={"well": Compartment(width_um=200.0, height_um=200.0, thickness_um=10.0,
                                          cells_per_ul=KindValues(cd8=cd8, cd4=cd4, b=b, blast=blast),
                                          speed_um_per_min=KindValues(cd8=10.0, cd4=10.0))})
    fields.update(overrides)
    s = Scenario(**fields)
    assert check_consistency(s) == []
    return s


def run(model: BlinaModel, steps: int) -> dict:
    seen = dict(max_synapses=0, activated=0)
    for _ in range(steps):
        model.step()
        pop = model.pop
        seen["max_synapses"] = max(seen["max_synapses"], int(np.count_nonzero(pop.partner >= 0)))
        seen["activated"] = max(seen["activated"], int(np.count_nonzero(pop.activated_step >= 0)))
    return seen


def test_tiny_model_is_populated_as_asked():
    m = BlinaModel(tiny(cd4=125_000.0))
    assert m.pop.count_by(1).tolist() == [[100, 50, 0, 100]]
    assert m.steps == 0 and m.total_steps == 120


def test_tiny_model_starts_with_the_new_state_at_rest():
    m = BlinaModel(tiny(cd4=125_000.0))
    assert m.geometry.roles == ("tissue",) and m.geometry.role_code("blood") is None
    assert m.cytokines_pg_per_ml.shape == (1, len(CYTOKINES)) and not m.cytokines_pg_per_ml.any()
    assert m.suppression.tolist() == [0.0]
    assert m.endothelial_activation == m.scenario.endothelium.rest_level == 0.1
    assert m.adhesion_stimulus == 0.0
    assert m.protocol.crs_grade == 0 and m.protocol.dex_given_h == [] and m.protocol.interrupted_at_h is None
    names = [p.name for p in m.processes]
    assert names == ["pharmacokinetics", "binding", "motility", "synapse", "lysis", "crs", "icans", "protocol",
                     "cytokines", "myeloid", "regulation", "endothelium", "antigen", "t_cell_dynamics",
                     "blast_growth", "b_cell_turnover"]   # no routes: no migration
    assert all(p.every_steps == (1 if i < 5 else 10) for i, p in enumerate(m.processes))
    # without drug an hour changes none of it (no synapse, no activity, no cytokine)
    run(m, 60)
    assert not m.cytokines_pg_per_ml.any() and m.suppression.tolist() == [0.0]
    assert m.endothelial_activation == pytest.approx(0.1, abs=1e-15) and m.adhesion_stimulus == 0.0
    assert m.crs.grade == 0 and m.crs.temperature_c == 37.0 and m.icans.grade == 0
    assert m.capillary_leak == 0.0 and m.bbb_leak == 0.0
    assert m.drain_events() == {}


def test_roles_and_route_mechanisms_reach_geometry_and_graph():
    comps = {"b": Compartment(role="blood"), "w": Compartment(role="vessel_wall"),
             "m": Compartment(role="marrow"), "c": Compartment(role="cns"), "t": Compartment()}
    routes = (Route("b", "w", KindValues(cd8=1.0), mechanism="adhesion"),
              Route("w", "b", KindValues(cd8=0.5), mechanism="detachment"),
              Route("b", "m", KindValues(cd8=0.1)))
    s = Scenario(compartments=comps, routes=routes)
    assert check_consistency(s) == []
    geo = build_geometry(s)
    assert geo.roles == ("blood", "vessel_wall", "marrow", "cns", "tissue")
    assert [geo.role_code(r) for r in ("blood", "vessel_wall", "marrow", "cns", "tissue")] == [0, 1, 2, 3, 4]
    graph = migration_graph(s)
    assert graph.edges["b", "w"]["mechanism"] == "adhesion" and graph.edges["w", "b"]["mechanism"] == "detachment"
    assert graph.edges["b", "m"]["mechanism"] == "constant" and graph.edges["b", "m"]["index"] == 2
    # one compartment per role
    s2 = Scenario(compartments={"a": Compartment(role="blood"), "b": Compartment(role="blood")})
    assert [path for path, _ in check_consistency(s2)] == ["compartments.b.role"]


def test_premedication_is_logged_in_the_interventions_table():
    s = tiny(interventions=Interventions(dexamethasone_premedication=True))
    m = BlinaModel(s)
    events = m.drain_events()   # the dose at time 0 is given when the model is built
    assert set(events) == {"interventions"}
    table = events["interventions"]
    assert table["time_h"].tolist() == [0.0] and table["value"].tolist() == [0.0]
    assert table["action"].tolist() == [ACTIONS.index("dexamethasone")] and table["action"].dtype == np.int8
    assert m.drain_events() == {}


def test_targets_without_drug_are_not_killed():
    m = BlinaModel(tiny(conc=0.0))
    seen = run(m, 60)
    assert m.steps == 60 and np.all(m.occ19 == 0) and np.all(m.occ3 == 0)
    assert seen == dict(max_synapses=0, activated=0)
    assert m.kills_total == 0 and m.pop.count_by(1).tolist() == [[100, 0, 0, 100]]


def test_drug_without_targets_activates_nothing():
    m = BlinaModel(tiny(conc=1e5, blast=0.0, cd4=250_000.0))
    seen = run(m, 60)
    assert m.occ3[0] == pytest.approx(6.944e-3, rel=1e-3)   # CD3 arm occupied (1.8 nM vs KD 260 nM)...
    assert seen == dict(max_synapses=0, activated=0)   # ...but nothing to bridge to
    assert m.pop.count_by(1).tolist() == [[100, 100, 0, 0]]


def test_cd19_negative_targets_are_never_engaged():
    m = BlinaModel(tiny(conc=1e5, cd19_blast=0.0))
    assert np.all(m.pop.cd19 == 0)
    seen = run(m, 60)
    assert seen == dict(max_synapses=0, activated=0) and m.kills_total == 0


def test_positive_control_drug_t_cells_and_targets_kill():
    """The counterpart of the negative controls: with drug, T cells and CD19+ targets the
    same tiny well forms synapses at once and kills within the hour."""
    m = BlinaModel(tiny(conc=1e4))
    # 1e4 pg/mL: C = 1.818e-10 M, occ19 = C / (C + 1.49e-9) = 0.1088
    m.step()
    assert m.occ19[0] == pytest.approx(0.10875, rel=1e-3)
    assert m.occ3[0] == pytest.approx(1.818e-10 / (1.818e-10 + 2.6e-7), rel=1e-3)
    assert np.count_nonzero(m.pop.partner >= 0) > 0
    t_rows = np.flatnonzero((m.pop.partner >= 0) & (m.pop.kind == 0))
    assert np.all(m.pop.activated_step[t_rows] == 1) and np.all(m.pop.synapse_step[t_rows] == 1)
    run(m, 59)
    assert m.kills_total > 10
    # the first kill can come no earlier than synapse + 5 + 8 + 8 minutes = step 22
    events = m.drain_events()
    assert set(events) == {"kills"}   # no protocol rule or dose in this scenario
    kills = events["kills"]
    assert set(kills) == set(KILL_COLUMNS) and len(kills["time_h"]) == m.kills_total
    assert kills["time_h"].min() * 60 >= 22 - 1e-9
    assert np.all(kills["target_kind"] == KIND_CODE["blast"])
    assert np.all(kills["compartment"] == 0)
    assert m.pop.count_by(1)[0, 3] == 100 - m.kills_total
    assert m.drain_events() == {}   # drained: nothing new


def test_runs_are_the_same_with_one_and_two_threads():
    a, b = BlinaModel(tiny(conc=300.0), threads=1), BlinaModel(tiny(conc=300.0), threads=2)
    run(a, 45)
    run(b, 45)
    for name in COLUMNS:
        assert np.array_equal(getattr(a.pop, name), getattr(b.pop, name)), name
    assert a.kills_total == b.kills_total


def test_restore_continues_exactly():
    s = tiny(conc=1e3)
    a = BlinaModel(s)
    run(a, 20)
    state = a.state()
    run(a, 25)
    b = BlinaModel(s)
    b.restore(state)
    run(b, 25)
    assert b.steps == a.steps == 45
    for name in COLUMNS:
        assert np.array_equal(getattr(a.pop, name), getattr(b.pop, name)), name
    assert np.array_equal(a.cytokines_pg_per_ml, b.cytokines_pg_per_ml) and a.cytokines_pg_per_ml.any()
    assert np.array_equal(a.suppression, b.suppression)
    assert (a.endothelial_activation, a.adhesion_stimulus) == (b.endothelial_activation, b.adhesion_stimulus)
    assert a.kills_total == b.kills_total
    obs_a, obs_b = a.observables(), b.observables()
    assert obs_a.keys() == obs_b.keys()
    for key in obs_a:   # NaN (no blood compartment here) counts as equal to NaN
        assert obs_a[key] == obs_b[key] or (math.isnan(obs_a[key]) and math.isnan(obs_b[key])), key


def test_process_parameters_by_hand():
    s = tiny(dt=0.5, motility=Motility(persistence_min=3.0),
             lysis=Lysis(first_hit_delay_min=5.0, hit_interval_min=8.0, max_hit_gap_min=50.0,
                         refill_units_per_h=40.0))
    m = BlinaModel(s)
    lysis = next(p for p in m.processes if isinstance(p, GranuleLysis))
    assert (lysis.first_hit_delay, lysis.hit_interval, lysis.max_hit_gap, lysis.max_synapse) == (10, 16, 100, 120)
    assert lysis.refill_per_step == pytest.approx(40.0 * 0.5 / 60.0)
    walk = next(p for p in m.processes if isinstance(p, RandomWalk))
    assert walk.p_turn == pytest.approx(1 - math.exp(-0.5 / 3.0))
    assert walk.step_um[0].tolist() == [5.0, 5.0, 0.0, 0.0]
    assert m.population_every_steps == 20
    m0 = BlinaModel(tiny(motility=Motility(persistence_min=0.0)))
    assert next(p for p in m0.processes if isinstance(p, RandomWalk)).p_turn == 1.0


def test_b_cell_turnover_rates_by_hand():
    s = dataclasses.replace(tiny(), compartments={
        "well": Compartment(width_um=200.0, height_um=200.0, thickness_um=10.0,
                            cells_per_ul=KindValues(b=250_000.0), b_production=True)})
    m = BlinaModel(s)
    turnover = next(p for p in m.processes if isinstance(p, BCellTurnover))
    # 100 B cells living 40 days = 960 h: per 10 min, p_die = 1 - exp(-1/5760), births 100/5760
    assert turnover.p_die == pytest.approx(1.7360e-4, rel=1e-4)
    assert turnover.mean_births == pytest.approx(100 / 5760.0, rel=1e-12)
    assert turnover.producers == [0]


def test_no_blast_growth_without_nucleated_capacity_and_growth_with_it():
    m = BlinaModel(tiny(cd8=0.0, conc=0.0, blasts=Blasts(doubling_time_days=0.1)))
    run(m, 120)
    assert m.pop.count_by(1)[0, 3] == 100   # capacity 0: no room
    comp = Compartment(width_um=200.0, height_um=200.0, thickness_um=10.0,
                       cells_per_ul=KindValues(blast=250_000.0), nucleated_cells_per_ul=1e7)
    s = dataclasses.replace(tiny(), compartments={"well": comp},
                            blasts=Blasts(doubling_time_days=0.1))
    m = BlinaModel(s)
    run(m, 120)
    # doubling time 2.4 h, capacity 4000 >> 100: two hours give ~2^(2/2.4) = 1.8x
    assert 140 < m.pop.count_by(1)[0, 3] < 230


def test_migration_moves_a_cell_at_most_once_per_interval():
    comps = {name: Compartment(width_um=100.0, height_um=100.0, thickness_um=10.0,
                               cells_per_ul=KindValues(cd8=1e6))
             for name in ("a", "b")}
    routes = (Route("a", "b", KindValues(cd8=1e4)), Route("b", "a", KindValues(cd8=1e4)))
    s = dataclasses.replace(tiny(), compartments=comps, routes=routes)
    assert check_consistency(s) == []
    m = BlinaModel(s)
    before = m.pop.comp.copy()
    assert np.bincount(before).tolist() == [100, 100]
    migration = next(p for p in m.processes if isinstance(p, Migration))
    index, source, target, mechanism, rate_by_kind = migration.routes[0]
    assert (index, source, target, mechanism) == (0, 0, 1, "constant")
    assert rate_by_kind.tolist() == [1e4, 0.0, 0.0, 0.0]   # p = 1 - exp(-1e4 / 6) == 1
    migration.step(m)
    assert np.array_equal(m.pop.comp, 1 - before)   # every cell crossed once, none came back
    assert np.all((m.pop.x >= 0) & (m.pop.x < 100.0))


def two_wells(conc: float = 100.0) -> Scenario:
    """'pair' holds T cells and blasts; 'alone' holds T cells only (no target can come)."""
    well = dict(width_um=200.0, height_um=200.0, thickness_um=10.0,
                speed_um_per_min=KindValues(cd8=10.0, cd4=10.0, blast=5.0))
    return tiny(conc=conc, compartments={
        "pair": Compartment(cells_per_ul=KindValues(cd8=250_000.0, blast=250_000.0), **well),
        "alone": Compartment(cells_per_ul=KindValues(cd8=250_000.0), **well)})


def test_contact_compartments_need_drug_and_both_free_sides():
    m = BlinaModel(two_wells())
    run(m, 5)
    pop = Population.from_state(m.pop.state())  # as motility sees it in the next step
    m.step()
    active, free_t, free_targets = m.contact_compartments()
    for c in (0, 1):
        free = (pop.alive == 1) & (pop.partner < 0) & (pop.comp == c)
        assert free_t[c] == np.count_nonzero(free & (pop.kind <= KIND_CODE["cd4"]))
        assert free_targets[c] == np.count_nonzero(free & (pop.kind >= KIND_CODE["b"]) & (pop.cd19 > 0))
    assert free_t[0] < 100  # some T cells are in synapses and not counted
    assert active.tolist() == [1, 0]
    assert BlinaModel(two_wells(conc=0.0)).contact_compartments()[0].tolist() == [0, 0]


def test_cells_walk_only_where_a_synapse_can_form():
    m = BlinaModel(two_wells())
    m.step()  # every cell has taken a heading
    pop = m.pop
    x, y = pop.x.copy(), pop.y.copy()
    free = (pop.alive == 1) & (pop.partner < 0)
    m.step()
    moved = (pop.x != x) | (pop.y != y)
    alone = free & (pop.comp == 1)
    assert alone.any() and not moved[alone].any()  # no target: the walk pauses
    assert moved[free & (pop.comp == 0)].all()     # both sides: every free cell walks


@pytest.mark.parametrize("conc", [100.0, 0.0])  # with drug; without (the model is quiet)
def test_a_model_for_views_walks_every_free_cell(conc):
    for everywhere in (False, True):
        m = BlinaModel(two_wells(conc=conc), walk_everywhere=everywhere)
        m.step()
        pop = m.pop
        x = pop.x.copy()
        free = (pop.alive == 1) & (pop.partner < 0) & (pop.comp == 1)
        m.step()
        assert (pop.x[free] != x[free]).all() == everywhere  # the T cells of the target-free well
    assert m.quiet() == (conc == 0.0)
