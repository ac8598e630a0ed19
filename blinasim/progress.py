"""A small progress display on stderr: simulated time, cells and speed."""
from __future__ import annotations

import sys
import time

SILENT_S = 2.0
"""Nothing is shown for runs (or resumed parts of runs) that finish within this many seconds."""


def is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Redraws one line on a terminal (every 0.5 s); prints a line every 15 s otherwise.

    The rate and the estimated time left count only the steps done since `start_step`
    (the checkpoint a resumed run started from).
    """

    def __init__(self, total_steps: int, dt_min: float, *, enabled: bool = True, stream=None,
                 start_step: int = 0, clock=time.perf_counter):
        self.total_steps = max(1, total_steps)
        self.dt_min = dt_min
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.clock = clock
        self.tty = is_terminal(self.stream)
        self.start_step = start_step
        self.started = clock()
        self.last_shown = self.started
        self.last = (start_step, 0)
        self.shown = False

    def update(self, step: int, cells: int) -> None:
        if not self.enabled:
            return
        self.last = (step, cells)
        now = self.clock()
        if now - self.started < SILENT_S or now - self.last_shown < (0.5 if self.tty else 15.0):
            return
        self.last_shown = now
        self._draw(step, cells, now)

    def line(self, step: int, cells: int, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        done = min(1.0, step / self.total_steps)
        sim_days = step * self.dt_min / 1440.0
        days_done = (step - self.start_step) * self.dt_min / 1440.0
        rate = days_done / elapsed
        left = (self.total_steps - step) * self.dt_min / 1440.0
        eta = f"{left / rate:5.0f} s" if rate > 0 else "    ? s"
        width = 24
        bar = "#" * int(width * done) + "-" * (width - int(width * done))
        return (f"[{bar}] day {sim_days:6.2f}/{self.total_steps * self.dt_min / 1440.0:.2f} "
                f"| {cells:,} cells | {rate:5.2f} sim-days/s | ETA {eta}")

    def _draw(self, step: int, cells: int, now: float) -> None:
        text = self.line(step, cells, now)
        try:
            self.stream.write(("\r" + text + "\033[K") if self.tty else (text + "\n"))
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not stop the run
            self.enabled = False
            return
        self.shown = True

    def close(self) -> None:
        """On a terminal, draw the last state and end the line (only if anything was shown)."""
        if self.shown and self.tty:
            self._draw(*self.last, self.clock())
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self.shown = False


class CohortProgress:
    """Patients done of a cohort, with failures, workers and time left, on stderr.

    Redraws one line on a terminal (every 0.5 s); prints a line every 15 s otherwise.
    Failed patients are reported on their own line as they come in.
    """

    def __init__(self, patients: int, done_before: int, workers: int, *, enabled: bool = True,
                 stream=None, clock=time.perf_counter):
        self.patients, self.done_before, self.workers = patients, done_before, workers
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.clock = clock
        self.tty = is_terminal(self.stream)
        self.started = self.last_shown = clock()
        self.finished = self.failed = 0
        self.shown = False

    def update(self, result) -> None:
        self.finished += 1
        self.failed += not result.ok
        if not self.enabled:
            return
        if not result.ok:
            self._write(("\r\033[K" if self.tty and self.shown else "")
                        + f"patient {result.index} failed: {result.error}\n")
        now = self.clock()
        if now - self.last_shown >= (0.5 if self.tty else 15.0) or self.finished == 1:
            self.last_shown = now
            self._draw(now)

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        total_done = self.done_before + self.finished
        left = self.patients - total_done
        per_patient = elapsed / self.finished if self.finished else float("nan")
        eta = f"{left * per_patient:6.0f} s" if self.finished else "     ? s"
        width = 24
        bar_done = int(width * total_done / max(1, self.patients))
        failed = f" ({self.failed} failed)" if self.failed else ""
        return (f"[{'#' * bar_done}{'-' * (width - bar_done)}] {total_done}/{self.patients} patients"
                f"{failed} | {self.workers} workers | {per_patient * self.workers:6.1f} s/patient "
                f"| ETA {eta}")

    def _draw(self, now: float) -> None:
        text = self.line(now)
        self._write(("\r" + text + "\033[K") if self.tty else (text + "\n"))
        self.shown = True

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not stop the cohort
            self.enabled = False

    def close(self) -> None:
        if self.shown and self.tty:
            self._draw(self.clock())
            self._write("\n")
        self.shown = False
