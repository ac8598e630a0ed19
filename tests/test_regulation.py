"""Hand-computed unit tests of the immune-regulation layer: the equations in the docstrings
of processes/base.py, cytokines.py, regulation.py, antigen.py, endothelium.py, protocol.py,
t_cells.py, migration.py, of pk.py (interruption, restart, step-ups) and of the model's new
read-outs and checkpoints.

Each process is driven directly on a small hand-built population (cells added with
Population.add), so that every input of its equation is known."""
from __future__ import annotations

import math

import numpy as np
import pytest

from blinasim import rng
from blinasim.model import BlinaModel
from blinasim.pk import Pharmacokinetics
from blinasim.populations import CLONE_CODE, COLUMNS, KIND_CODE
from blinasim.processes.antigen import AntigenDynamics
from blinasim.processes.base import emax, t_cell_activity
from blinasim.processes.cytokines import CYTOKINES, CytokineRelease
from blinasim.processes.migration import Migration
from blinasim.processes.protocol import ACTIONS, LONG_INTERRUPTION_H, RESTART_DAYS
from blinasim.processes.regulation import TregSuppression
from blinasim.rng import Purpose
from blinasim.scenario import load_scenario_text
from blinasim.schema import (PK, Antigen, Compartment, Cycle, CytokineKinetics,
                             Cytokines, Dosing, Infusion, Interventions,
                             KindValues, Lysis, Neurotoxicity, Regulation, Route, Scenario,
                             Schedule, check_consistency)

IL2, IL6, IL10, IFNG, TNFA = (CYTOKINES.index(n) for n in ("il2", "il6", "il10", "ifng", "tnfa"))
CD8, CD4, B, BLAST = (KIND_CODE[k] for k in ("cd8", "cd4", "b", "blast"))
NO_CYCLES = Schedule(cycles=())
STEP_UP = Schedule()   # 9 ug/day days 1-7, 28 ug/day days 8-28, 42-day cycle


def comp(role="tissue", width=100.0, height=100.0, thickness=10.0, **kw) -> Compartment:
    """An empty compartment (100 x 100 x 10 um = 1e-4 uL by default)."""
    return Compartment(width_um=width, height_um=height, thickness_um=thickness, role=role, **kw)


def scenario(comps=None, schedule=NO_CYCLES, conc=0.0, **overrides) -> Scenario:
    """A valid scenario; a fixed drug concentration unless a schedule is given."""
    fields = dict(name="regulation", duration_h=2000.0, time_step_min=1.0,
                  pk=PK(model="fixed", fixed_pg_per_ml=conc) if schedule is NO_CYCLES else PK(),
                  schedule=schedule, compartments=comps or {"well": comp()})
    fields.update(overrides)
    s = Scenario(**fields)
    assert check_consistency(s) == []
    return s


def add(model, n, kind, where=0, **columns) -> np.ndarray:
    """Append n hand-made cells to the model's population; returns their rows."""
    return model.pop.add(n, kind=kind, comp=where, **columns)


def engage(model, t_rows, target_rows, step=0) -> None:
    """Put T cells in synapse with targets (activated and engaged at `step`; armed then
    unless armed already)."""
    pop = model.pop
    pop.partner[t_rows] = target_rows
    pop.partner[target_rows] = t_rows
    pop.activated_step[t_rows] = step
    pop.armed_step[t_rows] = np.where(pop.armed_step[t_rows] == -1, step, pop.armed_step[t_rows])
    pop.engaged_step[t_rows] = step
    pop.synapse_step[t_rows] = step


def engaged_pairs(model, n, where=0, kind=CD8, regulatory=0, step=0) -> np.ndarray:
    """n T cells each engaged with a blast of the same compartment; returns the T rows."""
    t = add(model, n, kind, where, regulatory=regulatory)
    g = add(model, n, BLAST, where, cd19=22000.0, cd19_set=22000.0)
    engage(model, t, g, step)
    return t


def set_time(model, step: int) -> None:
    model.steps = step


# =========================================================================== base.py

def test_emax_by_hand():
    assert emax(2.0, 2.0) == 0.5
    assert emax(6.0, 2.0) == 0.75
    assert emax(3.0, 1.0, 2.0) == pytest.approx(0.9, rel=1e-15)      # 9 / (9 + 1)
    assert emax(10.0, 10.0, 3.0) == 0.5
    assert emax(20.0, 10.0, 3.0) == pytest.approx(8.0 / 9.0, rel=1e-15)
    assert emax(0.0, 5.0) == 0.0 and emax(-3.0, 5.0, 2.0) == 0.0     # negatives clip to 0
    np.testing.assert_allclose(emax(np.array([0.0, 1.0, 3.0, 1e12]), 1.0), [0.0, 0.5, 0.75, 1.0])


def test_t_cell_activity_is_one_while_engaged_and_decays_after():
    s = scenario(cytokines=Cytokines(activity_decay_h=2.0))
    m = BlinaModel(s)
    engaged = engaged_pairs(m, 2, step=100)
    free = add(m, 4, CD4, activated_step=10, engaged_step=np.array([400, 340, 280, 40]))
    add(m, 3, CD8)                                      # never activated: no activity
    dead = add(m, 1, CD8, activated_step=10, engaged_step=400, alive=0)
    set_time(m, 400)
    rows, activity = t_cell_activity(m)
    assert rows.tolist() == engaged.tolist() + free.tolist()
    assert dead[0] not in rows
    # since = 0, 1, 2 and 6 h with a 2-h decay
    np.testing.assert_allclose(activity, [1.0, 1.0, 1.0, math.exp(-0.5), math.exp(-1.0), math.exp(-3.0)],
                               rtol=1e-15)


# =========================================================================== cytokines

