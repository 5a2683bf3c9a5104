"""Weight averaging of the student during training: an exponential moving average (EMA) or SWA.

The shared loop trains the live weights and validates, keeps and returns the averaged ones (see docs/decisions.md,
"Weight averaging"). An averager holds the averaged state dict; the loop calls :meth:`WeightAveraging.start` once
per fit, :meth:`~WeightAveraging.after_step` after every optimizer step, :meth:`~WeightAveraging.end_epoch` after
every epoch, and :meth:`~WeightAveraging.applied` around validation. Its :meth:`~WeightAveraging.state_dict` goes
into checkpoints, so a resumed run averages exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch

from art_rslad.estimators import model_modes
from art_rslad.trainers.schedules import first_lr_drop

StateDict = dict[str, torch.Tensor]


def _copy_state(model: torch.nn.Module) -> StateDict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


class WeightAveraging:
    """The averaged copy of a model's state; subclasses say when and how it is updated."""

    name: ClassVar[str] = "none"

    def __init__(self) -> None:
        #: The averaged state dict, or None while nothing is averaged yet (the live weights stand in).
        self.average: StateDict | None = None
        #: Updates folded into the average so far (steps for EMA, epochs for SWA).
        self.updates = 0
        #: Averages a model's buffers over the ranks of a distributed run (see :meth:`start`).
        self.buffer_mean: Callable[[torch.nn.Module], None] | None = None

    def hyperparameters(self) -> dict[str, Any]:
        """The averager's settings, recorded in the run's config."""
        return {"name": self.name}

    def start(self, nb_epochs: int, nb_batches: int, scheduler: torch.optim.lr_scheduler.LRScheduler | None,
              buffer_mean: Callable[[torch.nn.Module], None] | None = None) -> None:
        """Begin a fit of ``nb_epochs`` epochs of ``nb_batches`` steps: the average starts empty.

        :param buffer_mean: Replaces a model's buffers by their mean over the run's processes (a collective), so
            that statistics each rank recomputes on its own shard agree; None in a one-process run.
        """
        self.average, self.updates = None, 0
        self.buffer_mean = buffer_mean

    def after_step(self, model: torch.nn.Module) -> None:
        """Called after every optimizer step of the live ``model``."""

    def end_epoch(self, model: torch.nn.Module, epoch: int, clean_inputs: Iterable[torch.Tensor],
                  forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Called after every epoch (0-based ``epoch``) with the (lazy) training inputs and the forward pass."""

    def averaged_state(self, model: torch.nn.Module) -> StateDict:
        """The averaged weights and buffers (the live ones of ``model`` while nothing is averaged yet)."""
        return model.state_dict() if self.average is None else self.average

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Hold the averaged weights in ``model`` for the block, then put the live weights back."""
        if self.average is None:
            yield
            return
        live = _copy_state(model)
        model.load_state_dict(self.average)
        try:
            yield
        finally:
            model.load_state_dict(live)

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average, self.updates = state["average"], int(state["updates"])


class EMA(WeightAveraging):
    """Exponential moving average of the parameters after every optimizer step (Gowal et al. 2020).

    ``theta_avg <- d * theta_avg + (1 - d) * theta`` with ``d = 0`` (a copy) during the first ``warmup_fraction``
    of the run's steps (at least one step), then ``d = min(decay, (1 + n) / (10 + n))``, ``n`` the averaging steps
    before this one. BatchNorm buffers (and every other buffer) are copied from the live model, not averaged.

    | Paper link: https://arxiv.org/abs/2010.03593
    """

    name: ClassVar[str] = "ema"

    def __init__(self, decay: float = 0.995, warmup_fraction: float = 0.025) -> None:
        """
        :param decay: The largest decay tau, in [0, 1) (0.995 as Gowal et al.; 0.999 as Rebuffi et al.).
        :param warmup_fraction: Fraction of the run's optimizer steps during which the average copies the live
            weights, in [0, 1].
        """
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`decay` must be in [0, 1), got {decay}.")
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(f"`warmup_fraction` must be in [0, 1], got {warmup_fraction}.")
        super().__init__()
        self.decay, self.warmup_fraction = float(decay), float(warmup_fraction)
        self.warmup_steps = 1

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "decay": self.decay, "warmup_fraction": self.warmup_fraction}

    def start(self, nb_epochs: int, nb_batches: int, scheduler: torch.optim.lr_scheduler.LRScheduler | None,
              buffer_mean: Callable[[torch.nn.Module], None] | None = None) -> None:
        super().start(nb_epochs, nb_batches, scheduler, buffer_mean)
        self.warmup_steps = max(1, math.ceil(self.warmup_fraction * nb_epochs * nb_batches))

    def decay_at(self, step: int) -> float:
        """The decay ``d`` of the ``step``-th update (1-based)."""
        if step <= self.warmup_steps:
            return 0.0
        since = step - self.warmup_steps - 1
        return min(self.decay, (1 + since) / (10 + since))

    def after_step(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = self.decay_at(self.updates)
        if self.average is None or decay == 0.0:
            self.average = _copy_state(model)
            return
        parameters = {name for name, _ in model.named_parameters()}
        averaged: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        copied: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        for name, tensor in model.state_dict().items():
            group = averaged if name in parameters and tensor.is_floating_point() else copied
            group[0].append(self.average[name])
            group[1].append(tensor)
        with torch.no_grad():  # a few fused kernels per step rather than two per tensor
            if averaged[0]:
                torch._foreach_mul_(averaged[0], decay)
                torch._foreach_add_(averaged[0], averaged[1], alpha=1.0 - decay)
            if copied[0]:
                torch._foreach_copy_(copied[0], copied[1])


class SWA(WeightAveraging):
    """Stochastic weight averaging: an equal running mean of the parameters at the end of every epoch from
    ``start_epoch`` on, then BatchNorm statistics recomputed by one clean pass over the training inputs (statistics
    reset, cumulative averaging, train mode), as PeerAiD trains its student.

    | Paper link: https://arxiv.org/abs/1803.05407
    """

    name: ClassVar[str] = "swa"

    def __init__(self, start_epoch: int | None = None) -> None:
        """
        :param start_epoch: First epoch (0-based) whose final weights enter the mean; None takes the first epoch
            at a lowered learning rate (:func:`~art_rslad.trainers.schedules.first_lr_drop`: a MultiStepLR's first
            milestone, the start of a cosine decay), else 75% of the epochs; at most the last epoch.
        """
        if start_epoch is not None and (int(start_epoch) != start_epoch or start_epoch < 0):
            raise ValueError(f"`start_epoch` must be a non-negative integer or None, got {start_epoch}.")
        super().__init__()
        self.start_epoch = None if start_epoch is None else int(start_epoch)
        self.first_epoch = 0

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "start_epoch": self.first_epoch}

    def start(self, nb_epochs: int, nb_batches: int, scheduler: torch.optim.lr_scheduler.LRScheduler | None,
              buffer_mean: Callable[[torch.nn.Module], None] | None = None) -> None:
        super().start(nb_epochs, nb_batches, scheduler, buffer_mean)
        first = self.start_epoch if self.start_epoch is not None else first_lr_drop(scheduler)
        if first is None:
            first = round(0.75 * nb_epochs)
        self.first_epoch = min(first, nb_epochs - 1)

    def end_epoch(self, model: torch.nn.Module, epoch: int, clean_inputs: Iterable[torch.Tensor],
                  forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if epoch < self.first_epoch:
            return
        self.updates += 1
        if self.average is None:
            self.average = _copy_state(model)
        else:
            parameters = dict(model.named_parameters())
            with torch.no_grad():
                for name, parameter in parameters.items():
                    self.average[name].add_(parameter.detach() - self.average[name], alpha=1.0 / self.updates)
        with self.applied(model):
            recompute_batchnorm(model, clean_inputs, forward)
            if self.buffer_mean is not None:  # each rank saw its own shard: the statistics of all shards
                self.buffer_mean(model)
            self.average = _copy_state(model)


def recompute_batchnorm(model: torch.nn.Module, inputs: Iterable[torch.Tensor],
                        forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Replace every BatchNorm's running statistics by those of one pass over ``inputs`` (model in train mode).

    The statistics are reset and averaged cumulatively (``momentum=None``), so they are the mean over the batches;
    nothing happens without BatchNorm layers.

    :param model: The model whose BatchNorm statistics are recomputed in place.
    :param inputs: The batches of the pass (clean training inputs).
    :param forward: Runs ``model`` on a batch (with the classifier's preprocessing).
    """
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    try:
        with model_modes((model, True)), torch.no_grad():
            for x in inputs:
                forward(x)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum


#: ``weight_averaging`` names -> averager with its default settings.
AVERAGERS: dict[str, type[WeightAveraging]] = {"ema": EMA, "swa": SWA}


def make_averager(weight_averaging: str | WeightAveraging | None) -> WeightAveraging | None:
    """The averager that ``weight_averaging`` names (``"ema"``, ``"swa"``), the given one, or None."""
    if weight_averaging is None or isinstance(weight_averaging, WeightAveraging):
        return weight_averaging
    key = str(weight_averaging).lower()
    if key not in AVERAGERS:
        raise ValueError(f"`weight_averaging` must be None, {', '.join(map(repr, AVERAGERS))} or a WeightAveraging, "
                         f"got {weight_averaging!r}.")
    return AVERAGERS[key]()
