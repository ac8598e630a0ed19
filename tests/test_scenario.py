"""Tests of the scenario loader: refusals with their located messages, base inheritance,
--set overrides, the resolved YAML round trip, bundled scenarios and the generated docs."""
from __future__ import annotations

import dataclasses
import pathlib
import pickle
import re

import pytest
import yaml

from blinasim import scenario as loader
from blinasim.scenario import (EXAMPLE_ERRORS, EXAMPLE_SCENARIO, LoadedScenario, ScenarioError,
                               bundled_path, bundled_scenarios, load_scenario, load_scenario_text,
                               render_scenario_docs, scenario_to_dict)
from blinasim.schema import Compartment, KindValues, Route, Scenario

REPO = pathlib.Path(__file__).resolve().parent.parent

VALID = """\
name: test
seed: 7
pk:
  volume_l: 5.0
schedule:
  cycles:
    - length_days: 42
      infusions:
        - {from_day: 1, to_day: 7, ug_per_day: 9}
        - {from_day: 8, to_day: 28, ug_per_day: 28}
compartments:
  blood:
    cells_per_ul: {cd8: 300, b: 200}
  marrow:
    cells_per_ul: {blast: 5000}
routes:
  - {source: blood, target: marrow, rate_per_h: {cd8: 0.01}}
"""


def refusal(text: str, overrides=(), filename: str = "s.yaml") -> ScenarioError:
    """The ScenarioError loading `text` raises; checks it is one line of the right shape."""
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, filename, overrides)
    err = info.value
    assert str(err) == f"{err.file}:{err.line}: {err.path}: {err.message}"
    assert len(str(err).splitlines()) == 1
    return err


def assert_refused(err: ScenarioError, file: str, line: int, path: str, message: str) -> None:
    """`message` is a regex for the part after the path."""
    pattern = rf"{re.escape(file)}:{line}: {re.escape(path)}: {message}"
    assert re.fullmatch(pattern, str(err)), f"{str(err)!r} does not match {pattern!r}"


