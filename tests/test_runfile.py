"""Tests for blinasim.runfile: streaming run-file writer, readers, resume and comparison."""
from __future__ import annotations

import gc
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr

from blinasim.runfile import (
    Column,
    Difference,
    RunFileExists,
    RunWriter,
    compare_runs,
    read_attrs,
    read_checkpoint,
    read_events,
    read_timeseries,
)

VARIABLES = [
    Column("blasts", "float64", "cells", "leukemic blasts"),
    Column("il6", "float64", "pg/mL", "plasma IL-6"),
]
KINDS = ("b", "blast")
TABLES = {
    "kills": [
        Column("time_h", "float64", "h", "time of the kill"),
        Column("killer", "int64", "", "killer agent id"),
        Column("kind", "int8", "", "victim kind", flags=KINDS),
    ],
    "births": [Column("parent", "int64")],
}
ATTRS = {"blinasim_version": "0.1.0", "seed": 42, "scenario_yaml": "name: test\n",
         "command_line": "blinasim run test.yaml", "libraries": {"numpy": np.__version__}}


def row(i: int) -> tuple[float, dict[str, float]]:
    """Deterministic time-series row i (time step 0.25 h)."""
    return i * 0.25, {"blasts": 1000.0 + i, "il6": np.sin(i) * 3.0}


def events(i: int) -> dict[str, np.ndarray]:
    """Deterministic kill events of step i: i % 4 events (some steps have none)."""
    n = i % 4
    return {"time_h": np.full(n, i * 0.25), "killer": np.arange(n, dtype=np.int64) + 10 * i,
            "kind": (np.arange(n) + i) % 2}


def feed(writer: RunWriter, steps: range) -> None:
    for i in steps:
        writer.append_row(*row(i))
        writer.append_events("kills", events(i))


def make_writer(path, **kw) -> RunWriter:
    return RunWriter(path, attrs=ATTRS, variables=VARIABLES, event_tables=TABLES, **kw)


def write_run(path, steps=range(100), **kw):
    with make_writer(path, **kw) as w:
        feed(w, steps)
        w.close(complete=True)
    return path


# ------------------------------------------------------------------ round trip and layout

def test_round_trip_timeseries_and_events(tmp_path):
    path = write_run(tmp_path / "run.h5", steps=range(30))
    ts = read_timeseries(path)
    assert list(ts) == ["time_h", "blasts", "il6"]
    np.testing.assert_array_equal(ts["time_h"], np.arange(30) * 0.25)
    np.testing.assert_array_equal(ts["blasts"], 1000.0 + np.arange(30))
    np.testing.assert_array_equal(ts["il6"], np.sin(np.arange(30)) * 3.0)

    kills = read_events(path, "kills")
    expected = {k: np.concatenate([events(i)[k] for i in range(30)]) for k in ("time_h", "killer", "kind")}
    assert set(kills) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(kills[key], value)
    assert kills["kind"].dtype == np.int8 and kills["killer"].dtype == np.int64
    assert read_events(path, "births")["parent"].shape == (0,)
    with pytest.raises(KeyError, match="deaths"):
        read_events(path, "deaths")

    attrs = read_attrs(path)
    assert attrs["complete"] == 1
    assert attrs["scenario_yaml"] == "name: test\n" and isinstance(attrs["scenario_yaml"], str)
    assert attrs["seed"] == 42 and attrs["libraries"] == f'{{"numpy": "{np.__version__}"}}'


