"""Equilibrium receptor occupancy of each drug arm, per compartment.

occupancy = C / (C + KD) with C the local molar concentration (plasma concentration times
the compartment's drug exposure). Per-contact bridging uses these in the synapse kernel.
"""
from __future__ import annotations

import numpy as np

from blinasim.units import occupancy, pg_per_ml_to_molar


class ReceptorOccupancy:
    name = "binding"
    every_steps = 1

    def step(self, model) -> None:
        drug = model.scenario.drug
        local_molar = [pg_per_ml_to_molar(model.conc_pg_per_ml * e, drug.molar_mass_kda)
                       for e in model.geometry.drug_exposure]
        model.occ19 = np.array([occupancy(c, drug.kd_cd19_m) for c in local_molar])
        model.occ3 = np.array([occupancy(c, drug.kd_cd3_m) for c in local_molar])
