"""SAAD: sample-wise adaptive weighting for transfer consistency in adversarial distillation (Lee and Chung,
TMLR 2026)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import InputGradientClassifier, InputGradientPGD, RandomInit
from art_rslad.estimators import forward_logits
from art_rslad.losses_samplewise import linearised_teacher_logits, saad_loss, saad_weights, teacher_label_gradient
from art_rslad.trainers.adaad import TeacherStudentKLLoss
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import TEACHER, Network
from art_rslad.trainers.records import check_non_negative, check_positive


class LinearisedTeacherPair(torch.nn.Module):
    """The student's logits on x' and SAAD's linearised teacher on x'
    (:func:`~art_rslad.losses_samplewise.linearised_teacher_logits`), stacked to shape (B, 2, C) for
    :class:`~art_rslad.trainers.adaad.TeacherStudentKLLoss`. :attr:`anchor` holds the batch's ``(x, T(x), g, y)``,
    set before each attack. The student is held, not registered, so this module has no parameters.
    """

    def __init__(self, student: PyTorchClassifier, step: float) -> None:
        super().__init__()
        self.classifiers = (student,)
        self.step = step
        #: The batch's ``(x, T(x), g, y)``: inputs, the teacher's logits, the input gradient of its true-class
        #: logit (:func:`~art_rslad.losses_samplewise.teacher_label_gradient`) and labels; None outside the step.
        self.anchor: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        if self.anchor is None:
            raise RuntimeError("SAAD's attack runs only inside its trainer's step, which sets the batch's anchor.")
        x, teacher_logits, gradient, labels = self.anchor
        teacher = linearised_teacher_logits(x_adv, x, teacher_logits, gradient, labels, self.step)
        return torch.stack([forward_logits(self.classifiers[0], x_adv), teacher], dim=1)


class AdversarialTrainerSAAD(AdversarialTrainerBase):
    """IGDM-style distillation in which each sample counts by the teacher's entropy on the student's x'.

    Inner maximisation (student and teacher in eval mode): once per batch the teacher's logits on x and the input
    gradient of its true-class logit; then PGD from x + 0.001 * N(0, I) maximising ``sum_i KL(softmax(z~_i) ||
    S(x'_i))`` against the teacher linearised at x (no teacher forward per step). Outer loss (student in train
    mode; S(x) is computed even with ``beta = 0``, as in the official code, which moves BatchNorm statistics):
    ``mean_i [w_i (KL_i(S(x'), T(x')) + alpha (e/E) IGDM_i) + beta (1 - w^_i) KL_i(S(x), T(x))]`` with ``w`` from
    the entropy of ``softmax(T(x'))`` (:func:`~art_rslad.losses_samplewise.saad_weights`, ``saad_loss``). IGDM's
    matching is inside the loss, so IGDM's attachable term does not apply. The official recipe averages the student
    by SWA from epoch 95 of 200 (``weight_averaging=SWA(start_epoch=94)``; a run's config: ``weight_averaging =
    "swa"``, ``weight_averaging_start = 94``).

    | Paper link: https://arxiv.org/abs/2512.10275
    """

    method: ClassVar[str] = "saad"
    networks: ClassVar[tuple[Network, ...]] = (TEACHER,)
    takes_terms: ClassVar[bool] = False
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, alpha: float = 1.0, beta: float = 0.0,
        entropy_order: float = 1.0, entropy_scale: float = 5.0, linearisation_step: float = 1.0, **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param alpha: Final weight ``a`` of the input-gradient matching, >= 0, reached linearly at the last epoch
            (1 on CIFAR-10; 10 on CIFAR-100 in the official recipe).
        :param beta: Weight of the natural term, >= 0 (0, as the official recipe).
        :param entropy_order: Order of the Renyi entropy of the weights, >= 0 (1: Shannon's).
        :param entropy_scale: Scale of the sample weights, > 0 (5; the official code hard-codes it).
        :param linearisation_step: Step of the linearised teacher in the attack, > 0 (1).
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack`` (called on the student alone with the
            teacher's probabilities on x), ``attack_training_mode``, ``seed``, ``verbose``, ``amp_dtype``,
            ``channels_last``, ``weight_averaging``, as in :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        self.alpha, self.beta = check_non_negative("alpha", alpha), check_non_negative("beta", beta)
        self.entropy_order = check_non_negative("entropy_order", entropy_order)
        self.entropy_scale = check_positive("entropy_scale", entropy_scale)
        self.linearisation_step = check_positive("linearisation_step", linearisation_step)
        self._pair = LinearisedTeacherPair(classifier, self.linearisation_step)
        super().__init__(classifier, teacher, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "entropy_order": self.entropy_order,
                "entropy_scale": self.entropy_scale, "linearisation_step": self.linearisation_step}

    def _uses_teacher_probs(self) -> bool:
        return False  # the teacher's logits on x are taken per batch, with their input gradient

    def _default_attack(self) -> EvasionAttack:
        student = self._classifier
        pair = PyTorchClassifier(
            self._pair, loss=TeacherStudentKLLoss(), input_shape=student.input_shape, nb_classes=student.nb_classes,
            clip_values=student.clip_values, channels_first=student.channels_first,
            device_type="cpu" if student.device.type == "cpu" else "gpu",
        )
        estimator = InputGradientClassifier(pair, TeacherStudentKLLoss(), amp_dtype=self.amp_dtype,
                                            channels_last=self.channels_last)
        return InputGradientPGD(estimator, eps=self.eps, eps_step=self.eps_step, max_iter=self.max_iter,
                                random_init=self.attack_random_init, seed=self.seed)

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        """The batch's anchor of the linearised teacher; a custom attack gets the teacher's probabilities on x."""
        assert self.teacher is not None
        teacher = self.teacher
        logits, gradient = teacher_label_gradient(lambda inputs: self._forward(teacher, inputs), batch.x, batch.y)
        self._pair.anchor = (batch.x, logits, gradient, batch.y)
        return torch.softmax(logits, dim=1)

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        self._pair.anchor = None
        x_mirror = 2.0 * batch.x - x_adv  # x - (x' - x), deliberately not clipped
        teacher_adv, teacher_mirror = self.teacher_logits(x_adv), self.teacher_logits(x_mirror)
        teacher_nat = self.teacher_logits(batch.x) if self.beta else None
        adv_logits, mirror_logits = self.student_logits(x_adv), self.student_logits(x_mirror)
        nat_logits = self.student_logits(batch.x)
        weights = saad_weights(teacher_adv, self.entropy_scale, self.entropy_order)
        loss = saad_loss(adv_logits, mirror_logits, nat_logits, teacher_adv, teacher_mirror, teacher_nat, weights,
                         igdm_weight=self.alpha * (self.epoch + 1) / self.nb_epochs, beta=self.beta)
        return loss, adv_logits
