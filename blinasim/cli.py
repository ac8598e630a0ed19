"""The command line: `blinasim run|resume|cohort|scenarios|show|verify|compare`.

Bad input (scenario, cohort, options, file names, existing outputs) ends with one line on
stderr, ``blinasim: error: ...``, and exit code 2, before anything is written; an interrupted
run or cohort with 130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP); `verify` and `compare` with 1
when they differ; `cohort` with 1 when some patients failed (their errors are in the file); a
run that could not go on (disk full, write error, out of memory) with one line and 3.
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

from blinasim.arguments import positive_number, whole_number_at_least

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 3

DELEGATED = {
    "live": ("blinasim.viz.live", "watch a scenario run: a window, or a GIF/MP4 with --save"),
    "plot": ("blinasim.viz.figures", "the standard multi-panel figure of run files"),
    "serve": ("blinasim.viz.serve", "the classroom web page (extra 'web')"),
    "bench": ("blinasim.bench", "the performance benchmarks and the plain-Mesa reference"),
    "sensitivity": ("blinasim.analysis.sensitivity", "global sensitivity analysis (SALib Morris/Sobol) on Dask"),
    "calibrate": ("blinasim.analysis.calibration", "fit parameters to measurements by ABC-SMC (pyABC) on Dask"),
}
"""Subcommands whose module parses its own arguments (its main(argv) -> exit code)."""


class CliError(Exception):
    """A user error reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as the same one line as every other refusal."""

    def error(self, message: str):
        message = " ".join(message.split())
        self.exit(EXIT_BAD_INPUT, f"blinasim: error: {message} (see '{self.prog} --help')\n")


class _HelpParser(_Parser):
    """A parser whose epilog is made only when the help is shown (``epilog_from``)."""

    def __init__(self, *args, epilog_from=None, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self.epilog_from = epilog_from

    def format_help(self) -> str:
        if self.epilog_from is not None:
            self.epilog = self.epilog_from()
        return super().format_help()


class _HelpFormatter(argparse.HelpFormatter):
    """Fills paragraphs of descriptions and epilogs; keeps lines indented by two spaces as written."""

    def _fill_text(self, text, width, indent):
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith("  ") for line in lines):  # a list such as "examples:\n  ..."
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


_positive_int = whole_number_at_least(1)
_non_negative_int = whole_number_at_least(0)
_hours = positive_number("hours")


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range; allowed 0 to 2**63-1")
    return value


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                   help="threads of the compiled kernels (default 1; results do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress display or summary")
    p.add_argument("--checkpoint-every", type=_hours, metavar="HOURS", default=None,
                   help="store the full state in the run file every HOURS of simulated time "
                        "(rounded up to whole recording intervals), so that 'blinasim resume' "
                        "can continue an interrupted run from there")


RUN_DESCRIPTION = """\
Run a scenario into one HDF5 run file and print what happened: the marrow response at the
day-29 assessment (complete remission, MRD), B-cell depletion in blood, T cells, the drug
level, the peak CRS grade, neurotoxicity, infusion interruptions and the kills.

The file is written as FILE.partial and renamed to FILE when the run ends. Ctrl-C (or
SIGTERM/SIGHUP) stops the run and keeps what was recorded (complete=0); with
--checkpoint-every, 'blinasim resume FILE' continues it."""

RUN_EPILOG = """\
examples:
  blinasim run standard_cycle --out standard_cycle.h5
  blinasim run high_burden --seed 7 --set pk.volume_l=4.35 --out hb.h5
  blinasim run standard_cycle --set duration_h=168 --out first_week.h5

