"""Dosing schedules and one-compartment linear pharmacokinetics, solved exactly.

Between schedule changes the infusion rate R is constant and
    dC/dt = R/V - (CL/V) C   =>   C(t + h) = C(t) e^{-kh} + (R/CL)(1 - e^{-kh}),  k = CL/V.
Schedule changes fall on day boundaries, which are whole steps, so stepping with this
formula is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from blinasim.schema import PK, Schedule

MIN_PER_DAY = 1440.0
PG_PER_ML_PER_UG_PER_L = 1000.0


@dataclass(frozen=True)
class InfusionPeriod:
    start_min: float
    end_min: float
    ug_per_h: float


def ug_per_day(inf, schedule: Schedule) -> float:
    """Daily dose of an infusion period: fixed, or per m2 of body surface up to the cap."""
    if inf.ug_per_m2_per_day > 0.0:
        return min(inf.ug_per_m2_per_day * schedule.body_surface_m2, schedule.max_ug_per_day)
    return inf.ug_per_day


def infusion_periods(schedule: Schedule) -> tuple[InfusionPeriod, ...]:
    """Absolute infusion periods of a schedule, cycles laid back to back from time 0."""
    periods = []
    cycle_start = 0.0
    for cycle in schedule.cycles:
        for inf in cycle.infusions:
            periods.append(InfusionPeriod(cycle_start + (inf.from_day - 1) * MIN_PER_DAY,
                                          cycle_start + inf.to_day * MIN_PER_DAY,
                                          ug_per_day(inf, schedule) / 24.0))
        cycle_start += cycle.length_days * MIN_PER_DAY
    return tuple(periods)


class Pharmacokinetics:
    """Plasma drug concentration over time for a scenario's PK model and schedule."""

    def __init__(self, pk: PK, schedule: Schedule):
        self.model = pk.model
        self.clearance_l_per_h = pk.clearance_l_per_h
        self.elimination_per_h = pk.clearance_l_per_h / pk.volume_l
        self.periods = infusion_periods(schedule)
        self.conc_pg_per_ml = pk.fixed_pg_per_ml if pk.model == "fixed" else 0.0
        self.interrupted = False
        self.restart_ug_per_h = 0.0
        self.restart_until_min = -1.0

    def scheduled_rate(self, time_min: float) -> float:
        """Infusion rate the schedule sets at time_min (periods are half-open [start, end))."""
        return sum(p.ug_per_h for p in self.periods if p.start_min <= time_min < p.end_min)

    def rate_ug_per_h(self, time_min: float) -> float:
        """Rate actually infused: the schedule, unless interrupted or in a restart window."""
        scheduled = self.scheduled_rate(time_min)
        if self.interrupted:
            return 0.0
        if time_min < self.restart_until_min and scheduled > 0.0:
            return min(scheduled, self.restart_ug_per_h)
        return scheduled

    def step_up_times_min(self) -> list[float]:
        """Start times (after time 0) of infusions that start afresh or raise the rate."""
        times, previous_rate, previous_end = [], 0.0, 0.0
        for p in self.periods:
            if p.start_min > 0 and (p.start_min > previous_end or p.ug_per_h > previous_rate):
                times.append(p.start_min)
            previous_rate, previous_end = p.ug_per_h, p.end_min
        return times

    def interrupt(self) -> None:
        self.interrupted = True

    def restart(self, time_min: float, ug_per_h: float, duration_min: float) -> None:
        """Resume at a reduced rate for a while, then follow the schedule again."""
        self.interrupted = False
        self.restart_ug_per_h = ug_per_h
        self.restart_until_min = time_min + duration_min

    def state(self) -> dict:
        return {"pk.conc_pg_per_ml": self.conc_pg_per_ml, "pk.interrupted": int(self.interrupted),
                "pk.restart_ug_per_h": self.restart_ug_per_h, "pk.restart_until_min": self.restart_until_min}

    def restore(self, state) -> None:
        self.conc_pg_per_ml = float(state["pk.conc_pg_per_ml"])
        self.interrupted = bool(int(state["pk.interrupted"]))
        self.restart_ug_per_h = float(state["pk.restart_ug_per_h"])
        self.restart_until_min = float(state["pk.restart_until_min"])

    def steady_state_pg_per_ml(self, rate_ug_per_h: float) -> float:
        return PG_PER_ML_PER_UG_PER_L * rate_ug_per_h / self.clearance_l_per_h

    def advance(self, start_min: float, step_min: float) -> float:
        """Move the concentration from start_min to start_min + step_min; returns it."""
        if self.model == "infusion":
            decay = math.exp(-self.elimination_per_h * step_min / 60.0)
            target = self.steady_state_pg_per_ml(self.rate_ug_per_h(start_min))
            self.conc_pg_per_ml = self.conc_pg_per_ml * decay + target * (1.0 - decay)
        return self.conc_pg_per_ml
