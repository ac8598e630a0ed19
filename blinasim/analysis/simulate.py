"""One simulation of a parameter point, and the read-outs computed from its series.

`simulate` is what Dask workers run for both analyses. It needs only a
:class:`~blinasim.analysis.spec.ModelRef` (the scenario travels as resolved YAML text),
the parameter values and a seed, so it runs on any machine with blinasim installed.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from blinasim.analysis.spec import ModelRef, Readout, format_value
from blinasim.analysis.toys import TOYS


def simulate(model: ModelRef, values: Mapping[str, float], seed: int,
             overrides: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The series (``time_h`` and the model's needed observables) of one run; `overrides`
    (a cohort patient's) come before the parameter values, which win."""
    if model.kind == "toy":
        toy = TOYS[model.name]
        return toy.function(toy.defaults | dict(model.fixed) | dict(values), seed)
    from blinasim.model import BlinaModel
    from blinasim.run import record_every_steps
    from blinasim.scenario import load_scenario_text
    overrides = [*overrides, *(f"{path}={format_value(v, path in model.whole)}" for path, v in values.items())]
    loaded = load_scenario_text(model.base_yaml, f"{model.name} (analysis point)", overrides)
    sim = BlinaModel(loaded.scenario, seed=seed, threads=1)
    every = record_every_steps(sim)
    stop_min = model.stop_h * 60.0
    rows, times = [sim.observables()], [0.0]
    while not sim.finished and sim.time_min < stop_min - 1e-9:
        sim.step()
        if sim.steps % every == 0 or sim.finished:
            sim.drain_events()
            times.append(sim.time_min / 60.0)
            rows.append(sim.observables())
    out = {"time_h": np.array(times)}
    out.update({name: np.array([row[name] for row in rows], dtype=float) for name in model.observables})
    return out


def _at(t: np.ndarray, y: np.ndarray, at_h: float) -> float:
    """The last recorded value at or before `at_h`."""
    index = int(np.searchsorted(t, at_h + 1e-9, side="right")) - 1
    return float(y[max(index, 0)])


def readout_value(readout: Readout, series: Mapping[str, np.ndarray], model: ModelRef,
                  at_h: float | None = None) -> float:
    """The read-out of one run; `at_h` (a data row's time) replaces the read-out's own."""
    if readout.statistic == "endpoint":
        from blinasim.cohort.endpoints import evaluate
        return float(evaluate(series, model.rules)[readout.endpoint])
    t = np.asarray(series["time_h"], dtype=float)
    y = np.asarray(series[readout.observable], dtype=float)
    stat = readout.statistic
    if stat == "value":
        when = readout.at_h if at_h is None or math.isnan(at_h) else at_h
        x = _at(t, y, when)
    elif stat == "final":
        x = float(y[-1])
    else:
        end = t[-1] if math.isnan(readout.to_h) else readout.to_h
        inside = (t >= readout.from_h - 1e-9) & (t <= end + 1e-9)
        if not inside.any():
            raise ValueError(f"no record between {readout.from_h:g} and {end:g} h")
        tw, yw = t[inside], y[inside]
        if stat == "peak":
            x = float(yw.max())
        elif stat == "trough":
            x = float(yw.min())
        elif stat == "auc":
            x = float(np.sum((yw[1:] + yw[:-1]) * np.diff(tw)) / 2.0)
        else:  # mean
            x = float(yw.mean())
    start = float(y[0])
    if readout.transform == "fold":
        return x / start if start else math.nan
    if readout.transform == "change":
        return x / start - 1.0 if start else math.nan
    if readout.transform == "loss":
        return 1.0 - x / start if start else math.nan
    if readout.transform == "log10":
        return math.log10(x) if x > 0 else math.nan
    return x


@dataclass
class RunResult:
    """One task's outcome: the read-outs of one run, or its error."""
    key: tuple
    ok: bool
    values: dict[str, float] = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0


def run_point(key: tuple, model: ModelRef, values: Mapping[str, float], seed: int,
              readouts: Mapping[str, Readout], overrides: tuple[str, ...] = (), problem: str = "") -> RunResult:
    """Simulate and compute every read-out; errors come back as a result, never raised."""
    started = time.perf_counter()
    try:
        if problem:
            raise ValueError(problem)
        series = simulate(model, values, seed, overrides)
        out = {name: readout_value(r, series, model) for name, r in readouts.items()}
    except Exception as exc:  # noqa: BLE001 - one failing point must not stop the analysis
        lines = str(exc).splitlines()
        return RunResult(key, False, error=f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": "),
                         wall_s=time.perf_counter() - started)
    return RunResult(key, True, out, wall_s=time.perf_counter() - started)


def run_points(batch: list, model: ModelRef, readouts: Mapping[str, Readout]) -> list[RunResult]:
    """`run_point` for each (key, values, seed, overrides, problem) of a batch (toys run
    hundreds per task)."""
    return [run_point(key, model, values, seed, readouts, overrides, problem)
            for key, values, seed, overrides, problem in batch]


BATCH = {"toy": 250, "scenario": 1}
"""Runs per Dask task: a toy takes microseconds, a simulation seconds."""


def seed_of(root: int, *key: int) -> int:
    """A 63-bit seed for the stream `key` of the analysis seed `root` (numpy SeedSequence)."""
    words = np.random.SeedSequence(root, spawn_key=tuple(int(k) for k in key)).generate_state(2, np.uint32)
    return ((int(words[0]) << 32) | int(words[1])) & (2**63 - 1)
