"""Clinical interventions and protocol rules: dexamethasone, tocilizumab, interruption and
restart of the infusion, acting on the ASTCT CRS and ICANS grades (`crs.CrsSigns` and
`icans.IcansSigns`, stepped just before).

- Dexamethasone inhibits cytokine release by I(t) = I_max 0.5^((t - t_dose)/t_half) after
  its latest dose (premedication: at the start, at every step-up, and on restart after an
  interruption of 4 h or more).
- Dexamethasone is also given when CRS or ICANS reaches `dexamethasone_at_crs_grade` or
  `dexamethasone_at_icans_grade`, and again every `dexamethasone_repeat_h` while it stays
  there.
- Tocilizumab blocks IL-6 signalling by B(t) = B_max 0.5^((t - t_dose)/t_half).
- The infusion is interrupted when CRS reaches `interrupt_at_crs_grade` or ICANS
  `interrupt_at_icans_grade`, and restarted at `restart_ug_per_day` for 7 days once CRS has
  fallen to `resume_at_crs_grade` and ICANS to `resume_at_icans_grade` (after an
  interruption for ICANS, once both have stayed there `icans_resume_wait_h`).
- The infusion is stopped for good (no restart, no later cycle) when CRS reaches
  `stop_at_crs_grade`, ICANS `stop_at_icans_grade`, an interruption for ICANS has not
  resolved within `icans_stop_if_unresolved_h`, seizure episode number `stop_at_seizure`
  begins, or (`stop_if_icans_at_restart_dose`) ICANS reaches its interruption grade while
  the infusion runs at `restart_ug_per_day` or less.
"""
from __future__ import annotations

import numpy as np

from blinasim.processes.cytokines import CYTOKINES

ACTIONS = ("interrupt", "restart", "dexamethasone", "tocilizumab", "stop")
RESTART_DAYS = 7.0
LONG_INTERRUPTION_H = 4.0


