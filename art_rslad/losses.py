"""Pure torch loss functions, one per method, written from each method's paper and official code.

Notation: ``KL(p || S(x))`` is ``sum_k p_k (log p_k - log_softmax(S(x))_k)``; every function documents its
reduction, because the reduction acts as a learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def check_logits(name: str, logits: torch.Tensor, like: torch.Tensor | None = None) -> None:
    """A clear ValueError unless ``logits`` is (B, C), and of ``like``'s shape when given."""
    if logits.dim() != 2:
        raise ValueError(f"`{name}` must be logits of shape (batch, classes), got shape {tuple(logits.shape)}.")
    if like is not None and logits.shape != like.shape:
        raise ValueError(f"`{name}` must have shape {tuple(like.shape)} like the other logits, got "
                         f"{tuple(logits.shape)}.")


def check_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
    """A clear ValueError unless ``labels`` are B class indices in range for ``logits``."""
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0] or labels.dtype.is_floating_point:
        raise ValueError(f"`labels` must be {logits.shape[0]} integer class indices (shape ({logits.shape[0]},)), "
                         f"got shape {tuple(labels.shape)} of dtype {labels.dtype}; pass indices, not one-hot rows.")
    if len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"`labels` must lie in [0, {logits.shape[1] - 1}], got {labels.min()}..{labels.max()}.")


def check_positive(name: str, value: float) -> float:
    """``value`` if it is a finite number > 0, else a clear ValueError naming ``name``."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value}.")
    return value


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


def natural_loss(nat_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Natural training's loss: ``mean_i CE(S(x_i), y_i)``, a batch mean (KL for probability targets).

    :param nat_logits: Model logits on the natural inputs x, shape (B, C).
    :param target: Class indices (B,) or probabilities (B, C).
    """
    return label_loss_per_sample(nat_logits, target).mean()


