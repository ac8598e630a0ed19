"""Run files: one HDF5 file per simulation run, written as a stream, read back, compared.

Layout
------
- root attributes: provenance given by the caller, plus ``complete`` (0/1) kept by the writer;
- ``timeseries/``: ``time_h`` (an unlimited dimension scale) and one 1-D dataset per variable;
- ``events/<table>/``: one 1-D dataset per column sharing the dimension scale ``event``
  (row numbers 0..n-1); coded columns carry CF ``flag_values``/``flag_meanings``;
- ``checkpoint/`` (optional): attrs ``step``, ``timeseries_rows``, ``events_rows_<table>``
  and a subgroup ``state`` holding the saved arrays (datasets) and scalars (attributes).

Both data groups open with ``xarray.open_dataset(path, engine="h5netcdf", group=...)``.
Rows are buffered in fixed-size numpy arrays and appended to chunked, compressed datasets,
so memory does not grow with run length. A run is written to ``<path>.partial`` and renamed
to ``<path>`` by :meth:`RunWriter.close`; a writer abandoned without ``close`` leaves only
the ``.partial`` file.

Interruption: :meth:`RunWriter.flush` only advances its counters once every dataset has been
written, so it (and :meth:`RunWriter.close`) can be re-run after being interrupted by a
signal handler's exception without losing or duplicating rows. The recommended pattern is a
SIGTERM handler that raises (like SIGINT's ``KeyboardInterrupt``) inside a ``with RunWriter``
block, or sets a flag the step loop checks before calling ``close(complete=False)``.
"""
from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

CHUNK_ROWS = 1024
"""Rows per HDF5 chunk of every streamed dataset."""

_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_GROUPS_COMPARED = ("timeseries", "events", "snapshots")
_COMPARE_BLOCK = 1 << 16


class RunFileExists(Exception):
    """The run file already exists and overwriting was not requested."""


@dataclass(frozen=True)
class Column:
    """A streamed variable or event column; ``flags`` names the codes 0..k-1 of an integer column."""
    name: str
    dtype: str
    units: str = ""
    long_name: str = ""
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Difference:
    """The first difference found by :func:`compare_runs`; ``index`` is -1 for structural ones."""
    dataset: str
    variable: str
    index: int
    time_h: float | None
    a: Any
    b: Any

    def __str__(self) -> str:
        where = f"{self.dataset}/{self.variable}"
        if self.index < 0:
            return f"{where} differs: {_fmt(self.a)} vs {_fmt(self.b)}"
        at = f"time_h={_fmt(self.time_h)} (row {self.index})" if self.time_h is not None else f"row {self.index}"
        return f"{where} differs first at {at}: {_fmt(self.a)} vs {_fmt(self.b)}"


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _partial_of(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".partial")


def _fsync(path: pathlib.Path) -> None:
    """Best-effort fsync of a file or directory (directories cannot be opened on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_name(name: str, what: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid {what} name {name!r}")


def _set_attr(obj: h5py.HLObject, key: str, value: Any) -> None:
    """Store an attribute; mappings become JSON text, str becomes variable-length UTF-8."""
    if isinstance(value, Mapping):
        value = json.dumps(value, sort_keys=True, default=str)
    try:
        obj.attrs[key] = value
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"cannot store attribute {key!r} = {value!r}: {exc}") from exc


def _plain(value: Any) -> Any:
    """Convert an attribute as read by h5py into plain Python where that is lossless."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_plain(v) for v in value]
    return value


def _create_column(group: h5py.Group, col: Column, scale: h5py.Dataset | None) -> h5py.Dataset:
    dtype = np.dtype(col.dtype)
    if dtype.kind not in "iuf":
        raise ValueError(f"column {col.name!r}: dtype {col.dtype!r} is not an integer or float type")
    ds = group.create_dataset(col.name, shape=(0,), maxshape=(None,), dtype=dtype,
                              chunks=(CHUNK_ROWS,), **_COMPRESSION)
    ds.attrs["units"] = col.units
    ds.attrs["long_name"] = col.long_name
    if col.flags:
        if dtype.kind not in "iu" or any(not f or " " in f for f in col.flags):
            raise ValueError(f"column {col.name!r}: flags need an integer dtype and names without spaces")
        ds.attrs["flag_values"] = np.arange(len(col.flags), dtype=dtype)
        ds.attrs["flag_meanings"] = " ".join(col.flags)
    if scale is not None:
        ds.dims[0].attach_scale(scale)
    return ds


