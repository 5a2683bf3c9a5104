"""CIARD: cyclic iterative adversarial robustness distillation (Lu et al., ICCV 2025)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.estimators import model_modes
from art_rslad.losses_adaptive import (
    AdaptiveWeights,
    DualTemperatures,
    ciard_push_loss,
    ciard_terms,
    push_weight,
    tempered_neg_entropy,
    update_adaptive_weights,
    update_dual_temperatures,
)
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import CLEAN_TEACHER, Network, OwnOptimizer
from art_rslad.trainers.records import check_positive
from art_rslad.trainers.schedules import cosine_exp_lr

#: When CIARD's temperature and weight steps decay at its milestones: once per milestone (the intent), or at every
#: batch of the epoch after it (the official code, which so freezes both from the first milestone on).
RateDecay = Literal["per_milestone", "per_iteration"]
#: CIARD's milestones of those steps, as fractions of the run (epochs 215, 260 and 285 of 300), whatever the student's
#: lr schedule (its official one is a cosine decay), and their factor there.
RATE_MILESTONES: tuple[float, ...] = (215 / 300, 260 / 300, 285 / 300)
RATE_GAMMA = 0.1


class AdversarialTrainerCIARD(AdversarialTrainerBase):
    """MTARD's two teachers with adaptive temperatures, a push away from the fooled clean teacher, and a robust
    teacher that keeps training.

    Inner maximisation (student in eval mode, no teacher): PGD from x + 0.001 * N(0, I) on ``CE(S(x'), y)``. Then,
    the robust teacher in train mode: ``L1 = zkl(S(x'), softmax(T_r(x') / tau_r))``, ``L2 = zkl(S(x),
    softmax(T_c(x) / tau_c))``, the push term ``L3`` on the samples the clean teacher gets wrong on x'
    (:func:`~art_rslad.losses_adaptive.ciard_push_loss`), and the student's loss ``w_r L1 + w_c L2 - lambda L3``
    (``lambda`` by :func:`~art_rslad.losses_adaptive.push_weight`). Every batch the temperatures step towards
    equally sharp soft labels and the weights follow MTARD's rule; their steps x0.1 at :data:`RATE_MILESTONES`.
    The robust teacher takes its own SGD step on ``CE(T_r(x'), y)`` (momentum 0.1, weight decay 2e-4) once the run
    is past ``teacher_start`` of its epochs, at an lr of ``teacher_lr`` on a cosine-times-Gaussian decay to the end
    (:func:`~art_rslad.trainers.schedules.cosine_exp_lr`), which the student's schedule never moves; the recorded
    loss is the student's plus that cross-entropy. The robust teacher's weights and optimizer, the temperatures and
    the weights are in every checkpoint; the trained teacher is saved as ``teacher.pt`` in a run folder. Runs in one
    process.

    | Paper link: https://arxiv.org/abs/2509.12633
    """

    method: ClassVar[str] = "ciard"
    #: The robust teacher starts from the config's teacher and trains with its own optimizer; the clean one is frozen.
    networks: ClassVar[tuple[Network, ...]] = (
        Network("teacher", trained=True, start="teacher", optimizer=OwnOptimizer(0.0, momentum=0.1,
                                                                                  weight_decay=2e-4)),
        CLEAN_TEACHER)
    kept_state: ClassVar[tuple[str, ...]] = ("temperatures", "weights", "batch_decay")
    distributed_ok: ClassVar[bool] = False
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, clean_teacher: PyTorchClassifier, *,
        teacher_lr: float = 1e-4, teacher_start: float = 50 / 300, adaptive_weights: bool = True,
        rate_decay: RateDecay = "per_milestone", temperature_rate: float = 0.001, weight_rate: float = 0.025,
        push_temperature: float = 5.0, **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher, an ART PyTorchClassifier with its own optimizer (the run harness gives
            SGD with momentum 0.1 and weight decay 2e-4); trained in place, its lr set every epoch.
        :param clean_teacher: The clean (naturally trained) teacher, frozen.
        :param teacher_lr: The robust teacher's peak lr, >= 0 (1e-4).
        :param teacher_start: Fraction of the run after which the robust teacher trains, in [0, 1) (50/300).
        :param adaptive_weights: MTARD's adaptive weights (True, the paper's version of the code) or both 1 (the
            latest official commit's ablation).
        :param rate_decay: ``"per_milestone"`` (the steps of temperatures and weights x0.1 once at each of
            :data:`RATE_MILESTONES`, scaled to the run) or ``"per_iteration"`` (at every batch of the epoch after it,
            as the official code).
        :param temperature_rate: Step of the temperatures, > 0 (0.001).
        :param weight_rate: Step of the weight rule, > 0 (0.025).
        :param push_temperature: Temperature of the student's side of the push term, > 0 (5).
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack`` (called with the one-hot labels),
            ``attack_training_mode``, ``seed``, ``verbose``, ``amp_dtype``, ``channels_last``, ``weight_averaging``,
            as in :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        if rate_decay not in ("per_milestone", "per_iteration"):
            raise ValueError(f"`rate_decay` must be 'per_milestone' or 'per_iteration', got {rate_decay!r}.")
        if not 0 <= teacher_start < 1:
            raise ValueError(f"`teacher_start` must be in [0, 1) (a fraction of the run), got {teacher_start}.")
        self.teacher_lr, self.teacher_start = float(teacher_lr), float(teacher_start)
        if not self.teacher_lr >= 0:
            raise ValueError(f"`teacher_lr` must be >= 0, got {teacher_lr}.")
        self.adaptive_weights, self.rate_decay = bool(adaptive_weights), rate_decay
        self.temperature_rate = check_positive("temperature_rate", temperature_rate)
        self.weight_rate = check_positive("weight_rate", weight_rate)
        self.push_temperature = check_positive("push_temperature", push_temperature)
        self.temperatures = DualTemperatures(rate=self.temperature_rate)
        self.weights = AdaptiveWeights(rate=self.weight_rate)
        self.batch_decay = 1.0  # per_iteration: the factor every batch of this epoch applies to the steps
        self._teacher_steps = False
        self._natural: tuple[torch.Tensor, torch.Tensor] | None = None  # S(x), T_c(x) from _before_attack
        self.clean_teacher: PyTorchClassifier
        super().__init__(classifier, networks={"teacher": teacher, "clean_teacher": clean_teacher}, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"teacher_lr": self.teacher_lr, "teacher_start": self.teacher_start,
                "adaptive_weights": self.adaptive_weights, "rate_decay": self.rate_decay,
                "temperature_rate": self.temperature_rate, "weight_rate": self.weight_rate,
                "push_temperature": self.push_temperature}

    def _uses_teacher_probs(self) -> bool:
        return False  # the robust teacher moves; its outputs are taken per batch

    def _start_epoch(self, epoch: int) -> None:
        """The robust teacher's lr for this epoch (1-based ``e``): it trains once ``e`` is past the start."""
        current, start = epoch + 1, self.teacher_start * self.nb_epochs
        self._teacher_steps = current > start
        lr = cosine_exp_lr(current, self.teacher_lr, start, self.nb_epochs, 0.0) if self._teacher_steps else 0.0
        assert self.teacher is not None
        for group in self.teacher.optimizer.param_groups:
            group["lr"] = lr

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        """The student's, and the robust teacher's once it trains (before, its momentum is not even updated)."""
        return super()._optimizers() if self._teacher_steps else [self._classifier.optimizer]

    def _end_epoch(self, epoch: int, lr_factor: float) -> None:
        """The steps decay after each of CIARD's milestones (its own: the student's lr may follow another curve)."""
        milestones = {round(fraction * self.nb_epochs) for fraction in RATE_MILESTONES}
        factor = RATE_GAMMA if epoch + 1 in milestones and epoch + 1 < self.nb_epochs else 1.0
        if self.rate_decay == "per_iteration":
            self.batch_decay = factor
        else:
            self._decay(factor)

    def _decay(self, factor: float) -> None:
        self.temperatures = dataclasses.replace(self.temperatures, rate=self.temperatures.rate * factor)
        self.weights = dataclasses.replace(self.weights, rate=self.weights.rate * factor)

    def _before_attack(self, batch: Batch) -> None:
        """As the official code, before the attack: S(x) (train mode; the attack then sees its BatchNorm statistics),
        the clean teacher on x, and the robust teacher on x (train mode: only its BatchNorm statistics keep that)."""
        assert self.teacher is not None
        nat_logits = self.student_logits(batch.x)
        clean_nat = self.frozen_logits(self.clean_teacher, batch.x)
        with model_modes((self.teacher.model, True)):
            self.frozen_logits(self.teacher, batch.x)
        self._natural = (nat_logits, clean_nat)

    def _teacher_outputs(self, batch: Batch, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The robust teacher on x' (train mode; with its graph while it trains) and the clean teacher on x'."""
        assert self.teacher is not None
        with model_modes((self.teacher.model, True)), torch.set_grad_enabled(self._teacher_steps):
            robust_adv = self._forward(self.teacher, x_adv)
        return robust_adv, self.frozen_logits(self.clean_teacher, x_adv)

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        if self.batch_decay != 1.0:
            self._decay(self.batch_decay)
        assert self._natural is not None
        (nat_logits, clean_nat), self._natural = self._natural, None
        adv_logits = self.student_logits(x_adv)
        robust_adv, clean_adv = self._teacher_outputs(batch, x_adv)
        adversarial, natural = ciard_terms(adv_logits, nat_logits, robust_adv, clean_nat, self.temperatures)
        self.temperatures = update_dual_temperatures(
            self.temperatures, tempered_neg_entropy(robust_adv, self.temperatures.robust),
            tempered_neg_entropy(clean_nat, self.temperatures.clean))
        weight_robust, weight_clean = 1.0, 1.0
        if self.adaptive_weights:
            self.weights = update_adaptive_weights(self.weights, adversarial.item(), natural.item())
            weight_robust, weight_clean = self.weights.weight_adv, self.weights.weight_nat
        loss = weight_robust * adversarial + weight_clean * natural
        if bool((clean_adv.argmax(dim=1) != batch.y).any()):
            push = ciard_push_loss(adv_logits, clean_adv, batch.y, self.push_temperature)
            loss = loss - push_weight(adversarial.item(), natural.item(), push.item()) * push
        if self._teacher_steps:
            loss = loss + F.cross_entropy(robust_adv, batch.y)
        return loss, adv_logits
