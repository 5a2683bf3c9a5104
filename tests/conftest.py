"""Shared fixtures: a Fashion-MNIST slice, tiny CNNs and ART classifiers around them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.data import load_dataset

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


class TinyCNN(torch.nn.Module):
    """A small 28x28 CNN (not nn.Sequential, so ART's own trainers accept it too)."""

    def __init__(self, width: int = 8, nb_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, width, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(width, 2 * width, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Linear(2 * width * 7 * 7, nb_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def make_classifier(model: torch.nn.Module, lr: float = 0.05, nb_classes: int = 10,
                    input_shape: tuple[int, ...] = (1, 28, 28), **kwargs: object) -> PyTorchClassifier:
    """An ART classifier with SGD (momentum 0.9) and clip_values (0, 1)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), input_shape, nb_classes, optimizer=optimizer,
                             clip_values=(0.0, 1.0), **kwargs)


@pytest.fixture(scope="session")
def fmnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """2,000 training and 500 test images of Fashion-MNIST (the real data, loaded offline)."""
    x_train, y_train = load_dataset("fashion-mnist", "train")
    x_test, y_test = load_dataset("fashion-mnist", "test")
    return x_train[:2000].copy(), y_train[:2000].copy(), x_test[:500].copy(), y_test[:500].copy()


@pytest.fixture
def classifier_factory() -> Callable[..., PyTorchClassifier]:
    """Build a TinyCNN classifier with a fixed seed: ``classifier_factory(width=8, lr=0.05, seed=0)``."""

    def build(width: int = 8, lr: float = 0.05, seed: int = 0, **kwargs: object) -> PyTorchClassifier:
        torch.manual_seed(seed)
        return make_classifier(TinyCNN(width), lr=lr, **kwargs)

    return build


@pytest.fixture(scope="session")
def robust_teacher(fmnist) -> PyTorchClassifier:
    """A quickly made robust teacher: PGD adversarial training (eps 0.1) of a width-16 TinyCNN on the slice."""
    from art_rslad.attacks import InputGradientClassifier, InputGradientPGD

    x, y, _, _ = fmnist
    torch.manual_seed(0)
    teacher = make_classifier(TinyCNN(16), lr=0.05)
    attack = InputGradientPGD(InputGradientClassifier(teacher), eps=0.1, eps_step=0.03, max_iter=5,
                              random_init="uniform")
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(4):
        order = torch.randperm(len(x_t), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(x_t), 64):
            rows = order[start:start + 64]
            teacher.model.eval()
            x_adv = attack.generate_tensor(x_t[rows], torch.nn.functional.one_hot(y_t[rows], 10).float())
            teacher.model.train()
            loss = torch.nn.functional.cross_entropy(teacher.model(x_adv), y_t[rows])
            teacher.optimizer.zero_grad()
            loss.backward()
            teacher.optimizer.step()
    teacher.model.eval()
    return teacher
