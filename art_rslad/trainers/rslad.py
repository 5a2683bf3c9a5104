"""RSLAD: robust soft label adversarial distillation (Zi et al., ICCV 2021)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.losses import rslad_loss_from_probs
from art_rslad.trainers.averaging import WeightAveraging
from art_rslad.trainers.base import Batch
from art_rslad.trainers.distillation import DistillationTrainer


class AdversarialTrainerRSLAD(DistillationTrainer):
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
    needs_teacher: ClassVar[bool] = True
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self,
        classifier: PyTorchClassifier,
        teacher: PyTorchClassifier,
        *,
        eps: float | None = None,
        eps_step: float | None = None,
        max_iter: int = 10,
        alpha: float = 5 / 6,
        scale: float = 0.1,
        attack: EvasionAttack | None = None,
        attack_training_mode: bool | None = None,
        seed: int = 0,
        verbose: bool = True,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        igdm_alpha: float = 0.0,
        weight_averaging: str | WeightAveraging | None = None,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param eps: L-inf radius of the inner maximisation (default 8/255, CIFAR's; 0.1 on Fashion-MNIST).
        :param eps_step: Step size of the inner maximisation (default eps / 4: 2/255 on CIFAR).
        :param max_iter: Steps of the inner maximisation (10).
        :param alpha: Weight of the adversarial KL term, in [0, 1] (5/6).
        :param scale: Multiplier of the loss (0.1 reproduces the official code); acts like a learning rate.
        :param attack: Any ART EvasionAttack to craft x'; called with the teacher's probabilities as labels.
        :param attack_training_mode: Student mode during the attack; None = eval mode, as the paper.
        :param seed: Seed of the batch order and the attack's random start.
        :param verbose: Show progress bars.
        :param amp_dtype: ``torch.bfloat16`` for bf16 autocast in every forward pass (GPU option); None: float32.
        :param channels_last: channels_last memory format for student, teacher and inputs (GPU option).
        :param igdm_alpha: Final weight of IGDM's gradient-matching term, >= 0 (0: off), ramped up linearly.
        :param weight_averaging: ``"ema"``, ``"swa"`` or a configured averager: validate and return the averaged
            student; None (default) trains and returns the live weights.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1], got {alpha}.")
        if scale <= 0:
            raise ValueError(f"`scale` must be > 0, got {scale}.")
        self.alpha, self.scale = float(alpha), float(scale)
        super().__init__(classifier, teacher, eps=eps, eps_step=eps_step, max_iter=max_iter, attack=attack,
                         attack_training_mode=attack_training_mode, seed=seed, verbose=verbose,
                         amp_dtype=amp_dtype, channels_last=channels_last, igdm_alpha=igdm_alpha,
                         weight_averaging=weight_averaging)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "alpha": self.alpha, "scale": self.scale}

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        assert batch.teacher_probs is not None
        return batch.teacher_probs

    def _distillation_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert batch.teacher_probs is not None and x_adv is not None
        adv_logits = self.student_logits(x_adv)
        nat_logits = self.student_logits(batch.x)
        loss = rslad_loss_from_probs(adv_logits, nat_logits, batch.teacher_probs, alpha=self.alpha, scale=self.scale)
        return loss, adv_logits
