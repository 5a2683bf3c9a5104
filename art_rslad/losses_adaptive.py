"""Pure torch losses and adaptive rules of MTARD, ABSLD and CIARD: two teachers or per-class temperatures.

MTARD (Zhao et al., ECCV 2022), ABSLD (Zhao et al., NeurIPS 2024) and CIARD (Lu et al., ICCV 2025), written from
each method's paper and official code. Every adaptive rule is a pure function ``(state, statistics) -> new state``
on a frozen dataclass, so a trainer can save the state in a checkpoint and a resume continues it exactly. Where the
official code does something its method does not intend and the numbers change, both behaviours are offered by a
named option whose default is the intended one (docs/decisions.md, "The methods since 2022: where we differ from
the official code").

All three use the KL form :func:`zkl`: ``p * (log(p + 1e-5) - log_softmax(s))`` averaged over all B*C elements
(about the batch-mean KL divided by C), the target p a constant.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from art_rslad.losses import check_labels, check_logits, check_positive

#: The constant inside the logarithm of the target in :func:`zkl` (the official code's).
ZKL_LOG_EPS = 1e-5


def zkl(student_logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """``mean over B*C of p * (log(p + 1e-5) - log_softmax(s))``: the KL of MTARD, ABSLD and CIARD's code.

    :param student_logits: Student logits, shape (B, C).
    :param target_probs: Target probabilities, shape (B, C); treated as a constant (detached).
    """
    check_logits("student_logits", student_logits)
    check_logits("target_probs", target_probs, like=student_logits)
    target = target_probs.detach()
    return (target * (torch.log(target + ZKL_LOG_EPS) - F.log_softmax(student_logits, dim=1))).mean()


# ----------------------------------------------------------------------------- MTARD (and CIARD's weights)
@dataclass(frozen=True)
class AdaptiveWeights:
    """MTARD's two loss weights and what their rule remembers (CIARD uses the same rule).

    :param weight_nat: Weight of the natural (clean-teacher) term; the adversarial term gets ``1 - weight_nat``.
    :param initial_adv: The adversarial term's value on the first batch (None until then; never reset).
    :param initial_nat: The natural term's value on the first batch.
    :param rate: Step of the rule (alpha, 0.025); the trainer multiplies it by the lr decay at each lr milestone.
    """

    weight_nat: float = 0.5
    initial_adv: float | None = None
    initial_nat: float | None = None
    rate: float = 0.025

    @property
    def weight_adv(self) -> float:
        return 1.0 - self.weight_nat


def update_adaptive_weights(state: AdaptiveWeights, adv_loss: float, nat_loss: float) -> AdaptiveWeights:
    """MTARD's weight rule, applied every batch before the loss is formed from the new weights.

    With ``r = loss / loss_on_the_first_batch`` for each term, ``w_nat <- w_nat - rate * (w_nat - r_nat / (r_adv +
    r_nat))`` and ``w_adv = 1 - w_nat``: the term that has fallen less, relative to its start, gains weight. The
    first call records the first batch's values (so both ratios are 1 and the weights stay as they are). CIARD's
    variant updates both weights by the same rule, clips them at 0 and renormalises: starting from weights that
    sum to 1 that is the same sequence, so it is this function too.

    :param state: The current weights and first-batch values.
    :param adv_loss: This batch's adversarial term (a Python float, no gradient), > 0.
    :param nat_loss: This batch's natural term, > 0.
    """
    for name, value in (("adv_loss", adv_loss), ("nat_loss", nat_loss)):
        check_positive(name, value)
    initial_adv = adv_loss if state.initial_adv is None else state.initial_adv
    initial_nat = nat_loss if state.initial_nat is None else state.initial_nat
    ratio_adv, ratio_nat = adv_loss / initial_adv, nat_loss / initial_nat
    weight_nat = state.weight_nat - state.rate * (state.weight_nat - ratio_nat / (ratio_adv + ratio_nat))
    return dataclasses.replace(state, weight_nat=weight_nat, initial_adv=initial_adv, initial_nat=initial_nat)


def mtard_terms(
    student_adv_logits: torch.Tensor,
    student_nat_logits: torch.Tensor,
    robust_teacher_adv_logits: torch.Tensor,
    clean_teacher_nat_logits: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MTARD's two terms ``(zkl(S(x'), softmax(T_r(x'))), zkl(S(x), softmax(T_c(x))))``, temperature 1.

    :param student_adv_logits: Student logits on x' (train mode), shape (B, C).
    :param student_nat_logits: Student logits on x (train mode), shape (B, C).
    :param robust_teacher_adv_logits: Robust teacher's logits on x', a constant.
    :param clean_teacher_nat_logits: Clean (naturally trained) teacher's logits on x, a constant.
    """
    adversarial = zkl(student_adv_logits, F.softmax(robust_teacher_adv_logits.detach(), dim=1))
    natural = zkl(student_nat_logits, F.softmax(clean_teacher_nat_logits.detach(), dim=1))
    return adversarial, natural


