"""Blast growth: logistic in the nucleated capacity of the compartment.

Each free blast divides with rate ln2/doubling_time * (1 - N_blast / capacity) where
N_blast is the patient cells the compartment's blasts stand for (their summed weights) and
the capacity the nucleated cells of the patient site it samples (nucleated_cells_per_ul *
volume * scale; scale 1 when the compartment is the whole site). A daughter inherits the
weight, so a weighted blast's patient cells double with it. Compartments without a
capacity (nucleated_cells_per_ul = 0, e.g. a dish) hold no growth.
"""
from __future__ import annotations

import math

import numpy as np

from blinasim import rng
from blinasim.cells import divide
from blinasim.populations import KIND_CODE
from blinasim.rng import Purpose


class BlastGrowth:
    name = "blast_growth"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        self.interval_min = every_steps * model.dt_min
        self.rate_per_h = math.log(2.0) / (model.scenario.blasts.doubling_time_days * 24.0)

    def step(self, model) -> None:
        pop, geo = model.pop, model.geometry
        blasts = (pop.alive == 1) & (pop.kind == KIND_CODE["blast"])
        per_comp = np.bincount(pop.comp[blasts], weights=pop.weight[blasts], minlength=len(geo.names))
        room = np.where(geo.site_capacity > 0,
                        1.0 - per_comp / np.maximum(geo.site_capacity, 1.0), 0.0)
        rows = np.flatnonzero(blasts & (pop.partner < 0))
        if len(rows) == 0:
            return
        p = -np.expm1(-self.rate_per_h * np.clip(room, 0.0, 1.0)[pop.comp[rows]] * self.interval_min / 60.0)
        draws = rng.uniforms(model.seed, pop.id[rows], model.steps, Purpose.PROLIFERATE)
        mothers = rows[draws < p]
        if len(mothers):
            divide(pop, mothers, geo.width_um, geo.height_um, model.seed, model.steps)
