"""IGDM, AdaIAD and PeerAiD: their losses against hand computations, and their trainers on the shared loop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from conftest import make_classifier
from test_losses_baselines import ADV, LABELS, LABELS_T, NAT, TEACHER_ADV, B, C, kl, mean, softmax, t
from test_resume import SHAPE, Student
from test_weight_averaging import check_resume_is_exact, small_classifier, small_data

import art_rslad
from art_rslad.attacks import InputGradientPGD
from art_rslad.checkpoint import load_checkpoint
from art_rslad.estimators import model_modes
from art_rslad.losses import adaiad_loss, igdm_loss, peeraid_peer_loss, peeraid_student_loss
from art_rslad.trainers import (
    AdversarialTrainerAdaAD,
    AdversarialTrainerARD,
    AdversarialTrainerBase,
    AdversarialTrainerIAD,
    AdversarialTrainerRSLAD,
    Batch,
)
from art_rslad.trainers.adaad import StudentTeacherLogits
from art_rslad.trainers.adaiad import AdversarialTrainerAdaIAD
from art_rslad.trainers.peeraid import AdversarialTrainerPeerAiD
from art_rslad.trainers.registry import get_method

MIRROR = [[1.5, 0.0, 0.5], [0.5, -1.0, 1.0]]
TEACHER_MIRROR = [[0.0, 1.0, 0.5], [1.0, 0.5, 0.0]]
PEER_ADV = [[0.3, 2.0, -0.5], [1.0, 0.0, 0.2]]


def minus(left: list[float], right: list[float]) -> list[float]:
    return [a - b for a, b in zip(left, right, strict=True)]


def kl_of_probs(p: list[float], q: list[float]) -> float:
    return sum(p_k * (math.log(p_k) - math.log(q_k)) for p_k, q_k in zip(p, q, strict=True))


# ---------------------------------------------------------------- the losses by hand
def test_igdm_loss_is_the_batch_mean_kl_of_softmaxed_logit_differences() -> None:
    expected = mean([kl(softmax(minus(TEACHER_ADV[i], TEACHER_MIRROR[i])), minus(ADV[i], MIRROR[i]))
                     for i in range(B)])
    student_adv, student_mirror = t(ADV).requires_grad_(True), t(MIRROR).requires_grad_(True)
    teacher_adv, teacher_mirror = t(TEACHER_ADV).requires_grad_(True), t(TEACHER_MIRROR).requires_grad_(True)
    got = igdm_loss(student_adv, student_mirror, teacher_adv, teacher_mirror)
    assert got.shape == () and got.item() == pytest.approx(expected)
    got.backward()
    assert student_adv.grad is not None and student_mirror.grad is not None
    assert teacher_adv.grad is None and teacher_mirror.grad is None
    # equal logit differences: no disagreement
    assert igdm_loss(t(ADV), t(MIRROR), t(ADV) + 1.0, t(MIRROR) + 1.0).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 30.0])
def test_adaiad_loss_matches_formula(temperature: float) -> None:
    weights = [softmax(TEACHER_ADV[i])[LABELS[i]] ** 0.1 for i in range(B)]
    distill = temperature**2 * mean([kl(softmax(TEACHER_ADV[i], temperature), ADV[i], temperature)
                                     for i in range(B)])
    introspect = mean([(1 - weights[i]) * kl(softmax(NAT[i]), ADV[i]) for i in range(B)])
    got = adaiad_loss(t(ADV), t(NAT), t(TEACHER_ADV), torch.tensor(weights, dtype=torch.float64),
                      temperature=temperature)
    assert got.item() == pytest.approx(distill + introspect)
    assert adaiad_loss(t(ADV), None, t(TEACHER_ADV), None, temperature=temperature).item() == pytest.approx(distill)


def test_adaiad_introspection_target_is_not_detached() -> None:
    nat = t(NAT).requires_grad_(True)
    teacher_adv = t(TEACHER_ADV).requires_grad_(True)
    adaiad_loss(t(ADV), nat, teacher_adv, torch.tensor([0.3, 0.9], dtype=torch.float64)).backward()
    assert nat.grad is not None and nat.grad.abs().sum() > 0
    assert teacher_adv.grad is None


@pytest.mark.parametrize(("kl_weight", "temperature"), [(0.1, 1.0), (0.5, 2.0)])
def test_peeraid_peer_loss_matches_formula(kl_weight: float, temperature: float) -> None:
    cross_entropy = mean([-math.log(softmax(PEER_ADV[i])[LABELS[i]]) for i in range(B)])
    kl_sum = sum(kl(softmax(ADV[i], temperature), PEER_ADV[i], temperature) for i in range(B))
    expected = cross_entropy + kl_weight * temperature**2 * kl_sum / (B * C)
    got = peeraid_peer_loss(t(PEER_ADV), t(ADV), LABELS_T, kl_weight=kl_weight, temperature=temperature)
    assert got.item() == pytest.approx(expected)


def test_peeraid_student_loss_matches_formula() -> None:
    tau = 5.0
    expected = tau**2 * (sum(kl(softmax(PEER_ADV[i], tau), ADV[i], tau) for i in range(B))
                         + sum(kl(softmax(NAT[i], tau), ADV[i], tau) for i in range(B))) / (B * C)
    assert peeraid_student_loss(t(ADV), t(NAT), t(PEER_ADV)).item() == pytest.approx(expected)


def test_peeraid_gradients_the_peer_loss_reaches_the_student_the_student_loss_not_the_peer() -> None:
    adv, peer = t(ADV).requires_grad_(True), t(PEER_ADV).requires_grad_(True)
    peeraid_peer_loss(peer, adv, LABELS_T).backward()
    assert adv.grad is not None and adv.grad.abs().sum() > 0  # S(x') is not detached in the peer's loss
    adv, nat, peer = t(ADV).requires_grad_(True), t(NAT).requires_grad_(True), t(PEER_ADV).requires_grad_(True)
    peeraid_student_loss(adv, nat, peer).backward()
    assert peer.grad is None and nat.grad is not None and nat.grad.abs().sum() > 0


# ---------------------------------------------------------------- IGDM on the distillation trainers
@pytest.fixture(scope="module")
def small_teacher() -> Any:
    torch.manual_seed(100)
    return make_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), input_shape=SHAPE)


DISTILLERS = [AdversarialTrainerRSLAD, AdversarialTrainerARD, AdversarialTrainerIAD, AdversarialTrainerAdaAD,
              AdversarialTrainerAdaIAD]


def _batch(trainer: AdversarialTrainerBase) -> tuple[Batch, torch.Tensor]:
    x, y, _, _ = small_data()
    x_t, y_t = torch.from_numpy(x[:8]), torch.from_numpy(y[:8])
    assert trainer.teacher is not None
    probs = torch.softmax(trainer.teacher_logits(x_t), dim=1)
    x_adv = (x_t + 0.05 * torch.sign(torch.randn_like(x_t))).clamp(0, 1)
    return Batch(x_t, y_t, probs), x_adv


def _count_forwards(module: torch.nn.Module) -> dict[str, int]:
    calls = {"count": 0}
    module.register_forward_hook(lambda *_: calls.__setitem__("count", calls["count"] + 1))
    return calls


@pytest.mark.parametrize("trainer_class", DISTILLERS)
def test_igdm_term_is_the_ramped_formula_and_off_at_zero(trainer_class: type[AdversarialTrainerBase],
                                                         small_teacher: Any) -> None:
    torch.manual_seed(0)
    student = make_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), input_shape=SHAPE)
    plain = trainer_class(student, small_teacher, verbose=False)
    with_igdm = trainer_class(student, small_teacher, verbose=False, igdm_alpha=2.0)
    assert "igdm_alpha" not in plain.hyperparameters() and with_igdm.hyperparameters()["igdm_alpha"] == 2.0
    batch, x_adv = _batch(plain)
    teacher_calls, student_calls = _count_forwards(small_teacher.model), _count_forwards(student.model)
    for trainer in (plain, with_igdm):
        trainer.nb_epochs, trainer.epoch = 4, 2  # the third of four epochs: weight 2 * 3 / 4
    with model_modes((student.model, True)):
        base_loss, adv_logits = plain._loss(batch, x_adv)
        counts = teacher_calls["count"], student_calls["count"]
        loss, _ = with_igdm._loss(batch, x_adv)
        extra = teacher_calls["count"] - 2 * counts[0], student_calls["count"] - 2 * counts[1]
        mirror = 2 * batch.x - x_adv
        with torch.no_grad():
            expected_term = igdm_loss(adv_logits, student.model(mirror), small_teacher.model(x_adv),
                                      small_teacher.model(mirror))
    assert extra == (2, 1)  # two teacher forwards (x', x - d) and one student forward (x - d)
    assert loss.item() == pytest.approx(base_loss.item() + 2.0 * 3 / 4 * expected_term.item(), rel=1e-6)
    assert (mirror < 0).any() or (mirror > 1).any()  # the mirror input is not clipped


def test_igdm_weight_ramps_linearly_to_alpha(small_teacher: Any) -> None:
    trainer = AdversarialTrainerRSLAD(small_classifier(0), small_teacher, verbose=False, igdm_alpha=1.5)
    trainer.nb_epochs = 5
    weights = []
    for epoch in range(5):
        trainer.epoch = epoch
        weights.append(trainer.terms[0].weight(trainer.epoch, trainer.nb_epochs))
    assert weights == pytest.approx([1.5 * e / 5 for e in range(1, 6)])
    with pytest.raises(ValueError, match="igdm_alpha"):
        AdversarialTrainerARD(small_classifier(0), small_teacher, igdm_alpha=-1.0)


def test_igdm_trains_every_distiller_for_an_epoch(small_teacher: Any) -> None:
    x, y, _, _ = small_data()
    for trainer_class in DISTILLERS:
        student = small_classifier(0)
        before = {k: v.clone() for k, v in student.model.state_dict().items()}
        trainer_class(student, small_teacher, eps=0.1, eps_step=0.025, max_iter=2, verbose=False,
                      igdm_alpha=1.0).fit(x, y, batch_size=24, nb_epochs=1)
        assert all(torch.isfinite(v).all() for v in student.model.state_dict().values())
        assert not torch.equal(before["head.weight"], student.model.state_dict()["head.weight"])


# ---------------------------------------------------------------- AdaIAD
def test_adaiad_defaults_attack_and_loss_switch(small_teacher: Any) -> None:
    trainer = art_rslad.AdversarialTrainerAdaIAD(small_classifier(0), small_teacher, verbose=False)
    assert (trainer.temperature, trainer.beta, trainer.warmup_epochs) == (30.0, 0.1, None)
    trainer.nb_epochs = 200
    assert trainer.warmup_epoch() == 60
    assert isinstance(trainer.attack, InputGradientPGD)
    assert isinstance(trainer.attack.estimator.model, StudentTeacherLogits)  # AdaAD's inner maximisation
    assert trainer.attack_random_init == "gaussian"
    assert not trainer.default_attack_training_mode
    batch, x_adv = _batch(trainer)
    student = trainer.get_classifier().model
    with model_modes((student, False)), torch.no_grad():  # eval mode: no dropout noise between the two sides
        adv_logits, nat_logits = student(x_adv), student(batch.x)
        teacher_adv = small_teacher.model(x_adv)
        for epoch, introspect in ((59, False), (60, True)):
            trainer.epoch = epoch
            loss, _ = trainer._loss(batch, x_adv)
            weights = torch.softmax(teacher_adv, 1).gather(1, batch.y[:, None]).squeeze(1) ** 0.1
            expected = adaiad_loss(adv_logits, nat_logits if introspect else None, teacher_adv,
                                   weights if introspect else None)
            assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert trainer.hyperparameters()["warmup_epochs"] == 60
    with pytest.raises(ValueError, match="temperature"):
        AdversarialTrainerAdaIAD(small_classifier(0), small_teacher, temperature=0.0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        AdversarialTrainerAdaIAD(small_classifier(0), small_teacher, warmup_epochs=-2)


# ---------------------------------------------------------------- PeerAiD
def _peeraid(init_seed: int, **kwargs: Any) -> AdversarialTrainerPeerAiD:
    student = small_classifier(init_seed)
    peer = small_classifier(init_seed + 50)
    return AdversarialTrainerPeerAiD(student, peer, eps=0.1, eps_step=0.025, max_iter=2, seed=3, verbose=False,
                                     **kwargs)


def test_peeraid_constructor_errors() -> None:
    student = small_classifier(0)
    with pytest.raises(ValueError, match="not the student"):
        AdversarialTrainerPeerAiD(student, student)
    with pytest.raises(ValueError, match="classes"):
        AdversarialTrainerPeerAiD(student, make_classifier(Student(), input_shape=SHAPE, nb_classes=5))
    with pytest.raises(ValueError, match="inputs"):
        AdversarialTrainerPeerAiD(student, make_classifier(Student(), input_shape=(1, 8, 9)))
    model = Student()
    peer = PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), SHAPE, 10, clip_values=(0.0, 2.0),
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.1), device_type="cpu")
    with pytest.raises(ValueError, match="clip_values"):
        AdversarialTrainerPeerAiD(student, peer)
    with pytest.raises(ValueError, match="uses no teacher"):
        AdversarialTrainerPeerAiD(student, small_classifier(1), teacher=small_classifier(2))
    with pytest.raises(ValueError, match="temperature"):
        AdversarialTrainerPeerAiD(student, small_classifier(1), temperature=0.0)
    method = get_method("peeraid")
    assert [net.name for net in method.trained_networks] == ["peer"] and not method.needs_teacher
    assert method.family == "peer distillation" and not method.distributed_ok
    method = get_method("adaiad")
    assert method.needs_teacher and not method.trained_networks and method.family == "distillation"


def test_peeraid_step_trains_both_networks_and_the_peer_loss_reaches_the_student() -> None:
    trainer = _peeraid(0)
    student, peer = trainer.get_classifier(), trainer.get_peer()
    batch, _ = _batch_without_teacher()
    with model_modes((student.model, False), (peer.model, False)):
        x_adv = trainer._craft(batch)
    assert float((x_adv - batch.x).abs().max()) <= 0.1 + 1e-6
    with model_modes((student.model, True)):
        adv_logits = student.model(x_adv)
        peer_logits = peer.model(x_adv)
        peer_only = peeraid_peer_loss(peer_logits, adv_logits, batch.y)
        gradients = torch.autograd.grad(peer_only, list(student.model.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in gradients)
    before = [{k: v.clone() for k, v in net.model.state_dict().items()} for net in (student, peer)]
    peer.model.eval()
    trainer._train_step(batch)
    for state, net in zip(before, (student, peer), strict=True):
        assert not torch.equal(state["head.weight"], net.model.state_dict()["head.weight"])
    assert not peer.model.training  # the peer's mode is restored after the attack and the loss


def _batch_without_teacher() -> tuple[Batch, None]:
    x, y, _, _ = small_data()
    return Batch(torch.from_numpy(x[:8]), torch.from_numpy(y[:8]), None), None


def test_peeraid_resume_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def build(init_seed: int) -> tuple[AdversarialTrainerBase, Any]:
        trainer = _peeraid(init_seed)
        return trainer, torch.optim.lr_scheduler.MultiStepLR(trainer.get_classifier().optimizer, [1], 0.1)

    resumed, whole = check_resume_is_exact(build, tmp_path, monkeypatch, interrupt=6)  # epoch 2, batch 1
    assert isinstance(resumed, AdversarialTrainerPeerAiD)
    saved = load_checkpoint(whole / "last.pt")["extra_state"]
    assert set(saved) == {"peer_model_state", "peer_optimizer_state"}
    for key, value in saved["peer_model_state"].items():
        assert torch.equal(value, resumed.get_peer().model.state_dict()[key])


def test_peeraid_step_zeroes_both_gradients_first() -> None:
    results = []
    for stale in (False, True):
        trainer = _peeraid(0)
        nets = (trainer.get_classifier(), trainer.get_peer())
        if stale:  # gradients left over from elsewhere must not enter the step
            for net in nets:
                for parameter in net.model.parameters():
                    parameter.grad = torch.full_like(parameter, 1e3)
        torch.manual_seed(5)
        trainer._train_step(_batch_without_teacher()[0])
        results.append([net.model.state_dict()["head.weight"].clone() for net in nets])
    for clean, stale in zip(*results, strict=True):
        assert torch.equal(clean, stale)
