"""What a run builds from its method's registry record: the student, every network the method declares beside it
(a frozen teacher from the config, a network it trains, fresh or from the teacher) and the trainer, with the
options the method's config switches on; and the files of the networks it trains."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.data import dataset_info
from art_rslad.experiments.config import Config
from art_rslad.experiments.teachers import load_teacher
from art_rslad.experiments.variants import MethodSpec, parse_method
from art_rslad.models import create_model, make_classifier
from art_rslad.trainers.registry import Method


def method_trainer_options(config: Config) -> dict[str, Any]:
    """The trainer options a method's config (:meth:`~art_rslad.experiments.config.Config.for_method`) switches
    on: ``igdm_alpha``, ``weight_averaging`` and the loss ``scale``, each only when set."""
    options: dict[str, Any] = {}
    if config.igdm_alpha:
        options["igdm_alpha"] = config.igdm_alpha
    if config.weight_averaging:
        options["weight_averaging"] = config.weight_averaging
    if config.loss_scale:
        options["scale"] = config.loss_scale
    return options


def load_config_teacher(config: Config, device: str | None = None) -> PyTorchClassifier:
    """The teacher named by ``config.teacher.source`` (see :func:`art_rslad.experiments.teachers.load_teacher`)."""
    if not config.teacher.source:
        raise ValueError("Config key `teacher.source` is empty but the method distils from a teacher: set it to "
                         "'zoo:<name>', 'robustbench:<name>' or a state-dict path (train one with "
                         "`art-rslad teacher`).")
    return load_teacher(config.teacher.source, config.dataset, model=config.teacher.model, device=device,
                        eps=config.eps)


def build_trainer(config: Config, spec: MethodSpec, identity: Mapping[str, Any], teacher: PyTorchClassifier | None,
                   device: str, verbose: bool, summary_writer: str | None = None
                   ) -> tuple[PyTorchClassifier, Any, list[torch.optim.Optimizer]]:
    """The seeded student classifier, its trainer, and the optimizers of the networks the method trains beside
    the student (their lr follows the student's schedule)."""
    method = spec.method
    classifier, networks = build_networks(config, method, identity, teacher, device, spec.name)
    trainer = method.trainer(classifier, **networks, eps=config.eps,  # type: ignore[call-arg]
                             eps_step=config.eps_step, max_iter=config.max_iter, seed=config.seed, verbose=verbose,
                             **identity["trainer_options"],
                             **({} if summary_writer is None else {"summary_writer": summary_writer}))
    return classifier, trainer, [networks[net.name].optimizer for net in method.trained_networks]


def build_networks(config: Config, method: Method, identity: Mapping[str, Any], teacher: PyTorchClassifier | None,
                    device: str, name: str) -> tuple[PyTorchClassifier, dict[str, PyTorchClassifier]]:
    """The student and every network ``method`` always uses, by name.

    A network that starts from the student is the student's architecture with the student's options and optimizer
    settings, initialised right after the student from the same seeded stream (a different draw, and the student's
    own draw unchanged); one that starts from the teacher is the config's teacher, or, where the method trains it,
    a copy of it with the student's optimizer settings.
    """
    info = dataset_info(config.dataset)
    fresh = [net for net in method.networks if net.required and net.start == "student"]
    torch.manual_seed(config.seed)
    models = [create_model(config.student, info.nb_classes, input_shape=info.input_shape,
                           **identity["student_options"]) for _ in range(1 + len(fresh))]
    optimizer = {"lr": config.lr_for(name), "momentum": config.momentum, "weight_decay": config.weight_decay}
    classifier, *others = [make_classifier(model, config.dataset, **optimizer, device=device) for model in models]
    networks = {net.name: other for net, other in zip(fresh, others, strict=True)}
    for net in method.networks:
        if net.required and net.start == "teacher":
            assert teacher is not None
            networks[net.name] = (make_classifier(copy.deepcopy(teacher.model), config.dataset, **optimizer,
                                                  device=device) if net.trained else teacher)
    return classifier, networks


def trained_network_files(method: str) -> dict[str, dict[str, str]]:
    """``{"networks": {name: file}}`` for the networks the method trains beside the student; empty without."""
    files = {net.name: net.file for net in parse_method(method).method.trained_networks}
    return {"networks": files} if files else {}


__all__ = ["build_networks", "build_trainer", "load_config_teacher", "method_trainer_options", "trained_network_files"]
