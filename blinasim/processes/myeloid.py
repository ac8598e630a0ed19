"""Monocytes and macrophages as agents: activation by T-cell cytokines, CD40L contact and
IL-1beta, and release of IL-6 and IL-1beta (the amplifying loop of CRS).

Myeloid cell i in compartment c has activation a_i in [0, 1] and a stimulus threshold
factor theta_i = exp(sd z_i) drawn at the start. With x_c the local concentrations times
the patient's `responsiveness` (IL-1beta signalling times 1 - anakinra),
    s_X = h(x_X / theta_i; EC50_X, n),  h(x; K, n) = x^n / (x^n + K^n)   for X in TNF, IFN-g, IL-1b
    contact_i ~ Bernoulli(1 - exp(-k rho_c dt)),   rho_c = summed T-cell activity per uL
    S_i = 1 - (1 - s_TNF)(1 - s_IFNg)(1 - s_IL1)(1 - contact_i)
    da_i/dt = k_act S_i (1 - T_i) (1 - D(t)) (1 - h(x_IL10; IC50_IL10, 1)) (1 - a_i) - k_rec a_i
    dT_i/dt = k_tol a_i (1 - T_i) - k_back T_i
(each solved exactly over dt, the other held at its start value) with D(t) the
dexamethasone inhibition; IL-10 (made by the activated T cells and Tregs) inhibits monocyte
activation (de Waal Malefyt 1991), and a cell that has been active for hours becomes
refractory (tolerance T_i, as in endotoxin tolerance): the two brakes on the IL-1beta loop. A compartment's myeloid release of IL-6 and
IL-1beta is sum_i a_i r (1 - D(t)), added to the T cells' release by `CytokineRelease`.
Myeloid cells neither move nor die here: their numbers stand for a site that is refilled
(monocyte turnover) faster than a cycle.
"""
from __future__ import annotations

import numpy as np

from blinasim import rng
from blinasim.processes.base import emax, t_cell_activity
from blinasim.processes.cytokines import CYTOKINES
from blinasim.rng import Purpose

STIMULI = ("tnfa", "ifng", "il1b")


class MyeloidCells:
    """The myeloid agents: compartment, activation and stimulus threshold factor."""

    def __init__(self, model):
        geo, m = model.geometry, model.scenario.myeloid
        counts = [int(round(c.myeloid_per_ul * geo.volume_ul[i]))
                  for i, c in enumerate(model.scenario.compartments.values())]
        self.comp = np.repeat(np.arange(len(counts)), counts)
        self.ids = np.arange(len(self.comp), dtype=np.int64)
        self.threshold = np.exp(m.cell_sd_log * rng.normals(model.seed, self.ids, 0, Purpose.INIT_MYELOID))
        self.activation = np.zeros(len(self.comp))
        self.tolerance = np.zeros(len(self.comp))
        self.n_comps = len(counts)

    def state(self) -> dict:
        return {"myeloid.activation": self.activation.copy(), "myeloid.tolerance": self.tolerance.copy()}

    def restore(self, state) -> None:
        self.activation = np.array(state["myeloid.activation"], dtype=float)
        self.tolerance = np.array(state["myeloid.tolerance"], dtype=float)

    def activation_by_compartment(self) -> np.ndarray:
        """Summed activation of each compartment's myeloid cells."""
        return np.bincount(self.comp, weights=self.activation, minlength=self.n_comps)

    def mean_activation(self, comps: list[int]) -> float:
        """Mean activation of the myeloid cells of the given compartments (0 if there are none)."""
        inside = np.isin(self.comp, comps)
        return float(self.activation[inside].mean()) if inside.any() else 0.0


class MyeloidActivation:
    name = "myeloid"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        self.interval_h = every_steps * model.dt_min / 60.0
        m = model.scenario.myeloid
        self.m = m
        self.ec50 = np.array([m.tnfa_ec50_pg_per_ml, m.ifng_ec50_pg_per_ml, m.il1b_ec50_pg_per_ml])
        self.columns = [CYTOKINES.index(name) for name in STIMULI]
        self.il10 = CYTOKINES.index("il10")
        self.il1_passes = 1.0 - model.scenario.interventions.anakinra
        self.volume_ul = model.geometry.volume_ul

    def stimulus(self, model, cells: MyeloidCells) -> np.ndarray:
        """S_i of every myeloid cell this interval (cytokines and contact draws)."""
        m = self.m
        sensed = model.cytokines_pg_per_ml[:, self.columns] * m.responsiveness
        sensed[:, 2] *= self.il1_passes
        per_cell = sensed[cells.comp] / cells.threshold[:, None]
        quiet = np.prod(1.0 - emax(per_cell, self.ec50[None, :], m.stimulus_hill), axis=1)
        rows, activity = t_cell_activity(model)
        rho = np.bincount(model.pop.comp[rows], weights=activity, minlength=cells.n_comps) / self.volume_ul
        p_contact = -np.expm1(-m.contact_ul_per_h * rho * self.interval_h)
        contact = rng.uniforms(model.seed, cells.ids, model.steps, Purpose.MYELOID_CONTACT) < p_contact[cells.comp]
        return 1.0 - quiet * ~contact

    def il10_inhibition(self, model, cells: MyeloidCells) -> np.ndarray:
        """h(x_IL10; IC50, 1) of every myeloid cell (its compartment's IL-10)."""
        sensed = model.cytokines_pg_per_ml[:, self.il10] * self.m.responsiveness
        return emax(sensed, self.m.il10_ic50_pg_per_ml)[cells.comp]

    def step(self, model) -> None:
        cells = model.myeloid
        if not len(cells.comp):
            return
        m = self.m
        dexamethasone = 1.0 - model.protocol.dexamethasone_inhibition(model.time_min / 60.0)
        up = (m.activation_per_h * self.stimulus(model, cells) * (1.0 - cells.tolerance) * dexamethasone
              * (1.0 - self.il10_inhibition(model, cells)))
        active = cells.activation
        cells.activation = relax(active, up, m.recovery_per_h, self.interval_h)
        cells.tolerance = relax(cells.tolerance, m.tolerance_per_h * active, m.tolerance_recovery_per_h, self.interval_h)


def relax(value: np.ndarray, up: np.ndarray, down: float, dt_h: float) -> np.ndarray:
    """Exact solution of dy/dt = up (1 - y) - down y over dt_h."""
    rate = up + down
    target = np.divide(up, rate, out=np.zeros_like(rate), where=rate > 0)
    return target + (value - target) * np.exp(-rate * dt_h)
