"""ARD: adversarially robust distillation (Goldblum et al., AAAI 2020)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.losses import ard_loss
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import TEACHER, Network
from art_rslad.trainers.records import check_fraction


def check_tau(tau: float) -> float:
    """The distillation temperature as a float, a ValueError unless it is > 0."""
    if not tau > 0:
        raise ValueError(f"`tau` (the distillation temperature) must be > 0, got {tau}.")
    return float(tau)


def teacher_nat_logits(batch: Batch) -> torch.Tensor:
    """The teacher's logits on x up to a per-row constant: ``log p_T(x)`` (softmax is shift-invariant).

    Exact unless a probability underflows float32 (a logit gap above ~87), where it stands in as 0.
    """
    assert batch.teacher_probs is not None
    return batch.teacher_probs.log()


class AdversarialTrainerARD(AdversarialTrainerBase):
    """Distil a robust teacher with a temperature; x' from a cross-entropy PGD on the true labels.

    Inner maximisation (student in train mode, as the official code, so BatchNorm statistics move; pass
    ``attack_training_mode=False`` for eval mode): PGD on ``sum_i CE(S(x'_i), y_i)`` from a uniform start.
    Outer loss: ``alpha * tau^2 * KL(softmax(T(x)/tau) || softmax(S(x')/tau)) + (1 - alpha) * CE(S(x), y)``, the KL
    averaged over B*C elements as the official code; tau 30 and alpha 1 (the cross-entropy term off, and S(x) then
    not computed) are the official defaults. That reduction is small: loss scale and learning rate trade against
    each other, so choose the learning rate on a validation split in short runs.

    | Paper link: https://arxiv.org/abs/1905.09747
    """

    method: ClassVar[str] = "ard"
    networks: ClassVar[tuple[Network, ...]] = (TEACHER,)
    attack_random_init: ClassVar[RandomInit] = "uniform"
    default_attack_training_mode: ClassVar[bool] = True

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, tau: float = 30.0, alpha: float = 1.0,
        **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param tau: Distillation temperature, > 0 (30).
        :param alpha: Weight of the distillation term, in [0, 1] (1: no cross-entropy term).
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack``, ``attack_training_mode``, ``seed``,
            ``verbose``, ``amp_dtype``, ``channels_last``, ``igdm_alpha``, ``weight_averaging``, as in
            :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        self.tau, self.alpha = check_tau(tau), check_fraction("alpha", alpha)
        super().__init__(classifier, teacher, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"tau": self.tau, "alpha": self.alpha}

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        nat_logits = self.student_logits(batch.x) if self.alpha < 1.0 else None
        adv_logits = self.student_logits(x_adv)
        loss = ard_loss(adv_logits, nat_logits, teacher_nat_logits(batch), batch.y, tau=self.tau,
                        alpha=self.alpha)
        return loss, adv_logits
