"""The classroom page: its model and sliders, `blinasim serve` as a process, and the page
itself driven end to end by headless Chromium (served on 127.0.0.1, stopped at the end).

Needs the 'web' extra (solara) and, for the browser tests, selenium with Debian's chromium
and chromium-driver; each test is skipped with the reason when they are missing.

Every wait here is on a condition (an element's state, the model's step counter, a line in
the server's log, a process's exit); the time limits only bound a hang, and are generous
because the page steps the real model on a possibly loaded 2-core machine.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

pytest.importorskip("solara", reason="the classroom page needs the 'web' extra: pip install -e '.[test,web]'")

from blinasim.scenario import load_scenario  # noqa: E402

with warnings.catch_warnings():  # Mesa 3.3's SolaraViz trips solara's rules-of-hooks check
    warnings.simplefilter("ignore", UserWarning)
    from blinasim.viz import classroom, serve  # noqa: E402

SMALL_DISH = ("compartments.well.width_um=316", "compartments.well.height_um=316", "duration_h=2")
LONG_SMALL_DISH = (*SMALL_DISH[:2], "duration_h=48")  # runs far longer than any test looks at it
HANG_S = 300.0
"""Bounds every wait: a server start, a page element, a process exit. Only a hang reaches it."""


def wait_for(condition, message: str, timeout: float = HANG_S, poll: float = 0.2):
    """Poll `condition` until it returns something true (returned); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{message} (waited {timeout:.0f} s)")
        time.sleep(poll)


# --------------------------------------------------------------------------- the model behind the page

def test_dose_and_et_overrides():
    dish = load_scenario("dish").scenario
    out = dict(o.split("=") for o in classroom.overrides_for(dish, classroom.dose_of(dish), 1.0, 0.0, 0.0, 0.0))
    assert float(out["pk.fixed_pg_per_ml"]) == pytest.approx(dish.pk.fixed_pg_per_ml)
    cd8, cd4 = float(out["compartments.well.cells_per_ul.cd8"]), float(out["compartments.well.cells_per_ul.cd4"])
    cells = dish.compartments["well"].cells_per_ul
    assert cd8 + cd4 == pytest.approx(cells.blast)  # E:T 1
    assert cd8 / cd4 == pytest.approx(cells.cd8 / cells.cd4)
    cycle = load_scenario("standard_cycle").scenario
    out = classroom.overrides_for(cycle, 14.0, 0.08, 0.0, 0.0, 0.0)
    assert out[:2] == ["schedule.cycles.0.infusions.0.ug_per_day=4.5", "schedule.cycles.0.infusions.1.ug_per_day=14.0"]


def test_sliders_follow_the_schema():
    assert classroom.schema_has("pk.volume_l") and not classroom.schema_has("pk.no_such_field")
    settings = classroom.settings_for("dish", ())
    assert settings["dose_ug_per_day"].value == pytest.approx(5.3)
    assert settings["et_ratio"].value == pytest.approx(2.0, abs=0.01)
    assert ("treg_fraction" in settings) == classroom.schema_has(classroom.TREG_FIELD)
    assert ("cd19neg_share" in settings) == classroom.schema_has(classroom.CD19NEG_FIELD)
    assert set(classroom.missing_sliders()) <= {"Treg fraction", "CD19-negative share", "adhesion blockade"}
    # every slider is a parameter of the page's model
    import inspect
    assert set(settings) <= set(inspect.signature(classroom.ClassroomModel).parameters)


def test_slider_readouts_give_value_and_unit():
    dish = classroom.settings_for("dish", ())
    assert dish["dose_ug_per_day"].readout(5.3) == "Dose: 5.3 ug/day (drug 99 pg/mL in the well)"
    assert dish["et_ratio"].readout(2.0) == "E:T ratio in the well: 2.00 T cells per blast"
    if "treg_fraction" in dish:
        assert dish["treg_fraction"].readout(0.1) == "Tregs: 10% of CD4 T cells"
    if "cd19neg_share" in dish:
        assert dish["cd19neg_share"].readout(0.25) == "CD19-negative blasts: 25% of blasts"
    if "adhesion_blockade" in dish:
        assert dish["adhesion_blockade"].readout(0.5) == "Adhesion blockade: 50% of each pathway blocked"
    cycle = classroom.settings_for("standard_cycle", ())
    assert cycle["dose_ug_per_day"].readout(28.0) == "Dose: 28.0 ug/day (the largest infusion rate)"


def test_classroom_model_records_and_stops():
    model = classroom.ClassroomModel("dish", SMALL_DISH, dose_ug_per_day=2.0, et_ratio=3.0)
    assert model.kernel is None  # off a page: nothing to wait for
    assert model.conc_pg_per_ml == pytest.approx(2.0 / 24 / model.scenario.pk.clearance_l_per_h * 1000)
    while model.running:
        model.step()
    assert model.steps == 120 and len(model.history["time_h"]) == 13
    assert model.history["time_h"][-1] == 2.0
    assert classroom.space_view(model) is not None and classroom.series_view(model) is not None
    assert classroom.notes(model)[0].startswith("dish: ")


