"""Plain PyTorch training loops of every method of the shared loop, written from each method's formulas.

These are the references the benchmarks time our ART trainers against. They use torch only (no art_rslad loss,
attack or trainer), as a user would write them after the official code: the student's mode set by hand, one PGD
with input-only gradients, ``F.kl_div`` with each method's official reduction, one SGD step per batch.
``tests/test_bench_plain_loops.py`` checks that each one computes the same loss and the same weights as our
trainer on the same batch, which is what makes the timings a comparison of the same recipe.

The random starts are drawn from a seeded ``torch.Generator`` (``PlainSetup.generator``), one draw per batch in
the shape of the batch, so that with the trainer's seed and batch order both start from the same point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

#: The RSLAD/TRADES/AdaAD/PeerAiD start: x + GAUSSIAN_STD * N(0, I), not clipped.
GAUSSIAN_STD = 0.001
#: IAD's (and AdaIAD's) introspection starts at epoch 60 of 200, scaled to the run.
WARMUP_FRACTION = 60 / 200


@dataclass
class PlainSetup:
    """The models, optimizers and attack settings of one plain loop (inputs in [0, 1])."""

    student: torch.nn.Module
    optimizer: torch.optim.Optimizer
    teacher: torch.nn.Module | None = None
    peer: torch.nn.Module | None = None
    peer_optimizer: torch.optim.Optimizer | None = None
    eps: float = 0.1
    eps_step: float = 0.025
    steps: int = 10
    seed: int = 0
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator(device=next(self.student.parameters()).device)
        self.generator.manual_seed(self.seed)

    def forward(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Float32 logits of ``model`` on ``x`` (under bf16 autocast and channels_last when asked)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.amp_dtype is None:
            return model(x)
        with torch.autocast(x.device.type, dtype=self.amp_dtype):
            return model(x).float()

    def frozen_logits(self, model: torch.nn.Module | None, x: torch.Tensor) -> torch.Tensor:
        """Logits of a frozen network (a teacher) in eval mode, with no graph."""
        assert model is not None
        model.eval()
        with torch.no_grad():
            return self.forward(model, x)

    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.frozen_logits(self.teacher, x)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer] + ([] if self.peer_optimizer is None else [self.peer_optimizer])

    def start_epoch(self, epoch: int, nb_epochs: int) -> None:
        """Before an epoch's batches (the methods since 2022 keep the epoch and set a teacher's lr here)."""

    def end_epoch(self) -> None:
        """After an epoch's last batch (ABSLD updates its temperatures here)."""


class StepOutput(NamedTuple):
    """A method's training loss on one batch, its adversarial inputs and the student's logits on them."""

    loss: torch.Tensor
    x_adv: torch.Tensor | None
    adv_logits: torch.Tensor | None


#: (setup, x, y, introspection on) -> the batch's loss; the student's mode is set inside.
PlainMethod = Callable[[PlainSetup, torch.Tensor, torch.Tensor, bool], StepOutput]


# ----------------------------------------------------------------------------- the shared pieces
def kl(target_probs: torch.Tensor, logits: torch.Tensor, reduction: str) -> torch.Tensor:
    """``KL(target || softmax(logits))``: "sum", "batchmean" (summed over classes, averaged over the batch),
    "mean" (averaged over all B*C elements, nn.KLDivLoss's default) or "none" summed over classes (shape (B,))."""
    if reduction == "none":
        return F.kl_div(F.log_softmax(logits, dim=1), target_probs, reduction="none").sum(dim=1)
    if reduction == "mean":  # written out: F.kl_div warns that its "mean" will change meaning
        return F.kl_div(F.log_softmax(logits, dim=1), target_probs, reduction="sum") / logits.numel()
    return F.kl_div(F.log_softmax(logits, dim=1), target_probs, reduction=reduction)


def pgd(setup: PlainSetup, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor],
        start: str) -> torch.Tensor:
    """L-inf PGD maximising ``objective(x')`` from a "gaussian" or "uniform" start; input-only gradients."""
    if start == "gaussian":
        x_adv = x + GAUSSIAN_STD * torch.randn(x.shape, generator=setup.generator, device=x.device)
    else:
        noise = torch.rand(x.shape, generator=setup.generator, device=x.device)
        x_adv = (x + setup.eps * (2.0 * noise - 1.0)).clamp(0.0, 1.0)
    for _ in range(setup.steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x_adv), [x_adv])
        x_adv = x_adv.detach() + setup.eps_step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - setup.eps), x + setup.eps).clamp(0.0, 1.0)
    return x_adv.detach()


