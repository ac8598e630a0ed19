"""Cohorts without Dask: endpoint rules on hand-made series, intervals, seeds, covariates,
dosing, and the cohort file loader's errors."""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blinasim.cohort.covariates import (
    COVARIATES,
    Distribution,
    Dosing,
    bsa_m2,
    patient_overrides,
    patient_seed,
    sample_covariates,
)
from blinasim.cohort.endpoints import (
    EndpointRules,
    evaluate,
    summarise,
    wilson_interval,
)
from blinasim.cohort.spec import load_cohort, load_cohort_text
from blinasim.processes.protocol import ACTIONS
from blinasim.scenario import (
    ScenarioError,
    bundled_cohorts,
    bundled_scenarios,
    load_scenario,
)

RULES = EndpointRules()


def series(days, blast, **others):
    """A hand-made series on the given days; unspecified observables are harmless constants."""
    n = len(days)
    base = {"time_h": np.array(days, dtype=float) * 24.0, "marrow_blast_fraction": np.array(blast, dtype=float),
            "blasts": np.full(n, 100.0), "blasts_cd19neg": np.zeros(n), "blood_b_per_ul": np.full(n, 500.0),
            "blood_t_per_ul": np.full(n, 1000.0), "crs_grade": np.zeros(n), "icans_grade": np.zeros(n),
            "neurotox_index": np.zeros(n)}
    base.update({k: np.array(v, dtype=float) for k, v in others.items()})
    return base


# --------------------------------------------------------------------------- endpoint rules

def test_remission_and_mrd_are_read_at_the_assessment_day():
    # day 29 starts at 28 days: the value recorded at 28 days counts, not the one at 28.5
    s = series([0, 10, 28, 28.5, 41], [0.6, 0.2, 0.04, 0.9, 0.9])
    e = evaluate(s, RULES)
    assert e["cr"] == 1.0 and e["mrd_response"] == 0.0
    assert e["marrow_blast_fraction_assessed"] == 0.04
    assert evaluate(series([0, 28, 41], [0.6, 0.05, 0.0]), RULES)["cr"] == 0.0  # 5% is not < 5%
    assert evaluate(series([0, 28, 41], [0.6, 9e-5, 0.0]), RULES)["mrd_response"] == 1.0


def test_assessment_uses_the_last_value_before_it():
    e = evaluate(series([0, 27.9, 30], [0.6, 0.01, 0.5]), RULES)
    assert e["cr"] == 1.0 and e["marrow_blast_fraction_assessed"] == 0.01


def test_series_ending_before_the_assessment_are_refused():
    with pytest.raises(ValueError, match="before the assessment on day 29"):
        evaluate(series([0, 20], [0.5, 0.1]), RULES)


def test_relapse_needs_remission_first_and_is_dated():
    s = series([0, 28, 35, 38, 41], [0.5, 0.001, 0.02, 0.06, 0.2],
               blasts=[100, 1, 20, 60, 200], blasts_cd19neg=[0, 0, 15, 40, 190])
    e = evaluate(s, RULES)
    assert e["relapse"] == 1.0 and e["relapse_day"] == 38.0
    assert e["cd19neg_relapse"] == 1.0  # 40 of 60 blasts at relapse are CD19-negative
    assert e["cd19neg_share_end"] == pytest.approx(0.95)
    no_cr = evaluate(series([0, 28, 41], [0.5, 0.3, 0.6]), RULES)
    assert no_cr["relapse"] == 0.0 and math.isnan(no_cr["relapse_day"]) and no_cr["cd19neg_relapse"] == 0.0


def test_cd19_positive_relapse_is_not_cd19_negative():
    s = series([0, 28, 41], [0.5, 0.001, 0.3], blasts=[100, 1, 300], blasts_cd19neg=[0, 0, 100])
    e = evaluate(s, RULES)
    assert e["relapse"] == 1.0 and e["cd19neg_relapse"] == 0.0  # 1/3 < 1/2


