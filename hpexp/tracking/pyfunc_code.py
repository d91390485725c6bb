"""The pyfunc model's code: MLflow copies this file into the model and runs it on load
("models from code"), so the model directory holds no pickle at all."""

from mlflow.models import set_model

from hpexp.tracking.pyfunc import HpexpPyfuncModel

set_model(HpexpPyfuncModel())