'blinasim scenarios' lists the bundled scenarios; docs/scenarios.md describes every field."""

COHORT_DESCRIPTION = """\
Run a cohort of seeded virtual patients (one base scenario, covariates drawn per patient)
on Dask and score clinical endpoints for each: complete remission and MRD response at the
assessment, relapse, CD19-negative relapse, CRS, neurotoxicity, B-cell depletion and T-cell
expansion. Results stream into one HDF5 cohort file with the rates and 95% intervals;
rerunning the same command continues an interrupted cohort (docs/cohorts.md)."""


def _cohort_epilog() -> str:
    from blinasim.scenario import bundled_cohorts
    cohorts = bundled_cohorts()
    width = max(map(len, cohorts), default=0)
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, text in cohorts.items()) or "  (none)"
    return (f"bundled cohorts (or give the path of a cohort YAML file):\n{listing}\n\n"
            "examples:\n"
            "  blinasim cohort cohort_mrd --patients 40 --workers 2 --out mrd.h5\n"
            "  blinasim cohort cohort_mrd --patient 7 --out p7.h5")


def build_parser() -> argparse.ArgumentParser:
    from blinasim import __version__  # the installed package's version (importlib.metadata)
    parser = _HelpParser(prog="blinasim", description="Agent-based simulator of blinatumomab therapy in B-ALL.",
                         epilog="'blinasim COMMAND --help' describes a command. Documentation: README.md and docs/.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version of blinasim and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_HelpParser)

    run = sub.add_parser("run", help="run a scenario into an HDF5 run file",
                         description=RUN_DESCRIPTION, epilog=RUN_EPILOG)
    run.add_argument("scenario", metavar="SCENARIO", help="path of a YAML scenario, or the name of a bundled one "
                                      "('blinasim scenarios' lists them)")
    run.add_argument("--seed", type=_seed, default=None, metavar="N",
                     help="seed of the random streams (default: the scenario's); the same scenario "
                          "and seed give the same results")
    run.add_argument("--out", type=Path, default=None, metavar="FILE",
                     help="run file to write (default: NAME_seedN.h5 in the current directory)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                     help="override a scenario field, e.g. --set pk.volume_l=4.35 or "
                          "--set duration_h=168 (repeatable; docs/scenarios.md)")
    run.add_argument("--force", action="store_true", help="replace an existing run file (and FILE.partial)")
    run.add_argument("--snapshot-every", type=_hours, metavar="HOURS", default=None,
                     help="record every live cell (group 'snapshots') every HOURS of simulated time")
    _add_run_options(run)

    resume = sub.add_parser(
        "resume", help="continue an interrupted run from its last checkpoint",
        description="Continue a run stopped by Ctrl-C, a signal or a kill from its last checkpoint "
                    "(see 'run --checkpoint-every'), into the same file, and print the summary of "
                    "the whole run. A run without a checkpoint starts again from the beginning with "
                    "the scenario and seed stored in the file.")
    resume.add_argument("file", type=Path, metavar="FILE",
                        help="the run file (or its name when only FILE.partial is left after a kill)")
    _add_run_options(resume)

    sub.add_parser("scenarios", help="list the bundled scenarios and cohorts",
                   description="List the bundled scenarios (for run, show, live and serve), then the "
                               "bundled cohorts (for cohort), each with the first sentence of its "
                               "description.")
    for name, (_module, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)

    show = sub.add_parser(
        "show", help="print a fully resolved scenario",
        description="Print a scenario with every field resolved: its base scenarios merged, the "
                    "defaults filled in and the --set overrides applied. The YAML printed loads "
                    "again as a scenario file.")
    show.add_argument("scenario", metavar="SCENARIO", help="path of a YAML scenario, or the name of a bundled one")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                      help="override a scenario field, as for 'blinasim run' (repeatable)")

    cohort = sub.add_parser("cohort", help="run a cohort of virtual patients on Dask into an HDF5 cohort file",
                            description=COHORT_DESCRIPTION, epilog_from=_cohort_epilog)
    cohort.add_argument("cohort", metavar="COHORT", help="path of a cohort YAML file, or the name of a bundled one (below)")
    cohort.add_argument("--patients", type=_positive_int, default=None, metavar="N",
                        help="number of patients (default: the file's)")
    cohort.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="cohort file to write or continue (default: NAME.h5)")
    where = cohort.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None, metavar="K",
                       help="worker processes of a local Dask cluster (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="use the running Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead")
    cohort.add_argument("--force", action="store_true", help="replace an existing --out instead of continuing it")
    cohort.add_argument("--quiet", action="store_true", help="no progress display or summary")
    cohort.add_argument("--patient", type=_non_negative_int, metavar="I", default=None,
                        help="instead of the cohort, write patient I's full run file "
                             "(--out, default NAME_patientI.h5) and print its summary")

    verify = sub.add_parser(
        "verify", help="rerun a run file's scenario and seed and check every dataset matches",
        description="Rerun the scenario stored in a run file with its seed (and snapshot interval) "
                    "in a temporary file and compare every dataset with the file's. Exit code 0 "
                    "when all match, 1 with the first difference.")
    verify.add_argument("file", type=Path, metavar="FILE", help="the run file to check")
    verify.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                        help="threads of the rerun (default 1; results do not depend on it)")

    compare = sub.add_parser(
        "compare", help="report the first difference between two run files (or two cohort files)",
        description="Compare two run files dataset by dataset and report the first differing "
                    "dataset, variable, row and time, or 'no differences'. Two cohort files are "
                    "compared bit for bit, timings aside. Exit code 0 when they match, 1 otherwise.")
    compare.add_argument("a", type=Path, metavar="A", help="the first run (or cohort) file")
    compare.add_argument("b", type=Path, metavar="B", help="the second run (or cohort) file")
    compare.add_argument("--rtol", type=_tolerance, default=0.0, metavar="X",
                         help="relative tolerance of run files (default 0: bit-identical)")
    compare.add_argument("--atol", type=_tolerance, default=0.0, metavar="X",
                         help="absolute tolerance of run files (default 0)")
    return parser


def _existing_run_file(path: Path) -> Path:
    """An existing HDF5 file (not yet checked to be a run file or a cohort file)."""
    import h5py
    try:
        exists = path.is_file()
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: cannot use this file name ({_reason(exc)})") from None
    if not exists:
        raise CliError(f"{path}: no such run file")
    try:
        hdf5 = h5py.is_hdf5(path)
    except (OSError, ValueError, TypeError) as exc:
        raise CliError(f"{path}: cannot read it ({_reason(exc)})") from None
    if not hdf5:
        raise CliError(f"{path}: not an HDF5 run file")
    return path


def _readable_run_file(path: Path) -> Path:
    """An existing file that opens as HDF5 and has the run-file layout."""
    import h5py
    from blinasim.runfile import is_run_layout
    _existing_run_file(path)
    try:
        with h5py.File(path, "r") as f:
            layout = is_run_layout(f)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"{path}: not a readable run file ({_reason(exc)})") from None
    if not layout:
        raise CliError(f"{path}: not a blinasim run file (no timeseries/time_h dataset)")
    return path


def _reason(exc: BaseException) -> str:
    """The first line of an error, without h5py's long details."""
    if isinstance(exc, OSError) and exc.errno and not str(exc).startswith("[Errno"):
        return os.strerror(exc.errno)
    lines = str(exc).splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text.split(" (file read failed")[0].split(" (file write failed")[0]


