"""What the spatial view shows of one compartment: cells by category, synapses, the dead.

Shared by the live view and the classroom page. Everything is read from the model's
struct-of-arrays population with vectorised numpy; nothing here changes the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blinasim.populations import COLUMNS, Population
from blinasim.schema import CELL_KINDS, T_KINDS

CELL_DIAMETER_UM = 8.0
KIND = {name: code for code, name in enumerate(CELL_KINDS)}
T_CODES = [KIND[k] for k in T_KINDS if k != "treg"]
HAS_TREGS = "regulatory" in COLUMNS or "treg" in KIND
"""Whether this model has regulatory T cells (a population flag, or a kind of their own)."""


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    color: str
    marker: str
    size: float   # marker area relative to a T cell
    zorder: int
    linewidth: float = 0.0  # crosses are drawn with lines, dots without


CATEGORIES = (
    Category("blast_pos", "blast CD19+", "#e377c2", "o", 1.6, 2),
    Category("blast_neg", "blast CD19-", "#7f4f24", "o", 1.6, 2),
    Category("b", "B cell", "#9aa84a", "s", 1.0, 2),
    Category("t_free", "T cell, free", "#6baed6", "o", 1.0, 3),
    Category("t_activated", "T cell, activated", "#08306b", "o", 1.0, 3),
    Category("t_engaged", "T cell, in synapse", "#ff7f0e", "o", 1.3, 4),
    Category("treg", "Treg", "#2ca02c", "D", 1.0, 3),
    Category("dying", "dying", "#000000", "x", 1.0, 5, 1.0),
)
"""Drawing order and style; Tregs are shown only when the model has them."""


def categories() -> tuple[Category, ...]:
    """The categories this model can fill."""
    return tuple(c for c in CATEGORIES if c.key != "treg" or HAS_TREGS)


def marker_area(extent_um: float, axes_inches: float) -> float:
    """Marker area (points^2) that draws a cell about its size on axes `axes_inches` wide
    showing `extent_um`, but never too small to see."""
    return float(np.clip((CELL_DIAMETER_UM * axes_inches * 72.0 / extent_um) ** 2, 3.0, 60.0))


def _is_treg(pop: Population, rows: np.ndarray) -> np.ndarray:
    if "regulatory" in COLUMNS:
        return pop.regulatory[rows] == 1
    return pop.kind[rows] == KIND.get("treg", -1)


def classify(pop: Population, comp: int) -> dict[str, np.ndarray]:
    """Positions (n, 2) of the live cells of compartment `comp`, by category key."""
    sel = np.flatnonzero((pop.comp == comp) & (pop.alive == 1))
    kind, xy = pop.kind[sel], np.column_stack((pop.x[sel], pop.y[sel]))
    treg = _is_treg(pop, sel)
    is_t = np.isin(kind, T_CODES) & ~treg
    engaged = is_t & (pop.partner[sel] >= 0)
    activated = is_t & ~engaged & (pop.activated_step[sel] >= 0)
    blast = kind == KIND["blast"]
    negative = pop.cd19[sel] <= 0
    masks = {"blast_pos": blast & ~negative, "blast_neg": blast & negative, "b": kind == KIND["b"],
             "t_free": is_t & ~engaged & ~activated, "t_activated": activated, "t_engaged": engaged,
             "treg": treg}
    return {key: xy[mask] for key, mask in masks.items()}


def synapse_segments(pop: Population, comp: int, width: float, height: float) -> np.ndarray:
    """(n, 2, 2) segments from each T cell in a synapse to its target (nearest periodic image)."""
    t_rows = np.flatnonzero((pop.comp == comp) & (pop.alive == 1) & (pop.partner >= 0)
                            & np.isin(pop.kind, T_CODES + [KIND.get("treg", -1)]))
    partner = pop.partner[t_rows]
    start = np.column_stack((pop.x[t_rows], pop.y[t_rows]))
    delta = np.column_stack((pop.x[partner], pop.y[partner])) - start
    delta -= np.array([width, height]) * np.round(delta / np.array([width, height]))
    return np.stack((start, start + delta), axis=1)


class DeathTracker:
    """Cells that died since an earlier look, kept for a while where they died.

    Compares the ids of the live cells at each `update` with those of the previous one; a
    cell that is gone or has ``alive == 0`` died (killed, or its natural death).
    """

    def __init__(self, pop: Population, time_min: float):
        self._ids = np.empty(0, dtype=np.int64)
        self._xy = np.empty((0, 2))
        self._comp = np.empty(0, dtype=np.int8)
        self.dead_xy = np.empty((0, 2))
        self.dead_comp = np.empty(0, dtype=np.int8)
        self.dead_min = np.empty(0)
        self.update(pop, time_min)

    def update(self, pop: Population, time_min: float) -> None:
        live = pop.alive == 1
        ids = pop.id[live]
        gone = ~np.isin(self._ids, ids, assume_unique=True)
        self.dead_xy = np.concatenate((self.dead_xy, self._xy[gone]))
        self.dead_comp = np.concatenate((self.dead_comp, self._comp[gone]))
        self.dead_min = np.concatenate((self.dead_min, np.full(int(gone.sum()), time_min)))
        self._ids, self._comp = ids, pop.comp[live]
        self._xy = np.column_stack((pop.x[live], pop.y[live]))

    def recent(self, comp: int, time_min: float, keep_min: float) -> np.ndarray:
        """Positions in `comp` of the cells that died within the last `keep_min` minutes."""
        keep = self.dead_min > time_min - keep_min
        self.dead_xy, self.dead_comp, self.dead_min = self.dead_xy[keep], self.dead_comp[keep], self.dead_min[keep]
        return self.dead_xy[self.dead_comp == comp]
