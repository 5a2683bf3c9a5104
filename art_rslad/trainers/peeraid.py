"""PeerAiD: adversarial distillation from a peer tutor trained jointly with the student (Jung et al., CVPR 2024)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import RandomInit
from art_rslad.estimators import model_modes
from art_rslad.losses import peeraid_peer_loss, peeraid_student_loss
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import Network


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
    #: The peer: the student's architecture, trained beside it with its own optimizer (``peer.pt`` in a run folder).
    networks: ClassVar[tuple[Network, ...]] = (Network("peer", trained=True, start="student"),)
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
        self.peer: PyTorchClassifier
        super().__init__(classifier, networks={"peer": peer}, **kwargs)

    def get_peer(self) -> PyTorchClassifier:
        """The peer tutor, trained jointly with the student."""
        return self.get_network("peer")

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "peer_kl_weight": self.peer_kl_weight,
                "peer_temperature": self.peer_temperature, "peer_model": type(self.peer.model).__name__}

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        with model_modes((self.peer.model, False)), torch.no_grad():
            return torch.softmax(self._forward(self.peer, batch.x), dim=1)

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        adv_logits = self.student_logits(x_adv)
        nat_logits = self.student_logits(batch.x)
        with model_modes((self.peer.model, True)):
            peer_adv_logits = self._forward(self.peer, x_adv)
        peer_loss = peeraid_peer_loss(peer_adv_logits, adv_logits, batch.y, kl_weight=self.peer_kl_weight,
                                      temperature=self.peer_temperature)
        student_loss = peeraid_student_loss(adv_logits, nat_logits, peer_adv_logits, temperature=self.temperature)
        return peer_loss + student_loss, adv_logits
