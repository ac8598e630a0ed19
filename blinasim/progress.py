"""A small progress display on stderr: simulated time, cells and speed."""
from __future__ import annotations

import sys
import time

SILENT_S = 2.0
"""Nothing is shown for runs (or resumed parts of runs) that finish within this many seconds."""


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
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
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
