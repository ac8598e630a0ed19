"""`blinasim calibrate`: ABC-SMC (pyABC) on Dask recovers known parameters from synthetic
data of a toy model, gives the same populations with any workers and after an interruption,
and refuses bad specs and data files in one line."""
from __future__ import annotations

import logging
import re
import signal
import textwrap

import h5py
import numpy as np
import pytest

pytest.importorskip("pyabc")

from blinasim.analysis.calibration import (CalibrationResult, load_calibration, load_data,  # noqa: E402
                                           run_calibration, synthetic_data)
from blinasim.analysis.execute import AnalysisInterrupted  # noqa: E402
from blinasim.cli import main  # noqa: E402
from blinasim.scenario import ScenarioError  # noqa: E402

DECAY = textwrap.dedent("""\
    toy: decay
    seed: 2
    data: decay.csv
    population: 40
    generations: 3
    predictive_draws: 10
    parameters:
      amplitude: [50, 150]
      rate: {distribution: loguniform, low: 0.05, high: 1}
    readouts:
      y: {observable: y}
    truth: {amplitude: 100, rate: 0.3}
""")
TEMPLATE = "readout,time_h,value,sd\n" + "".join(f"y,{t},0,2\n" for t in range(11))


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    yield cluster.scheduler_address
    cluster.close()


@pytest.fixture(scope="module")
def decay(tmp_path_factory):
    """The decay toy's spec and synthetic data made by the toy at its truth."""
    directory = tmp_path_factory.mktemp("calib")
    spec_path = directory / "decay.yaml"
    spec_path.write_text(DECAY)
    (directory / "decay.csv").write_text(TEMPLATE)
    spec = load_calibration(spec_path)
    data, _, _ = load_data(spec)
    (directory / "decay.csv").write_text(synthetic_data(spec, data, spec.truth, 7))
    return spec_path


@pytest.fixture(scope="module")
def reference(decay, scheduler):
    spec = load_calibration(decay)
    data, text, _ = load_data(spec)
    return run_calibration(spec, data, text, decay.parent / "reference.db", scheduler=scheduler, quiet=True)


def test_the_posterior_covers_the_parameters_the_data_were_made_with(reference):
    result = CalibrationResult(reference)
    assert result.generations == [0, 1, 2]
    for name, true in {"amplitude": 100.0, "rate": 0.3}.items():
        low, median, high = result.interval(name)
        assert low < true < high, name
    assert (result.high - result.low)[1] < 0.5 * (1 - 0.05), "narrower than the prior"
    assert np.all(np.diff(result.epsilons) < 0), "the threshold falls every generation"
    assert result.predictive.shape == (10, 11) and np.all(np.isfinite(result.predictive))
    assert "pyabc" in result.attrs["library_versions"] and result.attrs["spec_yaml"] == DECAY


def populations(path) -> dict:
    with h5py.File(path, "r") as f:
        out = {f"populations/{t}/{k}": f["populations"][t][k][...] for t in f["populations"] for k in f["populations"][t]}
        for key in ("generations/epsilon", "generations/evaluations", "predictive/values", "predictive/draws",
                    "posterior/median"):
            out[key] = f[key][...]
    return out


