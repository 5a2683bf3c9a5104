"""The plain PyTorch loops of MTARD, ABSLD, DGAD, CIARD and SAAD compute what the package's pure losses compute.

``bench/plain_loops_recent.py`` is written with torch alone; ``art_rslad.losses_adaptive`` and
``art_rslad.losses_samplewise`` are the package's functions. Two batches through each plain loop (tiny BatchNorm CNNs,
8x8 inputs, PGD-3), and on each batch the package's loss from the same adversarial inputs and the state before the
batch must equal the plain loop's loss; the adaptive state after it must equal the package's rule. The trainers are
checked against these loops in tests/test_bench_plain_loops.py, as the other methods' are.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from test_bench_plain_loops import TinyBatchNormCNN

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
    push_weight,
    tempered_neg_entropy,
    update_adaptive_weights,
    update_class_temperatures,
    update_dual_temperatures,
)
from art_rslad.losses_samplewise import (
    dgad_loss,
    dgad_partition,
    dgad_swap_labels,
    saad_loss,
    saad_weights,
)
from bench.plain_loops import StepOutput
from bench.plain_loops_recent import RECENT_PLAIN_METHODS, RecentSetup, absld_epoch_end

EPS, BATCH = 0.1, 8


def make_setup() -> RecentSetup:
    torch.manual_seed(0)
    student, teacher, clean = TinyBatchNormCNN(), TinyBatchNormCNN(), TinyBatchNormCNN()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01)
    teacher_optimizer = torch.optim.SGD(teacher.parameters(), lr=1e-4, momentum=0.1)
    return RecentSetup(student, optimizer, teacher=teacher, eps=EPS, eps_step=0.025, steps=3, clean_teacher=clean,
                       teacher_optimizer=teacher_optimizer)


def logits_of(model: torch.nn.Module, x: torch.Tensor, train: bool) -> torch.Tensor:
    """A copy's logits (the original's BatchNorm statistics untouched), in train or eval mode."""
    copied = copy.deepcopy(model).train(train)
    with torch.no_grad():
        return copied(x)


def expected_mtard(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                   before: dict) -> float:
    first = before.get("first_losses", (None, None))
    weights = AdaptiveWeights(before.get("weight_nat", 0.5), *first)
    loss, weights = mtard_loss(logits_of(setup.student, x_adv, True), logits_of(setup.student, x, True),
                               logits_of(setup.teacher, x_adv, False), logits_of(setup.clean_teacher, x, False),
                               weights)
    assert setup.state["weight_nat"] == pytest.approx(weights.weight_nat, rel=1e-6)
    return loss.item()


def absld_state(state: dict) -> ClassTemperatures:
    initial = ClassTemperatures.initial(10)
    return dataclasses.replace(initial, adv=state.get("tau_adv", initial.adv), nat=state.get("tau_nat", initial.nat),
                               adv_errors=state.get("errors_adv", initial.adv_errors).clone(),
                               nat_errors=state.get("errors_nat", initial.nat_errors).clone())


def expected_absld(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                   before: dict) -> float:
    adv_target, nat_target = absld_targets(logits_of(setup.teacher, x, False), y, absld_state(before))
    adv_logits, nat_logits = logits_of(setup.student, x_adv, True), logits_of(setup.student, x, True)
    summed = accumulate_class_errors(absld_state(before), adv_logits, nat_logits, y)
    torch.testing.assert_close(summed.adv_errors, setup.state["errors_adv"])
    torch.testing.assert_close(summed.nat_errors, setup.state["errors_nat"])
    return absld_loss(adv_logits, nat_logits, adv_target, nat_target).item()


def expected_dgad(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                  before: dict) -> float:
    teacher_nat, teacher_adv = logits_of(setup.teacher, x, False), logits_of(setup.teacher, x_adv, False)
    wrong = dgad_partition(teacher_nat, y)
    swapped, swapped_adv = dgad_swap_labels(teacher_nat, teacher_adv, y, wrong)
    return dgad_loss(logits_of(setup.student, x, True), logits_of(setup.student, x_adv, True), swapped,
                     swapped_adv, wrong).item()


def expected_ciard(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                   before: dict) -> float:
    adv_logits, robust_adv = logits_of(setup.student, x_adv, True), logits_of(setup.teacher, x_adv, True)
    temperatures = DualTemperatures(before.get("tau_robust", 1.0), before.get("tau_clean", 1.0))
    adversarial, natural = ciard_terms(adv_logits, logits_of(setup.student, x, True), robust_adv,
                                       logits_of(setup.clean_teacher, x, False), temperatures)
    clean_nat = logits_of(setup.clean_teacher, x, False)
    stepped = update_dual_temperatures(temperatures, tempered_neg_entropy(robust_adv, temperatures.robust),
                                       tempered_neg_entropy(clean_nat, temperatures.clean))
    assert (setup.state["tau_robust"], setup.state["tau_clean"]) == pytest.approx((stepped.robust, stepped.clean))
    first = before.get("first_losses", (None, None))
    weights = update_adaptive_weights(AdaptiveWeights(before.get("weights", (0.5, 0.5))[1], *first),
                                      adversarial.item(), natural.item())
    assert setup.state["weights"][1] == pytest.approx(weights.weight_nat, rel=1e-6)  # CIARD's form is MTARD's rule
    push = ciard_push_loss(adv_logits, logits_of(setup.clean_teacher, x_adv, False), y)
    loss = weights.weight_adv * adversarial + weights.weight_nat * natural
    if push.item() > 0:
        loss = loss - push_weight(adversarial.item(), natural.item(), push.item()) * push
    return (loss + F.cross_entropy(robust_adv, y)).item()  # epoch 0 of 1: the teacher's own step is on


def expected_saad(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                  before: dict) -> float:
    mirror = x - (x_adv - x)
    teacher_adv = logits_of(setup.teacher, x_adv, False)
    return saad_loss(logits_of(setup.student, x_adv, True), logits_of(setup.student, mirror, True), None,
                     teacher_adv, logits_of(setup.teacher, mirror, False), None, saad_weights(teacher_adv),
                     igdm_weight=(setup.epoch + 1) / setup.nb_epochs).item()


EXPECTED: dict[str, Callable[[RecentSetup, torch.Tensor, torch.Tensor, torch.Tensor, dict], float]] = {
    "mtard": expected_mtard, "absld": expected_absld, "dgad": expected_dgad, "ciard": expected_ciard,
    "saad": expected_saad,
}


def test_every_recent_plain_loop_has_a_check() -> None:
    assert set(RECENT_PLAIN_METHODS) == set(EXPECTED)


@pytest.mark.parametrize("name", list(RECENT_PLAIN_METHODS))
def test_recent_plain_loop_computes_the_packages_loss(name: str) -> None:
    setup = make_setup()
    generator = torch.Generator().manual_seed(1)
    for _ in range(2):
        x = torch.rand(BATCH, 1, 8, 8, generator=generator)
        y = torch.randint(0, 10, (BATCH,), generator=generator)
        before = copy.deepcopy(setup.state)
        step: StepOutput = RECENT_PLAIN_METHODS[name](setup, x, y, False)
        assert step.x_adv is not None and (step.x_adv - x).abs().max() <= EPS + 1e-6
        expected = EXPECTED[name](setup, x, y, step.x_adv, before)
        assert step.loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)
        step.loss.backward()  # a step as plain_epoch takes it, so the second batch starts from moved weights
        for optimizer in setup.optimizers():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def test_absld_plain_epoch_end_is_the_packages_rule() -> None:
    setup = make_setup()
    x, y = torch.rand(BATCH, 1, 8, 8), torch.arange(BATCH) % 3
    RECENT_PLAIN_METHODS["absld"](setup, x, y, False)
    expected = update_class_temperatures(absld_state(setup.state))
    absld_epoch_end(setup)
    torch.testing.assert_close(setup.state["tau_adv"], expected.adv)
    torch.testing.assert_close(setup.state["tau_nat"], expected.nat)
    assert setup.state["errors_adv"].sum() == 0
    assert not torch.equal(expected.adv, torch.ones(10))  # the classes differed, so the temperatures moved
