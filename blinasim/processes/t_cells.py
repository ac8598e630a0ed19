"""The T-cell programme after activation: division destiny, contraction, return to rest,
and exhaustion under continuous engagement (the cyton model of Hawkins 2007).

Over each population interval dt:

- Exhaustion X of every T cell: engaged in the interval (in a synapse, or a synapse formed
  within it) X <- 1 - (1 - X) exp(-k_on dt); otherwise X <- X exp(-k_off dt). For an agent
  whose last synapse engaged only the share f of the patient T cells it stands for (a
  sentinel synapse, processes/synapse.py), the mean of the two weighted by f.
- Destiny: when an activated T cell reaches its first division time (set at activation,
  processes/synapse.py), its destiny is fixed from the stimulation S it has received
  (expected bridges summed over its synapses since activation):
      D* = D_max(subset) S / (S + S_half) (1 - l_p X) (1 - s_c),   D = floor(D* + u)
  with s_c the Treg suppression of its compartment (effector T cells only) and u uniform
  (unbiased rounding). It then divides D times, one division every log-normal time of mean
  1 / proliferation_per_day, without further synapses; daughters share the programme.
- A T cell that has made its D >= 1 divisions contracts: it dies at
  contraction_death_per_day or returns to rest at memory_return_per_day (then as an
  effector-memory cell, or TEMRA, that a new synapse can activate again with a new
  programme). A T cell whose destiny is 0 returns to rest at once, in its own subset.
- Every activated T cell also dies at activated_death_per_day + aicd x synapses made.
Cells in a synapse neither divide nor die in that interval; a division due then waits.
"""
from __future__ import annotations

import math

import numpy as np

from blinasim import rng
from blinasim.cells import divide, subset_traits
from blinasim.populations import KIND_CODE, NEVER
from blinasim.processes.synapse import lognormal_factor
from blinasim.rng import Purpose
from blinasim.schema import T_SUBSETS

EFFECTOR_MEMORY = T_SUBSETS.index("em")


