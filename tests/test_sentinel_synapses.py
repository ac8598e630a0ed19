"""Sentinel synapses at patient scale: a T-cell agent that engages a blast of weight w in a
compartment of scale s engages only the share f = min(1, w/s) of the patient T cells it
stands for, so every T-cell consequence of the synapse is weighted by f (docs/model.md,
*The T cell's side of a sentinel synapse*). With weights 1 nothing changes."""
from __future__ import annotations

import math

import numpy as np
from test_regulation import B, BLAST, CD8, add, comp, engage, scenario, set_time

from blinasim import rng
from blinasim.model import BlinaModel
from blinasim.processes.base import engaged_share, t_cell_activity
from blinasim.processes.synapse import SynapseFormation, expected_bridges
from blinasim.processes.t_cells import ActivatedTCellDynamics
from blinasim.rng import Purpose
from blinasim.schema import Exhaustion

SCALE = 100.0   # a 1e-4 uL slab sampling 0.01 uL of marrow


def sampled_model(**overrides) -> BlinaModel:
    m = BlinaModel(scenario({"marrow": comp("marrow", patient_volume_ul=1e-4 * SCALE)}, conc=500.0, **overrides))
    assert m.geometry.scale[0] == SCALE
    m.occ19[:] = 6.4e-3
    m.occ3[:] = 3.7e-5
    return m


def test_the_share_is_the_partners_weight_over_the_scale_for_blasts_only():
    m = sampled_model()
    t = add(m, 4, CD8, cd3=30000.0)
    targets = add(m, 4, BLAST, cd19=22000.0, weight=np.array([25.0, 100.0, 400.0, 1.0]))
    engage(m, t, targets)
    np.testing.assert_array_equal(engaged_share(m, t), [0.25, 1.0, 1.0, 0.01])


def test_a_partner_that_is_not_a_blast_engages_the_whole_share():
    m = sampled_model()
    t = add(m, 2, CD8, cd3=30000.0)
    targets = np.concatenate([add(m, 1, B, cd19=20000.0), add(m, 1, BLAST, cd19=22000.0, weight=10.0)])
    engage(m, t, targets)
    np.testing.assert_array_equal(engaged_share(m, t), [1.0, 0.1])


def test_secretory_activity_is_the_scale_in_synapse_and_decays_from_it_after():
    m = sampled_model()
    t = add(m, 2, CD8, activated_step=0, engaged_step=0, activity_scale=np.array([0.25, 1.0]))
    set_time(m, 0)
    rows, activity = t_cell_activity(m)
    np.testing.assert_array_equal(rows, t)
    np.testing.assert_array_equal(activity, [0.25, 1.0])
    set_time(m, 480)                                          # 8 h later, one decay time
    np.testing.assert_allclose(t_cell_activity(m)[1], [0.25 / math.e, 1.0 / math.e], rtol=1e-12)


def test_an_activated_cell_keeps_the_activity_of_the_share_a_sentinel_does_not_engage():
    """Activity 1/e from a synapse 8 h ago; a sentinel synapse of f = 0.25 makes it
    0.25 + 0.75/e; an AICD engagement is counted with probability f."""
    m = sampled_model()
    n = 2000
    t = add(m, n, CD8, cd3=30000.0, activated_step=0, engaged_step=0, destiny=3, engagements=5)
    g = add(m, n, BLAST, cd19=22000.0, weight=25.0)
    m.pop.partner[t], m.pop.partner[g] = g, t
    set_time(m, 480)
    SynapseFormation(m).engage(m, t)
    takes = rng.uniforms(m.seed, m.pop.id[t], 480, Purpose.ENGAGED_SHARE) < 0.25
    np.testing.assert_allclose(m.pop.activity_scale[t], 0.25 + 0.75 / math.e, rtol=1e-12)
    np.testing.assert_array_equal(m.pop.engagements[t], 5 + takes)
    np.testing.assert_array_equal(m.pop.engaged_share[t], 0.25)
    assert 0 < takes.sum() < n


