"""Figures of a sensitivity file and of a calibration: indices with intervals, the posterior,
the posterior predictive against the data, and the distance history."""
from __future__ import annotations

import math
import pathlib

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def sensitivity_figure(path, out) -> pathlib.Path:
    """One panel per read-out: Morris mu* or Sobol S1 and ST, with bootstrap intervals;
    dots are the indices of each replicate alone (their spread is the seeds' noise)."""
    from blinasim.analysis.sensitivity import read_sensitivity
    plt = _pyplot()
    data = read_sensitivity(path)
    attrs = data["attrs"]
    names = list(data["design"]["parameter"])
    readouts = [k for k in data.get("indices", {}) if k != "attrs"]
    fig, axes = plt.subplots(1, max(1, len(readouts)), figsize=(4.8 * max(1, len(readouts)), 0.5 * len(names) + 2.0),
                             squeeze=False)
    level = 100 * float(json_settings(attrs).get("confidence", 0.95))
    for ax, readout in zip(axes[0], readouts):
        g = data["indices"][readout]
        ax.set_title(readout + _noise_text(g), fontsize=10)
        y = np.arange(len(names))
        if "problem" in g["attrs"]:
            ax.text(0.5, 0.5, g["attrs"]["problem"], ha="center", va="center", transform=ax.transAxes, wrap=True)
            continue
        reps = g.get("by_replicate", {})
        if attrs["method"] == "morris":
            order = np.argsort(g["mu_star"])
            ax.barh(y, g["mu_star"][order], xerr=g["mu_star_conf"][order], color="tab:blue", alpha=0.8,
                    capsize=3, label=f"mu* ({level:g}% CI)")
            ax.plot(g["sigma"][order], y, "k^", label="sigma")
            if "mu_star" in reps:
                for row in reps["mu_star"]:
                    ax.plot(row[order], y, ".", color="tab:orange", alpha=0.7)
                ax.plot([], [], ".", color="tab:orange", label="mu* of one replicate")
            ax.set_xlabel("mean |elementary effect| over the range")
        else:
            order = np.argsort(g["ST"])
            h = 0.38
            ax.barh(y + h / 2, g["ST"][order], h, xerr=g["ST_conf"][order], capsize=3, color="tab:red",
                    alpha=0.8, label=f"total ST ({level:g}% CI)")
            ax.barh(y - h / 2, g["S1"][order], h, xerr=g["S1_conf"][order], capsize=3, color="tab:blue",
                    alpha=0.8, label=f"first order S1 ({level:g}% CI)")
            for key, offset in (("ST", h / 2), ("S1", -h / 2)):
                for row in reps.get(key, []):
                    ax.plot(row[order], y + offset, ".", color="k", alpha=0.5, ms=4)
            if reps:
                ax.plot([], [], ".", color="k", alpha=0.5, label="one replicate")
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_xlabel("Sobol index (share of variance)")
        ax.set_yticks(y, [names[i] for i in order], fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{attrs['name']}: {attrs['method']}, {attrs['points']} points x {attrs['replicates']} replicates",
                 fontsize=11)
    fig.tight_layout()
    out = pathlib.Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _noise_text(g: dict) -> str:
    noise = g["attrs"].get("noise_share", math.nan)
    return "" if not np.isfinite(noise) else f"\nnoise share of the variance: {noise:.2g}"


def json_settings(attrs: dict) -> dict:
    import json
    try:
        return json.loads(attrs["spec_resolved"])["settings"]
    except (KeyError, ValueError):
        return {}


# --------------------------------------------------------------------------- calibration

