"""`blinasim sensitivity SPEC.yaml`: global sensitivity analysis with SALib (docs/sensitivity.md).

Morris screening or Sobol indices over any numeric scenario fields (or a toy model's
parameters), for any read-out, with replicate seeds: every parameter point is simulated
with the same `replicates` seeds (common random numbers), the indices are computed from
the replicate means, and the noise that is left is measured and reported. Runs go to
Dask like cohort patients; one HDF5 file holds the design, every run's read-outs and the
indices, and rerunning the same command continues an interrupted analysis.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import platform
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone

import h5py
import numpy as np

from blinasim import __version__
from blinasim.analysis.execute import Dask, RunProgress, default_workers, stream
from blinasim.analysis.simulate import BATCH, RunResult, run_points, seed_of
from blinasim.analysis.spec import (Base, Parameter, Readout, build_settings, identity, load_base, load_parameters,
                                    load_readouts, model_ref, observables_needed, read_spec, stop_time)
from blinasim.scenario import ScenarioError, error_at
from blinasim.schema import param

FORMAT = "blinasim-sensitivity"
FORMAT_VERSION = 1
PENDING, DONE, FAILED = 0, 1, 2
_STR = h5py.string_dtype()
_VOLATILE_ATTRS = ("created", "updated", "command_line", "workers", "platform")


@dataclass(frozen=True)
class SensitivitySettings:
    """The plain fields of a sensitivity spec (besides scenario/toy, set, parameters, readouts)."""
    name: str = param("", "", None, None, "Short name (default: the file name)", "")
    description: str = param("", "", None, None, "What the analysis is for", "")
    seed: int = param(1, "", 0, 2**63 - 1, "Seed of the design and of the replicate seeds (numpy SeedSequence)", "")
    method: str = param("morris", "", None, None, "morris: elementary-effects screening; sobol: variance-based indices (Saltelli sampling)", "", choices=("morris", "sobol"))
    samples: int = param(10, "", 1, 1_000_000, "Morris: trajectories (points: samples x (parameters + 1)); Sobol: base sample N, a power of 2 (points: N x (parameters + 2), or N x (2 parameters + 2) with second_order)", "")
    replicates: int = param(2, "", 1, 100_000, "Seeds simulated at every point (the same seeds at every point)", "")
    levels: int = param(4, "", 2, 1000, "Morris: grid levels (even)", "")
    second_order: bool = param(False, "", None, None, "Sobol: also second-order indices", "")
    bootstrap: int = param(500, "", 10, 1_000_000, "Bootstrap resamples of the confidence intervals", "")
    confidence: float = param(0.95, "", 0.5, 0.9999, "Confidence level of the intervals", "")


@dataclass(frozen=True)
class SensitivitySpec:
    settings: SensitivitySettings
    file: str
    source_text: str
    base: Base
    parameters: dict[str, Parameter]
    readouts: dict[str, Readout]

    @property
    def name(self) -> str:
        return self.settings.name

    def model(self):
        readouts = list(self.readouts.values())
        return model_ref(self.base, self.parameters, stop_time(readouts), observables_needed(readouts))

    def identity(self) -> str:
        cohort = self.base.cohort.identity(self.settings.replicates) if self.base.cohort is not None else ""
        return identity(FORMAT_VERSION, self.settings, {k: v for k, v in self.parameters.items()},
                        self.readouts, self.base.kind, self.base.name, self.base.base_yaml, self.base.fixed, cohort)


def load_sensitivity(source, *, samples: int | None = None, replicates: int | None = None) -> SensitivitySpec:
    """Load and check a sensitivity spec; `samples`/`replicates` override the file's."""
    root, text, file = read_spec(source, "sensitivity spec")
    entries = dict(root.value)
    base = load_base(entries, root, file, cohort_allowed=True)
    parameters_node, readouts_node = entries.pop("parameters", None), entries.pop("readouts", None)
    settings = build_settings(SensitivitySettings, root, entries)
    changes = {"name": settings.name or pathlib.Path(file).stem}
    if samples is not None:
        changes["samples"] = samples
    if replicates is not None:
        changes["replicates"] = replicates
    settings = dataclasses.replace(settings, **changes)
    parameters = load_parameters(parameters_node or _missing(root, "parameters"), base)
    readouts = load_readouts(readouts_node or _missing(root, "readouts"), base)
    where = entries.get("levels", root)
    if settings.method == "morris" and settings.levels % 2:
        raise error_at(where, "levels", f"Morris needs an even number of levels, got {settings.levels}")
    if settings.method == "sobol":
        n = settings.samples
        if n & (n - 1):
            node = entries.get("samples", root)
            raise error_at(node, "samples", f"Sobol sampling needs a power of 2, got {n} "
                                            f"(e.g. {1 << max(0, n.bit_length() - 1)} or {1 << n.bit_length()})")
        if len(parameters) < 2:
            raise error_at(parameters_node, "parameters", "Sobol indices need at least 2 parameters")
    return SensitivitySpec(settings, file, text, base, parameters, readouts)


