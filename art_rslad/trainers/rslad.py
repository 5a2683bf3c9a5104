"""RSLAD: robust soft label adversarial distillation (Zi et al., ICCV 2021)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.losses import rslad_loss_from_probs
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import TEACHER, Network
from art_rslad.trainers.records import check_fraction, check_positive


class AdversarialTrainerRSLAD(AdversarialTrainerBase):
    """Distil a robust teacher into a student with the teacher's soft labels in every loss term.

    Inner maximisation (student in eval mode): PGD from x + 0.001 * N(0, I) maximising
    ``sum KL(p_T(x) || S(x'))``, where ``p_T(x)`` is the teacher's softmax on the natural input; the teacher never
    sees x'. Outer loss (student in train mode):
    ``scale * (alpha * KL(p_T(x) || S(x')) + (1 - alpha) * KL(p_T(x) || S(x)))``, batch-mean KLs.

    ``scale=0.1`` reproduces the official code's reduction on CIFAR-10 (a mean over batch x classes); scale and
    learning rate trade against each other, so in short runs choose them together on a validation split.

    | Paper link: https://arxiv.org/abs/2108.07969
    """

    method: ClassVar[str] = "rslad"
    networks: ClassVar[tuple[Network, ...]] = (TEACHER,)
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, alpha: float = 5 / 6, scale: float = 0.1,
        **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param alpha: Weight of the adversarial KL term, in [0, 1] (5/6).
        :param scale: Multiplier of the loss, > 0 (0.1 reproduces the official code); acts like a learning rate.
        :param kwargs: ``eps`` (default 8/255, CIFAR's; 0.1 on Fashion-MNIST), ``eps_step`` (default eps / 4: 2/255
            on CIFAR), ``max_iter`` (10), ``attack`` (called with the teacher's probabilities as labels),
            ``attack_training_mode`` (None: eval mode, as the paper), ``seed``, ``verbose``, ``amp_dtype``,
            ``channels_last``, ``weight_averaging``, as in :class:`~art_rslad.trainers.base.AdversarialTrainerBase`,
            and ``igdm_alpha`` (IGDM's term, :mod:`~art_rslad.trainers.terms`).
        """
        self.alpha, self.scale = check_fraction("alpha", alpha), check_positive("scale", scale)
        super().__init__(classifier, teacher, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "scale": self.scale}

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        assert batch.teacher_probs is not None
        return batch.teacher_probs

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert batch.teacher_probs is not None and x_adv is not None
        adv_logits = self.student_logits(x_adv)
        nat_logits = self.student_logits(batch.x)
        loss = rslad_loss_from_probs(adv_logits, nat_logits, batch.teacher_probs, alpha=self.alpha, scale=self.scale)
        return loss, adv_logits
