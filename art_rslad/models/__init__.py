"""Architectures, the model registry, safe weight loading and the ART wrapper.

``create_model("resnet18", nb_classes=10)``, ``list_models()``, ``load_weights(model, path)``,
``make_classifier(model, "cifar10")``. Importing this package registers every architecture below.
"""

from __future__ import annotations

from art_rslad.models import cnn, resnet, wideresnet  # noqa: F401  (registers the architectures)
from art_rslad.models.classifier import make_classifier, resolve_device
from art_rslad.models.registry import (
    count_parameters,
    create_model,
    get_entry,
    list_models,
    model_parameter_count,
    register_model,
)
from art_rslad.models.weights import load_weights, match_state_dict, read_state_dict

__all__ = [
    "count_parameters",
    "create_model",
    "get_entry",
    "list_models",
    "load_weights",
    "make_classifier",
    "match_state_dict",
    "model_parameter_count",
    "read_state_dict",
    "register_model",
    "resolve_device",
]