def cytokine_model(blood_share=0.0, **overrides):
    """blood (0.1 uL), vessel wall (1e-4 uL, serum share 1), marrow (4e-4 uL, serum share
    0.5), with engaged T cells: 3 effectors in blood, 2 on the vessel wall, 1 effector +
    1 Treg in the marrow."""
    comps = {"blood": comp("blood", 1000.0, 1000.0, 100.0, serum_share=blood_share),
             "wall": comp("vessel_wall", serum_share=1.0),
             "marrow": comp("marrow", 200.0, 200.0, 10.0, serum_share=0.5)}
    m = BlinaModel(scenario(comps, **overrides))
    engaged_pairs(m, 3, where=0)
    engaged_pairs(m, 2, where=1)
    engaged_pairs(m, 1, where=2)
    engaged_pairs(m, 1, where=2, kind=CD4, regulatory=1)
    return m


VOLUME_ML = np.array([1e-4, 1e-7, 4e-7])


def cytokine_steady_state(c: CytokineRelease) -> np.ndarray:
    """Hand-built plateau of every compartment (rows) and cytokine (columns).

    Release per mL: blood 3 r / V_blood; wall 2 r / V_wall; marrow (1 + f_treg) r / V_marrow
    (f_treg = 5 for IL-10, 0 otherwise). Serum also receives 1 x the wall's and 0.5 x the
    marrow's release per mL. Plateau = release per mL / k."""
    r, k = c.release_pg_per_h, c.clearance_per_h
    own = np.array([3.0 * r, 2.0 * r, (1.0 + c.treg_factor) * r]) / VOLUME_ML[:, None]
    serum = own[0] + 1.0 * own[1] + 0.5 * own[2]
    return np.array([serum, own[1], own[2]]) / k


def test_cytokine_parameters_by_hand():
    m = cytokine_model()
    c = CytokineRelease(m, 10)
    # IL-6: half-life 20 min -> k = 3 ln2 /h; 0.0013 fg/cell/h = 1.3e-6 pg/cell/h
    assert c.clearance_per_h[IL6] == pytest.approx(3 * math.log(2), rel=1e-15)
    assert c.decay[IL6] == pytest.approx(0.5 ** 0.5, rel=1e-14)     # 10 min = half a half-life
    assert c.release_pg_per_h[IL6] == pytest.approx(1.3e-6, rel=1e-15)
    assert c.treg_factor.tolist() == [0.0, 0.0, 5.0, 0.0, 0.0, 0.0]     # by default only IL-10
    np.testing.assert_allclose(c.volume_ml, VOLUME_ML, rtol=1e-12)
    steady = cytokine_steady_state(c)
    # serum IL-6 by hand: (3 x 1.3e-6 / 1e-4 + 2 x 1.3e-6 / 1e-7 + 0.5 x 1.3e-6 / 4e-7) / (3 ln2)
    assert steady[0, IL6] == pytest.approx((0.039 + 26.0 + 1.625) / (3 * math.log(2)), rel=1e-12)
    # marrow IL-10: (1 + 5) x 3.4e-6 pg/h / 4e-7 mL / (ln2 / 2 h)
    assert steady[2, IL10] == pytest.approx(6 * 3.4e-6 / 4e-7 / (math.log(2) / 2), rel=1e-12)


def test_cytokines_follow_the_analytic_solution_with_constant_release():
    m = cytokine_model()
    c = CytokineRelease(m, 10)
    k = c.clearance_per_h
    steady = cytokine_steady_state(c)
    for n in range(1, 13):
        set_time(m, 10 * n)
        c.step(m)
        t_h = n * 10 / 60.0
        np.testing.assert_allclose(m.cytokines_pg_per_ml, steady * (1 - np.exp(-k * t_h)), rtol=1e-12)


def test_blood_counts_its_own_release_once_whatever_its_serum_share():
    a, b = cytokine_model(blood_share=0.0), cytokine_model(blood_share=7.0)
    for m in (a, b):
        set_time(m, 10)
        CytokineRelease(m, 10).step(m)
    assert np.array_equal(a.cytokines_pg_per_ml, b.cytokines_pg_per_ml)


def test_serum_share_zero_keeps_release_local():
    comps = {"blood": comp("blood"), "marrow": comp("marrow")}   # serum_share 0 by default
    m = BlinaModel(scenario(comps))
    engaged_pairs(m, 4, where=1)
    c = CytokineRelease(m, 10)
    set_time(m, 10)
    c.step(m)
    assert not m.cytokines_pg_per_ml[0].any()
    np.testing.assert_allclose(m.cytokines_pg_per_ml[1], 4 * c.release_pg_per_h / 1e-7 / c.clearance_per_h
                               * (1 - c.decay), rtol=1e-12)


def test_cytokines_decay_exactly_after_release_stops():
    m = cytokine_model()
    c = CytokineRelease(m, 10)
    m.cytokines_pg_per_ml[:] = 100.0
    m.pop.alive[:] = 0                     # nobody releases
    for n in range(1, 7):
        set_time(m, 10 * n)
        c.step(m)
    np.testing.assert_allclose(m.cytokines_pg_per_ml,
                               np.tile(100.0 * np.exp(-c.clearance_per_h * 1.0), (3, 1)), rtol=1e-12)
    assert m.cytokines_pg_per_ml[0, IL6] == pytest.approx(100.0 / 8.0, rel=1e-12)  # 3 half-lives


def test_treg_factor_and_release_rates_come_from_the_scenario():
    kinetics = Cytokines(il2=CytokineKinetics(1.0, 10.0, 2.0))   # IL-2: Tregs release 2x
    m = cytokine_model(cytokines=kinetics)
    c = CytokineRelease(m, 10)
    set_time(m, 10)
    c.step(m)
    # marrow IL-2: (1 + 2 x 1) x 1e-3 pg/h / 4e-7 mL / k x (1 - e^{-k/6})
    k = math.log(2) * 6.0
    assert m.cytokines_pg_per_ml[2, IL2] == pytest.approx(3e-3 / 4e-7 / k * (1 - math.exp(-k / 6)), rel=1e-12)


