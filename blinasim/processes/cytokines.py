"""Cytokines per compartment: release by active T cells, first-order clearance.

For each cytokine X and compartment c, with A_c the summed activity of effector T cells and
A'_c that of regulatory T cells (activity 1 while engaged, decaying after):
    dX/dt = (A_c + f_treg A'_c) r (1 - I_dex) / V_c - k X,   k = ln2 / half-life
solved exactly over each population interval with the release held constant. The blood
(serum) pool also receives every other compartment's release per mL times its
`serum_share` (about its body volume relative to blood): serum cytokines reflect release in
the whole body, including the marrow and T cells adhered to the vessel wall.
"""
from __future__ import annotations

import math

import numpy as np

from blinasim.processes.base import t_cell_activity

CYTOKINES = ("il2", "il6", "il10", "ifng", "tnfa")
PG_PER_FG = 1e-3
ML_PER_UL = 1e-3


class CytokineRelease:
    name = "cytokines"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        interval_h = every_steps * model.dt_min / 60.0
        kinetics = [getattr(model.scenario.cytokines, name) for name in CYTOKINES]
        self.clearance_per_h = np.array([math.log(2.0) * 60.0 / k.half_life_min for k in kinetics])
        self.decay = np.exp(-self.clearance_per_h * interval_h)
        self.release_pg_per_h = np.array([k.release_fg_per_cell_per_h * PG_PER_FG for k in kinetics])
        self.treg_factor = np.array([k.treg_factor for k in kinetics])
        self.volume_ml = model.geometry.volume_ul * ML_PER_UL
        self.serum = model.geometry.role_code("blood")
        self.serum_share = np.array([c.serum_share for c in model.scenario.compartments.values()])
        if self.serum is not None:
            self.serum_share[self.serum] = 0.0  # its own release is already in its pool

    def step(self, model) -> None:
        pop, n_comps = model.pop, len(model.geometry.names)
        rows, activity = t_cell_activity(model)
        regulatory = pop.regulatory[rows].astype(bool)
        comp = pop.comp[rows]
        effector = np.bincount(comp[~regulatory], weights=activity[~regulatory], minlength=n_comps)
        treg = np.bincount(comp[regulatory], weights=activity[regulatory], minlength=n_comps)
        sources = effector[:, None] + treg[:, None] * self.treg_factor[None, :]
        release = sources * self.release_pg_per_h * (1.0 - model.protocol.dexamethasone_inhibition(model.time_min / 60.0))
        release_per_ml = release / self.volume_ml[:, None]
        if self.serum is not None:
            release_per_ml[self.serum] += self.serum_share @ release_per_ml
        steady = release_per_ml / self.clearance_per_h
        model.cytokines_pg_per_ml[:] = model.cytokines_pg_per_ml * self.decay + steady * (1.0 - self.decay)
