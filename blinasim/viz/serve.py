"""`blinasim serve`: the classroom page (blinasim.viz.classroom) in a local web server.

    blinasim serve [SCENARIO] [--set PATH=VALUE ...] [--port 8765] [--host 127.0.0.1]

Needs the optional extra ``web`` (solara). The server (solara, a child process) runs until
Ctrl-C; it dies with this command however that ends: Ctrl-C, SIGTERM or SIGHUP stop it
first (exit code 130, 143 or 129), and on Linux the kernel stops it if this process is
killed outright.
"""
from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import signal
import subprocess
import sys

from blinasim.scenario import load_scenario
from blinasim.viz import Parser, VizError, run_command

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
GRACE_S = 10.0
"""How long the server may take to shut down before it is killed."""


def server_command(host: str, port: int) -> list[str]:
    """The command that runs the page with solara's server (no check for a newer solara:
    the pinned one is on purpose, and the check would reach for the internet)."""
    return [sys.executable, "-m", "solara", "run", "blinasim.viz.classroom", "--host", host,
            "--port", str(port), "--production", "--no-open", "--no-check-version", "--log-level", "warning"]


def server_env(scenario: str, overrides: list[str]) -> dict[str, str]:
    """The environment that tells the page its scenario, keeps solara off the network (no
    usage statistics sent) and quiets its warnings about Mesa's hooks and plain-http
    cookies, which a classroom cannot act on."""
    return {**os.environ, "BLINASIM_SCENARIO": scenario, "BLINASIM_SET": "\n".join(overrides),
            "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False", "PYTHONWARNINGS": "ignore::UserWarning"}


def _die_with_parent() -> None:
    """In the child before it runs the server: ask Linux to send it SIGTERM when this
    process dies, even by SIGKILL (elsewhere the signal handlers below have to do)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Stopped(Exception):
    """A stop signal arrived."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_server(server: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """Stop the server (SIGTERM, then SIGKILL after `grace_s`) and reap it."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def supervise(server: subprocess.Popen, grace_s: float = GRACE_S) -> int:
    """Wait for the server to end; on a stop signal, or at exit, stop it first.

    Returns the server's exit code, or 128 + the signal's number when a signal stopped it.
    """
    def on_signal(signum, _frame):
        for s in STOP_SIGNALS:  # one stop is enough; a second signal must not cut it short
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    atexit.register(stop_server, server, grace_s)
    try:
        return server.wait()
    except Stopped as stop:
        print(f"blinasim: {stop}: stopping the server", file=sys.stderr, flush=True)
        stop_server(server, grace_s)
        return 128 + stop.signum
    finally:
        stop_server(server, grace_s)
        atexit.unregister(stop_server)
        for s, handler in previous.items():
            signal.signal(s, handler)


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
    server = subprocess.Popen(server_command(args.host, args.port), env=server_env(scenario, args.overrides),
                              preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    return supervise(server)


def main(argv: list[str] | None = None) -> int:
    """`blinasim serve [SCENARIO] ...`; returns the exit code."""
    return run_command(build_parser(), _serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
