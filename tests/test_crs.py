"""Myeloid amplification, the ASTCT CRS and ICANS grades and the protocol rules on them:
each equation by hand, and the myeloid update against a per-cell oracle."""
from __future__ import annotations

import math

import numpy as np
import pytest

from blinasim.model import BlinaModel
from blinasim.processes.crs import CrsSigns
from blinasim.processes.cytokines import CYTOKINES, CytokineRelease
from blinasim.processes.icans import ice_grade
from blinasim.processes.myeloid import MyeloidActivation
from blinasim.processes.protocol import ACTIONS
from blinasim.schema import Crs, Icans, Interventions, Myeloid

from test_regulation import STEP_UP, comp, engaged_pairs, scenario, set_time

IL6, IL10, TNFA, IL1B = (CYTOKINES.index(n) for n in ("il6", "il10", "tnfa", "il1b"))


def crs_model(crs=Crs(), leak=0.0, **interventions) -> BlinaModel:
    """Blood only; the vessel wall's leak (the endothelial cells' output) set by hand."""
    m = BlinaModel(scenario({"blood": comp("blood")}, crs=crs, interventions=Interventions(**interventions)))
    m.capillary_leak = leak
    return m


def signs(m, il6=0.0, tnfa=0.0, il1b=0.0) -> CrsSigns:
    m.cytokines_pg_per_ml[0, [IL6, TNFA, IL1B]] = (il6, tnfa, il1b)
    m.crs.step(m)
    return m.crs


# =========================================================================== fever, pressure, oxygen

def test_fever_by_hand():
    m = crs_model()
    assert signs(m).temperature_c == 37.0 and m.crs.grade == 0
    # IL-6 at its EC50 (1500 pg/mL) alone: P = 1/2, 37 + 4 x 1/2
    assert signs(m, il6=1500.0).temperature_c == pytest.approx(39.0, rel=1e-15)
    assert m.crs.grade == 1
    # two cytokines each at half effect: P = 1 - (1/2)(1/2)
    assert signs(m, il6=1500.0, il1b=50.0).temperature_c == pytest.approx(40.0, rel=1e-15)
    # the patient's sensitivity multiplies every concentration
    sensitive = crs_model(Crs(sensitivity=3.0))
    assert signs(sensitive, il6=500.0).temperature_c == pytest.approx(39.0, rel=1e-15)


def test_fever_threshold_by_hand():
    m = crs_model()
    # 38 degC needs P = 1/4: (x/K)^1.5 = 1/3, x = 1500 / 3^(2/3) = 721.1 pg/mL
    x = 1500.0 / 3.0 ** (2.0 / 3.0)
    assert signs(m, il6=x * 1.0001).grade == 1
    assert signs(m, il6=x * 0.9999).grade == 0


def test_pressure_and_oxygen_by_hand():
    m = crs_model(leak=0.25)
    # IL-6 at twice the fever EC50 = the vasodilation EC50: V = 1/2
    s = signs(m, il6=3000.0)
    assert s.map_mmhg == pytest.approx(90.0 - 30.0 * 0.5 - 30.0 * 0.25, rel=1e-15)     # 67.5
    assert s.vasopressors == 0
    # oxygen: 30 L/min x h(1/4; 1/2, 1.5) = 30 / (1 + 2^1.5)
    assert s.oxygen_l_per_min == pytest.approx(30.0 / (1.0 + 2.0 ** 1.5), rel=1e-14)
    # fever (P = 1 - 1/(1 + 2^1.5)) and 7.8 L/min oxygen: high flow, grade 3
    assert s.temperature_c > 38.0 and s.grade == 3
    tight = crs_model(leak=0.0)
    assert signs(tight, il6=3000.0).oxygen_l_per_min == 0.0           # no leak, no oxygen need
    assert tight.crs.map_mmhg == 75.0 and tight.crs.grade == 1


