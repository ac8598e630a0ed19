"""What a run's summary says: the clinical read-outs of one run, in words, from its run file.

`blinasim run`, `resume` and `cohort --patient` print :meth:`RunSummary.lines`. After the
run file's name and the wall time, one line per read-out: the marrow at the response
assessment (complete remission, MRD), relapse, blasts, B-cell depletion in blood, T cells in
blood against the start, the drug level reached, the peak CRS grade with the infusion
interruptions, the drugs given, neurotoxicity and the kills.

The verdicts are those of the cohort endpoints (:func:`blinasim.cohort.endpoints.evaluate`
with :class:`~blinasim.cohort.endpoints.EndpointRules`); this module only puts them into
words. A line whose read-outs the run does not record is left out.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from blinasim.cohort.endpoints import SERIES_NEEDED, EndpointRules, evaluate
from blinasim.runfile import read_timeseries

LABEL_WIDTH = 10
KIND_WORDS = {"blast": "blasts", "b": "normal B cells", "cd8": "CD8 T cells", "cd4": "CD4 T cells"}
STEADY_WITHIN = 0.02
"""A concentration counts as steady state when it changed by less than this share over its last 12 h."""


@dataclass(frozen=True)
class RunSummary:
    """A finished (or resumed) run: where it went, how long it took, and what happened."""
    path: Path
    seed: int
    simulated_h: float
    wall_s: float
    final: dict[str, float]
    resumed_from_h: float | None = None
    rules: EndpointRules = EndpointRules()

    def lines(self) -> list[str]:
        out = [f"wrote {self.path}"]
        resumed = ""
        if self.resumed_from_h == 0.0:
            resumed = " (no checkpoint: restarted from the beginning)"
        elif self.resumed_from_h is not None:
            resumed = f" (resumed at day {self.resumed_from_h / 24:.2f})"
        out.append(f"simulated {self.simulated_h / 24:.2f} days in {self.wall_s:.1f} s "
                   f"(seed {self.seed}){resumed}")
        try:
            outcome = read_outcome(self.path)
        except (OSError, KeyError):  # not readable as a run file: the last values only
            return out + final_lines(self.final)
        return out + clinical_lines(*outcome, rules=self.rules)


def read_outcome(path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, dict[str, int] | None,
                                dict[str, np.ndarray] | None]:
    """(time series, interventions table, kills per target kind, assessments table) of a run
    file; a table the run does not have is None."""
    series = read_timeseries(path)
    interventions = kills = assessments = None
    with h5py.File(path, "r") as f:
        events = f.get("events")
        if events is not None and "assessments" in events:
            table = events["assessments"]
            assessments = {name: table[name][...] for name in table if name != "event"}
            assessments["responses"] = _flag_names(table["response"]) if "response" in table else ()
        if events is not None and "interventions" in events:
            table = events["interventions"]
            interventions = {name: table[name][...] for name in table if name != "event"}
            interventions["actions"] = _flag_names(table["action"]) if "action" in table else ()
        if events is not None and "kills" in events and "target_kind" in events["kills"]:
            column = events["kills"]["target_kind"]
            names = _flag_names(column)
            codes, counts = np.unique(column[...], return_counts=True)
            kills = {(names[c] if 0 <= c < len(names) else str(c)): int(n) for c, n in zip(codes, counts)}
    return series, interventions, kills, assessments


def _flag_names(dataset) -> tuple[str, ...]:
    meanings = dataset.attrs.get("flag_meanings", "")
    if isinstance(meanings, bytes):
        meanings = meanings.decode()
    return tuple(str(meanings).split())


# --------------------------------------------------------------------------- the lines

def clinical_lines(series: Mapping[str, np.ndarray], interventions: Mapping[str, np.ndarray] | None = None,
                   kills_by_kind: Mapping[str, int] | None = None, assessments: Mapping[str, np.ndarray] | None = None,
                   *, rules: EndpointRules = EndpointRules()) -> list[str]:
    """The read-outs of one run in words, from its recorded series (``time_h`` and observables).

    `interventions` is the run's interventions table (columns ``time_h``, ``action``, ``value``
    and ``actions``, the names of the action codes); `kills_by_kind` the kills per target
    kind; `assessments` the marrow assessments table (with ``responses``, the names of the
    response codes). Lines whose read-outs are missing (or all NaN) are left out.
    """
    t = np.asarray(series.get("time_h", ()), dtype=float)
    if t.size == 0:
        return []
    run = _Run(series, t, rules, interventions, kills_by_kind)
    out = []
    for make in (run.marrow, run.relapse, run.blasts, run.b_cells, run.t_cells, run.drug, run.crs,
                 run.given, run.icans, run.neurotoxicity, run.kills):
        line = make()
        if line:
            label, text = line
            out.append(f"  {label:<{LABEL_WIDTH}}{text}")
    for label, text in assessment_lines(assessments):
        out.append(f"  {label:<{LABEL_WIDTH}}{text}")
    return out


RESPONSE_WORDS = {"complete_remission": "complete remission", "no_response": "no remission", "relapse": "relapse"}


def assessment_lines(table: Mapping[str, np.ndarray] | None) -> list[tuple[str, str]]:
    """One line per marrow assessment: what the aspirate, flow and NGS showed, and the response."""
    if not table or len(table.get("time_h", ())) == 0:
        return []
    names = tuple(table.get("responses", ()))
    out = []
    for i, time_h in enumerate(np.asarray(table["time_h"], dtype=float)):
        code = int(table["response"][i])
        response = RESPONSE_WORDS.get(names[code], names[code]) if 0 <= code < len(names) else str(code)
        if response == "relapse":
            response += f" ({_percent(float(table['cd19_negative_share'][i]))} of blasts CD19-negative)"
        mrd = "; ".join(f"{assay} {_exponent(float(table[column][i])) if table[column][i] > 0 else 'negative'}"
                        for assay, column in (("flow", "flow_mrd"), ("NGS", "ngs_mrd")))
        follow_up = int(table["follow_up"][i]) if "follow_up" in table else 0
        when = "follow-up" if follow_up else f"cycle {int(table['cycle'][i])}"
        out.append(("assessed" if i == 0 else "",
                    f"day {time_h / 24:g} ({when}): {float(table['blast_percent'][i]):.3g}% "
                    f"blasts on the smear, MRD {mrd} - {response}"))
    return out


class _Run:
    """One run's series and its endpoints (evaluated once, by the cohort's rules)."""

    def __init__(self, series: Mapping[str, np.ndarray], t: np.ndarray, rules: EndpointRules,
                 interventions: Mapping[str, np.ndarray] | None, kills_by_kind: Mapping[str, int] | None):
        self.series, self.t, self.rules = series, t, rules
        self.interventions, self.kills_by_kind = interventions, kills_by_kind
        self.end_h = float(t[-1])
        self.assess_h = (rules.assessment_day - 1.0) * 24.0
        self.assessed = self.end_h >= self.assess_h - 1e-9
        try:
            self.endpoints = evaluate(self._needed(), self._rules_within_run())
        except (KeyError, ValueError):  # rules this summary does not know yet: their lines are left out
            self.endpoints = {}

    def endpoint(self, name: str) -> float:
        """One endpoint of the run (NaN when the rules did not give it)."""
        return float(self.endpoints.get(name, math.nan))

    def _needed(self) -> dict[str, np.ndarray]:
        """The series the endpoint rules read; a read-out the run lacks becomes NaN (its lines are left out)."""
        filled = {"time_h": self.t}
        for name in SERIES_NEEDED:
            filled[name] = self.values(name) if self.has(name) else np.full(self.t.shape, math.nan)
        return filled

    def _rules_within_run(self) -> EndpointRules:
        """The rules, with the assessment moved to the end of a run that stops before it.

        Only the endpoints that do not depend on the assessment are then reported.
        """
        if self.assessed:
            return self.rules
        return dataclasses.replace(self.rules, assessment_day=self.end_h / 24.0 + 1.0)

    def has(self, name: str) -> bool:
        values = self.series.get(name)
        return values is not None and len(values) == len(self.t) and bool(np.isfinite(values).any())

    def values(self, name: str) -> np.ndarray:
        return np.asarray(self.series[name], dtype=float)

    def first_time(self, name: str, condition) -> float:
        hits = np.flatnonzero(condition(self.values(name)))
        return float(self.t[hits[0]]) if hits.size else math.nan

    # ------------------------------------------------------------------ one method per line
    def marrow(self):
        if not self.has("marrow_blast_fraction"):
            return None
        r = self.rules
        start = f"{_percent(self.values('marrow_blast_fraction')[0])} at the start"
        if not self.assessed:
            end = self.values("marrow_blast_fraction")[-1]
            return ("marrow", f"{_percent(end)} blasts at the end ({_after(self.end_h)}), {start}; "
                              f"the response is assessed on day {r.assessment_day:g}, after this run")
        assessed = self.endpoint("marrow_blast_fraction_assessed")
        if not math.isfinite(assessed):
            return None
        response = (f"complete remission (< {_percent(r.cr_blast_fraction)})" if self.endpoint("cr") == 1.0
                    else f"no remission (>= {_percent(r.cr_blast_fraction)})")
        mrd = ("negative" if self.endpoint("mrd_response") == 1.0 else "positive") + f" at {_exponent(r.mrd_blast_fraction)}"
        value = "0, no blasts left" if assessed == 0 else _exponent(assessed)
        return ("marrow", f"day {r.assessment_day:g}: {_percent(assessed)} blasts - {response}; "
                          f"MRD {value} ({mrd}); {start}")

    def relapse(self):
        if not (self.assessed and self.has("marrow_blast_fraction") and self.endpoint("cr") == 1.0
                and self.end_h > self.assess_h):
            return None
        threshold = _percent(self.rules.relapse_blast_fraction)
        if self.endpoint("relapse") == 1.0:
            kind = "CD19-negative" if self.endpoint("cd19neg_relapse") == 1.0 else "CD19-positive"
            return ("relapse", f"{kind} relapse (marrow blasts >= {threshold}) {_after(self.endpoint('relapse_day') * 24.0)}")
        return ("relapse", f"none to the end (marrow blasts < {threshold} after the assessment)")

    def blasts(self):
        if not self.has("blasts"):
            return None
        blasts = self.values("blasts")
        text = f"{blasts[0]:,.0f} at the start, {blasts[-1]:,.0f} at the end"
        share = self.endpoint("cd19neg_share_end")
        if blasts[-1] > 0 and math.isfinite(share):
            text += f" ({_percent(share)} CD19-negative)"
        agents = self.values("blast_agents") if self.has("blast_agents") else blasts
        if np.array_equal(agents, blasts):
            return ("blasts", text + " (simulated cells)")
        return ("blasts", text + f" in the patient ({agents[-1]:,.0f} simulated)")

    def b_cells(self):
        if not self.has("blood_b_per_ul"):
            return None
        b = self.values("blood_b_per_ul")
        limit = f"{self.rules.b_depleted_per_ul:g}/uL"
        depleted_h = self.endpoint("b_depletion_day") * 24.0
        if math.isfinite(depleted_h):
            text = f"depleted in blood (< {limit}) {_after(depleted_h)}"
        else:
            low = int(np.nanargmin(b))
            text = f"never below {limit} in blood (lowest {_density(b[low])} {_after(self.t[low])})"
        return ("B cells", f"{text}; {_density(b[0])} at the start, {_density(b[-1])} at the end")

    def t_cells(self):
        if not self.has("blood_t_per_ul"):
            return None
        cells = self.values("blood_t_per_ul")
        text = f"{_density(cells[-1])} in blood at the end"
        if cells[0] > 0:
            text += f" ({cells[-1] / cells[0]:.2f}x the {_density(cells[0])} at the start)"
        fold, day = self.endpoint("t_expansion_fold"), self.endpoint("t_expansion_day")
        if math.isfinite(fold):
            text += (f"; peak from day {self.rules.t_expansion_from_day:g} on: {fold:.2f}x the start, "
                     f"{_after(day * 24.0)}")
        return ("T cells", text)

    def drug(self):
        if not self.has("drug_pg_per_ml"):
            return None
        conc = self.values("drug_pg_per_ml")
        parts = []
        if self.has("infusion_ug_per_day"):
            rate = self.values("infusion_ug_per_day")
            for level in _in_order_of_appearance(rate[rate > 0]):
                first, last = _longest_stretch(rate == level)
                steady = (self.t[last] - self.t[first] >= 24.0
                          and _changed_less_than(self.t, conc, last, 12.0, STEADY_WITHIN))
                parts.append(f"{'steady state ' if steady else ''}{_conc(conc[last])} on {level:g} ug/day")
        if not parts:
            if np.nanmax(conc) - np.nanmin(conc) <= 1e-9 * max(1.0, np.nanmax(conc)):
                return ("drug", f"{_conc(conc[0])} throughout (fixed)")
            parts.append(f"peak {_conc(np.nanmax(conc))}")
        return ("drug", f"{', '.join(parts)}; {_conc(conc[-1])} at the end")

    def crs(self):
        if not self.has("crs_grade"):
            return None
        peak = self.endpoint("max_crs_grade")
        if not math.isfinite(peak):
            return None
        if peak <= 0:
            text = "none (grade 0 throughout)"
        else:
            at = self.first_time("crs_grade", lambda g: g >= peak)
            text = f"peak grade {peak:.0f} {_after(at)}"
            if self.has("il6_pg_per_ml"):
                text += f" (IL-6 peak {_conc(np.nanmax(self.values('il6_pg_per_ml')))})"
            if self.has("body_temperature_c") and self.has("mean_arterial_pressure_mmhg"):
                text += (f", up to {np.nanmax(self.values('body_temperature_c')):.1f} degC, MAP down to "
                         f"{np.nanmin(self.values('mean_arterial_pressure_mmhg')):.0f} mmHg")
        pauses = self.intervention_times("interrupt")
        if pauses is not None:
            text += f"; infusion interruptions: {self.interruptions(pauses)}"
        stopped = self.intervention_times("stop")
        if stopped is not None and stopped.size:
            text += f"; infusion stopped for good {_after(float(stopped[0]))}"
        return ("CRS", text)

    def intervention_times(self, action: str) -> np.ndarray | None:
        """Times (h) of an action in the interventions table; None if the run cannot record it."""
        table = self.interventions
        if table is None or action not in tuple(table.get("actions", ())):
            return None
        codes = np.asarray(table["action"], dtype=int)
        return np.asarray(table["time_h"], dtype=float)[codes == tuple(table["actions"]).index(action)]

    def interruptions(self, pauses: np.ndarray) -> str:
        if pauses.size == 0:
            return "none"
        table = self.interventions
        times, codes = np.asarray(table["time_h"], dtype=float), np.asarray(table["action"], dtype=int)
        names = tuple(table["actions"])
        rates = np.asarray(table.get("value", np.zeros(times.size)), dtype=float)
        restart = codes == names.index("restart") if "restart" in names else np.zeros(times.size, bool)
        parts = []
        for pause in pauses:
            later = np.flatnonzero(restart & (times > pause))
            if later.size:
                back = int(later[0])
                parts.append(f"{_after(float(pause))}, restarted {times[back] - pause:.3g} h later "
                             f"at {rates[back]:g} ug/day")
            else:
                parts.append(f"{_after(float(pause))}, not restarted")
        return f"{pauses.size} ({'; '.join(parts)})"

    def given(self):
        """Dexamethasone and tocilizumab doses (infusion interruptions are on the CRS line)."""
        given = [f"{name}: {_doses(times)}" for name in ("dexamethasone", "tocilizumab")
                 if (times := self.intervention_times(name)) is not None]
        return ("given", "; ".join(given)) if given else None

    def icans(self):
        if not self.has("icans_grade"):
            return None
        peak = self.endpoint("max_icans_grade")
        if not math.isfinite(peak):
            return None
        if peak <= 0:
            return ("ICANS", "none (grade 0 throughout)")
        at = self.first_time("icans_grade", lambda g: g >= peak)
        text = f"peak grade {peak:.0f} {_after(at)}"
        if self.has("ice_score"):
            text += f" (lowest ICE score {np.nanmin(self.values('ice_score')):.0f} of 10)"
        return ("ICANS", text)

    def neurotoxicity(self):
        if not self.has("neurotox_index"):
            return None
        peak = self.endpoint("max_neurotox_index")
        if not math.isfinite(peak):
            return None
        threshold = self.rules.neurotox_event_index
        if self.endpoint("neurotox_event") == 1.0:
            at = self.first_time("neurotox_index", lambda n: n >= threshold)
            verdict = f"event (index >= {threshold:g}) {_after(at)}"
        else:
            verdict = f"no event (index < {threshold:g})"
        return ("neurotox", f"peak index {peak:.2f} (model indicator, 0-1); {verdict}")

    def kills(self):
        by_kind = self.kills_by_kind
        if not self.has("kills_cumulative"):
            return None
        text = f"{self.values('kills_cumulative')[-1]:,.0f} targets killed"
        if by_kind:
            text += " (" + ", ".join(f"{n:,} {KIND_WORDS.get(kind, kind)}" for kind, n in
                                     sorted(by_kind.items(), key=lambda item: -item[1])) + ")"
        return ("kills", text)


def final_lines(final: Mapping[str, float]) -> list[str]:
    """The last values of a few read-outs, when the run file cannot be read back."""
    out = []
    for name, label, fmt in (("blood_b_per_ul", "B cells", "{:.3g}/uL in blood"),
                             ("blood_t_per_ul", "T cells", "{:.4g}/uL in blood"),
                             ("marrow_blast_fraction", "marrow", "{:.3%} blasts"),
                             ("blasts", "blasts", "{:.0f}"),
                             ("kills_cumulative", "kills", "{:.0f} targets killed")):
        value = final.get(name, math.nan)
        if np.isfinite(value):
            out.append(f"  {label:<{LABEL_WIDTH}}{fmt.format(value)} at the end")
    return out


# --------------------------------------------------------------------------- wording

def _percent(fraction: float) -> str:
    return f"{100.0 * fraction:.3g}%"


def _exponent(value: float) -> str:
    """1e-4, 2.3e-5 (no padded exponent); 0 for zero."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _density(per_ul: float) -> str:
    return f"{per_ul:,.0f}/uL" if per_ul >= 100 else f"{per_ul:.3g}/uL"


