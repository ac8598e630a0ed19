"""Performance benchmarks: the dish micro-benchmark, the plain-Mesa reference, standard_cycle.

    python -m blinasim.bench                 # full run (a few minutes on 2 cores)
    python -m blinasim.bench --quick --json  # small sizes, seconds (used by the tests)

What is measured (docs/performance.md has the latest table and how to read it):

- ``dish``: the engine's own in-vitro well (the bundled `dish` scenario and its processes)
  resized to N cells: one cell per 400 um2 (side = sqrt(400 N) um, 10 um thick slab), E:T
  1:2 (a third T cells, CD8:CD4 1:2 as in the dish; two thirds blasts), 100 pg/mL (the dish's
  own concentration, which keeps synapses forming for the whole run), `--steps` one-minute
  steps. Only `model.step()` is timed, not construction. agent-steps/s = cells x steps /
  wall seconds of stepping, cells being the cells at the start.
- ``mesa_reference``: the same well written as a Mesa user would
  (`blinasim.mesa_reference`), in this same process, timed the same way.
- ``standard_cycle``: the bundled scenario at its default size, end to end through
  `blinasim.run.run_scenario` (construction, stepping and writing the run file), timed per
  simulated day.
- Memory: ``bytes_per_cell`` is the tracemalloc peak (every Python object and numpy buffer
  allocated) over construction plus the first `--memory-steps` steps, divided by the cells
  at the start. It is measured in a separate, untimed pass, so tracing never slows the timed
  pass. ``state_bytes_per_cell`` is the population columns alone (`Population.nbytes()`).

`main()` is what `blinasim bench` runs; every record is also available as JSON.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from blinasim.arguments import positive_number, whole_number_at_least

UM2_PER_CELL = 400.0
"""Well-bottom area per cell (one cell per 400 um2 on average)."""
WELL_THICKNESS_UM = 10.0
T_FRACTION = 1.0 / 3.0
"""E:T 1:2: one T cell for two blasts."""
CD8_FRACTION_OF_T = 1.0 / 3.0
"""CD8:CD4 1:2, the split of the bundled dish (55,600 : 111,100 per uL)."""
DISH_PG_PER_ML = 100.0
"""The dish's own concentration: clear lysis, synapses forming all through the run."""

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_STEPS = 120
MESA_MAX_DEFAULT_CELLS = 100_000
"""Without --mesa-sizes, the Mesa reference runs at the sizes up to this one."""
REPEAT_UNTIL_S = 2.0
MAX_REPEATS = 7
"""Short dish runs are repeated until they add up to 2 s (at most 7 runs); median reported."""
DEFAULT_MEMORY_STEPS = 20
"""Steps of the memory pass: two population intervals, so two compactions."""

CYCLE_PROFILE_DAYS = 2.0
"""The standard_cycle profile covers its first two days (the drug starts, the marrow clears)."""

QUICK = {"sizes": (1_000, 3_000), "steps": 30, "memory_steps": 10, "cycle_days": 0.02, "repeat_until_s": 0.0}

# --------------------------------------------------------------------------- machine

def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import mesa

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mesa": mesa.__version__,
        "platform": platform.platform(),
        "git": _git_describe(),
        "load_avg": _load_avg(),
    }


def _git_describe() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# --------------------------------------------------------------------------- the dish

def dish_overrides(cells: int, steps: int, pg_per_ml: float = DISH_PG_PER_ML) -> list[str]:
    """`--set` overrides that resize the bundled dish to `cells` cells at E:T 1:2."""
    from blinasim.units import UM3_PER_UL

    side = math.sqrt(cells * UM2_PER_CELL)
    volume_ul = side * side * WELL_THICKNESS_UM / UM3_PER_UL
    t_cells = round(cells * T_FRACTION)
    cd8 = round(t_cells * CD8_FRACTION_OF_T)
    counts = {"cd8": cd8, "cd4": t_cells - cd8, "b": 0, "blast": cells - t_cells}
    well = "compartments.well"
    overrides = [f"{well}.width_um={side!r}", f"{well}.height_um={side!r}",
                 f"{well}.thickness_um={WELL_THICKNESS_UM!r}"]
    overrides += [f"{well}.cells_per_ul.{kind}={count / volume_ul!r}" for kind, count in counts.items()]
    overrides += [f"pk.fixed_pg_per_ml={pg_per_ml!r}", f"duration_h={steps / 60.0!r}",
                  "time_step_min=1.0"]
    return overrides