def test_toxicity_b_depletion_and_t_expansion():
    s = series([0, 0.1, 0.2, 1, 7, 14, 28, 41], [0.5] * 8,
               crs_grade=[0, 1, 2, 3, 1, 0, 0, 0], icans_grade=[0, 0, 0, 1, 3, 0, 0, 0],
               neurotox_index=[0, 0.2, 0.6, 0.4, 0.1, 0, 0, 0],
               blood_b_per_ul=[500, 50, 0.9, 0.1, 0, 0, 0, 0],
               blood_t_per_ul=[1000, 200, 100, 300, 900, 2500, 1800, 1000])
    e = evaluate(s, RULES)
    assert e["max_crs_grade"] == 3.0 and e["max_neurotox_index"] == 0.6 and e["neurotox_event"] == 1.0
    assert e["crs_onset_day"] == pytest.approx(0.1) and e["crs_days"] == pytest.approx(14.0 - 0.1)
    assert e["max_icans_grade"] == 3.0 and e["icans_onset_day"] == 1.0 and e["icans_days"] == pytest.approx(13.0)
    assert e["b_depletion_day"] == pytest.approx(0.2)
    assert e["t_expansion_fold"] == 2.5 and e["t_expansion_day"] == 14.0
    never = evaluate(series([0, 28, 41], [0.5] * 3), RULES)
    assert math.isnan(never["b_depletion_day"]) and never["max_crs_grade"] == 0.0
    assert math.isnan(never["crs_onset_day"]) and never["crs_days"] == 0.0 and never["max_icans_grade"] == 0.0


def test_interruptions_and_the_permanent_stop_are_counted():
    code = {name: ACTIONS.index(name) for name in ACTIONS}
    table = {"time_h": np.array([30.0, 31.0, 60.0, 70.0, 80.0]),
             "action": np.array([code["interrupt"], code["dexamethasone"], code["restart"],
                                 code["interrupt"], code["tocilizumab"]], dtype=np.int8),
             "value": np.zeros(5)}
    s = series([0, 28, 41], [0.5, 0.01, 0.0])
    assert evaluate(s, RULES, interventions=table)["interruptions"] == 2.0
    assert evaluate(s, RULES)["interruptions"] == 0.0  # no interventions table: none happened
    rates, spreads = summarise([evaluate(s, RULES, interventions=table), evaluate(s, RULES)])
    assert {r.name: r.events for r in rates}["interrupted"] == 1
    assert {x.name: x.median for x in spreads}["interruptions"] == 1.0
    assert evaluate(s, RULES, interventions=table)["stopped"] == 0.0
    table["action"][-1] = code["stop"]
    assert evaluate(s, RULES, interventions=table)["stopped"] == 1.0


def test_wilson_interval_matches_published_values():
    # Newcombe 1998, Statistics in Medicine 17:857, table I: 0/10 and 1/29 (Wilson, 95%)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=1e-4)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_interval_holds_the_estimate(events, n):
    events = min(events, n)
    low, high = wilson_interval(events, n)
    assert 0.0 <= low <= events / n <= high <= 1.0


def test_summary_counts_rates_and_quartiles():
    endpoints = [evaluate(series([0, 28, 41], [0.5, b, b], crs_grade=[0, g, 0], icans_grade=[0, g, 0]), RULES)
                 for b, g in ((0.01, 1), (0.5, 3), (0.00001, 0), (0.02, 2))]
    rates, spreads = summarise(endpoints)
    by = {r.name: r for r in rates}
    assert (by["cr"].events, by["cr"].n, by["cr"].rate) == (3, 4, 0.75)
    assert by["mrd_response"].events == 1 and by["crs_grade3plus"].events == 1 and by["crs_any"].events == 3
    assert by["icans_any"].events == 3 and by["icans_grade3plus"].events == 1
    spread = {s.name: s for s in spreads}["marrow_blast_fraction_assessed"]
    assert spread.median == pytest.approx(np.median([0.01, 0.5, 0.00001, 0.02]))


# --------------------------------------------------------------------------- seeds and covariates

