"""Pure torch losses of DGAD and SAAD: distillation with per-sample masks or weights.

DGAD (Park and Min, ECCV 2024) and SAAD (Lee and Chung, TMLR 2026), written from each method's paper and official
code. DGAD's attack is AdaAD's; SAAD's gradient-matching term is IGDM's (:func:`art_rslad.losses.igdm_per_sample`).
``KL_i`` is :func:`art_rslad.losses.kl_per_sample`, one KL per sample summed over classes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from art_rslad.losses import check_labels, check_logits, check_positive, igdm_per_sample, kl_per_sample

#: The constant inside the logarithm of SAAD's entropy (the official code's).
ENTROPY_LOG_EPS = 1e-12


# ----------------------------------------------------------------------------- DGAD
def dgad_partition(teacher_nat_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """DGAD's partition: True for the samples the teacher misclassifies on x (learnt from x), shape (B,)."""
    check_logits("teacher_nat_logits", teacher_nat_logits)
    check_labels(labels, teacher_nat_logits)
    return teacher_nat_logits.argmax(dim=1) != labels


def _swap_columns(logits: torch.Tensor, labels: torch.Tensor, other: torch.Tensor, rows: torch.Tensor
                  ) -> torch.Tensor:
    """A copy of ``logits`` with columns ``labels[i]`` and ``other[i]`` exchanged in the rows where ``rows``."""
    swapped = logits.detach().clone()
    index = torch.arange(len(labels), device=logits.device)[rows]
    at_label, at_other = swapped[index, labels[rows]].clone(), swapped[index, other[rows]].clone()
    swapped[index, labels[rows]], swapped[index, other[rows]] = at_other, at_label
    return swapped


