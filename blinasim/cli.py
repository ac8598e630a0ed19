"""The command line: `blinasim run|resume|scenarios|show|verify|compare`.

Bad input (scenario, file names, existing outputs) ends with one line on stderr and exit
code 2; an interrupted run with 130 (SIGINT) or 143 (SIGTERM); `verify` and `compare`
with 1 when the files differ.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user error reported as one line with exit code 2."""


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, help="threads of the compiled kernels (results do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress display or summary")
    p.add_argument("--checkpoint-every", type=float, metavar="HOURS", default=None,
                   help="store the full state in the run file every HOURS of simulated time")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blinasim", description="Agent-based simulator of blinatumomab therapy in B-ALL.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario into an HDF5 run file")
    run.add_argument("scenario", help="path of a YAML scenario, or the name of a bundled one")
    run.add_argument("--seed", type=int, default=None, help="seed of the random streams (default: the scenario's)")
    run.add_argument("--out", type=Path, default=None, help="run file to write (default: NAME_seedN.h5)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                     help="override a scenario field, e.g. --set pk.volume_l=4.35 (repeatable)")
    run.add_argument("--force", action="store_true", help="replace an existing run file")
    _add_run_options(run)

    resume = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    resume.add_argument("file", type=Path)
    _add_run_options(resume)

    sub.add_parser("scenarios", help="list the bundled scenarios")

    show = sub.add_parser("show", help="print a fully resolved scenario")
    show.add_argument("scenario")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")

    verify = sub.add_parser("verify", help="rerun a run file's scenario and seed and check every dataset matches")
    verify.add_argument("file", type=Path)
    verify.add_argument("--threads", type=int, default=1)

    compare = sub.add_parser("compare", help="report the first difference between two run files")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    compare.add_argument("--rtol", type=float, default=0.0)
    compare.add_argument("--atol", type=float, default=0.0)
    return parser


def _existing_run_file(path: Path) -> Path:
    if not path.is_file():
        raise CliError(f"{path}: no such run file")
    return path


def cmd_run(args, command_line: str) -> int:
    from blinasim.run import default_out, run_scenario
    from blinasim.scenario import load_scenario
    loaded = load_scenario(args.scenario, args.overrides)
    seed = loaded.scenario.seed if args.seed is None else args.seed
    out = args.out or default_out(loaded.scenario.name, seed)
    summary = run_scenario(loaded, out, seed=seed, force=args.force, threads=args.threads,
                           quiet=args.quiet, checkpoint_every_h=args.checkpoint_every,
                           command_line=command_line)
    if not args.quiet:
        print("\n".join(summary.lines()))
    return 0


def cmd_resume(args) -> int:
    from blinasim.run import resume_run
    summary = resume_run(_existing_run_file(args.file), threads=args.threads, quiet=args.quiet,
                         checkpoint_every_h=args.checkpoint_every)
    if not args.quiet:
        print("\n".join(summary.lines()))
    return 0


def cmd_scenarios() -> int:
    from blinasim.scenario import bundled_scenarios
    scenarios = bundled_scenarios()
    width = max(map(len, scenarios), default=0)
    for name, description in scenarios.items():
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_show(args) -> int:
    from blinasim.scenario import load_scenario
    sys.stdout.write(load_scenario(args.scenario, args.overrides).resolved_yaml)
    return 0


def cmd_verify(args) -> int:
    from blinasim.run import run_scenario
    from blinasim.runfile import compare_runs, read_attrs
    from blinasim.scenario import load_scenario_text
    path = _existing_run_file(args.file)
    attrs = read_attrs(path)
    loaded = load_scenario_text(attrs["scenario_resolved"], filename=f"{path}:scenario_resolved")
    with tempfile.TemporaryDirectory(prefix="blinasim-verify-") as tmp:
        rerun = Path(tmp) / "rerun.h5"
        run_scenario(loaded, rerun, seed=int(attrs["seed"]), threads=args.threads, quiet=True)
        difference = compare_runs(path, rerun)
    if difference is None:
        print(f"{path}: every dataset matches a rerun of its scenario with seed {attrs['seed']}")
        return 0
    print(f"{path}: differs from its rerun: {difference}")
    return 1


def cmd_compare(args) -> int:
    from blinasim.runfile import compare_runs
    difference = compare_runs(_existing_run_file(args.a), _existing_run_file(args.b),
                              rtol=args.rtol, atol=args.atol)
    if difference is None:
        print("no differences")
        return 0
    print(str(difference))
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    from blinasim.run import Interrupted
    from blinasim.runfile import RunFileExists
    from blinasim.scenario import ScenarioError
    try:
        if args.command == "run":
            return cmd_run(args, shlex.join(["blinasim", *argv]))
        if args.command == "resume":
            return cmd_resume(args)
        if args.command == "scenarios":
            return cmd_scenarios()
        if args.command == "show":
            return cmd_show(args)
        if args.command == "verify":
            return cmd_verify(args)
        return cmd_compare(args)
    except (ScenarioError, RunFileExists, CliError) as err:
        print(f"blinasim: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as stop:
        print(f"blinasim: {stop}", file=sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
