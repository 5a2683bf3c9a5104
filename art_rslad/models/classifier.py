"""Wrapping a model as the ART :class:`PyTorchClassifier` every trainer and attack takes."""

from __future__ import annotations

import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_rslad.data import dataset_info


def resolve_device(device: str | None = None) -> str:
    """``"cuda"`` when ``device`` is None and CUDA is available, else ``"cpu"``; checks an explicit choice.

    :param device: ``None`` (automatic), ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``.
    """
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"`device` is {device!r} but CUDA is not available here; use device='cpu'.")
        return device
    raise ValueError(f"`device` must be 'cpu', 'cuda' or 'cuda:<index>', got {device!r}.")


def make_classifier(
    model: nn.Module,
    dataset: str,
    *,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 2e-4,
    device: str | None = None,
) -> PyTorchClassifier:
    """Wrap ``model`` as a PyTorchClassifier for ``dataset``: SGD, cross-entropy, clip_values (0, 1).

    Input shape and number of classes come from :func:`art_rslad.data.dataset_info`.

    :param model: The network; it outputs logits.
    :param dataset: A name known to :func:`art_rslad.data.dataset_info`.
    :param lr: SGD learning rate.
    :param momentum: SGD momentum.
    :param weight_decay: SGD weight decay (L2).
    :param device: ``"cpu"``, ``"cuda"`` (or ``"cuda:<index>"``); None picks CUDA when available.
    """
    info = dataset_info(dataset)
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if not value >= 0:
            raise ValueError(f"`{name}` must be >= 0, got {value}.")
    resolved = resolve_device(device)
    if resolved.startswith("cuda:"):
        torch.cuda.set_device(torch.device(resolved))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=info.input_shape,
        nb_classes=info.nb_classes,
        optimizer=optimizer,
        clip_values=info.clip_values,
        device_type="gpu" if resolved.startswith("cuda") else "cpu",
    )
