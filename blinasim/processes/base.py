"""The process protocol: a mechanism stepped by the model every `every_steps` steps."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from blinasim.model import BlinaModel


class Process(Protocol):
    name: str
    every_steps: int

    def step(self, model: "BlinaModel") -> None: ...


def probability(rate_per_h: float, interval_min: float) -> float:
    """Chance that an event with a constant hourly rate happens within an interval."""
    return -math.expm1(-rate_per_h * interval_min / 60.0)