def test_exhaustion_of_a_sentinel_synapse_is_the_engaged_shares_by_hand():
    m = sampled_model(exhaustion=Exhaustion(onset_per_day=0.24, recovery_per_day=0.48))
    set_time(m, 600)
    t = add(m, 2, CD8, activated_step=0, exhaustion=np.float32(0.5), engaged_share=np.array([0.25, 1.0]))
    g = add(m, 2, BLAST, cd19=22000.0)
    engage(m, t, g, step=590)
    ActivatedTCellDynamics(m, 60).update_exhaustion(m)      # one hour
    on, off = 1 - 0.5 * math.exp(-0.01), 0.5 * math.exp(-0.02)
    np.testing.assert_allclose(m.pop.exhaustion[t], [0.25 * on + 0.75 * off, on], rtol=1e-6)


def test_a_sentinel_synapse_activates_with_probability_the_share():
    m = sampled_model()
    n = 4000
    t = add(m, n, CD8, cd3=30000.0)
    g = add(m, n, BLAST, cd19=22000.0, weight=25.0)         # f = 0.25
    m.pop.partner[t], m.pop.partner[g] = g, t
    set_time(m, 40)
    SynapseFormation(m).engage(m, t)
    takes = rng.uniforms(m.seed, m.pop.id[t], 40, Purpose.ENGAGED_SHARE) < 0.25
    assert abs(takes.mean() - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)
    np.testing.assert_array_equal(m.pop.activated_step[t] == 40, takes)
    np.testing.assert_array_equal(m.pop.engagements[t], takes.astype(int))
    # activated by the draw: it stands for engaged cells; not: for cells that were not engaged
    np.testing.assert_array_equal(m.pop.engaged_share[t], np.where(takes, 1.0, 0.0))
    b = expected_bridges(22000.0, 30000.0, 6.4e-3, 3.7e-5, 0.2, 150.0, SynapseFormation(m).k2d19,
                         SynapseFormation(m).k2d3)
    # an activated cell starts its stimulation from the full synapse; a resting cell not
    # activated by the draw has no programme (activation resets the stimulation)
    np.testing.assert_allclose(m.pop.stimulation[t[takes]], b, rtol=1e-6)
    assert np.all(m.pop.stimulation[t[~takes]] == 0.0)


def test_a_resting_cell_the_sentinel_does_not_activate_does_not_tire():
    m = sampled_model(exhaustion=Exhaustion(onset_per_day=0.24, recovery_per_day=0.48))
    n = 400
    t = add(m, n, CD8, cd3=30000.0, exhaustion=np.float32(0.5))
    g = add(m, n, BLAST, cd19=22000.0, weight=25.0)
    m.pop.partner[t], m.pop.partner[g] = g, t
    set_time(m, 590)
    SynapseFormation(m).engage(m, t)
    took = m.pop.activated_step[t] == 590
    set_time(m, 600)
    ActivatedTCellDynamics(m, 60).update_exhaustion(m)      # one hour
    on, off = 1 - 0.5 * math.exp(-0.01), 0.5 * math.exp(-0.02)
    np.testing.assert_allclose(m.pop.exhaustion[t], np.where(took, on, off), rtol=1e-6)


def test_an_activated_cells_stimulation_from_a_sentinel_is_weighted():
    m = sampled_model()
    t = add(m, 2, CD8, cd3=30000.0, activated_step=0, stimulation=5.0)
    g = add(m, 2, BLAST, cd19=22000.0, weight=np.array([25.0, 100.0]))
    m.pop.partner[t], m.pop.partner[g] = g, t
    set_time(m, 40)
    syn = SynapseFormation(m)
    syn.engage(m, t)
    b = expected_bridges(22000.0, 30000.0, 6.4e-3, 3.7e-5, 0.2, 150.0, syn.k2d19, syn.k2d3)
    np.testing.assert_allclose(m.pop.stimulation[t], [5.0 + 0.25 * b, 5.0 + b], rtol=1e-6)
    assert np.all(m.pop.activated_step[t] == 0)


def test_with_weights_1_every_synapse_counts_whole():
    m = BlinaModel(scenario(conc=500.0))
    t = add(m, 50, CD8, cd3=30000.0)
    g = add(m, 50, BLAST, cd19=22000.0)
    m.pop.partner[t], m.pop.partner[g] = g, t
    set_time(m, 40)
    SynapseFormation(m).engage(m, t)
    assert np.all(m.pop.activated_step[t] == 40) and np.all(m.pop.engagements[t] == 1)
    assert np.all(m.pop.engaged_share[t] == 1.0)
