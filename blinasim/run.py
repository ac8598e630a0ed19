"""Run a scenario: model -> run file, with progress, interruption, checkpoints and snapshots.

A run writes ``FILE.partial`` and renames it to ``FILE`` when it ends (complete=1) or is
stopped by SIGINT/SIGTERM/SIGHUP or a failure (complete=0, everything recorded so far kept).
An existing ``FILE`` (``--force``) is replaced only by a complete run: an unfinished one stays
``FILE.partial`` next to it. Signals only set a flag that the stepping loop checks between
steps, so they never land inside an HDF5 write. A run killed outright (SIGKILL, power loss)
leaves only ``FILE.partial``; ``resume`` continues either kind from the last checkpoint.

One process at a time writes a run file: ``FILE.lock`` is locked (``flock``) for the whole
run or resume, and another run or resume of the same ``FILE`` is refused while it is held.
A full disk (or another write error) stops the run at once with :class:`RunFailed`; the
file keeps its last checkpoint and ``resume`` continues it once there is space.
"""
from __future__ import annotations

import errno
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
from blinasim.assays import RESPONSES
from blinasim.model import BlinaModel, variable_meta
from blinasim.populations import KIND_CODE
from blinasim.progress import Progress
from blinasim.runfile import (
    Column,
    Difference,
    NotARunFile,
    RunWriter,
    WriteFailed,
    compare_runs,
    read_attrs,
)
from blinasim.scenario import LoadedScenario, ScenarioError, load_scenario_text
from blinasim.schema import CELL_KINDS
from blinasim.summary import RunSummary

PARTIAL_SUFFIX = ".partial"


class RunError(Exception):
    """A problem with the files or options of a run, reported as one line (exit code 2)."""


class RunFailed(Exception):
    """The run could not go on (a full disk, a write error, no memory); one line, exit code 3.

    Whatever was written is kept (``path``, None if nothing was), with ``complete = 0``.
    """

    def __init__(self, text: str, path: Path | None = None):
        super().__init__(text)
        self.path = path


class Interrupted(Exception):
    """The run was stopped by SIGINT or SIGTERM; the file (if any) keeps what was recorded.

    `path` is where the file is: the run file, or ``FILE.partial`` when an existing run file
    was not replaced; `final` is the run file's name (for ``resume``).
    """

    def __init__(self, signum: int, path: Path | None, resumable: bool = False, final: Path | None = None):
        name = signal.Signals(signum).name
        final = final or path
        if path is None:
            text = f"interrupted by {name} before anything was written"
        else:
            kept = "" if path == final else f"; {final} was not replaced"
            hint = f"; 'blinasim resume {final}' continues it" if resumable else ""
            text = f"interrupted by {name}; partial run kept in {path} (complete=0){kept}{hint}"
        super().__init__(text)
        self.signum = signum
        self.path = path