@pytest.mark.parametrize("temperature,map_mmhg,oxygen,grade", [
    (37.5, 90.0, 0.0, 0), (38.0, 90.0, 0.0, 1), (38.5, 64.0, 0.0, 2), (38.5, 90.0, 1.0, 2),
    (38.5, 90.0, 6.0, 2), (38.5, 57.0, 0.0, 3), (38.5, 90.0, 6.1, 3), (38.5, 49.0, 0.0, 4),
    (38.5, 90.0, 15.0, 4), (37.0, 40.0, 20.0, 0)])
def test_astct_grade_table(temperature, map_mmhg, oxygen, grade):
    m = crs_model()
    c = Crs()
    s = m.crs
    s.temperature_c, s.map_mmhg, s.oxygen_l_per_min = temperature, map_mmhg, oxygen
    s.vasopressors = 2 if map_mmhg < c.vasopressors_below_mmhg else int(map_mmhg < c.vasopressor_below_mmhg)
    assert s.astct_grade() == grade


def test_tocilizumab_after_onset_masks_fever_and_blocks_il6_signalling():
    m = crs_model(leak=0.25)
    set_time(m, 60)
    signs(m, il6=3000.0)
    assert m.crs.grade == 3 and m.crs.onset_h == 1.0
    m.protocol.toci_given_h = [1.5]
    m.capillary_leak = 0.0
    set_time(m, 120)
    # 90% of IL-6 signalling blocked: 300 pg/mL, no fever, no hypotension, but masked fever:
    # grading by hypotension or hypoxia alone, and there is neither -> grade 0
    assert signs(m, il6=3000.0).temperature_c < 38.0
    assert m.crs.fever_masked and m.crs.grade == 0
    m.crs.temperature_c, m.crs.map_mmhg, m.crs.vasopressors = 37.0, 60.0, 0
    assert m.crs.astct_grade() == 2                                 # hypotension without fever


def test_tocilizumab_before_onset_does_not_mask_fever():
    m = crs_model()
    m.protocol.toci_given_h = [0.0]
    set_time(m, 60)
    signs(m, il6=30000.0)
    assert m.crs.grade >= 1 and not m.crs.fever_masked


def test_anakinra_blocks_il1_signalling():
    m = crs_model(anakinra=0.75)
    assert signs(m, il1b=200.0).temperature_c == pytest.approx(39.0, rel=1e-15)   # 50 = EC50


def test_crs_pressures_out_of_order_are_rejected():
    from blinasim.schema import check_consistency
    s = scenario({"blood": comp("blood")})
    bad = type(s)(**{**s.__dict__, "crs": Crs(vasopressor_below_mmhg=70.0)})
    assert any(path == "crs.vasopressor_below_mmhg" for path, _ in check_consistency(bad))
    bad = type(s)(**{**s.__dict__, "crs": Crs(high_flow_above_l_per_min=20.0)})
    assert any(path == "crs.high_flow_above_l_per_min" for path, _ in check_consistency(bad))


def test_crs_state_round_trip():
    m = crs_model(leak=0.25)
    set_time(m, 60)
    signs(m, il6=3000.0)
    fresh = crs_model()
    fresh.crs.restore(m.crs.state())
    for name in ("temperature_c", "map_mmhg", "vasopressors", "oxygen_l_per_min", "grade", "onset_h", "fever_masked"):
        assert getattr(fresh.crs, name) == getattr(m.crs, name), name


# =========================================================================== myeloid cells

def myeloid_model(myeloid=Myeloid(), per_ul=1e6, **interventions) -> BlinaModel:
    """Blood (1e-4 uL) with 100 myeloid cells and no T cells."""
    return BlinaModel(scenario({"blood": comp("blood", myeloid_per_ul=per_ul)}, myeloid=myeloid,
                               interventions=Interventions(**interventions)))


