"""Every command in README.md and docs/*.md runs as written, after the documented set-up.

The snippets are read from the documents at test time: fenced blocks (```python, and
```sh/bash/shell/console or unlabelled ones whose lines are commands) and indented code
blocks whose lines are commands (`blinasim`, `python`, `pip`, `pytest`, `.`). A snippet's
commands run in order, in a temporary directory per document shared by its snippets, so
that a file one command writes is there for the next, as for a reader going through the
page from a fresh clone. `blinasim` commands run in this process through
`blinasim.cli.main` (the console script's entry point); Python snippets run in a fresh
interpreter. A command passes with exit code 0.

Substituted by a cheap equivalent in the default (quick) run, because as written they take
minutes on 2 cores; `pytest -m slow` runs these snippets as written (test_as_written):

- `blinasim run SCENARIO` of a scenario longer than a day (after its own --set): the same
  command with `--set duration_h=2` appended (the last --set wins). A 42-day cycle takes
  about a minute, and the commands after it read the file the same way.
- `blinasim run ... # stop it with Ctrl-C` and the `blinasim resume` after it: the run
  goes in a subprocess cut to 4 days and gets SIGINT a moment after its file appears, then
  `resume` finishes it (as written: the whole cycle, SIGINT after 20 s).
- `blinasim cohort COHORT`: a bundled cohort is 40 patients of 42 days (tens of minutes).
  It becomes a copy of the cohort file whose base scenario is cut to 12 h (`set:
  duration_h`), assessed on day 1, run for 2 patients. `--patient I` runs patient I of that
  copy (with -m slow: the full patient run as written; a whole bundled cohort is never run).
- `blinasim live ... --save FILE --frames N`: at most 4 frames (each frame is a model
  step and a rendered picture; 20 take ~10 s of CPU).
- `blinasim live ... --measure N`: only as written, marked slow (hundreds of frames).

Not run, but parsed (the subcommand and every option exist, values have the right types,
and a scenario with its --set overrides loads):

- `blinasim live` without --save or --measure (opens a window: needs a display) and
  `blinasim serve` (a server for a browser, runs until Ctrl-C);
- `blinasim sensitivity` and `blinasim calibrate` (hundreds of simulations on Dask:
  tests/test_sensitivity.py and tests/test_calibration.py run both commands end to end on
  toy models and small specs);
- synopses with placeholders (`COHORT.yaml`, `[--patients N]`, `A.h5`): only the
  subcommand and its option names are checked.

Set-up commands are not rerun (this test runs inside that set-up): `python3.11 -m venv`
and `. .venv/bin/activate` are skipped, `pip install` must name extras that pyproject.toml
defines, and `pytest` must name test files that exist.

Files a snippet reads but no earlier snippet of its page wrote are copied from the page
that wrote them (docs/cohorts.md reads the README's `mrd.h5`) or else made by a tiny run or
cohort (`run.h5` in docs/runfile.md, or any file when one test is selected alone), or a
sensitivity file by the bundled analysis at 2 samples and 1 replicate (`sensitivity_dish.h5`):
`made_on_demand`. Outputs go under the temporary directory, which has a `docs/images`
folder because the tutorial's commands run from the repository root.

YAML blocks that are whole scenario or cohort files must load (scenarios.md, cohorts.md).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from blinasim.cli import DELEGATED, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_WORDS = ("blinasim", "python", "python3", "python3.11", "pip", "pytest", ".", "source")
SHELL_LANGUAGES = {"sh", "bash", "shell", "console", "shell-session", ""}
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*(\.[a-z0-9]+)?")

QUICK_RUN_H = 2.0
"""Simulated hours of a substituted `blinasim run`."""
LONG_RUN_H = 24.0
"""Runs longer than this are substituted in the quick run."""
INTERRUPTED_RUN_H = 96.0
"""Simulated hours of the run that gets Ctrl-C in the quick run (SIGINT ~1 s after the file appears)."""
QUICK_COHORT_H = 12.0
QUICK_COHORT_PATIENTS = 2
QUICK_FRAMES = 4


# --------------------------------------------------------------------------- extraction

@dataclass(frozen=True)
class Snippet:
    document: str
    line: int
    kind: str  # "shell", "options" (a --set line), "python" or "yaml"
    text: str

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def _is_command(line: str) -> bool:
    words = line.split()
    return bool(words) and words[0] in COMMAND_WORDS


def extract(path: Path) -> list[Snippet]:
    """The code blocks of a Markdown file that are commands, options, Python or YAML."""
    name = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(`{3,}|~{3,})\s*([\w-]*)", line)
        if fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(1))), len(lines))
            body, language = lines[i + 1:end], fence.group(2).lower()
            first = next((b for b in body if b.strip()), "")
            if language == "python":
                found.append(Snippet(name, i + 2, "python", "\n".join(body)))
            elif language == "yaml":
                found.append(Snippet(name, i + 2, "yaml", "\n".join(body)))
            elif language in SHELL_LANGUAGES and _is_command(first.lstrip("$ ")):
                found.append(Snippet(name, i + 2, "shell", "\n".join(b.lstrip("$ ") for b in body)))
            i = end + 1
            continue
        if line.startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            body = [b[4:] for b in lines[i:end]]
            while body and not body[-1].strip():
                body.pop()
            if _is_command(body[0]):
                found.append(Snippet(name, i + 1, "shell", "\n".join(body)))
            elif body[0].startswith("--set "):
                found.append(Snippet(name, i + 1, "options", "\n".join(body)))
            i = end
            continue
        i += 1
    return found


SNIPPETS = [s for path in DOCUMENTS for s in extract(path)]


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    comment: str
    line: str


def commands(text: str) -> list[Command]:
    """Commands of a shell snippet: a line that does not start with a command continues the
    previous one (wrapped synopses); `&&` and `;` separate commands."""
    logical: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if _is_command(line) or not logical:
            logical.append(line.strip())
        else:
            logical[-1] += " " + line.strip()
    found = []
    for line in logical:
        comment = line.split(" #", 1)[1] if " #" in line else ""
        if re.search(r"(^|\s)\[", line):  # a synopsis ([--option VALUE]): keep its brackets and bars
            found.append(Command(tuple(line.split(" #", 1)[0].split()), comment, line))
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in ("&&", ";"):
                if words:
                    found.append(Command(tuple(words), comment, line))
                words = []
            else:
                words.append(token)
    return found


def is_synopsis(argv) -> bool:
    return any("[" in word or "|" == word or PLACEHOLDER.fullmatch(word) for word in argv[1:])


# --------------------------------------------------------------------------- parsers

def subcommand_parser(name: str) -> argparse.ArgumentParser:
    if name in DELEGATED:
        module = importlib.import_module(DELEGATED[name][0])
        return module.build_parser() if hasattr(module, "build_parser") else module.parser()
    top = build_parser()
    action = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert name in action.choices, f"blinasim has no command {name!r}"
    return action.choices[name]


def check_parses(argv) -> None:
    """The command's subcommand and options exist; without placeholders, it parses fully."""
    assert argv[0] == "blinasim", argv
    parser = subcommand_parser(argv[1])
    if is_synopsis(argv):
        known = set(parser._option_string_actions)
        options = {w.strip("[]|") for w in argv[2:] if w.strip("[]|").startswith("-")}
        assert options <= known, f"unknown options {sorted(options - known)} of 'blinasim {argv[1]}'"
        return
    try:
        args = parser.parse_args(list(argv[2:]))
    except SystemExit as exc:
        raise AssertionError(f"{shlex.join(argv)} does not parse") from exc
    if getattr(args, "scenario", None) is not None and hasattr(args, "overrides"):
        from blinasim.scenario import load_scenario
        load_scenario(args.scenario, args.overrides)


