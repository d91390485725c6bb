"""The NumPy core: an L-layer network, its training loop, gradient checking and model files.

Imports numpy only (never optuna, mlflow or pandas).
"""

from hpexp.nn.activations import ACTIVATIONS
from hpexp.nn.gradcheck import gradient_check
from hpexp.nn.init import INITS
from hpexp.nn.io import load_model, save_model
from hpexp.nn.losses import OUTPUTS
from hpexp.nn.metrics import evaluate
from hpexp.nn.model import MLP, Cache
from hpexp.nn.optim import OPTIMIZERS
from hpexp.nn.train import History, TrainConfig, train

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MLP",
    "OPTIMIZERS",
    "OUTPUTS",
    "Cache",
    "History",
    "TrainConfig",
    "evaluate",
    "gradient_check",
    "load_model",
    "save_model",
    "train",
]