class FakeKernel:
    """What the model reads of a solara kernel: its pages' status, its lock and its end."""

    def __init__(self):
        from solara.server.kernel_context import PageStatus
        self.status = PageStatus
        self.page_status = {"tab": PageStatus.CONNECTED}
        self.lock = threading.RLock()
        self.closed_event = threading.Event()


def test_the_model_steps_only_while_a_browser_shows_the_page(monkeypatch, capsys):
    monkeypatch.setattr(classroom, "VIEWER_POLL_S", 0.01)
    ran = []  # the model steps that really ran (Mesa counts a step before it runs)
    original = classroom.BlinaModel.step
    monkeypatch.setattr(classroom.BlinaModel, "step", lambda self: (ran.append(self.steps), original(self))[1])
    model = classroom.ClassroomModel("dish", SMALL_DISH)
    kernel = model.kernel = FakeKernel()
    model.step()
    assert ran == [1]

    # the tab lost its connection: the next step waits until it is back
    kernel.page_status["tab"] = kernel.status.DISCONNECTED
    stepper = threading.Thread(target=model.step)
    stepper.start()
    wait_for(lambda: "waits after step 1" in capsys.readouterr().err, "the model did not wait for a browser")
    assert stepper.is_alive() and ran == [1]  # waiting, nothing stepped
    kernel.page_status["tab"] = kernel.status.CONNECTED
    stepper.join(HANG_S)
    assert not stepper.is_alive() and ran == [1, 2]
    assert "goes on after step 1" in capsys.readouterr().err

    # the tab was closed: the model stops for good and ends the page's play thread quietly
    import solara.util
    kernel.page_status["tab"] = kernel.status.DISCONNECTED
    kernel.closed_event.set()
    with pytest.raises(solara.util.CancelledError):
        model.step()
    assert not model.running and ran == [1, 2]
    assert "the page was closed: its model stopped after step 2" in capsys.readouterr().err


def test_serve_refuses_a_bad_scenario(capsys):
    assert serve.main(["no_such_scenario"]) == 2
    assert "no bundled scenario" in capsys.readouterr().err