class ActivatedTCellDynamics:
    name = "t_cell_dynamics"

    def __init__(self, model, every_steps: int):
        s, dt = model.scenario, model.dt_min
        a, ex = s.activation, s.exhaustion
        self.every_steps = every_steps
        interval_h = every_steps * dt / 60.0
        self.interval_h = interval_h
        self.exhaust_keep = math.exp(-ex.onset_per_day / 24.0 * interval_h)
        self.recover_keep = math.exp(-ex.recovery_per_day / 24.0 * interval_h)
        self.die_per_h = a.activated_death_per_day / 24.0
        self.aicd_per_h = ex.aicd_per_engagement_per_day / 24.0
        resolve_per_h = (a.contraction_death_per_day + a.memory_return_per_day) / 24.0
        self.p_resolve = -math.expm1(-resolve_per_h * interval_h)
        self.share_dying = (a.contraction_death_per_day / (a.contraction_death_per_day + a.memory_return_per_day)
                            if resolve_per_h > 0 else 0.0)
        self.division_steps = 24.0 * 60.0 / (a.proliferation_per_day * dt)
        self.max_divisions = subset_traits(s, "max_divisions")
        self.activation = a
        self.exhaustion = ex

    def step(self, model) -> None:
        self.update_exhaustion(model)
        self.deaths(model)
        self.set_destinies(model)
        self.divisions(model)

    def _t_cells(self, model) -> np.ndarray:
        pop = model.pop
        return (pop.alive == 1) & (pop.kind <= KIND_CODE["cd4"])

    def update_exhaustion(self, model) -> None:
        pop, step = model.pop, model.steps
        engaged = (pop.partner >= 0) | (pop.engaged_step > step - self.every_steps)
        t = self._t_cells(model)
        on = np.flatnonzero(t & engaged)
        off = np.flatnonzero(t & ~engaged & (pop.exhaustion > 0.0))
        # of the patient T cells an agent stands for, the share f its synapse engages
        # exhausts and the rest recovers (f = 1 but for sentinel synapses)
        x, f = pop.exhaustion[on], pop.engaged_share[on]
        pop.exhaustion[on] = f * (1.0 - (1.0 - x) * self.exhaust_keep) + (1.0 - f) * x * self.recover_keep
        pop.exhaustion[off] *= self.recover_keep

    def deaths(self, model) -> None:
        """Activated death and AICD, then contraction or return to rest after the programme."""
        pop, step = model.pop, model.steps
        rows = np.flatnonzero(self._t_cells(model) & (pop.activated_step != NEVER) & (pop.partner < 0))
        if len(rows) == 0:
            return
        ids = pop.id[rows]
        p_die = -np.expm1(-(self.die_per_h + self.aicd_per_h * pop.engagements[rows]) * self.interval_h)
        dies = rng.uniforms(model.seed, ids, step, Purpose.DIE) < p_die
        pop.alive[rows[dies]] = 0
        rows, ids = rows[~dies], ids[~dies]
        done = (pop.destiny[rows] != NEVER) & (pop.generation[rows] >= pop.destiny[rows])
        rows, ids = rows[done], ids[done]
        u = rng.uniforms(model.seed, ids, step, Purpose.RESOLVE)
        pop.alive[rows[u < self.p_resolve * self.share_dying]] = 0
        rest = rows[(u >= self.p_resolve * self.share_dying) & (u < self.p_resolve)]
        pop.subset[rest] = np.maximum(pop.subset[rest], EFFECTOR_MEMORY)
        self.rest(pop, rest)

    @staticmethod
    def rest(pop, rows: np.ndarray) -> None:
        """End the programme of `rows`: resting again, activatable by a new synapse."""
        pop.activated_step[rows] = NEVER
        pop.destiny[rows] = NEVER
        pop.generation[rows] = 0
        pop.stimulation[rows] = 0.0
        pop.next_division_step[rows] = NEVER

    def set_destinies(self, model) -> None:
        pop, step = model.pop, model.steps
        rows = np.flatnonzero(self._t_cells(model) & (pop.activated_step != NEVER) & (pop.destiny == NEVER)
                              & (pop.next_division_step != NEVER) & (pop.next_division_step <= step))
        if len(rows) == 0:
            return
        a, ex = self.activation, self.exhaustion
        stimulation = pop.stimulation[rows].astype(float)
        suppressed = model.suppression[pop.comp[rows]] * (pop.regulatory[rows] == 0)
        mean = (self.max_divisions[pop.subset[rows]] * stimulation / (stimulation + a.stimulation_half_bridges)
                * (1.0 - ex.proliferation_loss * pop.exhaustion[rows]) * (1.0 - suppressed))
        destiny = np.floor(mean + rng.uniforms(model.seed, pop.id[rows], step, Purpose.DESTINY)).astype(np.int8)
        pop.destiny[rows] = destiny
        self.rest(pop, rows[destiny == 0])

    def divisions(self, model) -> None:
        pop, step = model.pop, model.steps
        rows = np.flatnonzero(self._t_cells(model) & (pop.partner < 0) & (pop.destiny != NEVER)
                              & (pop.generation < pop.destiny) & (pop.next_division_step != NEVER)
                              & (pop.next_division_step <= step))
        if len(rows) == 0:
            return
        pop.generation[rows] += 1
        geo = model.geometry
        daughters = divide(pop, rows, geo.width_um, geo.height_um, model.seed, step)
        for cells in (rows, daughters):
            last = pop.generation[cells] >= pop.destiny[cells]
            wait = self.division_steps * lognormal_factor(
                rng.normals(model.seed, pop.id[cells], step, Purpose.DIVISION_TIME),
                self.activation.division_time_sigma_log)
            pop.next_division_step[cells] = np.where(last, NEVER, step + np.maximum(1, np.round(wait)).astype(np.int32))