def mtard_loss(
    student_adv_logits: torch.Tensor,
    student_nat_logits: torch.Tensor,
    robust_teacher_adv_logits: torch.Tensor,
    clean_teacher_nat_logits: torch.Tensor,
    weights: AdaptiveWeights,
) -> tuple[torch.Tensor, AdaptiveWeights]:
    """MTARD's loss ``w_adv * L_adv + w_nat * L_nat`` (:func:`mtard_terms`) with the weights updated on this batch
    first (:func:`update_adaptive_weights`), and the new weights.

    | Paper link: https://www.ecva.net/papers/eccv_2022/papers_ECCV/html/4339_ECCV_2022_paper.php
    """
    adversarial, natural = mtard_terms(student_adv_logits, student_nat_logits, robust_teacher_adv_logits,
                                       clean_teacher_nat_logits)
    weights = update_adaptive_weights(weights, adversarial.item(), natural.item())
    return weights.weight_adv * adversarial + weights.weight_nat * natural, weights


# ----------------------------------------------------------------------------- ABSLD
@dataclass(frozen=True)
class ClassTemperatures:
    """ABSLD's per-class teacher temperatures and this epoch's per-class error sums.

    :param adv: Temperature of each class for the adversarial term's target, shape (C,).
    :param nat: Temperature of each class for the natural term's target, shape (C,).
    :param adv_errors: Sum over this epoch of the student's cross-entropy on x', per true class, shape (C,).
    :param nat_errors: The same on x, shape (C,).
    :param rate: Step of the end-of-epoch update (eta, 0.1); the trainer decays it at the lr milestones.
    """

    adv: torch.Tensor
    nat: torch.Tensor
    adv_errors: torch.Tensor
    nat_errors: torch.Tensor
    rate: float = 0.1

    @classmethod
    def initial(cls, nb_classes: int, rate: float = 0.1, device: torch.device | str | None = None
                ) -> ClassTemperatures:
        """Every temperature 1, the error sums 0."""
        if nb_classes < 2:
            raise ValueError(f"`nb_classes` must be at least 2, got {nb_classes}.")
        ones, zeros = torch.ones(nb_classes, device=device), torch.zeros(nb_classes, device=device)
        return cls(ones, ones.clone(), zeros, zeros.clone(), check_positive("rate", rate))


#: How ABSLD's two targets are tempered: "separate" (the method: each its own temperature) or "product" (the
#: official code, whose in-place divisions on one shared tensor divide both targets by tau_adv * tau_nat).
Tempering = Literal["separate", "product"]