def test_readable_with_xarray_h5netcdf(tmp_path):
    path = write_run(tmp_path / "run.h5", steps=range(30))
    with h5py.File(path, "r") as f:  # real dimension scales, not names h5netcdf happens to guess
        assert f["timeseries/time_h"].is_scale and f["events/kills/event"].is_scale
        assert list(f["timeseries/blasts"].dims[0].keys()) == ["time_h"]
        assert list(f["events/kills/kind"].dims[0].keys()) == ["event"]
    warnings.simplefilter("error")  # e.g. h5netcdf's phony-dimension warning
    with xr.open_dataset(path, engine="h5netcdf", group="timeseries") as ds:
        assert dict(ds.sizes) == {"time_h": 30}
        assert ds["blasts"].dims == ("time_h",)
        assert ds["blasts"].attrs["units"] == "cells"
        assert ds["blasts"].attrs["long_name"] == "leukemic blasts"
        np.testing.assert_array_equal(ds["time_h"].values, np.arange(30) * 0.25)
        np.testing.assert_array_equal(ds["il6"].values, np.sin(np.arange(30)) * 3.0)
    n_kills = sum(i % 4 for i in range(30))
    with xr.open_dataset(path, engine="h5netcdf", group="events/kills") as ds:
        assert dict(ds.sizes) == {"event": n_kills}
        np.testing.assert_array_equal(ds["event"].values, np.arange(n_kills))
        kind = ds["kind"]
        assert kind.dims == ("event",)
        assert kind.attrs["units"] == ""
        np.testing.assert_array_equal(kind.attrs["flag_values"], [0, 1])
        assert kind.attrs["flag_values"].dtype == np.int8
        assert kind.attrs["flag_meanings"] == "b blast"
        assert "flag_values" not in ds["killer"].attrs
    with xr.open_dataset(path, engine="h5netcdf", group="events/births") as ds:
        assert dict(ds.sizes) == {"event": 0}


def test_many_rows_across_flushes_and_storage_settings(tmp_path):
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(1)
    values = rng.normal(size=10_000)
    batches = [rng.integers(0, 5000) for _ in range(8)]  # some batches exceed the buffer
    parents = rng.integers(0, 1 << 40, size=sum(batches))
    with make_writer(path, buffer_rows=300) as w:
        for i, v in enumerate(values):
            w.append_row(float(i), {"blasts": v, "il6": -v})
        start = 0
        for n in batches:
            w.append_events("births", {"parent": parents[start:start + n]})
            start += n
        w.close(complete=True)
    ts = read_timeseries(path)
    np.testing.assert_array_equal(ts["time_h"], np.arange(10_000.0))
    np.testing.assert_array_equal(ts["blasts"], values)
    np.testing.assert_array_equal(ts["il6"], -values)
    np.testing.assert_array_equal(read_events(path, "births")["parent"], parents)
    with h5py.File(path, "r") as f:
        for ds in (f["timeseries/time_h"], f["timeseries/blasts"], f["events/births/parent"],
                   f["events/births/event"]):
            assert ds.chunks == (1024,)
            assert ds.maxshape == (None,)
            assert ds.compression == "gzip"
        np.testing.assert_array_equal(f["events/births/event"][...], np.arange(sum(batches)))


def test_input_validation(tmp_path):
    with make_writer(tmp_path / "run.h5") as w:
        with pytest.raises(KeyError, match="il6"):
            w.append_row(0.0, {"blasts": 1.0})
        with pytest.raises(KeyError, match="unknown variables \\['typo'\\]"):
            w.append_row(0.0, {"blasts": 1.0, "il6": 2.0, "typo": 3.0})
        with pytest.raises(ValueError, match="equal length"):
            w.append_events("kills", {"time_h": np.zeros(2), "killer": np.zeros(3, int), "kind": np.zeros(2, int)})
        with pytest.raises(TypeError, match="killer"):
            w.append_events("kills", {"time_h": np.zeros(2), "killer": np.zeros(2), "kind": np.zeros(2, int)})
        with pytest.raises(KeyError, match="deaths"):
            w.append_events("deaths", {"x": np.zeros(1)})
        w.close(complete=True)
    assert read_timeseries(tmp_path / "run.h5")["time_h"].shape == (0,)
    with pytest.raises(ValueError, match="time_h"):
        RunWriter(tmp_path / "bad.h5", attrs={}, variables=[Column("time_h", "float64")], event_tables={})
    with pytest.raises(ValueError, match="flags"):
        RunWriter(tmp_path / "bad.h5", attrs={}, variables=[], event_tables={"t": [Column("k", "float64", flags=("a",))]})
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "bad.h5.partial").exists()