def test_dexamethasone_scales_release():
    m = cytokine_model()
    c = CytokineRelease(m, 10)
    m.protocol.dex_given_h = [0.0]
    set_time(m, 36 * 60)                    # one effect half-life after the dose: I = 0.35
    assert m.protocol.dexamethasone_inhibition(36.0) == pytest.approx(0.35, rel=1e-15)
    c.step(m)
    np.testing.assert_allclose(m.cytokines_pg_per_ml, 0.65 * cytokine_steady_state(c) * (1 - c.decay),
                               rtol=1e-12)


def test_without_a_blood_compartment_there_is_no_serum_pool():
    m = BlinaModel(scenario({"wall": comp("vessel_wall", serum_share=1.0), "marrow": comp("marrow")}))
    engaged_pairs(m, 2, where=0)
    c = CytokineRelease(m, 10)
    set_time(m, 10)
    c.step(m)
    want = 2 * c.release_pg_per_h / 1e-7 / c.clearance_per_h * (1 - c.decay)
    np.testing.assert_allclose(m.cytokines_pg_per_ml[0], want, rtol=1e-12)
    assert not m.cytokines_pg_per_ml[1].any()


def test_activity_decay_lowers_release():
    m = BlinaModel(scenario({"blood": comp("blood")}, cytokines=Cytokines(activity_decay_h=1.0)))
    add(m, 1, CD8, activated_step=0, engaged_step=0, armed_step=0)   # free, last synapse at step 0
    c = CytokineRelease(m, 10)
    set_time(m, 120)                                   # 2 h later: activity e^-2
    c.step(m)
    want = math.exp(-2.0) * c.release_pg_per_h / 1e-7 / c.clearance_per_h * (1 - c.decay)
    np.testing.assert_allclose(m.cytokines_pg_per_ml[0], want, rtol=1e-12)


# =========================================================================== regulation

def test_treg_suppression_by_hand():
    s = scenario({"a": comp(), "b": comp(), "c": comp()}, cytokines=Cytokines(activity_decay_h=3.0),
                 regulation=Regulation(max_suppression=0.8, half_active_share=0.03))
    m = BlinaModel(s)
    # a: 20 T cells of which 2 engaged Tregs -> f = 2 / 20 = 0.1 -> 0.8 x 0.1 / 0.13
    engaged_pairs(m, 2, where=0, kind=CD4, regulatory=1)
    add(m, 18, CD8, 0)
    # b: 10 T cells, one free Treg whose synapse ended 3 ln2 h ago (activity 0.5), one
    #    resting Treg (never activated: no activity) -> f = 0.05 -> 0.8 x 0.05 / 0.08 = 0.5
    steps_ago = round(3 * math.log(2) * 60)
    set_time(m, 1000)
    add(m, 1, CD4, 1, regulatory=1, activated_step=0, engaged_step=1000 - steps_ago)
    add(m, 1, CD4, 1, regulatory=1)
    add(m, 8, CD8, 1, activated_step=0, engaged_step=1000)   # active effectors do not count
    # c: Tregs only, all dead; plus targets: no T cells -> 0
    add(m, 3, CD4, 2, regulatory=1, activated_step=0, engaged_step=1000, alive=0)
    add(m, 5, BLAST, 2)
    TregSuppression(m, 10).step(m)
    activity_b = math.exp(-steps_ago / 60.0 / 3.0)
    f_b = activity_b / 10
    np.testing.assert_allclose(m.suppression, [0.8 * 0.1 / 0.13, 0.8 * f_b / (f_b + 0.03), 0.0], rtol=1e-12)
    assert m.suppression[0] == pytest.approx(0.61538, abs=1e-5)
    assert m.suppression[1] == pytest.approx(0.49976, abs=1e-5)   # activity e^(-125/180) ~ 0.5


@pytest.mark.parametrize("suppression", [0.0, 0.6, 1.0])
def test_suppression_lowers_hit_success_in_the_lysis_process(suppression):
    """The lysis process passes 1 - suppression of each compartment as the hit success."""
    m = BlinaModel(scenario({"a": comp(), "b": comp()}, lysis=Lysis(first_hit_delay_min=0.0)))
    t = np.concatenate([engaged_pairs(m, 300, where=0), engaged_pairs(m, 300, where=1)])
    m.pop.granules[t] = 100.0
    m.suppression[:] = [suppression, 0.0]
    set_time(m, 1)
    next(p for p in m.processes if p.name == "lysis").step(m)
    u = rng.uniforms(m.seed, m.pop.id[t], 1, Purpose.HIT)
    landed = m.pop.hits[m.pop.partner[t]] == 1
    assert np.array_equal(landed[:300], u[:300] < 1.0 - suppression)
    assert landed[300:].all()
    assert np.all(m.pop.granules[t] == 90.0)      # every hit spends granules, landed or not


# =========================================================================== antigen

def test_internalisation_while_engaged_and_reexpression_when_free():
    a = Antigen(internalisation_per_min=0.01, reexpression_per_min=0.005)
    m = BlinaModel(scenario(antigen=a))
    t = add(m, 2, CD8)
    g = add(m, 2, np.array([BLAST, B]), cd19=np.array([20000.0, 10000.0]), cd19_set=np.array([20000.0, 30000.0]))
    engage(m, t, g)
    free = add(m, 3, np.array([BLAST, B, BLAST]), cd19=np.array([1000.0, 30000.0, 5000.0]),
               cd19_set=np.array([21000.0, 30000.0, 0.0]))
    dead = add(m, 1, BLAST, cd19=7.0, cd19_set=99.0, alive=0)
    t_cell = add(m, 1, CD8, cd19=0.0)
    process = AntigenDynamics(m, 60)                   # one-hour interval
    assert process.p_switch == 0.0
    for hour in range(1, 4):
        set_time(m, 60 * hour)
        process.step(m)
        keep_int, keep_re = math.exp(-0.6 * hour), math.exp(-0.3 * hour)
        np.testing.assert_allclose(m.pop.cd19[g], [20000.0 * keep_int, 10000.0 * keep_int], rtol=1e-5)
        np.testing.assert_allclose(m.pop.cd19[free], [21000.0 - 20000.0 * keep_re, 30000.0, 5000.0 * keep_re],
                                   rtol=1e-5)
    assert m.pop.cd19_set[g].tolist() == [20000.0, 30000.0]      # the heritable level stays
    assert m.pop.cd19[dead[0]] == 7.0 and m.pop.cd19[t_cell[0]] == 0.0
    assert m.pop.clone.tolist() == [0] * len(m.pop.clone)


