"""The model registry: ``@register_model`` on a factory, :func:`create_model` by name, :func:`list_models`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

ModelFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    :param name: Registry name, e.g. ``"resnet18"``.
    :param factory: Callable ``factory(nb_classes=..., **kwargs) -> nn.Module``.
    :param description: One line for ``art-rslad list``.
    :param input_shape: The (C, H, W) input the architecture is built for by default.
    """

    name: str
    factory: ModelFactory
    description: str
    input_shape: tuple[int, int, int]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, description: str, input_shape: tuple[int, int, int]
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator that adds a model factory to the registry under ``name``."""

    def decorate(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"A model named {name!r} is already registered.")
        _REGISTRY[name] = ModelEntry(name, factory, description, input_shape)
        return factory

    return decorate


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; ValueError listing the known names otherwise."""
    key = name.lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(list_models())}.")
    return _REGISTRY[key]


def create_model(name: str, nb_classes: int = 10, *, input_shape: tuple[int, int, int] | None = None,
                 **kwargs: object) -> nn.Module:
    """Build a freshly initialised model from the registry.

    :param name: One of :func:`list_models`, e.g. ``"resnet18"`` or ``"wrn-34-10"``.
    :param nb_classes: Number of output logits.
    :param input_shape: (C, H, W) of the inputs, e.g. a dataset's ``input_shape``: fills the architecture's
        ``in_channels`` and, for square images, ``image_size`` options where ``kwargs`` leaves them unset, so that
        ``cnn-small`` serves 8x8 digits and 32x32 CIFAR as well as 28x28 Fashion-MNIST.
    :param kwargs: Architecture options of that model (e.g. ``in_channels``, ``depth``, ``widen_factor``).
    """
    entry = get_entry(name)
    if isinstance(nb_classes, bool) or not isinstance(nb_classes, int) or nb_classes < 2:
        raise ValueError(f"`nb_classes` must be an integer >= 2, got {nb_classes!r}.")
    accepted = set(inspect.signature(entry.factory).parameters) - {"nb_classes"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"Model {entry.name!r} has no option(s) {', '.join(unknown)}; "
            f"its options are: {', '.join(sorted(accepted)) or 'none'}."
        )
    if input_shape is not None:
        channels, height, width = input_shape
        implied: dict[str, object] = {"in_channels": channels, **({"image_size": height} if height == width else {})}
        kwargs = {**{key: value for key, value in implied.items() if key in accepted}, **kwargs}
    return entry.factory(nb_classes=nb_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def model_parameter_count(name: str, nb_classes: int = 10, **kwargs: object) -> int:
    """Parameter count of a registered model, built on the meta device (no memory is allocated)."""
    with torch.device("meta"):
        return count_parameters(create_model(name, nb_classes, **kwargs))
