"""`blinasim plot`: the standard multi-panel figure of one or more run files.

    blinasim plot RUN.h5 [MORE.h5 ...] [-o FILE.png|.pdf|.svg] [--vars pk,blood,...]

Several run files overlay, one colour per run. Works headless (Agg); no pyplot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from blinasim.cohort.cohortfile import is_cohort_file
from blinasim.pk import InfusionPeriod, infusion_periods
from blinasim.runfile import read_attrs
from blinasim.scenario import ScenarioError, load_scenario_text
from blinasim.viz import Parser, VizError, run_command
from blinasim.viz.cohort_figure import plot_cohort
from blinasim.viz.panels import FIGURE_PANELS, PANELS, Panel, log_values, time_axis, variable_panel

FORMATS = (".png", ".pdf", ".svg")
LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)))


@dataclass(frozen=True)
class Run:
    """What a figure needs of a run file."""
    path: Path
    label: str
    data: dict[str, np.ndarray]          # time_h, the variables and kills_<kind> (cumulative)
    meta: dict[str, tuple[str, str]]     # variable -> (units, long name)
    periods: tuple[InfusionPeriod, ...]  # infusions given (none for a fixed drug level)

    def series_names(self) -> set[str]:
        """Variables with at least one finite value."""
        return {k for k, v in self.data.items() if np.isfinite(v).any()}


def load_run(path: str | Path, label: str | None = None) -> Run:
    """Read a run file's time series, kills per target kind and infusions.

    The infusions are those recorded (``infusion_ug_per_day``, which shows interruptions)
    when the run has them, else those of its scenario's schedule. A file that is missing,
    not HDF5, truncated or damaged, or not laid out as a run file is refused with VizError.
    """
    path = Path(path)
    if not _is_file(path) or not h5py.is_hdf5(path):
        raise VizError(f"{path}: no such HDF5 run file")
    try:
        with h5py.File(path, "r") as f:
            group = f.get("timeseries")
            if not isinstance(group, h5py.Group) or not isinstance(group.get("time_h"), h5py.Dataset):
                raise VizError(f"{path}: not a blinasim run file (no timeseries/time_h dataset)")
            rows = group["time_h"].shape
            data, meta = {}, {}
            for name, ds in group.items():
                if not isinstance(ds, h5py.Dataset) or ds.shape != rows or len(rows) != 1 \
                        or ds.dtype.kind not in "iuf":
                    raise VizError(f"{path}: timeseries/{name} is not a number per time_h row")
                data[name] = np.asarray(ds[...], dtype=float)
                meta[name] = (str(ds.attrs.get("units", "")), str(ds.attrs.get("long_name", "")))
            data.update(_kills_by_kind(f, data["time_h"]))
        rate = data.get("infusion_ug_per_day")
        periods = _schedule(path) if rate is None else recorded_infusions(data["time_h"], rate)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        lines = str(exc).splitlines()
        raise VizError(f"{path}: not a readable run file ({lines[0] if lines else type(exc).__name__})") from None
    return Run(path, label or path.stem, data, meta, periods)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL
        return False


def _kills_by_kind(f: h5py.File, time_h: np.ndarray) -> dict[str, np.ndarray]:
    """Cumulative kills of each target kind at the recorded times, from events/kills."""
    if "events/kills/target_kind" not in f:
        return {}
    kind = f["events/kills/target_kind"]
    names = str(kind.attrs.get("flag_meanings", "")).split()
    codes, times = kind[...], f["events/kills/time_h"][...]
    return {f"kills_{name}": np.searchsorted(np.sort(times[codes == code]), time_h, side="right").astype(float)
            for code, name in enumerate(names)}


def recorded_infusions(time_h: np.ndarray, ug_per_day: np.ndarray) -> tuple[InfusionPeriod, ...]:
    """Infusion periods from a recorded rate: the stretches of one rate above zero."""
    change = np.flatnonzero(np.diff(ug_per_day)) + 1
    starts, ends = np.concatenate(([0], change)), np.concatenate((change, [len(time_h) - 1]))
    return tuple(InfusionPeriod(float(time_h[a]) * 60.0, float(time_h[b]) * 60.0, float(ug_per_day[a]) / 24.0)
                 for a, b in zip(starts, ends) if ug_per_day[a] > 0)


def _schedule(path: Path) -> tuple[InfusionPeriod, ...]:
    """Infusion periods of the run's embedded scenario (none if it has none or no longer loads)."""
    text = read_attrs(path).get("scenario_resolved")
    if not isinstance(text, str):
        return ()
    try:
        scenario = load_scenario_text(text, filename=f"{path}:scenario_resolved").scenario
    except ScenarioError:
        return ()
    return infusion_periods(scenario.schedule) if scenario.pk.model == "infusion" else ()