def test_lineage_switch_of_free_blasts():
    m = BlinaModel(scenario(antigen=Antigen(lineage_switch_per_day=1e6)))
    t = add(m, 1, CD8)
    g = add(m, 1, BLAST, cd19=22000.0, cd19_set=22000.0)
    engage(m, t, g)
    free = add(m, 4, BLAST, cd19=22000.0, cd19_set=22000.0,
               clone=np.array([CLONE_CODE["cd19_positive"], CLONE_CODE["cd19_low"],
                               CLONE_CODE["cd19_negative"], CLONE_CODE["cd19_positive"]]))
    b = add(m, 2, B, cd19=22000.0, cd19_set=22000.0)
    process = AntigenDynamics(m, 10)
    assert process.p_switch == pytest.approx(1.0)
    set_time(m, 10)
    process.step(m)
    assert np.all(m.pop.clone[free] == CLONE_CODE["myeloid"])
    assert np.all(m.pop.cd19[free] == 0.0) and np.all(m.pop.cd19_set[free] == 0.0)
    # engaged blasts and B cells do not switch
    assert m.pop.clone[g[0]] == 0 and m.pop.cd19_set[g[0]] == 22000.0
    assert np.all(m.pop.clone[b] == 0) and np.all(m.pop.cd19_set[b] == 22000.0)
    assert m.observables()["blasts_cd19neg"] == 4.0


def test_lineage_switch_follows_the_keyed_draw():
    rate = 5.0   # per day; one-hour interval: p = 1 - exp(-5/24)
    m = BlinaModel(scenario(antigen=Antigen(lineage_switch_per_day=rate)))
    rows = add(m, 2000, BLAST, cd19=1.0, cd19_set=1.0)
    m.pop.clone[rows[:100]] = CLONE_CODE["myeloid"]
    process = AntigenDynamics(m, 60)
    p = 1 - math.exp(-rate / 24.0)
    assert process.p_switch == pytest.approx(p, rel=1e-14)
    set_time(m, 60)
    process.step(m)
    u = rng.uniforms(m.seed, m.pop.id[rows], 60, Purpose.LINEAGE_SWITCH)
    switched = (m.pop.clone[rows] == CLONE_CODE["myeloid"]) & (m.pop.cd19[rows] == 0.0)
    assert np.array_equal(switched[100:], u[100:] < p)
    assert np.all(m.pop.cd19[rows[:100]] > 0)          # already myeloid: left alone
    assert switched[100:].mean() == pytest.approx(p, abs=0.04)


# =========================================================================== protocol

def protocol_model(schedule=STEP_UP, comps=None, **interventions):
    s = scenario(comps or {"blood": comp("blood")}, schedule=schedule,
                 interventions=Interventions(**interventions))
    return BlinaModel(s)


def at(model, time_h: float, grade: int) -> None:
    """Move the model to time_h with the ASTCT CRS grade at `grade` and run the protocol once."""
    set_time(model, round(time_h * 60))
    model.crs.grade = grade
    model.protocol.step(model)


def test_dexamethasone_and_tocilizumab_decay_by_hand():
    m = protocol_model()
    p = m.protocol
    p.dex_given_h = [2.0]
    assert p.dexamethasone_inhibition(1.99) == 0.0
    assert p.dexamethasone_inhibition(2.0) == 0.7
    assert p.dexamethasone_inhibition(38.0) == pytest.approx(0.35, rel=1e-15)
    assert p.dexamethasone_inhibition(74.0) == pytest.approx(0.175, rel=1e-15)
    p.dex_given_h = [2.0, 50.0]            # the latest dose counts
    assert p.dexamethasone_inhibition(49.0) == pytest.approx(0.7 * 0.5 ** (47 / 36), rel=1e-15)
    assert p.dexamethasone_inhibition(50.0) == 0.7
    p.toci_given_h = [10.0]
    assert p.tocilizumab_block(9.0) == 0.0
    assert p.tocilizumab_block(10.0) == 0.9
    assert p.tocilizumab_block(10.0 + 11 * 24) == pytest.approx(0.45, rel=1e-15)
    assert p.tocilizumab_block(10.0 + 22 * 24) == pytest.approx(0.225, rel=1e-15)
    custom = protocol_model(dexamethasone_max_inhibition=0.5, dexamethasone_effect_half_life_h=10.0,
                            tocilizumab_block=0.6, tocilizumab_half_life_days=1.0)
    custom.protocol.dex_given_h, custom.protocol.toci_given_h = [0.0], [0.0]
    assert custom.protocol.dexamethasone_inhibition(20.0) == pytest.approx(0.125, rel=1e-15)
    assert custom.protocol.tocilizumab_block(48.0) == pytest.approx(0.15, rel=1e-15)


