"""Drug concentration: advances the exact one-compartment PK solution each step."""
from __future__ import annotations


class DrugConcentration:
    name = "pharmacokinetics"
    every_steps = 1

    def step(self, model) -> None:
        start_min = (model.steps - 1) * model.dt_min
        model.conc_pg_per_ml = model.pk.advance(start_min, model.dt_min)