def resolve_panels(names: list[str], runs: list[Run]) -> list[Panel]:
    """Named panels, or one panel per timeseries variable name."""
    panels = []
    for name in names:
        if name in PANELS:
            panels.append(PANELS[name])
            continue
        owner = next((run for run in runs if name in run.data), None)
        if owner is None:
            variables = sorted(set().union(*(run.data for run in runs)) - {"time_h"})
            raise VizError(f"--vars: {name!r} is neither a panel ({', '.join(PANELS)}) "
                           f"nor a variable of the run ({', '.join(variables)})")
        panels.append(variable_panel(name, *owner.meta.get(name, ("", ""))))
    return panels


def plot_runs(runs: list[Run], panels: list[Panel], title: str | None = None) -> Figure:
    """The figure: two columns of panels sharing the time axis."""
    hours, xlabel = time_axis(max(float(np.nanmax(run.data["time_h"], initial=0.0)) for run in runs))
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(5.6 * ncols, 2.5 * nrows + 0.7), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(panels):
            ax.set_visible(False)
            continue
        draw_panel(ax, panels[index], runs, hours)
        if index + ncols >= len(panels):  # lowest panel of its column
            ax.tick_params(labelbottom=True)
            ax.set_xlabel(xlabel)
    if len(runs) > 1:
        fig.legend(handles=[Line2D([], [], color=f"C{i}", label=run.label) for i, run in enumerate(runs)],
                   loc="outside upper center", ncols=min(len(runs), 4), frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def draw_panel(ax: Axes, panel: Panel, runs: list[Run], hours: float) -> None:
    """One panel: each run's series, the schedule, thresholds, a legend of the series."""
    ax.set_title(panel.title, loc="left", fontsize=10)
    overlay = len(runs) > 1
    shown: dict[str, Line2D] = {}
    for i, run in enumerate(runs):
        t = run.data["time_h"] / hours
        if panel.schedule:
            shade_schedule(ax, run.periods, hours, t[-1] if len(t) else 0.0, f"C{i}" if overlay else "C1", i)
        for j, series in enumerate(panel.available(run.series_names())):
            if overlay:  # colour: the run; line style: the series
                style = {"color": f"C{i}", "linestyle": LINE_STYLES[j % len(LINE_STYLES)]}
                key = {**style, "color": "0.25"}
            else:
                style = key = {"color": series.color}
            ax.plot(t, log_values(panel, series.values(run.data)), lw=1.4,
                    drawstyle="steps-post" if series.steps else "default", **style)
            shown.setdefault(series.label, Line2D([], [], label=series.label, **key))
    if not shown:
        ax.text(0.5, 0.5, "not in this run" if len(runs) == 1 else "not in these runs",
                transform=ax.transAxes, ha="center", va="center", color="0.5")
        ax.set_yticks([])
        return
    ax.set_ylabel(panel.ylabel, fontsize=9)
    if panel.log:
        ax.set_yscale("log")
        ax.set_ylim(panel.floor, max(ax.get_ylim()[1], 10 * panel.floor))
    else:  # a count, a level or a share from zero; a temperature from its floor
        ax.set_ylim(bottom=panel.floor)
    on_right = blended_transform_factory(ax.transAxes, ax.transData)
    for value, label in panel.thresholds:
        ax.axhline(value, color="0.4", ls=":", lw=1)
        ax.text(0.995, value, label, transform=on_right, ha="right", va="bottom", fontsize=8, color="0.3")
    if len(shown) > 1:
        ax.legend(handles=list(shown.values()), fontsize=8, loc="best", framealpha=0.8)


def shade_schedule(ax: Axes, periods: tuple[InfusionPeriod, ...], hours: float, end: float,
                   color: str, row: int = 0) -> None:
    """Shade each infusion period up to `end` (axis units), darker for higher doses, and
    write its dose at the top where it changes; a label closer than a tenth of the axis to
    the one before goes a line lower."""
    at_top = blended_transform_factory(ax.transData, ax.transAxes)
    top_rate = max((p.ug_per_h for p in periods), default=1.0) or 1.0
    last_rate, last_label_x, line = None, -end, 0
    for p in periods:
        start, stop = p.start_min / 60.0 / hours, min(p.end_min / 60.0 / hours, end)
        if start >= end:
            continue
        ax.axvspan(start, stop, color=color, alpha=0.06 + 0.14 * p.ug_per_h / top_rate, lw=0)
        if p.ug_per_h == last_rate:
            continue
        line = line + 1 if start - last_label_x < 0.1 * end else 0
        last_rate, last_label_x = p.ug_per_h, start
        ax.annotate(f"{p.ug_per_h * 24:g} ug/day", (start, 0.97 - 0.1 * (row + line)), xycoords=at_top,
                    xytext=(3, 0), textcoords="offset points", ha="left", va="top", fontsize=8, color=color)


def build_parser() -> Parser:
    p = Parser(prog="blinasim plot", description="Standard multi-panel figure of one or more run files, or of one cohort file.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN.h5", help="run files (several overlay), or one cohort file")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="figure file, .png, .pdf or .svg (default: the first run file with .png)")
    p.add_argument("--vars", action="append", default=[], metavar="NAMES",
                   help=f"comma-separated panels or timeseries variables (panels: {', '.join(PANELS)}; "
                        f"default: {','.join(FIGURE_PANELS)})")
    p.add_argument("--title", default=None, help="figure title")
    p.add_argument("--dpi", type=int, default=120, help="resolution of a PNG (default 120)")
    return p


