"""Persistent random walk of free cells (compiled kernel in ext/_motility.pyx)."""
from __future__ import annotations

import math

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
        _motility.move(pop.x, pop.y, pop.ux, pop.uy, pop.kind, pop.comp, pop.partner,
                       pop.alive, pop.id, self.step_um, model.geometry.width_um,
                       model.geometry.height_um, self.p_turn, model.seed, model.steps,
                       model.kernel_threads())
