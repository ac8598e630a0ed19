"""The patient's leukaemic burden per site at full scale: blasts are summed by their weights."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blinasim.populations import CLONE_CODE, KIND_CODE
from blinasim.schema import MARROW_ROLES

CD19_NEGATIVE_CLONES = (CLONE_CODE["cd19_negative"], CLONE_CODE["myeloid"])
"""Clones without heritable surface CD19 (exon-2 deletion, lineage switch)."""


@dataclass(frozen=True)
class Burden:
    per_compartment: np.ndarray   # patient blasts each compartment stands for (summed weights)
    cd19_negative: float          # patient blasts of a CD19-negative clone, all sites
    marrow_fraction: float        # blasts / nucleated cells of the marrow sites (nan: no marrow)
    circulating_per_ul: float     # blasts per uL of blood (nan: no blood)
    csf_per_ul: float             # blasts per uL of the CNS compartment (0: no CNS)

    @property
    def total(self) -> float:
        return float(self.per_compartment.sum())

    @property
    def cd19_negative_share(self) -> float:
        total = self.total
        return self.cd19_negative / total if total > 0 else 0.0

    def in_roles(self, geometry, roles: tuple[str, ...]) -> float:
        return float(self.per_compartment[geometry.role_codes(roles)].sum())


def blast_burden(model) -> Burden:
    """Blasts of every site at patient scale, from the live blast agents and their weights."""
    pop, geo = model.pop, model.geometry
    n_comps = len(geo.names)
    live = pop.alive == 1
    blast = live & (pop.kind == KIND_CODE["blast"])
    per_comp = np.bincount(pop.comp[blast], weights=pop.weight[blast], minlength=n_comps)
    negative = blast & np.isin(pop.clone, CD19_NEGATIVE_CLONES)
    others = np.bincount(pop.comp[live & ~blast], minlength=n_comps)
    marrow = geo.role_codes(MARROW_ROLES)
    fraction = np.nan
    if marrow:
        nucleated = np.maximum.reduce([geo.site_capacity[marrow], others[marrow] * geo.scale[marrow] + per_comp[marrow],
                                       np.ones(len(marrow))])
        fraction = float(per_comp[marrow].sum() / nucleated.sum())
    blood = geo.role_code("blood")
    circulating = np.nan if blood is None else float(per_comp[blood] / (geo.volume_ul[blood] * geo.scale[blood]))
    cns = geo.role_code("cns")
    csf = 0.0 if cns is None else float(per_comp[cns] / (geo.volume_ul[cns] * geo.scale[cns]))
    return Burden(per_comp, float(pop.weight[negative].sum()), fraction, circulating, csf)