# ------------------------------------------------------------------ files, names and closing

def test_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"previous results")
    with pytest.raises(RunFileExists) as info:
        make_writer(path)
    assert str(path) in str(info.value) and "--force" in str(info.value)
    assert path.read_bytes() == b"previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]

    write_run(path, steps=range(5), force=True)
    assert read_attrs(path)["complete"] == 1
    assert len(read_timeseries(path)["time_h"]) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def test_final_name_appears_only_after_close(tmp_path):
    path = tmp_path / "run.h5"
    (tmp_path / "run.h5.partial").write_bytes(b"stale partial from a crashed run")
    w = make_writer(path)
    assert w.path == path and w.partial_path == tmp_path / "run.h5.partial"
    feed(w, range(10))
    w.flush()
    assert not path.exists() and w.partial_path.exists()
    assert w.close(complete=True) == path
    assert path.exists() and not w.partial_path.exists()
    assert w.close(complete=False) == path  # idempotent: nothing changes
    assert read_attrs(path)["complete"] == 1


def test_abandoned_writer_leaves_only_partial(tmp_path):
    path = tmp_path / "run.h5"
    w = make_writer(path)
    feed(w, range(10))
    del w
    gc.collect()
    assert not path.exists()
    assert (tmp_path / "run.h5.partial").exists()


def test_close_incomplete_is_readable(tmp_path):
    path = tmp_path / "run.h5"
    w = make_writer(path, buffer_rows=64)
    feed(w, range(100))  # the last rows are still buffered when close is called
    w.close(complete=False)
    assert read_attrs(path)["complete"] == 0
    assert len(read_timeseries(path)["blasts"]) == 100
    assert len(read_events(path, "kills")["killer"]) == sum(i % 4 for i in range(100))
    with pytest.raises(ValueError, match="closed"):
        w.append_row(*row(100))


def test_context_manager_closes_incomplete(tmp_path):
    path = tmp_path / "run.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with make_writer(path) as w:
            feed(w, range(7))
            raise RuntimeError("boom")
    assert read_attrs(path)["complete"] == 0
    assert len(read_timeseries(path)["time_h"]) == 7
    with make_writer(tmp_path / "no_close.h5") as w:  # leaving the block without close(True)
        feed(w, range(3))
    assert read_attrs(tmp_path / "no_close.h5")["complete"] == 0