def test_premedication_at_the_start_and_at_each_step_up():
    two_cycles = Schedule(cycles=(Cycle(42, (Infusion(1, 7, 9.0), Infusion(8, 28, 28.0))),
                                  Cycle(42, (Infusion(1, 28, 28.0),))))
    m = protocol_model(schedule=two_cycles, dexamethasone_premedication=True,
                       dexamethasone_doses=(Dosing(5.0),))
    p = m.protocol
    assert m.pk.step_up_times_min() == [10080.0, 60480.0]
    # the dose at time 0 is given when the model is built
    assert p.dex_given_h == [0.0] and p.planned_dex_h == [5.0, 168.0, 1008.0]
    assert p.events == [(0.0, ACTIONS.index("dexamethasone"), 0.0)]
    at(m, 4.9, 0)
    assert p.dex_given_h == [0.0]
    at(m, 5.0, 0)
    at(m, 167.0, 0)
    assert p.dex_given_h == [0.0, 5.0]
    at(m, 170.0, 0)  # given at its planned time, at the first step after
    assert p.dex_given_h == [0.0, 5.0, 168.0]
    assert p.dexamethasone_inhibition(170.0) == pytest.approx(0.7 * 0.5 ** (2 / 36), rel=1e-15)
    at(m, 1008.0, 0)
    assert p.dex_given_h == [0.0, 5.0, 168.0, 1008.0] and p.planned_dex_h == []
    assert [e[1] for e in p.events] == [ACTIONS.index("dexamethasone")] * 4
    # without premedication only the explicit doses
    m = protocol_model(schedule=two_cycles, dexamethasone_doses=(Dosing(5.0),))
    assert m.protocol.dex_given_h == [] and m.protocol.planned_dex_h == [5.0]


def test_planned_tocilizumab_doses():
    m = protocol_model(tocilizumab_doses=(Dosing(0.0), Dosing(30.0)))
    assert m.protocol.toci_given_h == [0.0] and m.protocol.planned_toci_h == [30.0]
    at(m, 31.0, 0)
    assert m.protocol.toci_given_h == [0.0, 30.0]
    assert m.protocol.events[-1] == (30.0, ACTIONS.index("tocilizumab"), 0.0)


def test_tocilizumab_is_given_automatically_at_the_set_grade_once():
    m = protocol_model(tocilizumab_at_crs_grade=2)
    at(m, 10.0, 1)  # grade 1
    assert m.protocol.toci_given_h == [] and m.protocol.events == []
    at(m, 10.5, 2)  # grade 2: tocilizumab now
    assert m.protocol.toci_given_h == [10.5]
    assert m.protocol.events == [(10.5, ACTIONS.index("tocilizumab"), 0.0)]
    assert m.protocol.tocilizumab_block(10.5) == 0.9
    at(m, 11.0, 3)  # grade 3: no second dose
    assert m.protocol.crs_grade == 3 and m.protocol.toci_given_h == [10.5]
    # 0 means never
    m = protocol_model(tocilizumab_at_crs_grade=0)
    at(m, 1.0, 4)
    assert m.protocol.toci_given_h == []


def test_interruption_and_restart_at_a_reduced_rate_for_seven_days():
    m = protocol_model(interrupt_at_crs_grade=3, resume_at_crs_grade=1, restart_ug_per_day=9.0)
    p, pk = m.protocol, m.pk
    at(m, 200.0, 2)  # grade 2: nothing
    assert not pk.interrupted and p.interrupted_at_h is None
    at(m, 240.0, 3)  # day 11 at 28 ug/day, grade 3: interrupt
    assert pk.interrupted and p.interrupted_at_h == 240.0
    assert pk.rate_ug_per_h(240 * 60.0) == 0.0 and pk.rate_ug_per_h(300 * 60.0) == 0.0
    at(m, 241.0, 2)  # grade 2 > resume grade 1: stays interrupted
    assert pk.interrupted
    at(m, 243.0, 1)  # grade 1: restart at 9 ug/day for 7 days
    assert not pk.interrupted and p.interrupted_at_h is None
    assert p.events == [(240.0, ACTIONS.index("interrupt"), 0.0), (243.0, ACTIONS.index("restart"), 9.0)]
    end = 243 * 60.0 + RESTART_DAYS * 1440.0
    assert pk.restart_until_min == end
    assert pk.rate_ug_per_h(243 * 60.0) == pytest.approx(9.0 / 24)
    assert pk.rate_ug_per_h(end - 1.0) == pytest.approx(9.0 / 24)
    assert pk.rate_ug_per_h(end) == pytest.approx(28.0 / 24)        # then the schedule
    assert pk.rate_ug_per_h(28 * 1440.0) == 0.0                     # drug-free days stay free
    assert p.dex_given_h == []                                      # no premedication set
    assert m.observables()["infusion_ug_per_day"] == pytest.approx(9.0)


def test_interruption_happens_only_while_the_schedule_infuses():
    m = protocol_model(schedule=Schedule(cycles=(Cycle(42, (Infusion(1, 7, 9.0),)),)), interrupt_at_crs_grade=3)
    at(m, 200.0, 4)  # day 9: no infusion scheduled
    assert not m.pk.interrupted and m.protocol.events == []


@pytest.mark.parametrize("hours,dex", [(3.9, False), (LONG_INTERRUPTION_H, True), (6.0, True)])
def test_dexamethasone_on_restart_after_a_long_interruption(hours, dex):
    m = protocol_model(dexamethasone_premedication=True, interrupt_at_crs_grade=3, resume_at_crs_grade=0)
    m.protocol.events.clear()             # the dose at 0 (the next planned one is at 168 h)
    at(m, 100.0, 3)
    at(m, 100.0 + hours, 0)            # grade 0 -> restart
    restart = 100.0 + hours
    assert m.protocol.events[1] == (pytest.approx(restart), ACTIONS.index("restart"), 9.0)
    given = [t for t in m.protocol.dex_given_h if t > 0.0]
    assert given == ([pytest.approx(restart)] if dex else [])
    assert len(m.protocol.events) == (3 if dex else 2)


