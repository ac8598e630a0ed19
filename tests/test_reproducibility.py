"""Reproducibility: bit-identical datasets across repeated runs, thread counts and
interruption + resume; `verify`; and real signals (SIGINT, SIGTERM, SIGKILL) sent to the
`blinasim run` process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from blinasim.cli import main
from blinasim.model import BlinaModel
from blinasim.runfile import compare_runs, read_attrs, read_timeseries

# the standard cycle shrunk to ~2,000 cells (blood 2 mm x 2 mm, marrow 0.6 mm x 0.6 mm):
# drug, kills, births, deaths and migration in about a second per 12 hours
SMALL = """\
base: standard_cycle
name: small
duration_h: 12
compartments:
  blood: {width_um: 2000, height_um: 2000}
  marrow: {width_um: 600, height_um: 600}
"""
SNAPSHOTS = ["--snapshot-every", "3"]
STEPS_PER_H = 60  # time_step_min = 1


@pytest.fixture(autouse=True)
def sigint_not_ignored():
    """These tests interrupt runs with SIGINT. A shell started in the background (or nohup)
    hands its children SIGINT ignored, which blinasim rightly keeps; give each test the
    default disposition instead, whatever this pytest inherited."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _default_signals_in_child() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "small.yaml"
    path.write_text(SMALL)
    return path


def run(scenario: Path, out: Path, *options: str) -> int:
    return main(["run", str(scenario), "--out", str(out), "--quiet", *options])


@pytest.fixture(scope="module")
def reference(scenario, tmp_path_factory) -> Path:
    """An uninterrupted run with checkpoints and snapshots (checkpoints are not data)."""
    out = tmp_path_factory.mktemp("reference") / "reference.h5"
    assert run(scenario, out, "--checkpoint-every", "2", *SNAPSHOTS) == 0
    return out


def test_reference_run_has_dynamics(reference):
    ts = read_timeseries(reference)
    assert len(ts["time_h"]) == 12 * 6 + 1
    assert ts["kills_cumulative"][-1] > 0 and ts["drug_pg_per_ml"][-1] > 0
    with h5py.File(reference, "r") as f:
        assert f["events/kills/time_h"].shape[0] == ts["kills_cumulative"][-1]
        np.testing.assert_array_equal(f["snapshots/times/time_h"][...], [0, 3, 6, 9, 12])
        assert int(f["checkpoint"].attrs["step"]) == 10 * STEPS_PER_H


def test_repeated_run_is_bit_identical(scenario, reference, tmp_path):
    again = tmp_path / "again.h5"
    assert run(scenario, again, *SNAPSHOTS) == 0
    assert compare_runs(reference, again) is None
    assert read_attrs(again)["created"]  # timestamps are attributes, which are not compared


