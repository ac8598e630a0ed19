"""What sensitivity and calibration specs share: the model, `set`, parameters and read-outs.

A spec is YAML checked like a scenario and a cohort file: every problem is one line,
``FILE:LINE: field.path: message`` (a :class:`~blinasim.scenario.ScenarioError`), found
before anything runs. The model is a scenario (``scenario: NAME_OR_PATH``, with ``set:``
applied as ``--set`` overrides, via the cohort spec's reader) or a registered toy
(``toy: NAME``, :mod:`blinasim.analysis.toys`). Parameters are any numeric scenario field
paths (toy parameter names for a toy), each with a range or a distribution.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import pathlib
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from blinasim.analysis.toys import TOYS
from blinasim.cohort.endpoints import ENDPOINT_NAMES, SERIES_NEEDED, EndpointRules
from blinasim.cohort.spec import _load_base
from blinasim.scenario import (ScenarioError, build_section, describe_value, error_at, load_scenario_text,
                               read_yaml_text, read_yaml_tree, scenario_to_dict)
from blinasim.schema import CELL_KINDS, param

TAIL = 0.001
"""Distributions without bounds are used between their 0.1% and 99.9% quantiles (a Morris
grid reaches the ends of the unit interval, where a normal's quantile is infinite)."""

DISTRIBUTIONS = {
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "normal": ("mean", "sd"),
    "lognormal": ("median", "sigma_log"),
    "triangular": ("low", "mode", "high"),
}
"""Parameter distributions and their parameters; normal and lognormal also take bounds low/high."""

STATISTICS = ("value", "peak", "trough", "mean", "auc", "final", "endpoint")
TRANSFORMS = ("none", "fold", "change", "loss", "log10")


@dataclass(frozen=True)
class Parameter:
    """A model input varied by an analysis: a scenario field path (or toy parameter) and its law."""
    path: str
    kind: str
    args: tuple[tuple[str, float], ...]
    low: float = -math.inf
    high: float = math.inf
    whole: bool = False  # a whole-number field: values are rounded (see `rounded`)

    def ppf(self, u: float) -> float:
        """The value at quantile `u` of the distribution (u in [0, 1])."""
        a = dict(self.args)
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "uniform":
            return a["low"] + u * (a["high"] - a["low"])
        if self.kind == "loguniform":
            return math.exp(math.log(a["low"]) + u * (math.log(a["high"]) - math.log(a["low"])))
        if self.kind == "triangular":
            low, mode, high = a["low"], a["mode"], a["high"]
            split = (mode - low) / (high - low)
            if u < split:
                return low + math.sqrt(u * (high - low) * (mode - low))
            return high - math.sqrt((1.0 - u) * (high - low) * (high - mode))
        normal, log = self._normal()
        lo, hi = self._cdf_bounds()
        q = lo + u * (hi - lo)
        value = normal.inv_cdf(q)
        return math.exp(value) if log else value

    def _normal(self) -> tuple[NormalDist, bool]:
        a = dict(self.args)
        if self.kind == "normal":
            return NormalDist(a["mean"], a["sd"]), False
        return NormalDist(math.log(a["median"]), a["sigma_log"]), True

    def _cdf_bounds(self) -> tuple[float, float]:
        """CDF at low and high, kept within [TAIL, 1 - TAIL] so every quantile is finite."""
        normal, log = self._normal()

        def cdf(x: float) -> float:
            if log:
                x = math.log(x) if x > 0 else -math.inf
            return 0.0 if x == -math.inf else 1.0 if x == math.inf else normal.cdf(x)
        return max(cdf(self.low), TAIL), min(cdf(self.high), 1.0 - TAIL)

    def value(self, u: float) -> float:
        """The model input at quantile u: the quantile, rounded for whole-number fields."""
        return self.rounded(self.ppf(u))

    def rounded(self, x: float) -> float:
        """A whole-number field's value: x to the nearest whole number, kept within the
        whole numbers of the range ([0.5, 3.5] gives 1, 2 and 3, each a third of the time)."""
        if not self.whole:
            return float(x)
        low, high = self.ppf(0.0), self.ppf(1.0)
        return float(min(max(math.floor(x + 0.5), math.ceil(low)), math.floor(high)))

    def support(self) -> tuple[float, float]:
        return self.ppf(0.0), self.ppf(1.0)

    def describe(self) -> str:
        args = ", ".join(f"{k} {v:g}" for k, v in self.args)
        bounds = "".join(f", {k} {v:g}" for k, v in (("low", self.low), ("high", self.high))
                         if math.isfinite(v) and k not in dict(self.args))
        return f"{self.kind}({args}{bounds})" + (" rounded" if self.whole else "")


@dataclass(frozen=True)
class Readout:
    """A number computed from one simulation's series (a read-out of a spec)."""
    observable: str = param("", "", None, None, "Observable (a column of the run file's timeseries; for a toy, its output)", "")
    statistic: str = param("value", "", None, None, "value: at at_h (the last record at or before it); peak, trough, mean, auc: max, min, mean, trapezoid integral over [from_h, to_h]; final: at the end; endpoint: a cohort endpoint", "", choices=STATISTICS)
    at_h: float = param(math.nan, "h", 0.0, None, "Time of a `value` read-out (in calibration, the data rows give it)", "")
    from_h: float = param(0.0, "h", 0.0, None, "Start of the window of peak/trough/mean/auc", "")
    to_h: float = param(math.nan, "h", 0.0, None, "End of that window (default: the end of the run)", "")
    transform: str = param("none", "", None, None, "none; fold: x / x(0); change: x / x(0) - 1; loss: 1 - x / x(0); log10", "", choices=TRANSFORMS)
    endpoint: str = param("", "", None, None, "The endpoint of statistic `endpoint` (docs/cohorts.md)", "", choices=ENDPOINT_NAMES)


@dataclass(frozen=True)
class ModelRef:
    """Everything a worker needs to simulate a parameter point (plain, picklable data)."""
    kind: str  # "scenario" or "toy"
    name: str
    base_yaml: str  # the resolved scenario with `set` applied ("" for a toy)
    fixed: tuple[tuple[str, float], ...]  # a toy's `set` values
    whole: frozenset  # whole-number parameter paths
    stop_h: float  # simulate only this long (inf: the whole scenario)
    observables: tuple[str, ...]  # the series a worker returns
    rules: EndpointRules = EndpointRules()


@dataclass(frozen=True)
class Base:
    """The loaded model of a spec, before read-outs decide how long to simulate."""
    kind: str
    name: str
    base_yaml: str
    fixed: tuple[tuple[str, float], ...]
    duration_h: float
    observables: tuple[str, ...]
    leaves: dict  # scenario field path -> default value (numbers only); toy defaults
    cohort: Any = None  # a CohortSpec when the model is a cohort's patients


# --------------------------------------------------------------------------- reading

def bundled_dir() -> pathlib.Path:
    """Where the bundled analysis examples are (scenarios/analysis, package blinasim.scenarios)."""
    from blinasim.scenario import _bundled_dir
    return _bundled_dir() / "analysis"


def read_spec(source: str, kind: str):
    """(root node, text, file) of a spec file, or of a bundled example by name (without .yaml);
    a missing file is a one-line error."""
    path = pathlib.Path(source)
    if not path.is_file() and (bundled_dir() / f"{source}.yaml").is_file():
        path = bundled_dir() / f"{source}.yaml"
    if not path.is_file():
        raise ScenarioError(str(source), 1, "(file)", f"no such {kind} file")
    text = read_yaml_text(path)
    root = read_yaml_tree(text, str(path))
    if not isinstance(root.value, dict):
        raise error_at(root, "", f"expected a mapping of {kind} fields, got {describe_value(root.value)}")
    return root, text, str(path)


def build_settings(cls: type, root, entries: dict):
    """Build a settings dataclass from the plain fields of a spec (sections already popped)."""
    return build_section(cls, dataclasses.replace(root, value=entries))


def number(node, path: str) -> float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise error_at(node, path, f"expected a finite number, got {describe_value(value)}")
    return float(value)


def identity(*parts: Any) -> str:
    """Hash of everything that decides an analysis' numbers."""
    text = json.dumps(parts, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


# --------------------------------------------------------------------------- the model

def load_base(entries: dict, root, file: str, *, cohort_allowed: bool = False) -> Base:
    """The spec's model: `scenario` (with `set`), `toy` (with `set`) or, where allowed,
    `cohort` (its patients are the replicates); pops them from entries."""
    scenario_node, toy_node = entries.pop("scenario", None), entries.pop("toy", None)
    cohort_node = entries.pop("cohort", None) if cohort_allowed else None
    set_node = entries.pop("set", None)
    given = [node for node in (scenario_node, toy_node, cohort_node) if node is not None]
    if len(given) != 1:
        kinds = "scenario (a bundled name or a path), toy (a registered toy model)" + \
            (" and cohort (a cohort file: its patients are the replicates)" if cohort_allowed else "")
        raise error_at(max(given, key=lambda node: node.line) if given else root, "scenario",
                       f"give exactly one of {kinds}")
    if toy_node is not None:
        return _toy_base(toy_node, set_node)
    if cohort_node is not None:
        return _cohort_base(cohort_node, set_node, file)
    if not isinstance(scenario_node.value, str) or not scenario_node.value:
        raise error_at(scenario_node, "scenario", f"expected a scenario name or path, got {describe_value(scenario_node.value)}")
    loaded = _load_base(scenario_node.value, scenario_node, file, set_node)
    s = loaded.scenario
    return Base("scenario", scenario_node.value, loaded.resolved_yaml, (), s.duration_h, _observables(s),
                _numeric_leaves(scenario_to_dict(s)))


def _observables(s) -> tuple[str, ...]:
    from blinasim.model import VARIABLE_META
    return tuple(VARIABLE_META) + tuple(f"count_{name}_{kind}" for name in s.compartments for kind in CELL_KINDS)


def _cohort_base(node, set_node, file: str) -> Base:
    from blinasim.cohort.spec import load_cohort
    from blinasim.scenario import bundled_cohorts, find_yaml
    if set_node is not None:
        raise error_at(set_node, "set", "with a cohort, put fixed changes in the cohort file's own set:")
    name = node.value
    path = find_yaml(name, pathlib.Path(file).parent, bundled=list(bundled_cohorts())) if isinstance(name, str) else None
    if path is None:
        raise error_at(node, "cohort", f"no cohort file {describe_value(name)} next to the spec and no bundled "
                                       f"cohort of that name ({', '.join(bundled_cohorts())})")
    cohort = load_cohort(path)
    s = cohort.base.scenario
    return Base("cohort", name, cohort.base.resolved_yaml, (), s.duration_h, _observables(s),
                _numeric_leaves(scenario_to_dict(s)), cohort)


def _toy_base(toy_node, set_node) -> Base:
    name = toy_node.value
    if not isinstance(name, str) or name not in TOYS:
        raise error_at(toy_node, "toy", f"unknown toy model {describe_value(name)}; registered: {', '.join(TOYS)}")
    toy = TOYS[name]
    fixed = {}
    if set_node is not None:
        if not isinstance(set_node.value, dict):
            raise error_at(set_node, "set", f"expected a mapping of toy parameters to values, got {describe_value(set_node.value)}")
        for key, child in set_node.value.items():
            if key not in toy.defaults:
                raise error_at(child, f"set.{key}", _unknown(key, list(toy.defaults), f"parameter of toy {name}"))
            fixed[key] = number(child, f"set.{key}")
    return Base("toy", name, "", tuple(fixed.items()), math.inf, toy.observables, dict(toy.defaults) | fixed)


def _numeric_leaves(tree: Any, path: str = "") -> dict[str, float]:
    """Every numeric leaf of the scenario as dotted path -> value (list items by index)."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else None
    if items is None:
        is_number = isinstance(tree, (int, float)) and not isinstance(tree, bool)
        return {path: tree} if is_number else {}
    found = {}
    for key, child in items:
        found.update(_numeric_leaves(child, f"{path}.{key}" if path else str(key)))
    return found


def _unknown(key: str, names: list[str], what: str) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"not a {what}{hint}"


def model_ref(base: Base, parameters: dict[str, Parameter], stop_h: float, observables: set[str]) -> ModelRef:
    whole = frozenset(p.path for p in parameters.values() if p.whole)
    rules = base.cohort.settings.endpoints if base.cohort is not None else EndpointRules()
    kind = "toy" if base.kind == "toy" else "scenario"
    return ModelRef(kind, base.name, base.base_yaml, base.fixed, whole, stop_h, tuple(sorted(observables)), rules)


# --------------------------------------------------------------------------- parameters

def load_parameters(node, base: Base, section: str = "parameters") -> dict[str, Parameter]:
    """The `parameters` mapping: field path -> [low, high] (uniform) or {distribution: ...}."""
    if node is None or not isinstance(node.value, dict) or not node.value:
        got = "nothing" if node is None else describe_value(node.value)
        raise error_at(node if node is not None else _nowhere(base), section,
                       f"expected a mapping of {'toy parameters' if base.kind == 'toy' else 'scenario field paths'} "
                       f"to ranges or distributions, got {got}")
    found = {}
    for path, child in node.value.items():
        where = f"{section}.{path}"
        if path not in base.leaves:
            what = f"parameter of toy {base.name}" if base.kind == "toy" else "numeric scenario field"
            raise error_at(child, where, _unknown(path, list(base.leaves), what))
        whole = base.kind != "toy" and isinstance(base.leaves[path], int)
        parameter = _parameter(child, path, where, whole)
        if base.kind != "toy":
            _check_values(parameter, base, child, where)
        found[path] = parameter
    return found


def _nowhere(base: Base):
    from blinasim.scenario import _Node
    return _Node(None, base.name, 1)


def _parameter(node, path: str, where: str, whole: bool) -> Parameter:
    if isinstance(node.value, list):
        if len(node.value) != 2:
            raise error_at(node, where, "a range is [low, high]")
        low, high = (number(item, where) for item in node.value)
        if not low < high:
            raise error_at(node, where, f"high must be more than low, got [{low:g}, {high:g}]")
        return Parameter(path, "uniform", (("low", low), ("high", high)), low, high, whole)
    if not isinstance(node.value, dict):
        raise error_at(node, where, f"expected [low, high] or {{distribution: ..., ...}}, got {describe_value(node.value)}")
    entries = dict(node.value)
    kind_node = entries.pop("distribution", None)
    if kind_node is None or kind_node.value not in DISTRIBUTIONS:
        got = "" if kind_node is None else f", got {describe_value(kind_node.value)}"
        raise error_at(kind_node or node, f"{where}.distribution", f"expected one of {', '.join(DISTRIBUTIONS)}{got}")
    kind = kind_node.value
    names = DISTRIBUTIONS[kind]
    allowed = names + (("low", "high") if kind in ("normal", "lognormal") else ())
    for key, child in entries.items():
        if key not in allowed:
            raise error_at(child, f"{where}.{key}", f"not a parameter of a {kind} distribution; expected {', '.join(allowed)}")
    for key in names:
        if key not in entries:
            raise error_at(kind_node, f"{where}.{key}", f"missing: a {kind} distribution needs {', '.join(names)}")
    v = {key: number(child, f"{where}.{key}") for key, child in entries.items()}
    positive = {"normal": ("sd",), "lognormal": ("median", "sigma_log"), "loguniform": ("low",)}.get(kind, ())
    for key in positive:
        if v[key] <= 0:
            raise error_at(entries[key], f"{where}.{key}", f"must be more than 0, got {v[key]:g}")
    if "low" in v and "high" in v and not v["low"] < v["high"]:
        raise error_at(entries["high"], f"{where}.high", f"must be more than low ({v['low']:g})")
    if kind == "triangular" and not v["low"] <= v["mode"] <= v["high"]:
        raise error_at(entries["mode"], f"{where}.mode", f"must be within low and high, got {v['mode']:g}")
    parameter = Parameter(path, kind, tuple((k, v[k]) for k in names), v.get("low", -math.inf),
                          v.get("high", math.inf), whole)
    if kind in ("normal", "lognormal"):
        lo, hi = parameter._cdf_bounds()
        if hi - lo < 1e-6:
            raise error_at(entries.get("low") or entries.get("high"), where,
                           f"low/high keep only {max(hi - lo, 0):.2g} of the distribution; widen them")
    return parameter


def _check_values(parameter: Parameter, base: Base, node, where: str) -> None:
    """The scenario must accept the parameter's extreme values (its range checks, its cross-checks)."""
    for u in (0.0, 1.0):
        value = parameter.value(u)
        try:
            load_scenario_text(base.base_yaml, "spec", [f"{parameter.path}={format_value(value, parameter.whole)}"])
        except ScenarioError as err:
            raise error_at(node, where, f"the scenario refuses {value:g}: {err.message}") from None


def format_value(value: float, whole: bool) -> str:
    return str(int(value)) if whole else repr(float(value))


# --------------------------------------------------------------------------- read-outs

def load_readouts(node, base: Base, *, times_from_data: bool = False) -> dict[str, Readout]:
    """The `readouts` mapping: name -> read-out fields."""
    if node is None or not isinstance(node.value, dict) or not node.value:
        got = "nothing" if node is None else describe_value(node.value)
        raise error_at(node if node is not None else _nowhere(base), "readouts",
                       f"expected a mapping of read-out names to read-outs, got {got}")
    found = {}
    for name, child in node.value.items():
        where = f"readouts.{name}"
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise error_at(child, where, "read-out names may only use letters, digits and '_'")
        readout = build_section(Readout, child, where)
        entries = child.value
        if readout.statistic == "endpoint":
            if base.kind == "toy" or not readout.endpoint:
                raise error_at(child, f"{where}.endpoint", "statistic endpoint needs a scenario model and an endpoint "
                                                         f"({', '.join(ENDPOINT_NAMES)})")
        elif readout.observable not in base.observables:
            raise error_at(entries.get("observable", child), f"{where}.observable",
                           _unknown(readout.observable, list(base.observables), "known observable")
                           + ("" if readout.observable else " (required)"))
        if readout.statistic == "value" and math.isnan(readout.at_h) and not times_from_data:
            raise error_at(child, f"{where}.at_h", "a value read-out needs at_h (the time, h)")
        for key in ("at_h", "to_h", "from_h"):
            time = getattr(readout, key)
            if math.isfinite(time) and time > base.duration_h + 1e-9:
                raise error_at(entries[key], f"{where}.{key}",
                               f"{time:g} h is after the end of the scenario ({base.duration_h:g} h)")
        if math.isfinite(readout.to_h) and readout.to_h <= readout.from_h:
            raise error_at(entries["to_h"], f"{where}.to_h", f"must be after from_h ({readout.from_h:g} h)")
        found[name] = readout
    return found


def stop_time(readouts, extra_times=()) -> float:
    """How long to simulate so that every read-out has its data (inf: the whole run)."""
    needed = [0.0, *extra_times]
    for r in readouts:
        if r.statistic in ("final", "endpoint") or (r.statistic != "value" and math.isnan(r.to_h)):
            return math.inf
        needed.append(r.at_h if r.statistic == "value" else r.to_h)
    return max(t for t in needed if math.isfinite(t))


def observables_needed(readouts) -> set[str]:
    names = set()
    for r in readouts:
        names |= set(SERIES_NEEDED) if r.statistic == "endpoint" else {r.observable}
    return names

