"""`blinasim calibrate SPEC.yaml DATA.csv`: ABC-SMC calibration with pyABC on Dask (docs/calibration.md).

Chosen parameters (any numeric scenario fields, or a toy's) get priors; the data are rows
of read-outs under named conditions with their standard deviations. A particle's distance
is sqrt(sum(((simulated - measured) / sd)^2)) over the rows. pyABC's ABC-SMC runs on the
cohort's Dask cluster through :class:`SeededDaskSampler`, a DaskDistributedSampler that
seeds every evaluation from (spec seed, generation, evaluation number), so that a rerun
gives the same populations. pyABC's History database (OUT.db) is the resumable record;
OUT.h5 holds the populations, the posterior predictive and the spec, data and versions.
"""
from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import io
import json
import logging
import math
import pathlib
import platform
import random
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import h5py
import numpy as np

from blinasim import __version__
from blinasim.analysis.execute import AnalysisInterrupted, Dask, default_workers, stream
from blinasim.analysis.simulate import BATCH, readout_value, seed_of, simulate
from blinasim.analysis.spec import (Base, Parameter, Readout, build_settings, format_value, identity, load_base,
                                    load_parameters, load_readouts, model_ref, number, observables_needed,
                                    read_spec, stop_time)
from blinasim.scenario import ScenarioError, describe_value, error_at, find_yaml, load_scenario_text
from blinasim.schema import param

FORMAT = "blinasim-calibration"
FORMAT_VERSION = 1
_STR = h5py.string_dtype()
PREDICTIVE_STREAM = 2**31
"""Seed stream (of the spec seed) of the posterior-predictive draws, apart from ABC's."""


@dataclass(frozen=True)
class CalibrationSettings:
    """The plain fields of a calibration spec."""
    name: str = param("", "", None, None, "Short name (default: the file name)", "")
    description: str = param("", "", None, None, "What the calibration is for", "")
    seed: int = param(1, "", 0, 2**63 - 1, "Seed of every ABC evaluation and of the predictive draws", "")
    data: str = param("", "", None, None, "Default data file (CSV, relative to the spec); DATA.csv on the command line replaces it", "")
    population: int = param(100, "", 2, 1_000_000, "Particles per generation", "")
    generations: int = param(5, "", 1, 10_000, "Generations to run (more on a rerun continue the same calibration)", "")
    minimum_epsilon: float = param(0.0, "", 0.0, None, "Stop early when the acceptance threshold falls to this distance", "")
    replicates: int = param(1, "", 1, 10_000, "Seeds per condition averaged into a particle's read-outs", "")
    predictive_draws: int = param(40, "", 0, 100_000, "Posterior draws simulated for the posterior predictive", "")


@dataclass(frozen=True)
class DataRow:
    readout: str
    condition: str
    time_h: float
    value: float
    sd: float
    line: int
    x: float  # where the row is drawn: its time, or its condition's varied value


@dataclass(frozen=True)
class CalibrationSpec:
    settings: CalibrationSettings
    file: str
    source_text: str
    base: Base
    parameters: dict[str, Parameter]
    readouts: dict[str, Readout]
    conditions: dict[str, tuple[str, ...]]
    truth: dict[str, float]

    @property
    def name(self) -> str:
        return self.settings.name


def load_calibration(source) -> CalibrationSpec:
    """Load and check a calibration spec (a file, or a bundled example by name)."""
    root, text, file = read_spec(source, "calibration spec")
    entries = dict(root.value)
    base = load_base(entries, root, file)
    nodes = {key: entries.pop(key, None) for key in ("parameters", "readouts", "conditions", "truth")}
    settings = build_settings(CalibrationSettings, root, entries)
    settings = dataclasses.replace(settings, name=settings.name or pathlib.Path(file).stem)
    if nodes["parameters"] is None:
        raise error_at(root, "parameters", "required: the parameters to calibrate with their priors")
    if nodes["readouts"] is None:
        raise error_at(root, "readouts", "required: the read-outs the data measure")
    parameters = load_parameters(nodes["parameters"], base)
    readouts = load_readouts(nodes["readouts"], base, times_from_data=True)
    conditions = _conditions(nodes["conditions"], base, parameters)
    truth = {}
    if nodes["truth"] is not None:
        if not isinstance(nodes["truth"].value, dict):
            raise error_at(nodes["truth"], "truth", "expected a mapping of calibrated parameters to known values")
        for key, child in nodes["truth"].value.items():
            if key not in parameters:
                raise error_at(child, f"truth.{key}", f"not a calibrated parameter ({', '.join(parameters)})")
            truth[key] = number(child, f"truth.{key}")
    return CalibrationSpec(settings, file, text, base, parameters, readouts, conditions, truth)


