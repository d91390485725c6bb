"""Refresh docs/mlflow-ui.png: what a new user sees after README's steps (`make study`, `make ui`,
open the link it prints): the study's trials, best first, in a fresh browser.

    mkdir -p /tmp/uishot && cd /tmp/uishot
    /path/to/repo/.venv/bin/hpexp run /path/to/repo/studies/quickstart.yaml --no-progress
    /path/to/repo/.venv/bin/python /path/to/repo/docs/screenshot.py \\
        sqlite:////tmp/uishot/mlflow.db /path/to/repo/docs/mlflow-ui.png

The browser gets a fresh profile and opens the link that `hpexp run` and `hpexp ui` print (the
study's saved view, `hpexp.tracking.views`); the one thing done for it is closing MLflow's
assistant panel, which MLflow opens on a first visit. Needs Debian's chromium and chromedriver
(apt-get install chromium chromium-driver). The server and the browser are started the way
tests/tracking/test_ui_browser.py starts them.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tracking"))
from test_ui_browser import launch_chromium, mlflow_ui, wait_for_text

from hpexp.tracking.views import view_url

COLUMNS = ("val_accuracy", "test_accuracy", "learning_rate", "activation")
MAX_BYTES = 500_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracking_uri", help="the study's MLflow store, e.g. sqlite:////tmp/x.db")
    parser.add_argument("output", type=Path, help="where the PNG goes, e.g. docs/mlflow-ui.png")
    parser.add_argument("--study", default="quickstart", help="study name")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--charts", action="store_true", help="the charts tab of the view")
    args = parser.parse_args(argv)

    client = mlflow.tracking.MlflowClient(args.tracking_uri)
    found = client.search_experiments(filter_string=f"tags.`hpexp.study` = '{args.study}'")
    if not found:
        parser.error(f"no experiment of study '{args.study}' in {args.tracking_uri}")
    eid = found[0].experiment_id
    trials = client.search_runs([eid], "tags.`hpexp.role` = 'trial'", max_results=1)
    if not trials:
        parser.error(f"study '{args.study}' has no trial runs")

    with (
        tempfile.TemporaryDirectory() as scratch,
        mlflow_ui(args.tracking_uri, Path(scratch) / "mlflow-server.log") as url,
    ):
        driver = launch_chromium(Path(scratch) / "profile", args.width, args.height)
        try:
            # MLflow opens its assistant panel on a first visit: closed, as a user would
            driver.get(url + "/")
            wait_for_text(driver, "Experiments")
            driver.execute_script(
                "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
            )
            driver.get("about:blank")
            driver.get(view_url(url, eid, args.study, charts=args.charts))
            wait_for_text(driver, *(("curves",) if args.charts else COLUMNS), "trial-")
            time.sleep(3)  # let the grid and the charts settle (column widths, fonts)
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