def _missing(root, field: str):
    raise error_at(root, field, "required")


# --------------------------------------------------------------------------- design

def problem(spec: SensitivitySpec) -> dict:
    """The SALib problem: every parameter on its quantile scale [0, 1]."""
    names = list(spec.parameters)
    return {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}


def design(spec: SensitivitySpec) -> np.ndarray:
    """The points on the quantile scale (points x parameters), seeded by the spec's seed."""
    s = spec.settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if s.method == "morris":
            from SALib.sample import morris
            return morris.sample(problem(spec), s.samples, num_levels=s.levels, seed=s.seed)
        from SALib.sample import sobol
        return sobol.sample(problem(spec), s.samples, calc_second_order=s.second_order, scramble=True,
                            seed=s.seed)


def point_values(spec: SensitivitySpec, unit: np.ndarray) -> np.ndarray:
    return np.array([[p.value(u) for p, u in zip(spec.parameters.values(), row)] for row in unit])


def replicates(spec: SensitivitySpec) -> list[tuple[int, tuple[str, ...], str]]:
    """(seed, overrides, problem) of each replicate. Replicate r's seed is stream (r,) of the
    spec's SeedSequence; with a cohort, replicate r is cohort patient r (its covariates as
    overrides, its seed), so the replicate means are cohort means and rates."""
    cohort = spec.base.cohort
    if cohort is None:
        return [(seed_of(spec.settings.seed, r), (), "") for r in range(spec.settings.replicates)]
    from blinasim.cohort.patient import draw_patient
    draws = [draw_patient(cohort, r) for r in range(spec.settings.replicates)]
    return [(d.seed, d.overrides, d.problem) for d in draws]


# --------------------------------------------------------------------------- the file

