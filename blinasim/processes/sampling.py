"""Weighted blasts of a sampled patient site: split when few, make single cells, thin when many.

A compartment with scale > 1 (`patient_volume_ul` set) is a sample of a larger patient
site. Each of its blast agents carries a weight w, the patient cells it stands for, and the
site holds N = sum(w) blasts. Every population interval, per sampled compartment with n
blast agents:

- split: while 0 < n < n_min, every free blast with w >= 2 becomes two of weight w/2, the
  copy placed uniformly at random in the compartment (a copy at the same place would
  double the local density). N is unchanged exactly.
- single cells: a free blast with 1 < w < 2 becomes one cell of weight 1 and, with
  probability w - 1, a second one. E[N] is unchanged; the residue is then single cells.
- thin: while n > 2 n_site or n > n_max, each free blast survives with probability 1/2 and
  doubles its weight. E[N] is unchanged. n_site = max(n_min, N / s) is the agents the
  site's density needs (s the compartment's scale): sentinels that regrow, and light blasts
  arriving from a finer-sampled site, must not crowd the slab's T cells with more blasts
  than the patient has per T cell.
- re-weight arrivals: a free blast heavier than twice the compartment's scale s (one that
  migrated in from a site sampled more coarsely) becomes k = ceil(w/s) blasts of weight w/k,
  the copies placed at random (fewer when that would pass n_max). N is unchanged exactly.

Engaged blasts are left alone until their synapse ends.
"""
from __future__ import annotations

import numpy as np

from blinasim import rng
from blinasim.cells import copy_cells
from blinasim.populations import KIND_CODE
from blinasim.rng import Purpose


class BlastSampling:
    name = "blast_sampling"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        self.sampled = np.flatnonzero(model.geometry.sampled)
        self.min_agents = model.scenario.patient.min_blast_agents
        self.max_agents = model.scenario.patient.max_blast_agents

    def step(self, model) -> None:
        for comp in self.sampled:
            self._reweight_arrivals(model, comp)
            pop = model.pop
            blasts = (pop.alive == 1) & (pop.kind == KIND_CODE["blast"]) & (pop.comp == comp)
            n = int(np.count_nonzero(blasts))
            free = blasts & (pop.partner < 0)
            needed = max(self.min_agents, pop.weight[blasts].sum() / model.geometry.scale[comp])
            if 0 < n < self.min_agents:
                self._split(model, comp, np.flatnonzero(free & (pop.weight >= 2.0)))
            elif n > min(2.0 * needed, self.max_agents):
                self._thin(model, np.flatnonzero(free))
            pop = model.pop
            free = (pop.alive == 1) & (pop.kind == KIND_CODE["blast"]) & (pop.comp == comp) & (pop.partner < 0)
            self._single_cells(model, comp, np.flatnonzero(free & (pop.weight > 1.0) & (pop.weight < 2.0)))

    @staticmethod
    def _place(model, comp: int, rows: np.ndarray, extra: int) -> np.ndarray:
        """Copies of `rows` placed uniformly in the compartment (`extra` keys the draws)."""
        pop, geo = model.pop, model.geometry
        ids = pop.id[rows]
        x = geo.width_um[comp] * rng.uniforms(model.seed, ids, model.steps, Purpose.SPLIT_X, extra)
        y = geo.height_um[comp] * rng.uniforms(model.seed, ids, model.steps, Purpose.SPLIT_Y, extra)
        return copy_cells(pop, rows, x, y, model.steps)

    def _split(self, model, comp: int, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        model.pop.weight[rows] *= 0.5
        self._place(model, comp, rows, 0)

    def _single_cells(self, model, comp: int, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        pop = model.pop
        second = rows[rng.uniforms(model.seed, pop.id[rows], model.steps, Purpose.DISCRETISE) < pop.weight[rows] - 1.0]
        pop.weight[rows] = 1.0
        if len(second):
            self._place(model, comp, second, 1)

    def _reweight_arrivals(self, model, comp: int) -> None:
        pop = model.pop
        scale = model.geometry.scale[comp]
        rows = np.flatnonzero((pop.alive == 1) & (pop.kind == KIND_CODE["blast"]) & (pop.comp == comp)
                              & (pop.partner < 0) & (pop.weight > 2.0 * scale))
        if len(rows) == 0:
            return
        pieces = np.ceil(pop.weight[rows] / scale)
        room = self.max_agents - np.count_nonzero((pop.alive == 1) & (pop.kind == KIND_CODE["blast"]) & (pop.comp == comp))
        if (pieces - 1).sum() > room:  # never past max_blast_agents: the rest stay heavier
            pieces = np.maximum(1.0, np.floor(pieces * max(room, 0) / pieces.sum()))
        pieces = pieces.astype(np.int64)
        pop.weight[rows] /= pieces
        for copy in range(1, int(pieces.max())):   # draws keyed 2, 3, ... (0 and 1 are the split's)
            self._place(model, comp, rows[pieces > copy], copy + 1)

    @staticmethod
    def _thin(model, rows: np.ndarray) -> None:
        pop = model.pop
        dropped = rng.uniforms(model.seed, pop.id[rows], model.steps, Purpose.THIN) < 0.5
        pop.alive[rows[dropped]] = 0
        pop.weight[rows[~dropped]] *= 2.0