class _Table:
    """Buffered appends to a group of equal-length 1-D datasets; ``index`` is a generated row number."""

    def __init__(self, group: h5py.Group, index: str | None, buffer_rows: int):
        self.datasets = {name: group[name] for name in sorted(group)}
        self.index = index
        self.inputs = [name for name in self.datasets if name != index]
        self.cap = buffer_rows
        self.buf = {name: np.empty(buffer_rows, ds.dtype) for name, ds in self.datasets.items()}
        self.n = 0
        self.disk = min(ds.shape[0] for ds in self.datasets.values())

    @property
    def rows(self) -> int:
        return self.disk + self.n

    def append_one(self, values: Mapping[str, Any]) -> None:
        if self.n == self.cap:
            self.flush()
        for name in self.inputs:
            self.buf[name][self.n] = values[name]
        self.n += 1

    def append_many(self, arrays: Mapping[str, np.ndarray], count: int) -> None:
        done = 0
        while done < count:
            if self.n == self.cap:
                self.flush()
            take = min(self.cap - self.n, count - done)
            dst = slice(self.n, self.n + take)
            for name in self.inputs:
                self.buf[name][dst] = arrays[name][done:done + take]
            if self.index is not None:
                self.buf[self.index][dst] = np.arange(self.rows, self.rows + take)
            self.n += take
            done += take

    def flush(self) -> None:
        """Write buffered rows; counters move only after every dataset is written (re-runnable)."""
        if self.n == 0:
            return
        start, stop = self.disk, self.disk + self.n
        for name, ds in self.datasets.items():
            ds.resize((stop,))
            ds[start:stop] = self.buf[name][:self.n]
        self.disk, self.n = stop, 0

    def truncate(self, rows: int) -> None:
        self.flush()
        for name, ds in self.datasets.items():
            if ds.shape[0] < rows:
                raise ValueError(f"{ds.name} has {ds.shape[0]} rows, fewer than the checkpoint's {rows}")
            ds.resize((rows,))
        self.disk = rows


