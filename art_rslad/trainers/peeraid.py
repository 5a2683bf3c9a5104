"""PeerAiD: adversarial distillation from a peer tutor trained jointly with the student (Jung et al., CVPR 2024)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.estimators import check_classifier, clip_range, model_modes
from art_rslad.losses import peeraid_peer_loss, peeraid_student_loss
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch


class AdversarialTrainerPeerAiD(AdversarialTrainerBase):
    """Train a student and a peer tutor together; the peer learns on the student's adversarial examples only.

    Inner maximisation (student and peer in eval mode): ``p_c = softmax(P(x))`` under no_grad, then PGD on the
    student from x + 0.001 * N(0, I) maximising ``sum_i KL(p_c || S(x'_i))``. Outer loss, both in train mode, one
    backward pass and a step of both optimizers:
    ``CE(P(x'), y) + peer_kl_weight * KL_mean(softmax(S(x')) || softmax(P(x')))`` (the peer's loss; S(x') not
    detached, so it also trains the student) plus
    ``T^2 * KL_mean(softmax(P(x')/T) || softmax(S(x')/T)) + T^2 * KL_mean(softmax(S(x)/T) || softmax(S(x')/T))``
    (the student's; P(x') detached, S(x) not), each KL_mean averaged over B*C elements. No pretrained teacher.
    The official recipe also averages the student by SWA from the first lr drop: pass ``weight_averaging="swa"``.
    The peer's weights and optimizer are in every checkpoint; runs in one process (not under torchrun).

    | Paper link: https://arxiv.org/abs/2403.06668
    """

    method: ClassVar[str] = "peeraid"
    needs_peer: ClassVar[bool] = True
    #: The peer's gradients are not averaged over ranks, so a distributed run is refused.
    distributed_ok: ClassVar[bool] = False
    attack_random_init: ClassVar[RandomInit] = "gaussian"
    default_attack_training_mode: ClassVar[bool] = False

    def __init__(
        self, classifier: PyTorchClassifier, peer: PyTorchClassifier, *, temperature: float = 5.0,
        peer_kl_weight: float = 0.1, peer_temperature: float = 1.0, **kwargs: Any,
    ) -> None:
        """
        :param classifier: The student (ART PyTorchClassifier with optimizer and clip_values), trained in place.
        :param peer: The peer tutor, an ART PyTorchClassifier with its own optimizer and the student's input shape,
            classes and clip range (usually the student's architecture, randomly initialised); trained in place.
        :param temperature: Temperature T of the student's loss, > 0 (5).
        :param peer_kl_weight: Weight of the KL term of the peer's loss, >= 0 (0.1).
        :param peer_temperature: Temperature of that KL term, > 0 (1).
        :param kwargs: ``eps``, ``eps_step``, ``max_iter``, ``attack``, ``attack_training_mode``, ``seed``,
            ``verbose``, ``weight_averaging``, as in :class:`~art_rslad.trainers.base.AdversarialTrainerBase`. A
            custom ``attack`` is called with the peer's probabilities on x as labels.
        """
        if temperature <= 0 or peer_temperature <= 0:
            raise ValueError(f"`temperature` and `peer_temperature` must be > 0, got {temperature} and "
                             f"{peer_temperature}.")
        if peer_kl_weight < 0:
            raise ValueError(f"`peer_kl_weight` must be >= 0, got {peer_kl_weight}.")
        self.temperature, self.peer_kl_weight = float(temperature), float(peer_kl_weight)
        self.peer_temperature = float(peer_temperature)
        super().__init__(classifier, **kwargs)
        self.peer = self._checked_peer(self._classifier, peer)
        if self.channels_last:
            self.peer.model.to(memory_format=torch.channels_last)

    @staticmethod
    def _checked_peer(student: PyTorchClassifier, peer: PyTorchClassifier) -> PyTorchClassifier:
        if peer is student or getattr(peer, "model", None) is getattr(student, "model", None):
            raise ValueError("`peer` must be a second network, not the student itself.")
        peer = check_classifier(peer, "peer", needs_optimizer=True)
        if peer.nb_classes != student.nb_classes or tuple(peer.input_shape) != tuple(student.input_shape):
            raise ValueError(f"`peer` takes inputs {tuple(peer.input_shape)} into {peer.nb_classes} classes, the "
                             f"student {tuple(student.input_shape)} into {student.nb_classes}; they must agree.")
        if clip_range(peer) != clip_range(student):
            raise ValueError(f"`peer` clip_values {clip_range(peer)} differ from the student's {clip_range(student)}.")
        if peer.device != student.device:
            raise ValueError(f"`peer` is on {peer.device}, the student on {student.device}; put both on one device.")
        return peer

    def _other_networks(self) -> dict[str, PyTorchClassifier | None]:
        return {**super()._other_networks(), "peer": self.peer}

    def get_peer(self) -> PyTorchClassifier:
        """The peer tutor, trained jointly with the student."""
        return self.peer

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "temperature": self.temperature, "peer_kl_weight": self.peer_kl_weight,
                "peer_temperature": self.peer_temperature, "peer_model": type(self.peer.model).__name__}

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        with model_modes((self.peer.model, False)), torch.no_grad():
            return torch.softmax(self._forward(self.peer, batch.x), dim=1)

    def _loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        adv_logits = self.student_logits(x_adv)
        nat_logits = self.student_logits(batch.x)
        with model_modes((self.peer.model, True)):
            peer_adv_logits = self._forward(self.peer, x_adv)
        peer_loss = peeraid_peer_loss(peer_adv_logits, adv_logits, batch.y, kl_weight=self.peer_kl_weight,
                                      temperature=self.peer_temperature)
        student_loss = peeraid_student_loss(adv_logits, nat_logits, peer_adv_logits, temperature=self.temperature)
        return peer_loss + student_loss, adv_logits

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [*super()._optimizers(), self.peer.optimizer]

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "peer_model_state": self.peer.model.state_dict(),
                "peer_optimizer_state": self.peer.optimizer.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        super()._load_extra_state(state)
        self.peer.model.load_state_dict(state["peer_model_state"])
        self.peer.optimizer.load_state_dict(state["peer_optimizer_state"])


class JointMultiStepLR(torch.optim.lr_scheduler.MultiStepLR):
    """A MultiStepLR on the student's optimizer that moves further optimizers (PeerAiD's peer) by the same
    milestones: the shared loop steps and checkpoints one scheduler, and PeerAiD's recipe decays both networks' lr.

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
