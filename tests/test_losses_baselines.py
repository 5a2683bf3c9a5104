"""The baselines' losses against their papers' formulas, computed by hand on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from art_rslad.losses import (
    adaad_loss,
    ard_loss,
    iad_loss,
    iad_weights,
    label_loss_per_sample,
    natural_loss,
    sat_loss,
    trades_loss,
)

ADV = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]
NAT = [[1.0, 1.0, 0.0], [-2.0, 0.5, 0.5]]
TEACHER = [[3.0, 0.0, 0.0], [0.2, 0.1, 1.5]]
TEACHER_ADV = [[0.5, 1.5, 0.0], [0.0, 0.0, 2.0]]
LABELS = [0, 2]
B, C = 2, 3


def softmax(row: list[float], tau: float = 1.0) -> list[float]:
    exps = [math.exp(z / tau) for z in row]
    return [e / sum(exps) for e in exps]


def kl(p: list[float], logits: list[float], tau: float = 1.0) -> float:
    """sum_k p_k (log p_k - log softmax(logits / tau)_k) for one sample."""
    q = softmax(logits, tau)
    return sum(p_k * (math.log(p_k) - math.log(q_k)) for p_k, q_k in zip(p, q, strict=True))


def ce(logits: list[float], label: int) -> float:
    return -math.log(softmax(logits)[label])


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


LABELS_T = torch.tensor(LABELS)


def test_label_loss_is_cross_entropy_for_indices_and_kl_for_probabilities() -> None:
    got = label_loss_per_sample(t(ADV), LABELS_T)
    assert got.tolist() == pytest.approx([ce(ADV[i], LABELS[i]) for i in range(B)])
    probs = [softmax(row) for row in TEACHER]
    got = label_loss_per_sample(t(ADV), t(probs))
    assert got.tolist() == pytest.approx([kl(probs[i], ADV[i]) for i in range(B)])


def test_sat_and_natural_losses_are_batch_mean_cross_entropy() -> None:
    assert sat_loss(t(ADV), LABELS_T).item() == pytest.approx(mean([ce(ADV[i], LABELS[i]) for i in range(B)]))
    assert natural_loss(t(NAT), LABELS_T).item() == pytest.approx(mean([ce(NAT[i], LABELS[i]) for i in range(B)]))
    probs = [softmax(row) for row in TEACHER]
    assert sat_loss(t(ADV), t(probs)).item() == pytest.approx(mean([kl(probs[i], ADV[i]) for i in range(B)]))


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_trades_loss_matches_formula(beta: float) -> None:
    expected = mean([ce(NAT[i], LABELS[i]) for i in range(B)]) + beta * mean(
        [kl(softmax(NAT[i]), ADV[i]) for i in range(B)])
    got = trades_loss(t(NAT), t(ADV), LABELS_T, beta=beta)
    assert got.shape == ()
    assert got.item() == pytest.approx(expected)


def test_trades_soft_labels_replace_the_natural_cross_entropy() -> None:
    probs = [softmax(row) for row in TEACHER]
    expected = mean([kl(probs[i], NAT[i]) for i in range(B)]) + 6.0 * mean(
        [kl(softmax(NAT[i]), ADV[i]) for i in range(B)])
    assert trades_loss(t(NAT), t(ADV), t(probs)).item() == pytest.approx(expected)


def test_trades_natural_softmax_is_not_detached() -> None:
    grads = []
    for beta in (0.0, 6.0):
        nat = t(NAT).requires_grad_(True)
        adv = t(ADV)
        trades_loss(nat, adv, LABELS_T, beta=beta).backward()
        grads.append(nat.grad)
    assert not torch.allclose(grads[0], grads[1]), "the KL term must move the natural logits too"


@pytest.mark.parametrize("tau", [1.0, 30.0])
@pytest.mark.parametrize("alpha", [0.25, 1.0])
def test_ard_loss_matches_formula_with_mean_over_elements(tau: float, alpha: float) -> None:
    kl_sum = sum(kl(softmax(TEACHER[i], tau), ADV[i], tau) for i in range(B))
    expected = alpha * tau**2 * kl_sum / (B * C) + (1 - alpha) * mean([ce(NAT[i], LABELS[i]) for i in range(B)])
    got = ard_loss(t(ADV), t(NAT), t(TEACHER), LABELS_T, tau=tau, alpha=alpha)
    assert got.item() == pytest.approx(expected)


def test_ard_loss_defaults_and_teacher_logit_shift() -> None:
    expected = 30.0**2 * sum(kl(softmax(TEACHER[i], 30.0), ADV[i], 30.0) for i in range(B)) / (B * C)
    assert ard_loss(t(ADV), None, t(TEACHER), LABELS_T).item() == pytest.approx(expected)
    log_probs = torch.log_softmax(t(TEACHER), dim=1)
    assert ard_loss(t(ADV), None, log_probs, LABELS_T).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="`nat_logits`"):
        ard_loss(t(ADV), None, t(TEACHER), LABELS_T, alpha=0.5)


def test_iad_weights_are_teacher_true_class_probability_to_the_beta() -> None:
    got = iad_weights(t(TEACHER_ADV), LABELS_T, beta=0.1)
    assert got.tolist() == pytest.approx([softmax(TEACHER_ADV[i])[LABELS[i]] ** 0.1 for i in range(B)])
    assert iad_weights(t(TEACHER_ADV), LABELS_T, beta=0.0).tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("tau", [1.0, 4.0])
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_iad_loss_weights_only_the_self_introspection_term(tau: float, alpha: float) -> None:
    weights = [0.3, 0.9]
    distill = mean([kl(softmax(TEACHER[i], tau), ADV[i], tau) for i in range(B)])
    introspect = mean([(1 - weights[i]) * kl(softmax(NAT[i]), ADV[i]) for i in range(B)])
    cross_entropy = mean([ce(NAT[i], LABELS[i]) for i in range(B)])
    expected = alpha * tau**2 * distill + alpha * introspect + (1 - alpha) * cross_entropy
    got = iad_loss(t(ADV), t(NAT), t(TEACHER), LABELS_T, torch.tensor(weights, dtype=torch.float64), tau=tau,
                   alpha=alpha)
    assert got.item() == pytest.approx(expected)


def test_iad_introspection_target_is_not_detached() -> None:
    # The official code lets the gradient through softmax(S(x)) as well as S(x').
    nat = t(NAT).requires_grad_(True)
    iad_loss(t(ADV), nat, t(TEACHER), LABELS_T, torch.tensor([0.3, 0.9], dtype=torch.float64)).backward()
    assert nat.grad is not None and nat.grad.abs().sum() > 0
    nat = t(NAT).requires_grad_(True)
    iad_loss(t(ADV), nat, t(TEACHER), LABELS_T, torch.ones(B, dtype=torch.float64)).backward()
    assert nat.grad is not None and nat.grad.abs().sum() == 0  # unit weights: the term is off


def test_iad_loss_with_unit_weights_is_the_distillation_term_alone() -> None:
    expected = mean([kl(softmax(TEACHER[i]), ADV[i]) for i in range(B)])
    got = iad_loss(t(ADV), t(NAT), t(TEACHER), LABELS_T, torch.ones(B, dtype=torch.float64))
    assert got.item() == pytest.approx(expected)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("scale", [0.1, 1.0])
def test_adaad_loss_matches_formula(alpha: float, scale: float) -> None:
    p_adv = [softmax(row) for row in TEACHER_ADV]
    p_nat = [softmax(row) for row in TEACHER]
    expected = scale * (alpha * mean([kl(p_adv[i], ADV[i]) for i in range(B)])
                        + (1 - alpha) * mean([kl(p_nat[i], NAT[i]) for i in range(B)]))
    got = adaad_loss(t(ADV), t(NAT), t(p_adv), t(p_nat), alpha=alpha, scale=scale)
    assert got.item() == pytest.approx(expected)
    if alpha == 1.0:
        assert adaad_loss(t(ADV), None, t(p_adv), t(p_nat), alpha=alpha, scale=scale).item() == pytest.approx(expected)


def test_distillation_gradients_reach_the_student_only() -> None:
    adv = t(ADV).requires_grad_(True)
    nat = t(NAT).requires_grad_(True)
    teacher = t(TEACHER).requires_grad_(True)
    teacher_adv = t(TEACHER_ADV).requires_grad_(True)
    weights = iad_weights(teacher_adv, LABELS_T)
    total = (ard_loss(adv, nat, teacher, LABELS_T, alpha=0.5) + iad_loss(adv, nat, teacher, LABELS_T, weights)
             + adaad_loss(adv, nat, torch.softmax(teacher_adv, 1), torch.softmax(teacher, 1), alpha=0.5))
    total.backward()
    assert adv.grad is not None and nat.grad is not None
    assert teacher.grad is None and teacher_adv.grad is None
