"""`blinasim live`: watch a scenario run, in a window or rendered to a GIF/MP4.

    blinasim live SCENARIO [--set PATH=VALUE ...] [--every STEPS]
    blinasim live SCENARIO --save FILE.gif|FILE.mp4 [--frames N] [--every STEPS]
    blinasim live SCENARIO --measure N        # frames per second, off-screen

The spatial view of one compartment (cells by category, synapses as short lines, cells
that just died) sits beside time series that grow as the run goes. All artists are made
once and updated in place; in a window only they are redrawn over a cached background
(blitting), and the whole figure only when an axis range grows.
Keys: space pauses, + and - change the speed, c switches compartment, s saves a frame.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from blinasim.model import BlinaModel
from blinasim.scenario import load_scenario
from blinasim.viz import Parser, VizError, run_command
from blinasim.viz.figures import shade_schedule
from blinasim.viz.panels import LIVE_PANELS, PANELS, Panel, log_values, time_axis
from blinasim.viz.scene import DeathTracker, categories, classify, marker_area, synapse_segments

DEAD_SHOWN_MIN = 20.0
"""A dead cell stays on screen this long (simulated), or at least two frames."""
FIGSIZE = (8.0, 4.5)
"""Inches of a saved frame (16:9; 720 x 405 pixels at the default 90 dpi)."""
WINDOW_FIGSIZE = (12.0, 6.75)
"""Inches of the window (16:9, for a projector; it can be resized)."""
KEYS = "space: pause   + / -: speed   c: compartment   s: save frame   q: quit"


def default_compartment(model: BlinaModel) -> int:
    """The marrow if there is one, else the first compartment."""
    code = model.geometry.code("marrow")
    return 0 if code is None else code


class LiveView:
    """A figure that follows a running model; `advance` steps it and updates the artists."""

    def __init__(self, model: BlinaModel, fig: Figure, compartment: int | None = None, every: int = 1):
        self.model, self.fig, self.every = model, fig, max(1, int(every))
        self.paused = False
        self.comp = default_compartment(model) if compartment is None else compartment
        self.record_steps = max(1, round(model.scenario.output.record_every_min / model.dt_min))
        self.duration_h = model.total_steps * model.dt_min / 60.0
        self.hours, xlabel = time_axis(self.duration_h)
        self.tracker = DeathTracker(model.pop, model.time_min)
        first = model.observables()
        finite = {k for k, v in first.items() if math.isfinite(v)}
        self.panels = [PANELS[k] for k in LIVE_PANELS if PANELS[k].available(finite)]
        self.history: dict[str, list[float]] = {k: [v] for k, v in first.items()}
        self.times_h = [model.time_min / 60.0]
        side = 0.74 * fig.get_figheight() / fig.get_figwidth()  # a square spatial view
        self.space = fig.add_axes((0.02, 0.17, side, 0.74))
        grid = fig.add_gridspec(max(1, len(self.panels)), 1, left=side + 0.12, right=0.985,
                                top=0.92, bottom=0.1, hspace=0.3)
        self.scatters = {c.key: self.space.scatter(np.empty(0), np.empty(0), c=c.color, marker=c.marker,
                                                   label=c.label, zorder=c.zorder, linewidths=c.linewidth)
                         for c in categories()}
        self.synapses = LineCollection([], colors="#ff7f0e", linewidths=1.2, zorder=3.5)
        self.space.add_collection(self.synapses)
        self.space.legend(handles=list(self.scatters.values()), loc="upper center", bbox_to_anchor=(0.5, -0.01),
                          ncols=3, fontsize=7.5, frameon=False, markerscale=1.5,
                          handletextpad=0.1, columnspacing=0.8)
        self.status = fig.text(0.01, 0.985, "", va="top", fontsize=10)
        self.lines: list = []        # (Line2D, panel, series)
        self.panel_axes: list = []   # (Axes, panel, its lines)
        self.span = self.duration_h / self.hours
        self.xmax = min(self.span, 6.0 / self.hours)
        for i, panel in enumerate(self.panels):
            self._setup_panel(fig.add_subplot(grid[i, 0]), panel, xlabel if i == len(self.panels) - 1 else None)
        self._setup_space()
        self.update_artists()
        self.fit_limits()

    # ------------------------------------------------------------------ layout
    def _setup_panel(self, ax, panel: Panel, xlabel: str | None) -> None:
        ax.set_title(panel.title, loc="left", fontsize=8.5, pad=2)
        ax.tick_params(labelsize=7.5, labelbottom=xlabel is not None)
        if xlabel:
            ax.set_xlabel(xlabel, fontsize=8)
        if panel.log:
            ax.set_yscale("log")
        if panel.schedule and self.model.pk.model == "infusion":
            shade_schedule(ax, self.model.pk.periods, self.hours, self.duration_h / self.hours, "C1")
        ax.set_ylim(*((panel.floor, 10 * panel.floor) if panel.log else (panel.floor, panel.floor + 1.0)))
        ax.set_xlim(0.0, self.xmax)
        ax.set_ylabel(panel.ylabel, fontsize=7.5)
        lines = []
        for s in panel.available(self.history):
            (line,) = ax.plot([], [], color=s.color, lw=1.4, label=s.label,
                              drawstyle="steps-post" if s.steps else "default")
            lines.append(line)
            self.lines.append((line, panel, s))
        if len(lines) > 1:
            ax.legend(fontsize=7, loc="upper left", frameon=False, borderaxespad=0.2)
        self.panel_axes.append((ax, panel, lines))

    def _setup_space(self) -> None:
        geo, c = self.model.geometry, self.comp
        width, height = geo.width_um[c], geo.height_um[c]
        self.space.set_xlim(0, width)
        self.space.set_ylim(0, height)
        self.space.set_aspect("equal")
        self.space.set_xticks([])
        self.space.set_yticks([])
        self.space.set_title(f"{geo.names[c]}: {width:g} x {height:g} um", fontsize=8.5, pad=3)
        self.set_marker_sizes()

    def set_marker_sizes(self) -> None:
        """Cells drawn about their size at the current figure size."""
        geo, c = self.model.geometry, self.comp
        axes_inches = self.space.get_position().width * self.fig.get_figwidth()
        cell = marker_area(max(geo.width_um[c], geo.height_um[c]), axes_inches)
        for category in categories():
            self.scatters[category.key].set_sizes([cell * category.size])

    def artists(self) -> list:
        """The artists that change every frame."""
        return [*self.scatters.values(), self.synapses, *(line for line, _, _ in self.lines), self.status]

    # ------------------------------------------------------------------ stepping
    def advance(self) -> bool:
        """Step the model `every` steps and update the artists; True if an axis range grew."""
        model = self.model
        for _ in range(self.every):
            if model.finished:
                break
            model.step()
            if model.steps % self.record_steps == 0:
                self._record()
        self.tracker.update(model.pop, model.time_min)
        self.update_artists()
        return self.fit_limits()

    def _record(self) -> None:
        row = self.model.observables()
        self.times_h.append(self.model.time_min / 60.0)
        for key, values in self.history.items():
            values.append(row.get(key, math.nan))

    def update_artists(self) -> None:
        model, c = self.model, self.comp
        for key, xy in classify(model.pop, c).items():
            if key in self.scatters:
                self.scatters[key].set_offsets(xy)
        keep = max(DEAD_SHOWN_MIN, 2 * self.every * model.dt_min)
        self.scatters["dying"].set_offsets(self.tracker.recent(c, model.time_min, keep))
        self.synapses.set_segments(synapse_segments(model.pop, c, model.geometry.width_um[c],
                                                    model.geometry.height_um[c]))
        t = np.asarray(self.times_h) / self.hours
        for line, panel, series in self.lines:
            line.set_data(t, log_values(panel, series.values(self.history)))
        day = model.time_min / 1440.0
        self.status.set_text(f"{model.scenario.name}   day {day:.2f} ({model.time_min / 60.0:.1f} h)"
                             f"   drug {model.conc_pg_per_ml:.0f} pg/mL   {self.every * model.dt_min:g} min per frame"
                             + ("   [end of run]" if model.finished else "   [paused]" if self.paused else ""))

    def fit_limits(self) -> bool:
        """Grow the time range (doubling) and the y ranges to the data; True if any grew."""
        changed = False
        while self.times_h[-1] / self.hours > self.xmax and self.xmax < self.span:
            self.xmax, changed = min(self.span, 2 * self.xmax), True
        for ax, panel, lines in self.panel_axes:
            top = max(np.nanmax(line.get_ydata(), initial=0.0) for line in lines)
            if top > ax.get_ylim()[1]:
                changed = True
                ax.set_ylim(top=10 ** math.ceil(math.log10(top * 1.01)) if panel.log
                            else panel.floor + 1.5 * (top - panel.floor))
        if changed:
            for ax, _, _ in self.panel_axes:
                ax.set_xlim(0.0, self.xmax)
        return changed

    # ------------------------------------------------------------------ interaction
    def switch_compartment(self) -> None:
        self.comp = (self.comp + 1) % len(self.model.geometry.names)
        self._setup_space()
        self.update_artists()

    def save_frame(self) -> Path:
        model = self.model
        path = Path(f"{model.scenario.name}_{model.geometry.names[self.comp]}_day{model.time_min / 1440.0:.2f}.png")
        self.fig.savefig(path, dpi=100)
        return path


class Blitter:
    """Redraws only the changing artists over a cached background of the rest."""

    def __init__(self, canvas: FigureCanvasBase, artists: list):
        self.canvas, self.artists, self.background = canvas, artists, None
        for artist in artists:
            artist.set_animated(True)
        canvas.mpl_connect("draw_event", self._on_draw)

    def _on_draw(self, event) -> None:
        if event is not None and event.canvas is not self.canvas:
            return  # a savefig on another canvas
        self.background = self.canvas.copy_from_bbox(self.canvas.figure.bbox)
        for artist in self.artists:
            self.canvas.figure.draw_artist(artist)

    def update(self, full: bool = False) -> None:
        """Show the artists' new state; `full` redraws everything (after a layout change)."""
        if full or self.background is None:
            self.canvas.draw()  # its draw event caches the background and draws the artists
        else:
            self.canvas.restore_region(self.background)
            for artist in self.artists:
                self.canvas.figure.draw_artist(artist)
        self.canvas.blit(self.canvas.figure.bbox)
        self.canvas.flush_events()


