"""MTARD: multi-teacher adversarial robustness distillation (Zhao et al., ECCV 2022)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.losses_adaptive import AdaptiveWeights, mtard_loss
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import CLEAN_TEACHER, TEACHER, Network
from art_rslad.trainers.records import check_fraction, check_positive


class AdversarialTrainerMTARD(AdversarialTrainerBase):
    """Distil a robust teacher on x' and a clean teacher on x, with weights that adapt every batch.

    Inner maximisation (student in eval mode, no teacher): PGD from x + 0.001 * N(0, I) on ``CE(S(x'), y)``. Outer
    loss (student in train mode, both teachers in eval mode):
    ``scale * (w_adv * zkl(S(x'), softmax(T_r(x'))) + w_nat * zkl(S(x), softmax(T_c(x))))``
    (:func:`~art_rslad.losses_adaptive.mtard_loss`), the weights updated on each batch before the loss by MTARD's
    rule (:func:`~art_rslad.losses_adaptive.update_adaptive_weights`); the rule's step ``weight_rate`` follows the
    lr decay at each lr milestone. The weights, the first batch's term values and the step are in every checkpoint.
    Runs in one process (the rule reads each batch's loss values, which differ between ranks).

    | Paper link: https://www.ecva.net/papers/eccv_2022/papers_ECCV/html/4339_ECCV_2022_paper.php
    """

    method: ClassVar[str] = "mtard"
    networks: ClassVar[tuple[Network, ...]] = (TEACHER, CLEAN_TEACHER)
    kept_state: ClassVar[tuple[str, ...]] = ("weights",)
    distributed_ok: ClassVar[bool] = False
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, clean_teacher: PyTorchClassifier, *,
        initial_weight: float = 0.5, weight_rate: float = 0.025, scale: float = 1.0, **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param clean_teacher: The clean (naturally trained) teacher (same classes and clip range).
        :param initial_weight: The natural term's first weight, in [0, 1] (1/2; the adversarial term gets the rest).
        :param weight_rate: Step of the weight rule, > 0 (0.025), multiplied by the lr decay at each lr milestone.
        :param scale: Multiplier of the loss, > 0 (1; the official CIFAR-100 code uses 10).
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack`` (called with the one-hot labels),
            ``attack_training_mode``, ``seed``, ``verbose``, ``amp_dtype``, ``channels_last``, ``weight_averaging``,
            ``igdm_alpha``, as in :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        self.weights = AdaptiveWeights(weight_nat=check_fraction("initial_weight", initial_weight),
                                       rate=check_positive("weight_rate", weight_rate))
        self.initial_weight, self.weight_rate = self.weights.weight_nat, self.weights.rate
        self.scale = check_positive("scale", scale)
        self.clean_teacher: PyTorchClassifier
        super().__init__(classifier, teacher, networks={"clean_teacher": clean_teacher}, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"initial_weight": self.initial_weight, "weight_rate": self.weight_rate, "scale": self.scale}

    def _uses_teacher_probs(self) -> bool:
        return False  # the teachers' outputs are taken per batch (the robust one on x')

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        adv_logits = self.student_logits(x_adv)
        nat_logits = self.student_logits(batch.x)
        loss, self.weights = mtard_loss(adv_logits, nat_logits, self.teacher_logits(x_adv),
                                        self.frozen_logits(self.clean_teacher, batch.x), self.weights)
        return self.scale * loss, adv_logits

    def _end_epoch(self, epoch: int, lr_factor: float) -> None:
        self.weights = dataclasses.replace(self.weights, rate=self.weights.rate * lr_factor)
