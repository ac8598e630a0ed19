"""A seeded fuzz of the command line: mutated run files (truncated, bytes flipped, datasets and
attributes deleted or given the wrong type) and random options for run, resume, verify,
compare, plot, show, scenarios and cohort. Each command either works or answers with one line
and its documented exit code; never a traceback, a crash or a hang.

Deterministic: the cases come from `random.Random(SEED)`; a failure names its case, which
`FUZZ_CASE=N pytest tests/test_fuzz_cli.py` reruns alone. Commands run in this process
(start-up would dominate otherwise); a watchdog ends a case that hangs, with its traceback.
"""
from __future__ import annotations

import faulthandler
import os
import random
import shutil
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest

from blinasim.cli import main
from blinasim.model import BlinaModel

SEED = 1616
FILE_CASES = 36
OPTION_CASES = 160
CASE_TIMEOUT_S = 300
"""A case that takes longer is a hang: the watchdog dumps the traceback and ends the process."""

TINY = """\
base: dish
name: tiny
duration_h: 1
compartments:
  well: {width_um: 300, height_um: 300}
"""

EXIT_CODES = {
    "run": {0, 2, 3}, "resume": {0, 2, 3}, "verify": {0, 1, 2}, "compare": {0, 1, 2},
    "plot": {0, 2}, "show": {0, 2}, "scenarios": {0, 2}, "cohort": {2},
}
"""What each command may answer here: 0 works, 1 differs (verify, compare), 2 refused, 3 the run
could not go on. `cohort` is only given inputs it must refuse (a real cohort starts Dask)."""