def test_restart_rate_above_the_schedule_keeps_the_schedule():
    m = protocol_model(interrupt_at_crs_grade=2, restart_ug_per_day=28.0)
    at(m, 24.0, 2)  # day 2 at 9 ug/day
    at(m, 26.0, 0)
    assert m.pk.rate_ug_per_h(26 * 60.0) == pytest.approx(9.0 / 24)
    assert m.pk.rate_ug_per_h(10080.0) == pytest.approx(28.0 / 24)   # step-up inside the window


def test_protocol_state_round_trip():
    m = protocol_model(dexamethasone_premedication=True, interrupt_at_crs_grade=3,
                       tocilizumab_at_crs_grade=2, tocilizumab_doses=(Dosing(500.0),))
    at(m, 100.0, 2)  # grade 2: tocilizumab
    at(m, 100.5, 3)  # grade 3 -> interrupt
    assert m.pk.interrupted and m.protocol.toci_given_h == [100.0]
    state = m.protocol.state()
    fresh = protocol_model(dexamethasone_premedication=True, interrupt_at_crs_grade=3,
                           tocilizumab_at_crs_grade=2, tocilizumab_doses=(Dosing(500.0),))
    fresh.protocol.restore(state)
    for name in ("dex_given_h", "toci_given_h", "planned_dex_h", "planned_toci_h",
                 "interrupted_at_h", "crs_grade"):
        assert getattr(fresh.protocol, name) == getattr(m.protocol, name), name
    assert fresh.protocol.interrupted_at_h == 100.5 and fresh.protocol.planned_toci_h == [500.0]
    # not interrupted: NaN in the state, None after restoring
    other = protocol_model()
    state = other.protocol.state()
    assert math.isnan(state["protocol.interrupted_at_h"])
    fresh.protocol.restore(state)
    assert fresh.protocol.interrupted_at_h is None and fresh.protocol.dex_given_h == []


# =========================================================================== pk

def test_scheduled_rate_is_half_open_and_sums_periods():
    pk = Pharmacokinetics(PK(), STEP_UP)
    assert pk.scheduled_rate(0.0) == 0.375 and pk.scheduled_rate(10079.9) == 0.375
    assert pk.scheduled_rate(10080.0) == 28.0 / 24 and pk.scheduled_rate(40319.0) == 28.0 / 24
    assert pk.scheduled_rate(40320.0) == 0.0 and pk.scheduled_rate(-1.0) == 0.0


def test_rate_with_interruption_and_restart():
    pk = Pharmacokinetics(PK(), STEP_UP)
    assert pk.rate_ug_per_h(20000.0) == 28.0 / 24
    pk.interrupt()
    assert pk.rate_ug_per_h(20000.0) == 0.0 and pk.rate_ug_per_h(0.0) == 0.0
    assert pk.scheduled_rate(20000.0) == 28.0 / 24          # the schedule itself is unchanged
    pk.restart(20000.0, 0.25, 1000.0)
    assert pk.rate_ug_per_h(20000.0) == 0.25 and pk.rate_ug_per_h(20999.0) == 0.25
    assert pk.rate_ug_per_h(21000.0) == 28.0 / 24
    pk.restart(40000.0, 0.25, 1000.0)                       # window crossing the end of infusion
    assert pk.rate_ug_per_h(40319.0) == 0.25 and pk.rate_ug_per_h(40320.0) == 0.0


def test_interrupted_infusion_washes_out_exactly():
    pk = Pharmacokinetics(PK(), Schedule(cycles=(Cycle(2, (Infusion(1, 2, 28.0),)),)))
    for t in range(0, 1440):
        pk.advance(float(t), 1.0)
    c0 = pk.conc_pg_per_ml
    pk.interrupt()
    k = 2.22 / 5.98
    for t in range(1440, 1500):
        pk.advance(float(t), 1.0)
    assert pk.conc_pg_per_ml == pytest.approx(c0 * math.exp(-k), rel=1e-12)
    pk.restart(1500.0, 9.0 / 24, 7 * 1440.0)
    css = 1000.0 * (9.0 / 24) / 2.22
    for t in range(1500, 1560):
        pk.advance(float(t), 1.0)
    assert pk.conc_pg_per_ml == pytest.approx(css + (c0 * math.exp(-k) - css) * math.exp(-k), rel=1e-12)


@pytest.mark.parametrize("cycles,expected", [
    ((Cycle(42, (Infusion(1, 7, 9.0), Infusion(8, 28, 28.0))),), [10080.0]),
    ((Cycle(42, (Infusion(1, 7, 9.0), Infusion(8, 28, 28.0))), Cycle(42, (Infusion(1, 28, 28.0),))),
     [10080.0, 60480.0]),                                       # a new cycle after the gap starts
    ((Cycle(28, (Infusion(1, 7, 28.0), Infusion(8, 28, 9.0))),), []),      # a step down is not
    ((Cycle(28, (Infusion(1, 7, 9.0), Infusion(8, 14, 9.0))),), []),       # nor the same rate
    ((Cycle(28, (Infusion(1, 7, 9.0), Infusion(10, 14, 9.0))),), [12960.0]),  # restart after a gap
    ((Cycle(28, (Infusion(3, 7, 9.0),)),), [2880.0]),                        # a late first start
    ((Cycle(28, (Infusion(1, 28, 28.0),)), Cycle(28, (Infusion(1, 28, 28.0),))), []),  # back to back
    ((), []),
])
def test_step_up_times(cycles, expected):
    assert Pharmacokinetics(PK(), Schedule(cycles=cycles)).step_up_times_min() == expected


