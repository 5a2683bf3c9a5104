"""What a method declares, and the one training step every method shares.

A method subclasses :class:`AdversarialTrainerBase` and declares only:

* the networks it uses beside the student (:attr:`~art_rslad.trainers.records.RecordedTrainer.networks`, a
  tuple of :class:`~art_rslad.trainers.networks.Network`: none, a teacher, a peer it trains, ...);
* how it builds x': the targets its attack maximises against (:meth:`~AdversarialTrainerBase._attack_targets`),
  the loss module of that attack (:meth:`~AdversarialTrainerBase._attack_loss`), its random start and the student's
  mode while attacking (:attr:`~AdversarialTrainerBase.attack_random_init`,
  :attr:`~AdversarialTrainerBase.default_attack_training_mode`);
* its training loss (:meth:`~AdversarialTrainerBase._method_loss`);
* the state it keeps across epochs (:attr:`~AdversarialTrainerBase.kept_state`: attribute names of tensors, plain
  values or dataclasses of them, saved in every checkpoint and restored on resume), and what it does at an epoch's
  start and end (:meth:`~AdversarialTrainerBase._start_epoch`, :meth:`~AdversarialTrainerBase._end_epoch`);
* its settings, checked in its constructor and recorded by :meth:`~AdversarialTrainerBase.hyperparameters`.

Terms such as IGDM's (:mod:`~art_rslad.trainers.terms`) attach to any method's loss through their trainer option.
Everything else (epochs, validation, schedulers, DDP, mixed precision, weight averaging, checkpoints, resume,
interrupts) is the loop's, :class:`~art_rslad.trainers.loop.TrainingLoop`.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from art_rslad.attacks import (
    InputGradientClassifier,
    InputGradientPGD,
    RandomInit,
    SoftLabelKLLoss,
    check_speed_options,
    model_forward,
)
from art_rslad.estimators import forward_logits, model_modes
from art_rslad.trainers.averaging import WeightAveraging, make_averager
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.ddp import sync_buffers
from art_rslad.trainers.loop import TrainingLoop
from art_rslad.trainers.networks import (
    Network,
    check_networks,
    load_trained_state,
    teacher_declared,
    trained_state,
)
from art_rslad.trainers.records import (
    attack_budget,
    attack_settings,
    check_attack,
    check_budget,
    validation_attack,
)
from art_rslad.trainers.summary import SummaryWriterOption, epoch_summary
from art_rslad.trainers.terms import make_terms


class AdversarialTrainerBase(TrainingLoop):
    """The step of the shared loop and what a method declares; see the module docstring."""

    method: ClassVar[str] = "base"
    #: Whether a frozen teacher is always required (derived from
    #: :attr:`~art_rslad.trainers.records.RecordedTrainer.networks`).
    needs_teacher: ClassVar[bool] = False
    #: Names of attributes the method keeps across epochs (tensors or plain values), checkpointed and restored.
    kept_state: ClassVar[tuple[str, ...]] = ()
    #: Whether attachable terms (IGDM's, :mod:`~art_rslad.trainers.terms`) apply; False where the method's own loss
    #: already holds one (SAAD's input-gradient matching).
    takes_terms: ClassVar[bool] = True
    uses_attack: ClassVar[bool] = True
    attack_random_init: ClassVar[RandomInit] = "uniform"
    default_attack_training_mode: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.needs_teacher = teacher_declared(cls.networks)

    def __init__(
        self,
        classifier: PyTorchClassifier,
        teacher: PyTorchClassifier | None = None,
        *,
        eps: float | None = None,
        eps_step: float | None = None,
        max_iter: int = 10,
        attack: EvasionAttack | None = None,
        attack_training_mode: bool | None = None,
        seed: int = 0,
        verbose: bool = True,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        weight_averaging: str | WeightAveraging | None = None,
        summary_writer: SummaryWriterOption = None,
        deterministic: bool = False,
        igdm_alpha: float = 0.0,
        networks: dict[str, PyTorchClassifier | None] | None = None,
    ) -> None:
        """
        :param classifier: The student, an ART PyTorchClassifier with an optimizer and clip_values; trained in place.
        :param teacher: The teacher, an ART PyTorchClassifier with the same classes and clip range; never updated.
        :param eps: Radius of the L-inf ball of the inner maximisation, on the scale of clip_values (default 8/255,
            CIFAR's budget; a warning says so when the inputs are not CIFAR-shaped).
        :param eps_step: Step size of the inner maximisation (default eps / 4).
        :param max_iter: Number of steps of the inner maximisation.
        :param attack: Any ART EvasionAttack to use instead of the default PGD; it is called with the method's
            targets as labels (the teacher's probabilities for soft-label methods).
        :param attack_training_mode: Student in train mode (True) or eval mode (False) while the attack runs;
            None follows the method's paper.
        :param seed: Seed of the batch order, the attack's random starts and the validation attack.
        :param verbose: Show progress bars (on a terminal or in a notebook; in a log file the epoch lines only).
        :param amp_dtype: ``torch.bfloat16`` runs the forward passes of the attack, the loss, the teacher and
            validation under autocast (logits and losses stay float32); None (default) keeps float32. For GPUs.
        :param channels_last: Convert the student and the other networks to channels_last memory format (in place)
            and feed them channels_last inputs; for image models on GPUs. Off by default.
        :param weight_averaging: ``"ema"`` (an exponential moving average after every step), ``"swa"`` (an equal
            mean per epoch, BatchNorm statistics recomputed), a configured :class:`~art_rslad.trainers.averaging.EMA`
            or :class:`~art_rslad.trainers.averaging.SWA`, or None (default: no averaging). Validation, the best
            checkpoint and the student after ``fit`` use the averaged weights; the live weights keep training.
        :param summary_writer: Each epoch's record as TensorBoard scalars: True (the ``runs/`` folder), a log folder,
            or a ``SummaryWriter``; None (default) writes none. Needs the extra ``art-rslad[tensorboard]``.
        :param deterministic: torch's deterministic algorithms, so that a resumed run on a GPU is bit-identical to
            an uninterrupted one (slower on GPUs; docs/reliability.md; the CPU is deterministic anyway). Off.
        :param igdm_alpha: Final weight of IGDM's term (:mod:`~art_rslad.trainers.terms`), >= 0, for a method with
            a teacher (0: off; 1 on CIFAR-10, 10-20 on CIFAR-100 in its paper), reached linearly at the last epoch.
        :param networks: The method's other declared networks by name (a subclass passes them; e.g. ``peer``).
        """
        super().__init__(classifier)
        owner = type(self).__name__
        #: The networks beside the student, by declared name (also attributes of the same names).
        self.extra_networks = check_networks(owner, self.networks, self._classifier,
                                             {"teacher": teacher, **(networks or {})})
        for name, network in self.extra_networks.items():
            setattr(self, name, network)
        self.teacher = self.extra_networks.get("teacher")
        eps, eps_step = attack_budget(attack, eps, eps_step)  # with attack=, its budget is the run's
        self.eps = check_budget(classifier, eps, eps_step, max_iter)
        check_attack(attack, classifier)
        self.eps_step, self.max_iter = self.eps / 4 if eps_step is None else float(eps_step), int(max_iter)
        self.seed = int(seed)
        self.verbose = verbose
        if igdm_alpha and not self.takes_terms:
            raise ValueError(f"{owner}'s own loss already matches input gradients; drop `igdm_alpha`.")
        self.terms = make_terms(owner, self.teacher is not None and not self._trains("teacher"), igdm_alpha)
        self.igdm_alpha = float(igdm_alpha)
        check_speed_options(amp_dtype, channels_last, tuple(classifier.input_shape))
        self.amp_dtype, self.channels_last = amp_dtype, bool(channels_last)
        if self.channels_last:
            for model in [classifier.model, *(network.model for network in self.extra_networks.values())]:
                model.to(memory_format=torch.channels_last)
        self.attack_training_mode = (
            self.default_attack_training_mode if attack_training_mode is None else bool(attack_training_mode)
        )
        self.averager = make_averager(weight_averaging)
        self.deterministic = bool(deterministic)
        self._summary = epoch_summary(summary_writer)
        self._user_attack = attack  # recorded with the budget it really runs with
        self.attack: EvasionAttack | None = None
        if self.uses_attack:
            self.attack = attack if attack is not None else self._default_attack()
        self.epoch = 0
        self.nb_epochs = 0
        self._ddp: torch.nn.Module | None = None  # the student under DistributedDataParallel during a distributed run
        self._world = None  # the processes of the run in progress, resolved once per fit
        self._val_attack = validation_attack(self._input_gradient_classifier(SoftLabelKLLoss()), self.eps,
                                             self.eps_step, self.seed)

    # ----------------------------------------------------------------- what a method says
    def _attack_loss(self) -> torch.nn.Module:
        """Loss module of the default attack; it receives (student logits on x', attack targets)."""
        return SoftLabelKLLoss()

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        """The labels the attack is called with; by default the one-hot true labels (cross-entropy attack)."""
        return torch.nn.functional.one_hot(batch.y, self._classifier.nb_classes).float()

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The method's training loss and the student's logits on x' (on x without an attack), with their graph;
        the student in train mode."""
        raise NotImplementedError

    def method_hyperparameters(self) -> dict[str, Any]:
        """The method's own settings (recorded after the shared ones)."""
        return {}

    def _before_attack(self, batch: Batch) -> None:
        """Forwards the method runs before its attack, the student in train mode (CIARD's S(x), whose BatchNorm
        statistics the attack then sees, as in its official code); nothing by default."""

    def _start_epoch(self, epoch: int) -> None:
        """Before each epoch's batches (e.g. the lr of a network with its own optimizer); nothing by default."""

    def _end_epoch(self, epoch: int, lr_factor: float) -> None:
        """After each epoch's last batch and the scheduler's step (e.g. a per-class update, or a rate that follows
        the lr decay: ``lr_factor`` is the lr's change); nothing by default."""

    def hyperparameters(self) -> dict[str, Any]:
        """Settings that define the method's run, stored in checkpoints and compared on resume."""
        return {"method": self.method, "eps": self.eps, "eps_step": self.eps_step, "max_iter": self.max_iter,
                "attack_training_mode": self.attack_training_mode, "seed": self.seed,
                "attack": type(self.attack).__name__ if self.attack is not None else None,
                **({} if self._user_attack is None else {"attack_settings": attack_settings(self._user_attack)}),
                # bf16 changes the numbers, so a resume must use the same; channels_last changes only the layout
                "amp_dtype": None if self.amp_dtype is None else str(self.amp_dtype),
                # recorded only when on, so that checkpoints written before the option existed still resume
                **({} if self.averager is None else {"weight_averaging": self.averager.hyperparameters()}),
                **({"deterministic": True} if self.deterministic else {}),
                **{key: value for term in self.terms for key, value in term.hyperparameters().items()},
                **self.method_hyperparameters()}

    def _uses_teacher_probs(self) -> bool:
        """Whether the batches carry the teacher's probabilities on x (computed once per sample by ``fit``)."""
        return self.teacher is not None

    # ----------------------------------------------------------------- helpers for methods
    def _input_gradient_classifier(self, loss: torch.nn.Module) -> InputGradientClassifier:
        return InputGradientClassifier(self._classifier, loss, amp_dtype=self.amp_dtype,
                                       channels_last=self.channels_last)

    def _default_attack(self) -> EvasionAttack:
        return InputGradientPGD(
            self._input_gradient_classifier(self._attack_loss()), eps=self.eps, eps_step=self.eps_step,
            max_iter=self.max_iter, random_init=self.attack_random_init, seed=self.seed,
        )

    def student_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Student logits on ``x``; in a distributed run the training loss's forwards (train mode, gradients on)
        go through DistributedDataParallel so that their gradients are averaged over the ranks."""
        if self._ddp is not None and torch.is_grad_enabled() and self._classifier.model.training:
            return model_forward(self._ddp, x, self.amp_dtype, self.channels_last)
        return self._forward(self._classifier, x)

    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher logits on ``x`` under no_grad (the teacher is never differentiated or updated)."""
        assert self.teacher is not None
        return self.frozen_logits(self.teacher, x)

    def frozen_logits(self, network: PyTorchClassifier, x: torch.Tensor) -> torch.Tensor:
        """A frozen network's logits on ``x`` under no_grad (on the student's device, checked when fit starts)."""
        with torch.no_grad():
            return self._forward(network, x)

    def _forward(self, classifier: PyTorchClassifier, x: torch.Tensor) -> torch.Tensor:
        """:func:`forward_logits` under the trainer's ``amp_dtype`` and ``channels_last`` options."""
        return model_forward(lambda inputs: forward_logits(classifier, inputs), x, self.amp_dtype, self.channels_last)

    def get_network(self, name: str) -> PyTorchClassifier:
        """The declared network ``name`` (e.g. ``"teacher"``, ``"peer"``); a trained one after ``fit``."""
        if name not in self.extra_networks:
            raise ValueError(f"{type(self).__name__} has no network {name!r}; it has: "
                             f"{', '.join(self.extra_networks)}.")
        return self.extra_networks[name]

    # ----------------------------------------------------------------- the step
    def _loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The method's loss plus its attached terms, and the student's logits used for the training accuracy."""
        loss, adv_logits = self._method_loss(batch, x_adv)
        if x_adv is not None:
            for term in self.terms:
                weight = term.weight(self.epoch, self.nb_epochs)
                loss = loss + weight * term.loss(batch.x, x_adv, adv_logits, self.student_logits,
                                                 self.teacher_logits)
        return loss, adv_logits

    def _craft(self, batch: Batch) -> torch.Tensor:
        assert self.attack is not None
        targets = self._attack_targets(batch)
        if isinstance(self.attack, InputGradientPGD):
            return self.attack.generate_tensor(batch.x, targets)
        x_adv = self.attack.generate(batch.x.cpu().numpy(), y=targets.cpu().numpy())
        return torch.as_tensor(x_adv, device=batch.x.device)

    def _trains(self, name: str) -> bool:
        """Whether the declared network ``name`` is trained beside the student."""
        return any(net.name == name and net.trained for net in self.networks)

    def _frozen_modes(self) -> list[tuple[torch.nn.Module, bool]]:
        return [(network.model, False) for name, network in self.extra_networks.items() if not self._trains(name)]

    def _train_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        student = self._classifier.model
        frozen = self._frozen_modes()
        x_adv = None
        if self.attack is not None:
            with model_modes((student, True), *frozen):
                self._before_attack(batch)
            with model_modes((student, self.attack_training_mode), *frozen):
                x_adv = self._craft(batch)
        with model_modes((student, True), *frozen):
            loss, logits = self._loss(batch, x_adv)
            optimizers = self._optimizers()
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
        sync_buffers(self._ddp)  # all ranks continue (and average) with rank 0's BatchNorm statistics
        if self.averager is not None:
            self.averager.after_step(student)
        correct = (logits.detach().argmax(dim=1) == batch.y).sum()
        return loss.detach() * len(batch.y), correct

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers one training step zeroes and steps: the student's, then each trained network's."""
        trained = [net.name for net in self.networks if net.trained and net.name in self.extra_networks]
        return [self._classifier.optimizer, *(self.extra_networks[name].optimizer for name in trained)]

    # ----------------------------------------------------------------- what a checkpoint keeps beyond the student
    def _extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.averager is not None:
            state.update(live_model_state=self._classifier.model.state_dict(), averager=self.averager.state_dict())
        state.update(trained_state(self.extra_networks, self.networks))
        state.update({name: _plain(getattr(self, name)) for name in self.kept_state})
        return state

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if self.averager is not None:
            self._classifier.model.load_state_dict(state["live_model_state"])
            self.averager.load_state_dict(state["averager"])
        load_trained_state(self.extra_networks, self.networks, state)
        for name in self.kept_state:
            value, current = state[name], getattr(self, name)
            if dataclasses.is_dataclass(current):
                value = type(current)(**value)
            setattr(self, name, value.to(current.device) if isinstance(current, torch.Tensor) else value)


def _plain(value: Any) -> Any:
    """A kept state's value as a checkpoint holds it: a copy, a dataclass (an adaptive rule's state) as its fields,
    so that ``torch.load(..., weights_only=True)`` reads it back."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value)


__all__ = ["AdversarialTrainerBase", "Batch", "Network"]
