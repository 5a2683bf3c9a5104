"""Shared fixtures: a Fashion-MNIST slice, tiny CNNs and ART classifiers around them."""

from __future__ import annotations

import pickle
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.data import load_dataset
from art_rslad.experiments.teachers import load_teacher

# Tiny tensors run fastest on one thread, and two threads competing with other processes run many times slower.
torch.set_num_threads(1)


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
    """An ART classifier with SGD (momentum 0.9) and clip_values (0, 1), on the CPU unless ``device_type`` says."""
    kwargs.setdefault("device_type", "cpu")  # ART's default "gpu" would put a CPU test on a GPU where one exists
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), input_shape, nb_classes, optimizer=optimizer,
                             clip_values=(0.0, 1.0), **kwargs)


def write_cifar(root: Path, folder: str, files: dict[str, int], label_key: str, seed: int = 0) -> dict[str, dict]:
    """Write CIFAR-style pickled batches: uint8 rows of 3072 values (R, G, B planes, row-major) and labels."""
    rng = np.random.default_rng(seed)
    (root / folder).mkdir(parents=True)
    batches = {}
    for name, count in files.items():
        entry = {"batch_label": name, "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                 label_key: rng.integers(0, 10, count).tolist(), "filenames": [f"{i}.png" for i in range(count)]}
        with open(root / folder / name, "wb") as stream:
            pickle.dump(entry, stream)
        batches[name] = entry
    return batches


@pytest.fixture(autouse=True)
def cpu_tests_see_no_gpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test but the CUDA variants (``cuda`` in their name) runs on the CPU, also on a machine with GPUs: CUDA
    is reported unavailable to the test and hidden from the processes it starts (torchrun, the CLI), so a device
    chosen by default is the CPU. The classifiers the tests build name their device too (checked in
    test_device_paths.py)."""
    if "cuda" not in request.node.nodeid.lower():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_raises_keyboard_interrupt() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal, also where pytest was started as a background job (which
    inherits SIGINT ignored): the interrupt tests, and the children they start, press it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


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
def robust_teacher() -> PyTorchClassifier:
    """The shipped robust Fashion-MNIST teacher (TRADES, eps 0.1; its card in art_rslad/zoo)."""
    return load_teacher("zoo:fashion-mnist-cnn-large", "fashion-mnist", device="cpu")
