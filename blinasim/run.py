"""Run a scenario: model -> run file, with progress, interruption and checkpoints."""
from __future__ import annotations

import os
import platform
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from blinasim import __version__
from blinasim.model import BlinaModel, variable_meta
from blinasim.progress import Progress
from blinasim.runfile import Column, RunWriter, read_attrs
from blinasim.scenario import LoadedScenario, load_scenario_text
from blinasim.schema import CELL_KINDS


class Interrupted(Exception):
    """The run was stopped by SIGINT or SIGTERM; the file keeps what was recorded."""

    def __init__(self, signum: int, path: Path):
        super().__init__(f"interrupted by {signal.Signals(signum).name}; partial run kept in {path} (complete=0)")
        self.signum = signum
        self.path = path


@dataclass(frozen=True)
class RunSummary:
    path: Path
    seed: int
    simulated_h: float
    wall_s: float
    final: dict[str, float]

    def lines(self) -> list[str]:
        f = self.final
        out = [f"wrote {self.path}",
               f"simulated {self.simulated_h / 24:.2f} days in {self.wall_s:.1f} s (seed {self.seed})"]
        for name, label, fmt in (("blood_b_per_ul", "blood B cells", "{:.3g} /uL"),
                                 ("blood_t_per_ul", "blood T cells", "{:.4g} /uL"),
                                 ("marrow_blast_fraction", "marrow blasts", "{:.3%}"),
                                 ("blasts", "blasts", "{:.0f}"),
                                 ("kills_cumulative", "kills", "{:.0f}")):
            if np.isfinite(f.get(name, np.nan)):
                out.append(f"  {label:<14} {fmt.format(f[name])}")
        return out


def library_versions() -> str:
    import Cython
    import h5py
    import mesa
    import networkx
    import yaml
    return (f"python {platform.python_version()}, numpy {np.__version__}, mesa {mesa.__version__}, "
            f"h5py {h5py.__version__}, h5 {h5py.version.hdf5_version}, networkx {networkx.__version__}, "
            f"pyyaml {yaml.__version__}, cython {Cython.__version__}")


def run_attrs(loaded: LoadedScenario, seed: int, command_line: str) -> dict:
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
    }


def kill_columns(model: BlinaModel) -> list[Column]:
    return [Column("time_h", "f8", "h", "time of death"),
            Column("killer_id", "i8", "", "id of the T cell"),
            Column("target_id", "i8", "", "id of the killed cell"),
            Column("target_kind", "i1", "", "kind of the killed cell", flags=CELL_KINDS),
            Column("compartment", "i1", "", "where it died", flags=model.geometry.names)]


def open_writer(model: BlinaModel, path: Path, attrs: dict, force: bool) -> RunWriter:
    variables = [Column(name, "f8", *variable_meta(name)) for name in model.observables()]
    return RunWriter(path, attrs=attrs, variables=variables,
                     event_tables={"kills": kill_columns(model)}, force=force)


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the stepping loop checks between steps."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._set)
        return self

    def _set(self, signum, _frame):
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def simulate(model: BlinaModel, writer: RunWriter, *, quiet: bool = False,
             checkpoint_every_h: float | None = None) -> None:
    """Step the model to its end, recording rows, kills and checkpoints into writer."""
    s = model.scenario
    record_every = int(round(s.output.record_every_min / model.dt_min))
    checkpoint_every = (int(round(checkpoint_every_h * 60.0 / model.dt_min))
                        if checkpoint_every_h else 0)
    if model.steps == 0:
        writer.append_row(0.0, model.observables())
    progress = Progress(model.total_steps, model.dt_min, enabled=not quiet)
    with _StopFlag() as stop:
        while not model.finished:
            model.step()
            if model.steps % record_every == 0 or model.finished:
                writer.append_row(model.time_min / 60.0, model.observables())
                kills = model.drain_kills()
                if kills:
                    writer.append_events("kills", kills)
                progress.update(model.steps, model.pop.n)
            if checkpoint_every and model.steps % checkpoint_every == 0 and model.steps % record_every == 0:
                writer.save_checkpoint(model.steps, model.state())
            if stop.signum is not None:
                progress.close()
                writer.close(complete=False)
                raise Interrupted(stop.signum, writer.path)
    progress.close()


def run_scenario(loaded: LoadedScenario, out: Path, *, seed: int | None = None, force: bool = False,
                 threads: int = 1, quiet: bool = False, checkpoint_every_h: float | None = None,
                 command_line: str = "") -> RunSummary:
    """Run a loaded scenario into the run file `out`; returns a summary."""
    seed = loaded.scenario.seed if seed is None else seed
    started = time.perf_counter()
    model = BlinaModel(loaded.scenario, seed=seed, threads=threads)
    writer = open_writer(model, out, run_attrs(loaded, seed, command_line), force)
    try:
        simulate(model, writer, quiet=quiet, checkpoint_every_h=checkpoint_every_h)
    except BaseException:
        writer.close(complete=False)
        raise
    path = writer.close(complete=True)
    return RunSummary(path, seed, model.time_min / 60.0, time.perf_counter() - started, model.observables())


def resume_run(path: Path, *, threads: int = 1, quiet: bool = False,
               checkpoint_every_h: float | None = None) -> RunSummary:
    """Continue an interrupted run from its last checkpoint, into the same file."""
    attrs = read_attrs(path)
    loaded = load_scenario_text(attrs["scenario_resolved"], filename=f"{path}:scenario_resolved")
    started = time.perf_counter()
    writer, _step, state = RunWriter.reopen_for_resume(path)
    model = BlinaModel(loaded.scenario, seed=int(attrs["seed"]), threads=threads)
    model.restore(state)
    try:
        simulate(model, writer, quiet=quiet, checkpoint_every_h=checkpoint_every_h)
    except BaseException:
        writer.close(complete=False)
        raise
    final = writer.close(complete=True)
    return RunSummary(final, int(attrs["seed"]), model.time_min / 60.0,
                      time.perf_counter() - started, model.observables())


def default_out(name: str, seed: int) -> Path:
    return Path(os.getcwd()) / f"{name}_seed{seed}.h5"
