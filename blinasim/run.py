"""Run a scenario: model -> run file, with progress, interruption, checkpoints and snapshots.

A run writes ``FILE.partial`` and renames it to ``FILE`` when it ends (complete=1) or is
stopped by SIGINT/SIGTERM/SIGHUP (complete=0, everything recorded so far kept). Signals only set a
flag that the stepping loop checks between steps, so they never land inside an HDF5 write.
A run killed outright (SIGKILL, power loss) leaves only ``FILE.partial``; ``resume`` continues
either kind from the last checkpoint.
"""
from __future__ import annotations

import math
import os
import platform
import re
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from blinasim import __version__
from blinasim.model import BlinaModel, variable_meta
from blinasim.populations import KIND_CODE
from blinasim.progress import Progress
from blinasim.runfile import Column, Difference, RunWriter, compare_runs, read_attrs
from blinasim.scenario import LoadedScenario, ScenarioError, load_scenario_text
from blinasim.schema import CELL_KINDS
from blinasim.summary import RunSummary

PARTIAL_SUFFIX = ".partial"


class RunError(Exception):
    """A problem with the files or options of a run, reported as one line (exit code 2)."""


class Interrupted(Exception):
    """The run was stopped by SIGINT or SIGTERM; the file (if any) keeps what was recorded."""

    def __init__(self, signum: int, path: Path | None, resumable: bool = False):
        name = signal.Signals(signum).name
        if path is None:
            text = f"interrupted by {name} before anything was written"
        else:
            hint = f"; 'blinasim resume {path}' continues it" if resumable else ""
            text = f"interrupted by {name}; partial run kept in {path} (complete=0){hint}"
        super().__init__(text)
        self.signum = signum
        self.path = path


def library_versions() -> str:
    """Versions of Python, HDF5 and the libraries a run depends on (from their metadata)."""
    from importlib.metadata import PackageNotFoundError, version
    parts = [f"python {platform.python_version()}"]
    for name in ("numpy", "mesa", "h5py", "networkx", "pyyaml", "cython"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} not installed")
    parts.insert(4, f"hdf5 {h5py.version.hdf5_version}")
    return ", ".join(parts)


def run_attrs(loaded: LoadedScenario, seed: int, command_line: str, *, threads: int = 1,
              checkpoint_every_h: float | None = None, snapshot_every_h: float | None = None) -> dict:
    """Root attributes of a new run file (``complete`` is added by the writer)."""
    return {
        "blinasim_version": __version__,
        "seed": seed,
        "scenario": loaded.source_text,
        "scenario_origin": loaded.origin,
        "scenario_resolved": loaded.resolved_yaml,
        "overrides": "\n".join(loaded.overrides),
        "command_line": command_line,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "library_versions": library_versions(),
        "threads": int(threads),
        # 0 means none; resume keeps both, verify reruns with the same snapshots
        "checkpoint_every_h": float(checkpoint_every_h or 0.0),
        "snapshot_every_h": float(snapshot_every_h or 0.0),
    }


# --------------------------------------------------------------------------- file layout

def kill_columns(model: BlinaModel) -> list[Column]:
    return [Column("time_h", "f8", "h", "time of death"),
            Column("killer_id", "i8", "", "id of the T cell"),
            Column("target_id", "i8", "", "id of the killed cell"),
            Column("target_kind", "i1", "", "kind of the killed cell", flags=CELL_KINDS),
            Column("compartment", "i1", "", "where it died", flags=model.geometry.names)]


def intervention_columns() -> list[Column] | None:
    """Columns of the ``interventions`` table, for models with a clinical protocol."""
    try:
        from blinasim.processes.protocol import ACTIONS
    except ImportError:
        return None
    return [Column("time_h", "f8", "h", "time of the intervention"),
            Column("action", "i1", "", "what was done", flags=ACTIONS),
            Column("value", "f8", "", "restart: infusion rate (ug/day); otherwise 0")]


def event_tables(model: BlinaModel) -> dict[str, list[Column]]:
    """The event tables of a run file: kills, and interventions when the model has a protocol."""
    tables = {"kills": kill_columns(model)}
    interventions = intervention_columns() if hasattr(model, "protocol") else None
    if interventions is not None:
        tables["interventions"] = interventions
    return tables


def drain_events(model: BlinaModel) -> dict[str, dict[str, np.ndarray]]:
    """Events logged by the model since the last drain, per table (tables with new rows only)."""
    if hasattr(model, "drain_events"):
        return model.drain_events()
    kills = model.drain_kills()
    return {"kills": kills} if kills else {}


