"""Natural (non-adversarial) training in the same harness: the baseline every robust method must beat."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.losses import natural_loss
from art_rslad.trainers.base import AdversarialTrainerBase, Batch


class NaturalTrainer(AdversarialTrainerBase):
    """Train on the natural inputs only: ``mean_i CE(S(x_i), y_i)``; no inner maximisation, no teacher.

    It shares the loop of the adversarial trainers (batching, validation with PGD-10 at ``eps``, checkpoints,
    resume), so a natural baseline is run and reported the same way. ``eps``, ``eps_step`` and ``max_iter`` set
    only the validation attack.
    """

    method: ClassVar[str] = "natural"
    uses_attack: ClassVar[bool] = False

    def __init__(self, classifier: PyTorchClassifier, teacher: PyTorchClassifier | None = None, **kwargs: Any) -> None:
        """
        :param classifier: The model (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: Must be None (natural training uses no teacher).
        :param kwargs: ``eps``, ``eps_step``, ``seed``, ``verbose`` as in
            :class:`~art_rslad.trainers.base.AdversarialTrainerBase` (eps and eps_step for validation only).
        """
        for name in ("attack", "attack_training_mode"):
            if kwargs.get(name) is not None:
                raise ValueError(f"NaturalTrainer runs no attack during training; drop `{name}`.")
        super().__init__(classifier, teacher, **kwargs)

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        nat_logits = self.student_logits(batch.x)
        return natural_loss(nat_logits, batch.y), nat_logits
