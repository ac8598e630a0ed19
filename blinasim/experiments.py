"""The validation experiments (T cells, and CRS and neurotoxicity): seeded runs of bundled
scenarios whose emergent behaviour the validation tests check and docs/model.md shows as
figures.

Each experiment is a list of arms (label, scenario, overrides, days); `run_arm` steps the
model in memory (no run file) and returns the read-outs every `every_h` hours. The tests
(tests/test_validation_t_cells.py) and the figures (`python -m blinasim.experiments
--out docs/images`) run the same arms.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from blinasim.model import BlinaModel
from blinasim.scenario import load_scenario

READOUTS = ("blasts", "marrow_blast_fraction", "blood_t_per_ul", "blood_b_per_ul", "t_cells",
            "t_armed_fraction", "t_exhaustion_mean", "t_dividing", "kills_cumulative",
            "count_lymph_node_cd8", "count_lymph_node_cd4", "drug_pg_per_ml",
            "il6_pg_per_ml", "il10_pg_per_ml", "macrophage_activation", "body_temperature_c",
            "mean_arterial_pressure_mmhg", "crs_grade", "icans_grade")


@dataclass(frozen=True)
class Arm:
    label: str
    scenario: str
    overrides: tuple[str, ...]
    days: float


def _dish(conc: float, *extra: str) -> tuple[str, ...]:
    return (f"pk.fixed_pg_per_ml={conc}",) + extra


NAIVE_ONLY = tuple(f"compartments.well.t_subsets.{kind}_{subset}={1.0 if subset == 'naive' else 0.0}"
                   for kind in ("cd8", "cd4") for subset in ("naive", "cm", "em", "temra"))
BSA_M2 = 1.73
"""Body surface area of the adult that the per-m2 dose levels are given for."""

EXPERIMENTS: dict[str, list[Arm]] = {
    # the in-vitro dish with unstimulated T cells: lysis against concentration and time
    "dish": [Arm(f"{c:g} pg/mL", "dish", _dish(c), 2.0) for c in (1.0, 10.0, 100.0, 1000.0)]
            + [Arm("1000 pg/mL, naive T cells only", "dish", _dish(1000.0, *NAIVE_ONLY), 2.0)],
    # dose ranging over the clinical range (continuous infusion, ug/m2/day for 1.73 m2)
    "dose": [Arm(f"{d:g} ug/m2/day", "dose_ranging",
                 (f"schedule.cycles.0.infusions.0.ug_per_day={d * BSA_M2:.4g}",), 7.0)
             for d in (5.0, 15.0, 30.0, 60.0)],
    # blood T-cell kinetics over cycle 1 and the first two weeks of cycle 2
    "two_cycles": [Arm("two cycles", "two_cycles", (), 56.0)],
    # marrow clearance at low and high burden, low and high T-cell counts
    "marrow": [Arm("25% blasts", "standard_cycle", (), 7.0),
               Arm("60% blasts", "standard_cycle", ("compartments.marrow.cells_per_ul.blast=600000",), 7.0),
               Arm("25% blasts, T cells / 4", "standard_cycle",
                   tuple(f"compartments.{c}.cells_per_ul.{k}={v / 4:g}" for c, k, v in (
                       ("blood", "cd8", 700), ("blood", "cd4", 1300), ("marrow", "cd8", 10000),
                       ("marrow", "cd4", 10000), ("lymph_node", "cd8", 200000),
                       ("lymph_node", "cd4", 400000), ("cns", "cd8", 1), ("cns", "cd4", 2))), 7.0),
               Arm("Tregs 10.3% of CD4", "treg_high", (), 7.0),
               Arm("60% blasts, PD-L1-high", "standard_cycle", ("exhaustion.pdl1_blast_level=1",
                                                                 "compartments.marrow.cells_per_ul.blast=600000"), 7.0)],
    # a treatment-free interval against continuous exposure at the same total dose (the
    # first 15 days: the first infusion week and the drug-free week)
    "interval": [Arm("28 ug/day, days 1-7 and 15-21", "treatment_free_interval", (), 15.0),
                 Arm("14 ug/day, days 1-28", "continuous_exposure", (), 15.0)],
    # CRS from the myeloid loop: burden, the step-up, and a patient whose myeloid cells
    # respond twice as strongly (issue #13)
    "toxicity": [Arm("standard_cycle (25% blasts)", "standard_cycle", (), 6.0),
                 Arm("high_burden (60%), step-up", "high_burden", (), 6.0),
                 Arm("high_burden_flat (60%), 28 ug/day from day 1", "high_burden_flat", (), 6.0),
                 Arm("high_burden, myeloid responsiveness 2", "high_burden", ("myeloid.responsiveness=2",), 6.0)],
}
FIGURE_NAMES = {name: f"t_cells_{name}" for name in EXPERIMENTS} | {"toxicity": "toxicity"}
"""File name (without .png) of each experiment's figure."""


