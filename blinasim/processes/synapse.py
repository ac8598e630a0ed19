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

    def grid(self, model, binned_per_comp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bins per side and bin offsets of every compartment for this step's binned cells."""
        geo = model.geometry
        shape = [_contacts.grid_shape(w, h, self.radius_um, n)
                 for w, h, n in zip(geo.width_um, geo.height_um, binned_per_comp)]
        nx = np.array([s[0] for s in shape], dtype=np.int64)
        ny = np.array([s[1] for s in shape], dtype=np.int64)
        offset = np.concatenate([[0], np.cumsum(nx * ny)]).astype(np.int64)
        return nx, ny, offset

    def step(self, model) -> None:
        pop, geo = model.pop, model.geometry
        self.new_synapses = 0
        if not np.any(model.occ19 > 0) and not np.any(model.occ3 > 0):
            return
        free_t, free_targets = _contacts.count_free(pop.kind, pop.comp, pop.alive, pop.partner,
                                                    len(geo.names))
        # per compartment: the fewer cells scan, the more numerous are binned (same
        # synapses either way); no pairing where a side is missing or there is no drug
        pairing = (free_t > 0) & (free_targets > 0) & ((model.occ19 > 0) | (model.occ3 > 0))
        if not np.any(pairing):
            return
        side = np.where(~pairing, _contacts.NO_PAIRING,
                        np.where(free_targets < free_t, _contacts.BIN_T_CELLS, _contacts.BIN_TARGETS)).astype(np.int8)
        binned = np.where(side == _contacts.BIN_T_CELLS, free_t, np.where(pairing, free_targets, 0))
        nx, ny, offset = self.grid(model, binned)
        start, rows = _contacts.build_grid(side, pop.x, pop.y, pop.kind, pop.comp, pop.alive,
                                           pop.partner, nx, ny, offset, geo.width_um, geo.height_um)
        s = model.scenario
        t_rows = _contacts.form_synapses(
            side, pop.x, pop.y, pop.kind, pop.comp, pop.alive, pop.id, pop.cd19, pop.cd3,
            pop.partner, start, rows, nx, ny, offset, geo.width_um, geo.height_um,
            model.occ19, model.occ3, self.radius_um, s.binding.contact_area_fraction,
            s.binding.lymphocyte_area_um2, self.k2d19, self.k2d3, s.binding.bridges_to_trigger,
            model.seed, model.steps,
            model.threads)
        step = model.steps
        pop.synapse_step[t_rows] = step
        pop.engaged_step[t_rows] = step
        pop.engagements[t_rows] += 1
        first = t_rows[pop.activated_step[t_rows] == NEVER]
        pop.activated_step[first] = step
        self.new_synapses = len(t_rows)