def test_myeloid_cells_are_seeded_by_density_with_keyed_thresholds():
    m = myeloid_model(Myeloid(cell_sd_log=0.5))
    assert len(m.myeloid.comp) == 100 and not m.myeloid.activation.any()
    again = myeloid_model(Myeloid(cell_sd_log=0.5))
    assert np.array_equal(m.myeloid.threshold, again.myeloid.threshold)
    assert np.log(m.myeloid.threshold).std() == pytest.approx(0.5, rel=0.25)


def test_myeloid_activation_follows_the_exact_solution():
    m = myeloid_model(Myeloid(cell_sd_log=0.0, contact_ul_per_h=0.0, tolerance_per_h=0.0))
    p = MyeloidActivation(m, 10)
    m.cytokines_pg_per_ml[0, TNFA] = 200.0              # at the EC50, Hill 2: S = 1/2
    for n in range(1, 7):
        set_time(m, 10 * n)
        p.step(m)
    up, rec = 0.5 * 0.5, 0.15
    want = up / (up + rec) * (1.0 - math.exp(-(up + rec) * 1.0))
    np.testing.assert_allclose(m.myeloid.activation, want, rtol=1e-12)


def test_il10_dexamethasone_and_responsiveness_act_on_activation():
    def after_an_hour(model, tnfa=200.0, il10=0.0):
        p = MyeloidActivation(model, 10)
        model.cytokines_pg_per_ml[0, TNFA] = tnfa
        model.cytokines_pg_per_ml[0, IL10] = il10
        for n in range(1, 7):
            set_time(model, 10 * n)
            p.step(model)
        return model.myeloid.activation[0]

    quiet = Myeloid(cell_sd_log=0.0, contact_ul_per_h=0.0, tolerance_per_h=0.0)
    base = after_an_hour(myeloid_model(quiet))
    rec = 0.15

    def solution(up):
        return up / (up + rec) * (1.0 - math.exp(-(up + rec)))
    assert base == pytest.approx(solution(0.25), rel=1e-12)
    assert after_an_hour(myeloid_model(quiet), il10=100.0) == pytest.approx(solution(0.125), rel=1e-12)
    dex = myeloid_model(quiet)
    dex.protocol.dex_given_h = [0.0]                    # 0.7 0.5^(t/36 h) inhibition, changing in time
    assert after_an_hour(dex) < solution(0.25 * 0.31)
    doubled = myeloid_model(Myeloid(cell_sd_log=0.0, contact_ul_per_h=0.0, tolerance_per_h=0.0, responsiveness=2.0))
    assert after_an_hour(doubled, tnfa=100.0) == pytest.approx(base, rel=1e-12)


def test_tolerance_follows_activation_and_damps_it():
    m = myeloid_model(Myeloid(cell_sd_log=0.0, contact_ul_per_h=0.0, tolerance_per_h=0.5, tolerance_recovery_per_h=0.1))
    p = MyeloidActivation(m, 10)
    cells = m.myeloid
    m.cytokines_pg_per_ml[0, TNFA] = 1e9                 # S = 1
    cells.activation[:] = 0.4
    set_time(m, 10)
    p.step(m)
    # tolerance from its start value with the activation at the start of the interval
    up = 0.5 * 0.4
    want = up / (up + 0.1) * -math.expm1(-(up + 0.1) / 6.0)
    np.testing.assert_allclose(cells.tolerance, want, rtol=1e-12)
    cells.tolerance[:] = 0.75                            # a tolerant cell hardly responds
    cells.activation[:] = 0.0
    set_time(m, 20)
    p.step(m)
    up = 0.5 * 0.25
    np.testing.assert_allclose(cells.activation, up / (up + 0.15) * -math.expm1(-(up + 0.15) / 6.0), rtol=1e-12)


