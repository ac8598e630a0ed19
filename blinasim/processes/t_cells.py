"""Expansion and contraction of activated T cells.

A T cell activated by a bridged synapse divides at `proliferation_per_day` (effector T
cells x (1 - Treg suppression in their compartment)) once `proliferation_lag_h` has passed since activation,
for as long as its last synapse is no older than `stimulation_memory_h`. Activated T cells
die at `activated_death_per_day` + `aicd_per_engagement_per_day` x synapses made
(activation-induced cell death). Cells in a synapse neither divide nor die in that interval.
"""
from __future__ import annotations

import numpy as np

from blinasim import rng
from blinasim.cells import divide
from blinasim.populations import KIND_CODE, NEVER
from blinasim.rng import Purpose


class ActivatedTCellDynamics:
    name = "t_cell_dynamics"

    def __init__(self, model, every_steps: int):
        a, dt = model.scenario.activation, model.dt_min
        self.every_steps = every_steps
        self.interval_h = every_steps * dt / 60.0
        self.divide_per_h = a.proliferation_per_day / 24.0
        self.die_per_h = a.activated_death_per_day / 24.0
        self.aicd_per_h = model.scenario.exhaustion.aicd_per_engagement_per_day / 24.0
        self.lag_steps = a.proliferation_lag_h * 60.0 / dt
        self.memory_steps = a.stimulation_memory_h * 60.0 / dt

    def step(self, model) -> None:
        pop, step = model.pop, model.steps
        activated = ((pop.alive == 1) & (pop.kind <= KIND_CODE["cd4"])
                     & (pop.activated_step != NEVER) & (pop.partner < 0))
        rows = np.flatnonzero(activated)
        if len(rows) == 0:
            return
        ids = pop.id[rows]
        p_die = -np.expm1(-(self.die_per_h + self.aicd_per_h * pop.engagements[rows]) * self.interval_h)
        dies = rng.uniforms(model.seed, ids, step, Purpose.DIE) < p_die
        pop.alive[rows[dies]] = 0
        rows, ids = rows[~dies], ids[~dies]
        stimulated = ((step - pop.activated_step[rows] >= self.lag_steps)
                      & (step - pop.engaged_step[rows] <= self.memory_steps))
        suppressed = model.suppression[pop.comp[rows]] * (pop.regulatory[rows] == 0)  # effectors only
        p_divide = -np.expm1(-self.divide_per_h * (1.0 - suppressed) * self.interval_h)
        divides = stimulated & (rng.uniforms(model.seed, ids, step, Purpose.PROLIFERATE) < p_divide)
        if np.any(divides):
            divide(pop, rows[divides], model.geometry.width_um, model.geometry.height_um,
                   model.seed, step)
