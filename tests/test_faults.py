"""Faults around a run: a full disk (simulated, and a real small tmpfs), concurrent writers of
one output, a failure or a signal during a --force run, a signal during start-up, resume of
damaged or incompatible files, and files or names the commands must refuse on one line.

Every wait is on a condition (a marker file, a lock file, a process ending), never a clock.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

import blinasim.runfile as runfile
from blinasim.cli import main
from blinasim.model import BlinaModel
from blinasim.run import OutputLock
from blinasim.runfile import compare_runs, read_attrs, read_checkpoint, read_timeseries

# the standard cycle shrunk to ~2,000 cells: drug, kills, births and deaths, ~1 s per 12 h
SMALL = """\
base: standard_cycle
name: small
duration_h: 12
compartments:
  blood: {width_um: 2000, height_um: 2000}
  marrow: {width_um: 600, height_um: 600}
"""
# a dish of ~190 cells for one hour: a run takes a fraction of a second
TINY = """\
base: dish
name: tiny
duration_h: 1
compartments:
  well: {width_um: 300, height_um: 300}
"""
OPTIONS = ["--checkpoint-every", "1", "--snapshot-every", "0.5"]
STEPS_PER_H = 60
ERROR_LINE = re.compile(r"blinasim: error: [^\n]+\n")
WAIT_S = 300.0
"""Upper bound of every wait on a condition (a failure only if a process is stuck)."""


@pytest.fixture(autouse=True)
def sigint_not_ignored():
    """Some tests stop runs with SIGINT: give them the default disposition whatever pytest inherited."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _default_signals_in_child() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "small.yaml"
    path.write_text(SMALL)
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "reference.h5"
    assert main(["run", str(small), "--out", str(out), "--quiet", *OPTIONS]) == 0
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted(directory.iterdir()) if p.is_file()}


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert ERROR_LINE.fullmatch(captured.err), captured.err
    assert "Traceback" not in captured.err + captured.out
    return captured.err


def wait_for(condition, what: str, process: subprocess.Popen | None = None) -> None:
    """Wait until `condition()` holds (and `process`, if given, is still running)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            if process is not None:
                process.kill()
            pytest.fail(f"no {what} after {WAIT_S:.0f} s")
        time.sleep(0.02)


def interrupt_at(monkeypatch, step: int, exc: type[BaseException] | None = None) -> None:
    """At `step`, send this process SIGINT, or raise `exc` inside the model's step."""
    original = BlinaModel.step

    def stepped(self):
        original(self)
        if self.steps == step:
            if exc is not None:
                raise exc()
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(BlinaModel, "step", stepped)


# --------------------------------------------------------------------------- a full disk

