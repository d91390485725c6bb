"""Refresh docs/mlflow-ui.png: the MLflow UI's runs table for a study, its trials unfolded under
the study's parent run, with the objective and the searched hyperparameters as columns.

    mkdir -p /tmp/uishot && cd /tmp/uishot
    /path/to/repo/.venv/bin/hpexp run /path/to/repo/studies/quickstart.yaml --no-progress
    /path/to/repo/.venv/bin/python /path/to/repo/docs/screenshot.py \\
        sqlite:////tmp/uishot/mlflow.db /path/to/repo/docs/mlflow-ui.png

Needs Debian's chromium and chromedriver (apt-get install chromium chromium-driver). The server
and the browser are started the way tests/tracking/test_ui_browser.py starts them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from PIL import Image
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tracking"))
from test_ui_browser import launch_chromium, mlflow_ui, runs_url, wait_for_text

METRICS = ("val_accuracy", "test_accuracy")
PARAMS = ("learning_rate", "iterations", "layer_dims", "activation", "l2")
MAX_BYTES = 500_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracking_uri", help="the study's MLflow store, e.g. sqlite:////tmp/x.db")
    parser.add_argument("output", type=Path, help="where the PNG goes, e.g. docs/mlflow-ui.png")
    parser.add_argument("--experiment", default="quickstart", help="experiment name")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1150)
    args = parser.parse_args(argv)

    client = mlflow.tracking.MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        parser.error(f"no experiment '{args.experiment}' in {args.tracking_uri}")
    eid = experiment.experiment_id
    runs = client.search_runs([eid], max_results=1000)
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = {r.data.tags["mlflow.parentRunId"] for r in trials}
    children = [r.info.run_name for r in trials]
    if not children:
        parser.error(f"experiment '{args.experiment}' has no trial runs")

    with (
        tempfile.TemporaryDirectory() as scratch,
        mlflow_ui(args.tracking_uri, Path(scratch) / "mlflow-server.log") as url,
    ):
        driver = launch_chromium(Path(scratch) / "profile", args.width, args.height)
        try:
            # Open the runs table once so the UI stores its view state, then edit that state:
            # columns, parent runs unfolded, assistant panel closed.
            driver.get(runs_url(url, eid))
            wait_for_text(driver, "Run Name")
            key = f'MLflowLocalStorage-1.1-ExperimentPage-["{eid}"]-ReactComponentState'
            stored = WebDriverWait(driver, 30).until(
                lambda d: d.execute_script("return localStorage.getItem(arguments[0])", key)
            )
            state = json.loads(stored)
            state["selectedColumns"] = [f"metrics.`{m}`" for m in METRICS] + [
                f"params.`{p}`" for p in PARAMS
            ]
            state["runsExpanded"] = dict.fromkeys(parents, True)
            driver.execute_script(
                "localStorage.setItem(arguments[0], arguments[1]);"
                "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');",
                key,
                json.dumps(state),
            )
            driver.refresh()
            wait_for_text(driver, *METRICS, *PARAMS, children[0])
            time.sleep(2)  # let the grid settle (column widths, fonts)
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()

    size = save_png(png, args.output)
    print(f"wrote {args.output} ({size // 1000} KB)")
    return 0


def save_png(png: bytes, path: Path) -> int:
    """Save an optimized PNG, in 256 colors if full color is over MAX_BYTES; returns its size."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        image.quantize(colors=256).save(path, optimize=True)
    return path.stat().st_size


if __name__ == "__main__":
    sys.exit(main())