class Protocol:
    """Intervention state (dose times, interruption) and the rules that change it."""
    name = "protocol"

    def __init__(self, model, every_steps: int):
        s = model.scenario
        self.every_steps = every_steps
        self.i = s.interventions
        self.serum = model.geometry.role_code("blood")
        planned = [d.time_h for d in self.i.dexamethasone_doses]
        if self.i.dexamethasone_premedication:
            planned += [0.0] + [t / 60.0 for t in model.pk.step_up_times_min()]
        self.planned_dex_h = sorted(set(planned))
        self.planned_toci_h = sorted(d.time_h for d in self.i.tocilizumab_doses)
        self.dex_given_h: list[float] = []
        self.toci_given_h: list[float] = []
        self.interrupted_at_h: float | None = None
        self.for_icans = False  # the current interruption was for ICANS
        self.resolved_at_h: float | None = None  # both grades at their resume grades since
        self.stopped = False
        self.crs_grade = 0
        self.events: list[tuple[float, int, float]] = []

    # ------------------------------------------------------------------ effects
    @staticmethod
    def _decayed(doses_h: list[float], time_h: float, peak: float, half_life_h: float) -> float:
        past = [t for t in doses_h if t <= time_h]
        return peak * 0.5 ** ((time_h - past[-1]) / half_life_h) if past else 0.0

    def dexamethasone_inhibition(self, time_h: float) -> float:
        return self._decayed(self.dex_given_h, time_h, self.i.dexamethasone_max_inhibition,
                             self.i.dexamethasone_effect_half_life_h)

    def tocilizumab_block(self, time_h: float) -> float:
        return self._decayed(self.toci_given_h, time_h, self.i.tocilizumab_block,
                             self.i.tocilizumab_half_life_days * 24.0)

    def il6_signal(self, model) -> float:
        if self.serum is None:
            return 0.0
        il6 = model.cytokines_pg_per_ml[self.serum, CYTOKINES.index("il6")]
        return il6 * (1.0 - self.tocilizumab_block(model.time_min / 60.0))

    # ------------------------------------------------------------------ rules
    def _give(self, given: list[float], action: str, time_h: float, value: float = 0.0) -> None:
        given.append(time_h)
        self.events.append((time_h, ACTIONS.index(action), value))

    def administer_due_doses(self, time_h: float) -> None:
        """Give planned doses whose time has come (also at time 0, before the first step)."""
        while self.planned_dex_h and self.planned_dex_h[0] <= time_h:
            self._give(self.dex_given_h, "dexamethasone", self.planned_dex_h.pop(0))
        while self.planned_toci_h and self.planned_toci_h[0] <= time_h:
            self._give(self.toci_given_h, "tocilizumab", self.planned_toci_h.pop(0))

    def step(self, model) -> None:
        time_h = model.time_min / 60.0
        self.administer_due_doses(time_h)
        self.crs_grade = model.crs.grade
        icans = model.icans.grade
        i = self.i
        if self.dexamethasone_due(time_h, icans):
            self._give(self.dex_given_h, "dexamethasone", time_h)
        if i.tocilizumab_at_crs_grade and self.crs_grade >= i.tocilizumab_at_crs_grade and not self.toci_given_h:
            self._give(self.toci_given_h, "tocilizumab", time_h)
        if not self.stopped:
            self.interrupt_or_restart(model, time_h, icans)

    def interrupt_or_restart(self, model, time_h: float, icans: int) -> None:
        """The rules on the infusion: permanent stop, interruption, restart."""
        i, pk = self.i, model.pk
        self.track_resolution(time_h, icans)
        if self.stop_due(model, time_h, icans):
            pk.interrupt()
            self.stopped, self.interrupted_at_h, self.resolved_at_h = True, None, None
            self.events.append((time_h, ACTIONS.index("stop"), 0.0))
        elif self.interrupted_at_h is None:
            for_icans = bool(i.interrupt_at_icans_grade) and icans >= i.interrupt_at_icans_grade
            for_crs = bool(i.interrupt_at_crs_grade) and self.crs_grade >= i.interrupt_at_crs_grade
            if (for_icans or for_crs) and pk.scheduled_rate(model.time_min) > 0:
                pk.interrupt()
                self.interrupted_at_h, self.for_icans = time_h, for_icans
                self.events.append((time_h, ACTIONS.index("interrupt"), 0.0))
        elif self.resolved_at_h is not None and time_h - self.resolved_at_h >= self.resume_wait_h():
            pk.restart(model.time_min, i.restart_ug_per_day / 24.0, RESTART_DAYS * 1440.0)
            self.events.append((time_h, ACTIONS.index("restart"), i.restart_ug_per_day))
            if i.dexamethasone_premedication and time_h - self.interrupted_at_h >= LONG_INTERRUPTION_H:
                self._give(self.dex_given_h, "dexamethasone", time_h)
            self.interrupted_at_h = self.resolved_at_h = None

    def track_resolution(self, time_h: float, icans: int) -> None:
        """During an interruption: since when both grades are at their resume grades (None: not now)."""
        i = self.i
        if self.interrupted_at_h is None:
            return
        if self.crs_grade > i.resume_at_crs_grade or icans > i.resume_at_icans_grade:
            self.resolved_at_h = None
        elif self.resolved_at_h is None:
            self.resolved_at_h = time_h

    def stop_due(self, model, time_h: float, icans: int) -> bool:
        """A grade at its stop grade, an interruption for ICANS unresolved for too long, the
        stopping seizure, or ICANS at its interruption grade on the restart dose or less."""
        i = self.i
        unresolved = (self.interrupted_at_h is not None and self.for_icans and i.icans_stop_if_unresolved_h > 0
                      and self.resolved_at_h is None and time_h - self.interrupted_at_h > i.icans_stop_if_unresolved_h)
        return bool(unresolved or (i.stop_at_crs_grade and self.crs_grade >= i.stop_at_crs_grade)
                    or (i.stop_at_icans_grade and icans >= i.stop_at_icans_grade)
                    or (i.stop_at_seizure and model.icans.seizures >= i.stop_at_seizure)
                    or self.icans_at_restart_dose(model, icans))

    def icans_at_restart_dose(self, model, icans: int) -> bool:
        """ICANS at its interruption grade while the infusion runs, at the restart dose or less
        (the step-up dose of cycle 1 included), when the scenario stops for that."""
        i = self.i
        if not (i.stop_if_icans_at_restart_dose and i.interrupt_at_icans_grade and icans >= i.interrupt_at_icans_grade):
            return False
        ug_per_day = model.pk.rate_ug_per_h(model.time_min) * 24.0
        return 0.0 < ug_per_day <= i.restart_ug_per_day * (1.0 + 1e-9)

    def resume_wait_h(self) -> float:
        return self.i.icans_resume_wait_h if self.for_icans else 0.0

    def dexamethasone_due(self, time_h: float, icans: int) -> bool:
        """A treatment dose: CRS or ICANS at its dexamethasone grade, and no dose for
        `dexamethasone_repeat_h`."""
        i = self.i
        severe = ((i.dexamethasone_at_crs_grade and self.crs_grade >= i.dexamethasone_at_crs_grade)
                  or (i.dexamethasone_at_icans_grade and icans >= i.dexamethasone_at_icans_grade))
        return bool(severe) and (not self.dex_given_h or time_h - self.dex_given_h[-1] >= i.dexamethasone_repeat_h)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {"protocol.dex_given_h": np.array(self.dex_given_h, dtype=float),
                "protocol.toci_given_h": np.array(self.toci_given_h, dtype=float),
                "protocol.planned_dex_h": np.array(self.planned_dex_h, dtype=float),
                "protocol.planned_toci_h": np.array(self.planned_toci_h, dtype=float),
                "protocol.interrupted_at_h": np.nan if self.interrupted_at_h is None else self.interrupted_at_h,
                "protocol.resolved_at_h": np.nan if self.resolved_at_h is None else self.resolved_at_h,
                "protocol.for_icans": int(self.for_icans),
                "protocol.stopped": int(self.stopped),
                "protocol.crs_grade": self.crs_grade}

    def restore(self, state) -> None:
        self.dex_given_h = [float(t) for t in state["protocol.dex_given_h"]]
        self.toci_given_h = [float(t) for t in state["protocol.toci_given_h"]]
        self.planned_dex_h = [float(t) for t in state["protocol.planned_dex_h"]]
        self.planned_toci_h = [float(t) for t in state["protocol.planned_toci_h"]]
        interrupted = float(state["protocol.interrupted_at_h"])
        self.interrupted_at_h = None if np.isnan(interrupted) else interrupted
        resolved = float(state["protocol.resolved_at_h"])
        self.resolved_at_h = None if np.isnan(resolved) else resolved
        self.for_icans = bool(int(state["protocol.for_icans"]))
        self.stopped = bool(int(state["protocol.stopped"]))
        self.crs_grade = int(state["protocol.crs_grade"])
