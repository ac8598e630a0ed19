"""Normal B-cell turnover: death with a mean lifespan, production that balances it.

Production happens in compartments flagged `b_production`, as a Poisson number of new B
cells per interval with mean N_B0 / lifespan, N_B0 the initial B cells of the whole model,
so that without drug the B-cell count stays at its baseline.
"""
from __future__ import annotations

import numpy as np

from blinasim import rng
from blinasim.cells import seed_cells
from blinasim.populations import KIND_CODE
from blinasim.processes.base import probability
from blinasim.rng import Purpose


class BCellTurnover:
    name = "b_cell_turnover"

    def __init__(self, model, every_steps: int):
        s = model.scenario
        self.every_steps = every_steps
        interval_min = every_steps * model.dt_min
        lifespan_h = s.b_cells.lifespan_days * 24.0
        self.p_die = probability(1.0 / lifespan_h, interval_min)
        producers = [i for i, c in enumerate(s.compartments.values()) if c.b_production]
        baseline = sum(round(c.cells_per_ul.b * v) for c, v in zip(s.compartments.values(), model.geometry.volume_ul))
        self.producers = producers
        self.mean_births = baseline * interval_min / 60.0 / lifespan_h / max(1, len(producers))

    def step(self, model) -> None:
        pop, step = model.pop, model.steps
        rows = np.flatnonzero((pop.alive == 1) & (pop.kind == KIND_CODE["b"]) & (pop.partner < 0))
        dies = rng.uniforms(model.seed, pop.id[rows], step, Purpose.DIE) < self.p_die
        pop.alive[rows[dies]] = 0
        geo = model.geometry
        for comp in self.producers:
            births = rng.poisson(model.seed, comp, step, Purpose.PRODUCE, self.mean_births)
            if births:
                seed_cells(pop, model.scenario, "b", comp, births, geo.width_um[comp],
                           geo.height_um[comp], model.seed, step)
