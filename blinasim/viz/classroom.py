"""The classroom page: a Solara app on Mesa's model controller (run it with `blinasim serve`).

Sliders set the dose, the E:T ratio, the Treg fraction, the CD19-negative share of blasts
and the adhesion blockade, each with its value and unit written above it; Reset builds a
new model from them, Step and play run it. The page shows the spatial view of one
compartment and the time series as they grow. A slider whose scenario field the model does
not have yet is left out and named on the page.

Each browser tab gets its own model. It steps only while a browser shows the page: when
the tab loses its connection the model waits (and goes on if the tab reconnects), and when
the tab is closed the model stops for good.

The scenario comes from the environment (set by `blinasim serve`): BLINASIM_SCENARIO (a
bundled name or a path; default dish) and BLINASIM_SET (``--set`` overrides, one a line).
"""
from __future__ import annotations

import math
import os
import sys
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import solara
import solara.util
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from mesa.visualization.solara_viz import ModelController, ShowSteps
from mesa.visualization.utils import update_counter

from blinasim.model import BlinaModel
from blinasim.pk import PG_PER_ML_PER_UG_PER_L
from blinasim.scenario import load_scenario
from blinasim.schema import Scenario
from blinasim.viz.figures import Run, draw_panel
from blinasim.viz.live import default_compartment
from blinasim.viz.panels import LIVE_PANELS, PANELS, time_axis
from blinasim.viz.scene import DeathTracker, categories, classify, marker_area, synapse_segments

ADHESION_FIELDS = ("interventions.minocycline", "interventions.natalizumab", "interventions.pentosan_polysulfate")
"""Fractions of each adhesion pathway blocked (LFA-1/ICAM-1, VLA-4/VCAM-1, P-selectin)."""
RENDER_INTERVAL = 5
"""Model steps per picture at the start (the "Render interval" slider; it takes odd values)."""
PLAY_INTERVAL_MS = 20
"""Pause between pictures at the start (the "Play interval" slider)."""
VIEWER_POLL_S = 0.5
"""While no browser shows the page, how often its model looks whether one is back."""
TREG_FIELD = "regulation.treg_fraction_of_cd4"
CD19NEG_FIELD = "antigen.cd19_negative_fraction"


def schema_has(path: str) -> bool:
    """Whether the scenario schema has the (section.field) path."""
    cls = Scenario
    for part in path.split("."):
        hints = typing.get_type_hints(cls) if isinstance(cls, type) else {}
        if part not in hints:
            return False
        cls = hints[part]
    return True


def _get(s: Scenario, path: str) -> float:
    value = s
    for part in path.split("."):
        value = getattr(value, part)
    return float(value)


def view_compartment(s: Scenario) -> str:
    """The compartment the page shows: the marrow, else the first."""
    return "marrow" if "marrow" in s.compartments else next(iter(s.compartments))


def dose_of(s: Scenario) -> float:
    """The scenario's dose in ug/day: its largest infusion rate, or the rate whose steady
    state is its fixed drug level."""
    if s.pk.model == "fixed":
        return s.pk.fixed_pg_per_ml * s.pk.clearance_l_per_h * 24.0 / PG_PER_ML_PER_UG_PER_L
    return max((i.ug_per_day for c in s.schedule.cycles for i in c.infusions), default=0.0)


def et_ratio_of(s: Scenario) -> float:
    cells = s.compartments[view_compartment(s)].cells_per_ul
    return (cells.cd8 + cells.cd4) / cells.blast if cells.blast else 0.0


def overrides_for(s: Scenario, dose: float, et_ratio: float, treg_fraction: float,
                  cd19neg_share: float, adhesion_blockade: float) -> list[str]:
    """``--set`` overrides that give scenario `s` the slider values.

    Dose: a fixed drug level becomes the steady state of that infusion rate; a schedule
    keeps its shape, scaled so that its largest rate is the dose. E:T sets the T cells
    (CD8:CD4 as before) of the viewed compartment against its blasts.
    """
    out = []
    if s.pk.model == "fixed":
        out.append(f"pk.fixed_pg_per_ml={dose / 24.0 / s.pk.clearance_l_per_h * PG_PER_ML_PER_UG_PER_L!r}")
    elif dose_of(s) > 0:
        scale = dose / dose_of(s)
        out += [f"schedule.cycles.{c}.infusions.{i}.ug_per_day={inf.ug_per_day * scale!r}"
                for c, cycle in enumerate(s.schedule.cycles) for i, inf in enumerate(cycle.infusions)]
    name = view_compartment(s)
    cells = s.compartments[name].cells_per_ul
    if cells.blast and cells.cd8 + cells.cd4:
        t_cells = et_ratio * cells.blast
        share = cells.cd8 / (cells.cd8 + cells.cd4)
        out += [f"compartments.{name}.cells_per_ul.cd8={t_cells * share!r}",
                f"compartments.{name}.cells_per_ul.cd4={t_cells * (1 - share)!r}"]
    if schema_has(TREG_FIELD):
        out.append(f"{TREG_FIELD}={treg_fraction!r}")
    if schema_has(CD19NEG_FIELD):
        out.append(f"{CD19NEG_FIELD}={cd19neg_share!r}")
    out += [f"{path}={adhesion_blockade!r}" for path in ADHESION_FIELDS if schema_has(path)]
    return out