def test_contact_with_active_t_cells_activates_by_keyed_draws():
    def contacted(k):
        m = BlinaModel(scenario({"blood": comp("blood", myeloid_per_ul=1e7)},
                                myeloid=Myeloid(contact_ul_per_h=k, cell_sd_log=0.0, il10_ic50_pg_per_ml=1e6)))
        engaged_pairs(m, 100)                            # activity 100 in 1e-4 uL: 1e6 per uL
        set_time(m, 10)
        MyeloidActivation(m, 10).step(m)
        return m.myeloid.activation
    none = contacted(0.0)
    assert not none.any()
    a = contacted(1e-6)                                  # p = 1 - exp(-1e-6 x 1e6 / 6) = 0.154
    touched = a > 0
    assert touched.sum() == pytest.approx(1000 * -math.expm1(-1.0 / 6.0), abs=4 * math.sqrt(1000 * 0.154 * 0.846))
    full = 0.5 / 0.65 * -math.expm1(-0.65 / 6.0)         # S = 1 for one interval
    np.testing.assert_allclose(a[touched], full, rtol=1e-12)
    assert np.array_equal(a, contacted(1e-6))


def test_myeloid_release_adds_il6_and_il1b_by_hand():
    m = myeloid_model()
    m.myeloid.activation[:] = 0.5                        # summed activation 50 in 1e-7 mL
    c = CytokineRelease(m, 10)
    set_time(m, 10)
    c.step(m)
    k = c.clearance_per_h
    for column, rate_fg in ((IL6, 4.0), (IL1B, 0.005)):
        steady = 50 * rate_fg * 1e-3 / 1e-7 / k[column]
        assert m.cytokines_pg_per_ml[0, column] == pytest.approx(steady * (1 - c.decay[column]), rel=1e-12)
    assert m.il6_myeloid_share == 1.0


def test_tocilizumab_slows_il6_clearance():
    m = myeloid_model()
    m.protocol.toci_given_h = [0.0]
    m.myeloid.activation[:] = 0.5
    c = CytokineRelease(m, 10)
    set_time(m, 10)
    c.step(m)
    block = m.protocol.tocilizumab_block(10 / 60.0)
    k = 3 * math.log(2) * (1.0 - 0.7 * block)
    want = 50 * 4e-3 / 1e-7 / k * -math.expm1(-k / 6.0)
    assert m.cytokines_pg_per_ml[0, IL6] == pytest.approx(want, rel=1e-12)


def test_myeloid_update_matches_a_per_cell_oracle():
    m = BlinaModel(scenario({"blood": comp("blood", myeloid_per_ul=3e5)},
                            myeloid=Myeloid(contact_ul_per_h=1e-5, tolerance_per_h=0.3)))
    engaged_pairs(m, 20)
    cells = m.myeloid
    rand = np.random.default_rng(3)
    cells.activation[:] = rand.uniform(0, 0.5, len(cells.comp))
    cells.tolerance[:] = rand.uniform(0, 0.5, len(cells.comp))
    m.cytokines_pg_per_ml[0, [TNFA, CYTOKINES.index("ifng"), IL1B, IL10]] = [150.0, 300.0, 15.0, 40.0]
    m.protocol.dex_given_h = [0.0]
    start_a, start_t = cells.activation.copy(), cells.tolerance.copy()
    p = MyeloidActivation(m, 10)
    set_time(m, 10)
    contact = p.stimulus(m, cells) == 1.0                 # the keyed draws, taken again below
    p.step(m)
    my = m.scenario.myeloid
    dex = 1.0 - m.protocol.dexamethasone_inhibition(10 / 60)
    for i in range(len(cells.comp)):
        x = [150.0, 300.0, 15.0]
        quiet = 1.0
        for value, k in zip(x, (my.tnfa_ec50_pg_per_ml, my.ifng_ec50_pg_per_ml, my.il1b_ec50_pg_per_ml)):
            v = value / cells.threshold[i]
            quiet *= 1.0 - v * v / (v * v + k * k)
        s = 1.0 if contact[i] else 1.0 - quiet
        up = my.activation_per_h * s * (1 - start_t[i]) * dex * (1 - 40.0 / (40.0 + my.il10_ic50_pg_per_ml))
        target = up / (up + my.recovery_per_h)
        a = target + (start_a[i] - target) * math.exp(-(up + my.recovery_per_h) / 6)
        assert cells.activation[i] == pytest.approx(a, rel=1e-12)
        up_t = my.tolerance_per_h * start_a[i]
        target_t = up_t / (up_t + my.tolerance_recovery_per_h)
        assert cells.tolerance[i] == pytest.approx(target_t + (start_t[i] - target_t)
                                                    * math.exp(-(up_t + my.tolerance_recovery_per_h) / 6), rel=1e-12)


