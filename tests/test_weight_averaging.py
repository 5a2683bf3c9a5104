"""Weight averaging: EMA and SWA against hand computations, and exact resume with either on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_classifier
from helpers_trainers import assert_same_tensors, interrupt_at
from test_resume import SHAPE, Student

from art_rslad.checkpoint import load_checkpoint
from art_rslad.trainers import AdversarialTrainerBase, AdversarialTrainerRSLAD, AdversarialTrainerSAT
from art_rslad.trainers.averaging import EMA, SWA, make_averager, recompute_batchnorm


def small_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((88, *SHAPE), dtype=np.float32)
    y = rng.integers(0, 10, 88)
    return x[:72], y[:72], x[72:], y[72:]


def small_classifier(seed: int) -> Any:
    torch.manual_seed(seed)
    return make_classifier(Student(), lr=0.05, input_shape=SHAPE)


def checkpoint_state(path: Path) -> dict[str, Any]:
    checkpoint = load_checkpoint(path)
    history = [{k: v for k, v in record.items() if not k.endswith("seconds")} for record in checkpoint["history"]]
    keys = ("model_state", "optimizer_state", "scheduler_state", "rng", "epoch", "best_metric", "best_epoch",
            "extra_state")
    return {key: checkpoint[key] for key in keys} | {"history": history}


def check_resume_is_exact(build: Callable[[int], tuple[AdversarialTrainerBase, Any]], tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch, interrupt: int) -> tuple[AdversarialTrainerBase, Path]:
    """Train 2 epochs of 5 batches without a break and with a KeyboardInterrupt at step ``interrupt`` then a
    resume; every tensor of last.pt, best.pt and the trained student must be identical. ``build(init_seed)``
    returns (trainer, scheduler); the resumed trainer starts from other weights."""
    x, y, x_val, y_val = small_data()

    def fit(trainer: AdversarialTrainerBase, scheduler: Any, folder: Path, **kwargs: Any) -> None:
        torch.manual_seed(7)
        trainer.fit(x, y, validation_data=(x_val, y_val), batch_size=16, nb_epochs=2, scheduler=scheduler,
                    checkpoint_dir=folder, **kwargs)

    whole = tmp_path / "whole"
    trainer, scheduler = build(0)
    fit(trainer, scheduler, whole)
    broken = tmp_path / "broken"
    first, first_scheduler = build(0)
    with monkeypatch.context() as patch:
        interrupt_at(patch, interrupt)
        with pytest.raises(KeyboardInterrupt):
            fit(first, first_scheduler, broken)
    resumed, resumed_scheduler = build(1)
    fit(resumed, resumed_scheduler, broken, resume_from=broken / "last.pt")
    for name in ("last.pt", "best.pt"):
        assert_same_tensors(checkpoint_state(whole / name), checkpoint_state(broken / name), name)
    assert_same_tensors(trainer.get_classifier().model.state_dict(), resumed.get_classifier().model.state_dict())
    return resumed, whole


# ---------------------------------------------------------------- EMA by hand
class Affine(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.register_buffer("statistic", torch.zeros(2, dtype=torch.float64))


def test_ema_is_the_hand_computed_average_with_its_warm_up_copy() -> None:
    model = Affine()
    ema = EMA(decay=0.15)
    ema.start(nb_epochs=1, nb_batches=80, scheduler=None)  # 2.5% of 80 steps: the first 2 steps copy
    assert ema.warmup_steps == 2
    live = [[1.0, 2.0], [3.0, -1.0], [5.0, 0.0], [-2.0, 4.0], [0.5, 0.5]]
    expected = None
    for step, values in enumerate(live, start=1):
        with torch.no_grad():
            model.weight.copy_(torch.tensor(values, dtype=torch.float64))
            model.statistic.fill_(step)
        ema.after_step(model)
        # d = 0 in the warm-up, then min(tau, (1 + n) / (10 + n)) with n = 0, 1, 2: 0.1, then 2/11 > 0.15
        decay = {1: 0.0, 2: 0.0, 3: 0.1, 4: 0.15, 5: 0.15}[step]
        theta = np.asarray(values)
        expected = theta if expected is None or decay == 0.0 else decay * expected + (1 - decay) * theta
        assert ema.average is not None
        assert ema.average["weight"].tolist() == pytest.approx(expected.tolist(), rel=1e-12)
        assert ema.average["statistic"].tolist() == [step, step]  # buffers copied, not averaged
    assert ema.updates == 5


def test_ema_decay_schedule_and_defaults() -> None:
    ema = EMA()
    assert (ema.decay, ema.warmup_fraction) == (0.995, 0.025)
    ema.start(nb_epochs=10, nb_batches=100, scheduler=None)
    assert ema.warmup_steps == 25
    assert [ema.decay_at(step) for step in (1, 25)] == [0.0, 0.0]
    assert ema.decay_at(26) == pytest.approx(1 / 10)
    assert ema.decay_at(10_000) == 0.995
    ema.start(nb_epochs=1, nb_batches=3, scheduler=None)
    assert ema.warmup_steps == 1  # at least the first step is a copy


# ---------------------------------------------------------------- SWA by hand
class Normed(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.norm = torch.nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))


def test_swa_is_an_equal_mean_from_its_start_epoch_with_batchnorm_of_a_clean_pass() -> None:
    torch.manual_seed(0)
    model = Normed()
    batches = [torch.randn(6, 3) for _ in range(3)]
    swa = SWA(start_epoch=1)
    swa.start(nb_epochs=4, nb_batches=3, scheduler=None)
    seen = []
    for epoch in range(4):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        if epoch >= 1:
            seen.append({name: p.detach().clone() for name, p in model.named_parameters()})
        swa.end_epoch(model, epoch, iter(batches), model)
    assert swa.updates == 3 and swa.average is not None
    for name in ("linear.weight", "linear.bias", "norm.weight", "norm.bias"):
        assert torch.allclose(swa.average[name], torch.stack([entry[name] for entry in seen]).mean(0), atol=1e-6)
    # BatchNorm statistics: those of one pass of the averaged model over the batches (equal batches: the mean of
    # the batch means and of the unbiased batch variances)
    with torch.no_grad():
        features = [torch.nn.functional.linear(x, swa.average["linear.weight"], swa.average["linear.bias"])
                    for x in batches]
    assert torch.allclose(swa.average["norm.running_mean"], torch.stack([f.mean(0) for f in features]).mean(0),
                          atol=1e-6)
    assert torch.allclose(swa.average["norm.running_var"], torch.stack([f.var(0) for f in features]).mean(0),
                          atol=1e-6)
    assert model.norm.momentum == 0.1 and not torch.equal(model.linear.weight, swa.average["linear.weight"])


def test_recompute_batchnorm_restores_modes_and_momentum() -> None:
    model = Normed().eval()
    recompute_batchnorm(model, [torch.randn(4, 3)], model)
    assert not model.training and not model.norm.training and model.norm.momentum == 0.1
    assert int(model.norm.num_batches_tracked) == 1


def test_swa_start_epoch_defaults() -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    swa = SWA()
    swa.start(8, 1, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[5, 3]))
    assert swa.first_epoch == 3  # the first epoch at the lowered learning rate
    swa.start(8, 1, None)
    assert swa.first_epoch == 6  # 75% of the epochs
    swa.start(2, 1, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[10]))
    assert swa.first_epoch == 1  # at most the last epoch
    with pytest.raises(ValueError, match="start_epoch"):
        SWA(start_epoch=-1)


def test_make_averager_names_and_errors() -> None:
    assert make_averager(None) is None
    assert isinstance(make_averager("ema"), EMA) and isinstance(make_averager("SWA"), SWA)
    custom = EMA(decay=0.999)
    assert make_averager(custom) is custom
    with pytest.raises(ValueError, match="weight_averaging"):
        make_averager("polyak")
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)


# ---------------------------------------------------------------- in the shared loop
def test_trainer_returns_and_publishes_the_averaged_student(tmp_path: Path) -> None:
    x, y, x_val, y_val = small_data()
    student = small_classifier(0)
    trainer = AdversarialTrainerSAT(student, eps=0.1, eps_step=0.025, max_iter=2, verbose=False,
                                    weight_averaging="ema")
    assert trainer.hyperparameters()["weight_averaging"] == {"name": "ema", "decay": 0.995, "warmup_fraction": 0.025}
    trainer.fit(x, y, validation_data=(x_val, y_val), batch_size=16, nb_epochs=2, checkpoint_dir=tmp_path)
    assert trainer.averager is not None and trainer.averager.average is not None
    average = trainer.averager.average
    assert_same_tensors(average, student.model.state_dict())
    last = load_checkpoint(tmp_path / "last.pt")
    assert_same_tensors(average, last["model_state"])
    live = last["extra_state"]["live_model_state"]
    assert not torch.equal(live["head.weight"], average["head.weight"])
    assert trainer.best_state_dict is not None
    best = load_checkpoint(tmp_path / "best.pt")
    assert_same_tensors(best["model_state"], trainer.best_state_dict)
    assert not torch.equal(best["extra_state"]["live_model_state"]["head.weight"], best["model_state"]["head.weight"])
    # validation saw the averaged student: revalidating it gives the recorded numbers of the last epoch
    assert trainer.validate(x_val, y_val)["val_pgd"] == trainer.history[-1]["val_pgd"]
    assert "weight_averaging" not in AdversarialTrainerSAT(small_classifier(0), verbose=False).hyperparameters()


@pytest.mark.parametrize("averaging", ["ema", "swa", "swa-from-0"])
def test_resume_with_weight_averaging_is_exact(averaging: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """SWA starts at the scheduler's milestone (epoch 1) or at epoch 0 (an average exists at the interrupt)."""
    torch.manual_seed(100)
    teacher = make_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), input_shape=SHAPE)

    def build(init_seed: int) -> tuple[AdversarialTrainerBase, Any]:
        student = small_classifier(init_seed)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(student.optimizer, milestones=[1], gamma=0.1)
        averager = SWA(start_epoch=0) if averaging == "swa-from-0" else averaging
        trainer = AdversarialTrainerRSLAD(student, teacher, eps=0.1, eps_step=0.025, max_iter=2, scale=1.0, seed=3,
                                          verbose=False, weight_averaging=averager)
        return trainer, scheduler

    resumed, whole = check_resume_is_exact(build, tmp_path, monkeypatch, interrupt=8)  # epoch 2, batch 3
    assert resumed.averager is not None
    assert resumed.averager.updates == {"ema": 10, "swa": 1, "swa-from-0": 2}[averaging]
    assert_same_tensors(load_checkpoint(whole / "last.pt")["model_state"], resumed.get_classifier().model.state_dict())