def _conditions(node, base: Base, parameters) -> dict[str, tuple[str, ...]]:
    if node is None:
        return {"": ()}
    if not isinstance(node.value, dict) or not node.value:
        raise error_at(node, "conditions", f"expected a mapping of condition names to field values, got "
                                           f"{describe_value(node.value)}")
    found = {}
    for name, child in node.value.items():
        where = f"conditions.{name}"
        if not isinstance(child.value, dict):
            raise error_at(child, where, f"expected a mapping of fields to values, got {describe_value(child.value)}")
        overrides = []
        for path, value_node in child.value.items():
            if path not in base.leaves:
                raise error_at(value_node, f"{where}.{path}", "not a numeric field of the model")
            if path in parameters:
                raise error_at(value_node, f"{where}.{path}", "is a calibrated parameter; a condition cannot fix it")
            value = number(value_node, f"{where}.{path}")
            whole = isinstance(base.leaves[path], int)
            if whole and not value.is_integer():
                raise error_at(value_node, f"{where}.{path}", f"expected a whole number, got {value:g}")
            overrides.append((path, int(value) if whole else value))
        if base.kind == "scenario":
            try:
                load_scenario_text(base.base_yaml, "spec", [f"{p}={format_value(v, isinstance(v, int))}" for p, v in overrides])
            except ScenarioError as err:
                raise error_at(child, where, f"the scenario refuses it: {err.path}: {err.message}") from None
        found[name] = tuple(f"{p}={v!r}" for p, v in overrides)
    return found


# --------------------------------------------------------------------------- data

DATA_COLUMNS = ("readout", "condition", "time_h", "value", "sd")


