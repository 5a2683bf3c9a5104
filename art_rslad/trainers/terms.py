"""Loss terms that attach to any method's training loss: IGDM's input-gradient matching.

A term is switched on by its trainer option (``igdm_alpha > 0``) on any method that has what it needs (a frozen
teacher); the loop adds it to the method's own loss, so no method needs a subclass per combination.

IGDM (Lee, Cho and Kim, ICLR 2025) matches the student's input gradient to the teacher's along the method's own
perturbation ``d = x' - x``, through the logit differences on x + d and on the mirror input x - d:
``igdm_alpha * (e / E) * mean_i KL(softmax(T(x'_i) - T(x_i - d_i)) || softmax(S(x'_i) - S(x_i - d_i)))`` with
``e`` the 1-based epoch and ``E`` the run's epochs (a linear ramp to ``igdm_alpha``); the mirror input ``x - d`` is
not clipped; the teacher runs under no_grad, the student in train mode. The student's logits on x' are those the
method's loss returns, so IGDM costs two teacher forwards and one student forward. Off by default (not one extra
forward pass).

| Paper link: https://arxiv.org/abs/2312.03286
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from art_rslad.losses import igdm_loss
from art_rslad.trainers.recipes import TWO_HUNDRED_EPOCHS, Recipe

Logits = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class IGDMTerm:
    """IGDM's term at final weight ``alpha`` (> 0)."""

    alpha: float

    #: The trainer option that switches the term on, and the network it needs.
    option = "igdm_alpha"
    needs = "teacher"

    def weight(self, epoch: int, nb_epochs: int) -> float:
        """``alpha * e / E`` at 0-based ``epoch`` of ``nb_epochs``."""
        return self.alpha * (epoch + 1) / nb_epochs

    def loss(self, x: torch.Tensor, x_adv: torch.Tensor, student_adv_logits: torch.Tensor, student: Logits,
             teacher: Logits) -> torch.Tensor:
        """IGDM's loss on ``x`` and ``x' = x_adv`` (:func:`~art_rslad.losses.igdm_loss`), before its weight."""
        x_mirror = 2.0 * x - x_adv  # x - (x' - x), deliberately not clipped
        return igdm_loss(student_adv_logits, student(x_mirror), teacher(x_adv), teacher(x_mirror))

    def hyperparameters(self) -> dict[str, Any]:
        return {self.option: self.alpha}


#: IGDM's weight on CIFAR-100, where its paper sets it above CIFAR-10's 1.
IGDM_CIFAR100 = Recipe(igdm_alpha=10.0, note="IGDM's weight 10 (its paper: 10-20)")
#: IGDM's official recipe for a method +IGDM that does not keep the method's own schedule (its code trains ARD, IAD,
#: AdaAD and AdaIAD +IGDM so); a method's record names it in ``variant_recipe``.
IGDM_RECIPE = TWO_HUNDRED_EPOCHS.plus("weight decay 2e-4", weight_decay=2e-4).on("cifar100", IGDM_CIFAR100)


def make_terms(owner: str, has_teacher: bool, igdm_alpha: float) -> tuple[IGDMTerm, ...]:
    """The terms the options switch on, each checked against what it needs (a ValueError names the option)."""
    if not igdm_alpha >= 0:
        raise ValueError(f"`igdm_alpha` must be >= 0 (0 turns IGDM off), got {igdm_alpha}.")
    if not igdm_alpha:
        return ()
    if not has_teacher:
        raise ValueError(f"`igdm_alpha` adds IGDM's term, which needs a teacher; {owner} has none here. Drop it.")
    return (IGDMTerm(float(igdm_alpha)),)


__all__ = ["IGDM_CIFAR100", "IGDM_RECIPE", "IGDMTerm", "make_terms"]
