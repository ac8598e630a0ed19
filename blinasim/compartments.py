"""Compartment geometry and the migration graph.

Each compartment is a 2D periodic domain standing for a slab of blood or tissue of a given
thickness, so that cell counts convert to cells per uL. Compartments are the nodes of a
networkx DiGraph; each migration route is an edge carrying per-kind rates (1/h).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from blinasim.schema import CELL_KINDS, Scenario
from blinasim.units import UM3_PER_UL

MAX_CELLS = 10_000_000
"""Most cells a scenario may start with, and most nucleated cells (the room blasts grow
into) its compartments may hold: ~2 GB at BYTES_PER_CELL."""

LARGE_RUN_CELLS = 1_000_000
"""From this many starting cells the command line says how long a run will take."""

LONG_RUN_S = 600.0
"""...and from this estimated stepping time, whatever the cells."""

NS_PER_AGENT_STEP = 70.0
"""Stepping cost per cell and step: docs/performance.md measures 33-75 ns (dish, 1e4-1e6
cells, 1-2 threads) and 73 ns for the whole standard cycle; 70 is the cautious figure."""

BYTES_PER_CELL = 200.0
"""Memory per cell: docs/performance.md measures 167 bytes at 1e6 cells (200 for the
standard cycle), kernel temporaries included."""


def volume_ul(width_um: float, height_um: float, thickness_um: float) -> float:
    """A slab's volume in uL."""
    return width_um * height_um * thickness_um / UM3_PER_UL


def initial_counts(s: Scenario) -> dict[tuple[str, str], float]:
    """Cells of each (compartment, kind) at the start, as the model places them
    (round(density x volume)); a float, inf when the product is not finite."""
    counts = {}
    for name, c in s.compartments.items():
        v = volume_ul(c.width_um, c.height_um, c.thickness_um)
        for kind in CELL_KINDS:
            n = c.cells_per_ul.get(kind) * v
            counts[name, kind] = float(round(n)) if math.isfinite(n) else math.inf
    return counts


def nucleated_capacities(s: Scenario) -> dict[str, float]:
    """Nucleated cells each compartment holds (blasts grow up to it); inf if not finite."""
    out = {}
    for name, c in s.compartments.items():
        n = c.nucleated_cells_per_ul * volume_ul(c.width_um, c.height_um, c.thickness_um)
        out[name] = float(round(n)) if math.isfinite(n) else math.inf
    return out


@dataclass(frozen=True)
class RunEstimate:
    """What a run of the scenario will cost, from its starting cells."""
    cells: float      # starting cells, all compartments
    steps: int
    seconds: float    # stepping time at NS_PER_AGENT_STEP (one thread; cells change in a run)
    bytes: float      # memory of the starting cells at BYTES_PER_CELL

    @property
    def large(self) -> bool:
        """Whether the command line should say how long the run will take."""
        return self.cells >= LARGE_RUN_CELLS or self.seconds >= LONG_RUN_S


def estimate_run(s: Scenario) -> RunEstimate:
    """Cells, steps, stepping time and memory of a run, from the starting cells."""
    cells = sum(initial_counts(s).values())
    steps = int(round(s.duration_h * 60.0 / s.time_step_min))
    return RunEstimate(cells, steps, cells * steps * NS_PER_AGENT_STEP * 1e-9, cells * BYTES_PER_CELL)


def large_run_note(s: Scenario) -> str | None:
    """One line saying how long a large run will take, or None for a run of minutes."""
    e = estimate_run(s)
    if not e.large:
        return None
    return (f"note: {s.name} starts with {_count(e.cells)} cells: {_count(e.steps)} steps at "
            f"~{NS_PER_AGENT_STEP:.0f} ns per cell and step take about {_duration(e.seconds)} on one "
            f"thread, and ~{_size(e.bytes)} of memory (more if the cells multiply)")


def _count(n: float) -> str:
    return f"{n:,.0f}" if n < 1e9 else f"{n:.2g}"


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.0f} s"


def _size(n_bytes: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= size:
            return f"{n_bytes / size:.3g} {unit}"
    return f"{n_bytes / 1e3:.3g} kB"


@dataclass(frozen=True)
class Geometry:
    """Per-compartment arrays indexed by compartment code (scenario order)."""
    names: tuple[str, ...]
    width_um: np.ndarray
    height_um: np.ndarray
    volume_ul: np.ndarray
    drug_exposure: np.ndarray
    speed_um_per_min: np.ndarray    # [compartment, kind]
    nucleated_capacity: np.ndarray  # all nucleated cells the slab holds (0 = not set)
    roles: tuple[str, ...]
    scale: np.ndarray               # patient site volume / slab volume (1: the slab is the site)

    @property
    def site_capacity(self) -> np.ndarray:
        """All nucleated cells of the patient site each compartment samples."""
        return self.nucleated_capacity * self.scale

    @property
    def sampled(self) -> np.ndarray:
        """Compartments that sample a larger patient site (their blasts carry weights)."""
        return self.scale > 1.0

    def role_codes(self, roles: tuple[str, ...]) -> list[int]:
        """Codes of the compartments playing any of `roles`."""
        return [c for c, role in enumerate(self.roles) if role in roles]

    def code(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None

    def role_code(self, role: str) -> int | None:
        """The compartment playing a role ('blood', 'marrow', 'vessel_wall', 'cns'), if any."""
        return self.roles.index(role) if role in self.roles else None


def build_geometry(s: Scenario) -> Geometry:
    comps = list(s.compartments.items())
    volume_ul = np.array([c.width_um * c.height_um * c.thickness_um / UM3_PER_UL for _, c in comps])
    return Geometry(
        names=tuple(name for name, _ in comps),
        width_um=np.array([c.width_um for _, c in comps], dtype=np.float64),
        height_um=np.array([c.height_um for _, c in comps], dtype=np.float64),
        volume_ul=volume_ul,
        drug_exposure=np.array([c.drug_exposure for _, c in comps]),
        speed_um_per_min=np.array([[c.speed_um_per_min.get(k) for k in CELL_KINDS] for _, c in comps],
                                  dtype=np.float64),
        nucleated_capacity=np.array([round(c.nucleated_cells_per_ul * v)
                                     for (_, c), v in zip(comps, volume_ul)], dtype=np.float64),
        roles=tuple(c.role for _, c in comps),
        scale=np.array([max(1.0, c.patient_volume_ul / v) if c.patient_volume_ul > 0 else 1.0
                        for (_, c), v in zip(comps, volume_ul)]),
    )


def migration_graph(s: Scenario) -> nx.DiGraph:
    """Compartments as nodes, routes as edges with a `rate_per_h` dict per kind and a mechanism."""
    graph = nx.DiGraph()
    for name, comp in s.compartments.items():
        graph.add_node(name, volume_ul=comp.width_um * comp.height_um * comp.thickness_um / UM3_PER_UL)
    for index, route in enumerate(s.routes):
        graph.add_edge(route.source, route.target, index=index, mechanism=route.mechanism,
                       rate_per_h={k: route.rate_per_h.get(k) for k in CELL_KINDS})
    return graph
