"""Time-series panels shared by the run figure, the live view and the classroom page.

A panel names its series by timeseries variable. A series whose variables a run does not
record is left out, and a panel left with no series says "not in this run". Variables the
model does not record yet (cytokines, CRS grade, CD19-negative blasts, Tregs) are named
too, so their panels fill in as soon as the model records them.
"""
from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Series:
    """One line: a variable, or the ratio of two, times a scale."""
    label: str
    var: str
    per: str | None = None
    scale: float = 1.0
    color: str = "C0"
    steps: bool = False  # a grade: drawn as steps

    def present(self, names: Container[str]) -> bool:
        return self.var in names and (self.per is None or self.per in names)

    def values(self, data: Mapping[str, np.ndarray]) -> np.ndarray:
        value = np.asarray(data[self.var], dtype=float) * self.scale
        if self.per is None:
            return value
        with np.errstate(divide="ignore", invalid="ignore"):
            return value / np.asarray(data[self.per], dtype=float)


@dataclass(frozen=True)
class Panel:
    """One axes of time series with its y label (with units) and decorations."""
    key: str
    title: str
    ylabel: str
    series: tuple[Series, ...]
    log: bool = False
    floor: float = 0.0                  # bottom of the axis (log: lower values are drawn on it)
    thresholds: tuple[tuple[float, str], ...] = ()
    schedule: bool = False              # shade the infusion periods

    def available(self, names: Container[str]) -> tuple[Series, ...]:
        return tuple(s for s in self.series if s.present(names))


CYTOKINES = (("IL-2", "il2"), ("IL-6", "il6"), ("IL-10", "il10"), ("IFN-gamma", "ifng"), ("TNF-alpha", "tnfa"),
             ("IL-1beta", "il1b"))

PANELS: dict[str, Panel] = {p.key: p for p in (
    Panel("pk", "Blinatumomab in plasma", "concentration (pg/mL)",
          (Series("drug", "drug_pg_per_ml", color="C0"),), schedule=True),
    Panel("blood", "Blood B and T cells", "cells per uL",
          (Series("B cells", "blood_b_per_ul", color="C2"),
           Series("T cells", "blood_t_per_ul", color="C0")), log=True, floor=0.01),
    Panel("marrow", "Marrow blasts", "blasts (% of nucleated cells)",
          (Series("marrow blasts", "marrow_blast_fraction", scale=100.0, color="C3"),),
          log=True, floor=1e-5, thresholds=((5.0, "CR < 5%"), (0.01, "flow MRD 1e-4"), (1e-4, "NGS MRD 1e-6"))),
    Panel("burden", "The patient's leukaemia", "blasts in the patient (cells)",
          (Series("all sites", "blasts", color="k"),
           Series("marrow", "marrow_blasts", color="C3"),
           Series("CNS", "cns_blasts", color="C4"),
           Series("extramedullary", "extramedullary_blasts", color="C1"),
           Series("CD19-negative", "blasts_cd19neg", color="C5")), log=True, floor=1.0, schedule=True),
    Panel("cd19neg", "CD19-negative blasts", "share of blasts (%)",
          (Series("CD19-negative", "blasts_cd19neg", per="blasts", scale=100.0, color="C5"),)),
    Panel("cytokines", "Cytokines in plasma", "concentration (pg/mL)",
          tuple(Series(name, f"{code}_pg_per_ml", color=f"C{i}") for i, (name, code) in enumerate(CYTOKINES)),
          log=True, floor=0.1),
    Panel("fever", "Body temperature", "temperature (degC)",
          (Series("temperature", "body_temperature_c", color="C3"),), floor=36.0,
          thresholds=((38.0, "fever (ASTCT)"),)),
    Panel("circulation", "Blood pressure and oxygen need", "MAP (mmHg) / oxygen (L/min)",
          (Series("mean arterial pressure", "mean_arterial_pressure_mmhg", color="C0"),
           Series("oxygen need", "oxygen_l_per_min", color="C2")), thresholds=((65.0, "hypotension"),)),
    Panel("myeloid", "Monocytes and macrophages", "mean activation",
          (Series("blood monocytes", "monocyte_activation", color="C1"),
           Series("marrow and lymphoid macrophages", "macrophage_activation", color="C5"))),
    Panel("toxicity", "CRS and neurotoxicity", "CRS grade (0-4, ASTCT) / neurotoxicity index",
          (Series("CRS grade", "crs_grade", color="C3", steps=True),
           Series("neurotoxicity index", "neurotox_index", color="C4"))),
    Panel("kills", "Cumulative kills", "targets killed (cells)",
          (Series("all targets", "kills_cumulative", color="k"),
           Series("blasts", "kills_blast", color="C3"),
           Series("B cells", "kills_b", color="C2"))),
    Panel("blasts", "Blasts", "live blasts (cells)",
          (Series("all blasts", "blasts", color="C3"),
           Series("CD19-negative", "blasts_cd19neg", color="C5"))),
    Panel("tcells", "T-cell engagement", "T cells (cells)",
          (Series("in a synapse", "synapses", color="C1"),
           Series("ever activated", "t_cells_activated", color="C0"))),
    Panel("treg", "Regulatory T cells", "Tregs (% of CD4 T cells)",
          (Series("Tregs", "treg_fraction_of_cd4", scale=100.0, color="C2"),)),
)}

FIGURE_PANELS = ("pk", "blood", "marrow", "burden", "cd19neg", "cytokines", "myeloid", "fever", "circulation",
                 "toxicity", "kills")
"""Panels of `blinasim plot` unless --vars chooses others."""

LIVE_PANELS = ("pk", "blood", "blasts", "tcells", "cytokines", "fever")
"""Panels of the live view and the classroom page (those the run records)."""


def variable_panel(name: str, units: str = "", long_name: str = "") -> Panel:
    """A panel for one timeseries variable that no named panel shows."""
    ylabel = f"{long_name or name} ({units})" if units and units != "1" else (long_name or name)
    return Panel(name, name, ylabel, (Series(name, name),))


def log_values(panel: Panel, values: np.ndarray) -> np.ndarray:
    """Values for a log axis: those at or below the panel's floor are drawn on the floor."""
    return np.where(np.isfinite(values), np.maximum(values, panel.floor), np.nan) if panel.log else values


def time_axis(duration_h: float) -> tuple[float, str]:
    """(hours per unit, axis label): hours for runs shorter than two days, else days."""
    return (1.0, "time (h)") if duration_h < 48.0 else (24.0, "time (days)")