class RunWriter:
    """Streams one run to ``<path>.partial``; :meth:`close` renames it to ``path``."""

    def __init__(self, path: str | os.PathLike, *, attrs: Mapping[str, Any],
                 variables: Sequence[Column], event_tables: Mapping[str, Sequence[Column]],
                 force: bool = False, buffer_rows: int = 1024):
        path = pathlib.Path(path)
        if path.exists() and not force:
            raise RunFileExists(f"run file {path} already exists; use --force to overwrite it")
        _validate(attrs, variables, event_tables, buffer_rows)
        partial = _partial_of(path)
        partial.unlink(missing_ok=True)
        f = h5py.File(partial, "w")
        try:
            for key, value in attrs.items():
                _set_attr(f, key, value)
            f.attrs["complete"] = 0
            ts = f.create_group("timeseries")
            time = _create_column(ts, Column("time_h", "float64", "h", "simulated time"), None)
            time.make_scale("time_h")
            for col in variables:
                _create_column(ts, col, time)
            events = f.create_group("events")
            for table, columns in event_tables.items():
                group = events.create_group(table)
                index = _create_column(group, Column("event", "int64", "", "event number"), None)
                index.make_scale("event")
                for col in columns:
                    _create_column(group, col, index)
        except BaseException:
            f.close()
            partial.unlink(missing_ok=True)
            raise
        self._bind(path, f, buffer_rows)

    def _bind(self, path: pathlib.Path, f: h5py.File, buffer_rows: int) -> None:
        self.path, self.partial_path = path, _partial_of(path)
        self._file: h5py.File | None = f
        self._renamed = False
        self._series = _Table(f["timeseries"], None, buffer_rows)
        self._variables = [name for name in self._series.inputs if name != "time_h"]
        self._events = {name: _Table(group, "event", buffer_rows) for name, group in f["events"].items()}

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Add or replace root attributes (e.g. to record a resume); ``complete`` is reserved."""
        if "complete" in attrs:
            raise ValueError("the 'complete' attribute is managed by the writer")
        for key, value in attrs.items():
            _set_attr(self._open_file(), key, value)

    def append_row(self, time_h: float, values: Mapping[str, float]) -> None:
        """Buffer one time-series row; every variable is required and no other key is allowed."""
        self._open_file()
        if len(values) != len(self._variables) or not all(v in values for v in self._variables):
            missing = sorted(set(self._variables) - set(values))
            unknown = sorted(set(values) - set(self._variables))
            raise KeyError(f"append_row: missing variables {missing}, unknown variables {unknown}")
        self._series.append_one({"time_h": time_h, **values})

    def append_events(self, table: str, columns: Mapping[str, np.ndarray]) -> None:
        """Buffer rows of an event table given as equal-length 1-D arrays, one per column."""
        self._open_file()
        if table not in self._events:
            raise KeyError(f"unknown event table {table!r}; known: {sorted(self._events)}")
        target = self._events[table]
        if set(columns) != set(target.inputs):
            raise KeyError(f"events/{table}: expected columns {target.inputs}, got {sorted(columns)}")
        arrays = {name: np.asarray(value) for name, value in columns.items()}
        lengths = {arr.shape[0] if arr.ndim == 1 else -1 for arr in arrays.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ValueError(f"events/{table}: columns must be 1-D arrays of equal length")
        for name, arr in arrays.items():
            if not np.can_cast(arr.dtype, target.buf[name].dtype, "same_kind"):
                raise TypeError(f"events/{table}/{name}: cannot store {arr.dtype} as {target.buf[name].dtype}")
        target.append_many(arrays, lengths.pop())

    def flush(self) -> None:
        """Write all buffered rows to the file and flush HDF5's caches to the OS."""
        f = self._open_file()
        self._series.flush()
        for table in self._events.values():
            table.flush()
        f.flush()

    def save_checkpoint(self, step: int, state: Mapping[str, Any]) -> None:
        """Replace the checkpoint with ``state`` and the current row counts; fsyncs the file."""
        for key in state:
            _check_name(key, "checkpoint entry")
        self.flush()
        f = self._open_file()
        if "checkpoint.tmp" in f:
            del f["checkpoint.tmp"]
        group = f.create_group("checkpoint.tmp")
        group.attrs["step"] = int(step)
        group.attrs["timeseries_rows"] = self._series.rows
        for name, table in self._events.items():
            group.attrs[f"events_rows_{name}"] = table.rows
        saved = group.create_group("state")
        for key, value in state.items():
            _put_state(saved, key, value)
        if "checkpoint" in f:
            del f["checkpoint"]
        f.move("checkpoint.tmp", "checkpoint")
        f.flush()
        _fsync(self.partial_path)

    def close(self, complete: bool) -> pathlib.Path:
        """Flush, set ``complete``, close and rename to the final path; safe to call again."""
        if self._file:  # an h5py File is false once closed
            self.flush()
            self._file.attrs["complete"] = int(bool(complete))
            self._file.close()
        if not self._renamed:
            _fsync(self.partial_path)
            os.replace(self.partial_path, self.path)
            self._renamed = True
            _fsync(self.path.parent)
        return self.path

    def _open_file(self) -> h5py.File:
        if not self._file:
            raise ValueError(f"run file {self.path} is already closed")
        return self._file

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        """Close with ``complete=False`` unless ``close(complete=True)`` was already called."""
        self.close(complete=False)
        return False

    @classmethod
    def reopen_for_resume(cls, path: str | os.PathLike, *,
                          buffer_rows: int = 1024) -> tuple[RunWriter, int, dict]:
        """Reopen an incomplete run at its checkpoint, dropping rows written after it.

        Uses ``path``, or ``path.partial`` if ``path`` does not exist (a run killed before
        ``close``). The new rows go to ``path.partial`` until :meth:`close`.
        Returns ``(writer, checkpoint_step, state)``.
        """
        path = pathlib.Path(path)
        partial = _partial_of(path)
        source = path if path.exists() else partial
        if not source.exists():
            raise FileNotFoundError(f"no run file {path} (nor {partial}) to resume")
        with h5py.File(source, "r") as f:
            if int(f.attrs.get("complete", 0)) == 1:
                raise ValueError(f"run file {source} is complete; there is nothing to resume")
            if "checkpoint" not in f:
                raise ValueError(f"run file {source} has no checkpoint; it cannot be resumed")
        if source != partial:
            os.replace(source, partial)
        writer = cls.__new__(cls)
        writer._bind(path, h5py.File(partial, "r+"), buffer_rows)
        f = writer._file
        if "checkpoint.tmp" in f:
            del f["checkpoint.tmp"]
        step, state = _read_checkpoint(f)
        meta = f["checkpoint"].attrs
        writer._series.truncate(int(meta["timeseries_rows"]))
        for name, table in writer._events.items():
            table.truncate(int(meta[f"events_rows_{name}"]))
        f.flush()
        return writer, step, state