class _Stopped(Exception):
    """Raised by :func:`simulate` when a stop signal arrived (the caller closes the file)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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
            Column("compartment", "i1", "", "where it died", flags=model.geometry.names),
            Column("patient_cells", "f8", "cells", "patient cells the killed agent stood for (its weight)")]


def assessment_columns() -> list[Column]:
    """Columns of the ``assessments`` table (marrow aspirates after cycles and in follow-up)."""
    return [Column("time_h", "f8", "h", "time of the aspirate"),
            Column("cycle", "i2", "", "cycle the assessment closes or falls in (from 1)"),
            Column("blast_percent", "f8", "%", "marrow blasts by morphology"),
            Column("flow_mrd", "f8", "1", "MRD by flow: leukaemic events / cells analysed; 0 if below the limit of detection"),
            Column("ngs_mrd", "f8", "1", "MRD by NGS: clonotype genomes / genomes sequenced; 0 if below the limit of detection"),
            Column("marrow_blast_fraction", "f8", "1", "true marrow blast fraction the assays sampled"),
            Column("blood_blasts_per_ul", "f8", "cells/uL", "blasts in blood"),
            Column("extramedullary_blasts", "f8", "cells", "blasts at extramedullary sites"),
            Column("cns_blasts", "f8", "cells", "blasts in the CNS"),
            Column("csf_blasts_per_ul", "f8", "cells/uL", "blasts per uL of cerebrospinal fluid (CNS-3 at >= 5)"),
            Column("cd19_negative_share", "f8", "1", "share of all blasts in a CD19-negative clone"),
            Column("response", "i1", "", "response at this assessment", flags=RESPONSES),
            Column("follow_up", "i1", "", "1 in follow-up (a cycle without an infusion)")]


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
    """The event tables of a run file: kills; interventions when the model has a protocol;
    assessments when it has a marrow."""
    tables = {"kills": kill_columns(model)}
    interventions = intervention_columns() if hasattr(model, "protocol") else None
    if interventions is not None:
        tables["interventions"] = interventions
    if getattr(model, "assessment", None) is not None:
        tables["assessments"] = assessment_columns()
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


MAX_THREADS = 512
"""More kernel threads than this are refused (results never depend on the count)."""


def _check_threads(threads: int) -> None:
    if not 1 <= threads <= MAX_THREADS:
        raise RunError(f"--threads: expected a whole number from 1 to {MAX_THREADS}, got {threads}")


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
                raise _Stopped(stop.signum)
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


NAME_MAX = 255
"""Longest file name (bytes) where the file system does not say (POSIX's usual limit)."""
LOCK_SUFFIX = ".lock"


def _stat(path: Path, what: str = "run file"):
    """``os.stat`` of `path`, None if it does not exist; RunError if it cannot be looked at."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot use this {what} name ({_os_reason(exc)})") from None


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return _first_line(exc)


def _check_name(out: Path, option: str = "--out") -> None:
    """Refuse a run file name that cannot be written with its ``.partial`` beside it."""
    if not out.name or out.name in (".", ".."):
        raise RunError(f"{option} {str(out)!r}: expected a file name, e.g. run.h5")
    if "\0" in str(out):
        raise RunError(f"{option}: a file name cannot contain a NUL character")
    try:
        limit = os.pathconf(out.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = NAME_MAX
    length = len(os.fsencode(out.name + PARTIAL_SUFFIX))
    if length > (limit if limit and limit > 0 else NAME_MAX):
        raise RunError(f"{option} {out.name[:40]}...: the file name is too long ({length} bytes with "
                       f"'{PARTIAL_SUFFIX}', at most {limit} on this file system)")


def _check_out(out: Path, force: bool) -> None:
    """Refuse, before anything is built or written, an output the run must not touch."""
    _check_name(out)
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    parent = _stat(out.parent, "directory")
    if parent is None or not os.path.isdir(out.parent):
        raise RunError(f"{out}: directory {out.parent} does not exist")
    existing = _stat(out)
    if existing is not None and os.path.isdir(out):
        raise RunError(f"{out} is a directory, not a run file name")
    if existing is not None and not force:
        raise RunError(f"run file {out} already exists; use --force to overwrite it")
    if _stat(partial) is not None and not force:
        raise RunError(f"{partial} exists (an interrupted or running run); 'blinasim resume {out}' "
                       f"continues it, --force starts over")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise RunError(f"{out}: cannot write in directory {out.parent} (permission denied)")


class OutputLock:
    """An exclusive ``flock`` on ``FILE.lock`` while a run or resume writes ``FILE``.

    The lock file holds the owner's pid and is removed on release; a lock file left by a
    killed process is simply taken over (the kernel released its lock). Refused with
    RunError when another process holds it.
    """

    def __init__(self, final: Path):
        self.path = final.with_name(final.name + LOCK_SUFFIX)
        self.final = final
        self.fd: int | None = None

    def __enter__(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                raise RunError(f"{self.final}: cannot write in directory {self.final.parent} "
                               f"({_os_reason(exc)})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = _read_pid(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    who = f" (pid {owner})" if owner else ""
                    raise RunError(f"{self.final} is being written by another blinasim process{who}; "
                                   f"wait for it to end, or write to another --out") from None
                raise RunError(f"{self.path}: cannot lock ({_os_reason(exc)})") from None
            try:  # the file locked must still be the one named (not removed by its last owner)
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        try:  # who holds it, for the message of a refused run (not needed to lock)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: a waiting process then retries
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


def _day(hours: float) -> str:
    return f"day {hours / 24:.2f}"


def _drive(model: BlinaModel, writer: RunWriter, stop: StopFlag, *, quiet: bool,
           checkpoint_every: int, snapshot_every: int) -> Path:
    """Simulate to the end and close the file; failures become Interrupted or RunFailed."""
    try:
        simulate(model, writer, stop, quiet=quiet, checkpoint_every=checkpoint_every,
                 snapshot_every=snapshot_every)
        return writer.close(complete=True)
    except BaseException as exc:
        where = _close_unfinished(writer)
        problem = _explain(exc, writer, model, where)
        if problem is None:
            raise
        raise problem from None


def _close_unfinished(writer: RunWriter) -> Path:
    """Close a run that did not finish (complete=0); where the file is."""
    try:
        return writer.close(complete=False)
    except WriteFailed:
        return writer.partial_path


def _explain(exc: BaseException, writer: RunWriter, model: BlinaModel, where: Path) -> Exception | None:
    """The one-line error for a run that stopped on `exc` (None: let it through)."""
    final = writer.path
    resumable = writer.has_checkpoint
    if isinstance(exc, _Stopped):
        return Interrupted(exc.signum, where, resumable=resumable, final=final)
    at = _day(model.time_min / 60.0)
    if writer.checkpoint_step is not None:
        kept = f"from its last checkpoint ({_day(writer.checkpoint_step * model.dt_min / 60.0)})"
    else:
        kept = "from the beginning (it has no checkpoint)"
    failure = writer.failed or (exc if isinstance(exc, WriteFailed) else None)
    if failure is not None:
        state = "it was frozen as it was on disk in" if failure.frozen else "partial run kept in"
        replaced = f"; {final} was not replaced" if where != final and _stat(final) is not None else ""
        return RunFailed(f"{failure}; the run stopped at {at}; {state} {where} (complete=0){replaced}; "
                         f"once there is space 'blinasim resume {final}' continues it {kept}", where)
    if isinstance(exc, MemoryError):
        replaced = f"; {final} was not replaced" if where != final and _stat(final) is not None else ""
        return RunFailed(f"out of memory at {at}; partial run kept in {where} (complete=0){replaced}; "
                         f"'blinasim resume {final}' continues it {kept}", where)
    return None


def run_scenario(loaded: LoadedScenario, out: Path, *, seed: int | None = None, force: bool = False,
                 threads: int = 1, quiet: bool = False, checkpoint_every_h: float | None = None,
                 snapshot_every_h: float | None = None, command_line: str = "") -> RunSummary:
    """Run a loaded scenario into the run file `out`; returns a summary.

    Raises RunError (nothing written) for bad options, an output that exists without
    `force` or that another process is writing; Interrupted after SIGINT/SIGTERM (the file
    then has complete=0); RunFailed when the disk is full or memory runs out.
    """
    out = Path(out)
    seed = loaded.scenario.seed if seed is None else int(seed)
    checkpoint_h = _check_hours(checkpoint_every_h, "--checkpoint-every")
    snapshot_h = _check_hours(snapshot_every_h, "--snapshot-every")
    _check_threads(threads)
    _check_out(out, force)
    started = time.perf_counter()
    with OutputLock(out), StopFlag() as stop:
        _check_out(out, force)  # again, now that no other blinasim process can change it
        try:
            model = BlinaModel(loaded.scenario, seed=seed, threads=threads)
        except MemoryError:
            raise RunFailed("out of memory while building the model; nothing was written") from None
        checkpoint_every = checkpoint_every_steps(model, checkpoint_h)
        snapshot_every = snapshot_every_steps(model, snapshot_h)
        attrs = run_attrs(loaded, seed, command_line, threads=threads,
                          checkpoint_every_h=checkpoint_h, snapshot_every_h=snapshot_h)
        if stop.signum is not None:  # stopped before anything was written
            raise Interrupted(stop.signum, None)
        try:
            writer = open_writer(model, out, attrs, force, snapshots=bool(snapshot_every))
        except WriteFailed as exc:
            raise RunFailed(f"{exc}; nothing was written") from None
        except OSError as exc:
            raise RunError(f"{out}: cannot write the run file ({_os_reason(exc)})") from None
        path = _drive(model, writer, stop, quiet=quiet, checkpoint_every=checkpoint_every,
                      snapshot_every=snapshot_every)
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
    except (OSError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise RunError(f"{path}: not a readable run file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _embedded_scenario(path: Path, attrs: dict) -> LoadedScenario:
    if not isinstance(attrs.get("scenario_resolved"), str) or "seed" not in attrs:
        raise RunError(f"{path}: not a blinasim run file (no embedded scenario and seed)")
    try:
        int(attrs["seed"])
    except (TypeError, ValueError, OverflowError):
        raise RunError(f"{path}: its seed attribute is not a whole number: {attrs['seed']!r}") from None
    try:
        return load_scenario_text(attrs["scenario_resolved"], filename=f"{path}:scenario_resolved")
    except ScenarioError as err:
        raise RunError(f"{path}: its embedded scenario no longer loads: {err}") from None


def _is_file(path: Path) -> bool:
    return _stat(path) is not None and os.path.isfile(path)


def resume_source(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(final name, file to resume from)``: ``FILE.partial`` if it exists (the newest
    attempt: a killed run, or one that did not replace an existing FILE), else FILE."""
    final = final_name(path)
    _check_name(final, "resume")
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    if _is_file(partial):
        return final, partial
    if _is_file(final):
        return final, final
    if _stat(final) is not None:
        raise RunError(f"{final} is not a run file (a directory?)")
    raise RunError(f"{final}: no such run file (nor {partial.name})")


def _float_attr(attrs: dict, key: str, path: Path) -> float:
    value = attrs.get(key, 0.0)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise RunError(f"{path}: attribute {key} is not a number: {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise RunError(f"{path}: attribute {key} is not a valid number of hours: {value!r}")
    return value


NOT_YET = ("protocol.interrupted_at_h", "protocol.resolved_at_h", "crs.onset_h", "icans.onset_h")
"""State entries that are NaN until their event happens (an interruption, CRS or ICANS onset)."""


def _check_state(template: dict, state: dict, path: Path) -> None:
    """Refuse a checkpoint whose saved state is not shaped like the model's own state."""
    def refuse(what: str):
        raise RunError(f"{path}: cannot resume: its checkpoint does not fit the model ({what})")
    missing, unknown = sorted(set(template) - set(state)), sorted(set(state) - set(template))
    if missing or unknown:
        refuse(f"missing {', '.join(missing) or 'nothing'}; unknown {', '.join(unknown) or 'nothing'}")
    lengths = set()
    for key, expected in template.items():
        value = state[key]
        if isinstance(expected, np.ndarray) and expected.ndim:
            if not isinstance(value, np.ndarray) or value.ndim != expected.ndim \
                    or value.shape[1:] != expected.shape[1:] or value.dtype.kind not in "biuf":
                refuse(f"{key} is not an array shaped like {expected.shape[1:] or 'a column'}")
            if key.startswith("pop."):
                lengths.add(len(value))
        elif isinstance(value, np.ndarray) and value.size != 1 or isinstance(value, (str, bytes)):
            refuse(f"{key} is not a single number")
        else:
            try:
                number = float(np.asarray(value).reshape(()))
            except (TypeError, ValueError):
                refuse(f"{key} is not a number")
            if not (math.isfinite(number) or key in NOT_YET):
                refuse(f"{key} is not finite")
    if len(lengths) > 1:
        refuse("its population columns differ in length")


def resume_run(path: str | os.PathLike, *, threads: int = 1, quiet: bool = False,
               checkpoint_every_h: float | None = None, command_line: str = "") -> RunSummary:
    """Continue an interrupted run from its last checkpoint, into the same file.

    `path` may be the run file, or its name when only ``FILE.partial`` is left (a killed
    run). A run without a checkpoint starts over from the beginning (its scenario and seed
    are in the file). Snapshots continue at the interval the run started with; checkpoints
    too, unless `checkpoint_every_h` is given. Everything (the file, its checkpoint, the
    model's state) is checked before the file is changed: a refused resume leaves it as it was.
    """
    _check_threads(threads)
    override_h = _check_hours(checkpoint_every_h, "--checkpoint-every")
    final, source = resume_source(path)
    with OutputLock(final), StopFlag() as stop:
        final, source = resume_source(path)  # again, now that no other blinasim process can change it
        try:
            attrs = _readable_attrs(source)
        except RunError as err:
            if source != final and _is_file(final):  # e.g. a --force run killed as it started
                raise RunError(f"{err}; it is newer than {final}: remove it to resume {final}") from None
            raise
        loaded = _embedded_scenario(source, attrs)
        try:
            complete = int(attrs.get("complete", 0))
        except (TypeError, ValueError):
            raise RunError(f"{source}: attribute complete is not 0 or 1: {attrs.get('complete')!r}") from None
        if complete == 1:
            raise RunError(f"run file {source} is complete; there is nothing to resume")
        seed = int(attrs["seed"])
        started = time.perf_counter()
        try:
            model = BlinaModel(loaded.scenario, seed=seed, threads=threads)
        except MemoryError:
            raise RunFailed("out of memory while building the model; the file was not changed") from None
        checkpoint_h = override_h or _float_attr(attrs, "checkpoint_every_h", source)
        checkpoint_every = checkpoint_every_steps(model, checkpoint_h)
        snapshot_every = snapshot_every_steps(model, _float_attr(attrs, "snapshot_every_h", source))
        template = model.state()

        def validate(step: int, state: dict | None, f) -> None:
            if bool(snapshot_every) != ("snapshots" in f):
                raise RunError(f"{source}: snapshot_every_h does not match the file's snapshots")
            if state is None:
                return
            _check_state(template, state, source)
            try:
                model.restore(state)
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - any mismatch between file and model
                raise RunError(f"{source}: cannot resume: its checkpoint does not fit the model "
                               f"({type(exc).__name__}: {_first_line(exc)})") from None
            if model.steps != step:
                raise RunError(f"{source}: cannot resume: its checkpoint is at step {step} but "
                               f"its state at step {model.steps}")

        if stop.signum is not None:
            raise Interrupted(stop.signum, None)
        try:
            writer, _step, state = RunWriter.reopen_for_resume(final, restart_without_checkpoint=True,
                                                               validate=validate)
        except (RunError, RunFailed):
            raise
        except WriteFailed as exc:
            raise RunFailed(f"{source}: cannot resume: {exc}; the file was not changed; "
                            f"free some space and resume again") from None
        except MemoryError:
            raise RunFailed(f"{source}: cannot resume: out of memory; the file was not changed") from None
        except (ValueError, OSError, KeyError, TypeError, RuntimeError, AttributeError, IndexError) as exc:
            raise RunError(f"{source}: cannot resume: {_first_line(exc)}") from None
        resumed_from_h = model.time_min / 60.0
        try:
            previous = str(attrs.get("resumed", ""))
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            entry = f"{stamp} at {resumed_from_h:g} h: {command_line or 'resume_run'}"
            writer.set_attrs({"resumed": f"{previous}\n{entry}" if previous else entry})
        except BaseException as exc:
            where = _close_unfinished(writer)
            problem = _explain(exc, writer, model, where)
            if problem is None:
                raise
            raise problem from None
        done = _drive(model, writer, stop, quiet=quiet, checkpoint_every=checkpoint_every,
                      snapshot_every=snapshot_every)
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
    if not _is_file(path):
        raise RunError(f"{path}: no such run file")
    attrs = _readable_attrs(path)
    loaded = _embedded_scenario(path, attrs)
    seed = int(attrs["seed"])
    snapshot_h = _float_attr(attrs, "snapshot_every_h", path)
    with tempfile.TemporaryDirectory(prefix="blinasim-verify-", dir=workdir) as tmp:
        rerun = Path(tmp) / "rerun.h5"
        try:
            run_scenario(loaded, rerun, seed=seed, threads=threads, quiet=quiet,
                         snapshot_every_h=snapshot_h or None)
        except Interrupted as stop:  # the rerun is thrown away with its directory
            raise Interrupted(stop.signum, None) from None
        try:
            difference = compare_runs(path, rerun)
        except NotARunFile as exc:
            raise RunError(str(exc)) from None
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise RunError(f"{path}: not a readable run file ({_first_line(exc)})") from None
    return Verification(path, seed, attrs.get("complete") == 1, difference)


def default_out(name: str, seed: int) -> Path:
    """``NAME_seedN.h5`` in the working directory (characters unsafe in file names become _;
    a name too long for a file name is shortened)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "run"
    tail = f"_seed{seed}.h5"
    room = NAME_MAX - len(tail) - max(len(PARTIAL_SUFFIX), len(LOCK_SUFFIX))
    return Path(os.getcwd()) / f"{safe[:room]}{tail}"
