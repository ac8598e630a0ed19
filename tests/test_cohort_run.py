"""Cohorts on Dask: same results with 1 and 2 workers, resume after an interruption, a failing
patient isolated, a lost worker's patients rerun, the command line and the figure."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from blinasim.cli import main
from blinasim.cohort.cohortfile import DONE, FAILED, compare_cohorts, read_cohort
from blinasim.cohort.execute import run_cohort
from blinasim.cohort.spec import load_cohort
from blinasim.runfile import read_timeseries

TINY = textwrap.dedent("""\
    # Small, short patients: a day and two hours of a quarter-size standard cycle.
    name: tiny
    scenario: standard_cycle
    seed: 5
    patients: 6
    series_every_h: 2
    set:
      duration_h: 26
      compartments.blood.width_um: 1500
      compartments.blood.height_um: 1500
      compartments.marrow.width_um: 600
      compartments.marrow.height_um: 600
    endpoints: {assessment_day: 2}
    covariates:
      marrow_blast_percent: {distribution: uniform, low: 5, high: 60}
      treg_fraction_of_cd4: {distribution: lognormal, median: 0.06, sigma_log: 0.5, high: 0.4}
      weight_kg: {distribution: normal, mean: 60, sd: 20, low: 20, high: 120}
      height_cm: {distribution: normal, mean: 165, sd: 15, low: 110, high: 200}
    dosing: {rule: label}
