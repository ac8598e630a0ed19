"""The command line: refusals of bad input (one line, exit code 2, nothing written),
`scenarios`, `show`, `run` with its summary and run-file contents, `compare` and `resume` errors."""
from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
import yaml

from blinasim.cli import main
from blinasim.progress import Progress
from blinasim.runfile import compare_runs, read_attrs, read_snapshot, read_snapshot_times
from blinasim.scenario import bundled_scenarios, load_scenario_text

# a dish of ~190 cells for one hour: a run takes a fraction of a second
TINY = """\
base: dish
name: tiny
duration_h: 1
compartments:
  well: {width_um: 300, height_um: 300}
"""

ERROR_LINE = re.compile(r"blinasim: error: [^\n]+\n")
SCENARIO_ERROR = re.compile(r"blinasim: error: (?P<file>[^\n]+?):(?P<line>\d+): (?P<path>\S+): (?P<message>[^\n]+)\n")


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def refused(capsys, argv: list[str], directory: Path) -> str:
    """Run the CLI, check it refused on one line with exit 2 and wrote nothing; return the line."""
    before = listing(directory)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert ERROR_LINE.fullmatch(captured.err), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert captured.out == ""
    assert listing(directory) == before  # no new file, existing ones byte-identical
    return captured.err


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write(tmp_path, "tiny.yaml", TINY)


# --------------------------------------------------------------------------- refusals

def test_unknown_key_with_did_you_mean(tmp_path, capsys):
    scenario = write(tmp_path, "typo.yaml", TINY + "pk:\n  volum_l: 4\n")
    err = refused(capsys, ["run", str(scenario), "--out", str(tmp_path / "out.h5")], tmp_path)
    assert err == f"blinasim: error: {scenario}:7: pk.volum_l: unknown field; did you mean 'volume_l'?\n"


def test_wrong_type(tmp_path, capsys):
    scenario = write(tmp_path, "type.yaml", TINY.replace("duration_h: 1", "duration_h: one hour"))
    err = refused(capsys, ["run", str(scenario), "--out", str(tmp_path / "out.h5")], tmp_path)
    match = SCENARIO_ERROR.fullmatch(err)
    assert match and match["file"] == str(scenario) and match["line"] == "3"
    assert match["path"] == "duration_h" and "expected a finite number, got text 'one hour'" in match["message"]


def test_out_of_range(tmp_path, capsys):
    scenario = write(tmp_path, "range.yaml", TINY + "pk:\n  volume_l: -1\n")
    err = refused(capsys, ["run", str(scenario), "--out", str(tmp_path / "out.h5")], tmp_path)
    match = SCENARIO_ERROR.fullmatch(err)
    assert match and (match["line"], match["path"]) == ("7", "pk.volume_l")
    assert "-1 L is out of range; allowed more than 0.1" in match["message"]


@pytest.mark.parametrize("overrides, expected", [
    (["duration_h=2", "pk.volum_l=3"], "--set:2: pk.volum_l: unknown field; did you mean 'volume_l'?"),
    (["duration_h"], "--set:1: (override): expected dotted.path=value"),
    (["duration_h=-5"], "--set:1: duration_h: -5 h is out of range"),
    (["seed=1.5"], "--set:1: seed: expected a whole number"),
])
def test_bad_set(tmp_path, capsys, tiny, overrides, expected):
    argv = ["run", str(tiny), "--out", str(tmp_path / "out.h5")]
    for override in overrides:
        argv += ["--set", override]
    err = refused(capsys, argv, tmp_path)
    assert err.startswith(f"blinasim: error: {expected}"), err
    assert SCENARIO_ERROR.fullmatch(err)


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    err = refused(capsys, ["run", str(missing)], tmp_path)
    assert err.startswith(f"blinasim: error: {missing}:1: (file): no such file, and no bundled scenario")
    assert "dish" in err


@pytest.mark.parametrize("content, message", [
    ("name: [unclosed\n", "not valid YAML"),
    ("just some words\n", "expected a mapping of scenario fields"),
    (b"\x89HDF\r\n\x1a\n\x00\x00\xff\xfe", "cannot read file"),
    ("", "the file is empty"),
])
def test_non_yaml_file(tmp_path, capsys, content, message):
    scenario = write(tmp_path, "not_a_scenario.yaml", content)
    err = refused(capsys, ["run", str(scenario), "--out", str(tmp_path / "out.h5")], tmp_path)
    match = SCENARIO_ERROR.fullmatch(err)
    assert match and match["file"] == str(scenario) and message in match["message"], err