def ce_attack(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PGD on the summed cross-entropy with the true labels from a uniform start (student mode as set)."""
    return pgd(setup, x, lambda x_adv: F.cross_entropy(setup.forward(setup.student, x_adv), y, reduction="sum"),
               "uniform")


def soft_label_attack(setup: PlainSetup, x: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """PGD on ``sum_i KL(target_i || S(x'_i))`` from a Gaussian start, student in eval mode."""
    setup.student.eval()
    return pgd(setup, x, lambda x_adv: kl(target_probs, setup.forward(setup.student, x_adv), "sum"), "gaussian")


def adaptive_attack(setup: PlainSetup, x: torch.Tensor) -> torch.Tensor:
    """AdaAD's PGD on ``sum_i KL(p_T(x'_i) || S(x'_i))``, both in eval mode, the gradient through both."""
    assert setup.teacher is not None
    setup.student.eval()
    setup.teacher.eval()

    def objective(x_adv: torch.Tensor) -> torch.Tensor:
        teacher_probs = F.softmax(setup.forward(setup.teacher, x_adv), dim=1)
        return kl(teacher_probs, setup.forward(setup.student, x_adv), "sum")

    return pgd(setup, x, objective, "gaussian")


def introspection(adv_logits: torch.Tensor, nat_logits: torch.Tensor, teacher_adv_logits: torch.Tensor | None,
                  y: torch.Tensor) -> torch.Tensor:
    """IAD's ``mean_i (1 - w_i) KL(softmax(S(x_i)) || S(x'_i))``, ``w_i = p_T(y_i | x'_i) ** 0.1`` constants
    (``w = 1`` during the warm-up, ``teacher_adv_logits`` None)."""
    if teacher_adv_logits is None:
        weights = torch.ones_like(y, dtype=adv_logits.dtype)
    else:
        weights = F.softmax(teacher_adv_logits, dim=1).gather(1, y[:, None]).squeeze(1) ** 0.1
    return ((1.0 - weights) * kl(F.softmax(nat_logits, dim=1), adv_logits, "none")).mean()


# ----------------------------------------------------------------------------- one function per method
def natural(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    setup.student.train()
    return StepOutput(F.cross_entropy(setup.forward(setup.student, x), y), None, None)


def sat(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    setup.student.eval()
    x_adv = ce_attack(setup, x, y)
    setup.student.train()
    adv_logits = setup.forward(setup.student, x_adv)
    return StepOutput(F.cross_entropy(adv_logits, y), x_adv, adv_logits)


def trades(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    setup.student.eval()
    with torch.no_grad():
        nat_probs = F.softmax(setup.forward(setup.student, x), dim=1)
    x_adv = soft_label_attack(setup, x, nat_probs)
    setup.student.train()
    nat_logits = setup.forward(setup.student, x)
    adv_logits = setup.forward(setup.student, x_adv)
    loss = F.cross_entropy(nat_logits, y) + 6.0 * kl(F.softmax(nat_logits, dim=1), adv_logits, "batchmean")
    return StepOutput(loss, x_adv, adv_logits)


def ard(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    tau = 30.0
    teacher_logits = setup.teacher_logits(x)
    setup.student.train()  # ARD attacks in train mode
    x_adv = ce_attack(setup, x, y)
    adv_logits = setup.forward(setup.student, x_adv)
    loss = tau**2 * kl(F.softmax(teacher_logits / tau, dim=1), adv_logits / tau, "mean")
    return StepOutput(loss, x_adv, adv_logits)


def iad(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    teacher_logits = setup.teacher_logits(x)
    setup.student.train()  # IAD attacks in train mode, as ARD
    x_adv = ce_attack(setup, x, y)
    nat_logits = setup.forward(setup.student, x)
    adv_logits = setup.forward(setup.student, x_adv)
    teacher_adv_logits = setup.teacher_logits(x_adv) if introspect else None
    loss = kl(F.softmax(teacher_logits, dim=1), adv_logits, "batchmean") + introspection(
        adv_logits, nat_logits, teacher_adv_logits, y)
    return StepOutput(loss, x_adv, adv_logits)


def adaad(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    x_adv = adaptive_attack(setup, x)
    setup.student.train()
    adv_logits = setup.forward(setup.student, x_adv)
    teacher_adv_probs = F.softmax(setup.teacher_logits(x_adv), dim=1)
    return StepOutput(kl(teacher_adv_probs, adv_logits, "mean"), x_adv, adv_logits)


def rslad(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    teacher_probs = F.softmax(setup.teacher_logits(x), dim=1)
    x_adv = soft_label_attack(setup, x, teacher_probs)
    setup.student.train()
    adv_logits = setup.forward(setup.student, x_adv)
    nat_logits = setup.forward(setup.student, x)
    loss = 5 / 6 * kl(teacher_probs, adv_logits, "mean") + 1 / 6 * kl(teacher_probs, nat_logits, "mean")
    return StepOutput(loss, x_adv, adv_logits)


def adaiad(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    temperature = 30.0
    x_adv = adaptive_attack(setup, x)
    setup.student.train()
    adv_logits = setup.forward(setup.student, x_adv)
    teacher_adv_logits = setup.teacher_logits(x_adv)
    loss = temperature**2 * kl(F.softmax(teacher_adv_logits / temperature, dim=1), adv_logits / temperature,
                               "batchmean")
    if introspect:
        loss = loss + introspection(adv_logits, setup.forward(setup.student, x), teacher_adv_logits, y)
    return StepOutput(loss, x_adv, adv_logits)


def peeraid(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    assert setup.peer is not None
    temperature = 5.0
    setup.peer.eval()
    with torch.no_grad():
        peer_probs = F.softmax(setup.forward(setup.peer, x), dim=1)
    x_adv = soft_label_attack(setup, x, peer_probs)
    setup.student.train()
    setup.peer.train()
    adv_logits = setup.forward(setup.student, x_adv)
    nat_logits = setup.forward(setup.student, x)
    peer_adv_logits = setup.forward(setup.peer, x_adv)
    peer_loss = F.cross_entropy(peer_adv_logits, y) + 0.1 * kl(F.softmax(adv_logits, dim=1), peer_adv_logits, "mean")
    scaled = adv_logits / temperature
    student_loss = temperature**2 * (kl(F.softmax(peer_adv_logits.detach() / temperature, dim=1), scaled, "mean")
                                     + kl(F.softmax(nat_logits / temperature, dim=1), scaled, "mean"))
    return StepOutput(peer_loss + student_loss, x_adv, adv_logits)


#: Method name (as in art_rslad's registry) -> its plain loop; those of the methods since 2022 are in
#: ``bench/plain_loops_recent.py``, and ``bench/plain_methods.py`` holds them all.
EARLIER_PLAIN_METHODS: dict[str, PlainMethod] = {
    "natural": natural, "sat": sat, "trades": trades, "ard": ard, "iad": iad, "adaad": adaad, "rslad": rslad,
    "adaiad": adaiad, "peeraid": peeraid,
}


# ----------------------------------------------------------------------------- plug-ins and the epoch
def igdm(setup: PlainSetup, x: torch.Tensor, step: StepOutput) -> torch.Tensor:
    """IGDM's ``batch-mean KL(softmax(T(x') - T(x - d)) || softmax(S(x') - S(x - d)))``, d = x' - x, unclipped."""
    assert step.x_adv is not None and step.adv_logits is not None
    x_mirror = x - (step.x_adv - x)
    student_mirror = setup.forward(setup.student, x_mirror)
    teacher_probs = F.softmax(setup.teacher_logits(step.x_adv) - setup.teacher_logits(x_mirror), dim=1)
    return kl(teacher_probs, step.adv_logits - student_mirror, "batchmean")


class PlainEMA:
    """An exponential moving average of the parameters after every step (a copy for the first 2.5% of the steps,
    then decay ``min(0.995, (1 + n) / (10 + n))``); buffers copied from the live model."""

    def __init__(self, model: torch.nn.Module, total_steps: int) -> None:
        self.warmup_steps = max(1, math.ceil(0.025 * total_steps))
        self.steps = 0
        self.state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        self.parameters = {name for name, _ in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        since = self.steps - self.warmup_steps - 1
        decay = 0.0 if self.steps <= self.warmup_steps else min(0.995, (1 + since) / (10 + since))
        for name, tensor in model.state_dict().items():
            if name in self.parameters:
                self.state[name].mul_(decay).add_(tensor, alpha=1.0 - decay)
            else:
                self.state[name].copy_(tensor)


def batch_order(nb_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the samples in an epoch: the same permutation as our trainer's ``fit``."""
    return torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(nb_samples))


def plain_epoch(
    setup: PlainSetup,
    method: PlainMethod,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    order: torch.Tensor,
    *,
    epoch: int = 0,
    nb_epochs: int = 1,
    igdm_alpha: float = 0.0,
    ema: PlainEMA | None = None,
) -> float:
    """One epoch over ``x[order]`` in batches; returns the mean training loss. ``x`` and ``y`` may be on the host."""
    device = next(setup.student.parameters()).device
    introspect = epoch >= round(WARMUP_FRACTION * nb_epochs)
    setup.start_epoch(epoch, nb_epochs)
    total = torch.zeros((), device=device)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        x_batch, y_batch = x[rows].to(device), y[rows].to(device)
        step = method(setup, x_batch, y_batch, introspect)
        loss = step.loss
        if igdm_alpha:
            loss = loss + igdm_alpha * (epoch + 1) / nb_epochs * igdm(setup, x_batch, step)
        for optimizer in setup.optimizers():
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in setup.optimizers():
            optimizer.step()
        if ema is not None:
            ema.update(setup.student)
        total = total + loss.detach() * len(rows)
    setup.end_epoch()
    return float(total) / len(order)
