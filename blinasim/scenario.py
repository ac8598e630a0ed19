"""Load and validate scenario YAML files against :mod:`blinasim.schema`.

A file is parsed into nodes that remember where each value was set (file, line),
merged onto its ``base:`` scenarios and onto the schema defaults, patched by
``--set`` overrides, then checked field by field and built into the frozen
:class:`~blinasim.schema.Scenario`. Every problem with the input is raised as a
one-line :class:`ScenarioError`: ``FILE:LINE: field.path: message``.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import json
import math
import os
import pathlib
import re
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from blinasim import compartments
from blinasim.schema import Scenario, check_consistency

WHOLE_FILE = "(file)"
WHOLE_OVERRIDE = "(override)"
SET_FILE = "--set"
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"[0-9]+")
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class ScenarioError(Exception):
    """A problem with a scenario, located as ``FILE:LINE: field.path: message``."""

    def __init__(self, file: str, line: int, path: str, message: str):
        self.file, self.line = _one_line(str(file)), line
        self.path, self.message = _one_line(path), _one_line(message)
        super().__init__(f"{self.file}:{self.line}: {self.path}: {self.message}")

    def __reduce__(self):
        return ScenarioError, (self.file, self.line, self.path, self.message)


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with the texts needed to record and rerun it."""
    scenario: Scenario
    source_text: str
    resolved_yaml: str
    overrides: tuple[str, ...]
    origin: str


class Yaml11Number(str):
    """A plain scalar YAML 1.1 reads as a number a person would not expect: 010 (octal 8),
    0x1F (31), 0b101 (5), 1:30 (base 60: 90), also 08 and 0o17.

    It is text to a text field (a name may be '1:30'); a number field refuses it, saying
    what YAML 1.1 would have made of it (`note`).
    """

    @property
    def note(self) -> str:
        text = self.replace("_", "")
        sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
        if ":" in digits:
            value = 0.0
            for part in digits.split(":"):
                value = value * 60 + float(part)
            return f"a base-60 number in YAML 1.1 ({_number(sign * value)})"
        prefix = digits[:2].lower()
        for mark, base, name in (("0x", 16, "a hexadecimal"), ("0b", 2, "a binary"), ("0o", 8, "an octal")):
            if prefix == mark:
                return f"{name} number ({sign * int(digits[2:] or '0', base)})"
        if set(digits) <= set("01234567"):
            return f"an octal number in YAML 1.1 ({sign * int(digits, 8)})"
        return "a number with a leading zero (octal in YAML 1.1)"


