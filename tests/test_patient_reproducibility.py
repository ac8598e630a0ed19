"""The patient at full scale stays bit-identical across repeats, thread counts and resume:
sentinel splitting, re-weighted arrivals from the niche, quiet stepping and the marrow
assessments all run in this small four-day course."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_reproducibility import interrupt_at, run, sigint_not_ignored  # noqa: F401 (an autouse fixture)

from blinasim.cli import main
from blinasim.runfile import compare_runs, read_attrs, read_timeseries

# full_course shrunk to ~4,000 cells: one infusion day, three drug-free days (quiet from
# ~day 2.5), assessments on days 1, 3 and 4; a floor of 400 sentinels forces splitting
SMALL_PATIENT = """\
base: full_course
name: small_patient
duration_h: 96
schedule:
  cycles:
    - length_days: 2
      infusions:
        - {from_day: 1, to_day: 1, ug_per_day: 28}
    - length_days: 2
patient: {min_blast_agents: 400, followup_assessment_days: 1}
compartments:
  blood: {width_um: 400, height_um: 400}
  marrow: {width_um: 400, height_um: 400}
  marrow_niche: {width_um: 400, height_um: 400}
  lymph_node: {width_um: 150, height_um: 150}
  vessel_wall: {width_um: 500, height_um: 500}
  cns: {width_um: 2000, height_um: 2000}
"""
STEPS_PER_H = 60


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("patient") / "small_patient.yaml"
    path.write_text(SMALL_PATIENT)
    return path


@pytest.fixture(scope="module")
def reference(scenario, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "reference.h5"
    assert run(scenario, out, "--checkpoint-every", "12") == 0
    return out


def test_the_small_course_exercises_the_patient_scale(reference):
    ts = read_timeseries(reference)
    assert ts["blasts"][0] > 1e10                       # patient scale
    assert np.any(ts["blast_agents"] != ts["blasts"])
    assert ts["contacts_stepped"][-1] == 0.0 and ts["contacts_stepped"][10] == 1.0
    with h5py.File(reference, "r") as f:
        assert f["events/assessments/time_h"][...].tolist() == [24.0, 72.0, 96.0]
        assert np.all(f["events/kills/patient_cells"][...] >= 1.0)


def test_repeated_run_is_bit_identical(scenario, reference, tmp_path):
    again = tmp_path / "again.h5"
    assert run(scenario, again) == 0
    assert compare_runs(reference, again) is None


def test_thread_count_does_not_change_results(scenario, reference, tmp_path):
    two = tmp_path / "threads2.h5"
    done = subprocess.run([sys.executable, "-m", "blinasim", "run", str(scenario), "--out", str(two), "--quiet",
                           "--threads", "2"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_WAIT_POLICY": "passive"})
    assert done.returncode == 0, done.stderr
    assert read_attrs(two)["threads"] == 2
    assert compare_runs(reference, two) is None


def test_interrupted_and_resumed_course_is_bit_identical(scenario, reference, tmp_path, monkeypatch):
    out = tmp_path / "resumed.h5"
    interrupt_at(monkeypatch, 60 * STEPS_PER_H + 7)   # in the quiet stretch, after a checkpoint at 48 h
    assert run(scenario, out, "--checkpoint-every", "12") == 130
    assert main(["resume", str(out), "--quiet"]) == 0
    assert compare_runs(reference, out) is None