class SensitivityFileError(Exception):
    """A sensitivity file that cannot be created, continued or read (one line, exit code 2)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def library_versions() -> str:
    from blinasim.run import library_versions as base_versions
    from importlib.metadata import PackageNotFoundError, version
    extra = []
    for name in ("SALib", "pyabc", "dask", "distributed", "scipy"):
        try:
            extra.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            extra.append(f"{name} not installed")
    return ", ".join([base_versions(), *extra])


def _attrs(spec: SensitivitySpec, command_line: str) -> dict:
    return {
        "name": spec.name, "description": spec.settings.description, "identity": spec.identity(),
        "method": spec.settings.method, "seed": spec.settings.seed, "samples": spec.settings.samples,
        "replicates": spec.settings.replicates, "spec_yaml": spec.source_text, "spec_file": spec.file,
        "spec_resolved": json.dumps({"settings": dataclasses.asdict(spec.settings),
                                     "parameters": {k: p.describe() for k, p in spec.parameters.items()},
                                     "readouts": {k: dataclasses.asdict(r) for k, r in spec.readouts.items()},
                                     "model": {"kind": spec.base.kind, "name": spec.base.name,
                                               "set": dict(spec.base.fixed)}}, sort_keys=True),
        "base_scenario_yaml": spec.base.base_yaml, "blinasim_version": __version__,
        "library_versions": library_versions(), "command_line": command_line, "platform": platform.platform(),
    }


def _create(path: pathlib.Path, spec: SensitivitySpec, attrs: dict) -> h5py.File:
    unit = design(spec)
    reps = replicates(spec)
    seeds = np.array([seed for seed, _, _ in reps], dtype=np.int64)
    f = h5py.File(path, "w", track_order=True)
    f.attrs.update(attrs)
    f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "complete": 0, "created": _now(),
                    "updated": _now(), "points": unit.shape[0]})
    d = f.create_group("design", track_order=True)
    d.create_dataset("parameter", data=np.array(list(spec.parameters), dtype=object), dtype=_STR)
    d.create_dataset("distribution", data=np.array([p.describe() for p in spec.parameters.values()],
                                                   dtype=object), dtype=_STR)
    d.create_dataset("unit", data=unit).attrs["long_name"] = "points on each parameter's quantile scale"
    d.create_dataset("values", data=point_values(spec, unit)).attrs["long_name"] = "parameter values simulated"
    runs = f.create_group("runs", track_order=True)
    shape = (unit.shape[0], len(seeds))
    runs.create_dataset("replicate_seed", data=seeds)
    runs.create_dataset("replicate_overrides", data=np.array(["\n".join(o) for _, o, _ in reps], dtype=object),
                        dtype=_STR).attrs["long_name"] = "a cohort patient's scenario overrides (PATH=VALUE lines)"
    runs.create_dataset("status", data=np.zeros(shape, dtype=np.int8)).attrs["flags"] = "pending,done,failed"
    runs.create_dataset("error", shape=shape, dtype=_STR)
    values = runs.create_group("readouts", track_order=True)
    for name in spec.readouts:
        values.create_dataset(name, shape=shape, dtype="f8", fillvalue=math.nan)
    f.create_group("timing").create_dataset("wall_s", shape=shape, dtype="f8", fillvalue=math.nan)
    f.flush()
    return f


def _open_existing(out: pathlib.Path, force: bool, ident: str) -> h5py.File | None:
    if out.is_dir():
        raise SensitivityFileError(f"{out} is a directory, not a file name")
    if not out.parent.is_dir():
        raise SensitivityFileError(f"{out}: directory {out.parent} does not exist")
    if not out.exists() or force:
        return None
    try:
        f = h5py.File(out, "r+")
    except OSError:
        raise SensitivityFileError(f"{out} exists and is not a sensitivity file; use --force to replace it") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise SensitivityFileError(f"{out} exists and is not a sensitivity file; use --force to replace it")
    if f.attrs.get("identity") != ident:
        f.close()
        raise SensitivityFileError(f"{out} holds a different analysis (its spec, model, seed, samples or "
                                   f"replicates differ); use --force to replace it or another --out")
    return f


# --------------------------------------------------------------------------- running

@dataclass(frozen=True)
class SensitivityRun:
    path: pathlib.Path
    runs: int
    ran: int
    done: int
    failed: int
    wall_s: float
    workers: int


def run_sensitivity(spec: SensitivitySpec, out, *, workers: int | None = None, scheduler: str | None = None,
                    force: bool = False, quiet: bool = False, command_line: str = "",
                    on_result=None, stop=None) -> SensitivityRun:
    """Run every simulation not yet in `out`, then (re)compute the indices.

    `on_result(result)` is called after each run is stored; `stop` replaces the signal
    flag (an object whose `signum` turns from None to a signal number: tests).
    """
    from blinasim.run import StopFlag
    out = pathlib.Path(out)
    started = time.perf_counter()
    attrs = _attrs(spec, command_line)
    with StopFlag() as flag:
        stop = stop or flag
        f = _open_existing(out, force, attrs["identity"])
        try:
            if f is None or np.any(f["runs/status"][...] == PENDING) or np.any(f["runs/status"][...] == FAILED):
                dask = Dask(None if scheduler else (workers or default_workers()), scheduler)
                try:
                    f = f or _create(out, spec, attrs)
                    f.attrs["command_line"] = command_line
                    ran, threads = _run(spec, f, dask, stop, quiet, on_result), dask.threads()
                finally:
                    dask.close()
            else:
                ran, threads = 0, 0
            write_indices(f, spec)
            status = f["runs/status"][...]
            return SensitivityRun(out, status.size, ran, int(np.count_nonzero(status == DONE)),
                                  int(np.count_nonzero(status == FAILED)), time.perf_counter() - started, threads)
        finally:
            if f is not None:
                f.close()


def _run(spec: SensitivitySpec, f: h5py.File, dask, stop, quiet: bool, on_result) -> int:
    status = f["runs/status"][...]
    errors = f["runs/error"].asstr()[...].astype(object)
    outputs = {name: f["runs/readouts"][name][...] for name in spec.readouts}
    wall = f["timing/wall_s"][...]
    values = f["design/values"][...]
    reps = replicates(spec)
    names = list(spec.parameters)
    model = spec.model()
    readouts = dict(spec.readouts)
    todo = [(int(p), int(r)) for p, r in zip(*np.nonzero(status != DONE))]
    f.attrs["workers"] = dask.threads()
    progress = RunProgress(status.size, status.size - len(todo), dask.threads(), enabled=not quiet)
    prefix = spec.identity()[:12]

    def submit(client, batch):
        work = [((p, r), dict(zip(names, values[p].tolist())), *reps[r]) for p, r in batch]
        p, r = batch[0]
        return client.submit(run_points, work, model, readouts, key=f"sens-{p}-{r}-{prefix}", pure=False)

    def store(batch, future):
        try:
            results = future.result()
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: its workers kept dying
            lines = str(exc).splitlines()
            error = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
            results = [RunResult(key, False, error=error) for key in batch]
        for result in results:
            p, r = result.key
            status[p, r] = DONE if result.ok else FAILED
            errors[p, r] = result.error
            for name, value in result.values.items():
                outputs[name][p, r] = value
            wall[p, r] = result.wall_s
        rows = slice(min(p for p, _ in batch), max(p for p, _ in batch) + 1)  # a batch is a run of points
        f["runs/status"][rows] = status[rows]
        f["runs/error"][rows] = errors[rows]
        for name in outputs:
            f["runs/readouts"][name][rows] = outputs[name][rows]
        f["timing/wall_s"][rows] = wall[rows]
        f.attrs["updated"] = _now()
        f.flush()  # everything of the batch is on disk before its runs count as stored
        for result in results:
            progress.update(result.ok)
            if on_result is not None:
                on_result(result)

    def kept() -> str:
        return f"{int(np.count_nonzero(status == DONE))} of {status.size} runs are stored in {f.filename}"

    try:
        size = BATCH[model.kind]
        stream(dask, [todo[i:i + size] for i in range(0, len(todo), size)], submit, store, stop, kept)
        return len(todo)
    finally:
        progress.close()


# --------------------------------------------------------------------------- indices

def _indices(spec: SensitivitySpec, unit: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    s = spec.settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if s.method == "morris":
            from SALib.analyze import morris
            r = morris.analyze(problem(spec), unit, y, num_resamples=s.bootstrap, conf_level=s.confidence,
                               num_levels=s.levels, seed=s.seed)
            keys = ("mu", "mu_star", "sigma", "mu_star_conf")
        else:
            from SALib.analyze import sobol
            r = sobol.analyze(problem(spec), y, calc_second_order=s.second_order, num_resamples=s.bootstrap,
                              conf_level=s.confidence, seed=s.seed)
            keys = ("S1", "S1_conf", "ST", "ST_conf") + (("S2", "S2_conf") if s.second_order else ())
    return {key: np.asarray(r[key], dtype=float) for key in keys}


def write_indices(f: h5py.File, spec: SensitivitySpec) -> None:
    """(Re)write /indices from the runs done; marks the file complete when every run is done.

    For each read-out: the indices of the replicate means (with bootstrap intervals), the
    indices of each replicate alone, and the noise share: the variance of the replicate
    means that is stochastic noise, (mean within-point variance / replicates) / variance
    of the point means.
    """
    status = f["runs/status"][...]
    if "indices" in f:
        del f["indices"]
    group = f.create_group("indices", track_order=True)
    complete = not np.any(status != DONE)
    f.attrs["complete"] = int(complete)
    f.attrs["updated"] = _now()
    if not complete:
        f.flush()
        return
    unit = f["design/unit"][...]
    for name in spec.readouts:
        y = f["runs/readouts"][name][...]
        g = group.create_group(name, track_order=True)
        if not np.all(np.isfinite(y)):
            g.attrs["problem"] = "some runs gave no number (NaN): no indices"
            continue
        mean = y.mean(axis=1)
        for key, value in _indices(spec, unit, mean).items():
            g.create_dataset(key, data=value)
        between = float(np.var(mean, ddof=1)) if len(mean) > 1 else 0.0
        within = float(np.mean(np.var(y, axis=1, ddof=1))) if y.shape[1] > 1 else math.nan
        g.attrs["noise_share"] = (within / y.shape[1] / between) if between > 0 else (math.nan if math.isnan(within) else
                                                                                      (0.0 if within == 0 else math.inf))
        g.attrs["variance_of_means"] = between
        g.attrs["noise_variance"] = within
        if y.shape[1] > 1:
            per = [_indices(spec, unit, y[:, r]) for r in range(y.shape[1])]
            reps = g.create_group("by_replicate")
            for key in per[0]:
                reps.create_dataset(key, data=np.array([p[key] for p in per]))
    f.flush()


# --------------------------------------------------------------------------- reading

def read_sensitivity(path) -> dict:
    """The whole sensitivity file as plain arrays: attrs, design, runs, indices."""
    def group(g) -> dict:
        out = {}
        for key, item in g.items():
            if isinstance(item, h5py.Group):
                out[key] = group(item) | {"attrs": {k: _plain(v) for k, v in item.attrs.items()}}
            else:
                out[key] = item.asstr()[...] if item.dtype == _STR else item[...]
        return out

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise SensitivityFileError(f"{path}: not a blinasim sensitivity file")
        data = group(f)
        data["attrs"] = {k: _plain(v) for k, v in f.attrs.items()}
    return data


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def compare_files(a, b) -> str | None:
    """The first difference between two sensitivity files' results (None when equal)."""
    from blinasim.cohort.cohortfile import _datasets
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for key in sorted(set(fa.attrs) | set(fb.attrs)):
            if key in _VOLATILE_ATTRS:
                continue
            if not np.array_equal(np.asarray(fa.attrs.get(key)), np.asarray(fb.attrs.get(key))):
                return f"attribute {key} differs"
        names = _datasets(fa)
        if names != _datasets(fb):
            return "datasets differ"
        for name in names:
            x, y = fa[name][...], fb[name][...]
            same = (x.shape == y.shape and all(p == q for p, q in zip(x.ravel(), y.ravel()))) if x.dtype.kind == "O" \
                else np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
            if not same:
                return f"{name} differs"
    return None


