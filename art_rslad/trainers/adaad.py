"""AdaAD: adaptive adversarial distillation (Huang et al., CVPR 2023), where the teacher also sees x'."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import InputGradientClassifier, InputGradientPGD, RandomInit
from art_rslad.estimators import forward_logits
from art_rslad.losses import adaad_loss, kl_per_sample
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import TEACHER, Network
from art_rslad.trainers.records import check_fraction, check_positive


class StudentTeacherLogits(torch.nn.Module):
    """Student and teacher logits on the same raw input, stacked to shape (B, 2, C).

    Each classifier applies its own ART preprocessing. The classifiers are held, not registered as submodules, so
    this module has no parameters and changes neither model's mode.
    """

    def __init__(self, student: PyTorchClassifier, teacher: PyTorchClassifier) -> None:
        super().__init__()
        self.classifiers = (student, teacher)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        student, teacher = self.classifiers
        return torch.stack([forward_logits(student, x), forward_logits(teacher, x)], dim=1)


class TeacherStudentKLLoss(torch.nn.Module):
    """``sum_i KL(softmax(T(x'_i)) || S(x'_i))`` from :class:`StudentTeacherLogits` outputs; the labels are unused.

    The gradient flows through both models' logits, as in AdaAD's inner maximisation.
    """

    def forward(self, stacked_logits: torch.Tensor, _labels: torch.Tensor) -> torch.Tensor:
        return kl_per_sample(torch.softmax(stacked_logits[:, 1], dim=1), stacked_logits[:, 0]).sum()


class AdaptiveAttack:
    """AdaAD's inner maximisation, mixed into AdaAD and AdaIAD (``class M(AdaptiveAttack, AdversarialTrainerBase)``):
    x' maximises the student-teacher disagreement.

    Student and teacher in eval mode; from x + 0.001 * N(0, I), ``max_iter`` sign steps on
    ``sum_i KL(p_T(x'_i) || S(x'_i))``, the teacher evaluated on x' at every step and the gradient flowing through
    both models (an :class:`InputGradientPGD` on a classifier whose model is :class:`StudentTeacherLogits`). A
    custom ``attack`` is called on the student alone, with the teacher's probabilities on x as labels.
    """

    networks: ClassVar[tuple[Network, ...]] = (TEACHER,)
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False
    attack: EvasionAttack | None
    teacher: PyTorchClassifier | None
    _classifier: PyTorchClassifier
    eps: float
    eps_step: float
    max_iter: int
    seed: int
    amp_dtype: torch.dtype | None
    channels_last: bool

    def _uses_teacher_probs(self) -> bool:
        # The default attack's loss reads no labels; only a custom attack is called with p_T(x).
        estimator = getattr(self.attack, "estimator", None)
        return not isinstance(getattr(estimator, "model", None), StudentTeacherLogits)

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        if batch.teacher_probs is None:  # the default attack: its loss ignores the labels
            return torch.zeros(len(batch.y), self._classifier.nb_classes, device=batch.x.device)
        return batch.teacher_probs

    def _default_attack(self) -> EvasionAttack:
        assert self.teacher is not None
        student = self._classifier
        pair = PyTorchClassifier(
            StudentTeacherLogits(student, self.teacher), loss=TeacherStudentKLLoss(), input_shape=student.input_shape,
            nb_classes=student.nb_classes, clip_values=student.clip_values, channels_first=student.channels_first,
            device_type="cpu" if student.device.type == "cpu" else "gpu",
        )
        estimator = InputGradientClassifier(pair, TeacherStudentKLLoss(), amp_dtype=self.amp_dtype,
                                            channels_last=self.channels_last)
        return InputGradientPGD(estimator, eps=self.eps, eps_step=self.eps_step, max_iter=self.max_iter,
                                random_init=self.attack_random_init, seed=self.seed)


class AdversarialTrainerAdaAD(AdaptiveAttack, AdversarialTrainerBase):
    """Distil a robust teacher on inputs that maximise the student-teacher disagreement.

    Inner maximisation (:class:`AdaptiveAttack`, student and teacher in eval mode): from x + 0.001 * N(0, I),
    ``max_iter`` sign steps on ``sum_i KL(p_T(x'_i) || S(x'_i))``, the teacher evaluated on x'. Outer loss (student
    in train mode):
    ``scale * (alpha * mean_i KL(p_T(x'_i) || S(x'_i)) + (1 - alpha) * mean_i KL(p_T(x_i) || S(x_i)))``: RSLAD's
    loss with the teacher's probabilities on x' in the adversarial term.

    ``scale=0.1`` reproduces the official CIFAR-10 reduction; scale and learning rate trade against each other.

    | Paper link: https://openaccess.thecvf.com/content/CVPR2023/html/Huang_Boosting_Accuracy_and_Robustness_of_Student_Models_via_Adaptive_Adversarial_CVPR_2023_paper.html
    """

    method: ClassVar[str] = "adaad"

    def __init__(
        self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, *, alpha: float = 1.0, scale: float = 0.1,
        **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param teacher: The robust teacher (ART PyTorchClassifier, same classes and clip range).
        :param alpha: Weight of the adversarial KL term, in [0, 1] (1: S(x) is not computed).
        :param scale: Multiplier of the loss, > 0 (0.1 reproduces the official code); acts like a learning rate.
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack``, ``attack_training_mode``, ``seed``,
            ``verbose``, ``amp_dtype``, ``channels_last``, ``igdm_alpha``, ``weight_averaging``, as in
            :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
        """
        self.alpha, self.scale = check_fraction("alpha", alpha), check_positive("scale", scale)
        super().__init__(classifier, teacher, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "scale": self.scale}

    def _uses_teacher_probs(self) -> bool:
        return self.alpha < 1.0 or super()._uses_teacher_probs()

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        adv_logits = self.student_logits(x_adv)
        nat_logits = self.student_logits(batch.x) if self.alpha < 1.0 else None
        teacher_adv_probs = torch.softmax(self.teacher_logits(x_adv), dim=1)
        loss = adaad_loss(adv_logits, nat_logits, teacher_adv_probs, batch.teacher_probs, alpha=self.alpha,
                          scale=self.scale)
        return loss, adv_logits
