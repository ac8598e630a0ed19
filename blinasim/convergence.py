"""The patient-scale coupling against a fully agent-based run (docs/model.md, figure).

A marrow-like tissue at a fixed 100 pg/mL (T cells 2e5/uL, blasts 4e5/uL, no growth) is
simulated twice: fully agent-based on a 1 mm x 1 mm slab (4,000 blasts, weight 1), and as a
0.5 mm x 0.5 mm sample of the same tissue (1,000 blasts of weight 4, split into sentinels
below `patient.min_blast_agents`). The patient blasts (summed weights) must follow the full
run. `python -m blinasim.convergence --out docs/images` draws the comparison.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from blinasim.model import BlinaModel
from blinasim.schema import PK, Compartment, KindValues, Patient, Scenario

FULL_WIDTH_UM = 1000.0
SAMPLE_WIDTH_UM = 500.0
THICKNESS_UM = 10.0
HOURS = 12


def tissue_scenario(width_um: float, patient_volume_ul: float, min_blast_agents: int) -> Scenario:
    tissue = Compartment(width_um=width_um, height_um=width_um, thickness_um=THICKNESS_UM, role="marrow",
                         cells_per_ul=KindValues(cd8=1e5, cd4=1e5, blast=4e5),
                         speed_um_per_min=KindValues(cd8=10.0, cd4=10.0), patient_volume_ul=patient_volume_ul)
    return Scenario(name="convergence", duration_h=HOURS, pk=PK(model="fixed", fixed_pg_per_ml=100.0),
                    compartments={"marrow": tissue}, patient=Patient(min_blast_agents=min_blast_agents))


def blasts_by_hour(s: Scenario, seed: int) -> np.ndarray:
    """Patient blasts at hours 0..HOURS of one run."""
    model = BlinaModel(s, seed=seed)
    out = [model.observables()["blasts"]]
    per_h = int(round(60 / model.dt_min))
    while not model.finished:
        model.step()   # Mesa advances model.steps before step()
        if model.steps % per_h == 0:
            out.append(model.observables()["blasts"])
    return np.array(out)


FULL_VOLUME_UL = FULL_WIDTH_UM ** 2 * THICKNESS_UM / 1e9


def full_runs(seeds: range) -> np.ndarray:
    """(runs x hours) blasts of the fully agent-based tissue."""
    return np.array([blasts_by_hour(tissue_scenario(FULL_WIDTH_UM, 0.0, 1), s) for s in seeds])


def sampled_runs(seeds: range, min_blast_agents: int = Patient().min_blast_agents) -> np.ndarray:
    """(runs x hours) patient blasts of the 1/4 sample of the same tissue."""
    return np.array([blasts_by_hour(tissue_scenario(SAMPLE_WIDTH_UM, FULL_VOLUME_UL, min_blast_agents), s)
                     for s in seeds])


def largest_z(full: np.ndarray, sampled: np.ndarray) -> float:
    """Largest |difference of the mean patient blasts| / its standard error over hours 1..HOURS
    (Welch): above ~3 the sample is biased against the full run beyond seed-to-seed noise."""
    se = np.sqrt(full.var(axis=0, ddof=1) / len(full) + sampled.var(axis=0, ddof=1) / len(sampled))[1:]
    return float(np.max(np.abs(sampled.mean(axis=0)[1:] - full.mean(axis=0)[1:]) / se))


def draw(out: Path, seeds: range = range(1, 9)) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    hours = np.arange(HOURS + 1)
    full = full_runs(seeds)
    ax.plot(hours, full.mean(axis=0), "k-", lw=2, label="fully agent-based (4,000 agents, weight 1)")
    for floor, style in ((50, "C0--"), (400, "C1:")):
        sampled = sampled_runs(seeds, floor)
        ax.plot(hours, sampled.mean(axis=0), style, lw=2,
                label=f"sampled 1/4 (weight 4), sentinel floor {floor} (largest z {largest_z(full, sampled):.1f})")
    ax.set_yscale("log")
    ax.set_xlabel("hours at 100 pg/mL")
    ax.set_ylabel("patient blasts, mean of the seeds")
    ax.set_title(f"Patient-scale coupling vs a fully agent-based run ({len(seeds)} seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "patient_convergence.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blinasim.convergence", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder for the figure")
    args = parser.parse_args(argv)
    print(draw(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