def _print_summary(summary, quiet: bool) -> None:
    if not quiet:
        print("\n".join(summary.lines()))


def _note_large_run(scenario, quiet: bool) -> None:
    """One line on stderr before a run of 1e6 cells or ~10 minutes and more."""
    from blinasim.compartments import large_run_note
    note = large_run_note(scenario)
    if note and not quiet:
        print(f"blinasim: {note}", file=sys.stderr)


def cmd_run(args, command_line: str) -> int:
    from blinasim.run import default_out, run_scenario
    from blinasim.scenario import load_scenario
    loaded = load_scenario(args.scenario, args.overrides)
    _note_large_run(loaded.scenario, args.quiet)
    seed = loaded.scenario.seed if args.seed is None else args.seed
    out = args.out or default_out(loaded.scenario.name, seed)
    summary = run_scenario(loaded, out, seed=seed, force=args.force, threads=args.threads,
                           quiet=args.quiet, checkpoint_every_h=args.checkpoint_every,
                           snapshot_every_h=args.snapshot_every, command_line=command_line)
    _print_summary(summary, args.quiet)
    return 0


def cmd_resume(args, command_line: str) -> int:
    from blinasim.run import resume_run
    summary = resume_run(args.file, threads=args.threads, quiet=args.quiet,
                         checkpoint_every_h=args.checkpoint_every, command_line=command_line)
    _print_summary(summary, args.quiet)
    return 0


