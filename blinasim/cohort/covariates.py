"""Patient covariates: their distributions, per-patient seeds, and the scenario changes they make.

Patient i of a cohort with seed S owns ``SeedSequence(S).spawn(n)[i]``, i.e.
``SeedSequence(S, spawn_key=(i,))``. Its child 0 gives the simulation seed and its child
1 + k the draws of covariate k (its position in :data:`COVARIATES`). A patient is therefore
the same whatever the number of patients, the workers or the order they run in, and adding
a covariate to a cohort leaves the draws of the others unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from blinasim.schema import MARROW_ROLES, T_KINDS, T_SUBSETS, Scenario, param

MAX_LOG = 700.0
"""Largest log of a log-normal draw (exp(709) overflows a double); the covariate's own
range clamps far below it."""
DRAWS_PER_BLOCK = 64
MAX_BLOCKS = 1000
"""A truncated beta distribution gets up to 64,000 draws to land in [low, high]."""


@dataclass(frozen=True)
class Covariate:
    """A patient characteristic a cohort can vary, with the values it may take."""
    name: str
    unit: str
    low: float
    high: float
    doc: str


COVARIATES = (
    Covariate("marrow_blast_percent", "%", 0.0, 99.0,
              "Blasts as a percentage of nucleated marrow cells: sets the marrow compartment's "
              "blast density to this share of its nucleated_cells_per_ul"),
    Covariate("blood_t_per_ul", "cells/uL", 0.0, 1e5,
              "CD8 + CD4 T cells per uL of blood: scales the T cells of every compartment by "
              "the same factor, keeping the CD8:CD4 ratio and the balance of the migration routes"),
    Covariate("treg_fraction_of_cd4", "", 0.0, 1.0,
              "Regulatory T cells as a fraction of CD4 T cells (regulation.treg_fraction_of_cd4)"),
    Covariate("cd19_negative_fraction", "", 0.0, 1.0,
              "Share of initial blasts that are CD19-negative (antigen.cd19_negative_fraction)"),
    Covariate("cd19_blast_copies", "copies", 0.0, 1e7,
              "Median CD19 copies on a blast (receptors.cd19_blast_median)"),
    Covariate("cd3_t_copies", "copies", 0.0, 1e7,
              "Mean CD3 copies on a T cell (receptors.cd3_t_mean)"),
    Covariate("pdl1_blast_level", "", 0.0, 1.0,
              "PD-L1 level of blasts, 0 none to 1 high (exhaustion.pdl1_blast_level)"),
    Covariate("naive_t_odds_ratio", "", 0.0, 1e3,
              "Odds of a T cell being naive rather than memory, relative to the base scenario, "
              "in every compartment and for CD8 and CD4 (e.g. 0.5 after more chemotherapy); "
              "the memory subsets keep their proportions (compartments.NAME.t_subsets)"),
    Covariate("weight_kg", "kg", 1.0, 300.0,
              "Body weight: chooses flat or per-m2 dosing under the label rule"),
    Covariate("height_cm", "cm", 30.0, 250.0,
              "Height: with weight gives the body surface area (Mosteller), which scales "
              "clearance and the per-m2 dose"),
    Covariate("crs_sensitivity", "", 1e-3, 1e3,
              "Factor on every cytokine concentration the fever, vasodilation and leak rules "
              "see (crs.sensitivity; 1 is the median patient)"),
    Covariate("myeloid_responsiveness", "", 1e-3, 1e3,
              "Factor on every cytokine concentration the patient's monocytes and macrophages "
              "sense (myeloid.responsiveness; 1 is the median patient)"),
)
COVARIATE_BY_NAME = {c.name: c for c in COVARIATES}


@dataclass(frozen=True)
class Distribution:
    """How a covariate is drawn: `low`/`high` truncate it; with probability `zero_probability`
    the value is 0 instead (a zero-inflated distribution: e.g. most patients have no subclone)."""
    kind: str
    params: tuple[tuple[str, float], ...]
    low: float = -math.inf
    high: float = math.inf
    zero_probability: float = 0.0

    def _normal(self) -> NormalDist | None:
        """The normal distribution of the value (normal) or of its logarithm (lognormal)."""
        p = dict(self.params)
        if self.kind == "normal":
            return NormalDist(p["mean"], p["sd"])
        if self.kind == "lognormal":
            return NormalDist(math.log(p["median"]), p["sigma_log"])
        return None

    def _bounds_cdf(self, normal: NormalDist) -> tuple[float, float]:
        """CDF of the normal at low and high (on the log scale for the log-normal)."""
        def at(x: float) -> float:
            if self.kind == "lognormal":
                x = math.log(x) if x > 0 else -math.inf
            return 0.0 if x == -math.inf else 1.0 if x == math.inf else normal.cdf(x)
        return at(self.low), at(self.high)

    def sample(self, rng: np.random.Generator) -> float:
        """One value within [low, high]; raises ValueError when none is found.

        The first draw decides a zero (only when `zero_probability` is above 0). Normal and
        log-normal values are drawn exactly by inverting the CDF between the bounds; beta
        values are redrawn until they land inside (up to 64,000 draws).
        """
        p = dict(self.params)
        if self.zero_probability and rng.random() < self.zero_probability:
            return 0.0
        if self.kind == "fixed":
            return float(p["value"])
        if self.kind == "uniform":
            return float(rng.uniform(p["low"], p["high"]))
        normal = self._normal()
        if normal is not None:
            low, high = self._bounds_cdf(normal)
            u = float(rng.uniform(low, high))
            value = normal.inv_cdf(min(max(u, 1e-300), 1.0 - 1e-16))
            value = math.exp(min(value, MAX_LOG)) if self.kind == "lognormal" else value
            return min(max(value, self.low), self.high)
        for _ in range(MAX_BLOCKS):
            draws = rng.beta(p["a"], p["b"], DRAWS_PER_BLOCK)
            inside = draws[(draws >= self.low) & (draws <= self.high)]
            if inside.size:
                return float(inside[0])
        raise ValueError(f"no draw fell within [{self.low}, {self.high}] in "
                         f"{DRAWS_PER_BLOCK * MAX_BLOCKS} tries")

    def mass_within(self) -> float | None:
        """Probability of [low, high] for the normal and log-normal kinds (None otherwise)."""
        normal = self._normal()
        if normal is None:
            return None
        low, high = self._bounds_cdf(normal)
        return high - low


def patient_seed(cohort_seed: int, index: int) -> int:
    """Simulation seed of patient `index` (63 bits, child 0 of the patient's SeedSequence)."""
    words = np.random.SeedSequence(cohort_seed, spawn_key=(index, 0)).generate_state(2, np.uint32)
    return ((int(words[0]) << 32) | int(words[1])) & (2**63 - 1)


def sample_covariates(distributions: Mapping[str, Distribution], cohort_seed: int,
                      index: int) -> dict[str, float]:
    """Patient `index`'s covariate values, each from its own stream (see the module text).

    Raises ValueError naming the covariate when a value cannot be drawn or is not allowed.
    """
    values = {}
    for position, covariate in enumerate(COVARIATES):
        distribution = distributions.get(covariate.name)
        if distribution is None:
            continue
        rng = np.random.default_rng(np.random.SeedSequence(cohort_seed, spawn_key=(index, 1 + position)))
        try:
            value = distribution.sample(rng)
        except ValueError as exc:
            raise ValueError(f"covariate {covariate.name}: {exc}") from None
        if not covariate.low <= value <= covariate.high:
            raise ValueError(f"covariate {covariate.name} = {value:.6g}{_unit(covariate)} is outside "
                             f"its allowed range {covariate.low:g} to {covariate.high:g}")
        values[covariate.name] = value
    return values


def _unit(covariate: Covariate) -> str:
    return f" {covariate.unit}" if covariate.unit and covariate.unit != "%" else covariate.unit


# --------------------------------------------------------------------------- body size and dose

def bsa_m2(weight_kg: float, height_cm: float) -> float:
    """Body surface area by Mosteller (1987): sqrt(height_cm * weight_kg / 3600)."""
    return math.sqrt(height_cm * weight_kg / 3600.0)


LABEL_UG_PER_M2_PER_DAY = {9.0: 5.0, 28.0: 15.0}
"""BLINCYTO label, patients under 45 kg: 5 instead of 9, 15 instead of 28 ug/m2/day."""


@dataclass(frozen=True)
class Dosing:
    """How body size sets the dose and the PK (section `dosing` of a cohort file)."""
    rule: str = param("flat", "", None, None, "'flat': every patient gets the base scenario's rates; 'label': patients lighter than weight_threshold_kg get the label's per-m2 rate (9 -> 5, 28 -> 15 ug/m2/day) times their body surface area, never more than the flat rate", "BLINCYTO label", choices=("flat", "label"))
    weight_threshold_kg: float = param(45.0, "kg", 0.0, 1000.0, "Below this weight the label doses per m2", "BLINCYTO label")
    reference_bsa_m2: float = param(1.88, "m2", 0.1, 5.0, "Body surface area at which clearance is the base scenario's", "Clements et al. 2020 (median BSA 1.88 m2 of 674 patients)", open_low=True)
    clearance_bsa_exponent: float = param(0.61, "", 0.0, 2.0, "Clearance scales as (BSA / reference_bsa_m2) ** this; the volume does not change", "Clements et al. 2020: BSA the only covariate, on clearance; 63% lower clearance at 0.37 m2 than at 1.88 m2 gives 0.61 for a power law")


def body_size_overrides(base: Scenario, values: Mapping[str, float], dosing: Dosing) -> tuple[list[str], dict]:
    """Overrides for dose and PK from weight and height, and the derived values recorded."""
    if "weight_kg" not in values or "height_cm" not in values:
        return [], {}
    bsa = bsa_m2(values["weight_kg"], values["height_cm"])
    scale = (bsa / dosing.reference_bsa_m2) ** dosing.clearance_bsa_exponent
    overrides = [f"pk.clearance_l_per_h={base.pk.clearance_l_per_h * scale!r}"]
    per_m2 = dosing.rule == "label" and values["weight_kg"] < dosing.weight_threshold_kg
    if per_m2:
        rates = LABEL_UG_PER_M2_PER_DAY
        for i, cycle in enumerate(base.schedule.cycles):
            for j, infusion in enumerate(cycle.infusions):
                if infusion.ug_per_m2_per_day > 0 or infusion.ug_per_day not in rates:
                    continue  # already per m2, or a rate the label does not convert
                dose = min(infusion.ug_per_day, rates[infusion.ug_per_day] * bsa)
                overrides.append(f"schedule.cycles.{i}.infusions.{j}.ug_per_day={dose!r}")
        restart = base.interventions.restart_ug_per_day
        overrides.append(f"interventions.restart_ug_per_day={min(restart, rates[restart] * bsa)!r}")
    return overrides, {"bsa_m2": bsa, "per_m2_dosing": float(per_m2)}


def flat_rates(base: Scenario) -> list[tuple[str, float]]:
    """(field path, ug/day) of every rate the label rule converts to per-m2."""
    rates = [(f"schedule.cycles.{i}.infusions.{j}.ug_per_day", infusion.ug_per_day)
             for i, cycle in enumerate(base.schedule.cycles) for j, infusion in enumerate(cycle.infusions)]
    return rates + [("interventions.restart_ug_per_day", base.interventions.restart_ug_per_day)]


# --------------------------------------------------------------------------- cell counts

def compartment_with_role(base: Scenario, role: str) -> str | None:
    return next((name for name, c in base.compartments.items() if c.role == role), None)


def blood_t_per_ul(base: Scenario) -> float:
    """CD8 + CD4 T cells per uL in the base scenario's blood compartment (0 without one)."""
    blood = compartment_with_role(base, "blood")
    if blood is None:
        return 0.0
    cells = base.compartments[blood].cells_per_ul
    return cells.cd8 + cells.cd4


def cell_overrides(base: Scenario, values: Mapping[str, float]) -> list[str]:
    """Overrides for the covariates that set cell densities and cell properties."""
    overrides = []
    if "marrow_blast_percent" in values:
        for name, compartment in base.compartments.items():
            if compartment.role in MARROW_ROLES:
                overrides.append(f"compartments.{name}.cells_per_ul.blast="
                                 f"{values['marrow_blast_percent'] / 100.0 * compartment.nucleated_cells_per_ul!r}")
    if "blood_t_per_ul" in values:
        factor = values["blood_t_per_ul"] / blood_t_per_ul(base)
        for name, compartment in base.compartments.items():
            for kind in ("cd8", "cd4"):
                count = getattr(compartment.cells_per_ul, kind)
                if count:
                    overrides.append(f"compartments.{name}.cells_per_ul.{kind}={count * factor!r}")
    if "naive_t_odds_ratio" in values:
        overrides += subset_overrides(base, values["naive_t_odds_ratio"])
    fields = {"treg_fraction_of_cd4": "regulation.treg_fraction_of_cd4",
              "cd19_negative_fraction": "antigen.cd19_negative_fraction",
              "cd19_blast_copies": "receptors.cd19_blast_median",
              "cd3_t_copies": "receptors.cd3_t_mean",
              "pdl1_blast_level": "exhaustion.pdl1_blast_level",
              "crs_sensitivity": "crs.sensitivity",
              "myeloid_responsiveness": "myeloid.responsiveness"}
    overrides += [f"{path}={values[name]!r}" for name, path in fields.items() if name in values]
    return overrides


def subset_overrides(base: Scenario, odds_ratio: float) -> list[str]:
    """Subset shares with the naive odds multiplied by `odds_ratio`:
    naive' = r n / (r n + 1 - n), each memory share m' = m (1 - naive') / (1 - n)."""
    overrides = []
    for name, compartment in base.compartments.items():
        for kind in T_KINDS:
            shares = compartment.t_subsets.shares(kind)
            naive = shares[0]
            if naive in (0.0, 1.0):
                continue  # no odds to scale
            new_naive = odds_ratio * naive / (odds_ratio * naive + 1.0 - naive)
            scaled = [new_naive] + [m * (1.0 - new_naive) / (1.0 - naive) for m in shares[1:]]
            overrides += [f"compartments.{name}.t_subsets.{kind}_{subset}={value!r}"
                          for subset, value in zip(T_SUBSETS, scaled)]
    return overrides


def patient_overrides(base: Scenario, values: Mapping[str, float], dosing: Dosing) -> tuple[list[str], dict]:
    """The ``path=value`` overrides that turn the base scenario into this patient, and the
    derived values (body surface area, per-m2 dosing) to record beside the covariates."""
    body, derived = body_size_overrides(base, values, dosing)
    return cell_overrides(base, values) + body, derived