def assert_same(a, b):
    pa, pb = populations(a), populations(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert np.array_equal(pa[key], pb[key]), key


def test_an_interrupted_calibration_resumes_to_the_same_populations(decay, reference, scheduler, tmp_path):
    class StopAfterGeneration0:
        signum = None

        def seen(self, t, accepted, evaluations):
            if t == 0:
                self.signum = signal.SIGINT

    spec = load_calibration(decay)
    data, text, _ = load_data(spec)
    out = tmp_path / "resumed.db"
    stop = StopAfterGeneration0()
    with pytest.raises(AnalysisInterrupted):
        run_calibration(spec, data, text, out, scheduler=scheduler, quiet=True, stop=stop, on_generation=stop.seen)
    from pyabc import History
    assert History(f"sqlite:///{out}").max_t == 0
    run_calibration(spec, data, text, out, scheduler=scheduler, quiet=True)
    assert_same(reference, out.with_suffix(".h5"))


@pytest.mark.slow
def test_one_worker_gives_the_populations_of_two(decay, reference, tmp_path):
    """A new single-worker cluster (slow: its worker imports pyABC afresh)."""
    spec = load_calibration(decay)
    data, text, _ = load_data(spec)
    out = tmp_path / "one.db"
    run_calibration(spec, data, text, out, workers=1, quiet=True)
    assert_same(reference, out.with_suffix(".h5"))


def test_the_command_continues_with_more_generations_and_draws_figures(decay, reference, scheduler, tmp_path, capsys):
    out = tmp_path / "cli.db"
    assert main(["calibrate", str(decay), "--out", str(out), "--scheduler", scheduler, "--generations", "2",
                 "--quiet"]) == 0
    assert CalibrationResult(out.with_suffix(".h5")).generations == [0, 1]
    assert main(["calibrate", str(decay), str(decay.parent / "decay.csv"), "--out", str(out),
                 "--scheduler", scheduler]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"amplitude +[0-9.]+ +[0-9.]+ - [0-9.]+ +100", printed)
    assert_same(reference, out.with_suffix(".h5"))
    for kind in ("posterior", "predictive", "distances"):
        assert (tmp_path / f"cli_{kind}.png").stat().st_size > 10_000


BAD_DATA = [
    ("readout,time_h,value,sd\ny,1,5,0\n", 2, "sd", "must be more than 0, got 0"),
    ("readout,time_h,value,sd\nz,1,5,1\n", 2, "readout", "'z' is not a read-out of the spec \\(y\\)"),
    ("readout,time_h,value,sd\ny,1,five,1\n", 2, "value", "expected a number, got 'five'"),
    ("readout,time_h,value\ny,1,5\n", 1, "(header)", "missing column 'sd'"),
    ("readout,time_h,value,sd\ny,,5,1\n", 2, "time_h", "read-out y is a value at a time: give time_h"),
    ("readout,condition,time_h,value,sd\ny,hot,1,5,1\n", 2, "condition", "'hot' is not a condition"),
    ("# a comment\nreadout,time_h,value,sd\ny,1,5,1,9\n", 3, "(row)", "expected 4 values, got 5"),
]


@pytest.mark.parametrize("text, line, column, message", BAD_DATA)
def test_bad_data_rows_are_refused_in_one_line(decay, tmp_path, capsys, text, line, column, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_data(load_calibration(decay), bad)
    assert (info.value.line, info.value.path) == (line, column)
    assert re.fullmatch(message + ".*", info.value.message)
    assert main(["calibrate", str(decay), str(bad), "--out", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"blinasim: error: {bad}:{line}: {column}: ")
    assert not (tmp_path / "x.db").exists()


BAD_SPECS = [
    (DECAY.replace("truth: {amplitude: 100, rate: 0.3}", "truth: {amplitude: 100, speed: 0.3}"),
     12, "truth.speed", "not a calibrated parameter"),
    (DECAY.replace("  amplitude: [50, 150]", "  amplitude: [150, 50]"), 8, "parameters.amplitude",
     "high must be more than low"),
    (DECAY.replace("population: 40", "population: 1"), 4, "population", "1 is out of range"),
    ("scenario: dish\nparameters:\n  lysis.hit_interval_min: [2, 30]\nconditions:\n  a: {lysis.hit_interval_min: 3}\n"
     "readouts:\n  l: {observable: count_well_blast}\n", 5, "conditions.a.lysis.hit_interval_min",
     "is a calibrated parameter"),
]


@pytest.mark.parametrize("text, line, path, message", BAD_SPECS)
def test_bad_calibration_specs_are_refused_in_one_line(tmp_path, text, line, path, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_calibration(spec)
    assert (info.value.line, info.value.path) == (line, path)
    assert re.fullmatch(message + ".*", info.value.message)


def test_the_bundled_examples_load_with_their_data():
    for name in ("calibrate_dish", "calibrate_blood"):
        spec = load_calibration(name)
        data, _, _ = load_data(spec)
        assert data and spec.base.kind == "scenario"
    dish = load_calibration("calibrate_dish")
    assert set(dish.truth) == set(dish.parameters)
