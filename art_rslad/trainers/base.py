"""The one epoch loop every trainer shares.

A method subclasses :class:`AdversarialTrainerBase` and says only how its adversarial inputs are built (the
targets its attack maximises against, the loss module of that attack, the student's mode while attacking) and
what its training loss is. The loop owns the rest: input checks, batching, the teacher's soft labels (computed
once per sample when the data are not augmented), model modes, validation (clean and PGD-10 accuracy on a
held-out split, the best epoch kept), the scheduler, atomic best/last checkpoints, exact resume, progress bars
and logging. The input check, the validation routine, the best-epoch record and the checkpoint payload are those of
:class:`~art_rslad.trainers.records.RecordedTrainer`, which the adapters of ART's own trainers share.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier
from tqdm.auto import tqdm

from art_rslad.attacks import (
    InputGradientClassifier,
    InputGradientPGD,
    RandomInit,
    SoftLabelKLLoss,
    check_speed_options,
    model_forward,
)
from art_rslad.checkpoint import load_checkpoint, save_atomic
from art_rslad.distributed import World, current_world
from art_rslad.estimators import check_classifier, check_devices, clip_range, forward_logits, model_modes
from art_rslad.evaluation.evaluate import show_progress
from art_rslad.trainers.averaging import WeightAveraging, make_averager
from art_rslad.trainers.batches import Batch, BatchSource, array_batches, generator_batches_of, teacher_probs_once
from art_rslad.trainers.ddp import average_buffers, sync_buffers, wrap_student
from art_rslad.trainers.interrupt import held_interrupt
from art_rslad.trainers.records import (
    RecordedTrainer,
    Scheduler,
    attack_settings,
    check_attack,
    check_budget,
    validation_attack,
)
from art_rslad.trainers.rng import check_rng_device, deterministic_algorithms, restore_rng, rng_state
from art_rslad.trainers.summary import SummaryWriterOption, epoch_summary

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """What one fit holds fixed: its batches, epochs, validation data, scheduler, recorded config, checkpoint
    folder (None on ranks other than 0) and interval, its processes, and whether progress bars show."""

    source: BatchSource
    nb_epochs: int
    validation_data: tuple[np.ndarray, np.ndarray] | None
    scheduler: Scheduler | None
    config: dict[str, Any]
    folder: Path | None
    checkpoint_interval: int
    world: World
    show_progress: bool


class AdversarialTrainerBase(RecordedTrainer):
    """Shared loop of the adversarial (distillation) trainers; see the module docstring.

    Subclasses set :attr:`method`, :attr:`needs_teacher`, :attr:`attack_random_init` and
    :attr:`default_attack_training_mode`, and implement :meth:`_loss` (and :meth:`_attack_targets` when the
    attack does not use the true labels).
    """

    method: ClassVar[str] = "base"
    needs_teacher: ClassVar[bool] = False
    uses_attack: ClassVar[bool] = True
    distributed_ok: ClassVar[bool] = True
    attack_random_init: ClassVar[RandomInit] = "uniform"
    default_attack_training_mode: ClassVar[bool] = False

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
        :param channels_last: Convert the student and teacher to channels_last memory format (in place) and feed
            them channels_last inputs; for image models on GPUs. Off by default.
        :param weight_averaging: ``"ema"`` (an exponential moving average after every step), ``"swa"`` (an equal
            mean per epoch, BatchNorm statistics recomputed), a configured :class:`~art_rslad.trainers.averaging.EMA`
            or :class:`~art_rslad.trainers.averaging.SWA`, or None (default: no averaging). Validation, the best
            checkpoint and the student after ``fit`` use the averaged weights; the live weights keep training.
        :param summary_writer: Each epoch's record as TensorBoard scalars: True (the ``runs/`` folder), a log folder,
            or a ``SummaryWriter``; None (default) writes none. Needs the extra ``art-rslad[tensorboard]``.
        :param deterministic: torch's deterministic algorithms, so that a resumed run on a GPU is bit-identical to
            an uninterrupted one (slower on GPUs; docs/reliability.md; the CPU is deterministic anyway). Off.
        """
        super().__init__(classifier)
        if self.needs_teacher and teacher is None:
            raise ValueError(f"`teacher` is required by {type(self).__name__}: pass a robust PyTorchClassifier.")
        if not self.needs_teacher and teacher is not None:
            raise ValueError(f"{type(self).__name__} uses no teacher; drop the `teacher` argument.")
        self.teacher = None if teacher is None else check_classifier(teacher, "teacher")
        if self.teacher is not None:
            self._check_teacher(self.teacher)
        self.eps = check_budget(classifier, eps, eps_step, max_iter)
        check_attack(attack, classifier)
        self.eps_step, self.max_iter = self.eps / 4 if eps_step is None else float(eps_step), int(max_iter)
        self.seed = int(seed)
        self.verbose = verbose
        check_speed_options(amp_dtype, channels_last, tuple(classifier.input_shape))
        self.amp_dtype, self.channels_last = amp_dtype, bool(channels_last)
        if self.channels_last:
            for model in [classifier.model] + ([] if self.teacher is None else [self.teacher.model]):
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
        self._world: World | None = None  # the processes of the run in progress, resolved once per fit
        self._val_attack = validation_attack(self._input_gradient_classifier(SoftLabelKLLoss()), self.eps,
                                             self.eps_step, self.seed)

    # ----------------------------------------------------------------- what a method says
    def _attack_loss(self) -> torch.nn.Module:
        """Loss module of the default attack; it receives (student logits on x', attack targets)."""
        return SoftLabelKLLoss()

    def _attack_targets(self, batch: Batch) -> torch.Tensor:
        """The labels the attack is called with; by default the one-hot true labels (cross-entropy attack)."""
        return torch.nn.functional.one_hot(batch.y, self._classifier.nb_classes).float()

    def _loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and the student logits used for the training accuracy (student in train mode)."""
        raise NotImplementedError

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
                **({"deterministic": True} if self.deterministic else {})}

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
        with torch.no_grad():
            return self._forward(self.teacher, x)  # on the student's device, checked when fit starts

    def _forward(self, classifier: PyTorchClassifier, x: torch.Tensor) -> torch.Tensor:
        """:func:`forward_logits` under the trainer's ``amp_dtype`` and ``channels_last`` options."""
        return model_forward(lambda inputs: forward_logits(classifier, inputs), x, self.amp_dtype, self.channels_last)

    def _check_teacher(self, teacher: PyTorchClassifier) -> None:
        student = self._classifier
        if teacher is student or teacher.model is student.model:
            raise ValueError("`teacher` is the student itself; distil from a separate (robust) teacher classifier.")
        if teacher.nb_classes != student.nb_classes:
            raise ValueError(f"`teacher` has {teacher.nb_classes} classes but the student has {student.nb_classes}.")
        if tuple(teacher.input_shape) != tuple(student.input_shape):
            raise ValueError(f"`teacher` expects inputs of shape {teacher.input_shape}, the student "
                             f"{student.input_shape}.")
        if clip_range(teacher) != clip_range(student):
            raise ValueError(f"`teacher` clip_values {clip_range(teacher)} differ from the student's "
                             f"{clip_range(student)}; both must use the same input range.")

    # ----------------------------------------------------------------- public training API
    def _fit(self, x: np.ndarray, y: np.ndarray, validation_data: tuple[np.ndarray, np.ndarray] | None,
             batch_size: int, nb_epochs: int, scheduler: Scheduler | None, checkpoint_dir: str | Path | None,
             resume_from: str | Path | None, checkpoint_interval: int) -> None:
        world = self._fit_world()
        world.check_fits(len(x), "x")
        probs = None
        if self._uses_teacher_probs():
            assert self.teacher is not None
            with model_modes((self.teacher.model, False)):
                probs = teacher_probs_once(self.teacher_logits, torch.from_numpy(x), batch_size,
                                           self._classifier.device)
        source = array_batches(x, y, probs, batch_size, self.seed, world, self._classifier.device)
        self._run(source, nb_epochs, validation_data, scheduler, checkpoint_dir, resume_from, checkpoint_interval,
                  world)

    def fit_generator(  # type: ignore[override]
        self,
        generator: Any,
        nb_epochs: int = 20,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        scheduler: Scheduler | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        resume_from: str | Path | None = None,
        checkpoint_interval: int = 0,
    ) -> None:
        """Train the student on an ART DataGenerator (e.g. PyTorchDataGenerator over an augmenting DataLoader).

        The teacher's soft labels are computed per batch, since augmented inputs change every epoch. Resuming
        mid-epoch draws and discards the batches already trained on. Other parameters as in :meth:`fit`.
        """
        world = self._fit_world()
        probs = (lambda x: torch.softmax(self.teacher_logits(x), dim=1)) if self._uses_teacher_probs() else None
        source = generator_batches_of(generator, world, lambda x, y: self._check_data(x, y, "generator batch"),
                                      probs, self._classifier.device)
        validation_data = self._check_run(source.batch_size, nb_epochs, scheduler, checkpoint_interval,
                                          validation_data)
        self._run(source, nb_epochs, validation_data, scheduler, checkpoint_dir, resume_from, checkpoint_interval,
                  world)

    def _other_networks(self) -> dict[str, PyTorchClassifier | None]:  # a jointly trained peer adds itself
        return {"teacher": self.teacher}

    def _fit_world(self) -> World:
        """The run's processes, once every other network (the teacher) is checked on the student's device."""
        check_devices(self._classifier, self._other_networks())
        return current_world(self._classifier.device)

    # ----------------------------------------------------------------- the loop
    def _craft(self, batch: Batch) -> torch.Tensor:
        assert self.attack is not None
        targets = self._attack_targets(batch)
        if isinstance(self.attack, InputGradientPGD):
            return self.attack.generate_tensor(batch.x, targets)
        x_adv = self.attack.generate(batch.x.cpu().numpy(), y=targets.cpu().numpy())
        return torch.as_tensor(x_adv, device=batch.x.device)

    def _train_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        student = self._classifier.model
        teacher_mode = [] if self.teacher is None else [(self.teacher.model, False)]
        x_adv = None
        if self.attack is not None:
            with model_modes((student, self.attack_training_mode), *teacher_mode):
                x_adv = self._craft(batch)
        with model_modes((student, True), *teacher_mode):
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
        """The optimizers that one training step zeroes and steps (the student's; a jointly trained peer adds its)."""
        return [self._classifier.optimizer]

    def _run(self, *arguments: Any) -> None:  # the loop under the ``deterministic`` option
        with deterministic_algorithms(self.deterministic):
            self._loop(*arguments)

    def _loop(self, source: BatchSource, nb_epochs: int, validation_data: tuple[np.ndarray, np.ndarray] | None,
              scheduler: Scheduler | None, checkpoint_dir: str | Path | None, resume_from: str | Path | None,
              checkpoint_interval: int, world: World) -> None:
        if world.is_distributed and not self.distributed_ok:
            raise ValueError(f"{type(self).__name__} runs in one process only; start it without torchrun.")
        self.nb_epochs = int(nb_epochs)
        if self.averager is not None:
            self.averager.start(self.nb_epochs, source.nb_batches, scheduler, lambda m: average_buffers(m, world))
        config = {**self.hyperparameters(), "batch_size": int(source.batch_size), "nb_epochs": int(nb_epochs),
                  "model": type(self._classifier.model).__name__,
                  "data": {**source.fingerprint, **world.data_fingerprint()}}
        self._world = world
        self._ddp = wrap_student(self._classifier, self.teacher, world, config, scheduler)
        run = _Run(source, self.nb_epochs, validation_data, scheduler, config,
                   None if checkpoint_dir is None or not world.is_main else Path(checkpoint_dir),
                   checkpoint_interval, world, show_progress(self.verbose and world.is_main))
        start_epoch, start_batch, totals = 0, 0, [0.0, 0.0, 0]
        if resume_from is not None:
            start_epoch, start_batch, totals = self._resume(resume_from, config, scheduler)
        for epoch in tqdm(range(start_epoch, run.nb_epochs), desc=f"{self.method} epochs", initial=start_epoch,
                          total=run.nb_epochs, disable=not run.show_progress):
            self.epoch = epoch
            started = time.perf_counter()
            sums = self._train_epoch(run, epoch, start_batch if epoch == start_epoch else 0, totals)
            self._close_epoch(run, epoch, started, *sums)
            totals = [0.0, 0.0, 0]
        if self.averager is not None:  # the trained student is the averaged one; last.pt keeps the live weights
            self._classifier.model.load_state_dict(self.averager.averaged_state(self._classifier.model))

    def _train_epoch(self, run: _Run, epoch: int, first: int, totals: list[float]
                     ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The epoch's batches from ``first`` on; the loss and correct sums (on the device) and the count seen.

        Ctrl-C is held until the batch in progress ends; then ``last.pt`` is written there and KeyboardInterrupt
        raised, so a resume continues exactly as if nothing had happened. (A KeyboardInterrupt raised otherwise,
        e.g. on the ranks of a distributed run, writes ``last.pt`` at the last finished batch.)
        """
        device = self._classifier.device
        # Running sums stay on the student's device: no wait for the device after every batch.
        loss_sum, correct = torch.tensor(totals[0], device=device), torch.tensor(totals[1], device=device)
        seen, position = int(totals[2]), first
        batches = tqdm(run.source.batches(epoch, first), desc=f"epoch {epoch + 1}/{run.nb_epochs}",
                       total=run.source.nb_batches, initial=first, leave=False, disable=not run.show_progress)
        with held_interrupt(enabled=not run.world.is_distributed) as interrupt:
            try:
                for batch in batches:
                    batch_loss, batch_correct = self._train_step(batch)
                    loss_sum, correct, seen, position = (loss_sum + batch_loss, correct + batch_correct,
                                                         seen + len(batch.y), position + 1)
                    if interrupt.requested:
                        raise KeyboardInterrupt
                    if run.folder is not None and run.checkpoint_interval and position < run.source.nb_batches \
                            and position % run.checkpoint_interval == 0:
                        self._save(run.folder / "last.pt", run, epoch, position,
                                   [float(loss_sum), float(correct), seen])
            except KeyboardInterrupt:
                if run.folder is not None and not interrupt.abandoned:  # a second Ctrl-C stops mid-batch: no save
                    self._save(run.folder / "last.pt", run, epoch, position, [float(loss_sum), float(correct), seen])
                    logger.warning("Interrupted at epoch %d, batch %d; resume from %s", epoch + 1, position,
                                   run.folder / "last.pt")
                raise
        return loss_sum, correct, seen

    def _close_epoch(self, run: _Run, epoch: int, started: float, loss_sum: torch.Tensor, correct: torch.Tensor,
                     seen: int) -> None:
        """Average the weights, step the scheduler, validate, keep the best epoch and write the checkpoints."""
        if self.averager is not None:
            self.averager.end_epoch(self._classifier.model, epoch, (b.x for b in run.source.batches(epoch, 0)),
                                    lambda inputs: self._forward(self._classifier, inputs))
        loss_sum, correct, seen = run.world.sum(loss_sum, correct, seen)  # type: ignore[assignment]
        record: dict[str, float] = {
            "epoch": epoch + 1, "loss": float(loss_sum) / max(seen, 1),
            "train_accuracy": float(correct) / max(seen, 1),
            "lr": float(self._classifier.optimizer.param_groups[0]["lr"]),
            "train_seconds": time.perf_counter() - started,  # "seconds" below adds validation and checkpoints
        }
        if not math.isfinite(record["loss"]):
            logger.warning("Epoch %d: the training loss is %s; lower the learning rate or the loss scale.",
                           epoch + 1, record["loss"])
        if run.scheduler is not None:
            run.scheduler.step()
        validation = run.validation_data
        is_best = validation is not None and self._record_validation(record, validation, run.source.batch_size)
        if is_best and run.folder is not None:
            self._save(run.folder / "best.pt", run, epoch + 1, 0, [0.0, 0.0, 0])
        record["seconds"] = time.perf_counter() - started
        self._append_record(record, run.nb_epochs)
        if self._summary is not None and run.world.is_main:
            self._summary.write(record)
        if run.folder is not None:
            self._save(run.folder / "last.pt", run, epoch + 1, 0, [0.0, 0.0, 0])
            self._write_metrics(run.folder)

    def _averaged_weights(self) -> contextlib.AbstractContextManager[None]:
        """The averaged weights in the student for the block (nothing without weight averaging)."""
        return contextlib.nullcontext() if self.averager is None else self.averager.applied(self._classifier.model)

    # ----------------------------------------------------------------- validation
    def validate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
        """Clean and PGD-10 (cross-entropy, uniform start, the trainer's eps and eps_step) accuracy on (x, y).

        The validation attack is reseeded every call, so the numbers do not depend on when it runs.
        """
        return self._validate(x, y, batch_size, current_world(self._classifier.device))

    def _run_validation(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, float]:
        with self._averaged_weights():
            return self._validate(x, y, batch_size, self._world or current_world(self._classifier.device))

    def _validate(self, x: np.ndarray, y: np.ndarray, batch_size: int, world: World) -> dict[str, float]:
        """:meth:`validate` in ``world`` (the run's, resolved once per fit)."""
        self._val_attack.generator.manual_seed(self.seed)
        nb_inputs = len(x)
        rows = world.eval_slice(nb_inputs)  # each rank validates its own block; the counts are summed below
        x, y = x[rows], y[rows]
        clean, robust = self._count_correct(self.student_logits, x, y, batch_size)
        clean, robust = world.sum(clean, robust)  # type: ignore[assignment]
        return {"val_clean": clean / nb_inputs, "val_pgd": robust / nb_inputs}

    # ----------------------------------------------------------------- checkpoints
    def _save(self, path: Path, run: _Run, epoch: int, batch: int, totals: list[float]) -> None:
        attack_generator = getattr(self.attack, "generator", None)
        scheduler = run.scheduler
        payload = self._checkpoint_payload(
            path.stem, run.config, epoch, batch=batch, epoch_totals=totals,
            optimizer_state=self._classifier.optimizer.state_dict(),
            scheduler_state=None if scheduler is None else scheduler.state_dict(),
            rng=rng_state(attack_generator, self._classifier.device),
            extra_state=self._extra_state(),
        )
        save_atomic(payload, path)

    def _model_state(self) -> dict[str, torch.Tensor]:
        """The student's weights a checkpoint publishes: the averaged ones under weight averaging."""
        model = self._classifier.model
        return model.state_dict() if self.averager is None else self.averager.averaged_state(model)

    def _extra_state(self) -> dict[str, Any]:
        """State beyond the student, optimizer, scheduler and RNG that an exact resume needs; subclasses extend it."""
        if self.averager is None:
            return {}
        return {"live_model_state": self._classifier.model.state_dict(), "averager": self.averager.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved (called after the student's weights are loaded)."""
        if self.averager is not None:
            self._classifier.model.load_state_dict(state["live_model_state"])
            self.averager.load_state_dict(state["averager"])

    def _resume(self, path: str | Path, run_config: dict[str, Any], scheduler: Scheduler | None
                ) -> tuple[int, int, list[float]]:
        checkpoint = load_checkpoint(path, map_location=self._classifier.device)
        attack_generator = getattr(self.attack, "generator", None)
        check_rng_device(checkpoint["rng"], attack_generator, path)  # before anything is loaded
        saved = checkpoint["config"]
        differences = [f"{key}: checkpoint {saved.get(key)!r}, now {value!r}" for key, value in run_config.items()
                       if saved.get(key) != value]
        if differences:
            raise ValueError(f"`resume_from` {path} was written by a different run; " + "; ".join(differences))
        if (checkpoint["scheduler_state"] is None) != (scheduler is None):
            raise ValueError(f"`resume_from` {path}: the scheduler must be given on resume exactly when the "
                             "interrupted run had one.")
        self._classifier.model.load_state_dict(checkpoint["model_state"])
        self._classifier.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler_state"])
        self._load_extra_state(checkpoint.get("extra_state") or {})
        restore_rng(checkpoint["rng"], attack_generator, self._classifier.device)
        self._restore_records(checkpoint, path)
        logger.info("Resumed %s from %s at epoch %d, batch %d", self.method, path, checkpoint["epoch"] + 1,
                    checkpoint["batch"])
        return int(checkpoint["epoch"]), int(checkpoint["batch"]), list(checkpoint["epoch_totals"])
