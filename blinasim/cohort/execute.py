"""Run a cohort's patients on Dask and stream their results into the cohort file.

A LocalCluster of single-threaded worker processes by default, or any running Dask
scheduler. Patients are handed out a few per worker at a time (so an interruption leaves
little queued work and the scheduler holds few tasks), written to the file as they finish,
and a rerun of the same command skips the patients already done. A patient that raises is
recorded as failed; a patient whose worker dies is rerun by Dask on another worker, and
recorded as failed only if its workers keep dying (Dask's KilledWorker).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import platform
import signal
import time
from dataclasses import dataclass

import numpy as np

from blinasim import __version__
from blinasim.cohort.cohortfile import DONE, FAILED, CohortFile, CohortFileError, is_cohort_file
from blinasim.cohort.patient import (PatientDraw, PatientResult, draw_patient, initial_cells, patient_task,
                                     run_patient, series_times_h)
from blinasim.progress import CohortProgress
from blinasim.run import Interrupted, StopFlag, library_versions

POLL_S = 0.2
CONNECT_TIMEOUT = "20s"
"""How long `--scheduler` tries to reach the scheduler."""
TASKS_PER_WORKER = 2
"""Patients queued per worker thread beyond the ones running."""


class CohortInterrupted(Interrupted):
    """The cohort was stopped by a signal; the patients done so far stay in the file."""

    def __init__(self, signum: int, path: pathlib.Path, done: int, patients: int):
        Exception.__init__(self, f"interrupted by {signal.Signals(signum).name}; {done} of {patients} "
                                 f"patients are stored in {path}; rerun the same command to continue")
        self.signum, self.path = signum, path


@dataclass(frozen=True)
class CohortRun:
    """What one `blinasim cohort` invocation did."""
    path: pathlib.Path
    patients: int
    ran: int
    done: int
    failed: int
    wall_s: float
    workers: int


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _existing_output(out: pathlib.Path, patients: int, force: bool, identity: str) -> CohortFile | None:
    """The same cohort already in `out` (to continue), or None when `out` is to be created.

    Refuses, before anything is written, an output it must not touch.
    """
    if out.is_dir():
        raise CohortFileError(f"{out} is a directory, not a cohort file name")
    if not out.parent.is_dir():
        raise CohortFileError(f"{out}: directory {out.parent} does not exist")
    if not out.exists() or force:
        return None
    if not is_cohort_file(out):
        raise CohortFileError(f"{out} exists and is not a blinasim cohort file; use --force to replace it")
    existing = CohortFile.open(out)
    if existing.identity == identity:
        return existing
    existing_patients = existing.patients
    existing.close()
    if existing_patients != patients:
        raise CohortFileError(f"{out} holds a cohort of {existing_patients} patients, not {patients}; "
                              f"--patients {existing_patients} continues it (if it is this cohort); "
                              f"or use another --out")
    raise CohortFileError(f"{out} holds a different cohort (its cohort file, base scenario, seed, "
                          f"number of patients or blinasim version differ); use --force to replace it or another --out")


def _create_output(spec, out: pathlib.Path, draws: list[PatientDraw], attrs: dict) -> CohortFile:
    times = series_times_h(spec.base.scenario.duration_h, spec.settings.series_every_h)
    try:
        return CohortFile.create(out, attrs, draws, times)
    except OSError as exc:
        raise CohortFileError(f"{out}: cannot write the cohort file ({str(exc).splitlines()[0]})") from None


def cohort_attrs(spec, patients: int, command_line: str) -> dict:
    return {
        "name": spec.name, "description": spec.settings.description,
        "identity": spec.identity(patients), "seed": spec.settings.seed, "patients": patients,
        "series_every_h": spec.settings.series_every_h,
        "cohort_yaml": spec.source_text, "cohort_file": spec.file,
        "cohort_resolved": json.dumps(dataclasses.asdict(spec.settings), sort_keys=True),
        "base_scenario_yaml": spec.base.resolved_yaml, "blinasim_version": __version__,
        "command_line": command_line, "platform": platform.platform(),
        "library_versions": library_versions(),
    }


class _Dask:
    """A Dask client on a new LocalCluster, or on the scheduler at `address`."""

    def __init__(self, workers: int | None, address: str | None):
        from distributed import Client, LocalCluster
        self.cluster = None
        if address:
            try:
                self.client = Client(address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise CohortFileError(f"--scheduler {address}: cannot connect ({str(exc).splitlines()[0]})") from None
        else:  # the scheduler's HTTP server takes a free port (':0'), never a warning about 8787
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", silence_logs=logging.ERROR)
            self.client = Client(self.cluster)

    def threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _result_of(future, index: int) -> PatientResult:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: its workers kept dying
        lines = str(exc).splitlines()
        return PatientResult(index, False, f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": "))


def run_cohort(spec, out: pathlib.Path, *, patients: int | None = None, workers: int | None = None,
               scheduler: str | None = None, force: bool = False, quiet: bool = False,
               command_line: str = "", on_result=None) -> CohortRun:
    """Run every patient not yet done in `out`; returns what was done.

    Raises CohortFileError (nothing written) for an output it must not touch and
    Interrupted after SIGINT/SIGTERM/SIGHUP (finished patients are kept; rerun to continue).
    `on_result(result)` is called after each patient is stored.
    """
    out = pathlib.Path(out)
    patients = patients or spec.settings.patients
    workers = None if scheduler else (workers or default_workers())
    attrs = cohort_attrs(spec, patients, command_line)
    started = time.perf_counter()
    with StopFlag() as stop:
        cohort = _existing_output(out, patients, force, attrs["identity"])
        if cohort is not None and not np.any(cohort.status() != DONE):
            cohort.write_summary()
            cohort.close()
            return CohortRun(out, patients, 0, patients, 0, time.perf_counter() - started, 0)
        try:
            dask = _Dask(workers, scheduler)
        except BaseException:
            if cohort is not None:
                cohort.close()
            raise
        try:
            draws = [draw_patient(spec, i) for i in range(patients)]  # once, for the file and the tasks
            cohort = cohort or _create_output(spec, out, draws, attrs)
            cohort.set_attrs({"command_line": command_line})
            return _run(spec, cohort, draws, dask, stop, quiet, started, on_result)
        finally:
            dask.close()
            if cohort is not None:
                cohort.close()


def _run(spec, cohort: CohortFile, draws: list[PatientDraw], dask: _Dask, stop, quiet, started,
         on_result) -> CohortRun:
    todo = [int(i) for i in np.flatnonzero(cohort.status() != DONE)]
    threads = dask.threads()
    cohort.set_attrs({"workers": threads})
    progress = CohortProgress(cohort.patients, cohort.patients - len(todo), threads, enabled=not quiet)
    try:
        ran = _stream(spec, cohort, draws, todo, dask, stop, progress, on_result)
    finally:
        progress.close()
        cohort.write_summary()
    status = cohort.status()
    return CohortRun(cohort.path, cohort.patients, ran, int(np.count_nonzero(status == DONE)),
                     int(np.count_nonzero(status == FAILED)), time.perf_counter() - started, threads)


def _stream(spec, cohort: CohortFile, draws: list[PatientDraw], todo: list[int], dask: _Dask, stop,
            progress, on_result) -> int:
    """Keep the workers fed, largest patients first; store each result as it arrives.

    Starting the patients with the most cells first (longest-processing-time order) keeps
    workers from idling while one long patient finishes. Returns the patients stored.
    """
    queue = sorted(todo, key=lambda index: (initial_cells(spec, draws[index]), -index))
    running: dict = {}
    stored = 0
    prefix = spec.identity(cohort.patients)[:12]
    while queue or running:
        if stop.signum is not None:
            for future in running:
                future.cancel()
            done = int(np.count_nonzero(cohort.status() == DONE))
            raise CohortInterrupted(stop.signum, cohort.path, done, cohort.patients)
        while queue and len(running) < dask.threads() * (1 + TASKS_PER_WORKER):
            index = queue.pop()
            task = patient_task(spec, draws[index])
            future = dask.client.submit(run_patient, task, key=f"patient-{index}-{prefix}", pure=False)
            running[future] = index
        finished = [future for future in running if future.done()]
        if not finished:
            time.sleep(POLL_S)
            continue
        for future in finished:
            result = _result_of(future, running.pop(future))
            cohort.write_result(result)
            stored += 1
            progress.update(result)
            if on_result is not None:
                on_result(result)
    return stored
