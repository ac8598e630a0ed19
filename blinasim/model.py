"""BlinaModel: the Mesa model that steps an ordered list of processes over the populations."""
from __future__ import annotations

import math

import mesa
import numpy as np

from blinasim import _contacts
from blinasim.burden import blast_burden
from blinasim.cells import seed_cells
from blinasim.compartments import build_geometry, migration_graph
from blinasim.pk import Pharmacokinetics
from blinasim.populations import KIND_CODE, NEVER, Population
from blinasim.processes.antigen import AntigenDynamics
from blinasim.processes.assessment import ASSESSMENT_COLUMNS, ResponseAssessment, transplant_day
from blinasim.processes.b_cells import BCellTurnover
from blinasim.processes.base import cd69_positive
from blinasim.processes.binding import ReceptorOccupancy
from blinasim.processes.blasts import BlastGrowth
from blinasim.processes.crs import CrsSigns
from blinasim.processes.cytokines import CYTOKINES, CytokineRelease
from blinasim.processes.endothelium import BARRIER, WALL, EndothelialActivation, EndothelialCells
from blinasim.processes.icans import IcansSigns
from blinasim.processes.lysis import GranuleLysis
from blinasim.processes.migration import Migration
from blinasim.processes.motility import RandomWalk
from blinasim.processes.pharmacokinetics import DrugConcentration
from blinasim.processes.myeloid import MyeloidActivation, MyeloidCells
from blinasim.processes.protocol import Protocol
from blinasim.processes.regulation import TregSuppression
from blinasim.processes.sampling import BlastSampling
from blinasim.processes.synapse import SynapseFormation
from blinasim.processes.t_cells import ActivatedTCellDynamics
from blinasim.schema import CELL_KINDS, MARROW_ROLES, T_KINDS, T_SUBSETS, Scenario
from blinasim.units import pg_per_ml_to_molar

POPULATION_INTERVAL_MIN = 10.0
"""Births, deaths and migration are stepped every 10 minutes (see docs/model.md)."""

PARALLEL_MIN_ROWS = 200_000
"""Below this many rows the kernels run on one thread (see docs/performance.md)."""

KILL_COLUMNS = ("time_h", "killer_id", "target_id", "target_kind", "compartment", "patient_cells")
CONTACT_PROCESSES = ("motility", "synapse", "lysis")
"""Processes that can only act through contacts: not stepped while the model is quiet."""
INTERVENTION_COLUMNS = ("time_h", "action", "value")


