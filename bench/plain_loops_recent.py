"""Plain PyTorch loops of MTARD, ABSLD, DGAD, CIARD and SAAD, written from each method's formulas with torch alone.

The same contract as ``bench/plain_loops.py`` (whose shared pieces they use): no art_rslad loss, attack or trainer,
the modes set by hand, one SGD step per batch through :func:`bench.plain_loops.plain_epoch`. What these methods add
lives in :class:`RecentSetup`: the clean teacher (MTARD, CIARD), the robust teacher's own optimizer (CIARD), the
adaptive state carried from batch to batch, and the epoch (SAAD's ramp, CIARD's teacher warm-up).
``tests/test_bench_plain_loops_recent.py`` checks them against the package's pure losses, and
``tests/test_bench_plain_loops.py`` against the trainers (``bench/plain_methods.py`` lists every plain loop).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from bench.plain_loops import PlainSetup, StepOutput, adaptive_attack, kl, pgd, soft_label_attack

#: CIARD's robust teacher starts training after epoch 50 of 300, scaled to the run.
CIARD_TEACHER_START = 50 / 300


@dataclass
class RecentSetup(PlainSetup):
    """A :class:`~bench.plain_loops.PlainSetup` with a second (clean) teacher, the robust teacher's optimizer, the
    methods' state and the epoch. Set ``epoch`` and ``nb_epochs`` before each :func:`plain_epoch`."""

    clean_teacher: torch.nn.Module | None = None
    teacher_optimizer: torch.optim.Optimizer | None = None
    epoch: int = 0
    nb_epochs: int = 1
    state: dict[str, Any] = field(default_factory=dict)

    def clean_teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.frozen_logits(self.clean_teacher, x)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return super().optimizers() + ([] if self.teacher_optimizer is None else [self.teacher_optimizer])

    def start_epoch(self, epoch: int, nb_epochs: int) -> None:
        """Keep the epoch; a trained robust teacher (CIARD) gets this epoch's lr: 0 until its start, then 1e-4 on a
        cosine-times-Gaussian decay to the run's end (1-based epochs)."""
        self.epoch, self.nb_epochs = epoch, nb_epochs
        if self.teacher_optimizer is None:
            return
        current, start = epoch + 1, CIARD_TEACHER_START * nb_epochs
        progress = (current - start) / (nb_epochs - start)
        lr = 1e-4 * (0.5 + 0.5 * math.cos(math.pi * progress)) * math.exp(-0.01 * progress**2)
        for group in self.teacher_optimizer.param_groups:
            group["lr"] = lr if current > start else 0.0

    def end_epoch(self) -> None:
        if "errors_adv" in self.state:
            absld_epoch_end(self)


