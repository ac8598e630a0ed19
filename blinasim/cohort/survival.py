"""Relapse-free survival of a cohort: Kaplan-Meier (lifelines) from each patient's
``rfs_day`` (from the first CR to the relapse, or to the end of the run) and ``rfs_event``."""
from __future__ import annotations

import math

import numpy as np
from lifelines import KaplanMeierFitter


def rfs_data(patients: dict[str, np.ndarray], done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(days, relapsed 0/1) of the finished patients who reached a CR."""
    days = np.asarray(patients.get("rfs_day", np.full(len(done), math.nan)), dtype=float)
    events = np.asarray(patients.get("rfs_event", np.full(len(done), math.nan)), dtype=float)
    keep = done & np.isfinite(days) & np.isfinite(events)
    return days[keep], events[keep]


def fit_rfs(days: np.ndarray, events: np.ndarray) -> KaplanMeierFitter | None:
    """The Kaplan-Meier estimate of relapse-free survival (None without patients in CR)."""
    if days.size == 0:
        return None
    return KaplanMeierFitter(label="relapse-free survival").fit(days, event_observed=events)


def rfs_lines(patients: dict[str, np.ndarray], done: np.ndarray) -> list[str]:
    """Median RFS and RFS at 3, 6 and 12 months, with their 95% intervals (Greenwood)."""
    days, events = rfs_data(patients, done)
    km = fit_rfs(days, events)
    if km is None:
        return []
    median = km.median_survival_time_
    parts = [f"  relapse-free survival from CR (Kaplan-Meier, n={days.size}, {int(events.sum())} relapses): "
             f"median {'not reached' if not math.isfinite(median) else f'{median:.0f} days'}"]
    ci = km.confidence_interval_survival_function_
    for months in (3, 6, 12):
        day = 30.44 * months
        if day > days.max():
            break
        s = float(km.survival_function_at_times(day).iloc[0])
        row = ci[ci.index <= day].iloc[-1]
        parts.append(f"    at {months} months: {s:.0%} (95% CI {row.iloc[0]:.0%}-{row.iloc[1]:.0%})")
    return parts


def plot_rfs(ax, patients: dict[str, np.ndarray], done: np.ndarray) -> None:
    days, events = rfs_data(patients, done)
    km = fit_rfs(days, events)
    if km is None:
        ax.text(0.5, 0.5, "no patient in CR at an assessment:\nno relapse-free survival",
                ha="center", va="center", transform=ax.transAxes, fontsize=9)
        ax.set_axis_off()
        return
    km.plot_survival_function(ax=ax, ci_show=True, show_censors=True)
    ax.set(xlabel="days from the first CR", ylabel="relapse-free", ylim=(0, 1.05))
    ax.legend(fontsize=8)