def test_thread_count_does_not_change_results(scenario, tmp_path):
    one, two = tmp_path / "threads1.h5", tmp_path / "threads2.h5"
    options = ["--set", "duration_h=4", *SNAPSHOTS]
    assert run(scenario, one, *options) == 0
    # in a process of its own: OpenMP threads that spin while waiting are very slow on a busy
    # machine (the wait policy changes the speed only, never the results)
    done = subprocess.run([sys.executable, "-m", "blinasim", "run", str(scenario), "--out", str(two), "--quiet",
                           "--threads", "2", *options], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_WAIT_POLICY": "passive"})
    assert done.returncode == 0, done.stderr
    assert read_attrs(two)["threads"] == 2
    assert compare_runs(one, two) is None


def test_different_seeds_differ(scenario, reference, tmp_path):
    other = tmp_path / "seed2.h5"
    assert run(scenario, other, "--seed", "2", *SNAPSHOTS) == 0
    difference = compare_runs(reference, other)
    assert difference is not None and difference.dataset == "timeseries"


def interrupt_at(monkeypatch, *steps: int) -> None:
    """Send this process SIGINT when the model reaches each of `steps` (one per run)."""
    original, pending = BlinaModel.step, list(steps)

    def step(self):
        original(self)
        if pending and self.steps == pending[0]:
            pending.pop(0)
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(BlinaModel, "step", step)


def test_interrupted_and_resumed_run_is_bit_identical(scenario, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "resumed.h5"
    # stopped at 5 h 5 min (last checkpoint at 4 h), then again at 9 h (checkpoint at 8 h)
    interrupt_at(monkeypatch, 5 * STEPS_PER_H + 5, 9 * STEPS_PER_H)
    assert run(scenario, out, "--checkpoint-every", "2", *SNAPSHOTS) == 130
    err = capsys.readouterr().err
    assert err == (f"blinasim: interrupted by SIGINT; partial run kept in {out} (complete=0); "
                   f"'blinasim resume {out}' continues it\n")
    assert read_attrs(out)["complete"] == 0 and not Path(f"{out}.partial").exists()
    np.testing.assert_allclose(read_timeseries(out)["time_h"][-1], 5.0)  # every recorded row is kept

    assert main(["resume", str(out), "--quiet"]) == 130
    assert read_attrs(out)["complete"] == 0
    np.testing.assert_allclose(read_timeseries(out)["time_h"][-1], 9.0)

    assert main(["resume", str(out)]) == 0
    summary = capsys.readouterr().out
    assert summary.startswith(f"wrote {out}\nsimulated 0.50 days") and "(resumed at day 0.33)" in summary
    assert read_attrs(out)["complete"] == 1
    assert compare_runs(reference, out) is None
    assert len(read_attrs(out)["resumed"].splitlines()) == 2


def test_run_without_checkpoint_resumes_from_the_start(scenario, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "nocheckpoint.h5"
    interrupt_at(monkeypatch, 3 * STEPS_PER_H)
    assert run(scenario, out, *SNAPSHOTS) == 130
    assert "continues it" not in capsys.readouterr().err
    partial = Path(f"{out}.partial")
    out.rename(partial)  # as a killed run leaves it; resume takes either name
    assert main(["resume", str(partial)]) == 0
    assert "(no checkpoint: restarted from the beginning)" in capsys.readouterr().out
    assert out.is_file() and not partial.exists()
    assert compare_runs(reference, out) is None


def test_verify_passes_on_a_fresh_file(reference, capsys):
    assert main(["verify", str(reference)]) == 0
    assert capsys.readouterr().out == f"{reference}: every dataset matches a rerun of its scenario with seed 1\n"


@pytest.mark.parametrize("dataset, row", [("timeseries/blasts", 40), ("snapshots/cells/x", 7)])
def test_verify_fails_on_altered_data(reference, tmp_path, capsys, dataset, row):
    altered = tmp_path / "altered.h5"
    altered.write_bytes(reference.read_bytes())
    with h5py.File(altered, "r+") as f:
        f[dataset][row] = f[dataset][row] + 1.0
    assert main(["verify", str(altered)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{altered}: differs from a rerun with seed 1: {dataset} differs first at time_h=")
    assert f"(row {row})" in out


# --------------------------------------------------------------------------- real signals

# the same small scenario for 24 hours: a few seconds, so that it can be signalled mid-run
LONG = ["--set", "duration_h=24", "--checkpoint-every", "1", "--snapshot-every", "6"]


@pytest.fixture(scope="module")
def long_reference(scenario, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("long") / "long.h5"
    assert run(scenario, out, *LONG) == 0
    return out


def start_run(scenario: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "blinasim", "run", str(scenario), "--out", str(out),
                             "--quiet", *LONG], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals_in_child)


def wait_for_checkpoint(process: subprocess.Popen, partial: Path, step: int, timeout: float = 900.0) -> None:
    """Wait until the running process has saved a checkpoint at `step` or later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before it was signalled: {process.communicate()}"
        if partial.exists():
            try:  # the file is being written: what is read may be stale or unreadable
                with h5py.File(partial, "r", locking=False) as f:
                    if "checkpoint" in f and int(f["checkpoint"].attrs["step"]) >= step:
                        return
            except Exception:  # noqa: BLE001 - any read error just means "not yet"
                pass
        time.sleep(0.05)
    process.kill()
    pytest.fail("no checkpoint appeared in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_keeps_a_readable_incomplete_file(scenario, long_reference, tmp_path, signum):
    out = tmp_path / "signalled.h5"
    process = start_run(scenario, out)
    wait_for_checkpoint(process, Path(f"{out}.partial"), 2 * STEPS_PER_H)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum
    assert stdout == ""
    assert stderr == (f"blinasim: interrupted by {signal.Signals(signum).name}; partial run kept in {out} "
                      f"(complete=0); 'blinasim resume {out}' continues it\n")
    assert out.is_file() and not Path(f"{out}.partial").exists()
    assert read_attrs(out)["complete"] == 0
    with xr.open_dataset(out, engine="h5netcdf", group="timeseries") as ds:
        rows = ds.sizes["time_h"]
        assert 2 * 6 + 1 <= rows < 24 * 6 + 1
        np.testing.assert_allclose(ds["time_h"].values, np.arange(rows) / 6)
    with xr.open_dataset(out, engine="h5netcdf", group="events/kills") as ds:
        assert ds.sizes["event"] > 0
    reference_rows = read_timeseries(long_reference)
    recorded = read_timeseries(out)
    for name, values in recorded.items():  # what was kept is what an uninterrupted run records
        np.testing.assert_array_equal(values, reference_rows[name][:rows], err_msg=name)


def test_sigkill_leaves_only_partial_and_resume_completes_it(scenario, long_reference, tmp_path, capsys):
    out = tmp_path / "killed.h5"
    partial = Path(f"{out}.partial")
    process = start_run(scenario, out)
    wait_for_checkpoint(process, partial, 3 * STEPS_PER_H)
    time.sleep(0.2)  # be somewhere between checkpoints (or within one); any point is valid
    process.kill()
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists() and partial.exists()

    assert main(["resume", str(out), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert out.is_file() and not partial.exists()
    assert read_attrs(out)["complete"] == 1
    assert compare_runs(long_reference, out) is None
