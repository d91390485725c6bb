"""The study's printed model URI loads with MLflow and serves with `mlflow models serve`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow.pyfunc
import pytest

import hpexp
from hpexp.cli import main
from hpexp.predict import predict_frame
from hpexp.search.spec import study_dataset
from hpexp.study import input_example

from ..conftest import empty_mlflow_store, free_ports
from ..search.conftest import run, tiny

SERVE_TIMEOUT = 180  # seconds for the server to answer /ping on a busy 2-core machine


#: One xdist worker runs this module, so the study both tests read is run once.
pytestmark = pytest.mark.xdist_group("tracking-test_model_uri")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hpexp.StudyResult]:
    """A tiny study, run once for the module in its own folder (the working directory while
    the tests, which only read it, run)."""
    where = tmp_path_factory.mktemp("model_uri")
    empty_mlflow_store(where)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)
        yield run(tiny(budget={"n_trials": 2}))


@pytest.mark.slow
def test_model_uri_loads_and_predicts(
    study: hpexp.StudyResult, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = study.model_uri
    assert uri == f"runs:/{study.parent_run_id}/model"
    assert main(["best", "tiny"]) == 0
    assert f"MLflow model: {uri}" in capsys.readouterr().out
    rows = input_example(study_dataset(study.spec.dataset), rows=3)
    mlflow.set_tracking_uri(study.tracking_uri)
    predicted = mlflow.pyfunc.load_model(uri).predict(rows)
    expected = predict_frame(study.best_model(), rows)
    assert list(predicted["prediction"]) == list(expected["prediction"])


def _get(url: str, body: bytes | None = None) -> bytes:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return bytes(reply.read())


@pytest.mark.slow
def test_model_uri_serves(study: hpexp.StudyResult, tmp_path: Path) -> None:
    """`mlflow models serve -m URI --env-manager local` answers /invocations."""
    rows = input_example(study_dataset(study.spec.dataset), rows=1)
    expected = predict_frame(study.best_model(), rows)["prediction"][0]
    (port,) = free_ports(1)
    package = str(Path(hpexp.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": study.tracking_uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(study.model_uri)]
    command += ["--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(  # its own process group: the server and its workers
            command, env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT
        while True:
            assert server.poll() is None, log.read_text()[-2000:]
            try:
                _get(f"http://127.0.0.1:{port}/ping")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"no answer within {SERVE_TIMEOUT} s"
                time.sleep(0.5)
        body = json.dumps({"dataframe_split": rows.to_dict(orient="split", index=False)})
        reply = json.loads(_get(f"http://127.0.0.1:{port}/invocations", body.encode()))
        assert reply["predictions"][0]["prediction"] == expected
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):  # a worker that outlived it
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
