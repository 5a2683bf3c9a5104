"""Pure torch loss functions, one per method, written from ``shared/methods.md``.

Notation: ``KL(p || S(x))`` is ``sum_k p_k (log p_k - log_softmax(S(x))_k)``; every function documents its
reduction, because the reduction acts as a learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_per_sample(target_probs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``KL(target_probs || softmax(logits))`` summed over classes, one value per sample (shape (B,)).

    Terms with a zero target probability contribute 0 (``0 log 0 = 0``).
    """
    return (torch.xlogy(target_probs, target_probs) - target_probs * F.log_softmax(logits, dim=1)).sum(dim=1)


def rslad_loss(
    adv_logits: torch.Tensor,
    nat_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    alpha: float = 5 / 6,
    scale: float = 0.1,
) -> torch.Tensor:
    """RSLAD's outer loss (Zi et al., ICCV 2021).

    ``scale * (alpha * KL(p_T || S(x')) + (1 - alpha) * KL(p_T || S(x)))`` with ``p_T = softmax(teacher_logits)``,
    each KL summed over classes and averaged over the batch. ``scale=0.1`` reproduces the official code's mean
    over B*C elements on CIFAR-10 (and its x10 on CIFAR-100); scale and learning rate trade against each other.

    :param adv_logits: Student logits on the adversarial inputs x', shape (B, C).
    :param nat_logits: Student logits on the natural inputs x, shape (B, C).
    :param teacher_logits: Teacher logits on the natural inputs x, shape (B, C); treated as a constant.
    :param alpha: Weight of the adversarial term, in [0, 1].
    :param scale: Multiplier of the whole loss.
    """
    teacher_probs = F.softmax(teacher_logits.detach(), dim=1)
    return rslad_loss_from_probs(adv_logits, nat_logits, teacher_probs, alpha=alpha, scale=scale)


def rslad_loss_from_probs(
    adv_logits: torch.Tensor,
    nat_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    alpha: float = 5 / 6,
    scale: float = 0.1,
) -> torch.Tensor:
    """:func:`rslad_loss` with the teacher's probabilities given instead of its logits."""
    adversarial = kl_per_sample(teacher_probs, adv_logits).mean()
    natural = kl_per_sample(teacher_probs, nat_logits).mean()
    return scale * (alpha * adversarial + (1.0 - alpha) * natural)


def cw_margin_loss(logits: torch.Tensor, labels: torch.Tensor, kappa: float = 50.0) -> torch.Tensor:
    """The CW_inf margin ``max(z_y - max_{j != y} z_j + kappa, 0)``, one value per sample (shape (B,)).

    The attacker minimises it (Carlini & Wagner; the fixed-budget PGD form of the RSLAD and TRADES papers,
    kappa = 50). With kappa = 50 the clamp rarely binds, so PGD in effect pushes the true logit below the
    best other logit.

    :param logits: Model outputs (logits, not probabilities), shape (B, C).
    :param labels: True class indices, shape (B,).
    :param kappa: Confidence margin.
    """
    true_logit = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return (true_logit - others.max(dim=1).values + kappa).clamp(min=0.0)


def label_loss_per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against class indices (shape (B,)) or KL against probabilities (shape (B, C)), shape (B,).

    The probability form is the soft-label replacement of the hard label: ``KL(target || softmax(logits))``, which
    differs from the soft cross-entropy only by the target's entropy (a constant), so the gradients agree.

    :param logits: Model outputs, shape (B, C).
    :param target: Class indices (B,) or probabilities (B, C), treated as given (not detached here).
    """
    if target.dim() == 1:
        return F.cross_entropy(logits, target, reduction="none")
    return kl_per_sample(target, logits)


def sat_loss(adv_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SAT's outer loss (Madry et al., ICLR 2018): ``mean_i CE(S(x'_i), y_i)``, a batch mean.

    With probabilities as ``target`` (the teacher's robust soft labels) it is ``mean_i KL(p_i || S(x'_i))``.

    :param adv_logits: Model logits on the adversarial inputs x', shape (B, C).
    :param target: Class indices (B,) or probabilities (B, C).
    """
    return label_loss_per_sample(adv_logits, target).mean()


def trades_loss(
    nat_logits: torch.Tensor, adv_logits: torch.Tensor, target: torch.Tensor, beta: float = 6.0
) -> torch.Tensor:
    """TRADES' outer loss (Zhang et al., ICML 2019), batch means.

    ``mean_i CE(f(x_i), y_i) + beta * mean_i KL(softmax(f(x_i)) || f(x'_i))``; the natural softmax is not
    detached, so the KL term also moves the natural prediction, as in the official code. With probabilities as
    ``target`` the first term is ``mean_i KL(p_i || f(x_i))``.

    :param nat_logits: Model logits on the natural inputs x, shape (B, C).
    :param adv_logits: Model logits on the adversarial inputs x', shape (B, C).
    :param target: Class indices (B,) or probabilities (B, C).
    :param beta: Weight of the robustness (KL) term, >= 0.
    """
    natural = label_loss_per_sample(nat_logits, target).mean()
    robust = kl_per_sample(F.softmax(nat_logits, dim=1), adv_logits).mean()
    return natural + beta * robust
