"""Bridged-synapse formation between touching T cells and CD19+ cells.

The contact search and pairing run in ext/_contacts.pyx; this process sizes the grid,
computes the 2D affinities and marks the T cells that engage as activated.
"""
from __future__ import annotations

import numpy as np

from blinasim import _contacts
from blinasim.populations import NEVER
from blinasim.units import kd_2d_per_um2


class SynapseFormation:
    name = "synapse"
    every_steps = 1

    def __init__(self, model):
        s = model.scenario
        self.radius_um = s.synapse.contact_radius_um
        self.k2d19 = kd_2d_per_um2(s.drug.kd_cd19_m, s.binding.confinement_length_nm)
        self.k2d3 = kd_2d_per_um2(s.drug.kd_cd3_m, s.binding.confinement_length_nm)
        self.new_synapses = 0
        self.contact_grid = _contacts.ContactGrid()
        self.binned: np.ndarray | None = None  # free cells of the larger side, last step

    def grid(self, model, binned_per_comp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bins per side and bin offsets of every compartment for this many binned cells."""
        geo = model.geometry
        shape = [_contacts.grid_shape(w, h, self.radius_um, n)
                 for w, h, n in zip(geo.width_um, geo.height_um, binned_per_comp)]
        nx = np.array([s[0] for s in shape], dtype=np.int64)
        ny = np.array([s[1] for s in shape], dtype=np.int64)
        offset = np.concatenate([[0], np.cumsum(nx * ny)]).astype(np.int64)
        return nx, ny, offset

    def step(self, model) -> None:
        pop, geo, s = model.pop, model.geometry, model.scenario
        self.new_synapses = 0
        pairs = ((model.occ19 > 0) | (model.occ3 > 0)).astype(np.uint8)
        if not np.any(pairs):
            return
        if self.binned is None:  # first step: count; later, size by the last step's grid
            self.binned = np.maximum(*_contacts.count_free(pop.kind, pop.comp, pop.alive,
                                                           pop.partner, len(geo.names)))
        # bins for about one cell of the more numerous side each (any size gives the same
        # synapses; this one bounds memory)
        nx, ny, offset = self.grid(model, self.binned * pairs)
        threads = model.kernel_threads()
        free_t, free_targets = _contacts.build_grid(
            self.contact_grid, pairs, pop.x, pop.y, pop.kind, pop.comp, pop.alive,
            pop.partner, pop.id, pop.cd19, pop.cd3, nx, ny, offset, geo.width_um,
            geo.height_um, threads)
        self.binned = np.maximum(free_t, free_targets)
        t_rows = _contacts.form_synapses(
            self.contact_grid, pop.partner, model.occ19, model.occ3, self.radius_um,
            s.binding.contact_area_fraction, s.binding.lymphocyte_area_um2, self.k2d19,
            self.k2d3, s.binding.bridges_to_trigger, model.seed, model.steps, threads)
        step = model.steps
        pop.synapse_step[t_rows] = step
        pop.engaged_step[t_rows] = step
        pop.engagements[t_rows] += 1
        first = t_rows[pop.activated_step[t_rows] == NEVER]
        pop.activated_step[first] = step
        self.new_synapses = len(t_rows)
