"""Shared pieces of the baseline-trainer tests: one training recipe, one PGD evaluation, one natural baseline.

Fixtures are imported by the test modules that use them (``tests/conftest.py`` belongs to the shared loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from conftest import TinyCNN, make_classifier

from art_rslad.trainers import AdversarialTrainerBase, NaturalTrainer

EPS = 0.1
EPS_STEP = 0.025
NB_TEST = 300


def train_student(
    trainer_class: type[AdversarialTrainerBase], x: np.ndarray, y: np.ndarray, *, seed: int = 1, lr: float = 0.05,
    nb_epochs: int = 2, **trainer_kwargs: Any,
) -> tuple[PyTorchClassifier, AdversarialTrainerBase]:
    """Train a width-8 TinyCNN with ``trainer_class`` (eps 0.1, eps_step 0.025, PGD-5, batch 64)."""
    torch.manual_seed(seed)
    student = make_classifier(TinyCNN(8), lr=lr)
    settings = {"eps": EPS, "eps_step": EPS_STEP, "max_iter": 5, "verbose": False, **trainer_kwargs}
    trainer = trainer_class(student, **settings)
    trainer.fit(x, y, nb_epochs=nb_epochs, batch_size=64)
    return student, trainer


def pgd_accuracy(classifier: PyTorchClassifier, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy under ART's stock PGD-10 (eps 0.1, step 0.025, uniform start): independent of our attack code."""
    attack = ProjectedGradientDescent(classifier, eps=EPS, eps_step=EPS_STEP, max_iter=10, num_random_init=1,
                                      batch_size=NB_TEST, verbose=False)
    x_adv = attack.generate(x[:NB_TEST], y=y[:NB_TEST])
    return float((classifier.predict(x_adv).argmax(1) == y[:NB_TEST]).mean())


@pytest.fixture(scope="module")
def natural_pgd_accuracy(fmnist: tuple[np.ndarray, ...]) -> float:
    """PGD accuracy of a student trained naturally by the same recipe: the bar every robust method must clear."""
    x, y, x_test, y_test = fmnist
    student, _ = train_student(NaturalTrainer, x, y)
    return pgd_accuracy(student, x_test, y_test)


def interrupt_at(monkeypatch: pytest.MonkeyPatch, call: int, error: type[BaseException] = KeyboardInterrupt) -> None:
    """Make the ``call``-th training step (1-based) raise ``error`` before it changes anything."""
    original: Callable[..., Any] = AdversarialTrainerBase._train_step
    calls = {"count": 0}

    def step(self: AdversarialTrainerBase, batch: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == call:
            raise error()
        return original(self, batch)

    monkeypatch.setattr(AdversarialTrainerBase, "_train_step", step)


def assert_same_tensors(expected: Any, actual: Any, where: str = "") -> None:
    """Equal nested dicts, lists and tensors (tensors bit for bit); the failure names the path."""
    if isinstance(expected, torch.Tensor):
        assert torch.equal(expected, actual), f"tensor {where} differs"
    elif isinstance(expected, dict):
        assert expected.keys() == actual.keys(), where
        for key in expected:
            assert_same_tensors(expected[key], actual[key], f"{where}/{key}")
    elif isinstance(expected, list | tuple):
        assert len(expected) == len(actual), where
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            assert_same_tensors(left, right, f"{where}[{index}]")
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"
