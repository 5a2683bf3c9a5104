"""IAD-I: introspective adversarial distillation (Zhu et al., ICLR 2022), built on ARD."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.losses import iad_loss, iad_weights
from art_rslad.trainers.ard import check_tau, teacher_nat_logits
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import TEACHER, Network
from art_rslad.trainers.records import check_fraction, check_non_negative

#: IAD's warm-up: the introspection weights start at epoch 60 of 200 (AdaIAD's too).
WARMUP_FRACTION = 60 / 200


def check_warmup_epochs(warmup_epochs: int | None) -> int | None:
    """``warmup_epochs`` as an int (or None), a ValueError naming it otherwise."""
    if warmup_epochs is not None and (int(warmup_epochs) != warmup_epochs or warmup_epochs < 0):
        raise ValueError(f"`warmup_epochs` must be a non-negative integer or None, got {warmup_epochs}.")
    return None if warmup_epochs is None else int(warmup_epochs)


def introspection_start(warmup_epochs: int | None, nb_epochs: int) -> int:
    """The first epoch (0-based) with introspection: ``warmup_epochs``, or None scaled as 60 of 200 epochs.

    (see docs/decisions.md, "Scaled schedules")

    :param warmup_epochs: Epochs before introspection starts, at most ``nb_epochs``; None scales IAD's warm-up.
    :param nb_epochs: Epochs of the current run (0 before the first fit: no check).
    """
    if warmup_epochs is None:
        return round(WARMUP_FRACTION * nb_epochs)
    if nb_epochs and warmup_epochs > nb_epochs:
        raise ValueError(f"`warmup_epochs` ({warmup_epochs}) is beyond nb_epochs ({nb_epochs}); "
                         "lower it or pass warmup_epochs=None to scale IAD's 60-of-200 warm-up.")
    return warmup_epochs


class AdversarialTrainerIAD(AdversarialTrainerBase):
    """ARD with introspection: the student partly trusts itself where the teacher is unreliable on x'.

    Inner maximisation as ARD (cross-entropy PGD on the true labels, uniform start, student in train mode).
    Outer loss: ``alpha * tau^2 * mean_i KL(softmax(T(x_i)/tau) || softmax(S(x'_i)/tau))
    + alpha * mean_i (1 - w_i) KL(softmax(S(x_i)) || S(x'_i)) + (1 - alpha) * mean_i CE(S(x_i), y_i)``, with
    ``w_i = softmax(T(x'_i))[y_i] ** beta`` (one teacher pass on x' per batch, computed for the whole batch at once)
    and ``w = 1`` during the warm-up epochs. ``softmax(S(x))`` in the introspection term is not detached, as in the
    official code (see docs/decisions.md, "IAD's self-introspection target").

    | Paper link: https://arxiv.org/abs/2106.04928
    """

    method: ClassVar[str] = "iad"
    networks: ClassVar[tuple[Network, ...]] = (TEACHER,)
    attack_random_init: ClassVar[RandomInit] = "uniform"
    default_attack_training_mode: ClassVar[bool] = True

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, tau: float = 1.0, alpha: float = 1.0,
        beta: float = 0.1, warmup_epochs: int | None = None, **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param tau: Distillation temperature, > 0 (1).
        :param alpha: Weight of the distillation terms, in [0, 1] (1: no cross-entropy term).
        :param beta: Exponent of the introspection weight, >= 0 (0.1).
        :param warmup_epochs: Epochs trained with ``w = 1`` before introspection starts, at most ``nb_epochs``;
            None scales IAD's 60 of 200 epochs to the run's ``nb_epochs``.
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack``, ``attack_training_mode``, ``seed``,
            ``verbose``, ``amp_dtype``, ``channels_last``, ``igdm_alpha``, ``weight_averaging``, as in
            :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        self.tau, self.alpha = check_tau(tau), check_fraction("alpha", alpha)
        self.beta = check_non_negative("beta", beta)
        self.warmup_epochs = check_warmup_epochs(warmup_epochs)
        super().__init__(classifier, teacher, **kwargs)

    def warmup_epoch(self) -> int:
        """The first epoch (0-based) with introspection weights, resolved against the current fit's nb_epochs."""
        return introspection_start(self.warmup_epochs, self.nb_epochs)

    def method_hyperparameters(self) -> dict[str, Any]:
        # The loop calls this once nb_epochs is known and before the first batch: the warm-up is checked here.
        return {"tau": self.tau, "alpha": self.alpha, "beta": self.beta, "warmup_epochs": self.warmup_epoch()}

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        nat_logits = self.student_logits(batch.x)
        adv_logits = self.student_logits(x_adv)
        if self.epoch >= self.warmup_epoch():
            weights = iad_weights(self.teacher_logits(x_adv), batch.y, beta=self.beta)
        else:
            weights = torch.ones_like(batch.y, dtype=adv_logits.dtype)
        loss = iad_loss(adv_logits, nat_logits, teacher_nat_logits(batch), batch.y, weights, tau=self.tau,
                        alpha=self.alpha)
        return loss, adv_logits
