"""The networks a method declares beside the student, and their checks.

A method names each network it uses (``teacher``, ``peer``, a clean and a robust teacher, ...) with a
:class:`Network`: the name is the trainer's constructor keyword, the attribute the trainer holds it in and, for a
trained network, the stem of its file in a run folder (``peer.pt``). A frozen network is a pretrained model the
method reads (in eval mode, under no_grad); a trained one learns beside the student with its own optimizer, steps
with the student's schedule, and is kept in every checkpoint (``<name>_model_state``, ``<name>_optimizer_state``).
The run harness builds every declared network from this declaration alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.estimators import check_classifier, clip_range

#: Where the harness takes a network from: the config's teacher (``teacher``, the source ``teacher.source``), the
#: config's clean (naturally trained) teacher (``clean_teacher``, the source ``clean_teacher``), or a fresh network of
#: the student's architecture and options (``student``).
Start = Literal["teacher", "clean_teacher", "student"]


@dataclass(frozen=True)
class OwnOptimizer:
    """The SGD settings of a trained network that does not follow the student's: its own momentum and weight decay,
    and an lr the method sets itself every epoch (:meth:`~art_rslad.trainers.base.AdversarialTrainerBase._start_epoch`)
    instead of the run's schedule.

    :param lr: The initial learning rate.
    :param momentum: SGD momentum.
    :param weight_decay: SGD weight decay.
    """

    lr: float
    momentum: float
    weight_decay: float


@dataclass(frozen=True)
class Network:
    """One network a method uses beside the student.

    :param name: Constructor keyword, attribute and run-folder file stem (``teacher``, ``peer``, ...).
    :param trained: True: trained with the student (its own optimizer, checkpointed, saved as ``<name>.pt``);
        False: a frozen pretrained network, never updated.
    :param required: False where the method takes it only under some settings (SAT's soft labels).
    :param start: What the harness builds it from (:data:`Start`): the config's teacher or clean teacher, or a
        fresh network of the student's architecture.
    :param optimizer: For a trained network, its own SGD settings (:class:`OwnOptimizer`; the method then sets its
        lr each epoch); None: the student's settings, its lr following the run's schedule.
    """

    name: str
    trained: bool = False
    required: bool = True
    start: Start = "teacher"
    optimizer: OwnOptimizer | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in ("classifier", "student"):
            raise ValueError(f"Network name {self.name!r} must be a Python identifier other than 'classifier' and "
                             "'student' (it is the trainer's constructor keyword).")

    @property
    def file(self) -> str:
        """The run-folder file of a trained network's weights at the best epoch."""
        return f"{self.name}.pt"


#: The one frozen robust teacher of a distillation method.
TEACHER = Network("teacher")
#: The frozen clean (naturally trained) teacher of the methods that distil two teachers (MTARD, CIARD).
CLEAN_TEACHER = Network("clean_teacher", start="clean_teacher")


def teacher_declared(networks: tuple[Network, ...]) -> bool:
    """Whether ``networks`` always include a frozen teacher (the methods IGDM's term and soft labels need)."""
    return any(net.name == TEACHER.name and net.required and not net.trained for net in networks)


def check_networks(owner: str, declared: tuple[Network, ...], student: PyTorchClassifier,
                   given: Mapping[str, PyTorchClassifier | None]) -> dict[str, PyTorchClassifier]:
    """The given networks, checked against the declaration of ``owner`` (a trainer's name) and against the student:
    each required one present, no other one, each a separate classifier of the student's classes, input shape and
    clip range; a trained one with an optimizer, on the student's device. A ValueError names what is wrong."""
    names = {net.name for net in declared}
    unknown = sorted(name for name, value in given.items() if value is not None and name not in names)
    if unknown:
        arguments = ", ".join(f"`{name}`" for name in unknown)
        raise ValueError(f"{owner} uses no {' or '.join(unknown)}; drop the {arguments} argument.")
    checked = {}
    for net in declared:
        classifier = given.get(net.name)
        if classifier is None:
            if net.required:
                what = "a second network trained with the student" if net.trained else "a robust PyTorchClassifier"
                raise ValueError(f"`{net.name}` is required by {owner}: pass {what}.")
            continue
        checked[net.name] = _checked(net, student, classifier)
    return checked


def _checked(net: Network, student: PyTorchClassifier, classifier: PyTorchClassifier) -> PyTorchClassifier:
    name = net.name
    if classifier is student or getattr(classifier, "model", None) is getattr(student, "model", None):
        raise ValueError(f"`{name}` is the student itself; it must be a separate network, not the student.")
    classifier = check_classifier(classifier, name, needs_optimizer=net.trained)
    if classifier.nb_classes != student.nb_classes:
        raise ValueError(f"`{name}` has {classifier.nb_classes} classes but the student has {student.nb_classes}.")
    if tuple(classifier.input_shape) != tuple(student.input_shape):
        raise ValueError(f"`{name}` expects inputs of shape {classifier.input_shape}, the student "
                         f"{student.input_shape}.")
    if clip_range(classifier) != clip_range(student):
        raise ValueError(f"`{name}` clip_values {clip_range(classifier)} differ from the student's "
                         f"{clip_range(student)}; both must use the same input range.")
    if net.trained and classifier.device != student.device:
        raise ValueError(f"`{name}` is on {classifier.device}, the student on {student.device}; put both on one "
                         "device.")
    return classifier


def trained_state(networks: Mapping[str, PyTorchClassifier], declared: tuple[Network, ...]) -> dict[str, Any]:
    """The weights and optimizer state of each trained network, under the keys checkpoints keep them."""
    state: dict[str, Any] = {}
    for net in declared:
        if net.trained and net.name in networks:
            classifier = networks[net.name]
            state[f"{net.name}_model_state"] = classifier.model.state_dict()
            state[f"{net.name}_optimizer_state"] = classifier.optimizer.state_dict()
    return state


def load_trained_state(networks: Mapping[str, PyTorchClassifier], declared: tuple[Network, ...],
                       state: Mapping[str, Any]) -> None:
    """Restore what :func:`trained_state` saved."""
    for net in declared:
        if net.trained and net.name in networks:
            networks[net.name].model.load_state_dict(state[f"{net.name}_model_state"])
            networks[net.name].optimizer.load_state_dict(state[f"{net.name}_optimizer_state"])


def network_weights(checkpoint: Mapping[str, Any], name: str) -> dict[str, torch.Tensor]:
    """The weights of trained network ``name`` held in a checkpoint (e.g. ``best.pt``)."""
    return dict(checkpoint["extra_state"][f"{name}_model_state"])


__all__ = ["CLEAN_TEACHER", "TEACHER", "Network", "OwnOptimizer", "Start", "check_networks", "load_trained_state",
           "network_weights", "teacher_declared", "trained_state"]