def cmd_cohort(args, command_line: str) -> int:
    from blinasim.cohort.cohortfile import summary_lines
    from blinasim.cohort.execute import run_cohort
    from blinasim.cohort.spec import load_cohort
    spec = load_cohort(args.cohort)
    if args.patient is not None:
        return _cohort_patient(spec, args, command_line)
    out = args.out or Path(f"{spec.name}.h5")
    done = run_cohort(spec, out, patients=args.patients, workers=args.workers, scheduler=args.scheduler,
                      force=args.force, quiet=args.quiet, command_line=command_line)
    if not args.quiet:
        where = f" on {done.workers} workers" if done.ran else " (nothing left to run)"
        print(f"ran {done.ran} patients in {done.wall_s:.1f} s{where}")
        print("\n".join(summary_lines(done.path)))
    if done.failed:
        print(f"blinasim: {done.failed} patient(s) failed; their errors are in {done.path} "
              f"(patients/error); rerunning the same command retries them", file=sys.stderr)
        return 1
    return 0


def _cohort_patient(spec, args, command_line: str) -> int:
    from blinasim.cohort.patient import draw_patient
    from blinasim.run import run_scenario
    from blinasim.scenario import load_scenario_text
    patients = args.patients or spec.settings.patients
    if args.patient >= patients:
        raise CliError(f"--patient {args.patient}: the cohort has patients 0 to {patients - 1}")
    draw = draw_patient(spec, args.patient)
    if draw.problem:
        raise CliError(f"patient {args.patient}: {draw.problem}")
    loaded = load_scenario_text(spec.base.resolved_yaml, f"{spec.file} patient {args.patient}", draw.overrides)
    out = args.out or Path(f"{spec.name}_patient{args.patient}.h5")
    summary = run_scenario(loaded, out, seed=draw.seed, force=args.force, quiet=args.quiet,
                           command_line=command_line)
    _print_summary(summary, args.quiet)
    return 0


def cmd_scenarios() -> int:
    from blinasim.scenario import bundled_cohorts, bundled_scenarios
    scenarios, cohorts = bundled_scenarios(), bundled_cohorts()
    width = max(map(len, [*scenarios, *cohorts]), default=0)
    for name, description in scenarios.items():
        print(f"{name:<{width}}  {description}")
    if cohorts:
        print("\ncohorts (blinasim cohort NAME):")
        for name, description in cohorts.items():
            print(f"{name:<{width}}  {description}")
    return 0


def cmd_show(args) -> int:
    from blinasim.scenario import load_scenario
    sys.stdout.write(load_scenario(args.scenario, args.overrides).resolved_yaml)
    return 0


def cmd_verify(args) -> int:
    from blinasim.run import verify_run
    result = verify_run(_existing_run_file(args.file), threads=args.threads)
    note = "" if result.complete else " (the file is incomplete: complete=0)"
    if result.difference is None:
        print(f"{result.path}: every dataset matches a rerun of its scenario with seed {result.seed}{note}")
        return 0
    print(f"{result.path}: differs from a rerun with seed {result.seed}{note}: {result.difference}")
    return 1