class SmallDisk:
    """`reserve_space` as on a disk with `limit` bytes for this file (all else untouched)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.refused = 0
        self.real = runfile.reserve_space

    def __call__(self, fd: int, size: int, start: int = 0) -> None:
        if size > self.limit:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.real(fd, size, start)


def test_disk_full_stops_at_once_keeps_the_checkpoint_and_resume_continues(small, reference, tmp_path,
                                                                          monkeypatch, capsys):
    out = tmp_path / "full.h5"
    disk = SmallDisk(20 << 20)   # room for the first checkpoints (~16 MB), not for the 12-h run
    monkeypatch.setattr(runfile, "reserve_space", disk)
    steps = []
    original = BlinaModel.step
    monkeypatch.setattr(BlinaModel, "step", lambda self: (original(self), steps.append(self.steps)))
    assert main(["run", str(small), "--out", str(out), "--quiet", *OPTIONS]) == 3
    err = one_error_line(capsys)
    assert err.startswith(f"blinasim: error: cannot write {out}.partial: No space left on device; "
                          f"the run stopped at day ")
    assert f"partial run kept in {out} (complete=0); once there is space 'blinasim resume {out}' " \
           f"continues it from its last checkpoint (day " in err
    assert disk.refused and steps[-1] < 12 * STEPS_PER_H  # stopped at once, not at the end
    assert read_attrs(out)["complete"] == 0 and not Path(f"{out}.partial").exists()
    step, _state = read_checkpoint(out)  # the last checkpoint is whole and readable
    assert 0 < step <= steps[-1]
    assert read_timeseries(out)["time_h"][-1] * STEPS_PER_H <= steps[-1]

    # the disk is now full: resume refuses and leaves the file as it was
    disk.limit = 0
    before = digest(out)
    assert main(["resume", str(out), "--quiet"]) == 3
    assert "the file was not changed" in one_error_line(capsys)
    assert digest(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["full.h5"]

    monkeypatch.undo()  # space again
    assert main(["resume", str(out), "--quiet"]) == 0
    assert read_attrs(out)["complete"] == 1
    assert compare_runs(reference, out) is None


def test_disk_full_without_checkpoints_stops_at_once(small, tmp_path, monkeypatch, capsys):
    out = tmp_path / "plain.h5"
    monkeypatch.setattr(runfile, "reserve_space", SmallDisk(4 << 20))
    assert main(["run", str(small), "--out", str(out), "--quiet", "--snapshot-every", "0.5"]) == 3
    err = one_error_line(capsys)
    assert "No space left on device" in err and "from the beginning (it has no checkpoint)" in err
    assert read_attrs(out)["complete"] == 0
    assert read_timeseries(out)["time_h"][-1] < 11  # not run to the end and failed at close
    monkeypatch.undo()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert read_attrs(out)["complete"] == 1


def test_full_disk_before_the_first_write_leaves_nothing(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runfile, "reserve_space", SmallDisk(0))
    assert main(["run", str(tiny), "--out", str(tmp_path / "none.h5"), "--quiet"]) == 3
    assert one_error_line(capsys).endswith("No space left on device; nothing was written\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_a_write_failing_inside_hdf5_freezes_the_file_and_resume_continues(small, reference, tmp_path,
                                                                          monkeypatch, capsys):
    """Where space cannot be reserved ahead, HDF5 itself meets the full disk: the file is frozen
    as it was on disk (like after a SIGKILL), the run ends on one line, and resume continues."""
    out = tmp_path / "frozen.h5"
    original, calls = h5py.Dataset.__setitem__, []

    def failing(self, key, value):
        calls.append(self.name)
        if self.name.startswith("/snapshots/") and read_checkpoint_step[0]:
            raise OSError(errno.ENOSPC, "Driver write request failed (file write failed: errno = 28)")
        original(self, key, value)
    read_checkpoint_step = [0]
    save = runfile.RunWriter.save_checkpoint

    def saved(self, step, state):
        save(self, step, state)
        read_checkpoint_step[0] = step
    monkeypatch.setattr(runfile.RunWriter, "save_checkpoint", saved)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)
    assert main(["run", str(small), "--out", str(out), "--quiet", *OPTIONS]) == 3
    err = one_error_line(capsys)
    assert f"cannot write {out}.partial: No space left on device" in err
    assert f"it was frozen as it was on disk in {out}.partial (complete=0); once there is space" in err
    assert not out.exists() and Path(f"{out}.partial").exists()  # as a killed run leaves it
    monkeypatch.undo()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert not Path(f"{out}.partial").exists()
    assert compare_runs(reference, out) is None


def tmpfs_or_skip(directory: Path, size: str) -> None:
    directory.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def blinasim(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blinasim", *argv], capture_output=True, text=True,
                          timeout=WAIT_S, **kw)


def test_real_full_disk(small, reference, tmp_path):
    """A 20 MB tmpfs: one line and exit 3 (no HDF5 traceback, no crash at exit), a readable file
    with its checkpoint, a resume refused without change while the disk is still full, and a
    resume that completes the run once the disk is larger."""
    disk = tmp_path / "disk"
    tmpfs_or_skip(disk, "20m")
    try:
        out = disk / "run.h5"
        done = blinasim("run", str(small), "--out", str(out), "--quiet", *OPTIONS)
        assert done.returncode == 3, done.stderr
        assert ERROR_LINE.fullmatch(done.stderr) and "No space left on device" in done.stderr
        assert done.stdout == ""
        assert read_attrs(out)["complete"] == 0 and read_checkpoint(out)[0] > 0

        filler = disk / "filler"
        with open(filler, "wb") as f:  # take whatever space is left
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        before = listing(disk)
        done = blinasim("resume", str(out), "--quiet")
        assert done.returncode == 3 and ERROR_LINE.fullmatch(done.stderr), done.stderr
        assert listing(disk) == before  # nothing changed, nothing left behind
        filler.unlink()

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        done = blinasim("resume", str(out), "--quiet")
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in disk.iterdir()) == ["run.h5"]
        assert compare_runs(reference, out) is None
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# --------------------------------------------------------------------------- concurrent writers

PAUSED_RUN = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from blinasim.model import BlinaModel
    marker, go = Path(sys.argv[1]), Path(sys.argv[2])
    original = BlinaModel.step
    def step(self):
        original(self)
        if self.steps == 30:  # hold the run here until the test says go
            marker.touch()
            while not go.exists():
                time.sleep(0.01)
    BlinaModel.step = step
    from blinasim.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def test_second_writer_of_one_output_is_refused(small, reference, tmp_path, capsys):
    out = tmp_path / "same.h5"
    out.write_bytes(b"an earlier run")
    marker, go = tmp_path / "running", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", PAUSED_RUN, str(marker), str(go), "run", str(small),
                              "--out", str(out), "--force", "--quiet", *OPTIONS],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=_default_signals_in_child)
    try:
        wait_for(marker.exists, "paused run", first)
        for argv in (["run", str(small), "--out", str(out), "--force", "--quiet"],
                     ["resume", str(out), "--quiet"], ["resume", f"{out}.partial"]):
            assert main(argv) == 2
            assert one_error_line(capsys) == (f"blinasim: error: {out} is being written by another blinasim "
                                              f"process (pid {first.pid}); wait for it to end, or write to "
                                              f"another --out\n")
        assert out.read_bytes() == b"an earlier run"
        go.touch()
        stdout, stderr = first.communicate(timeout=WAIT_S)
    finally:
        if first.poll() is None:
            first.kill()
    assert (first.returncode, stdout, stderr) == (0, "", "")
    assert read_attrs(out)["complete"] == 1
    assert compare_runs(reference, out) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "running", "same.h5"]


def test_lock_is_held_for_the_whole_run_and_released(tiny, tmp_path, capsys):
    out = tmp_path / "locked.h5"
    with OutputLock(out):  # another open file description: as another process would hold it
        assert main(["run", str(tiny), "--out", str(out), "--quiet"]) == 2
        assert "is being written by another blinasim process" in one_error_line(capsys)
        assert not out.exists() and not Path(f"{out}.partial").exists()
    assert main(["run", str(tiny), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked.h5", "tiny.yaml"]
    (tmp_path / "locked.h5.lock").write_text("12345\n")  # left by a killed run: taken over
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--force"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked.h5", "tiny.yaml"]


# --------------------------------------------------------------------------- --force never loses the old file

def test_failure_or_signal_in_a_forced_run_keeps_the_old_file(small, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "old.h5"
    assert main(["run", str(small), "--out", str(out), "--quiet", "--set", "duration_h=1"]) == 0
    old = digest(out)
    partial = Path(f"{out}.partial")

    interrupt_at(monkeypatch, 3 * STEPS_PER_H + 5, MemoryError)
    assert main(["run", str(small), "--out", str(out), "--force", "--quiet", *OPTIONS]) == 3
    assert one_error_line(capsys) == (
        f"blinasim: error: out of memory at day 0.13; partial run kept in {partial} (complete=0); "
        f"{out} was not replaced; 'blinasim resume {out}' continues it from its last checkpoint (day 0.12)\n")
    assert digest(out) == old and read_attrs(partial)["complete"] == 0

    monkeypatch.undo()
    interrupt_at(monkeypatch, 5 * STEPS_PER_H + 5)
    assert main(["resume", str(out), "--quiet"]) == 130  # resumes the .partial, the newest attempt
    assert capsys.readouterr().err == (f"blinasim: interrupted by SIGINT; partial run kept in {partial} "
                                       f"(complete=0); {out} was not replaced; 'blinasim resume {out}' "
                                       f"continues it\n")
    assert digest(out) == old

    monkeypatch.undo()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert not partial.exists() and read_attrs(out)["complete"] == 1
    assert compare_runs(reference, out) is None


# --------------------------------------------------------------------------- a signal during start-up

BLOCK_IMPORT = textwrap.dedent("""\
    # test helper: stop the import of one module (writing a marker) until a signal comes
    import os, sys, time
    _module, _marker = os.environ["BLINASIM_TEST_BLOCK_IMPORT"].split("=", 1)
    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name == _module:
                sys.meta_path.remove(self)
                open(_marker, "w").close()
                while True:
                    time.sleep(0.01)
            return None
    sys.meta_path.insert(0, _Blocker())