def test_patient_seeds_come_from_seedsequence_spawn():
    children = np.random.SeedSequence(99).spawn(5)
    for i, child in enumerate(children):
        words = child.spawn(1)[0].generate_state(2, np.uint32)
        assert patient_seed(99, i) == ((int(words[0]) << 32) | int(words[1])) & (2**63 - 1)
    assert len({patient_seed(99, i) for i in range(1000)}) == 1000


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 10_000),
       st.sets(st.sampled_from([c.name for c in COVARIATES if c.name != "treg_fraction_of_cd4"])))
def test_a_covariate_draw_does_not_depend_on_the_others(seed, index, others):
    alone = {"treg_fraction_of_cd4": Distribution("beta", (("a", 2.0), ("b", 30.0)))}
    ranges = {c.name: (c.low, c.high) for c in COVARIATES}
    more = dict(alone, **{name: Distribution("uniform", (("low", ranges[name][0]), ("high", ranges[name][1])))
                          for name in others})
    assert (sample_covariates(alone, seed, index)["treg_fraction_of_cd4"]
            == sample_covariates(more, seed, index)["treg_fraction_of_cd4"])


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["normal", "lognormal", "beta"]), st.floats(0.01, 50), st.floats(0.05, 5),
       st.floats(0, 0.9), st.floats(0.01, 40), st.integers(0, 2**32))
def test_truncated_draws_stay_inside(kind, centre, spread, low, width, seed):
    params = {"normal": (("mean", centre), ("sd", spread)), "lognormal": (("median", centre), ("sigma_log", spread)),
              "beta": (("a", centre), ("b", spread))}[kind]
    high = min(low + width, 1.0) if kind == "beta" else low + width
    d = Distribution(kind, params, low, high)
    if kind == "beta" or d.mass_within() < 1e-6:
        try:
            value = d.sample(np.random.default_rng(seed))
        except ValueError as exc:  # a beta with (almost) no mass inside is refused, not looped on
            assert "no draw fell within" in str(exc)
            return
    else:
        value = d.sample(np.random.default_rng(seed))
    assert low <= value <= high


def test_truncated_normal_keeps_its_shape():
    d = Distribution("normal", (("mean", 0.0), ("sd", 1.0)), 0.0, math.inf)
    rng = np.random.default_rng(5)
    values = np.array([d.sample(rng) for _ in range(4000)])
    assert values.min() >= 0 and values.mean() == pytest.approx(math.sqrt(2 / math.pi), rel=0.05)


def test_out_of_range_draw_names_the_covariate():
    wild = {"treg_fraction_of_cd4": Distribution("normal", (("mean", 2.0), ("sd", 0.1)))}
    with pytest.raises(ValueError, match=r"covariate treg_fraction_of_cd4 = \d\.\d+ is outside its allowed range 0 to 1"):
        sample_covariates(wild, 1, 0)


def test_mosteller_bsa_and_label_dosing():
    assert bsa_m2(70, 170) == pytest.approx(math.sqrt(170 * 70 / 3600))
    base = load_scenario("standard_cycle").scenario
    child = {"weight_kg": 30.0, "height_cm": 130.0}
    overrides, derived = patient_overrides(base, child, Dosing(rule="label"))
    bsa = math.sqrt(130 * 30 / 3600)
    assert derived == {"bsa_m2": pytest.approx(bsa), "per_m2_dosing": 1.0}
    values = dict(o.split("=") for o in overrides)
    assert float(values["schedule.cycles.0.infusions.0.ug_per_day"]) == pytest.approx(5 * bsa)
    assert float(values["schedule.cycles.0.infusions.1.ug_per_day"]) == pytest.approx(15 * bsa)
    assert float(values["pk.clearance_l_per_h"]) == pytest.approx(2.22 * (bsa / 1.88) ** 0.61)
    assert "pk.volume_l" not in values
    adult, derived = patient_overrides(base, {"weight_kg": 80.0, "height_cm": 180.0}, Dosing(rule="label"))
    assert derived["per_m2_dosing"] == 0.0 and not any("schedule" in o for o in adult)
    # a large child is capped at the flat dose
    big, _ = patient_overrides(base, {"weight_kg": 90.0, "height_cm": 190.0},
                               Dosing(rule="label", weight_threshold_kg=100.0))
    assert float(dict(o.split("=") for o in big)["schedule.cycles.0.infusions.1.ug_per_day"]) == 28.0


