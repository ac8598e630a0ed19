"""The pictures, headless: the run figure (`blinasim plot`), the live view and its GIF
(`blinasim live --save`), and the spatial-view helpers on small hand-built populations."""
from __future__ import annotations

import shutil

import matplotlib

matplotlib.use("Agg")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from blinasim.model import BlinaModel  # noqa: E402
from blinasim.pk import InfusionPeriod  # noqa: E402
from blinasim.populations import KIND_CODE, Population  # noqa: E402
from blinasim.run import run_scenario  # noqa: E402
from blinasim.scenario import load_scenario  # noqa: E402
from blinasim.viz import figures, live  # noqa: E402
from blinasim.viz.panels import FIGURE_PANELS, PANELS, Panel, Series, log_values  # noqa: E402
from blinasim.viz.scene import DeathTracker, classify, synapse_segments  # noqa: E402

# a small, fast dish: 250 cells, kills within the first hour
SMALL_DISH = ["compartments.well.width_um=316", "compartments.well.height_um=316", "duration_h=2"]
# the standard cycle shrunk to a few hundred cells and two days
SMALL_CYCLE = ["compartments.blood.width_um=800", "compartments.blood.height_um=800",
               "compartments.marrow.width_um=300", "compartments.marrow.height_um=300", "duration_h=48"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    paths = {}
    low_dose = [*SMALL_CYCLE, "schedule.cycles.0.infusions.1.ug_per_day=9"]
    for name, scenario, overrides in (("dish", "dish", SMALL_DISH), ("cycle", "standard_cycle", SMALL_CYCLE),
                                      ("cycle9", "standard_cycle", low_dose)):
        paths[name] = out / f"{name}.h5"
        run_scenario(load_scenario(scenario, overrides), paths[name], quiet=True)
    return paths


# --------------------------------------------------------------------------- the figure

def test_plot_writes_png_pdf_svg(runs, tmp_path, capsys):
    for suffix in (".png", ".pdf", ".svg"):
        out = tmp_path / f"cycle{suffix}"
        assert figures.main([str(runs["cycle"]), "-o", str(out)]) == 0
        assert out.stat().st_size > 5000
    assert f"wrote {tmp_path / 'cycle.svg'}" in capsys.readouterr().out
    with Image.open(tmp_path / "cycle.png") as image:
        assert image.size[0] > 1000 and image.size[1] > 1000


def test_plot_default_name_is_next_to_the_run(runs):
    assert figures.main([str(runs["dish"])]) == 0
    assert runs["dish"].with_suffix(".png").is_file()


def test_dose_labels_only_where_the_dose_changes_and_never_on_top_of_each_other():
    day = 24 * 60.0
    periods = (InfusionPeriod(0, 7 * day, 9 / 24), InfusionPeriod(7 * day, 28 * day, 28 / 24),
               InfusionPeriod(42 * day, 70 * day, 28 / 24), InfusionPeriod(84 * day, 112 * day, 9 / 24))
    ax = Figure().add_subplot()
    figures.shade_schedule(ax, periods, 24.0, 390.0, "C1")
    labels = [(t.get_text(), t.xy) for t in ax.texts]
    assert [text for text, _ in labels] == ["9 ug/day", "28 ug/day", "9 ug/day"]
    (_, (x0, y0)), (_, (x1, y1)), (_, (x2, y2)) = labels
    assert (x0, x1, x2) == (0.0, 7.0, 84.0)
    assert y1 < y0 and y2 == y0    # day 7 is within a tenth of the axis of day 0: a line lower

def test_figure_panels_and_absent_variables(runs):
    run = figures.load_run(runs["cycle"])
    fig = figures.plot_runs([run], figures.resolve_panels(list(FIGURE_PANELS), [run]))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in axes] == [PANELS[k].title for k in FIGURE_PANELS]
    by_title = {ax.get_title(loc="left"): ax for ax in axes}
    # recorded: lines; not recorded (yet): the panel says so
    assert by_title["Blinatumomab in plasma"].lines
    assert by_title["Blood B and T cells"].get_yscale() == "log"
    assert len(by_title["Blood B and T cells"].lines) == 2
    for key in ("cytokines", "toxicity", "cd19neg"):
        ax = by_title[PANELS[key].title]
        if not PANELS[key].available(run.series_names()):
            assert [t.get_text() for t in ax.texts] == ["not in this run"]
    # the schedule is shaded with its doses written on it (two days: only the 9 ug/day step)
    assert [t.get_text() for t in by_title["Blinatumomab in plasma"].texts] == ["9 ug/day"]
    # CR and MRD thresholds on the marrow panel
    assert {t.get_text() for t in by_title["Marrow blasts"].texts} == {"CR < 5%", "flow MRD 1e-4", "NGS MRD 1e-6"}