def posterior_figure(result, out) -> pathlib.Path:
    """Marginal posterior of each parameter over the generations (prior range on the axis),
    with the known value when the data are synthetic, and pairwise scatter of the last."""
    plt = _pyplot()
    names = result.parameter_names
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(max(5.0, 3.2 * k + 0.5), max(3.6, 3.0 * k)), squeeze=False)
    generations = result.generations
    colours = plt.cm.viridis(np.linspace(0.15, 0.9, len(generations)))
    last = generations[-1]
    for i, name in enumerate(names):
        low, high = result.prior_support[name]
        log = result.log_scale[name]
        for j in range(k):
            ax = axes[i][j]
            if i == j:
                bins = (np.geomspace(low, high, 30) if log else np.linspace(low, high, 30))
                for g, colour in zip(generations, colours):
                    values, weights = result.population(g)
                    ax.hist(values[:, i], bins=bins, weights=weights, histtype="step", color=colour,
                            density=True, label=f"generation {g}" if g in (generations[0], last) else None)
                if name in result.truth:
                    ax.axvline(result.truth[name], color="red", lw=1.5, label="known value")
                lo, mid, hi = result.interval(name)
                ax.axvspan(lo, hi, color="tab:orange", alpha=0.2, label="95% credible interval")
                ax.set_xlabel(name, fontsize=8)
                if log:
                    ax.set_xscale("log")
                ax.set_xlim(low, high)
                ax.set_yticks([])
                if i == 0:
                    ax.legend(fontsize=6)
            elif j < i:
                values, weights = result.population(last)
                ax.scatter(values[:, j], values[:, i], s=8 + 200 * weights, alpha=0.5)
                if names[j] in result.truth and name in result.truth:
                    ax.plot(result.truth[names[j]], result.truth[name], "r*", ms=12)
                ax.set_xlabel(names[j], fontsize=8)
                ax.set_ylabel(name, fontsize=8)
                if result.log_scale[names[j]]:
                    ax.set_xscale("log")
                if log:
                    ax.set_yscale("log")
            else:
                ax.axis("off")
    fig.suptitle(f"{result.name}: posterior (ABC-SMC, {len(generations)} generations)", fontsize=11)
    fig.tight_layout()
    out = pathlib.Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def predictive_figure(result, out) -> pathlib.Path:
    """Posterior predictive: median and 5-95% band of simulations from posterior draws,
    against the data with their error bars, one panel per read-out."""
    plt = _pyplot()
    data = result.data
    readouts = list(dict.fromkeys(row.readout for row in data))
    fig, axes = plt.subplots(1, len(readouts), figsize=(5.0 * len(readouts), 4.0), squeeze=False)
    predictive = result.predictive  # draws x data rows
    for ax, readout in zip(axes[0], readouts):
        rows = [i for i, row in enumerate(data) if row.readout == readout]
        conditions = list(dict.fromkeys(data[i].condition for i in rows))
        for c, condition in enumerate(conditions):
            mine = [i for i in rows if data[i].condition == condition]
            x = np.array([data[i].x for i in mine])
            order = np.argsort(x)
            mine = [mine[o] for o in order]
            x = x[order]
            colour = plt.cm.tab10(c % 10)
            obs = np.array([data[i].value for i in mine])
            err = np.array([data[i].sd for i in mine])
            label = condition or "data"
            if predictive is not None and predictive.size:
                q = np.nanpercentile(predictive[:, mine], [5, 50, 95], axis=0)
                if len(x) > 1:
                    ax.fill_between(x, q[0], q[2], color=colour, alpha=0.2)
                    ax.plot(x, q[1], "-", color=colour, lw=1)
                else:
                    ax.errorbar(x + 0.0, q[1], yerr=[q[1] - q[0], q[2] - q[1]], fmt="s", color=colour,
                                alpha=0.5, capsize=4)
            ax.errorbar(x, obs, yerr=err, fmt="o", color=colour, capsize=3, label=label)
        ax.set_title(readout, fontsize=10)
        ax.set_xlabel(result.x_label(readout))
        if result.x_log(readout):
            ax.set_xscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(f"{result.name}: posterior predictive (line: median, band: 5-95% of "
                 f"{0 if predictive is None else len(predictive)} draws)\nand the data (+- sd)", fontsize=9)
    fig.tight_layout()
    out = pathlib.Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def distance_figure(result, out) -> pathlib.Path:
    """Acceptance threshold epsilon and the accepted distances per generation, and the
    acceptance rate."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    g = np.array(result.generations)
    a.plot(g, result.epsilons, "o-", label="epsilon (threshold)")
    for t in result.generations:
        d = result.distances(t)
        a.plot(np.full(d.size, t) + np.linspace(-0.15, 0.15, d.size), d, ".", color="grey", alpha=0.4, ms=3)
    a.plot([], [], ".", color="grey", label="accepted distances")
    a.set_yscale("log")
    a.set_xlabel("generation")
    a.set_ylabel("distance (sqrt of sum of squared z-scores)")
    a.legend(fontsize=7)
    b.plot(g, result.acceptance, "o-")
    b.set_xlabel("generation")
    b.set_ylabel("acceptance rate (accepted / evaluated)")
    b.set_ylim(0, 1.05)
    for ax in (a, b):
        ax.set_xticks(g)
    fig.suptitle(f"{result.name}: distance history", fontsize=10)
    fig.tight_layout()
    out = pathlib.Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