class BlinaModel(mesa.Model):
    """Cells of every kind and compartment in one struct-of-arrays population.

    Each step (`time_step_min` minutes) runs, in order: PK, receptor occupancy, motility,
    synapse formation and lysis (the last three not while the model is quiet: no drug and
    no synapse); every ~10 minutes also the protocol (interventions, CRS grade), cytokines,
    Treg suppression, endothelium, CD19 dynamics, T-cell expansion and death, blast growth,
    B-cell turnover, the sampling of weighted blasts, migration and the marrow assessments;
    then dead cells are compacted away.
    """

    def __init__(self, scenario: Scenario, seed: int | None = None, threads: int = 1,
                 walk_everywhere: bool = False):
        """walk_everywhere: walk every free cell every step, also where no synapse can form
        and while the model is quiet (the live and classroom views show the cells; a run
        with it differs from one without, docs/model.md, *Motility*)."""
        seed = scenario.seed if seed is None else int(seed)
        super().__init__(seed=seed)
        self.seed = seed
        self.scenario = scenario
        self.threads = max(1, int(threads))
        self.walk_everywhere = bool(walk_everywhere)
        self.dt_min = scenario.time_step_min
        self.total_steps = int(round(scenario.duration_h * 60.0 / self.dt_min))
        transplant = transplant_day(scenario)
        if transplant is not None:
            self.total_steps = min(self.total_steps, int(round(transplant * 1440.0 / self.dt_min)))
        self.quiet_below = scenario.patient.quiet_below_pg_per_ml
        self._quiet_step = -1
        self._quiet = False
        self._contacts_step = -1
        self._contacts: tuple[np.ndarray, np.ndarray, np.ndarray] = ()
        self.geometry = build_geometry(scenario)
        self.graph = migration_graph(scenario)
        self.pk = Pharmacokinetics(scenario.pk, scenario.schedule)
        self.conc_pg_per_ml = self.pk.conc_pg_per_ml
        self.occ19 = np.zeros(len(self.geometry.names))
        self.occ3 = np.zeros(len(self.geometry.names))
        self.cytokines_pg_per_ml = np.zeros((len(self.geometry.names), len(CYTOKINES)))
        self.suppression = np.zeros(len(self.geometry.names))
        self.endothelial_activation = scenario.endothelium.rest_level
        self.adhesion_stimulus = 0.0
        self.capillary_leak = 0.0
        self.bbb_leak = 0.0
        self.il6_myeloid_share = 0.0
        self.kills_total = 0
        self._kill_buffer: list[tuple[np.ndarray, ...]] = []
        self.pop = Population()
        self._populate()
        self.myeloid = MyeloidCells(self)
        self.endothelium = EndothelialCells(self)
        cns = self.geometry.role_code("cns")
        self.baseline_cns_t_per_ul = (0.0 if cns is None else
                                      np.count_nonzero((self.pop.comp == cns) & (self.pop.kind <= KIND_CODE["cd4"]))
                                      / self.geometry.volume_ul[cns])
        self.processes = self._build_processes()

    def _populate(self) -> None:
        geo = self.geometry
        for comp, compartment in enumerate(self.scenario.compartments.values()):
            for kind in CELL_KINDS:
                count = int(round(compartment.cells_per_ul.get(kind) * geo.volume_ul[comp]))
                if kind == "blast" and geo.sampled[comp]:
                    self._seed_sampled_blasts(comp, count)
                elif count:
                    seed_cells(self.pop, self.scenario, kind, comp, count,
                               geo.width_um[comp], geo.height_um[comp], self.seed, 0)

    def _seed_sampled_blasts(self, comp: int, count: int) -> None:
        """Blasts of a sampled site, clone by clone: the parental clone as `count` times its
        share agents of weight `scale`; a minor clone (CD19-negative, CD19-low) as at least
        `patient.min_blast_agents` sentinels sharing its patient cells (single cells when it
        has fewer), so that a subclone of 1e-5 is present in the slab as it is in the patient."""
        geo, a = self.geometry, self.scenario.antigen
        site_blasts = count * geo.scale[comp]
        minor = {"cd19_negative": a.cd19_negative_fraction, "cd19_low": a.cd19_low_fraction}
        parts = [("cd19_positive", int(round(count * (1.0 - sum(minor.values())))), geo.scale[comp])]
        for clone, share in minor.items():
            cells = share * site_blasts
            agents = max(self.scenario.patient.min_blast_agents, int(round(share * count)))
            weight = cells / agents
            if weight < 1.0:
                agents, weight = int(round(cells)), 1.0
            parts.append((clone, agents, weight))
        for clone, agents, weight in parts:
            if agents:
                seed_cells(self.pop, self.scenario, "blast", comp, agents, geo.width_um[comp], geo.height_um[comp],
                           self.seed, 0, blast_weight=weight, clone=clone)

    def _build_processes(self) -> list:
        slow = max(1, int(round(POPULATION_INTERVAL_MIN / self.dt_min)))
        self.population_every_steps = slow
        self.protocol = Protocol(self, slow)
        self.protocol.administer_due_doses(self.time_min / 60.0)
        self.crs = CrsSigns(self, slow)
        self.icans = IcansSigns(self, slow)
        processes = [DrugConcentration(), ReceptorOccupancy(), RandomWalk(self),
                     SynapseFormation(self), GranuleLysis(self), self.crs, self.icans, self.protocol,
                     CytokineRelease(self, slow), MyeloidActivation(self, slow), TregSuppression(self, slow),
                     EndothelialActivation(self, slow), AntigenDynamics(self, slow),
                     ActivatedTCellDynamics(self, slow), BlastGrowth(self, slow),
                     BCellTurnover(self, slow)]
        if self.geometry.sampled.any():
            processes.append(BlastSampling(self, slow))
        if self.graph.number_of_edges():
            processes.append(Migration(self, slow))
        self.assessment = None
        if self.geometry.role_codes(MARROW_ROLES):
            self.assessment = ResponseAssessment(self, slow)
            processes.append(self.assessment)
        return processes

    # ------------------------------------------------------------------ stepping
    def kernel_threads(self) -> int:
        """Threads for the compiled kernels this step: one below PARALLEL_MIN_ROWS rows,
        where waking a second thread costs more than it saves (results are the same)."""
        return self.threads if self.pop.n >= PARALLEL_MIN_ROWS else 1

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
                if process.name in CONTACT_PROCESSES and self.quiet() \
                        and not (self.walk_everywhere and process.name == "motility"):
                    continue
                process.step(self)
        if self.steps % self.population_every_steps == 0:
            self.pop.compact(self.kernel_threads())

    def quiet(self) -> bool:
        """No contact can do anything this step: the drug is below `patient.quiet_below_pg_per_ml`
        in every compartment and no synapse is left (then none can form: docs/model.md)."""
        if self._quiet_step != self.steps:
            self._quiet_step = self.steps
            below = self.conc_pg_per_ml * float(self.geometry.drug_exposure.max()) < self.quiet_below
            self._quiet = below and (self._quiet or not np.any(self.pop.partner >= 0))
        return self._quiet

    def contact_compartments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(active, free T cells, free CD19+ targets) per compartment for this step; active
        (uint8) where drug is bound on either side and both kinds are free, the only
        compartments where a contact can start a synapse. Counted once per step, before
        motility (which moves no cell into or out of a compartment, nor frees or binds one)."""
        if self._contacts_step != self.steps:
            pop = self.pop
            free_t, free_targets = _contacts.count_free(pop.kind, pop.comp, pop.alive, pop.partner,
                                                        pop.cd19, len(self.geometry.names))
            drug = (self.occ19 > 0) | (self.occ3 > 0)
            active = (drug & (free_t > 0) & (free_targets > 0)).astype(np.uint8)
            self._contacts = (active, free_t, free_targets)
            self._contacts_step = self.steps
        return self._contacts

    def record_kills(self, killer_rows: np.ndarray, target_rows: np.ndarray) -> None:
        """Log kills of this step (called by the lysis process before compaction)."""
        pop = self.pop
        self.kills_total += len(target_rows)
        self._kill_buffer.append((np.full(len(target_rows), self.time_min / 60.0),
                                  pop.id[killer_rows].copy(), pop.id[target_rows].copy(),
                                  pop.kind[target_rows].copy(), pop.comp[target_rows].copy(),
                                  pop.weight[target_rows].copy()))

    def drain_events(self) -> dict[str, dict[str, np.ndarray]]:
        """Events logged since the last drain, per table (only tables with new rows)."""
        tables = {}
        if self._kill_buffer:
            tables["kills"] = dict(zip(KILL_COLUMNS, (np.concatenate(p) for p in zip(*self._kill_buffer))))
            self._kill_buffer.clear()
        if self.protocol.events:
            rows = np.array(self.protocol.events, dtype=float)
            tables["interventions"] = {"time_h": rows[:, 0], "action": rows[:, 1].astype(np.int8),
                                       "value": rows[:, 2]}
            self.protocol.events.clear()
        if self.assessment is not None and self.assessment.events:
            rows = np.array(self.assessment.events, dtype=float)
            tables["assessments"] = {name: rows[:, i] for i, name in enumerate(ASSESSMENT_COLUMNS)}
            tables["assessments"]["cycle"] = tables["assessments"]["cycle"].astype(np.int16)
            tables["assessments"]["response"] = tables["assessments"]["response"].astype(np.int8)
            tables["assessments"]["follow_up"] = tables["assessments"]["follow_up"].astype(np.int8)
            self.assessment.events.clear()
        return tables

    # ------------------------------------------------------------------ read-outs
    def observables(self) -> dict[str, float]:
        """The timeseries row for the current time."""
        geo, pop = self.geometry, self.pop
        counts = pop.count_by(len(geo.names))
        burden = blast_burden(self)
        t_kinds = [KIND_CODE["cd8"], KIND_CODE["cd4"]]
        row = {
            "drug_pg_per_ml": self.conc_pg_per_ml,
            "drug_pmol_per_l": pg_per_ml_to_molar(self.conc_pg_per_ml, self.scenario.drug.molar_mass_kda) * 1e12,
            "blood_b_per_ul": math.nan,
            "blood_t_per_ul": math.nan,
            "marrow_blast_fraction": burden.marrow_fraction,
            "blasts": burden.total,
            "blast_agents": float(counts[:, KIND_CODE["blast"]].sum()),
            "marrow_blasts": burden.in_roles(geo, MARROW_ROLES),
            "blood_blasts_per_ul": burden.circulating_per_ul,
            "extramedullary_blasts": burden.in_roles(geo, ("extramedullary",)),
            "cns_blasts": burden.in_roles(geo, ("cns",)),
            "blasts_cd19neg_share": burden.cd19_negative_share,
            "contacts_stepped": float(not self.quiet()),
            "synapses": float(np.count_nonzero((pop.partner >= 0) & (pop.kind <= KIND_CODE["cd4"]))),
            "kills_cumulative": float(self.kills_total),
            "t_cells_activated": float(np.count_nonzero((pop.alive == 1) & (pop.kind <= KIND_CODE["cd4"])
                                                        & (pop.activated_step >= 0))),
        }
        blood = geo.role_code("blood")
        if blood is not None:
            row["blood_b_per_ul"] = counts[blood, KIND_CODE["b"]] / geo.volume_ul[blood]
            row["blood_t_per_ul"] = counts[blood, t_kinds].sum() / geo.volume_ul[blood]
        row.update(self._regulation_observables(blood))
        for c, name in enumerate(geo.names):
            for k, kind in enumerate(CELL_KINDS):
                row[f"count_{name}_{kind}"] = float(counts[c, k])
        return row

    def _regulation_observables(self, blood: int | None) -> dict[str, float]:
        """Cytokines, CRS, Tregs, CD19 escape, activation markers, endothelium, CNS."""
        pop, geo, s = self.pop, self.geometry, self.scenario
        live = pop.alive == 1
        t_cell = live & (pop.kind <= KIND_CODE["cd4"])
        where = t_cell & (pop.comp == blood) if blood is not None else t_cell
        cd4 = where & (pop.kind == KIND_CODE["cd4"])
        since_activation = self.steps - pop.activated_step[where]
        since_engaged = self.steps - pop.engaged_step[where]
        activated = pop.activated_step[where] >= 0
        per_h = 60.0 / self.dt_min
        m = s.markers
        cd69 = cd69_positive(self, np.flatnonzero(where))
        cd25 = activated & (since_activation >= m.cd25_onset_h * per_h) & (since_engaged <= m.cd25_persist_h * per_h)
        n_t = max(1, int(where.sum()))
        blasts = live & (pop.kind == KIND_CODE["blast"])
        row = {f"{name}_pg_per_ml": (self.cytokines_pg_per_ml[blood, i] if blood is not None else math.nan)
               for i, name in enumerate(CYTOKINES)}
        wall, cns = geo.role_code("vessel_wall"), geo.role_code("cns")
        cns_t = int(np.count_nonzero(t_cell & (pop.comp == cns))) if cns is not None else 0
        row.update({
            "infusion_ug_per_day": self.pk.rate_ug_per_h(max(0.0, self.time_min - self.dt_min)) * 24.0,
            "il6_signal_pg_per_ml": self.protocol.il6_signal(self) if blood is not None else math.nan,
            "crs_grade": float(self.crs.grade),
            "body_temperature_c": self.crs.temperature_c,
            "mean_arterial_pressure_mmhg": self.crs.map_mmhg,
            "vasopressors": float(self.crs.vasopressors),
            "oxygen_l_per_min": self.crs.oxygen_l_per_min,
            "il6_myeloid_share": self.il6_myeloid_share,
            "icans_grade": float(self.icans.grade),
            "ice_score": float(self.icans.ice),
            "encephalopathy": self.icans.encephalopathy,
            "ang2_ang1_ratio": self.endothelium.ang2_ng_per_ml / s.endothelium.ang1_ng_per_ml,
            "capillary_leak": self.capillary_leak,
            "bbb_leak": self.bbb_leak,
            "bbb_endothelial_activation": self.endothelium.mean("icam1", BARRIER),
            "vcam1_expression": self.endothelium.mean("vcam1", WALL),
            "pselectin_expression": self.endothelium.mean("pselectin", WALL),
            **self._endothelial_distribution(),
            "monocyte_activation": self.myeloid.mean_activation(geo.role_codes(("blood",))),
            "macrophage_activation": self.myeloid.mean_activation(geo.role_codes(MARROW_ROLES + ("lymphoid",))),
            "treg_fraction_of_cd4": float(np.count_nonzero(pop.regulatory[cd4])) / max(1, int(cd4.sum())),
            "blasts_cd19neg": float(pop.weight[blasts & (pop.cd19_set <= 0.0)].sum()),
            "cd69_pos_fraction": float(np.count_nonzero(cd69)) / n_t,
            "cd25_pos_fraction": float(np.count_nonzero(cd25)) / n_t,
            "endothelial_activation": self.endothelial_activation,
            "t_adhered_endothelium": float(np.count_nonzero(t_cell & (pop.comp == wall))) if wall is not None else 0.0,
            "cns_t_cells": float(cns_t),
            "neurotox_index": self._neurotox_index(cns_t, blood),
        })
        row.update(self._t_cell_observables(t_cell, blood))
        return row

    def _endothelial_distribution(self) -> dict[str, float]:
        """10th, 50th and 90th percentiles of the vessel wall's activation (ICAM-1)."""
        wall = self.endothelium.icam1[self.endothelium.layer == WALL]
        p10, p50, p90 = np.percentile(wall, [10, 50, 90])
        return {"endothelial_activation_p10": float(p10), "endothelial_activation_p50": float(p50),
                "endothelial_activation_p90": float(p90)}

    def _t_cell_observables(self, t_cell: np.ndarray, blood: int | None) -> dict[str, float]:
        """Blood T cells per subset, and the arming, exhaustion and programme of all T cells."""
        pop = self.pop
        row = {}
        if blood is not None:
            in_blood = t_cell & (pop.comp == blood) & (pop.regulatory == 0)
            per_subset = np.bincount(pop.kind[in_blood].astype(np.int64) * len(T_SUBSETS) + pop.subset[in_blood],
                                     minlength=len(T_KINDS) * len(T_SUBSETS))
            volume = self.geometry.volume_ul[blood]
            for k, kind in enumerate(T_KINDS):
                for i, subset in enumerate(T_SUBSETS):
                    row[f"blood_{kind}_{subset}_per_ul"] = per_subset[k * len(T_SUBSETS) + i] / volume
            row["blood_treg_per_ul"] = np.count_nonzero(t_cell & (pop.comp == blood) & (pop.regulatory == 1)) / volume
        else:
            row.update({name: math.nan for name in SUBSET_VARIABLES})
        n_t = int(np.count_nonzero(t_cell))
        effector = t_cell & (pop.regulatory == 0)
        row.update({
            "t_cells": float(np.count_nonzero(t_cell)),
            "t_armed_fraction": np.count_nonzero(effector & (pop.armed_step != NEVER) & (pop.armed_step <= self.steps))
                                / max(1, int(effector.sum())),
            "t_exhausted_fraction": np.count_nonzero(t_cell & (pop.exhaustion >= 0.5)) / max(1, n_t),
            "t_exhaustion_mean": float(pop.exhaustion[t_cell].mean()) if n_t else 0.0,
            "t_dividing": float(np.count_nonzero(t_cell & (pop.destiny != NEVER) & (pop.generation < pop.destiny))),
            "t_generation_mean": float(pop.generation[t_cell].mean()) if n_t else 0.0,
        })
        return row

    def _neurotox_index(self, cns_t: int, blood: int | None) -> float:
        """1 - exp(-(CNS T density above baseline / ref) (1 + (IL-6 signal + IFN-gamma) / c_ref))."""
        cns = self.geometry.role_code("cns")
        if cns is None:
            return 0.0
        n = self.scenario.neurotoxicity
        density = max(0.0, cns_t / self.geometry.volume_ul[cns] - self.baseline_cns_t_per_ul)
        cytokines = 0.0
        if blood is not None:
            cytokines = self.protocol.il6_signal(self) + self.cytokines_pg_per_ml[blood, CYTOKINES.index("ifng")]
        return float(-math.expm1(-(density / n.cns_t_per_ul_ref) * (1.0 + cytokines / n.cytokine_ref_pg_per_ml)))

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        """Everything that changes during a run (the scenario and seed rebuild the rest)."""
        state = self.pop.state()
        state.update(self.pk.state())
        state.update(self.protocol.state())
        state.update(self.crs.state())
        state.update(self.icans.state())
        state.update(self.endothelium.state())
        state.update(self.myeloid.state())
        if self.assessment is not None:
            state.update(self.assessment.state())
        state.update({"model.steps": self.steps, "model.conc_pg_per_ml": self.conc_pg_per_ml,
                      "model.kills_total": self.kills_total,
                      "model.cytokines_pg_per_ml": self.cytokines_pg_per_ml.copy(),
                      "model.suppression": self.suppression.copy(),
                      "model.endothelial_activation": self.endothelial_activation,
                      "model.adhesion_stimulus": self.adhesion_stimulus,
                      "model.il6_myeloid_share": self.il6_myeloid_share,
                      "model.capillary_leak": self.capillary_leak, "model.bbb_leak": self.bbb_leak})
        return state

    def restore(self, state) -> None:
        """Continue from a state saved by `state()` at a step boundary."""
        self.pop = Population.from_state(state)
        self.steps = int(state["model.steps"])
        self._contacts_step = -1  # the count of this step belonged to the replaced state
        self.pk.restore(state)
        self.conc_pg_per_ml = float(state["model.conc_pg_per_ml"])
        self.kills_total = int(state["model.kills_total"])
        self.cytokines_pg_per_ml = np.array(state["model.cytokines_pg_per_ml"], dtype=float).reshape(self.cytokines_pg_per_ml.shape)
        self.suppression = np.array(state["model.suppression"], dtype=float)
        self.endothelial_activation = float(state["model.endothelial_activation"])
        self.adhesion_stimulus = float(state["model.adhesion_stimulus"])
        self.il6_myeloid_share = float(state["model.il6_myeloid_share"])
        self.capillary_leak = float(state["model.capillary_leak"])
        self.bbb_leak = float(state["model.bbb_leak"])
        self.endothelium.restore(state)
        self.myeloid.restore(state)
        self._kill_buffer.clear()
        self.processes = self._build_processes()
        self.crs.restore(state)
        self.icans.restore(state)
        self.protocol.restore(state)
        self.protocol.events.clear()
        if self.assessment is not None:
            self.assessment.restore(state)


