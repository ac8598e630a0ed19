"""Cohort files: a base scenario, covariate distributions, dosing and endpoint rules.

A cohort file is YAML checked like a scenario: every problem is one line,
``FILE:LINE: field.path: message`` (a :class:`~blinasim.scenario.ScenarioError`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
from dataclasses import dataclass
from typing import Any

from blinasim import __version__
from blinasim.cohort.covariates import (COVARIATE_BY_NAME, COVARIATES, LABEL_UG_PER_M2_PER_DAY, Distribution,
                                        Dosing, blood_t_per_ul, compartment_with_role, flat_rates)
from blinasim.cohort.endpoints import ENDPOINT_NAMES, EndpointRules
from blinasim.cohort.patient import SERIES
from blinasim.scenario import (LoadedScenario, ScenarioError, build_section, bundled_cohorts, describe_value,
                               error_at, find_yaml, load_scenario, read_yaml_text, read_yaml_tree, value_text)
from blinasim.schema import param, section

DISTRIBUTION_PARAMETERS = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "normal": ("mean", "sd"),
    "lognormal": ("median", "sigma_log"),
    "beta": ("a", "b"),
}
"""Each distribution's parameters. Normal, log-normal and beta also take truncation bounds
low/high; every kind takes zero_probability (the chance that a patient's value is 0)."""

MIN_MASS_WITHIN = 1e-6
"""Truncation bounds must keep at least this share of a normal or log-normal distribution."""
MAX_SIGMA_LOG = 10.0
"""Largest spread of a log-normal covariate (a factor e^10 ~ 22,000 per sd is no longer a
distribution anyone means)."""


@dataclass(frozen=True)
class CohortSettings:
    """The fields of a cohort file besides `set` and `covariates`."""
    name: str = param("", "", None, None, "Short name of the cohort (default: the file name)", "")
    description: str = param("", "", None, None, "One paragraph saying what the cohort is for", "")
    scenario: str = param("", "", None, None, "Base scenario: a bundled name or a path relative to the cohort file", "")
    seed: int = param(1, "", 0, 2**63 - 1, "Cohort seed; patient i's seeds are spawned from it (numpy SeedSequence)", "")
    patients: int = param(20, "", 1, 1_000_000, "Number of virtual patients (the command line --patients overrides)", "")
    series_every_h: float = param(6.0, "h", 0.0, 10000.0, "Interval of each patient's summary time series in the cohort file", "", open_low=True)
    dosing: Dosing = section(Dosing, "Body size, dose and PK")
    endpoints: EndpointRules = section(EndpointRules, "Endpoint rules")


@dataclass(frozen=True)
class CohortSpec:
    """A checked cohort: its settings, the base scenario with `set` applied, the distributions."""
    settings: CohortSettings
    file: str
    source_text: str
    base: LoadedScenario
    distributions: dict[str, Distribution]

    @property
    def name(self) -> str:
        return self.settings.name

    def identity(self, patients: int) -> str:
        """Hash of everything that decides the results and the file's layout (not the worker
        count): a file written by another version, or with other columns, is not continued."""
        text = json.dumps({"settings": dataclasses.asdict(self.settings) | {"patients": patients},
                           "base": self.base.resolved_yaml,
                           "distributions": {k: dataclasses.asdict(v) for k, v in self.distributions.items()},
                           "version": __version__, "endpoints": ENDPOINT_NAMES, "series": SERIES,
                           "covariates": [c.name for c in COVARIATES]},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def load_cohort(source: str | os.PathLike) -> CohortSpec:
    """Load and check a cohort file, or a bundled cohort by name."""
    name = os.fspath(source)
    path = find_yaml(name, ".", bundled=list(bundled_cohorts()))
    if path is None:
        raise ScenarioError(name, 1, "(file)", "no such file, and no bundled cohort of that name "
                                               f"(bundled: {', '.join(bundled_cohorts()) or 'none'})")
    return load_cohort_text(read_yaml_text(path), str(path))


def load_cohort_text(text: str, file: str) -> CohortSpec:
    """Check a cohort from its YAML text; a relative `scenario` is found next to `file`."""
    root = read_yaml_tree(text, file)
    if not isinstance(root.value, dict):
        raise error_at(root, "", f"expected a mapping of cohort fields, got {describe_value(root.value)}")
    entries = dict(root.value)
    set_node, covariates_node = entries.pop("set", None), entries.pop("covariates", None)
    settings = build_section(CohortSettings, dataclasses.replace(root, value=entries))
    if "scenario" not in entries or not settings.scenario:
        node = entries.get("scenario", root)
        raise error_at(node, "scenario", "required: the base scenario (a bundled name or a path)")
    if not settings.name:
        settings = dataclasses.replace(settings, name=pathlib.Path(file).stem)
    base = _load_base(settings.scenario, entries["scenario"], file, set_node)
    distributions = _distributions(covariates_node)
    _check_against_base(settings, base, distributions, entries, covariates_node, root)
    return CohortSpec(settings, file, text, base, distributions)


# --------------------------------------------------------------------------- base scenario and `set`

def _plain(node) -> Any:
    if isinstance(node.value, dict):
        return {key: _plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(child) for child in node.value]
    return node.value


def _load_base(name: str, name_node, file: str, set_node) -> LoadedScenario:
    """The base scenario with the cohort's `set` entries applied as overrides."""
    path = find_yaml(name, pathlib.Path(file).parent)
    if path is None:
        raise error_at(name_node, "scenario", f"no file {name!r} next to the cohort file and no bundled "
                                              f"scenario of that name")
    overrides, lines = [], []
    if set_node is not None:
        if not isinstance(set_node.value, dict):
            raise error_at(set_node, "set", "expected a mapping of scenario field paths to values "
                                            f"(e.g. pk.volume_l: 4.35), got {describe_value(set_node.value)}")
        for key, child in set_node.value.items():
            value = _plain(child)
            if isinstance(value, float) and not math.isfinite(value):
                raise error_at(child, f"set.{key}", "expected a finite number")
            overrides.append(f"{key}={value_text(value)}")
            lines.append(child.line)
    try:
        return load_scenario(path, overrides)
    except ScenarioError as err:
        if err.file != "--set":
            raise
        raise ScenarioError(file, lines[err.line - 1], f"set.{err.path}", err.message) from None


# --------------------------------------------------------------------------- distributions

def _number(node, path: str) -> float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise error_at(node, path, f"expected a finite number, got {describe_value(value)}")
    return float(value)


def _distributions(node) -> dict[str, Distribution]:
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        raise error_at(node, "covariates", f"expected a mapping of covariate names to distributions, "
                                           f"got {describe_value(node.value)}")
    found = {}
    for name, child in node.value.items():
        path = f"covariates.{name}"
        if name not in COVARIATE_BY_NAME:
            raise error_at(child, path, f"unknown covariate; known: {', '.join(c.name for c in COVARIATES)}")
        found[name] = _distribution(child, path)
    return found


def _distribution(node, path: str) -> Distribution:
    """A number (fixed value) or {distribution: kind, parameters..., low, high, zero_probability}."""
    if not isinstance(node.value, dict):
        return Distribution("fixed", (("value", _number(node, path)),))
    entries = dict(node.value)
    kind_node = entries.pop("distribution", None)
    if kind_node is None or not isinstance(kind_node.value, str) or kind_node.value not in DISTRIBUTION_PARAMETERS:
        where = kind_node or node
        got = "" if kind_node is None else f", got {describe_value(kind_node.value)}"
        raise error_at(where, f"{path}.distribution",
                       f"expected one of {', '.join(DISTRIBUTION_PARAMETERS)}{got}")
    kind = kind_node.value
    names = DISTRIBUTION_PARAMETERS[kind]
    allowed = names + (() if kind in ("fixed", "uniform") else ("low", "high")) + ("zero_probability",)
    for key, child in entries.items():
        if key not in allowed:
            raise error_at(child, f"{path}.{key}", f"not a parameter of a {kind} distribution; "
                                                   f"expected {', '.join(allowed)}")
    for key in names:
        if key not in entries:
            raise error_at(kind_node, f"{path}.{key}", f"missing: a {kind} distribution needs {', '.join(names)}")
    values = {key: _number(child, f"{path}.{key}") for key, child in entries.items()}
    _check_parameters(kind, values, entries, path)
    low, high = values.get("low", -math.inf), values.get("high", math.inf)
    distribution = Distribution(kind, tuple((key, values[key]) for key in names), low, high,
                                values.get("zero_probability", 0.0))
    mass = distribution.mass_within()
    if mass is not None and mass < MIN_MASS_WITHIN:
        raise error_at(entries.get("low") or entries.get("high"), path,
                       f"low/high keep only {mass:.2g} of the distribution; widen them")
    return distribution


def _check_parameters(kind: str, values: dict[str, float], nodes: dict, path: str) -> None:
    positive = {"normal": ("sd",), "lognormal": ("median", "sigma_log"), "beta": ("a", "b")}.get(kind, ())
    for key in positive:
        if values[key] <= 0:
            raise error_at(nodes[key], f"{path}.{key}", f"must be more than 0, got {values[key]:g}")
    if kind == "lognormal" and values["sigma_log"] > MAX_SIGMA_LOG:
        raise error_at(nodes["sigma_log"], f"{path}.sigma_log",
                       f"must be at most {MAX_SIGMA_LOG:g} (a factor e^{MAX_SIGMA_LOG:g} per sd), got {values['sigma_log']:g}")
    if "low" in values and "high" in values and values["low"] >= values["high"]:
        raise error_at(nodes["high"], f"{path}.high", f"must be more than low ({values['low']:g})")
    if not 0.0 <= values.get("zero_probability", 0.0) < 1.0:
        raise error_at(nodes["zero_probability"], f"{path}.zero_probability",
                       f"must be at least 0 and below 1, got {values['zero_probability']:g}")


# --------------------------------------------------------------------------- against the base

def _check_against_base(settings: CohortSettings, base: LoadedScenario, distributions: dict,
                        entries: dict, covariates_node, root) -> None:
    """Cross-checks between the cohort and its base scenario."""
    s = base.scenario

    def covariate_error(name: str, message: str) -> ScenarioError:
        return error_at(covariates_node.value[name], f"covariates.{name}", message)

    marrow, blood = compartment_with_role(s, "marrow"), compartment_with_role(s, "blood")
    if "marrow_blast_percent" in distributions and (marrow is None or not s.compartments[marrow].nucleated_cells_per_ul):
        raise covariate_error("marrow_blast_percent", "the base scenario needs a compartment with role "
                                                      "'marrow' and nucleated_cells_per_ul above 0")
    if "blood_t_per_ul" in distributions and (blood is None or blood_t_per_ul(s) <= 0):
        raise covariate_error("blood_t_per_ul", "the base scenario needs a compartment with role 'blood' "
                                                "holding T cells")
    for one, other in (("weight_kg", "height_cm"), ("height_cm", "weight_kg")):
        if one in distributions and other not in distributions:
            raise covariate_error(one, f"needs {other} too (body surface area, Mosteller)")
    dosing_node = entries.get("dosing", root)
    if settings.dosing.rule == "label":
        if "weight_kg" not in distributions:
            raise error_at(dosing_node, "dosing.rule", "'label' doses by weight: add covariates "
                                                       "weight_kg and height_cm")
        for field_path, rate in flat_rates(s):
            if rate not in LABEL_UG_PER_M2_PER_DAY:
                raise error_at(dosing_node, "dosing.rule",
                               f"'label' converts only the label's flat rates 9 and 28 ug/day to per-m2; "
                               f"the base scenario's {field_path} is {rate:g} ug/day")
    assess_h = (settings.endpoints.assessment_day - 1.0) * 24.0
    if assess_h > s.duration_h + 1e-9:
        node = entries.get("endpoints", root)
        raise error_at(node, "endpoints.assessment_day",
                       f"day {settings.endpoints.assessment_day:g} is after the base scenario ends "
                       f"({s.duration_h / 24.0:g} days)")
    record_min = s.output.record_every_min
    ratio = settings.series_every_h * 60.0 / record_min
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        raise error_at(entries.get("series_every_h", root), "series_every_h",
                       f"{settings.series_every_h:g} h is not a whole multiple of the base scenario's "
                       f"output.record_every_min ({record_min:g} min)")