# ---------------------------------------------------------------------- the three modes

def show(view: LiveView) -> None:
    """Run the view in a window until it is closed."""
    import matplotlib.pyplot as plt
    view.fig.text(0.99, 0.005, KEYS, ha="right", va="bottom", fontsize=7, color="0.35")
    blitter = Blitter(view.fig.canvas, view.artists())

    def on_key(event) -> None:
        if event.key == " ":
            view.paused = not view.paused
        elif event.key in ("+", "=", "up"):
            view.every = min(view.every * 2, 4096)
        elif event.key in ("-", "down"):
            view.every = max(view.every // 2, 1)
        elif event.key == "c":
            view.switch_compartment()
        elif event.key == "s":
            print(f"saved {view.save_frame()}")
        else:
            return  # matplotlib's own keys (q closes the window)
        view.update_artists()
        blitter.update(full=event.key in ("c", "s"))

    def tick() -> None:
        if view.paused or view.model.finished:
            return
        blitter.update(full=view.advance())

    view.fig.canvas.mpl_connect("key_press_event", on_key)
    view.fig.canvas.mpl_connect("resize_event", lambda _: view.set_marker_sizes())
    timer = view.fig.canvas.new_timer(interval=1)
    timer.add_callback(tick)
    timer.start()
    plt.show()


def save(view: LiveView, path: Path, frames: int, fps: int, dpi: int) -> int:
    """Render `frames` frames (fewer if the run ends) to a GIF or MP4; returns the count."""
    from matplotlib.animation import FFMpegWriter, PillowWriter
    writer = PillowWriter(fps=fps) if path.suffix.lower() == ".gif" else FFMpegWriter(fps=fps)
    count = 0
    with writer.saving(view.fig, str(path), dpi):
        while True:
            writer.grab_frame()
            count += 1
            if count >= frames or view.model.finished:
                return count
            view.advance()


def measure(view: LiveView, frames: int) -> tuple[float, float]:
    """Frames per second off-screen with blitting: (model and drawing, drawing alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    blitter = Blitter(FigureCanvasAgg(view.fig), view.artists())
    blitter.update(full=True)
    started = time.perf_counter()
    for _ in range(frames):
        blitter.update(full=view.advance())
    total = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(frames):
        view.update_artists()
        blitter.update()
    return frames / total, frames / (time.perf_counter() - started)


# ---------------------------------------------------------------------- command line

def build_parser() -> Parser:
    p = Parser(prog="blinasim live", description="Watch a scenario run: cells, synapses and time series.")
    p.add_argument("scenario", help="path of a YAML scenario, or the name of a bundled one")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a scenario field (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the scenario's)")
    p.add_argument("--compartment", default=None, help="compartment shown first (default: marrow, else the first)")
    p.add_argument("--every", type=int, default=1, metavar="STEPS", help="model steps per frame (default 1)")
    p.add_argument("--threads", type=int, default=1, help="threads of the compiled kernels")
    p.add_argument("--save", type=Path, default=None, metavar="FILE",
                   help="render off-screen to FILE.gif (or FILE.mp4 where ffmpeg is installed)")
    p.add_argument("--frames", type=int, default=100, help="frames to save (default 100)")
    p.add_argument("--fps", type=int, default=10, help="frames per second of the saved animation (default 10)")
    p.add_argument("--dpi", type=int, default=90, help="pixels per inch of the saved animation (default 90: 720 x 405)")
    p.add_argument("--measure", type=int, default=0, metavar="FRAMES",
                   help="render FRAMES frames off-screen with blitting and print the frames per second")
    return p


def _figure_for(args) -> Figure:
    if args.save or args.measure:
        return Figure(figsize=FIGSIZE)
    import matplotlib.pyplot as plt
    from matplotlib.backends import BackendFilter, backend_registry
    backend = plt.get_backend().lower()
    if backend not in backend_registry.list_builtin(BackendFilter.INTERACTIVE) and not backend.startswith("module://"):
        raise VizError(f"no window can open here (matplotlib backend {backend!r}, no display?); "
                       "use --save FILE.gif, or run on a desktop")
    for keymap in ("keymap.save", "keymap.back"):  # s and c are ours
        plt.rcParams[keymap] = [k for k in plt.rcParams[keymap] if k not in ("s", "c")]
    fig = plt.figure(figsize=WINDOW_FIGSIZE)
    fig.canvas.manager.set_window_title("blinasim live")
    return fig


def _check(args) -> None:
    for name in ("every", "frames", "fps", "dpi", "threads"):
        if getattr(args, name) < 1:
            raise VizError(f"--{name}: expected at least 1, got {getattr(args, name)}")
    if args.seed is not None and not 0 <= args.seed <= 2**63 - 1:
        raise VizError(f"--seed: {args.seed} is out of range; allowed 0 to 2**63-1")
    if args.measure < 0:
        raise VizError(f"--measure: expected a number of frames, got {args.measure}")
    if args.save is not None:
        suffix = args.save.suffix.lower()
        if suffix not in (".gif", ".mp4"):
            raise VizError(f"{args.save}: can save .gif or .mp4")
        if suffix == ".mp4" and shutil.which("ffmpeg") is None:
            raise VizError(f"{args.save}: an MP4 needs ffmpeg on the PATH (e.g. apt-get install ffmpeg); "
                           "a .gif does not")
        if not args.save.parent.is_dir():
            raise VizError(f"{args.save}: directory {args.save.parent} does not exist")


def _live(args) -> int:
    _check(args)
    scenario = load_scenario(args.scenario, args.overrides).scenario
    model = BlinaModel(scenario, seed=args.seed, threads=args.threads, walk_everywhere=True)  # cells are shown
    names = model.geometry.names
    if args.compartment is not None and args.compartment not in names:
        raise VizError(f"--compartment: no compartment {args.compartment!r}; this scenario has {', '.join(names)}")
    comp = None if args.compartment is None else names.index(args.compartment)
    view = LiveView(model, _figure_for(args), comp, args.every)
    if args.measure:
        shown, cells = int(np.count_nonzero((model.pop.comp == view.comp) & (model.pop.alive == 1))), model.pop.n
        with_model, drawing = measure(view, args.measure)
        print(f"{args.measure} frames from {shown} cells shown ({cells} in the model), {args.every} step(s) "
              f"per frame: {with_model:.1f} frames/s with the model, {drawing:.1f} frames/s drawing alone")
    elif args.save:
        count = save(view, args.save, args.frames, args.fps, args.dpi)
        print(f"wrote {args.save} ({count} frames, day {model.time_min / 1440.0:.2f})")
    else:
        show(view)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`blinasim live SCENARIO ...`; returns the exit code."""
    return run_command(build_parser(), _live, argv)


if __name__ == "__main__":
    raise SystemExit(main())
