"""Response assessment as the clinic does it: a marrow aspirate after each cycle and during follow-up.

Assessments fall on the day after each cycle's last infusion day (day 29 of a 28-days-on
cycle, as the trials assess: Topp 2015, Gokbuget 2018) and every
`patient.followup_assessment_days` within cycles without one (follow-up). Each runs the
marrow assays (blinasim.assays) on the patient-scale marrow blast fraction and decides the
response; a relapse is a loss of the blast criteria after a complete remission. With
`patient.transplant_after_cycle` the run ends after that cycle's assessment (censored).
"""
from __future__ import annotations

from blinasim import assays
from blinasim.burden import blast_burden

MIN_PER_DAY = 1440.0
ASSESSMENT_COLUMNS = ("time_h", "cycle", "blast_percent", "flow_mrd", "ngs_mrd", "marrow_blast_fraction",
                      "blood_blasts_per_ul", "extramedullary_blasts", "cns_blasts", "csf_blasts_per_ul",
                      "cd19_negative_share", "response", "follow_up")


def assessment_days(scenario) -> list[tuple[float, int]]:
    """(day from the start, cycle number from 1) of every scheduled assessment."""
    days, start = [], 0.0
    every = scenario.patient.followup_assessment_days
    for number, cycle in enumerate(scenario.schedule.cycles, start=1):
        if cycle.infusions:
            days.append((start + max(inf.to_day for inf in cycle.infusions), number))
        else:
            k = 1
            while k * every < cycle.length_days - 1e-9:
                days.append((start + k * every, number))
                k += 1
            days.append((start + cycle.length_days, number))
        start += cycle.length_days
    return days


def follow_up_cycles(scenario) -> set[int]:
    """Numbers (from 1) of the cycles without an infusion: follow-up."""
    return {number for number, cycle in enumerate(scenario.schedule.cycles, start=1) if not cycle.infusions}


def transplant_day(scenario) -> float | None:
    """Day the run stops for a transplant (end of cycle `transplant_after_cycle`), if any."""
    k = scenario.patient.transplant_after_cycle
    cycles = scenario.schedule.cycles
    if k == 0 or k > len(cycles):
        return None
    return float(sum(c.length_days for c in cycles[:k]))


class ResponseAssessment:
    name = "assessment"

    def __init__(self, model, every_steps: int):
        self.every_steps = every_steps
        per_day = MIN_PER_DAY / model.dt_min
        self.due = [(int(round(day * per_day)), cycle) for day, cycle in assessment_days(model.scenario)]
        self.follow_up = follow_up_cycles(model.scenario)
        self.events: list[tuple[float, ...]] = []
        self.had_remission = False
        self.relapse_step = -1

    def step(self, model) -> None:
        for step, cycle in self.due:
            if step == model.steps:
                self.assess(model, cycle)

    def assess(self, model, cycle: int) -> None:
        p, geo = model.scenario.patient, model.geometry
        burden = blast_burden(model)
        marrow = assays.assay_marrow(p, burden.marrow_fraction, model.seed, model.steps)
        extramedullary = burden.in_roles(geo, ("extramedullary",))
        circulating = 0.0 if burden.circulating_per_ul != burden.circulating_per_ul else burden.circulating_per_ul
        remission = assays.in_remission(marrow, circulating, extramedullary, burden.csf_per_ul)
        response = assays.response(remission, self.had_remission)
        if response == "relapse" and self.relapse_step < 0:
            self.relapse_step = model.steps
        self.had_remission = self.had_remission or remission
        self.events.append((model.time_min / 60.0, cycle, marrow.blast_percent, marrow.flow_mrd, marrow.ngs_mrd,
                            burden.marrow_fraction, circulating, extramedullary, burden.in_roles(geo, ("cns",)),
                            burden.csf_per_ul, burden.cd19_negative_share, assays.RESPONSES.index(response),
                            int(cycle in self.follow_up)))

    def state(self) -> dict:
        return {"assessment.had_remission": int(self.had_remission), "assessment.relapse_step": self.relapse_step}

    def restore(self, state) -> None:
        self.had_remission = bool(int(state["assessment.had_remission"]))
        self.relapse_step = int(state["assessment.relapse_step"])
