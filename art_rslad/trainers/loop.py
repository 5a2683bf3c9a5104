"""The one training loop: everything a method does not say.

:class:`TrainingLoop` owns ``fit`` / ``fit_generator``, the batches (the teacher's soft labels computed once per
sample when the data are not augmented), the epochs, interrupts (:mod:`~art_rslad.trainers.interrupt`), the
scheduler, weight averaging (:mod:`~art_rslad.trainers.averaging`), DDP (:mod:`~art_rslad.trainers.ddp`),
validation and the best epoch, TensorBoard (:mod:`~art_rslad.trainers.summary`), and atomic best/last checkpoints
with exact resume (:mod:`~art_rslad.trainers.resume`). What one training step is, and what a method declares,
belongs to :class:`~art_rslad.trainers.base.AdversarialTrainerBase`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.defences.trainer import Trainer
from art.estimators.classification import PyTorchClassifier
from tqdm.auto import tqdm

from art_rslad.distributed import World, current_world
from art_rslad.estimators import check_devices, model_modes
from art_rslad.progress import show_progress
from art_rslad.trainers.averaging import WeightAveraging
from art_rslad.trainers.batches import Batch, BatchSource, array_batches, generator_batches_of, teacher_probs_once
from art_rslad.trainers.ddp import average_buffers, wrap_student
from art_rslad.trainers.interrupt import held_interrupt
from art_rslad.trainers.records import RecordedTrainer, Scheduler
from art_rslad.trainers.resume import RunState, resume_run, save_run
from art_rslad.trainers.rng import deterministic_algorithms
from art_rslad.trainers.summary import EpochSummary

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


class TrainingLoop(RecordedTrainer, Trainer):
    """The loop every method of the package runs in; :class:`~art_rslad.trainers.base.AdversarialTrainerBase`
    fills in the step (:meth:`_train_step`) and what a checkpoint keeps beyond the student
    (:meth:`_extra_state`)."""

    teacher: PyTorchClassifier | None
    attack: EvasionAttack | None
    averager: WeightAveraging | None
    _summary: EpochSummary | None
    verbose: bool
    deterministic: bool
    #: The networks beside the student, by declared name.
    extra_networks: dict[str, PyTorchClassifier]
    epoch: int
    nb_epochs: int
    _ddp: torch.nn.Module | None
    _world: World | None

    # ----------------------------------------------------------------- what the step side provides
    def _train_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step: the batch's loss sum and correct count (on the device)."""
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, Any]:
        raise NotImplementedError

    def _uses_teacher_probs(self) -> bool:
        raise NotImplementedError

    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def student_logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _forward(self, classifier: PyTorchClassifier, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        """State beyond the student, optimizer, scheduler and RNG that an exact resume needs."""
        raise NotImplementedError

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved (called after the student's weights are loaded)."""
        raise NotImplementedError

    def _start_epoch(self, epoch: int) -> None:
        """Called before each epoch's batches (also when a resume enters an epoch mid-way)."""
        raise NotImplementedError

    def _end_epoch(self, epoch: int, lr_factor: float) -> None:
        """Called after each epoch's last batch and the scheduler's step, before the epoch's checkpoint;
        ``lr_factor`` is the student's lr after that step over its lr before (1 between milestones)."""
        raise NotImplementedError

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
        restore_best: bool = False,
    ) -> None:
        """Train the student on an ART DataGenerator (e.g. PyTorchDataGenerator over an augmenting DataLoader).

        The teacher's soft labels are computed per batch, since augmented inputs change every epoch. Resuming
        mid-epoch draws and discards the batches already trained on. Other parameters as in :meth:`fit`.
        """
        with self._ending_with_best(restore_best, validation_data):
            world = self._fit_world()
            probs = (lambda x: torch.softmax(self.teacher_logits(x), dim=1)) if self._uses_teacher_probs() else None
            source = generator_batches_of(generator, world, lambda x, y: self._check_data(x, y, "generator batch"),
                                          probs, self._classifier.device)
            validation_data = self._check_run(source.batch_size, nb_epochs, scheduler, checkpoint_interval,
                                              validation_data)
            self._run(source, nb_epochs, validation_data, scheduler, checkpoint_dir, resume_from,
                      checkpoint_interval, world)

    def _fit_world(self) -> World:
        """The run's processes, once every other network (the teacher, a peer) is checked on the student's
        device."""
        check_devices(self._classifier, dict(self.extra_networks))
        return current_world(self._classifier.device)

    # ----------------------------------------------------------------- the loop
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
        self._clear_records()  # each fit records its own epochs from 1 (a resume reads back its run's)
        if resume_from is not None:
            start_epoch, start_batch, totals = resume_run(self, resume_from, config, scheduler)
        for epoch in tqdm(range(start_epoch, run.nb_epochs), desc=f"{self.method} epochs", initial=start_epoch,
                          total=run.nb_epochs, disable=not run.show_progress):
            self.epoch = epoch
            started = time.perf_counter()
            self._start_epoch(epoch)
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
        lr = float(self._classifier.optimizer.param_groups[0]["lr"])
        self._end_epoch(epoch, lr / record["lr"] if record["lr"] else 1.0)
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

    def _save(self, path: Path, run: _Run, epoch: int, batch: int, totals: list[float]) -> None:
        save_run(self, path, RunState(run.config, run.scheduler, epoch, batch, totals))

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

    def _model_state(self) -> dict[str, torch.Tensor]:
        """The student's weights a checkpoint publishes: the averaged ones under weight averaging."""
        model = self._classifier.model
        return model.state_dict() if self.averager is None else self.averager.averaged_state(model)


__all__ = ["TrainingLoop"]
