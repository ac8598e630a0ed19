"""T cells as they are: subsets, arming, the proliferative programme, exhaustion and rest,
lymphoid homing and CD69 retention. Each rule against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_regulation import BLAST, CD4, CD8, add, comp, engage, scenario, set_time

from blinasim import _contacts, rng
from blinasim.cells import seed_cells
from blinasim.model import BlinaModel
from blinasim.populations import NEVER, Population
from blinasim.processes.cytokines import CYTOKINES, CytokineRelease
from blinasim.processes.migration import Migration
from blinasim.processes.synapse import (SynapseFormation, bridges_needed, expected_bridges,
                                        lognormal_factor)
from blinasim.processes.t_cells import ActivatedTCellDynamics
from blinasim.rng import Purpose
from blinasim.scenario import ScenarioError, load_scenario_text
from blinasim.schema import (Activation, Binding, Exhaustion, Lysis, Markers, Route, Scenario,
                             SubsetMix, SubsetTraits, TSubsets)
from blinasim.units import kd_2d_per_um2

NAIVE, CM, EM, TEMRA = range(4)


# --------------------------------------------------------------------------- subsets at birth

def test_subsets_perforin_and_cd3_follow_the_keyed_draws():
    mix = SubsetMix(cd8_naive=0.4, cd8_cm=0.1, cd8_em=0.3, cd8_temra=0.2)
    s = Scenario(compartments={"blood": comp(t_subsets=mix)})
    pop = Population()
    rows = seed_cells(pop, s, "cd8", 0, 4000, 100.0, 100.0, seed=5, step=7)
    ids = pop.id[rows]
    u = rng.uniforms(5, ids, 7, Purpose.INIT_SUBSET)
    want = np.select([u < 0.4, u < 0.5, u < 0.8], [NAIVE, CM, EM], TEMRA)
    assert np.array_equal(pop.subset[rows], want)
    # perforin-positive shares of CD8: naive 0.02, CM 0.15, EM 0.6, TEMRA 0.95
    perforin = np.array([0.02, 0.15, 0.6, 0.95])[want]
    armed = rng.uniforms(5, ids, 7, Purpose.INIT_GRANULES) < perforin
    assert np.array_equal(pop.granules[rows] == 100.0, armed)
    assert np.array_equal(pop.armed_step[rows], np.where(armed, 7, NEVER))
    # CD3: the kind's log-normal draw times the subset factor (TEMRA 0.8)
    z = rng.normals(5, ids, 7, Purpose.INIT_CD3)
    sigma2 = math.log1p((6000 / 30000) ** 2)
    base = 30000 * np.exp(math.sqrt(sigma2) * z - 0.5 * sigma2)
    np.testing.assert_allclose(pop.cd3[rows], base * np.where(want == TEMRA, 0.8, 1.0), rtol=1e-6)
    assert pop.subset[rows].tolist().count(CM) == pytest.approx(400, abs=70)


def test_each_compartment_seeds_its_own_mix():
    blood = SubsetMix()
    marrow = SubsetMix(cd8_naive=0.0, cd8_cm=0.0, cd8_em=1.0, cd8_temra=0.0)
    s = Scenario(compartments={"blood": comp(t_subsets=blood), "marrow": comp(t_subsets=marrow)})
    pop = Population()
    in_marrow = seed_cells(pop, s, "cd8", 1, 300, 100.0, 100.0, seed=1, step=0)
    in_blood = seed_cells(pop, s, "cd8", 0, 300, 100.0, 100.0, seed=1, step=0)
    assert np.all(pop.subset[in_marrow] == EM)
    assert len(set(pop.subset[in_blood].tolist())) == 4


def test_subset_shares_must_add_up_to_one(tmp_path):
    text = ("name: x\nduration_h: 1\nschedule: {cycles: []}\npk: {model: fixed}\n"
            "compartments:\n  well:\n    t_subsets: {cd8_naive: 0.5, cd8_cm: 0.1, cd8_em: 0.3, cd8_temra: 0.3}\n")
    with pytest.raises(ScenarioError, match=r"x\.yaml:\d+: compartments\.well\.t_subsets\.cd8_naive: .*add up to 1\.2"):
        load_scenario_text(text, "x.yaml")


# --------------------------------------------------------------------------- bridges and thresholds

def test_vectorised_bridges_equal_the_kernel_formula():
    k19, k3 = kd_2d_per_um2(1.49e-9, 10.0), kd_2d_per_um2(2.6e-7, 10.0)
    r = np.random.default_rng(3)
    cd19, cd3 = r.uniform(0, 1e5, 50), r.uniform(0, 1e5, 50)
    cd19[:5] = 0.0
    got = expected_bridges(cd19, cd3, 6.4e-3, 3.7e-5, 0.2, 150.0, k19, k3)
    want = [_contacts.expected_bridges(a, b, 6.4e-3, 3.7e-5, 0.2, 150.0, k19, k3) for a, b in zip(cd19, cd3)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # by hand: 22,000 CD19 at theta 6.4e-3 with full capture, 30,000 CD3 at 3.7e-5
    assert expected_bridges(22000.0, 30000.0, 6.4e-3, 3.7e-5, 0.2, 150.0, 0.0, 0.0) == \
        pytest.approx(0.2 * (22000 * 6.4e-3 + 30000 * 3.7e-5))


def test_bridges_needed_by_subset_is_the_rounded_product():
    s = Scenario(binding=Binding(bridges_to_trigger=3),
                 t_subsets=TSubsets(naive=SubsetTraits(trigger_factor=5.0), cm=SubsetTraits(trigger_factor=1.5),
                                    em=SubsetTraits(trigger_factor=1.0), temra=SubsetTraits(trigger_factor=2.2)))
    assert bridges_needed(s).tolist() == [15, 4, 3, 7]   # 4.5 rounds to even (4), 6.6 -> 7


# --------------------------------------------------------------------------- arming

def test_activation_arms_unarmed_t_cells_after_a_log_normal_delay():
    s = scenario(lysis=Lysis(arming_cd8_h=24.0, arming_cd4_h=72.0, arming_sigma_log=0.5))
    m = BlinaModel(s)
    set_time(m, 100)
    unarmed8 = add(m, 50, CD8)
    unarmed4 = add(m, 50, CD4)
    armed = add(m, 10, CD8, granules=100.0, armed_step=3)
    rows = np.concatenate([unarmed8, unarmed4, armed])
    SynapseFormation(m).activate(m, rows)
    ids = m.pop.id[rows]
    assert np.all(m.pop.activated_step[rows] == 100)
    z = rng.normals(m.seed, ids[:100], 100, Purpose.ARMING)
    mean_h = np.where(np.arange(100) < 50, 24.0, 72.0)
    want = 100 + np.round(mean_h * 60 * np.exp(0.5 * z - 0.125)).astype(np.int32)
    assert np.array_equal(m.pop.armed_step[rows[:100]], want)
    assert np.all(m.pop.armed_step[armed] == 3)          # already armed: unchanged
    # first division: 24 h x first_division_factor (naive 1.5) x log-normal (sigma 0.3)
    zd = rng.normals(m.seed, ids, 100, Purpose.DIVISION_TIME)
    factor = np.array([1.5, 1.0, 1.0, 1.0])[m.pop.subset[rows]]
    want = 100 + np.round(24 * 60 * factor * np.exp(0.3 * zd - 0.045)).astype(np.int32)
    assert np.array_equal(m.pop.next_division_step[rows], want)
    assert np.all(m.pop.destiny[rows] == NEVER) and np.all(m.pop.stimulation[rows] == 0.0)


def test_lognormal_factor_has_mean_one():
    z = rng.normals(1, np.arange(200_000), 0, Purpose.ARMING)
    assert lognormal_factor(z, 0.5).mean() == pytest.approx(1.0, abs=0.01)


def test_new_synapses_add_their_bridges_to_the_stimulation_until_the_destiny_is_set():
    m = BlinaModel(scenario(conc=500.0))
    m.occ19[:] = 6.4e-3
    m.occ3[:] = 3.7e-5
    t = add(m, 3, CD8, cd3=30000.0)
    g = add(m, 3, BLAST, cd19=22000.0)
    m.pop.destiny[t[2]] = 2                                   # programme under way
    m.pop.activated_step[t[1:]] = 0
    m.pop.stimulation[t[1]] = 5.0
    engage(m, t, g, step=0)
    m.pop.activated_step[t[0]] = NEVER                        # engage() marks activation: undo
    syn = SynapseFormation(m)
    set_time(m, 40)
    syn.engage(m, t)
    b = expected_bridges(22000.0, 30000.0, 6.4e-3, 3.7e-5, 0.2, 150.0, syn.k2d19, syn.k2d3)
    np.testing.assert_allclose(m.pop.stimulation[t], [b, 5.0 + b, 0.0], rtol=1e-6)
    assert m.pop.activated_step[t].tolist() == [40, 0, 0]
    assert m.pop.engagements[t].tolist() == [1, 1, 1]


# --------------------------------------------------------------------------- the programme

def programme_model(**activation):
    act = Activation(**dict(dict(activated_death_per_day=0.0, contraction_death_per_day=0.0,
                                 memory_return_per_day=0.0), **activation))
    return BlinaModel(scenario({"a": comp(), "b": comp()}, activation=act,
                               exhaustion=Exhaustion(aicd_per_engagement_per_day=0.0, onset_per_day=0.0,
                                                     proliferation_loss=0.5)))


def test_destiny_by_hand():
    m = programme_model(stimulation_half_bridges=50.0)
    set_time(m, 600)
    n = 400
    stim = np.repeat([0.0, 50.0, 150.0, 1e6], n // 4)
    rows = add(m, n, CD8, 0, activated_step=0, next_division_step=600, stimulation=stim,
               subset=np.int8(NAIVE), exhaustion=np.float32(0.4))
    late = add(m, 5, CD8, 0, activated_step=0, next_division_step=601, stimulation=50.0)
    treg_b = add(m, 5, CD4, 1, activated_step=0, next_division_step=10, stimulation=1e6, regulatory=1)
    eff_b = add(m, 5, CD8, 1, activated_step=0, next_division_step=10, stimulation=1e6, subset=np.int8(EM))
    m.suppression[:] = [0.0, 0.5]
    ActivatedTCellDynamics(m, 10).set_destinies(m)
    # naive: D* = 8 S / (S + 50) (1 - 0.5 x 0.4) = 6.4 S / (S + 50)
    mean = 8 * stim / (stim + 50.0) * (1 - 0.5 * np.float32(0.4))
    want = np.floor(mean + rng.uniforms(m.seed, m.pop.id[rows], 600, Purpose.DESTINY)).astype(int)
    # destiny 0 ends the programme at once (destiny back to unset)
    assert np.array_equal(m.pop.destiny[rows], np.where(want == 0, NEVER, want))
    assert set(m.pop.destiny[rows][3 * n // 4:].tolist()) <= {6, 7}   # 6.4 rounds to 6 or 7
    assert np.all(m.pop.destiny[late] == NEVER)             # its first division is not due
    # destiny 0 ends the programme at once: back to rest
    zero = rows[want == 0]
    assert len(zero) >= n // 4 and np.all(m.pop.activated_step[zero] == NEVER)
    # suppression halves effector destinies, not Treg ones: EM max 6 -> 3 - 1e-4; CD4 naive 8
    assert set(m.pop.destiny[eff_b].tolist()) <= {2, 3} and np.all(m.pop.destiny[treg_b] >= 7)


def test_divisions_follow_the_destiny_without_further_synapses():
    m = programme_model(proliferation_per_day=2.0, division_time_sigma_log=0.0)
    set_time(m, 600)
    mother = add(m, 1, CD8, 0, activated_step=0, destiny=2, generation=0, next_division_step=600,
                 subset=np.int8(EM), granules=70.0, exhaustion=np.float32(0.25))
    process = ActivatedTCellDynamics(m, 10)
    process.divisions(m)
    assert m.pop.n == 2
    # 2/day: the next division 12 h = 720 steps later, for mother and daughter alike
    assert m.pop.generation.tolist() == [1, 1] and m.pop.next_division_step.tolist() == [1320, 1320]
    assert m.pop.granules.tolist() == [70.0, 70.0] and m.pop.subset.tolist() == [EM, EM]
    assert m.pop.exhaustion.tolist() == [0.25, 0.25] and m.pop.destiny.tolist() == [2, 2]
    set_time(m, 1310)
    process.divisions(m)
    assert m.pop.n == 2                                     # not yet due
    set_time(m, 1320)
    process.divisions(m)
    assert m.pop.n == 4 and m.pop.generation.tolist() == [2] * 4
    assert np.all(m.pop.next_division_step == NEVER)         # destiny reached: no more
    set_time(m, 5000)
    process.divisions(m)
    assert m.pop.n == 4 and mother.tolist() == [0]


def test_after_the_programme_cells_contract_or_return_to_rest_by_hand():
    m = programme_model(contraction_death_per_day=2.0, memory_return_per_day=1.0)
    set_time(m, 600)
    n = 3000
    subset = np.int8(NAIVE) * np.ones(n, np.int8)
    subset[: n // 3] = TEMRA
    rows = add(m, n, CD8, 0, activated_step=0, destiny=3, generation=3, subset=subset)
    busy = add(m, 10, CD8, 0, activated_step=0, destiny=3, generation=1)
    process = ActivatedTCellDynamics(m, 60)                  # one hour
    process.deaths(m)
    p = 1 - math.exp(-3.0 / 24)                              # resolves within the hour
    u = rng.uniforms(m.seed, m.pop.id[rows], 600, Purpose.RESOLVE)
    dies, rests = u < p * 2 / 3, (u >= p * 2 / 3) & (u < p)
    assert np.array_equal(m.pop.alive[rows] == 0, dies)
    assert np.all(m.pop.activated_step[rows[rests]] == NEVER)
    assert np.all(m.pop.destiny[rows[rests]] == NEVER) and np.all(m.pop.generation[rows[rests]] == 0)
    # back at rest as effector memory (TEMRA stays TEMRA)
    assert np.array_equal(m.pop.subset[rows[rests]], np.maximum(subset[rests], EM))
    stays = ~dies & ~rests
    assert np.all(m.pop.activated_step[rows[stays]] == 0)
    assert np.all(m.pop.alive[busy] == 1) and np.all(m.pop.activated_step[busy] == 0)
    assert dies.mean() == pytest.approx(p * 2 / 3, abs=0.02)


# --------------------------------------------------------------------------- exhaustion

def test_exhaustion_rises_while_engaged_and_falls_at_rest_by_hand():
    m = BlinaModel(scenario(exhaustion=Exhaustion(onset_per_day=0.24, recovery_per_day=0.48)))
    set_time(m, 600)
    engaged = add(m, 2, CD8, activated_step=0)
    g = add(m, 2, BLAST, cd19=22000.0)
    engage(m, engaged, g, step=590)
    recent = add(m, 1, CD8, activated_step=0, engaged_step=595, exhaustion=np.float32(0.5))
    resting = add(m, 1, CD8, activated_step=0, engaged_step=100, exhaustion=np.float32(0.5))
    untouched = add(m, 1, CD8)
    m.pop.exhaustion[engaged] = [0.0, 0.5]
    ActivatedTCellDynamics(m, 60).update_exhaustion(m)      # one hour
    keep_on, keep_off = math.exp(-0.01), math.exp(-0.02)
    np.testing.assert_allclose(m.pop.exhaustion[engaged], [1 - keep_on, 1 - 0.5 * keep_on], rtol=1e-6)
    assert m.pop.exhaustion[recent][0] == pytest.approx(1 - 0.5 * keep_on, rel=1e-6)
    assert m.pop.exhaustion[resting][0] == pytest.approx(0.5 * keep_off, rel=1e-6)
    assert m.pop.exhaustion[untouched][0] == 0.0


# --------------------------------------------------------------------------- cytokines

def test_only_armed_t_cells_release_effector_cytokines():
    m = BlinaModel(scenario())
    set_time(m, 10)
    unarmed = add(m, 1, CD8, activated_step=0)
    armed = add(m, 1, CD8, activated_step=0, armed_step=5)
    g = add(m, 2, BLAST, cd19=22000.0)
    engage(m, np.concatenate([unarmed, armed]), g, step=5)
    m.pop.armed_step[unarmed] = NEVER                       # engage() arms: undo for this one
    CytokineRelease(m, 10).step(m)
    both = m.cytokines_pg_per_ml[0].copy()
    m2 = BlinaModel(scenario())
    set_time(m2, 10)
    a2 = add(m2, 1, CD8, activated_step=0, armed_step=5)
    engage(m2, a2, add(m2, 1, BLAST, cd19=22000.0), step=5)
    CytokineRelease(m2, 10).step(m2)
    alone = m2.cytokines_pg_per_ml[0]
    il2 = CYTOKINES.index("il2")
    assert both[il2] == pytest.approx(2 * alone[il2])       # IL-2 from both
    effector = [i for i in range(len(CYTOKINES)) if i != il2]
    np.testing.assert_allclose(both[effector], alone[effector])   # the rest from the armed one


def test_exhaustion_lowers_cytokine_release():
    def il6_with(x):
        m = BlinaModel(scenario(exhaustion=Exhaustion(cytokine_loss=0.8)))
        set_time(m, 10)
        t = add(m, 1, CD8, activated_step=0, armed_step=0, exhaustion=np.float32(x))
        engage(m, t, add(m, 1, BLAST, cd19=22000.0), step=5)
        CytokineRelease(m, 10).step(m)
        return m.cytokines_pg_per_ml[0, CYTOKINES.index("il6")]
    assert il6_with(0.5) == pytest.approx(0.6 * il6_with(0.0), rel=1e-6)


# --------------------------------------------------------------------------- lymphoid tissue

def lymphoid_model(retention=0.9):
    comps = {"blood": comp("blood"), "node": comp("lymphoid")}
    routes = (Route(source="blood", target="node", rate_per_h=_rates(2.0)),
              Route(source="node", target="blood", rate_per_h=_rates(2.0)))
    return BlinaModel(scenario(comps, routes=routes, markers=Markers(cd69_lymphoid_retention=retention)))


def _rates(value):
    from blinasim.schema import KindValues
    return KindValues(cd8=value, cd4=value, b=value, blast=0.0)


def test_routes_into_lymphoid_tissue_scale_with_homing_and_out_with_cd69():
    m = lymphoid_model()
    set_time(m, 600)
    n = 2000
    subset = np.arange(n, dtype=np.int8) % 4
    into = add(m, n, CD8, 0, subset=subset)
    b_in = add(m, n // 4, 2, 0)                              # B cells: no homing factor
    cd69 = add(m, n // 2, CD8, 1, activated_step=0, engaged_step=500)   # CD69+ (2 h after, engaged 100 min ago)
    quiet = add(m, n // 2, CD8, 1)
    ids_in, ids_b = m.pop.id[into], m.pop.id[b_in]
    ids_69, ids_q = m.pop.id[cd69], m.pop.id[quiet]
    Migration(m, 60).step(m)                                 # one hour
    homing = np.array([1.0, 1.0, 0.05, 0.02])[subset]
    u = rng.uniforms(m.seed, ids_in, 600, Purpose.MIGRATE, 0)
    assert np.array_equal(m.pop.comp[into] == 1, u < 1 - np.exp(-2.0 * homing))
    u = rng.uniforms(m.seed, ids_b, 600, Purpose.MIGRATE, 0)
    assert np.array_equal(m.pop.comp[b_in] == 1, u < 1 - math.exp(-2.0))
    u = rng.uniforms(m.seed, ids_69, 600, Purpose.MIGRATE, 1)
    assert np.array_equal(m.pop.comp[cd69] == 0, u < 1 - math.exp(-2.0 * 0.1))
    u = rng.uniforms(m.seed, ids_q, 600, Purpose.MIGRATE, 1)
    assert np.array_equal(m.pop.comp[quiet] == 0, u < 1 - math.exp(-2.0))


# --------------------------------------------------------------------------- cohort covariate

def test_naive_odds_ratio_covariate_by_hand():
    from blinasim.cohort.covariates import subset_overrides
    from blinasim.scenario import load_scenario
    base = load_scenario("standard_cycle").scenario
    overrides = dict(o.split("=") for o in subset_overrides(base, 3.0))
    # blood CD8 naive 0.25: odds 1/3 -> 1, naive' = 0.5; memory 0.10/0.35/0.30 x (0.5/0.75)
    assert float(overrides["compartments.blood.t_subsets.cd8_naive"]) == pytest.approx(0.5)
    assert float(overrides["compartments.blood.t_subsets.cd8_em"]) == pytest.approx(0.35 * 0.5 / 0.75)
    patient = load_scenario("standard_cycle", [f"{k}={v}" for k, v in overrides.items()]).scenario
    for c in patient.compartments.values():
        for kind in ("cd8", "cd4"):
            assert sum(c.t_subsets.shares(kind)) == pytest.approx(1.0, abs=1e-12)