def test_kills_by_kind_add_up_to_the_total(runs):
    run = figures.load_run(runs["cycle"])
    kinds = [k for k in run.data if k.startswith("kills_") and k != "kills_cumulative"]
    assert kinds
    total = sum(run.data[k] for k in kinds)
    np.testing.assert_array_equal(total, run.data["kills_cumulative"])
    assert run.data["kills_cumulative"][-1] > 0


def test_overlay_of_several_runs(runs, tmp_path):
    out = tmp_path / "overlay.png"
    assert figures.main([str(runs["cycle"]), str(runs["cycle9"]), "-o", str(out), "--vars", "pk,blood"]) == 0
    fig = figures.plot_runs([figures.load_run(runs["cycle"]), figures.load_run(runs["cycle9"])],
                            [PANELS["pk"], PANELS["blood"]])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["cycle", "cycle9"]
    pk = fig.axes[0]
    assert {line.get_color() for line in pk.lines} == {"C0", "C1"}


def test_vars_takes_panels_and_variables(runs, tmp_path):
    out = tmp_path / "two.png"
    assert figures.main([str(runs["dish"]), "-o", str(out), "--vars", "kills", "--vars", "count_well_cd8"]) == 0
    run = figures.load_run(runs["dish"])
    panels = figures.resolve_panels(["kills", "count_well_cd8"], [run])
    assert panels[1].ylabel == "live cd8 cells in well (cells)"


def test_recorded_infusions_show_interruptions():
    time_h = np.arange(8.0)
    periods = figures.recorded_infusions(time_h, np.array([9.0, 9.0, 0.0, 0.0, 28.0, 28.0, 9.0, 0.0]))
    assert [(p.start_min, p.end_min, p.ug_per_h * 24) for p in periods] == [
        (0.0, 120.0, 9.0), (240.0, 360.0, 28.0), (360.0, 420.0, 9.0)]
    assert figures.recorded_infusions(time_h[:1], np.zeros(1)) == ()


def test_time_axis_in_hours_for_short_runs(runs):
    run = figures.load_run(runs["dish"])
    fig = figures.plot_runs([run], [PANELS["blasts"]])
    assert fig.axes[0].get_xlabel() == "time (h)"
    assert figures.plot_runs([figures.load_run(runs["cycle"])], [PANELS["pk"]]).axes[0].get_xlabel() == "time (days)"