def _natural_term(
    nat_logits: torch.Tensor | None, alpha: float, loss: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor | float:
    """``(1 - alpha) * loss(nat_logits)``; 0 when alpha == 1, where ``nat_logits`` may be None (the term is off)."""
    if alpha == 1.0:
        return 0.0
    if nat_logits is None:
        raise ValueError(f"`nat_logits` is required when alpha < 1 (got alpha={alpha}).")
    return (1.0 - alpha) * loss(nat_logits)


def _kl_mean_over_elements(target_probs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``sum_i KL(target_i || softmax(logits_i)) / (B * C)``: ``nn.KLDivLoss``'s default mean over all elements."""
    return kl_per_sample(target_probs, logits).sum() / logits.numel()


def ard_loss(
    adv_logits: torch.Tensor,
    nat_logits: torch.Tensor | None,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 30.0,
    alpha: float = 1.0,
) -> torch.Tensor:
    """ARD's outer loss (Goldblum et al., AAAI 2020), with the official code's reductions.

    ``alpha * tau^2 * KL(softmax(T(x)/tau) || softmax(S(x')/tau)) + (1 - alpha) * mean_i CE(S(x_i), y_i)``, where
    the KL is summed over all elements and divided by B*C (``nn.KLDivLoss``'s default mean, i.e. batch-mean KL / C).

    :param adv_logits: Student logits on the adversarial inputs x', shape (B, C).
    :param nat_logits: Student logits on the natural inputs x, shape (B, C); may be None when ``alpha == 1``.
    :param teacher_logits: Teacher logits on x (any per-row shift, e.g. log-probabilities); treated as a constant.
    :param labels: True class indices, shape (B,).
    :param tau: Distillation temperature, > 0.
    :param alpha: Weight of the distillation term, in [0, 1]; 1 turns the cross-entropy term off.
    """
    teacher_probs = F.softmax(teacher_logits.detach() / tau, dim=1)
    distillation = _kl_mean_over_elements(teacher_probs, adv_logits / tau)
    return alpha * tau**2 * distillation + _natural_term(nat_logits, alpha, lambda z: F.cross_entropy(z, labels))


def iad_weights(teacher_adv_logits: torch.Tensor, labels: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """IAD's introspection weights ``w_i = softmax(T(x'_i))[y_i] ** beta``, shape (B,), detached (constants).

    :param teacher_adv_logits: Teacher logits on the adversarial inputs x', shape (B, C).
    :param labels: True class indices, shape (B,).
    :param beta: Exponent, >= 0 (0.1 in the paper).
    """
    probs = F.softmax(teacher_adv_logits.detach(), dim=1)
    return probs.gather(1, labels[:, None]).squeeze(1) ** beta


def introspection_term(adv_logits: torch.Tensor, nat_logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """IAD's self-introspection ``mean_i (1 - w_i) * KL(softmax(S(x_i)) || S(x'_i))``, a batch mean.

    ``softmax(S(x))`` is not detached (the gradient flows through both sides); the weights are constants.

    :param adv_logits: Student logits on the adversarial inputs x', shape (B, C).
    :param nat_logits: Student logits on the natural inputs x, shape (B, C).
    :param weights: Introspection weights ``w_i`` in [0, 1] (:func:`iad_weights`), shape (B,).
    """
    own_probs = F.softmax(nat_logits, dim=1)
    return ((1.0 - weights.detach()) * kl_per_sample(own_probs, adv_logits)).mean()


def iad_loss(
    adv_logits: torch.Tensor,
    nat_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    tau: float = 1.0,
    alpha: float = 1.0,
) -> torch.Tensor:
    """IAD-I's outer loss (Zhu et al., ICLR 2022), batch means.

    ``alpha * tau^2 * mean_i KL(softmax(T(x_i)/tau) || softmax(S(x'_i)/tau))
    + alpha * mean_i (1 - w_i) * KL(softmax(S(x_i)) || S(x'_i)) + (1 - alpha) * mean_i CE(S(x_i), y_i)``.
    Only the self-introspection term carries ``1 - w_i``. The student's natural softmax there is NOT detached:
    the gradient flows through both of its sides, as in the official code (see docs/decisions.md, "IAD's
    self-introspection target").

    :param adv_logits: Student logits on the adversarial inputs x', shape (B, C).
    :param nat_logits: Student logits on the natural inputs x, shape (B, C).
    :param teacher_logits: Teacher logits on x (any per-row shift, e.g. log-probabilities); treated as a constant.
    :param labels: True class indices, shape (B,).
    :param weights: Introspection weights ``w_i`` (:func:`iad_weights`; all ones during the warm-up), shape (B,).
    :param tau: Distillation temperature, > 0.
    :param alpha: Weight of the two distillation terms, in [0, 1].
    """
    teacher_probs = F.softmax(teacher_logits.detach() / tau, dim=1)
    distillation = kl_per_sample(teacher_probs, adv_logits / tau).mean()
    cross_entropy = _natural_term(nat_logits, alpha, lambda z: F.cross_entropy(z, labels))
    return alpha * (tau**2 * distillation + introspection_term(adv_logits, nat_logits, weights)) + cross_entropy


def adaad_loss(
    adv_logits: torch.Tensor,
    nat_logits: torch.Tensor | None,
    teacher_adv_probs: torch.Tensor,
    teacher_nat_probs: torch.Tensor,
    alpha: float = 1.0,
    scale: float = 0.1,
) -> torch.Tensor:
    """AdaAD's outer loss (Huang et al., CVPR 2023), batch-mean KLs times ``scale``.

    ``scale * (alpha * mean_i KL(p_T(x'_i) || S(x'_i)) + (1 - alpha) * mean_i KL(p_T(x_i) || S(x_i)))``.
    ``scale=0.1`` reproduces the official CIFAR-10 reduction (a mean over B*C elements with 10 classes).

    :param adv_logits: Student logits on the adversarial inputs x', shape (B, C).
    :param nat_logits: Student logits on the natural inputs x, shape (B, C); may be None when ``alpha == 1``.
    :param teacher_adv_probs: Teacher probabilities on x', shape (B, C); treated as a constant.
    :param teacher_nat_probs: Teacher probabilities on x, shape (B, C); treated as a constant.
    :param alpha: Weight of the adversarial term, in [0, 1].
    :param scale: Multiplier of the whole loss.
    """
    adversarial = kl_per_sample(teacher_adv_probs.detach(), adv_logits).mean()
    natural = _natural_term(nat_logits, alpha, lambda z: kl_per_sample(teacher_nat_probs.detach(), z).mean())
    return scale * (alpha * adversarial + natural)


def igdm_loss(
    student_adv_logits: torch.Tensor,
    student_mirror_logits: torch.Tensor,
    teacher_adv_logits: torch.Tensor,
    teacher_mirror_logits: torch.Tensor,
) -> torch.Tensor:
    """IGDM's gradient-matching term (Lee, Cho and Kim, ICLR 2025), a batch mean.

    ``mean_i KL(softmax(T(x_i + d_i) - T(x_i - d_i)) || softmax(S(x_i + d_i) - S(x_i - d_i)))`` with
    ``d = x' - x``: the softmax of logit differences at temperature 1, which matches the input gradients along d.

    :param student_adv_logits: Student logits on x' = x + d, shape (B, C).
    :param student_mirror_logits: Student logits on the mirror input x - d (not clipped), shape (B, C).
    :param teacher_adv_logits: Teacher logits on x', shape (B, C); treated as a constant.
    :param teacher_mirror_logits: Teacher logits on x - d, shape (B, C); treated as a constant.
    """
    return igdm_per_sample(student_adv_logits, student_mirror_logits, teacher_adv_logits,
                           teacher_mirror_logits).mean()


def igdm_per_sample(
    student_adv_logits: torch.Tensor,
    student_mirror_logits: torch.Tensor,
    teacher_adv_logits: torch.Tensor,
    teacher_mirror_logits: torch.Tensor,
) -> torch.Tensor:
    """:func:`igdm_loss` before the batch mean: one KL per sample, shape (B,) (methods that weight samples)."""
    teacher_probs = F.softmax((teacher_adv_logits - teacher_mirror_logits).detach(), dim=1)
    return kl_per_sample(teacher_probs, student_adv_logits - student_mirror_logits)


def adaiad_loss(
    adv_logits: torch.Tensor,
    nat_logits: torch.Tensor | None,
    teacher_adv_logits: torch.Tensor,
    weights: torch.Tensor | None,
    temperature: float = 30.0,
) -> torch.Tensor:
    """AdaIAD's outer loss (AdaAD with IAD's introspection), batch means.

    ``T^2 * mean_i KL(softmax(T(x'_i)/T) || softmax(S(x'_i)/T)) + mean_i (1 - a_i) KL(softmax(S(x_i)) || S(x'_i))``
    with ``a_i = p_T(y_i | x'_i) ** beta`` (:func:`iad_weights`, constants) and ``softmax(S(x))`` not detached.

    :param adv_logits: Student logits on x', shape (B, C).
    :param nat_logits: Student logits on x, shape (B, C); None before introspection starts.
    :param teacher_adv_logits: Teacher logits on x', shape (B, C); treated as a constant.
    :param weights: Introspection weights ``a_i``, shape (B,); None (with ``nat_logits``) turns the term off.
    :param temperature: Distillation temperature T, > 0 (30).
    """
    teacher_probs = F.softmax(teacher_adv_logits.detach() / temperature, dim=1)
    distillation = temperature**2 * kl_per_sample(teacher_probs, adv_logits / temperature).mean()
    if weights is None or nat_logits is None:
        return distillation
    return distillation + introspection_term(adv_logits, nat_logits, weights)


def peeraid_peer_loss(
    peer_adv_logits: torch.Tensor,
    student_adv_logits: torch.Tensor,
    labels: torch.Tensor,
    kl_weight: float = 0.1,
    temperature: float = 1.0,
) -> torch.Tensor:
    """PeerAiD's loss of the peer (Jung et al., CVPR 2024), on the student's adversarial examples x'.

    ``mean_i CE(P(x'_i), y_i) + kl_weight * T^2 * sum_i KL(softmax(S(x'_i)/T) || softmax(P(x'_i)/T)) / (B * C)``.
    ``S(x')`` is not detached: as in the official code, this term also sends gradient into the student.

    :param peer_adv_logits: Peer logits on x', shape (B, C).
    :param student_adv_logits: Student logits on x', shape (B, C).
    :param labels: True class indices, shape (B,).
    :param kl_weight: Weight of the KL term, >= 0 (0.1).
    :param temperature: Temperature T of the KL term, > 0 (1).
    """
    student_probs = F.softmax(student_adv_logits / temperature, dim=1)
    kl = _kl_mean_over_elements(student_probs, peer_adv_logits / temperature)
    return F.cross_entropy(peer_adv_logits, labels) + kl_weight * temperature**2 * kl


def peeraid_student_loss(
    student_adv_logits: torch.Tensor,
    student_nat_logits: torch.Tensor,
    peer_adv_logits: torch.Tensor,
    temperature: float = 5.0,
) -> torch.Tensor:
    """PeerAiD's loss of the student (Jung et al., CVPR 2024), KLs averaged over B*C elements.

    ``T^2 * sum_i KL(softmax(P(x'_i)/T) || softmax(S(x'_i)/T)) / (B * C)
    + T^2 * sum_i KL(softmax(S(x_i)/T) || softmax(S(x'_i)/T)) / (B * C)``; ``P(x')`` is detached, ``S(x)`` not.

    :param student_adv_logits: Student logits on x', shape (B, C).
    :param student_nat_logits: Student logits on x, shape (B, C).
    :param peer_adv_logits: Peer logits on x', shape (B, C); treated as a constant here.
    :param temperature: Temperature T, > 0 (5).
    """
    scaled_adv = student_adv_logits / temperature
    peer_probs = F.softmax(peer_adv_logits.detach() / temperature, dim=1)
    own_probs = F.softmax(student_nat_logits / temperature, dim=1)
    return temperature**2 * (_kl_mean_over_elements(peer_probs, scaled_adv)
                             + _kl_mean_over_elements(own_probs, scaled_adv))