def test_interrupted_flush_then_close_keeps_every_row_once(tmp_path, monkeypatch):
    """A signal raising mid-flush (after some datasets were written) must not lose or repeat rows."""
    path = tmp_path / "run.h5"
    w = make_writer(path, buffer_rows=32)
    feed(w, range(40))
    original, calls = h5py.Dataset.__setitem__, []

    def interrupted(self, key, value):
        calls.append(self.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(self, key, value)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        w.flush()
    monkeypatch.setattr(h5py.Dataset, "__setitem__", original)
    w.close(complete=False)
    assert compare_runs(path, write_run(tmp_path / "reference.h5", steps=range(40))) is None


# ------------------------------------------------------------------ checkpoints and resume

def test_checkpoint_is_replaced(tmp_path):
    path = tmp_path / "run.h5"
    with make_writer(path) as w:
        w.save_checkpoint(1, {"positions": np.zeros((5, 3)), "rng": "state-1"})
        w.save_checkpoint(2, {"ids": np.arange(4), "rng": "state-2", "n": 7, "dt": 0.5,
                              "kinds": np.array(["b", "blast"])})
    step, state = read_checkpoint(path)
    assert step == 2
    assert set(state) == {"ids", "rng", "n", "dt", "kinds"}
    np.testing.assert_array_equal(state["ids"], np.arange(4))
    np.testing.assert_array_equal(state["kinds"], ["b", "blast"])
    assert state["rng"] == "state-2" and state["n"] == 7 and state["dt"] == 0.5
    with h5py.File(path, "r") as f:
        assert set(f) == {"timeseries", "events", "checkpoint"}
    assert read_checkpoint(write_run(tmp_path / "plain.h5", steps=range(2))) is None


def test_resume_truncates_and_matches_uninterrupted_run(tmp_path):
    reference = write_run(tmp_path / "reference.h5", steps=range(100))

    path = tmp_path / "run.h5"
    w = make_writer(path, buffer_rows=16)
    feed(w, range(50))
    w.save_checkpoint(50, {"blast_ids": np.arange(50), "time_h": 12.5})
    feed(w, range(50, 83))  # written after the checkpoint, then "interrupted"
    w.close(complete=False)
    assert len(read_timeseries(path)["time_h"]) == 83

    w, step, state = RunWriter.reopen_for_resume(path, buffer_rows=16)
    assert step == 50 and state["time_h"] == 12.5
    np.testing.assert_array_equal(state["blast_ids"], np.arange(50))
    assert not path.exists() and w.partial_path.exists()
    w.close(complete=False)  # rows after the checkpoint are gone
    assert len(read_timeseries(path)["time_h"]) == 50
    assert len(read_events(path, "kills")["killer"]) == sum(i % 4 for i in range(50))

    w, step, _ = RunWriter.reopen_for_resume(path)
    feed(w, range(step, 100))
    w.close(complete=True)
    assert read_attrs(path)["complete"] == 1
    assert compare_runs(path, reference) is None
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["events/kills/event"][...], np.arange(sum(i % 4 for i in range(100))))


def test_resume_refuses_complete_or_uncheckpointed_runs(tmp_path):
    complete = tmp_path / "done.h5"
    with make_writer(complete) as w:
        w.save_checkpoint(0, {})
        w.close(complete=True)
    with pytest.raises(ValueError, match="is complete"):
        RunWriter.reopen_for_resume(complete)
    with make_writer(tmp_path / "nockpt.h5") as w:
        feed(w, range(3))
    with pytest.raises(ValueError, match="no checkpoint"):
        RunWriter.reopen_for_resume(tmp_path / "nockpt.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.h5", "nockpt.h5"]
    with pytest.raises(FileNotFoundError):
        RunWriter.reopen_for_resume(tmp_path / "absent.h5")


def test_resume_from_partial_of_killed_run(tmp_path):
    path = tmp_path / "run.h5"
    w = make_writer(path)
    feed(w, range(20))
    w.save_checkpoint(20, {"x": np.ones(2)})
    feed(w, range(20, 25))
    del w  # killed: no close, only the .partial exists
    gc.collect()
    w, step, _ = RunWriter.reopen_for_resume(path)
    feed(w, range(step, 100))
    w.close(complete=True)
    assert compare_runs(path, write_run(tmp_path / "reference.h5")) is None


# ------------------------------------------------------------------ compare_runs

def changed_run(path, change):
    """A 100-step run in which ``change(i, values, kill_events)`` edits step i in place."""
    with make_writer(path) as w:
        for i in range(100):
            time, values = row(i)
            ev = events(i)
            change(i, values, ev)
            w.append_row(time, values)
            w.append_events("kills", ev)
        w.close(complete=True)
    return path


def test_compare_identical_runs(tmp_path):
    a = write_run(tmp_path / "a.h5")
    b = write_run(tmp_path / "b.h5")
    assert compare_runs(a, b) is None