MAX_DPI = 1200


def _plot(args) -> int:
    for path in args.runs:  # every input is checked before the output name is worked out
        if not _is_file(path):
            raise VizError(f"{path}: no such HDF5 run file")
    out = args.out or args.runs[0].with_suffix(".png")
    if out.suffix.lower() not in FORMATS:
        raise VizError(f"{out}: unknown figure format; use {', '.join(FORMATS)}")
    if not _is_dir(out.parent):
        raise VizError(f"{out}: directory {out.parent} does not exist")
    if _is_dir(out):
        raise VizError(f"{out} is a directory, not a figure file name")
    if not 1 <= args.dpi <= MAX_DPI:
        raise VizError(f"--dpi: expected 1 to {MAX_DPI}, got {args.dpi}")
    cohorts = [path for path in args.runs if is_cohort_file(path)]
    if cohorts:
        if len(args.runs) > 1:
            raise VizError(f"{cohorts[0]} is a cohort file; plot it on its own")
        try:
            fig = plot_cohort(cohorts[0], title=args.title)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise VizError(f"{cohorts[0]}: not a readable cohort file ({_first_line(exc)})") from None
    else:
        runs = [load_run(path) for path in args.runs]
        names = [n.strip() for group in args.vars for n in group.split(",") if n.strip()] or list(FIGURE_PANELS)
        fig = plot_runs(runs, resolve_panels(names, runs), title=args.title)
    try:
        fig.savefig(out, dpi=args.dpi)
    except OSError as exc:
        raise VizError(f"{out}: cannot write the figure ({exc.strerror or _first_line(exc)})") from None
    except (ValueError, RuntimeError) as exc:  # e.g. a title that is not valid mathtext
        raise VizError(f"{out}: cannot draw the figure ({_first_line(exc)})") from None
    print(f"wrote {out}")
    return 0


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """`blinasim plot RUN.h5 ...`; returns the exit code."""
    return run_command(build_parser(), _plot, argv)


if __name__ == "__main__":
    raise SystemExit(main())
