"""Struct-of-arrays cell store: one numpy array per attribute, stable cell ids.

Rows are positions in the arrays and change when dead cells are compacted away; ids never
change and are never reused. Cross-references between cells (synapse partners) are rows,
remapped on compaction. Dead cells keep their row (alive = 0) until the next compaction.
"""
from __future__ import annotations

import numpy as np

from blinasim import _population
from blinasim.schema import CELL_KINDS

KIND_CODE = {name: code for code, name in enumerate(CELL_KINDS)}
NEVER = -1
"""Value of step columns for an event that has not happened."""

COLUMNS: dict[str, tuple[type, float]] = {
    # name: (dtype, value for a newborn cell)
    "id": (np.int64, 0),
    "kind": (np.int8, 0),
    "comp": (np.int8, 0),
    "alive": (np.uint8, 1),
    "x": (np.float64, 0.0),            # um
    "y": (np.float64, 0.0),            # um
    "ux": (np.float32, 0.0),           # heading (unit vector); 0,0 = none yet
    "uy": (np.float32, 0.0),
    "cd19": (np.float32, 0.0),         # surface CD19 copies
    "cd3": (np.float32, 0.0),          # surface CD3 copies
    "partner": (np.int32, -1),         # row of the synapse partner, -1 = free
    "synapse_step": (np.int32, NEVER),  # step the current synapse formed
    "next_hit_step": (np.int32, 0),    # earliest step of the next granule hit
    "hits": (np.int16, 0),             # hits received since the damage last repaired (targets)
    "last_hit_step": (np.int32, NEVER),  # step of the most recent hit (targets)
    "granules": (np.float32, 0.0),     # granule units (T cells)
    "granule_step": (np.int32, 0),     # step the granule store was last brought up to date
    "activated_step": (np.int32, NEVER),  # first bridged synapse (T cells)
    "engaged_step": (np.int32, NEVER),    # most recent bridged synapse (T cells)
    "kills": (np.int32, 0),
    "born_step": (np.int32, 0),
    "regulatory": (np.uint8, 0),       # 1 = regulatory T cell (a CD4 T cell that suppresses)
    "engagements": (np.int16, 0),      # synapses made so far (T cells; drives AICD)
    "subset": (np.int8, 0),            # T-cell differentiation subset: index into schema.T_SUBSETS
    "armed_step": (np.int32, NEVER),   # step from which the T cell synthesises granules
    "stimulation": (np.float32, 0.0),  # expected bridges summed over synapses before the first division
    "destiny": (np.int8, NEVER),       # divisions the current programme will make; -1 = not yet set
    "generation": (np.int8, 0),        # divisions made in the current programme
    "next_division_step": (np.int32, NEVER),  # step of the next division (first: sets the destiny)
    "exhaustion": (np.float32, 0.0),   # exhaustion state X 0..1 (PD-1, TIM-3, LAG-3)
    "clone": (np.int8, 0),             # blast CD19 clone: see CLONE_CODE
    "cd19_set": (np.float32, 0.0),     # heritable surface CD19 the cell returns to when free
    "pdl1": (np.float32, 0.0),         # PD-L1 level 0..1 (blasts)
    "weight": (np.float64, 1.0),       # patient cells this agent stands for (blasts of a sampled site; else 1)
    "engaged_share": (np.float64, 1.0),  # share of the patient T cells this agent stands for engaged by its last synapse (T cells)
    "activity_scale": (np.float64, 1.0),  # secretory activity at the last synapse, of the patient T cells this agent stands for (T cells)
}

CLONE_CODE = {"cd19_positive": 0, "cd19_low": 1, "cd19_negative": 2, "myeloid": 3}
"""Blast clones: parental, CD81-loss (low CD19), CD19 exon-2 deletion, lineage switch."""


class Population:
    """All cells of a model, every compartment and kind, in one set of columns."""

    def __init__(self, capacity: int = 1024):
        self._data = {name: np.full(capacity, fill, dtype=dtype)
                      for name, (dtype, fill) in COLUMNS.items()}
        self.n = 0
        self.next_id = 0

    @property
    def n(self) -> int:
        """Rows in use (live cells and the dead not yet compacted)."""
        return self._n

    @n.setter
    def n(self, rows: int) -> None:
        self._n = rows
        self._refresh_views()

    def _refresh_views(self) -> None:
        """Make each column an attribute: a view of its first n rows (pop.x, pop.comp, ...).
        Plain attributes, not a __getattr__ lookup: the per-step code reads them ~70 times
        a step."""
        for name, column in self._data.items():
            self.__dict__[name] = column[: self._n]

    def __getstate__(self) -> dict:
        return {"_data": self._data, "_n": self._n, "next_id": self.next_id}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._refresh_views()

    @property
    def capacity(self) -> int:
        return len(self._data["id"])

    def nbytes(self) -> int:
        """Memory held by the columns (allocated capacity, not just used rows)."""
        return sum(a.nbytes for a in self._data.values())

    def _grow(self, needed: int) -> None:
        capacity = max(self.capacity * 2, needed)
        for name, (dtype, fill) in COLUMNS.items():
            grown = np.full(capacity, fill, dtype=dtype)
            grown[: self.n] = self._data[name][: self.n]
            self._data[name] = grown
            self.__dict__[name] = grown[: self.n]  # drop the view of the old column: free it now

    def add(self, count: int, **values) -> np.ndarray:
        """Append `count` newborn cells; keyword arrays or scalars set columns. Returns rows."""
        if self.n + count > self.capacity:
            self._grow(self.n + count)
        rows = np.arange(self.n, self.n + count)
        for name, (_dtype, fill) in COLUMNS.items():
            self._data[name][rows] = fill
        self._data["id"][rows] = np.arange(self.next_id, self.next_id + count)
        for name, value in values.items():
            if name not in COLUMNS or name == "id":
                raise KeyError(f"not a settable population column: {name}")
            self._data[name][rows] = value
        self.n += count
        self.next_id += count
        return rows

    def compact(self, threads: int = 1) -> None:
        """Drop dead rows, keep order, and remap partner rows (ext/_population.pyx)."""
        self.n = _population.compact(list(self._data.values()), self.alive, self.partner,
                                     threads)

    def count_by(self, n_comps: int) -> np.ndarray:
        """Live cells per (compartment, kind) as an integer matrix."""
        live = self.alive.astype(bool)
        flat = self.comp[live].astype(np.int64) * len(CELL_KINDS) + self.kind[live]
        return np.bincount(flat, minlength=n_comps * len(CELL_KINDS)).reshape(n_comps, len(CELL_KINDS))

    def state(self) -> dict[str, np.ndarray | int]:
        """Everything needed to rebuild the population exactly (for checkpoints)."""
        state: dict[str, np.ndarray | int] = {f"pop.{name}": getattr(self, name).copy() for name in COLUMNS}
        state["pop.next_id"] = self.next_id
        return state

    @classmethod
    def from_state(cls, state) -> "Population":
        n = len(state["pop.id"])
        pop = cls(capacity=max(1024, n))
        for name, (dtype, _fill) in COLUMNS.items():
            pop._data[name][:n] = np.asarray(state[f"pop.{name}"], dtype=dtype)
        pop.n = n
        pop.next_id = int(state["pop.next_id"])
        return pop
