"""DGAD: dynamic guidance adversarial distillation (Park and Min, ECCV 2024), on AdaAD's attack."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.losses_samplewise import dgad_loss, dgad_partition, dgad_swap_labels
from art_rslad.trainers.adaad import AdaptiveAttack
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.records import check_non_negative


class AdversarialTrainerDGAD(AdaptiveAttack, AdversarialTrainerBase):
    """Distil only what the teacher gets right: each sample from x or from x', by the teacher's correctness.

    Inner maximisation: AdaAD's (:class:`~art_rslad.trainers.adaad.AdaptiveAttack`; student and teacher in eval mode,
    both see x'). Outer loss (student in train mode, teacher in eval mode): the samples the teacher misclassifies on
    x are learnt from x, the others from x'; in the teacher's logits the true class changes places with the top
    wrong class where the teacher ranks it below (on x: the misclassified rows; on x': every such row); plus a
    consistency term between the student's two predictions:
    ``(1/B) sum_i [KL_i(S(x), t) if T misclassifies x_i else KL_i(S(x'), t')] + beta * mean((softmax(S(x')) -
    softmax(S(x)))^2)`` (:func:`~art_rslad.losses_samplewise.dgad_loss`). No state across batches.

    | Paper link: https://arxiv.org/abs/2409.01627
    """

    method: ClassVar[str] = "dgad"

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, beta: float = 1.0,
        fixed_batch_size: int | None = None, **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param beta: Weight of the consistency term, >= 0 (1).
        :param fixed_batch_size: Divide the distillation sum by this number instead of each batch's size (None); the
            official code divides by its constant 128, which down-weights a short last batch.
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack`` (called on the student alone with the
            teacher's probabilities on x), ``attack_training_mode``, ``seed``, ``verbose``, ``amp_dtype``,
            ``channels_last``, ``weight_averaging``, ``igdm_alpha``, as in
            :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        self.beta = check_non_negative("beta", beta)
        if fixed_batch_size is not None and (isinstance(fixed_batch_size, bool) or int(fixed_batch_size)
                                             != fixed_batch_size or fixed_batch_size < 1):
            raise ValueError(f"`fixed_batch_size` must be None (each batch's own size) or a positive integer, got "
                             f"{fixed_batch_size!r}.")
        self.fixed_batch_size = None if fixed_batch_size is None else int(fixed_batch_size)
        super().__init__(classifier, teacher, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"beta": self.beta, "fixed_batch_size": self.fixed_batch_size}

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        teacher_nat, teacher_adv = self.teacher_logits(batch.x), self.teacher_logits(x_adv)
        misclassified = dgad_partition(teacher_nat, batch.y)
        teacher_nat, teacher_adv = dgad_swap_labels(teacher_nat, teacher_adv, batch.y, misclassified)
        adv_logits = self.student_logits(x_adv)
        nat_logits = self.student_logits(batch.x)
        loss = dgad_loss(nat_logits, adv_logits, teacher_nat, teacher_adv, misclassified, beta=self.beta,
                         fixed_batch_size=self.fixed_batch_size)
        return loss, adv_logits
