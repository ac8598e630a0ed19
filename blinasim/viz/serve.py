"""`blinasim serve`: the classroom page (blinasim.viz.classroom) in a local web server.

    blinasim serve [SCENARIO] [--set PATH=VALUE ...] [--port 8765] [--host 127.0.0.1]

Needs the optional extra ``web`` (solara). The server runs until Ctrl-C.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from blinasim.scenario import load_scenario
from blinasim.viz import Parser, VizError, run_command


def server_command(host: str, port: int) -> list[str]:
    """The command that runs the page with solara's server."""
    return [sys.executable, "-m", "solara", "run", "blinasim.viz.classroom", "--host", host,
            "--port", str(port), "--production", "--no-open", "--log-level", "warning"]


def server_env(scenario: str, overrides: list[str]) -> dict[str, str]:
    """The environment that tells the page its scenario (and quiets solara's warnings about
    Mesa's hooks and plain-http cookies, which a classroom cannot act on)."""
    return {**os.environ, "BLINASIM_SCENARIO": scenario, "BLINASIM_SET": "\n".join(overrides),
            "PYTHONWARNINGS": "ignore::UserWarning"}


def build_parser() -> Parser:
    p = Parser(prog="blinasim serve", description="Serve the classroom page (sliders, start/step/reset, live plots).")
    p.add_argument("scenario", nargs="?", default="dish", help="bundled scenario name or YAML path (default: dish)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a scenario field (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    return p


def _serve(args) -> int:
    if importlib.util.find_spec("solara") is None:
        raise VizError("the classroom page needs the 'web' extra: pip install 'blinasim[web]'")
    scenario = os.path.abspath(args.scenario) if os.path.isfile(args.scenario) else args.scenario
    load_scenario(scenario, args.overrides)  # refuse a bad scenario here, in one line
    print(f"classroom page on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call(server_command(args.host, args.port), env=server_env(scenario, args.overrides))


def main(argv: list[str] | None = None) -> int:
    """`blinasim serve [SCENARIO] ...`; returns the exit code."""
    return run_command(build_parser(), _serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
