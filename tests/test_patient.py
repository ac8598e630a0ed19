"""The patient at full scale: weighted blasts (sampling), burden and crowding, the clinic's
assays and response, assessment days, per-m2 dosing, and quiet stepping. Hand-computed."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_regulation import BLAST, CD8, add, comp, engage, scenario

from blinasim import assays, rng
from blinasim.burden import blast_burden
from blinasim.convergence import full_runs, largest_z, sampled_runs
from blinasim.model import BlinaModel
from blinasim.pk import infusion_periods
from blinasim.populations import CLONE_CODE
from blinasim.processes.assessment import assessment_days, transplant_day
from blinasim.processes.blasts import BlastGrowth
from blinasim.processes.sampling import BlastSampling
from blinasim.rng import Purpose
from blinasim.schema import Cycle, Infusion, KindValues, Patient, Schedule

# a 100 x 100 x 10 um marrow slab (1e-4 uL, 100 nucleated cells) sampling 1 uL of marrow:
# every blast stands for 1e4 patient cells
SCALE = 1e4


def marrow(**kw):
    return comp("marrow", nucleated_cells_per_ul=1e6, patient_volume_ul=1e-4 * SCALE, **kw)


def patient_model(comps=None, conc=0.0, **overrides) -> BlinaModel:
    return BlinaModel(scenario(comps or {"marrow": marrow()}, conc=conc, **overrides), seed=3)


# --------------------------------------------------------------------------- weights and sampling

def test_blasts_of_a_sampled_compartment_carry_the_site_scale():
    s = scenario({"marrow": marrow(cells_per_ul=KindValues(cd8=2e5, blast=3e5)),
                  "cns": comp("cns", cells_per_ul=KindValues(blast=1e5))}, conc=0.0)
    m = BlinaModel(s, seed=1)
    pop = m.pop
    assert m.geometry.scale.tolist() == [SCALE, 1.0]
    assert np.all(pop.weight[(pop.kind == BLAST) & (pop.comp == 0)] == SCALE)
    assert np.all(pop.weight[(pop.kind == CD8) | (pop.comp == 1)] == 1.0)
    burden = blast_burden(m)
    assert burden.per_compartment.tolist() == [30 * SCALE, 10.0]
    # 30 blasts x 1e4 of 100 x 1e4 nucleated marrow cells
    assert burden.marrow_fraction == pytest.approx(0.3)


def test_split_halves_weights_keeps_the_burden_and_copies_the_clone():
    m = patient_model()
    rows = add(m, 10, BLAST, weight=1000.0, clone=CLONE_CODE["cd19_low"], cd19=500.0, cd19_set=500.0)
    engaged_t = add(m, 1, CD8)
    engage(m, engaged_t, rows[:1])
    BlastSampling(m, 10).step(m)
    pop = m.pop
    blasts = pop.kind == BLAST
    # 9 free blasts split (engaged one untouched): 19 agents, 1000 + 18 x 500
    assert np.count_nonzero(blasts) == 19
    assert pop.weight[blasts].sum() == 10_000.0
    assert sorted(set(pop.weight[blasts].tolist())) == [500.0, 1000.0]
    assert np.all(pop.clone[blasts] == CLONE_CODE["cd19_low"])
    copies = np.flatnonzero(blasts)[10:]
    ids = pop.id[rows[1:]]
    np.testing.assert_array_equal(pop.x[copies], 100.0 * rng.uniforms(3, ids, 0, Purpose.SPLIT_X))


def test_no_split_at_or_above_the_floor():
    m = patient_model(patient=Patient(min_blast_agents=5))
    add(m, 5, BLAST, weight=64.0)
    BlastSampling(m, 10).step(m)
    assert m.pop.n == 5 and m.pop.weight.sum() == 320.0


def test_weights_between_one_and_two_become_single_cells_keeping_the_expected_burden():
    m = patient_model(patient=Patient(min_blast_agents=30000))   # neither split (w < 2) nor thinned
    rows = add(m, 20000, BLAST, weight=1.25)
    u = rng.uniforms(3, m.pop.id[rows], 0, Purpose.DISCRETISE)
    BlastSampling(m, 10).step(m)
    pop = m.pop
    assert np.all(pop.weight == 1.0)
    assert pop.n == 20000 + np.count_nonzero(u < 0.25)
    assert pop.n == pytest.approx(25000, rel=0.01)


def test_sentinels_beyond_what_the_site_needs_are_thinned():
    """400 agents of weight 100 stand for 4e4 cells, 4 agents' worth at the scale of 1e4:
    above twice the floor of 50 they are thinned (each kept with p 1/2, weight doubled)."""
    m = patient_model()
    rows = add(m, 400, BLAST, weight=100.0)
    kept = rng.uniforms(3, m.pop.id[rows], 0, Purpose.THIN) >= 0.5
    BlastSampling(m, 10).step(m)
    assert np.array_equal(m.pop.alive == 1, kept)
    assert np.all(m.pop.weight[kept] == 200.0)
    m = patient_model()
    add(m, 100, BLAST, weight=100.0)     # not more than twice the floor: kept as they are
    BlastSampling(m, 10).step(m)
    assert m.pop.n == 100 and np.all(m.pop.alive == 1)


def test_thinning_above_the_ceiling_keeps_the_expected_burden():
    m = patient_model(patient=Patient(max_blast_agents=1000))
    rows = add(m, 4000, BLAST, weight=8.0)
    dropped = rng.uniforms(3, m.pop.id[rows], 0, Purpose.THIN) < 0.5
    BlastSampling(m, 10).step(m)
    pop = m.pop
    assert np.array_equal(pop.alive == 0, dropped)
    assert np.all(pop.weight[pop.alive == 1] == 16.0)
    assert pop.weight[pop.alive == 1].sum() == pytest.approx(32000, rel=0.05)


def test_heavy_arrivals_are_reweighted_to_the_compartment_scale():
    """A blast of weight 3.5 x 1e4 arriving from a coarser site becomes 4 of 8,750."""
    m = patient_model(patient=Patient(min_blast_agents=1))
    add(m, 1, BLAST, weight=3.5 * SCALE)
    add(m, 1, BLAST, weight=1.5 * SCALE)      # not heavier than twice the scale: kept
    BlastSampling(m, 10).step(m)
    pop = m.pop
    assert sorted(pop.weight.tolist()) == [8750.0] * 4 + [1.5 * SCALE]
    assert pop.weight.sum() == 5.0 * SCALE


def test_blasts_cannot_move_from_a_sampled_to_an_unsampled_compartment():
    from blinasim.scenario import ScenarioError, load_scenario_text
    text = """\