def snapshot_columns(model: BlinaModel) -> list[Column]:
    """Per-cell columns of the ``snapshots`` group (one row per live cell)."""
    return [Column("id", "i8", "", "cell id (stable, never reused)"),
            Column("kind", "i1", "", "cell kind", flags=CELL_KINDS),
            Column("comp", "i1", "", "compartment", flags=model.geometry.names),
            Column("x", "f8", "um", "position across the compartment"),
            Column("y", "f8", "um", "position along the compartment"),
            Column("cd19", "f4", "copies", "surface CD19 copies"),
            Column("cd3", "f4", "copies", "surface CD3 copies"),
            Column("partner", "i8", "", "id of the synapse partner, -1 if free"),
            Column("granules", "f4", "units", "granule store at the snapshot time (T cells)"),
            Column("activated", "i1", "", "1 if the T cell was ever activated by a bridged synapse")]


def snapshot_of(model: BlinaModel) -> dict[str, np.ndarray]:
    """The snapshot columns of the live cells, in population order (read-only on the model)."""
    pop = model.pop
    live = np.flatnonzero(pop.alive == 1)
    partner = pop.partner[live]
    partner_id = np.where(partner >= 0, pop.id[np.maximum(partner, 0)], -1).astype(np.int64)
    # granule stores refill lazily (ext/_lysis.pyx); show the store as of this step
    lysis = model.scenario.lysis
    granules = pop.granules[live].copy()
    activated_step = pop.activated_step[live]
    is_t = pop.kind[live] <= KIND_CODE["cd4"]
    since = model.steps - np.maximum(pop.granule_step[live], activated_step)
    refill = is_t & (activated_step >= 0) & (since > 0)
    if refill.any():
        per_step = np.float32(lysis.refill_units_per_h * model.dt_min / 60.0)
        grown = granules[refill] + per_step * since[refill].astype(np.float32)
        granules[refill] = np.minimum(np.float32(lysis.capacity_units), grown)
    return {"id": pop.id[live].copy(), "kind": pop.kind[live].copy(), "comp": pop.comp[live].copy(),
            "x": pop.x[live].copy(), "y": pop.y[live].copy(),
            "cd19": pop.cd19[live].copy(), "cd3": pop.cd3[live].copy(), "partner": partner_id,
            "granules": granules, "activated": (is_t & (activated_step >= 0)).astype(np.int8)}


def open_writer(model: BlinaModel, path: Path, attrs: dict, force: bool,
                snapshots: bool = False) -> RunWriter:
    variables = [Column(name, "f8", *variable_meta(name)) for name in model.observables()]
    return RunWriter(path, attrs=attrs, variables=variables, event_tables=event_tables(model),
                     snapshot_columns=snapshot_columns(model) if snapshots else None, force=force)


# --------------------------------------------------------------------------- intervals

def _check_hours(hours: float | None, option: str) -> float:
    """A positive, finite number of hours (0 for None)."""
    if hours is None:
        return 0.0
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise RunError(f"{option}: expected a positive number of hours, got {hours!r}")
    return float(hours)


def record_every_steps(model: BlinaModel) -> int:
    return max(1, int(round(model.scenario.output.record_every_min / model.dt_min)))


def checkpoint_every_steps(model: BlinaModel, hours: float) -> int:
    """Checkpoints go with recorded rows: the interval is rounded up to whole record intervals."""
    if not hours:
        return 0
    record = record_every_steps(model)
    return max(1, math.ceil(hours * 60.0 / model.dt_min / record - 1e-9)) * record


def snapshot_every_steps(model: BlinaModel, hours: float) -> int:
    """Snapshot interval in steps; it must be a whole multiple of the time step."""
    if not hours:
        return 0
    steps = hours * 60.0 / model.dt_min
    whole = int(round(steps))
    if whole < 1 or abs(steps - whole) > 1e-6 * max(1.0, steps):
        raise RunError(f"--snapshot-every: {hours:g} h is not a whole multiple of the time step "
                       f"({model.dt_min:g} min)")
    return whole


