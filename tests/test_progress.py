"""The progress displays on a terminal (tqdm) for cohorts, and with a broken stderr.

The run display on a terminal and in a log, and the cohort's log line, are tested in
tests/test_cli.py and tests/test_cohort_units.py.
"""
from __future__ import annotations

import io

from blinasim.cohort.patient import PatientResult
from blinasim.progress import CohortProgress, Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class BrokenTerminal(FakeTerminal):
    def write(self, text):
        raise OSError("stderr is gone")


def test_cohort_bar_on_a_terminal_reports_failures_on_their_own_line():
    now = [0.0]
    stream = FakeTerminal()
    progress = CohortProgress(10, 2, 2, stream=stream, clock=lambda: now[0])
    assert "2/10 patients" in stream.getvalue() and "2 workers" in stream.getvalue()
    for i in range(4):
        now[0] += 10.0
        progress.update(PatientResult(i, ok=i != 1, error="" if i != 1 else "ValueError: bad"))
    progress.close()
    text = stream.getvalue()
    assert "\rpatient 1 failed: ValueError: bad\n" in text  # the bar cleared, the line, the bar again
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("6/10 patients |") and "1 failed, 2 workers" in last
    assert text.endswith("\n")


def test_a_broken_stderr_switches_the_display_off():
    clock = iter(float(t) for t in range(0, 1000, 5)).__next__
    progress = Progress(2880, 1.0, stream=BrokenTerminal(), clock=clock)
    for step in range(100, 2880, 100):
        progress.update(step, 10)
    progress.close()
    assert not progress.enabled
    cohort = CohortProgress(3, 0, 1, stream=BrokenTerminal(), clock=clock)
    cohort.update(PatientResult(0, ok=False, error="x"))
    cohort.close()
    assert not cohort.enabled and cohort.failed == 1