VARIABLE_META = {
    "drug_pg_per_ml": ("pg/mL", "plasma blinatumomab concentration"),
    "drug_pmol_per_l": ("pmol/L", "plasma blinatumomab concentration"),
    "blood_b_per_ul": ("cells/uL", "normal B cells in blood"),
    "blood_t_per_ul": ("cells/uL", "T cells (CD8 + CD4) in blood"),
    "marrow_blast_fraction": ("1", "blasts / nucleated cells of the patient's marrow (true value; the assessments table holds what the assays see)"),
    "blasts": ("cells", "the patient's live blasts, all sites (summed weights of the blast agents)"),
    "blast_agents": ("cells", "simulated blast agents, all compartments"),
    "marrow_blasts": ("cells", "the patient's blasts in marrow (marrow and marrow niches)"),
    "blood_blasts_per_ul": ("cells/uL", "blasts in blood"),
    "extramedullary_blasts": ("cells", "the patient's blasts at extramedullary sites"),
    "cns_blasts": ("cells", "the patient's blasts in the CNS"),
    "blasts_cd19neg_share": ("1", "share of the patient's blasts in a CD19-negative clone (exon-2 deletion or lineage switch)"),
    "contacts_stepped": ("1", "1 if motility, contacts, synapses and hits were stepped (0: quiet, no drug and no synapse)"),
    "synapses": ("cells", "T cells in a bridged synapse"),
    "kills_cumulative": ("cells", "targets killed since the start"),
    "t_cells_activated": ("cells", "live T cells ever activated by a synapse"),
    "il2_pg_per_ml": ("pg/mL", "serum IL-2"),
    "il6_pg_per_ml": ("pg/mL", "serum IL-6"),
    "il10_pg_per_ml": ("pg/mL", "serum IL-10"),
    "ifng_pg_per_ml": ("pg/mL", "serum IFN-gamma"),
    "tnfa_pg_per_ml": ("pg/mL", "serum TNF-alpha"),
    "il1b_pg_per_ml": ("pg/mL", "serum IL-1beta"),
    "infusion_ug_per_day": ("ug/day", "infusion rate in force"),
    "il6_signal_pg_per_ml": ("pg/mL", "serum IL-6 not blocked by tocilizumab (IL-6 signalling)"),
    "crs_grade": ("1", "cytokine release syndrome grade (0-4, ASTCT consensus) from fever, hypotension and hypoxia"),
    "body_temperature_c": ("degC", "body temperature from pyrogenic cytokines"),
    "mean_arterial_pressure_mmhg": ("mmHg", "mean arterial pressure (vasodilation and capillary leak)"),
    "vasopressors": ("1", "vasopressors needed (0, 1, 2 for several)"),
    "oxygen_l_per_min": ("L/min", "supplemental oxygen needed (pulmonary capillary leak)"),
    "il6_myeloid_share": ("1", "share of the IL-6 reaching serum that myeloid cells released (the rest: T cells)"),
    "monocyte_activation": ("1", "mean activation of blood monocytes (0 without any)"),
    "macrophage_activation": ("1", "mean activation of marrow and lymphoid macrophages"),
    "treg_fraction_of_cd4": ("1", "regulatory T cells / CD4 T cells in blood"),
    "blasts_cd19neg": ("cells", "the patient's live blasts without heritable surface CD19"),
    "cd69_pos_fraction": ("1", "CD69+ share of blood T cells"),
    "cd25_pos_fraction": ("1", "CD25+ share of blood T cells"),
    "endothelial_activation": ("1", "mean ICAM-1 of the vessel wall's endothelial cells (rest 0.1, fully activated 1)"),
    "endothelial_activation_p10": ("1", "10th percentile of the vessel wall's ICAM-1"),
    "endothelial_activation_p50": ("1", "median ICAM-1 of the vessel wall"),
    "endothelial_activation_p90": ("1", "90th percentile of the vessel wall's ICAM-1"),
    "vcam1_expression": ("1", "mean VCAM-1 of the vessel wall"),
    "pselectin_expression": ("1", "mean surface P-selectin of the vessel wall (Weibel-Palade exocytosis)"),
    "bbb_endothelial_activation": ("1", "mean ICAM-1 of the blood-brain barrier's endothelial cells"),
    "ang2_ang1_ratio": ("1", "serum angiopoietin-2 / angiopoietin-1"),
    "capillary_leak": ("1", "mean leak of the vessel wall (0-1)"),
    "bbb_leak": ("1", "mean leak of the blood-brain barrier (0-1)"),
    "icans_grade": ("1", "ICANS grade (0-4, ASTCT consensus)"),
    "ice_score": ("1", "immune effector cell encephalopathy score (10 normal, 0 worst)"),
    "encephalopathy": ("1", "encephalopathy (0-1) from CNS cytokines (of CNS T cells, and serum let in by the barrier)"),
    "t_adhered_endothelium": ("cells", "T cells adhered to the vessel wall"),
    "cns_t_cells": ("cells", "T cells in the CNS compartment"),
    "neurotox_index": ("1", "neurotoxicity index 0-1 from CNS T cells and serum cytokines"),
    "blood_treg_per_ul": ("cells/uL", "regulatory T cells in blood"),
    "t_cells": ("cells", "live T cells, all compartments"),
    "t_armed_fraction": ("1", "share of effector T cells that are armed (carry or synthesise cytotoxic granules)"),
    "t_exhausted_fraction": ("1", "share of T cells with exhaustion >= 0.5"),
    "t_exhaustion_mean": ("1", "mean exhaustion (PD-1, TIM-3, LAG-3) of T cells"),
    "t_dividing": ("cells", "T cells with divisions of their programme still to make"),
    "t_generation_mean": ("1", "mean divisions made by T cells in their current programme"),
}
SUBSET_VARIABLES = [f"blood_{kind}_{subset}_per_ul" for kind in T_KINDS for subset in T_SUBSETS] + ["blood_treg_per_ul"]
SUBSET_NAMES = {"naive": "naive", "cm": "central-memory", "em": "effector-memory", "temra": "TEMRA"}
VARIABLE_META.update({f"blood_{kind}_{subset}_per_ul": ("cells/uL", f"{SUBSET_NAMES[subset]} {kind.upper()} T cells in blood (not regulatory)")
                      for kind in T_KINDS for subset in T_SUBSETS})


def variable_meta(name: str) -> tuple[str, str]:
    """(units, long name) of a timeseries variable."""
    if name.startswith("count_"):
        compartment, kind = name[len("count_"):].rsplit("_", 1)
        return "cells", f"live {kind} cells in {compartment}"
    return VARIABLE_META[name]
