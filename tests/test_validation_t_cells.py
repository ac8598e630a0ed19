"""Validation of the T-cell biology (issue #11): emergent behaviour of seeded runs of the
experiments in blinasim/experiments.py, the same runs that docs/model.md shows as figures.

Each check is a direction or an order of magnitude the literature gives, not a fitted
value. Marked slow: about ten minutes on an idle 2-core machine.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from blinasim.experiments import EXPERIMENTS, run_arm

pytestmark = pytest.mark.slow


@functools.cache
def runs(name: str) -> dict[str, dict[str, np.ndarray]]:
    return {arm.label: run_arm(arm, every_h=1.0 if name == "dish" else 6.0) for arm in EXPERIMENTS[name]}


def at(run: dict[str, np.ndarray], key: str, hours: float) -> float:
    return float(run[key][np.searchsorted(run["time_h"], hours - 1e-9)])


def lysed(run: dict[str, np.ndarray], hours: float) -> float:
    return 1.0 - at(run, "blasts", hours) / run["blasts"][0]


def test_dish_unstimulated_t_cells_lyse_more_with_drug_and_with_time():
    r = runs("dish")
    at4 = [lysed(r[f"{c} pg/mL"], 4) for c in ("1", "10", "100")]
    assert at4[0] < 0.05 < at4[1] < at4[2]                        # dose-response at 4 h
    assert 0.1 < at4[1] < 0.6 and at4[2] > 0.6                    # clear lysis at 10-100 pg/mL
    assert lysed(r["10 pg/mL"], 48) > lysed(r["10 pg/mL"], 4) + 0.3   # killing goes on for days
    assert lysed(r["1000 pg/mL"], 24) > 0.95


def test_dish_naive_t_cells_arm_first_and_kill_later():
    naive = runs("dish")["1000 pg/mL, naive T cells only"]
    assert lysed(naive, 4) < 0.05                                  # almost none armed at first
    assert naive["t_armed_fraction"][0] < 0.03
    assert lysed(naive, 48) > 0.3                                  # armed after 1-3 days
    assert at(naive, "t_armed_fraction", 48) > 0.2


def test_killing_depends_on_the_dose_across_the_clinical_range():
    r = runs("dose")
    blasts = [at(r[f"{d} ug/m2/day"], "blasts", 7 * 24) for d in ("5", "15", "30", "60")]
    assert blasts[0] > blasts[1] > blasts[2] > blasts[3]      # more drug, more killing
    t_peak = [r[f"{d} ug/m2/day"]["t_cells"].max() for d in ("5", "15", "30", "60")]
    assert t_peak[0] < t_peak[1] < t_peak[2] < t_peak[3]      # and more expansion


def test_blood_t_cells_leave_and_return_over_two_cycles():
    r = runs("two_cycles")["two cycles"]
    blood = r["blood_t_per_ul"] / r["blood_t_per_ul"][0]
    day = r["time_h"] / 24
    assert blood[(day > 0.2) & (day < 2)].min() < 0.3             # redistribution on day 1
    assert blood[(day >= 10) & (day <= 14)].mean() > 0.5          # back towards baseline
    assert blood[(day >= 35) & (day < 42)].mean() > 0.5           # drug-free weeks
    assert blood[(day > 42) & (day < 44)].min() < 0.5             # cycle 2 starts: a new dip
    # T cells divide during the first days of each cycle without further synapses
    assert r["t_dividing"][(day > 1) & (day < 4)].max() > 100
    assert np.all(np.isfinite(r["t_cells"]))


def test_marrow_clears_slower_with_more_blasts_fewer_t_cells_tregs_or_pdl1():
    r = runs("marrow")

    def burden(label: str) -> float:
        run = r[label]
        return float(np.mean(run["marrow_blast_fraction"][run["time_h"] <= 7 * 24]))

    standard = burden("25% blasts")
    assert burden("60% blasts") > standard
    assert burden("25% blasts, T cells / 4") > standard
    assert burden("Tregs 10.3% of CD4") > standard
    assert burden("60% blasts, PD-L1-high") > burden("60% blasts")
    assert at(r["25% blasts"], "marrow_blast_fraction", 7 * 24) < 0.05    # a responder


def test_a_treatment_free_interval_lets_exhaustion_recover():
    r = runs("interval")
    interval, continuous = r["28 ug/day, days 1-7 and 15-21"], r["14 ug/day, days 1-28"]
    # exhaustion falls during the drug-free week
    assert at(interval, "t_exhaustion_mean", 14 * 24) < at(interval, "t_exhaustion_mean", 7.5 * 24)
    assert at(interval, "t_exhaustion_mean", 14 * 24) < at(continuous, "t_exhaustion_mean", 14 * 24)
