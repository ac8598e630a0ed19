"""Validation: a week of the relapsed/refractory high-burden cohort through Dask and the real
engine, against directions the clinic reports: patients with more Tregs (Duell 2017) or
fewer blood T cells respond less often, and blood B cells are depleted within 2 days
(biology brief s.8) in at least 90% of patients."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from blinasim.cohort.cohortfile import read_cohort
from blinasim.cohort.execute import run_cohort
from blinasim.cohort.spec import load_cohort_text

WEEK = textwrap.dedent("""\
    name: rr_week
    scenario: high_burden
    seed: 4
    patients: 24
    set: {duration_h: 168}
    endpoints: {assessment_day: 8}
    covariates:
      marrow_blast_percent: {distribution: uniform, low: 50, high: 95}
      blood_t_per_ul: {distribution: lognormal, median: 800, sigma_log: 0.6, low: 50, high: 5000}
      treg_fraction_of_cd4: {distribution: lognormal, median: 0.065, sigma_log: 0.45, high: 0.3}
""")


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    directory = tmp_path_factory.mktemp("week")
    spec = load_cohort_text(WEEK, "rr_week.yaml")
    out = directory / "week.h5"
    done = run_cohort(spec, out, workers=2, quiet=True)
    assert done.done == 24 and done.failed == 0
    return read_cohort(out)["patients"]


def _cr_rate(patients, mask) -> float:
    return float(np.mean(patients["cr"][mask]))


@pytest.mark.slow
def test_more_tregs_fewer_remissions(week):
    high = week["treg_fraction_of_cd4"] >= 0.085  # Duell 2017's cutoff
    assert 0 < high.sum() < len(high)
    assert _cr_rate(week, high) < _cr_rate(week, ~high)


@pytest.mark.slow
def test_fewer_t_cells_fewer_remissions(week):
    low = week["blood_t_per_ul"] < 800
    assert 0 < low.sum() < len(low)
    assert _cr_rate(week, low) < _cr_rate(week, ~low)


@pytest.mark.slow
def test_blood_b_cells_are_depleted_within_two_days(week):
    within = week["b_depletion_day"] < 2.0  # NaN (never depleted) counts as not within
    assert np.mean(within) >= 0.9 and np.nanmedian(week["b_depletion_day"]) < 1.0