def test_pk_state_round_trip():
    pk = Pharmacokinetics(PK(), STEP_UP)
    for t in range(0, 300):
        pk.advance(float(t), 1.0)
    pk.interrupt()
    state = pk.state()
    again = Pharmacokinetics(PK(), STEP_UP)
    again.restore(state)
    assert (again.conc_pg_per_ml, again.interrupted) == (pk.conc_pg_per_ml, True)
    pk.restart(300.0, 0.1, 50.0)
    again.restore(pk.state())
    assert (again.interrupted, again.restart_ug_per_h, again.restart_until_min) == (False, 0.1, 350.0)
    for t in range(300, 400):
        assert again.advance(float(t), 1.0) == pk.advance(float(t), 1.0)


# =========================================================================== T cells

def test_route_modulation_by_mechanism():
    m = BlinaModel(scenario({"blood": comp("blood"), "wall": comp("vessel_wall")},
                            routes=(Route("blood", "wall", KindValues(cd8=1.0)),)))
    migration = Migration(m, 10)
    m.adhesion_stimulus, m.bbb_leak = 0.3, 0.25
    assert migration.modulation("constant", m) == 1.0
    assert migration.modulation("adhesion", m) == 0.3
    assert migration.modulation("detachment", m) == pytest.approx(0.7)
    assert migration.modulation("transmigration", m) == pytest.approx(1.0 + 10.0 * 0.25)   # gain 10
    m.adhesion_stimulus, m.bbb_leak = 0.0, 0.0
    assert migration.modulation("adhesion", m) == 0.0 and migration.modulation("transmigration", m) == 1.0
    m.adhesion_stimulus = 1.0
    assert migration.modulation("detachment", m) == 0.0


@pytest.mark.parametrize("mechanism,stimulus,factor", [("constant", 0.3, 1.0), ("adhesion", 0.3, 0.3),
                                                        ("detachment", 0.3, 0.7), ("adhesion", 0.0, 0.0),
                                                        ("detachment", 1.0, 0.0)])
def test_migration_probability_uses_the_modulated_rate(mechanism, stimulus, factor):
    comps = {"blood": comp("blood"), "wall": comp("vessel_wall")}
    routes = (Route("blood", "wall", KindValues(cd8=2.0, cd4=2.0), mechanism=mechanism),)
    m = BlinaModel(scenario(comps, routes=routes))
    rows = add(m, 3000, np.where(np.arange(3000) % 3 == 0, CD4, CD8), 0,
               regulatory=(np.arange(3000) % 6 == 0))
    blasts = add(m, 100, BLAST, 0)          # no rate for blasts
    m.adhesion_stimulus = stimulus
    migration = Migration(m, 60)             # one hour
    set_time(m, 60)
    migration.step(m)
    p = 1 - math.exp(-2.0 * factor)
    u = rng.uniforms(m.seed, m.pop.id[rows], 60, Purpose.MIGRATE, 0)
    assert np.array_equal(m.pop.comp[rows] == 1, u < p)    # Tregs follow the CD4 rates
    assert np.all(m.pop.comp[blasts] == 0)


# =========================================================================== model

def model_with_cns(**overrides):
    comps = {"blood": comp("blood", 1000.0, 1000.0, 10.0, cells_per_ul=KindValues(cd8=1000.0)),
             "cns": comp("cns", 1000.0, 1000.0, 10.0, cells_per_ul=KindValues(cd8=1000.0, cd4=1000.0))}
    return BlinaModel(scenario(comps, neurotoxicity=Neurotoxicity(cns_t_per_ul_ref=400.0,
                                                                   cytokine_ref_pg_per_ml=100.0),
                               **overrides))


def test_neurotox_index_by_hand():
    m = model_with_cns()
    # 0.01 uL each: 10 T cells in blood, 20 in the CNS = 2000/uL baseline
    assert m.baseline_cns_t_per_ul == pytest.approx(2000.0)
    obs = m.observables()
    assert obs["cns_t_cells"] == 20.0 and obs["neurotox_index"] == 0.0
    blood_t = np.flatnonzero(m.pop.comp == 0)
    m.pop.comp[blood_t[:2]] = 1              # two more: 200/uL above baseline, ref 400 -> 0.5
    assert m.observables()["neurotox_index"] == pytest.approx(1 - math.exp(-0.5), rel=1e-14)
    m.cytokines_pg_per_ml[0, [IL6, IFNG]] = [60.0, 40.0]   # (1 + 100 / 100) doubles the term
    m.cytokines_pg_per_ml[1, :] = 1e6                      # CNS cytokines are not serum
    assert m.observables()["neurotox_index"] == pytest.approx(1 - math.exp(-1.0), rel=1e-14)
    m.protocol.toci_given_h = [0.0]                        # IL-6 signal 6: (1 + 46 / 100)
    assert m.observables()["neurotox_index"] == pytest.approx(1 - math.exp(-0.5 * 1.46), rel=1e-14)
    m.pop.alive[np.flatnonzero(m.pop.comp == 1)[:5]] = 0   # below the baseline: 0
    assert m.observables()["neurotox_index"] == 0.0
    assert m.observables()["cns_t_cells"] == 17.0


def test_no_cns_compartment_gives_a_zero_index():
    m = BlinaModel(scenario({"blood": comp("blood")}))
    assert m.baseline_cns_t_per_ul == 0.0 and m.observables()["neurotox_index"] == 0.0
    assert m.observables()["cns_t_cells"] == 0.0