name: t
pk: {model: fixed}
compartments:
  marrow: {role: marrow, patient_volume_ul: 1000}
  dish: {}
routes:
  - {source: marrow, target: dish, rate_per_h: {blast: 0.1}}
"""
    with pytest.raises(ScenarioError, match="routes.0.rate_per_h.blast"):
        load_scenario_text(text, "t.yaml")


def test_crowding_uses_the_patient_burden():
    """room = 1 - N/K with N the summed weights and K the site's nucleated cells (1e6)."""
    m = patient_model()
    add(m, 25, BLAST, weight=2e4)   # 5e5 of 1e6: room 0.5
    growth = BlastGrowth(m, 10)
    m.steps = 10
    p = -math.expm1(-growth.rate_per_h * 0.5 * 10 / 60)
    u = rng.uniforms(3, m.pop.id[:25], 10, Purpose.PROLIFERATE)
    growth.step(m)
    assert m.pop.n == 25 + np.count_nonzero(u < p)
    assert np.all(m.pop.weight == 2e4)


def test_burden_reads_blood_extramedullary_cns_and_cd19_negative():
    comps = {"blood": comp("blood", patient_volume_ul=1e-4 * 5e4), "marrow": marrow(),
             "emd": comp("extramedullary"), "cns": comp("cns")}
    m = patient_model(comps)
    add(m, 4, BLAST, 0, weight=5e4)
    add(m, 3, BLAST, 1, weight=10.0, clone=CLONE_CODE["myeloid"])
    add(m, 2, BLAST, 2)
    add(m, 1, BLAST, 3, clone=CLONE_CODE["cd19_negative"])
    b = blast_burden(m)
    assert b.circulating_per_ul == pytest.approx(2e5 / 5.0)
    assert b.in_roles(m.geometry, ("extramedullary",)) == 2.0
    assert b.in_roles(m.geometry, ("cns",)) == 1.0
    assert b.cd19_negative_share == pytest.approx(31 / (2e5 + 33))
    assert b.marrow_fraction == pytest.approx(30 / 1e6)


# --------------------------------------------------------------------------- the clinic's assays

def test_analysed_count_is_the_keyed_binomial():
    count = assays.analysed_count(5, 7, Purpose.ASSAY_FLOW, 2_500_000, 1e-3)
    first = rng.uniforms(5, np.arange(1_000_000), 7, Purpose.ASSAY_FLOW) < 1e-3
    assert count >= np.count_nonzero(first)
    assert count == pytest.approx(2500, abs=4 * math.sqrt(2500))
    assert assays.analysed_count(5, 7, Purpose.ASSAY_FLOW, 1000, 0.0) == 0
    assert assays.analysed_count(5, 7, Purpose.ASSAY_FLOW, 1000, 1.0) == 1000


@pytest.mark.parametrize("fraction, flow_positive, ngs_positive", [
    (1e-2, True, True), (1e-3, True, True), (3e-6, False, True), (1e-8, False, False)])
