"""The process protocol: a mechanism stepped by the model every `every_steps` steps."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np

from blinasim.populations import KIND_CODE, NEVER

if TYPE_CHECKING:
    from blinasim.model import BlinaModel


class Process(Protocol):
    name: str
    every_steps: int

    def step(self, model: "BlinaModel") -> None: ...


def probability(rate_per_h: float, interval_min: float) -> float:
    """Chance that an event with a constant hourly rate happens within an interval."""
    return -math.expm1(-rate_per_h * interval_min / 60.0)


def t_cell_activity(model) -> tuple[np.ndarray, np.ndarray]:
    """Rows of live activated T cells and their secretory activity (1 while engaged).

    activity = exp(-(time since last synapse) / activity_decay_h).
    """
    pop = model.pop
    rows = np.flatnonzero((pop.alive == 1) & (pop.kind <= KIND_CODE["cd4"]) & (pop.activated_step != NEVER))
    since_h = np.where(pop.partner[rows] >= 0, 0.0, (model.steps - pop.engaged_step[rows]) * model.dt_min / 60.0)
    return rows, np.exp(-since_h / model.scenario.cytokines.activity_decay_h) * pop.engaged_share[rows]


def engaged_share(model, t_rows: np.ndarray) -> np.ndarray:
    """Share of the patient T cells each T-cell agent in `t_rows` stands for that its partner
    engages: min(1, w / s) for a blast partner of weight w in a compartment of scale s
    (a sentinel is met as often as a blast at the site's density, but of the s patient T
    cells the agent stands for only w have a blast to engage), 1 for any other partner."""
    pop = model.pop
    partners = pop.partner[t_rows]
    blast = pop.kind[partners] == KIND_CODE["blast"]
    scale = model.geometry.scale[pop.comp[partners]]
    return np.where(blast, np.minimum(1.0, pop.weight[partners] / scale), 1.0)


def emax(value, ec50: float, hill: float = 1.0):
    """Saturating response value^n / (value^n + ec50^n)."""
    value = np.maximum(value, 0.0) ** hill
    return value / (value + ec50 ** hill)


def cd69_positive(model, rows: np.ndarray) -> np.ndarray:
    """CD69+ T cells among `rows`: from cd69_onset_h after activation until cd69_persist_h
    after the last synapse (the markers section)."""
    pop, m = model.pop, model.scenario.markers
    per_h = 60.0 / model.dt_min
    activated = pop.activated_step[rows] != NEVER
    since_activation = model.steps - pop.activated_step[rows]
    since_engaged = model.steps - pop.engaged_step[rows]
    return activated & (since_activation >= m.cd69_onset_h * per_h) & (since_engaged <= m.cd69_persist_h * per_h)