# --------------------------------------------------------------------------- stepping

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that stop a run cleanly (the file keeps what was recorded, complete=0)."""


class StopFlag:
    """Turns SIGINT/SIGTERM/SIGHUP into a flag the stepping loop checks between steps.

    Signals that are ignored (e.g. SIGHUP under nohup, SIGINT of a background job) stay
    ignored. Only the main thread can install signal handlers; elsewhere the flag never rises.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._set)
        return self

    def _set(self, signum, _frame):
        if self.signum is None:
            self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def simulate(model: BlinaModel, writer: RunWriter, stop: StopFlag, *, quiet: bool = False,
             checkpoint_every: int = 0, snapshot_every: int = 0) -> None:
    """Step the model to its end, recording rows, kills, snapshots and checkpoints.

    Intervals are in steps (0 = never). At a step that has them all, the order is row and
    events, then snapshot, then checkpoint, so a checkpoint covers everything recorded at its
    step. Raises Interrupted (leaving the writer open) when `stop` was raised.
    """
    record_every = record_every_steps(model)
    if model.steps == 0:
        writer.append_row(0.0, model.observables())
        if snapshot_every:
            writer.append_snapshot(0.0, snapshot_of(model))
    progress = Progress(model.total_steps, model.dt_min, enabled=not quiet, start_step=model.steps)
    try:
        while not model.finished:
            if stop.signum is not None:
                raise Interrupted(stop.signum, writer.path, resumable=writer.has_checkpoint)
            model.step()
            recorded = model.steps % record_every == 0 or model.finished
            if recorded:
                writer.append_row(model.time_min / 60.0, model.observables())
                for table, columns in drain_events(model).items():
                    writer.append_events(table, columns)
                progress.update(model.steps, model.pop.n)
            if snapshot_every and model.steps % snapshot_every == 0:
                writer.append_snapshot(model.time_min / 60.0, snapshot_of(model))
            if (checkpoint_every and recorded and not model.finished
                    and model.steps % checkpoint_every == 0):
                writer.save_checkpoint(model.steps, model.state())
    finally:
        progress.close()


def _check_out(out: Path, force: bool) -> None:
    """Refuse, before anything is built or written, an output the run must not touch."""
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    if out.is_dir():
        raise RunError(f"{out} is a directory, not a run file name")
    if not out.parent.is_dir():
        raise RunError(f"{out}: directory {out.parent} does not exist")
    if out.exists() and not force:
        raise RunError(f"run file {out} already exists; use --force to overwrite it")
    if partial.exists() and not force:
        raise RunError(f"{partial} exists (an interrupted or running run); 'blinasim resume {out}' "
                       f"continues it, --force starts over")


def run_scenario(loaded: LoadedScenario, out: Path, *, seed: int | None = None, force: bool = False,
                 threads: int = 1, quiet: bool = False, checkpoint_every_h: float | None = None,
                 snapshot_every_h: float | None = None, command_line: str = "") -> RunSummary:
    """Run a loaded scenario into the run file `out`; returns a summary.

    Raises RunError (nothing written) for bad options or an output that exists without
    `force`, and Interrupted after SIGINT/SIGTERM (the file then has complete=0).
    """
    out = Path(out)
    seed = loaded.scenario.seed if seed is None else int(seed)
    checkpoint_h = _check_hours(checkpoint_every_h, "--checkpoint-every")
    snapshot_h = _check_hours(snapshot_every_h, "--snapshot-every")
    if threads < 1:
        raise RunError(f"--threads: expected a whole number of at least 1, got {threads}")
    _check_out(out, force)
    started = time.perf_counter()
    with StopFlag() as stop:
        model = BlinaModel(loaded.scenario, seed=seed, threads=threads)
        checkpoint_every = checkpoint_every_steps(model, checkpoint_h)
        snapshot_every = snapshot_every_steps(model, snapshot_h)
        attrs = run_attrs(loaded, seed, command_line, threads=threads,
                          checkpoint_every_h=checkpoint_h, snapshot_every_h=snapshot_h)
        if stop.signum is not None:  # stopped before anything was written
            raise Interrupted(stop.signum, None)
        try:
            writer = open_writer(model, out, attrs, force, snapshots=bool(snapshot_every))
        except OSError as exc:
            raise RunError(f"{out}: cannot write the run file ({_first_line(exc)})") from None
        try:
            simulate(model, writer, stop, quiet=quiet, checkpoint_every=checkpoint_every,
                     snapshot_every=snapshot_every)
        except BaseException:
            writer.close(complete=False)
            raise
        path = writer.close(complete=True)
    return RunSummary(path, seed, model.time_min / 60.0, time.perf_counter() - started, model.observables())


# --------------------------------------------------------------------------- resume

def final_name(path: str | os.PathLike) -> Path:
    """The run file name a path stands for (``FILE.partial`` stands for ``FILE``)."""
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX) and len(path.name) > len(PARTIAL_SUFFIX):
        return path.with_name(path.name[:-len(PARTIAL_SUFFIX)])
    return path