# =========================================================================== ICANS

def icans_model(icans=Icans(), **interventions) -> BlinaModel:
    comps = {"blood": comp("blood"), "cns": comp("cns")}
    return BlinaModel(scenario(comps, icans=icans, interventions=Interventions(**interventions)))


def icans_at(m, cytokines=0.0, bbb_leak=0.0):
    m.cytokines_pg_per_ml[1, [IL6, TNFA, CYTOKINES.index("ifng"), IL1B]] = [cytokines / 4] * 4
    m.bbb_leak = bbb_leak
    m.icans.step(m)
    return m.icans


@pytest.mark.parametrize("ice,grade", [(10, 0), (9, 1), (7, 1), (6, 2), (3, 2), (2, 3), (0, 3)])
def test_ice_score_grades(ice, grade):
    assert ice_grade(ice) == grade


def test_encephalopathy_and_ice_score_by_hand():
    m = icans_model()
    assert icans_at(m).ice == 10 and m.icans.grade == 0
    s = icans_at(m, cytokines=100.0)                      # at the EC50: D = 1/2, ICE 5
    assert s.encephalopathy == pytest.approx(0.5, rel=1e-14) and s.ice == 5 and s.grade == 2
    s = icans_at(m, cytokines=50.0)                       # 1/(1 + 4): D = 0.2, ICE 8
    assert s.ice == 8 and s.grade == 1
    s = icans_at(m, cytokines=100.0 * math.sqrt(0.86 / 0.14))   # D = 0.86: a seizure, grade 3
    assert s.seizure and s.grade == 3
    s = icans_at(m, cytokines=1e4)                        # D > 0.97: unarousable, grade 4
    assert s.grade == 4
    # serum cytokines are not CNS cytokines; the patient's sensitivity scales them
    m.cytokines_pg_per_ml[0] = 1e6
    assert icans_at(m).grade == 0
    sensitive = icans_model(Icans(sensitivity=2.0))
    assert icans_at(sensitive, cytokines=50.0).encephalopathy == pytest.approx(0.5, rel=1e-14)


def test_seizures_are_counted_as_episodes():
    m = icans_model()
    seizing = 100.0 * math.sqrt(0.9 / 0.1)                # D = 0.9
    counts = [icans_at(m, cytokines=c).seizures for c in (seizing, seizing, 100.0, seizing, 0.0)]
    assert counts == [1, 1, 1, 2, 2]


def test_oedema_from_the_barriers_leak():
    m = icans_model()
    assert icans_at(m, bbb_leak=0.49).grade == 0
    assert icans_at(m, bbb_leak=0.5).grade == 3
    assert icans_at(m, bbb_leak=0.8).grade == 4


def test_tocilizumab_and_anakinra_block_their_cns_signalling():
    m = icans_model(anakinra=1.0)
    m.protocol.toci_given_h = [0.0]
    m.cytokines_pg_per_ml[1, [IL6, IL1B]] = [1000.0, 1000.0]
    m.icans.step(m)
    assert m.icans.encephalopathy == pytest.approx(100 ** 2 / (100 ** 2 + 100 ** 2), rel=1e-12)  # 10% of IL-6


