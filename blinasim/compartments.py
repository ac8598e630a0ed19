"""Compartment geometry and the migration graph.

Each compartment is a 2D periodic domain standing for a slab of blood or tissue of a given
thickness, so that cell counts convert to cells per uL. Compartments are the nodes of a
networkx DiGraph; each migration route is an edge carrying per-kind rates (1/h).
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from blinasim.schema import CELL_KINDS, Scenario
from blinasim.units import UM3_PER_UL


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
