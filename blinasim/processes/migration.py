"""Migration of free cells along the routes of the compartment graph.

Each route (edge) moves each free cell of a kind from its source with probability
1 - exp(-rate * interval); a migrating cell appears at a uniformly random position of the
target compartment. Routes are taken in scenario order; a cell moves at most once per
interval.
"""
from __future__ import annotations

import numpy as np

from blinasim import rng
from blinasim.processes.base import probability
from blinasim.rng import Purpose
from blinasim.schema import CELL_KINDS


class Migration:
    name = "migration"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        interval_min = every_steps * model.dt_min
        geo = model.geometry
        self.routes = []
        for _src, _dst, edge in sorted(model.graph.edges(data=True), key=lambda e: e[2]["index"]):
            route = model.scenario.routes[edge["index"]]
            p_by_kind = np.array([probability(edge["rate_per_h"][k], interval_min) for k in CELL_KINDS])
            self.routes.append((edge["index"], geo.code(route.source), geo.code(route.target), p_by_kind))

    def step(self, model) -> None:
        pop, geo, step = model.pop, model.geometry, model.steps
        moved = np.zeros(pop.n, dtype=bool)
        for index, source, target, p_by_kind in self.routes:
            rows = np.flatnonzero((pop.alive == 1) & (pop.comp == source) & (pop.partner < 0) & ~moved)
            if len(rows) == 0:
                continue
            ids = pop.id[rows]
            go = rows[rng.uniforms(model.seed, ids, step, Purpose.MIGRATE, index) < p_by_kind[pop.kind[rows]]]
            if len(go) == 0:
                continue
            gone_ids = pop.id[go]
            pop.comp[go] = target
            pop.x[go] = geo.width_um[target] * rng.uniforms(model.seed, gone_ids, step, Purpose.ARRIVE_X)
            pop.y[go] = geo.height_um[target] * rng.uniforms(model.seed, gone_ids, step, Purpose.ARRIVE_Y)
            moved[go] = True
