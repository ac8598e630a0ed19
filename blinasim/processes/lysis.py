"""Perforin/granzyme hits across synapses and multi-hit killing (ext/_lysis.pyx).

Hit success falls with Treg suppression in the compartment (model.suppression), with the T
cell's exhaustion X, and with X (its PD-1 level) times PD-L1 on the target. Granules refill
only from the step the T cell is armed (processes/synapse.py).
"""
from __future__ import annotations

from blinasim import _lysis


def steps_of(minutes: float, dt_min: float) -> int:
    """A duration in whole steps (at least one)."""
    return max(1, int(round(minutes / dt_min)))


class GranuleLysis:
    name = "lysis"
    every_steps = 1

    def __init__(self, model):
        lysis, dt = model.scenario.lysis, model.dt_min
        self.first_hit_delay = int(round(lysis.first_hit_delay_min / dt))
        self.hit_interval = steps_of(lysis.hit_interval_min, dt)
        self.max_hit_gap = steps_of(lysis.max_hit_gap_min, dt)
        self.max_synapse = steps_of(model.scenario.synapse.max_duration_min, dt)
        self.unarmed_synapse = steps_of(model.scenario.synapse.unarmed_duration_min, dt)
        self.refill_per_step = lysis.refill_units_per_h * dt / 60.0
        self.lysis = lysis

    def step(self, model) -> None:
        pop, lysis, exhaustion = model.pop, self.lysis, model.scenario.exhaustion
        killers, victims = _lysis.deliver_hits(
            pop.partner, pop.kind, pop.alive, pop.granules, pop.granule_step,
            pop.armed_step, pop.synapse_step, pop.next_hit_step, pop.hits,
            pop.last_hit_step, pop.kills, pop.regulatory, pop.comp, pop.exhaustion, pop.pdl1,
            pop.id, 1.0 - model.suppression, exhaustion.kill_loss,
            exhaustion.max_pd1_inhibition, model.steps, self.first_hit_delay,
            self.hit_interval, lysis.hits_to_kill, self.max_hit_gap, lysis.units_per_hit,
            lysis.capacity_units, self.refill_per_step, self.max_synapse, self.unarmed_synapse, model.seed,
            model.kernel_threads())
        if len(victims):
            model.record_kills(killers, victims)
