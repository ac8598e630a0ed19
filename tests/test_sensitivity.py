"""`blinasim sensitivity`: SALib Morris and Sobol through the same code path as the simulator
(registered toy models with known answers), resume after an interruption, the simulator
itself on a small dish, and one-line refusals of bad specs."""
from __future__ import annotations

import logging
import re
import signal
import textwrap

import numpy as np
import pytest

pytest.importorskip("SALib")

from blinasim.analysis.execute import AnalysisInterrupted  # noqa: E402
from blinasim.analysis.sensitivity import (compare_files, load_sensitivity, read_sensitivity,  # noqa: E402
                                           run_sensitivity)
from blinasim.cli import main  # noqa: E402
from blinasim.scenario import ScenarioError  # noqa: E402

PI = 3.141592653589793
ISHIGAMI = textwrap.dedent(f"""\
    toy: ishigami
    seed: 3
    method: sobol
    samples: 512
    replicates: 1
    bootstrap: 200
    parameters:
      x1: [{-PI}, {PI}]
      x2: [{-PI}, {PI}]
      x3: [{-PI}, {PI}]
    readouts:
      y: {{observable: y, at_h: 0}}
""")

LINEAR = textwrap.dedent("""\
    toy: linear
    set: {noise_sd: 0.2}
    seed: 4
    method: morris
    samples: 20
    levels: 4
    replicates: 4
    parameters:
      x1: [0, 1]
      x2: [0, 1]
      x3: [0, 1]
      x4: [0, 1]
    readouts:
      y: {observable: y, at_h: 0}
""")


@pytest.fixture(scope="module")
def scheduler():
    """One local Dask cluster for the module (two single-threaded workers)."""
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    yield cluster.scheduler_address
    cluster.close()


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def ishigami(tmp_path_factory, scheduler):
    directory = tmp_path_factory.mktemp("sens")
    spec = write(directory, "ishigami.yaml", ISHIGAMI)
    out = directory / "ishigami.h5"
    done = run_sensitivity(load_sensitivity(spec), out, scheduler=scheduler, quiet=True)
    assert (done.done, done.failed) == (512 * 5, 0)
    return spec, out


def test_sobol_recovers_the_ishigami_indices(ishigami):
    data = read_sensitivity(ishigami[1])
    g = data["indices"]["y"]
    assert np.allclose(g["S1"], [0.314, 0.442, 0.0], atol=0.08)
    assert np.allclose(g["ST"], [0.558, 0.442, 0.244], atol=0.08)
    assert list(np.argsort(-g["ST"])) == [0, 1, 2]
    assert np.all(g["S1_conf"] > 0) and data["attrs"]["complete"] == 1
    assert "SALib" in data["attrs"]["library_versions"] and data["attrs"]["spec_yaml"] == ISHIGAMI


def test_an_interrupted_analysis_resumes_to_the_same_file(ishigami, tmp_path, scheduler):
    class StopAfterFirstBatch:
        def __init__(self):
            self.stored = 0

        @property
        def signum(self):
            return signal.SIGTERM if self.stored >= 1 else None

        def count(self, _result):
            self.stored += 1

    spec, reference = ishigami
    out = tmp_path / "resumed.h5"
    stop = StopAfterFirstBatch()
    with pytest.raises(AnalysisInterrupted, match="rerun the same command to continue"):
        run_sensitivity(load_sensitivity(spec), out, scheduler=scheduler, quiet=True, stop=stop,
                        on_result=stop.count)
    status = read_sensitivity(out)["runs"]["status"]
    assert 0 < np.count_nonzero(status == 1) < status.size
    done = run_sensitivity(load_sensitivity(spec), out, scheduler=scheduler, quiet=True)
    assert done.ran == status.size - np.count_nonzero(status == 1)
    assert compare_files(reference, out) is None
    again = run_sensitivity(load_sensitivity(spec), out, scheduler=scheduler, quiet=True)
    assert again.ran == 0 and compare_files(reference, out) is None


def test_morris_ranks_a_noisy_linear_model_and_measures_the_noise(tmp_path, scheduler, capsys):
    spec = write(tmp_path, "linear.yaml", LINEAR)
    out = tmp_path / "linear.h5"
    assert main(["sensitivity", str(spec), "--out", str(out), "--scheduler", scheduler]) == 0
    text = capsys.readouterr().out
    assert "mu*" in text and (tmp_path / "linear.png").stat().st_size > 10_000
    g = read_sensitivity(out)["indices"]["y"]
    assert np.allclose(g["mu_star"], [4.0, 2.0, 1.0, 0.0], atol=0.35)
    assert list(np.argsort(-g["mu_star"])) == [0, 1, 2, 3]
    assert 0 < g["attrs"]["noise_share"] < 0.05
    assert g["by_replicate"]["mu_star"].shape == (4, 4)


def test_a_small_dish_screening_runs_the_simulator(tmp_path, scheduler):
    spec = write(tmp_path, "dish.yaml", textwrap.dedent("""\
        scenario: dish
        set: {duration_h: 1, compartments.well.width_um: 400, compartments.well.height_um: 400}
        method: morris
        samples: 2
        replicates: 1
        parameters:
          binding.bridges_to_trigger: [0.5, 3.5]
          lysis.hit_interval_min: [4, 16]
        readouts:
          lysis: {observable: count_well_blast, at_h: 1, transform: loss}
          synapses_auc: {observable: synapses, statistic: auc}
    """))
    out = tmp_path / "dish.h5"
    done = run_sensitivity(load_sensitivity(spec), out, scheduler=scheduler, quiet=True)
    assert (done.done, done.failed) == (6, 0)
    data = read_sensitivity(out)
    bridges = data["design"]["values"][:, 0]
    assert set(bridges) <= {1.0, 2.0, 3.0}, "a whole-number field gets whole values"
    lysis = data["runs"]["readouts"]["lysis"]
    assert np.all((lysis >= 0) & (lysis <= 1)) and "mu_star" in data["indices"]["lysis"]


