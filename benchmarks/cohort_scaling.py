"""Parallel efficiency of `blinasim cohort`: the same cohort on 1 and on 2 Dask workers.

    python benchmarks/cohort_scaling.py [--cohort FILE] [--patients N] [--workers 1,2]

Runs the cohort once per worker count into a temporary directory, checks that every run's
cohort file equals the first one's (timings aside), and prints wall seconds, patients per
minute and the speed-up over the first worker count; `--json FILE` writes the records.
Exit status 1 when the files differ.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile

from blinasim.cohort.cohortfile import compare_cohorts
from blinasim.cohort.execute import run_cohort
from blinasim.cohort.spec import load_cohort

HERE = pathlib.Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cohort", type=pathlib.Path, default=HERE / "cohort_scaling.yaml")
    p.add_argument("--patients", type=int, default=None)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--json", type=pathlib.Path, default=None, help="write the records here")
    args = p.parse_args(argv)
    spec = load_cohort(args.cohort)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        first = None
        for workers in (int(w) for w in args.workers.split(",")):
            out = pathlib.Path(tmp) / f"workers{workers}.h5"
            done = run_cohort(spec, out, patients=args.patients, workers=workers, quiet=True)
            identical = True if first is None else compare_cohorts(first, out) is None
            first = first or out
            records.append({"name": "cohort", "cohort": spec.name, "patients": done.patients,
                            "workers": workers, "wall_s": round(done.wall_s, 2),
                            "patients_per_min": round(60.0 * done.patients / done.wall_s, 3),
                            "identical_to_first": identical, "failed": done.failed,
                            "load_avg_1m": os.getloadavg()[0], "machine": platform.platform()})
    base = records[0]["wall_s"]
    print(f"{'workers':>7} {'patients':>8} {'wall s':>8} {'patients/min':>12} {'speed-up':>8}  identical")
    for r in records:
        r["speedup"] = round(base / r["wall_s"], 3)
        print(f"{r['workers']:>7} {r['patients']:>8} {r['wall_s']:>8.1f} {r['patients_per_min']:>12.2f} "
              f"{r['speedup']:>8.2f}  {'yes' if r['identical_to_first'] else 'NO'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=1))
    return 0 if all(r["identical_to_first"] and not r["failed"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