def dish_model(cells: int, steps: int, threads: int, seed: int, pg_per_ml: float = DISH_PG_PER_ML):
    from blinasim.model import BlinaModel
    from blinasim.scenario import load_scenario

    scenario = load_scenario("dish", dish_overrides(cells, steps, pg_per_ml)).scenario
    return BlinaModel(scenario, seed=seed, threads=threads)


def _synapse_process(model):
    for process in model.processes:
        if getattr(process, "name", "") == "synapse" and hasattr(process, "new_synapses"):
            return process
    return None


def time_engine(model, steps: int) -> dict[str, Any]:
    """Step `model` `steps` times; only the steps are timed."""
    synapse = _synapse_process(model)
    formed = 0
    cpu = time.process_time()
    started = time.perf_counter()
    for _ in range(steps):
        model.step()
        if synapse is not None:
            formed += synapse.new_synapses
    wall = time.perf_counter() - started
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu,
            "synapses_formed": formed if synapse is not None else None, "kills": int(model.kills_total)}


def peak_bytes(build: Callable[[], Any], steps: int, step: Callable[[Any], None]) -> int:
    """tracemalloc peak of building a model and stepping it (an untimed pass)."""
    gc.collect()
    tracemalloc.start()
    try:
        model = build()
        for _ in range(steps):
            step(model)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del model
    gc.collect()
    return peak


def bench_dish(cells: int, steps: int, threads_list: list[int], seed: int, memory_steps: int,
               pg_per_ml: float, log: Callable[[str], None],
               min_seconds: float = REPEAT_UNTIL_S) -> list[dict[str, Any]]:
    """The dish at one size, once per thread count; results compared with one thread.

    A run shorter than `min_seconds` is repeated (a new model each time, same result)
    until the runs add up to `min_seconds` or there are MAX_REPEATS of them; the record
    holds the median wall and CPU time (all walls in `wall_s_runs`).
    """
    records = []
    reference_state = None
    for threads in threads_list:
        load = _load_avg()
        runs = []
        while True:
            built = time.perf_counter()
            model = dish_model(cells, steps, threads, seed, pg_per_ml)
            build_s = time.perf_counter() - built
            n0 = int(model.pop.n)
            state_bytes = model.pop.nbytes()
            runs.append(time_engine(model, steps))
            if sum(r["wall_s"] for r in runs) >= min_seconds or len(runs) >= MAX_REPEATS:
                break
            del model
            gc.collect()
        timing = runs[0]
        wall = float(np.median([r["wall_s"] for r in runs]))
        cpu = float(np.median([r["cpu_s"] for r in runs]))
        record = _record("dish", n0, threads, steps, wall, load, cpu=cpu)
        record.update(synapses_formed=timing["synapses_formed"], kills=timing["kills"],
                      synapses_at_end=_synapses_now(model), state_bytes_per_cell=state_bytes / n0,
                      pg_per_ml=pg_per_ml, repeats=len(runs), wall_s_runs=[r["wall_s"] for r in runs],
                      build_s=build_s)
        state = _comparable_state(model)
        if threads == 1:
            reference_state = state
        elif reference_state is not None:
            record["identical_to_1_thread"] = _same_state(reference_state, state)
        del model, state
        gc.collect()
        records.append(record)
        log(_progress_line(record))
    one = next((r for r in records if r["threads"] == 1), None)
    for record in records:
        if one is not None and record is not one:
            record["speedup_vs_1_thread"] = record["agent_steps_per_s"] / one["agent_steps_per_s"]
    if memory_steps > 0:
        mem_steps = min(steps, memory_steps)
        peak = peak_bytes(lambda: dish_model(cells, steps, 1, seed, pg_per_ml), mem_steps,
                          lambda m: m.step())
        for record in records:
            record.update(bytes_per_cell=peak / record["cells"], memory_steps=mem_steps)
        log(f"  memory: tracemalloc peak {peak / 1e6:.1f} MB over construction + {mem_steps} steps"
            f" = {peak / records[0]['cells']:.0f} bytes/cell")
    return records


KERNEL_FUNCTIONS = {"_contacts": ("count_free", "build_grid", "form_synapses"),
                    "_motility": ("move",), "_lysis": ("deliver_hits",)}
"""Compiled kernels timed one by one in the profile pass (inside their processes)."""


