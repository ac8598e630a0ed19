"""The command line: `blinasim run|resume|cohort|scenarios|show|verify|compare`.

Bad input (scenario, cohort, options, file names, existing outputs) ends with one line on
stderr, ``blinasim: error: ...``, and exit code 2, before anything is written; an interrupted
run or cohort with 130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP); `verify` and `compare` with 1
when they differ; `cohort` with 1 when some patients failed (their errors are in the file).
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
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="threads of the compiled kernels (results do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress display or summary")
    p.add_argument("--checkpoint-every", type=_hours, metavar="HOURS", default=None,
                   help="store the full state in the run file every HOURS of simulated time "
                        "(rounded up to whole recording intervals)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="blinasim", description="Agent-based simulator of blinatumomab therapy in B-ALL.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a scenario into an HDF5 run file")
    run.add_argument("scenario", help="path of a YAML scenario, or the name of a bundled one")
    run.add_argument("--seed", type=_seed, default=None, help="seed of the random streams (default: the scenario's)")
    run.add_argument("--out", type=Path, default=None, help="run file to write (default: NAME_seedN.h5)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                     help="override a scenario field, e.g. --set pk.volume_l=4.35 (repeatable)")
    run.add_argument("--force", action="store_true", help="replace an existing run file")
    run.add_argument("--snapshot-every", type=_hours, metavar="HOURS", default=None,
                     help="record every live cell (group 'snapshots') every HOURS of simulated time")
    _add_run_options(run)

    resume = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    resume.add_argument("file", type=Path, help="the run file (or its name when only FILE.partial is left)")
    _add_run_options(resume)

    sub.add_parser("scenarios", help="list the bundled scenarios")
    for name, (_module, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)

    show = sub.add_parser("show", help="print a fully resolved scenario")
    show.add_argument("scenario")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")

    cohort = sub.add_parser("cohort", help="run a cohort of virtual patients on Dask into an HDF5 cohort file")
    cohort.add_argument("cohort", help="path of a cohort YAML file, or the name of a bundled one")
    cohort.add_argument("--patients", type=_positive_int, default=None, help="number of patients (default: the file's)")
    cohort.add_argument("--out", type=Path, default=None, help="cohort file to write or continue (default: NAME.h5)")
    where = cohort.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="worker processes of a local Dask cluster (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="use the running Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead")
    cohort.add_argument("--force", action="store_true", help="replace an existing --out instead of continuing it")
    cohort.add_argument("--quiet", action="store_true", help="no progress display or summary")
    cohort.add_argument("--patient", type=_non_negative_int, metavar="I", default=None,
                        help="instead of the cohort, write patient I's full run file (--out, default NAME_patientI.h5)")

    verify = sub.add_parser("verify", help="rerun a run file's scenario and seed and check every dataset matches")
    verify.add_argument("file", type=Path)
    verify.add_argument("--threads", type=_positive_int, default=1)

    compare = sub.add_parser("compare", help="report the first difference between two run files (or two cohort files)")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    compare.add_argument("--rtol", type=_tolerance, default=0.0, help="relative tolerance (default: bit-identical)")
    compare.add_argument("--atol", type=_tolerance, default=0.0, help="absolute tolerance")
    return parser


def _existing_run_file(path: Path) -> Path:
    import h5py
    if not path.is_file():
        raise CliError(f"{path}: no such run file")
    if not h5py.is_hdf5(path):
        raise CliError(f"{path}: not an HDF5 run file")
    return path


def _print_summary(summary, quiet: bool) -> None:
    if not quiet:
        print("\n".join(summary.lines()))


def cmd_run(args, command_line: str) -> int:
    from blinasim.run import default_out, run_scenario
    from blinasim.scenario import load_scenario
    loaded = load_scenario(args.scenario, args.overrides)
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
    from blinasim.runfile import compare_runs
    a, b = _existing_run_file(args.a), _existing_run_file(args.b)
    if is_cohort_file(a) or is_cohort_file(b):
        if not (is_cohort_file(a) and is_cohort_file(b)):
            raise CliError(f"{a if is_cohort_file(a) else b} is a cohort file; compare it with another cohort file")
        if args.rtol or args.atol:
            raise CliError("--rtol and --atol apply to run files; cohort files are compared bit for bit")
        difference = compare_cohorts(a, b)
    else:
        difference = compare_runs(a, b, rtol=args.rtol, atol=args.atol)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        import importlib
        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already reported on one line
        return done.code if isinstance(done.code, int) else EXIT_BAD_INPUT
    from blinasim.cohort.cohortfile import CohortFileError
    from blinasim.run import Interrupted, RunError
    from blinasim.runfile import RunFileExists
    from blinasim.scenario import ScenarioError
    try:
        return _dispatch(args, argv)
    except (ScenarioError, RunFileExists, RunError, CliError, CohortFileError) as err:
        print(f"blinasim: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as stop:
        print(f"blinasim: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:  # outside a run's own handling (e.g. while loading)
        print("blinasim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `blinasim scenarios | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
