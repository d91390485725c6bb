"""An hpexp model as an MLflow pyfunc model: tables in, `predict_frame` tables out.

The network travels as the two plain files of `hpexp.nn.io` (model.npz, model.json), stored as
pyfunc artifacts and read back with `load_model`. The Python model is given as code
(`pyfunc_code.py`, MLflow's "models from code"), so nothing in the model directory is a pickle;
loading needs hpexp importable in the serving environment.

    path = save_pyfunc_model(model, tmp / "model", input_example=frame.head())
    MlflowClient().log_artifacts(run_id, str(path), "model")
    mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(frame)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import AnyType, ColSpec, Schema

from hpexp.errors import DataError
from hpexp.nn.io import load_model, save_model
from hpexp.nn.model import MLP
from hpexp.predict import predict_frame, select_features

__all__ = ["EXAMPLE_ROWS", "HpexpPyfuncModel", "pip_requirements", "save_pyfunc_model"]

#: At most this many rows of the input example are stored with the model.
EXAMPLE_ROWS = 5

_NPZ, _JSON = "model_npz", "model_json"


class HpexpPyfuncModel(PythonModel):
    """Loads the network from the artifacts "model_npz" and "model_json"; predicts tables.

    The network lives only in memory after `load_context`.
    """

    def __init__(self) -> None:
        self._model: MLP | None = None

    def load_context(self, context: Any) -> None:
        self._model = _load_artifacts(context.artifacts[_NPZ], context.artifacts[_JSON])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """One row per sample in; the columns of `hpexp.predict.predict_frame` out."""
        if self._model is None:
            raise DataError(
                "the pyfunc model has no network; load it with mlflow.pyfunc.load_model"
            )
        return predict_frame(self._model, model_input)


def pip_requirements() -> list[str]:
    """The pinned packages a pyfunc model needs besides mlflow, as installed here."""
    import hpexp

    return [
        f"hpexp=={hpexp.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def save_pyfunc_model(
    model: MLP, path: str | os.PathLike[str], input_example: pd.DataFrame
) -> Path:
    """Write an MLflow pyfunc model directory at `path` (which must not exist or be empty).

    `input_example` (one row per sample) gives the signature: the model's input columns, by name
    (type "any": `predict_frame` checks the values, and int columns stay accepted), and the
    columns `predict_frame` returns; its first `EXAMPLE_ROWS` rows, as float64, are stored as the
    model's input example. Uses no MLflow run: upload the directory afterwards, e.g. with
    ``MlflowClient().log_artifacts(run_id, str(path), "model")``. Returns `path`.
    """
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError(
            f"pyfunc model directory '{target}' already exists and is not empty; choose a new "
            "path or delete it"
        )
    if not isinstance(input_example, pd.DataFrame) or len(input_example) == 0:
        raise DataError(
            "input_example must be a pandas DataFrame with at least one row (one row per sample)"
        )
    example = select_features(model, input_example.head(EXAMPLE_ROWS), where="input_example")
    example = example.reset_index(drop=True).rename(columns=str)
    signature = _signature(example, predict_frame(model, example))
    existed = target.exists()
    try:
        with tempfile.TemporaryDirectory(prefix="hpexp-pyfunc-") as tmp:
            npz = save_model(model, Path(tmp) / "model")
            mlflow.pyfunc.save_model(
                path=os.fspath(target),
                python_model=os.fspath(Path(__file__).with_name("pyfunc_code.py")),
                artifacts={_NPZ: os.fspath(npz), _JSON: os.fspath(npz.with_suffix(".json"))},
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
            )
    except BaseException:
        if not existed:  # leave no half-written model behind
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """Input columns by name with type "any", output columns as inferred.

    A "double" input column would make MLflow refuse int64 columns (as `pd.read_csv` gives for
    whole numbers) before `predict_frame` sees them; `predict_frame` checks the values itself.
    """
    inputs = Schema([ColSpec(AnyType(), name) for name in example.columns])
    return ModelSignature(inputs=inputs, outputs=infer_signature(example, output).outputs)


def _load_artifacts(npz: str, meta: str) -> MLP:
    """`load_model` for the two artifact files, wherever MLflow put them."""
    npz_path, meta_path = Path(npz), Path(meta)
    if meta_path == npz_path.with_suffix(".json"):
        return load_model(npz_path)
    with tempfile.TemporaryDirectory(prefix="hpexp-pyfunc-") as tmp:
        shutil.copyfile(npz_path, Path(tmp) / "model.npz")
        shutil.copyfile(meta_path, Path(tmp) / "model.json")
        return load_model(Path(tmp) / "model")
