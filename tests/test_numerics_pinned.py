"""Numerics pinned: the weights after one seeded epoch of every trainer, as a checksum fixed before a refactor.

A change that moves code around must leave these numbers alone. A change that means to alter a method's numerics
updates the pinned value in the same commit and says why.

The pins hold on any CPU and thread count, not only on the one where they were made: float32 sums run in another
order on another CPU (AVX2 against AVX-512, ARM) or with another number of threads, and one epoch carries that
rounding into the weights. ``bench/numerics_spread.py`` measures it (each torch CPU kernel set, 1 and 2 threads;
its output is ``bench/results/numerics-spread.txt``): up to 1.5e-7 relative, 1.2e-5 for TRADES. The tolerances
below are ~7x those, while a real change of a method's numbers (a learning rate or an attack step changed in the last
digit it is given with) moves the checksum by far more (the same script measures those too).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
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

#: Relative tolerance of a pin: ~7x the largest spread measured across CPU kernel sets and thread counts
#: (bench/results/numerics-spread.txt: 1.5e-7, ard), ~28x below the smallest real change measured there (rslad's
#: attack step 0.025 -> 0.026: 2.8e-5; a learning rate 0.05 -> 0.051 moves every method by 1.9e-4 or more).
REL_TOLERANCE = 1e-6
#: TRADES alone moves more (1.2e-5: its KL term between two near-equal outputs loses relative precision), so its
#: tolerance is ~8x that: a learning rate 0.05 -> 0.051 still moves it 18x beyond (1.9e-3), an attack step
#: 0.025 -> 0.026 does not (3.8e-5); the other methods' pins catch that.
TRADES_REL_TOLERANCE = 1e-4


def tolerance(method: str) -> float:
    """The relative tolerance of ``method``'s pin."""
    return TRADES_REL_TOLERANCE if method == "trades" else REL_TOLERANCE


def checksum(model: torch.nn.Module) -> float:
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


def one_epoch_checksum(method: str, teacher: PyTorchClassifier, lr: float = 0.05, eps_step: float = 0.025) -> float:
    """The checksum of a seeded TinyCNN student after one epoch of ``method`` on the fixed input."""
    x, y = _fixed_input()
    torch.manual_seed(0)
    student = make_classifier(TinyCNN(4), lr=lr)
    trainer_class = METHODS[method].trainer
    kwargs = {"eps": 0.1, "eps_step": eps_step, "max_iter": 3, "seed": 0, "verbose": False}
    if trainer_class.needs_teacher:
        kwargs["teacher"] = teacher
    trainer = trainer_class(student, **kwargs)
    trainer.fit(x, y, batch_size=32, nb_epochs=1)
    return checksum(student.model)


@pytest.mark.parametrize("method", sorted(PINNED))
def test_one_seeded_epoch_gives_the_pinned_weights(method, robust_teacher):
    assert one_epoch_checksum(method, robust_teacher) == pytest.approx(PINNED[method], rel=tolerance(method))


@pytest.mark.parametrize(("method", "changed"), [("sat", {"lr": 0.051}), ("sat", {"eps_step": 0.026}),
                                                  ("trades", {"lr": 0.051})])
def test_the_tolerance_still_catches_a_changed_step(method, changed, robust_teacher):
    """A learning rate or an attack step changed in its last given digit moves a pin far beyond the tolerance."""
    moved = one_epoch_checksum(method, robust_teacher, **changed)
    assert abs(moved / PINNED[method] - 1) > 10 * tolerance(method)
