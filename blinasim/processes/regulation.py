"""Suppression of effector T cells by regulatory T cells, per compartment.

Tregs act at short range, through paracrine IL-10 and contact, so their effect scales with
their local activity rather than with a serum concentration:
    f = (summed activity of Tregs) / (T cells),   suppression = s_max f / (f + f_half)
Hit success and division probability of effector T cells are multiplied by 1 - suppression.
"""
from __future__ import annotations

import numpy as np

from blinasim.populations import KIND_CODE
from blinasim.processes.base import emax, t_cell_activity


class TregSuppression:
    name = "regulation"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps

    def step(self, model) -> None:
        pop, n_comps, r = model.pop, len(model.geometry.names), model.scenario.regulation
        rows, activity = t_cell_activity(model)
        regulatory = pop.regulatory[rows].astype(bool)
        treg_activity = np.bincount(pop.comp[rows][regulatory], weights=activity[regulatory], minlength=n_comps)
        t_cells = np.bincount(pop.comp[(pop.alive == 1) & (pop.kind <= KIND_CODE["cd4"])], minlength=n_comps)
        share = treg_activity / np.maximum(t_cells, 1)
        model.suppression[:] = r.max_suppression * emax(share, r.half_active_share)
