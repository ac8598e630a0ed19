"""The HDF5 cohort file: patient table, summary series, cohort summary (docs/cohorts.md).

Layout::

    /               attrs: format, identity, seed, patients, cohort and base scenario texts,
                           complete, patients_done, patients_failed, created, updated, ...
    /patients/      one dataset per column, one row per patient: patient, seed, status,
                    error, overrides, each covariate, bsa_m2, per_m2_dosing, each endpoint
    /series/time_h  the summary time grid (h)
    /series/NAME    (patients x times) float64, NaN until the patient is done
    /summary/rates  name, meaning, events, n, rate, ci_low, ci_high (Wilson 95%)
    /summary/spread name, n, median, q1, q3
    /timing/wall_s  seconds each patient took (the only content that varies between reruns)

Rows are written as patients finish and the file is flushed after each, so an
interrupted cohort keeps every finished patient and a rerun continues it.
"""
from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import h5py
import numpy as np

from blinasim.cohort.covariates import COVARIATES
from blinasim.cohort.endpoints import ENDPOINTS, summarise
from blinasim.cohort.patient import SERIES, PatientDraw, PatientResult
from blinasim.cohort.survival import rfs_lines
from blinasim.model import variable_meta

FORMAT = "blinasim-cohort"
FORMAT_VERSION = 1
STATUS = ("pending", "done", "failed")
PENDING, DONE, FAILED = range(3)
DERIVED = (("bsa_m2", "m2", "body surface area (Mosteller)"),
           ("per_m2_dosing", "0/1", "1 when the label rule dosed this patient per m2"))
_STR = h5py.string_dtype()
_VOLATILE_ATTRS = ("created", "updated", "command_line", "workers", "platform", "library_versions")
"""Root attributes that differ between reruns of the same cohort; compare skips them and /timing."""


class CohortFileError(Exception):
    """A cohort file that cannot be created, continued or read (one line, exit code 2)."""


def is_cohort_file(path: str | os.PathLike) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except OSError:
        return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CohortFile:
    """An open cohort file being filled."""

    def __init__(self, f: h5py.File):
        self.f = f
        self.path = pathlib.Path(f.filename)
        self._status = f["patients/status"][...]  # kept in memory: no O(patients) read per result

    # ----------------------------------------------------------------- creating and opening
    @classmethod
    def create(cls, path: pathlib.Path, attrs: Mapping[str, Any], draws: list[PatientDraw],
               times_h: np.ndarray) -> CohortFile:
        f = h5py.File(path, "w", track_order=True)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "complete": 0,
                        "patients_done": 0, "patients_failed": 0, "created": _now(), "updated": _now()})
        n = len(draws)
        table = f.create_group("patients", track_order=True)
        _column(table, "patient", np.arange(n, dtype=np.int64), "", "patient number (0-based)")
        _column(table, "seed", np.array([d.seed for d in draws], dtype=np.int64), "", "simulation seed")
        status = _column(table, "status", np.zeros(n, dtype=np.int8), "", "patient status")
        status.attrs["flags"] = ",".join(STATUS)
        _column(table, "error", np.array([d.problem for d in draws], dtype=object), "", "why the patient failed", dtype=_STR)
        _column(table, "overrides", np.array(["\n".join(d.overrides) for d in draws], dtype=object), "",
                "scenario overrides (PATH=VALUE lines) that make this patient from the base scenario", dtype=_STR)
        for c in COVARIATES:
            values = np.array([d.covariates.get(c.name, math.nan) for d in draws])
            if np.isfinite(values).any():
                _column(table, c.name, values, c.unit, c.doc)
        for name, unit, doc in DERIVED:
            values = np.array([d.derived.get(name, math.nan) for d in draws])
            if np.isfinite(values).any():
                _column(table, name, values, unit, doc)
        for e in ENDPOINTS:
            _column(table, e.name, np.full(n, math.nan), e.unit, e.doc)
        series = f.create_group("series", track_order=True)
        _column(series, "time_h", times_h, "h", "time since the start of treatment")
        for name in SERIES:
            units, long_name = variable_meta(name)
            data = series.create_dataset(name, shape=(n, len(times_h)), dtype="f8", fillvalue=math.nan,
                                         chunks=(1, len(times_h)), compression="gzip", shuffle=True)
            data.attrs.update({"units": units, "long_name": long_name})
        _column(f.create_group("timing"), "wall_s", np.full(n, math.nan), "s", "wall time of the patient's run")
        f.flush()
        return cls(f)

    @classmethod
    def open(cls, path: pathlib.Path) -> CohortFile:
        try:
            f = h5py.File(path, "r+")
        except OSError as exc:
            raise CohortFileError(f"{path}: cannot open the cohort file ({str(exc).splitlines()[0]})") from None
        if f.attrs.get("format") != FORMAT:
            f.close()
            raise CohortFileError(f"{path}: not a blinasim cohort file")
        return cls(f)

    @property
    def identity(self) -> str:
        return str(self.f.attrs["identity"])

    @property
    def patients(self) -> int:
        return int(self.f["patients/patient"].shape[0])

    def status(self) -> np.ndarray:
        return self._status.copy()

    # ----------------------------------------------------------------- filling
    def write_result(self, result: PatientResult) -> None:
        """Store one finished patient and flush, so a crash after this keeps it."""
        i, table = result.index, self.f["patients"]
        self._status[i] = DONE if result.ok else FAILED
        table["status"][i] = self._status[i]
        table["error"][i] = result.error
        for name, value in result.endpoints.items():
            table[name][i] = value
        for name, values in result.series.items():
            self.f["series"][name][i, :] = values
        self.f["timing/wall_s"][i] = result.wall_s
        self._count()
        self.f.flush()

    def _count(self) -> None:
        status = self._status
        self.f.attrs["patients_done"] = int(np.count_nonzero(status == DONE))
        self.f.attrs["patients_failed"] = int(np.count_nonzero(status == FAILED))
        self.f.attrs["updated"] = _now()

    def write_summary(self) -> None:
        """(Re)write /summary over the patients done so far; mark the file complete when none is pending."""
        status = self.status()
        done = np.flatnonzero(status == DONE)
        table = self.f["patients"]
        columns = {e.name: table[e.name][...] for e in ENDPOINTS}
        rates, spreads = summarise([{name: float(values[i]) for name, values in columns.items()} for i in done])
        if "summary" in self.f:
            del self.f["summary"]
        summary = self.f.create_group("summary", track_order=True)
        summary.attrs["patients"] = len(done)
        _table(summary.create_group("rates", track_order=True), rates)
        _table(summary.create_group("spread", track_order=True), spreads)
        self.f.attrs["complete"] = int(not np.any(status == PENDING))
        self._count()
        self.f.flush()

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        self.f.attrs.update(dict(attrs))

    def close(self) -> None:
        self.f.close()


