"""The dish written as a Mesa user would write it: the plain-Mesa reference of the benchmark.

This is deliberately *not* blinasim's engine. It is the same in-vitro well (T cells and
blasts, E:T 1:2, one cell per 400 um2 on average) as a straightforward Mesa 3 model:

- an `OrthogonalMooreGrid` whose cells are one contact radius (10 um) wide, on a torus;
- T cells are `CellAgent`s; blasts are `FixedAgent`s (cell agents that never move);
- each step, every T cell (in random order):
  - if it is in a synapse: after `SYNAPSE_STEPS` steps the synapse ends and the blast dies
    with probability `KILL_PROBABILITY`;
  - otherwise it steps to a random neighbouring grid cell and, with probability
    `ENGAGE_PROBABILITY`, engages one free live blast of its own or a neighbouring cell.

It is used by `blinasim.bench` to put the engine's agent-steps per second in perspective;
it uses only Mesa's public API and Mesa's seeded random generator.
"""
from __future__ import annotations

import math

import mesa
from mesa.discrete_space import CellAgent, FixedAgent, OrthogonalMooreGrid

CONTACT_RADIUS_UM = 10.0
"""Width of one grid cell."""
ENGAGE_PROBABILITY = 0.5
SYNAPSE_STEPS = 20
KILL_PROBABILITY = 0.8


class Blast(FixedAgent):
    """A leukaemic blast: does not move; engaged by at most one T cell at a time."""

    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.engaged = False


class TCell(CellAgent):
    """A T cell: walks, engages a blast nearby, kills it at the end of the synapse."""

    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.target: Blast | None = None
        self.synapse_age = 0

    def step(self) -> None:
        if self.target is not None:
            self.synapse_age += 1
            if self.synapse_age >= SYNAPSE_STEPS:
                self.end_synapse()
            return
        self.move_to(self.cell.neighborhood.select_random_cell())
        if self.random.random() < ENGAGE_PROBABILITY:
            free = [agent for agent in self.cell.agents if isinstance(agent, Blast) and not agent.engaged]
            free += [agent for agent in self.cell.neighborhood.agents
                     if isinstance(agent, Blast) and not agent.engaged]
            if free:
                self.target = self.random.choice(free)
                self.target.engaged = True
                self.synapse_age = 0
                self.model.synapses_formed += 1

    def end_synapse(self) -> None:
        blast, self.target = self.target, None
        blast.engaged = False
        if self.random.random() < KILL_PROBABILITY:
            blast.remove()
            self.model.kills += 1


class MesaDish(mesa.Model):
    """`cells` agents (one third T cells, two thirds blasts) on a square torus grid."""

    def __init__(self, cells: int, seed: int = 1, um2_per_cell: float = 400.0):
        super().__init__(seed=seed)
        side = max(3, round(math.sqrt(cells * um2_per_cell) / CONTACT_RADIUS_UM))
        self.grid = OrthogonalMooreGrid((side, side), torus=True, random=self.random)
        self.synapses_formed = 0
        self.kills = 0
        t_cells = cells // 3
        for _ in range(cells - t_cells):
            Blast(self, self.grid.all_cells.select_random_cell())
        for _ in range(t_cells):
            TCell(self, self.grid.all_cells.select_random_cell())

    def step(self) -> None:
        self.agents_by_type[TCell].shuffle_do("step")

    @property
    def blasts(self) -> int:
        return len(self.agents_by_type[Blast])

    @property
    def synapses(self) -> int:
        return sum(1 for t in self.agents_by_type[TCell] if t.target is not None)
