"""Papernot et al.'s defensive distillation through ART's ``DefensiveDistillation`` transformer, as a trainer.

:class:`ArtDefensiveDistillation` is one of the adapters of :mod:`art_rslad.trainers.art`; the temperature lives in
:class:`TemperatureSoftmax` and :class:`TemperatureLogits`, since ART's transformer has none.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from art.defences.transformer.evasion import DefensiveDistillation
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_rslad.estimators import classifier_like
from art_rslad.trainers.art import ArtTrainerAdapter
from art_rslad.trainers.records import check_positive


class TemperatureSoftmax(nn.Module):
    """``softmax(model(x) / temperature)``: Papernot et al.'s soft labels F(x)_i = exp(z_i / T) / sum_j exp(z_j / T).

    :param model: A module that outputs logits z.
    :param temperature: T > 0.
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x) / self.temperature, dim=1)


class TemperatureLogits(TemperatureSoftmax):
    """``model(x) / temperature``: with the cross-entropy, training at temperature T (the teacher's training)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


class SoftLabelNLL(nn.Module):
    """``mean_i -sum_k y_ik log p_ik`` for probability outputs p and soft labels y (the distilled network's loss)."""

    def forward(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -(target * torch.log(probs.clamp_min(1e-12))).sum(dim=1).mean()


class ArtDefensiveDistillation(ArtTrainerAdapter):
    """Papernot et al.'s defensive distillation through ART's ``DefensiveDistillation`` transformer.

    As in the paper: a teacher of the student's architecture (freshly initialised, the student's optimizer type and
    settings) is trained naturally at temperature T (cross-entropy on softmax(z / T)) for nb_epochs; ART's
    transformer then fits the student, seen through softmax(z / T), to the teacher's probabilities at T for
    nb_epochs with :class:`SoftLabelNLL`; the student is deployed at T = 1 (its logits unchanged). ART's transformer
    has no temperature (both models must output probabilities), so T lives in :class:`TemperatureSoftmax`.
    T = 100 (the paper's MNIST and CIFAR-10 setting). No adversarial step: eps only sets the budget of the
    validation PGD; no scheduler (ART's transformer fits without one). Both ART calls run all epochs at once, so
    each epoch is credited the run's mean training time, the teacher's training included; validation after the last
    epoch only.

    | Paper link: https://arxiv.org/abs/1511.04508
    """

    method: ClassVar[str] = "art-defensive-distillation"
    art_class: ClassVar[type] = DefensiveDistillation
    fit_per_epoch: ClassVar[bool] = False
    fixed_settings: ClassVar[dict[str, str]] = {
        "eps_step": "defensive distillation has no adversarial step",
        "max_iter": "defensive distillation has no adversarial step",
        "scheduler": "ART's DefensiveDistillation fits the student without a scheduler",
    }

    def __init__(self, classifier: PyTorchClassifier, teacher: PyTorchClassifier | None = None, *,
                 temperature: float = 100.0, **kwargs: Any) -> None:
        """Other parameters as in :class:`~art_rslad.trainers.art.ArtTrainerAdapter`.

        :param temperature: Distillation temperature T > 0 (100 in the paper).
        """
        self.temperature = check_positive("temperature", temperature)
        super().__init__(classifier, teacher, **kwargs)
        self.teacher: PyTorchClassifier | None = None

    def _art_settings(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "teacher": "student's architecture, trained naturally at T"}

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        teacher_model = copy.deepcopy(classifier.model)
        for module in teacher_model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        optimizer = classifier.optimizer
        teacher_optimizer = type(optimizer)(teacher_model.parameters(), **optimizer.defaults)
        self.teacher = classifier_like(classifier, TemperatureLogits(teacher_model, self.temperature),
                                       loss=nn.CrossEntropyLoss(), optimizer=teacher_optimizer)
        return DefensiveDistillation(classifier_like(classifier, TemperatureSoftmax(teacher_model, self.temperature)),
                                     batch_size=batch_size, nb_epochs=nb_epochs)

    def _art_fit(self, x: np.ndarray, y: np.ndarray, batch_size: int, nb_epochs: int) -> None:
        assert self.teacher is not None
        self.teacher.fit(x, y, batch_size=batch_size, nb_epochs=nb_epochs, verbose=False)
        student = self._classifier
        student_at_t = classifier_like(student, TemperatureSoftmax(student.model, self.temperature),
                                       loss=SoftLabelNLL(), optimizer=student.optimizer)
        self.art_trainer(x, transformed_classifier=student_at_t)
