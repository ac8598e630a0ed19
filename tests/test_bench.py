"""Smoke tests of the benchmark harness (blinasim.bench) and the plain-Mesa reference.

Performance targets are benchmarks, not timed tests: nothing here asserts a speed.
"""
from __future__ import annotations

import json
import math

import pytest

from blinasim import bench
from blinasim.mesa_reference import SYNAPSE_STEPS, Blast, MesaDish, TCell

REQUIRED = ("name", "cells", "threads", "agent_steps_per_s", "bytes_per_cell")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `--quick --json --out` run shared by the tests (a few seconds)."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = bench.main(["--quick", "--json", "--out", str(out)])
    return code, json.loads(stdout.getvalue()), json.loads(out.read_text())


def test_quick_json_records_have_the_fields(quick_run):
    code, records, written = quick_run
    assert code == 0
    assert records == written
    names = {r["name"] for r in records}
    assert names == {"dish", "mesa_reference", "standard_cycle"}
    for r in records:
        for field in REQUIRED:
            assert field in r, (r["name"], field)
        assert r["cells"] > 0 and r["threads"] >= 1
        assert math.isfinite(r["agent_steps_per_s"]) and r["agent_steps_per_s"] > 0
        assert r["bytes_per_cell"] > 0


def test_quick_dish_forms_synapses_and_matches_across_threads(quick_run):
    _code, records, _ = quick_run
    dish = [r for r in records if r["name"] == "dish"]
    assert {r["threads"] for r in dish} == {1, 2}
    sizes = sorted({r["cells"] for r in dish})
    assert sizes == [1000, 3000]
    for r in dish:
        assert r["synapses_formed"] > 0 and r["kills"] > 0
        assert r["vs_mesa"] > 0 and r["mesa_cells"] == r["cells"]
        # the engine's state is at most what the harness counts as memory
        assert r["state_bytes_per_cell"] <= r["bytes_per_cell"]
    for r in dish:
        if r["threads"] == 2:
            assert r["identical_to_1_thread"] is True
            assert r["speedup_vs_1_thread"] > 0
    profiled = [r for r in dish if r.get("profile")]
    assert len(profiled) == 1 and profiled[0]["cells"] == 3000
    assert "kernel _contacts.form_synapses" in "".join(profiled[0]["profile"])


def test_quick_mesa_reference_kills_blasts(quick_run):
    _code, records, _ = quick_run
    mesa = [r for r in records if r["name"] == "mesa_reference"]
    assert len(mesa) == 2
    for r in mesa:
        assert r["synapses_formed"] > 0
        assert r["kills"] > 0
        assert r["blasts_killed"] == r["kills"]


def test_quick_standard_cycle_is_timed_per_simulated_day(quick_run):
    _code, records, _ = quick_run
    cycle = [r for r in records if r["name"] == "standard_cycle"]
    assert {r["threads"] for r in cycle} == {1, 2}
    for r in cycle:
        assert r["whole_cycle"] is False
        assert r["sim_days"] == pytest.approx(0.02)
        assert r["s_per_sim_day"] == pytest.approx(r["wall_s"] / r["sim_days"])
        assert r["cells"] > 20_000


def test_targets_are_not_judged_at_other_sizes(quick_run):
    _code, records, _ = quick_run
    rows = bench.evaluate_targets(records)
    assert len(rows) == 7
    assert all(row["met"] is None for row in rows)  # quick sizes are not the targets' sizes


def test_dish_overrides_give_the_density_and_ratio():
    model = bench.dish_model(3000, 5, 1, seed=3)
    pop = model.pop
    assert pop.n == 3000
    t_cells = int((pop.kind <= 1).sum())
    assert t_cells == 1000  # E:T 1:2
    assert int((pop.kind == 3).sum()) == 2000
    area = model.geometry.width_um[0] * model.geometry.height_um[0]
    assert area / pop.n == pytest.approx(bench.UM2_PER_CELL)
    assert model.conc_pg_per_ml == pytest.approx(bench.DISH_PG_PER_ML)


def test_mesa_reference_rules():
    model = MesaDish(900, seed=2)
    assert len(model.agents_by_type[TCell]) == 300
    assert len(model.agents_by_type[Blast]) == 600
    assert model.grid.torus and model.grid.dimensions == (60, 60)
    for _ in range(SYNAPSE_STEPS):
        model.step()
    assert model.kills == 0  # a synapse lasts SYNAPSE_STEPS steps before the blast can die
    assert model.synapses > 0
    engaged = [t.target for t in model.agents_by_type[TCell] if t.target is not None]
    assert len(engaged) == len(set(engaged))  # one T cell per blast
    assert all(b.engaged for b in engaged)
    for _ in range(SYNAPSE_STEPS):
        model.step()
    assert model.kills > 0
    assert model.blasts == 600 - model.kills


def test_evaluate_targets_on_full_size_records():
    def rec(name, cells, threads, rate, **extra):
        r = {"name": name, "cells": cells, "threads": threads, "agent_steps_per_s": rate,
             "ns_per_agent_step": 1e9 / rate, "bytes_per_cell": 150.0, "wall_s": 1.0, "cpu_s": 1.0}
        r.update(extra)
        return r

    records = [rec("dish", 10_000, 1, 6e7), rec("dish", 100_000, 1, 5.5e7), rec("dish", 1_000_000, 1, 5.2e7),
               rec("dish", 1_000_000, 2, 1.1e8, speedup_vs_1_thread=2.1, identical_to_1_thread=True),
               rec("mesa_reference", 100_000, 1, 2e5),
               rec("standard_cycle", 21_525, 1, 1e8, whole_cycle=True, wall_s=4.0, cpu_s=3.6, sim_days=42.0,
                   s_per_sim_day=4.0 / 42)]
    rows = bench.evaluate_targets(records)
    assert [row["met"] for row in rows] == [True, True, True, True, True, True, True]
    assert rows[5]["shown"] == "4.0 s with 1 thread(s)"
    assert rows[6]["value"] == 1000.0 and rows[6]["shown"].startswith("1000 (20.0x")
    records[3]["identical_to_1_thread"] = False
    assert bench.evaluate_targets(records)[2]["met"] is False
    records[5]["wall_s"], records[5]["cpu_s"] = 6.0, 7.2  # 500 per core-hour: exactly 10x
    assert [row["met"] for row in bench.evaluate_targets(records)][5:] == [False, True]
    records[1]["agent_steps_per_s"] = 0.99 * 200 * 2e5  # just under 200x the Mesa reference
    assert bench.evaluate_targets(records)[1]["met"] is False


def test_bad_options_are_refused():
    with pytest.raises(SystemExit) as err:
        bench.main(["--sizes", "lots"])
    assert err.value.code == 2
    with pytest.raises(SystemExit):
        bench.main(["--threads", "0"])


def test_state_comparison_is_bitwise_and_nan_aware():
    import numpy as np

    same = {"pop.x": np.array([1.0, np.nan]), "model.steps": 3, "when": float("nan")}
    assert bench._same_state(same, {k: (v.copy() if hasattr(v, "copy") else v) for k, v in same.items()})
    assert not bench._same_state(same, {**same, "pop.x": np.array([1.0, 2.0])})
    assert not bench._same_state(same, {**same, "pop.x": np.array([1.0, np.nan], dtype=np.float32)})
    assert not bench._same_state(same, {**same, "model.steps": 4})