def _readable_attrs(path: Path) -> dict:
    """Root attributes of a run file; unreadable files become RunError."""
    try:
        return read_attrs(path)
    except OSError as exc:
        raise RunError(f"{path}: not a readable run file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _embedded_scenario(path: Path, attrs: dict) -> LoadedScenario:
    if "scenario_resolved" not in attrs or "seed" not in attrs:
        raise RunError(f"{path}: not a blinasim run file (no embedded scenario and seed)")
    try:
        return load_scenario_text(attrs["scenario_resolved"], filename=f"{path}:scenario_resolved")
    except ScenarioError as err:
        raise RunError(f"{path}: its embedded scenario no longer loads: {err}") from None


def resume_source(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(final name, file to resume from)``: FILE itself, or FILE.partial after a kill."""
    final = final_name(path)
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    if final.is_file():
        return final, final
    if partial.is_file():
        return final, partial
    raise RunError(f"{final}: no such run file (nor {partial.name})")


def resume_run(path: str | os.PathLike, *, threads: int = 1, quiet: bool = False,
               checkpoint_every_h: float | None = None, command_line: str = "") -> RunSummary:
    """Continue an interrupted run from its last checkpoint, into the same file.

    `path` may be the run file, or its name when only ``FILE.partial`` is left (a killed
    run). A run without a checkpoint starts over from the beginning (its scenario and seed
    are in the file). Snapshots continue at the interval the run started with; checkpoints
    too, unless `checkpoint_every_h` is given.
    """
    final, source = resume_source(path)
    if threads < 1:
        raise RunError(f"--threads: expected a whole number of at least 1, got {threads}")
    override_h = _check_hours(checkpoint_every_h, "--checkpoint-every")
    attrs = _readable_attrs(source)
    loaded = _embedded_scenario(source, attrs)
    if int(attrs.get("complete", 0)) == 1:
        raise RunError(f"run file {source} is complete; there is nothing to resume")
    seed = int(attrs["seed"])
    started = time.perf_counter()
    with StopFlag() as stop:
        model = BlinaModel(loaded.scenario, seed=seed, threads=threads)
        checkpoint_h = override_h or float(attrs.get("checkpoint_every_h", 0.0))
        checkpoint_every = checkpoint_every_steps(model, checkpoint_h)
        snapshot_every = snapshot_every_steps(model, float(attrs.get("snapshot_every_h", 0.0)))
        if stop.signum is not None:
            raise Interrupted(stop.signum, None)
        try:
            writer, _step, state = RunWriter.reopen_for_resume(final, restart_without_checkpoint=True)
        except (ValueError, FileNotFoundError, OSError, KeyError) as exc:
            raise RunError(f"{source}: cannot resume: {_first_line(exc)}") from None
        try:
            if bool(snapshot_every) != writer.has_snapshots:
                raise RunError(f"{source}: snapshot_every_h does not match the file's snapshots")
            if state is not None:
                model.restore(state)
            resumed_from_h = model.time_min / 60.0
            previous = str(attrs.get("resumed", ""))
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            entry = f"{stamp} at {resumed_from_h:g} h: {command_line or 'resume_run'}"
            writer.set_attrs({"resumed": f"{previous}\n{entry}" if previous else entry})
            simulate(model, writer, stop, quiet=quiet, checkpoint_every=checkpoint_every,
                     snapshot_every=snapshot_every)
        except BaseException:
            writer.close(complete=False)
            raise
        done = writer.close(complete=True)
    return RunSummary(done, seed, model.time_min / 60.0, time.perf_counter() - started,
                      model.observables(), resumed_from_h=resumed_from_h)


# --------------------------------------------------------------------------- verify

@dataclass(frozen=True)
class Verification:
    path: Path
    seed: int
    complete: bool
    difference: Difference | None


def verify_run(path: str | os.PathLike, *, threads: int = 1, quiet: bool = True,
               workdir: str | os.PathLike | None = None) -> Verification:
    """Rerun a run file's embedded scenario and seed in a temporary file and compare every dataset."""
    import tempfile
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such run file")
    attrs = _readable_attrs(path)
    loaded = _embedded_scenario(path, attrs)
    seed = int(attrs["seed"])
    with tempfile.TemporaryDirectory(prefix="blinasim-verify-", dir=workdir) as tmp:
        rerun = Path(tmp) / "rerun.h5"
        try:
            run_scenario(loaded, rerun, seed=seed, threads=threads, quiet=quiet,
                         snapshot_every_h=float(attrs.get("snapshot_every_h", 0.0)) or None)
        except Interrupted as stop:  # the rerun is thrown away with its directory
            raise Interrupted(stop.signum, None) from None
        difference = compare_runs(path, rerun)
    return Verification(path, seed, int(attrs.get("complete", 0)) == 1, difference)


def default_out(name: str, seed: int) -> Path:
    """``NAME_seedN.h5`` in the working directory (characters unsafe in file names become _)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "run"
    return Path(os.getcwd()) / f"{safe}_seed{seed}.h5"
