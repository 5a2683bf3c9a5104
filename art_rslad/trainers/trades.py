"""TRADES with its KL inner maximisation (Zhang et al., ICML 2019)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.losses import trades_loss
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import Network
from art_rslad.trainers.records import check_non_negative
from art_rslad.trainers.sat import SOFT_LABEL_TEACHER, batch_labels, check_soft_labels


class AdversarialTrainerTRADES(AdversarialTrainerBase):
    """TRADES as its paper and official code define it (not ART's ``AdversarialTrainerTRADESPyTorch``).

    Inner maximisation (model in eval mode): from x + 0.001 * N(0, I), ``max_iter`` sign steps on
    ``sum_i KL(softmax(f(x_i)) || f(x'_i))``, the natural softmax computed once per batch. Outer loss (train mode):
    ``mean_i CE(f(x_i), y_i) + beta * mean_i KL(softmax(f(x_i)) || f(x'_i))``, the natural softmax not detached.
    With ``soft_labels=True`` the first term uses the teacher's probabilities: ``mean_i KL(p_T(x_i) || f(x_i))``.

    ART's ``AdversarialTrainerTRADESPyTorch`` differs: its documented attack is PGD on the cross-entropy with the
    true labels from a uniform start.

    | Paper link: https://arxiv.org/abs/1901.08573
    """

    method: ClassVar[str] = "trades"
    networks: ClassVar[tuple[Network, ...]] = (SOFT_LABEL_TEACHER,)
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier | None = None, *, beta: float = 6.0,
        soft_labels: bool = False, **kwargs: Any,
    ) -> None:
        """
        :param classifier: The model (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: A robust teacher, required with ``soft_labels=True`` and refused otherwise.
        :param beta: Weight of the KL robustness term, >= 0 (6, the paper's CIFAR-10 setting).
        :param soft_labels: Replace the true labels of the natural term by the teacher's probabilities.
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack``, ``attack_training_mode``, ``seed``,
            ``verbose``, as in :class:`~art_rslad.trainers.base.AdversarialTrainerBase`. A custom ``attack`` is
            called with the model's natural probabilities as labels.
        """
        self.beta = check_non_negative("beta", beta)
        self.soft_labels = check_soft_labels(type(self).__name__, soft_labels, teacher)
        super().__init__(classifier, teacher, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"soft_labels": self.soft_labels, "beta": self.beta}

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(self.student_logits(batch.x), dim=1)

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        nat_logits = self.student_logits(batch.x)
        adv_logits = self.student_logits(x_adv)
        return trades_loss(nat_logits, adv_logits, batch_labels(batch, self.soft_labels), beta=self.beta), adv_logits