def cmd_compare(args) -> int:
    from blinasim.cohort.cohortfile import compare_cohorts, is_cohort_file
    from blinasim.runfile import NotARunFile, compare_runs
    a, b = _existing_run_file(args.a), _existing_run_file(args.b)
    if is_cohort_file(a) or is_cohort_file(b):
        if not (is_cohort_file(a) and is_cohort_file(b)):
            raise CliError(f"{a if is_cohort_file(a) else b} is a cohort file; compare it with another cohort file")
        if args.rtol or args.atol:
            raise CliError("--rtol and --atol apply to run files; cohort files are compared bit for bit")
        try:
            difference = compare_cohorts(a, b)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CliError(f"cannot compare {a} and {b}: a file is damaged ({_reason(exc)})") from None
    else:
        _readable_run_file(a), _readable_run_file(b)
        try:
            difference = compare_runs(a, b, rtol=args.rtol, atol=args.atol)
        except NotARunFile as exc:
            raise CliError(str(exc)) from None
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CliError(f"cannot compare {a} and {b}: a file is damaged ({_reason(exc)})") from None
    if difference is None:
        print("no differences")
        return 0
    print(str(difference))
    return 1


def _dispatch(args, argv: list[str]) -> int:
    command_line = shlex.join(["blinasim", *argv])
    if args.command == "run":
        return cmd_run(args, command_line)
    if args.command == "resume":
        return cmd_resume(args, command_line)
    if args.command == "cohort":
        return cmd_cohort(args, command_line)
    if args.command == "scenarios":
        return cmd_scenarios()
    if args.command == "show":
        return cmd_show(args)
    if args.command == "verify":
        return cmd_verify(args)
    return cmd_compare(args)


def main(argv: list[str] | None = None) -> int:
    """The `blinasim` command; returns the exit code.

    Everything, imports included, runs inside the handlers: a SIGINT at any moment after
    this module was imported ends with one line and exit code 130, never a traceback.
    """
    try:
        for stream in (sys.stdout, sys.stderr):  # no traceback for file names that cannot be printed
            try:
                stream.reconfigure(errors="backslashreplace")
            except (AttributeError, ValueError, OSError):
                pass
        return _main(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:  # outside a run's own handling (e.g. while loading)
        return _fail("blinasim: interrupted", 130)


def _fail(line: str, code: int) -> int:
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):  # no stderr left to print to
        pass
    return code


def _main(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        import importlib
        try:
            module = importlib.import_module(DELEGATED[argv[0]][0])
        except ImportError as exc:
            return _fail(f"blinasim: error: {argv[0]} needs a package that is not installed ({exc})",
                         EXIT_BAD_INPUT)
        return module.main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already reported on one line
        return done.code if isinstance(done.code, int) else EXIT_BAD_INPUT
    from blinasim.cohort.cohortfile import CohortFileError
    from blinasim.run import Interrupted, RunError, RunFailed
    from blinasim.runfile import RunFileExists
    from blinasim.scenario import ScenarioError
    try:
        return _dispatch(args, argv)
    except (ScenarioError, RunFileExists, RunError, CliError, CohortFileError) as err:
        return _fail(f"blinasim: error: {err}", EXIT_BAD_INPUT)
    except RunFailed as err:
        return _fail(f"blinasim: error: {err}", EXIT_RUN_FAILED)
    except Interrupted as stop:
        return _fail(f"blinasim: {stop}", 128 + stop.signum)
    except MemoryError:
        return _fail("blinasim: error: out of memory", EXIT_RUN_FAILED)
    except BrokenPipeError:  # e.g. `blinasim scenarios | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as err:  # a file that cannot be read or written, not caught more precisely
        where = f"{err.filename}: " if err.filename else ""
        return _fail(f"blinasim: error: {where}{_reason(err)}", EXIT_BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
