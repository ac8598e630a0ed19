"""One virtual patient: its scenario and seed, its run, its summary series and endpoints.

`run_patient` is what a Dask worker executes. It needs nothing but its `PatientTask`
(the base scenario travels as resolved YAML text), so it runs on any machine with blinasim,
and it never raises: a failing patient comes back as a result carrying its error.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from blinasim.cohort.covariates import patient_overrides, patient_seed, sample_covariates
from blinasim.cohort.endpoints import SERIES_NEEDED, EndpointRules, evaluate
from blinasim.compartments import build_geometry
from blinasim.model import BlinaModel
from blinasim.run import record_every_steps
from blinasim.scenario import load_scenario_text
from blinasim.schema import CELL_KINDS

SERIES = ("drug_pg_per_ml", "blood_b_per_ul", "blood_t_per_ul", "marrow_blast_fraction", "blasts",
          "blasts_cd19neg", "kills_cumulative", "il6_pg_per_ml", "body_temperature_c", "crs_grade", "icans_grade",
          "neurotox_index")
"""Observables kept in the cohort file for every patient, on the cohort's series grid."""


@dataclass(frozen=True)
class PatientTask:
    """Everything a worker needs to simulate patient `index`."""
    index: int
    seed: int
    overrides: tuple[str, ...]
    base_yaml: str
    series_every_h: float
    rules: EndpointRules
    problem: str = ""  # a covariate that could not be drawn: the patient fails with this


@dataclass
class PatientResult:
    index: int
    ok: bool
    error: str = ""
    endpoints: dict[str, float] = field(default_factory=dict)
    series: dict[str, np.ndarray] = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass(frozen=True)
class PatientDraw:
    """A patient's seed, covariate values, derived values and scenario overrides."""
    index: int
    seed: int
    covariates: dict[str, float]
    derived: dict[str, float]
    overrides: tuple[str, ...]
    problem: str


def draw_patient(spec, index: int) -> PatientDraw:
    """Patient `index` of a cohort (see blinasim.cohort.covariates for the seeding)."""
    seed = patient_seed(spec.settings.seed, index)
    try:
        values = sample_covariates(spec.distributions, spec.settings.seed, index)
    except ValueError as exc:
        return PatientDraw(index, seed, {}, {}, (), str(exc))
    overrides, derived = patient_overrides(spec.base.scenario, values, spec.settings.dosing)
    return PatientDraw(index, seed, values, derived, tuple(overrides), "")


def initial_cells(spec, draw: PatientDraw) -> float:
    """Cells the patient starts with: densities (base, or as the overrides set them) x volumes.

    The run time of a patient grows with it, so the longest patients can be started first.
    """
    base = spec.base.scenario
    density = {(name, kind): c.cells_per_ul.get(kind) for name, c in base.compartments.items()
               for kind in CELL_KINDS}
    for override in draw.overrides:
        path, _, value = override.partition("=")
        parts = path.split(".")
        if parts[0] == "compartments" and parts[2] == "cells_per_ul":
            density[(parts[1], parts[3])] = float(value)
    volume = dict(zip(base.compartments, build_geometry(base).volume_ul))
    return float(sum(d * volume[name] for (name, _), d in density.items()))


def patient_task(spec, draw: PatientDraw) -> PatientTask:
    return PatientTask(draw.index, draw.seed, draw.overrides, spec.base.resolved_yaml,
                       spec.settings.series_every_h, spec.settings.endpoints, draw.problem)


def series_times_h(duration_h: float, every_h: float) -> np.ndarray:
    """The cohort file's time grid: 0, every_h, ... up to the end (the end always included)."""
    count = int(np.floor(duration_h / every_h + 1e-9))
    times = np.arange(count + 1, dtype=float) * every_h
    return times if abs(times[-1] - duration_h) < 1e-9 else np.append(times, duration_h)


def simulate_patient(task: PatientTask) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                 dict[str, dict[str, np.ndarray]]]:
    """Run the patient; returns (series on the cohort grid, series at every recorded row,
    the run's `assessments` and `interventions` tables, where it has them)."""
    loaded = load_scenario_text(task.base_yaml, f"cohort patient {task.index}", task.overrides)
    model = BlinaModel(loaded.scenario, seed=task.seed, threads=1)
    record_every = record_every_steps(model)
    names = tuple(dict.fromkeys(SERIES + SERIES_NEEDED))

    def needed() -> dict[str, float]:  # only the series kept: a course records ~56,000 rows
        row = model.observables()
        return {name: row[name] for name in names}
    rows = [needed()]
    times = [0.0]
    kept: dict[str, list[dict[str, np.ndarray]]] = {"assessments": [], "interventions": []}
    while not model.finished:
        model.step()
        if model.steps % record_every == 0 or model.finished:
            events = model.drain_events()  # the kill log is not kept; drained so it does not grow
            for name, chunks in kept.items():
                if name in events:
                    chunks.append(events[name])
            times.append(model.time_min / 60.0)
            rows.append(needed())
    full = {"time_h": np.array(times)}
    full.update({name: np.array([row[name] for row in rows], dtype=float) for name in names})
    grid = series_times_h(loaded.scenario.duration_h, task.series_every_h)
    at = np.searchsorted(full["time_h"], grid - 1e-9)
    tables = {name: {column: np.concatenate([c[column] for c in chunks]) for column in chunks[0]}
              for name, chunks in kept.items() if chunks}
    return {name: full[name][at] for name in SERIES}, full, tables


def run_patient(task: PatientTask) -> PatientResult:
    """Simulate one patient and evaluate its endpoints; errors are returned, not raised."""
    started = time.perf_counter()
    try:
        if task.problem:
            raise ValueError(task.problem)
        series, full, tables = simulate_patient(task)
        endpoints = evaluate(full, task.rules, tables.get("assessments"), tables.get("interventions"))
    except Exception as exc:  # noqa: BLE001 - a patient's failure must not stop the cohort
        lines = str(exc).splitlines()
        message = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        return PatientResult(task.index, False, message, wall_s=time.perf_counter() - started)
    return PatientResult(task.index, True, "", endpoints, series, time.perf_counter() - started)