def run_arm(arm: Arm, every_h: float = 6.0, seed: int | None = None) -> dict[str, np.ndarray]:
    """Step one arm and return time_h and the READOUTS every `every_h` hours."""
    loaded = load_scenario(arm.scenario, [*arm.overrides, f"duration_h={arm.days * 24:g}"])
    model = BlinaModel(loaded.scenario, seed=seed)
    every = max(1, int(round(every_h * 60 / model.dt_min)))
    rows = []
    while True:
        if model.steps % every == 0 or model.finished:
            row = model.observables()
            rows.append([model.time_min / 60.0] + [row.get(name, np.nan) for name in READOUTS])
        if model.finished:
            break
        model.step()
    table = np.array(rows)
    return {"time_h": table[:, 0], **{name: table[:, i + 1] for i, name in enumerate(READOUTS)}}


def run_experiment(name: str, every_h: float = 6.0) -> dict[str, dict[str, np.ndarray]]:
    return {arm.label: run_arm(arm, every_h) for arm in EXPERIMENTS[name]}


def figure(name: str, runs: dict[str, dict[str, np.ndarray]], path: str) -> None:
    """One figure per experiment: the read-outs that experiment is about."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = {
        "dish": [("lysed share of targets", lambda r: 1 - r["blasts"] / r["blasts"][0]),
                 ("armed share of effector T cells", lambda r: r["t_armed_fraction"])],
        "dose": [("marrow blast fraction", lambda r: r["marrow_blast_fraction"]),
                 ("T cells (all compartments)", lambda r: r["t_cells"])],
        "two_cycles": [("blood T cells / baseline", lambda r: r["blood_t_per_ul"] / r["blood_t_per_ul"][0]),
                       ("T cells (all compartments) / baseline", lambda r: r["t_cells"] / r["t_cells"][0]),
                       ("drug (pg/mL)", lambda r: r["drug_pg_per_ml"])],
        "marrow": [("marrow blast fraction", lambda r: r["marrow_blast_fraction"]),
                   ("mean exhaustion of T cells", lambda r: r["t_exhaustion_mean"])],
        "toxicity": [("serum IL-6 (pg/mL)", lambda r: r["il6_pg_per_ml"]),
                     ("marrow and lymphoid macrophage activation", lambda r: r["macrophage_activation"]),
                     ("body temperature (degC)", lambda r: r["body_temperature_c"]),
                     ("CRS grade (ASTCT)", lambda r: r["crs_grade"]),
                     ("ICANS grade (ASTCT)", lambda r: r["icans_grade"])],
        "interval": [("marrow blast fraction", lambda r: r["marrow_blast_fraction"]),
                     ("mean exhaustion of T cells", lambda r: r["t_exhaustion_mean"]),
                     ("drug (pg/mL)", lambda r: r["drug_pg_per_ml"])],
    }[name]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, value) in zip(axes[0], panels):
        for label, r in runs.items():
            days = r["time_h"] / (1.0 if name == "dish" else 24.0)
            ax.plot(days, value(r), label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("hours" if name == "dish" else "days")
        if name == "marrow" and "fraction" in title:  # clearance spans decades
            ax.set_yscale("symlog", linthresh=1e-4)
        if name == "toxicity" and ("IL-6" in title or "activation" in title):
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blinasim.experiments",
                                     description="Run the validation experiments and save their figures.")
    parser.add_argument("--out", default="docs/images", help="folder for the PNG figures")
    parser.add_argument("names", nargs="*", default=list(EXPERIMENTS), help="experiments to run (default: all)")
    args = parser.parse_args(argv)
    for name in args.names:
        runs = run_experiment(name, every_h=1.0 if name in ("dish", "toxicity") else 6.0)
        path = f"{args.out}/{FIGURE_NAMES[name]}.png"
        figure(name, runs, path)
        print(path, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
