"""Migration of free cells along the routes of the compartment graph.

Each route (edge) moves each free cell of a kind from its source with probability
1 - exp(-rate * m * interval), where m = 1 for 'constant' routes, the adhesion stimulus A
for 'adhesion' routes, 1 - A for 'detachment' routes (processes/endothelium.py) and
1 + g L_BBB for 'transmigration' routes (g = endothelium.transmigration_gain, L_BBB the
blood-brain barrier's leak); a
migrating cell appears at a uniformly random position of the target compartment. Routes
are taken in scenario order; a cell moves at most once per interval. Regulatory T cells
follow the CD4 rates. Into a compartment with role 'lymphoid' a T cell's rate is multiplied
by its subset's `lymphoid_homing` (CCR7/CD62L: naive and central-memory cells recirculate
through lymph nodes, effector-memory and TEMRA cells hardly enter); out of it, a CD69+ T
cell's rate is multiplied by 1 - `markers.cd69_lymphoid_retention` (CD69 holds S1P1 inside
and so keeps activated cells in the node, Shiow 2006).
"""
from __future__ import annotations

import numpy as np

from blinasim import _migration, _population, rng
from blinasim.cells import subset_traits
from blinasim.populations import KIND_CODE
from blinasim.processes.base import cd69_positive
from blinasim.rng import Purpose
from blinasim.schema import CELL_KINDS


class Migration:
    name = "migration"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        self.interval_h = every_steps * model.dt_min / 60.0
        geo = model.geometry
        self.routes = []
        for _src, _dst, edge in sorted(model.graph.edges(data=True), key=lambda e: e[2]["index"]):
            route = model.scenario.routes[edge["index"]]
            rate_by_kind = np.array([edge["rate_per_h"][k] for k in CELL_KINDS])
            self.routes.append((edge["index"], geo.code(route.source), geo.code(route.target),
                                edge["mechanism"], rate_by_kind))
        self.lymphoid = geo.role_code("lymphoid")
        self.homing = subset_traits(model.scenario, "lymphoid_homing")
        self.retention = model.scenario.markers.cd69_lymphoid_retention

        self.transmigration_gain = model.scenario.endothelium.transmigration_gain

    def modulation(self, mechanism: str, model) -> float:
        adhesion = model.adhesion_stimulus
        return {"constant": 1.0, "adhesion": adhesion, "detachment": 1.0 - adhesion,
                "transmigration": 1.0 + self.transmigration_gain * model.bbb_leak}[mechanism]

    def step(self, model) -> None:
        pop, geo, step = model.pop, model.geometry, model.steps
        free, start = _population.free_by_compartment(pop.alive, pop.partner, pop.comp, len(geo.names))
        moved = np.zeros(pop.n, dtype=np.uint8)
        for index, source, target, mechanism, rate_by_kind in self.routes:
            rows = free[start[source]:start[source + 1]]
            if len(rows) == 0:
                continue
            rate_of_kind = rate_by_kind * self.modulation(mechanism, model)
            chance_of_row = None
            if self.lymphoid is not None and self.lymphoid in (source, target):
                rate = rate_of_kind[pop.kind[rows]] * self.t_cell_factor(model, rows, into=target == self.lymphoid)
                chance_of_row = -np.expm1(-rate * self.interval_h)
            go = _migration.movers(rows, pop.kind, pop.id, moved, -np.expm1(-rate_of_kind * self.interval_h),
                                   chance_of_row, model.seed, step, Purpose.MIGRATE, index)
            if len(go) == 0:
                continue
            gone_ids = pop.id[go]
            pop.comp[go] = target
            pop.x[go] = geo.width_um[target] * rng.uniforms(model.seed, gone_ids, step, Purpose.ARRIVE_X)
            pop.y[go] = geo.height_um[target] * rng.uniforms(model.seed, gone_ids, step, Purpose.ARRIVE_Y)

    def t_cell_factor(self, model, rows: np.ndarray, into: bool) -> np.ndarray:
        """Rate multipliers of a route into (homing) or out of (CD69 retention) lymphoid tissue."""
        pop = model.pop
        t_cell = pop.kind[rows] <= KIND_CODE["cd4"]
        if into:
            return np.where(t_cell, self.homing[pop.subset[rows]], 1.0)
        return np.where(t_cell & cd69_positive(model, rows), 1.0 - self.retention, 1.0)
