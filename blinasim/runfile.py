"""Run files: one HDF5 file per simulation run, written as a stream, read back, compared.

Layout
------
- root attributes: provenance given by the caller, plus ``complete`` (0/1) kept by the writer
  and ``Conventions`` (the CF version the data groups follow);
- ``timeseries/``: ``time_h`` (an unlimited dimension scale) and one 1-D dataset per variable;
- ``events/<table>/``: one 1-D dataset per column sharing the dimension scale ``event``
  (row numbers 0..n-1); coded columns carry CF ``flag_values``/``flag_meanings``;
- ``snapshots/`` (optional): per-cell snapshots, stored flat so that they stream like event
  tables. ``snapshots/cells/`` holds one row per (snapshot, cell): a ``time_h`` column and the
  caller's columns, sharing the dimension scale ``row`` (0..n-1); ``snapshots/times/`` holds
  one row per snapshot: ``time_h`` (its dimension scale), ``first_row`` and ``rows``, the
  slice of ``snapshots/cells`` that snapshot occupies;
- ``checkpoint/`` (optional): attrs ``step``, ``timeseries_rows``, ``events_rows_<table>``,
  ``snapshots_rows_<table>`` (row counts at the checkpoint), a subgroup ``tails/<key>/`` per
  table with its rows that were not yet written to it (less than a chunk), and a subgroup
  ``state`` holding the saved arrays (datasets) and scalars (attributes).

All data groups open with ``xarray.open_dataset(path, engine="h5netcdf", group=...)``.
Rows are buffered in fixed-size numpy arrays and appended to chunked, compressed datasets,
so memory does not grow with run length. A run is written to ``<path>.partial`` and renamed
to ``<path>`` by :meth:`RunWriter.close`: always when the run is complete, otherwise only if
``<path>`` does not exist (an existing file is replaced only by a finished run, never by an
interrupted or failed one). A writer abandoned without ``close`` leaves only the ``.partial``.

Disk space: HDF5 cannot recover from a write that fails half-way (a full disk): its file is
left inconsistent and the library may crash when it closes it. The writer therefore reserves
disk blocks for the file (``fallocate``) before it hands HDF5 anything to write: the rows it
passes, a margin for metadata, and the room that closing needs. A reservation that fails
raises :class:`WriteFailed` before HDF5 has written anything, so the file stays consistent,
``close(complete=False)`` still fits in what was reserved, and the last checkpoint is intact.
Where the file system cannot reserve blocks, the free space is checked instead; a write that
fails all the same "freezes" the file (HDF5's descriptor is pointed at /dev/null, so nothing
more reaches the disk), which leaves the ``.partial`` as a killed run would.

Crash safety: while a run goes, tables are written only in whole chunks, each once, and a
checkpoint is flushed to disk next to the previous one before that one is deleted. No data
the last flush left on disk is therefore moved or overwritten before the next flush, so a process
killed at any moment (SIGKILL) leaves a ``.partial`` file whose last checkpoint is intact:
:meth:`RunWriter.reopen_for_resume` cuts the tables back to it and continues.

Interruption: :meth:`RunWriter.flush` only advances its counters once every dataset has been
written, so it (and :meth:`RunWriter.close`) can be re-run after being interrupted by a
signal handler's exception without losing or duplicating rows. The recommended pattern is a
SIGTERM handler that raises (like SIGINT's ``KeyboardInterrupt``) inside a ``with RunWriter``
block, or sets a flag the step loop checks before calling ``close(complete=False)``.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
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

CONVENTIONS = "CF-1.8"
"""Root ``Conventions`` attribute: the data groups follow CF (units, long_name, flags)."""

_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_GROUPS_COMPARED = ("timeseries", "events", "snapshots")
_COMPARE_BLOCK = 1 << 16


class RunFileExists(Exception):
    """The run file already exists and overwriting was not requested."""


class WriteFailed(Exception):
    """The run file could not be written: no space left, a quota, an I/O error.

    ``frozen`` is False when the writer refused before HDF5 wrote anything (a reservation
    failed): the file is consistent and can still be closed with ``complete=False``. It is
    True when a write failed inside HDF5: the file was frozen as it was on disk and stays
    ``.partial``, like the file of a killed run.
    """

    def __init__(self, path: pathlib.Path, exc: BaseException, *, frozen: bool):
        self.path, self.frozen = pathlib.Path(path), frozen
        self.errno = getattr(exc, "errno", None)
        reason = os.strerror(self.errno) if self.errno else _first_line(exc)
        super().__init__(f"cannot write {self.path}: {reason}")


RESERVE_SLACK = 512 << 10
"""Bytes reserved beyond what is handed to HDF5, for its metadata and compression overhead."""
RESERVE_STEP = 8 << 20
"""Bytes reserved ahead at a time (when there is room), so that reservations are rare."""
FLUSH_BYTES = 8 << 20
"""Table bytes handed to HDF5 after which the file is flushed (whole chunks only)."""

_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_CANNOT_RESERVE = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV, errno.EPERM)


def _load_fallocate():
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError, TypeError):  # not Linux
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    return fallocate


_FALLOCATE = _load_fallocate() if ctypes.sizeof(ctypes.c_void_p) == 8 else None


def reserve_space(fd: int, size: int, start: int = 0) -> None:
    """Allocate disk blocks for bytes start..size of the open file `fd` (it grows to `size` if
    shorter), so that HDF5's writes there cannot fail for lack of space.

    Raises OSError (ENOSPC, EDQUOT, ...) when there is no room. Where the file system cannot
    allocate ahead, checks the free space instead (which another process may still take).
    """
    start = max(0, min(start, size))
    if _FALLOCATE is not None and size > start:
        while True:
            if _FALLOCATE(fd, 0, start, size - start) == 0:
                return
            err = ctypes.get_errno()
            if err != errno.EINTR:
                break
        if err not in _CANNOT_RESERVE:
            raise OSError(err, os.strerror(err))
    try:
        st, vfs = os.fstat(fd), os.fstatvfs(fd)
    except OSError:
        return
    if size > st.st_size and vfs.f_bavail * vfs.f_frsize < size - st.st_size:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _Space:
    """Keeps disk blocks reserved ahead of what HDF5 may write to one open file."""

    def __init__(self, f: h5py.File, floor: int):
        self.f = f
        self.fd = f.id.get_vfd_handle()
        self.floor = floor  # always kept: what closing the file may write
        self.reserved = 0
        self.allocated = 0  # blocks are known to be allocated below this offset
        self.closing = False

    def ensure(self, pending: int) -> None:
        """Make sure `pending` more bytes (plus metadata and closing) fit in reserved blocks."""
        if self.closing:
            return
        need = self.f.id.get_filesize() + pending + pending // 16 + RESERVE_SLACK + self.floor
        if need <= self.reserved:
            return
        # blocks below the file's end stay allocated unless HDF5 cut the file shorter since
        start = min(self.allocated, os.fstat(self.fd).st_size)
        try:
            reserve_space(self.fd, need + RESERVE_STEP, start)
            self.reserved = need + RESERVE_STEP
        except OSError as exc:
            if exc.errno not in _NO_ROOM:
                raise
            reserve_space(self.fd, need, start)  # no room for more: exactly what is needed
            self.reserved = need
        self.allocated = self.reserved

    def flushed(self) -> None:
        """HDF5 may cut the file to its own end when it flushes: reserve again next time."""
        self.reserved = 0

    def trim(self) -> None:
        """Drop the reserved blocks beyond the end of HDF5's data (before closing)."""
        size = self.f.id.get_filesize()
        if os.fstat(self.fd).st_size > size:
            os.ftruncate(self.fd, size)


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
    """Buffered appends to a group of equal-length 1-D datasets; ``index`` is a generated row number.

    While a run goes, only whole chunks are written (:meth:`write_chunks`), each exactly once,
    so a chunk on disk is never rewritten, moved or freed before the file is closed: what the
    last HDF5 flush left on disk stays valid even if the process is killed afterwards. The
    rows of the last, incomplete chunk stay in the buffer; a checkpoint stores them
    (:meth:`tail`) and :meth:`flush` writes them when the file is closed.
    """

    def __init__(self, group: h5py.Group, index: str | None, buffer_rows: int, on_write=None):
        self.on_write = on_write  # called with the bytes of each write, before and after it
        self.datasets = {name: group[name] for name in sorted(group)}
        self.index = index
        self.inputs = [name for name in self.datasets if name != index]
        self.chunk = min((ds.chunks or (CHUNK_ROWS,))[0] for ds in self.datasets.values())
        self.cap = -(-max(buffer_rows, self.chunk) // self.chunk) * self.chunk
        self.buf = {name: np.empty(self.cap, ds.dtype) for name, ds in self.datasets.items()}
        self.n = 0
        self.disk = min(ds.shape[0] for ds in self.datasets.values())

    @property
    def rows(self) -> int:
        return self.disk + self.n

    def append_one(self, values: Mapping[str, Any]) -> None:
        if self.n == self.cap:
            self.write_chunks()
        for name in self.inputs:
            self.buf[name][self.n] = values[name]
        self.n += 1

    def append_many(self, arrays: Mapping[str, np.ndarray], count: int) -> None:
        done = 0
        while done < count:
            if self.n == self.cap:
                self.write_chunks()
            left = count - done
            if self.n == 0 and self.disk % self.chunk == 0 and left >= self.chunk:
                whole = left // self.chunk * self.chunk  # whole chunks straight to the file
                self._write({name: arrays[name][done:done + whole] for name in self.inputs}, whole)
                done += whole
                continue
            take = min(self.cap - self.n, left)
            dst = slice(self.n, self.n + take)
            for name in self.inputs:
                self.buf[name][dst] = arrays[name][done:done + take]
            if self.index is not None:
                self.buf[self.index][dst] = np.arange(self.rows, self.rows + take)
            self.n += take
            done += take

    def _write(self, arrays: Mapping[str, np.ndarray], count: int) -> None:
        """Write `count` rows after the disk rows; the counter moves only once all are written."""
        start, stop = self.disk, self.disk + count
        nbytes = count * sum(ds.dtype.itemsize for ds in self.datasets.values())
        if self.on_write is not None:
            self.on_write(nbytes, False)
        for name, ds in self.datasets.items():
            ds.resize((stop,))
            if name == self.index and name not in arrays:
                ds[start:stop] = np.arange(start, stop, dtype=ds.dtype)
            else:
                ds[start:stop] = np.asarray(arrays[name][:count], dtype=ds.dtype)
        self.disk = stop
        if self.on_write is not None:
            self.on_write(nbytes, True)

    def write_chunks(self) -> None:
        """Write the buffered rows that complete chunks; keep the rest (re-runnable)."""
        count = (self.disk + self.n) // self.chunk * self.chunk - self.disk
        if count <= 0:
            return
        self._write({name: buf[:count] for name, buf in self.buf.items()}, count)
        for buf in self.buf.values():
            buf[:self.n - count] = buf[count:self.n].copy()
        self.n -= count

    def flush(self) -> None:
        """Write every buffered row, the incomplete last chunk too (re-runnable)."""
        if self.n == 0:
            return
        count = self.n
        self._write({name: buf[:count] for name, buf in self.buf.items()}, count)
        self.n = 0

    def tail(self) -> dict[str, np.ndarray]:
        """The buffered rows, not yet on disk (after :meth:`write_chunks`, less than a chunk)."""
        return {name: buf[:self.n].copy() for name, buf in self.buf.items()}

    @property
    def buffer_bytes(self) -> int:
        return sum(buf.nbytes for buf in self.buf.values())

    def check_restore(self, disk_rows: int, tail: Mapping[str, np.ndarray]) -> None:
        """Raise ValueError unless :meth:`restore` can use this checkpoint (reads only)."""
        for name, ds in self.datasets.items():
            if ds.ndim != 1:
                raise ValueError(f"{ds.name} is not a 1-D column")
            if ds.shape[0] < disk_rows:
                raise ValueError(f"{ds.name} has {ds.shape[0]} rows, fewer than the checkpoint's {disk_rows}")
        if disk_rows < 0:
            raise ValueError(f"the checkpoint's row count of {sorted(self.datasets)} is negative")
        if set(tail) != set(self.datasets):
            raise ValueError(f"the checkpoint's rows of {sorted(self.datasets)} are missing or different")
        lengths = {np.shape(values) for values in tail.values()}
        if len(lengths) > 1 or any(len(shape) != 1 for shape in lengths):
            raise ValueError(f"the checkpoint's rows of {sorted(self.datasets)} are not equal-length columns")
        count = len(next(iter(tail.values()))) if tail else 0
        if count > self.cap:
            raise ValueError(f"the checkpoint holds {count} buffered rows, more than the buffer's {self.cap}")
        for name, values in tail.items():
            if not np.can_cast(np.asarray(values).dtype, self.buf[name].dtype, "same_kind"):
                raise ValueError(f"the checkpoint's rows of {name} have the wrong type")

    def restore(self, disk_rows: int, tail: Mapping[str, np.ndarray]) -> None:
        """Cut the datasets to `disk_rows` and buffer `tail` after them (resuming a checkpoint)."""
        self.check_restore(disk_rows, tail)
        count = len(next(iter(tail.values()))) if tail else 0
        for ds in self.datasets.values():
            ds.resize((disk_rows,))
        self.disk, self.n = disk_rows, count
        for name, buf in self.buf.items():
            buf[:count] = tail[name]


class RunWriter:
    """Streams one run to ``<path>.partial``; :meth:`close` renames it to ``path``.

    Every write is preceded by a reservation of disk space; a write that cannot be made
    raises :class:`WriteFailed` (see the module's *Disk space*), and the writer refuses
    further writes except the closing ones.
    """

    def __init__(self, path: str | os.PathLike, *, attrs: Mapping[str, Any],
                 variables: Sequence[Column], event_tables: Mapping[str, Sequence[Column]],
                 snapshot_columns: Sequence[Column] | None = None,
                 force: bool = False, buffer_rows: int = 1024):
        path = pathlib.Path(path)
        if path.exists() and not force:
            raise RunFileExists(f"run file {path} already exists; use --force to overwrite it")
        _validate(attrs, variables, event_tables, buffer_rows, snapshot_columns)
        partial = _partial_of(path)
        partial.unlink(missing_ok=True)
        try:
            f = h5py.File(partial, "w")
        except OSError as exc:
            if partial.exists() and not partial.stat().st_size:
                partial.unlink(missing_ok=True)
            if exc.errno in _NO_ROOM:
                raise WriteFailed(partial, exc, frozen=False) from None
            raise
        try:
            columns = len(variables) + sum(map(len, event_tables.values())) + len(snapshot_columns or ())
            try:  # the empty file's metadata, and the closing of a run that stops at once
                floor = 2 * (len(variables) + 1) * 8 * max(buffer_rows, CHUNK_ROWS)
                reserve_space(f.id.get_vfd_handle(), RESERVE_SLACK + floor + 4096 * (columns + 8))
            except OSError as exc:
                raise WriteFailed(partial, exc, frozen=False) from None
            _set_attr(f, "Conventions", CONVENTIONS)
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
            if snapshot_columns is not None:
                snaps = f.create_group("snapshots")
                cells = snaps.create_group("cells")
                row = _create_column(cells, Column("row", "int64", "", "row number"), None)
                row.make_scale("row")
                _create_column(cells, Column("time_h", "float64", "h", "time of the snapshot"), row)
                for col in snapshot_columns:
                    _create_column(cells, col, row)
                times = snaps.create_group("times")
                stamp = _create_column(times, Column("time_h", "float64", "h", "time of the snapshot"), None)
                stamp.make_scale("time_h")
                _create_column(times, Column("first_row", "int64", "", "first row of the snapshot in cells"), stamp)
                _create_column(times, Column("rows", "int64", "", "rows (live cells) of the snapshot"), stamp)
            self._bind(path, f, buffer_rows)
            with self._writing():
                self._sync()  # from now on a killed run leaves a readable .partial with its attributes
        except (OSError, RuntimeError) as exc:  # a write failed: nothing is kept
            _freeze(f)  # HDF5 must not try again what failed
            partial.unlink(missing_ok=True)
            raise WriteFailed(partial, exc, frozen=False) from None
        except BaseException:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - the file is thrown away
                pass
            partial.unlink(missing_ok=True)
            raise

    def _bind(self, path: pathlib.Path, f: h5py.File, buffer_rows: int) -> None:
        self.path, self.partial_path = path, _partial_of(path)
        self._file: h5py.File | None = f
        self._where: pathlib.Path | None = None  # where close() left the file
        self._failure: WriteFailed | None = None
        self._unflushed = 0
        self.checkpoint_step: int | None = None
        tables = _tables_of(f, buffer_rows, self._on_write)
        self._series = tables["timeseries_rows"]
        self._variables = [name for name in self._series.inputs if name != "time_h"]
        self._events = {key[len("events_rows_"):]: table for key, table in tables.items()
                        if key.startswith("events_rows_")}
        self._snapshots = {key[len("snapshots_rows_"):]: table for key, table in tables.items()
                           if key.startswith("snapshots_rows_")}
        try:
            self._space: _Space | None = _Space(f, sum(t.buffer_bytes for t in tables.values()) + (64 << 10))
        except (OSError, RuntimeError, ValueError, TypeError):  # a driver without a file descriptor
            self._space = None

    def _tables(self) -> dict[str, _Table]:
        """Every streamed table by the name its checkpoint row count uses."""
        tables = {"timeseries_rows": self._series}
        tables.update({f"events_rows_{name}": table for name, table in self._events.items()})
        tables.update({f"snapshots_rows_{name}": table for name, table in self._snapshots.items()})
        return tables

    # ------------------------------------------------------------------ disk space and failures

    @contextlib.contextmanager
    def _writing(self, closing: bool = False):
        """Turn a failed write into WriteFailed (freezing the file if HDF5 had started it)."""
        f = self._open_file()
        if self._failure is not None and not (closing and not self._failure.frozen):
            raise self._failure  # no more writes after a failure, except the closing ones
        try:
            yield f
        except WriteFailed as failure:
            self._failure = self._failure or failure
            raise
        except (OSError, RuntimeError) as exc:
            failure = WriteFailed(self.partial_path, exc, frozen=True)
            self._failure = failure
            _freeze(f)
            raise failure from None

    def _reserve(self, pending: int) -> None:
        if self._space is None:
            return
        try:
            self._space.ensure(self._unflushed + pending)
        except OSError as exc:
            raise WriteFailed(self.partial_path, exc, frozen=False) from None

    def _on_write(self, nbytes: int, done: bool) -> None:
        """Called by the tables around each write of `nbytes` to HDF5."""
        if not done:
            self._reserve(nbytes)
            return
        self._unflushed += nbytes
        if self._unflushed >= FLUSH_BYTES and (self._space is None or not self._space.closing):
            self._sync()

    def _sync(self) -> None:
        """Flush HDF5's caches to the OS (within the reservation)."""
        self._reserve(0)
        self._file.flush()
        self._unflushed = 0
        if self._space is not None:
            self._space.flushed()

    def _fsync(self) -> None:
        try:
            os.fsync(self._file.id.get_vfd_handle())
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):
                raise
        except (RuntimeError, ValueError, TypeError):  # no file descriptor (another driver)
            pass

    @property
    def failed(self) -> WriteFailed | None:
        """The write failure that stopped this writer, if any."""
        return self._failure

    # ------------------------------------------------------------------ contents

    @property
    def has_snapshots(self) -> bool:
        return bool(self._snapshots)

    @property
    def has_checkpoint(self) -> bool:
        """Whether the file holds a checkpoint (so the run can be resumed)."""
        return self.checkpoint_step is not None

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Add or replace root attributes (e.g. to record a resume); ``complete`` is reserved."""
        if "complete" in attrs:
            raise ValueError("the 'complete' attribute is managed by the writer")
        with self._writing() as f:
            self._reserve(sum(len(str(value)) for value in attrs.values()) + 4096 * len(attrs))
            for key, value in attrs.items():
                _set_attr(f, key, value)

    def append_row(self, time_h: float, values: Mapping[str, float]) -> None:
        """Buffer one time-series row; every variable is required and no other key is allowed."""
        self._open_file()
        if len(values) != len(self._variables) or not all(v in values for v in self._variables):
            missing = sorted(set(self._variables) - set(values))
            unknown = sorted(set(values) - set(self._variables))
            raise KeyError(f"append_row: missing variables {missing}, unknown variables {unknown}")
        with self._writing():
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
        with self._writing():
            target.append_many(arrays, lengths.pop())

    def append_snapshot(self, time_h: float, columns: Mapping[str, np.ndarray]) -> None:
        """Append one per-cell snapshot: equal-length 1-D arrays, one per snapshot column.

        The rows are streamed through the same fixed-size buffers as events (long snapshots
        go straight to the file), so memory does not grow with the number of snapshots.
        """
        self._open_file()
        if not self._snapshots:
            raise KeyError("this run file was created without snapshot columns")
        cells, times = self._snapshots["cells"], self._snapshots["times"]
        expected = [name for name in cells.inputs if name != "time_h"]
        if set(columns) != set(expected):
            raise KeyError(f"snapshots: expected columns {expected}, got {sorted(columns)}")
        arrays = {name: np.asarray(value) for name, value in columns.items()}
        lengths = {arr.shape[0] if arr.ndim == 1 else -1 for arr in arrays.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ValueError("snapshots: columns must be 1-D arrays of equal length")
        for name, arr in arrays.items():
            if not np.can_cast(arr.dtype, cells.buf[name].dtype, "same_kind"):
                raise TypeError(f"snapshots/cells/{name}: cannot store {arr.dtype} as {cells.buf[name].dtype}")
        count = lengths.pop()
        first = cells.rows
        arrays["time_h"] = np.full(count, time_h, dtype=np.float64)
        with self._writing():
            cells.append_many(arrays, count)
            times.append_one({"time_h": time_h, "first_row": first, "rows": count})

    def flush(self) -> None:
        """Write all buffered rows to the file and flush HDF5's caches to the OS.

        This writes incomplete chunks, which later rows rewrite; a run that may be killed
        relies on :meth:`save_checkpoint` instead, which never rewrites a chunk.
        """
        with self._writing():
            for table in self._tables().values():
                table.flush()
            self._sync()

    def save_checkpoint(self, step: int, state: Mapping[str, Any]) -> None:
        """Replace the checkpoint with ``state`` and the current row counts; fsyncs the file.

        Whole chunks are written to the tables; the rows of their incomplete last chunks are
        stored in the checkpoint (``checkpoint/tails``) instead, so that no chunk written
        before this checkpoint is ever rewritten while the run goes on. The checkpoint is
        built as ``checkpoint.tmp`` (marked ``saved=1`` when whole) and then renamed. Disk
        space for all of it is reserved first: a full disk leaves the previous checkpoint.
        """
        for key in state:
            _check_name(key, "checkpoint entry")
        with self._writing() as f:
            tables = self._tables()
            for table in tables.values():
                table.write_chunks()
            tails = {key: table.tail() for key, table in tables.items()}
            size = sum(v.nbytes for rows in tails.values() for v in rows.values())
            size += sum(np.asarray(v).nbytes if not isinstance(v, (str, bytes)) else len(v) for v in state.values())
            self._reserve(size + 4096 * (len(state) + sum(map(len, tails.values())) + 8))
            if "checkpoint.tmp" in f:
                del f["checkpoint.tmp"]
            group = f.create_group("checkpoint.tmp")
            group.attrs["step"] = int(step)
            stored = group.create_group("tails")
            for key, table in tables.items():
                group.attrs[key] = table.rows
                rows = stored.create_group(key)
                for name, values in tails[key].items():
                    rows.create_dataset(name, data=values)
            saved = group.create_group("state")
            for key, value in state.items():
                _put_state(saved, key, value)
            group.attrs["saved"] = 1
            # The new checkpoint goes to disk next to the old one before the old one is deleted:
            # space freed by the deletion is then only reused after the second flush, so a
            # process killed at any point leaves at least one whole checkpoint on disk.
            self._sync()
            if "checkpoint" in f:
                del f["checkpoint"]
            f.move("checkpoint.tmp", "checkpoint")
            self._sync()
            self._fsync()
        self.checkpoint_step = int(step)

    def close(self, complete: bool) -> pathlib.Path:
        """Flush, set ``complete``, close and rename; safe to call again. Returns the file's path.

        The ``.partial`` file is renamed to ``path`` when the run is complete, or when it is
        not but ``path`` does not exist; otherwise (an earlier run file exists and this run
        did not finish), and after a write failure that froze it, the ``.partial`` is kept
        and its path returned. Raises WriteFailed if the closing writes fail (the file is
        then frozen and kept as ``.partial``).
        """
        failure = None
        if self._file:  # an h5py File is false once closed
            if self._space is not None:
                self._space.closing = True  # closing writes fit in what is kept reserved
            try:
                with self._writing(closing=True) as f:
                    for table in self._tables().values():
                        table.flush()
                    f.attrs["complete"] = int(bool(complete))
                    f.flush()
                    if self._space is not None:
                        self._space.trim()
                    self._fsync()
                    f.close()
            except WriteFailed as exc:
                failure = exc
        if self._where is None:
            if self._failure is not None and self._failure.frozen:
                self._where = self.partial_path
            elif (complete and self._failure is None) or not self.path.exists():
                os.replace(self.partial_path, self.path)
                _fsync(self.path.parent)
                self._where = self.path
            else:
                self._where = self.partial_path
        if failure is not None:
            raise failure
        return self._where

    def _open_file(self) -> h5py.File:
        if not self._file:
            if self._failure is not None and self._failure.frozen:
                raise ValueError(f"run file {self.partial_path} could not be written and was closed")
            raise ValueError(f"run file {self.path} is already closed")
        return self._file

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        """Close with ``complete=False`` unless ``close(complete=True)`` was already called."""
        try:
            self.close(complete=False)
        except WriteFailed:
            if exc is None:
                raise
        return False

    @classmethod
    def reopen_for_resume(cls, path: str | os.PathLike, *, buffer_rows: int = 1024,
                          restart_without_checkpoint: bool = False,
                          validate=None) -> tuple[RunWriter, int, dict | None]:
        """Reopen an incomplete run at its checkpoint, dropping rows written after it.

        Uses ``path.partial`` if it exists (the newest attempt: a killed run, or a run that
        did not replace an existing ``path``), else ``path``. The new rows go to
        ``path.partial`` until :meth:`close`. Returns ``(writer, checkpoint_step, state)``.
        A run without a checkpoint is refused, or with ``restart_without_checkpoint``
        emptied to start over: ``(writer, 0, None)``.

        Everything is read and checked with the file open read-only first, then
        ``validate(step, state, file)`` is called (e.g. to restore a model: whatever it
        raises ends the resume), then disk space is reserved; only then is the file renamed
        and changed. A refused resume (any exception until then) leaves the file as it was.
        """
        path = pathlib.Path(path)
        partial = _partial_of(path)
        source = partial if partial.exists() else path
        if not source.exists():
            raise FileNotFoundError(f"no run file {path} (nor {partial}) to resume")
        with h5py.File(source, "r") as f:
            if int(_plain(f.attrs.get("complete", 0)) or 0) == 1:
                raise ValueError(f"run file {source} is complete; there is nothing to resume")
            if not ({"checkpoint", "checkpoint.tmp"} & set(f)) and not restart_without_checkpoint:
                raise ValueError(f"run file {source} has no checkpoint; it cannot be resumed")
            tables = _tables_of(f, buffer_rows)
            found = _usable_checkpoint(f, source, tables)
            if found is not None:
                name, step, state, rows, tails = found
            elif restart_without_checkpoint:
                name, step, state = None, 0, None
            else:
                raise ValueError(f"run file {source} has no readable checkpoint; it cannot be resumed")
            if validate is not None:
                validate(step, state, f)
            floor = sum(table.buffer_bytes for table in tables.values())
        fd = os.open(source, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            try:
                reserve_space(fd, size + RESERVE_SLACK + floor + (64 << 10))
            except OSError as exc:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, size)
                raise WriteFailed(source, exc, frozen=False) from None
        finally:
            os.close(fd)
        if source != partial:
            os.replace(source, partial)
        f = h5py.File(partial, "r+")
        try:
            writer = cls.__new__(cls)
            writer._bind(path, f, buffer_rows)
            with writer._writing():
                if name is not None:
                    for key, table in writer._tables().items():
                        table.restore(rows[key] - _length(tails[key]), tails[key])
                    if name != "checkpoint":  # killed between saving a checkpoint and renaming it
                        if "checkpoint" in f:
                            del f["checkpoint"]
                        f.move(name, "checkpoint")
                    writer.checkpoint_step = int(step)
                else:
                    for table in writer._tables().values():
                        table.restore(0, {col: ds[:0] for col, ds in table.datasets.items()})
                if "checkpoint.tmp" in f:
                    del f["checkpoint.tmp"]
                writer._sync()
        except BaseException:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - already frozen or closed
                pass
            raise
        return writer, step, state


def _freeze(f: h5py.File) -> None:
    """Point HDF5's file descriptor at /dev/null and close the file: what HDF5 still had to
    write goes nowhere, so the file on disk stays as it was (like the file of a killed run)
    and the library does not fail again, or crash, when it closes the file."""
    try:
        fd = f.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    except Exception:  # noqa: BLE001 - already closed, or a driver without a descriptor
        pass
    try:
        f.close()
    except Exception:  # noqa: BLE001 - what is left open is written to /dev/null at exit
        pass


def _tables_of(f: h5py.File, buffer_rows: int, on_write=None) -> dict[str, _Table]:
    """The streamed tables of a run file by checkpoint key; ValueError if the layout is wrong."""
    def table(group_path: str, index: str | None) -> _Table:
        group = f.get(group_path)
        if not isinstance(group, h5py.Group) or not len(group):
            raise ValueError(f"{group_path} is missing or not a group of columns")
        for name, ds in group.items():
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "iuf" \
                    or ds.maxshape != (None,) or not ds.chunks:
                raise ValueError(f"{group_path}/{name} is not an extendable 1-D column")
        if index is not None and index not in group:
            raise ValueError(f"{group_path} has no {index} column")
        return _Table(group, index, buffer_rows, on_write)

    tables = {"timeseries_rows": table("timeseries", None)}
    if "time_h" not in tables["timeseries_rows"].datasets:
        raise ValueError("timeseries has no time_h column")
    events = f.get("events")
    if not isinstance(events, h5py.Group):
        raise ValueError("events is missing or not a group")
    for name in events:
        tables[f"events_rows_{name}"] = table(f"events/{name}", "event")
    if "snapshots" in f:
        tables["snapshots_rows_cells"] = table("snapshots/cells", "row")
        tables["snapshots_rows_times"] = table("snapshots/times", None)
        for column in ("time_h", "first_row", "rows"):
            if column not in tables["snapshots_rows_times"].datasets:
                raise ValueError(f"snapshots/times has no {column} column")
    return tables


def _validate(attrs: Mapping[str, Any], variables: Sequence[Column],
              event_tables: Mapping[str, Sequence[Column]], buffer_rows: int,
              snapshot_columns: Sequence[Column] | None = None) -> None:
    if "complete" in attrs:
        raise ValueError("the 'complete' attribute is managed by the writer")
    if buffer_rows < 1:
        raise ValueError("buffer_rows must be at least 1")
    for table in event_tables:
        _check_name(table, "event table")
    owners = [("timeseries", variables, ("time_h",))]
    owners += [(f"events/{t}", cols, ("event",)) for t, cols in event_tables.items()]
    if snapshot_columns is not None:
        owners.append(("snapshots/cells", snapshot_columns, ("row", "time_h")))
    for owner, columns, reserved in owners:
        names = [col.name for col in columns]
        for name in names:
            _check_name(name, f"{owner} column")
        if set(reserved) & set(names) or len(set(names)) != len(names):
            raise ValueError(f"{owner}: column names must be unique and not "
                             f"{' or '.join(map(repr, reserved))}")


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


def _read_checkpoint(group: h5py.Group) -> tuple[int, dict]:
    saved = group["state"]
    state: dict[str, Any] = {key: _plain(value) for key, value in saved.attrs.items()}
    for key, ds in saved.items():
        if h5py.check_string_dtype(ds.dtype):
            state[key] = np.asarray(ds.asstr()[...], dtype=str)
        else:
            state[key] = ds[...]
    return int(group.attrs["step"]), state


def _length(columns: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _usable_checkpoint(f: h5py.File, source: pathlib.Path, tables: Mapping[str, _Table]):
    """``(name, step, state, rows, tails)`` of the newest checkpoint that reads whole, or None.

    ``checkpoint`` is tried first, then a ``checkpoint.tmp`` marked saved (a run killed
    while replacing its checkpoint). ``rows`` maps each table's key to its row count and
    ``tails`` to its rows that are not in the table (older layouts: read from the table).
    """
    problems = []
    for name in ("checkpoint", "checkpoint.tmp"):
        try:
            group = f.get(name)
            if not isinstance(group, h5py.Group) or (name != "checkpoint" and not _is_one(group.attrs.get("saved"))):
                continue
            step, state = _read_checkpoint(group)
            rows, tails = {}, {}
            for key, table in tables.items():
                if key not in group.attrs:
                    raise ValueError(f"it does not record {key}")
                rows[key] = int(group.attrs[key])
                if "tails" in group and key in group["tails"]:
                    tails[key] = {col: ds[...] for col, ds in group["tails"][key].items()}
                else:  # an older layout without tails: the rows are all in the table
                    if any(ds.shape[0] < rows[key] for ds in table.datasets.values()):
                        raise ValueError(f"the table has fewer rows than its {key} ({rows[key]})")
                    first = rows[key] // table.chunk * table.chunk
                    tails[key] = {col: ds[first:rows[key]] for col, ds in table.datasets.items()}
                table.check_restore(rows[key] - _length(tails[key]), tails[key])
            return name, step, state, rows, tails
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            # unreadable: try the other one
            problems.append(f"{name}: {_first_line(exc)}")
    if problems:
        raise ValueError(f"run file {source}: no usable checkpoint ({'; '.join(problems)})")
    return None


def _is_one(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value == 1


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


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


def read_snapshot_times(path: str | os.PathLike) -> np.ndarray:
    """Times (h) of the per-cell snapshots of a run file (empty if it has none)."""
    with h5py.File(path, "r") as f:
        if "snapshots" not in f:
            return np.empty(0)
        return f["snapshots/times/time_h"][...]


def read_snapshot(path: str | os.PathLike, index: int) -> dict[str, np.ndarray]:
    """The per-cell columns of snapshot number ``index`` (as in :func:`read_snapshot_times`)."""
    with h5py.File(path, "r") as f:
        if "snapshots" not in f:
            raise KeyError(f"{path} has no snapshots")
        times = f["snapshots/times"]
        count = times["time_h"].shape[0]
        if not -count <= index < count:
            raise IndexError(f"{path} has {count} snapshot(s); there is no snapshot {index}")
        first, rows = int(times["first_row"][index]), int(times["rows"][index])
        cells = f["snapshots/cells"]
        return {name: cells[name][first:first + rows] for name in sorted(cells)
                if name not in ("row", "time_h")}


def read_checkpoint(path: str | os.PathLike) -> tuple[int, dict] | None:
    """``(step, state)`` of the run file's checkpoint, or None if it has none."""
    with h5py.File(path, "r") as f:
        return _read_checkpoint(f["checkpoint"]) if "checkpoint" in f else None


