"""Numerics pinned: the weights after one seeded epoch of every trainer, as a checksum fixed before a refactor.

A change that moves code around must leave these numbers alone. A change that means to alter a method's numerics
updates the pinned value in the same commit and says why.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TinyCNN, make_classifier

from art_rslad.trainers.registry import METHODS

#: method -> checksum of the student's weights after one epoch on the fixed input below.
PINNED: dict[str, float] = {
    "natural": -32.30359923824605,
    "sat": -32.97975412140976,
    "trades": -32.34685108831971,
    "ard": -29.141928629093968,
    "iad": -16.409534566235678,
    "adaad": -28.184791354625073,
    "rslad": -28.45930792324792,
    "art-madry-pgd": -31.719551388171027,
}


def _checksum(model: torch.nn.Module) -> float:
    """A weighted sum of every parameter and buffer: any change of a weight moves it."""
    total = 0.0
    for index, (_, tensor) in enumerate(sorted(model.state_dict().items())):
        values = tensor.detach().double().flatten()
        weights = torch.linspace(1.0, 2.0, len(values), dtype=torch.float64) * (index + 1)
        total += float((values * weights).sum())
    return total


def _fixed_input() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((96, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 96)
    return x, y


@pytest.mark.parametrize("method", sorted(PINNED))
def test_one_seeded_epoch_gives_the_pinned_weights(method, robust_teacher):
    x, y = _fixed_input()
    torch.manual_seed(0)
    student = make_classifier(TinyCNN(4), lr=0.05)
    trainer_class = METHODS[method].trainer
    kwargs = {"eps": 0.1, "eps_step": 0.025, "max_iter": 3, "seed": 0, "verbose": False}
    if trainer_class.needs_teacher:
        kwargs["teacher"] = robust_teacher
    trainer = trainer_class(student, **kwargs)
    trainer.fit(x, y, batch_size=32, nb_epochs=1)
    assert _checksum(student.model) == pytest.approx(PINNED[method], rel=1e-9, abs=1e-9)
