"""The learning-rate schedule of a run whose method trains networks beside the student."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class JointMultiStepLR(torch.optim.lr_scheduler.MultiStepLR):
    """A MultiStepLR on the student's optimizer that moves further optimizers (the networks a method trains beside
    the student, e.g. PeerAiD's peer) by the same milestones: the shared loop steps and checkpoints one scheduler.

    :param optimizer: The student's optimizer.
    :param milestones: Epochs after which every learning rate is multiplied by ``gamma``.
    :param gamma: The factor.
    :param others: The other optimizers.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float,
                 others: Sequence[torch.optim.Optimizer]) -> None:
        self.others: list[torch.optim.lr_scheduler.MultiStepLR] = []  # the base class steps once while built
        super().__init__(optimizer, list(milestones), gamma=gamma)
        self.others = [torch.optim.lr_scheduler.MultiStepLR(other, list(milestones), gamma=gamma) for other in others]

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        super().step()
        for other in self.others:
            other.step()

    def state_dict(self) -> dict[str, Any]:
        state = {key: value for key, value in super().state_dict().items() if key != "others"}
        return {**state, "others": [other.state_dict() for other in self.others]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        others = state.pop("others")
        super().load_state_dict(state)
        for other, other_state in zip(self.others, others, strict=True):
            other.load_state_dict(other_state)


def multistep_schedule(optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float,
                       others: Sequence[torch.optim.Optimizer] = ()) -> torch.optim.lr_scheduler.MultiStepLR:
    """The run's schedule: a MultiStepLR, joint over ``others`` where a method trains further networks."""
    if others:
        return JointMultiStepLR(optimizer, milestones, gamma, others)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=gamma)


__all__ = ["JointMultiStepLR", "multistep_schedule"]