def profile_dish(cells: int, steps: int, seed: int, pg_per_ml: float) -> dict[str, dict[str, float]]:
    """Wall and CPU milliseconds per step of every process, kernel and the compaction."""
    return profile_model(dish_model(cells, steps, 1, seed, pg_per_ml), steps)


def profile_model(model, steps: int) -> dict[str, dict[str, float]]:
    """Step `model` with a timer around every process, kernel and the compaction.

    An untimed pass of its own: each process's `step`, each compiled kernel function and
    `Population.compact` is wrapped with a timer for the pass, then restored.
    """
    import importlib

    totals: dict[str, list[float]] = {}

    def timed(name: str, func: Callable) -> Callable:
        slot = totals.setdefault(name, [0.0, 0.0])

        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return func(*args, **kwargs)
            finally:
                slot[0] += time.perf_counter() - wall
                slot[1] += time.process_time() - cpu
        return wrapper

    patched = []
    for module_name, functions in KERNEL_FUNCTIONS.items():
        try:
            module = importlib.import_module(f"blinasim.{module_name}")
        except ImportError:
            continue
        for function in functions:
            if hasattr(module, function):
                original = getattr(module, function)
                patched.append((module, function, original))
                setattr(module, function, timed(f"  kernel {module_name}.{function}", original))
    try:
        for process in model.processes:
            process.step = timed(f"process {process.name}", process.step)
        model.pop.compact = timed("compact (population)", model.pop.compact)
        step = timed("whole step", model.step)
        for _ in range(steps):
            step()
    finally:
        for module, function, original in patched:
            setattr(module, function, original)
    return {name: {"ms_per_step": wall / steps * 1e3, "cpu_ms_per_step": cpu / steps * 1e3}
            for name, (wall, cpu) in totals.items()}


KERNEL_PROCESS = {"_contacts": "synapse", "_motility": "motility", "_lysis": "lysis"}
"""The process that calls each kernel module (for the profile display)."""


def profile_text(profile: dict[str, dict[str, float]], title: str) -> str:
    """The profile as text: each process, then the kernels it calls, by CPU time."""
    whole = profile.get("whole step", {}).get("cpu_ms_per_step") or 1.0
    by_cpu = sorted(profile.items(), key=lambda kv: -kv[1]["cpu_ms_per_step"])
    ordered = [(name, v) for name, v in by_cpu if not name.startswith("  kernel")]
    kernels = [(name, v) for name, v in by_cpu if name.startswith("  kernel")]
    lines_in_order = []
    for name, v in ordered:
        lines_in_order.append((name, v))
        process = name.removeprefix("process ")
        lines_in_order += [(k, kv) for k, kv in kernels
                           if KERNEL_PROCESS.get(k.split()[1].split(".")[0]) == process]
    shown = {name for name, _ in lines_in_order}
    lines_in_order += [(k, kv) for k, kv in kernels if k not in shown]
    width = max(len(name) for name in profile)
    lines = [f"profile: {title}, 1 thread (ms per step; kernels are part of the process above them)",
             f"  {'':<{width}}  {'wall':>8}  {'cpu':>8}  {'cpu share':>9}"]
    for name, v in lines_in_order:
        lines.append(f"  {name:<{width}}  {v['ms_per_step']:8.2f}  {v['cpu_ms_per_step']:8.2f}"
                     f"  {v['cpu_ms_per_step'] / whole:9.0%}")
    return "\n".join(lines)


def _profile_title(r: dict[str, Any]) -> str:
    if r["name"] == "standard_cycle":
        return f"standard_cycle {r['cells']:,} cells at start, first {r.get('profile_steps', 0):,} steps"
    return f"{r['name']} {r['cells']:,} cells, {r['steps']:,} steps"


def _synapses_now(model) -> int:
    pop = model.pop
    return int(np.count_nonzero((pop.partner >= 0) & (pop.kind <= 1) & (pop.alive == 1)))