def absld_targets(
    teacher_nat_logits: torch.Tensor, labels: torch.Tensor, temperatures: ClassTemperatures,
    tempering: Tempering = "separate",
) -> tuple[torch.Tensor, torch.Tensor]:
    """ABSLD's soft labels ``(softmax(T(x_i) / tau_adv[y_i]), softmax(T(x_i) / tau_nat[y_i]))``, constants.

    The first is also the target of ABSLD's attack (RSLAD's attack with this target). With ``tempering="product"`` both
    are ``softmax(T(x_i) / (tau_adv[y_i] * tau_nat[y_i]))``, as the official code computes them.

    :param teacher_nat_logits: Teacher logits on the natural inputs x (eval mode), shape (B, C).
    :param labels: True class indices, shape (B,).
    :param temperatures: The current :class:`ClassTemperatures`.
    :param tempering: "separate" (default) or "product" (see :data:`Tempering`).
    """
    check_logits("teacher_nat_logits", teacher_nat_logits)
    check_labels(labels, teacher_nat_logits)
    if tempering not in ("separate", "product"):
        raise ValueError(f"`tempering` must be 'separate' or 'product', got {tempering!r}.")
    logits = teacher_nat_logits.detach()
    tau_adv, tau_nat = temperatures.adv[labels][:, None], temperatures.nat[labels][:, None]
    if tempering == "product":
        shared = F.softmax(logits / (tau_adv * tau_nat), dim=1)
        return shared, shared
    return F.softmax(logits / tau_adv, dim=1), F.softmax(logits / tau_nat, dim=1)