def summary_lines(path) -> list[str]:
    data = read_sensitivity(path)
    attrs = data["attrs"]
    status = data["runs"]["status"]
    method = attrs["method"]
    lines = [f"{path}: {method}, {attrs['points']} points x {attrs['replicates']} replicates, "
             f"{int(np.count_nonzero(status == DONE))} runs done, {int(np.count_nonzero(status == FAILED))} failed"]
    names = list(data["design"]["parameter"])
    for readout, g in data.get("indices", {}).items():
        if readout == "attrs":
            continue
        if "problem" in g["attrs"]:
            lines.append(f"  {readout}: {g['attrs']['problem']}")
            continue
        noise = g["attrs"].get("noise_share", math.nan)
        lines.append(f"  {readout} (noise share of the variance of the replicate means: {noise:.2g})")
        width = max(len(n) for n in names)
        if method == "morris":
            lines.append(f"    {'parameter':<{width}}  {'mu*':>10} {'+-':>9} {'mu':>10} {'sigma':>10}")
            order = np.argsort(-g["mu_star"])
            for i in order:
                lines.append(f"    {names[i]:<{width}}  {g['mu_star'][i]:10.4g} {g['mu_star_conf'][i]:9.3g} "
                             f"{g['mu'][i]:10.4g} {g['sigma'][i]:10.4g}")
        else:
            lines.append(f"    {'parameter':<{width}}  {'S1':>7} {'+-':>6} {'ST':>7} {'+-':>6}")
            order = np.argsort(-g["ST"])
            for i in order:
                lines.append(f"    {names[i]:<{width}}  {g['S1'][i]:7.3f} {g['S1_conf'][i]:6.3f} "
                             f"{g['ST'][i]:7.3f} {g['ST_conf'][i]:6.3f}")
    return lines