def test_the_server_stays_off_the_internet():
    command = serve.server_command("127.0.0.1", 8765)
    assert "--no-check-version" in command  # no "please upgrade" for the pinned solara
    env = serve.server_env("dish", ["duration_h=2"])
    assert env["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] == "False"
    assert env["BLINASIM_SCENARIO"] == "dish" and env["BLINASIM_SET"] == "duration_h=2"


# --------------------------------------------------------------------------- `blinasim serve` as a process

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Served:
    """A running `blinasim serve` (in a session of its own) and its log."""
    process: subprocess.Popen
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def server_child(self):
        """The solara server process that `blinasim serve` started."""
        psutil = pytest.importorskip("psutil")
        return wait_for(lambda: psutil.Process(self.process.pid).children(),
                        "blinasim serve started no server process")[0]


@pytest.fixture
def start_server(tmp_path):
    """Starts `blinasim serve dish` with overrides; every one is stopped (its whole process
    group) after the test, whatever the test did to it."""
    started: list[Served] = []

    def start(overrides=SMALL_DISH) -> Served:
        port = _free_port()
        log = tmp_path / f"server{len(started)}.log"
        argv = [sys.executable, "-m", "blinasim.viz.serve", "dish",
                *(a for o in overrides for a in ("--set", o)), "--port", str(port)]
        with log.open("w") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        served = Served(process, f"http://127.0.0.1:{port}/", log)
        started.append(served)
        wait_for(lambda: _answers(served.url) or process.poll() is not None, "the server did not start")
        if process.poll() is not None:
            pytest.fail(f"the server ended at its start: {served.log_text()[-2000:]}")
        return served

    yield start
    for served in started:
        try:
            os.killpg(served.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        served.process.wait(timeout=60)


def _gone(process) -> bool:
    import psutil
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_the_server_dies_with_blinasim_serve(start_server, signum, code):
    served = start_server()
    child = served.server_child()
    os.kill(served.process.pid, signum)  # to `blinasim serve` alone, not its process group
    assert served.process.wait(timeout=HANG_S) == code
    wait_for(lambda: _gone(child), f"the server (pid {child.pid}) outlived blinasim serve")
    assert f"{signal.Signals(signum).name}: stopping the server" in served.log_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux's")
def test_the_server_dies_even_when_blinasim_serve_is_killed(start_server):
    served = start_server()
    child = served.server_child()
    os.kill(served.process.pid, signal.SIGKILL)  # no handler can run
    served.process.wait(timeout=HANG_S)
    wait_for(lambda: _gone(child), f"the server (pid {child.pid}) outlived a killed blinasim serve")


# --------------------------------------------------------------------------- the page in a browser

@pytest.fixture
def browser():
    """Headless Chromium driven by selenium, keeping the console's messages (skips the test
    when either is missing)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("no headless Chromium here: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (extra 'test')")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(chromedriver), options=options)
    session.set_page_load_timeout(HANG_S)
    yield session
    session.quit()


class Page:
    """The classroom page in the browser, read and pressed as a person would.

    The page re-renders while it runs, so an element found a moment ago may be gone: every
    look is retried until its condition holds.
    """

    def __init__(self, browser):
        from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
        self.browser, self.by = browser, By
        self.wait = WebDriverWait(browser, HANG_S, poll_frequency=0.25,
                                  ignored_exceptions=(StaleElementReferenceException,
                                                      ElementClickInterceptedException))

    def until(self, condition, message: str):
        return self.wait.until(lambda _: condition(), message)

    def button(self, label: str):
        found = [b for b in self.browser.find_elements(self.by.TAG_NAME, "button") if b.text.strip().upper() == label]
        return found[0] if found else None

    def press(self, label: str) -> None:
        """Click the button once it is there and enabled."""
        def clicked():
            target = self.button(label)
            if target is None or not target.is_enabled():
                return False
            target.click()
            return True
        self.until(clicked, f"no enabled button {label}")

    def pictures(self) -> list[str]:
        return [img.get_attribute("src") for img in self.browser.find_elements(self.by.TAG_NAME, "img")]

    def texts(self) -> list[str]:
        return self.browser.find_element(self.by.TAG_NAME, "body").text.splitlines()

    def step_count(self) -> int | None:
        shown = [t for t in self.texts() if t.startswith("Step:")]
        return int(shown[0].split(":")[1]) if shown else None

    def loaded(self) -> None:
        self.until(lambda: self.button("STEP") and self.button("RESET") and len(self.pictures()) >= 2
                   and self.step_count() == 0,
                   "the page did not load: no Step and Reset buttons, two pictures and 'Step: 0'")

    def slider_after(self, readout_start: str):
        xpath = f"//*[starts-with(normalize-space(text()), '{readout_start}')]/following::*[@role='slider'][1]"
        return self.browser.find_element(self.by.XPATH, xpath)

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.browser.get_log("browser") if e["level"] == "SEVERE"]


def test_page_loads_runs_and_the_plot_changes(browser, start_server):
    served = start_server()
    browser.get(served.url)
    page = Page(browser)
    page.loaded()
    assert "blinasim classroom" in browser.page_source
    before = page.pictures()
    page.press("STEP")
    page.until(lambda: page.step_count() == classroom.RENDER_INTERVAL and page.pictures() != before,
               "Step did not advance the model by one picture and change the pictures")
    after_step = page.pictures()
    page.press("▶")  # start
    page.until(lambda: (page.step_count() or 0) >= 4 * classroom.RENDER_INTERVAL and page.pictures() != after_step,
               "the started run did not advance and change the pictures")

    # pause it, unless it has ended meanwhile (then the button is disabled): either is fine
    def paused_or_ended():
        pause = page.button("❚❚")
        if pause is not None and pause.is_enabled():
            pause.click()
            return False  # look again
        play = page.button("▶")
        return (play is not None) or (pause is not None and not pause.is_enabled())
    page.until(paused_or_ended, "the run could neither be paused nor had it ended")
    page.press("RESET")
    page.until(lambda: page.step_count() == 0 and page.button("▶") is not None and page.button("▶").is_enabled(),
               "Reset did not start a new model, ready to play")
    assert page.console_errors() == []  # no missing asset, no script error


def test_slider_values_are_shown_with_units(browser, start_server):
    from selenium.webdriver.common.keys import Keys
    served = start_server()
    browser.get(served.url)
    page = Page(browser)
    page.loaded()
    settings = classroom.settings_for("dish", SMALL_DISH)
    readouts = [*(setting.readout(setting.value) for setting in settings.values()),
                f"Render interval: {classroom.RENDER_INTERVAL} steps ({classroom.RENDER_INTERVAL} simulated min) per picture",
                f"Play interval: {classroom.PLAY_INTERVAL_MS} ms between pictures"]
    page.until(lambda: not [r for r in readouts if r not in page.texts()],
               f"not every slider's value is written on the page: {readouts}")

    def pressed_right_twice():  # two steps of 0.1 ug/day, on the slider under the dose readout
        page.slider_after("Dose:").send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        return True
    page.until(pressed_right_twice, "no dose slider to move")
    dose = settings["dose_ug_per_day"]
    expected = dose.readout(round(dose.value + 2 * dose.step, 1))
    page.until(lambda: expected in page.texts(), f"the dose readout did not follow the slider to {expected!r}")
    assert page.console_errors() == []


def test_the_model_stops_when_the_page_is_closed(browser, start_server):
    served = start_server(LONG_SMALL_DISH)
    browser.get(served.url)
    page = Page(browser)
    page.loaded()
    page.press("▶")
    page.until(lambda: (page.step_count() or 0) >= 2 * classroom.RENDER_INTERVAL, "the run did not start")
    seen = page.step_count()
    browser.get("about:blank")  # leave the page: the tab's kernel closes
    stopped = wait_for(lambda: [line for line in served.log_text().splitlines()
                                if "the page was closed: its model stopped after step" in line],
                       f"the model did not stop when the page closed: {served.log_text()[-2000:]}")
    assert len(stopped) == 1 and int(stopped[0].rsplit(" ", 1)[1]) >= seen
    assert served.process.poll() is None  # the server itself goes on, for the next visitor
