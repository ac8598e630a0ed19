"""Endothelial cells as agents: the vessel wall facing the blood and the blood-brain barrier.

Cell i (threshold factor theta_i = exp(sd z_i), times `bbb_resistance` in the barrier) sees
the serum concentrations x (IL-6 and IL-1beta as their signalling) through Hill terms
h(x; K, n) = x^n / (x^n + K^n):
    S_i = 1 - prod_X (1 - h(x_X / theta_i; EC50_X, n))       X = TNF-a, IFN-g, IL-6, IL-1b
    dI_i/dt = a S_i (1 - I_i) - r (I_i - I_rest)             ICAM-1
    dV_i/dt = a S_i (1 - V_i) - r V_i                        VCAM-1 (absent at rest)
    dW_i/dt = f (1 - W_i) - e S_i W_i                        Weibel-Palade store (Ang-2, P-selectin)
each solved exactly over the interval with S_i held. Surface P-selectin is the store's
exocytosis relative to its largest, P_i = S_i mean(W_i); the released fraction
e S_i mean(W_i) dt adds Ang-2 to serum:
    dAng2/dt = k (Ang2_rest - Ang2) + Ang2_full mean_wall(e S_i mean(W_i))
Leak: Ang-2 released by a cell sensitises it to the vasoactive cytokines (Fiedler 2006), so
    leak_i = Vd_i (1 - W_i),   Vd_i = 1 - prod_X (1 - h(x_X s_patient / theta_i; K_X^fever vasodilation_scale, n_crs))
with the CRS section's constants. The vessel wall's mean leak drives blood pressure and
oxygen need (processes/crs.py), the barrier's mean leak its permeability (CNS entry, serum
cytokines into the CNS, oedema).
T-cell adhesion stimulus, for routes with mechanism 'adhesion'/'detachment': a T cell meets
a random vessel-wall cell and binds through each pathway p by its expression,
    A = C/(C + EC50_drug) mean_wall(sum_p w_p (1 - block_p) m_p,i) / sum_p w_p
with m = (I_i - I_rest)/(1 - I_rest) for LFA-1/ICAM-1 (minocycline), V_i for VLA-4/VCAM-1
(natalizumab) and P_i for P-selectin (pentosan polysulfate).
"""
from __future__ import annotations

import math

import numpy as np

from blinasim import rng
from blinasim.processes.base import emax
from blinasim.processes.cytokines import CYTOKINES
from blinasim.rng import Purpose

WALL, BARRIER = 0, 1
STIMULI = ("tnfa", "ifng", "il6", "il1b")
VASOACTIVE = ("il6", "tnfa", "il1b")


class EndothelialCells:
    """The endothelial agents of both layers and the serum angiopoietin-2 they release."""

    def __init__(self, model):
        e = model.scenario.endothelium
        n = e.cells_per_layer
        self.layer = np.repeat(np.array([WALL, BARRIER], dtype=np.int8), n)
        ids = np.arange(2 * n, dtype=np.int64)
        self.threshold = np.exp(e.cell_sd_log * rng.normals(model.seed, ids, 0, Purpose.INIT_ENDOTHELIUM))
        self.threshold[self.layer == BARRIER] *= e.bbb_resistance
        self.icam1 = np.full(2 * n, e.rest_level)
        self.vcam1 = np.zeros(2 * n)
        self.store = np.ones(2 * n)
        self.pselectin = np.zeros(2 * n)
        self.leak = np.zeros(2 * n)
        self.ang2_ng_per_ml = e.ang2_rest_ng_per_ml

    COLUMNS = ("icam1", "vcam1", "store", "pselectin", "leak")

    def mean(self, column: str, layer: int) -> float:
        """Mean of one column over the cells of one layer."""
        return float(getattr(self, column)[self.layer == layer].mean())

    def state(self) -> dict:
        state = {f"endothelium.{c}": getattr(self, c).copy() for c in self.COLUMNS}
        state["endothelium.ang2_ng_per_ml"] = self.ang2_ng_per_ml
        return state

    def restore(self, state) -> None:
        for c in self.COLUMNS:
            setattr(self, c, np.array(state[f"endothelium.{c}"], dtype=float))
        self.ang2_ng_per_ml = float(state["endothelium.ang2_ng_per_ml"])


def _relax(value: np.ndarray, rate_in: np.ndarray, level_in: float, rate_out: float, level_out: float,
           dt_h: float) -> np.ndarray:
    """Exact solution of dy/dt = rate_in (level_in - y) + rate_out (level_out - y) over dt."""
    rate = rate_in + rate_out
    target = np.divide(rate_in * level_in + rate_out * level_out, rate, out=np.array(value, dtype=float),
                       where=rate > 0)
    return target + (value - target) * np.exp(-rate * dt_h)