def load_data(spec: CalibrationSpec, source=None) -> tuple[list[DataRow], str, str]:
    """The data rows, the CSV text and its file name; problems are FILE:LINE: column: message."""
    if source is None:
        if not spec.settings.data:
            raise ScenarioError(spec.file, 1, "data", "no data file: give DATA.csv on the command line or data: in the spec")
        found = find_yaml(spec.settings.data, pathlib.Path(spec.file).parent, bundled=[])
        source = found if found is not None else pathlib.Path(spec.file).parent / spec.settings.data
    file = str(source)
    try:
        text = pathlib.Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(file, 1, "(file)", f"cannot read the data file: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_data(spec, text, file), text, file


def parse_data(spec: CalibrationSpec, text: str, file: str) -> list[DataRow]:
    rows = list(csv.reader(io.StringIO(text)))
    numbered = [(i + 1, row) for i, row in enumerate(rows) if row and not row[0].lstrip().startswith("#")]
    if not numbered:
        raise ScenarioError(file, 1, "(file)", "empty: expected a header line " + ",".join(DATA_COLUMNS))
    header_line, header = numbered[0]
    header = [h.strip() for h in header]
    for column in ("readout", "value", "sd"):
        if column not in header:
            raise ScenarioError(file, header_line, "(header)", f"missing column {column!r}; columns are "
                                                               f"{', '.join(DATA_COLUMNS)} (condition and time_h optional)")
    for column in header:
        if column not in DATA_COLUMNS:
            raise ScenarioError(file, header_line, "(header)", f"unknown column {column!r}; expected {', '.join(DATA_COLUMNS)}")
    data = []
    duration = spec.base.duration_h
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise ScenarioError(file, line, "(row)", f"expected {len(header)} values, got {len(row)}")
        cells = dict(zip(header, (cell.strip() for cell in row)))
        readout = cells["readout"]
        if readout not in spec.readouts:
            raise ScenarioError(file, line, "readout", f"{readout!r} is not a read-out of the spec ({', '.join(spec.readouts)})")
        condition = cells.get("condition", "")
        if condition not in spec.conditions:
            known = ", ".join(c for c in spec.conditions if c) or "none (leave the column empty)"
            raise ScenarioError(file, line, "condition", f"{condition!r} is not a condition of the spec ({known})")
        value = _cell(cells, "value", file, line)
        sd = _cell(cells, "sd", file, line)
        if sd <= 0:
            raise ScenarioError(file, line, "sd", f"must be more than 0, got {sd:g}")
        r = spec.readouts[readout]
        time_h = _cell(cells, "time_h", file, line) if cells.get("time_h", "") else math.nan
        if r.statistic == "value" and math.isnan(r.at_h) and math.isnan(time_h):
            raise ScenarioError(file, line, "time_h", f"read-out {readout} is a value at a time: give time_h")
        if math.isfinite(time_h) and not 0 <= time_h <= duration + 1e-9:
            raise ScenarioError(file, line, "time_h", f"{time_h:g} h is outside the run (0 to {duration:g} h)")
        data.append(DataRow(readout, condition, time_h, value, sd, line, math.nan))
    if not data:
        raise ScenarioError(file, header_line, "(file)", "no data rows after the header")
    return _with_x(spec, data)


def _cell(cells: dict, column: str, file: str, line: int) -> float:
    try:
        value = float(cells.get(column, ""))
    except ValueError:
        raise ScenarioError(file, line, column, f"expected a number, got {cells.get(column, '')!r}") from None
    if not math.isfinite(value):
        raise ScenarioError(file, line, column, f"expected a finite number, got {cells[column]!r}")
    return value


def _with_x(spec: CalibrationSpec, data: list[DataRow]) -> list[DataRow]:
    """Each row's position on the predictive figure: its time for a time course, else the
    value its condition gives the one field the conditions vary (or the condition's number)."""
    varied = _varied_field(spec)
    names = list(spec.conditions)
    out = []
    for row in data:
        times = {r.time_h for r in data if r.readout == row.readout and r.condition == row.condition}
        if len(times) > 1 or varied is None:
            x = row.time_h if math.isfinite(row.time_h) else float(names.index(row.condition))
        else:
            x = dict(o.split("=", 1) for o in spec.conditions[row.condition]).get(varied)
            x = float(x) if x is not None else float(names.index(row.condition))
        out.append(dataclasses.replace(row, x=x))
    return out


def _varied_field(spec: CalibrationSpec) -> str | None:
    fields = {tuple(o.split("=", 1)[0] for o in overrides) for overrides in spec.conditions.values()}
    return fields.pop()[0] if len(fields) == 1 and len(next(iter(fields), ())) == 1 else None


# --------------------------------------------------------------------------- the ABC model

LOG_KINDS = ("loguniform", "lognormal")


def abc_name(parameter: Parameter) -> str:
    return f"log10({parameter.path})" if parameter.kind in LOG_KINDS else parameter.path


def to_value(parameter: Parameter, x: float) -> float:
    """A model value from its ABC coordinate (log10 for log-scale priors), rounded when whole."""
    return parameter.rounded(10.0 ** x if parameter.kind in LOG_KINDS else float(x))


def prior(parameters: dict[str, Parameter]):
    """The pyABC prior: each parameter's distribution on its ABC coordinate."""
    from pyabc import RV, Distribution
    rvs = {}
    for p in parameters.values():
        a = dict(p.args)
        if p.kind == "uniform":
            rv = RV("uniform", a["low"], a["high"] - a["low"])
        elif p.kind == "loguniform":
            lo, hi = math.log10(a["low"]), math.log10(a["high"])
            rv = RV("uniform", lo, hi - lo)
        elif p.kind == "triangular":
            rv = RV("triang", (a["mode"] - a["low"]) / (a["high"] - a["low"]), loc=a["low"], scale=a["high"] - a["low"])
        else:
            if p.kind == "normal":
                loc, scale, lo, hi = a["mean"], a["sd"], p.low, p.high
            else:
                loc, scale = math.log10(a["median"]), a["sigma_log"] / math.log(10.0)
                lo = math.log10(p.low) if p.low > 0 else -math.inf
                hi = math.log10(p.high) if math.isfinite(p.high) else math.inf
            if math.isfinite(lo) or math.isfinite(hi):
                rv = RV("truncnorm", (lo - loc) / scale, (hi - loc) / scale, loc=loc, scale=scale)
            else:
                rv = RV("norm", loc, scale)
        rvs[abc_name(p)] = rv
    return Distribution(**rvs)


@dataclass(frozen=True)
class RowModel:
    """Simulates every data row of one parameter point: each condition (and replicate) once."""
    model: object  # ModelRef
    parameters: tuple  # Parameter, in spec order
    conditions: tuple  # (name, overrides)
    readouts: tuple  # (name, Readout)
    rows: tuple  # (readout, condition, time_h)
    replicates: int

    def simulate_rows(self, values: dict[str, float], seed: int) -> np.ndarray:
        readouts = dict(self.readouts)
        out = np.full(len(self.rows), math.nan)
        sums = np.zeros(len(self.rows))
        for c, (condition, overrides) in enumerate(self.conditions):
            mine = [i for i, row in enumerate(self.rows) if row[1] == condition]
            if not mine:
                continue
            point = dict(values) | {o.split("=", 1)[0]: float(o.split("=", 1)[1]) for o in overrides}
            for r in range(self.replicates):
                series = simulate(self.model, point, seed_of(seed, c, r))
                for i in mine:
                    sums[i] += readout_value(readouts[self.rows[i][0]], series, self.model, self.rows[i][2])
            out[mine] = sums[mine] / self.replicates
        return out

    def __call__(self, abc_parameters) -> dict:
        """pyABC's model: the global numpy stream (seeded per evaluation) gives the run's seed."""
        values = {p.path: to_value(p, abc_parameters[abc_name(p)]) for p in self.parameters}
        seed = int(np.random.randint(0, 2**62, dtype=np.int64))
        try:
            return {"y": self.simulate_rows(values, seed)}
        except Exception:  # noqa: BLE001 - a point the model cannot run is infinitely far
            return {"y": np.full(len(self.rows), math.nan)}


@dataclass(frozen=True)
class ZDistance:
    """sqrt(sum(((simulated - measured) / sd)^2)); a NaN read-out is infinitely far."""
    sd: tuple

    def __call__(self, x: dict, x0: dict) -> float:
        z = (np.asarray(x["y"], dtype=float) - np.asarray(x0["y"], dtype=float)) / np.asarray(self.sd)
        return float(np.sqrt(np.sum(z * z))) if np.all(np.isfinite(z)) else math.inf


def row_model(spec: CalibrationSpec, data: list[DataRow]) -> RowModel:
    readouts = [spec.readouts[row.readout] for row in data]
    times = [row.time_h for row in data if math.isfinite(row.time_h)]
    whole_conditions = {o.split("=", 1)[0] for ov in spec.conditions.values() for o in ov
                        if isinstance(spec.base.leaves.get(o.split("=", 1)[0]), int)}
    model = model_ref(spec.base, spec.parameters, stop_time(readouts, times), observables_needed(readouts))
    model = dataclasses.replace(model, whole=model.whole | frozenset(whole_conditions))
    return RowModel(model, tuple(spec.parameters.values()), tuple(spec.conditions.items()),
                    tuple(spec.readouts.items()), tuple((r.readout, r.condition, r.time_h) for r in data),
                    spec.settings.replicates)


# --------------------------------------------------------------------------- seeded sampling on Dask

def _seeded_batch(seed: int, t: int, simulate_one_pickle: bytes, batch_size: int, job_ids: list[int]):
    """pyABC's remote job, with every evaluation seeded from (seed, generation, evaluation number)
    instead of pyABC's fresh operating-system entropy."""
    import cloudpickle
    simulate_one = cloudpickle.loads(simulate_one_pickle)
    results = []
    for j in range(batch_size):
        state = np.random.SeedSequence(seed, spawn_key=(t + 1, job_ids[j])).generate_state(4)
        np.random.seed(state)
        random.seed(int(state[0]))
        result = simulate_one()
        results.append((result, result.accepted, job_ids[j]))
    return results


class _SeededClient:
    """What pyABC's sampler sees as its Dask client: submits the seeded job instead, and
    stops the analysis between submissions when a signal came (the stop flag)."""

    def __init__(self, client, sampler):
        self.client, self.sampler = client, sampler

    def submit(self, _function, simulate_one_pickle, batch_size, job_ids, **_):
        self.sampler.check_stop()
        return self.client.submit(_seeded_batch, self.sampler.seed, self.sampler.generation, simulate_one_pickle,
                                  batch_size, list(job_ids), pure=False)

    def ncores(self):
        self.sampler.check_stop()
        return self.client.nthreads()

    def close(self):
        """The cluster belongs to the command, which closes it."""


def seeded_sampler(client, seed: int, stop, batch_size: int = 1, report=None,
                   kept: str = "the generations done so far are stored"):
    """A pyABC DaskDistributedSampler whose results depend only on the seed (see the module text)."""
    from pyabc.sampler import DaskDistributedSampler

    class SeededDaskSampler(DaskDistributedSampler):
        def __init__(self):
            DaskDistributedSampler.__init__(self, dask_client=_SeededClient(client, self), default_pickle=True,
                                            batch_size=batch_size)
            self.seed, self.generation, self.stop_flag, self.report = seed, 0, stop, report
            self._appended = 0

        def check_stop(self):
            if self.stop_flag is not None and self.stop_flag.signum is not None:
                raise AnalysisInterrupted(self.stop_flag.signum, kept)

        def _create_empty_sample(self):
            sample = super()._create_empty_sample()
            self._appended = 0
            append = sample.append

            def counting(particle):
                self._appended += 1
                append(particle)
            sample.append = counting
            return sample

        def sample_until_n_accepted(self, n, simulate_one, t, **kwargs):
            self.generation = t
            sample = super().sample_until_n_accepted(n, simulate_one, t, **kwargs)
            # pyABC counts every evaluation started; the jobs in flight when the n-th
            # acceptance came depend on timing. Count those up to it, which the sample holds.
            self.nr_evaluations_ = self._appended
            if self.report is not None:
                self.report(t, n, self._appended)
            return sample

    return SeededDaskSampler()


# --------------------------------------------------------------------------- running

class CalibrationFileError(Exception):
    """An output that cannot be created or continued (one line, exit code 2)."""


def calibration_identity(spec: CalibrationSpec, data: list[DataRow]) -> str:
    s = spec.settings
    decisive = dataclasses.replace(s, name="", description="", data="", generations=1, minimum_epsilon=0.0,
                                   predictive_draws=0)
    return identity(FORMAT_VERSION, decisive, spec.parameters, spec.readouts, spec.conditions,
                    spec.base.kind, spec.base.name, spec.base.base_yaml, spec.base.fixed,
                    [(r.readout, r.condition, r.time_h, r.value, r.sd) for r in data])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _history_state(db: pathlib.Path, ident: str, force: bool):
    """(max_t, ok) of an existing History for this calibration; refuses another's."""
    if db.is_dir():
        raise CalibrationFileError(f"{db} is a directory, not a file name")
    if db.suffix == ".h5":
        raise CalibrationFileError(f"--out {db}: --out names the History database (e.g. NAME.db); "
                                   f"the summary NAME.h5 is written next to it")
    if not db.parent.is_dir():
        raise CalibrationFileError(f"{db}: directory {db.parent} does not exist")
    if force:
        for path in (db, db.with_suffix(".h5")):
            if path.exists():
                path.unlink()
    if not db.exists():
        return None
    from pyabc import History
    try:
        history = History(f"sqlite:///{db}")
        runs = history.all_runs()
        if not runs:
            raise ValueError("no run")
        history.id = runs[-1].id
        meta = ast.literal_eval(history.get_abc().json_parameters)
    except Exception:  # noqa: BLE001 - anything that is not our History
        raise CalibrationFileError(f"{db} exists and is not a blinasim calibration database; use --force "
                                   f"to replace it or another --out") from None
    if meta.get("identity") != ident:
        raise CalibrationFileError(f"{db} holds a different calibration (its spec, data, seed, population or model "
                                   f"differ); use --force to replace it or another --out")
    return history


def run_calibration(spec: CalibrationSpec, data: list[DataRow], data_text: str, out, *,
                    workers: int | None = None, scheduler: str | None = None, force: bool = False,
                    quiet: bool = False, command_line: str = "", data_file: str = "",
                    generations: int | None = None, stop=None, on_generation=None) -> pathlib.Path:
    """Run (or continue) the ABC-SMC into OUT.db, then write OUT.h5 with the posterior
    predictive. Returns the OUT.h5 path. `stop` replaces the signal flag and
    `on_generation(t, accepted, evaluations)` is called after each generation (tests)."""
    from blinasim.run import StopFlag
    db = pathlib.Path(out)
    ident = calibration_identity(spec, data)
    total = generations or spec.settings.generations
    import pyabc  # noqa: F401 - sets its loggers' levels on import; quieten them after
    for name in list(logging.root.manager.loggerDict):
        if name == "ABC" or name.startswith(("ABC.", "pyabc")):
            logging.getLogger(name).setLevel(logging.WARNING)
    with StopFlag() as flag:
        flag = stop or flag
        history = _history_state(db, ident, force)
        done_t = -1 if history is None else history.max_t
        dask = Dask(None if scheduler else (workers or default_workers()), scheduler)
        try:
            if done_t + 1 < total and not _converged(history, spec):
                _abc(spec, data, db, ident, history, total - (done_t + 1), dask, flag, quiet, on_generation)
            return write_summary(spec, data, data_text, data_file, db, ident, dask, flag, quiet, command_line)
        finally:
            dask.close()


def _converged(history, spec) -> bool:
    if history is None or history.max_t < 0:
        return False
    eps = history.get_all_populations()
    eps = eps[eps.t >= 0]
    return bool(len(eps)) and float(eps.epsilon.iloc[-1]) <= spec.settings.minimum_epsilon


def _abc(spec, data, db: pathlib.Path, ident: str, history, generations: int, dask, flag, quiet: bool,
         on_generation=None) -> None:
    from pyabc import ABCSMC
    from pyabc.populationstrategy import ConstantPopulationSize
    model = row_model(spec, data)
    observed = {"y": np.array([row.value for row in data])}
    started = time.perf_counter()

    def report(t, n, evaluations):
        if on_generation is not None:
            on_generation(t, n, evaluations)
        if not quiet:
            what = "prior sample (initial threshold)" if t < 0 else f"generation {t}"
            print(f"{what}: {n} accepted of {evaluations} evaluations ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)

    sampler = seeded_sampler(dask.client, spec.settings.seed, flag, BATCH[spec.base.kind] // 5 or 1, report,
                             f"the generations done so far are stored in {db}")
    abc = ABCSMC(model, prior(spec.parameters), ZDistance(tuple(row.sd for row in data)),
                 population_size=ConstantPopulationSize(spec.settings.population), sampler=sampler)
    if history is None:
        abc.new(f"sqlite:///{db}", observed, meta_info={"identity": ident, "name": spec.name,
                                                        "seed": spec.settings.seed, "blinasim": __version__})
    else:
        abc.load(f"sqlite:///{db}", history.id)
    abc.run(max_nr_populations=generations, minimum_epsilon=spec.settings.minimum_epsilon)


# --------------------------------------------------------------------------- the summary file

def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs) -> list[float]:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cdf = (np.cumsum(w) - 0.5 * w) / np.sum(w)
    return [float(np.interp(q, cdf, v)) for q in qs]


def write_summary(spec, data, data_text, data_file, db: pathlib.Path, ident: str, dask, flag, quiet,
                  command_line: str) -> pathlib.Path:
    """OUT.h5: attributes, data, every generation's population on the model's scale, the
    posterior summary and the posterior predictive (reused when nothing changed)."""
    from pyabc import History
    from blinasim.analysis.sensitivity import library_versions
    history = History(f"sqlite:///{db}")
    history.id = history.all_runs()[-1].id
    params = list(spec.parameters.values())
    pops = history.get_all_populations()
    pops = pops[pops.t >= 0].sort_values("t")
    populations = {}
    for t in pops.t:
        frame, w = history.get_distribution(m=0, t=int(t))
        values = np.column_stack([[to_value(p, x) for x in frame[abc_name(p)].to_numpy()] for p in params])
        distances = history.get_weighted_distances(t=int(t))["distance"].to_numpy()
        populations[int(t)] = (values, np.asarray(w, dtype=float), distances)
    last_t = max(populations)
    h5 = db.with_suffix(".h5")
    draws = spec.settings.predictive_draws
    predictive = _cached_predictive(h5, ident, last_t, draws)
    if predictive is None:
        predictive = _predictive(spec, data, populations[last_t], draws, dask, flag, quiet)
    with h5py.File(h5, "w", track_order=True) as f:
        f.attrs.update({
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": spec.name,
            "description": spec.settings.description, "identity": ident, "seed": spec.settings.seed,
            "spec_yaml": spec.source_text, "spec_file": spec.file, "data_csv": data_text, "data_file": data_file,
            "spec_resolved": json.dumps({"settings": dataclasses.asdict(spec.settings),
                                         "parameters": {k: p.describe() for k, p in spec.parameters.items()},
                                         "conditions": {k: list(v) for k, v in spec.conditions.items()},
                                         "readouts": {k: dataclasses.asdict(r) for k, r in spec.readouts.items()},
                                         "model": {"kind": spec.base.kind, "name": spec.base.name,
                                                   "set": dict(spec.base.fixed)}}, sort_keys=True),
            "base_scenario_yaml": spec.base.base_yaml, "history_db": str(db), "generations_done": len(populations),
            "blinasim_version": __version__, "library_versions": library_versions(), "command_line": command_line,
            "platform": platform.platform(), "created": _now(), "workers": dask.threads(),
        })
        d = f.create_group("data", track_order=True)
        for key in ("readout", "condition"):
            d.create_dataset(key, data=np.array([getattr(r, key) for r in data], dtype=object), dtype=_STR)
        for key in ("time_h", "value", "sd", "x"):
            d.create_dataset(key, data=np.array([getattr(r, key) for r in data], dtype=float))
        p = f.create_group("parameters", track_order=True)
        p.create_dataset("name", data=np.array([q.path for q in params], dtype=object), dtype=_STR)
        p.create_dataset("prior", data=np.array([q.describe() for q in params], dtype=object), dtype=_STR)
        p.create_dataset("log_scale", data=np.array([q.kind in LOG_KINDS for q in params], dtype=np.int8))
        p.create_dataset("support", data=np.array([q.support() for q in params]))
        p.create_dataset("truth", data=np.array([spec.truth.get(q.path, math.nan) for q in params]))
        g = f.create_group("generations", track_order=True)
        g.create_dataset("t", data=pops.t.to_numpy().astype(np.int64))
        g.create_dataset("epsilon", data=pops.epsilon.to_numpy().astype(float))
        g.create_dataset("evaluations", data=pops.samples.to_numpy().astype(np.int64))
        g.create_dataset("acceptance_rate", data=pops.particles.to_numpy() / pops.samples.to_numpy())
        pg = f.create_group("populations", track_order=True)
        for t, (values, w, dist) in populations.items():
            one = pg.create_group(str(t))
            one.create_dataset("values", data=values)
            one.create_dataset("weights", data=w)
            one.create_dataset("distances", data=dist)
        values, w, _ = populations[last_t]
        post = f.create_group("posterior", track_order=True)
        q = np.array([_weighted_quantiles(values[:, i], w, (0.025, 0.5, 0.975)) for i in range(len(params))])
        post.create_dataset("low", data=q[:, 0])
        post.create_dataset("median", data=q[:, 1])
        post.create_dataset("high", data=q[:, 2])
        post.attrs["interval"] = "central 95% of the last generation's weighted particles"
        pr = f.create_group("predictive", track_order=True)
        pr.create_dataset("draws", data=predictive[0])
        pr.create_dataset("seeds", data=predictive[1])
        pr.create_dataset("values", data=predictive[2])
        pr.attrs.update({"generation": last_t, "count": draws})
    return h5


def _cached_predictive(h5: pathlib.Path, ident: str, last_t: int, draws: int):
    try:
        with h5py.File(h5, "r") as f:
            if (f.attrs.get("identity") == ident and int(f["predictive"].attrs["generation"]) == last_t
                    and int(f["predictive"].attrs["count"]) == draws):
                return f["predictive/draws"][...], f["predictive/seeds"][...], f["predictive/values"][...]
    except (OSError, KeyError):
        pass
    return None


def _predictive(spec, data, population, draws: int, dask, flag, quiet):
    """`draws` particles resampled by weight from the last generation, each simulated at
    every data row with its own seed (streams PREDICTIVE_STREAM, i of the spec seed)."""
    values, w, _ = population
    k = len(spec.parameters)
    if draws == 0:
        return np.zeros((0, k)), np.zeros(0, dtype=np.int64), np.zeros((0, len(data)))
    rng = np.random.default_rng(np.random.SeedSequence(spec.settings.seed, spawn_key=(PREDICTIVE_STREAM,)))
    picks = rng.choice(len(w), size=draws, p=w / w.sum())
    chosen = values[picks]
    seeds = np.array([seed_of(spec.settings.seed, PREDICTIVE_STREAM, i) for i in range(draws)], dtype=np.int64)
    model = row_model(spec, data)
    names = [p.path for p in spec.parameters.values()]
    out = np.full((draws, len(data)), math.nan)
    if not quiet:
        print(f"posterior predictive: {draws} draws", file=sys.stderr, flush=True)

    def submit(client, i):
        return client.submit(model.simulate_rows, dict(zip(names, chosen[i].tolist())), int(seeds[i]), pure=False)

    def store(i, future):
        try:
            out[i] = future.result()
        except Exception:  # noqa: BLE001 - a draw the model cannot run stays NaN
            pass

    stream(dask, list(range(draws)), submit, store, flag,
           lambda: "the ABC generations are stored; the posterior predictive is simulated again")
    return chosen, seeds, out


# --------------------------------------------------------------------------- reading results

class CalibrationResult:
    """OUT.h5 read back, for the figures and for tests."""

    def __init__(self, path):
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CalibrationFileError(f"{path}: not a blinasim calibration file")
            self.attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            self.name = self.attrs["name"]
            self.parameter_names = list(f["parameters/name"].asstr()[...])
            support = f["parameters/support"][...]
            self.prior_support = {n: tuple(s) for n, s in zip(self.parameter_names, support)}
            self.log_scale = {n: bool(v) for n, v in zip(self.parameter_names, f["parameters/log_scale"][...])}
            self.truth = {n: float(v) for n, v in zip(self.parameter_names, f["parameters/truth"][...]) if np.isfinite(v)}
            self.generations = [int(t) for t in f["generations/t"][...]]
            self.epsilons = f["generations/epsilon"][...]
            self.acceptance = f["generations/acceptance_rate"][...]
            self._pops = {int(t): (g["values"][...], g["weights"][...], g["distances"][...])
                          for t, g in f["populations"].items()}
            self.low, self.median, self.high = (f[f"posterior/{k}"][...] for k in ("low", "median", "high"))
            d = f["data"]
            self.data = [DataRow(r, c, t, v, s, 0, x) for r, c, t, v, s, x in zip(
                d["readout"].asstr()[...], d["condition"].asstr()[...], d["time_h"][...], d["value"][...],
                d["sd"][...], d["x"][...])]
            self.predictive = f["predictive/values"][...]
            self.draws = f["predictive/draws"][...]
            self.resolved = json.loads(self.attrs["spec_resolved"])

    def population(self, t: int):
        values, w, _ = self._pops[t]
        return values, w

    def distances(self, t: int) -> np.ndarray:
        return self._pops[t][2]

    def interval(self, name: str) -> tuple[float, float, float]:
        i = self.parameter_names.index(name)
        return float(self.low[i]), float(self.median[i]), float(self.high[i])

    def x_label(self, readout: str) -> str:
        times = {r.time_h for r in self.data if r.readout == readout}
        conditions = {r.condition for r in self.data if r.readout == readout}
        if len(times) > 1 and all(math.isfinite(t) for t in times) or len(conditions) <= 1:
            return "time (h)"
        fields = {o.split("=", 1)[0] for c in conditions for o in self.resolved["conditions"].get(c, [])}
        return fields.pop() if len(fields) == 1 else "condition"

    def x_log(self, readout: str) -> bool:
        xs = np.array([r.x for r in self.data if r.readout == readout])
        return self.x_label(readout) != "time (h)" and np.all(xs > 0) and xs.max() / xs.min() >= 20

    def lines(self) -> list[str]:
        out = [f"{self.name}: {len(self.generations)} generations, final epsilon {self.epsilons[-1]:.4g}, "
               f"acceptance {self.acceptance[-1]:.3g}"]
        width = max(len(n) for n in self.parameter_names)
        out.append(f"  {'parameter':<{width}}  {'median':>11}  95% credible interval" + ("   known" if self.truth else ""))
        for n in self.parameter_names:
            lo, mid, hi = self.interval(n)
            known = f"   {self.truth[n]:.4g}" if n in self.truth else ""
            out.append(f"  {n:<{width}}  {mid:11.4g}  {lo:.4g} - {hi:.4g}{known}")
        return out


def figures(h5: pathlib.Path, prefix: pathlib.Path | None = None) -> list[pathlib.Path]:
    from blinasim.analysis.figures import distance_figure, posterior_figure, predictive_figure
    result = CalibrationResult(h5)
    prefix = prefix or h5.with_suffix("")
    return [posterior_figure(result, f"{prefix}_posterior.png"),
            predictive_figure(result, f"{prefix}_predictive.png"),
            distance_figure(result, f"{prefix}_distances.png")]


# --------------------------------------------------------------------------- synthetic data

def synthetic_data(spec: CalibrationSpec, data: list[DataRow], values: dict[str, float], seed: int) -> str:
    """The data file with every value replaced by the model's at `values` (seeded): data
    made by the model itself, to check that a calibration recovers known parameters."""
    simulated = row_model(spec, data).simulate_rows(values, seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DATA_COLUMNS)
    for row, value in zip(data, simulated):
        writer.writerow([row.readout, row.condition, "" if math.isnan(row.time_h) else f"{row.time_h:g}",
                         f"{value:.6g}", f"{row.sd:g}"])
    return buffer.getvalue()


# --------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    from blinasim.arguments import whole_number_at_least
    from blinasim.cli import _Parser
    p = _Parser(prog="blinasim calibrate",
                description="Fit scenario parameters to measurements by ABC-SMC (pyABC) on Dask.")
    p.add_argument("spec", help="the calibration spec (YAML), or a bundled example's name (e.g. calibrate_dish)")
    p.add_argument("data", nargs="?", default=None, help="measurements (CSV: readout,condition,time_h,value,sd); "
                                                         "default: the spec's data file")
    p.add_argument("--out", type=pathlib.Path, default=None,
                   help="pyABC History database to write or continue (default NAME.db); the summary is OUT.h5")
    p.add_argument("--generations", type=whole_number_at_least(1), default=None,
                   help="generations in all (default: the spec's); more continue a finished calibration")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=whole_number_at_least(1), default=None,
                       help="worker processes of a local Dask cluster (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="use the running Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead")
    p.add_argument("--force", action="store_true", help="start over instead of continuing --out")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.add_argument("--synthetic", type=pathlib.Path, metavar="CSV", default=None,
                   help="instead of calibrating, write DATA with the model's values at the spec's truth (seeded)")
    return p


def main(argv: list[str]) -> int:
    from blinasim.cohort.cohortfile import CohortFileError
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 2
    from blinasim.analysis.sensitivity import extras_installed
    if not extras_installed("pyabc"):
        return 2
    try:
        spec = load_calibration(args.spec)
        data, text, data_file = load_data(spec, args.data)
        if args.synthetic is not None:
            if set(spec.truth) != set(spec.parameters):
                raise ScenarioError(spec.file, 1, "truth", "--synthetic needs a known value (truth) for every parameter")
            args.synthetic.write_text(synthetic_data(spec, data, spec.truth, spec.settings.seed))
            if not args.quiet:
                print(f"wrote {args.synthetic}: {len(data)} rows simulated at {spec.truth}")
            return 0
        db = args.out or pathlib.Path(f"{spec.name}.db")
        h5 = run_calibration(spec, data, text, db, workers=args.workers, scheduler=args.scheduler,
                             force=args.force, quiet=args.quiet, data_file=data_file,
                             command_line=shlex.join(["blinasim", "calibrate", *argv]),
                             generations=args.generations)
    except (ScenarioError, CalibrationFileError, CohortFileError) as err:
        print(f"blinasim: error: {err}", file=sys.stderr)
        return 2
    except AnalysisInterrupted as stop:
        print(f"blinasim: {stop}", file=sys.stderr)
        return 128 + stop.signum
    made = figures(h5)
    if not args.quiet:
        print("\n".join(CalibrationResult(h5).lines()))
        print(f"results: {h5} (History: {db}); figures: {', '.join(str(m) for m in made)}")
    return 0
