"""The MLflow UI shows a study in a real browser: the link hpexp prints (the study's trials, best
first, with the objective and the searched hyperparameters as columns), the experiment's page
(a banner with the best trial and that link, the study's parent run with its trials nested under
it), and the parent run's description, summary metrics and artifacts.

Needs Debian's `chromium` and `chromedriver` (apt-get install chromium chromium-driver). Without
them the test is skipped, unless HPEXP_REQUIRE_BROWSER=1 (as in CI), where it fails. Nothing is
downloaded: Selenium gets both executables by path.

The helpers here (`browser_paths`, `launch_chromium`, `mlflow_ui`, `runs_url`) are also what
docs/screenshot.py uses to refresh docs/mlflow-ui.png.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from hpexp.tracking.ui import ui_command, ui_env

# Headless, and quiet on a machine without internet: no background fetches, no updates, no sync.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SERVER_START_S = 60  # the first start of `mlflow server` imports a lot
PAGE_WAIT_S = 60


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) from PATH, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def launch_chromium(profile_dir: Path, width: int = 1400, height: int = 900) -> WebDriver:
    """Headless Chromium with a fresh profile in `profile_dir`; the caller quits it."""
    paths = browser_paths()
    if paths is None:
        raise RuntimeError("chromium and chromedriver are not on PATH")
    chromium, driver = paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile_dir}")
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server and the uvicorn worker it spawned (its own process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@contextlib.contextmanager
def mlflow_ui(tracking_uri: str, log_path: Path) -> Iterator[str]:
    """Serve the UI as `hpexp ui` does, on a free local port; yields its base URL once it
    answers HTTP 200 and stops it on exit. The server's output goes to `log_path`."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ui_command(tracking_uri, "127.0.0.1", port),
            env=ui_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                code = proc.returncode
                raise RuntimeError(f"mlflow server exited with {code}:\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(url + "/", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from {url} in {SERVER_START_S}s:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table (MLflow 3 opens experiments on its GenAI view otherwise)."""
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def wait_for_text(driver: WebDriver, *texts: str, timeout: float = PAGE_WAIT_S) -> str:
    """Wait until the page shows every one of `texts`; returns the page text."""

    def shown(d: WebDriver) -> str | bool:
        body = d.find_element(By.TAG_NAME, "body").text
        return body if all(t in body for t in texts) else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(shown)
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        missing = [t for t in texts if t not in body]
        message = f"{driver.current_url} did not show {missing} in {timeout}s; it shows:\n{body}"
        raise AssertionError(message) from None


# ---------------------------------------------------------------------------------------------


STUDY = {
    "name": "uitest",
    "dataset": {"name": "iris"},
    "fixed": {"optimizer": "adam", "eval_every": 5},
    "search": {
        "learning_rate": {"float": [0.001, 0.1], "log": True},
        "iterations": {"int": [20, 60]},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "budget": {"n_trials": 3},
}
TRIALS = ("trial-0000", "trial-0001", "trial-0002")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if browser_paths() is None:
        message = (
            "the browser test needs Debian's chromium and chromedriver on PATH "
            "(apt-get install chromium chromium-driver)"
        )
        if os.environ.get("HPEXP_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; HPEXP_REQUIRE_BROWSER=1 requires it to run")
        pytest.skip(message)
    driver = launch_chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
@pytest.mark.browser
def test_mlflow_ui_shows_the_study(
    browser: WebDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    import hpexp

    monkeypatch.chdir(tmp_path)
    result = hpexp.run_study(STUDY, progress=False, verbose=False, wait_for_mlflow=True)
    # absolute: MLflow keeps one store per URI string per process, whatever the working folder
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("uitest")
    assert experiment is not None
    eid = experiment.experiment_id
    [parent] = client.search_runs([eid], "attributes.run_name = 'uitest'")
    parent_id = parent.info.run_id
    trials = client.search_runs([eid], "tags.`hpexp.role` = 'trial'")
    accuracy = {r.info.run_name: r.data.metrics["val_accuracy"] for r in trials}
    best, worst = max(accuracy, key=accuracy.__getitem__), min(accuracy, key=accuracy.__getitem__)

    with mlflow_ui(tracking_uri, tmp_path / "mlflow-server.log") as url:
        # The link `hpexp run` prints: the trials, best first, objective and params as columns.
        link = result.ui_url(port=int(url.rsplit(":", 1)[1]))
        assert "viewStateShareKey=hpexp-uitest" in link
        browser.get(link)
        page = wait_for_text(  # the grid renders the columns in view only: the first few
            browser, "uitest: trials, best first", "val_accuracy", "test_accuracy", *TRIALS
        )
        if accuracy[best] > accuracy[worst]:
            assert page.index(best) < page.index(worst)
        shot = tmp_path / "runs.png"
        assert browser.save_screenshot(str(shot))

        # The experiment's own page: the banner, and the study's parent run, trials folded under it.
        browser.get("about:blank")
        browser.get(runs_url(url, eid))
        wait_for_text(browser, "uitest: best trial", "trials, best first", "Run Name")
        row = WebDriverWait(browser, PAGE_WAIT_S).until(
            lambda d: d.find_element(By.CSS_SELECTOR, f"[role='row'][row-id='{parent_id}']")
        )
        assert "uitest" in row.text
        crumb = browser.find_element(By.CSS_SELECTOR, f"a[href='#/experiments/{eid}']")
        assert crumb.text == "uitest"  # the experiment, named after the study
        row.find_element(By.CSS_SELECTOR, "[col-id*='Run Name'] button").click()  # unfold
        wait_for_text(browser, *TRIALS)

        # The parent run's page: its description, children, summary; its artifacts tab.
        browser.get(f"{url}/#/experiments/{eid}/runs/{parent_id}?workflowType=machine_learning")
        wait_for_text(browser, "Best: trial", "Child runs", *TRIALS, "study/best_val_accuracy")
        browser.get(
            f"{url}/#/experiments/{eid}/runs/{parent_id}/artifacts?workflowType=machine_learning"
        )
        wait_for_text(browser, "trials.csv", "plots", "model")

    from PIL import Image

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
    with Image.open(shot) as image:
        assert image.width >= 1000 and image.height >= 600
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colors is not None and len(colors) > 50  # a rendered page, not a blank one
