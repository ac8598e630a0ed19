"""BlinaModel: the Mesa model that steps an ordered list of processes over the populations."""
from __future__ import annotations

import math

import mesa
import numpy as np

from blinasim.cells import seed_cells
from blinasim.compartments import build_geometry, migration_graph
from blinasim.pk import Pharmacokinetics
from blinasim.populations import KIND_CODE, Population
from blinasim.processes.b_cells import BCellTurnover
from blinasim.processes.binding import ReceptorOccupancy
from blinasim.processes.blasts import BlastGrowth
from blinasim.processes.lysis import GranuleLysis
from blinasim.processes.migration import Migration
from blinasim.processes.motility import RandomWalk
from blinasim.processes.pharmacokinetics import DrugConcentration
from blinasim.processes.synapse import SynapseFormation
from blinasim.processes.t_cells import ActivatedTCellDynamics
from blinasim.schema import CELL_KINDS, Scenario
from blinasim.units import pg_per_ml_to_molar

POPULATION_INTERVAL_MIN = 10.0
"""Births, deaths and migration are stepped every 10 minutes (see docs/model.md)."""

KILL_COLUMNS = ("time_h", "killer_id", "target_id", "target_kind", "compartment")


class BlinaModel(mesa.Model):
    """Cells of every kind and compartment in one struct-of-arrays population.

    Each step (`time_step_min` minutes) runs, in order: PK, receptor occupancy, motility,
    synapse formation and lysis; every ~10 minutes also T-cell expansion/death, blast
    growth, B-cell turnover and migration, then dead cells are compacted away.
    """

    def __init__(self, scenario: Scenario, seed: int | None = None, threads: int = 1):
        seed = scenario.seed if seed is None else int(seed)
        super().__init__(seed=seed)
        self.seed = seed
        self.scenario = scenario
        self.threads = max(1, int(threads))
        self.dt_min = scenario.time_step_min
        self.total_steps = int(round(scenario.duration_h * 60.0 / self.dt_min))
        self.geometry = build_geometry(scenario)
        self.graph = migration_graph(scenario)
        self.pk = Pharmacokinetics(scenario.pk, scenario.schedule)
        self.conc_pg_per_ml = self.pk.conc_pg_per_ml
        self.occ19 = np.zeros(len(self.geometry.names))
        self.occ3 = np.zeros(len(self.geometry.names))
        self.kills_total = 0
        self._kill_buffer: list[tuple[np.ndarray, ...]] = []
        self.pop = Population()
        self._populate()
        self.processes = self._build_processes()

    def _populate(self) -> None:
        geo = self.geometry
        for comp, compartment in enumerate(self.scenario.compartments.values()):
            for kind in CELL_KINDS:
                count = int(round(compartment.cells_per_ul.get(kind) * geo.volume_ul[comp]))
                if count:
                    seed_cells(self.pop, self.scenario, kind, comp, count,
                               geo.width_um[comp], geo.height_um[comp], self.seed, 0)

    def _build_processes(self) -> list:
        slow = max(1, int(round(POPULATION_INTERVAL_MIN / self.dt_min)))
        self.population_every_steps = slow
        processes = [DrugConcentration(), ReceptorOccupancy(), RandomWalk(self),
                     SynapseFormation(self), GranuleLysis(self),
                     ActivatedTCellDynamics(self, slow), BlastGrowth(self, slow),
                     BCellTurnover(self, slow)]
        if self.graph.number_of_edges():
            processes.append(Migration(self, slow))
        return processes

    # ------------------------------------------------------------------ stepping
    @property
    def time_min(self) -> float:
        return self.steps * self.dt_min

    @property
    def finished(self) -> bool:
        return self.steps >= self.total_steps

    def step(self) -> None:
        """One time step (Mesa has already advanced self.steps)."""
        for process in self.processes:
            if self.steps % process.every_steps == 0:
                process.step(self)
        if self.steps % self.population_every_steps == 0:
            self.pop.compact()

    def record_kills(self, killer_rows: np.ndarray, target_rows: np.ndarray) -> None:
        """Log kills of this step (called by the lysis process before compaction)."""
        pop = self.pop
        self.kills_total += len(target_rows)
        self._kill_buffer.append((np.full(len(target_rows), self.time_min / 60.0),
                                  pop.id[killer_rows].copy(), pop.id[target_rows].copy(),
                                  pop.kind[target_rows].copy(), pop.comp[target_rows].copy()))

    def drain_kills(self) -> dict[str, np.ndarray]:
        """The kills logged since the last drain, as columns."""
        if not self._kill_buffer:
            return {}
        columns = [np.concatenate(parts) for parts in zip(*self._kill_buffer)]
        self._kill_buffer.clear()
        return dict(zip(KILL_COLUMNS, columns))

    # ------------------------------------------------------------------ read-outs
    def observables(self) -> dict[str, float]:
        """The timeseries row for the current time."""
        geo, pop = self.geometry, self.pop
        counts = pop.count_by(len(geo.names))
        t_kinds = [KIND_CODE["cd8"], KIND_CODE["cd4"]]
        row = {
            "drug_pg_per_ml": self.conc_pg_per_ml,
            "drug_pmol_per_l": pg_per_ml_to_molar(self.conc_pg_per_ml, self.scenario.drug.molar_mass_kda) * 1e12,
            "blood_b_per_ul": math.nan,
            "blood_t_per_ul": math.nan,
            "marrow_blast_fraction": math.nan,
            "blasts": float(counts[:, KIND_CODE["blast"]].sum()),
            "synapses": float(np.count_nonzero((pop.partner >= 0) & (pop.kind <= KIND_CODE["cd4"]))),
            "kills_cumulative": float(self.kills_total),
            "t_cells_activated": float(np.count_nonzero((pop.alive == 1) & (pop.kind <= KIND_CODE["cd4"])
                                                        & (pop.activated_step >= 0))),
        }
        blood, marrow = geo.code("blood"), geo.code("marrow")
        if blood is not None:
            row["blood_b_per_ul"] = counts[blood, KIND_CODE["b"]] / geo.volume_ul[blood]
            row["blood_t_per_ul"] = counts[blood, t_kinds].sum() / geo.volume_ul[blood]
        if marrow is not None:
            nucleated = max(geo.nucleated_capacity[marrow], counts[marrow].sum(), 1)
            row["marrow_blast_fraction"] = counts[marrow, KIND_CODE["blast"]] / nucleated
        for c, name in enumerate(geo.names):
            for k, kind in enumerate(CELL_KINDS):
                row[f"count_{name}_{kind}"] = float(counts[c, k])
        return row

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        """Everything that changes during a run (the scenario and seed rebuild the rest)."""
        state = self.pop.state()
        state.update({"model.steps": self.steps, "model.conc_pg_per_ml": self.conc_pg_per_ml,
                      "model.kills_total": self.kills_total})
        return state

    def restore(self, state) -> None:
        """Continue from a state saved by `state()` at a step boundary."""
        self.pop = Population.from_state(state)
        self.steps = int(state["model.steps"])
        self.conc_pg_per_ml = self.pk.conc_pg_per_ml = float(state["model.conc_pg_per_ml"])
        self.kills_total = int(state["model.kills_total"])
        self._kill_buffer.clear()
        self.processes = self._build_processes()


VARIABLE_META = {
    "drug_pg_per_ml": ("pg/mL", "plasma blinatumomab concentration"),
    "drug_pmol_per_l": ("pmol/L", "plasma blinatumomab concentration"),
    "blood_b_per_ul": ("cells/uL", "normal B cells in blood"),
    "blood_t_per_ul": ("cells/uL", "T cells (CD8 + CD4) in blood"),
    "marrow_blast_fraction": ("1", "blasts / nucleated marrow cells"),
    "blasts": ("cells", "live blasts, all compartments"),
    "synapses": ("cells", "T cells in a bridged synapse"),
    "kills_cumulative": ("cells", "targets killed since the start"),
    "t_cells_activated": ("cells", "live T cells ever activated by a synapse"),
}


def variable_meta(name: str) -> tuple[str, str]:
    """(units, long name) of a timeseries variable."""
    if name.startswith("count_"):
        compartment, kind = name[len("count_"):].rsplit("_", 1)
        return "cells", f"live {kind} cells in {compartment}"
    return VARIABLE_META[name]
