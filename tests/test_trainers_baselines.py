"""The baseline trainers in the shared loop: robustness against a natural baseline, modes, equivalences, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from conftest import TinyCNN, make_classifier
from helpers_trainers import natural_pgd_accuracy, pgd_accuracy, train_student  # noqa: F401  (fixture)

import art_rslad
from art_rslad.attacks import InputGradientClassifier, InputGradientPGD
from art_rslad.trainers import (
    AdversarialTrainerAdaAD,
    AdversarialTrainerARD,
    AdversarialTrainerIAD,
    AdversarialTrainerRSLAD,
    AdversarialTrainerSAT,
    AdversarialTrainerTRADES,
    NaturalTrainer,
)
from art_rslad.trainers.registry import METHODS


def test_registry_names_every_shared_loop_method() -> None:
    for name in ("natural", "sat", "trades", "ard", "iad", "adaad", "rslad"):
        trainer_class = METHODS[name].trainer
        assert trainer_class.method == name
        assert getattr(art_rslad, trainer_class.__name__) is trainer_class


# ---------------------------------------------------------------- robustness on a Fashion-MNIST slice
# soft_labels variants: see the equivalence tests below (soft-label SAT and TRADES are RSLAD's terms).
ROBUST_CASES = [
    ("sat", {}),
    ("trades", {}),
    ("ard", {"lr": 0.3}),  # the official KL reduction is small (batch-mean KL / C): the lr art-rslad tune chose
    ("iad", {}),
    ("adaad", {"scale": 1.0}),
]


@pytest.mark.parametrize(("name", "options"), ROBUST_CASES, ids=[name for name, _ in ROBUST_CASES])
def test_student_beats_natural_training_under_pgd(
    name: str, options: dict[str, Any], fmnist, robust_teacher, natural_pgd_accuracy: float  # noqa: F811
) -> None:
    x, y, x_test, y_test = fmnist
    x_before, y_before = x.copy(), y.copy()
    trainer_class = METHODS[name].trainer
    teacher_kwargs = {"teacher": robust_teacher} if trainer_class.needs_teacher else {}
    teacher_state = {k: v.clone() for k, v in robust_teacher.model.state_dict().items()}
    student, trainer = train_student(trainer_class, x, y, **teacher_kwargs, **options)
    robust = pgd_accuracy(student, x_test, y_test)
    assert robust > natural_pgd_accuracy + 0.1, (name, robust, natural_pgd_accuracy)
    assert len(trainer.history) == 2 and all(np.isfinite(h["loss"]) for h in trainer.history)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)
    for key, value in robust_teacher.model.state_dict().items():
        torch.testing.assert_close(value, teacher_state[key])


# ---------------------------------------------------------------- what each method does, on a few batches
@pytest.mark.parametrize(
    ("trainer_class", "attack_mode"),
    [(AdversarialTrainerSAT, False), (AdversarialTrainerTRADES, False), (AdversarialTrainerARD, True),
     (AdversarialTrainerIAD, True), (AdversarialTrainerAdaAD, False)],
)
@pytest.mark.parametrize("override", [None, True, False])
def test_student_mode_during_the_attack_follows_the_paper_or_the_option(
    trainer_class: type, attack_mode: bool, override: bool | None, fmnist, robust_teacher, classifier_factory
) -> None:
    x, y, _, _ = fmnist
    student = classifier_factory(width=4)
    modes: list[bool] = []
    student.model.register_forward_hook(lambda module, inputs, output: modes.append(module.training))
    teacher_kwargs = {"teacher": robust_teacher} if trainer_class.needs_teacher else {}
    trainer = trainer_class(student, eps=0.1, eps_step=0.05, max_iter=2, attack_training_mode=override,
                            verbose=False, **teacher_kwargs)
    trainer.fit(x[:32], y[:32], nb_epochs=1, batch_size=32)
    expected = attack_mode if override is None else override
    # TRADES first computes its attack targets S(x) in the attack's mode; then 2 attack steps; then the update.
    nb_attack_calls = 3 if trainer_class is AdversarialTrainerTRADES else 2
    assert modes[:nb_attack_calls] == [expected] * nb_attack_calls
    assert all(modes[nb_attack_calls:])


def test_natural_trainer_runs_no_attack(fmnist, classifier_factory) -> None:
    x, y, x_test, y_test = fmnist
    student = classifier_factory(width=4)
    calls: list[bool] = []
    student.model.register_forward_hook(lambda module, inputs, output: calls.append(module.training))
    trainer = NaturalTrainer(student, eps=0.1, eps_step=0.025, verbose=False)
    trainer.fit(x[:64], y[:64], nb_epochs=1, batch_size=32, validation_data=(x_test[:16], y_test[:16]))
    assert trainer.attack is None
    assert calls[:2] == [True, True]  # one train-mode forward per batch, then validation (eval) only
    assert not any(calls[2:])
    assert 0.0 <= trainer.history[0]["val_pgd"] <= trainer.history[0]["val_clean"]


def _same_seed_attack(student) -> InputGradientPGD:
    return InputGradientPGD(InputGradientClassifier(student), eps=0.1, eps_step=0.025, max_iter=3,
                            random_init="uniform", seed=0)


def _weights_after_one_epoch(trainer_class: type, fmnist, robust_teacher, **options: Any) -> dict[str, torch.Tensor]:
    x, y, _, _ = fmnist
    torch.manual_seed(5)
    student = make_classifier(TinyCNN(4))
    trainer_class(student, robust_teacher, attack=_same_seed_attack(student), verbose=False, **options).fit(
        x[:128], y[:128], nb_epochs=1, batch_size=64)
    return student.model.state_dict()


def test_sat_with_soft_labels_is_rslad_adversarial_term(fmnist, robust_teacher) -> None:
    """Soft-label SAT: attack and loss on KL(p_T(x) || S(x')), i.e. RSLAD with alpha 1 and scale 1."""
    sat = _weights_after_one_epoch(AdversarialTrainerSAT, fmnist, robust_teacher, soft_labels=True)
    rslad = _weights_after_one_epoch(AdversarialTrainerRSLAD, fmnist, robust_teacher, alpha=1.0, scale=1.0)
    for key in sat:
        torch.testing.assert_close(sat[key], rslad[key])


def test_trades_with_soft_labels_and_beta_zero_is_rslad_natural_term(fmnist, robust_teacher) -> None:
    """With beta 0 soft-label TRADES trains on KL(p_T(x) || f(x)) only: RSLAD with alpha 0 and scale 1."""
    trades = _weights_after_one_epoch(AdversarialTrainerTRADES, fmnist, robust_teacher, soft_labels=True, beta=0.0)
    rslad = _weights_after_one_epoch(AdversarialTrainerRSLAD, fmnist, robust_teacher, alpha=0.0, scale=1.0)
    for key in trades:
        torch.testing.assert_close(trades[key], rslad[key])


def test_adaad_attack_differentiates_through_student_and_teacher(robust_teacher, classifier_factory, fmnist) -> None:
    x, y, _, _ = fmnist
    student = classifier_factory(width=4)
    trainer = AdversarialTrainerAdaAD(student, robust_teacher, eps=0.1, eps_step=0.025, verbose=False)
    x_batch = torch.from_numpy(x[:8])
    targets = torch.nn.functional.one_hot(torch.from_numpy(y[:8]), 10).float()
    parameters = (*student.model.parameters(), *robust_teacher.model.parameters())
    for parameter in parameters:
        parameter.grad = None
    got = trainer.attack.estimator.loss_gradient(x_batch, targets)

    def gradient(detach_teacher: bool) -> torch.Tensor:
        x_var = x_batch.clone().requires_grad_(True)
        teacher_logits = robust_teacher.model(x_var)
        teacher_probs = torch.softmax(teacher_logits.detach() if detach_teacher else teacher_logits, dim=1)
        log_student = torch.log_softmax(student.model(x_var), dim=1)
        kl = (teacher_probs * (teacher_probs.log() - log_student)).sum()
        return torch.autograd.grad(kl, x_var)[0]

    torch.testing.assert_close(got, gradient(detach_teacher=False), atol=1e-6, rtol=1e-4)
    assert not torch.allclose(got, gradient(detach_teacher=True), atol=1e-6, rtol=1e-4)
    assert all(parameter.grad is None for parameter in parameters), "the attack computes input gradients only"


@pytest.mark.parametrize(("warmup_epochs", "teacher_passes_on_x_adv"), [(0, 4), (1, 2), (2, 0), (None, 2)])
def test_iad_uses_teacher_on_adversarial_inputs_only_after_warmup(
    warmup_epochs: int | None, teacher_passes_on_x_adv: int, fmnist, robust_teacher, classifier_factory
) -> None:
    x, y, _, _ = fmnist
    natural = torch.from_numpy(x[:64]).flatten(1)
    on_x_adv: list[bool] = []

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        distances = torch.cdist(inputs[0].flatten(1), natural, p=float("inf"))
        on_x_adv.append(bool((distances.min(dim=1).values > 0).any()))

    hook = robust_teacher.model.register_forward_hook(record)
    try:
        trainer = AdversarialTrainerIAD(classifier_factory(width=4), robust_teacher, eps=0.1, eps_step=0.05,
                                        max_iter=2, warmup_epochs=warmup_epochs, verbose=False)
        trainer.fit(x[:64], y[:64], nb_epochs=2, batch_size=32)  # 2 batches an epoch
    finally:
        hook.remove()
    assert sum(on_x_adv) == teacher_passes_on_x_adv


def test_iad_warmup_scales_with_nb_epochs(robust_teacher, classifier_factory) -> None:
    trainer = AdversarialTrainerIAD(classifier_factory(width=4), robust_teacher, verbose=False)
    for nb_epochs, expected in [(200, 60), (10, 3), (3, 1), (1, 0)]:
        trainer.nb_epochs = nb_epochs
        assert trainer.warmup_epoch() == expected


# ---------------------------------------------------------------- bad input
BAD_ARGUMENTS = [
    (AdversarialTrainerARD, {"tau": 0.0}, "`tau`"),
    (AdversarialTrainerARD, {"alpha": -0.1}, "`alpha`"),
    (AdversarialTrainerIAD, {"tau": -1.0}, "`tau`"),
    (AdversarialTrainerIAD, {"beta": -0.1}, "`beta`"),
    (AdversarialTrainerIAD, {"warmup_epochs": -1}, "`warmup_epochs`"),
    (AdversarialTrainerIAD, {"warmup_epochs": 1.5}, "`warmup_epochs`"),
    (AdversarialTrainerAdaAD, {"alpha": 2.0}, "`alpha`"),
    (AdversarialTrainerAdaAD, {"scale": 0.0}, "`scale`"),
    (AdversarialTrainerTRADES, {"beta": -1.0, "teacher": None}, "`beta`"),
    (AdversarialTrainerARD, {"teacher": None}, "`teacher` is required"),
    (AdversarialTrainerIAD, {"teacher": None}, "`teacher` is required"),
    (AdversarialTrainerAdaAD, {"teacher": None}, "`teacher` is required"),
    (AdversarialTrainerSAT, {"soft_labels": True, "teacher": None}, "`teacher` is required"),
    (AdversarialTrainerTRADES, {"soft_labels": True, "teacher": None}, "`teacher` is required"),
    (AdversarialTrainerSAT, {}, "uses no `teacher`.*soft_labels=True"),
    (AdversarialTrainerTRADES, {}, "uses no `teacher`.*soft_labels=True"),
    (NaturalTrainer, {}, "uses no teacher"),
    (NaturalTrainer, {"teacher": None, "attack_training_mode": True}, "`attack_training_mode`"),
]


@pytest.mark.parametrize(("trainer_class", "options", "message"), BAD_ARGUMENTS,
                         ids=[f"{c.method}-{'-'.join(o) or 'teacher'}" for c, o, _ in BAD_ARGUMENTS])
def test_bad_arguments_raise_value_error_naming_them(
    trainer_class: type, options: dict[str, Any], message: str, robust_teacher, classifier_factory
) -> None:
    options = {"teacher": robust_teacher, **options}
    with pytest.raises(ValueError, match=message):
        trainer_class(classifier_factory(width=4), **options)


def test_natural_trainer_refuses_an_attack(classifier_factory) -> None:
    student = classifier_factory(width=4)
    with pytest.raises(ValueError, match="`attack`"):
        NaturalTrainer(student, attack=_same_seed_attack(student))


def test_iad_warmup_beyond_nb_epochs_fails_before_training(fmnist, robust_teacher, classifier_factory) -> None:
    x, y, _, _ = fmnist
    student = classifier_factory(width=4)
    before = {k: v.clone() for k, v in student.model.state_dict().items()}
    trainer = AdversarialTrainerIAD(student, robust_teacher, warmup_epochs=5, verbose=False)
    with pytest.raises(ValueError, match=r"`warmup_epochs` \(5\) is beyond nb_epochs \(2\)"):
        trainer.fit(x[:32], y[:32], nb_epochs=2)
    for key, value in student.model.state_dict().items():
        torch.testing.assert_close(value, before[key])
