"""Trainer speed options: off by default (a step equals the plain RSLAD recipe); bf16 and channels_last on CPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from art_rslad import AdversarialTrainerRSLAD
from art_rslad.trainers.base import Batch

SHAPE = (2, 8, 8)
EPS, EPS_STEP = 0.1, 0.025


class TinyNet(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.bn(self.conv(x))).flatten(1))


def classifier(seed: int, device: str = "cpu", shape: tuple[int, ...] = SHAPE) -> PyTorchClassifier:
    model = TinyNet(seed).to(device)
    return PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10,
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.1), clip_values=(0.0, 1.0),
                             device_type="gpu" if device == "cuda" else "cpu")


def batch(trainer: AdversarialTrainerRSLAD, nb: int = 16, device: str = "cpu") -> Batch:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand((nb, *SHAPE), generator=generator).to(device)
    y = torch.randint(0, 10, (nb,), generator=generator).to(device)
    assert trainer.teacher is not None
    trainer.teacher.model.eval()
    teacher_probs = F.softmax(trainer.teacher_logits(x), dim=1)
    return Batch(x, y, teacher_probs)


def plain_rslad_step(student: torch.nn.Module, batch: Batch, seed: int) -> None:
    """One step of the official RSLAD recipe in plain PyTorch (SGD lr 0.1, the trainer's start noise)."""
    x, teacher_probs = batch.x, batch.teacher_probs
    assert teacher_probs is not None
    student.eval()
    x_adv = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    for _ in range(10):
        x_adv.requires_grad_(True)
        loss = F.kl_div(F.log_softmax(student(x_adv), dim=1), teacher_probs, reduction="sum")
        (grad,) = torch.autograd.grad(loss, [x_adv])
        x_adv = torch.min(torch.max(x_adv.detach() + EPS_STEP * grad.sign(), x - EPS), x + EPS).clamp(0.0, 1.0)
    student.train()
    kl_adv = F.kl_div(F.log_softmax(student(x_adv), dim=1), teacher_probs, reduction="none").mean()
    kl_nat = F.kl_div(F.log_softmax(student(x), dim=1), teacher_probs, reduction="none").mean()
    loss = 5 / 6 * kl_adv + 1 / 6 * kl_nat  # the official mean over B x C elements (= scale 0.1 on 10 classes)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_options_are_off_by_default_and_a_step_equals_the_plain_recipe() -> None:
    student = classifier(0)
    reference = copy.deepcopy(student.model)
    trainer = AdversarialTrainerRSLAD(student, classifier(1), eps=EPS, eps_step=EPS_STEP, seed=4, verbose=False)
    assert trainer.amp_dtype is None and not trainer.channels_last
    assert student.model.conv.weight.is_contiguous()
    data = batch(trainer)
    trainer._train_step(data)
    plain_rslad_step(reference, data, seed=4)
    for (name, ours), theirs in zip(student.model.state_dict().items(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6, msg=f"{name} differs from the plain recipe")


def record_conv(model: torch.nn.Module, seen: list[tuple[torch.dtype, bool]]) -> torch.utils.hooks.RemovableHandle:
    """Record (output dtype, input is channels_last) of every forward through ``model.conv``."""
    def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen.append((output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last)))

    return model.conv.register_forward_hook(hook)


def test_bf16_autocast_runs_attack_and_loss_in_bf16_with_float32_logits() -> None:
    student, teacher = classifier(0), classifier(1)
    trainer = AdversarialTrainerRSLAD(student, teacher, eps=EPS, eps_step=EPS_STEP, amp_dtype=torch.bfloat16,
                                      verbose=False)
    seen: list[tuple[torch.dtype, bool]] = []
    handle = record_conv(student.model, seen)
    data = batch(trainer)
    assert data.teacher_probs is not None and data.teacher_probs.dtype == torch.float32
    x_adv = trainer._craft(data)
    assert (x_adv - data.x).abs().max() <= EPS + 1e-6 and x_adv.dtype == torch.float32
    assert trainer.student_logits(data.x).dtype == torch.float32
    before = [p.detach().clone() for p in student.model.parameters()]
    loss, _ = trainer._train_step(data)
    handle.remove()
    assert len(seen) == 10 + 1 + 12 and all(dtype == torch.bfloat16 for dtype, _ in seen)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, student.model.parameters(), strict=True))


def test_channels_last_converts_models_and_inputs_and_keeps_logits() -> None:
    student, teacher = classifier(0), classifier(1)
    plain_logits_model = copy.deepcopy(student.model).eval()
    trainer = AdversarialTrainerRSLAD(student, teacher, eps=EPS, eps_step=EPS_STEP, channels_last=True,
                                      verbose=False)
    for model in (student.model, teacher.model):
        assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen: list[tuple[torch.dtype, bool]] = []
    handle = record_conv(student.model, seen)
    data = batch(trainer)
    trainer._train_step(data)
    handle.remove()
    assert len(seen) == 12 and all(channels_last for _, channels_last in seen)
    student.model.eval()
    with torch.no_grad():
        plain_logits_model.load_state_dict(student.model.state_dict())
        torch.testing.assert_close(trainer.student_logits(data.x), plain_logits_model(data.x), rtol=1e-5, atol=1e-5)


def test_fit_with_both_options_trains() -> None:
    trainer = AdversarialTrainerRSLAD(classifier(0), classifier(1), eps=EPS, eps_step=EPS_STEP,
                                      amp_dtype=torch.bfloat16, channels_last=True, verbose=False)
    x = np.random.default_rng(0).random((24, *SHAPE), dtype=np.float32)
    trainer.fit(x, np.arange(24) % 10, batch_size=8, nb_epochs=1)
    assert np.isfinite(trainer.history[-1]["loss"])


def test_bad_speed_options_are_refused() -> None:
    with pytest.raises(ValueError, match="amp_dtype"):
        AdversarialTrainerRSLAD(classifier(0), classifier(1), amp_dtype=torch.float16)
    flat = classifier(0, shape=(128,))
    with pytest.raises(ValueError, match="channels_last"):
        AdversarialTrainerRSLAD(flat, classifier(1, shape=(128,)), channels_last=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA variant of the bf16 + channels_last step")
def test_bf16_channels_last_step_on_cuda() -> None:
    trainer = AdversarialTrainerRSLAD(classifier(0, "cuda"), classifier(1, "cuda"), eps=EPS, eps_step=EPS_STEP,
                                      amp_dtype=torch.bfloat16, channels_last=True, verbose=False)
    loss, _ = trainer._train_step(batch(trainer, device="cuda"))
    assert torch.isfinite(loss)


def test_resume_refuses_another_amp_dtype(tmp_path) -> None:
    """bf16 changes the numbers, so a run may not continue under another precision."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, *SHAPE), dtype=np.float32), rng.integers(0, 10, 32)
    teacher = classifier(2)
    AdversarialTrainerRSLAD(classifier(1), teacher, eps=EPS, eps_step=EPS_STEP, max_iter=2, verbose=False).fit(
        x, y, batch_size=16, nb_epochs=1, checkpoint_dir=tmp_path)
    resumed = AdversarialTrainerRSLAD(classifier(1), teacher, eps=EPS, eps_step=EPS_STEP, max_iter=2,
                                      verbose=False, amp_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="amp_dtype"):
        resumed.fit(x, y, batch_size=16, nb_epochs=1, resume_from=tmp_path / "last.pt")
