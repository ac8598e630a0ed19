"""ICANS as the clinic grades it (ASTCT consensus, Lee 2019), from the CNS compartment.

With c the CNS compartment's IL-6 signalling + IL-1beta signalling + TNF-alpha + IFN-gamma
(released by the T cells that entered the CNS, plus serum cytokines let in by the leaky
barrier, processes/cytokines.py) times the patient's `sensitivity`:
    encephalopathy D = h(c; EC50, n)
    ICE score = round(10 (1 - D))                                   (0-10)
Grade: the worst of the ICE score (7-9: 1, 3-6: 2, 0-2: 3), consciousness (unarousable
at D >= unarousable_from: 4), seizure (D >= seizure_from: 3) and cerebral oedema from the
blood-brain barrier's leak (focal: 3, diffuse: 4). Seizures are counted as episodes: each
time D rises to seizure_from from below (the protocol stops after the label's second).
"""
from __future__ import annotations

import math

from blinasim.processes.base import emax
from blinasim.processes.cytokines import CYTOKINES

ICE_MAX = 10


def ice_grade(ice: int) -> int:
    """ICANS grade from the ICE score alone (ASTCT)."""
    if ice >= ICE_MAX:
        return 0
    return 1 if ice >= 7 else 2 if ice >= 3 else 3


class IcansSigns:
    """Encephalopathy, ICE score, seizure, oedema and the ASTCT ICANS grade."""
    name = "icans"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        self.n = model.scenario.icans
        self.il1_passes = 1.0 - model.scenario.interventions.anakinra
        self.cns = model.geometry.role_code("cns")
        self.encephalopathy = 0.0
        self.ice = ICE_MAX
        self.seizure = False
        self.seizures = 0
        self.grade = 0
        self.onset_h = math.nan

    def cns_signal(self, model) -> float:
        """c: CNS cytokines (IL-6 and IL-1beta as their signalling) times the sensitivity."""
        x = model.cytokines_pg_per_ml[self.cns]
        il6 = x[CYTOKINES.index("il6")] * (1.0 - model.protocol.tocilizumab_block(model.time_min / 60.0))
        il1 = x[CYTOKINES.index("il1b")] * self.il1_passes
        return float(il6 + il1 + x[CYTOKINES.index("tnfa")] + x[CYTOKINES.index("ifng")]) * self.n.sensitivity

    def step(self, model) -> None:
        if self.cns is None:
            return
        n = self.n
        self.encephalopathy = float(emax(self.cns_signal(model), n.cytokine_ec50_pg_per_ml, n.cytokine_hill))
        self.ice = int(round(ICE_MAX * (1.0 - self.encephalopathy)))
        seizure = self.encephalopathy >= n.seizure_from
        self.seizures += seizure and not self.seizure
        self.seizure = seizure
        grade = ice_grade(self.ice)
        if self.seizure or model.bbb_leak >= n.focal_oedema_leak:
            grade = max(grade, 3)
        if self.encephalopathy >= n.unarousable_from or model.bbb_leak >= n.diffuse_oedema_leak:
            grade = 4
        self.grade = grade
        if grade and math.isnan(self.onset_h):
            self.onset_h = model.time_min / 60.0

    def state(self) -> dict:
        return {"icans.encephalopathy": self.encephalopathy, "icans.ice": self.ice,
                "icans.seizure": int(self.seizure), "icans.seizures": self.seizures,
                "icans.grade": self.grade, "icans.onset_h": self.onset_h}

    def restore(self, state) -> None:
        self.encephalopathy = float(state["icans.encephalopathy"])
        self.ice = int(state["icans.ice"])
        self.seizure = bool(int(state["icans.seizure"]))
        self.seizures = int(state["icans.seizures"])
        self.grade = int(state["icans.grade"])
        self.onset_h = float(state["icans.onset_h"])