# --------------------------------------------------------------------------- running

class Reader:
    """Runs a snippet's commands in the shared directory, quick or as written."""

    def __init__(self, directory: Path, quick: bool, written: dict[str, Path] | None = None):
        self.dir, self.quick = directory, quick
        self.written = {} if written is None else written  # run and cohort files of earlier pages
        self.log: list[str] = []

    # -- one command
    def run(self, command: Command, following: list[Command]) -> None:
        argv = list(command.argv)
        word = argv[0]
        if word in ("python3.11", "python3", "python") and argv[1:3] == ["-m", "venv"]:
            return self.note(command, "skipped: the test runs inside the set-up")
        if word in (".", "source"):
            return self.note(command, "skipped: the test runs inside the set-up")
        if word == "pip":
            return self.check_pip(argv)
        if word == "pytest":
            return self.check_pytest(argv)
        assert word == "blinasim", f"no rule for {command.line!r}"
        sub = argv[1] if len(argv) > 1 else ""
        if {"--help", "-h", "--version"} & set(argv):
            return self.blinasim(argv, command)
        if is_synopsis(argv):
            check_parses(argv)
            return self.note(command, "parsed (a synopsis with placeholders)")
        if sub == "serve" or (sub == "live" and "--save" not in argv and "--measure" not in argv):
            check_parses(argv)
            return self.note(command, "parsed (needs a display or a browser)")
        if sub in ("sensitivity", "calibrate"):
            check_parses(argv)
            return self.note(command, "parsed (the bundled analyses take minutes to an hour; "
                                      "tests/test_sensitivity.py and test_calibration.py run "
                                      "both commands end to end)")
        if sub == "live" and "--measure" in argv and self.quick:
            check_parses(argv)
            return self.note(command, "parsed (hundreds of frames: as written with -m slow)")
        if sub == "run" and "ctrl-c" in command.comment.lower():
            return self.interrupt_then_resume(argv, following)
        if sub == "resume" and getattr(self, "resumed_by_interrupt", None) == argv[-1]:
            return self.note(command, "ran with the interrupted run before it")
        if sub == "run" and self.quick:
            argv = self.shortened_run(argv)
        if sub == "cohort" and (self.quick or "--patient" not in argv):  # never a whole bundled cohort
            argv = self.small_cohort(argv)
        if sub == "live" and "--frames" in argv and self.quick:
            at = argv.index("--frames") + 1
            argv[at] = str(min(int(argv[at]), QUICK_FRAMES))
        self.made_on_demand(argv)
        self.blinasim(argv, command)

    def note(self, command: Command, what: str) -> None:
        self.log.append(f"{command.line}: {what}")

    def blinasim(self, argv: list[str], command: Command) -> str:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv[1:])
        self.log.append(f"$ {shlex.join(argv)}\n{out.getvalue()}{err.getvalue()}")
        assert code == 0, (f"{command.line!r} (ran as {shlex.join(argv)!r}) exited with {code}:\n"
                           f"{out.getvalue()}{err.getvalue()}")
        for name in self._after(argv, "--out"):
            if name.endswith(".h5") and (self.dir / name).is_file():
                self.written.setdefault(name, self.dir / name)
        return out.getvalue()

    # -- substitutions
    def shortened_run(self, argv: list[str]) -> list[str]:
        """`--set duration_h=QUICK_RUN_H` appended to a run longer than LONG_RUN_H."""
        if self.duration_h(argv) > LONG_RUN_H:
            return [*argv, "--set", f"duration_h={QUICK_RUN_H:g}"]
        return argv

    @staticmethod
    def duration_h(argv: list[str]) -> float:
        from blinasim.scenario import load_scenario
        args = build_parser().parse_args(argv[1:])
        return load_scenario(args.scenario, args.overrides).scenario.duration_h

    def small_cohort(self, argv: list[str]) -> list[str]:
        """The cohort's copy with a 12-h base scenario assessed on day 1, QUICK_COHORT_PATIENTS patients."""
        args = build_parser().parse_args(argv[1:])
        short = self.short_cohort_file(args.cohort)
        out = [*argv]
        out[out.index(args.cohort)] = str(short)
        if "--patients" in out:
            out[out.index("--patients") + 1] = str(QUICK_COHORT_PATIENTS)
        elif args.patient is None:
            out += ["--patients", str(QUICK_COHORT_PATIENTS)]
        return out

    def short_cohort_file(self, cohort: str) -> Path:
        import yaml

        from blinasim.scenario import _Dumper, _Loader, bundled_path
        source = Path(cohort) if Path(cohort).is_file() else bundled_path(cohort)
        fields = yaml.load(source.read_text(encoding="utf-8"), Loader=_Loader)
        fields.setdefault("name", source.stem)  # the default output keeps its name
        fields["set"] = {**(fields.get("set") or {}), "duration_h": QUICK_COHORT_H}
        fields["endpoints"] = {**(fields.get("endpoints") or {}), "assessment_day": 1}
        short = self.dir / f"{source.stem}_quick.yaml"
        short.write_text(yaml.dump(fields, Dumper=_Dumper, sort_keys=False), encoding="utf-8")
        return short

    def interrupt_then_resume(self, argv: list[str], following: list[Command]) -> None:
        """Ctrl-C (SIGINT) the run once it is under way, then the resume that follows finishes it."""
        resume = next((c for c in following if c.argv[:2] == ("blinasim", "resume")), None)
        assert resume is not None, "a run to stop with Ctrl-C needs the resume after it"
        hours, wait_s = (INTERRUPTED_RUN_H, 1.0) if self.quick else (None, 20.0)
        if hours is not None:
            argv = [*argv, "--set", f"duration_h={hours:g}"]
        out = Path(self.dir, build_parser().parse_args(argv[1:]).out)
        for leftover in (out, out.with_name(out.name + ".partial")):
            leftover.unlink(missing_ok=True)
        # a background job (e.g. a CI runner's) ignores SIGINT, and so would the run: Ctrl-C
        # reaches a run started from a terminal with SIGINT at its default
        proc = subprocess.Popen([sys.executable, "-m", "blinasim", *argv[1:]], cwd=self.dir,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 300
        while not out.with_name(out.name + ".partial").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.05)
        time.sleep(wait_s)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=600)[0]
        self.log.append(f"$ {shlex.join(argv)}  (SIGINT)\n{output}")
        assert proc.returncode == 128 + signal.SIGINT, f"the run was not stopped by Ctrl-C:\n{output}"
        self.blinasim(list(resume.argv), resume)
        self.resumed_by_interrupt = resume.argv[-1]
        import h5py
        with h5py.File(out) as f:
            assert f.attrs["complete"] == 1 and "resumed" in f.attrs

    # -- files made elsewhere
    def made_on_demand(self, words) -> None:
        """Make the run and cohort files a command or snippet reads, if no earlier snippet did."""
        outputs = {w for flag in ("--out", "-o", "--save") for w in self._after(words, flag)}
        for word in words:
            match = re.fullmatch(r"[\w./-]+\.h5", word)
            if not match or word in outputs or (self.dir / word).exists():
                continue
            if "--patient" in words or words[1:2] == ["cohort"]:
                continue
            if word in self.written:  # written by an earlier page (docs/cohorts.md reads the README's mrd.h5)
                shutil.copyfile(self.written[word], self.dir / word)
                continue
            analysis = re.fullmatch(r"(sensitivity_\w+)\.h5", word)
            if analysis:  # the bundled analysis, as small as it goes (its commands are only parsed)
                self.blinasim(["blinasim", "sensitivity", analysis.group(1), "--samples", "2",
                               "--replicates", "1", "--workers", "1", "--out", word, "--quiet"],
                              Command((), "", f"(made {word})"))
            elif re.search(r"mrd|cohort", word):
                self.blinasim(["blinasim", "cohort", str(self.short_cohort_file("cohort_mrd")),
                               "--patients", str(QUICK_COHORT_PATIENTS), "--workers", "1",
                               "--out", word, "--quiet"], Command((), "", f"(made {word})"))
            else:
                self.blinasim(["blinasim", "run", "standard_cycle", "--set", f"duration_h={QUICK_RUN_H:g}",
                               "--out", word, "--quiet"], Command((), "", f"(made {word})"))

    @staticmethod
    def _after(words, flag) -> list[str]:
        return [words[i + 1] for i, w in enumerate(words[:-1]) if w == flag]

    # -- set-up commands
    def check_pip(self, argv: list[str]) -> None:
        extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
        for word in argv:
            named = re.fullmatch(r"\.\[([\w,-]+)\]", word)
            if named:
                missing = set(named.group(1).split(",")) - extras
                assert not missing, f"{shlex.join(argv)}: pyproject.toml has no extra {sorted(missing)}"
        self.log.append(f"{shlex.join(argv)}: checked the extras (the test runs inside the set-up)")

    def check_pytest(self, argv: list[str]) -> None:
        for word in argv[1:]:
            if word.startswith("tests/"):
                assert (ROOT / word.split("::")[0]).exists(), f"{shlex.join(argv)}: no {word}"
        self.log.append(f"{shlex.join(argv)}: checked the test files named (the suite itself)")

    # -- snippets
    def snippet(self, snippet: Snippet) -> None:
        if snippet.kind == "shell":
            found = commands(snippet.text)
            for index, command in enumerate(found):
                self.run(command, found[index + 1:])
        elif snippet.kind == "options":
            for line in snippet.text.splitlines():
                self.blinasim(["blinasim", "show", "standard_cycle", *shlex.split(line)],
                              Command((), "", line))
        elif snippet.kind == "python":
            self.made_on_demand(["python", *re.findall(r"[\"']([\w./-]+\.h5)[\"']", snippet.text)])
            proc = subprocess.run([sys.executable, "-c", snippet.text], cwd=self.dir, capture_output=True,
                                  text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
            assert proc.returncode == 0, f"the Python snippet failed:\n{proc.stdout}{proc.stderr}"
        elif snippet.kind == "yaml":
            check_yaml(snippet)


def check_yaml(snippet: Snippet) -> None:
    """A YAML block that is a whole scenario or cohort file loads (fragments are skipped)."""
    import yaml

    from blinasim.cohort.spec import load_cohort_text
    from blinasim.scenario import load_scenario_text
    fields = yaml.safe_load(snippet.text)
    if not isinstance(fields, dict) or "name" not in fields and "base" not in fields:
        pytest.skip("a YAML fragment, not a whole file")
    if "readouts" in fields:  # a sensitivity or calibration spec
        load_analysis_spec(snippet)
    elif "covariates" in fields or "scenario" in fields:
        load_cohort_text(snippet.text, str(ROOT / snippet.document))
    else:
        load_scenario_text(snippet.text, str(ROOT / snippet.document))


def load_analysis_spec(snippet: Snippet) -> None:
    """A sensitivity or calibration spec of the docs loads (its data file is not read)."""
    import tempfile

    from blinasim.analysis.calibration import load_calibration
    from blinasim.analysis.sensitivity import load_sensitivity
    kind = "calibration" if "calibration" in snippet.document else "sensitivity"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(snippet.text)
        (load_calibration if kind == "calibration" else load_sensitivity)(str(path))


def substituted(snippet: Snippet) -> bool:
    """Whether the quick run changes any command of the snippet."""
    if snippet.kind != "shell":
        return False
    for command in commands(snippet.text):
        argv = list(command.argv)
        if argv[:1] != ["blinasim"] or is_synopsis(argv) or {"--help", "-h", "--version"} & set(argv):
            continue
        if argv[1] == "cohort" or (argv[1] == "live" and ("--measure" in argv or "--frames" in argv)):
            return True
        if argv[1] == "run" and ("ctrl-c" in command.comment.lower() or Reader.duration_h(argv) > LONG_RUN_H):
            return True
    return False


# --------------------------------------------------------------------------- tests

class Readers:
    """One reader, in its own directory, per document (and per mode)."""

    def __init__(self, factory, quick: bool):
        self.factory, self.quick, self.readers, self.written = factory, quick, {}, {}

    def __call__(self, document: str) -> Reader:
        if document not in self.readers:
            directory = self.factory.mktemp(re.sub(r"\W", "_", document))
            (directory / "docs" / "images").mkdir(parents=True)
            self.readers[document] = Reader(directory, self.quick, self.written)
        return self.readers[document]


@pytest.fixture(scope="module")
def quick_readers(tmp_path_factory):
    return Readers(tmp_path_factory, quick=True)


@pytest.fixture(scope="module")
def readers_as_written(tmp_path_factory):
    return Readers(tmp_path_factory, quick=False)


def test_the_documents_have_snippets():
    names = {s.document for s in SNIPPETS}
    assert {"README.md", "docs/tutorial.md", "docs/cohorts.md", "docs/runfile.md"} <= names
    assert any(s.kind == "python" and s.document == "README.md" for s in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_documented_snippet(snippet, quick_readers, monkeypatch):
    reader = quick_readers(snippet.document)
    monkeypatch.chdir(reader.dir)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    reader.snippet(snippet)


AS_WRITTEN = [s for s in SNIPPETS if substituted(s)]


@pytest.mark.slow
@pytest.mark.parametrize("snippet", AS_WRITTEN, ids=[s.id for s in AS_WRITTEN])
def test_as_written(snippet, readers_as_written, monkeypatch):
    reader = readers_as_written(snippet.document)
    monkeypatch.chdir(reader.dir)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    reader.snippet(snippet)


# --------------------------------------------------------------------------- the commands' own help

def test_every_command_has_a_description_and_help_for_every_argument():
    top = build_parser()
    action = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in action.choices.items():
        if name in DELEGATED:
            parser = subcommand_parser(name)
        assert parser.description, f"'blinasim {name}' has no description"
        for argument in parser._actions:
            if isinstance(argument, argparse._HelpAction):
                continue
            assert argument.help, f"'blinasim {name}': {argument.option_strings or argument.dest} has no help"


def test_version_and_the_bundled_cohorts_in_cohort_help(capsys):
    from blinasim import __version__
    from blinasim.scenario import bundled_cohorts
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"blinasim {__version__}\n"
    assert main(["cohort", "--help"]) == 0
    text = capsys.readouterr().out
    for name, description in bundled_cohorts().items():
        assert f"  {name}  " in text and "does not load" not in description


def test_scenarios_lists_cohorts_with_their_descriptions(capsys):
    assert main(["scenarios"]) == 0
    scenarios, cohorts = capsys.readouterr().out.split("\n\ncohorts (blinasim cohort NAME):\n")
    assert "cohort_" not in scenarios and "does not load" not in scenarios + cohorts
    assert "MRD-positive adult B-ALL in remission" in cohorts
