"""Cytokines per compartment: release by active T cells and myeloid cells, first-order clearance.

For each cytokine X and compartment c, with A_c the summed activity of effector T cells and
A'_c that of regulatory T cells (activity 1 while engaged, decaying after, times
1 - cytokine_loss x exhaustion). Only armed T cells (those that have acquired effector
function, the same state that lets them synthesise granules) release the effector
cytokines IL-6, IL-10, IFN-gamma and TNF-alpha; every activated T cell releases IL-2
(naive T cells make IL-2 but not effector cytokines on first stimulation, Sallusto 1999):
    dX/dt = ((A_c + f_treg A'_c) r + M_c r_myeloid) (1 - I_dex) / V_c - k X,   k = ln2 / half-life
with M_c the summed activation of the compartment's myeloid cells (`myeloid`: IL-6 and
IL-1beta), solved exactly over each population interval with the release held constant.
Tocilizumab blocks the receptor-mediated share f of IL-6 clearance:
k_IL6 = ln2 / half-life (1 - f B(t)), so serum IL-6 rises while its signalling falls.
Serum cytokines enter the CNS compartment through the blood-brain barrier's leak L:
its pool receives L k X_serum per hour (at L = 1 it would equilibrate with serum). The blood
(serum) pool also receives every other compartment's release per mL times its
`serum_share` (about its body volume relative to blood): serum cytokines reflect release in
the whole body, including the marrow and T cells adhered to the vessel wall.
"""
from __future__ import annotations

import math

import numpy as np

from blinasim.populations import NEVER
from blinasim.processes.base import t_cell_activity

CYTOKINES = ("il2", "il6", "il10", "ifng", "tnfa", "il1b")
EFFECTOR_CYTOKINE = np.array([name != "il2" for name in CYTOKINES])
"""Cytokines released only by armed T cells (IL-2 by every activated T cell)."""
PG_PER_FG = 1e-3
ML_PER_UL = 1e-3


class CytokineRelease:
    name = "cytokines"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        interval_h = every_steps * model.dt_min / 60.0
        kinetics = [getattr(model.scenario.cytokines, name) for name in CYTOKINES]
        self.clearance_per_h = np.array([math.log(2.0) * 60.0 / k.half_life_min for k in kinetics])
        self.interval_h = interval_h
        self.decay = np.exp(-self.clearance_per_h * interval_h)
        self.il6 = CYTOKINES.index("il6")
        self.il6_receptor_share = model.scenario.cytokines.il6_receptor_clearance_share
        m = model.scenario.myeloid
        self.myeloid_pg_per_h = np.zeros(len(CYTOKINES))
        self.myeloid_pg_per_h[self.il6] = m.il6_release_fg_per_cell_per_h * PG_PER_FG
        self.myeloid_pg_per_h[CYTOKINES.index("il1b")] = m.il1b_release_fg_per_cell_per_h * PG_PER_FG
        self.release_pg_per_h = np.array([k.release_fg_per_cell_per_h * PG_PER_FG for k in kinetics])
        self.treg_factor = np.array([k.treg_factor for k in kinetics])
        self.volume_ml = model.geometry.volume_ul * ML_PER_UL
        self.serum = model.geometry.role_code("blood")
        self.cns = model.geometry.role_code("cns")
        self.serum_share = np.array([c.serum_share for c in model.scenario.compartments.values()])
        if self.serum is not None:
            self.serum_share[self.serum] = 0.0  # its own release is already in its pool

    def step(self, model) -> None:
        pop, n_comps = model.pop, len(model.geometry.names)
        rows, activity = t_cell_activity(model)
        activity = activity * (1.0 - model.scenario.exhaustion.cytokine_loss * pop.exhaustion[rows])
        armed = (pop.armed_step[rows] != NEVER) & (pop.armed_step[rows] <= model.steps)
        regulatory = pop.regulatory[rows].astype(bool)
        comp = pop.comp[rows]
        sources = np.zeros((n_comps, len(CYTOKINES)))
        for releases, effector_only in ((armed, True), (np.ones(len(rows), bool), False)):
            conventional = np.bincount(comp[releases & ~regulatory], weights=activity[releases & ~regulatory], minlength=n_comps)
            treg = np.bincount(comp[releases & regulatory], weights=activity[releases & regulatory], minlength=n_comps)
            which = EFFECTOR_CYTOKINE == effector_only
            sources[:, which] = conventional[:, None] + treg[:, None] * self.treg_factor[None, which]
        t_cells = sources * self.release_pg_per_h
        myeloid = model.myeloid.activation_by_compartment()[:, None] * self.myeloid_pg_per_h
        time_h = model.time_min / 60.0
        dexamethasone = 1.0 - model.protocol.dexamethasone_inhibition(time_h)
        release_per_ml = (t_cells + myeloid) * dexamethasone / self.volume_ml[:, None]
        if self.serum is not None:
            release_per_ml[self.serum] += self.serum_share @ release_per_ml
            model.il6_myeloid_share = self._myeloid_share(t_cells[:, self.il6], myeloid[:, self.il6])
            if self.cns is not None:  # serum let in by the barrier (not returned to serum)
                release_per_ml[self.cns] += model.bbb_leak * self.clearance_per_h * model.cytokines_pg_per_ml[self.serum]
        clearance, decay = self.clearance_per_h, self.decay
        block = model.protocol.tocilizumab_block(time_h)
        if block > 0.0:
            clearance = clearance.copy()
            clearance[self.il6] *= 1.0 - self.il6_receptor_share * block
            decay = np.exp(-clearance * self.interval_h)
        steady = release_per_ml / clearance
        model.cytokines_pg_per_ml[:] = model.cytokines_pg_per_ml * decay + steady * (1.0 - decay)

    def _myeloid_share(self, t_cell_il6: np.ndarray, myeloid_il6: np.ndarray) -> float:
        """Share of the IL-6 reaching serum this interval that myeloid cells released."""
        weights = self.serum_share.copy()
        weights[self.serum] = 1.0
        total = weights @ ((t_cell_il6 + myeloid_il6) / self.volume_ml)
        return float(weights @ (myeloid_il6 / self.volume_ml) / total) if total > 0 else 0.0
