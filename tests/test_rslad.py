"""RSLAD: the loss against its formula, the trainer's contract as an ART trainer, and its bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.data_generators import PyTorchDataGenerator
from conftest import TinyCNN, make_classifier

from art_rslad import AdversarialTrainerRSLAD
from art_rslad.losses import rslad_loss, rslad_loss_from_probs
from art_rslad.trainers.batches import teacher_probs_once

# ---------------------------------------------------------------- the loss on fixed tensors
ADV = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]
NAT = [[1.0, 1.0, 0.0], [-2.0, 0.5, 0.5]]
TEACHER = [[3.0, 0.0, 0.0], [0.2, 0.1, 1.5]]


def _softmax(rows: list[list[float]]) -> np.ndarray:
    z = np.exp(np.asarray(rows, dtype=np.float64))
    return z / z.sum(axis=1, keepdims=True)


def _kl(p: np.ndarray, logits: list[list[float]]) -> float:
    """Batch mean of sum_k p_k (log p_k - log softmax(logits)_k), written out by hand."""
    q = _softmax(logits)
    return float(np.mean([sum(p[i, k] * (np.log(p[i, k]) - np.log(q[i, k])) for k in range(3)) for i in range(2)]))


@pytest.mark.parametrize("alpha", [0.0, 5 / 6, 1.0])
@pytest.mark.parametrize("scale", [0.1, 1.0, 2.5])
def test_rslad_loss_matches_formula(alpha: float, scale: float) -> None:
    p_teacher = _softmax(TEACHER)
    expected = scale * (alpha * _kl(p_teacher, ADV) + (1 - alpha) * _kl(p_teacher, NAT))
    got = rslad_loss(torch.tensor(ADV), torch.tensor(NAT), torch.tensor(TEACHER), alpha=alpha, scale=scale)
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # the form the trainer calls, with the teacher's probabilities computed once per sample
    from_probs = rslad_loss_from_probs(torch.tensor(ADV), torch.tensor(NAT), torch.tensor(p_teacher).float(),
                                       alpha=alpha, scale=scale)
    assert from_probs.item() == pytest.approx(expected, rel=1e-5)


def test_rslad_loss_defaults_are_the_papers() -> None:
    p_teacher = _softmax(TEACHER)
    expected = 0.1 * (5 / 6 * _kl(p_teacher, ADV) + 1 / 6 * _kl(p_teacher, NAT))
    got = rslad_loss(torch.tensor(ADV), torch.tensor(NAT), torch.tensor(TEACHER))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_rslad_loss_gradient_flows_to_student_only() -> None:
    adv = torch.tensor(ADV, requires_grad=True)
    nat = torch.tensor(NAT, requires_grad=True)
    teacher = torch.tensor(TEACHER, requires_grad=True)
    rslad_loss(adv, nat, teacher).backward()
    assert adv.grad is not None and nat.grad is not None
    assert teacher.grad is None


# ---------------------------------------------------------------- the trainer
def _pgd_accuracy(classifier, x: np.ndarray, y: np.ndarray, eps: float = 0.1) -> float:
    attack = ProjectedGradientDescent(classifier, eps=eps, eps_step=eps / 4, max_iter=10, batch_size=250,
                                      verbose=False)
    return float((classifier.predict(attack.generate(x, y=y)).argmax(1) == y).mean())


def test_fit_with_no_other_argument(fmnist, robust_teacher, classifier_factory) -> None:
    x, y, _, _ = fmnist
    student = classifier_factory(width=4)
    trainer = AdversarialTrainerRSLAD(student, robust_teacher)
    trainer.fit(x[:256], y[:256], nb_epochs=1)
    assert trainer.get_classifier() is student
    assert len(trainer.history) == 1


def test_rslad_student_beats_natural_student_under_pgd(fmnist, robust_teacher, classifier_factory) -> None:
    x, y, x_test, y_test = fmnist
    student = classifier_factory(width=8, lr=0.05, seed=1)
    AdversarialTrainerRSLAD(student, robust_teacher, eps=0.1, eps_step=0.025, scale=1.0, verbose=False).fit(
        x, y, nb_epochs=3, batch_size=64)
    natural = classifier_factory(width=8, lr=0.05, seed=1)
    natural.fit(x, y, nb_epochs=3, batch_size=64)
    robust_rslad = _pgd_accuracy(student, x_test, y_test)
    robust_natural = _pgd_accuracy(natural, x_test, y_test)
    assert robust_rslad > robust_natural + 0.15, (robust_rslad, robust_natural)


def test_trained_student_works_with_art_pgd_and_autoattack(fmnist, robust_teacher, classifier_factory) -> None:
    from pyautoattack import AutoAttack

    x, y, x_test, y_test = fmnist
    student = classifier_factory(width=4)
    AdversarialTrainerRSLAD(student, robust_teacher, eps=0.1, eps_step=0.025, verbose=False).fit(x[:512], y[:512],
                                                                                                 nb_epochs=1)
    x_adv = ProjectedGradientDescent(student, eps=0.1, eps_step=0.025, max_iter=5, verbose=False).generate(x_test[:32])
    assert np.abs(x_adv - x_test[:32]).max() <= 0.1 + 1e-6
    model = student.model.eval()
    attack = AutoAttack(model, eps=0.1, norm="Linf", version="standard", device="cpu", seed=0)
    attack.attacks_to_run = ["apgd-ce", "apgd-t"]
    x_aa, y_aa = attack.run_standard_evaluation(torch.from_numpy(x_test[:16]), torch.from_numpy(y_test[:16]),
                                                batch_size=16)
    assert (x_aa - torch.from_numpy(x_test[:16])).abs().max() <= 0.1 + 1e-5
    assert y_aa.shape == (16,)


def test_modes_preprocessing_and_teacher_untouched(fmnist, classifier_factory) -> None:
    """Teacher normalises with its own mean/std, student does not; modes follow the paper and are restored."""
    x, y, _, _ = fmnist
    torch.manual_seed(0)
    teacher = make_classifier(TinyCNN(8), preprocessing=(0.3, 0.35))
    student = classifier_factory(width=4)
    student.model.eval()
    seen: list[tuple[str, bool, bool]] = []  # (model, training, grad enabled)
    student.model.register_forward_hook(lambda m, i, o: seen.append(("student", m.training, torch.is_grad_enabled())))
    teacher.model.register_forward_hook(lambda m, i, o: seen.append(("teacher", m.training, torch.is_grad_enabled())))
    teacher_before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    x_in, y_in = x[:96].copy(), y[:96].copy()
    trainer = AdversarialTrainerRSLAD(student, teacher, eps=0.1, eps_step=0.025, max_iter=3, verbose=False)
    trainer.fit(x_in, y_in, nb_epochs=1, batch_size=32)

    np.testing.assert_array_equal(x_in, x[:96])
    np.testing.assert_array_equal(y_in, y[:96])
    assert not student.model.training, "the student's previous (eval) mode must be restored"
    for name, value in teacher.model.state_dict().items():
        torch.testing.assert_close(value, teacher_before[name])
    teacher_calls = [s for s in seen if s[0] == "teacher"]
    assert teacher_calls and all(not training and not grad for _, training, grad in teacher_calls)
    student_calls = [s for s in seen if s[0] == "student"]
    # per batch: 3 attack steps in eval mode, then S(x') and S(x) in train mode
    assert [training for _, training, _ in student_calls[:5]] == [False, False, False, True, True]
    # the teacher's probabilities use its own preprocessing
    expected = torch.softmax(torch.from_numpy(teacher.predict(x[:96])), dim=1)
    got = teacher_probs_once(trainer.teacher_logits, torch.from_numpy(x[:96]), 32, torch.device("cpu"))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_one_hot_labels_train_like_indices(fmnist, robust_teacher, classifier_factory) -> None:
    x, y, _, _ = fmnist
    weights = []
    for labels in (y[:128], np.eye(10, dtype=np.float32)[y[:128]]):
        student = classifier_factory(width=4, seed=3)
        AdversarialTrainerRSLAD(student, robust_teacher, eps=0.1, eps_step=0.025, verbose=False).fit(
            x[:128], labels, nb_epochs=1, batch_size=64)
        weights.append(student.model.state_dict())
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name])


def test_fit_generator_and_validation(fmnist, robust_teacher, classifier_factory) -> None:
    x, y, x_test, y_test = fmnist
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x[:256]),
                                                                        torch.from_numpy(y[:256])),
                                         batch_size=64, shuffle=True)
    student = classifier_factory(width=4)
    trainer = AdversarialTrainerRSLAD(student, robust_teacher, eps=0.1, eps_step=0.025, verbose=False)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(student.optimizer, milestones=[1], gamma=0.1)
    trainer.fit_generator(PyTorchDataGenerator(loader, size=256, batch_size=64), nb_epochs=2,
                          validation_data=(x_test[:100], y_test[:100]), scheduler=scheduler)
    assert [round(h["lr"], 6) for h in trainer.history] == [0.05, 0.005]
    assert all(0.0 <= h["val_pgd"] <= h["val_clean"] <= 1.0 for h in trainer.history)
    assert trainer.best_state_dict is not None and trainer.best_epoch in (1, 2)


# ---------------------------------------------------------------- bad input
def test_constructor_errors(robust_teacher, classifier_factory) -> None:
    student = classifier_factory(width=4)
    with pytest.raises(ValueError, match=r"`teacher`.*classes"):
        torch.manual_seed(0)
        AdversarialTrainerRSLAD(student, make_classifier(TinyCNN(4, nb_classes=7), nb_classes=7))
    with pytest.raises(ValueError, match="`eps`"):
        AdversarialTrainerRSLAD(student, robust_teacher, eps=0.0)
    with pytest.raises(ValueError, match="`eps`"):
        AdversarialTrainerRSLAD(student, robust_teacher, eps=1.5)
    with pytest.raises(ValueError, match="`alpha`"):
        AdversarialTrainerRSLAD(student, robust_teacher, alpha=1.2)
    with pytest.raises(ValueError, match="`teacher` is required"):
        AdversarialTrainerRSLAD(student, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`classifier` must be an art"):
        AdversarialTrainerRSLAD(student.model, robust_teacher)  # type: ignore[arg-type]
    no_optimizer = make_classifier(TinyCNN(4))
    no_optimizer._optimizer = None
    with pytest.raises(ValueError, match="no optimizer"):
        AdversarialTrainerRSLAD(no_optimizer, robust_teacher)
    torch.manual_seed(0)
    other_range = make_classifier(TinyCNN(4))
    other_range._clip_values = np.array([0.0, 255.0], dtype=np.float32)
    with pytest.raises(ValueError, match="clip_values"):
        AdversarialTrainerRSLAD(student, other_range)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x, y: (x, y[:-1]), "labels have"),
        (lambda x, y: (x[:, :, :27, :], y), "shape"),
        (lambda x, y: (x, y + 10), r"\[0, 9\]"),
        (lambda x, y: (x, y - 1), r"\[0, 9\]"),
        (lambda x, y: (x * 255.0, y), "clip_values"),
        (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x).astype(np.float32), y), "NaN"),
        (lambda x, y: (x[:0], y[:0]), "empty"),
    ],
)
def test_fit_errors(fmnist, robust_teacher, classifier_factory, mutate, message) -> None:
    x, y, _, _ = fmnist
    x_bad, y_bad = mutate(x[:64].copy(), y[:64].copy())
    student = classifier_factory(width=4)
    before = {k: v.clone() for k, v in student.model.state_dict().items()}
    trainer = AdversarialTrainerRSLAD(student, robust_teacher, eps=0.1, verbose=False)
    with pytest.raises(ValueError, match=message):
        trainer.fit(x_bad, y_bad, nb_epochs=1)
    for name, value in student.model.state_dict().items():
        torch.testing.assert_close(value, before[name])
