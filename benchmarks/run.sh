#!/bin/sh
# The performance benchmark in one command, from a fresh clone:
#
#     benchmarks/run.sh                 # full run: dish 1e4/1e5/1e6, plain Mesa 1e4/1e5, standard_cycle
#     benchmarks/run.sh --quick         # seconds; any option of `python -m blinasim.bench --help`
#
# Runs with the first of these in which blinasim and its compiled kernels import: $PYTHON,
# the project's .venv (the one the README sets up). Failing both, it creates .venv and
# installs the package into it (needs gcc and the package registry). Prints the table
# and writes the records as JSON to benchmarks/results/latest.json (see benchmarks/README.md).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
usable() {
    [ -n "$1" ] && "$1" -P -c "import blinasim._contacts, blinasim.bench, mesa" 2>/dev/null
}
python=${PYTHON:-}
if ! usable "$python"; then
    python="$root/.venv/bin/python"
    if ! usable "$python"; then
        if [ ! -x "$python" ]; then
            base=$(command -v python3.11 || command -v python3)
            echo "benchmarks/run.sh: creating $root/.venv" >&2
            "$base" -m venv "$root/.venv"
        fi
        echo "benchmarks/run.sh: installing blinasim into $root/.venv" >&2
        "$python" -m pip install -q "$root"
    fi
fi
mkdir -p "$root/benchmarks/results"
# -P: import the installed package (with its compiled kernels), not the source tree
exec "$python" -P -m blinasim.bench --out "$root/benchmarks/results/latest.json" "$@"