def current_kernel():
    """The solara kernel (one per browser tab) this code runs for, or None outside a page."""
    try:
        from solara.server import kernel_context
    except ImportError:
        return None
    return kernel_context.get_current_context() if kernel_context.has_current_context() else None


def page_shown(kernel) -> bool | None:
    """Whether a browser shows `kernel`'s page: True, False (not now, maybe again later), or
    None (never again: the tab was closed, or the server is shutting down)."""
    from solara.server.kernel_context import PageStatus
    if kernel.closed_event.is_set():
        return None
    with kernel.lock:
        return PageStatus.CONNECTED in kernel.page_status.values()


class ClassroomModel(BlinaModel):
    """A BlinaModel built from a scenario and the slider values, recording its time series.

    The page steps it in one thread and draws it in another: `lock` is held while it steps
    and while a picture reads it. Made on a page, it belongs to that page's kernel and steps
    only while a browser shows the page (`await_viewer`).
    """

    def __init__(self, scenario: str = "dish", overrides: tuple[str, ...] = (), dose_ug_per_day: float = 5.0,
                 et_ratio: float = 2.0, treg_fraction: float = 0.0, cd19neg_share: float = 0.0,
                 adhesion_blockade: float = 0.0, seed: int = 1):
        base = load_scenario(scenario, overrides).scenario
        sliders = overrides_for(base, dose_ug_per_day, et_ratio, treg_fraction, cd19neg_share, adhesion_blockade)
        super().__init__(load_scenario(scenario, [*overrides, *sliders]).scenario, seed=seed,
                         walk_everywhere=True)  # the page shows the cells
        self.lock = threading.Lock()
        self.kernel = current_kernel()
        self.comp = default_compartment(self)
        self.record_steps = max(1, round(self.scenario.output.record_every_min / self.dt_min))
        self.tracker = DeathTracker(self.pop, self.time_min)
        first = self.observables()
        self.history = {key: [value] for key, value in first.items()}
        self.history["time_h"] = [0.0]
        finite = {k for k, v in first.items() if math.isfinite(v)}
        self.panels = [PANELS[k] for k in LIVE_PANELS if PANELS[k].available(finite)]

    def await_viewer(self) -> bool:
        """Wait while no browser shows the page; False once none ever will again (always
        True off a page)."""
        if self.kernel is None:
            return True
        shown, waited, done = page_shown(self.kernel), False, self.steps - 1  # Mesa counted this step
        while shown is False:
            if not waited:
                _log(f"no browser shows the page: its model waits after step {done}")
                waited = True
            self.kernel.closed_event.wait(VIEWER_POLL_S)
            shown = page_shown(self.kernel)
        if shown is None:
            _log(f"the page was closed: its model stopped after step {done}")
        elif waited:
            _log(f"a browser shows the page again: its model goes on after step {done}")
        return bool(shown)

    def step(self) -> None:
        if not self.await_viewer():
            self.running = False
            raise solara.util.CancelledError()  # ends the page's play thread, quietly
        with self.lock:
            super().step()
            if self.steps % self.record_steps == 0 or self.finished:
                row = self.observables()
                row["time_h"] = self.time_min / 60.0
                for key, values in self.history.items():
                    values.append(row.get(key, math.nan))
            self.running = not self.finished


def _log(message: str) -> None:
    print(f"classroom: {message}", file=sys.stderr, flush=True)