def _column(group: h5py.Group, name: str, values: np.ndarray, units: str, doc: str, dtype=None) -> h5py.Dataset:
    data = group.create_dataset(name, data=values, dtype=dtype or values.dtype)
    data.attrs.update({"units": units, "long_name": doc})
    return data


def _table(group: h5py.Group, rows: list) -> None:
    if not rows:
        return
    for key in rows[0].__dataclass_fields__:
        values = [getattr(row, key) for row in rows]
        if isinstance(values[0], str):
            group.create_dataset(key, data=np.array(values, dtype=object), dtype=_STR)
        else:
            group.create_dataset(key, data=np.array(values))


# --------------------------------------------------------------------------- reading

def read_cohort(path: str | os.PathLike) -> dict[str, Any]:
    """The whole cohort file as plain arrays: attrs, patients, series, rates, spread."""
    def group(g: h5py.Group) -> dict[str, np.ndarray]:
        return {name: (g[name].asstr()[...] if g[name].dtype == _STR else g[name][...]) for name in g}

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise CohortFileError(f"{path}: not a blinasim cohort file")
        out = {"attrs": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()},
               "patients": group(f["patients"]), "series": group(f["series"])}
        summary = f.get("summary")
        out["rates"] = group(summary["rates"]) if summary is not None else {}
        out["spread"] = group(summary["spread"]) if summary is not None else {}
    return out


def compare_cohorts(a: str | os.PathLike, b: str | os.PathLike) -> str | None:
    """The first difference between two cohort files' results (None when equal).

    Compares every dataset bit for bit (NaN equal to NaN) and the root attributes, except
    the timings and the attributes that describe the rerun itself (time, command, workers).
    """
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for key in sorted(set(fa.attrs) | set(fb.attrs)):
            if key in _VOLATILE_ATTRS:
                continue
            va, vb = fa.attrs.get(key), fb.attrs.get(key)
            if not np.array_equal(np.asarray(va), np.asarray(vb)):
                return f"attribute {key} differs: {va!r} vs {vb!r}"
        names_a, names_b = _datasets(fa), _datasets(fb)
        if names_a != names_b:
            return f"datasets differ: {sorted(set(names_a) ^ set(names_b))}"
        for name in names_a:
            x, y = fa[name][...], fb[name][...]
            if x.dtype.kind == "O" or y.dtype.kind == "O":
                equal = x.shape == y.shape and all(p == q for p, q in zip(x.ravel(), y.ravel()))
            else:
                equal = np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
            if not equal:
                return f"{name} differs"
    return None


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                 and not name.startswith("timing") else None)
    return sorted(names)


def summary_lines(path: str | os.PathLike) -> list[str]:
    """The cohort summary as printed after a run: counts, rates with 95% CI, medians."""
    cohort = read_cohort(path)
    attrs, status = cohort["attrs"], cohort["patients"]["status"]
    done, failed = int(np.count_nonzero(status == DONE)), int(np.count_nonzero(status == FAILED))
    lines = [f"{path}: {len(status)} patients, {done} done, {failed} failed"
             + ("" if attrs.get("complete") else f", {len(status) - done - failed} not yet run")]
    rates = cohort["rates"]
    if rates and done:
        lines.append(f"  {'endpoint':<38} {'events/n':>9} {'rate':>6}  95% CI")
        for i, meaning in enumerate(rates["meaning"]):
            lines.append(f"  {meaning:<38} {rates['events'][i]:>4}/{rates['n'][i]:<4} "
                         f"{rates['rate'][i]:6.1%}  {rates['ci_low'][i]:.1%}-{rates['ci_high'][i]:.1%}")
        spread = cohort["spread"]
        for i, name in enumerate(spread["name"]):
            if spread["n"][i]:
                lines.append(f"  {name}: median {spread['median'][i]:.3g} "
                             f"(IQR {spread['q1'][i]:.3g}-{spread['q3'][i]:.3g}, n={spread['n'][i]})")
        lines.extend(rfs_lines(cohort["patients"], status == DONE))
    return lines
