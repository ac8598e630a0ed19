"""Bridged-synapse formation between touching T cells and CD19+ cells.

The contact search and pairing run in ext/_contacts.pyx; this process sizes the grid,
computes the 2D affinities and each subset's bridge threshold, and starts the programme of
T cells that engage: activation (first synapse), arming and the stimulation that sets the
division destiny (processes/t_cells.py).
"""
from __future__ import annotations

import numpy as np

from blinasim import _contacts, rng
from blinasim.cells import subset_traits
from blinasim.populations import NEVER
from blinasim.processes.base import activity_since_synapse, engaged_share
from blinasim.rng import Purpose
from blinasim.units import kd_2d_per_um2


def capture(copies: np.ndarray, area_um2: float, k2d_per_um2: float) -> np.ndarray:
    """Probability that a drug arm in the contact finds a free receptor: rho / (rho + K2D)."""
    rho = np.asarray(copies, dtype=float) / area_um2
    return np.divide(rho, rho + k2d_per_um2, out=np.zeros_like(rho), where=rho > 0.0)


def expected_bridges(cd19, cd3, occ19, occ3, contact_fraction: float, area_um2: float,
                     k2d19: float, k2d3: float) -> np.ndarray:
    """B = f (N19 theta19 phi3 + N3 theta3 phi19): expected drug bridges in a contact
    (the kernel's formula, vectorised over pairs)."""
    return contact_fraction * (np.asarray(cd19) * occ19 * capture(cd3, area_um2, k2d3)
                               + np.asarray(cd3) * occ3 * capture(cd19, area_um2, k2d19))


def bridges_needed(scenario) -> np.ndarray:
    """Bridges a contact needs to trigger, per subset: round(m x trigger_factor), at least 1."""
    m = scenario.binding.bridges_to_trigger * subset_traits(scenario, "trigger_factor")
    return np.maximum(1, np.round(m)).astype(np.int32)


def lognormal_factor(z: np.ndarray, sigma: float) -> np.ndarray:
    """exp(sigma z - sigma^2 / 2): a log-normal factor with mean 1."""
    return np.exp(sigma * z - 0.5 * sigma * sigma)


def binned_per_compartment(free_t: np.ndarray, free_targets: np.ndarray) -> np.ndarray:
    """Cells of the more numerous side per compartment, 0 where a side is missing (the
    grid does not bin such a compartment)."""
    return np.where((free_t > 0) & (free_targets > 0), np.maximum(free_t, free_targets), 0)


class SynapseFormation:
    name = "synapse"
    every_steps = 1

    def __init__(self, model):
        s = model.scenario
        self.radius_um = s.synapse.contact_radius_um
        self.k2d19 = kd_2d_per_um2(s.drug.kd_cd19_m, s.binding.confinement_length_nm)
        self.k2d3 = kd_2d_per_um2(s.drug.kd_cd3_m, s.binding.confinement_length_nm)
        self.needed = bridges_needed(s)
        steps_per_h = 60.0 / model.dt_min
        self.arming_steps = np.array([s.lysis.arming_cd8_h, s.lysis.arming_cd4_h]) * steps_per_h
        self.first_division_steps = (s.activation.proliferation_lag_h * steps_per_h
                                     * subset_traits(s, "first_division_factor"))
        self.new_synapses = 0
        self.contact_grid = _contacts.ContactGrid()

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
        pairs, free_t, free_targets = model.contact_compartments()
        if not np.any(pairs):
            return
        # bins for about one cell of the more numerous side each (any size gives the same
        # synapses; this one bounds memory)
        nx, ny, offset = self.grid(model, binned_per_compartment(free_t, free_targets) * pairs)
        threads = model.kernel_threads()
        _contacts.build_grid(self.contact_grid, pairs, pop.x, pop.y, pop.kind, pop.comp, pop.alive,
                             pop.partner, pop.id, pop.cd19, pop.cd3, nx, ny, offset, geo.width_um,
                             geo.height_um, threads)
        t_rows = _contacts.form_synapses(
            self.contact_grid, pop.partner, model.occ19, model.occ3, self.radius_um,
            s.binding.contact_area_fraction, s.binding.lymphocyte_area_um2, self.k2d19,
            self.k2d3, pop.subset, self.needed, model.seed, model.steps, threads)
        self.new_synapses = len(t_rows)
        if len(t_rows):
            self.engage(model, t_rows)

    def engage(self, model, t_rows: np.ndarray) -> None:
        """Book-keeping of new synapses: engagement, activation, arming and stimulation.

        A sentinel synapse engages only the share f = min(1, w/s) of the patient T cells the
        agent stands for (docs/model.md, *The T cell's side of a sentinel synapse*). A resting
        agent is activated with probability f, and then stands for engaged cells (share 1);
        otherwise for cells that were not engaged (share 0). For an activated agent the
        consequences are graded: one more AICD engagement with probability f, stimulation
        f x the synapse's bridges, exhaustion for the share f, and secretory activity
        f + (1 - f) x its activity before the synapse.
        """
        pop, step, b = model.pop, model.steps, model.scenario.binding
        share = engaged_share(model, t_rows)
        takes = np.ones(len(t_rows), dtype=bool)
        if np.any(share < 1.0):
            takes = rng.uniforms(model.seed, pop.id[t_rows], step, Purpose.ENGAGED_SHARE) < share
        was_active = pop.activated_step[t_rows] != NEVER
        activity_before = np.zeros(len(t_rows))
        activity_before[was_active] = activity_since_synapse(model, t_rows[was_active])
        pop.synapse_step[t_rows] = step
        pop.engaged_step[t_rows] = step
        pop.engagements[t_rows] += takes
        pop.engaged_share[t_rows] = np.where(was_active, share, takes)
        pop.activity_scale[t_rows] = np.where(was_active, share + (1.0 - share) * activity_before, 1.0)
        activates = takes & ~was_active
        first = t_rows[activates]
        if len(first):
            self.activate(model, first)
        programming_mask = (was_active | activates) & (pop.destiny[t_rows] == NEVER)
        programming = t_rows[programming_mask]
        if len(programming):
            targets = pop.partner[programming]
            comp = pop.comp[programming]
            bridges = expected_bridges(
                pop.cd19[targets], pop.cd3[programming], model.occ19[comp], model.occ3[comp],
                b.contact_area_fraction, b.lymphocyte_area_um2, self.k2d19, self.k2d3)
            pop.stimulation[programming] += bridges * np.where(activates, 1.0, share)[programming_mask]

    def activate(self, model, rows: np.ndarray) -> None:
        """A T cell's first synapse since rest: it starts a programme, and one without a
        granule store starts arming after a log-normal delay (docs/model.md)."""
        pop, step, s = model.pop, model.steps, model.scenario
        ids = pop.id[rows]
        pop.activated_step[rows] = step
        pop.stimulation[rows] = 0.0
        pop.destiny[rows] = NEVER
        pop.generation[rows] = 0
        first = self.first_division_steps[pop.subset[rows]] * lognormal_factor(
            rng.normals(model.seed, ids, step, Purpose.DIVISION_TIME), s.activation.division_time_sigma_log)
        pop.next_division_step[rows] = step + np.maximum(1, np.round(first)).astype(np.int32)
        unarmed = pop.armed_step[rows] == NEVER
        if np.any(unarmed):
            delay = self.arming_steps[pop.kind[rows[unarmed]]] * lognormal_factor(
                rng.normals(model.seed, ids[unarmed], step, Purpose.ARMING), s.lysis.arming_sigma_log)
            pop.armed_step[rows[unarmed]] = step + np.round(delay).astype(np.int32)
