"""AdaIAD: AdaAD's inner maximisation with IAD's introspection in the outer loss (Huang et al.'s AdaAD code)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.losses import adaiad_loss, iad_weights
from art_rslad.trainers.adaad import AdaptiveAttack
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.iad import check_warmup_epochs, introspection_start
from art_rslad.trainers.records import check_non_negative, check_positive


class AdversarialTrainerAdaIAD(AdaptiveAttack, AdversarialTrainerBase):
    """AdaAD with introspection: the teacher on x' at a high temperature, and the student's own natural prediction
    where the teacher is unsure of the true class on x'.

    Inner maximisation as AdaAD (student and teacher in eval mode, both see x', from x + 0.001 * N(0, I)).
    Outer loss (student in train mode): ``T^2 * mean_i KL(softmax(T(x'_i)/T) || softmax(S(x'_i)/T))``, plus from the
    warm-up epoch on ``mean_i (1 - a_i) KL(softmax(S(x_i)) || S(x'_i))`` with ``a_i = softmax(T(x'_i))[y_i] ** beta``
    (constants) and ``softmax(S(x))`` not detached. S(x) is computed only once introspection is on.

    | Paper link: https://openaccess.thecvf.com/content/CVPR2023/html/Huang_Boosting_Accuracy_and_Robustness_of_Student_Models_via_Adaptive_Adversarial_CVPR_2023_paper.html
    """

    method: ClassVar[str] = "adaiad"

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, temperature: float = 30.0,
        beta: float = 0.1, warmup_epochs: int | None = None, **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param temperature: Distillation temperature T of the adversarial term, > 0 (30).
        :param beta: Exponent of the introspection weight ``a_i``, >= 0 (0.1).
        :param warmup_epochs: Epochs trained without introspection, at most ``nb_epochs``; None scales the official
            60 of 200 epochs to the run's ``nb_epochs`` (see docs/decisions.md, "Scaled schedules").
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack``, ``attack_training_mode``, ``seed``,
            ``verbose``, ``amp_dtype``, ``channels_last``, ``igdm_alpha``, ``weight_averaging``, as in
            :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        self.temperature, self.beta = check_positive("temperature", temperature), check_non_negative("beta", beta)
        self.warmup_epochs = check_warmup_epochs(warmup_epochs)
        super().__init__(classifier, teacher, **kwargs)

    def warmup_epoch(self) -> int:
        """The first epoch (0-based) with introspection, resolved against the current fit's nb_epochs."""
        return introspection_start(self.warmup_epochs, self.nb_epochs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "beta": self.beta,
                "warmup_epochs": self.warmup_epoch()}

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        adv_logits = self.student_logits(x_adv)
        teacher_adv_logits = self.teacher_logits(x_adv)
        nat_logits = weights = None
        if self.epoch >= self.warmup_epoch():
            nat_logits = self.student_logits(batch.x)
            weights = iad_weights(teacher_adv_logits, batch.y, beta=self.beta)
        loss = adaiad_loss(adv_logits, nat_logits, teacher_adv_logits, weights, temperature=self.temperature)
        return loss, adv_logits