def test_existing_output_without_force(tmp_path, capsys, tiny):
    out = write(tmp_path, "out.h5", b"results of an earlier run")
    err = refused(capsys, ["run", str(tiny), "--out", str(out)], tmp_path)
    assert err == f"blinasim: error: run file {out} already exists; use --force to overwrite it\n"
    assert out.read_bytes() == b"results of an earlier run"

    # a bad scenario is refused before the output is looked at; nothing changes either
    bad = write(tmp_path, "bad.yaml", TINY + "pk:\n  volum_l: 4\n")
    refused(capsys, ["run", str(bad), "--out", str(out), "--force"], tmp_path)
    assert out.read_bytes() == b"results of an earlier run"

    assert main(["run", str(tiny), "--out", str(out), "--force", "--quiet"]) == 0
    assert read_attrs(out)["complete"] == 1


def test_leftover_partial_is_not_replaced_without_force(tmp_path, capsys, tiny):
    out = tmp_path / "out.h5"
    write(tmp_path, "out.h5.partial", b"a killed run that could be resumed")
    err = refused(capsys, ["run", str(tiny), "--out", str(out)], tmp_path)
    assert "out.h5.partial exists" in err and "blinasim resume" in err
    assert main(["run", str(tiny), "--out", str(out), "--force", "--quiet"]) == 0
    assert sorted(listing(tmp_path)) == ["out.h5", "tiny.yaml"]