# --------------------------------------------------------------------------- command line

def extras_installed(*modules: str) -> bool:
    """Whether the analysis libraries import; if not, says how to install them (one line)."""
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        print(f"blinasim: error: {', '.join(missing)} not installed; install the extra: "
              f"pip install 'blinasim[analysis]'", file=sys.stderr)
    return not missing


def build_parser() -> argparse.ArgumentParser:
    from blinasim.arguments import whole_number_at_least
    from blinasim.cli import _Parser
    p = _Parser(prog="blinasim sensitivity",
                description="Global sensitivity analysis (SALib Morris or Sobol) of scenario fields on Dask.")
    p.add_argument("spec", help="the sensitivity spec (YAML), e.g. scenarios/sensitivity_dish.yaml")
    p.add_argument("--out", type=pathlib.Path, default=None, help="HDF5 file to write or continue (default: NAME.h5)")
    p.add_argument("--figure", type=pathlib.Path, default=None, help="figure of the indices (default: OUT with .png)")
    p.add_argument("--samples", type=whole_number_at_least(1), default=None, help="override the spec's samples")
    p.add_argument("--replicates", type=whole_number_at_least(1), default=None, help="override the spec's replicates")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=whole_number_at_least(1), default=None,
                       help="worker processes of a local Dask cluster (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="use the running Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead")
    p.add_argument("--force", action="store_true", help="replace an existing --out instead of continuing it")
    p.add_argument("--quiet", action="store_true", help="no progress display or summary")
    return p