def compare_runs(path_a: str | os.PathLike, path_b: str | os.PathLike, *,
                 rtol: float = 0.0, atol: float = 0.0) -> Difference | None:
    """The first difference between the data of two run files, or None if they match.

    Groups are visited in the order timeseries, events, snapshots (subgroups by name);
    within a group the earliest differing row wins, ties going to the first variable by
    name; structural differences (missing variable, dtype, trailing shape) count as row -1.
    With ``rtol == atol == 0`` values must be bit-identical (NaN equals NaN, -0.0 != 0.0);
    otherwise ``numpy.isclose`` decides. Root attributes and the checkpoint are ignored.
    Raises NotARunFile if either file lacks the run-file layout.
    """
    with h5py.File(path_a, "r") as fa, h5py.File(path_b, "r") as fb:
        for path, f in ((path_a, fa), (path_b, fb)):
            if not is_run_layout(f):
                raise NotARunFile(f"{path}: not a blinasim run file (no timeseries/time_h dataset)")
        for top in _GROUPS_COMPARED:
            for group in sorted(_group_paths(fa, top) | _group_paths(fb, top)):
                found = _compare_group(fa, fb, group, rtol, atol)
                if found is not None:
                    return found
    return None


class NotARunFile(ValueError):
    """An HDF5 file that is not a run file."""


def is_run_layout(f: h5py.File) -> bool:
    """Whether an open HDF5 file has the run-file layout (a ``timeseries/time_h`` column)."""
    group = f.get("timeseries")
    return isinstance(group, h5py.Group) and isinstance(group.get("time_h"), h5py.Dataset)


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
    if (a is None or b is None or a.shape is None or b.shape is None or a.dtype != b.dtype
            or a.ndim != b.ndim or a.shape[1:] != b.shape[1:]):
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