def space_view(model: ClassroomModel):
    """The compartment's cells, synapses and the cells that died since the last picture."""
    c, geo = model.comp, model.geometry
    with model.lock:
        model.tracker.update(model.pop, model.time_min)
        cells = classify(model.pop, c)
        cells["dying"] = model.tracker.recent(c, model.time_min, 30.0)
        segments = synapse_segments(model.pop, c, geo.width_um[c], geo.height_um[c])
        title = f"{geo.names[c]}, day {model.time_min / 1440.0:.2f}: drug {model.conc_pg_per_ml:.0f} pg/mL"
    fig = Figure(figsize=(5.2, 5.6), layout="constrained")
    ax = fig.add_subplot()
    size = marker_area(max(geo.width_um[c], geo.height_um[c]), 4.8)
    for category in categories():
        xy = cells[category.key]
        ax.scatter(xy[:, 0], xy[:, 1], s=size * category.size, c=category.color, marker=category.marker,
                   label=category.label, zorder=category.zorder, linewidths=category.linewidth)
    ax.add_collection(LineCollection(segments, colors="#ff7f0e", linewidths=1.2, zorder=3.5))
    ax.set(xlim=(0, geo.width_um[c]), ylim=(0, geo.height_um[c]), xticks=[], yticks=[], aspect="equal")
    ax.set_title(title, fontsize=10)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False, markerscale=1.5)
    return solara.FigureMatplotlib(fig, format="png")