def test_mrd_limits_of_detection(fraction, flow_positive, ngs_positive):
    """Flow: 2e5 cells, >= 20 events (1e-4); NGS: 2e6 genomes, >= 2 (1e-6)."""
    a = assays.assay_marrow(Patient(), fraction, seed=11, step=0)
    assert (a.flow_mrd > 0) == flow_positive
    assert (a.ngs_mrd > 0) == ngs_positive
    if flow_positive:
        assert a.flow_mrd == pytest.approx(fraction, rel=5 / math.sqrt(2e5 * fraction))


def test_morphology_percent_and_the_remission_rule():
    a = assays.assay_marrow(Patient(), 0.25, seed=2, step=0)
    assert a.blast_percent == pytest.approx(25.0, abs=4 * math.sqrt(500 * 0.25 * 0.75) / 5)
    assert not assays.in_remission(a, 0.0, 0.0)
    clear = assays.MarrowAssays(1.0, 0.0, 2e-6)
    assert assays.in_remission(clear, 0.0, 0.0)
    assert not assays.in_remission(clear, 2.0, 0.0)            # circulating blasts
    assert not assays.in_remission(clear, 0.0, 2e9)            # extramedullary mass
    assert not assays.in_remission(clear, 0.0, 0.0, 6.0)       # CNS-3
    assert assays.response(True, False) == "complete_remission"
    assert assays.response(False, False) == "no_response"
    assert assays.response(False, True) == "relapse"


# --------------------------------------------------------------------------- protocol over months

def test_assessment_days_close_cycles_and_follow_up_monthly():
    s = scenario(schedule=Schedule(cycles=(Cycle(42, (Infusion(1, 28, 28.0),)), Cycle(42, (Infusion(1, 28, 28.0),)),
                                           Cycle(100, ()))))
    assert assessment_days(s) == [(28, 1), (70, 2), (114, 3), (144, 3), (174, 3), (184, 3)]
    assert transplant_day(s) is None
    s = scenario(schedule=s.schedule, patient=Patient(transplant_after_cycle=2), duration_h=3000.0)
    assert transplant_day(s) == 84.0
    assert BlinaModel(s, seed=1).total_steps == 84 * 1440


def test_per_m2_dosing_with_the_cap():
    child = Schedule(cycles=(Cycle(42, (Infusion(1, 7, ug_per_m2_per_day=5.0), Infusion(8, 28, ug_per_m2_per_day=15.0))),),
                     body_surface_m2=0.8)
    assert [p.ug_per_h * 24 for p in infusion_periods(child)] == pytest.approx([4.0, 12.0])
    big = Schedule(cycles=child.cycles, body_surface_m2=2.2)
    assert [p.ug_per_h * 24 for p in infusion_periods(big)] == pytest.approx([11.0, 28.0])


# --------------------------------------------------------------------------- quiet stepping

def test_without_drug_contacts_are_not_stepped():
    m = patient_model({"well": comp(cells_per_ul=KindValues(cd8=1e6, blast=1e6),
                                    speed_um_per_min=KindValues(cd8=10.0))})
    x0 = m.pop.x.copy()
    for _ in range(5):
        m.step()
    assert m.quiet()
    np.testing.assert_array_equal(m.pop.x, x0)


def test_with_drug_or_a_synapse_left_contacts_are_stepped():
    m = patient_model({"well": comp(cells_per_ul=KindValues(cd8=1e6, blast=1e6),
                                    speed_um_per_min=KindValues(cd8=10.0))}, conc=1e-2)
    m.step()
    assert not m.quiet()
    m = patient_model({"well": comp()})
    t, g = add(m, 1, CD8), add(m, 1, BLAST)
    engage(m, t, g)
    m.steps = 1
    assert not m.quiet()          # a synapse is left: lysis must go on
    m.pop.partner[:] = -1
    m.steps = 2
    assert m.quiet()


# --------------------------------------------------------------------------- coupling vs agent-based

def test_sampled_tissue_follows_the_fully_agent_based_run():
    """Patient blasts of a 1/4 sample (weight 4, sentinels below the default floor) follow
    the fully agent-based tissue within 3 standard errors every hour (8 seeds each); a floor
    of 400 sentinels (more than the slab's T cells can serve) does not, so the comparison
    can fail."""
    seeds = range(1, 9)
    full, sampled = full_runs(seeds), sampled_runs(seeds)
    assert sampled[:, 0].mean() == full[:, 0].mean() == 4000.0
    assert largest_z(full, sampled) < 3.0
    assert largest_z(full, sampled_runs(seeds, min_blast_agents=400)) > 3.0


def test_reweighting_never_passes_the_agent_ceiling():
    m = patient_model(patient=Patient(min_blast_agents=1, max_blast_agents=100))
    add(m, 10, BLAST, weight=1e3 * SCALE)       # would be 10,000 agents
    BlastSampling(m, 10).step(m)
    assert m.pop.n <= 100
    assert m.pop.weight.sum() == pytest.approx(1e4 * SCALE)
