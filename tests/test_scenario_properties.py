"""Property tests: whatever YAML or --set strings the loader is given, it returns a
LoadedScenario or raises a one-line ScenarioError of the documented shape, never anything else."""
from __future__ import annotations

import dataclasses
import re
import typing

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blinasim.scenario import LoadedScenario, ScenarioError, load_scenario_text
from blinasim.schema import Scenario

SHAPE = re.compile(r"(?P<file>[^\n]+):(?P<line>[0-9]+): (?P<path>[^\n]+?): (?P<message>[^\n]+)")

VALID = """\
name: prop
seed: 3
duration_h: 48
pk:
  model: infusion
  volume_l: 5.0
schedule:
  cycles:
    - length_days: 42
      infusions:
        - {from_day: 1, to_day: 7, ug_per_day: 9}
        - {from_day: 8, to_day: 28, ug_per_day: 28}
lysis: {hits_to_kill: 3}
compartments:
  blood:
    cells_per_ul: {cd8: 300, b: 200}
    b_production: true
  marrow:
    cells_per_ul: {blast: 5000}
routes:
  - {source: blood, target: marrow, rate_per_h: {cd8: 0.01}}
output: {record_every_min: 10}
"""

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _field_paths(cls: type, prefix: str = "") -> list[str]:
    """Dotted paths of every schema field, with 0 for list items and 'blood' for names."""
    paths = []
    for field in dataclasses.fields(cls):
        hint, path = typing.get_type_hints(cls)[field.name], f"{prefix}{field.name}"
        paths.append(path)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            paths += _field_paths(hint, path + ".")
        elif origin is tuple:
            paths += _field_paths(args[0], path + ".0.")
        elif origin is dict:
            paths += _field_paths(args[1], path + ".blood.")
    return paths


PATHS = _field_paths(Scenario)
NAMES = sorted({path.rsplit(".", 1)[-1] for path in PATHS})

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["infusion", "fixed", "blood", "marrow", "1e-9", "3.0"]))
keys = st.one_of(st.sampled_from(NAMES + ["base", "blood", "marrow"]), st.text(max_size=8))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys, inner, max_size=5)),
                         max_leaves=25)
TAGS = ["!!int ", "!!float ", "!!bool ", "!!null ", "!!binary ", "!!timestamp ", "!!set ", "!!omap ",
        "!!pairs ", "!!seq ", "!!map ", "!!str ", "!!merge ", "!!python/object:os.system ", "!foo "]
tagged_values = st.builds(str.__add__, st.sampled_from(TAGS),
                          st.sampled_from(["", "x", "1", "-1.5", "true", "''", "[1]", "{a: 1}", "2020-13-45",
                                           "0x", "1:2:x", "AAA=", "2020-01-01 25:00:00"]))
yaml_snippets = st.sampled_from(TAGS + [
    "&a ", "*a ", "<<: ", "? ", "- ", ": ", "{", "}", "[", "]",
    "---\n", "...\n", "\t", "'", '"', "#", "|\n", ">\n", "%YAML 1.1\n", "\n  ", "\x00", "\ufeff",
    "base: ", "base: s.yaml\n", "seed: ", "pk:\n  volume_l: ", "compartments.", "1e999", ".nan",
])
overrides = st.lists(st.one_of(
    st.text(max_size=20),
    st.builds(lambda path, value: f"{path}={value}", st.sampled_from(PATHS + ["pk.volum_l", "routes.7.source"]),
              st.one_of(st.text(max_size=10), yaml_snippets, tagged_values,
                        scalars.map(lambda v: yaml.safe_dump(v).removesuffix("\n...\n"))))), max_size=3)


def load_or_refuse(text: str, sets: list[str] = ()) -> LoadedScenario | None:
    """Load `text`; a refusal must be a one-line ScenarioError of the documented shape."""
    try:
        return load_scenario_text(text, "s.yaml", sets)
    except ScenarioError as err:
        text_of_error = str(err)
        assert len(text_of_error.splitlines()) == 1, text_of_error
        match = SHAPE.fullmatch(text_of_error)
        assert match, text_of_error
        assert err.file in ("s.yaml", "--set") and err.line >= 1
        assert text_of_error == f"{err.file}:{err.line}: {err.path}: {err.message}"
        return None


def assert_round_trip(loaded: LoadedScenario | None) -> None:
    if loaded is not None:
        assert load_scenario_text(loaded.resolved_yaml).scenario == loaded.scenario


def test_the_valid_seed_text_loads():
    assert load_or_refuse(VALID) is not None


@FAST
@given(documents)
def test_random_documents_load_or_are_refused(document):
    assert_round_trip(load_or_refuse(yaml.safe_dump(document, allow_unicode=True)))


@FAST
@given(st.dictionaries(st.sampled_from(PATHS), scalars, max_size=6))
def test_random_values_at_real_paths_load_or_are_refused(values):
    sets = [f"{path}={yaml.safe_dump(value).removesuffix(chr(10) + '...' + chr(10))}"
            for path, value in values.items()]
    assert_round_trip(load_or_refuse(VALID, sets))


@FAST
@given(st.data())
def test_deleting_characters_loads_or_is_refused(data):
    start = data.draw(st.integers(0, len(VALID)))
    end = data.draw(st.integers(start, min(len(VALID), start + 8)))
    assert_round_trip(load_or_refuse(VALID[:start] + VALID[end:]))


@FAST
@given(st.data())
def test_inserting_text_loads_or_is_refused(data):
    at = data.draw(st.integers(0, len(VALID)))
    inserted = data.draw(st.one_of(yaml_snippets, st.text(max_size=6),
                                   keys.map(lambda key: f"\n{key}: 1\n")))
    assert_round_trip(load_or_refuse(VALID[:at] + inserted + VALID[at:]))


@FAST
@given(st.data())
def test_swapping_values_between_lines_loads_or_is_refused(data):
    lines = VALID.splitlines()
    valued = [i for i, line in enumerate(lines) if re.search(r": \S", line)]
    first, second = data.draw(st.lists(st.sampled_from(valued), min_size=2, max_size=2))
    value_of = {i: lines[i].split(": ", 1) for i in (first, second)}
    lines[first] = value_of[first][0] + ": " + value_of[second][1]
    lines[second] = value_of[second][0] + ": " + value_of[first][1]
    assert_round_trip(load_or_refuse("\n".join(lines) + "\n"))


@FAST
@given(st.data())
def test_tagging_a_value_loads_or_is_refused(data):
    lines = VALID.splitlines()
    valued = [i for i, line in enumerate(lines) if re.search(r": \S", line)]
    i = data.draw(st.sampled_from(valued))
    key, value = lines[i].split(": ", 1)
    lines[i] = f"{key}: {data.draw(st.sampled_from(TAGS))}{value}"
    assert_round_trip(load_or_refuse("\n".join(lines) + "\n"))


@FAST
@given(st.dictionaries(st.sampled_from(PATHS), tagged_values, max_size=3))
def test_tagged_override_values_load_or_are_refused(values):
    assert_round_trip(load_or_refuse(VALID, [f"{path}={value}" for path, value in values.items()]))


@FAST
@given(overrides)
def test_random_overrides_load_or_are_refused(sets):
    loaded = load_or_refuse(VALID, sets)
    assert_round_trip(loaded)
    if loaded is not None:
        assert loaded.overrides == tuple(sets)