def test_cell_covariates_set_densities_and_keep_ratios():
    base = load_scenario("standard_cycle").scenario
    overrides, _ = patient_overrides(base, {"marrow_blast_percent": 40.0, "blood_t_per_ul": 1000.0}, Dosing())
    values = {k: float(v) for k, v in (o.split("=") for o in overrides)}
    assert values["compartments.marrow.cells_per_ul.blast"] == pytest.approx(400_000)
    assert values["compartments.blood.cells_per_ul.cd8"] == pytest.approx(350)  # 700 of 2000, halved
    assert values["compartments.blood.cells_per_ul.cd4"] == pytest.approx(650)
    assert values["compartments.marrow.cells_per_ul.cd8"] == pytest.approx(5000)  # every compartment halves
    load_scenario("standard_cycle", overrides)  # a valid scenario


# --------------------------------------------------------------------------- loader

GOOD = """\
name: tiny
scenario: standard_cycle
patients: 3
covariates:
  marrow_blast_percent: {distribution: uniform, low: 10, high: 60}
  treg_fraction_of_cd4: 0.05
"""


def test_bundled_cohorts_load_and_are_not_scenarios():
    assert set(bundled_cohorts()) == {"cohort_rr_high_burden", "cohort_mrd", "cohort_full_course", "cohort_mrd_course"}
    assert not any(name.startswith("cohort_") for name in bundled_scenarios())
    for name in bundled_cohorts():
        spec = load_cohort(name)
        assert spec.name == name and spec.settings.patients >= 20


def test_a_good_cohort_loads_with_defaults():
    spec = load_cohort_text(GOOD, "c.yaml")
    assert spec.settings.seed == 1 and spec.settings.series_every_h == 6.0
    assert spec.distributions["treg_fraction_of_cd4"] == Distribution("fixed", (("value", 0.05),))
    assert spec.identity(3) != spec.identity(4)


def test_the_identity_covers_the_version_and_the_files_columns(monkeypatch):
    """A file written by another version or with other endpoint columns must not be continued."""
    spec = load_cohort_text(GOOD, "c.yaml")
    before = spec.identity(3)
    monkeypatch.setattr("blinasim.cohort.spec.ENDPOINT_NAMES", ("cr",))
    assert spec.identity(3) != before
    monkeypatch.undo()
    monkeypatch.setattr("blinasim.cohort.spec.__version__", "0.0.0+other")
    assert spec.identity(3) != before


@pytest.mark.parametrize(("extra", "where"), [
    ("seed: -1\n", r"c\.yaml:7: seed: -1 is out of range"),
    ("patientz: 3\n", r"c\.yaml:7: patientz: unknown field; did you mean 'patients'\?"),
    ("covariates:\n  height: 3\n", r"c\.yaml:7: covariates: duplicate key \(first set on line 4\)"),
    ("set:\n  pk.volume_l: -1\n", r"c\.yaml:8: set\.pk\.volume_l: -1 L is out of range"),
    ("set:\n  pk.volum_l: 3\n", r"c\.yaml:8: set\.pk\.volum_l: unknown field; did you mean 'volume_l'\?"),
    ("dosing: {rule: label}\n", r"c\.yaml:7: dosing\.rule: 'label' doses by weight"),
    ("endpoints: {assessment_day: 60}\n", r"c\.yaml:7: endpoints\.assessment_day: day 60 is after the base scenario ends \(42 days\)"),
    ("series_every_h: 0.1\n", r"c\.yaml:7: series_every_h: 0\.1 h is not a whole multiple"),
])
def test_bad_fields_are_refused_with_file_line_and_field(extra, where):
    with pytest.raises(ScenarioError, match=where):
        load_cohort_text(GOOD + extra, "c.yaml")