_INT_TAG = "tag:yaml.org,2002:int"
_YAML11_TAG = "tag:blinasim:yaml11-number"
_NUMBER_RESOLVERS = (
    (_INT_TAG, r"[-+]?(?:0|[1-9][0-9_]*)"),
    (_FLOAT_TAG, r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"),
    (_FLOAT_TAG, _EXPONENT_FLOAT.pattern.strip("^$")),
    (_FLOAT_TAG, r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"),
    (_YAML11_TAG, r"[-+]?(?:0[0-9_]+|0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+"
                  r"|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)"),
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with numbers read as a person reads them: decimal integers, decimals and
    exponent forms (1e-9, 1.5e3, .5, 1_000); the YAML 1.1 forms a person would not expect
    (010, 0x1F, 0b101, 1:30) become :class:`Yaml11Number`, refused by number fields."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _tag, _pattern in _NUMBER_RESOLVERS:
    _Loader.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), list("-+.0123456789"))
_Loader.add_constructor(_YAML11_TAG, lambda loader, node: Yaml11Number(loader.construct_scalar(node)))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes any text _Loader would read as a number (and every YAML 1.1
    number form, so that other YAML readers read the resolved file as _Loader does)."""


_Dumper.yaml_implicit_resolvers = {
    first: yaml.SafeDumper.yaml_implicit_resolvers.get(first, []) + _Loader.yaml_implicit_resolvers.get(first, [])
    for first in {*yaml.SafeDumper.yaml_implicit_resolvers, *_Loader.yaml_implicit_resolvers}}


@dataclass(frozen=True)
class _Node:
    """A value read from YAML (a dict or list of nodes, or a scalar) and where it was set."""
    value: Any
    file: str
    line: int
    explicit: bool = True  # False for schema defaults that no file or override set


# --------------------------------------------------------------------------- public API

def load_scenario(source: str | os.PathLike, overrides: Sequence[str] = ()) -> LoadedScenario:
    """Load a scenario file, or a bundled scenario by name, and apply ``--set`` overrides."""
    name = os.fspath(source)
    found = _find_scenario(name, pathlib.Path())
    if found is None and name in bundled_cohorts():
        raise ScenarioError(name, 1, WHOLE_FILE, f"{name} is a bundled cohort; run it with 'blinasim cohort {name}'")
    if found is None:
        raise ScenarioError(name, 1, WHOLE_FILE,
                            f"no such file, and no bundled scenario of that name ({_bundled_list()})")
    path, origin = found
    return _load(_read_text(path), str(path), (path.resolve(),), overrides, origin)


def load_scenario_text(text: str, filename: str = "<string>",
                       overrides: Sequence[str] = ()) -> LoadedScenario:
    """Load a scenario from YAML text; a relative ``base:`` is found next to `filename`."""
    return _load(text, filename, (pathlib.Path(filename).resolve(),), overrides, filename)


def bundled_scenarios() -> dict[str, str]:
    """Bundled scenario names with the first sentence of their description, sorted by name."""
    return {name: _summary(name) for name in _bundled_names()}


def bundled_path(name: str) -> pathlib.Path:
    """Path of the bundled scenario file `name`."""
    return _bundled_dir() / f"{name}.yaml"


def find_yaml(name: str, directory: str | os.PathLike = ".",
              bundled: Sequence[str] | None = None) -> pathlib.Path | None:
    """A file `name` relative to `directory`, else the bundled file of that name, else None.

    `bundled` limits which bundled names count (default: the bundled scenarios).
    """
    candidate = pathlib.Path(directory) / name
    if _is_file(candidate):
        return candidate
    if name in (_bundled_names() if bundled is None else bundled):
        return bundled_path(name)
    return None


def read_yaml_text(path: str | os.PathLike) -> str:
    """A YAML file's UTF-8 text; an unreadable file raises ScenarioError."""
    return _read_text(pathlib.Path(path))


def read_yaml_tree(text: str, file: str) -> "_Node":
    """YAML text as nodes (``.value``, ``.file``, ``.line``), for formats that share the errors."""
    node = _compose(text, file, WHOLE_FILE)
    if node is None:
        raise ScenarioError(file, 1, WHOLE_FILE, "the file is empty; expected a mapping of fields")
    return _Reader(file).read(node, "")


def build_section(cls: type, node: "_Node", path: str = "") -> Any:
    """Check a node mapping against a dataclass of `param` fields, as scenario sections are."""
    return _build_section(cls, node, path)


def error_at(node: "_Node", path: str, message: str) -> ScenarioError:
    """The one-line error for a problem with `node`, located where it was set."""
    return _error(node, path, message)


def section_docs(cls: type, path: str, title: str) -> str:
    """Markdown reference of a dataclass of `param` fields: heading, field table, subsections."""
    return _section_docs(cls, path, title)


def describe_value(value: Any) -> str:
    """A value as error messages show it (null, true, 2.5, text 'abc', a list, a mapping)."""
    return _describe(value)


def value_text(value: Any) -> str:
    """A value read from YAML as one line of YAML the loader reads back alike (for --set):
    YAML 1.1 number forms stay plain, so number fields refuse them as they would in a file."""
    if isinstance(value, Yaml11Number):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(key))}: {value_text(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    return json.dumps(value, default=str)


def scenario_to_dict(s: Scenario) -> dict:
    """The scenario as plain dicts, lists and scalars, fields in declared order."""
    return _plain(s)


# --------------------------------------------------------------------------- finding files

def _bundled_dir() -> pathlib.Path:
    """The directory of the bundled scenario files (package blinasim.scenarios)."""
    try:
        return pathlib.Path(str(importlib.resources.files("blinasim.scenarios")))
    except ModuleNotFoundError:  # running from a source tree that was never installed
        return pathlib.Path(__file__).resolve().parent.parent / "scenarios"


COHORT_PREFIX = "cohort_"
"""Bundled files named cohort_*.yaml are cohorts (`blinasim cohort`), not scenarios."""


def _bundled_names() -> list[str]:
    return sorted(path.stem for path in _bundled_dir().glob("*.yaml")
                  if not path.stem.startswith(COHORT_PREFIX))


def bundled_cohorts() -> dict[str, str]:
    """Bundled cohort names (cohort_*.yaml) with the first sentence of their description."""
    names = sorted(path.stem for path in _bundled_dir().glob(f"{COHORT_PREFIX}*.yaml"))
    return {name: _cohort_summary(name) for name in names}


def _cohort_summary(name: str) -> str:
    """First sentence of a bundled cohort's description, read from its YAML.

    A cohort is not a scenario, so the scenario loader cannot read it; checking a cohort
    (blinasim.cohort.spec) needs this module's list of bundled cohorts, so it is not done here.
    """
    try:
        fields = yaml.load(_read_text(bundled_path(name)), Loader=_Loader)
    except ScenarioError as err:
        return f"(does not load: {err.message})"
    except yaml.YAMLError as err:
        return f"(does not load: {_one_line(str(err))})"
    description = fields.get("description") if isinstance(fields, dict) else None
    return _first_sentence(description) if isinstance(description, str) else "(no description)"


def _bundled_list() -> str:
    return f"bundled: {', '.join(_bundled_names()) or 'none'}"


def _summary(name: str) -> str:
    """First sentence of a bundled scenario's description, or why it does not load."""
    try:
        description = load_scenario(bundled_path(name)).scenario.description
    except ScenarioError as err:
        return f"(does not load: {err.message})"
    return _first_sentence(description)


def _first_sentence(description: str) -> str:
    return " ".join(description.split()).split(". ")[0].removesuffix(".")


def _is_file(path: pathlib.Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system
        return False


def _find_scenario(name: str, directory: pathlib.Path) -> tuple[pathlib.Path, str] | None:
    """(path, origin) of a file relative to `directory` or else a bundled scenario."""
    path = find_yaml(name, directory)
    if path is None:
        return None
    return path, (str(path) if path == directory / name else f"bundled:{name}")


def _read_text(path: pathlib.Path) -> str:
    """A file's UTF-8 text; unreadable files become ScenarioError."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ScenarioError(str(path), 1, WHOLE_FILE, f"cannot read file: {reason}") from None


# --------------------------------------------------------------------------- reading YAML

def _compose(text: str, file: str, path: str, fixed_line: int | None = None) -> yaml.Node | None:
    """Parse YAML text into a node tree; syntax errors become ScenarioError."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        line = fixed_line or _yaml_error_line(exc, text)
        raise ScenarioError(file, line, path, f"not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ScenarioError(file, fixed_line or 1, path, "not valid YAML: nested too deeply") from None


def _yaml_error_line(exc: yaml.YAMLError, text: str) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    return text.count("\n", 0, getattr(exc, "position", 0)) + 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return ": ".join(part for part in (exc.context, exc.problem) if part)
    return _first_line(exc)


class _Reader:
    """Turns composed YAML nodes into _Node trees, refusing bad and duplicate keys."""

    def __init__(self, file: str, fixed_line: int | None = None):
        self.file, self.fixed_line = file, fixed_line
        self.loader = _Loader("")
        self.done: dict[yaml.Node, _Node] = {}  # aliases share the node read first
        self.reading: set[yaml.Node] = set()

    def read(self, node: yaml.Node, path: str) -> _Node:
        if node in self.done:
            return self.done[node]
        if node in self.reading:
            raise self.error(node, path, "recursive YAML alias")
        self.reading.add(node)
        if isinstance(node, yaml.MappingNode):
            value = self.mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            value = [self.read(item, _join(path, i)) for i, item in enumerate(node.value)]
        else:
            value = self.scalar(node, path)
        self.reading.discard(node)
        self.done[node] = _Node(value, self.file, self.line(node))
        return self.done[node]

    def mapping(self, node: yaml.MappingNode, path: str) -> dict[str, _Node]:
        entries: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            key_path, line = _join(path, key), self.line(key_node)
            if key in entries:
                raise ScenarioError(self.file, line, key_path,
                                    f"duplicate key (first set on line {entries[key].line})")
            entries[key] = dataclasses.replace(self.read(value_node, key_path), line=line)
        return entries

    def key(self, node: yaml.Node, path: str) -> str:
        if node.tag == _MERGE_TAG:
            raise self.error(node, path, "YAML merge keys ('<<') are not supported; "
                                         "use 'base:' to start from another scenario")
        key = self.read(node, path).value
        if not isinstance(key, str):
            raise self.error(node, path, f"keys must be field names (text), got {_describe(key)}")
        return str(key)

    def scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        # PyYAML's constructors raise these for explicitly tagged text they cannot convert
        # (e.g. !!int abc, !!bool maybe, !!float '', and AttributeError for !!timestamp abc).
        except (yaml.YAMLError, ValueError, LookupError, AttributeError) as exc:
            raise self.error(node, path, f"cannot read value: {_first_line(exc)}") from None

    def line(self, node: yaml.Node) -> int:
        return self.fixed_line or node.start_mark.line + 1

    def error(self, node: yaml.Node, path: str, message: str) -> ScenarioError:
        return ScenarioError(self.file, self.line(node), path or WHOLE_FILE, message)


# --------------------------------------------------------------------------- assembling the tree

def _load(text: str, file: str, chain: tuple[pathlib.Path, ...], overrides: Sequence[str],
          origin: str) -> LoadedScenario:
    """Defaults, then the file over its bases, then overrides; validate and build."""
    defaults = _default_node(scenario_to_dict(Scenario()), file)
    tree = _merge(defaults, _file_tree(text, file, chain))
    for index, override in enumerate(overrides, start=1):
        tree = _apply_override(tree, override, index)
    scenario = _build_section(Scenario, tree, "")
    _refuse_inconsistency(scenario, tree, file)
    _refuse_unrunnable(scenario, tree, file)
    resolved = yaml.dump(scenario_to_dict(scenario), Dumper=_Dumper, sort_keys=False,
                         allow_unicode=True)
    return LoadedScenario(scenario, text, resolved, tuple(overrides), origin)


def _file_tree(text: str, file: str, chain: tuple[pathlib.Path, ...]) -> _Node:
    """One file's nodes merged onto its chain of bases, without the `base` key."""
    node = _compose(text, file, WHOLE_FILE)
    if node is None:
        raise ScenarioError(file, 1, WHOLE_FILE,
                            "the file is empty; expected a mapping of scenario fields")
    root = _Reader(file).read(node, "")
    if not isinstance(root.value, dict):
        raise ScenarioError(file, root.line, WHOLE_FILE,
                            f"expected a mapping of scenario fields, got {_describe(root.value)}")
    entries = dict(root.value)
    base = entries.pop("base", None)
    tree = dataclasses.replace(root, value=entries)
    if base is None:
        return tree
    base_path = _base_path(base, file, chain)
    base_tree = _file_tree(_read_text(base_path), str(base_path), chain + (base_path.resolve(),))
    return _merge(base_tree, tree)


def _base_path(base: _Node, file: str, chain: tuple[pathlib.Path, ...]) -> pathlib.Path:
    """The file a `base:` entry names; refuses missing files and cycles."""
    if not isinstance(base.value, str) or not base.value:
        raise _error(base, "base", "expected a bundled scenario name or a file path, "
                                   f"got {_describe(base.value)}")
    directory = pathlib.Path(file).parent
    found = _find_scenario(base.value, directory)
    if found is None:
        raise _error(base, "base", f"no file {str(directory / base.value)!r} and no bundled scenario "
                                   f"{base.value!r} ({_bundled_list()})")
    path = found[0]
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in chain + (path.resolve(),))
        raise _error(base, "base", f"bases form a cycle: {cycle}")
    return path


def _default_node(value: Any, file: str) -> _Node:
    """Plain default values as a tree of non-explicit nodes at line 1 of `file`."""
    if isinstance(value, dict):
        value = {key: _default_node(item, file) for key, item in value.items()}
    elif isinstance(value, list):
        value = [_default_node(item, file) for item in value]
    return _Node(value, file, 1, explicit=False)


def _merge(base: _Node | None, child: _Node) -> _Node:
    """Child over base: mappings merge key by key; anything else is replaced whole."""
    if base is None or not (isinstance(base.value, dict) and isinstance(child.value, dict)):
        return child
    merged = dict(base.value)
    for key, node in child.value.items():
        merged[key] = _merge(merged.get(key), node)
    return dataclasses.replace(child, value=merged)


def _apply_override(tree: _Node, text: str, index: int) -> _Node:
    """The tree with one ``dotted.path=value`` override merged in."""
    path, equals, value_text = text.partition("=")
    path = path.strip()
    parts = path.split(".")
    if not equals or not all(parts):
        raise ScenarioError(SET_FILE, index, WHOLE_OVERRIDE,
                            f"expected dotted.path=value (e.g. pk.volume_l=5), got {_short(repr(text))}")
    node = _compose(value_text, SET_FILE, path, fixed_line=index)
    value = _Node(None, SET_FILE, index) if node is None else _Reader(SET_FILE, index).read(node, path)
    return _set_in(tree, parts, value, Scenario, "", index)


def _set_in(node: _Node | None, parts: list[str], value: _Node, hint: Any, path: str,
            index: int) -> _Node:
    """A copy of `node` with `value` merged in at the dotted `parts` below it."""
    if not parts:
        return _merge(node, value)
    if node is None:
        node = _Node([] if typing.get_origin(hint) is tuple else {}, SET_FILE, index)
    head, here = parts[0], _join(path, parts[0])
    if isinstance(node.value, dict):
        child = _set_in(node.value.get(head), parts[1:], value, _child_hint(hint, head), here, index)
        return dataclasses.replace(node, value={**node.value, head: child})
    if isinstance(node.value, list):
        items = list(node.value)
        if not _INDEX.fullmatch(head) or int(head) >= len(items):
            raise ScenarioError(SET_FILE, index, here,
                                f"no such item; the list has {len(items)} item(s), numbered from 0")
        position = int(head)
        items[position] = _set_in(items[position], parts[1:], value, _child_hint(hint, head), here, index)
        return dataclasses.replace(node, value=items)
    raise ScenarioError(SET_FILE, index, here, f"{path} holds {_describe(node.value)}, not a section")


# --------------------------------------------------------------------------- validation

@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _child_hint(hint: Any, key: str) -> Any:
    """The schema type below `hint` at `key` (None when unknown)."""
    if dataclasses.is_dataclass(hint):
        return _hints(hint).get(key)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return args[0]
    return args[1] if origin is dict else None


def _build_section(cls: type, node: _Node, path: str, each: tuple | None = None) -> Any:
    """Check a mapping against a section dataclass and build it; `each` (low, high), if
    given, is the range of every leaf (see schema.section)."""
    entries = _expect(node, dict, path, "a mapping of fields")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, child in entries.items():
        if key not in fields:
            raise _error(child, _join(path, key), _unknown_field(key, list(fields)))
        values[key] = _build_field(fields[key], _hints(cls)[key], child, _join(path, key), each)
    return cls(**values)


def _each(section_field: dataclasses.Field) -> tuple | None:
    """(range, unit) that a section field imposes on its leaves (schema.section `each`)."""
    each = section_field.metadata.get("each")
    return None if each is None else (each, _doc_unit(section_field.metadata["doc"]))


def _leaf_meta(field: dataclasses.Field, each: tuple | None) -> Any:
    """A leaf's metadata, its range and unit replaced by the enclosing section's `each`."""
    if each is None:
        return field.metadata
    return {**field.metadata, "range": each[0], "open_low": False, "unit": field.metadata["unit"] or each[1]}


def _build_field(field: dataclasses.Field, hint: Any, node: _Node, path: str,
                 each: tuple | None = None) -> Any:
    """Check and build a field's value: a section, a list, a named mapping or a leaf."""
    if dataclasses.is_dataclass(hint):
        return _build_section(hint, node, path, _each(field))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        items = _expect(node, list, path, "a list")
        return tuple(_build_section(args[0], item, _join(path, i)) for i, item in enumerate(items))
    if origin is dict:
        entries = _expect(node, dict, path, "a mapping of names to sections")
        return {name: _build_section(args[1], item, _named(path, name, item))
                for name, item in entries.items()}
    return _build_leaf(hint, _leaf_meta(field, each), node, path)


def _named(path: str, name: str, node: _Node) -> str:
    """The path of a named entry (a compartment), refusing names dotted paths cannot hold."""
    if not _NAME.fullmatch(name):
        raise _error(node, _join(path, name), "names may only use letters, digits, '_' and '-'")
    return _join(path, name)


def _build_leaf(kind: type, meta: Any, node: _Node, path: str) -> Any:
    """Check a leaf's type, choices and range; ints become floats in float fields."""
    value = node.value
    if isinstance(value, Yaml11Number) and kind is str:
        value = str(value)
    if not _has_type(kind, value):
        raise _error(node, path, f"expected {_EXPECTED[kind]}, got {_describe(value)}")
    value = float(value) if kind is float else value
    choices, (low, high) = meta["choices"], meta["range"]
    if choices and value not in choices:
        raise _error(node, path, f"{_short(repr(value))} is not allowed; choose one of "
                                 f"{', '.join(map(repr, choices))}")
    too_low = low is not None and (value <= low if meta["open_low"] else value < low)
    if too_low or (high is not None and value > high):
        raise _error(node, path, f"{_number(value)}{_with_space(meta['unit'])} is out of range; "
                                 f"allowed {_range_text(meta, meta['unit'])}")
    return value


_EXPECTED = {bool: "true or false", str: "text", int: "a whole number (e.g. 3, not 3.0)",
             float: "a finite number"}


def _has_type(kind: type, value: Any) -> bool:
    """Whether `value` suits a `kind` field: no bools as numbers, no floats as ints, no nan/inf."""
    if kind is bool or kind is str:
        return isinstance(value, kind) and not isinstance(value, Yaml11Number)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind is int:
        return is_int
    return (is_int or isinstance(value, float)) and abs(value) <= sys.float_info.max


def _expect(node: _Node, kind: type, path: str, what: str) -> Any:
    """The node's value if it is a `kind` (dict or list), else a refusal naming `what`."""
    if not isinstance(node.value, kind):
        raise _error(node, path, f"expected {what}, got {_describe(node.value)}")
    return node.value


def _unknown_field(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f"unknown field; did you mean '{close[0]}'?"
    return f"unknown field; allowed: {', '.join(names)}"


def _refuse_inconsistency(scenario: Scenario, tree: _Node, top_file: str) -> None:
    """Raise the first cross-field problem of the scenario, if any."""
    problems = check_consistency(scenario)
    if problems:
        path, message = problems[0]
        raise ScenarioError(*_where_set(tree, path, top_file), path, message)


MAX_COEFFICIENT_OF_VARIATION = 100.0
"""Largest sd / mean of a log-normal receptor distribution (sigma of ln copies ~3, the
bound of cd19_blast_sigma_log); beyond it (sd / mean)^2 can overflow."""


def _refuse_unrunnable(s: Scenario, tree: _Node, top_file: str) -> None:
    """Refuse, before anything is built, what the model could not hold or compute: more
    than MAX_CELLS starting cells or nucleated cells, absurd receptor spreads."""
    r = s.receptors
    for mean_field, sd_field in (("cd19_b_mean", "cd19_b_sd"), ("cd3_t_mean", "cd3_t_sd")):
        mean, sd = getattr(r, mean_field), getattr(r, sd_field)
        if mean > 0 and sd > MAX_COEFFICIENT_OF_VARIATION * mean:
            path = _explicit_path(tree, f"receptors.{mean_field}", f"receptors.{sd_field}")
            raise ScenarioError(*_where_set(tree, path, top_file), path,
                                f"sd {_number(sd)} copies with mean {_number(mean)} copies is a coefficient of "
                                f"variation of {sd / mean:.3g}; at most {_number(MAX_COEFFICIENT_OF_VARIATION)} "
                                f"(set the mean to 0 for no receptors)")
    counts = compartments.initial_counts(s)
    total = sum(counts.values())
    if total > compartments.MAX_CELLS:
        (name, kind), most = max(counts.items(), key=lambda item: item[1])
        path = _culprit(tree, f"compartments.{name}.cells_per_ul.{kind}", *_sizes(name))
        raise ScenarioError(*_where_set(tree, path, top_file), path,
                            f"the scenario would start with {_big(total)} cells ({_big(most)} of them {kind} "
                            f"in {name}); at most {_big(compartments.MAX_CELLS)} "
                            f"(~{_big(compartments.MAX_CELLS * compartments.BYTES_PER_CELL / 1e9)} GB): "
                            f"lower the densities or the compartment sizes")
    capacities = compartments.nucleated_capacities(s)
    if sum(capacities.values()) > compartments.MAX_CELLS:
        name = max(capacities, key=capacities.get)
        path = _culprit(tree, f"compartments.{name}.nucleated_cells_per_ul", *_sizes(name))
        raise ScenarioError(*_where_set(tree, path, top_file), path,
                            f"the compartments would hold {_big(sum(capacities.values()))} nucleated cells "
                            f"({_big(capacities[name])} here), which blasts can grow into; at most "
                            f"{_big(compartments.MAX_CELLS)}: lower nucleated_cells_per_ul or the "
                            f"compartment sizes")


def _node_at(tree: _Node, path: str) -> _Node | None:
    node = tree
    for part in path.split("."):
        node = _child(node, part) if node is not None else None
    return node


def _explicit_path(tree: _Node, *paths: str) -> str:
    """The first of `paths` a file or override set, else the last."""
    for path in paths:
        node = _node_at(tree, path)
        if node is not None and node.explicit:
            return path
    return paths[-1]


def _sizes(name: str) -> list[str]:
    return [f"compartments.{name}.{size}" for size in ("width_um", "height_um", "thickness_um")]


def _culprit(tree: _Node, *paths: str) -> str:
    """Of fields whose product is too large, the one the last --set changed, else the first."""
    overridden = [(node.line, path) for path in paths
                  if (node := _node_at(tree, path)) is not None and node.explicit and node.file == SET_FILE]
    return max(overridden)[1] if overridden else paths[0]


def _big(n: float) -> str:
    """A count as people read it: 2,500 or 3e+10."""
    return f"{n:,.0f}" if n < 1e9 else f"{n:.2g}"


def _where_set(tree: _Node, path: str, top_file: str) -> tuple[str, int]:
    """Where `path` or its nearest ancestor was set; line 1 of the top file if nowhere."""
    where, node = (top_file, 1), tree
    for part in path.split("."):
        node = _child(node, part)
        if node is None:
            break
        if node.explicit:
            where = (node.file, node.line)
    return where


def _child(node: _Node, part: str) -> _Node | None:
    """The node below `node` at one dotted-path part (a key or a list index), if any."""
    if isinstance(node.value, dict):
        return node.value.get(part)
    if isinstance(node.value, list) and _INDEX.fullmatch(part) and int(part) < len(node.value):
        return node.value[int(part)]
    return None


# --------------------------------------------------------------------------- small helpers

def _error(node: _Node, path: str, message: str) -> ScenarioError:
    """The error for a problem with `node`, located where it was set."""
    return ScenarioError(node.file, node.line, path or WHOLE_FILE, message)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _first_line(exc: Exception) -> str:
    """The first line of an exception's text (PyYAML's often add a context snippet)."""
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _one_line(text: str) -> str:
    """Text with line breaks of any kind turned into spaces."""
    return " ".join(text.splitlines())


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _with_space(unit: str) -> str:
    return f" {unit}" if unit else ""


def _number(value: float) -> str:
    """A number as people write it (100 rather than 100.0), long ones shortened."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return _short(repr(value))


def _describe(value: Any) -> str:
    """A value as messages show it: null, true, 2.5, text 'abc', a list, a mapping, a date."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Yaml11Number):
        return f"{_short(str(value))}, {value.note}; write the number in plain decimal"
    if isinstance(value, str):
        return "text " + _short(repr(value))
    if isinstance(value, (int, float)):
        return _short(repr(value))
    return {dict: "a mapping", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def _range_text(meta: Any, unit: str = "") -> str:
    """Allowed values of a numeric field, e.g. '0.1 to 100 L' or 'at least 0'."""
    (low, high), open_low = meta["range"], meta["open_low"]
    if low is None and high is None:
        return "any number"
    if high is None:
        text = f"{'more than' if open_low else 'at least'} {_number(low)}"
    elif low is None:
        text = f"at most {_number(high)}"
    elif open_low:
        text = f"more than {_number(low)} and up to {_number(high)}"
    else:
        text = f"{_number(low)} to {_number(high)}"
    return text + _with_space(unit)


def _plain(value: Any) -> Any:
    """Dataclasses as dicts and tuples as lists, recursively."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


# --------------------------------------------------------------------------- documentation

EXAMPLE_SCENARIO = """\
name: two_compartments
description: Adult step-up cycle 1 with a blood and a marrow slab (illustrative numbers).
duration_h: 336
pk:
  volume_l: 4.35
schedule:
  cycles:
    - length_days: 42
      infusions:
        - {from_day: 1, to_day: 7, ug_per_day: 9}
        - {from_day: 8, to_day: 28, ug_per_day: 28}
compartments:
  blood:
    role: blood
    cells_per_ul: {cd8: 300, cd4: 600, b: 200}
    speed_um_per_min: {cd8: 5, cd4: 5, b: 3}
  marrow:
    role: marrow
    nucleated_cells_per_ul: 1e6
    cells_per_ul: {cd8: 500, cd4: 500, b: 100, blast: 5000}
    speed_um_per_min: {cd8: 5, cd4: 5, b: 2, blast: 2}
    b_production: true
routes:
  - {source: blood, target: marrow, rate_per_h: {cd8: 0.01, cd4: 0.01}}
  - {source: marrow, target: blood, rate_per_h: {cd8: 0.01, cd4: 0.01}}
"""

EXAMPLE_ERRORS = (
    "my_run.yaml:5: pk.volume_l: -1 L is out of range; allowed more than 0.1 and up to 100 L",
    "--set:2: pk.volum_l: unknown field; did you mean 'volume_l'?",
)
"""Messages the docs show; the tests check the loader gives them for EXAMPLE_SCENARIO."""


_DOCS_INTRO = """\
# Scenario files

<!-- Generated from blinasim/schema.py by blinasim.scenario.render_scenario_docs(); do not edit. -->

A scenario is a YAML mapping of the fields listed below. Every field is optional: a field
left out takes its default, so a file states only what differs. Sections are nested
mappings; `schedule.cycles`, `schedule.cycles.N.infusions` and `routes` are lists;
`compartments` maps names of your choice (letters, digits, `_`, `-`) to compartments.

```yaml
{example}```

Whole-number fields (days, hits, `seed`) take YAML integers only: `3`, not `3.0`. Other
numeric fields take integers or decimals, also in exponent form (`1.5e-9`, `1e6`);
`.nan` and `.inf` are refused. Numbers that YAML 1.1 reads otherwise than they look are
refused too (they are text in text fields): a leading zero (`010`, octal 8 in YAML 1.1),
`0x1F`, `0b101` and base 60 (`1:30`, which YAML 1.1 reads as 90). Keys may appear only
once per mapping.

## Inheriting with `base:`

`base: NAME_OR_PATH` at the top of a file starts from another scenario: a file (its path
relative to the including file) or else a bundled scenario by name. A base may have a base
of its own; a cycle of bases is an error. The file's mappings merge into the base key by
key, down to single fields and to compartments by name; a list (`schedule.cycles`,
`infusions`, `routes`) replaces the base's list as a whole.

```yaml
base: standard_cycle
name: low_dose
pk:
  volume_l: 4.35
```

## Overrides with `--set`

`--set dotted.path=value` changes a field after the bases are merged; the value is read as
YAML. List items are addressed by index from 0 and compartments by name (a new name
creates a compartment); a mapping value merges like a file's would.

    --set pk.volume_l=4.35
    --set schedule.cycles.0.infusions.1.ug_per_day=20
    --set compartments.marrow.cells_per_ul.blast=1000

## Limits

Besides each field's range, a scenario may start with at most {max_cells:,} cells in all
(density x volume, summed over compartments and kinds; about 2 GB) and its compartments may
hold at most {max_cells:,} nucleated cells (`nucleated_cells_per_ul` x volume, the room
blasts grow into). A receptor standard deviation may be at most {max_cv:g} times its mean.
A run from {large:,} starting cells, or of more than {long_min:g} minutes' stepping at about
{ns:g} ns per cell and step, is accepted; `blinasim.compartments.large_run_note(scenario)`
gives a one-line estimate of its time and memory.

## Errors

Every problem is reported on one line as `FILE:LINE: field.path: what is wrong and what is
allowed`. An override's problems name the file `--set` and, as line, the override's
position (1, 2, ...); problems with a file as a whole have the path `(file)`. Examples:

{errors}

## Fields
"""


def render_scenario_docs() -> str:
    """The Markdown of docs/scenarios.md, generated from the schema."""
    errors = "\n".join(f"    {message}" for message in EXAMPLE_ERRORS)
    intro = _DOCS_INTRO.format(example=EXAMPLE_SCENARIO, errors=errors, max_cells=compartments.MAX_CELLS,
                               max_cv=MAX_COEFFICIENT_OF_VARIATION, large=compartments.LARGE_RUN_CELLS,
                               long_min=compartments.LONG_RUN_S / 60, ns=compartments.NS_PER_AGENT_STEP)
    return intro + _section_docs(Scenario, "", "Top level")


_TABLE_HEAD = "\n| Field | Meaning | Unit | Default | Allowed | Source |\n|---|---|---|---|---|---|\n"


def _section_docs(cls: type, path: str, title: str, unit: str = "", note: str = "",
                  each: tuple | None = None) -> str:
    """Markdown of a section: heading, a table of its fields, then its subsections."""
    rows, subsections = [], []
    for field in dataclasses.fields(cls):
        hint, here, doc = _hints(cls)[field.name], _join(path, field.name), field.metadata["doc"]
        if field.metadata.get("section"):
            subsections.append(_section_docs(hint, here, doc, unit=_doc_unit(doc), each=_each(field)))
        elif field.metadata.get("collection"):
            subsections.append(_collection_docs(field, hint, here))
        else:
            rows.append(_field_row(here, field, hint, unit, each))
    text = f"\n### `{path}` — {title}\n" if path else f"\n### {title}\n"
    text += f"\n{cls.__doc__}\n" + (f"\n{note}\n" if note else "")
    return text + (_TABLE_HEAD + "".join(rows) if rows else "") + "".join(subsections)


def _collection_docs(field: dataclasses.Field, hint: Any, path: str) -> str:
    """Markdown of the section of one item of a list or of a named mapping."""
    default = _flow(_plain(field.default_factory()))
    if typing.get_origin(hint) is tuple:
        item, item_path, shape = typing.get_args(hint)[0], f"{path}.N", "A list; items are numbered from 0"
    else:
        item, item_path, shape = typing.get_args(hint)[1], f"{path}.NAME", "A mapping from names to sections"
    return _section_docs(item, item_path, field.metadata["doc"], note=f"{shape}. Default: `{default}`.")


def _field_row(path: str, field: dataclasses.Field, kind: type, unit: str,
               each: tuple | None = None) -> str:
    """One Markdown table row: path, meaning, unit, default, allowed values, source."""
    meta = _leaf_meta(field, each)
    if meta["choices"]:
        allowed = ", ".join(f"`{choice!r}`" for choice in meta["choices"])
    else:
        allowed = {bool: "true or false", str: "text"}.get(kind) or _range_text(meta)
        allowed += " (whole number)" if kind is int else ""
    cells = [f"`{path}`", meta["doc"], meta["unit"] or unit or "—", f"`{_flow(field.default)}`",
             allowed, meta["source"] or "—"]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"


def _doc_unit(doc: str) -> str:
    """The unit a section doc ends with in parentheses, e.g. 'cells/uL' of '... (cells/uL of X)'."""
    match = re.search(r"\((\S+)[^()]*\)$", doc)
    return match.group(1) if match else ""


def _flow(value: Any) -> str:
    """A value as one line of YAML flow style."""
    if isinstance(value, float):
        return _number(value)
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, sort_keys=False, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...")