""")


def console_script() -> str:
    script = Path(sys.executable).with_name("blinasim")
    return str(script) if script.exists() else shutil.which("blinasim") or ""


@pytest.mark.parametrize("entry, module", [
    ("-m", "blinasim.cli"),     # python -m blinasim, importing the command line
    ("-m", "h5py"),             # main's imports before the command runs
    ("-m", "blinasim.run"),
    ("-m", "yaml"),             # the scenario loader
    ("script", "blinasim.run"),  # the installed `blinasim` command
    ("script", "matplotlib"),   # `blinasim plot` importing its module
])
def test_sigint_during_start_up_exits_130_on_one_line(tiny, tmp_path, entry, module):
    if entry == "script" and not console_script():
        pytest.skip("the blinasim console script is not installed")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(BLOCK_IMPORT)
    marker = tmp_path / "importing"
    command = [sys.executable, "-m", "blinasim"] if entry == "-m" else [console_script()]
    argv = (["plot", str(tmp_path / "none.h5")] if module == "matplotlib"
            else ["run", str(tiny), "--out", str(tmp_path / "out.h5")])
    env = {**os.environ, "BLINASIM_TEST_BLOCK_IMPORT": f"{module}={marker}",
           "PYTHONPATH": os.pathsep.join([str(hooks), *filter(None, [os.environ.get("PYTHONPATH")])])}
    process = subprocess.Popen([*command, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, preexec_fn=_default_signals_in_child)
    try:
        wait_for(marker.exists, f"import of {module}", process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert (process.returncode, stdout, stderr) == (130, "", "blinasim: interrupted\n")
    assert not (tmp_path / "out.h5").exists()


# --------------------------------------------------------------------------- resume refusals leave the file alone

@pytest.fixture
def interrupted(tiny, tmp_path, monkeypatch, capsys) -> Path:
    """A tiny run stopped at 45 min, with a checkpoint at 30 min."""
    out = tmp_path / "stopped.h5"
    interrupt_at(monkeypatch, 45)
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--checkpoint-every", "0.5"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    return out


def damage(path: Path, change) -> None:
    with h5py.File(path, "r+") as f:
        change(f)


@pytest.mark.parametrize("change, message", [
    (lambda f: f["checkpoint/state"].__delitem__("model.cytokines_pg_per_ml"),
     "its checkpoint does not fit the model (missing model.cytokines_pg_per_ml; unknown nothing)"),
    (lambda f: f["checkpoint/state"].attrs.__setitem__("model.steps", "forty"),
     "its checkpoint does not fit the model (model.steps is not a single number)"),
    (lambda f: f["checkpoint/state"].__setitem__("pop.x2", np.zeros(3)), "unknown pop.x2"),
    (lambda f: f["checkpoint"].attrs.__setitem__("timeseries_rows", 10 ** 6), "no usable checkpoint"),
    (lambda f: f.attrs.__setitem__("snapshot_every_h", 0.5), "does not match the file's snapshots"),
    (lambda f: f.attrs.__setitem__("seed", "x"), "its seed attribute is not a whole number"),
    (lambda f: f.__delitem__("timeseries"), "timeseries is missing"),
])
def test_refused_resume_leaves_the_file_exactly_as_it_was(interrupted, capsys, change, message):
    damage(interrupted, change)
    before = listing(interrupted.parent)
    assert main(["resume", str(interrupted), "--quiet"]) == 2
    err = one_error_line(capsys)
    assert message in err, err
    assert listing(interrupted.parent) == before  # same bytes, same name, no .partial, no lock


def test_resume_of_a_truncated_or_foreign_file_is_refused_unchanged(interrupted, tmp_path, capsys):
    data = interrupted.read_bytes()
    interrupted.write_bytes(data[:len(data) // 2])
    before = listing(tmp_path)
    assert main(["resume", str(interrupted)]) == 2
    assert "not a readable run file" in one_error_line(capsys)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    before = listing(tmp_path)
    assert main(["resume", str(foreign)]) == 2
    assert "not a blinasim run file" in one_error_line(capsys)
    assert listing(tmp_path) == before


# --------------------------------------------------------------------------- files and names refused on one line

def test_compare_and_plot_refuse_damaged_and_foreign_files(tiny, tmp_path, capsys):
    good = tmp_path / "good.h5"
    assert main(["run", str(tiny), "--out", str(good), "--quiet"]) == 0
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:5000])
    foreign_a, foreign_b = tmp_path / "a.h5", tmp_path / "b.h5"
    for path in (foreign_a, foreign_b):
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3)
    for argv, message in (
            (["compare", str(good), str(truncated)], f"{truncated}: not a readable run file (Unable to"),
            (["compare", str(foreign_a), str(foreign_b)], f"{foreign_a}: not a blinasim run file"),
            (["compare", str(good), str(tmp_path)], "no such run file"),
            (["plot", str(truncated)], f"{truncated}: not a readable run file"),
            (["plot", str(foreign_a)], "not a blinasim run file"),
            (["plot", ""], "no such HDF5 run file"),
            (["plot", str(good), "--dpi", "0"], "--dpi: expected 1 to"),
            (["plot", str(good), "-o", str(tmp_path)], "unknown figure format"),
            (["plot", str(good), "-o", str(tmp_path / "dir.png")], None),
            (["verify", str(truncated)], "not a readable run file"),
            (["verify", str(foreign_a)], "not a blinasim run file"),
    ):
        if message is None:  # a directory named like a figure
            (tmp_path / "dir.png").mkdir()
            message = "is a directory"
        before = listing(tmp_path)
        assert main(argv) == 2, argv
        assert message in one_error_line(capsys), argv
        assert listing(tmp_path) == before


def test_output_names_that_cannot_be_written(tiny, tmp_path, monkeypatch, capsys):
    before = listing(tmp_path)
    assert main(["run", str(tiny), "--out", ""]) == 2
    assert "expected a file name" in one_error_line(capsys)
    long_name = tmp_path / ("x" * 250 + ".h5")  # fits, but not with '.partial'
    assert main(["run", str(tiny), "--out", str(long_name)]) == 2
    assert "the file name is too long (261 bytes with '.partial', at most 255" in one_error_line(capsys)
    assert main(["resume", str(tmp_path / ("y" * 300))]) == 2
    assert "too long" in one_error_line(capsys)
    assert listing(tmp_path) == before

    monkeypatch.chdir(tmp_path)  # a scenario with a very long name: its default file name is shortened
    assert main(["run", str(tiny), "--set", "name=" + "n" * 300, "--quiet"]) == 0
    written = [p.name for p in tmp_path.iterdir() if p.suffix == ".h5"]
    assert len(written) == 1 and written[0].endswith("_seed1.h5") and len(written[0]) + len(".partial") <= 255


def test_run_files_follow_cf_conventions(tiny, tmp_path):
    out = tmp_path / "cf.h5"
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--snapshot-every", "0.5"]) == 0
    assert read_attrs(out)["Conventions"] == "CF-1.8"
    with xr.open_dataset(out, engine="h5netcdf") as root:
        assert root.attrs["Conventions"] == "CF-1.8"
    for group in ("timeseries", "events/kills", "snapshots/cells", "snapshots/times"):
        with xr.open_dataset(out, engine="h5netcdf", group=group) as ds:
            assert ds.sizes
    other = tmp_path / "other.h5"
    assert main(["run", str(tiny), "--out", str(other), "--quiet", "--snapshot-every", "0.5"]) == 0
    with h5py.File(other, "r+") as f:
        f.attrs["Conventions"] = "CF-1.6"  # attributes, like timestamps, are not compared
    assert compare_runs(out, other) is None


def test_an_unreadable_partial_next_to_the_run_file_is_named(interrupted, capsys):
    """A --force run killed before it wrote anything leaves an empty .partial, newer than FILE."""
    partial = Path(f"{interrupted}.partial")
    partial.write_bytes(b"")
    before = listing(interrupted.parent)
    assert main(["resume", str(interrupted)]) == 2
    assert one_error_line(capsys).endswith(f"; it is newer than {interrupted}: remove it to resume {interrupted}\n")
    assert listing(interrupted.parent) == before
    partial.unlink()
    assert main(["resume", str(interrupted), "--quiet"]) == 0
    assert read_attrs(interrupted)["complete"] == 1
