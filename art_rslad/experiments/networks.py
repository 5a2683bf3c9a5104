"""What a run builds from its method's registry record: the student, every network the method declares beside it
(a frozen teacher or clean teacher from the config, a network it trains, fresh or from the teacher) and the
trainer, with the options the method's config switches on; and the files of the networks it trains.

A network that starts from a config source takes the teacher (``teacher.source``) or the clean teacher
(``clean_teacher``), each a teacher source (``zoo:<name>``, ``robustbench:<name>``, a run folder or a state-dict
path; see :func:`art_rslad.experiments.teachers.load_teacher`). A trained one is a copy with an optimizer: the
student's settings (its lr then follows the run's schedule) or the network's own
(:class:`~art_rslad.trainers.networks.OwnOptimizer`, its lr set by the method)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.data import dataset_info
from art_rslad.experiments.config import Config
from art_rslad.experiments.teachers import SOURCE_KEYS, load_config_source, teacher_fingerprint
from art_rslad.experiments.variants import MethodSpec, parse_method
from art_rslad.models import create_model, make_classifier
from art_rslad.trainers.averaging import SWA
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
    return load_config_source(config, "teacher", device)


def load_sources(config: Config, method: Method, teacher: PyTorchClassifier | None, device: str | None
                 ) -> dict[str, PyTorchClassifier]:
    """Each config source ``method`` always uses (``teacher``, ``clean_teacher``), loaded once; a ``teacher`` the
    caller gives is used as is."""
    starts = dict.fromkeys(net.start for net in method.networks if net.required and net.start in SOURCE_KEYS)
    return {start: teacher if start == "teacher" and teacher is not None else load_config_source(config, start, device)
            for start in starts}


def source_identity(config: Config, start: str, sources: Mapping[str, PyTorchClassifier]) -> dict[str, str] | None:
    """What a run records of the network it took from source ``start``: the source and its weights' sha256."""
    if start not in sources:
        return None
    source = config.teacher.source if start == "teacher" else config.clean_teacher
    return {"source": source, "sha256_of_weights": teacher_fingerprint(sources[start])}


def build_trainer(config: Config, spec: MethodSpec, identity: Mapping[str, Any],
                  sources: Mapping[str, PyTorchClassifier], device: str, verbose: bool,
                  summary_writer: str | None = None) -> tuple[PyTorchClassifier, Any, list[torch.optim.Optimizer]]:
    """The seeded student classifier, its trainer, and the optimizers of the networks the method trains beside
    the student whose lr follows the student's schedule. SWA starts where ``weight_averaging_start`` says, scaled
    to the run (:meth:`~art_rslad.experiments.config.Config.averaging_start_for`), else at the first lr drop."""
    method = spec.method
    classifier, networks = build_networks(config, method, identity["student_options"], sources, device, spec.name)
    options = dict(identity["trainer_options"])
    if options.get("weight_averaging") == "swa" and config.averaging_start_for() is not None:
        options["weight_averaging"] = SWA(start_epoch=config.averaging_start_for())
    trainer = method.trainer(classifier, **networks, eps=config.eps,  # type: ignore[call-arg]
                             eps_step=config.eps_step, max_iter=config.max_iter, seed=config.seed, verbose=verbose,
                             **options,
                             **({} if summary_writer is None else {"summary_writer": summary_writer}))
    return classifier, trainer, [networks[net.name].optimizer for net in method.trained_networks
                                 if net.optimizer is None]


def build_networks(config: Config, method: Method, student_options: Mapping[str, Any],
                   sources: Mapping[str, PyTorchClassifier], device: str, name: str
                   ) -> tuple[PyTorchClassifier, dict[str, PyTorchClassifier]]:
    """The student and every network ``method`` always uses, by name.

    A network that starts from the student is the student's architecture with the student's options and optimizer
    settings, initialised right after the student from the same seeded stream (a different draw, and the student's
    own draw unchanged); one that starts from a config source is that network, or, where the method trains it,
    a copy of it with the student's optimizer settings or its own.
    """
    info = dataset_info(config.dataset)
    fresh = [net for net in method.networks if net.required and net.start == "student"]
    torch.manual_seed(config.seed)
    models = [create_model(config.student, info.nb_classes, input_shape=info.input_shape, **student_options)
              for _ in range(1 + len(fresh))]
    optimizer = {"lr": config.lr_for(name), "momentum": config.momentum, "weight_decay": config.weight_decay}
    classifier, *others = [make_classifier(model, config.dataset, **optimizer, device=device) for model in models]
    networks = {net.name: other for net, other in zip(fresh, others, strict=True)}
    for net in method.networks:
        if net.required and net.start in SOURCE_KEYS:
            source = sources[net.start]
            own = optimizer if net.optimizer is None else dataclasses.asdict(net.optimizer)
            networks[net.name] = (make_classifier(copy.deepcopy(source.model), config.dataset, **own, device=device)
                                  if net.trained else source)
    return classifier, networks


def trained_network_files(method: str) -> dict[str, dict[str, str]]:
    """``{"networks": {name: file}}`` for the networks the method trains beside the student; empty without."""
    files = {net.name: net.file for net in parse_method(method).method.trained_networks}
    return {"networks": files} if files else {}


__all__ = ["build_networks", "build_trainer", "load_config_teacher", "load_sources", "method_trainer_options",
           "source_identity", "trained_network_files"]