@pytest.mark.parametrize("options, message", [
    (["--threads", "0"], "argument --threads: expected at least 1, got 0"),
    (["--checkpoint-every", "-1"], "argument --checkpoint-every: expected a positive number of hours"),
    (["--snapshot-every", "nan"], "argument --snapshot-every: expected a positive number of hours"),
    (["--snapshot-every", "0.01"], "--snapshot-every: 0.01 h is not a whole multiple of the time step (1 min)"),
    (["--seed", "-3"], "argument --seed: -3 is out of range"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_options(tmp_path, capsys, tiny, options, message):
    err = refused(capsys, ["run", str(tiny), "--out", str(tmp_path / "out.h5"), *options], tmp_path)
    assert err.startswith(f"blinasim: error: {message}"), err


def test_output_in_missing_directory(tmp_path, capsys, tiny):
    err = refused(capsys, ["run", str(tiny), "--out", str(tmp_path / "no" / "such" / "out.h5")], tmp_path)
    assert "does not exist" in err


def test_real_command_refuses_on_one_line(tmp_path):
    """The installed entry point, as a user runs it: no traceback, exit code 2."""
    scenario = write(tmp_path, "typo.yaml", TINY + "pk:\n  volum_l: 4\n")
    done = subprocess.run([sys.executable, "-m", "blinasim", "run", str(scenario), "--out", str(tmp_path / "o.h5")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"blinasim: error: {scenario}:7: pk.volum_l: unknown field; did you mean 'volume_l'?\n"
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["typo.yaml"]


# --------------------------------------------------------------------------- scenarios and show

def test_scenarios_lists_bundled_ones(capsys):
    assert main(["scenarios"]) == 0
    scenario_part, cohort_part = capsys.readouterr().out.split("\n\ncohorts (blinasim cohort NAME):\n")
    lines = scenario_part.splitlines()
    bundled = bundled_scenarios()
    assert [line.split()[0] for line in lines] == list(bundled)
    assert {"dish", "standard_cycle"} <= set(bundled)
    for line, description in zip(lines, bundled.values()):
        assert line.endswith(description) and "does not load" not in line
    assert [line.split()[0] for line in cohort_part.splitlines()] == ["cohort_full_course", "cohort_mrd", "cohort_mrd_course",
                                                                     "cohort_rr_high_burden"]


def test_show_prints_the_resolved_scenario(tmp_path, capsys, tiny):
    assert main(["show", str(tiny), "--set", "pk.fixed_pg_per_ml=250"]) == 0
    text = capsys.readouterr().out
    resolved = yaml.safe_load(text)
    assert resolved["name"] == "tiny" and resolved["duration_h"] == 1.0
    assert resolved["pk"]["fixed_pg_per_ml"] == 250.0
    assert resolved["compartments"]["well"]["width_um"] == 300.0
    assert "base" not in resolved and "drug" in resolved  # merged onto its base and the defaults
    assert load_scenario_text(text).resolved_yaml == text

    assert main(["show", "dish"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["name"] == "dish"
    refused(capsys, ["show", "dish", "--set", "pk.volum_l=3"], tmp_path)


# --------------------------------------------------------------------------- run

def test_run_prints_a_summary_and_quiet_prints_nothing(tmp_path, capsys, tiny):
    out = tmp_path / "run.h5"
    assert main(["run", str(tiny), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == f"wrote {out}"
    assert re.fullmatch(r"simulated 0\.04 days in \d+\.\d s \(seed 1\)", lines[1])
    assert any(line.split()[0] == "kills" for line in lines[2:])
    assert captured.err == ""  # no progress display for a run this short

    quiet = tmp_path / "quiet.h5"
    assert main(["run", str(tiny), "--out", str(quiet), "--quiet", "--seed", "1"]) == 0
    assert capsys.readouterr() == ("", "")
    assert compare_runs(out, quiet) is None


def test_default_output_name(tmp_path, capsys, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(tiny), "--seed", "5", "--quiet"]) == 0
    assert (tmp_path / "tiny_seed5.h5").is_file()
    assert read_attrs(tmp_path / "tiny_seed5.h5")["seed"] == 5


def test_run_file_contents(tmp_path, capsys, tiny):
    out = tmp_path / "run.h5"
    argv = ["run", str(tiny), "--out", str(out), "--seed", "3", "--set", "pk.fixed_pg_per_ml=250",
            "--snapshot-every", "0.5", "--quiet"]
    assert main(argv) == 0
    attrs = read_attrs(out)
    assert attrs["blinasim_version"] and attrs["seed"] == 3 and attrs["complete"] == 1
    assert attrs["scenario"] == TINY  # as given
    resolved = yaml.safe_load(attrs["scenario_resolved"])
    assert resolved["pk"]["fixed_pg_per_ml"] == 250.0  # overrides are in the resolved scenario
    assert attrs["overrides"] == "pk.fixed_pg_per_ml=250"
    assert attrs["command_line"].startswith("blinasim run ") and "--set pk.fixed_pg_per_ml=250" in attrs["command_line"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", attrs["created"])
    assert attrs["platform"] and "numpy" in attrs["library_versions"] and "h5py" in attrs["library_versions"]
    assert attrs["snapshot_every_h"] == 0.5 and attrs["checkpoint_every_h"] == 0.0

    with xr.open_dataset(out, engine="h5netcdf", group="timeseries") as ds:
        np.testing.assert_allclose(ds["time_h"].values, np.arange(7) / 6)  # every 10 minutes
        assert ds["drug_pg_per_ml"].attrs["units"] == "pg/mL"
        assert float(ds["drug_pg_per_ml"][0]) == 250.0
        kills = float(ds["kills_cumulative"][-1])
    with xr.open_dataset(out, engine="h5netcdf", group="events/kills") as ds:
        assert ds.sizes["event"] == kills > 0
        assert ds["target_kind"].attrs["flag_meanings"] == "cd8 cd4 b blast"
    with h5py.File(out, "r") as f:
        series = f["timeseries/drug_pg_per_ml"]
        assert series.chunks and series.compression == "gzip"
        assert "checkpoint" not in f and set(f["snapshots"]) == {"cells", "times"}

    # snapshots: one per half hour, live cells with their partners as ids
    times = read_snapshot_times(out)
    np.testing.assert_array_equal(times, [0.0, 0.5, 1.0])
    first, last = read_snapshot(out, 0), read_snapshot(out, -1)
    assert set(first) == {"id", "kind", "comp", "x", "y", "cd19", "cd3", "partner", "granules", "activated"}
    assert len(last["id"]) == len(first["id"]) - kills  # a dish has no births
    assert np.all(np.diff(first["id"]) > 0)
    for snap in (first, last):
        bound = snap["partner"] >= 0
        assert set(snap["partner"][bound]) <= set(snap["id"])
        partner_of = dict(zip(snap["id"], snap["partner"]))
        assert all(partner_of[p] == i for i, p in zip(snap["id"][bound], snap["partner"][bound]))
    assert last["activated"].any() and not first["activated"].any()
    with xr.open_dataset(out, engine="h5netcdf", group="snapshots/cells") as ds:
        assert ds.sizes["row"] == sum(len(read_snapshot(out, i)["id"]) for i in range(3))
        assert ds["kind"].attrs["flag_meanings"] == "cd8 cd4 b blast"
    with xr.open_dataset(out, engine="h5netcdf", group="snapshots/times") as ds:
        np.testing.assert_array_equal(ds["rows"].values, [len(read_snapshot(out, i)["id"]) for i in range(3)])


# --------------------------------------------------------------------------- compare, verify, resume

def test_compare(tmp_path, capsys, tiny):
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    for out, seed in ((a, "1"), (b, "1"), (c, "2")):
        assert main(["run", str(tiny), "--out", str(out), "--seed", seed, "--quiet"]) == 0
    assert main(["compare", str(a), str(b)]) == 0
    assert capsys.readouterr().out == "no differences\n"
    assert main(["compare", str(a), str(c)]) == 1
    assert re.fullmatch(r"timeseries/\S+ differs first at time_h=\S+ \(row \d+\): .+\n", capsys.readouterr().out)
    assert main(["compare", str(a), str(c), "--rtol", "10"]) == 1  # event tables differ in length
    capsys.readouterr()

    not_hdf5 = write(tmp_path, "notes.txt", "hello")
    assert "not an HDF5 run file" in refused(capsys, ["compare", str(a), str(not_hdf5)], tmp_path)
    assert "no such run file" in refused(capsys, ["compare", str(a), str(tmp_path / "gone.h5")], tmp_path)
    assert "expected a number of at least 0" in refused(capsys, ["compare", str(a), str(b), "--rtol", "-1"], tmp_path)


def test_verify_and_resume_refusals(tmp_path, capsys, tiny):
    out = tmp_path / "run.h5"
    assert main(["run", str(tiny), "--out", str(out), "--quiet"]) == 0
    err = refused(capsys, ["resume", str(out)], tmp_path)
    assert "is complete; there is nothing to resume" in err
    assert "no such run file" in refused(capsys, ["resume", str(tmp_path / "gone.h5")], tmp_path)
    assert "no such run file" in refused(capsys, ["verify", str(tmp_path / "gone.h5")], tmp_path)
    not_hdf5 = write(tmp_path, "notes.h5", "hello")
    assert "not a readable run file" in refused(capsys, ["resume", str(not_hdf5)], tmp_path)
    assert "not an HDF5 run file" in refused(capsys, ["verify", str(not_hdf5)], tmp_path)


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "run" in capsys.readouterr().out
    assert main([]) == 2
    assert ERROR_LINE.fullmatch(capsys.readouterr().err)


# --------------------------------------------------------------------------- progress display

class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_display_on_a_terminal():
    stream, clock = FakeTerminal(), FakeClock()
    progress = Progress(2880, 1.0, stream=stream, clock=clock)  # two days in 1-minute steps
    clock.now += 1.0
    progress.update(100, 5000)
    assert stream.getvalue() == ""  # quiet during the first seconds
    clock.now += 2.0
    progress.update(1440, 4321)
    line = stream.getvalue()  # tqdm's bar, redrawn in place
    assert line.startswith("\r 50%|") and "| day 1.00/2.00 [00:03<00:03,  0.33 sim-days/s, 4,321 cells]" in line
    clock.now += 0.1
    progress.update(1450, 4300)  # redrawn at most every 0.5 s
    assert stream.getvalue() == line
    clock.now += 1.0
    progress.close()  # the final state, then a new line
    final = stream.getvalue()[len(line):]
    assert final.startswith("\r 50%|") and "| day 1.01/2.00 " in final and "4,300 cells" in final
    assert final.endswith("\n") and final.count("\n") == 1

    resumed, clock = FakeTerminal(), FakeClock()
    progress = Progress(1440, 1.0, stream=resumed, clock=clock, start_step=720)  # resumed half-way
    clock.now += 3.0
    progress.update(1080, 10)
    assert "day 0.75/1.00 [00:03<00:03,  0.08 sim-days/s, 10 cells]" in resumed.getvalue()  # since the resume
    short = FakeTerminal()
    progress = Progress(1440, 1.0, stream=short, clock=FakeClock())
    progress.update(1440, 10)
    progress.close()
    assert short.getvalue() == ""  # nothing at all for a run that ends within the first seconds


def test_progress_display_in_a_log_and_disabled():
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(1440, 1.0, stream=stream, clock=clock, start_step=720)  # resumed half-way
    for step in range(730, 1440, 10):
        clock.now += 1.0
        progress.update(step, 10)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # one line every 15 s in a log, no carriage returns
    assert "\r" not in stream.getvalue() and "0.01 sim-days/s" in lines[0]

    quiet = io.StringIO()
    progress = Progress(1440, 1.0, stream=quiet, clock=clock, enabled=False)
    clock.now += 100.0
    progress.update(1000, 10)
    progress.close()
    assert quiet.getvalue() == ""