def write(directory: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- valid input

def test_valid_text_builds_the_scenario_with_defaults_filled():
    loaded = load_scenario_text(VALID, "s.yaml")
    s = loaded.scenario
    assert isinstance(loaded, LoadedScenario)
    assert (s.name, s.seed, s.pk.volume_l) == ("test", 7, 5.0)
    assert s.pk.clearance_l_per_h == Scenario().pk.clearance_l_per_h
    assert s.compartments["blood"].cells_per_ul == KindValues(cd8=300.0, b=200.0)
    assert s.compartments["marrow"].width_um == Compartment().width_um
    assert s.routes == (Route("blood", "marrow", KindValues(cd8=0.01)),)
    assert s.schedule.cycles[0].infusions[1].ug_per_day == 28.0
    assert loaded.source_text == VALID and loaded.origin == "s.yaml" and loaded.overrides == ()


def test_float_fields_accept_ints_and_store_floats():
    s = load_scenario_text(VALID + "duration_h: 24\n").scenario
    assert s.duration_h == 24.0 and type(s.duration_h) is float


def test_exponent_numbers_without_a_dot_are_floats():
    s = load_scenario_text(VALID + "drug: {kd_cd19_m: 1e-9, kd_cd3_m: 2E-7}\n").scenario
    assert (s.drug.kd_cd19_m, s.drug.kd_cd3_m) == (1e-9, 2e-7)


@pytest.mark.parametrize("text, value", [
    ("1_000", 1000.0), ("+5", 5.0), (".5", 0.5), ("-.5e1", -5.0), ("5.", 5.0), ("00.5", 0.5),
    ("1.5E+3", 1500.0), ("1.0e-09", 1e-9), ("0", 0.0),
])
def test_numbers_read_as_a_person_reads_them(text, value):
    node = loader.read_yaml_tree(f"x: {text}\n", "s.yaml").value["x"]
    assert node.value == value and type(node.value) in (int, float)


@pytest.mark.parametrize("text, note", [
    ("1:30", r"a base-60 number in YAML 1\.1 \(90\)"),
    ("-1:30:00", r"a base-60 number in YAML 1\.1 \(-5400\)"),
    ("1:30.5", r"a base-60 number in YAML 1\.1 \(90\.5\)"),
    ("010", r"an octal number in YAML 1\.1 \(8\)"),
    ("08", r"a number with a leading zero \(octal in YAML 1\.1\)"),
    ("0x1F", r"a hexadecimal number \(31\)"),
    ("0b101", r"a binary number \(5\)"),
    ("0o17", r"an octal number \(15\)"),
])
def test_yaml_1_1_number_forms_are_refused_by_number_fields(text, note):
    expected = rf"expected a finite number, got {re.escape(text)}, {note}; write the number in plain decimal"
    assert_refused(refusal(f"name: a\nduration_h: {text}\n"), "s.yaml", 2, "duration_h", expected)
    assert_refused(refusal(VALID, ["seed=2", f"duration_h={text}"]), "--set", 2, "duration_h", expected)
    whole = rf"expected a whole number \(e\.g\. 3, not 3\.0\), got {re.escape(text)}, {note}; .*"
    assert_refused(refusal(f"seed: {text}\n"), "s.yaml", 1, "seed", whole)


@pytest.mark.parametrize("text", ["1:30", "010", "08", "0x1F", "0b101", "0o17", "'-.5'", "'1e3'", "'yes'"])
def test_yaml_1_1_number_forms_are_text_in_text_fields_and_stay_quoted(text):
    loaded = load_scenario_text(VALID.replace("name: test", f"name: {text}"))
    text = text.strip("'")
    assert loaded.scenario.name == text and type(loaded.scenario.name) is str
    assert yaml.safe_load(loaded.resolved_yaml)["name"] == text  # a YAML 1.1 reader agrees
    assert load_scenario_text(loaded.resolved_yaml).scenario == loaded.scenario


def test_range_bounds_are_inclusive_except_open_low():
    assert load_scenario_text(VALID.replace("volume_l: 5.0", "volume_l: 100")).scenario.pk.volume_l == 100.0
    assert load_scenario_text(VALID + "time_step_min: 0.05\noutput: {record_every_min: 10}\n")
    err = refusal(VALID.replace("volume_l: 5.0", "volume_l: 0.1"))
    assert_refused(err, "s.yaml", 4, "pk.volume_l", r"0\.1 L is out of range; allowed more than 0\.1 and up to 100 L")


def test_load_scenario_reads_a_file_and_records_its_path(tmp_path):
    path = write(tmp_path, "a.yaml", VALID)
    loaded = load_scenario(path)
    assert loaded.origin == str(path) and loaded.source_text == VALID
    assert loaded.scenario == load_scenario_text(VALID).scenario


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("text, line, path, message", [
    ("pk: {volume_l: 5\nseed: 3\n", 2, "(file)", r"not valid YAML: .*"),
    ("name: a\n  b: c\n", 2, "(file)", r"not valid YAML: mapping values are not allowed here"),
    ("", 1, "(file)", r"the file is empty; expected a mapping of scenario fields"),
    ("# nothing but a comment\n", 1, "(file)", r"the file is empty; .*"),
    ("\n\n- 1\n- 2\n", 3, "(file)", r"expected a mapping of scenario fields, got a list"),
    ("just text\n", 1, "(file)", r"expected a mapping of scenario fields, got text 'just text'"),
    ("a: 1\n---\nb: 2\n", 2, "(file)", r"not valid YAML: expected a single document in the stream: .*"),
    ("name: a\nx: \x00\n", 2, "(file)", r"not valid YAML: unacceptable character #x0000: .*"),
])
def test_file_level_refusals(text, line, path, message):
    assert_refused(refusal(text), "s.yaml", line, path, message)


@pytest.mark.parametrize("text, line, path, message", [
    # unknown and duplicate keys
    ("pk:\n  model: fixed\n  volum_l: 5\n", 3, "pk.volum_l", r"unknown field; did you mean 'volume_l'\?"),
    ("name: a\nzzz: 1\n", 2, "zzz", r"unknown field; allowed: name, description, seed, duration_h, .*, output"),
    ("seed: 1\nname: a\nseed: 2\n", 3, "seed", r"duplicate key \(first set on line 1\)"),
    ("compartments:\n  blood: {}\n  blood: {}\n", 3, "compartments.blood", r"duplicate key \(first set on line 2\)"),
    ("1: 2\n", 1, "(file)", r"keys must be field names \(text\), got 1"),
    ("base_: x\n", 1, "base_", r"unknown field; .*"),
    # wrong types
    ("seed: 2.5\n", 1, "seed", r"expected a whole number \(e\.g\. 3, not 3\.0\), got 2\.5"),
    ("seed: 3.0\n", 1, "seed", r"expected a whole number .*, got 3\.0"),
    ("seed: true\n", 1, "seed", r"expected a whole number .*, got true"),
    ("seed: '3'\n", 1, "seed", r"expected a whole number .*, got text '3'"),
    ("duration_h: false\n", 1, "duration_h", r"expected a finite number, got false"),
    ("duration_h: ten\n", 1, "duration_h", r"expected a finite number, got text 'ten'"),
    ("duration_h: .nan\n", 1, "duration_h", r"expected a finite number, got nan"),
    ("duration_h: -.inf\n", 1, "duration_h", r"expected a finite number, got -inf"),
    ("duration_h: 1e999\n", 1, "duration_h", r"expected a finite number, got inf"),
    ("duration_h: ~\n", 1, "duration_h", r"expected a finite number, got null"),
    ("name: 5\n", 1, "name", r"expected text, got 5"),
    ("name: 2024-01-01\n", 1, "name", r"expected text, got a date"),
    ("compartments:\n  m: {b_production: 1}\n", 2, "compartments.m.b_production", r"expected true or false, got 1"),
    ("pk: 3\n", 1, "pk", r"expected a mapping of fields, got 3"),
    ("pk:\n", 1, "pk", r"expected a mapping of fields, got null"),
    ("pk:\n  - volume_l: 5\n", 1, "pk", r"expected a mapping of fields, got a list"),
    ("routes: {a: 1}\n", 1, "routes", r"expected a list, got a mapping"),
    ("routes:\n  - 3\n", 2, "routes.0", r"expected a mapping of fields, got 3"),
    ("compartments: [blood]\n", 1, "compartments", r"expected a mapping of names to sections, got a list"),
    ("compartments:\n  blood: 1\n", 2, "compartments.blood", r"expected a mapping of fields, got 1"),
    ("compartments:\n  bone marrow: {}\n", 2, "compartments.bone marrow", r"names may only use letters, digits, '_' and '-'"),
    # out of range and choices
    ("pk:\n  volume_l: -1\n", 2, "pk.volume_l", r"-1 L is out of range; allowed more than 0\.1 and up to 100 L"),
    ("time_step_min: 20\n", 1, "time_step_min", r"20 min is out of range; allowed 0\.05 to 10 min"),
    ("lysis: {hits_to_kill: 0}\n", 1, "lysis.hits_to_kill", r"0 hits is out of range; allowed 1 to 100 hits"),
    ("seed: -1\n", 1, "seed", r"-1 is out of range; allowed 0 to 9223372036854775807"),
    ("compartments:\n  m:\n    cells_per_ul: {blast: -5}\n", 3, "compartments.m.cells_per_ul.blast",
     r"-5 cells/uL is out of range; allowed 0 to 10000000 cells/uL"),
    ("compartments:\n  m:\n    speed_um_per_min: {cd8: 1e18}\n", 3, "compartments.m.speed_um_per_min.cd8",
     r"1e\+18 um/min is out of range; allowed 0 to 10000 um/min"),
    ("routes:\n  - {rate_per_h: {cd4: 1e4}}\n", 2, "routes.0.rate_per_h.cd4",
     r"10000 1/h is out of range; allowed 0 to 1000 1/h"),
    ("neurotoxicity: {cytokine_ref_pg_per_ml: 5e-324}\n", 1, "neurotoxicity.cytokine_ref_pg_per_ml",
     r"5e-324 pg/mL is out of range; allowed 0\.001 to 1000000 pg/mL"),
    ("endothelium: {il6_ec50_pg_per_ml: 0}\n", 1, "endothelium.il6_ec50_pg_per_ml",
     r"0 pg/mL is out of range; allowed 0\.001 to 1000000 pg/mL"),
    ("pk: {model: oral}\n", 1, "pk.model", r"'oral' is not allowed; choose one of 'infusion', 'fixed'"),
    ("schedule:\n  cycles:\n    - infusions:\n        - {to_day: 2}\n        - {from_day: 3, to_day: 4,\n"
     "           ug_per_day: 500}\n", 6, "schedule.cycles.0.infusions.1.ug_per_day",
     r"500 ug/day is out of range; allowed 0 to 200 ug/day"),
    # YAML features that cannot make a scenario
    ("<<: {seed: 1}\n", 1, "(file)", r"YAML merge keys \('<<'\) are not supported; use 'base:' .*"),
    ("name: &a [*a]\n", 1, "name.0", r"recursive YAML alias"),
    ("seed: !!int abc\n", 1, "seed", r"cannot read value: .*"),
    ("seed: !!bool maybe\n", 1, "seed", r"cannot read value: .*"),
    ("seed: !!float ''\n", 1, "seed", r"cannot read value: .*"),
    ("seed: !!timestamp abc\n", 1, "seed", r"cannot read value: .*"),
    ("seed: !!python/object:os.system x\n", 1, "seed", r"cannot read value: .*"),
])
def test_field_refusals(text, line, path, message):
    assert_refused(refusal(text), "s.yaml", line, path, message)


ROUTE_LINE = "  - {source: blood, target: marrow, rate_per_h: {cd8: 0.01}}\n"


@pytest.mark.parametrize("text, line, path, message", [
    (VALID + "time_step_min: 7\n", 18, "time_step_min", r"7(\.0)? min does not divide a day \(1440 min\) evenly"),
    (VALID + "output:\n  record_every_min: 2.5\n", 19, "output.record_every_min",
     r"2\.5 min is not a whole multiple of time_step_min \(1\.0 min\)"),
    (VALID + "time_step_min: 4\noutput: {}\n", 19, "output.record_every_min",
     r"10(\.0)? min is not a whole multiple of time_step_min \(4(\.0)? min\)"),
    (VALID.replace(ROUTE_LINE, "  - {source: blood, target: lung}\n"), 17, "routes.0.target",
     r"unknown compartment 'lung'; known: blood, marrow"),
    (VALID.replace(ROUTE_LINE, "  - source: blood\n    target: blood\n"), 18, "routes.0.target",
     r"a route must join two different compartments"),
])
def test_consistency_refusals_point_at_the_line_that_set_the_path(text, line, path, message):
    assert_refused(refusal(text), "s.yaml", line, path, message)


BLOOD = "compartments.blood"


@pytest.mark.parametrize("overrides, line, path, message", [
    ([f"{BLOOD}.width_um=1e4", f"{BLOOD}.height_um=1e4", f"{BLOOD}.thickness_um=100", f"{BLOOD}.cells_per_ul.cd8=2e6"],
     4, f"{BLOOD}.cells_per_ul.cd8",
     r"the scenario would start with 20,002,050 cells \(20,000,000 of them cd8 in blood\); "
     r"at most 10,000,000 \(~2 GB\): lower the densities or the compartment sizes"),
    (["seed=1", f"{BLOOD}.width_um=1e5", f"{BLOOD}.height_um=1e5", f"{BLOOD}.thickness_um=1e4"], 4,
     f"{BLOOD}.thickness_um", r"the scenario would start with 50,000,050 cells \(30,000,000 of them cd8 in blood\); .*"),
    (["compartments.marrow.nucleated_cells_per_ul=1e7", "compartments.marrow.width_um=1e5",
      "compartments.marrow.height_um=1e4"], 3, "compartments.marrow.height_um",
     r"the compartments would hold 100,000,000 nucleated cells \(100,000,000 here\), which blasts can grow "
     r"into; at most 10,000,000: lower nucleated_cells_per_ul or the compartment sizes"),
    (["receptors.cd3_t_mean=1e-300"], 1, "receptors.cd3_t_mean",
     r"sd 6000 copies with mean 1e-300 copies is a coefficient of variation of 6e\+303; at most 100 "
     r"\(set the mean to 0 for no receptors\)"),
    (["receptors={cd19_b_sd: 1e7, cd19_b_mean: 1}"], 1, "receptors.cd19_b_mean", r"sd 10000000 copies .*"),
])
def test_scenarios_too_large_or_too_spread_are_refused_before_anything_is_built(overrides, line, path, message):
    assert_refused(refusal(VALID, overrides), "--set", line, path, message)


def test_the_cell_budget_allows_exactly_max_cells_and_no_receptors_with_any_spread():
    from blinasim.compartments import MAX_CELLS, initial_counts
    text = ("compartments:\n  a: {width_um: 1e4, height_um: 1e4}\n"  # 1e4 x 1e4 x 10 um = 1 uL
            "receptors: {cd3_t_mean: 0, cd19_b_mean: 1e-300, cd19_b_sd: 0}\n")
    s = load_scenario_text(text, "s.yaml", [f"compartments.a.cells_per_ul.cd8={MAX_CELLS}"]).scenario
    assert sum(initial_counts(s).values()) == MAX_CELLS
    refusal(text, [f"compartments.a.cells_per_ul.cd8={MAX_CELLS}", "compartments.a.cells_per_ul.cd4=1"])


def test_large_runs_get_a_note_with_cells_time_and_memory():
    from blinasim.compartments import estimate_run, large_run_note
    small = load_scenario_text(VALID).scenario  # 0.01 uL slabs: 3 + 2 + 50 cells, 60,480 steps
    assert large_run_note(small) is None
    e = estimate_run(small)
    assert (e.cells, e.steps, e.bytes) == (55, 60480, 55 * 200.0)
    assert e.seconds == pytest.approx(55 * 60480 * 70e-9)
    dish = "duration_h: 2\ncompartments:\n  a: {width_um: 2e4, height_um: 2e4, cells_per_ul: {cd8: 250000}}\n"
    assert large_run_note(load_scenario_text(dish, "big.yaml").scenario) == (
        "note: unnamed starts with 1,000,000 cells: 120 steps at ~70 ns per cell and step take about 8 s on "
        "one thread, and ~200 MB of memory (more if the cells multiply)")
    long = "duration_h: 87840\ncompartments:\n  a: {cells_per_ul: {cd8: 1e6}}\n"  # 10,000 cells for 10 years
    assert large_run_note(load_scenario_text(long, "long.yaml").scenario) == (
        "note: unnamed starts with 10,000 cells: 5,270,400 steps at ~70 ns per cell and step take about "
        "61.5 min on one thread, and ~2 MB of memory (more if the cells multiply)")


def test_consistency_refusal_of_an_unset_path_points_at_line_1():
    assert_refused(refusal("# no compartments\nname: a\n"), "s.yaml", 1, "compartments",
                   r"at least one compartment is required")


def test_consistency_refusal_falls_back_to_nearest_set_ancestor():
    text = VALID.replace("        - {from_day: 8, to_day: 28, ug_per_day: 28}\n",
                         "        - {from_day: 50}\n")
    assert_refused(refusal(text), "s.yaml", 10, "schedule.cycles.0.infusions.1.to_day",
                   r"to_day 1 is before from_day 50")


def test_missing_unreadable_and_non_utf8_files(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(missing)
    assert_refused(info.value, str(missing), 1, "(file)", r"no such file, and no bundled scenario of that name .*")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path)
    assert info.value.path == "(file)"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(binary)
    assert_refused(info.value, str(binary), 1, "(file)", r"cannot read file: .*utf-8.*")


def test_messages_stay_on_one_line_whatever_the_key():
    err = refusal('"a\\nb\\u2028c": 1\n')
    assert len(str(err).splitlines()) == 1 and err.line == 1


def test_scenario_error_survives_pickling():
    err = refusal("seed: x\n")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and (again.file, again.line, again.path) == (err.file, err.line, err.path)


# --------------------------------------------------------------------------- base inheritance

BASE = """\
name: base
pk:
  volume_l: 5.0
  clearance_l_per_h: 3.0
compartments:
  blood:
    width_um: 500
    cells_per_ul: {cd8: 300, b: 200}
  marrow:
    cells_per_ul: {blast: 5000}
routes:
  - {source: blood, target: marrow}
  - {source: marrow, target: blood}
"""


def test_child_merges_deeply_into_its_base(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", "base: base.yaml\npk:\n  volume_l: 4.0\n"
                  "compartments:\n  blood:\n    cells_per_ul: {cd8: 10}\n  lung: {}\n")
    s = load_scenario(child).scenario
    assert (s.name, s.pk.volume_l, s.pk.clearance_l_per_h) == ("base", 4.0, 3.0)
    assert list(s.compartments) == ["blood", "marrow", "lung"]
    assert s.compartments["blood"].width_um == 500.0
    assert s.compartments["blood"].cells_per_ul == KindValues(cd8=10.0, b=200.0)
    assert s.compartments["marrow"].cells_per_ul.blast == 5000.0
    assert len(s.routes) == 2


def test_child_lists_replace_base_lists(tmp_path):
    write(tmp_path, "base.yaml", BASE + "schedule:\n  cycles:\n    - {length_days: 10}\n    - {length_days: 20}\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\nroutes:\n  - {source: marrow, target: blood}\n"
                  "schedule:\n  cycles:\n    - {length_days: 30}\n")
    s = load_scenario(child).scenario
    assert s.routes == (Route("marrow", "blood"),)
    assert [c.length_days for c in s.schedule.cycles] == [30]


def test_bases_chain_with_paths_relative_to_the_including_file(tmp_path):
    write(tmp_path, "lib/root.yaml", BASE)
    write(tmp_path, "lib/mid.yaml", "base: root.yaml\nseed: 5\n")
    top = write(tmp_path, "runs/top.yaml", "base: ../lib/mid.yaml\nname: top\n")
    loaded = load_scenario(top)
    assert (loaded.scenario.name, loaded.scenario.seed, loaded.scenario.pk.volume_l) == ("top", 5, 5.0)
    assert loaded.source_text == "base: ../lib/mid.yaml\nname: top\n"
    assert "base" not in yaml.safe_load(loaded.resolved_yaml)


def test_base_of_text_is_relative_to_its_filename(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    s = load_scenario_text("base: base.yaml\n", str(tmp_path / "run.yaml")).scenario
    assert s.name == "base"


def test_cycle_of_bases_is_refused_at_the_closing_base_line(tmp_path):
    a = write(tmp_path, "a.yaml", "base: b.yaml\n")
    b = write(tmp_path, "b.yaml", "name: b\nbase: a.yaml\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(a)
    assert_refused(info.value, str(b), 2, "base", r"bases form a cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml")


def test_a_file_that_is_its_own_base_is_refused(tmp_path):
    a = write(tmp_path, "a.yaml", "base: a.yaml\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(a)
    assert_refused(info.value, str(a), 1, "base", r"bases form a cycle: .*")


@pytest.mark.parametrize("base, message", [
    ("nowhere.yaml", r"no file '.*nowhere\.yaml' and no bundled scenario 'nowhere\.yaml' \(bundled: .*\)"),
    ("[a, b]", r"expected a bundled scenario name or a file path, got a list"),
    ("''", r"expected a bundled scenario name or a file path, got text ''"),
])
def test_bad_base_is_refused_at_its_line(tmp_path, base, message):
    child = write(tmp_path, "child.yaml", f"name: c\nbase: {base}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    assert_refused(info.value, str(child), 2, "base", message)


def test_errors_in_a_base_name_the_base_file_and_line(tmp_path):
    base = write(tmp_path, "base.yaml", BASE.replace("volume_l: 5.0", "volume_l: 500"))
    child = write(tmp_path, "child.yaml", "base: base.yaml\nname: c\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    assert_refused(info.value, str(base), 3, "pk.volume_l", r"500 L is out of range; .*")


def test_consistency_error_points_into_the_base_that_set_the_path(tmp_path):
    base = write(tmp_path, "base.yaml", BASE.replace("{source: marrow, target: blood}", "{source: marrow, target: lung}"))
    child = write(tmp_path, "child.yaml", "base: base.yaml\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    assert_refused(info.value, str(base), 13, "routes.1.target", r"unknown compartment 'lung'; .*")


@pytest.fixture
def bundled_dir(tmp_path, monkeypatch):
    """A temporary directory standing in for the bundled scenarios."""
    directory = tmp_path / "bundled"
    write(directory, "alpha.yaml", BASE.replace("name: base", "name: alpha\ndescription: >\n  First one.  Second."))
    write(directory, "beta.yaml", "base: alpha\nname: beta\n")
    write(directory, "broken.yaml", "seed: x\n")
    monkeypatch.setattr(loader, "_bundled_dir", lambda: directory)
    return directory


def test_bundled_scenarios_list_names_and_first_sentences(bundled_dir):
    listing = bundled_scenarios()
    assert list(listing) == ["alpha", "beta", "broken"]
    assert listing["alpha"] == listing["beta"] == "First one"
    assert listing["broken"].startswith("(does not load: expected a whole number")


def test_bundled_names_load_and_serve_as_bases(bundled_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_scenario("beta")
    assert (loaded.origin, loaded.scenario.name, loaded.scenario.pk.volume_l) == ("bundled:beta", "beta", 5.0)
    child = write(tmp_path, "child.yaml", "base: alpha\nseed: 9\n")
    assert load_scenario(child).scenario.seed == 9
    assert bundled_path("alpha") == bundled_dir / "alpha.yaml"


def test_unknown_name_lists_the_bundled_ones(bundled_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as info:
        load_scenario("gamma")
    assert_refused(info.value, "gamma", 1, "(file)", r".*\(bundled: alpha, beta, broken\)")


def test_bundled_path_points_into_the_scenarios_package():
    assert bundled_path("standard_cycle") == REPO / "scenarios" / "standard_cycle.yaml"


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_every_bundled_scenario_loads(name):
    loaded = load_scenario(bundled_path(name))
    assert load_scenario_text(loaded.resolved_yaml).scenario == loaded.scenario


# --------------------------------------------------------------------------- --set overrides

def test_overrides_change_the_scenario_and_are_recorded():
    overrides = ("pk.volume_l=4", "schedule.cycles.0.infusions.1.ug_per_day=20",
                 "compartments.marrow.cells_per_ul.blast=1000", "name=a=b", " seed = 3")
    loaded = load_scenario_text(VALID, "s.yaml", overrides)
    s = loaded.scenario
    assert (s.pk.volume_l, s.schedule.cycles[0].infusions[1].ug_per_day) == (4.0, 20.0)
    assert s.compartments["marrow"].cells_per_ul.blast == 1000.0
    assert (s.name, s.seed) == ("a=b", 3)
    assert loaded.overrides == overrides
    assert yaml.safe_load(loaded.resolved_yaml)["pk"]["volume_l"] == 4.0


def test_overrides_reach_into_default_lists_and_apply_after_bases(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", "base: base.yaml\npk: {volume_l: 6}\n")
    s = load_scenario(child, ["pk.volume_l=7", "schedule.cycles.0.infusions.0.ug_per_day=5",
                              "pk.volume_l=8"]).scenario
    assert s.pk.volume_l == 8.0 and s.pk.clearance_l_per_h == 3.0
    assert s.schedule.cycles[0].infusions[0].ug_per_day == 5.0


def test_override_mappings_merge_lists_replace_and_new_compartments_appear():
    s = load_scenario_text(VALID, "s.yaml", ["pk={clearance_l_per_h: 1}", "routes=[]",
                                             "compartments.lung.width_um=50"]).scenario
    assert (s.pk.volume_l, s.pk.clearance_l_per_h, s.routes) == (5.0, 1.0, ())
    assert s.compartments["lung"] == Compartment(width_um=50.0)


@pytest.mark.parametrize("overrides, line, path, message", [
    (["seed=2", "pk.volum_l=4"], 2, "pk.volum_l", r"unknown field; did you mean 'volume_l'\?"),
    (["pk.volume_l"], 1, "(override)", r"expected dotted\.path=value \(e\.g\. pk\.volume_l=5\), got 'pk\.volume_l'"),
    (["=4"], 1, "(override)", r"expected dotted\.path=value .*"),
    (["pk..volume_l=4"], 1, "(override)", r"expected dotted\.path=value .*"),
    (["pk.volume_l=-1"], 1, "pk.volume_l", r"-1 L is out of range; .*"),
    (["pk.volume_l=abc"], 1, "pk.volume_l", r"expected a finite number, got text 'abc'"),
    (["pk.volume_l="], 1, "pk.volume_l", r"expected a finite number, got null"),
    (["pk.volume_l=[1"], 1, "pk.volume_l", r"not valid YAML: .*"),
    (["pk={a: 1, a: 2}"], 1, "pk.a", r"duplicate key .*"),
    (["schedule.cycles.3.length_days=5"], 1, "schedule.cycles.3", r"no such item; the list has 1 item\(s\), numbered from 0"),
    (["schedule.cycles.first.length_days=5"], 1, "schedule.cycles.first", r"no such item; .*"),
    (["pk.volume_l.x=5"], 1, "pk.volume_l.x", r"pk\.volume_l holds 5\.0, not a section"),
    (["routes.0.target=lung"], 1, "routes.0.target", r"unknown compartment 'lung'; known: blood, marrow"),
    (["compartments.a.b.c=1"], 1, "compartments.a.b", r"unknown field; .*"),
])
def test_bad_overrides_are_refused_as_set_lines(overrides, line, path, message):
    assert_refused(refusal(VALID, overrides), "--set", line, path, message)


# --------------------------------------------------------------------------- resolved YAML

def test_resolved_yaml_round_trips_to_an_equal_scenario():
    loaded = load_scenario_text(VALID, "s.yaml", ["name='1e5'", "drug.kd_cd19_m=3e-10"])
    again = load_scenario_text(loaded.resolved_yaml)
    assert again.scenario == loaded.scenario and again.scenario.name == "1e5"
    assert again.resolved_yaml == loaded.resolved_yaml


def test_resolved_yaml_lists_every_field_in_declared_order():
    resolved = yaml.safe_load(load_scenario_text(VALID).resolved_yaml)
    assert list(resolved) == [f.name for f in dataclasses.fields(Scenario)]
    assert list(resolved["compartments"]["blood"]) == [f.name for f in dataclasses.fields(Compartment)]


def test_scenario_to_dict_gives_plain_data():
    plain = scenario_to_dict(load_scenario_text(VALID).scenario)
    assert plain["routes"] == [{"source": "blood", "target": "marrow",
                                "rate_per_h": {"cd8": 0.01, "cd4": 0.0, "b": 0.0, "blast": 0.0},
                                "mechanism": "constant"}]
    assert isinstance(plain["schedule"]["cycles"], list)


# --------------------------------------------------------------------------- docs

def test_committed_docs_match_the_schema():
    committed = (REPO / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert committed == render_scenario_docs(), (
        "docs/scenarios.md is out of date; regenerate it with: python -c \"from blinasim.scenario "
        "import render_scenario_docs; open('docs/scenarios.md','w').write(render_scenario_docs())\"")


def test_docs_list_every_field_path():
    docs = render_scenario_docs()
    for path in ("`seed`", "`pk.volume_l`", "`schedule.cycles.N.infusions.N.ug_per_day`",
                 "`compartments.NAME.cells_per_ul.blast`", "`routes.N.rate_per_h.cd8`"):
        assert f"| {path} |" in docs
    assert "| `compartments.NAME.speed_um_per_min.cd8` | CD8 T cells | um/min |" in docs


def test_docs_example_loads_and_example_errors_are_real():
    assert load_scenario_text(EXAMPLE_SCENARIO).scenario.compartments["marrow"].nucleated_cells_per_ul == 1e6
    bad = EXAMPLE_SCENARIO.replace("volume_l: 4.35", "volume_l: -1")
    assert str(refusal(bad, filename="my_run.yaml")) == EXAMPLE_ERRORS[0]
    assert str(refusal(EXAMPLE_SCENARIO, ["duration_h=24", "pk.volum_l=4"])) == EXAMPLE_ERRORS[1]
