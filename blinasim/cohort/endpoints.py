"""Clinical endpoints of one patient from its time series, and cohort rates with 95% intervals.

Every rule works on the recorded series (``time_h`` plus the observables of
:meth:`blinasim.model.BlinaModel.observables`), so it can be checked on hand-made series.
The rules and their clinical counterparts are in docs/cohorts.md.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from blinasim.processes.protocol import ACTIONS
from blinasim.schema import param

SERIES_NEEDED = ("marrow_blast_fraction", "blasts", "blasts_cd19neg", "blood_b_per_ul",
                 "blood_t_per_ul", "crs_grade", "icans_grade", "neurotox_index")
"""Observables the endpoint rules read."""


@dataclass(frozen=True)
class EndpointRules:
    """Thresholds and times of the endpoint rules (section `endpoints` of a cohort file)."""
    assessment_day: float = param(29.0, "day", 0.0, 10000.0, "Day of the response assessment (day 1 starts at time 0; day 29 is the first day after cycle 1's 28-day infusion)", "Topp 2015; Gokbuget 2018 (marrow assessed after each 4-week infusion)", open_low=True)
    cr_blast_fraction: float = param(0.05, "", 0.0, 1.0, "Complete remission: marrow blasts below this fraction at the assessment", "standard CR criterion (< 5% marrow blasts)", open_low=True)
    mrd_blast_fraction: float = param(1e-4, "", 0.0, 1.0, "MRD response: marrow blasts below this fraction at the assessment", "Gokbuget 2018 (complete MRD response, assay sensitivity 1e-4)", open_low=True)
    relapse_blast_fraction: float = param(0.05, "", 0.0, 1.0, "Relapse: a patient in CR whose marrow blasts reach this fraction after the assessment", "standard haematological relapse (>= 5% marrow blasts)", open_low=True)
    cd19neg_share: float = param(0.5, "", 0.0, 1.0, "A relapse is CD19-negative when at least this share of its blasts lack surface CD19", "assumption: a CD19-negative relapse is a mostly CD19-negative blast population (Braig 2017)", open_low=True)
    b_depleted_per_ul: float = param(1.0, "cells/uL", 0.0, 1e5, "Blood B cells are depleted below this density", "biology brief s.8 (< 1/uL by 48 h)", open_low=True)
    neurotox_event_index: float = param(0.5, "", 0.0, 1.0, "A neurotoxicity event is a neurotoxicity index reaching this level", "assumption (the index is a model indicator, docs/model.md)", open_low=True)
    t_expansion_from_day: float = param(7.0, "day", 0.0, 10000.0, "T-cell expansion is the peak blood T-cell count from this day on, relative to the count at the start", "Klinger 2012 (T cells redistribute in the first days and expand later)")


@dataclass(frozen=True)
class Endpoint:
    name: str
    unit: str
    doc: str


ENDPOINTS = (
    Endpoint("cr", "0/1", "complete remission: marrow blast fraction < cr_blast_fraction at the assessment"),
    Endpoint("mrd_response", "0/1", "MRD response: marrow blast fraction < mrd_blast_fraction at the assessment"),
    Endpoint("marrow_blast_fraction_assessed", "1", "marrow blast fraction at the assessment"),
    Endpoint("relapse", "0/1", "in CR at the assessment, then marrow blasts >= relapse_blast_fraction"),
    Endpoint("relapse_day", "day", "day the relapse was first seen (NaN without relapse)"),
    Endpoint("cd19neg_relapse", "0/1", "a relapse in which >= cd19neg_share of the blasts are CD19-negative"),
    Endpoint("cd19neg_share_end", "1", "CD19-negative share of the blasts at the end (NaN without blasts)"),
    Endpoint("max_crs_grade", "grade", "highest CRS grade (0-4, ASTCT)"),
    Endpoint("crs_onset_day", "day", "first time CRS grade >= 1, in days from the start (NaN if never)"),
    Endpoint("crs_days", "day", "time with CRS grade >= 1 on the series grid (each point counts until the next)"),
    Endpoint("max_icans_grade", "grade", "highest ICANS grade (0-4, ASTCT)"),
    Endpoint("icans_onset_day", "day", "first time ICANS grade >= 1, in days from the start (NaN if never)"),
    Endpoint("icans_days", "day", "time with ICANS grade >= 1 on the series grid"),
    Endpoint("interruptions", "count", "infusion interruptions by the protocol's rules on CRS and ICANS grades (events/interventions)"),
    Endpoint("stopped", "0/1", "infusion stopped for good by the protocol's rules (events/interventions)"),
    Endpoint("max_neurotox_index", "1", "highest neurotoxicity index (0-1)"),
    Endpoint("neurotox_event", "0/1", "neurotoxicity index reached neurotox_event_index"),
    Endpoint("b_depletion_day", "day", "first time blood B cells < b_depleted_per_ul, in days from the start (NaN if never)"),
    Endpoint("t_expansion_fold", "1", "peak blood T cells from t_expansion_from_day on / blood T cells at the start"),
    Endpoint("t_expansion_day", "day", "day of that peak, in days from the start"),
    Endpoint("cr_2_cycles", "0/1", "marrow assessments (runs with the assessments table): complete remission at the assessment of cycle 1 or 2 (smear < 5%, no circulating blasts, no extramedullary mass, no CNS-3 CSF)"),
    Endpoint("mrd_negative_cycle1", "0/1", "flow MRD below its limit of detection (1e-4) at the assessment of cycle 1"),
    Endpoint("rfs_day", "day", "relapse-free survival from the first CR assessment to the relapse assessment, or to the end of the run (censored); NaN without CR"),
    Endpoint("rfs_event", "0/1", "a relapse was assessed after a CR (0: censored at rfs_day)"),
    Endpoint("relapse_cd19neg_assessed", "0/1", "at the relapse assessment >= cd19neg_share of the blasts are in a CD19-negative clone (NaN without relapse)"),
)
ENDPOINT_NAMES = tuple(e.name for e in ENDPOINTS)

RATES = (
    ("cr", "complete remission at the assessment", lambda e: e["cr"]),
    ("mrd_response", "MRD response at the assessment", lambda e: e["mrd_response"]),
    ("relapse", "relapse after CR", lambda e: e["relapse"]),
    ("cd19neg_relapse", "CD19-negative relapse", lambda e: e["cd19neg_relapse"]),
    ("crs_any", "CRS of any grade", lambda e: float(e["max_crs_grade"] >= 1)),
    ("crs_grade3plus", "CRS of grade 3 or higher", lambda e: float(e["max_crs_grade"] >= 3)),
    ("icans_any", "ICANS of any grade", lambda e: float(e["max_icans_grade"] >= 1)),
    ("icans_grade3plus", "ICANS of grade 3 or higher", lambda e: float(e["max_icans_grade"] >= 3)),
    ("interrupted", "infusion interrupted at least once", lambda e: float(e["interruptions"] >= 1)),
    ("stopped", "infusion stopped for good", lambda e: e["stopped"]),
    ("neurotox_event", "neurotoxicity event (index threshold)", lambda e: e["neurotox_event"]),
    ("cr_2_cycles", "CR within two cycles (assessments)", lambda e: e["cr_2_cycles"]),
    ("mrd_negative_cycle1", "flow MRD negative after cycle 1", lambda e: e["mrd_negative_cycle1"]),
    ("rfs_event", "relapse after CR (assessments)", lambda e: e["rfs_event"]),
    ("relapse_cd19neg_assessed", "CD19-negative relapse (assessments)", lambda e: e["relapse_cd19neg_assessed"]),
)
"""Cohort rates: (name, meaning, patient endpoints -> 0/1)."""

DISTRIBUTIONS = ("marrow_blast_fraction_assessed", "max_crs_grade", "crs_onset_day", "crs_days",
                 "max_icans_grade", "icans_onset_day", "interruptions", "max_neurotox_index",
                 "b_depletion_day", "t_expansion_fold")
"""Endpoints summarised by median and quartiles."""


def _value_at(time_h: np.ndarray, values: np.ndarray, at_h: float) -> float:
    """The last recorded value at or before `at_h`."""
    index = int(np.searchsorted(time_h, at_h + 1e-9, side="right")) - 1
    return float(values[max(index, 0)])


def _first_time(time_h: np.ndarray, condition: np.ndarray) -> float:
    hits = np.flatnonzero(condition)
    return float(time_h[hits[0]]) if hits.size else math.nan


def _days_with(time_h: np.ndarray, condition: np.ndarray) -> float:
    """Days during which the condition holds, each grid point counting until the next."""
    held = np.diff(time_h, append=time_h[-1])
    return float(held[condition].sum()) / 24.0


def _share(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def course_endpoints(assessments: Mapping[str, np.ndarray] | None, end_h: float,
                     rules: EndpointRules) -> dict[str, float]:
    """The endpoints read from the marrow assessments table (NaN for a run without one).

    `assessments` has the columns of the run file's ``events/assessments`` (``response``
    coded as in blinasim.assays.RESPONSES); `end_h` is the end of the run (censoring).
    """
    from blinasim.assays import RESPONSES
    nan = math.nan
    if assessments is None or len(assessments.get("time_h", ())) == 0:
        return {"cr_2_cycles": nan, "mrd_negative_cycle1": nan, "rfs_day": nan, "rfs_event": nan,
                "relapse_cd19neg_assessed": nan}
    t = np.asarray(assessments["time_h"], dtype=float)
    cycle = np.asarray(assessments["cycle"], dtype=int)
    response = np.asarray(assessments["response"], dtype=int)
    cr = response == RESPONSES.index("complete_remission")
    relapse = response == RESPONSES.index("relapse")
    first_cycle = np.flatnonzero(cycle == 1)
    first_cr, first_relapse = _first_time(t, cr), _first_time(t, relapse)
    relapse_share = (float(np.asarray(assessments["cd19_negative_share"])[np.flatnonzero(relapse)[0]])
                     if relapse.any() else nan)
    return {
        "cr_2_cycles": float(np.any(cr & (cycle <= 2))),
        "mrd_negative_cycle1": (float(np.asarray(assessments["flow_mrd"])[first_cycle[0]] == 0.0)
                                if first_cycle.size else nan),
        "rfs_day": ((first_relapse if relapse.any() else end_h) - first_cr) / 24.0 if cr.any() else nan,
        "rfs_event": float(relapse.any()) if cr.any() else nan,
        "relapse_cd19neg_assessed": float(relapse_share >= rules.cd19neg_share) if relapse.any() else nan,
    }


def times_done(interventions: Mapping[str, np.ndarray] | None, action: str) -> float:
    """How often `action` is in a run's interventions table (None: the run had no
    interventions, so none)."""
    if interventions is None:
        return 0.0
    return float(np.count_nonzero(np.asarray(interventions["action"]) == ACTIONS.index(action)))


def evaluate(series: Mapping[str, np.ndarray], rules: EndpointRules,
             assessments: Mapping[str, np.ndarray] | None = None,
             interventions: Mapping[str, np.ndarray] | None = None) -> dict[str, float]:
    """Every endpoint of one patient (0/1 for yes/no, NaN where a rule has no value), from
    its series and, when the run has them, its marrow assessments and interventions tables.

    Raises ValueError when the series end before the assessment day.
    """
    t = np.asarray(series["time_h"], dtype=float)
    assess_h = (rules.assessment_day - 1.0) * 24.0
    if t[-1] < assess_h - 1e-9:
        raise ValueError(f"the series end at {t[-1] / 24.0:g} days, before the assessment on "
                         f"day {rules.assessment_day:g}")
    blast = np.asarray(series["marrow_blast_fraction"], dtype=float)
    assessed = _value_at(t, blast, assess_h)
    cr = assessed < rules.cr_blast_fraction
    after = (t > assess_h + 1e-9) & (blast >= rules.relapse_blast_fraction)
    relapse_h = _first_time(t, after) if cr else math.nan
    blasts = np.asarray(series["blasts"], dtype=float)
    cd19neg = np.asarray(series["blasts_cd19neg"], dtype=float)
    relapse_cd19neg_share = (_share(_value_at(t, cd19neg, relapse_h), _value_at(t, blasts, relapse_h))
                             if math.isfinite(relapse_h) else math.nan)
    b = np.asarray(series["blood_b_per_ul"], dtype=float)
    t_cells = np.asarray(series["blood_t_per_ul"], dtype=float)
    window = t >= rules.t_expansion_from_day * 24.0 - 1e-9
    peak = int(np.argmax(t_cells[window])) if window.any() else -1
    neurotox = float(np.max(series["neurotox_index"]))
    crs = np.asarray(series["crs_grade"], dtype=float)
    icans = np.asarray(series["icans_grade"], dtype=float)
    return course_endpoints(assessments, float(t[-1]), rules) | {
        "cr": float(cr),
        "mrd_response": float(assessed < rules.mrd_blast_fraction),
        "marrow_blast_fraction_assessed": assessed,
        "relapse": float(math.isfinite(relapse_h)),
        "relapse_day": relapse_h / 24.0,
        "cd19neg_relapse": float(relapse_cd19neg_share >= rules.cd19neg_share),
        "cd19neg_share_end": _share(cd19neg[-1], blasts[-1]),
        "max_crs_grade": float(np.max(crs)),
        "crs_onset_day": _first_time(t, crs >= 1) / 24.0,
        "crs_days": _days_with(t, crs >= 1),
        "max_icans_grade": float(np.max(icans)),
        "icans_onset_day": _first_time(t, icans >= 1) / 24.0,
        "icans_days": _days_with(t, icans >= 1),
        "interruptions": times_done(interventions, "interrupt"),
        "stopped": float(times_done(interventions, "stop") > 0),
        "max_neurotox_index": neurotox,
        "neurotox_event": float(neurotox >= rules.neurotox_event_index),
        "b_depletion_day": _first_time(t, b < rules.b_depleted_per_ul) / 24.0,
        "t_expansion_fold": (_share(float(t_cells[window][peak]), float(t_cells[0])) if peak >= 0 else math.nan),
        "t_expansion_day": float(t[window][peak]) / 24.0 if peak >= 0 else math.nan,
    }


# --------------------------------------------------------------------------- cohort summary

def wilson_interval(events: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default); (NaN, NaN) for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    p = events / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if events == 0 else max(0.0, centre - half)  # exact bounds at the extremes,
    high = 1.0 if events == n else min(1.0, centre + half)  # free of rounding
    return low, high


@dataclass(frozen=True)
class Rate:
    name: str
    meaning: str
    events: int
    n: int
    rate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Spread:
    name: str
    n: int
    median: float
    q1: float
    q3: float


def summarise(endpoints: list[Mapping[str, float]]) -> tuple[list[Rate], list[Spread]]:
    """Rates with Wilson 95% intervals and medians with quartiles over the patients given."""
    rates = []
    for name, meaning, rule in RATES:
        events = sum(int(rule(e) == 1.0) for e in endpoints)
        n = len(endpoints)
        low, high = wilson_interval(events, n)
        rates.append(Rate(name, meaning, events, n, events / n if n else math.nan, low, high))
    spreads = []
    for name in DISTRIBUTIONS:
        values = np.array([e[name] for e in endpoints], dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            q1, median, q3 = np.percentile(values, [25.0, 50.0, 75.0])
        else:
            q1 = median = q3 = math.nan
        spreads.append(Spread(name, int(values.size), float(median), float(q1), float(q3)))
    return rates, spreads