class EndothelialActivation:
    name = "endothelium"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        self.interval_h = every_steps * model.dt_min / 60.0
        self.serum = model.geometry.role_code("blood")
        s = model.scenario
        e, i, c = s.endothelium, s.interventions, s.crs
        self.e = e
        self.columns = [CYTOKINES.index(name) for name in STIMULI]
        self.ec50 = np.array([e.tnfa_ec50_pg_per_ml, e.ifng_ec50_pg_per_ml, e.il6_ec50_pg_per_ml, e.il1b_ec50_pg_per_ml])
        self.vaso_columns = [CYTOKINES.index(name) for name in VASOACTIVE]
        self.vaso_ec50 = np.array([c.fever_il6_ec50_pg_per_ml, c.fever_tnfa_ec50_pg_per_ml,
                                   c.fever_il1b_ec50_pg_per_ml]) * c.vasodilation_scale
        self.vaso_hill, self.sensitivity = c.signal_hill, c.sensitivity
        self.il1_passes = 1.0 - i.anakinra
        total = e.lfa1_icam1_weight + e.vla4_vcam1_weight + e.pselectin_weight
        self.weights = np.zeros(3) if total == 0 else np.array([
            e.lfa1_icam1_weight * (1 - i.minocycline), e.vla4_vcam1_weight * (1 - i.natalizumab),
            e.pselectin_weight * (1 - i.pentosan_polysulfate)]) / total

    def serum_signals(self, model) -> np.ndarray:
        """Serum concentrations of the cytokines (IL-6 and IL-1beta as their signalling)."""
        x = np.zeros(len(CYTOKINES))
        if self.serum is not None:
            x[:] = model.cytokines_pg_per_ml[self.serum]
            x[CYTOKINES.index("il6")] *= 1.0 - model.protocol.tocilizumab_block(model.time_min / 60.0)
            x[CYTOKINES.index("il1b")] *= self.il1_passes
        return x

    def stimulus(self, x: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """S_i of every cell for serum signals x."""
        per_cell = x[self.columns][None, :] / threshold[:, None]
        return 1.0 - np.prod(1.0 - emax(per_cell, self.ec50[None, :], self.e.stimulus_hill), axis=1)

    def vasoactive(self, x: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """Vd_i: each cell's vasoactive signal (the CRS vasodilation rule, per cell)."""
        per_cell = x[self.vaso_columns][None, :] * self.sensitivity / threshold[:, None]
        return 1.0 - np.prod(1.0 - emax(per_cell, self.vaso_ec50[None, :], self.vaso_hill), axis=1)

    def step(self, model) -> None:
        cells, e, dt = model.endothelium, self.e, self.interval_h
        x = self.serum_signals(model)
        s = self.stimulus(x, cells.threshold)
        up = e.activation_per_h * s
        cells.icam1 = _relax(cells.icam1, up, 1.0, e.recovery_per_h, e.rest_level, dt)
        cells.vcam1 = _relax(cells.vcam1, up, 1.0, e.recovery_per_h, 0.0, dt)
        exo = e.exocytosis_per_h * s
        rate = exo + e.refill_per_h
        start = cells.store
        cells.store = _relax(start, exo, 0.0, e.refill_per_h, 1.0, dt)
        target = np.divide(e.refill_per_h, rate, out=np.array(start), where=rate > 0)
        decay = rate * dt
        mean_store = target + (start - target) * np.divide(-np.expm1(-decay), decay, out=np.ones_like(decay),
                                                           where=decay > 0)
        cells.pselectin = s * mean_store
        released_per_h = float((exo * mean_store)[cells.layer == WALL].mean())
        k = math.log(2.0) / e.ang2_half_life_h
        ang2_target = e.ang2_rest_ng_per_ml + e.ang2_full_release_ng_per_ml * released_per_h / k
        cells.ang2_ng_per_ml = ang2_target + (cells.ang2_ng_per_ml - ang2_target) * math.exp(-k * dt)
        cells.leak = self.vasoactive(x, cells.threshold) * (1.0 - cells.store)
        self.publish(model, cells)

    def publish(self, model, cells: EndothelialCells) -> None:
        """The layer means the rest of the model reads."""
        e = self.e
        wall = cells.layer == WALL
        icam = (cells.icam1[wall] - e.rest_level) / (1.0 - e.rest_level) if e.rest_level < 1 else np.zeros(wall.sum())
        binding = self.weights @ np.vstack([np.maximum(icam, 0.0), cells.vcam1[wall], cells.pselectin[wall]])
        model.endothelial_activation = float(cells.icam1[wall].mean())
        model.capillary_leak = float(cells.leak[wall].mean())
        model.bbb_leak = float(cells.leak[~wall].mean())
        model.adhesion_stimulus = float(emax(model.conc_pg_per_ml, e.drug_ec50_pg_per_ml)) * float(binding.mean())
