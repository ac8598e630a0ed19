"""CD19 on targets: internalisation while engaged, re-expression when free, lineage switch.

Over an interval dt: engaged targets  CD19 <- CD19 exp(-k_int dt);
free targets CD19 <- S - (S - CD19) exp(-k_re dt), S the heritable level (`cd19_set`);
free blasts switch to the CD19-negative myeloid state with probability 1 - exp(-k_ls dt).
"""
from __future__ import annotations

import math

import numpy as np

from blinasim import rng
from blinasim.populations import CLONE_CODE, KIND_CODE
from blinasim.processes.base import probability
from blinasim.rng import Purpose


class AntigenDynamics:
    name = "antigen"

    def __init__(self, model, every_steps: int):
        a = model.scenario.antigen
        self.every_steps = every_steps
        interval_min = every_steps * model.dt_min
        self.internalised_keep = math.exp(-a.internalisation_per_min * interval_min)
        self.reexpressed_keep = math.exp(-a.reexpression_per_min * interval_min)
        self.p_switch = probability(a.lineage_switch_per_day / 24.0, interval_min)

    def step(self, model) -> None:
        pop = model.pop
        targets = (pop.alive == 1) & (pop.kind >= KIND_CODE["b"])
        engaged = targets & (pop.partner >= 0)
        free = targets & (pop.partner < 0)
        pop.cd19[engaged] *= self.internalised_keep
        pop.cd19[free] = pop.cd19_set[free] - (pop.cd19_set[free] - pop.cd19[free]) * self.reexpressed_keep
        if self.p_switch > 0.0:
            rows = np.flatnonzero(free & (pop.kind == KIND_CODE["blast"]) & (pop.clone != CLONE_CODE["myeloid"]))
            switch = rows[rng.uniforms(model.seed, pop.id[rows], model.steps, Purpose.LINEAGE_SWITCH) < self.p_switch]
            pop.clone[switch] = CLONE_CODE["myeloid"]
            pop.cd19[switch] = 0.0
            pop.cd19_set[switch] = 0.0
