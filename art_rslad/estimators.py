"""The one place that touches ART's private estimator API, the one way to copy a classifier, and the model-mode
context manager.

Everything else calls :func:`forward_logits` to run a :class:`PyTorchClassifier` on a device tensor with its own
preprocessing (differentiably), :func:`classifier_like` to wrap another model the way a classifier is wrapped, and
:func:`model_modes` to put student and teacher in the modes a method needs and restore the caller's modes afterwards.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import Preprocessor
from art.estimators.classification import PyTorchClassifier
from art.preprocessing.standardisation_mean_std.pytorch import StandardisationMeanStdPyTorch
from art.preprocessing.standardisation_mean_std.utils import broadcastable_mean_std


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


def classifier_settings(
    classifier: PyTorchClassifier,
    model: torch.nn.Module | None = None,
    *,
    loss: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    keep_preprocessing: bool = True,
    defences: Sequence[Preprocessor] = (),
) -> dict[str, Any]:
    """The PyTorchClassifier arguments of a copy of ``classifier``: its input shape, classes, clip values, channel
    order and device, with another model, loss or optimizer where given.

    :param classifier: The classifier to copy.
    :param model: The copy's model (default: ``classifier``'s own, shared, not copied).
    :param loss: The copy's loss (default: ``classifier``'s).
    :param optimizer: The copy's optimizer (default: none; ``classifier``'s is never shared unless passed).
    :param keep_preprocessing: Keep ``classifier``'s preprocessing defences and preprocessing (False: none, for a
        model that applies them itself).
    :param defences: ART preprocessing defences run before ``classifier``'s own.
    """
    own_defences = list(classifier.preprocessing_defences or []) if keep_preprocessing else []
    all_defences = [*defences, *own_defences]
    return {
        "model": classifier.model if model is None else model,
        "loss": classifier.loss if loss is None else loss,
        "input_shape": classifier.input_shape,
        "nb_classes": classifier.nb_classes,
        "optimizer": optimizer,
        "clip_values": classifier.clip_values,
        "channels_first": classifier.channels_first,
        "preprocessing_defences": all_defences or None,
        "preprocessing": classifier.preprocessing if keep_preprocessing else None,
        "device_type": "cpu" if classifier.device.type == "cpu" else "gpu",
    }


def classifier_like(classifier: PyTorchClassifier, model: torch.nn.Module | None = None, **options: Any
                    ) -> PyTorchClassifier:
    """A PyTorchClassifier made like ``classifier`` around ``model``; ``options`` as in :func:`classifier_settings`."""
    return PyTorchClassifier(**classifier_settings(classifier, model, **options))


def forward_logits(classifier: PyTorchClassifier, x: torch.Tensor) -> torch.Tensor:
    """The classifier's model output on ``x`` (a tensor on its device), after its ART preprocessing.

    Differentiable with respect to ``x`` and the parameters; uses the model's current train/eval mode.
    """
    if identity_preprocessing(classifier):  # ART's default (0, 1) standardisation: skip ~40 us per call
        return classifier.model(x)
    operations = classifier.preprocessing_operations
    if len(operations) == 1 and isinstance(operations[0], StandardisationMeanStdPyTorch) \
            and operations[0].apply_predict:
        mean, std = _standardisation_constants(operations[0], x)
        return classifier.model((x - mean) / std)
    if classifier.all_framework_preprocessing:
        inputs, _ = classifier._apply_preprocessing(x, y=None, fit=False, no_grad=False)
    else:
        array, _ = classifier._apply_preprocessing(x.detach().cpu().numpy(), y=None, fit=False)
        inputs = torch.as_tensor(array, device=x.device)
    return classifier.model(inputs)


#: Per ART standardisation: its (mean, std) as tensors, per device and input rank (built once, then reused).
_CONSTANTS: weakref.WeakKeyDictionary[StandardisationMeanStdPyTorch, dict[tuple[torch.device, int],
                                      tuple[torch.Tensor, torch.Tensor]]] = weakref.WeakKeyDictionary()


def _standardisation_constants(operation: StandardisationMeanStdPyTorch, x: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``operation``'s mean and std on ``x``'s device, shaped to broadcast against ``x``.

    ART's own forward builds both tensors from numpy at every call (two blocking host-to-device copies on a GPU,
    per attack step); the values are the same, so they are copied once per device and kept.
    """
    cache = _CONSTANTS.setdefault(operation, {})
    key = (x.device, x.ndim)
    if key not in cache:
        mean, std = broadcastable_mean_std(x, operation.mean, operation.std)
        cache[key] = (torch.as_tensor(mean, dtype=torch.float32).to(x.device),
                      torch.as_tensor(std, dtype=torch.float32).to(x.device))
    return cache[key]


def check_devices(student: PyTorchClassifier, others: Mapping[str, PyTorchClassifier | None]) -> None:
    """Raise a ValueError, naming where each network is, unless every network of ``others`` (the teacher, a peer)
    runs on the student's device with its weights there.

    The trainers never move a network between devices per batch: a teacher on another device would copy every batch
    there and back (and a teacher built before the process group is joined sits on the first GPU of every rank).
    """
    places = {"student": student, **{name: other for name, other in others.items() if other is not None}}
    where = {name: _places(classifier) for name, classifier in places.items()}
    if len({place for found in where.values() for place in found}) > 1:
        listing = "; ".join(f"{name} on {', '.join(sorted(map(str, found)))}" for name, found in where.items())
        raise ValueError(
            f"The networks of this run are on different devices ({listing}). Build every classifier with the same "
            "device_type (under torchrun, after art_rslad.distributed.init_distributed(), so that each rank's "
            "networks share its GPU), and keep their models on the classifier's device."
        )


def _places(classifier: PyTorchClassifier) -> set[torch.device]:
    """The classifier's device and those its model's parameters and buffers are on."""
    tensors = [*classifier.model.parameters(), *classifier.model.buffers()]
    return {_normalised(classifier.device), *(_normalised(tensor.device) for tensor in tensors)}


def _normalised(device: torch.device) -> torch.device:
    """``device`` with its index made explicit for CUDA (``cuda`` is the current GPU)."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


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
