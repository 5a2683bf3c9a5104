"""Learning-rate schedules of the shared loop: the step schedule (MultiStepLR) or CIARD's cosine-times-Gaussian
decay, joint over the networks a method trains beside the student, and the first epoch each lowers the lr.

Every schedule here keeps plain numbers as its state (no lambda), so it checkpoints into files that load with
``torch.load(..., weights_only=True)`` and a resumed run continues it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

Scheduler = torch.optim.lr_scheduler.LRScheduler

#: The schedule kinds a run may name (``lr_schedule``): ``"step"`` (x gamma after each milestone) or ``"cosine"``.
LR_SCHEDULES: tuple[str, ...] = ("step", "cosine")


def cosine_exp_lr(epoch: float, base_lr: float, start_epoch: float, end_epoch: float, lr_before_start: float
                  ) -> float:
    """CIARD's learning rates: ``lr_before_start`` while epoch < start, then
    ``base * (1/2 + cos(pi * (e - s) / (E - s)) / 2) * exp(-0.01 * (e - s)^2 / (E - s)^2)`` (1-based epochs).

    The student's is ``(e, 0.1, 150, 300, 0.1)``; the robust teacher's ``(e, 1e-4, 50, 300, 0.0)``.

    | Paper link: https://arxiv.org/abs/2509.12633
    """
    if not 0 <= start_epoch < end_epoch:
        raise ValueError(f"Need 0 <= start_epoch < end_epoch, got {start_epoch} and {end_epoch}.")
    if epoch < start_epoch:
        return lr_before_start
    progress = (epoch - start_epoch) / (end_epoch - start_epoch)
    return base_lr * (0.5 + 0.5 * math.cos(math.pi * progress)) * math.exp(-0.01 * progress**2)


class CosineExpLR(Scheduler):
    """Each lr at its base until epoch ``start_epoch``, then on :func:`cosine_exp_lr`'s decay to 0 at the run's
    last epoch, ``end_epoch`` (CIARD's student: 0.1 until epoch 150 of 300). Stepped once per epoch: the lr of the
    0-based epoch ``i`` is :func:`cosine_exp_lr` at the 1-based ``e = i + 1``, so the first lowered lr is that of
    0-based epoch ``start_epoch``.

    :param optimizer: The optimizer whose learning rates it sets.
    :param start_epoch: The last epoch (1-based) at the base lr, in [0, ``end_epoch``).
    :param end_epoch: The run's epochs: the lr of its last epoch is 0.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, start_epoch: int, end_epoch: int) -> None:
        if not 0 <= start_epoch < end_epoch:
            raise ValueError(f"The cosine schedule needs 0 <= start_epoch < end_epoch, got {start_epoch} and "
                             f"{end_epoch}.")
        self.start_epoch, self.end_epoch = int(start_epoch), int(end_epoch)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        epoch = min(self.last_epoch + 1, self.end_epoch)  # after the last epoch's step: stays at the end
        return [cosine_exp_lr(epoch, float(base), self.start_epoch, self.end_epoch, float(base))
                for base in self.base_lrs]


class JointSchedule:
    """Mixed into a scheduler: steps and checkpoints the schedules of further optimizers (the networks a method trains
    beside the student, e.g. PeerAiD's peer) with the student's, so the shared loop steps and checkpoints one."""

    others: list[Scheduler]

    def step(self, epoch: int | None = None) -> None:
        super().step()  # type: ignore[misc]
        for other in self.others:
            other.step()

    def state_dict(self) -> dict[str, Any]:
        state = {key: value for key, value in super().state_dict().items() if key != "others"}  # type: ignore[misc]
        return {**state, "others": [other.state_dict() for other in self.others]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        others = state.pop("others")
        super().load_state_dict(state)  # type: ignore[misc]
        for other, other_state in zip(self.others, others, strict=True):
            other.load_state_dict(other_state)


class JointMultiStepLR(JointSchedule, torch.optim.lr_scheduler.MultiStepLR):
    """A MultiStepLR on the student's optimizer that moves further optimizers by the same milestones.

    :param optimizer: The student's optimizer.
    :param milestones: Epochs after which every learning rate is multiplied by ``gamma``.
    :param gamma: The factor.
    :param others: The other optimizers.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float,
                 others: Sequence[torch.optim.Optimizer]) -> None:
        self.others = []  # the base class steps once while built
        super().__init__(optimizer, list(milestones), gamma=gamma)
        self.others = [torch.optim.lr_scheduler.MultiStepLR(other, list(milestones), gamma=gamma) for other in others]


class JointCosineExpLR(JointSchedule, CosineExpLR):
    """A :class:`CosineExpLR` on the student's optimizer that moves further optimizers on the same curve.

    :param optimizer: The student's optimizer.
    :param start_epoch: The last epoch (1-based) at the base lr.
    :param end_epoch: The run's epochs.
    :param others: The other optimizers.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, start_epoch: int, end_epoch: int,
                 others: Sequence[torch.optim.Optimizer]) -> None:
        self.others = []
        super().__init__(optimizer, start_epoch, end_epoch)
        self.others = [CosineExpLR(other, start_epoch, end_epoch) for other in others]


def multistep_schedule(optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float,
                       others: Sequence[torch.optim.Optimizer] = ()) -> torch.optim.lr_scheduler.MultiStepLR:
    """The step schedule: a MultiStepLR, joint over ``others`` where a method trains further networks."""
    if others:
        return JointMultiStepLR(optimizer, milestones, gamma, others)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=gamma)


def cosine_schedule(optimizer: torch.optim.Optimizer, start_epoch: int, end_epoch: int,
                    others: Sequence[torch.optim.Optimizer] = ()) -> CosineExpLR:
    """The cosine schedule: a :class:`CosineExpLR`, joint over ``others`` where a method trains further networks."""
    if others:
        return JointCosineExpLR(optimizer, start_epoch, end_epoch, others)
    return CosineExpLR(optimizer, start_epoch, end_epoch)


def first_lr_drop(scheduler: Scheduler | None) -> int | None:
    """The first 0-based epoch whose lr ``scheduler`` lowers: a MultiStepLR's first milestone, a
    :class:`CosineExpLR`'s start; None for another scheduler (or none)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR) and scheduler.milestones:
        return min(scheduler.milestones)
    if isinstance(scheduler, CosineExpLR):
        return scheduler.start_epoch
    return None


__all__ = ["LR_SCHEDULES", "CosineExpLR", "JointCosineExpLR", "JointMultiStepLR", "JointSchedule", "cosine_exp_lr",
           "cosine_schedule", "first_lr_drop", "multistep_schedule"]
