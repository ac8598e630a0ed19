"""The run summary (blinasim/summary.py): clinical read-outs in words, from hand-made series.

The verdicts come from the cohort endpoint rules (blinasim.cohort.endpoints); these tests
check the wording, the units, that changed rules change the verdicts, and that a read-out
missing from a run only drops its line.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from blinasim.cli import main
from blinasim.cohort.endpoints import EndpointRules
from blinasim.processes.protocol import ACTIONS
from blinasim.summary import RunSummary, clinical_lines


def patient_series(days: float = 42.0, every_h: float = 1.0) -> dict[str, np.ndarray]:
    """A patient on the step-up cycle: marrow 25% -> 0.3% by day 29, B cells gone at 5 h, CRS 2 at 26 h."""
    t = np.arange(0.0, days * 24.0 + 1e-9, every_h)
    marrow = np.where(t < 600.0, 0.25 * np.exp(-t / 120.0), 0.003)
    blasts = np.round(marrow * 22500)
    b = np.where(t < 5.0, 500.0 - 100.0 * t, 0.2)
    b[t >= 30 * 24] = 40.0  # recovery after the infusion
    t_cells = np.full(t.shape, 1000.0)
    t_cells[(t >= 7 * 24) & (t < 20 * 24)] = 1500.0
    t_cells[t == 12 * 24] = 2500.0  # the peak from day 7 on
    crs = np.zeros(t.shape)
    crs[(t >= 20.0) & (t < 40.0)] = 1.0
    crs[(t >= 26.0) & (t < 30.0)] = 2.0
    rate = np.where(t <= 7 * 24, 9.0, np.where(t <= 28 * 24, 28.0, 0.0))
    rate[(t > 30.0) & (t <= 42.0)] = 0.0  # interrupted at 30 h, restarted at 42 h
    drug = np.where(rate == 9.0, 170.0, np.where(rate == 28.0, 530.0, 0.0))
    drug[t > 28 * 24] = 530.0 * np.exp(-(t[t > 28 * 24] - 28 * 24) / 3.0)
    return {"time_h": t, "marrow_blast_fraction": marrow, "blasts": blasts,
            "blasts_cd19neg": np.zeros(t.shape), "blood_b_per_ul": b, "blood_t_per_ul": t_cells,
            "crs_grade": crs, "il6_pg_per_ml": np.where(crs > 0, 80.0, 5.0),
            "neurotox_index": np.where((t > 40) & (t < 50), 0.3, 0.05),
            "drug_pg_per_ml": drug, "infusion_ug_per_day": rate,
            "kills_cumulative": np.linspace(0.0, 9000.0, t.size)}


INTERVENTIONS = {"time_h": np.array([0.0, 30.0, 42.0, 42.0]),
                 "action": np.array([2, 0, 1, 2]), "value": np.array([0.0, 0.0, 9.0, 0.0]),
                 "actions": ACTIONS}


def as_dict(lines: list[str]) -> dict[str, str]:
    """{label: text} of the indented summary lines."""
    return {line[2:12].strip(): line[12:] for line in lines}


def test_a_whole_cycle_in_clinical_words():
    lines = clinical_lines(patient_series(), INTERVENTIONS, {"blast": 5600, "b": 3400})
    said = as_dict(lines)
    assert list(said) == ["marrow", "relapse", "blasts", "B cells", "T cells", "drug", "CRS", "given",
                          "neurotox", "kills"]
    assert said["marrow"] == ("day 29: 0.3% blasts - complete remission (< 5%); MRD 3e-3 (positive at 1e-4); "
                              "25% at the start")
    assert said["relapse"] == "none to the end (marrow blasts < 5% after the assessment)"
    assert said["B cells"] == "depleted in blood (< 1/uL) after 5 h; 500/uL at the start, 40/uL at the end"
    assert said["T cells"] == ("1,000/uL in blood at the end (1.00x the 1,000/uL at the start); "
                               "peak from day 7 on: 2.50x the start, after 12.0 days")
    assert said["drug"] == "steady state 170 pg/mL on 9 ug/day, steady state 530 pg/mL on 28 ug/day; < 0.01 pg/mL at the end"
    assert said["CRS"] == ("peak grade 2 after 26 h (IL-6 peak 80 pg/mL); "
                           "infusion interruptions: 1 (after 30 h, restarted 12 h later at 9 ug/day)")
    assert said["given"] == "dexamethasone: 2 doses (first at the start); tocilizumab: none"
    assert said["neurotox"] == "peak index 0.30 (model indicator, 0-1); no event (index < 0.5)"
    assert said["kills"] == "9,000 targets killed (5,600 blasts, 3,400 normal B cells)"


def test_the_verdicts_are_the_endpoint_rules():
    rules = EndpointRules(assessment_day=15.0, cr_blast_fraction=0.001, b_depleted_per_ul=0.1,
                          neurotox_event_index=0.25)
    said = as_dict(clinical_lines(patient_series(), INTERVENTIONS, rules=rules))
    assert said["marrow"].startswith("day 15: 1.52% blasts - no remission (>= 0.1%); MRD 1.5e-2 (positive at 1e-4)")
    assert "relapse" not in said  # only after a complete remission
    assert said["B cells"].startswith("never below 0.1/uL in blood (lowest 0.2/uL after 5 h)")
    assert said["neurotox"] == "peak index 0.30 (model indicator, 0-1); event (index >= 0.25) after 41 h"


def test_mrd_negative_then_a_cd19_negative_relapse():
    series = patient_series()
    t = series["time_h"]
    series["marrow_blast_fraction"] = np.where(t < 600.0, 0.25 * np.exp(-t / 20.0), 0.0)
    series["marrow_blast_fraction"][t >= 35 * 24] = 0.06
    series["blasts"] = np.round(series["marrow_blast_fraction"] * 22500)
    series["blasts_cd19neg"] = np.round(0.8 * series["blasts"])
    said = as_dict(clinical_lines(series))
    assert "MRD 0, no blasts left (negative at 1e-4)" in said["marrow"]
    assert said["relapse"] == "CD19-negative relapse (marrow blasts >= 5%) after 35.0 days"
    assert said["blasts"] == "5,625 at the start, 1,350 at the end (80% CD19-negative) (simulated cells)"
    assert "CRS" in said and "given" not in said  # no interventions table: no interruptions, no doses
    assert "interruptions" not in said["CRS"]


def test_a_run_that_ends_before_the_assessment():
    said = as_dict(clinical_lines(patient_series(days=2.0)))
    assert said["marrow"] == ("16.8% blasts at the end (after 2.0 days), 25% at the start; "
                              "the response is assessed on day 29, after this run")
    assert "relapse" not in said
    assert said["T cells"] == "1,000/uL in blood at the end (1.00x the 1,000/uL at the start)"  # no peak before day 7


def test_missing_read_outs_drop_their_lines_only():
    full = patient_series(days=3.0)
    sparse = {name: full[name] for name in ("time_h", "blasts", "kills_cumulative")}
    assert as_dict(clinical_lines(sparse)) == {"blasts": "5,625 at the start, 3,087 at the end (simulated cells)",
                                               "kills": "9,000 targets killed"}
    dish = dict(sparse, marrow_blast_fraction=np.full(full["time_h"].shape, math.nan),
                drug_pg_per_ml=np.full(full["time_h"].shape, 100.0), crs_grade=np.zeros(full["time_h"].shape))
    said = as_dict(clinical_lines(dish))
    assert "marrow" not in said  # all NaN: a well has no marrow
    assert said["drug"] == "100 pg/mL throughout (fixed)" and said["CRS"] == "none (grade 0 throughout)"
    assert clinical_lines({"time_h": np.empty(0)}) == []


def test_summary_of_a_file_that_cannot_be_read(tmp_path):
    summary = RunSummary(tmp_path / "gone.h5", 3, 48.0, 1.5, {"blasts": 12.0, "blood_b_per_ul": math.nan,
                                                               "kills_cumulative": 40.0})
    assert summary.lines() == [f"wrote {tmp_path / 'gone.h5'}", "simulated 2.00 days in 1.5 s (seed 3)",
                               "  blasts    12 at the end", "  kills     40 targets killed at the end"]


@pytest.mark.parametrize("resumed, note", [(None, ""), (0.0, " (no checkpoint: restarted from the beginning)"),
                                          (36.0, " (resumed at day 1.50)")])
def test_summary_header(tmp_path, resumed, note):
    lines = RunSummary(tmp_path / "x.h5", 1, 72.0, 2.25, {}, resumed_from_h=resumed).lines()
    assert lines[1] == f"simulated 3.00 days in 2.2 s (seed 1){note}"


def test_run_prints_the_clinical_summary(tmp_path: Path, capsys):
    out = tmp_path / "sc.h5"
    assert main(["run", "standard_cycle", "--set", "duration_h=2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote {out}"
    said = as_dict(lines[2:])
    assert {"marrow", "blasts", "B cells", "T cells", "drug", "CRS", "given", "neurotox", "kills"} <= set(said)
    assert said["marrow"].endswith("the response is assessed on day 29, after this run")
    assert "dexamethasone: 1 dose (first at the start)" in said["given"]
    assert said["drug"].endswith("pg/mL at the end") and "on 9 ug/day" in said["drug"]


ASSESSMENTS = {"time_h": np.array([1008.0, 2016.0, 2736.0]), "cycle": np.array([1, 2, 3]),
               "blast_percent": np.array([1.2, 0.0, 7.4]), "flow_mrd": np.array([3.1e-3, 0.0, 0.07]),
               "ngs_mrd": np.array([2.9e-3, 4.5e-6, 0.071]), "cd19_negative_share": np.array([0.0, 0.0, 0.8]),
               "response": np.array([1, 1, 2]), "responses": ("no_response", "complete_remission", "relapse"),
               "follow_up": np.array([0, 0, 1])}


def test_assessments_are_said_one_line_each():
    lines = clinical_lines(patient_series(), assessments=ASSESSMENTS)
    said = [line for line in lines if line.startswith("  assessed") or line.startswith("            day")]
    assert said == [
        "  assessed  day 42 (cycle 1): 1.2% blasts on the smear, MRD flow 3.1e-3; NGS 2.9e-3 - complete remission",
        "            day 84 (cycle 2): 0% blasts on the smear, MRD flow negative; NGS 4.5e-6 - complete remission",
        "            day 114 (follow-up): 7.4% blasts on the smear, MRD flow 7e-2; NGS 7.1e-2 - relapse (80% of blasts CD19-negative)",
    ]


def test_a_permanent_stop_is_said():
    stopped = {"time_h": np.array([30.0, 50.0]), "action": np.array([0, 4]), "value": np.zeros(2),
               "actions": ACTIONS}
    said = as_dict(clinical_lines(patient_series(), stopped))
    assert said["CRS"].endswith("infusion interruptions: 1 (after 30 h, not restarted); "
                                "infusion stopped for good after 2.1 days")
