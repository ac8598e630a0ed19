"""Persistent random walk of free cells (compiled kernel in ext/_motility.pyx).

Cells walk only in compartments where a contact can start a synapse this step (drug bound,
free T cells and free CD19+ targets both present: BlinaModel.contact_compartments). Where
one side is missing, positions are only ever read again once both sides are back, and a
newcomer lands at a uniformly random place, so the walk is paused rather than stepped:
docs/model.md, *Motility*, gives the argument and what it changes. A model made with
walk_everywhere (the live and classroom views) walks every free cell.
"""
from __future__ import annotations

import math

import numpy as np

from blinasim import _motility


class RandomWalk:
    name = "motility"
    every_steps = 1

    def __init__(self, model):
        persistence = model.scenario.motility.persistence_min
        self.p_turn = 1.0 if persistence <= 0 else -math.expm1(-model.dt_min / persistence)
        self.step_um = model.geometry.speed_um_per_min * model.dt_min

    def step(self, model) -> None:
        pop = model.pop
        step_um = self.step_um
        if not model.walk_everywhere:
            walking = model.contact_compartments()[0].astype(bool)
            step_um = np.where(walking[:, None], step_um, 0.0)  # a step of 0: the kernel skips the cell
        _motility.move(pop.x, pop.y, pop.ux, pop.uy, pop.kind, pop.comp, pop.partner,
                       pop.alive, pop.id, step_um, model.geometry.width_um,
                       model.geometry.height_um, self.p_turn, model.seed, model.steps,
                       model.kernel_threads())