def absld_loss(
    student_adv_logits: torch.Tensor, student_nat_logits: torch.Tensor, adv_target_probs: torch.Tensor,
    nat_target_probs: torch.Tensor, alpha: float = 5 / 6,
) -> torch.Tensor:
    """ABSLD's loss ``alpha * zkl(S(x'), adv target) + (1 - alpha) * zkl(S(x), nat target)`` (:func:`absld_targets`).

    | Paper link: https://arxiv.org/abs/2312.05508
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}.")
    return alpha * zkl(student_adv_logits, adv_target_probs) + (1 - alpha) * zkl(student_nat_logits,
                                                                                 nat_target_probs)


def accumulate_class_errors(
    state: ClassTemperatures, student_adv_logits: torch.Tensor, student_nat_logits: torch.Tensor,
    labels: torch.Tensor,
) -> ClassTemperatures:
    """Add this batch's per-class sums of ``CE(S(x'_i), y_i)`` and ``CE(S(x_i), y_i)`` (detached) to the state."""
    check_logits("student_adv_logits", student_adv_logits)
    check_logits("student_nat_logits", student_nat_logits, like=student_adv_logits)
    check_labels(labels, student_adv_logits)
    adv = F.cross_entropy(student_adv_logits.detach(), labels, reduction="none")
    nat = F.cross_entropy(student_nat_logits.detach(), labels, reduction="none")
    return dataclasses.replace(state, adv_errors=state.adv_errors.index_add(0, labels, adv.to(state.adv.dtype)),
                               nat_errors=state.nat_errors.index_add(0, labels, nat.to(state.nat.dtype)))


def _step_temperatures(temperatures: torch.Tensor, errors: torch.Tensor, rate: float) -> torch.Tensor:
    gap = errors - errors.mean()
    largest = gap.abs().max()
    if largest == 0:  # every class equally hard: nothing to correct (the official code divides by zero here)
        return temperatures
    return (temperatures - rate * gap / largest).clamp(0.5, 5.0)


def update_class_temperatures(state: ClassTemperatures) -> ClassTemperatures:
    """ABSLD's end-of-epoch rule, then the error sums reset for the next epoch.

    For each of adv and nat: ``g = E - mean_c(E)``, ``tau <- clamp(tau - rate * g / max|g|, 0.5, 5)``: a class with
    more error than average gets a lower temperature (sharper soft labels). With ``max|g| = 0`` nothing changes.
    """
    return dataclasses.replace(
        state, adv=_step_temperatures(state.adv, state.adv_errors, state.rate),
        nat=_step_temperatures(state.nat, state.nat_errors, state.rate),
        adv_errors=torch.zeros_like(state.adv_errors), nat_errors=torch.zeros_like(state.nat_errors))



# ----------------------------------------------------------------------------- CIARD
def ciard_push_loss(
    student_adv_logits: torch.Tensor, clean_teacher_adv_logits: torch.Tensor, labels: torch.Tensor,
    student_temperature: float = 5.0,
) -> torch.Tensor:
    """CIARD's push-away term: ``zkl(S(x'_M) / 5, softmax(T_c(x'_M)))`` over the rows M the clean teacher gets wrong
    on x' (its mean over ``|M| * C`` elements); 0 when M is empty. The trainer subtracts it (:func:`push_weight`).

    :param student_adv_logits: Student logits on x', shape (B, C).
    :param clean_teacher_adv_logits: Clean teacher's logits on x', shape (B, C); a constant.
    :param labels: True class indices, shape (B,).
    :param student_temperature: Temperature of the student's side, > 0 (5).
    """
    check_logits("clean_teacher_adv_logits", clean_teacher_adv_logits, like=student_adv_logits)
    check_labels(labels, student_adv_logits)
    check_positive("student_temperature", student_temperature)
    wrong = clean_teacher_adv_logits.argmax(dim=1) != labels
    if not bool(wrong.any()):
        return student_adv_logits.new_zeros(())
    target = F.softmax(clean_teacher_adv_logits[wrong].detach(), dim=1)
    return zkl(student_adv_logits[wrong] / student_temperature, target)


def push_weight(adv_loss: float, nat_loss: float, push_loss: float) -> float:
    """CIARD's magnitude match ``10 ** (min(floor log10 L1, floor log10 L2) - floor log10 L3)`` (a constant).

    A zero value counts as 1e-7, as in the official code.
    """
    def magnitude(value: float) -> int:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"CIARD's loss values must be finite and >= 0, got {value}.")
        return math.floor(math.log10(value if value > 0 else 1e-7))

    return 10.0 ** (min(magnitude(adv_loss), magnitude(nat_loss)) - magnitude(push_loss))


@dataclass(frozen=True)
class DualTemperatures:
    """CIARD's two teacher temperatures (robust, clean), in [1, 10], and their step (eta, 0.001)."""

    robust: float = 1.0
    clean: float = 1.0
    rate: float = 0.001


def tempered_neg_entropy(teacher_logits: torch.Tensor, temperature: float) -> float:
    """``mean over B*C of p * log(p + 1e-5)`` with ``p = softmax(logits / temperature)``: CIARD's (negative)
    entropy statistic of one teacher's soft labels."""
    check_logits("teacher_logits", teacher_logits)
    probs = F.softmax(teacher_logits.detach() / check_positive("temperature", temperature), dim=1)
    return float((probs * torch.log(probs + ZKL_LOG_EPS)).mean())


def _sign(value: float) -> float:
    return float((value > 0) - (value < 0))


def update_dual_temperatures(state: DualTemperatures, robust_stat: float, clean_stat: float) -> DualTemperatures:
    """CIARD's temperature rule, each batch after the loss: ``tau_r <- tau_r - eta * sign(H_r / H_c - 1)`` and
    ``tau_c <- tau_c - eta * sign(H_c / H_r - 1)``, both clamped to [1, 10].

    ``H`` is :func:`tempered_neg_entropy` of each teacher's soft labels (negative numbers): the teacher whose labels
    are sharper (H nearer 0) is softened, the other sharpened.
    """
    if robust_stat == 0 or clean_stat == 0:
        raise ValueError(f"CIARD's entropy statistics must be non-zero, got {robust_stat} and {clean_stat}.")
    robust = state.robust - state.rate * _sign(robust_stat / clean_stat - 1)
    clean = state.clean - state.rate * _sign(clean_stat / robust_stat - 1)
    return dataclasses.replace(state, robust=min(max(robust, 1.0), 10.0), clean=min(max(clean, 1.0), 10.0))


def ciard_terms(
    student_adv_logits: torch.Tensor, student_nat_logits: torch.Tensor, robust_teacher_adv_logits: torch.Tensor,
    clean_teacher_nat_logits: torch.Tensor, temperatures: DualTemperatures,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIARD's ``(zkl(S(x'), softmax(T_r(x') / tau_r)), zkl(S(x), softmax(T_c(x) / tau_c)))``; teachers constant.

    | Paper link: https://arxiv.org/abs/2509.12633
    """
    adversarial = zkl(student_adv_logits, F.softmax(robust_teacher_adv_logits.detach() / temperatures.robust, dim=1))
    natural = zkl(student_nat_logits, F.softmax(clean_teacher_nat_logits.detach() / temperatures.clean, dim=1))
    return adversarial, natural
