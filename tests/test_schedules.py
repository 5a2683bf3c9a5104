"""The shared loop's lr schedules: CIARD's cosine-times-Gaussian curve on fixed numbers, its scheduler epoch by epoch,
the joint schedule over further optimizers, a state that checkpoints into weights_only files, and the first lr drop
SWA starts from."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from art_rslad.trainers.averaging import SWA
from art_rslad.trainers.schedules import (
    CosineExpLR,
    JointCosineExpLR,
    cosine_exp_lr,
    cosine_schedule,
    first_lr_drop,
    multistep_schedule,
)


def optimizer(lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr, momentum=0.9)


def ciard_student_lr(epoch: int) -> float:
    """The official student lr at the 1-based ``epoch`` of 300, written out."""
    if epoch < 150:
        return 0.1
    return 0.1 * (0.5 + 0.5 * math.cos(math.pi * (epoch - 150) / 150)) * math.exp(-0.01 * (epoch - 150) ** 2 / 150**2)


def test_ciard_learning_rates() -> None:
    assert cosine_exp_lr(149, 0.1, 150, 300, 0.1) == 0.1
    assert cosine_exp_lr(150, 0.1, 150, 300, 0.1) == pytest.approx(0.1)
    assert cosine_exp_lr(225, 0.1, 150, 300, 0.1) == pytest.approx(0.1 * 0.5 * math.exp(-0.0025))
    assert cosine_exp_lr(49, 1e-4, 50, 300, 0.0) == 0.0
    assert cosine_exp_lr(300, 1e-4, 50, 300, 0.0) == pytest.approx(0.0, abs=1e-20)


def test_the_cosine_scheduler_sets_the_official_lr_at_each_epoch() -> None:
    """0-based epoch i trains at the official lr of the 1-based epoch i + 1."""
    opt = optimizer()
    scheduler = CosineExpLR(opt, 150, 300)
    rates = []
    for _ in range(300):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    for epoch, expected in ((0, 0.1), (149, 0.1), (150, 0.1 * (0.5 + 0.5 * math.cos(math.pi / 150))
                                                     * math.exp(-0.01 / 150**2)),
                            (225, 0.1 * (0.5 + 0.5 * math.cos(math.pi * 76 / 150)) * math.exp(-0.01 * 76**2 / 150**2)),
                            (299, 0.0)):
        assert rates[epoch] == pytest.approx(expected, abs=1e-15), epoch
        assert rates[epoch] == pytest.approx(ciard_student_lr(epoch + 1), abs=1e-15), epoch
    assert rates[149] == 0.1 and rates[150] < 0.1 and rates[225] == pytest.approx(0.048827, abs=1e-6)
    assert opt.param_groups[0]["lr"] == 0.0  # stepped past the end: stays at the end


def test_a_joint_cosine_schedule_moves_every_optimizer_and_checkpoints_without_pickles(tmp_path: Path) -> None:
    student, peer = optimizer(0.1), optimizer(0.3)
    scheduler = cosine_schedule(student, 1, 4, [peer])
    assert isinstance(scheduler, JointCosineExpLR)
    for _ in range(2):
        student.step()
        peer.step()
        scheduler.step()
    assert student.param_groups[0]["lr"] == pytest.approx(cosine_exp_lr(3, 0.1, 1, 4, 0.1))
    assert peer.param_groups[0]["lr"] == pytest.approx(cosine_exp_lr(3, 0.3, 1, 4, 0.3))
    torch.save(scheduler.state_dict(), tmp_path / "state.pt")
    fresh_student, fresh_peer = optimizer(0.1), optimizer(0.3)
    resumed = cosine_schedule(fresh_student, 1, 4, [fresh_peer])
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for opt in (student, peer, fresh_student, fresh_peer):
        opt.step()
    scheduler.step()
    resumed.step()
    assert fresh_student.param_groups[0]["lr"] == student.param_groups[0]["lr"]
    assert fresh_peer.param_groups[0]["lr"] == peer.param_groups[0]["lr"]
    assert type(cosine_schedule(optimizer(), 1, 4)) is CosineExpLR


def test_the_first_lr_drop_of_each_schedule_starts_swa_by_default() -> None:
    step, cosine = multistep_schedule(optimizer(), [3, 5], 0.1), cosine_schedule(optimizer(), 4, 8)
    assert first_lr_drop(step) == 3 and first_lr_drop(cosine) == 4 and first_lr_drop(None) is None
    for scheduler, first in ((step, 3), (cosine, 4), (None, 6)):  # without one: 75% of the epochs
        swa = SWA()
        swa.start(8, 2, scheduler)
        assert swa.first_epoch == first
    explicit = SWA(start_epoch=2)
    explicit.start(8, 2, cosine)
    assert explicit.first_epoch == 2


def test_a_cosine_schedule_must_start_before_its_end() -> None:
    with pytest.raises(ValueError, match="start_epoch < end_epoch"):
        cosine_exp_lr(1, 0.1, 300, 150, 0.1)
    with pytest.raises(ValueError, match=r"cosine schedule needs 0 <= start_epoch < end_epoch, got 5 and 5"):
        CosineExpLR(optimizer(), 5, 5)