@pytest.mark.parametrize(("spec", "where"), [
    ("{distribution: gamma}", r"c\.yaml:5: covariates\.marrow_blast_percent\.distribution: expected one of fixed, uniform"),
    ("{distribution: normal, mean: 3}", r"covariates\.marrow_blast_percent\.sd: missing: a normal distribution needs mean, sd"),
    ("{distribution: normal, mean: 3, sd: 0}", r"covariates\.marrow_blast_percent\.sd: must be more than 0"),
    ("{distribution: uniform, low: 5, high: 2}", r"covariates\.marrow_blast_percent\.high: must be more than low"),
    ("{distribution: uniform, low: 5, high: 6, sd: 2}", r"\.sd: not a parameter of a uniform distribution"),
    ("{distribution: normal, mean: 0, sd: 1, low: 50, high: 60}", r"low/high keep only .* of the distribution"),
    ("{distribution: lognormal, median: abc, sigma_log: 1}", r"\.median: expected a finite number, got text 'abc'"),
    ("{distribution: lognormal, median: 1, sigma_log: 9.2e18}", r"\.sigma_log: must be at most 10 .*, got 9\.2e\+18"),
    ("[1, 2]", r"covariates\.marrow_blast_percent: expected a finite number, got a list"),
    ("1\n  height: 3", r"c\.yaml:6: covariates\.height: unknown covariate; known: marrow_blast_percent"),
    ("{distribution: beta, a: 1, b: 2, zero_probability: 1}", r"\.zero_probability: must be at least 0 and below 1, got 1"),
])
def test_bad_distributions_are_refused(spec, where):
    text = GOOD.replace("{distribution: uniform, low: 10, high: 60}", spec)
    with pytest.raises(ScenarioError, match=where):
        load_cohort_text(text, "c.yaml")


def test_covariates_the_base_cannot_take_are_refused(tmp_path):
    dish = textwrap.dedent("""\
        scenario: dish
        covariates:
          marrow_blast_percent: 50
    """)
    with pytest.raises(ScenarioError, match=r"c\.yaml:3: covariates\.marrow_blast_percent: the base scenario needs a compartment with role 'marrow'"):
        load_cohort_text(dish, "c.yaml")
    with pytest.raises(ScenarioError, match=r"covariates\.weight_kg: needs height_cm too"):
        load_cohort_text("scenario: standard_cycle\ncovariates:\n  weight_kg: 70\n", "c.yaml")


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(
                        ["distribution", "low", "high", "mean", "sd", "median", "sigma_log", "a", "b", "value", "x"]),
                        children, max_size=4), max_leaves=8))
def test_any_covariate_value_loads_or_is_refused_in_one_line(value):
    import json
    text = f"scenario: standard_cycle\ncovariates:\n  treg_fraction_of_cd4: {json.dumps(value)}\n"
    try:
        load_cohort_text(text, "c.yaml")
    except ScenarioError as err:
        assert str(err).startswith("c.yaml:") and "\n" not in str(err)


def test_missing_cohort_and_missing_base_are_one_line_errors(tmp_path):
    with pytest.raises(ScenarioError, match=r"nowhere\.yaml:1: \(file\): no such file, and no bundled cohort"):
        load_cohort(tmp_path / "nowhere.yaml")
    with pytest.raises(ScenarioError, match=r"c\.yaml:1: scenario: no file 'nope'"):
        load_cohort_text("scenario: nope\n", "c.yaml")
    with pytest.raises(ScenarioError, match=r"c\.yaml:1: scenario: required"):
        load_cohort_text("patients: 3\n", "c.yaml")


def test_cohort_progress_counts_patients_and_reports_failures():
    import io

    from blinasim.cohort.patient import PatientResult
    from blinasim.progress import CohortProgress
    now = [0.0]
    stream = io.StringIO()
    progress = CohortProgress(10, 2, 2, stream=stream, clock=lambda: now[0])
    for i in range(4):
        now[0] += 10.0
        progress.update(PatientResult(i, ok=i != 1, error="" if i != 1 else "ValueError: bad"))
    # 4 patients in 40 s on 2 workers: 20 s each per worker; 4 left of 10 -> 40 s
    assert progress.line(40.0) == ("[##############----------] 6/10 patients (1 failed) | 2 workers "
                                   "|   20.0 s/patient | ETA     40 s")
    assert "patient 1 failed: ValueError: bad\n" in stream.getvalue()