def test_serum_cytokines_enter_the_cns_through_the_leaky_barrier():
    m = icans_model()
    c = CytokineRelease(m, 10)
    m.cytokines_pg_per_ml[0, IL6] = 1000.0
    m.bbb_leak = 0.5
    set_time(m, 10)
    c.step(m)
    k = c.clearance_per_h[IL6]
    # influx 0.5 k 1000 per h: the CNS pool moves towards 500 at rate k
    assert m.cytokines_pg_per_ml[1, IL6] == pytest.approx(500.0 * -math.expm1(-k / 6), rel=1e-12)
    assert m.cytokines_pg_per_ml[0, IL6] == pytest.approx(1000.0 * math.exp(-k / 6), rel=1e-12)


def test_icans_state_round_trip():
    m = icans_model()
    set_time(m, 60)
    icans_at(m, cytokines=300.0)
    fresh = icans_model()
    fresh.icans.restore(m.icans.state())
    for name in ("encephalopathy", "ice", "seizure", "seizures", "grade", "onset_h"):
        assert getattr(fresh.icans, name) == getattr(m.icans, name), name


# =========================================================================== protocol rules on the grades

def graded(m, time_h, crs=0, icans=0):
    set_time(m, round(time_h * 60))
    m.crs.grade, m.icans.grade = crs, icans
    m.protocol.step(m)


def test_dexamethasone_at_a_grade_every_eight_hours():
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(dexamethasone_at_crs_grade=3, dexamethasone_at_icans_grade=2)))
    graded(m, 10.0, crs=2)
    assert m.protocol.dex_given_h == []
    graded(m, 11.0, crs=3)
    graded(m, 15.0, crs=3)                                # within 8 h: no second dose
    graded(m, 19.0, crs=3)
    graded(m, 30.0, icans=2)
    assert m.protocol.dex_given_h == [11.0, 19.0, 30.0]
    assert [e[1] for e in m.protocol.events] == [ACTIONS.index("dexamethasone")] * 3


def test_icans_interrupts_and_restart_waits_for_both_grades():
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(interrupt_at_icans_grade=3, resume_at_icans_grade=1,
                                                        interrupt_at_crs_grade=3, resume_at_crs_grade=1)))
    graded(m, 10.0, icans=3)
    assert m.pk.interrupted
    graded(m, 12.0, crs=2, icans=1)                       # CRS not yet down: stays interrupted
    assert m.pk.interrupted
    graded(m, 13.0, crs=1, icans=1)
    assert not m.pk.interrupted
    assert [e[1] for e in m.protocol.events] == [ACTIONS.index("interrupt"), ACTIONS.index("restart")]


def test_after_icans_the_restart_waits_three_days_at_grade_1():
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(interrupt_at_icans_grade=3, icans_resume_wait_h=72.0)))
    graded(m, 10.0, icans=3)
    graded(m, 20.0, icans=1)                              # resolved from 20 h ...
    graded(m, 50.0, icans=2)                              # ... but not for long: the clock restarts
    graded(m, 60.0, icans=1)
    graded(m, 131.0, icans=0)                             # 71 h at grade <= 1: still waiting
    assert m.pk.interrupted
    graded(m, 132.0, icans=0)
    assert not m.pk.interrupted
    assert [e[0] for e in m.protocol.events] == [10.0, 132.0]


def test_an_icans_interruption_unresolved_for_seven_days_stops_for_good():
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(interrupt_at_icans_grade=3, icans_stop_if_unresolved_h=168.0)))
    graded(m, 10.0, icans=3)
    graded(m, 178.0, icans=2)                             # 168 h: not more than the limit yet
    assert not m.protocol.stopped
    graded(m, 179.0, icans=2)
    assert m.protocol.stopped and m.pk.interrupted
    graded(m, 200.0, icans=0)                             # resolved later: no restart
    assert m.pk.interrupted
    assert [e[1] for e in m.protocol.events] == [ACTIONS.index("interrupt"), ACTIONS.index("stop")]