def _comparable_state(model) -> dict[str, Any]:
    state = model.state()
    return {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def _same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Bit-for-bit equal states (NaN equals NaN: an unset value is the same in both)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if not np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
            return False
    return True


# --------------------------------------------------------------------------- Mesa reference

def bench_mesa(cells: int, steps: int, seed: int, memory_steps: int,
               log: Callable[[str], None]) -> dict[str, Any]:
    from blinasim.mesa_reference import MesaDish

    load = _load_avg()
    built = time.perf_counter()
    model = MesaDish(cells, seed=seed)
    build_s = time.perf_counter() - built
    n0 = len(model.agents)
    blasts0 = model.blasts
    cpu = time.process_time()
    started = time.perf_counter()
    for _ in range(steps):
        model.step()
    wall = time.perf_counter() - started
    record = _record("mesa_reference", n0, 1, steps, wall, load, cpu=time.process_time() - cpu)
    record.update(synapses_formed=model.synapses_formed, kills=model.kills,
                  synapses_at_end=model.synapses, blasts_killed=blasts0 - model.blasts, build_s=build_s)
    del model
    gc.collect()
    if memory_steps > 0:
        mem_steps = min(steps, memory_steps)
        peak = peak_bytes(lambda: MesaDish(cells, seed=seed), mem_steps, lambda m: m.step())
        record.update(bytes_per_cell=peak / n0, memory_steps=mem_steps)
    log(_progress_line(record))
    return record


# --------------------------------------------------------------------------- standard_cycle

def bench_cycle(threads_list: list[int], seed: int, days: float | None, memory_steps: int,
                log: Callable[[str], None], profile_days: float = 0.0) -> list[dict[str, Any]]:
    """standard_cycle end to end (construction, stepping, run file), per thread count."""
    from blinasim.model import BlinaModel
    from blinasim.run import run_scenario
    from blinasim.scenario import load_scenario

    overrides = [] if days is None else [f"duration_h={days * 24.0!r}"]
    loaded = load_scenario("standard_cycle", overrides)
    scenario = loaded.scenario
    sim_days = scenario.duration_h / 24.0
    steps = int(round(scenario.duration_h * 60.0 / scenario.time_step_min))
    records = []
    with tempfile.TemporaryDirectory(prefix="blinasim-bench-") as tmp:
        for threads in threads_list:
            out = Path(tmp) / f"standard_cycle_t{threads}.h5"
            load = _load_avg()
            cpu = time.process_time()
            started = time.perf_counter()
            run_scenario(loaded, out, seed=seed, force=True, threads=threads, quiet=True)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu
            cells0, mean_cells = _cells_in_run(out)
            record = _record("standard_cycle", cells0, threads, steps, wall, load,
                             mean_cells=mean_cells, cpu=cpu)
            record.update(sim_days=sim_days, s_per_sim_day=wall / sim_days,
                          whole_cycle=days is None, mean_cells=mean_cells)
            records.append(record)
            log(_progress_line(record))
    if memory_steps > 0:
        mem_steps = min(steps, memory_steps)
        peak = peak_bytes(lambda: BlinaModel(scenario, seed=seed, threads=1), mem_steps,
                          lambda m: m.step())
        for record in records:
            record.update(bytes_per_cell=peak / record["cells"], memory_steps=mem_steps)
    if profile_days and records:
        profile_steps = min(steps, int(round(profile_days * 1440 / scenario.time_step_min)))
        log(f"  profiling standard_cycle over its first {profile_steps:,} steps (untimed pass)")
        records[0]["profile"] = profile_model(BlinaModel(scenario, seed=seed, threads=1), profile_steps)
        records[0]["profile_steps"] = profile_steps
        gc.collect()
    return records


def _cells_in_run(path: Path) -> tuple[int, float | None]:
    """Live cells at the first recorded row and their mean over the run (from the run file)."""
    import h5py

    with h5py.File(path, "r") as f:
        series = f["timeseries"]
        counts = [np.asarray(series[name][...], dtype=float) for name in series
                  if name.startswith("count_")]
    if not counts:
        return 0, None
    total = np.sum(counts, axis=0)
    return int(total[0]), float(total.mean())


# --------------------------------------------------------------------------- records

def _record(name: str, cells: int, threads: int, steps: int, wall: float, load: float | None,
            mean_cells: float | None = None, cpu: float | None = None) -> dict[str, Any]:
    per_step_cells = cells if mean_cells is None else mean_cells
    agent_steps = per_step_cells * steps
    return {
        "name": name,
        "cells": int(cells),
        "threads": int(threads),
        "steps": int(steps),
        "wall_s": wall,
        "s_per_step": wall / steps,
        "ms_per_step": wall / steps * 1e3,
        "agent_steps_per_s": agent_steps / wall,
        "ns_per_agent_step": wall / agent_steps * 1e9,
        "bytes_per_cell": None,
        "cpu_s": cpu,
        # contention-robust for one thread (CPU time excludes time the process was not
        # running); with several threads CPU time includes OpenMP spinning
        "agent_steps_per_cpu_s": agent_steps / cpu if cpu else None,
        "load_avg_1m": load,
    }


def add_comparisons(records: list[dict[str, Any]]) -> None:
    """Ratio of every dish record to the Mesa reference, and per-cell cost against the smallest dish."""
    mesa = {r["cells"]: r for r in records if r["name"] == "mesa_reference"}
    smallest: dict[int, dict[str, Any]] = {}
    for r in records:
        if r["name"] == "dish":
            best = smallest.get(r["threads"])
            if best is None or r["cells"] < best["cells"]:
                smallest[r["threads"]] = r
    for r in records:
        if r["name"] != "dish":
            continue
        if mesa:
            # the Mesa run of the same size, else the largest Mesa run below it (its rate
            # changes little with size), else the smallest
            below = [c for c in mesa if c <= r["cells"]]
            ref = mesa[max(below) if below else min(mesa)]
            r["vs_mesa"] = r["agent_steps_per_s"] / ref["agent_steps_per_s"]
            r["mesa_cells"] = ref["cells"]
        base = smallest[r["threads"]]
        r["scaling_vs_smallest"] = r["ns_per_agent_step"] / base["ns_per_agent_step"]


def _at(records, name: str, cells: float, threads: int):
    """The record of this name and thread count at this size (within 1%), or None."""
    for r in records:
        if r["name"] == name and r["threads"] == threads and abs(r["cells"] / cells - 1.0) <= 0.01:
            return r
    return None


CYCLES_PER_CORE_HOUR_AT_ISSUE = 3600.0 / 72.0
"""standard_cycle took 72 s of one core when the speed issue (#14) was filed: 50 per core-hour."""


def evaluate_targets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets against this run; `met` is None where the run lacks that size.

    Targets are judged on wall time, as the issue defines them. Where a one-thread run was
    contended, the figure from CPU time is added to the text (`cpu_note`) for comparison.
    """
    rows = []
    big = _at(records, "dish", 1e6, 1)
    rows.append(_target("dish 1e6 cells, 1 thread: agent-steps/s", ">= 5e7",
                        None if big is None else big["agent_steps_per_s"], lambda v: v >= 5e7,
                        lambda v: f"{v:.3g}", _cpu_note([big], lambda: f"{big['agent_steps_per_cpu_s']:.3g}")))
    mid = _at(records, "dish", 1e5, 1)
    mesa = _at(records, "mesa_reference", 1e5, 1)
    ratio = None if mid is None or mesa is None else mid["agent_steps_per_s"] / mesa["agent_steps_per_s"]
    def cpu_ratio() -> str:
        return f"{mid['agent_steps_per_cpu_s'] / mesa['agent_steps_per_cpu_s']:.0f}x"
    rows.append(_target("dish vs plain Mesa at 1e5 cells (agent-steps/s)", ">= 200x", ratio,
                        lambda v: v >= 200, lambda v: f"{v:.0f}x", _cpu_note([mid, mesa], cpu_ratio)))
    two = _at(records, "dish", 1e6, 2)
    same = None if two is None else two.get("identical_to_1_thread")
    rows.append(_target("dish 1e6 cells, 2 threads: agent-steps/s, identical results", ">= 1e8, identical",
                        None if two is None else two["agent_steps_per_s"], lambda v: v >= 1e8 and bool(same),
                        lambda v: f"{v:.3g}, {'identical' if same else 'DIFFERENT'}"))
    ends = [_at(records, "dish", 1e4, 1), _at(records, "dish", 1e6, 1)]
    spread = None
    linear = []
    if all(ends):
        linear = [r for r in records if r["name"] == "dish" and r["threads"] == 1
                  and ends[0]["cells"] <= r["cells"] <= ends[1]["cells"]]
        costs = [r["ns_per_agent_step"] for r in linear]
        spread = max(costs) / min(costs)

    def cpu_spread() -> str:
        rates = [r["agent_steps_per_cpu_s"] for r in linear]
        return f"{max(rates) / min(rates):.2f}x"
    rows.append(_target("time per step linear in cells, 1e4 to 1e6 (1 thread)", "within 1.5x", spread,
                        lambda v: v <= 1.5, lambda v: f"ns/agent-step spread {v:.2f}x",
                        _cpu_note(linear, cpu_spread)))
    memory = None if big is None else big.get("bytes_per_cell")
    rows.append(_target("memory at 1e6 cells", "<= 200 bytes/cell", memory, lambda v: v <= 200,
                        lambda v: f"{v:.0f} bytes/cell"))
    cycles = [r for r in records if r["name"] == "standard_cycle" and r["whole_cycle"]]
    best = min(cycles, key=lambda r: r["wall_s"]) if cycles else None
    others = ", ".join(f"{r['threads']} thread(s): {r['wall_s']:.1f} s" for r in cycles if r is not best)
    rows.append(_target("standard_cycle default, whole cycle on this machine, end to end", "< 5 s",
                        None if best is None else best["wall_s"], lambda v: v < 5,
                        lambda v: f"{v:.1f} s with {best['threads']} thread(s)" + (f" ({others})" if others else ""),
                        _cpu_note([best], lambda: f"{best['cpu_s']:.1f} CPU-s")))
    one = next((r for r in cycles if r["threads"] == 1 and r.get("cpu_s")), None)
    rows.append(_target("patient-cycles per core-hour (standard_cycle, 1 thread, CPU time)",
                        f">= {10 * CYCLES_PER_CORE_HOUR_AT_ISSUE:.0f}",
                        None if one is None else 3600.0 / one["cpu_s"],
                        lambda v: v >= 10 * CYCLES_PER_CORE_HOUR_AT_ISSUE,
                        lambda v: f"{v:.0f} ({v / CYCLES_PER_CORE_HOUR_AT_ISSUE:.1f}x the {CYCLES_PER_CORE_HOUR_AT_ISSUE:.0f} at the issue)"))
    return rows


def _cpu_note(runs: list, text: Callable[[], str]) -> str:
    """'' unless one of the runs was a contended one-thread run; then its CPU-time figure."""
    runs = [r for r in runs if r is not None]
    if not runs or not any(contended(r) for r in runs):
        return ""
    if any(r.get("cpu_s") in (None, 0) for r in runs):
        return ""
    return f"; contended, from CPU time: {text()}"


def _target(what: str, goal: str, value: float | None, test, show, cpu_note: str = "") -> dict[str, Any]:
    if value is None:
        return {"target": what, "goal": goal, "value": None, "met": None, "shown": "not measured in this run"}
    return {"target": what, "goal": goal, "value": value, "met": bool(test(value)),
            "shown": show(value) + cpu_note}


# --------------------------------------------------------------------------- output

COLUMNS = (("name", "name", "{}"), ("cells", "cells", "{:,}"), ("threads", "thr", "{}"),
           ("steps", "steps", "{:,}"), ("wall_s", "wall s", "{:.2f}"),
           ("ms_per_step", "ms/step", "{:.3g}"), ("agent_steps_per_s", "agent-steps/s", "{:.3g}"),
           ("ns_per_agent_step", "ns/agent-step", "{:.0f}"), ("bytes_per_cell", "bytes/cell", "{:.0f}"),
           ("vs_mesa", "x Mesa", "{:.0f}"), ("synapses_formed", "synapses", "{:,}"),
           ("kills", "kills", "{:,}"), ("notes", "notes", "{}"))


CONTENDED_CPU_SHARE = 0.9
"""A one-thread run that got less than this share of a core was sharing the machine."""


def contended(r: dict[str, Any]) -> bool:
    return (r["threads"] == 1 and r.get("cpu_s") is not None and r["wall_s"] > 0
            and r["cpu_s"] / r["wall_s"] < CONTENDED_CPU_SHARE)


def _notes(r: dict[str, Any]) -> str:
    notes = []
    if contended(r):
        notes.append(f"CONTENDED: {r['cpu_s'] / r['wall_s']:.0%} of a core, "
                     f"{r['agent_steps_per_cpu_s']:.3g} agent-steps per CPU-s")
    if "speedup_vs_1_thread" in r and r["threads"] != 1:
        same = r.get("identical_to_1_thread")
        notes.append(f"{r['speedup_vs_1_thread']:.2f}x 1 thread"
                     + ("" if same is None else (", identical" if same else ", DIFFERENT")))
    if r["name"] == "dish" and r.get("scaling_vs_smallest") is not None and r["cells"] and r["threads"] == 1:
        notes.append(f"cost/cell {r['scaling_vs_smallest']:.2f}x smallest")
    if r["name"] == "dish" and r.get("mesa_cells") not in (None, r["cells"]):
        notes.append(f"vs Mesa at {r['mesa_cells']:,}")
    if r["name"] == "standard_cycle":
        notes.append(f"{r['s_per_sim_day']:.2f} s/sim-day, {r['sim_days']:.3g} days")
    return "; ".join(notes)


def _cells_text(r: dict[str, Any], key: str, fmt: str) -> str:
    if key == "notes":
        return _notes(r)
    value = r.get(key)
    if value is None:
        return "-"
    if key == "ns_per_agent_step" and value < 10:
        return f"{value:.1f}"
    return fmt.format(value)


def table(records: list[dict[str, Any]]) -> str:
    """The records as one plain-text table."""
    rows = [[label for _k, label, _f in COLUMNS]]
    rows += [[_cells_text(r, key, fmt) for key, _l, fmt in COLUMNS] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    left = {0, len(COLUMNS) - 1}
    lines = ["  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(records: list[dict[str, Any]]) -> str:
    """The records as a Markdown table."""
    head = "| " + " | ".join(label for _k, label, _f in COLUMNS) + " |"
    rule = "|" + "|".join("---" if i in (0, len(COLUMNS) - 1) else "--:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(_cells_text(r, key, fmt) for key, _l, fmt in COLUMNS) + " |" for r in records]
    return "\n".join([head, rule, *body])


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def targets_text(rows: list[dict[str, Any]], md: bool = False) -> str:
    if md:
        lines = ["| target | goal | measured | |", "|---|---|---|---|"]
        lines += [f"| {r['target']} | {r['goal']} | {r['shown']} | {_verdict(r['met'])} |" for r in rows]
        return "\n".join(lines)
    width = max((len(r["target"]) for r in rows), default=0)
    return "\n".join(f"  {_verdict(r['met']):<7}  {r['target'].ljust(width)}  {r['goal']:<20} {r['shown']}"
                     for r in rows)


def machine_text(m: dict[str, Any]) -> str:
    return (f"{m['date']}  {m['cores']} cores, {m['cpu']}; Python {m['python']}, numpy {m['numpy']}, "
            f"mesa {m['mesa']}; git {m['git'] or '?'}; load average {m['load_avg']}")


def _progress_line(r: dict[str, Any]) -> str:
    extra = ""
    if r.get("synapses_formed") is not None:
        extra = f", {r['synapses_formed']:,} synapses, {r['kills']:,} kills"
    median = f" (median of {r['repeats']})" if r.get("repeats", 1) > 1 else ""
    return (f"  {r['name']} {r['cells']:,} cells, {r['threads']} thread(s): {r['wall_s']:.2f} s{median} for "
            f"{r['steps']:,} steps, {r['agent_steps_per_s']:.3g} agent-steps/s{extra}")


# --------------------------------------------------------------------------- command line

def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(round(float(part))) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1e4,1e5,1e6, got {text!r}") from None
    if not sizes or any(s < 100 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected sizes of at least 100 cells, got {text!r}")
    return sizes


def _threads(text: str) -> list[int]:
    try:
        threads = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2, got {text!r}") from None
    if not threads or any(t < 1 for t in threads):
        raise argparse.ArgumentTypeError(f"expected thread counts of at least 1, got {text!r}")
    return sorted(set(threads))


_count = whole_number_at_least(0)
_positive = whole_number_at_least(1)
_days = positive_number("days")


def parser(prog: str = "blinasim bench") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Benchmark the engine: the dish at several sizes, the plain-Mesa "
        "reference of the same well, and standard_cycle end to end (docs/performance.md).")
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of the table")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs/performance.md)")
    p.add_argument("--out", type=Path, help="also write the records as JSON to this file")
    p.add_argument("--sizes", type=_sizes, help="dish sizes in cells (default 1e4,1e5,1e6)")
    p.add_argument("--threads", type=_threads, default=[1, 2], help="thread counts (default 1,2)")
    p.add_argument("--steps", type=_positive, help=f"one-minute dish steps (default {DEFAULT_STEPS})")
    p.add_argument("--mesa-sizes", type=_sizes,
                   help="sizes of the plain-Mesa reference (default: the dish sizes up to 1e5)")
    p.add_argument("--mesa-steps", type=_positive, help="steps of the Mesa reference (default: --steps)")
    p.add_argument("--skip-mesa", action="store_true", help="do not run the Mesa reference")
    p.add_argument("--skip-cycle", action="store_true", help="do not run standard_cycle")
    p.add_argument("--cycle-days", type=_days, help="simulate only this many days of standard_cycle "
                   "(default: the whole 42-day cycle)")
    p.add_argument("--memory-steps", type=_count,
                   help=f"steps of the untimed memory pass (default {DEFAULT_MEMORY_STEPS}; 0 = skip)")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the per-process profile of the largest dish")
    p.add_argument("--pg-per-ml", type=float, default=DISH_PG_PER_ML, help="dish drug concentration")
    p.add_argument("--seed", type=int, default=1, help="seed of the runs (default 1)")
    p.add_argument("--from-json", type=Path, metavar="FILE",
                   help="do not measure: print the records of an earlier --out FILE again")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few steps (seconds; for tests), a short standard_cycle")
    return p


def run(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sizes = args.sizes or list(QUICK["sizes"] if args.quick else DEFAULT_SIZES)
    steps = args.steps if args.steps is not None else (QUICK["steps"] if args.quick else DEFAULT_STEPS)
    memory_steps = args.memory_steps if args.memory_steps is not None else (
        QUICK["memory_steps"] if args.quick else DEFAULT_MEMORY_STEPS)
    mesa_sizes = [] if args.skip_mesa else (args.mesa_sizes or (
        sizes if args.quick else [s for s in sizes if s <= MESA_MAX_DEFAULT_CELLS] or [min(sizes)]))
    mesa_steps = args.mesa_steps or steps
    cycle_days = args.cycle_days if args.cycle_days is not None else (QUICK["cycle_days"] if args.quick else None)
    info = machine()
    log(f"blinasim bench: {machine_text(info)}")
    records: list[dict[str, Any]] = []
    for cells in sorted(sizes):
        records += bench_dish(cells, steps, args.threads, args.seed, memory_steps, args.pg_per_ml, log,
                              min_seconds=QUICK["repeat_until_s"] if args.quick else REPEAT_UNTIL_S)
    for cells in sorted(mesa_sizes):
        records.append(bench_mesa(cells, mesa_steps, args.seed, memory_steps, log))
    if not args.skip_cycle:
        records += bench_cycle(args.threads, args.seed, cycle_days, memory_steps, log,
                               profile_days=CYCLE_PROFILE_DAYS if args.profile else 0.0)
    if args.profile and sizes:
        cells = max(sizes)
        log(f"  profiling the dish at {cells:,} cells (untimed pass)")
        profile = profile_dish(cells, steps, args.seed, args.pg_per_ml)
        target = next(r for r in records if r["name"] == "dish" and r["cells"] >= 0.99 * cells
                      and r["threads"] == min(args.threads))
        target["profile"] = profile
    add_comparisons(records)
    for record in records:
        record["machine"] = machine_text(info)
    return info, records


def problems(records: list[dict[str, Any]]) -> list[str]:
    """Reasons the measurement is not valid (not performance targets)."""
    found = []
    for r in records:
        if r["name"] == "dish" and not r.get("synapses_formed") and not r.get("kills"):
            found.append(f"dish {r['cells']:,}, {r['threads']} thread(s): no synapse formed")
        if r["name"] == "dish" and r.get("identical_to_1_thread") is False:
            found.append(f"dish {r['cells']:,}: {r['threads']} threads differ from 1 thread")
        if r["name"] == "mesa_reference" and not r.get("kills"):
            found.append(f"mesa_reference {r['cells']:,}: no blast killed")
    return found


def main(argv: list[str] | None = None) -> int:
    """`blinasim bench`: run the benchmarks, print the table (or JSON); 1 if a run is invalid."""
    args = parser().parse_args(argv)
    if args.from_json is not None:
        records = json.loads(args.from_json.read_text(encoding="utf-8"))
        info = {"text": records[0].get("machine", "?") if records else "?"}
    else:
        info, records = run(args, lambda line: print(line, file=sys.stderr, flush=True))
        info["text"] = machine_text(info)
    targets = evaluate_targets(records)
    text = json.dumps(records, indent=1, default=_json_default)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    elif args.markdown:
        print(f"Measured {info['text']}\n")
        print(markdown(records))
        print()
        for r in records:
            if r.get("profile"):
                print("```\n" + profile_text(r["profile"], _profile_title(r)) + "\n```\n")
        print(targets_text(targets, md=True))
    else:
        print(f"blinasim bench  {info['text']}")
        print(table(records))
        for r in records:
            if r.get("profile"):
                print(profile_text(r["profile"], _profile_title(r)))
        if targets:
            print("targets (issue #14):")
            print(targets_text(targets))
    bad = problems(records)
    for line in bad:
        print(f"blinasim bench: error: {line}", file=sys.stderr)
    return 1 if bad else 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
