"""ABSLD: anti-bias soft label distillation (Zhao et al., NeurIPS 2024)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.losses_adaptive import (
    ClassTemperatures,
    Tempering,
    absld_loss,
    absld_targets,
    accumulate_class_errors,
    update_class_temperatures,
)
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import TEACHER, Network
from art_rslad.trainers.records import check_fraction, check_positive


class AdversarialTrainerABSLD(AdversarialTrainerBase):
    """RSLAD with per-class teacher temperatures: a class the student finds hard gets sharper soft labels.

    Per batch: the teacher's logits on x (eval mode) give the targets ``softmax(T(x_i) / tau_adv[y_i])`` and
    ``softmax(T(x_i) / tau_nat[y_i])`` (:func:`~art_rslad.losses_adaptive.absld_targets`); the attack is RSLAD's
    (student in eval mode, from x + 0.001 * N(0, I), maximising ``sum KL(adv target || S(x'))``); the loss (student
    in train mode) is ``alpha * zkl(S(x'), adv target) + (1 - alpha) * zkl(S(x), nat target)``; the student's
    cross-entropy on x' and on x is summed per true class. At each epoch's end the temperatures step against those
    sums (:func:`~art_rslad.losses_adaptive.update_class_temperatures`), the step ``temperature_rate`` first
    following the lr decay. Temperatures and the running sums are in every checkpoint (a resume mid-epoch continues
    the sums). Runs in one process (each rank would sum its own errors).

    | Paper link: https://arxiv.org/abs/2312.05508
    """

    method: ClassVar[str] = "absld"
    networks: ClassVar[tuple[Network, ...]] = (TEACHER,)
    kept_state: ClassVar[tuple[str, ...]] = ("temperatures",)
    distributed_ok: ClassVar[bool] = False
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, alpha: float = 5 / 6,
        temperature_rate: float = 0.1, tempering: Tempering = "separate", **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param alpha: Weight of the adversarial term, in [0, 1] (5/6).
        :param temperature_rate: Step of the end-of-epoch temperature update, > 0 (0.1), multiplied by the lr decay
            at each lr milestone.
        :param tempering: ``"separate"`` (each target by its own temperature, the method) or ``"product"`` (both by
            ``tau_adv * tau_nat``, as the official code computes them).
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack`` (called with the adversarial target),
            ``attack_training_mode``, ``seed``, ``verbose``, ``amp_dtype``, ``channels_last``, ``weight_averaging``,
            ``igdm_alpha``, as in :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        if tempering not in ("separate", "product"):
            raise ValueError(f"`tempering` must be 'separate' or 'product', got {tempering!r}.")
        self.alpha, self.tempering = check_fraction("alpha", alpha), tempering
        self.temperature_rate = check_positive("temperature_rate", temperature_rate)
        self.temperatures = ClassTemperatures.initial(classifier.nb_classes, self.temperature_rate,
                                                      device=classifier.device)
        self._targets: tuple[torch.Tensor, torch.Tensor] | None = None  # this batch's, from _attack_targets
        super().__init__(classifier, teacher, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "temperature_rate": self.temperature_rate, "tempering": self.tempering}

    def _uses_teacher_probs(self) -> bool:
        return False  # the targets are tempered per batch from the teacher's logits

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        """This batch's two targets (kept for the loss); the adversarial one is the attack's."""
        self._targets = absld_targets(self.teacher_logits(batch.x), batch.y, self.temperatures, self.tempering)
        return self._targets[0]

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None and self._targets is not None
        adv_logits = self.student_logits(x_adv)
        nat_logits = self.student_logits(batch.x)
        loss = absld_loss(adv_logits, nat_logits, *self._targets, alpha=self.alpha)
        self.temperatures = accumulate_class_errors(self.temperatures, adv_logits, nat_logits, batch.y)
        self._targets = None
        return loss, adv_logits

    def _end_epoch(self, epoch: int, lr_factor: float) -> None:
        decayed = dataclasses.replace(self.temperatures, rate=self.temperatures.rate * lr_factor)
        self.temperatures = update_class_temperatures(decayed)