BAD = [
    ("scenario: dish\nparameters:\n  pk.fixed_pg_per_m: [1, 2]\nreadouts:\n  y: {observable: blasts, at_h: 1}\n",
     3, "parameters.pk.fixed_pg_per_m", "not a numeric scenario field; did you mean 'pk.fixed_pg_per_ml'?"),
    ("scenario: dish\nparameters:\n  pk.fixed_pg_per_ml: [-5, 10]\nreadouts:\n  y: {observable: blasts, at_h: 1}\n",
     3, "parameters.pk.fixed_pg_per_ml", "the scenario refuses -5: .*out of range"),
    ("scenario: dish\nparameters:\n  pk.fixed_pg_per_ml: [1, 10]\nreadouts:\n  y: {observable: blasts, at_h: 30}\n",
     5, "readouts.y.at_h", "30 h is after the end of the scenario \\(24 h\\)"),
    ("toy: ishigami\nparameters:\n  x1: [0, 1]\nreadouts:\n  y: {observable: z, at_h: 0}\n",
     5, "readouts.y.observable", "not a known observable"),
    ("toy: ishigami\nmethod: sobol\nsamples: 100\nparameters:\n  x1: [0, 1]\n  x2: [0, 1]\nreadouts:\n  y: {observable: y, at_h: 0}\n",
     3, "samples", "Sobol sampling needs a power of 2, got 100 \\(e.g. 64 or 128\\)"),
    ("toy: ishigami\nparameters:\n  x1: {distribution: normal, mean: 0}\nreadouts:\n  y: {observable: y, at_h: 0}\n",
     3, "parameters.x1.sd", "missing: a normal distribution needs mean, sd"),
    ("toy: ishigami\nsample: 3\nparameters:\n  x1: [0, 1]\nreadouts:\n  y: {observable: y, at_h: 0}\n",
     2, "sample", "unknown field; did you mean 'samples'\\?"),
    ("toy: ishigami\nscenario: dish\nparameters:\n  x1: [0, 1]\nreadouts:\n  y: {observable: y, at_h: 0}\n",
     2, "scenario", "give exactly one of scenario"),
    ("toy: ishigami\nparameters:\n  x1: [0, 1]\nreadouts:\n  y: {observable: y}\n",
     5, "readouts.y.at_h", "a value read-out needs at_h"),
]


@pytest.mark.parametrize("text, line, path, message", BAD)
def test_bad_specs_are_refused_in_one_line(tmp_path, capsys, text, line, path, message):
    spec = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ScenarioError) as info:
        load_sensitivity(spec)
    assert (info.value.line, info.value.path) == (line, path)
    assert re.fullmatch(message + ".*", info.value.message)
    assert main(["sensitivity", str(spec), "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"blinasim: error: {spec}:{line}: {path}: ")
    assert not (tmp_path / "x.h5").exists()


def test_another_analysis_in_the_output_is_refused(ishigami, tmp_path, capsys):
    spec, reference = ishigami
    other = write(tmp_path, "other.yaml", ISHIGAMI.replace("seed: 3", "seed: 4"))
    copy = tmp_path / "copy.h5"
    copy.write_bytes(reference.read_bytes())
    assert main(["sensitivity", str(other), "--out", str(copy)]) == 2
    assert "holds a different analysis" in capsys.readouterr().err
    assert compare_files(reference, copy) is None


def test_the_bundled_examples_load():
    for name in ("sensitivity_dish", "sensitivity_blood"):
        spec = load_sensitivity(name)
        assert spec.base.kind == "scenario" and spec.readouts


def test_with_a_cohort_the_replicates_are_its_patients(tmp_path, scheduler):
    write(tmp_path, "wells.yaml", textwrap.dedent("""\
        scenario: dish
        seed: 9
        patients: 3
        series_every_h: 1
        set: {duration_h: 1, compartments.well.width_um: 400, compartments.well.height_um: 400}
        endpoints: {assessment_day: 1}
        covariates:
          treg_fraction_of_cd4: {distribution: uniform, low: 0, high: 0.3}
    """))
    spec = write(tmp_path, "spec.yaml", textwrap.dedent("""\
        cohort: wells.yaml
        method: morris
        samples: 2
        replicates: 3
        parameters:
          lysis.hit_interval_min: [4, 16]
          synapse.contact_radius_um: [7, 13]
        readouts:
          lysis: {observable: count_well_blast, at_h: 1, transform: loss}
          crs_rate: {statistic: endpoint, endpoint: crs_grade_any}
    """).replace("crs_grade_any", "neurotox_event"))
    out = tmp_path / "cohort.h5"
    done = run_sensitivity(load_sensitivity(spec), out, scheduler=scheduler, quiet=True)
    assert (done.done, done.failed) == (18, 0)
    data = read_sensitivity(out)
    from blinasim.cohort.patient import draw_patient
    from blinasim.cohort.spec import load_cohort
    cohort = load_cohort(tmp_path / "wells.yaml")
    assert list(data["runs"]["replicate_seed"]) == [draw_patient(cohort, r).seed for r in range(3)]
    assert all("treg_fraction_of_cd4=" in o for o in data["runs"]["replicate_overrides"])
    assert set(np.unique(data["runs"]["readouts"]["crs_rate"])) <= {0.0, 1.0}