def _validate(attrs: Mapping[str, Any], variables: Sequence[Column],
              event_tables: Mapping[str, Sequence[Column]], buffer_rows: int) -> None:
    if "complete" in attrs:
        raise ValueError("the 'complete' attribute is managed by the writer")
    if buffer_rows < 1:
        raise ValueError("buffer_rows must be at least 1")
    for table in event_tables:
        _check_name(table, "event table")
    for owner, columns, reserved in [("timeseries", variables, "time_h")] + [
            (f"events/{t}", cols, "event") for t, cols in event_tables.items()]:
        names = [col.name for col in columns]
        for name in names:
            _check_name(name, f"{owner} column")
        if reserved in names or len(set(names)) != len(names):
            raise ValueError(f"{owner}: column names must be unique and not {reserved!r}")


def _put_state(group: h5py.Group, key: str, value: Any) -> None:
    """Arrays (and lists) become datasets, scalars and strings become attributes."""
    if isinstance(value, (str, bytes, int, float, bool, np.generic)):
        _set_attr(group, key, value)
        return
    arr = np.asarray(value)
    if arr.dtype.kind == "U":
        group.create_dataset(key, data=arr.astype(object), dtype=h5py.string_dtype())
    elif arr.dtype.kind in "biufc":
        extra = {"compression": "gzip", "compression_opts": 1} if arr.ndim and arr.size else {}
        group.create_dataset(key, data=arr, **extra)
    else:
        raise TypeError(f"checkpoint entry {key!r}: cannot store a {type(value).__name__}")


def _read_checkpoint(f: h5py.File) -> tuple[int, dict]:
    group = f["checkpoint"]
    saved = group["state"]
    state: dict[str, Any] = {key: _plain(value) for key, value in saved.attrs.items()}
    for key, ds in saved.items():
        if h5py.check_string_dtype(ds.dtype):
            state[key] = np.asarray(ds.asstr()[...], dtype=str)
        else:
            state[key] = ds[...]
    return int(group.attrs["step"]), state


def read_attrs(path: str | os.PathLike) -> dict:
    """Root attributes of a run file, as plain Python values where possible."""
    with h5py.File(path, "r") as f:
        return {key: _plain(value) for key, value in f.attrs.items()}


