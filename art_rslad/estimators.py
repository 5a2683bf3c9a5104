"""The one place that touches ART's private estimator API, and the model-mode context manager.

Everything else calls :func:`forward_logits` to run a :class:`PyTorchClassifier` on a device tensor with its own
preprocessing (differentiably), and :func:`model_modes` to put student and teacher in the modes a method needs
and restore the caller's modes afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from art.preprocessing.standardisation_mean_std.pytorch import StandardisationMeanStdPyTorch


def check_classifier(classifier: object, argument: str, *, needs_optimizer: bool = False) -> PyTorchClassifier:
    """Raise a ValueError naming ``argument`` unless ``classifier`` is a usable ART PyTorchClassifier."""
    if not isinstance(classifier, PyTorchClassifier):
        raise ValueError(
            f"`{argument}` must be an art.estimators.classification.PyTorchClassifier, got "
            f"{type(classifier).__name__}; wrap your torch.nn.Module in PyTorchClassifier(model, loss, "
            "input_shape, nb_classes, optimizer, clip_values=(0, 1))."
        )
    if classifier.clip_values is None:
        raise ValueError(f"`{argument}` has no clip_values; create it with clip_values=(min, max), e.g. (0, 1).")
    if needs_optimizer and classifier.optimizer is None:
        raise ValueError(
            f"`{argument}` has no optimizer; create it with optimizer=torch.optim.SGD(model.parameters(), ...)."
        )
    return classifier


def clip_range(classifier: PyTorchClassifier) -> tuple[float, float]:
    """(min, max) of the classifier's clip_values as floats (the extreme values for per-feature arrays)."""
    low, high = classifier.clip_values  # type: ignore[misc]
    return float(np.min(low)), float(np.max(high))


def forward_logits(classifier: PyTorchClassifier, x: torch.Tensor) -> torch.Tensor:
    """The classifier's model output on ``x`` (a tensor on its device), after its ART preprocessing.

    Differentiable with respect to ``x`` and the parameters; uses the model's current train/eval mode.
    """
    if identity_preprocessing(classifier):  # ART's default (0, 1) standardisation: skip ~40 us per call
        return classifier.model(x)
    if classifier.all_framework_preprocessing:
        inputs, _ = classifier._apply_preprocessing(x, y=None, fit=False, no_grad=False)
    else:
        array, _ = classifier._apply_preprocessing(x.detach().cpu().numpy(), y=None, fit=False)
        inputs = torch.as_tensor(array, device=x.device)
    return classifier.model(inputs)


def identity_preprocessing(classifier: PyTorchClassifier) -> bool:
    """Whether the classifier's preprocessing leaves inputs unchanged (none, or mean 0 and std 1 standardisation)."""
    operations = classifier.preprocessing_operations
    return not operations or (
        len(operations) == 1 and isinstance(operations[0], StandardisationMeanStdPyTorch)
        and not np.asarray(operations[0].mean).any() and bool((np.asarray(operations[0].std) == 1).all())
    )


@contextlib.contextmanager
def model_modes(*settings: tuple[torch.nn.Module, bool]) -> Iterator[None]:
    """Set each ``(module, training)`` pair's mode for the block, then restore every module's previous modes."""
    saved = [[(module, module.training) for module in root.modules()] for root, _ in settings]
    try:
        for module, training in settings:
            module.train(training)
        yield
    finally:
        for modes in saved:
            for module, training in modes:
                module.training = training