def test_new_observables_at_time_zero():
    comps = {"blood": comp("blood", 1000.0, 1000.0, 100.0,
                           cells_per_ul=KindValues(cd8=50_000.0, cd4=200_000.0, b=1000.0)),
             "marrow": comp("marrow", 200.0, 200.0, 10.0, cells_per_ul=KindValues(blast=1e6, cd8=1e5)),
             "wall": comp("vessel_wall"), "cns": comp("cns")}
    m = BlinaModel(scenario(comps, schedule=STEP_UP, antigen=Antigen(cd19_negative_fraction=0.25)))
    obs = m.observables()
    for name in CYTOKINES:
        assert obs[f"{name}_pg_per_ml"] == 0.0
    assert obs["crs_grade"] == 0.0 and obs["infusion_ug_per_day"] == pytest.approx(9.0)
    assert obs["treg_fraction_of_cd4"] == pytest.approx(0.048, abs=0.005)    # of 20,000 CD4 cells
    regulatory = m.pop.regulatory[(m.pop.comp == 0) & (m.pop.kind == CD4)]
    assert obs["treg_fraction_of_cd4"] == regulatory.mean()
    blasts = m.pop.kind == BLAST
    assert obs["blasts_cd19neg"] == np.count_nonzero(m.pop.clone[blasts] == CLONE_CODE["cd19_negative"])
    assert obs["blasts_cd19neg"] / blasts.sum() == pytest.approx(0.25, abs=0.1)
    assert obs["cd69_pos_fraction"] == 0.0 and obs["cd25_pos_fraction"] == 0.0
    assert obs["endothelial_activation"] == 0.1 and obs["t_adhered_endothelium"] == 0.0
    assert obs["cns_t_cells"] == 0.0 and obs["neurotox_index"] == 0.0
    assert obs["monocyte_activation"] == 0.0 and obs["macrophage_activation"] == 0.0   # none here
    assert all(math.isfinite(v) for v in obs.values())


CHECKPOINT_YAML = """
name: checkpoint
duration_h: 10
time_step_min: 1.0
schedule:
  cycles:
    - length_days: 2
      infusions: [{from_day: 1, to_day: 2, ug_per_day: 200}]
interventions:
  dexamethasone_premedication: true
  dexamethasone_doses: [{time_h: 1.5}]
  tocilizumab_doses: [{time_h: 1.75}]
cytokines:
  activity_decay_h: 1.0
  il6: {release_fg_per_cell_per_h: 2000, half_life_min: 20}
  tnfa: {release_fg_per_cell_per_h: 2000, half_life_min: 20}
regulation: {treg_fraction_of_cd4: 0.3}
antigen: {lineage_switch_per_day: 5, internalisation_per_min: 0.05}
exhaustion: {pdl1_blast_level: 0.5}
endothelium: {activation_per_h: 5.0}
compartments:
  blood:
    role: blood
    width_um: 300
    height_um: 300
    thickness_um: 20
    cells_per_ul: {cd8: 300000, cd4: 300000, b: 300000}
    myeloid_per_ul: 100000
    speed_um_per_min: {cd8: 30, cd4: 30, b: 30}
  marrow:
    role: marrow
    width_um: 200
    height_um: 200
    thickness_um: 10
    nucleated_cells_per_ul: 1000000
    cells_per_ul: {cd8: 100000, cd4: 100000, blast: 500000}
    myeloid_per_ul: 100000
    speed_um_per_min: {cd8: 10, cd4: 10}
  wall: {role: vessel_wall, width_um: 100, height_um: 100}
  cns: {role: cns, width_um: 100, height_um: 100}
routes:
  - {source: blood, target: wall, mechanism: adhesion, rate_per_h: {cd8: 2, cd4: 2}}
  - {source: wall, target: blood, mechanism: detachment, rate_per_h: {cd8: 1, cd4: 1}}
  - {source: wall, target: cns, rate_per_h: {cd8: 0.5, cd4: 0.5}}
  - {source: marrow, target: blood, rate_per_h: {cd8: 0.1, cd4: 0.1}}
  - {source: blood, target: marrow, rate_per_h: {cd8: 0.1, cd4: 0.1}}
"""


def same(a, b) -> bool:
    """Equal values, NaN equal to NaN, arrays compared elementwise (and by dtype)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def run_recording(model, steps):
    rows = []
    for _ in range(steps):
        model.step()
        rows.append(model.observables())
    return rows


@pytest.mark.parametrize("checkpoint", [80, 85])   # on and between population intervals
def test_checkpoint_restore_continues_bit_identically_with_the_new_state(checkpoint):
    s = load_scenario_text(CHECKPOINT_YAML).scenario
    a = BlinaModel(s)
    run_recording(a, checkpoint)
    a.drain_events()
    state = a.state()
    after_a = run_recording(a, 140 - checkpoint)
    events_a = a.drain_events()
    b = BlinaModel(s)
    b.restore(state)
    assert b.steps == checkpoint and b.drain_events() == {}
    after_b = run_recording(b, 140 - checkpoint)
    events_b = b.drain_events()
    assert len(after_a) == len(after_b) == 140 - checkpoint
    for row_a, row_b in zip(after_a, after_b):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            assert same(row_a[key], row_b[key]), key
    for name in COLUMNS:
        assert same(getattr(a.pop, name), getattr(b.pop, name)), name
    assert np.array_equal(a.cytokines_pg_per_ml, b.cytokines_pg_per_ml)
    assert np.array_equal(a.suppression, b.suppression)
    assert (a.endothelial_activation, a.adhesion_stimulus) == (b.endothelial_activation, b.adhesion_stimulus)
    assert a.protocol.state().keys() == b.protocol.state().keys()
    for key, value in a.protocol.state().items():
        assert same(value, b.protocol.state()[key]), key
    assert events_a.keys() == events_b.keys()
    for table in events_a:
        for column in events_a[table]:
            assert same(events_a[table][column], events_b[table][column]), (table, column)
    # the run exercises the new state: cytokines, suppression, activation, adhesion, the
    # interventions logged after the checkpoint (dexamethasone at 1.5 h, tocilizumab at 1.75 h)
    assert a.cytokines_pg_per_ml[0, IL6] > 0 and a.suppression.max() > 0
    assert a.endothelial_activation > 0.1 and a.adhesion_stimulus > 0
    assert events_a["interventions"]["action"].tolist() == [ACTIONS.index("dexamethasone"),
                                                            ACTIONS.index("tocilizumab")]
    assert "kills" in events_a and after_a[-1]["t_adhered_endothelium"] > 0
