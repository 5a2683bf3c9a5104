"""MTARD, ABSLD, DGAD, CIARD and SAAD: each loss on fixed tensors against the worked values of its formula, each
adaptive rule on a worked example, and clear errors for bad input.

The expected numbers were computed by hand from each method's formula (float64 here; 1e-6 relative tolerance).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
import torch

from art_rslad.losses import igdm_per_sample, kl_per_sample
from art_rslad.losses_adaptive import (
    AdaptiveWeights,
    ClassTemperatures,
    DualTemperatures,
    absld_loss,
    absld_targets,
    accumulate_class_errors,
    ciard_push_loss,
    ciard_terms,
    mtard_loss,
    mtard_terms,
    push_weight,
    tempered_neg_entropy,
    update_adaptive_weights,
    update_class_temperatures,
    update_dual_temperatures,
    zkl,
)
from art_rslad.losses_samplewise import (
    dgad_loss,
    dgad_partition,
    dgad_swap_labels,
    entropy,
    saad_attack_loss,
    saad_combine,
    saad_loss,
    saad_weights,
    sample_weights,
    teacher_label_gradient,
)

REL = 1e-6


def t(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def labels(*values: int) -> torch.Tensor:
    return torch.tensor(values)


# ---------------------------------------------------------------- MTARD
S_ADV, T_ADV = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], [[3.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
S_NAT, T_NAT = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], [[4.0, 0.0, 0.0], [0.0, 3.0, 1.0]]


def test_zkl_is_the_mean_over_elements_with_the_official_epsilon() -> None:
    student, target = t([[1.0, 0.0, 0.0]]), torch.softmax(t([[2.0, 1.0, 0.0]]) / 2, dim=1)
    by_hand = sum(p * (math.log(p + 1e-5) - q) for p, q in
                  zip(target[0].tolist(), torch.log_softmax(student, 1)[0].tolist(), strict=True)) / 3
    assert zkl(student, target).item() == pytest.approx(by_hand, rel=REL)
    assert zkl(student, target).item() == pytest.approx(0.0082677, rel=1e-4)  # ABSLD's loss check


def test_mtard_terms_and_first_batch_loss() -> None:
    adversarial, natural = mtard_terms(t(S_ADV), t(S_NAT), t(T_ADV), t(T_NAT))
    assert adversarial.item() == pytest.approx(0.0147872, rel=1e-5)
    assert natural.item() == pytest.approx(0.0728678, rel=1e-5)
    loss, weights = mtard_loss(t(S_ADV), t(S_NAT), t(T_ADV), t(T_NAT), AdaptiveWeights())
    assert loss.item() == pytest.approx(0.0438275, rel=1e-5)  # the first batch keeps 1/2 and 1/2
    assert weights.weight_nat == 0.5 and weights.initial_adv == pytest.approx(adversarial.item())


def test_mtard_weight_rule_on_the_second_batch() -> None:
    first = update_adaptive_weights(AdaptiveWeights(), 0.5, 2.0)
    second = update_adaptive_weights(first, 0.8 * 0.5, 0.4 * 2.0)
    assert second.weight_nat == pytest.approx(0.4958333, rel=1e-6)
    assert second.weight_adv == pytest.approx(1 - 0.4958333, rel=1e-6)
    assert (second.initial_adv, second.initial_nat) == (0.5, 2.0)  # never reset
    slow = update_adaptive_weights(dataclasses.replace(first, rate=0.0025), 0.4, 0.8)
    assert slow.weight_nat == pytest.approx(0.5 - 0.0025 * (0.5 - 0.4 / 1.2))


def test_mtard_loss_gradients_reach_the_student_only() -> None:
    student_adv, teacher_adv = t(S_ADV).requires_grad_(True), t(T_ADV).requires_grad_(True)
    loss, _ = mtard_loss(student_adv, t(S_NAT), teacher_adv, t(T_NAT), AdaptiveWeights())
    loss.backward()
    assert student_adv.grad is not None and teacher_adv.grad is None


# ---------------------------------------------------------------- ABSLD
def test_absld_targets_separate_and_product() -> None:
    state = dataclasses.replace(ClassTemperatures.initial(3), adv=t([1.2, 1.0, 1.0]), nat=t([0.8, 1.0, 1.0]))
    adv, nat = absld_targets(t([[2.0, 1.0, 0.0]]), labels(0), state)
    torch.testing.assert_close(adv, t([[0.6160, 0.2677, 0.1163]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(nat, torch.softmax(t([[2.0, 1.0, 0.0]]) / 0.8, dim=1))
    product_adv, product_nat = absld_targets(t([[2.0, 1.0, 0.0]]), labels(0), state, tempering="product")
    torch.testing.assert_close(product_adv, t([[0.6769, 0.2388, 0.0843]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(product_nat, product_adv)
    other_class, _ = absld_targets(t([[2.0, 1.0, 0.0]]), labels(1), state)  # indexed by the label
    torch.testing.assert_close(other_class, torch.softmax(t([[2.0, 1.0, 0.0]]), dim=1))


def test_absld_loss_weights_five_sixths_and_one_sixth() -> None:
    target = torch.softmax(t([[2.0, 1.0, 0.0]]) / 2, dim=1)
    adv_only = absld_loss(t([[1.0, 0.0, 0.0]]), t([[0.0, 0.0, 0.0]]), target, target, alpha=1.0)
    assert adv_only.item() == pytest.approx(0.0082677, rel=1e-4)
    mixed = absld_loss(t([[1.0, 0.0, 0.0]]), t([[0.0, 0.0, 0.0]]), target, target)
    expected = 5 / 6 * zkl(t([[1.0, 0.0, 0.0]]), target) + 1 / 6 * zkl(t([[0.0, 0.0, 0.0]]), target)
    assert mixed.item() == pytest.approx(expected.item(), rel=REL)


def test_absld_epoch_rule_and_error_sums() -> None:
    state = dataclasses.replace(ClassTemperatures.initial(3), adv_errors=t([1.0, 2.0, 3.0]),
                                nat_errors=t([3.0, 2.0, 1.0]), adv=t([1.0, 1.0, 1.0]), nat=t([1.0, 1.0, 1.0]))
    updated = update_class_temperatures(state)
    torch.testing.assert_close(updated.adv, t([1.1, 1.0, 0.9]))  # the hardest class gets the sharpest labels
    torch.testing.assert_close(updated.nat, t([0.9, 1.0, 1.1]))
    assert updated.adv_errors.sum() == 0 and updated.nat_errors.sum() == 0  # reset each epoch
    assert torch.equal(update_class_temperatures(ClassTemperatures.initial(3)).adv, torch.ones(3))  # no 0/0
    clamped = update_class_temperatures(dataclasses.replace(state, rate=10.0))
    assert clamped.adv.min() >= 0.5 and clamped.adv.max() <= 5.0
    adv_logits, nat_logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.zeros(3, 2)
    summed = accumulate_class_errors(ClassTemperatures.initial(2), adv_logits, nat_logits, labels(0, 0, 1))
    ce = torch.nn.functional.cross_entropy(adv_logits, labels(0, 0, 1), reduction="none")
    torch.testing.assert_close(summed.adv_errors, torch.stack([ce[0] + ce[1], ce[2]]))  # sums, not means
    torch.testing.assert_close(summed.nat_errors, torch.tensor([2 * math.log(2), math.log(2)]))


# ---------------------------------------------------------------- DGAD
DGAD_T, DGAD_T_ADV, DGAD_Y = [[1.0, 3.0, 2.0], [3.0, 1.0, 0.0]], [[2.0, 1.0, 3.0], [0.0, 2.0, 1.0]], (0, 0)
DGAD_S, DGAD_S_ADV = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_dgad_partition_and_label_swap() -> None:
    teacher, teacher_adv = t(DGAD_T), t(DGAD_T_ADV)
    wrong = dgad_partition(teacher, labels(*DGAD_Y))
    assert wrong.tolist() == [True, False]
    swapped, swapped_adv = dgad_swap_labels(teacher, teacher_adv, labels(*DGAD_Y), wrong)
    torch.testing.assert_close(swapped, t([[3.0, 1.0, 2.0], [3.0, 1.0, 0.0]]))
    torch.testing.assert_close(swapped_adv, t([[3.0, 1.0, 2.0], [2.0, 0.0, 1.0]]))
    assert torch.equal(teacher, t(DGAD_T)) and torch.equal(teacher_adv, t(DGAD_T_ADV))  # copies, not in place


def test_dgad_loss_on_the_worked_batch() -> None:
    wrong = torch.tensor([True, False])
    swapped, swapped_adv = dgad_swap_labels(t(DGAD_T), t(DGAD_T_ADV), labels(*DGAD_Y), wrong)
    clean = kl_per_sample(torch.softmax(swapped, 1), t(DGAD_S))[0]
    adversarial = kl_per_sample(torch.softmax(swapped_adv, 1), t(DGAD_S_ADV))[1]
    assert (clean.item(), adversarial.item()) == pytest.approx((0.266217, 0.629019), rel=1e-5)
    loss = dgad_loss(t(DGAD_S), t(DGAD_S_ADV), swapped, swapped_adv, wrong)
    assert loss.item() == pytest.approx(0.506561, rel=1e-5)
    consistency = 0.506561 - (0.266217 + 0.629019) / 2
    assert consistency == pytest.approx(0.058944, abs=2e-6)
    fixed = dgad_loss(t(DGAD_S), t(DGAD_S_ADV), swapped, swapped_adv, wrong, fixed_batch_size=4)
    assert fixed.item() == pytest.approx((0.266217 + 0.629019) / 4 + 0.058944, rel=1e-5)


def test_dgad_loss_is_defined_when_the_teacher_is_wrong_everywhere() -> None:
    every = torch.tensor([True, True])
    loss = dgad_loss(t(DGAD_S), t(DGAD_S_ADV), t(DGAD_T), t(DGAD_T_ADV), every, beta=0.0)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(kl_per_sample(torch.softmax(t(DGAD_T), 1), t(DGAD_S)).mean().item())


def test_dgad_consistency_term_moves_both_student_outputs() -> None:
    nat, adv = t(DGAD_S).requires_grad_(True), t(DGAD_S_ADV).requires_grad_(True)
    dgad_loss(nat, adv, t(DGAD_T), t(DGAD_T_ADV), torch.tensor([False, False])).backward()
    assert nat.grad is not None and nat.grad.abs().sum() > 0  # only the consistency term reaches S(x) here


# ---------------------------------------------------------------- CIARD
def test_ciard_push_weight_matches_magnitudes() -> None:
    assert push_weight(0.0123, 0.0456, 0.789) == pytest.approx(0.1)
    assert push_weight(0.2, 0.05, 0.003) == pytest.approx(10.0)
    assert push_weight(0.2, 0.05, 0.0) == pytest.approx(1e5)  # a zero counts as 1e-7


def test_ciard_push_loss_on_the_clean_teachers_mistakes() -> None:
    student, clean = t([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), t([[0.0, 2.0, 0.0], [0.0, 3.0, 0.0]])
    assert ciard_push_loss(student, clean, labels(0, 1)).item() == pytest.approx(0.160991, rel=1e-5)
    assert ciard_push_loss(student, clean, labels(1, 1)).item() == 0.0  # no mistake, no push


def test_ciard_temperature_rule() -> None:
    state = update_dual_temperatures(DualTemperatures(robust=2.0, clean=2.0), -0.325, -0.0266)
    assert (state.robust, state.clean) == pytest.approx((1.999, 2.001))
    assert update_dual_temperatures(DualTemperatures(), -0.3, -0.3) == DualTemperatures()  # sign(0) = 0
    floor = update_dual_temperatures(DualTemperatures(), -0.325, -0.0266)
    assert (floor.robust, floor.clean) == pytest.approx((1.0, 1.001))  # clamped to [1, 10]
    logits = t([[2.0, 0.0, 0.0]])
    probs = torch.softmax(logits / 2, dim=1)
    assert tempered_neg_entropy(logits, 2.0) == pytest.approx((probs * torch.log(probs + 1e-5)).mean().item())


def test_ciard_terms_temper_each_teacher() -> None:
    adversarial, natural = ciard_terms(t(S_ADV), t(S_NAT), t(T_ADV), t(T_NAT), DualTemperatures(2.0, 3.0))
    assert adversarial.item() == pytest.approx(zkl(t(S_ADV), torch.softmax(t(T_ADV) / 2, 1)).item(), rel=REL)
    assert natural.item() == pytest.approx(zkl(t(S_NAT), torch.softmax(t(T_NAT) / 3, 1)).item(), rel=REL)


# ---------------------------------------------------------------- SAAD
def test_saad_entropy_and_weights() -> None:
    probs = torch.softmax(t([[2.0, 0.0, 0.0]]), dim=1)
    assert entropy(probs).item() == pytest.approx(0.665573, rel=1e-5)
    assert entropy(probs, order=2.0).item() == pytest.approx(0.443113, rel=1e-5)
    weights, normalised = sample_weights(t([0.5, 1.0, 2.0]))
    torch.testing.assert_close(weights, t([0.0, 2.5, 7.5]))
    torch.testing.assert_close(normalised, t([0.0, 1 / 3, 1.0]), atol=1e-8, rtol=0)
    logits = t([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    from_logits, _ = saad_weights(logits)
    torch.testing.assert_close(from_logits, 5 * (entropy(torch.softmax(logits, 1)) - 0.665573), atol=1e-5, rtol=0)


def test_saad_loss_on_the_worked_terms() -> None:
    weights = sample_weights(t([0.5, 1.0, 2.0]))
    adv, igdm, nat = t([0.2, 0.3, 0.4]), t([0.1, 0.1, 0.1]), t([0.5, 0.5, 0.5])
    assert saad_combine(adv, igdm, nat, weights, 1.0).item() == pytest.approx(1.583333, rel=1e-6)
    assert saad_combine(adv, igdm, nat, weights, 1.0, beta=1.0).item() == pytest.approx(1.861111, rel=1e-6)


def test_saad_loss_composes_kl_and_igdm_per_sample() -> None:
    student_adv, student_mirror, teacher_adv, teacher_mirror = (t(S_ADV), t(S_NAT), t(T_ADV), t(T_NAT))
    weights = saad_weights(teacher_adv)
    expected = saad_combine(kl_per_sample(torch.softmax(teacher_adv, 1), student_adv),
                            igdm_per_sample(student_adv, student_mirror, teacher_adv, teacher_mirror), None,
                            weights, 0.5)
    got = saad_loss(student_adv, student_mirror, None, teacher_adv, teacher_mirror, None, weights, 0.5)
    assert got.item() == pytest.approx(expected.item(), rel=REL)


def test_saad_attack_loss_uses_the_linearised_teacher() -> None:
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).double()
    x, x_adv = torch.rand(2, 1, 2, 2, dtype=torch.float64), torch.rand(2, 1, 2, 2, dtype=torch.float64)
    y = labels(2, 0)
    logits, gradient = teacher_label_gradient(teacher, x, y)
    torch.testing.assert_close(gradient[0].flatten(), teacher[1].weight[2].detach())  # linear: the weight row
    student_adv = t(S_ADV).requires_grad_(True)
    loss = saad_attack_loss(student_adv, x_adv, x, logits, gradient, y)
    exact = logits.clone()  # a linear teacher's first-order guess is exact on the label's logit
    exact[torch.arange(2), y] = teacher(x_adv).detach()[torch.arange(2), y]
    assert loss.item() == pytest.approx(kl_per_sample(torch.softmax(exact, 1), student_adv).sum().item(), rel=REL)
    x_adv.requires_grad_(True)
    saad_attack_loss(t(S_ADV), x_adv, x, logits, gradient, y).backward()
    assert x_adv.grad is not None and x_adv.grad.abs().sum() > 0  # the target depends on x'


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(("call", "message"), [
    (lambda: zkl(torch.zeros(3), torch.zeros(3)), "shape \\(batch, classes\\)"),
    (lambda: zkl(torch.zeros(2, 3), torch.zeros(2, 4)), "target_probs"),
    (lambda: update_adaptive_weights(AdaptiveWeights(), 0.0, 1.0), "adv_loss"),
    (lambda: absld_targets(torch.zeros(2, 3), torch.zeros(2, 3), ClassTemperatures.initial(3)), "not one-hot"),
    (lambda: absld_targets(torch.zeros(2, 3), labels(0, 3), ClassTemperatures.initial(3)), "lie in \\[0, 2\\]"),
    (lambda: absld_targets(torch.zeros(1, 3), labels(0), ClassTemperatures.initial(3), tempering="sum"), "`tempering`"),
    (lambda: absld_loss(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), 2.0), "alpha"),
    (lambda: ClassTemperatures.initial(1), "nb_classes"),
    (lambda: dgad_swap_labels(torch.zeros(2, 3), torch.zeros(2, 3), labels(0, 0), labels(1, 0)), "boolean mask"),
    (lambda: dgad_loss(*(torch.zeros(2, 3),) * 4, torch.tensor([True, False]), fixed_batch_size=1),
     "fixed_batch_size"),
    (lambda: ciard_push_loss(torch.zeros(2, 3), torch.zeros(2, 3), labels(0, 0), 0.0), "student_temperature"),
    (lambda: push_weight(-1.0, 0.1, 0.1), "finite and >= 0"),
    (lambda: update_dual_temperatures(DualTemperatures(), 0.0, -0.1), "non-zero"),
    (lambda: sample_weights(torch.zeros(2, 3)), "entropies"),
    (lambda: saad_combine(torch.zeros(2), torch.zeros(2), None, (torch.zeros(2), torch.zeros(2)), 1.0, beta=1.0),
     "needs the natural term"),
    (lambda: saad_attack_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 5), torch.zeros(2, 3),
                              torch.zeros(2, 5), labels(0, 0)), "inputs' shape"),
])
def test_bad_input_is_a_clear_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
