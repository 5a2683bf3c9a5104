"""SAT: PGD adversarial training (Madry et al., ICLR 2018), optionally on a teacher's robust soft labels."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.losses import sat_loss
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import Network

#: The optional teacher of the label methods: with ``soft_labels=True`` its probabilities replace the true labels.
SOFT_LABEL_TEACHER = Network("teacher", required=False)


def check_soft_labels(owner: str, soft_labels: bool, teacher: PyTorchClassifier | None) -> bool:
    """``soft_labels`` as a bool; a ValueError unless a teacher is given exactly when it is on.

    RSLAD's paper observes that replacing the hard labels of SAT and TRADES with a robust teacher's soft labels
    already improves robustness; ``soft_labels`` lets that be tested.
    """
    if soft_labels and teacher is None:
        raise ValueError(f"`teacher` is required by {owner}(soft_labels=True): pass a robust PyTorchClassifier.")
    if not soft_labels and teacher is not None:
        raise ValueError(f"{owner} uses no `teacher` with hard labels; drop it or pass soft_labels=True.")
    return bool(soft_labels)


def batch_labels(batch: Batch, soft_labels: bool) -> torch.Tensor:
    """Class indices, or the teacher's probabilities with ``soft_labels``."""
    if soft_labels:
        assert batch.teacher_probs is not None
        return batch.teacher_probs
    return batch.y


class AdversarialTrainerSAT(AdversarialTrainerBase):
    """Standard adversarial training: PGD on the cross-entropy from a uniform start, then train on x' only.

    Inner maximisation (student in eval mode): ``max_iter`` sign steps on ``sum_i CE(S(x'_i), y_i)`` from a uniform
    start in the eps ball. Outer loss (train mode): ``mean_i CE(S(x'_i), y_i)``. With ``soft_labels=True`` both use
    the teacher's probabilities ``p_T(x)`` in place of ``y`` (``KL(p_T(x) || S(x'))``).

    ART ships the same method as ``AdversarialTrainerMadryPGD`` (defaults on the 0-255 scale, max_iter 7).

    | Paper link: https://arxiv.org/abs/1706.06083
    """

    method: ClassVar[str] = "sat"
    networks: ClassVar[tuple[Network, ...]] = (SOFT_LABEL_TEACHER,)
    attack_random_init: ClassVar[RandomInit] = "uniform"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier | None = None, *, soft_labels: bool = False,
        **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: A robust teacher, required with ``soft_labels=True`` and refused otherwise.
        :param soft_labels: Replace the true labels by the teacher's probabilities on the natural input.
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack``, ``attack_training_mode``, ``seed``,
            ``verbose``, as in :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        self.soft_labels = check_soft_labels(type(self).__name__, soft_labels, teacher)
        super().__init__(classifier, teacher, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"soft_labels": self.soft_labels}

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        """One-hot true labels (a cross-entropy attack), or the teacher's probabilities with ``soft_labels``."""
        return batch_labels(batch, True) if self.soft_labels else super()._attack_targets(batch)

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        adv_logits = self.student_logits(x_adv)
        return sat_loss(adv_logits, batch_labels(batch, self.soft_labels)), adv_logits
