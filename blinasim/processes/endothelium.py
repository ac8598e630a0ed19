"""Endothelial activation by serum cytokines and the drug-triggered adhesion stimulus.

Stimulus from serum TNF-alpha, IFN-gamma and IL-6 signalling (each a Hill term
s = C^n / (C^n + EC50^n)):
    S = 1 - (1 - s_TNF)(1 - s_IFNg)(1 - s_IL6)
Activation E (ICAM-1, VCAM-1, P-selectin and Ang-2 taken proportional to it):
    dE/dt = a S (1 - E) - r (E - E_rest), solved exactly over each interval.
Adhesion stimulus of T cells, for routes with mechanism 'adhesion'/'detachment':
    A = C/(C + EC50_drug) * (E - E_rest)/(1 - E_rest) * sum_p w_p (1 - block_p)
over the pathways p = LFA-1/ICAM-1 (minocycline), VLA-4/VCAM-1 (natalizumab) and
P-selectin (pentosan polysulfate).
"""
from __future__ import annotations

import math

from blinasim.processes.base import emax
from blinasim.processes.cytokines import CYTOKINES


class EndothelialActivation:
    name = "endothelium"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        self.interval_h = every_steps * model.dt_min / 60.0
        self.serum = model.geometry.role_code("blood")
        e, i = model.scenario.endothelium, model.scenario.interventions
        total = e.lfa1_icam1_weight + e.vla4_vcam1_weight + e.pselectin_weight
        self.pathways = (0.0 if total == 0 else
                         (e.lfa1_icam1_weight * (1 - i.minocycline) + e.vla4_vcam1_weight * (1 - i.natalizumab)
                          + e.pselectin_weight * (1 - i.pentosan_polysulfate)) / total)
        self.e = e

    def stimulus(self, model) -> float:
        if self.serum is None:
            return 0.0
        c = model.cytokines_pg_per_ml[self.serum]
        il6_signal = c[CYTOKINES.index("il6")] * (1.0 - model.protocol.tocilizumab_block(model.time_min / 60.0))
        n = self.e.stimulus_hill
        quiet = ((1 - emax(c[CYTOKINES.index("tnfa")], self.e.tnfa_ec50_pg_per_ml, n))
                 * (1 - emax(c[CYTOKINES.index("ifng")], self.e.ifng_ec50_pg_per_ml, n))
                 * (1 - emax(il6_signal, self.e.il6_ec50_pg_per_ml, n)))
        return float(1.0 - quiet)

    def step(self, model) -> None:
        e = self.e
        up = e.activation_per_h * self.stimulus(model)
        rate = up + e.recovery_per_h
        target = (up + e.recovery_per_h * e.rest_level) / rate if rate > 0 else model.endothelial_activation
        model.endothelial_activation = target + (model.endothelial_activation - target) * math.exp(-rate * self.interval_h)
        above_rest = max(0.0, model.endothelial_activation - e.rest_level) / (1.0 - e.rest_level) if e.rest_level < 1 else 0.0
        drug = model.conc_pg_per_ml
        model.adhesion_stimulus = float(emax(drug, e.drug_ec50_pg_per_ml)) * above_rest * self.pathways
