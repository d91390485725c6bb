"""Random streams: one integer seed, a separate generator for each use of randomness.

`MLP(seed=s)` draws its initial weights from `init_stream(s)`; `train(..., seed=s)` draws its
minibatch shuffles and dropout masks from `train_stream(s)`. The two are children of
`np.random.SeedSequence(s)` (`spawn(2)`: child 0 initialises, child 1 trains), so a study that
gives one integer to both never reads one stream of numbers for two purposes, and how a network
trains never changes how it starts.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCHEME", "init_stream", "train_stream"]

#: Names how a seed becomes random numbers; a study stores it in its identity, so a study
#: whose trials drew their numbers another way is not resumed with this one.
SCHEME = "seedsequence-spawn2"

_INIT, _TRAIN = 0, 1  # the children of SeedSequence(seed).spawn(2)


def init_stream(seed: int) -> np.random.Generator:
    """The generator of an MLP's initial weights."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[_INIT])


def train_stream(seed: int) -> np.random.Generator:
    """The generator of training's minibatch shuffles and dropout masks, in the order drawn."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[_TRAIN])