def read_timeseries(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All time-series datasets, ``time_h`` first, then the variables in name order."""
    with h5py.File(path, "r") as f:
        group = f["timeseries"]
        return {name: group[name][...] for name in ["time_h"] + sorted(set(group) - {"time_h"})}


def read_events(path: str | os.PathLike, table: str) -> dict[str, np.ndarray]:
    """The columns of one event table (without the ``event`` row-number scale)."""
    with h5py.File(path, "r") as f:
        if table not in f.get("events", {}):
            raise KeyError(f"{path} has no event table {table!r}")
        group = f["events"][table]
        return {name: group[name][...] for name in sorted(group) if name != "event"}


def read_checkpoint(path: str | os.PathLike) -> tuple[int, dict] | None:
    """``(step, state)`` of the run file's checkpoint, or None if it has none."""
    with h5py.File(path, "r") as f:
        return _read_checkpoint(f) if "checkpoint" in f else None


def compare_runs(path_a: str | os.PathLike, path_b: str | os.PathLike, *,
                 rtol: float = 0.0, atol: float = 0.0) -> Difference | None:
    """The first difference between the data of two run files, or None if they match.

    Groups are visited in the order timeseries, events, snapshots (subgroups by name);
    within a group the earliest differing row wins, ties going to the first variable by
    name; structural differences (missing variable, dtype, trailing shape) count as row -1.
    With ``rtol == atol == 0`` values must be bit-identical (NaN equals NaN, -0.0 != 0.0);
    otherwise ``numpy.isclose`` decides. Root attributes and the checkpoint are ignored.
    """
    with h5py.File(path_a, "r") as fa, h5py.File(path_b, "r") as fb:
        for top in _GROUPS_COMPARED:
            for group in sorted(_group_paths(fa, top) | _group_paths(fb, top)):
                found = _compare_group(fa, fb, group, rtol, atol)
                if found is not None:
                    return found
    return None


def _group_paths(f: h5py.File, top: str) -> set[str]:
    if top not in f:
        return set()
    paths = {top}
    f[top].visititems(lambda name, obj: paths.add(f"{top}/{name}") if isinstance(obj, h5py.Group) else None)
    return paths


def _datasets(f: h5py.File, group: str) -> dict[str, h5py.Dataset]:
    obj = f.get(group)
    if not isinstance(obj, h5py.Group):
        return {}
    return {name: item for name, item in obj.items() if isinstance(item, h5py.Dataset)}


def _compare_group(fa: h5py.File, fb: h5py.File, group: str, rtol: float, atol: float) -> Difference | None:
    da, db = _datasets(fa, group), _datasets(fb, group)
    best: tuple[int, str, Any, Any] | None = None
    for name in sorted(set(da) | set(db)):
        limit = best[0] if best is not None else None
        found = _compare_dataset(da.get(name), db.get(name), rtol, atol, limit)
        if found is not None and (best is None or found[0] < best[0]):
            best = (found[0], name, found[1], found[2])
    if best is None:
        return None
    index, name, a, b = best
    time = da.get("time_h", db.get("time_h"))
    time_h = None
    if index >= 0 and time is not None and time.ndim == 1 and index < time.shape[0]:
        time_h = float(time[index])
    return Difference(group, name, index, time_h, a, b)


def _describe(ds: h5py.Dataset | None) -> str:
    return "missing" if ds is None else f"shape {ds.shape} dtype {ds.dtype}"


def _compare_dataset(a: h5py.Dataset | None, b: h5py.Dataset | None, rtol: float, atol: float,
                     limit: int | None) -> tuple[int, Any, Any] | None:
    """``(row, value_a, value_b)`` of the first difference before ``limit``, or None."""
    if a is None or b is None or a.dtype != b.dtype or a.shape[1:] != b.shape[1:]:
        return -1, _describe(a), _describe(b)
    if a.ndim == 0:
        x, y = a[()], b[()]
        return None if _equal(np.atleast_1d(x), np.atleast_1d(y), rtol, atol).all() else (0, _plain(x), _plain(y))
    common = min(a.shape[0], b.shape[0])
    end = common if limit is None else min(common, limit)
    for start in range(0, end, _COMPARE_BLOCK):
        stop = min(start + _COMPARE_BLOCK, end)
        x, y = a[start:stop], b[start:stop]
        same = _equal(x, y, rtol, atol).reshape(stop - start, -1)
        rows = np.flatnonzero(~same.all(axis=1))
        if rows.size:
            row = int(rows[0])
            col = int(np.flatnonzero(~same[row])[0])
            return start + row, _plain(x[row].flat[col]), _plain(y[row].flat[col])
    if a.shape[0] != b.shape[0] and (limit is None or common < limit):
        value_a = _plain(a[common].flat[0]) if a.shape[0] > common else "missing"
        value_b = _plain(b[common].flat[0]) if b.shape[0] > common else "missing"
        return common, value_a, value_b
    return None


def _equal(x: np.ndarray, y: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    if x.dtype.kind not in "fc":
        if (rtol or atol) and x.dtype.kind in "iu":
            return np.isclose(x, y, rtol=rtol, atol=atol)
        return np.asarray(x == y)
    if rtol or atol:
        return np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
    both_nan = np.isnan(x) & np.isnan(y)
    return both_nan | ((x == y) & (np.signbit(x) == np.signbit(y)))
