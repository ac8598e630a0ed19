"""CRS as the clinic grades it (ASTCT consensus, Lee 2019), from three signs derived from
the mechanism every population interval.

With serum concentrations times the patient's `sensitivity` (IL-6 and IL-1beta as their
signalling: times 1 - tocilizumab and 1 - anakinra blockade) and h(x; K, n) = x^n/(x^n + K^n):
    P = 1 - prod_X (1 - h(x_X; K_X, n))                 pyrogenic signal, X = IL-6, TNF-a, IL-1b
    temperature = 37 + dT_max P
    V = the same with every K_X times `vasodilation_scale`   vasodilation (NO)
    leak = the vessel wall's mean leak (processes/endothelium.py: each endothelial cell's
           vasoactive signal times the Ang-2 it has released)
    MAP = MAP_rest - drop_V V - drop_leak leak
    oxygen need = O2_max h(leak; leak50, n)
Vasopressors: none while MAP >= vasopressor_below (fluids suffice), one below it, two
below vasopressors_below. The ASTCT grade needs fever (temperature >= fever_c), except
once tocilizumab has been given after CRS began: it masks fever, and hypotension or hypoxia
alone then grade (Lee 2019):
    1: fever only
    2: hypotension without vasopressors, or oxygen need up to high_flow_above (low flow)
    3: one vasopressor, or high-flow oxygen
    4: several vasopressors, or oxygen need at positive_pressure_from or above
"""
from __future__ import annotations

import math

import numpy as np

from blinasim.processes.base import emax
from blinasim.processes.cytokines import CYTOKINES

NORMAL_TEMPERATURE_C = 37.0


class CrsSigns:
    """Body temperature, mean arterial pressure, vasopressor and oxygen need, ASTCT grade."""
    name = "crs"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        s = model.scenario
        self.c = s.crs
        self.il1_passes = 1.0 - s.interventions.anakinra
        self.serum = model.geometry.role_code("blood")
        self.columns = [CYTOKINES.index(name) for name in ("il6", "tnfa", "il1b")]
        self.fever_ec50 = np.array([self.c.fever_il6_ec50_pg_per_ml, self.c.fever_tnfa_ec50_pg_per_ml,
                                    self.c.fever_il1b_ec50_pg_per_ml])
        self.temperature_c = NORMAL_TEMPERATURE_C
        self.map_mmhg = self.c.map_rest_mmhg
        self.vasopressors = 0
        self.oxygen_l_per_min = 0.0
        self.grade = 0
        self.onset_h = math.nan
        self.fever_masked = False

    def signals(self, model) -> np.ndarray:
        """Serum IL-6, TNF-alpha and IL-1beta signalling, times the patient's sensitivity."""
        if self.serum is None:
            return np.zeros(3)
        x = model.cytokines_pg_per_ml[self.serum, self.columns] * self.c.sensitivity
        x[0] *= 1.0 - model.protocol.tocilizumab_block(model.time_min / 60.0)
        x[2] *= self.il1_passes
        return x

    def update_signs(self, model) -> None:
        c = self.c
        x = self.signals(model)
        pyrogenic = 1.0 - float(np.prod(1.0 - emax(x, self.fever_ec50, c.signal_hill)))
        vasodilation = 1.0 - float(np.prod(1.0 - emax(x, self.fever_ec50 * c.vasodilation_scale, c.signal_hill)))
        leak = model.capillary_leak
        self.temperature_c = NORMAL_TEMPERATURE_C + c.fever_max_c * pyrogenic
        self.map_mmhg = c.map_rest_mmhg - c.vasodilation_max_drop_mmhg * vasodilation - c.leak_max_drop_mmhg * leak
        self.vasopressors = 2 if self.map_mmhg < c.vasopressors_below_mmhg else int(self.map_mmhg < c.vasopressor_below_mmhg)
        self.oxygen_l_per_min = c.oxygen_max_l_per_min * float(emax(leak, c.oxygen_leak50, c.signal_hill))

    def astct_grade(self) -> int:
        c = self.c
        oxygen = self.oxygen_l_per_min
        if self.vasopressors >= 2 or oxygen >= c.positive_pressure_from_l_per_min:
            grade = 4
        elif self.vasopressors == 1 or oxygen > c.high_flow_above_l_per_min:
            grade = 3
        elif self.map_mmhg < c.hypotension_below_mmhg or oxygen >= c.hypoxia_from_l_per_min:
            grade = 2
        else:
            grade = 1
        if self.temperature_c >= c.fever_c or (self.fever_masked and grade >= 2):
            return grade
        return 0

    def step(self, model) -> None:
        time_h = model.time_min / 60.0
        self.update_signs(model)
        if not self.fever_masked and not math.isnan(self.onset_h):
            self.fever_masked = any(t >= self.onset_h for t in model.protocol.toci_given_h)
        self.grade = self.astct_grade()
        if self.grade and math.isnan(self.onset_h):
            self.onset_h = time_h

    def state(self) -> dict:
        return {"crs.temperature_c": self.temperature_c, "crs.map_mmhg": self.map_mmhg,
                "crs.vasopressors": self.vasopressors, "crs.oxygen_l_per_min": self.oxygen_l_per_min,
                "crs.grade": self.grade, "crs.onset_h": self.onset_h, "crs.fever_masked": int(self.fever_masked)}

    def restore(self, state) -> None:
        self.temperature_c = float(state["crs.temperature_c"])
        self.map_mmhg = float(state["crs.map_mmhg"])
        self.vasopressors = int(state["crs.vasopressors"])
        self.oxygen_l_per_min = float(state["crs.oxygen_l_per_min"])
        self.grade = int(state["crs.grade"])
        self.onset_h = float(state["crs.onset_h"])
        self.fever_masked = bool(int(state["crs.fever_masked"]))