def test_compare_reports_first_changed_value(tmp_path):
    a = write_run(tmp_path / "a.h5")

    def change(i, values, ev):
        if i == 75:
            values["il6"] = 1.5
        if i >= 80:  # a later change in an earlier-sorted variable must not win
            values["blasts"] += 1.0
    diff = compare_runs(a, changed_run(tmp_path / "b.h5", change))
    assert diff == Difference("timeseries", "il6", 75, 18.75, np.sin(75) * 3.0, 1.5)
    assert str(diff) == f"timeseries/il6 differs first at time_h=18.75 (row 75): {float(np.sin(75) * 3.0)!r} vs 1.5"
    diff = compare_runs(a, changed_run(tmp_path / "c.h5", lambda i, values, ev: values.update(blasts=7.0)))
    assert str(diff) == "timeseries/blasts differs first at time_h=0.0 (row 0): 1000.0 vs 7.0"


def test_compare_reports_event_difference(tmp_path):
    a = write_run(tmp_path / "a.h5")

    def change(i, values, ev):
        if i == 10:
            ev["kind"][1] = 1 - ev["kind"][1]
    diff = compare_runs(a, changed_run(tmp_path / "b.h5", change))
    row_index = sum(j % 4 for j in range(10)) + 1
    assert (diff.dataset, diff.variable, diff.index, diff.time_h) == ("events/kills", "kind", row_index, 2.5)
    assert (diff.a, diff.b) == (events(10)["kind"][1], 1 - events(10)["kind"][1])


def test_compare_tolerance_nan_and_length(tmp_path):
    a = write_run(tmp_path / "a.h5")

    def perturb(i, values, ev):
        values["il6"] *= 1 + 1e-9
    b = changed_run(tmp_path / "b.h5", perturb)
    assert compare_runs(a, b, rtol=1e-6) is None
    diff = compare_runs(a, b)
    assert (diff.variable, diff.index) == ("il6", 1)  # sin(0) * 3 = 0 is unchanged

    def nan(i, values, ev):
        values["blasts"] = float("nan")
    assert compare_runs(changed_run(tmp_path / "n1.h5", nan), changed_run(tmp_path / "n2.h5", nan)) is None

    short = write_run(tmp_path / "short.h5", steps=range(90))
    diff = compare_runs(a, short)
    assert (diff.dataset, diff.variable, diff.index, diff.time_h) == ("timeseries", "blasts", 90, 22.5)
    assert diff.b == "missing"


def test_compare_missing_variable_and_table(tmp_path):
    a = write_run(tmp_path / "a.h5")
    b = tmp_path / "b.h5"
    with RunWriter(b, attrs=ATTRS, variables=VARIABLES[:1], event_tables=TABLES) as w:
        for i in range(100):
            time, values = row(i)
            w.append_row(time, {"blasts": values["blasts"]})
            w.append_events("kills", events(i))
        w.close(complete=True)
    diff = compare_runs(a, b)
    assert (diff.dataset, diff.variable, diff.index, diff.b) == ("timeseries", "il6", -1, "missing")
    assert "timeseries/il6 differs" in str(diff)

    c = tmp_path / "c.h5"
    with RunWriter(c, attrs={}, variables=VARIABLES, event_tables={"kills": TABLES["kills"]}) as w:
        feed(w, range(100))
        w.close(complete=True)
    diff = compare_runs(a, c)
    assert (diff.dataset, diff.index, diff.b) == ("events/births", -1, "missing")


def test_compare_ignores_attrs_and_checkpoint_but_not_snapshots(tmp_path):
    a = write_run(tmp_path / "a.h5")
    b = tmp_path / "b.h5"
    with RunWriter(b, attrs={"seed": 7}, variables=VARIABLES, event_tables=TABLES) as w:
        feed(w, range(100))
        w.save_checkpoint(100, {"x": np.arange(3)})
        w.close(complete=True)
    assert compare_runs(a, b) is None
    for path, value in ((a, 1.0), (b, 2.0)):
        with h5py.File(path, "r+") as f:
            f.create_dataset("snapshots/t0000/x", data=np.array([[0.0, 0.0], [0.0, value]]))
    diff = compare_runs(a, b)
    assert (diff.dataset, diff.variable, diff.index, diff.a, diff.b) == ("snapshots/t0000", "x", 1, 1.0, 2.0)
