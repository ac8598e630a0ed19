"""Running an analysis' simulations on Dask, with the cohort's cluster and its feeding rules.

The cluster (a LocalCluster of single-threaded worker processes, or a running scheduler
with ``--scheduler``) is :class:`blinasim.cohort.execute._Dask`, and tasks are handed out
as cohorts hand out patients: a few per worker beyond the ones running, results stored as
they arrive, so an interruption loses only the runs in flight.
"""
from __future__ import annotations

import signal
import sys
import time

from blinasim.cohort.execute import POLL_S, TASKS_PER_WORKER, _Dask, default_workers
from blinasim.progress import is_terminal
from blinasim.run import Interrupted

__all__ = ["AnalysisInterrupted", "Dask", "default_workers", "stream", "RunProgress"]

Dask = _Dask


class AnalysisInterrupted(Interrupted):
    """The analysis was stopped by a signal; what was stored stays, a rerun continues it."""

    def __init__(self, signum: int, what: str):
        Exception.__init__(self, f"interrupted by {signal.Signals(signum).name}; {what}; "
                                 f"rerun the same command to continue")
        self.signum, self.path = signum, None


class RunProgress:
    """Runs done of an analysis, on stderr: one redrawn line on a terminal, a line every 15 s otherwise."""

    def __init__(self, total: int, done_before: int, workers: int, *, enabled: bool = True, stream=None,
                 clock=time.perf_counter):
        self.total, self.done_before, self.workers = total, done_before, workers
        self.stream = stream or sys.stderr
        self.enabled, self.clock = enabled, clock
        self.tty = is_terminal(self.stream)
        self.started = self.last_shown = clock()
        self.finished = self.failed = 0
        self.shown = False

    def update(self, ok: bool) -> None:
        self.finished += 1
        self.failed += not ok
        now = self.clock()
        if self.enabled and (now - self.last_shown >= (0.5 if self.tty else 15.0) or self.finished == 1):
            self.last_shown = now
            self._write(("\r" if self.tty else "") + self.line(now) + ("\033[K" if self.tty else "\n"))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        done = self.done_before + self.finished
        left = (self.total - done) * elapsed / self.finished if self.finished else float("nan")
        bar = int(24 * done / max(1, self.total))
        failed = f" ({self.failed} failed)" if self.failed else ""
        return (f"[{'#' * bar}{'-' * (24 - bar)}] {done}/{self.total} runs{failed} | {self.workers} workers "
                f"| ETA {left:6.0f} s")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
            self.shown = True
        except (OSError, ValueError):
            self.enabled = False

    def close(self) -> None:
        if self.shown and self.tty:
            self._write("\n")


def stream(dask: _Dask, tasks: list, submit, store, stop, describe_stop) -> int:
    """Submit `tasks` (in order) with `submit(client, task) -> future`, keep the workers fed,
    and call `store(task, future)` for each as it finishes. Returns the number stored.

    On a signal (the `stop` flag), cancels what is queued and raises AnalysisInterrupted
    with `describe_stop()` telling what is kept.
    """
    queue = list(reversed(tasks))
    running: dict = {}
    stored = 0
    while queue or running:
        if stop.signum is not None:
            for future in running:
                future.cancel()
            raise AnalysisInterrupted(stop.signum, describe_stop())
        while queue and len(running) < dask.threads() * (1 + TASKS_PER_WORKER):
            task = queue.pop()
            running[submit(dask.client, task)] = task
        finished = [future for future in running if future.done()]
        if not finished:
            time.sleep(POLL_S)
            continue
        for future in finished:
            store(running.pop(future), future)
            stored += 1
    return stored