@pytest.fixture(autouse=True)
def sigint_not_ignored():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """A tiny scenario, a complete run file and an interrupted one (both with a checkpoint and
    snapshots), and files that are not run files."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "tiny.yaml").write_text(TINY)
    options = ["--quiet", "--checkpoint-every", "0.25", "--snapshot-every", "0.25"]
    assert main(["run", str(d / "tiny.yaml"), "--out", str(d / "complete.h5"), *options]) == 0
    original = BlinaModel.step

    def stop_at_40(self):
        original(self)
        if self.steps == 40:
            os.kill(os.getpid(), signal.SIGINT)
    # module-scoped: set up before the autouse SIGINT fixture, so give SIGINT its default
    # handler here too (a background shell hands its children SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(BlinaModel, "step", stop_at_40)
            assert main(["run", str(d / "tiny.yaml"), "--out", str(d / "stopped.h5"), *options]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    (d / "notes.txt").write_text("not a run file\n")
    (d / "empty.h5").write_bytes(b"")
    (d / "noise.h5").write_bytes(random.Random(SEED).randbytes(4096))
    with h5py.File(d / "foreign.h5", "w") as f:
        f["timeseries/x"] = np.arange(4.0)
    (d / "folder").mkdir()
    return {p.name: p for p in d.iterdir()}


def check(argv: list[str], capsys, case: str) -> int:
    """Run one command; it must work, or answer on one line with an expected exit code."""
    code = main(argv)
    out, err = capsys.readouterr()
    where = f"case {case}: blinasim {' '.join(map(repr, argv))}"
    assert code in EXIT_CODES[argv[0]], f"{where}: exit {code}\n{err}"
    assert "Traceback" not in out + err, f"{where}\n{err}"
    if err:
        assert err.count("\n") == 1 and err.endswith("\n") and err.startswith("blinasim"), f"{where}: {err!r}"
    if code == 2:
        assert err.startswith("blinasim: error: "), f"{where}: {err!r}"
    return code


def selected(cases: int) -> list[int]:
    only = os.environ.get("FUZZ_CASE")
    return [int(only)] if only is not None else list(range(cases))


# --------------------------------------------------------------------------- mutated run files

def objects(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return names


WRONG_VALUES = ["text", -1, 1e308, np.arange(3), np.array([1.5, 2.5]), b"\xff\xfe", np.int8(7), ""]


def mutate(path: Path, rng: random.Random) -> str:
    """Damage the run file at `path` in one random way; returns what was done."""
    kind = rng.choice(["truncate", "flip", "delete", "delete_attr", "attr_type", "dataset_type", "resize"])
    if kind == "truncate":
        data = path.read_bytes()
        keep = rng.randrange(len(data))
        path.write_bytes(data[:keep])
        return f"truncated to {keep} bytes"
    if kind == "flip":
        data = bytearray(path.read_bytes())
        spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 8))]
        for spot in spots:
            data[spot] ^= rng.randint(1, 255)
        path.write_bytes(bytes(data))
        return f"flipped bytes at {spots}"
    with h5py.File(path, "r+") as f:
        names = objects(f)
        if kind == "delete":
            name = rng.choice(names)
            del f[name]
            return f"deleted {name}"
        if kind in ("delete_attr", "attr_type"):
            owners = [name for name in ["/", *names] if len(f[name].attrs)]
            owner = f[rng.choice(owners)]
            key = rng.choice(sorted(owner.attrs))
            if kind == "delete_attr":
                del owner.attrs[key]
                return f"deleted attribute {owner.name}:{key}"
            value = rng.choice(WRONG_VALUES)
            owner.attrs[key] = value
            return f"attribute {owner.name}:{key} = {value!r}"
        datasets = [name for name in names if isinstance(f[name], h5py.Dataset)]
        name = rng.choice(datasets)
        if kind == "resize":
            ds = f[name]
            if ds.maxshape and ds.maxshape[0] is None:
                size = rng.choice([0, 1, ds.shape[0] + 1, ds.shape[0] * 3 + 5])
                ds.resize((size,) + ds.shape[1:])
                return f"resized {name} to {size} rows"
        value = rng.choice([np.array(["a", "b"], dtype=object), np.zeros((2, 3)), 7.0,
                            np.arange(rng.randint(0, 5)), np.array([], dtype=np.int8)])
        del f[name]
        f.create_dataset(name, data=value, dtype=h5py.string_dtype() if getattr(value, "dtype", None) == object else None)
        return f"replaced {name} by {np.shape(value)} {getattr(value, 'dtype', type(value).__name__)}"


@pytest.mark.parametrize("case", selected(FILE_CASES))
def test_mutated_run_files(corpus, tmp_path, capsys, case):
    rng = random.Random(SEED * 1000 + case)
    base = corpus[rng.choice(["complete.h5", "stopped.h5", "stopped.h5"])]
    damaged = tmp_path / "damaged.h5"
    shutil.copyfile(base, damaged)
    what = f"{case} ({base.name} {mutate(damaged, rng)})"
    check(["compare", str(corpus["complete.h5"]), str(damaged)], capsys, what)
    check(["compare", str(damaged), str(damaged), "--rtol", "1e-9"], capsys, what)
    check(["verify", str(damaged)], capsys, what)
    if case % 4 == 0:  # a small figure: reading the file is what is fuzzed
        check(["plot", str(damaged), "-o", str(tmp_path / "figure.png"), "--vars", "pk,blood", "--dpi", "20"],
              capsys, what)
    check(["show", str(damaged)], capsys, what)
    check(["resume", str(damaged), "--quiet"], capsys, what)
    check(["resume", str(damaged), "--quiet"], capsys, what)  # refused, or finished, the second time


# --------------------------------------------------------------------------- random options

NUMBERS = ["0", "1", "-1", "0.5", "0.25", "nan", "inf", "-inf", "1e309", "abc", "", "2", " 3",
           "99999999999999999999999", "0x10", "1_000", "1e-9", "-0"]
SETS = ["duration_h=0.5", "duration_h=-1", "duration_h=abc", "seed=2", "seed=1.5", "pk.volum_l=3",
        "name=" + "n" * 300, "=", "duration_h", "output.record_every_min=7", "pk.fixed_pg_per_ml=1e3",
        "compartments.well.width_um=0", "name=a/b", "name=caf\udce9"]
TITLES = ["x", "$", "$\\frac", "%s", "r\u00e9sum\u00e9", "a" * 500]
VARS = ["blood", "nope", "", ",,", "drug_pg_per_ml", "pk,blood"]


def paths(corpus: dict[str, Path], tmp: Path) -> list[str]:
    return [str(corpus[name]) for name in ("notes.txt", "empty.h5", "noise.h5", "foreign.h5", "folder")] + [
        "", ".", str(tmp / "missing.h5"), str(tmp / "no" / "such" / "dir.h5"), str(tmp / ("x" * 300)),
        "/dev/null", "-", str(tmp / "caf\udce9.h5"), "--", str(tmp / "out.h5")]


def options(rng: random.Random, pool: dict[str, list[str]]) -> list[str]:
    argv = []
    for _ in range(rng.randint(0, 4)):
        option = rng.choice(sorted(pool))
        argv.append(option)
        if pool[option]:
            argv.append(rng.choice(pool[option]))
    return argv


def command(rng: random.Random, corpus: dict[str, Path], tmp: Path) -> list[str]:
    files = paths(corpus, tmp)
    runs = [str(tmp / "complete.h5"), str(tmp / "stopped.h5")]
    pick = lambda choices: rng.choice(choices)  # noqa: E731
    outputs = [str(tmp / "out.h5"), str(tmp / "figure.png"), *files]
    name = pick(list(EXIT_CODES))
    if name == "run":
        argv = [pick([str(corpus["tiny.yaml"])] * 4 + files)]
        argv += options(rng, {"--seed": NUMBERS, "--out": outputs, "--set": SETS, "--force": [], "--quiet": [],
                              "--threads": ["1", "2", "0", "-3", "abc", "100000"], "--frobnicate": [],
                              "--snapshot-every": NUMBERS + ["0.016666666666666666"],
                              "--checkpoint-every": NUMBERS})
    elif name == "resume":
        argv = [pick(runs * 3 + files)] + options(rng, {"--threads": ["1", "0", "x"], "--quiet": [],
                                                        "--checkpoint-every": NUMBERS, "--help": []})
    elif name == "verify":
        argv = [pick(runs * 2 + files)] + options(rng, {"--threads": ["1", "0", "x"], "--quiet": []})
    elif name == "compare":
        argv = [pick(runs + files), pick(runs + files)] + options(rng, {"--rtol": NUMBERS, "--atol": NUMBERS})
    elif name == "plot":
        argv = [pick(runs * 2 + files) for _ in range(rng.randint(0, 2))]
        argv += options(rng, {"-o": outputs + [str(tmp / "f.svg"), str(tmp / "f.jpeg")], "--vars": VARS,
                              "--title": TITLES, "--dpi": NUMBERS + ["72"], "--out": [str(tmp / "g.pdf")]})
    elif name == "show":
        argv = [pick([str(corpus["tiny.yaml"]), "dish", "standard_cycle", *files])]
        argv += options(rng, {"--set": SETS})
    elif name == "scenarios":
        argv = options(rng, {"--frobnicate": [], "extra": []}) if rng.random() < 0.5 else []
    else:  # never a cohort that would start: its file is always one that must be refused
        argv = [pick([str(corpus["tiny.yaml"]), *runs, *files])]
        argv += options(rng, {"--patients": NUMBERS, "--out": outputs, "--workers": NUMBERS,
                              "--scheduler": ["tcp://127.0.0.1:1", "nonsense", ""], "--force": [],
                              "--quiet": [], "--patient": NUMBERS})
    if rng.random() < 0.1:
        argv.insert(rng.randrange(len(argv) + 1), pick(["--help", "--nope", "-x", "---", "=", ""]))
    return [name, *argv]


@pytest.mark.parametrize("case", selected(OPTION_CASES))
def test_random_options(corpus, tmp_path, capsys, monkeypatch, case):
    rng = random.Random(SEED * 7919 + case)
    for name in ("complete.h5", "stopped.h5"):
        shutil.copyfile(corpus[name], tmp_path / name)
    monkeypatch.chdir(tmp_path)  # default outputs land here
    argv = command(rng, corpus, tmp_path)
    check(argv, capsys, str(case))