def dgad_swap_labels(
    teacher_nat_logits: torch.Tensor, teacher_adv_logits: torch.Tensor, labels: torch.Tensor,
    misclassified: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DGAD's error-corrective label swapping, on copies of the teacher's logits (constants).

    On x, in the misclassified rows, the true class's logit and the top logit change places. On x', in every row
    where the true class is below the best other class, those two change places. The teacher's soft labels so
    always rank the true class first.

    :param teacher_nat_logits: Teacher logits on x, shape (B, C).
    :param teacher_adv_logits: Teacher logits on x', shape (B, C).
    :param labels: True class indices, shape (B,).
    :param misclassified: :func:`dgad_partition`'s mask, shape (B,).
    """
    check_logits("teacher_adv_logits", teacher_adv_logits, like=teacher_nat_logits)
    check_labels(labels, teacher_nat_logits)
    if misclassified.shape != labels.shape or misclassified.dtype != torch.bool:
        raise ValueError(f"`misclassified` must be a boolean mask of shape {tuple(labels.shape)} "
                         f"(dgad_partition's), got {misclassified.dtype} of shape {tuple(misclassified.shape)}.")
    nat = _swap_columns(teacher_nat_logits, labels, teacher_nat_logits.argmax(dim=1), misclassified)
    without_label = teacher_adv_logits.detach().scatter(1, labels[:, None], float("-inf"))
    best_other = without_label.argmax(dim=1)
    below = teacher_adv_logits.gather(1, labels[:, None]).squeeze(1) < without_label.max(dim=1).values
    return nat, _swap_columns(teacher_adv_logits, labels, best_other, below)


def dgad_loss(
    student_nat_logits: torch.Tensor, student_adv_logits: torch.Tensor, teacher_nat_logits: torch.Tensor,
    teacher_adv_logits: torch.Tensor, misclassified: torch.Tensor, beta: float = 1.0,
    fixed_batch_size: int | None = None,
) -> torch.Tensor:
    """DGAD's loss: ``(1/B) sum_i [KL_i(S(x_i), t_i) if misclassified_i else KL_i(S(x'_i), t'_i)] + beta * L_pcr``.

    ``t`` and ``t'`` are the swapped teacher logits (:func:`dgad_swap_labels`); ``L_pcr`` is the mean over B*C of
    ``(softmax(S(x')) - softmax(S(x)))^2``, with the gradient through both sides. This is the official code's
    ``(N/B) L_clean + ((B - N)/B) L_adv`` written without its divisions, so a batch the teacher gets all wrong (or
    all right) is well defined. ``fixed_batch_size`` divides by that number instead of B, as the official code
    does with its constant batch size (which down-weights a short last batch).

    | Paper link: https://arxiv.org/abs/2409.01627
    """
    check_logits("student_nat_logits", student_nat_logits)
    for name, tensor in (("student_adv_logits", student_adv_logits), ("teacher_nat_logits", teacher_nat_logits),
                         ("teacher_adv_logits", teacher_adv_logits)):
        check_logits(name, tensor, like=student_nat_logits)
    if misclassified.shape != student_nat_logits.shape[:1] or misclassified.dtype != torch.bool:
        raise ValueError("`misclassified` must be a boolean mask with one entry per sample (dgad_partition's).")
    if fixed_batch_size is not None and fixed_batch_size < len(misclassified):
        raise ValueError(f"`fixed_batch_size` must be None or at least the batch size {len(misclassified)}, got "
                         f"{fixed_batch_size}.")
    clean = kl_per_sample(F.softmax(teacher_nat_logits.detach(), dim=1), student_nat_logits)
    adversarial = kl_per_sample(F.softmax(teacher_adv_logits.detach(), dim=1), student_adv_logits)
    divisor = len(misclassified) if fixed_batch_size is None else fixed_batch_size
    distillation = torch.where(misclassified, clean, adversarial).sum() / divisor
    consistency = F.mse_loss(F.softmax(student_adv_logits, dim=1), F.softmax(student_nat_logits, dim=1))
    return distillation + beta * consistency



# ----------------------------------------------------------------------------- SAAD
def entropy(probs: torch.Tensor, order: float = 1.0) -> torch.Tensor:
    """Renyi entropy of order ``order`` of each row of ``probs`` in nats, shape (B,); order 1 is Shannon's,
    ``-sum p log(p + 1e-12)``, else ``log(sum p^order) / (1 - order)``."""
    check_logits("probs", probs)
    if order < 0:
        raise ValueError(f"`order` must be >= 0, got {order}.")
    if order == 1.0:
        return -(probs * torch.log(probs + ENTROPY_LOG_EPS)).sum(dim=1)
    return torch.log((probs**order).sum(dim=1)) / (1.0 - order)


def sample_weights(entropies: torch.Tensor, scale: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """SAAD's sample weights from the teacher's entropies ``H`` (shape (B,)) on the student's adversarial examples.

    ``w_i = max(0, scale * (H_i - min_j H_j))`` (the batch's most confident sample gets 0) and
    ``w_hat_i = w_i / (max_j w_j + 1e-8)`` in [0, 1]. Returns ``(w, w_hat)``, detached.
    """
    if entropies.dim() != 1:
        raise ValueError(f"`entropies` must have shape (batch,), got {tuple(entropies.shape)}.")
    check_positive("scale", scale)
    entropies = entropies.detach()
    weights = (scale * (entropies - entropies.min())).clamp(min=0.0)
    return weights, weights / (weights.max() + 1e-8)


def saad_weights(teacher_adv_logits: torch.Tensor, scale: float = 5.0, order: float = 1.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_weights` of the :func:`entropy` (of ``order``) of ``softmax(T(x'))``, the teacher on x'."""
    return sample_weights(entropy(F.softmax(teacher_adv_logits.detach(), dim=1), order), scale)


def saad_combine(
    adv_kl: torch.Tensor, igdm_kl: torch.Tensor, nat_kl: torch.Tensor | None,
    weights: tuple[torch.Tensor, torch.Tensor], igdm_weight: float, beta: float = 0.0,
) -> torch.Tensor:
    """``mean_i [w_i (adv_kl_i + igdm_weight * igdm_kl_i) + beta (1 - w_hat_i) nat_kl_i]`` from per-sample terms."""
    weight, normalised = (w.detach() for w in weights)
    if weight.shape != adv_kl.shape or igdm_kl.shape != adv_kl.shape or adv_kl.dim() != 1:
        raise ValueError(f"SAAD's per-sample terms and `weights` must all have shape (batch,), got "
                         f"{tuple(adv_kl.shape)}, {tuple(igdm_kl.shape)} and {tuple(weight.shape)}.")
    per_sample = weight * (adv_kl + igdm_weight * igdm_kl)
    if beta:
        if nat_kl is None:
            raise ValueError(f"SAAD with beta={beta} needs the natural term (`student_nat_logits` and "
                             "`teacher_nat_logits`).")
        per_sample = per_sample + beta * (1.0 - normalised) * nat_kl
    return per_sample.mean()


def saad_loss(
    student_adv_logits: torch.Tensor, student_mirror_logits: torch.Tensor, student_nat_logits: torch.Tensor | None,
    teacher_adv_logits: torch.Tensor, teacher_mirror_logits: torch.Tensor, teacher_nat_logits: torch.Tensor | None,
    weights: tuple[torch.Tensor, torch.Tensor], igdm_weight: float, beta: float = 0.0,
) -> torch.Tensor:
    """SAAD's loss ``mean_i [w_i (KL_i(S(x'), T(x')) + a (e/E) IGDM_i) + beta (1 - w_hat_i) KL_i(S(x), T(x))]``.

    ``IGDM_i`` is :func:`art_rslad.losses.igdm_per_sample` on x' = x + d and the mirror x - d (not clipped);
    ``igdm_weight`` is ``a * e / E``; ``weights`` is :func:`saad_weights`'s pair. With ``beta == 0`` the natural
    logits may be None (the official code computes S(x) anyway; it does not enter the loss).

    | Paper link: https://arxiv.org/abs/2512.10275
    """
    check_logits("teacher_adv_logits", teacher_adv_logits, like=student_adv_logits)
    check_logits("student_mirror_logits", student_mirror_logits, like=student_adv_logits)
    adversarial = kl_per_sample(F.softmax(teacher_adv_logits.detach(), dim=1), student_adv_logits)
    matching = igdm_per_sample(student_adv_logits, student_mirror_logits, teacher_adv_logits, teacher_mirror_logits)
    natural = None
    if beta and student_nat_logits is not None and teacher_nat_logits is not None:
        natural = kl_per_sample(F.softmax(teacher_nat_logits.detach(), dim=1), student_nat_logits)
    return saad_combine(adversarial, matching, natural, weights, igdm_weight, beta)


def teacher_label_gradient(teacher: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, labels: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits on x (detached) and ``g_i = d T(x)_{i, y_i} / d x_i`` (one backward), for SAAD's attack.

    :param teacher: The teacher's forward (in eval mode; its parameter gradients are not computed).
    :param x: Natural inputs, shape (B, ...).
    :param labels: True class indices, shape (B,).
    """
    inputs = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = teacher(inputs)
        check_labels(labels, logits)
        (gradient,) = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), [inputs])
    return logits.detach(), gradient


def linearised_teacher_logits(
    x_adv: torch.Tensor, x: torch.Tensor, teacher_nat_logits: torch.Tensor, teacher_gradient: torch.Tensor,
    labels: torch.Tensor, step: float = 1.0,
) -> torch.Tensor:
    """SAAD's guess of the teacher on x': ``z~ = T(x)`` except ``z~_{i, y_i} = T(x)_{i, y_i} + step * <g_i, x'_i -
    x_i>`` (``g`` from :func:`teacher_label_gradient`), with no teacher forward; differentiable in ``x_adv``."""
    check_labels(labels, teacher_nat_logits)
    if teacher_gradient.shape != x.shape or x_adv.shape != x.shape:
        raise ValueError(f"`x_adv` and `teacher_gradient` must have the inputs' shape {tuple(x.shape)}, got "
                         f"{tuple(x_adv.shape)} and {tuple(teacher_gradient.shape)}.")
    correction = (teacher_gradient * (x_adv - x)).flatten(1).sum(dim=1)
    shift = F.one_hot(labels, teacher_nat_logits.shape[1]).to(correction.dtype) * (step * correction)[:, None]
    return teacher_nat_logits.detach() + shift


def saad_attack_loss(
    student_adv_logits: torch.Tensor, x_adv: torch.Tensor, x: torch.Tensor, teacher_nat_logits: torch.Tensor,
    teacher_gradient: torch.Tensor, labels: torch.Tensor, step: float = 1.0,
) -> torch.Tensor:
    """SAAD's attack objective ``sum_i KL(softmax(z~_i) || softmax(S(x'_i)))`` against the linearised teacher
    (:func:`linearised_teacher_logits`). The gradient flows through ``z~`` (it depends on x') as in the official
    code.
    """
    check_logits("teacher_nat_logits", teacher_nat_logits, like=student_adv_logits)
    check_labels(labels, student_adv_logits)
    target = linearised_teacher_logits(x_adv, x, teacher_nat_logits, teacher_gradient, labels, step)
    return kl_per_sample(F.softmax(target, dim=1), student_adv_logits).sum()
