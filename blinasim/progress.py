"""Progress on stderr: a tqdm bar on a terminal, a plain line every so often in a log.

On a terminal the bar is tqdm's, redrawn at most every 0.5 s. When stderr is not a
terminal (a log file, a pipe, a batch job) a carriage-return bar would be unreadable, so a
plain line is printed every 15 s instead. A closed or broken stderr never stops the work.
"""
from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

SILENT_S = 2.0
"""Nothing is shown for runs (or resumed parts of runs) that finish within this many seconds."""
TERMINAL_EVERY_S = 0.5
"""Shortest time between two redraws of the bar on a terminal."""
LOG_EVERY_S = 15.0
"""Time between two progress lines when stderr is not a terminal."""
BAR_WIDTH = 24


def is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _Bar(tqdm):
    monitor_interval = 0  # no tqdm monitor thread inside a run (signals stop runs between steps)


def _terminal_bar(total: float, initial: float, stream, clock, delay: float, unit: str,
                  bar_format: str, postfix: str | None = None) -> tqdm:
    size = _size(stream)
    bar = _Bar(total=total, initial=initial, file=stream, unit=unit, bar_format=bar_format,
               postfix=postfix, delay=delay, mininterval=TERMINAL_EVERY_S, miniters=0, smoothing=0,
               ncols=size[0], nrows=size[1], leave=True, disable=False)
    # tqdm times itself with its own clock; use ours (a fake one in the tests)
    bar._time = clock
    bar.start_t = bar.last_print_t = clock()
    return bar


def _size(stream) -> tuple[int | None, int | None]:
    """(columns, lines) of the terminal, 80 x 24 where it reports none (e.g. under `script`,
    where tqdm would draw nothing); (None, None) when unknown (tqdm then decides)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return None, None
    return size.columns or 80, size.lines or 24


def _plain_bar(done: float) -> str:
    filled = int(BAR_WIDTH * min(1.0, max(0.0, done)))
    return "#" * filled + "-" * (BAR_WIDTH - filled)


class Progress:
    """Simulated time, cells, speed and time left of a run.

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
        self.bar = None
        if enabled and self.tty:
            self.bar = self._guard(_terminal_bar, self._days(self.total_steps), self._days(start_step),
                                   self.stream, clock, SILENT_S, " sim-days",
                                   "{percentage:3.0f}%|{bar}| day {n:.2f}/{total:.2f} "
                                   "[{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]")

    def _days(self, steps: int) -> float:
        return steps * self.dt_min / 1440.0

    def _guard(self, action, *args):
        """Do a display action; a closed or broken stderr only switches the display off."""
        try:
            return action(*args)
        except (OSError, ValueError):
            self.enabled = False
            return None

    def update(self, step: int, cells: int) -> None:
        if not self.enabled:
            return
        self.last = (step, cells)
        if self.bar is not None:
            self._guard(self._advance, step, cells)
            return
        now = self.clock()
        if now - self.started < SILENT_S or now - self.last_shown < LOG_EVERY_S:
            return
        self.last_shown = now
        self._write(self.line(step, cells, now) + "\n")

    def _advance(self, step: int, cells: int) -> None:
        self.bar.set_postfix_str(f"{cells:,} cells", refresh=False)
        self.bar.update(self._days(step) - self.bar.n)

    def line(self, step: int, cells: int, now: float) -> str:
        """The plain progress line of a log."""
        elapsed = max(now - self.started, 1e-9)
        sim_days = self._days(step)
        rate = self._days(step - self.start_step) / elapsed
        left = self._days(self.total_steps - step)
        eta = f"{left / rate:5.0f} s" if rate > 0 else "    ? s"
        return (f"[{_plain_bar(step / self.total_steps)}] day {sim_days:6.2f}/{self._days(self.total_steps):.2f} "
                f"| {cells:,} cells | {rate:5.2f} sim-days/s | ETA {eta}")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not stop the run
            self.enabled = False
            return
        self.shown = True

    def close(self) -> None:
        """On a terminal, draw the last state and end the line (only if anything was shown)."""
        if self.bar is not None:
            if self.enabled:
                step, cells = self.last
                self.bar.n = self._days(step)  # close() draws this last state
                self.bar.set_postfix_str(f"{cells:,} cells", refresh=False)
            self._guard(self.bar.close)
            self.bar = None
        self.shown = False


class CohortProgress:
    """Patients done of a cohort, with failures, workers and time left, on stderr.

    A tqdm bar on a terminal; a plain line every 15 s (and at the first patient) in a log.
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
        self.bar = None
        if enabled and self.tty:
            self.bar = self._guard(_terminal_bar, patients, done_before, self.stream, clock, 0.0,
                                   " patients", "{n_fmt}/{total_fmt} patients |{bar}| "
                                   "[{elapsed}<{remaining}{postfix}]", self._postfix_text())

    def _guard(self, action, *args):
        try:
            return action(*args)
        except (OSError, ValueError):  # a closed or broken stderr must not stop the cohort
            self.enabled = False
            return None

    def _postfix_text(self) -> str:
        failed = f"{self.failed} failed, " if self.failed else ""
        return f"{failed}{self.workers} workers"

    def _postfix(self) -> None:
        self.bar.set_postfix_str(self._postfix_text(), refresh=False)

    def update(self, result) -> None:
        self.finished += 1
        self.failed += not result.ok
        if not self.enabled:
            return
        failure = None if result.ok else f"patient {result.index} failed: {result.error}"
        if self.bar is not None:
            if failure:
                self._guard(self.bar.write, failure, self.stream)
            self._guard(self._postfix)
            self._guard(self.bar.update, 1)
            return
        if failure:
            self._write(failure + "\n")
        now = self.clock()
        if now - self.last_shown >= LOG_EVERY_S or self.finished == 1:
            self.last_shown = now
            self._write(self.line(now) + "\n")

    def line(self, now: float) -> str:
        """The plain progress line of a log."""
        elapsed = max(now - self.started, 1e-9)
        total_done = self.done_before + self.finished
        left = self.patients - total_done
        per_patient = elapsed / self.finished if self.finished else float("nan")
        eta = f"{left * per_patient:6.0f} s" if self.finished else "     ? s"
        failed = f" ({self.failed} failed)" if self.failed else ""
        return (f"[{_plain_bar(total_done / max(1, self.patients))}] {total_done}/{self.patients} patients"
                f"{failed} | {self.workers} workers | {per_patient * self.workers:6.1f} s/patient "
                f"| ETA {eta}")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False
            return
        self.shown = True

    def close(self) -> None:
        if self.bar is not None:
            self._guard(self.bar.close)
            self.bar = None
        self.shown = False
