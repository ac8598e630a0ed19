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

    activity = activity_scale x exp(-(time since last synapse) / activity_decay_h), with
    activity_scale 1 but after a sentinel synapse (synapse.py).
    """
    pop = model.pop
    rows = np.flatnonzero((pop.alive == 1) & (pop.kind <= KIND_CODE["cd4"]) & (pop.activated_step != NEVER))
    in_synapse = pop.partner[rows] >= 0
    return rows, np.where(in_synapse, pop.activity_scale[rows], activity_since_synapse(model, rows))


def activity_since_synapse(model, rows: np.ndarray) -> np.ndarray:
    """Secretory activity of T-cell agents `rows` decayed from their last synapse."""
    since_h = (model.steps - model.pop.engaged_step[rows]) * model.dt_min / 60.0
    return model.pop.activity_scale[rows] * np.exp(-since_h / model.scenario.cytokines.activity_decay_h)


def engaged_share(model, t_rows: np.ndarray) -> np.ndarray:
    """Share of the patient T cells each T-cell agent in `t_rows` stands for that its partner
    engages: min(1, w / s) for a blast partner of weight w in a compartment of scale s
    (a sentinel is met as often as a blast at the site's density, but of the s patient T
    cells the agent stands for only w have a blast to engage), 1 for any other partner."""
    pop = model.pop
    partners = pop.partner[t_rows]
    assert np.all(partners >= 0), "engaged_share of T cells without a partner"
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
