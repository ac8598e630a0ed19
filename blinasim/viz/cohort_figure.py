"""The standard figure of a cohort file (`blinasim plot COHORT.h5`).

Seven panels: endpoint rates with 95% intervals; every patient's marrow blast fraction,
blood B cells, blood T cells and serum IL-6 over time (remission in blue, no remission in
red); the marrow blast fraction at the assessment against the patients' burden at the
start; and relapse-free survival from CR (Kaplan-Meier, lifelines) for cohorts assessed
by the marrow assays.
"""
from __future__ import annotations

import json

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from blinasim.cohort.cohortfile import DONE, FAILED, read_cohort
from blinasim.cohort.survival import plot_rfs

CR_COLOUR, NO_CR_COLOUR = "tab:blue", "tab:red"
TRACES = (("marrow_blast_fraction", "marrow blasts / nucleated cells", True),
          ("blood_b_per_ul", "blood B cells (/uL)", True),
          ("blood_t_per_ul", "blood T cells (/uL)", False),
          ("il6_pg_per_ml", "serum IL-6 (pg/mL)", False))


def plot_cohort(path, title: str | None = None) -> Figure:
    cohort = read_cohort(path)
    patients, series = cohort["patients"], cohort["series"]
    done = patients["status"] == DONE
    cr = patients["cr"] == 1.0
    rules = _rules(cohort["attrs"])
    fig = Figure(figsize=(18, 8), layout="constrained")
    axes = fig.subplots(2, 4)
    _rates(axes[0, 0], cohort["rates"])
    days = series["time_h"] / 24.0
    for ax, (name, label, log) in zip((axes[0, 1], axes[0, 2], axes[1, 0], axes[1, 1]), TRACES):
        for i in np.flatnonzero(done):
            values = series[name][i]
            ax.plot(days, np.where(values > 0, values, np.nan) if log else values,
                    color=CR_COLOUR if cr[i] else NO_CR_COLOUR, alpha=0.5, lw=0.8)
        ax.set(xlabel="day", ylabel=label, yscale="log" if log else "linear")
        ax.axvline(rules["assessment_day"] - 1.0, color="grey", ls=":", lw=1)
    marrow = axes[0, 1]
    for level, text in ((rules["cr_blast_fraction"], "CR"), (rules["mrd_blast_fraction"], "MRD")):
        marrow.axhline(level, color="black", ls="--", lw=0.8)
        marrow.annotate(text, (0.99, level), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=8)
    marrow.legend(handles=[Line2D([], [], color=CR_COLOUR, label="remission"),
                           Line2D([], [], color=NO_CR_COLOUR, label="no remission")], fontsize=8)
    _burden(axes[1, 2], patients, done, cr)
    plot_rfs(axes[0, 3], patients, done)
    axes[1, 3].set_axis_off()
    n, failed = int(done.sum()), int(np.count_nonzero(patients["status"] == FAILED))
    fig.suptitle(title or f"{cohort['attrs'].get('name', path)}: {n} patients"
                 + (f" ({failed} failed)" if failed else ""))
    return fig


def _rules(attrs: dict) -> dict:
    return json.loads(attrs["cohort_resolved"])["endpoints"]


def _rates(ax: Axes, rates: dict) -> None:
    if not rates:
        ax.set_axis_off()
        return
    y = np.arange(len(rates["name"]))[::-1]
    rate = rates["rate"] * 100
    errors = np.vstack([rate - rates["ci_low"] * 100, rates["ci_high"] * 100 - rate])
    ax.barh(y, rate, xerr=errors, color="tab:grey", capsize=3)
    ax.set_yticks(y, [str(m) for m in rates["meaning"]], fontsize=8)
    ax.set(xlim=(0, 100), xlabel="% of patients (95% CI)")


def _burden(ax: Axes, patients: dict, done: np.ndarray, cr: np.ndarray) -> None:
    x = patients.get("marrow_blast_percent")
    if x is None:
        x = patients["marrow_blast_fraction_assessed"] * np.nan
    y = patients["marrow_blast_fraction_assessed"]
    colours = np.where(cr, CR_COLOUR, NO_CR_COLOUR)
    ax.scatter(x[done], np.maximum(y[done], 1e-6), c=colours[done], s=14)
    ax.set(xlabel="marrow blasts at the start (%)", ylabel="marrow blast fraction at the assessment",
           yscale="log")