@pytest.mark.parametrize("argv, message", [
    (["missing.h5"], "missing.h5: no such HDF5 run file"),
    (["{dish}", "-o", "x.jpg"], "x.jpg: unknown figure format"),
    (["{dish}", "--vars", "nonsense"], "--vars: 'nonsense' is neither a panel"),
    (["{dish}", "-o", "/no/such/dir/x.png"], "directory /no/such/dir does not exist"),
])
def test_plot_refuses_bad_input_in_one_line(runs, capsys, argv, message):
    assert figures.main([a.format(dish=runs["dish"]) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("blinasim: error: ") and message in err and err.count("\n") == 1


def test_plot_refuses_a_file_without_timeseries(tmp_path, capsys):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1, 2]
    assert figures.main([str(path)]) == 2
    assert "not a blinasim run file" in capsys.readouterr().err


def test_panel_series_and_log_floor():
    panel = Panel("p", "P", "y", (Series("share", "a", per="b", scale=100.0),), log=True, floor=0.01)
    data = {"a": np.array([0.0, 1.0, np.nan]), "b": np.array([4.0, 4.0, 4.0])}
    assert panel.available({"a"}) == ()
    np.testing.assert_allclose(log_values(panel, panel.series[0].values(data)), [0.01, 25.0, np.nan])


# --------------------------------------------------------------------------- the live view

def small_model(overrides=SMALL_DISH, scenario="dish"):
    return BlinaModel(load_scenario(scenario, overrides).scenario)


def test_live_view_grows_with_the_run():
    model = small_model()
    view = live.LiveView(model, Figure(figsize=live.FIGSIZE), every=10)
    keys = [p.key for p in view.panels]
    assert keys[0] == "pk" and {"blasts", "tcells"} <= set(keys) and "blood" not in keys  # a dish has no blood
    shown = sum(len(s.get_offsets()) for key, s in view.scatters.items() if key != "dying")
    assert shown == model.pop.n
    for _ in range(6):
        view.advance()
    assert model.steps == 60 and len(view.times_h) == 7  # a row every 10 min
    lines = {series.var: line for line, _, series in view.lines}
    assert len(lines["blasts"].get_xdata()) == 7
    assert "day 0.04 (1.0 h)" in view.status.get_text()
    assert model.kills_total > 0
    assert len(view.tracker.dead_xy) > 0  # kills of the last frames are shown where they happened


def test_live_view_blitting_measures_frames_per_second():
    view = live.LiveView(small_model(), Figure(figsize=live.FIGSIZE))
    with_model, drawing = live.measure(view, 5)
    assert with_model > 0 and drawing > 0


def test_live_view_switches_compartment():
    model = small_model(SMALL_CYCLE, "standard_cycle")
    view = live.LiveView(model, Figure(figsize=live.FIGSIZE))
    names = model.geometry.names
    assert names[view.comp] == "marrow"
    view.switch_compartment()
    assert view.comp == (names.index("marrow") + 1) % len(names)
    assert view.space.get_title().startswith(f"{names[view.comp]}: ")
    assert [p.key for p in view.panels][:2] == ["pk", "blood"]


def test_live_saves_a_gif_headless(tmp_path, capsys):
    out = tmp_path / "dish.gif"
    assert live.main(["dish", *sum((["--set", o] for o in SMALL_DISH), []), "--save", str(out),
                      "--frames", "4", "--every", "5", "--dpi", "40"]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.size == (320, 180)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg here (apt-get install ffmpeg) for MP4 output")
def test_live_saves_an_mp4_with_ffmpeg(tmp_path):
    out = tmp_path / "dish.mp4"
    assert live.main(["dish", *sum((["--set", o] for o in SMALL_DISH), []), "--save", str(out),
                      "--frames", "3", "--dpi", "40"]) == 0
    assert out.stat().st_size > 1000


def test_live_measure_prints_frames_per_second(capsys):
    assert live.main(["dish", *sum((["--set", o] for o in SMALL_DISH), []), "--measure", "3"]) == 0
    assert "frames/s with the model" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["dish", "--save", "x.avi"], "can save .gif or .mp4"),
    (["dish", "--every", "0"], "--every: expected at least 1"),
    (["dish", "--compartment", "liver", "--measure", "1"], "no compartment 'liver'"),
    (["no_such_scenario", "--measure", "1"], "no bundled scenario"),
])
def test_live_refuses_bad_input_in_one_line(capsys, argv, message):
    assert live.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("blinasim: error: ") and message in err and err.count("\n") == 1


def test_live_mp4_needs_ffmpeg(monkeypatch, capsys):
    monkeypatch.setattr(live.shutil, "which", lambda name: None)
    assert live.main(["dish", "--save", "x.mp4"]) == 2
    assert "needs ffmpeg" in capsys.readouterr().err


def test_live_window_needs_a_display(monkeypatch, capsys):
    import matplotlib.pyplot as plt
    monkeypatch.setattr(plt, "get_backend", lambda: "agg")
    assert live.main(["dish"]) == 2
    assert "no window can open here" in capsys.readouterr().err


# --------------------------------------------------------------------------- scene helpers

def hand_population():
    """Two T cells (one in a synapse across the periodic edge), a blast, a CD19-negative blast."""
    pop = Population()
    pop.add(4, kind=np.array([KIND_CODE["cd8"], KIND_CODE["cd4"], KIND_CODE["blast"], KIND_CODE["blast"]]),
            x=np.array([1.0, 50.0, 99.0, 30.0]), y=np.array([5.0, 50.0, 5.0, 30.0]),
            cd19=np.array([0.0, 0.0, 20000.0, 0.0]))
    pop.partner[0], pop.partner[2] = 2, 0
    pop.activated_step[1] = 3
    return pop


def test_classify_by_category():
    cells = classify(hand_population(), 0)
    assert {k: len(v) for k, v in cells.items() if len(v)} == {"t_engaged": 1, "t_activated": 1,
                                                               "blast_pos": 1, "blast_neg": 1}
    np.testing.assert_array_equal(cells["blast_neg"], [[30.0, 30.0]])


def test_synapse_segments_take_the_nearest_image():
    segments = synapse_segments(hand_population(), 0, 100.0, 100.0)
    np.testing.assert_allclose(segments, [[[1.0, 5.0], [-1.0, 5.0]]])


def test_death_tracker_keeps_the_dead_for_a_while():
    pop = hand_population()
    tracker = DeathTracker(pop, 0.0)
    pop.alive[3] = 0            # dead, not compacted yet
    tracker.update(pop, 1.0)
    pop.compact()
    tracker.update(pop, 2.0)    # compaction is not a second death
    np.testing.assert_array_equal(tracker.recent(0, 2.0, 30.0), [[30.0, 30.0]])
    assert len(tracker.recent(0, 40.0, 30.0)) == 0
