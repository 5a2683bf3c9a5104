"""What every teacher-student distillation trainer shares: a teacher, and IGDM's plug-in term.

IGDM (Lee, Cho and Kim, ICLR 2025) adds to any distillation loss a term that matches the student's input gradient
to the teacher's along the method's own perturbation ``d = x' - x``, through the logit differences on x + d and on
the mirror input x - d. It is off by default (``igdm_alpha=0``: not one extra forward pass).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.losses import igdm_loss
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch


class DistillationTrainer(AdversarialTrainerBase):
    """A trainer that distils a robust teacher; subclasses implement :meth:`_distillation_loss`.

    With ``igdm_alpha > 0`` the training loss becomes
    ``L_method + igdm_alpha * (e / E) * mean_i KL(softmax(T(x'_i) - T(x_i - d_i)) || softmax(S(x'_i) - S(x_i - d_i)))``
    with ``d = x' - x``, ``e`` the 1-based epoch and ``E`` the run's epochs (a linear ramp to ``igdm_alpha``); the
    mirror input ``x - d`` is not clipped; the teacher runs under no_grad, the student in train mode. The student's
    logits on x' are those the method's loss returns, so IGDM costs two teacher forwards and one student forward.

    | Paper link: https://arxiv.org/abs/2312.03286
    """

    needs_teacher: ClassVar[bool] = True

    def __init__(self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, igdm_alpha: float = 0.0,
                 **kwargs: Any) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param igdm_alpha: Final weight of IGDM's term, >= 0 (0: off; 1 on CIFAR-10, 10-20 on CIFAR-100 in its
            paper), reached linearly at the last epoch.
        :param kwargs: The other settings of :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        if not igdm_alpha >= 0:
            raise ValueError(f"`igdm_alpha` must be >= 0 (0 turns IGDM off), got {igdm_alpha}.")
        self.igdm_alpha = float(igdm_alpha)
        super().__init__(classifier, teacher, **kwargs)

    def hyperparameters(self) -> dict[str, Any]:
        # Recorded only when on, so that checkpoints written before the option existed still resume.
        extra = {"igdm_alpha": self.igdm_alpha} if self.igdm_alpha else {}
        return {**super().hyperparameters(), **extra}

    def _distillation_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The method's training loss and the student's logits on x' (with their graph; student in train mode)."""
        raise NotImplementedError

    def igdm_weight(self) -> float:
        """``igdm_alpha * e / E`` at the current epoch (``e`` 1-based, ``E`` the run's nb_epochs)."""
        return self.igdm_alpha * (self.epoch + 1) / self.nb_epochs

    def igdm_term(self, x: torch.Tensor, x_adv: torch.Tensor, student_adv_logits: torch.Tensor) -> torch.Tensor:
        """IGDM's loss on ``x`` and ``x' = x_adv`` (:func:`~art_rslad.losses.igdm_loss`), before its weight."""
        x_mirror = 2.0 * x - x_adv  # x - (x' - x), deliberately not clipped
        return igdm_loss(student_adv_logits, self.student_logits(x_mirror), self.teacher_logits(x_adv),
                         self.teacher_logits(x_mirror))

    def _loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        loss, adv_logits = self._distillation_loss(batch, x_adv)
        if self.igdm_alpha and x_adv is not None:
            loss = loss + self.igdm_weight() * self.igdm_term(batch.x, x_adv, adv_logits)
        return loss, adv_logits