def main(argv: list[str]) -> int:
    from blinasim.analysis.execute import AnalysisInterrupted
    from blinasim.cohort.cohortfile import CohortFileError
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 2
    if not extras_installed("SALib"):
        return 2
    try:
        spec = load_sensitivity(args.spec, samples=args.samples, replicates=args.replicates)
        out = args.out or pathlib.Path(f"{spec.name}.h5")
        done = run_sensitivity(spec, out, workers=args.workers, scheduler=args.scheduler, force=args.force,
                               quiet=args.quiet, command_line=shlex.join(["blinasim", "sensitivity", *argv]))
    except (ScenarioError, SensitivityFileError, CohortFileError) as err:
        print(f"blinasim: error: {err}", file=sys.stderr)
        return 2
    except AnalysisInterrupted as stop:
        print(f"blinasim: {stop}", file=sys.stderr)
        return 128 + stop.signum
    if done.failed:
        print(f"blinasim: {done.failed} run(s) failed; their errors are in {done.path} (runs/error); "
              f"rerunning the same command retries them", file=sys.stderr)
        return 1
    from blinasim.analysis.figures import sensitivity_figure
    figure = args.figure or out.with_suffix(".png")
    sensitivity_figure(out, figure)
    if not args.quiet:
        print(f"ran {done.ran} simulations in {done.wall_s:.1f} s" + (f" on {done.workers} workers" if done.ran else ""))
        print("\n".join(summary_lines(out)))
        print(f"figure: {figure}")
    return 0