@pytest.mark.parametrize("crs, icans", [(4, 0), (0, 4)])
def test_grade_4_stops_for_good(crs, icans):
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(interrupt_at_crs_grade=3, interrupt_at_icans_grade=3,
                                                        stop_at_crs_grade=4, stop_at_icans_grade=4)))
    graded(m, 10.0, crs=3)
    graded(m, 11.0, crs=crs, icans=icans)
    graded(m, 30.0)
    graded(m, 60.0, crs=crs, icans=icans)                 # the stop is recorded once
    assert m.protocol.stopped and m.pk.interrupted and m.pk.rate_ug_per_h(m.time_min) == 0.0
    assert [e[1] for e in m.protocol.events] == [ACTIONS.index("interrupt"), ACTIONS.index("stop")]


def test_the_second_seizure_stops_for_good():
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(interrupt_at_icans_grade=3, stop_at_seizure=2)))
    m.icans.seizures = 1
    graded(m, 200.0, icans=3)
    assert not m.protocol.stopped and m.pk.interrupted
    m.icans.seizures = 2
    graded(m, 201.0, icans=3)
    assert m.protocol.stopped
    assert [e[1] for e in m.protocol.events] == [ACTIONS.index("interrupt"), ACTIONS.index("stop")]


@pytest.mark.parametrize("at_h, stops", [(10.0, True),      # step-up week: 9 ug/day
                                         (200.0, False)])   # day 8+: 28 ug/day, interrupted
def test_icans_at_the_restart_dose_stops_instead_of_interrupting(at_h, stops):
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(interrupt_at_icans_grade=3, stop_if_icans_at_restart_dose=True)))
    graded(m, at_h, icans=3)
    assert m.pk.interrupted and m.protocol.stopped == stops
    assert [e[1] for e in m.protocol.events] == [ACTIONS.index("stop" if stops else "interrupt")]


def test_icans_on_the_restart_after_a_crs_interruption_stops():
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(interrupt_at_crs_grade=3, interrupt_at_icans_grade=3,
                                                        stop_if_icans_at_restart_dose=True)))
    graded(m, 200.0, crs=3)
    graded(m, 201.0, crs=3, icans=3)                      # no infusion running: not "at 9 ug/day"
    assert m.pk.interrupted and not m.protocol.stopped
    graded(m, 210.0)                                      # restart at 9 ug/day for 7 days
    graded(m, 220.0, icans=3)
    assert m.protocol.stopped
    assert [e[1] for e in m.protocol.events] == [ACTIONS.index(a) for a in ("interrupt", "restart", "stop")]


@pytest.mark.parametrize("rule", [{"icans_stop_if_unresolved_h": 168.0}, {"stop_if_icans_at_restart_dose": True}])
def test_rules_on_an_icans_interruption_need_one(rule):
    from blinasim.schema import check_consistency
    paired = scenario({"blood": comp("blood")}, interventions=Interventions(interrupt_at_icans_grade=3, **rule))
    assert check_consistency(paired) == []
    alone = type(paired)(**{**paired.__dict__, "interventions": Interventions(**rule)})
    assert [path for path, _ in check_consistency(alone)] == [f"interventions.{next(iter(rule))}"]


def test_protocol_state_round_trip_keeps_the_interruption_and_the_stop():
    m = BlinaModel(scenario({"blood": comp("blood")}, schedule=STEP_UP,
                            interventions=Interventions(interrupt_at_icans_grade=3, icans_resume_wait_h=72.0)))
    graded(m, 10.0, icans=3)
    graded(m, 20.0, icans=1)
    fresh = BlinaModel(m.scenario)
    fresh.protocol.restore(m.protocol.state())
    for name in ("interrupted_at_h", "resolved_at_h", "for_icans", "stopped"):
        assert getattr(fresh.protocol, name) == getattr(m.protocol, name), name
