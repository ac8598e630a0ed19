"""A small progress display on stderr: simulated time, cells and speed."""
from __future__ import annotations

import sys
import time


class Progress:
    """Redraws one line on a terminal (every 0.5 s); prints a line every 15 s otherwise.

    Nothing is shown for runs that finish within the first two seconds.
    """

    def __init__(self, total_steps: int, dt_min: float, *, enabled: bool = True, stream=None):
        self.total_steps = max(1, total_steps)
        self.dt_min = dt_min
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.started = time.perf_counter()
        self.last_shown = self.started
        self.shown = False

    def update(self, step: int, cells: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        elapsed = now - self.started
        if elapsed < 2.0 or now - self.last_shown < (0.5 if self.tty else 15.0):
            return
        self.last_shown = now
        done = step / self.total_steps
        sim_days = step * self.dt_min / 1440.0
        rate = sim_days / elapsed
        eta = elapsed * (1.0 - done) / done if done > 0 else float("nan")
        width = 24
        bar = "#" * int(width * done) + "-" * (width - int(width * done))
        line = (f"[{bar}] day {sim_days:6.2f}/{self.total_steps * self.dt_min / 1440.0:.2f} "
                f"| {cells:,} cells | {rate:5.2f} sim-days/s | ETA {eta:5.0f} s")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self.shown = False
