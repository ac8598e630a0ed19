"""Tests for blinasim.runfile: streaming run-file writer, readers, resume and comparison."""
from __future__ import annotations

import gc
import warnings
from pathlib import Path

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
    read_snapshot,
    read_snapshot_times,
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


# ------------------------------------------------------------------ snapshots

SNAPSHOT_COLUMNS = [Column("id", "int64", "", "cell id"), Column("x", "float64", "um", "position"),
                    Column("kind", "int8", "", "cell kind", flags=KINDS)]


def snapshot(i: int) -> dict[str, np.ndarray]:
    """Deterministic snapshot i: its size varies, some are larger than a chunk, two are empty."""
    n = (i * 997) % 3000 if i != 3 else 0
    ids = np.arange(n, dtype=np.int64) + 10 * i
    return {"id": ids, "x": np.cos(ids) * 100.0, "kind": (ids % 2).astype(np.int8)}


def feed_snapshots(writer: RunWriter, steps: range, every: int = 5) -> None:
    for i in steps:
        writer.append_row(*row(i))
        writer.append_events("kills", events(i))
        if i % every == 0:
            writer.append_snapshot(row(i)[0], snapshot(i // every))


def make_snapshot_writer(path, **kw) -> RunWriter:
    return RunWriter(path, attrs=ATTRS, variables=VARIABLES, event_tables=TABLES,
                     snapshot_columns=SNAPSHOT_COLUMNS, **kw)


def write_snapshot_run(path, steps=range(100), **kw):
    with make_snapshot_writer(path, **kw) as w:
        feed_snapshots(w, steps)
        w.close(complete=True)
    return path


def test_snapshots_round_trip_and_layout(tmp_path):
    path = write_snapshot_run(tmp_path / "run.h5", buffer_rows=300)
    times = read_snapshot_times(path)
    np.testing.assert_array_equal(times, np.arange(0, 100, 5) * 0.25)
    for k in range(len(times)):
        got, expected = read_snapshot(path, k), snapshot(k)
        assert set(got) == set(expected)
        for name, values in expected.items():
            np.testing.assert_array_equal(got[name], values)
            assert got[name].dtype == values.dtype
    with pytest.raises(IndexError):
        read_snapshot(path, len(times))
    assert read_snapshot_times(write_run(tmp_path / "plain.h5")).shape == (0,)

    warnings.simplefilter("error")
    total = sum(len(snapshot(k)["id"]) for k in range(len(times)))
    with xr.open_dataset(path, engine="h5netcdf", group="snapshots/cells") as ds:
        assert dict(ds.sizes) == {"row": total}
        np.testing.assert_array_equal(ds["row"].values, np.arange(total))
        assert ds["x"].attrs["units"] == "um" and ds["kind"].attrs["flag_meanings"] == "b blast"
        nonempty = [len(snapshot(k)["id"]) > 0 for k in range(len(times))]
        np.testing.assert_array_equal(np.unique(ds["time_h"].values), times[nonempty])
    with xr.open_dataset(path, engine="h5netcdf", group="snapshots/times") as ds:
        assert dict(ds.sizes) == {"time_h": len(times)}
        np.testing.assert_array_equal(ds["first_row"].values + ds["rows"].values,
                                      np.cumsum([len(snapshot(k)["id"]) for k in range(len(times))]))
    with h5py.File(path, "r") as f:
        for ds in f["snapshots/cells"].values():
            assert ds.chunks == (1024,) and ds.compression == "gzip" and ds.maxshape == (None,)


def test_snapshot_input_validation(tmp_path):
    with make_snapshot_writer(tmp_path / "run.h5") as w:
        with pytest.raises(KeyError, match="expected columns"):
            w.append_snapshot(0.0, {"id": np.zeros(2, np.int64), "x": np.zeros(2)})
        with pytest.raises(ValueError, match="equal length"):
            w.append_snapshot(0.0, {"id": np.zeros(2, np.int64), "x": np.zeros(3), "kind": np.zeros(2, np.int8)})
        with pytest.raises(TypeError, match="id"):
            w.append_snapshot(0.0, {"id": np.zeros(2), "x": np.zeros(2), "kind": np.zeros(2, np.int8)})
    with make_writer(tmp_path / "plain.h5") as w:
        with pytest.raises(KeyError, match="without snapshot columns"):
            w.append_snapshot(0.0, snapshot(1))
    for reserved in ("row", "time_h"):
        with pytest.raises(ValueError, match="not 'row' or 'time_h'"):
            RunWriter(tmp_path / "bad.h5", attrs={}, variables=[], event_tables={},
                      snapshot_columns=[Column(reserved, "float64")])
    assert not (tmp_path / "bad.h5.partial").exists()


def test_snapshot_memory_does_not_grow(tmp_path):
    with make_snapshot_writer(tmp_path / "run.h5") as w:
        held = [sum(buf.nbytes for buf in table.buf.values()) for table in w._tables().values()]
        for k in range(40):
            w.append_snapshot(float(k), {"id": np.arange(50_000, dtype=np.int64), "x": np.zeros(50_000),
                                         "kind": np.zeros(50_000, np.int8)})
        assert [sum(buf.nbytes for buf in table.buf.values()) for table in w._tables().values()] == held
        assert max(held) < 100_000
        w.close(complete=True)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f["snapshots/cells/id"].shape == (2_000_000,)


def test_compare_reports_snapshot_difference_with_its_time(tmp_path):
    a = write_snapshot_run(tmp_path / "a.h5")
    b = write_snapshot_run(tmp_path / "b.h5")
    assert compare_runs(a, b) is None
    row_index = sum(len(snapshot(k)["id"]) for k in range(7)) + 12
    with h5py.File(b, "r+") as f:
        f["snapshots/cells/x"][row_index] = -1.0
    diff = compare_runs(a, b)
    assert (diff.dataset, diff.variable, diff.index, diff.time_h, diff.b) == \
        ("snapshots/cells", "x", row_index, 8.75, -1.0)
    assert compare_runs(a, write_run(tmp_path / "plain.h5")).dataset == "snapshots/cells"


def test_resume_restores_snapshots(tmp_path):
    reference = write_snapshot_run(tmp_path / "reference.h5")
    path = tmp_path / "run.h5"
    w = make_snapshot_writer(path, buffer_rows=64)
    feed_snapshots(w, range(42))
    w.save_checkpoint(42, {"n": 42})
    feed_snapshots(w, range(42, 77))
    w.close(complete=False)
    w, step, state = RunWriter.reopen_for_resume(path)
    assert step == 42 and state == {"n": 42} and w.has_snapshots
    assert len(read_snapshot_times(w.partial_path)) <= 9  # later snapshots were dropped
    feed_snapshots(w, range(step, 100))
    w.close(complete=True)
    assert compare_runs(reference, path) is None


# ------------------------------------------------------------------ crash safety

CRASH_STEPS = 2600
"""Steps of the runs killed below: the time series fills a few chunks, snapshots every 40 steps."""


def feed_sparse(writer: RunWriter, steps: range) -> None:
    feed_snapshots(writer, steps, every=40)


@pytest.fixture(scope="module")
def crash_reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("crash") / "reference.h5"
    with make_snapshot_writer(path) as w:
        feed_sparse(w, range(CRASH_STEPS))
        w.close(complete=True)
    return path


def test_chunks_are_written_whole_and_once_while_running(tmp_path, monkeypatch, crash_reference):
    """Before close, tables are only written in whole chunks, each once: nothing a checkpoint
    points at is rewritten or moved, so a killed run leaves a file that resumes."""
    original, writes = h5py.Dataset.__setitem__, []

    def record(self, key, value):
        if isinstance(key, slice) and not self.name.startswith("/checkpoint"):
            writes.append((self.name, key.start, key.stop))
        original(self, key, value)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", record)
    w = make_snapshot_writer(tmp_path / "run.h5", buffer_rows=100)
    for start in range(0, CRASH_STEPS, 700):
        feed_sparse(w, range(start, min(start + 700, CRASH_STEPS)))
        w.save_checkpoint(start + 700, {"n": start})
    assert {name.split("/")[1] for name, _, _ in writes} == {"timeseries", "events", "snapshots"}
    for name, start, stop in writes:
        assert start % 1024 == 0 and stop % 1024 == 0, (name, start, stop)
    assert len(writes) == len(set(writes))
    w.close(complete=True)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", original)
    assert compare_runs(tmp_path / "run.h5", crash_reference) is None


@pytest.mark.parametrize("more_steps", [0, 1, 400, 1400])
def test_killed_run_resumes_from_what_is_on_disk(tmp_path, more_steps, crash_reference):
    """A SIGKILL leaves the bytes the OS has: copy them while the writer is still open."""
    path, killed = tmp_path / "run.h5", tmp_path / "killed.h5"
    w = make_snapshot_writer(path)
    feed_sparse(w, range(1100))
    w.save_checkpoint(1100, {"n": 1})
    feed_sparse(w, range(1100, 1100 + more_steps))  # chunks written after the checkpoint
    Path(f"{killed}.partial").write_bytes(w.partial_path.read_bytes())
    w.close(complete=False)

    w, step, state = RunWriter.reopen_for_resume(killed)
    assert step == 1100 and state == {"n": 1}
    feed_sparse(w, range(step, CRASH_STEPS))
    w.close(complete=True)
    assert compare_runs(crash_reference, killed) is None


def test_killed_while_replacing_the_checkpoint(tmp_path, monkeypatch, crash_reference):
    """Killed after the new checkpoint was flushed but before it was renamed: one of the two is used."""
    path, killed = tmp_path / "run.h5", tmp_path / "killed.h5"
    w = make_snapshot_writer(path)
    feed_sparse(w, range(1000))
    w.save_checkpoint(1000, {"n": 1000})
    feed_sparse(w, range(1000, 2000))
    original = h5py.Group.move

    def move_after_copy(self, source, dest):
        Path(f"{killed}.partial").write_bytes(w.partial_path.read_bytes())
        original(self, source, dest)
    monkeypatch.setattr(h5py.Group, "move", move_after_copy)
    w.save_checkpoint(2000, {"n": 2000})
    monkeypatch.setattr(h5py.Group, "move", original)
    w.close(complete=False)

    w, step, state = RunWriter.reopen_for_resume(killed)
    assert (step, state) in ((1000, {"n": 1000}), (2000, {"n": 2000}))
    feed_sparse(w, range(step, CRASH_STEPS))
    w.close(complete=True)
    assert compare_runs(crash_reference, killed) is None
    with h5py.File(killed, "r") as f:
        assert "checkpoint" in f and "checkpoint.tmp" not in f


def test_resume_without_checkpoint_can_start_over(tmp_path):
    path = tmp_path / "run.h5"
    w = make_snapshot_writer(path)
    feed_snapshots(w, range(30))
    killed = tmp_path / "killed.h5"
    Path(f"{killed}.partial").write_bytes(w.partial_path.read_bytes())  # no checkpoint yet
    w.close(complete=False)
    with pytest.raises(ValueError, match="no checkpoint"):
        RunWriter.reopen_for_resume(killed)
    w, step, state = RunWriter.reopen_for_resume(killed, restart_without_checkpoint=True)
    assert (step, state) == (0, None)
    feed_snapshots(w, range(100))
    w.close(complete=True)
    assert compare_runs(write_snapshot_run(tmp_path / "reference.h5"), killed) is None
