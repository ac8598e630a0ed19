"""Pictures of runs: the live view (`blinasim live`), the standard figure of a run file
(`blinasim plot`) and the classroom page (`blinasim serve`).

Each command module exposes ``main(argv) -> int``. Like the rest of the command line, a
bad input ends with one line ``blinasim: error: ...`` on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_BAD_INPUT = 2


class VizError(Exception):
    """A user error of a viz command, reported as one line with exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are the same one line as every other refusal."""

    def error(self, message: str):
        message = " ".join(message.split())
        self.exit(EXIT_BAD_INPUT, f"blinasim: error: {message} (see '{self.prog} --help')\n")


def run_command(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
                argv: list[str] | None) -> int:
    """Parse `argv` and run `body`, turning user errors into one line and exit code 2."""
    from blinasim.scenario import ScenarioError
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as done:  # --help, or a usage error already reported
        return done.code if isinstance(done.code, int) else EXIT_BAD_INPUT
    try:
        return body(args)
    except (VizError, ScenarioError) as err:
        print(f"blinasim: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("blinasim: interrupted", file=sys.stderr)
        return 130