def zkl(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """``p * (log(p + 1e-5) - log_softmax(s))`` averaged over all B*C elements (MTARD, ABSLD, CIARD)."""
    return (target_probs * (torch.log(target_probs + 1e-5) - F.log_softmax(logits, dim=1))).mean()


def ce_attack_gaussian(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PGD on the summed cross-entropy with the true labels from x + 0.001 N(0, I), student in eval mode."""
    setup.student.eval()
    return pgd(setup, x, lambda x_adv: F.cross_entropy(setup.forward(setup.student, x_adv), y, reduction="sum"),
               "gaussian")


def adaptive_weight(setup: RecentSetup, adv_value: float, nat_value: float) -> float:
    """MTARD's rule on ``setup.state``: the natural term's new weight (the adversarial one is 1 minus it)."""
    first_adv, first_nat = setup.state.setdefault("first_losses", (adv_value, nat_value))
    ratio_adv, ratio_nat = adv_value / first_adv, nat_value / first_nat
    weight = setup.state.get("weight_nat", 0.5)
    weight -= setup.state.get("weight_rate", 0.025) * (weight - ratio_nat / (ratio_adv + ratio_nat))
    setup.state["weight_nat"] = weight
    return weight


def mtard(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    clean_probs = F.softmax(setup.clean_teacher_logits(x), dim=1)
    x_adv = ce_attack_gaussian(setup, x, y)
    setup.student.train()
    adv_logits = setup.forward(setup.student, x_adv)
    nat_logits = setup.forward(setup.student, x)
    adv_term = zkl(adv_logits, F.softmax(setup.teacher_logits(x_adv), dim=1))
    nat_term = zkl(nat_logits, clean_probs)
    weight_nat = adaptive_weight(setup, adv_term.item(), nat_term.item())
    return StepOutput((1 - weight_nat) * adv_term + weight_nat * nat_term, x_adv, adv_logits)


def absld(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    teacher_logits = setup.teacher_logits(x)
    classes = teacher_logits.shape[1]
    tau_adv = setup.state.setdefault("tau_adv", torch.ones(classes, device=x.device))
    tau_nat = setup.state.setdefault("tau_nat", torch.ones(classes, device=x.device))
    adv_target = F.softmax(teacher_logits / tau_adv[y][:, None], dim=1)
    nat_target = F.softmax(teacher_logits / tau_nat[y][:, None], dim=1)
    x_adv = soft_label_attack(setup, x, adv_target)
    setup.student.train()
    adv_logits = setup.forward(setup.student, x_adv)
    nat_logits = setup.forward(setup.student, x)
    for key, logits in (("errors_adv", adv_logits), ("errors_nat", nat_logits)):
        errors = setup.state.setdefault(key, torch.zeros(classes, device=x.device))
        errors.index_add_(0, y, F.cross_entropy(logits.detach(), y, reduction="none"))
    loss = 5 / 6 * zkl(adv_logits, adv_target) + 1 / 6 * zkl(nat_logits, nat_target)
    return StepOutput(loss, x_adv, adv_logits)


def absld_epoch_end(setup: RecentSetup, rate: float = 0.1) -> None:
    """ABSLD's end-of-epoch update of the per-class temperatures; the error sums start again from 0."""
    for kind in ("adv", "nat"):
        errors = setup.state[f"errors_{kind}"]
        gap = errors - errors.mean()
        if gap.abs().max() > 0:
            setup.state[f"tau_{kind}"] = (setup.state[f"tau_{kind}"] - rate * gap / gap.abs().max()).clamp(0.5, 5.0)
        errors.zero_()


def swap_columns(logits: torch.Tensor, first: torch.Tensor, second: torch.Tensor, rows: torch.Tensor
                 ) -> torch.Tensor:
    """``logits`` with the entries at columns ``first`` and ``second`` exchanged where ``rows`` (one-hot algebra)."""
    first_hot = F.one_hot(first, logits.shape[1]).to(logits.dtype)
    second_hot = F.one_hot(second, logits.shape[1]).to(logits.dtype)
    gap = (logits * second_hot).sum(1, keepdim=True) - (logits * first_hot).sum(1, keepdim=True)
    return logits + rows[:, None].to(logits.dtype) * gap * (first_hot - second_hot)


def dgad(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    x_adv = adaptive_attack(setup, x)
    setup.student.train()
    adv_logits = setup.forward(setup.student, x_adv)
    nat_logits = setup.forward(setup.student, x)
    teacher_nat, teacher_adv = setup.teacher_logits(x), setup.teacher_logits(x_adv)
    wrong = teacher_nat.argmax(1) != y
    teacher_nat = swap_columns(teacher_nat, y, teacher_nat.argmax(1), wrong)
    others = teacher_adv - 1e9 * F.one_hot(y, teacher_adv.shape[1]).to(teacher_adv.dtype)
    below = teacher_adv.gather(1, y[:, None]).squeeze(1) < others.max(1).values
    teacher_adv = swap_columns(teacher_adv, y, others.argmax(1), below)
    per_sample = torch.where(wrong, kl(F.softmax(teacher_nat, dim=1), nat_logits, "none"),
                             kl(F.softmax(teacher_adv, dim=1), adv_logits, "none"))
    consistency = F.mse_loss(F.softmax(adv_logits, dim=1), F.softmax(nat_logits, dim=1))
    return StepOutput(per_sample.mean() + consistency, x_adv, adv_logits)


def ciard_temperatures(setup: RecentSetup, robust_logits: torch.Tensor, clean_logits: torch.Tensor) -> None:
    """CIARD's per-batch temperature step from the two teachers' tempered soft labels (next batch's values)."""
    tau_robust, tau_clean = setup.state.get("tau_robust", 1.0), setup.state.get("tau_clean", 1.0)
    robust_probs, clean_probs = F.softmax(robust_logits / tau_robust, 1), F.softmax(clean_logits / tau_clean, 1)
    robust_stat = (robust_probs * torch.log(robust_probs + 1e-5)).mean().item()
    clean_stat = (clean_probs * torch.log(clean_probs + 1e-5)).mean().item()
    step = 0.001 * ((robust_stat / clean_stat > 1) - (robust_stat / clean_stat < 1))
    setup.state["tau_robust"] = min(max(tau_robust - step, 1.0), 10.0)
    setup.state["tau_clean"] = min(max(tau_clean + step, 1.0), 10.0)


def ciard_weights(setup: RecentSetup, adv_value: float, nat_value: float) -> tuple[float, float]:
    """CIARD's form of MTARD's rule: both weights move towards their share, are clipped at 0 and renormalised."""
    first_adv, first_nat = setup.state.setdefault("first_losses", (adv_value, nat_value))
    ratio_adv, ratio_nat = adv_value / first_adv, nat_value / first_nat
    weight_adv, weight_nat = setup.state.get("weights", (0.5, 0.5))
    weight_adv = max(0.0, weight_adv - 0.025 * (weight_adv - ratio_adv / (ratio_adv + ratio_nat)))
    weight_nat = max(0.0, weight_nat - 0.025 * (weight_nat - ratio_nat / (ratio_adv + ratio_nat)))
    total = weight_adv + weight_nat
    setup.state["weights"] = (weight_adv / total, weight_nat / total)
    return setup.state["weights"]


def ciard(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    assert setup.teacher is not None
    setup.student.train()
    nat_logits = setup.forward(setup.student, x)
    clean_nat = setup.clean_teacher_logits(x)
    setup.teacher.train()
    with torch.no_grad():  # as the official code: unused, but its BatchNorm statistics move
        setup.forward(setup.teacher, x)
    x_adv = ce_attack_gaussian(setup, x, y)
    setup.student.train()
    setup.teacher.train()  # the robust teacher trains too: batch statistics, gradients for its own step
    adv_logits = setup.forward(setup.student, x_adv)
    robust_adv = setup.forward(setup.teacher, x_adv)
    clean_adv = setup.clean_teacher_logits(x_adv)
    tau_robust, tau_clean = setup.state.get("tau_robust", 1.0), setup.state.get("tau_clean", 1.0)
    adv_term = zkl(adv_logits, F.softmax(robust_adv.detach() / tau_robust, dim=1))
    nat_term = zkl(nat_logits, F.softmax(clean_nat / tau_clean, dim=1))
    ciard_temperatures(setup, robust_adv.detach(), clean_nat)
    weight_adv, weight_nat = ciard_weights(setup, adv_term.item(), nat_term.item())
    loss = weight_adv * adv_term + weight_nat * nat_term
    wrong = clean_adv.argmax(1) != y
    if wrong.any():
        push = zkl(adv_logits[wrong] / 5.0, F.softmax(clean_adv[wrong], dim=1))
        magnitudes = [math.floor(math.log10(value)) for value in (adv_term.item(), nat_term.item(), push.item())]
        loss = loss - 10.0 ** (min(magnitudes[:2]) - magnitudes[2]) * push
    if setup.epoch + 1 > CIARD_TEACHER_START * setup.nb_epochs:
        loss = loss + F.cross_entropy(robust_adv, y)  # reaches the teacher only: x' and its soft labels are constants
    return StepOutput(loss, x_adv, adv_logits)


def saad_attack(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PGD from x + 0.001 N(0, I) against the teacher linearised at x on the label's logit, student in eval mode."""
    assert setup.teacher is not None
    setup.teacher.eval()
    inputs = x.detach().requires_grad_(True)
    teacher_logits = setup.forward(setup.teacher, inputs)
    (gradient,) = torch.autograd.grad(teacher_logits.gather(1, y[:, None]).sum(), [inputs])
    label_hot = F.one_hot(y, teacher_logits.shape[1]).to(teacher_logits.dtype)
    teacher_logits = teacher_logits.detach()

    def objective(x_adv: torch.Tensor) -> torch.Tensor:
        moved = teacher_logits + label_hot * (gradient * (x_adv - x)).flatten(1).sum(1, keepdim=True)
        return kl(F.softmax(moved, dim=1), setup.forward(setup.student, x_adv), "sum")

    setup.student.eval()
    return pgd(setup, x, objective, "gaussian")


def saad(setup: RecentSetup, x: torch.Tensor, y: torch.Tensor, introspect: bool) -> StepOutput:
    x_adv = saad_attack(setup, x, y)
    mirror = x - (x_adv - x)
    teacher_adv, teacher_mirror = setup.teacher_logits(x_adv), setup.teacher_logits(mirror)
    setup.student.train()
    adv_logits = setup.forward(setup.student, x_adv)
    mirror_logits = setup.forward(setup.student, mirror)
    setup.forward(setup.student, x)  # as the official code: S(x) runs (moving BatchNorm statistics) though beta = 0
    probs = F.softmax(teacher_adv, dim=1)
    entropies = -(probs * torch.log(probs + 1e-12)).sum(1)
    weights = (5.0 * (entropies - entropies.min())).clamp(min=0.0)
    ramp = (setup.epoch + 1) / setup.nb_epochs
    per_sample = weights * (kl(probs, adv_logits, "none")
                            + ramp * kl(F.softmax(teacher_adv - teacher_mirror, dim=1), adv_logits - mirror_logits,
                                        "none"))
    return StepOutput(per_sample.mean(), x_adv, adv_logits)


RecentMethod = Callable[[RecentSetup, torch.Tensor, torch.Tensor, bool], StepOutput]

#: Method name (as it will be registered) -> its plain loop.
RECENT_PLAIN_METHODS: dict[str, RecentMethod] = {
    "mtard": mtard, "absld": absld, "dgad": dgad, "ciard": ciard, "saad": saad,
}
