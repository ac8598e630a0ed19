"""The classroom page: its model and sliders, and the page itself driven end to end by
headless Chromium (served on 127.0.0.1 by `blinasim serve`, stopped at the end).

Needs the 'web' extra (solara) and, for the browser test, selenium with Debian's chromium
and chromium-driver; each test is skipped with the reason when they are missing.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import matplotlib
import pytest

matplotlib.use("Agg")

pytest.importorskip("solara", reason="the classroom page needs the 'web' extra: pip install -e '.[web]'")

from blinasim.scenario import load_scenario  # noqa: E402

with warnings.catch_warnings():  # Mesa 3.3's SolaraViz trips solara's rules-of-hooks check
    warnings.simplefilter("ignore", UserWarning)
    from blinasim.viz import classroom, serve  # noqa: E402

SMALL_DISH = ("compartments.well.width_um=316", "compartments.well.height_um=316", "duration_h=2")
SERVER_START_S = 90.0
BROWSER_WAIT_S = 180  # generous: the page steps the real model, slow on a loaded 2-core machine


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
    params = classroom.model_params("dish", ())
    assert params["dose_ug_per_day"].value == pytest.approx(5.3)
    assert params["et_ratio"].value == pytest.approx(2.0, abs=0.01)
    assert ("treg_fraction" in params) == classroom.schema_has(classroom.TREG_FIELD)
    assert ("cd19neg_share" in params) == classroom.schema_has(classroom.CD19NEG_FIELD)
    assert set(classroom.missing_sliders()) <= {"Treg fraction", "CD19-negative share", "adhesion blockade"}


def test_classroom_model_records_and_stops():
    model = classroom.ClassroomModel("dish", SMALL_DISH, dose_ug_per_day=2.0, et_ratio=3.0)
    assert model.conc_pg_per_ml == pytest.approx(2.0 / 24 / model.scenario.pk.clearance_l_per_h * 1000)
    while model.running:
        model.step()
    assert model.steps == 120 and len(model.history["time_h"]) == 13
    assert model.history["time_h"][-1] == 2.0
    assert classroom.space_view(model) is not None and classroom.series_view(model) is not None


def test_serve_refuses_a_bad_scenario(capsys):
    assert serve.main(["no_such_scenario"]) == 2
    assert "no bundled scenario" in capsys.readouterr().err


# --------------------------------------------------------------------------- the page in a browser

@pytest.fixture
def browser():
    """Headless Chromium driven by selenium (skips the test when either is missing)."""
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
    session = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield session
    session.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def page_url(tmp_path):
    """`blinasim serve` on 127.0.0.1 for one test, stopped (its whole process group) after it."""
    port = _free_port()
    argv = [sys.executable, "-m", "blinasim.viz.serve", "dish", *(a for o in SMALL_DISH for a in ("--set", o)),
            "--port", str(port)]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def test_page_loads_runs_and_the_plot_changes(browser, page_url):
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(page_url)
    # the page re-renders while it runs: an element found a moment ago may be gone, so retry
    wait = WebDriverWait(browser, BROWSER_WAIT_S, poll_frequency=0.25,
                         ignored_exceptions=(StaleElementReferenceException, ElementClickInterceptedException))

    def button(label):
        found = [b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip().upper() == label]
        return found[0] if found else None

    def press(label):
        def clicked(_):
            target = button(label)
            if target is not None:
                target.click()
            return target is not None
        wait.until(clicked, f"no button {label}")

    def pictures():
        return [img.get_attribute("src") for img in browser.find_elements(By.TAG_NAME, "img")]

    def step_count():
        shown = "//*[starts-with(normalize-space(text()), 'Step:')]"
        texts = [e.text for e in browser.find_elements(By.XPATH, shown)]
        return int(texts[0].split(":")[1]) if texts else None

    wait.until(lambda _: button("STEP") and button("RESET") and len(pictures()) >= 2 and step_count() == 0,
               "the page did not load: no Step and Reset buttons, two pictures and 'Step: 0'")
    assert "blinasim classroom" in browser.page_source
    assert "Dose (ug/day)" in browser.page_source and "E:T ratio in well" in browser.page_source
    before = pictures()
    press("STEP")
    wait.until(lambda _: (step_count() or 0) >= classroom.RENDER_INTERVAL and pictures() != before,
               "Step did not advance the model and change the pictures")
    after_step = pictures()
    press("▶")  # start
    wait.until(lambda _: (step_count() or 0) >= 4 * classroom.RENDER_INTERVAL and pictures() != after_step,
               "the started run did not advance and change the pictures")
    press("❚❚")  # pause
    press("RESET")
    wait.until(lambda _: step_count() == 0, "Reset did not start a new model")
