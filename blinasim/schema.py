"""The scenario schema: every field a scenario may set, with unit, range, default and source.

This module is the single source of truth for scenario parameters. The loader
(`blinasim.scenario`) validates YAML against it, `docs/scenarios.md` is generated from it,
and the model reads the resulting frozen dataclasses.

Conventions
-----------
- Each leaf field is declared with :func:`param`, which stores in the field metadata:
  ``unit`` (text), ``range`` ((low, high), inclusive, ``None`` for an open side),
  ``open_low`` (the value must be strictly greater than low), ``doc`` (meaning),
  ``source`` (literature or "assumption: ...") and optionally ``choices`` (allowed strings).
- Sections are nested frozen dataclasses; lists are ``tuple[Section, ...]``; named
  collections (compartments) are a ``dict[str, Section]`` in declaration order, so a
  Scenario is immutable in its fields but not hashable.
- Cross-field rules (schedules, time step multiples, migration endpoints) live in
  :func:`check_consistency`, which returns ``(field.path, message)`` pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CELL_KINDS = ("cd8", "cd4", "b", "blast")
"""Simulated cell kinds, in the order of their integer codes in the populations."""

T_KINDS = ("cd8", "cd4")
T_SUBSETS = ("naive", "cm", "em", "temra")
"""T-cell differentiation subsets, in the order of their integer codes: naive, central
memory (CCR7+CD45RA-), effector memory (CCR7-CD45RA-), TEMRA (CCR7-CD45RA+)."""
TARGET_KINDS = ("b", "blast")
ROLES = ("tissue", "blood", "marrow", "marrow_niche", "vessel_wall", "cns", "lymphoid", "extramedullary")
MARROW_ROLES = ("marrow", "marrow_niche")
"""Roles whose blasts make up the marrow read-outs (an aspirate samples both)."""


def param(default: Any, unit: str, low: float | None, high: float | None, doc: str,
          source: str, *, choices: tuple[str, ...] | None = None,
          open_low: bool = False) -> Any:
    """Declare a scenario leaf field with its documentation metadata."""
    meta = {"unit": unit, "range": (low, high), "doc": doc, "source": source,
            "choices": choices, "open_low": open_low}
    return field(default=default, metadata=meta)


def section(factory: Any, doc: str, *, each: tuple[float, float | None] | None = None) -> Any:
    """Declare a nested section (a dataclass) with a one-line meaning; `each` (low, high)
    replaces the range of every leaf of the section here (KindValues serve several units)."""
    return field(default_factory=factory, metadata={"doc": doc, "section": True, "each": each})


def collection(factory: Any, doc: str) -> Any:
    """Declare a list or mapping of sections."""
    return field(default_factory=factory, metadata={"doc": doc, "collection": True})


# --------------------------------------------------------------------------- drug and PK

@dataclass(frozen=True)
class Drug:
    """Blinatumomab: affinities of its two arms and its molar mass."""
    kd_cd19_m: float = param(1.49e-9, "M", 1e-13, 1e-4, "Equilibrium dissociation constant of the CD19 arm", "Liu et al. 2023, eLife 83659 (1.49e-9 M)", open_low=True)
    kd_cd3_m: float = param(2.6e-7, "M", 1e-13, 1e-3, "Equilibrium dissociation constant of the CD3-epsilon arm", "Liu et al. 2023, eLife 83659 (2.6e-7 M)", open_low=True)
    molar_mass_kda: float = param(55.0, "kDa", 1.0, 1000.0, "Molar mass used to convert pg/mL to mol/L", "Blinatumomab ~55 kDa, 504 amino acids (BLINCYTO label)")


@dataclass(frozen=True)
class PK:
    """Pharmacokinetics: linear one-compartment infusion model, or a fixed concentration."""
    model: str = param("infusion", "", None, None, "'infusion': one-compartment PK driven by the schedule; 'fixed': constant concentration (in-vitro dish)", "Clements et al. 2020 (linear one-compartment PK)", choices=("infusion", "fixed"))
    clearance_l_per_h: float = param(2.22, "L/h", 0.01, 100.0, "Systemic clearance CL", "Clements et al. 2020 population PK, n=674", open_low=True)
    volume_l: float = param(5.98, "L", 0.1, 100.0, "Volume of distribution V", "Clements et al. 2020 population PK (label: ~4.35 L)", open_low=True)
    fixed_pg_per_ml: float = param(0.0, "pg/mL", 0.0, 1e7, "Drug concentration when model is 'fixed'", "scenario choice")


@dataclass(frozen=True)
class Infusion:
    """One continuous-infusion period of a cycle, days counted from 1 as the clinic does."""
    from_day: int = param(1, "day", 1, 366, "First day of the period (day 1 starts at time 0 of the cycle)", "clinical convention")
    to_day: int = param(1, "day", 1, 366, "Last day of the period, inclusive", "clinical convention")
    ug_per_day: float = param(0.0, "ug/day", 0.0, 200.0, "Infusion rate (the label caps adults at 28 ug/day; MTD 60 ug/m2/day)", "BLINCYTO label; Topp et al. (MTD)")
    ug_per_m2_per_day: float = param(0.0, "ug/m2/day", 0.0, 120.0, "Infusion rate per body surface area (children under 45 kg: 5 then 15 ug/m2/day); when set it replaces ug_per_day, as schedule.body_surface_m2 x this, capped at schedule.max_ug_per_day", "BLINCYTO label (paediatric dosing)")


@dataclass(frozen=True)
class Cycle:
    """A treatment cycle: infusion periods followed by drug-free days up to its length."""
    length_days: int = param(42, "day", 1, 366, "Cycle length including the drug-free interval", "BLINCYTO label: 28 days on, 14 off")
    infusions: tuple[Infusion, ...] = collection(tuple, "Infusion periods of the cycle, in order, not overlapping")


def _standard_cycles() -> tuple[Cycle, ...]:
    return (Cycle(42, (Infusion(1, 7, 9.0), Infusion(8, 28, 28.0))),)


@dataclass(frozen=True)
class Schedule:
    """Dosing schedule: cycles run back to back from time 0."""
    cycles: tuple[Cycle, ...] = collection(_standard_cycles, "Cycles in order; the default is the adult step-up cycle 1")
    body_surface_m2: float = param(1.8, "m2", 0.1, 3.5, "Body surface area for per-m2 dosing", "assumption: adult 1.8 m2; PK's only covariate (biology brief s.2)")
    max_ug_per_day: float = param(28.0, "ug/day", 0.0, 200.0, "Cap on a per-m2 rate", "BLINCYTO label: never above 28 ug/day (15 ug/m2/day arm)")


# --------------------------------------------------------------------------- cells

@dataclass(frozen=True)
class KindValues:
    """One number per simulated cell kind."""
    cd8: float = param(0.0, "", 0.0, None, "CD8 T cells", "")
    cd4: float = param(0.0, "", 0.0, None, "CD4 T cells", "")
    b: float = param(0.0, "", 0.0, None, "normal B cells", "")
    blast: float = param(0.0, "", 0.0, None, "leukaemic blasts", "")

    def get(self, kind: str) -> float:
        return float(getattr(self, kind))


@dataclass(frozen=True)
class Receptors:
    """Receptor copy numbers per cell, drawn once per cell at birth."""
    cd19_b_mean: float = param(22000.0, "copies", 0.0, 1e7, "Mean CD19 copies on a normal B cell", "Ginaldi et al. 1998 (22,000 +- 7,000)")
    cd19_b_sd: float = param(7000.0, "copies", 0.0, 1e7, "Standard deviation of CD19 copies on normal B cells (log-normal with this mean and sd)", "Ginaldi et al. 1998")
    cd19_blast_median: float = param(22000.0, "copies", 0.0, 1e7, "Median CD19 copies on a blast (log-normal)", "assumption: as normal B cells (Ginaldi 1998); Raji ~145,000")
    cd19_blast_sigma_log: float = param(0.5, "", 0.0, 3.0, "Log-normal shape (sigma of ln copies) of blast CD19", "assumption: blast antigen density varies ~1.6-fold (1 sd)")
    cd3_t_mean: float = param(30000.0, "copies", 0.0, 1e7, "Mean TCR/CD3 copies on a T cell", "biology brief s.1 (~30,000; ~66,000 on Jurkat)")
    cd3_t_sd: float = param(6000.0, "copies", 0.0, 1e7, "Standard deviation of CD3 copies (log-normal with this mean and sd)", "assumption: 20% coefficient of variation")


@dataclass(frozen=True)
class Binding:
    """Bridging on contact: equilibrium occupancy per arm, capture of the free arm in the contact zone."""
    contact_area_fraction: float = param(0.2, "", 0.0, 1.0, "Fraction of each cell's surface inside the cell-cell contact zone", "assumption: an immune synapse ~6 um across (~30 um2) on a ~150 um2 lymphocyte surface", open_low=True)
    confinement_length_nm: float = param(10.0, "nm", 0.1, 1000.0, "Length converting a 3D KD into a 2D KD for the free arm in the contact (K2D = KD * NA * length)", "assumption: 1-10 nm membrane confinement; capture is ~1 for any value in that range")
    bridges_to_trigger: int = param(3, "bridges", 1, 100, "Drug bridges a contact needs to trigger a synapse; a contact minute triggers with P(Poisson(B) >= this), B the expected bridges", "calibrated against in-vitro potency (half-maximal lysis at 10-100 pg/mL, Loffler 2000; Dreier 2002): T-cell triggering needs several engaged CD3")
    lymphocyte_area_um2: float = param(150.0, "um2", 10.0, 5000.0, "Cell surface area used for receptor densities", "assumption: sphere of 7 um diameter ~154 um2")


@dataclass(frozen=True)
class Motility:
    """Persistent random walk of free cells (speeds are per compartment)."""
    persistence_min: float = param(3.0, "min", 0.0, 1000.0, "Mean time between turns; 0 gives an uncorrelated walk", "assumption: T cells in tissue turn every few minutes (two-photon imaging, Miller 2002)")


@dataclass(frozen=True)
class Synapse:
    """Contact detection and synapse bookkeeping."""
    contact_radius_um: float = param(10.0, "um", 1.0, 100.0, "Centre-to-centre distance at which two cells touch", "assumption: two ~7 um lymphocytes plus membrane protrusions")
    max_duration_min: float = param(60.0, "min", 1.0, 10000.0, "A synapse that has not killed by then dissolves", "assumption: engage-kill-detach ~25 min (Cazaux 2019); unproductive contacts end within ~1 h")
    unarmed_duration_min: float = param(3.0, "min", 1.0, 10000.0, "An effector T cell without granules leaves its target this long after the synapse formed (it has taken its activation signal)", "assumption: TCR signalling and CD69 induction start within minutes of contact (Huppa 2003); an unarmed cell has nothing to deliver")


@dataclass(frozen=True)
class Lysis:
    """Perforin/granzyme hits and the multi-hit kill rule."""
    first_hit_delay_min: float = param(5.0, "min", 0.0, 600.0, "Synapse maturation before the first granule delivery", "assumption: granule polarisation takes minutes")
    hit_interval_min: float = param(8.0, "min", 0.5, 600.0, "Time between hits delivered by one T cell", "Weigelin et al. 2021 (hits minutes apart); Cazaux 2019 (~25 min cycle)")
    hits_to_kill: int = param(3, "hits", 1, 100, "Hits a target must receive, each less than max_hit_gap_min after the previous one, to die", "Weigelin et al. 2021 (~3 hits < 50 min apart)")
    max_hit_gap_min: float = param(50.0, "min", 1.0, 10000.0, "A target that goes this long without a hit has repaired its damage (its hit count restarts)", "Weigelin et al. 2021 (~3 hits < 50 min apart)")
    units_per_hit: float = param(10.0, "units", 0.0, 1000.0, "Granule units spent per hit", "assumption (unit definition): a full store of 100 units is 10 hits, ~3 kills (Hoffmann 2005: several kills within 9 h); refilled at 40 units/h a T cell hits every 15 min, well inside the 50-min gap", open_low=True)
    capacity_units: float = param(100.0, "units", 0.0, 1e5, "Maximum granule store of a T cell", "Betts 2004 via ABM (~100 units)", open_low=True)
    arming_cd8_h: float = param(24.0, "h", 0.0, 1000.0, "Mean delay from activation until a CD8 T cell without granules synthesises them (log-normal per cell)", "granzyme B and perforin appear 1-3 days after naive CD8 T-cell activation (Pipkin 2010; Cullen 2010)")
    arming_cd4_h: float = param(72.0, "h", 0.0, 1000.0, "Mean arming delay of a CD4 T cell without granules", "CD4 T cells acquire cytotoxicity later and less than CD8 (Appay 2002; Brown 2016 review); assumption for the value")
    arming_sigma_log: float = param(0.5, "", 0.0, 3.0, "Log-normal shape of the per-cell arming delay", "assumption: activation is asynchronous across cells (Hawkins 2007: lognormal times)")
    refill_units_per_h: float = param(40.0, "units/h", 0.0, 1e4, "Granule synthesis rate after activation", "Betts 2004 via the ABM quoted in the biology brief (~40 units/h)")


@dataclass(frozen=True)
class Activation:
    """Activation by a bridged synapse, then the proliferative programme (division destiny)."""
    proliferation_per_day: float = param(2.1, "1/day", 0.0, 20.0, "Division rate of a T cell carrying out its programme (mean time between divisions = 1/this)", "Hosseini et al. 2020 QSP (2.1/day); Hawkins 2007 (~10 h per later division)", open_low=True)
    proliferation_lag_h: float = param(24.0, "h", 0.0, 1000.0, "Mean time from activation to the first division of a memory T cell (naive: x first_division_factor)", "Hawkins 2007; Marchingo 2014 (first division ~1-1.5 days)")
    division_time_sigma_log: float = param(0.3, "", 0.0, 3.0, "Log-normal shape of each cell's time to its next division", "Hawkins 2007 (cyton model: log-normal division times)")
    stimulation_half_bridges: float = param(200.0, "bridges", 0.0, 1e6, "Summed expected bridges of the synapses made before the first division at which the division destiny is half the subset's maximum", "assumption: destiny grows additively with stimulation strength and duration (Marchingo 2014; Heinzel 2017); one synapse at the 28 ug/day steady state (~28 bridges) gives an eighth of the maximum, several synapses a large destiny", open_low=True)
    activated_death_per_day: float = param(0.06, "1/day", 0.0, 20.0, "Apoptosis rate of activated T cells", "Hosseini et al. 2020 QSP (0.06/day)")
    contraction_death_per_day: float = param(0.2, "1/day", 0.0, 20.0, "Death rate of a T cell that has completed its divisions (contraction)", "assumption: effector T cells contract over 1-2 weeks after their peak (Kaech 2002; Hawkins 2007 death after destiny)")
    memory_return_per_day: float = param(0.02, "1/day", 0.0, 20.0, "Rate at which a T cell that has completed its divisions returns to a resting, memory-like state (it can then be activated again)", "assumption: 5-10% of effector T cells become memory (Kaech 2002): 0.02 / (0.2 + 0.02) = 9%")


@dataclass(frozen=True)
class SubsetTraits:
    """What one T-cell differentiation subset brings to a cell at birth and on activation."""
    perforin_cd8: float = param(0.0, "", 0.0, 1.0, "Share of resting CD8 T cells of this subset that carry cytotoxic granules (perforin/granzyme B)", "")
    perforin_cd4: float = param(0.0, "", 0.0, 1.0, "Share of resting CD4 T cells of this subset that carry cytotoxic granules", "")
    cd3_factor: float = param(1.0, "", 0.0, 10.0, "CD3 copies relative to receptors.cd3_t_mean", "")
    trigger_factor: float = param(1.0, "", 1.0, 100.0, "Drug bridges a contact needs, relative to binding.bridges_to_trigger (rounded)", "")
    first_division_factor: float = param(1.0, "", 0.01, 100.0, "Time to the first division relative to activation.proliferation_lag_h", "")
    max_divisions: int = param(0, "divisions", 0, 30, "Largest division destiny after one activation", "")
    lymphoid_homing: float = param(1.0, "", 0.0, 100.0, "Multiplier of the rates of routes into lymphoid tissue (CCR7/CD62L)", "")


def _traits(perforin_cd8, perforin_cd4, cd3, trigger, first, divisions, homing):
    return lambda: SubsetTraits(perforin_cd8, perforin_cd4, cd3, trigger, first, divisions, homing)


@dataclass(frozen=True)
class TSubsets:
    """T-cell differentiation subsets: granules at rest, activation threshold, proliferative capacity, homing."""
    naive: SubsetTraits = section(_traits(0.02, 0.0, 1.0, 5.0, 1.5, 8, 1.0), "Naive (CCR7+CD45RA+): almost no perforin (Takata 2006; Mahnke 2013), a higher activation threshold (London 2000), the longest lag to the first division and the most divisions (Hawkins 2007), lymph-node homing")
    cm: SubsetTraits = section(_traits(0.15, 0.02, 1.0, 2.0, 1.0, 7, 1.0), "Central memory (CCR7+CD45RA-): little perforin, lymph-node homing, high proliferative capacity (Sallusto 1999; Mahnke 2013)")
    em: SubsetTraits = section(_traits(0.6, 0.1, 1.0, 1.0, 1.0, 6, 0.05), "Effector memory (CCR7-CD45RA-): perforin in most CD8 cells (Takata 2006), low threshold (Kimachi 2003), fewer divisions, tissue homing")
    temra: SubsetTraits = section(_traits(0.95, 0.6, 0.8, 1.0, 1.0, 2, 0.02), "TEMRA (CCR7-CD45RA+): perforin-rich CD8 and CD4-CTL (Takata 2006; Appay 2002), little proliferative capacity (CD57+, Brenchley 2003), lower TCR/CD3 (assumption)")


@dataclass(frozen=True)
class SubsetMix:
    """Shares of the differentiation subsets among CD8 and among CD4 T cells (each kind's four shares sum to 1)."""
    cd8_naive: float = param(0.45, "", 0.0, 1.0, "Naive share of CD8 T cells", "healthy adult blood, approximate (Mahnke 2013; Sallusto 1999)")
    cd8_cm: float = param(0.10, "", 0.0, 1.0, "Central-memory share of CD8 T cells", "as above")
    cd8_em: float = param(0.25, "", 0.0, 1.0, "Effector-memory share of CD8 T cells", "as above")
    cd8_temra: float = param(0.20, "", 0.0, 1.0, "TEMRA share of CD8 T cells", "as above")
    cd4_naive: float = param(0.45, "", 0.0, 1.0, "Naive share of CD4 T cells", "as above")
    cd4_cm: float = param(0.35, "", 0.0, 1.0, "Central-memory share of CD4 T cells", "as above")
    cd4_em: float = param(0.17, "", 0.0, 1.0, "Effector-memory share of CD4 T cells", "as above")
    cd4_temra: float = param(0.03, "", 0.0, 1.0, "TEMRA share of CD4 T cells", "as above")

    def shares(self, kind: str) -> tuple[float, ...]:
        return tuple(float(getattr(self, f"{kind}_{subset}")) for subset in T_SUBSETS)


@dataclass(frozen=True)
class Blasts:
    """Leukaemic blast growth in the marrow."""
    doubling_time_days: float = param(4.0, "day", 0.1, 1000.0, "Doubling time of blasts with free marrow space (logistic in nucleated capacity)", "assumption: B-ALL blasts double in days; no value in the brief")


@dataclass(frozen=True)
class BCells:
    """Normal B-cell turnover."""
    lifespan_days: float = param(40.0, "day", 0.1, 10000.0, "Mean lifespan of a circulating B cell; production balances it at baseline", "assumption: mature B cells live weeks")


@dataclass(frozen=True)
class Markers:
    """Activation markers of T cells; CD69 also holds activated T cells in lymphoid tissue."""
    cd69_onset_h: float = param(2.0, "h", 0.0, 1000.0, "CD69 appears this long after a synapse", "assumption: CD69 is an early marker (hours)")
    cd69_persist_h: float = param(96.0, "h", 0.0, 10000.0, "CD69 stays this long after the last synapse", "biology brief s.3: CD69 peaks ~day 2, up to ~day 6")
    cd25_onset_h: float = param(24.0, "h", 0.0, 1000.0, "CD25 appears this long after activation", "biology brief s.3: CD25 peaks ~day 3")
    cd25_persist_h: float = param(120.0, "h", 0.0, 10000.0, "CD25 stays this long after the last synapse", "biology brief s.3: up to ~day 6")
    cd69_lymphoid_retention: float = param(0.9, "", 0.0, 1.0, "Fall of the rate of routes out of lymphoid tissue for a CD69+ T cell (rate x (1 - this))", "CD69 binds S1P1 and holds activated lymphocytes in lymph nodes (Shiow 2006); assumption for the value")


@dataclass(frozen=True)
class Exhaustion:
    """Exhaustion under continuous engagement (PD-1, TIM-3, LAG-3), rest, PD-L1 on blasts, activation-induced death."""
    onset_per_day: float = param(0.2, "1/day", 0.0, 100.0, "Rate at which exhaustion X rises towards 1 while a T cell keeps engaging targets (dX/dt = k (1 - X))", "assumption for the value: continuous CD3-bispecific exposure exhausts T cells within 1-2 weeks (Philipp 2022)")
    recovery_per_day: float = param(0.15, "1/day", 0.0, 100.0, "Rate at which exhaustion falls while a T cell makes no synapse (dX/dt = -k X)", "assumption for the value: a treatment-free interval of days restores exhausted T cells (Philipp 2022)")
    kill_loss: float = param(0.7, "", 0.0, 1.0, "Fall of hit success of a fully exhausted T cell (success x (1 - this X))", "assumption: exhausted T cells kill less (Philipp 2022)")
    proliferation_loss: float = param(1.0, "", 0.0, 1.0, "Fall of the division destiny of a fully exhausted T cell (destiny x (1 - this X))", "assumption: exhausted T cells hardly proliferate (Philipp 2022)")
    cytokine_loss: float = param(0.8, "", 0.0, 1.0, "Fall of cytokine release of a fully exhausted T cell", "assumption: exhausted T cells release less IL-2, TNF-alpha and IFN-gamma (Philipp 2022)")
    pdl1_blast_level: float = param(0.0, "", 0.0, 1.0, "PD-L1 level of blasts (0 none, 1 high)", "scenario choice: PD-L1 on blasts is a resistance mechanism (biology brief s.7)")
    max_pd1_inhibition: float = param(0.8, "", 0.0, 1.0, "Largest fall of hit success when PD-1 (= exhaustion X) and PD-L1 are both 1 (success x (1 - this x X x PDL1))", "assumption")
    aicd_per_engagement_per_day: float = param(0.005, "1/day", 0.0, 10.0, "Extra apoptosis rate of an activated T cell per synapse it has made (activation-induced cell death)", "assumption: AICD grows with restimulation")


@dataclass(frozen=True)
class Regulation:
    """Regulatory T cells: a fraction of CD4 T cells that bridge but suppress instead of killing."""
    treg_fraction_of_cd4: float = param(0.048, "", 0.0, 1.0, "Fraction of CD4 T cells that are regulatory (CD4+CD25high FoxP3+)", "Duell et al. 2017 (4.8% in responders, 10.3% in non-responders)")
    max_suppression: float = param(0.8, "", 0.0, 1.0, "Largest fractional fall of effector hit success and division (paracrine IL-10 and contact)", "assumption: Tregs suppress proliferation and cytotoxicity, largely through IL-10 (Duell 2017)")
    half_active_share: float = param(0.03, "", 1e-4, 1.0, "Active-Treg share of a compartment's T cells at which suppression is half-maximal", "assumption: ~ the Treg share of T cells in responders (4.8% of CD4)")


@dataclass(frozen=True)
class CytokineKinetics:
    """Release by activated T cells and first-order clearance of one cytokine."""
    release_fg_per_cell_per_h: float = param(0.1, "fg/cell/h", 0.0, 1e4, "Release by a fully active T cell (activity 1 while engaged, decaying after)", "calibrated (per-cell rates are effective, net of local consumption): serum peaks on day 1 in the order IL-10 > IL-6 > IFN-gamma (biology brief s.5), IL-6 tens of pg/mL with dexamethasone premedication")
    half_life_min: float = param(20.0, "min", 0.1, 1e4, "Serum half-life", "IL-6: 20 min (biology brief s.5); others: assumption, order of reported serum half-lives")
    treg_factor: float = param(0.0, "", 0.0, 100.0, "Release by an active Treg relative to an effector T cell", "Tregs release IL-10 (biology brief s.7); assumption for the value")


@dataclass(frozen=True)
class Cytokines:
    """IL-2, IL-6, IL-10, IFN-gamma, TNF-alpha and IL-1beta per compartment."""
    activity_decay_h: float = param(8.0, "h", 0.01, 1e4, "A T cell's secretory activity decays with this time constant after its last synapse", "calibrated: cytokines peak on day 1 and stay detectable ~2 days (biology brief s.5)")
    il2: CytokineKinetics = section(lambda: CytokineKinetics(0.0013, 10.0, 0.0), "IL-2")
    il6: CytokineKinetics = section(lambda: CytokineKinetics(0.0013, 20.0, 0.0), "IL-6 (T cells make a minority of it; myeloid release is in `myeloid`)")
    il10: CytokineKinetics = section(lambda: CytokineKinetics(0.0034, 120.0, 5.0), "IL-10")
    ifng: CytokineKinetics = section(lambda: CytokineKinetics(0.002, 30.0, 0.0), "IFN-gamma")
    tnfa: CytokineKinetics = section(lambda: CytokineKinetics(0.0013, 20.0, 0.0), "TNF-alpha")
    il1b: CytokineKinetics = section(lambda: CytokineKinetics(0.0, 20.0, 0.0), "IL-1beta (made by myeloid cells, not T cells)")
    il6_receptor_clearance_share: float = param(0.7, "", 0.0, 1.0, "Share of IL-6 clearance that goes through its receptor (blocked by tocilizumab, so serum IL-6 rises after a dose while its signalling falls)", "Nishimoto 2008 Blood 112:3959 (serum IL-6 rises several-fold after tocilizumab because receptor-mediated clearance is blocked); assumption for the value")


@dataclass(frozen=True)
class Myeloid:
    """Monocytes (blood) and macrophages (tissues) as agents: activation by T-cell cytokines,
    CD40L contact and IL-1, release of IL-6 and IL-1beta."""
    activation_per_h: float = param(0.5, "1/h", 0.0, 1e3, "Activation rate of a myeloid cell at full stimulus", "assumption: monocyte IL-6 and IL-1beta transcripts rise within 1-2 h of stimulation")
    recovery_per_h: float = param(0.15, "1/h", 0.0, 1e3, "Return to rest (half-life ln2/rate, ~4.6 h)", "assumption: monocyte cytokine production stops within hours of the stimulus ending (tolerance)")
    tnfa_ec50_pg_per_ml: float = param(200.0, "pg/mL", 1e-3, 1e6, "Local TNF-alpha at half-maximal stimulus of a median myeloid cell", "Li 2019 Sci Transl Med (T-cell TNF-alpha triggers monocyte IL-6); assumption for the value (monocytes respond to TNF-alpha at 0.1-1 ng/mL in vitro)")
    ifng_ec50_pg_per_ml: float = param(400.0, "pg/mL", 1e-3, 1e6, "Local IFN-gamma at half-maximal stimulus", "assumption: twice tnfa_ec50 (IFN-gamma primes more than it triggers)")
    il1b_ec50_pg_per_ml: float = param(20.0, "pg/mL", 1e-3, 1e6, "Local IL-1beta signalling at half-maximal stimulus (the amplifying loop)", "assumption: monocytes respond to IL-1beta at tens of pg/mL (Dinarello 2009)")
    stimulus_hill: float = param(2.0, "", 0.1, 10.0, "Hill coefficient of each cytokine's stimulus", "assumption")
    tolerance_per_h: float = param(0.1, "1/h", 0.0, 1e3, "Rate at which an activated myeloid cell becomes refractory (tolerance T: dT/dt = k a (1 - T) - k_back T; the stimulus is S (1 - T))", "endotoxin tolerance: monocytes stimulated for hours stop making IL-6 and TNF-alpha on re-stimulation (Biswas & Lopez-Collazo 2009 Trends Immunol); assumption for the value")
    tolerance_recovery_per_h: float = param(0.01, "1/h", 0.0, 1e3, "Loss of tolerance", "assumption: tolerance lasts days")
    il10_ic50_pg_per_ml: float = param(100.0, "pg/mL", 1e-3, 1e6, "Local IL-10 that halves the activation rate", "de Waal Malefyt 1991 J Exp Med 174:1209 (IL-10 inhibits monocyte IL-1, IL-6 and TNF-alpha synthesis at 0.1-1 ng/mL); assumption for the value")
    contact_ul_per_h: float = param(1e-7, "uL/h", 0.0, 1.0, "Effective volume per hour in which an activated T cell activates a myeloid cell by contact (CD40L): chance in an interval 1 - exp(-k rho_active dt)", "calibrated: serum IL-6 tens of pg/mL on day 1 of `standard_cycle` with premedication (biology brief s.5, the target the T-cell release was calibrated to); the encounter geometry alone (pi (10 um)^2 x 5 um/min, ~1e-4 uL/h) activated every marrow macrophage within hours, so only about one encounter in 1,000 activates")
    cell_sd_log: float = param(0.5, "", 0.0, 5.0, "Spread (sd of the log) of each cell's stimulus threshold around the median", "assumption: monocyte responses to the same stimulus vary several-fold between cells")
    responsiveness: float = param(1.0, "", 1e-3, 1e3, "Patient factor: every cytokine concentration a myeloid cell senses is multiplied by it (a cohort covariate)", "assumption: monocyte cytokine responses vary several-fold between people")
    il6_release_fg_per_cell_per_h: float = param(4.0, "fg/cell/h", 0.0, 1e4, "IL-6 release by a fully activated myeloid cell", "order of stimulated human monocytes in vitro (tens of ng per 1e6 PBMC per day, monocytes 10-20% of them); assumption for the value")
    il1b_release_fg_per_cell_per_h: float = param(0.005, "fg/cell/h", 0.0, 1e4, "IL-1beta release by a fully activated myeloid cell", "assumption: IL-1beta is secreted far less than IL-6 (its release needs the inflammasome) and is hardly measurable in CRS serum")


@dataclass(frozen=True)
class Crs:
    """Cytokine release syndrome as the clinic grades it (ASTCT, Lee 2019) from body
    temperature, mean arterial pressure and oxygen need, each derived from the mechanism."""
    sensitivity: float = param(1.0, "", 1e-3, 1e3, "Patient factor: every cytokine concentration the fever, vasodilation and leak rules see is multiplied by it (a cohort covariate)", "assumption: the IL-6 of a given CRS grade spans an order of magnitude between patients (Teachey 2016 Cancer Discov)")
    fever_max_c: float = param(4.0, "degC", 0.0, 10.0, "Largest rise of body temperature (37 + this is the ceiling)", "assumption: hyperpyrexia ~41 degC")
    fever_il6_ec50_pg_per_ml: float = param(1500.0, "pg/mL", 1e-3, 1e6, "Serum IL-6 signalling at half the largest rise", "anchored on the human endotoxin challenge (IL-6 ~1,000 and TNF-alpha ~300-500 pg/mL with a 1.5-2 degC rise; Michie 1988 NEJM 318:1481, Suffredini 1999); assumption for the split between cytokines")
    fever_tnfa_ec50_pg_per_ml: float = param(1000.0, "pg/mL", 1e-3, 1e6, "Serum TNF-alpha at half the largest rise", "as fever_il6_ec50")
    fever_il1b_ec50_pg_per_ml: float = param(50.0, "pg/mL", 1e-3, 1e6, "Serum IL-1beta signalling at half the largest rise", "assumption: IL-1beta is pyrogenic at concentrations that are hardly measurable in serum (Dinarello 2009)")
    signal_hill: float = param(1.5, "", 0.1, 10.0, "Hill coefficient of the fever, vasodilation and leak signals", "assumption")
    fever_c: float = param(38.0, "degC", 30.0, 45.0, "Fever: body temperature at or above this", "ASTCT consensus (Lee 2019)")
    vasodilation_scale: float = param(2.0, "", 1e-3, 1e3, "Cytokine levels for half-maximal vasodilation relative to those of fever", "assumption: in CRS fever precedes hypotension (Lee 2019)")
    map_rest_mmhg: float = param(90.0, "mmHg", 40.0, 150.0, "Mean arterial pressure at rest", "normal adult MAP")
    vasodilation_max_drop_mmhg: float = param(30.0, "mmHg", 0.0, 100.0, "Largest fall of MAP from cytokine-driven vasodilation (NO)", "assumption")
    leak_max_drop_mmhg: float = param(30.0, "mmHg", 0.0, 100.0, "Largest fall of MAP from capillary leak", "assumption")
    hypotension_below_mmhg: float = param(65.0, "mmHg", 0.0, 150.0, "Hypotension: MAP below this (about systolic 90 mmHg)", "ASTCT consensus (Lee 2019): hypotension; MAP 65 mmHg the usual target")
    vasopressor_below_mmhg: float = param(58.0, "mmHg", 0.0, 150.0, "MAP below which fluids do not suffice and one vasopressor is needed", "assumption: a fluid bolus raises MAP by ~5-7 mmHg")
    vasopressors_below_mmhg: float = param(50.0, "mmHg", 0.0, 150.0, "MAP below which more than one vasopressor is needed", "assumption")
    oxygen_max_l_per_min: float = param(30.0, "L/min", 0.0, 100.0, "Oxygen need at full pulmonary leak", "assumption")
    oxygen_leak50: float = param(0.5, "", 1e-3, 1.0, "Capillary leak at half the largest oxygen need", "assumption: the lung leaks later than the periphery")
    hypoxia_from_l_per_min: float = param(1.0, "L/min", 0.0, 100.0, "Hypoxia: oxygen need at or above this", "ASTCT (Lee 2019): any oxygen need; 1 L/min the lowest nasal-cannula flow")
    high_flow_above_l_per_min: float = param(6.0, "L/min", 0.0, 100.0, "Oxygen need above this is high-flow (grade 3)", "ASTCT consensus (Lee 2019)")
    positive_pressure_from_l_per_min: float = param(15.0, "L/min", 0.0, 100.0, "Oxygen need at or above this needs positive pressure (grade 4)", "assumption: beyond a non-rebreather mask")


@dataclass(frozen=True)
class Antigen:
    """CD19 escape: subclones without or with little CD19, internalisation, lineage switch."""
    cd19_negative_fraction: float = param(0.0, "", 0.0, 1.0, "Share of initial blasts with no surface CD19 (CD19 exon-2 deletion); heritable", "Braig 2017; biology brief s.7")
    cd19_low_fraction: float = param(0.0, "", 0.0, 1.0, "Share of initial blasts with little surface CD19 (CD81 loss, failed export); heritable", "biology brief s.7")
    cd19_low_factor: float = param(0.1, "", 0.0, 1.0, "Surface CD19 of a CD19-low blast relative to its parental level", "assumption")
    internalisation_per_min: float = param(0.002, "1/min", 0.0, 10.0, "Loss of surface CD19 of a target while engaged", "biology brief s.7 (~0.002/min)")
    reexpression_per_min: float = param(0.002, "1/min", 0.0, 10.0, "Return of surface CD19 towards the heritable level when free", "assumption: recycling as fast as internalisation")
    lineage_switch_per_day: float = param(0.0, "1/day", 0.0, 10.0, "Rate at which a blast switches to a CD19-negative myeloid state (heritable)", "scenario choice: lineage switch (biology brief s.7)")


@dataclass(frozen=True)
class Endothelium:
    """Endothelial cells as agents in two layers, the vessel wall facing the blood and the
    blood-brain barrier: activation by cytokines, adhesion molecules, Weibel-Palade bodies
    (Ang-2, P-selectin), leak; drug-triggered T-cell adhesion."""
    cells_per_layer: int = param(1000, "cells", 1, 100000, "Endothelial agents in each layer (vessel wall, blood-brain barrier)", "sampling size: the layer's means have a relative error ~1/sqrt(n)")
    cell_sd_log: float = param(0.5, "", 0.0, 5.0, "Spread (sd of the log) of each cell's stimulus threshold around the median", "assumption: endothelial responses to cytokines vary between cells and vascular beds")
    activation_per_h: float = param(0.5, "1/h", 0.0, 1e3, "Up-regulation rate of ICAM-1 and VCAM-1 at full stimulus", "calibrated: Ang-2 up within 6 h (biology brief s.4)")
    recovery_per_h: float = param(0.025, "1/h", 0.0, 1e3, "Return of ICAM-1 and VCAM-1 to rest", "calibrated: normal within 7 days (biology brief s.4)")
    tnfa_ec50_pg_per_ml: float = param(4.0, "pg/mL", 1e-3, 1e6, "Serum TNF-alpha at half-maximal stimulus of a median cell", "assumption")
    ifng_ec50_pg_per_ml: float = param(6.0, "pg/mL", 1e-3, 1e6, "Serum IFN-gamma at half-maximal stimulus", "assumption")
    il6_ec50_pg_per_ml: float = param(100.0, "pg/mL", 1e-3, 1e6, "Serum IL-6 signalling at half-maximal stimulus", "endothelial cells lack the membrane IL-6 receptor and respond to IL-6 through the soluble receptor (trans-signalling, Romano 1997 Immunity), so at higher levels than T-cell TNF-alpha; assumption for the value (was 12 while IL-6 came from T cells only: with myeloid IL-6 lasting to day 4 the endothelium then stayed active past day 10, against the brief's normal within 7 days)")
    il1b_ec50_pg_per_ml: float = param(5.0, "pg/mL", 1e-3, 1e6, "Serum IL-1beta signalling at half-maximal stimulus", "assumption: endothelium responds to IL-1beta at a few pg/mL")
    stimulus_hill: float = param(3.0, "", 0.1, 10.0, "Hill coefficient of each cytokine's stimulus (C^n / (C^n + EC50^n))", "calibrated: peak cytokines activate the endothelium while trace levels after day 2 do not, so it is normal within 7 days (biology brief s.4)")
    rest_level: float = param(0.1, "", 0.0, 1.0, "ICAM-1 level of resting endothelium (VCAM-1 and surface P-selectin are absent at rest)", "assumption: resting endothelium expresses some ICAM-1")
    exocytosis_per_h: float = param(1.0, "1/h", 0.0, 1e3, "Weibel-Palade body exocytosis rate at full stimulus (releases Ang-2, shows P-selectin)", "Fiedler 2004 Blood (Ang-2 is stored in Weibel-Palade bodies and released within minutes to hours); assumption for the value")
    refill_per_h: float = param(0.04, "1/h", 0.0, 1e3, "Refilling of the Weibel-Palade store", "assumption: about a day")
    ang1_ng_per_ml: float = param(20.0, "ng/mL", 1e-3, 1e4, "Serum angiopoietin-1 (from pericytes and platelets; held constant)", "assumption: healthy serum Ang-1 of tens of ng/mL")
    ang2_rest_ng_per_ml: float = param(2.0, "ng/mL", 0.0, 1e4, "Serum angiopoietin-2 at rest", "assumption: healthy serum Ang-2 of 1-3 ng/mL")
    ang2_full_release_ng_per_ml: float = param(10.0, "ng/mL", 0.0, 1e4, "Serum Ang-2 added if every vessel-wall cell emptied its full store at once", "assumption")
    ang2_half_life_h: float = param(18.0, "h", 0.01, 1e4, "Serum half-life of Ang-2", "assumption")
    bbb_resistance: float = param(2.0, "", 1e-3, 1e3, "Cytokine levels a blood-brain-barrier cell needs relative to a vessel-wall cell", "assumption: tight junctions, pericytes and astrocyte end-feet make the barrier less responsive")
    transmigration_gain: float = param(10.0, "", 0.0, 1e4, "Rate of 'transmigration' routes at full blood-brain-barrier leak relative to rest, minus 1", "assumption: T cells cross a disrupted barrier more readily (Gust 2017)")
    drug_ec50_pg_per_ml: float = param(20.0, "pg/mL", 1e-3, 1e6, "Drug at which CD3 binding half-maximally switches LFA-1/VLA-4 to adhesive forms", "calibrated: T cells leave the blood 2-6 h after the start (biology brief s.4)")
    lfa1_icam1_weight: float = param(0.5, "", 0.0, 1.0, "Share of adhesion through LFA-1/ICAM-1", "assumption: the three pathways of Klinger 2020")
    vla4_vcam1_weight: float = param(0.3, "", 0.0, 1.0, "Share of adhesion through VLA-4/VCAM-1", "assumption")
    pselectin_weight: float = param(0.2, "", 0.0, 1.0, "Share of adhesion through P-selectin", "assumption")


@dataclass(frozen=True)
class Dosing:
    """One dose of an intervention at a time from the start."""
    time_h: float = param(0.0, "h", 0.0, 1e5, "Time of the dose", "")


@dataclass(frozen=True)
class Interventions:
    """Clinical interventions and protocol rules."""
    dexamethasone_premedication: bool = param(False, "", None, None, "Dexamethasone 20 mg before the start, before each step-up and when restarting after an interruption of 4 h or more", "BLINCYTO label")
    dexamethasone_doses: tuple[Dosing, ...] = collection(tuple, "Further dexamethasone doses")
    dexamethasone_max_inhibition: float = param(0.7, "", 0.0, 1.0, "Largest fall of cytokine release just after a dose (no effect on lysis; proliferation barely affected, not modelled)", "Brandl 2007 (direction); assumption (value)")
    dexamethasone_effect_half_life_h: float = param(36.0, "h", 0.1, 1e4, "Half-life of the anti-inflammatory effect of a dose", "assumption: dexamethasone biological half-life 36-54 h")
    tocilizumab_doses: tuple[Dosing, ...] = collection(tuple, "Tocilizumab doses")
    dexamethasone_at_crs_grade: int = param(0, "grade", 0, 4, "Give dexamethasone when CRS reaches this grade, and again every dexamethasone_repeat_h while it stays there (0: never)", "BLINCYTO label: dexamethasone for grade 3 CRS and neurological toxicity")
    dexamethasone_at_icans_grade: int = param(0, "grade", 0, 4, "Give dexamethasone when ICANS reaches this grade, and again every dexamethasone_repeat_h while it stays there (0: never)", "BLINCYTO label")
    dexamethasone_repeat_h: float = param(8.0, "h", 0.1, 1e4, "Interval between the doses of a dexamethasone treatment", "BLINCYTO label: 8 mg every 8 hours")
    tocilizumab_at_crs_grade: int = param(0, "grade", 0, 4, "Give tocilizumab automatically, once, when CRS reaches this grade and no dose was given before (0: never)", "clinical practice: tocilizumab treats CRS")
    tocilizumab_block: float = param(0.9, "", 0.0, 1.0, "Fraction of IL-6 signalling blocked just after a dose", "assumption")
    tocilizumab_half_life_days: float = param(11.0, "day", 0.1, 1e4, "Half-life of the blockade", "assumption: tocilizumab half-life ~11 days")
    interrupt_at_icans_grade: int = param(0, "grade", 0, 4, "Interrupt the infusion when ICANS reaches this grade (0: never; the label interrupts at grade 3 neurological toxicity)", "BLINCYTO label")
    resume_at_icans_grade: int = param(1, "grade", 0, 4, "Restart only once ICANS has fallen to this grade or lower (and CRS to resume_at_crs_grade)", "BLINCYTO label (restart at grade 1 or lower)")
    interrupt_at_crs_grade: int = param(0, "grade", 0, 4, "Interrupt the infusion when CRS reaches this grade (0: never; the label interrupts at grade 3)", "BLINCYTO label")
    resume_at_crs_grade: int = param(1, "grade", 0, 4, "Restart once CRS has fallen to this grade or lower", "BLINCYTO label (restart when resolved)")
    icans_resume_wait_h: float = param(0.0, "h", 0.0, 1e4, "After an interruption for ICANS, restart only once ICANS (and CRS) have stayed at their resume grades this long", "BLINCYTO label: neurological toxicity resolved to grade 1 or lower for at least 3 days (72 h)")
    icans_stop_if_unresolved_h: float = param(0.0, "h", 0.0, 1e4, "Stop the infusion for good when an interruption for ICANS has not resolved within this long (0: never)", "BLINCYTO label: discontinue if the neurological toxicity takes more than 7 days (168 h) to resolve")
    stop_at_crs_grade: int = param(0, "grade", 0, 4, "Stop the infusion for good when CRS reaches this grade (0: never)", "BLINCYTO label: discontinue permanently at grade 4 CRS")
    stop_at_icans_grade: int = param(0, "grade", 0, 4, "Stop the infusion for good when ICANS reaches this grade (0: never)", "BLINCYTO label: discontinue permanently at grade 4 neurological toxicity")
    stop_at_seizure: int = param(0, "", 0, 100, "Stop the infusion for good at this seizure episode (0: never)", "BLINCYTO label: discontinue permanently if more than one seizure occurs (2)")
    stop_if_icans_at_restart_dose: bool = param(False, "", None, None, "Stop the infusion for good, not interrupt it, when ICANS reaches interrupt_at_icans_grade while the infusion runs at restart_ug_per_day or less", "BLINCYTO label: discontinue permanently if the neurological toxicity occurred at 9 ug/day")
    restart_ug_per_day: float = param(9.0, "ug/day", 0.0, 200.0, "Infusion rate on restart, for 7 days, then the schedule resumes", "BLINCYTO label")
    pentosan_polysulfate: float = param(0.0, "", 0.0, 1.0, "Fraction of P-selectin adhesion blocked", "Klinger 2020 (pentosan polysulfate: P-selectin)")
    minocycline: float = param(0.0, "", 0.0, 1.0, "Fraction of LFA-1/ICAM-1 adhesion blocked", "Klinger 2020 (minocycline: LFA-1/ICAM-1)")
    natalizumab: float = param(0.0, "", 0.0, 1.0, "Fraction of VLA-4/VCAM-1 adhesion blocked", "Klinger 2020 (natalizumab: VLA-4/VCAM-1)")
    anakinra: float = param(0.0, "", 0.0, 1.0, "Fraction of IL-1 receptor signalling blocked (IL-1 receptor antagonist), throughout the run", "Norelli 2018, Giavridis 2018 (IL-1 blockade prevents CRS in mice); assumption for the value")


@dataclass(frozen=True)
class Patient:
    """The patient at full scale: weighted blasts, quiet-time stepping, response assessment by the clinic's assays."""
    min_blast_agents: int = param(50, "agents", 1, 100000, "In a compartment sampling a patient site (patient_volume_ul > 0), blasts are split (each into two of half the weight) while fewer than this many stand for more patient cells; a blast with a weight between 1 and 2 becomes one or two cells of weight 1", "docs/model.md, 'The patient at full scale': sentinels load the slab's T cells more than the real residue does, so this floor must stay well below what they can kill (in the convergence test 25-200 sentinels follow the fully agent-based run within 2 standard errors, 400 do not)")
    max_blast_agents: int = param(50000, "agents", 2, 10000000, "Above this many blasts in a compartment (or above twice the agents its patient density needs, at least min_blast_agents) each free blast survives a thinning with probability 1/2 and doubles its weight (bounded cost while a relapse grows; the slab's T cells meet blasts at the patient's density)", "docs/model.md (unbiased: the expected patient cells are unchanged)")
    quiet_below_pg_per_ml: float = param(1e-3, "pg/mL", 0.0, 1e3, "With the drug below this in every compartment and no synapse anywhere, motility, contacts, synapses and hits are not stepped (nothing can trigger); 0 turns this off", "docs/model.md: at 1e-3 pg/mL a contact holds ~1e-4 times the bridges it holds at 1 pg/mL, where no lysis is seen in 4 h; triggering needs 3 bridges, so its chance falls by ~1e-12")
    morphology_cells: int = param(500, "cells", 1, 100000, "Nucleated cells counted on the marrow aspirate smear (blast percentage)", "ICSH guideline (Lee 2008): 500-cell marrow differential")
    flow_cells: float = param(2e5, "cells", 1.0, 1e7, "Marrow cells analysed by flow cytometry for MRD", "assumption: conventional MRD flow with a sensitivity of 1e-4 (biology brief s.9); with flow_lod_events 20, 2e5 cells reach 1e-4")
    flow_lod_events: int = param(20, "events", 1, 10000, "Leukaemic events flow must see to call MRD positive", "EuroFlow (Theunissen 2017): a cluster of >= 20 events")
    ngs_cells: float = param(2e6, "cell equivalents", 1.0, 1e7, "Marrow genomes sequenced for MRD by NGS", "assumption: NGS MRD reaches 1e-6 (biology brief s.9) with ~1e6 genomes or more")
    ngs_lod_events: int = param(2, "reads", 1, 10000, "Clonotype-carrying genomes NGS must see to call MRD positive", "assumption (with ngs_cells 2e6 the limit is 1e-6)")
    followup_assessment_days: float = param(30.0, "day", 1.0, 366.0, "Interval of marrow assessments after the last cycle", "assumption: monthly marrow during follow-up")
    transplant_after_cycle: int = param(0, "cycle", 0, 100, "Stop after the assessment of this cycle for an allogeneic transplant (the run ends there, censored); 0: never", "scenario choice (BLINCYTO label: transplant after response)")


@dataclass(frozen=True)
class Icans:
    """Immune effector cell-associated neurotoxicity (ASTCT, Lee 2019) from CNS cytokines
    (of the T cells that entered the CNS and of serum let in by the barrier) and the
    blood-brain barrier's leak."""
    sensitivity: float = param(1.0, "", 1e-3, 1e3, "Patient factor on the CNS cytokines the encephalopathy rule sees (a cohort covariate)", "assumption")
    cytokine_ec50_pg_per_ml: float = param(100.0, "pg/mL", 1e-3, 1e6, "CNS IL-6 signalling + IL-1beta signalling + TNF-alpha + IFN-gamma at half-maximal encephalopathy", "assumption: CSF IL-6 of hundreds of pg/mL and more in severe neurotoxicity (Gust 2017)")
    cytokine_hill: float = param(2.0, "", 0.1, 10.0, "Hill coefficient of the cytokine term", "assumption")
    seizure_from: float = param(0.85, "", 0.0, 1.0, "Encephalopathy at which a seizure occurs (grade 3)", "assumption")
    unarousable_from: float = param(0.97, "", 0.0, 1.0, "Encephalopathy at which the patient is unarousable (grade 4)", "assumption")
    focal_oedema_leak: float = param(0.5, "", 0.0, 1.0, "Blood-brain-barrier leak that gives focal oedema on imaging (grade 3)", "assumption")
    diffuse_oedema_leak: float = param(0.8, "", 0.0, 1.0, "Blood-brain-barrier leak that gives diffuse oedema (grade 4)", "assumption")


@dataclass(frozen=True)
class Neurotoxicity:
    """Neurotoxicity indicator from T cells in the CNS and serum cytokines."""
    cns_t_per_ul_ref: float = param(20.0, "cells/uL", 1e-3, 1e6, "CNS T-cell density above baseline that gives an index of 1 - 1/e without cytokines", "assumption (documented rule, docs/model.md)")
    cytokine_ref_pg_per_ml: float = param(100.0, "pg/mL", 1e-3, 1e6, "IL-6 signalling + IFN-gamma that doubles the CNS T-cell term", "assumption")


@dataclass(frozen=True)
class Compartment:
    """A 2D periodic domain standing for a slab of tissue or blood."""
    width_um: float = param(1000.0, "um", 10.0, 1e5, "Domain width", "scenario size")
    height_um: float = param(1000.0, "um", 10.0, 1e5, "Domain height", "scenario size")
    thickness_um: float = param(10.0, "um", 1.0, 1e4, "Slab thickness mapping the 2D domain to a volume (counts per uL = count / (width * height * thickness))", "assumption: one mean cell spacing (see docs/model.md)")
    drug_exposure: float = param(1.0, "", 0.0, 10.0, "Local drug concentration as a fraction of the plasma concentration", "biology brief s.2: same in blood and marrow by default")
    cells_per_ul: KindValues = section(KindValues, "Initial density of each cell kind (cells/uL of the compartment)", each=(0.0, 1e7))
    speed_um_per_min: KindValues = section(KindValues, "Speed of free cells of each kind (um/min)", each=(0.0, 1e4))
    t_subsets: SubsetMix = section(SubsetMix, "Differentiation subsets of the T cells placed here at the start")
    myeloid_per_ul: float = param(0.0, "cells/uL", 0.0, 1e6, "Monocytes (blood) or macrophages (tissue) simulated as myeloid agents", "blood monocytes 200-800/uL (normal range); marrow monocytes and macrophages a few % of nucleated cells (assumption)")
    nucleated_cells_per_ul: float = param(0.0, "cells/uL", 0.0, 1e7, "All nucleated cells of the compartment, simulated or not (denominator of blast fractions); 0 means only the simulated cells", "marrow: ~1e6/uL for a packed tissue (assumption)")
    b_production: bool = param(False, "", None, None, "Normal B cells are produced here at the rate that balances their lifespan at baseline", "assumption")
    serum_share: float = param(0.0, "", 0.0, 100.0, "How much of this compartment's cytokine release per mL also reaches serum, relative to blood (about its body volume / blood volume); the blood compartment itself always counts fully", "assumption: marrow ~2.5 L vs blood ~5 L gives 0.5; vessel wall 1 (faces the blood); CNS small (blood-brain barrier)")
    role: str = param("tissue", "", None, None, "'blood' feeds blood read-outs and serum cytokines; 'marrow' the blast fraction; 'marrow_niche' is marrow where T cells are scarce (counted in the marrow read-outs); 'vessel_wall' holds T cells adhered to endothelium; 'cns' the neurotoxicity index; 'lymphoid' is lymph nodes and spleen (routes into it scale with each T-cell subset's lymphoid_homing; activated CD69+ T cells are held there); 'extramedullary' is leukaemia outside marrow, blood and CNS; 'tissue' anything else", "", choices=ROLES)
    patient_volume_ul: float = param(0.0, "uL", 0.0, 1e8, "Volume of the patient's tissue that this compartment is a sample of. Its blasts then stand for patient cells (each carries a weight, the patient cells it represents, starting at patient_volume_ul / compartment volume); 0: the compartment is the whole site (weights 1)", "docs/model.md, 'The patient at full scale'; e.g. marrow 7.7e11 nucleated cells (Harrison 1962, ~1.1e10/kg at 70 kg) at 1e6/uL = 7.7e5 uL; blood 5 L = 5e6 uL")


@dataclass(frozen=True)
class Route:
    """A migration route between two compartments: one edge of the compartment graph."""
    source: str = param("", "", None, None, "Compartment the cells leave", "")
    target: str = param("", "", None, None, "Compartment the cells enter (placed uniformly at random)", "")
    rate_per_h: KindValues = section(KindValues, "Per-cell rate of taking this route, by kind (1/h)", each=(0.0, 1e3))
    mechanism: str = param("constant", "", None, None, "'constant' rate; 'adhesion': rate x adhesion stimulus (0..1); 'detachment': rate x (1 - adhesion stimulus); 'transmigration': rate x (1 + endothelium.transmigration_gain x blood-brain-barrier leak)", "", choices=("constant", "adhesion", "detachment", "transmigration"))


@dataclass(frozen=True)
class Output:
    """What the run file records."""
    record_every_min: float = param(10.0, "min", 0.1, 10000.0, "Interval between timeseries rows (a multiple of the time step)", "")


@dataclass(frozen=True)
class Scenario:
    """A complete, validated scenario."""
    name: str = param("unnamed", "", None, None, "Short name of the scenario", "")
    description: str = param("", "", None, None, "One paragraph saying what the scenario is for", "")
    seed: int = param(1, "", 0, 2**63 - 1, "Default seed of the random streams (the command line --seed overrides)", "")
    duration_h: float = param(1008.0, "h", 0.0, 24.0 * 3660, "Simulated time", "42-day cycle = 1008 h", open_low=True)
    time_step_min: float = param(1.0, "min", 0.05, 10.0, "Fixed time step; 1440 must be a whole multiple of it", "see docs/model.md (contact radius / speed)")
    drug: Drug = section(Drug, "The drug")
    pk: PK = section(PK, "Pharmacokinetics")
    schedule: Schedule = section(Schedule, "Dosing schedule")
    receptors: Receptors = section(Receptors, "Receptor copy numbers")
    binding: Binding = section(Binding, "Bridging on contact")
    motility: Motility = section(Motility, "Random walk")
    synapse: Synapse = section(Synapse, "Contacts and synapses")
    lysis: Lysis = section(Lysis, "Granule hits and kills")
    activation: Activation = section(Activation, "Activation, the proliferative programme and death of T cells")
    t_subsets: TSubsets = section(TSubsets, "T-cell differentiation subsets")
    blasts: Blasts = section(Blasts, "Blast growth")
    b_cells: BCells = section(BCells, "Normal B-cell turnover")
    markers: Markers = section(Markers, "Activation markers")
    exhaustion: Exhaustion = section(Exhaustion, "Exhaustion, rest and activation-induced death")
    regulation: Regulation = section(Regulation, "Regulatory T cells")
    cytokines: Cytokines = section(Cytokines, "Cytokines")
    myeloid: Myeloid = section(Myeloid, "Monocytes and macrophages")
    crs: Crs = section(Crs, "CRS by the ASTCT grades")
    antigen: Antigen = section(Antigen, "CD19 escape")
    endothelium: Endothelium = section(Endothelium, "Endothelium and adhesion")
    interventions: Interventions = section(Interventions, "Interventions and protocol rules")
    icans: Icans = section(Icans, "ICANS by the ASTCT grades")
    neurotoxicity: Neurotoxicity = section(Neurotoxicity, "Neurotoxicity indicator")
    patient: Patient = section(Patient, "The patient at full scale and the clinic's assays")
    compartments: dict[str, Compartment] = collection(dict, "Compartments by name (nodes of the compartment graph); 'blood' and 'marrow' feed the clinical read-outs")
    routes: tuple[Route, ...] = collection(tuple, "Migration routes (edges of the compartment graph)")
    output: Output = section(Output, "Recording")


def _whole_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-9 and round(ratio) >= 1


def check_consistency(s: Scenario) -> list[tuple[str, str]]:
    """Cross-field rules a valid scenario must satisfy; returns (field.path, message) pairs."""
    problems: list[tuple[str, str]] = []
    if not _whole_multiple(1440.0, s.time_step_min):
        problems.append(("time_step_min", f"{s.time_step_min} min does not divide a day (1440 min) evenly"))
    if not _whole_multiple(s.output.record_every_min, s.time_step_min):
        problems.append(("output.record_every_min", f"{s.output.record_every_min} min is not a whole multiple of time_step_min ({s.time_step_min} min)"))
    if not s.compartments:
        problems.append(("compartments", "at least one compartment is required"))
    for i, cycle in enumerate(s.schedule.cycles):
        last_day = 0
        for j, inf in enumerate(cycle.infusions):
            path = f"schedule.cycles.{i}.infusions.{j}"
            if inf.to_day < inf.from_day:
                problems.append((f"{path}.to_day", f"to_day {inf.to_day} is before from_day {inf.from_day}"))
            if inf.to_day > cycle.length_days:
                problems.append((f"{path}.to_day", f"day {inf.to_day} is past the cycle length of {cycle.length_days} days"))
            if inf.from_day <= last_day:
                problems.append((f"{path}.from_day", f"day {inf.from_day} overlaps or precedes the previous period (ends day {last_day}); periods must be in order and not overlap"))
            last_day = max(last_day, inf.to_day)
    for role in ("blood", "marrow", "marrow_niche", "vessel_wall", "cns", "lymphoid", "extramedullary"):
        holders = [name for name, c in s.compartments.items() if c.role == role]
        if len(holders) > 1:
            problems.append((f"compartments.{holders[1]}.role", f"only one compartment may have role '{role}' (also {holders[0]})"))
    for name, c in s.compartments.items():
        slab_ul = c.width_um * c.height_um * c.thickness_um / 1e9
        if 0.0 < c.patient_volume_ul < slab_ul:
            problems.append((f"compartments.{name}.patient_volume_ul", f"{c.patient_volume_ul:g} uL is less than the compartment's own volume ({slab_ul:.3g} uL); a sample cannot be larger than the site"))
        for kind in T_KINDS:
            total = sum(c.t_subsets.shares(kind))
            if abs(total - 1.0) > 1e-6:
                problems.append((f"compartments.{name}.t_subsets.{kind}_naive", f"the {kind} subset shares add up to {total:g}; they must add up to 1"))
    if s.antigen.cd19_negative_fraction + s.antigen.cd19_low_fraction > 1.0:
        problems.append(("antigen.cd19_low_fraction", "cd19_negative_fraction + cd19_low_fraction exceeds 1"))
    c = s.crs
    if not c.vasopressors_below_mmhg < c.vasopressor_below_mmhg < c.hypotension_below_mmhg:
        problems.append(("crs.vasopressor_below_mmhg", f"the pressures must fall with the need: vasopressors_below ({c.vasopressors_below_mmhg:g}) < vasopressor_below ({c.vasopressor_below_mmhg:g}) < hypotension_below ({c.hypotension_below_mmhg:g}) mmHg"))
    if not c.hypoxia_from_l_per_min <= c.high_flow_above_l_per_min < c.positive_pressure_from_l_per_min:
        problems.append(("crs.high_flow_above_l_per_min", f"the oxygen flows must rise with the need: hypoxia_from ({c.hypoxia_from_l_per_min:g}) <= high_flow_above ({c.high_flow_above_l_per_min:g}) < positive_pressure_from ({c.positive_pressure_from_l_per_min:g}) L/min"))
    i = s.interventions
    if i.interrupt_at_crs_grade and i.resume_at_crs_grade >= i.interrupt_at_crs_grade:
        problems.append(("interventions.resume_at_crs_grade", f"must be below interrupt_at_crs_grade ({i.interrupt_at_crs_grade})"))
    if i.interrupt_at_icans_grade and i.resume_at_icans_grade >= i.interrupt_at_icans_grade:
        problems.append(("interventions.resume_at_icans_grade", f"must be below interrupt_at_icans_grade ({i.interrupt_at_icans_grade})"))
    for rule in ("icans_stop_if_unresolved_h", "stop_if_icans_at_restart_dose"):
        if getattr(i, rule) and not i.interrupt_at_icans_grade:
            problems.append((f"interventions.{rule}", "acts on an interruption for ICANS: set interrupt_at_icans_grade too"))
    n = s.icans
    if not n.seizure_from < n.unarousable_from:
        problems.append(("icans.seizure_from", f"must be below unarousable_from ({n.unarousable_from:g}): encephalopathy rises through seizure to coma"))
    if not n.focal_oedema_leak < n.diffuse_oedema_leak:
        problems.append(("icans.focal_oedema_leak", f"must be below diffuse_oedema_leak ({n.diffuse_oedema_leak:g})"))
    for i, route in enumerate(s.routes):
        for end in ("source", "target"):
            name = getattr(route, end)
            if name not in s.compartments:
                problems.append((f"routes.{i}.{end}", f"unknown compartment '{name}'; known: {', '.join(sorted(s.compartments)) or 'none'}"))
        if route.source == route.target:
            problems.append((f"routes.{i}.target", "a route must join two different compartments"))
        source, target = s.compartments.get(route.source), s.compartments.get(route.target)
        if (source is not None and target is not None and route.rate_per_h.blast > 0
                and source.patient_volume_ul > 0 and target.patient_volume_ul <= 0):
            problems.append((f"routes.{i}.rate_per_h.blast", f"blasts of '{route.source}' stand for many patient cells (patient_volume_ul is set); they can only move to a compartment that also samples a patient site, and '{route.target}' has no patient_volume_ul"))
    return problems