def series_view(model: ClassroomModel):
    """The time series recorded so far, one panel per read-out the model has, and notes."""
    with model.lock:
        data = {key: np.array(values, dtype=float) for key, values in model.history.items()}
        now_h = model.time_min / 60.0
    periods = model.pk.periods if model.pk.model == "infusion" else ()
    run = Run(Path(model.scenario.name), model.scenario.name, data, {}, periods)
    hours, xlabel = time_axis(model.total_steps * model.dt_min / 60.0)
    fig = Figure(figsize=(5.6, 1.5 * len(model.panels) + 0.5), layout="constrained")
    axes = fig.subplots(len(model.panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, model.panels):
        draw_panel(ax, panel, [run], hours)
    axes[-1].set_xlabel(xlabel)
    axes[-1].set_xlim(0.0, max(6.0, now_h) / hours)
    first, *rest = notes(model)
    name, description = first.split(": ", 1)
    paragraphs = [solara.v.Html(tag="p", children=[solara.v.Html(tag="b", children=[name]), f": {description}"]),
                  *(solara.v.Html(tag="p", children=[text]) for text in rest)]
    return solara.Column(children=[solara.FigureMatplotlib(fig, format="png"), *paragraphs])


def missing_sliders() -> list[str]:
    """Sliders left out because the scenario schema lacks their fields."""
    missing = [label for label, path in (("Treg fraction", TREG_FIELD), ("CD19-negative share", CD19NEG_FIELD))
               if not schema_has(path)]
    return missing + (["adhesion blockade"] if not any(map(schema_has, ADHESION_FIELDS)) else [])


@dataclass(frozen=True)
class Setting:
    """A slider of the page: its range and how its value reads, with its unit."""
    label: str
    value: float
    min: float
    max: float
    step: float
    text: Callable[[float], str]

    def readout(self, value: float) -> str:
        return f"{self.label}: {self.text(value)}"


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def settings_for(scenario: str, overrides: tuple[str, ...]) -> dict[str, Setting]:
    """The page's sliders (ClassroomModel's parameters), one per setting the schema has."""
    s = load_scenario(scenario, overrides).scenario
    where = view_compartment(s)

    def dose_text(dose: float) -> str:
        if s.pk.model == "fixed":
            level = float(overrides_for(s, dose, 0.0, 0.0, 0.0, 0.0)[0].split("=")[1])
            return f"{dose:.1f} ug/day (drug {level:.0f} pg/mL in the {where})"
        return f"{dose:.1f} ug/day (the largest infusion rate)"

    settings = {"dose_ug_per_day": Setting("Dose", round(dose_of(s), 1), 0.0, 60.0, 0.1, dose_text),
                "et_ratio": Setting(f"E:T ratio in the {where}", round(et_ratio_of(s), 2), 0.0, 5.0, 0.01,
                                    lambda v: f"{v:.2f} T cells per blast")}
    if schema_has(TREG_FIELD):
        settings["treg_fraction"] = Setting("Tregs", _get(s, TREG_FIELD), 0.0, 0.5, 0.01,
                                            lambda v: f"{_percent(v)} of CD4 T cells")
    if schema_has(CD19NEG_FIELD):
        settings["cd19neg_share"] = Setting("CD19-negative blasts", _get(s, CD19NEG_FIELD), 0.0, 1.0, 0.05,
                                            lambda v: f"{_percent(v)} of blasts")
    present = [p for p in ADHESION_FIELDS if schema_has(p)]
    if present:
        settings["adhesion_blockade"] = Setting("Adhesion blockade", _get(s, present[0]), 0.0, 1.0, 0.1,
                                                lambda v: f"{_percent(v)} of each pathway blocked")
    return settings


def notes(model: ClassroomModel) -> list[str]:
    """What the page shows, and the sliders it cannot offer yet: paragraphs, the first
    'scenario name: description'."""
    missing = missing_sliders()
    text = [f"{model.scenario.name}: {model.scenario.description}"]
    if missing:
        text.append(f"Not in this model yet: {', '.join(missing)}.")
    return [*text, "Move a slider, then press Reset to start again with it."]


def scenario_from_env() -> tuple[str, tuple[str, ...]]:
    """The scenario and overrides `blinasim serve` passes in the environment."""
    return (os.environ.get("BLINASIM_SCENARIO", "dish"),
            tuple(line for line in os.environ.get("BLINASIM_SET", "").splitlines() if line.strip()))


@solara.component
def LabelledSlider(setting: Setting, value: float, on_value: Callable[[float], None], integer: bool = False):
    """A slider with its value and unit written above it."""
    with solara.Column(gap="0px", style={"margin-top": "10px"}):
        solara.Text(setting.readout(value), style={"font-size": "0.9em"})
        (solara.SliderInt if integer else solara.SliderFloat)(
            "", value=value, on_value=on_value, min=setting.min, max=setting.max, step=setting.step)


PICTURES_CSS = ".blinasim-pictures img { max-width: 100%; height: auto; }"
"""The pictures shrink to the width the page gives them (side by side where they fit)."""


@solara.component
def Pictures(model: ClassroomModel):
    """The spatial view and the time series, redrawn at every picture."""
    update_counter.get()
    solara.Style(PICTURES_CSS)
    with solara.Row(style={"flex-wrap": "wrap", "align-items": "flex-start"}, classes=["blinasim-pictures"]):
        with solara.Column(style={"flex": "1 1 380px", "min-width": "0"}):
            space_view(model)
        with solara.Column(style={"flex": "1.1 1 400px", "min-width": "0"}):
            series_view(model)


@solara.component
def Page():
    """The classroom page: controls and sliders in the sidebar, the pictures beside them.
    Each browser tab (solara kernel) gets its own model."""
    scenario, overrides = solara.use_memo(scenario_from_env, [])
    settings = solara.use_memo(lambda: settings_for(scenario, overrides), [])
    initial = solara.use_memo(lambda: {"scenario": scenario, "overrides": overrides,
                                       **{k: v.value for k, v in settings.items()}}, [])
    model = solara.use_reactive(solara.use_memo(lambda: ClassroomModel(**initial), []))
    parameters = solara.use_reactive(initial)
    play_interval = solara.use_reactive(PLAY_INTERVAL_MS)
    render_interval = solara.use_reactive(RENDER_INTERVAL)
    no_threads = solara.use_reactive(False)  # Mesa's extra drawing thread: not for this page
    dt_min = model.value.dt_min

    def setter(name):
        return lambda value: parameters.set({**parameters.value, name: value})

    with solara.AppBar():
        solara.AppBarTitle("blinasim classroom")
    with solara.Sidebar(), solara.Column():
        with solara.Card("Controls"):
            ModelController(model, model_parameters=parameters, play_interval=play_interval,
                            render_interval=render_interval, use_threads=no_threads)
            LabelledSlider(Setting("Render interval", RENDER_INTERVAL, 1, 99, 2,
                                   lambda v: f"{v:.0f} steps ({v * dt_min:g} simulated min) per picture"),
                           render_interval.value, render_interval.set, integer=True)
            LabelledSlider(Setting("Play interval", PLAY_INTERVAL_MS, 10, 500, 10,
                                   lambda v: f"{v:.0f} ms between pictures"),
                           play_interval.value, play_interval.set, integer=True)
        with solara.Card("Model parameters"):
            for name, setting in settings.items():
                LabelledSlider(setting, parameters.value[name], setter(name))
        with solara.Card("Information"):
            ShowSteps(model.value)
    Pictures(model.value)