def test_initial_cells_estimate_the_patients_population():
    from blinasim.cohort.patient import draw_patient, initial_cells
    from blinasim.model import BlinaModel
    from blinasim.scenario import load_scenario_text
    spec = load_cohort("cohort_rr_high_burden")
    for index in range(3):
        draw = draw_patient(spec, index)
        model = BlinaModel(load_scenario_text(spec.base.resolved_yaml, "p", draw.overrides).scenario, seed=draw.seed)
        assert initial_cells(spec, draw) == pytest.approx(model.pop.n, abs=len(spec.base.scenario.compartments) * 4)


def test_zero_inflation_gives_zeros_at_its_rate_and_keeps_the_rest():
    plain = Distribution("beta", (("a", 2.0), ("b", 5.0)))
    inflated = Distribution("beta", (("a", 2.0), ("b", 5.0)), zero_probability=0.8)
    values = np.array([inflated.sample(np.random.default_rng(i)) for i in range(3000)])
    assert np.mean(values == 0.0) == pytest.approx(0.8, abs=0.03)
    assert np.mean(values[values > 0]) == pytest.approx(2 / 7, abs=0.02)
    # without inflation the stream is used as before: no extra draw
    assert plain.sample(np.random.default_rng(3)) == np.random.default_rng(3).beta(2.0, 5.0, 64)[0]


def test_course_endpoints_from_the_assessments():
    from blinasim.cohort.endpoints import course_endpoints
    table = {"time_h": np.array([1008.0, 2016.0, 3024.0, 4440.0]), "cycle": np.array([1, 2, 3, 4]),
             "flow_mrd": np.array([2e-3, 0.0, 0.0, 0.1]), "cd19_negative_share": np.array([0, 0, 0, 0.7]),
             "response": np.array([0, 1, 1, 2])}
    e = course_endpoints(table, 6000.0, RULES)
    assert e == {"cr_2_cycles": 1.0, "mrd_negative_cycle1": 0.0, "rfs_day": (4440.0 - 2016.0) / 24.0,
                 "rfs_event": 1.0, "relapse_cd19neg_assessed": 1.0}
    censored = course_endpoints({**table, "response": np.array([1, 1, 1, 1])}, 6000.0, RULES)
    assert censored["rfs_day"] == (6000.0 - 1008.0) / 24.0 and censored["rfs_event"] == 0.0
    assert math.isnan(censored["relapse_cd19neg_assessed"])
    never = course_endpoints({**table, "response": np.array([0, 0, 0, 0])}, 6000.0, RULES)
    assert never["cr_2_cycles"] == 0.0 and math.isnan(never["rfs_day"]) and math.isnan(never["rfs_event"])
    assert all(math.isnan(v) for v in course_endpoints(None, 6000.0, RULES).values())


def test_kaplan_meier_rfs_by_hand():
    """Four patients in CR: relapses at 10 and 30 days, censored at 20 and 40:
    S(10) = 3/4, S(30) = 3/4 x 1/2 = 3/8; median 30 days."""
    from blinasim.cohort.survival import fit_rfs, rfs_lines
    days, events = np.array([10.0, 20.0, 30.0, 40.0]), np.array([1.0, 0.0, 1.0, 0.0])
    km = fit_rfs(days, events)
    assert float(km.survival_function_at_times(10.0).iloc[0]) == pytest.approx(0.75)
    assert float(km.survival_function_at_times(35.0).iloc[0]) == pytest.approx(0.375)
    assert km.median_survival_time_ == 30.0
    patients = {"rfs_day": np.array([10.0, 20.0, 30.0, 40.0, np.nan]), "rfs_event": np.array([1.0, 0.0, 1.0, 0.0, np.nan])}
    lines = rfs_lines(patients, np.ones(5, dtype=bool))
    assert lines[0].startswith("  relapse-free survival from CR (Kaplan-Meier, n=4, 2 relapses): median 30 days")
    assert fit_rfs(np.array([]), np.array([])) is None