""")


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cohort")
    (directory / "tiny.yaml").write_text(TINY)
    return directory


@pytest.fixture(scope="module")
def reference(cohort_dir) -> Path:
    """The tiny cohort run on one worker."""
    out = cohort_dir / "one_worker.h5"
    done = run_cohort(load_cohort(cohort_dir / "tiny.yaml"), out, workers=1, quiet=True)
    assert (done.ran, done.done, done.failed) == (6, 6, 0)
    return out


def test_two_workers_give_the_same_cohort_as_one(reference, cohort_dir):
    out = cohort_dir / "two_workers.h5"
    done = run_cohort(load_cohort(cohort_dir / "tiny.yaml"), out, workers=2, quiet=True)
    assert done.done == 6 and done.workers == 2
    assert compare_cohorts(reference, out) is None
    cohort = read_cohort(out)
    assert cohort["attrs"]["complete"] == 1
    assert list(cohort["rates"]["n"]) == [6] * len(cohort["rates"]["n"])
    assert np.isfinite(cohort["series"]["marrow_blast_fraction"]).all()
    assert np.isfinite(cohort["patients"]["cr"]).all()


def test_compare_sees_a_changed_value(reference, cohort_dir, tmp_path, capsys):
    changed = tmp_path / "changed.h5"
    changed.write_bytes(reference.read_bytes())
    assert main(["compare", str(reference), str(changed)]) == 0
    with h5py.File(changed, "r+") as f:
        f["series/blasts"][3, 5] += 1.0
    assert compare_cohorts(reference, changed) == "series/blasts differs"
    assert main(["compare", str(reference), str(changed)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "series/blasts differs"


def test_rerunning_a_finished_cohort_runs_nothing(reference, cohort_dir, tmp_path):
    copy = tmp_path / "copy.h5"
    copy.write_bytes(reference.read_bytes())
    done = run_cohort(load_cohort(cohort_dir / "tiny.yaml"), copy, workers=1, quiet=True)
    assert (done.ran, done.done) == (0, 6)
    assert compare_cohorts(reference, copy) is None


def test_patient_series_are_its_run_file(reference, cohort_dir, tmp_path, capsys):
    out = tmp_path / "patient2.h5"
    assert main(["cohort", str(cohort_dir / "tiny.yaml"), "--patient", "2", "--out", str(out), "--quiet"]) == 0
    run = read_timeseries(out)
    cohort = read_cohort(reference)
    at = np.searchsorted(run["time_h"], cohort["series"]["time_h"])
    for name in ("marrow_blast_fraction", "blood_b_per_ul", "il6_pg_per_ml", "crs_grade"):
        assert np.array_equal(run[name][at], cohort["series"][name][2]), name
    with h5py.File(out) as f:
        assert int(f.attrs["seed"]) == int(cohort["patients"]["seed"][2])


def test_an_interrupted_cohort_resumes_to_the_same_result(reference, cohort_dir, tmp_path):
    out = tmp_path / "interrupted.h5"
    command = [sys.executable, "-m", "blinasim.cli", "cohort", str(cohort_dir / "tiny.yaml"),
               "--workers", "1", "--out", str(out)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    for line in proc.stderr:  # the progress line comes with the first stored patient
        if "patients" in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    with h5py.File(out) as f:
        status = f["patients/status"][...]
        assert f.attrs["complete"] == 0 and 1 <= np.count_nonzero(status == DONE) < 6
    assert main(["cohort", str(cohort_dir / "tiny.yaml"), "--workers", "2", "--out", str(out), "--quiet"]) == 0
    assert compare_cohorts(reference, out) is None


def test_a_failing_patient_is_recorded_and_the_others_run(cohort_dir, tmp_path, capsys):
    wild = TINY.replace("{distribution: lognormal, median: 0.06, sigma_log: 0.5, high: 0.4}",
                        "{distribution: normal, mean: 0.9, sd: 0.15}")
    path = tmp_path / "wild.yaml"
    path.write_text(wild)
    out = tmp_path / "wild.h5"
    assert main(["cohort", str(path), "--workers", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    cohort = read_cohort(out)
    status, errors = cohort["patients"]["status"], cohort["patients"]["error"]
    failed = np.flatnonzero(status == FAILED)
    assert 0 < failed.size < 6 and np.count_nonzero(status == DONE) == 6 - failed.size
    for i in failed:
        assert errors[i].startswith("ValueError: covariate treg_fraction_of_cd4 = 1.")
        assert f"patient {i} failed: ValueError: covariate treg_fraction_of_cd4" in err
        assert np.isnan(cohort["series"]["blasts"][i]).all()
    assert cohort["attrs"]["complete"] == 1 and cohort["rates"]["n"][0] == 6 - failed.size
    assert f"{failed.size} patient(s) failed" in err


def test_a_lost_workers_patients_rerun(reference, cohort_dir, tmp_path):
    from distributed import Client, LocalCluster
    out = tmp_path / "lost.h5"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_a_worker(_result):
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        done = run_cohort(load_cohort(cohort_dir / "tiny.yaml"), out, scheduler=cluster.scheduler_address,
                          quiet=True, on_result=kill_a_worker)
    assert killed and done.done == 6 and done.failed == 0
    assert compare_cohorts(reference, out) is None


# --------------------------------------------------------------------------- command line

def test_cohort_refusals_are_one_line_and_touch_nothing(cohort_dir, tmp_path, capsys):
    other = tmp_path / "precious.h5"
    other.write_bytes(b"not a cohort")
    tiny = str(cohort_dir / "tiny.yaml")
    cases = [
        (["cohort", str(tmp_path / "none.yaml")], "none.yaml:1: (file): no such file, and no bundled cohort"),
        (["cohort", tiny, "--out", str(other)], "exists and is not a blinasim cohort file; use --force"),
        (["cohort", tiny, "--workers", "2", "--scheduler", "tcp://x:1"], "not allowed with argument"),
        (["cohort", tiny, "--patient", "6"], "--patient 6: the cohort has patients 0 to 5"),
        (["cohort", tiny, "--out", str(tmp_path / "no" / "x.h5")], "does not exist"),
        (["run", "cohort_mrd"], "cohort_mrd is a bundled cohort; run it with 'blinasim cohort cohort_mrd'"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("blinasim: error: ") and message in err and err.count("\n") == 1, err
    assert other.read_bytes() == b"not a cohort"


def test_a_different_cohort_in_the_output_is_refused(reference, cohort_dir, tmp_path, capsys):
    copy = tmp_path / "copy.h5"
    copy.write_bytes(reference.read_bytes())
    before = copy.read_bytes()
    assert main(["cohort", str(cohort_dir / "tiny.yaml"), "--out", str(copy), "--patients", "7"]) == 2
    assert "holds a cohort of 6 patients, not 7" in capsys.readouterr().err
    other = cohort_dir / "other_seed.yaml"
    other.write_text(TINY.replace("seed: 5", "seed: 6"))
    assert main(["cohort", str(other), "--out", str(copy)]) == 2
    assert "holds a different cohort" in capsys.readouterr().err
    assert copy.read_bytes() == before


def test_plot_draws_a_cohort_file(reference, tmp_path, capsys):
    out = tmp_path / "cohort.png"
    assert main(["plot", str(reference), "-o", str(out)]) == 0
    assert out.stat().st_size > 20_000
    assert main(["plot", str(reference), str(reference), "-o", str(out)]) == 2
    assert "is a cohort file; plot it on its own" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_refused_before_anything_is_written(cohort_dir, tmp_path, capsys, monkeypatch):
    import blinasim.cohort.execute as execute
    monkeypatch.setattr(execute, "CONNECT_TIMEOUT", "1s")
    out = tmp_path / "never.h5"
    assert main(["cohort", str(cohort_dir / "tiny.yaml"), "--scheduler", "tcp://127.0.0.1:1", "--out", str(out)]) == 2
    assert "--scheduler tcp://127.0.0.1:1: cannot connect" in capsys.readouterr().err
    assert not out.exists()
