"""Births: new cells with receptor copies and granule stores drawn from the scenario."""
from __future__ import annotations

import numpy as np

from blinasim import rng
from blinasim.populations import CLONE_CODE, KIND_CODE, NEVER, Population
from blinasim.rng import Purpose
from blinasim.schema import T_SUBSETS, Scenario

DAUGHTER_OFFSET_UM = 5.0
"""Distance between a mother cell and its daughter (about one cell radius)."""


def lognormal_with(mean: float, sd: float, z: np.ndarray) -> np.ndarray:
    """Log-normal values with the given mean and standard deviation from standard normals z."""
    if mean <= 0.0:
        return np.zeros_like(z)
    sigma2 = np.log1p((sd / mean) ** 2)
    return mean * np.exp(np.sqrt(sigma2) * z - 0.5 * sigma2)


def draw_receptors(s: Scenario, kind: str, ids: np.ndarray, seed: int, step: int) -> dict[str, np.ndarray]:
    """Per-cell CD19 and CD3 copies (log-normal) for newborn cells of one kind."""
    r = s.receptors
    cd19 = np.zeros(len(ids))
    cd3 = np.zeros(len(ids))
    if kind == "b":
        cd19 = lognormal_with(r.cd19_b_mean, r.cd19_b_sd, rng.normals(seed, ids, step, Purpose.INIT_CD19))
    elif kind == "blast":
        cd19 = r.cd19_blast_median * np.exp(r.cd19_blast_sigma_log * rng.normals(seed, ids, step, Purpose.INIT_CD19))
    else:
        cd3 = lognormal_with(r.cd3_t_mean, r.cd3_t_sd, rng.normals(seed, ids, step, Purpose.INIT_CD3))
    return {"cd19": cd19, "cd3": cd3}


def subset_traits(s: Scenario, column: str) -> np.ndarray:
    """One trait of every T-cell subset, indexed by subset code."""
    return np.array([getattr(getattr(s.t_subsets, name), column) for name in T_SUBSETS], dtype=float)


def draw_t_cells(s: Scenario, kind: str, comp: int, ids: np.ndarray, seed: int, step: int) -> dict[str, np.ndarray]:
    """Subset (by the compartment's mix), CD3 scaled by the subset, and the resting granule
    store: full (`lysis.capacity_units`) and armed in the subset's perforin-positive share,
    else empty and unarmed."""
    shares = np.cumsum(list(s.compartments.values())[comp].t_subsets.shares(kind))
    subset = np.minimum(np.searchsorted(shares, rng.uniforms(seed, ids, step, Purpose.INIT_SUBSET), side="right"),
                        len(T_SUBSETS) - 1).astype(np.int8)
    perforin = subset_traits(s, f"perforin_{kind}")[subset]
    armed = rng.uniforms(seed, ids, step, Purpose.INIT_GRANULES) < perforin
    return {"subset": subset, "cd3_factor": subset_traits(s, "cd3_factor")[subset],
            "granules": np.where(armed, s.lysis.capacity_units, 0.0),
            "armed_step": np.where(armed, step, NEVER)}


def seed_cells(pop: Population, s: Scenario, kind: str, comp: int, count: int,
               width_um: float, height_um: float, seed: int, step: int,
               blast_weight: float = 1.0, clone: str | None = None) -> np.ndarray:
    """Add `count` new cells of one kind, uniformly placed in a compartment.

    CD4 T cells are regulatory with probability `treg_fraction_of_cd4`; blasts belong to
    `clone`, or when it is None to the CD19-negative or CD19-low clone with the scenario's
    initial shares, and each stands for `blast_weight` patient cells.
    """
    ids = np.arange(pop.next_id, pop.next_id + count, dtype=np.int64)
    columns = draw_receptors(s, kind, ids, seed, step)
    if kind in ("cd8", "cd4"):
        t_cells = draw_t_cells(s, kind, comp, ids, seed, step)
        columns["cd3"] = columns["cd3"] * t_cells.pop("cd3_factor")
        columns.update(t_cells)
    if kind == "cd4":
        columns["regulatory"] = rng.uniforms(seed, ids, step, Purpose.INIT_ROLE) < s.regulation.treg_fraction_of_cd4
    if kind == "blast":
        u = rng.uniforms(seed, ids, step, Purpose.INIT_ROLE)
        a = s.antigen
        if clone is None:
            clones = np.where(u < a.cd19_negative_fraction, CLONE_CODE["cd19_negative"],
                              np.where(u < a.cd19_negative_fraction + a.cd19_low_fraction,
                                       CLONE_CODE["cd19_low"], CLONE_CODE["cd19_positive"]))
        else:
            clones = np.full(count, CLONE_CODE[clone], dtype=np.int8)
        factor = np.select([clones == CLONE_CODE["cd19_negative"], clones == CLONE_CODE["cd19_low"]],
                           [0.0, a.cd19_low_factor], 1.0)
        columns.update(clone=clones, cd19=columns["cd19"] * factor, pdl1=s.exhaustion.pdl1_blast_level,
                       weight=blast_weight)
    columns["cd19_set"] = columns["cd19"]
    return pop.add(count, kind=KIND_CODE[kind], comp=comp,
                   x=width_um * rng.uniforms(seed, ids, step, Purpose.INIT_X),
                   y=height_um * rng.uniforms(seed, ids, step, Purpose.INIT_Y),
                   granule_step=step, born_step=step,
                   **columns)


INHERITED = ("kind", "comp", "cd19", "cd3", "granules", "granule_step", "activated_step",
             "engaged_step", "regulatory", "engagements", "clone", "cd19_set", "pdl1", "subset",
             "armed_step", "stimulation", "destiny", "generation", "exhaustion", "weight",
             "engaged_share", "activity_scale")


def copy_cells(pop: Population, rows: np.ndarray, x: np.ndarray, y: np.ndarray, step: int) -> np.ndarray:
    """New cells at (x, y) that inherit the state of `rows`; returns their rows."""
    inherited = {name: getattr(pop, name)[rows].copy() for name in INHERITED}
    return pop.add(len(rows), x=x, y=y, born_step=step, **inherited)


def divide(pop: Population, mothers: np.ndarray, width_um: np.ndarray, height_um: np.ndarray,
           seed: int, step: int) -> np.ndarray:
    """Each mother row gets a daughter next to it that inherits its state; returns daughter rows."""
    ids = pop.id[mothers]
    angle = 2.0 * np.pi * rng.uniforms(seed, ids, step, Purpose.DAUGHTER_ANGLE)
    comp = pop.comp[mothers]
    x = np.mod(pop.x[mothers] + DAUGHTER_OFFSET_UM * np.cos(angle), width_um[comp])
    y = np.mod(pop.y[mothers] + DAUGHTER_OFFSET_UM * np.sin(angle), height_um[comp])
    return copy_cells(pop, mothers, x, y, step)
