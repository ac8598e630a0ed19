"""Endothelial cells as agents: each equation by hand, and the vectorised update against a
plain-Python oracle that steps one cell at a time."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blinasim.model import BlinaModel
from blinasim.processes.cytokines import CYTOKINES
from blinasim.processes.endothelium import BARRIER, WALL, EndothelialActivation
from blinasim.schema import Crs, Endothelium, Interventions

from test_regulation import comp, scenario, set_time

IL2, IL6, IL10, IFNG, TNFA, IL1B = (CYTOKINES.index(n) for n in ("il2", "il6", "il10", "ifng", "tnfa", "il1b"))
UNIFORM = Endothelium(cells_per_layer=10, cell_sd_log=0.0)


def endothelium_model(conc=0.0, endothelium=UNIFORM, **overrides) -> BlinaModel:
    return BlinaModel(scenario({"blood": comp("blood"), "wall": comp("vessel_wall")}, conc=conc,
                               endothelium=endothelium, **overrides))


def wall_stimulus(m, process) -> float:
    s = process.stimulus(process.serum_signals(m), m.endothelium.threshold)
    return float(s[m.endothelium.layer == WALL][0])


def test_cells_are_two_layers_with_keyed_thresholds():
    m = endothelium_model(endothelium=Endothelium(cells_per_layer=500, cell_sd_log=0.5, bbb_resistance=3.0))
    cells = m.endothelium
    assert (cells.layer == WALL).sum() == 500 and (cells.layer == BARRIER).sum() == 500
    again = endothelium_model(endothelium=Endothelium(cells_per_layer=500, cell_sd_log=0.5, bbb_resistance=3.0))
    assert np.array_equal(cells.threshold, again.endothelium.threshold)
    wall = np.log(cells.threshold[cells.layer == WALL])
    barrier = np.log(cells.threshold[cells.layer == BARRIER])
    assert wall.std() == pytest.approx(0.5, rel=0.15)
    assert barrier.mean() - wall.mean() == pytest.approx(math.log(3.0), abs=0.1)
    assert np.all(cells.icam1 == 0.1) and not cells.vcam1.any() and np.all(cells.store == 1.0)


def test_stimulus_by_hand():
    m = endothelium_model()
    e = EndothelialActivation(m, 10)
    assert wall_stimulus(m, e) == 0.0
    serum = m.cytokines_pg_per_ml[0]
    serum[[TNFA, IFNG, IL6]] = [4.0, 6.0, 100.0]      # each at its EC50: s = 0.5
    assert wall_stimulus(m, e) == pytest.approx(1 - 0.5 ** 3, rel=1e-14)
    serum[[TNFA, IFNG, IL6]] = [8.0, 0.0, 0.0]        # 8^3 / (8^3 + 4^3) = 8/9
    assert wall_stimulus(m, e) == pytest.approx(8 / 9, rel=1e-14)
    serum[[TNFA, IL1B]] = [0.0, 5.0]                  # IL-1beta at its EC50
    assert wall_stimulus(m, e) == pytest.approx(0.5, rel=1e-14)
    # IL-2 and IL-10 do not stimulate; the wall's own cytokines are not serum
    serum[:] = 0.0
    serum[[IL2, IL10]] = 1e6
    m.cytokines_pg_per_ml[1] = 1e6
    assert wall_stimulus(m, e) == 0.0
    # tocilizumab blocks IL-6 signalling: 90% of 1000 pg/mL leaves 100 (s = 0.5)
    m.cytokines_pg_per_ml[:] = 0.0
    m.cytokines_pg_per_ml[0, IL6] = 1000.0
    m.protocol.toci_given_h = [0.0]
    assert wall_stimulus(m, e) == pytest.approx(0.5, rel=1e-14)
    # anakinra blocks IL-1beta signalling
    blocked = endothelium_model(interventions=Interventions(anakinra=0.5))
    blocked.cytokines_pg_per_ml[0, IL1B] = 10.0
    assert wall_stimulus(blocked, EndothelialActivation(blocked, 10)) == pytest.approx(0.5, rel=1e-14)
    # no serum compartment: no stimulus
    m2 = BlinaModel(scenario({"wall": comp("vessel_wall")}, endothelium=UNIFORM))
    m2.cytokines_pg_per_ml[:] = 1e6
    e2 = EndothelialActivation(m2, 10)
    assert not e2.stimulus(e2.serum_signals(m2), m2.endothelium.threshold).any()


def test_barrier_cells_need_more_cytokine():
    m = endothelium_model(endothelium=Endothelium(cells_per_layer=10, cell_sd_log=0.0, bbb_resistance=2.0))
    e = EndothelialActivation(m, 10)
    m.cytokines_pg_per_ml[0, TNFA] = 8.0
    s = e.stimulus(e.serum_signals(m), m.endothelium.threshold)
    assert s[m.endothelium.layer == WALL][0] == pytest.approx(8 / 9, rel=1e-14)
    assert s[m.endothelium.layer == BARRIER][0] == pytest.approx(0.5, rel=1e-14)   # sees 4 = EC50


@pytest.mark.parametrize("tnfa", [10.0, 4.0, 0.0])
def test_icam1_vcam1_and_the_store_follow_their_exact_solutions(tnfa):
    m = endothelium_model()
    e = EndothelialActivation(m, 10)
    m.cytokines_pg_per_ml[0, TNFA] = tnfa
    s = wall_stimulus(m, e)
    a, r, rest, exo, refill = 0.5, 0.025, 0.1, 1.0, 0.04
    cells = m.endothelium
    cells.icam1[:] = 0.05                  # below rest: recovery pushes it up
    for n in range(1, 37):
        set_time(m, 10 * n)
        e.step(m)
    t = 6.0
    i_star = (a * s + r * rest) / (a * s + r)
    v_star = a * s / (a * s + r)
    w_star = refill / (refill + exo * s)
    wall = cells.layer == WALL
    np.testing.assert_allclose(cells.icam1[wall], i_star + (0.05 - i_star) * math.exp(-(a * s + r) * t), rtol=1e-12)
    np.testing.assert_allclose(cells.vcam1[wall], v_star * -math.expm1(-(a * s + r) * t), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(cells.store[wall], w_star + (1 - w_star) * math.exp(-(exo * s + refill) * t), rtol=1e-12)


def test_pselectin_ang2_and_leak_by_hand():
    m = endothelium_model(endothelium=Endothelium(cells_per_layer=10, cell_sd_log=0.0, refill_per_h=0.0))
    e = EndothelialActivation(m, 60)       # one hour
    m.cytokines_pg_per_ml[0, TNFA] = 1e9   # S = 1 (to rounding)
    set_time(m, 60)
    e.step(m)
    cells = m.endothelium
    # dW/dt = -W: W(1 h) = e^-1, mean over the hour 1 - e^-1, P = S mean(W)
    np.testing.assert_allclose(cells.store, math.exp(-1.0), rtol=1e-9)
    np.testing.assert_allclose(cells.pselectin, -math.expm1(-1.0), rtol=1e-9)
    # Ang-2: released 1 - e^-1 of the full store in the hour at rate r(t); over one hour the
    # exact pool with the mean rate: A* = 2 + 10 (1 - e^-1) / k, A = A* + (2 - A*) e^-k
    k = math.log(2) / 18.0
    target = 2.0 + 10.0 * -math.expm1(-1.0) / k
    assert cells.ang2_ng_per_ml == pytest.approx(target + (2.0 - target) * math.exp(-k), rel=1e-9)
    assert m.observables()["ang2_ang1_ratio"] == pytest.approx(cells.ang2_ng_per_ml / 20.0, rel=1e-15)
    # leak: TNF-alpha 1e9 >> the vasodilation EC50 (2000): Vd ~ 1, times 1 - W
    np.testing.assert_allclose(cells.leak, 1.0 - math.exp(-1.0), rtol=1e-6)
    assert m.capillary_leak == pytest.approx(1.0 - math.exp(-1.0), rel=1e-6)


def test_leak_needs_vasoactive_cytokines_and_released_ang2():
    m = endothelium_model()
    e = EndothelialActivation(m, 10)
    m.cytokines_pg_per_ml[0, TNFA] = 10.0    # activates (S ~ 0.94) but far below vasodilation
    for n in range(1, 13):
        set_time(m, 10 * n)
        e.step(m)
    wall = m.endothelium.layer == WALL
    assert m.endothelium.store[wall].max() < 0.2                    # Ang-2 released
    vd = 0.005 ** 1.5 / (1.0 + 0.005 ** 1.5)                          # 10 / 2000 pg/mL
    assert m.capillary_leak == pytest.approx(vd * (1.0 - m.endothelium.store[wall][0]), rel=1e-12)
    assert m.capillary_leak < 1e-3
    # the patient's sensitivity scales the vasoactive signal: 2000 pg/mL TNF-alpha seen as 4000
    sensitive = endothelium_model(crs=Crs(sensitivity=2.0))
    cells = sensitive.endothelium
    cells.store[:] = 0.5
    sensitive.cytokines_pg_per_ml[0, TNFA] = 2000.0
    es = EndothelialActivation(sensitive, 10)
    vd = es.vasoactive(es.serum_signals(sensitive), cells.threshold)
    assert vd[0] == pytest.approx(2.0 ** 1.5 / (1.0 + 2.0 ** 1.5), rel=1e-14)


def test_adhesion_stimulus_by_hand():
    m = endothelium_model(conc=20.0)        # drug at its EC50: 0.5
    e = EndothelialActivation(m, 10)
    cells = m.endothelium
    cells.icam1[:], cells.vcam1[:], cells.pselectin[:] = 0.55, 0.5, 0.25
    e.publish(m, cells)
    # 0.5 x (0.5 x (0.55 - 0.1)/0.9 + 0.3 x 0.5 + 0.2 x 0.25) = 0.5 x 0.45
    assert m.adhesion_stimulus == pytest.approx(0.5 * 0.45, rel=1e-14)
    cells.icam1[:], cells.vcam1[:], cells.pselectin[:] = 0.1, 0.0, 0.0
    e.publish(m, cells)
    assert m.adhesion_stimulus == 0.0       # resting endothelium: no adhesion
    none = endothelium_model(conc=0.0)
    none.endothelium.icam1[:] = 1.0
    EndothelialActivation(none, 10).publish(none, none.endothelium)
    assert none.adhesion_stimulus == 0.0    # no drug: none either


@pytest.mark.parametrize("blocks,binding", [
    ((0.0, 0.0, 0.0), 1.0),
    ((1.0, 0.0, 0.0), 0.5),                 # minocycline: LFA-1/ICAM-1 (weight 0.5) gone
    ((0.0, 1.0, 0.0), 0.7),                 # natalizumab: VLA-4/VCAM-1 (0.3)
    ((0.0, 0.0, 1.0), 0.8),                 # pentosan polysulfate: P-selectin (0.2)
    ((0.5, 0.5, 0.5), 0.5),
    ((1.0, 1.0, 1.0), 0.0),                 # full blockade of all three: no adhesion
])
def test_pathway_blockades(blocks, binding):
    interventions = Interventions(minocycline=blocks[0], natalizumab=blocks[1], pentosan_polysulfate=blocks[2])
    m = endothelium_model(conc=1e9, interventions=interventions)
    cells = m.endothelium
    cells.icam1[:], cells.vcam1[:], cells.pselectin[:] = 1.0, 1.0, 1.0
    EndothelialActivation(m, 10).publish(m, cells)
    assert m.adhesion_stimulus == pytest.approx(binding * 1e9 / (1e9 + 20.0), abs=1e-15)


def test_state_round_trip():
    m = endothelium_model()
    e = EndothelialActivation(m, 10)
    m.cytokines_pg_per_ml[0, TNFA] = 50.0
    set_time(m, 10)
    e.step(m)
    fresh = endothelium_model()
    fresh.endothelium.restore(m.endothelium.state())
    for column in ("icam1", "vcam1", "store", "pselectin", "leak", "ang2_ng_per_ml"):
        assert np.array_equal(getattr(fresh.endothelium, column), getattr(m.endothelium, column)), column


# =========================================================================== oracle

def oracle_step(cells, x, e, crs, dt, drug_term, weights):
    """One interval, one cell at a time, in plain Python floats."""
    names = ("tnfa", "ifng", "il6", "il1b")
    ec50 = {"tnfa": e.tnfa_ec50_pg_per_ml, "ifng": e.ifng_ec50_pg_per_ml, "il6": e.il6_ec50_pg_per_ml,
            "il1b": e.il1b_ec50_pg_per_ml}
    vaso = {"il6": crs.fever_il6_ec50_pg_per_ml, "tnfa": crs.fever_tnfa_ec50_pg_per_ml, "il1b": crs.fever_il1b_ec50_pg_per_ml}

    def hill(v, k, n):
        return v ** n / (v ** n + k ** n) if v > 0 else 0.0
    out = {c: [] for c in ("icam1", "vcam1", "store", "pselectin", "leak")}
    released = []
    for i in range(len(cells.layer)):
        th = cells.threshold[i]
        quiet = 1.0
        for name in names:
            quiet *= 1.0 - hill(x[CYTOKINES.index(name)] / th, ec50[name], e.stimulus_hill)
        s = 1.0 - quiet
        calm = 1.0
        for name in ("il6", "tnfa", "il1b"):
            calm *= 1.0 - hill(x[CYTOKINES.index(name)] * crs.sensitivity / th, vaso[name] * crs.vasodilation_scale, crs.signal_hill)
        up, r = e.activation_per_h * s, e.recovery_per_h
        i_star = (up + r * e.rest_level) / (up + r) if up + r > 0 else cells.icam1[i]
        out["icam1"].append(i_star + (cells.icam1[i] - i_star) * math.exp(-(up + r) * dt))
        v_star = up / (up + r) if up + r > 0 else cells.vcam1[i]
        out["vcam1"].append(v_star + (cells.vcam1[i] - v_star) * math.exp(-(up + r) * dt))
        lam = e.exocytosis_per_h * s + e.refill_per_h
        w_star = e.refill_per_h / lam if lam > 0 else cells.store[i]
        w = w_star + (cells.store[i] - w_star) * math.exp(-lam * dt)
        mean_w = w_star + (cells.store[i] - w_star) * (-math.expm1(-lam * dt) / (lam * dt) if lam > 0 else 1.0)
        out["store"].append(w)
        out["pselectin"].append(s * mean_w)
        out["leak"].append((1.0 - calm) * (1.0 - w))
        if cells.layer[i] == WALL:
            released.append(e.exocytosis_per_h * s * mean_w)
    return out, sum(released) / len(released)


@settings(max_examples=40, deadline=None)
@given(tnfa=st.floats(0, 1e4), ifng=st.floats(0, 1e4), il6=st.floats(0, 1e5), il1b=st.floats(0, 1e3),
       sd=st.floats(0, 2), start=st.floats(0, 1), sensitivity=st.floats(0.01, 100))
def test_the_vectorised_update_matches_the_oracle(tnfa, ifng, il6, il1b, sd, start, sensitivity):
    endo = Endothelium(cells_per_layer=20, cell_sd_log=sd)
    m = endothelium_model(conc=5.0, endothelium=endo, crs=Crs(sensitivity=sensitivity))
    cells = m.endothelium
    cells.icam1[:], cells.vcam1[:], cells.store[:] = start, start / 2, 1.0 - start / 3
    before = {c: getattr(cells, c).copy() for c in ("icam1", "vcam1", "store")}
    m.cytokines_pg_per_ml[0, [TNFA, IFNG, IL6, IL1B]] = [tnfa, ifng, il6, il1b]
    e = EndothelialActivation(m, 10)
    x = e.serum_signals(m).copy()

    class Snapshot:
        layer, threshold = cells.layer, cells.threshold
        icam1, vcam1, store = before["icam1"], before["vcam1"], before["store"]
    want, released = oracle_step(Snapshot, x, endo, Crs(sensitivity=sensitivity), 10 / 60, None, None)
    set_time(m, 10)
    e.step(m)
    for column, values in want.items():
        np.testing.assert_allclose(getattr(cells, column), values, rtol=1e-9, atol=1e-12, err_msg=column)
    k = math.log(2) / endo.ang2_half_life_h
    target = endo.ang2_rest_ng_per_ml + endo.ang2_full_release_ng_per_ml * released / k
    assert cells.ang2_ng_per_ml == pytest.approx(target + (endo.ang2_rest_ng_per_ml - target) * math.exp(-k / 6), rel=1e-9)