def _conc(pg_per_ml: float) -> str:
    if 0 < pg_per_ml < 0.01:
        return "< 0.01 pg/mL"
    return f"{pg_per_ml:,.0f} pg/mL" if pg_per_ml >= 100 else f"{pg_per_ml:.3g} pg/mL"


def _after(time_h: float) -> str:
    """A time since the start of the run, in minutes, hours or days."""
    if time_h < 1.0:
        return f"after {time_h * 60.0:.0f} min"
    if time_h < 48.0:
        return f"after {time_h:.3g} h"
    return f"after {time_h / 24.0:.1f} days"


def _doses(times: np.ndarray) -> str:
    if times.size == 0:
        return "none"
    first = "at the start" if times[0] <= 0 else _after(float(times[0]))
    return f"{times.size} dose{'s' if times.size > 1 else ''} (first {first})"


def _in_order_of_appearance(values: np.ndarray) -> list[float]:
    _, first = np.unique(values, return_index=True)
    return [float(values[i]) for i in sorted(first)]


def _longest_stretch(mask: np.ndarray) -> tuple[int, int]:
    """First and last index of the longest run of True in `mask` (which has at least one)."""
    best, start = (0, -1), None
    for i, flag in enumerate(np.append(mask, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > best[1] - best[0] + 1:
                best = (start, i - 1)
            start = None
    return best


def _changed_less_than(t: np.ndarray, values: np.ndarray, last: int, hours: float, share: float) -> bool:
    earlier = int(np.searchsorted(t, t[last] - hours, side="left"))
    top = max(abs(values[last]), 1e-12)
    return abs(values[last] - values[earlier]) / top < share
