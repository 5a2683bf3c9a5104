"""The one epoch loop every trainer shares.

A method subclasses :class:`AdversarialTrainerBase` and says only how its adversarial inputs are built (the
targets its attack maximises against, the loss module of that attack, the student's mode while attacking) and
what its training loss is. The loop owns the rest: input checks, batching, the teacher's soft labels (computed
once per sample when the data are not augmented), model modes, validation (clean and PGD-10 accuracy on a
held-out split, the best epoch kept), the scheduler, atomic best/last checkpoints, exact resume, progress bars
and logging.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.defences.trainer import Trainer
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
from art_rslad.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, save_atomic
from art_rslad.distributed import World, current_world
from art_rslad.estimators import check_classifier, clip_range, forward_logits, model_modes
from art_rslad.trainers.averaging import WeightAveraging, make_averager
from art_rslad.trainers.ddp import generator_batches, set_generator_epoch, sync_buffers, wrap_student

logger = logging.getLogger(__name__)

Scheduler = torch.optim.lr_scheduler.LRScheduler


@dataclass
class Batch:
    """One training batch on the student's device: natural inputs, class indices, teacher probabilities."""

    x: torch.Tensor
    y: torch.Tensor
    teacher_probs: torch.Tensor | None


def _versions() -> dict[str, str]:
    import art

    import art_rslad

    return {"art_rslad": art_rslad.__version__, "art": art.__version__, "torch": str(torch.__version__),
            "numpy": np.__version__, "python": platform.python_version()}


class AdversarialTrainerBase(Trainer):
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
        eps: float = 8 / 255,
        eps_step: float = 2 / 255,
        max_iter: int = 10,
        attack: EvasionAttack | None = None,
        attack_training_mode: bool | None = None,
        seed: int = 0,
        verbose: bool = True,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        weight_averaging: str | WeightAveraging | None = None,
    ) -> None:
        """
        :param classifier: The student, an ART PyTorchClassifier with an optimizer and clip_values; trained in place.
        :param teacher: The teacher, an ART PyTorchClassifier with the same classes and clip range; never updated.
        :param eps: Radius of the L-inf ball of the inner maximisation, on the scale of clip_values.
        :param eps_step: Step size of the inner maximisation.
        :param max_iter: Number of steps of the inner maximisation.
        :param attack: Any ART EvasionAttack to use instead of the default PGD; it is called with the method's
            targets as labels (the teacher's probabilities for soft-label methods).
        :param attack_training_mode: Student in train mode (True) or eval mode (False) while the attack runs;
            None follows the method's paper.
        :param seed: Seed of the batch order, the attack's random starts and the validation attack.
        :param verbose: Show progress bars.
        :param amp_dtype: ``torch.bfloat16`` runs the forward passes of the attack, the loss, the teacher and
            validation under autocast (logits and losses stay float32); None (default) keeps float32. For GPUs.
        :param channels_last: Convert the student and teacher to channels_last memory format (in place) and feed
            them channels_last inputs; for image models on GPUs. Off by default.
        :param weight_averaging: ``"ema"`` (an exponential moving average after every step), ``"swa"`` (an equal
            mean per epoch, BatchNorm statistics recomputed), a configured :class:`~art_rslad.trainers.averaging.EMA`
            or :class:`~art_rslad.trainers.averaging.SWA`, or None (default: no averaging). Validation, the best
            checkpoint and the student after ``fit`` use the averaged weights; the live weights keep training.
        """
        super().__init__(classifier=check_classifier(classifier, "classifier", needs_optimizer=True))
        if self.needs_teacher and teacher is None:
            raise ValueError(f"`teacher` is required by {type(self).__name__}: pass a robust PyTorchClassifier.")
        if not self.needs_teacher and teacher is not None:
            raise ValueError(f"{type(self).__name__} uses no teacher; drop the `teacher` argument.")
        self.teacher = None if teacher is None else check_classifier(teacher, "teacher")
        if self.teacher is not None:
            self._check_teacher(self.teacher)
        low, high = clip_range(classifier)
        if not 0 < eps <= high - low:
            raise ValueError(f"`eps` must be in (0, {high - low}] (the clip range of the classifier), got {eps}.")
        if eps_step <= 0:
            raise ValueError(f"`eps_step` must be > 0, got {eps_step}.")
        if int(max_iter) != max_iter or max_iter < 1:
            raise ValueError(f"`max_iter` must be a positive integer, got {max_iter}.")
        if attack is not None and not isinstance(attack, EvasionAttack):
            raise ValueError(f"`attack` must be an ART EvasionAttack, got {type(attack).__name__}.")
        self.eps, self.eps_step, self.max_iter = float(eps), float(eps_step), int(max_iter)
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
        self.attack: EvasionAttack | None = None
        if self.uses_attack:
            self.attack = attack if attack is not None else self._default_attack()
        self.epoch = 0
        self.nb_epochs = 0
        self.history: list[dict[str, float]] = []
        self.best_metric = -math.inf
        self.best_epoch = -1
        self.best_state_dict: dict[str, torch.Tensor] | None = None
        self._ddp: torch.nn.Module | None = None  # the student under DistributedDataParallel during a distributed run
        self._val_attack = InputGradientPGD(
            self._input_gradient_classifier(SoftLabelKLLoss()), eps=self.eps, eps_step=self.eps_step,
            max_iter=10, random_init="uniform", seed=self.seed,
        )

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
                # bf16 changes the numbers, so a resume must use the same; channels_last changes only the layout
                "amp_dtype": None if self.amp_dtype is None else str(self.amp_dtype),
                # recorded only when on, so that checkpoints written before the option existed still resume
                **({} if self.averager is None else {"weight_averaging": self.averager.hyperparameters()})}

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
            return self._forward(self.teacher, x.to(self.teacher.device)).to(x.device)

    def _forward(self, classifier: PyTorchClassifier, x: torch.Tensor) -> torch.Tensor:
        """:func:`forward_logits` under the trainer's ``amp_dtype`` and ``channels_last`` options."""
        return model_forward(lambda inputs: forward_logits(classifier, inputs), x, self.amp_dtype, self.channels_last)

    def _check_teacher(self, teacher: PyTorchClassifier) -> None:
        student = self._classifier
        if teacher.nb_classes != student.nb_classes:
            raise ValueError(f"`teacher` has {teacher.nb_classes} classes but the student has {student.nb_classes}.")
        if tuple(teacher.input_shape) != tuple(student.input_shape):
            raise ValueError(f"`teacher` expects inputs of shape {teacher.input_shape}, the student "
                             f"{student.input_shape}.")
        if clip_range(teacher) != clip_range(student):
            raise ValueError(f"`teacher` clip_values {clip_range(teacher)} differ from the student's "
                             f"{clip_range(student)}; both must use the same input range.")

    # ----------------------------------------------------------------- input checks
    def _check_data(self, x: np.ndarray, y: np.ndarray, name: str = "x") -> tuple[np.ndarray, np.ndarray]:
        classifier = self._classifier
        x = np.asarray(x)
        y = np.asarray(y)
        if x.shape[0] == 0:
            raise ValueError(f"`{name}` is empty; pass at least one sample.")
        if tuple(x.shape[1:]) != tuple(classifier.input_shape):
            raise ValueError(f"`{name}` has samples of shape {x.shape[1:]}, the classifier expects "
                             f"{tuple(classifier.input_shape)}.")
        if len(y) != len(x):
            raise ValueError(f"`{name}` has {len(x)} samples but its labels have {len(y)}.")
        # min and max propagate NaN and inf: no boolean copy of the data
        smallest, largest = (x.min(), x.max()) if np.issubdtype(x.dtype, np.floating) else (np.nan, np.nan)
        if not (np.isfinite(smallest) and np.isfinite(largest)):
            raise ValueError(f"`{name}` must be a finite float array (NaN or inf found, or integer dtype).")
        low, high = clip_range(classifier)
        if smallest < low - 1e-6 or largest > high + 1e-6:
            raise ValueError(f"`{name}` has values in [{smallest:.4g}, {largest:.4g}], outside the classifier's "
                             f"clip_values [{low}, {high}]; scale the inputs (e.g. divide by 255).")
        return x.astype(np.float32, copy=False), self._labels_to_indices(y, name)

    def _labels_to_indices(self, y: np.ndarray, name: str) -> np.ndarray:
        nb_classes = self._classifier.nb_classes
        if y.ndim == 2 and y.shape[1] == nb_classes:
            y = y.argmax(axis=1)
        elif y.ndim != 1:
            raise ValueError(f"Labels of `{name}` must be indices (N,) or one-hot (N, {nb_classes}), got {y.shape}.")
        if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
            raise ValueError(f"Labels of `{name}` must be integer class indices.")
        if y.min() < 0 or y.max() >= nb_classes:
            raise ValueError(f"Labels of `{name}` must lie in [0, {nb_classes - 1}], found [{y.min()}, {y.max()}].")
        return y.astype(np.int64)

    # ----------------------------------------------------------------- public training API
    def fit(  # type: ignore[override]
        self,
        x: np.ndarray,
        y: np.ndarray,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        batch_size: int = 128,
        nb_epochs: int = 20,
        scheduler: Scheduler | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        resume_from: str | Path | None = None,
        checkpoint_interval: int = 0,
    ) -> None:
        """Train the student on numpy arrays.

        :param x: Training inputs (N, *input_shape) within clip_values; never modified.
        :param y: Labels as indices (N,) or one-hot (N, nb_classes).
        :param validation_data: ``(x_val, y_val)``; clean and PGD-10 accuracy are logged every epoch and the
            epoch with the highest PGD accuracy is kept as the best (``best_state_dict``, ``best.pt``).
        :param batch_size: Batch size.
        :param nb_epochs: Number of epochs.
        :param scheduler: A torch LR scheduler on the student's optimizer, stepped once per epoch.
        :param checkpoint_dir: Folder for ``last.pt``, ``best.pt`` and ``metrics.jsonl`` (written atomically).
        :param resume_from: A ``last.pt`` of an interrupted run of the same method, model, data and settings.
        :param checkpoint_interval: Also write ``last.pt`` every this many batches (0: at each epoch's end).
        """
        x, y = self._check_data(x, y)
        world = current_world(self._classifier.device)
        world.check_fits(len(x), "x")
        x_all, y_all = torch.from_numpy(x), torch.from_numpy(y)
        probs_all = self._precompute_teacher_probs(x_all, batch_size) if self._uses_teacher_probs() else None
        nb_samples = len(x_all)
        nb_batches = math.ceil(world.train_shard_size(nb_samples) / batch_size)
        device = self._classifier.device

        def batches(epoch: int, start: int) -> Iterator[Batch]:
            permutation = np.random.default_rng([self.seed, epoch]).permutation(nb_samples)  # same on every rank
            order = world.train_shard(torch.from_numpy(permutation))
            for index in range(start, nb_batches):
                rows = order[index * batch_size:(index + 1) * batch_size]
                probs = None if probs_all is None else probs_all[rows].to(device)
                yield Batch(x_all[rows].to(device), y_all[rows].to(device), probs)

        fingerprint = {"samples": nb_samples, "labels_sum": int(y.sum()),
                       # 9 significant digits: the same data sums alike on every CPU; numpy accumulates in float64
                       # without a float64 copy of the data (torch's sum(dtype=float64) makes one)
                       "x_sum": float(f"{float(np.sum(x, dtype=np.float64)):.9g}")}
        self._run(batches, nb_batches, batch_size, nb_epochs, validation_data, scheduler, fingerprint,
                  checkpoint_dir, resume_from, checkpoint_interval, world)

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
        from art.data_generators import DataGenerator

        if not isinstance(generator, DataGenerator):
            raise ValueError(f"`generator` must be an ART DataGenerator, got {type(generator).__name__}.")
        if generator.size is None or generator.size <= 0:
            raise ValueError("`generator` must report its dataset size (DataGenerator.size > 0).")
        world = current_world(self._classifier.device)
        nb_batches = generator_batches(generator, world)
        device = self._classifier.device

        def batches(epoch: int, start: int) -> Iterator[Batch]:
            set_generator_epoch(generator, epoch)
            for index in range(nb_batches):
                x_batch, y_batch = generator.get_batch()
                if index < start:
                    continue
                x_np, y_np = self._check_data(np.asarray(x_batch), np.asarray(y_batch), "generator batch")
                x_t = torch.from_numpy(x_np).to(device)
                probs = None
                if self._uses_teacher_probs():
                    probs = torch.softmax(self.teacher_logits(x_t), dim=1)
                yield Batch(x_t, torch.from_numpy(y_np).to(device), probs)

        fingerprint = {"samples": int(generator.size)}
        self._run(batches, nb_batches, generator.batch_size, nb_epochs, validation_data, scheduler, fingerprint,
                  checkpoint_dir, resume_from, checkpoint_interval, world)

    # ----------------------------------------------------------------- the loop
    def _precompute_teacher_probs(self, x_all: torch.Tensor, batch_size: int) -> torch.Tensor:
        assert self.teacher is not None
        device = self._classifier.device
        # Chunks of one training batch: the teacher's activations then peak no higher than in a training step.
        with model_modes((self.teacher.model, False)):
            chunks = [torch.softmax(self.teacher_logits(x_all[i:i + batch_size].to(device)), dim=1).cpu()
                      for i in range(0, len(x_all), batch_size)]
        return torch.cat(chunks)

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
        if self.averager is not None:
            self.averager.after_step(student)
        correct = (logits.detach().argmax(dim=1) == batch.y).sum()
        return loss.detach() * len(batch.y), correct

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers that one training step zeroes and steps (the student's; a jointly trained peer adds its)."""
        return [self._classifier.optimizer]

    def _run(
        self,
        batches: Callable[[int, int], Iterator[Batch]],
        nb_batches: int,
        batch_size: int,
        nb_epochs: int,
        validation_data: tuple[np.ndarray, np.ndarray] | None,
        scheduler: Scheduler | None,
        fingerprint: dict[str, Any],
        checkpoint_dir: str | Path | None,
        resume_from: str | Path | None,
        checkpoint_interval: int,
        world: World,
    ) -> None:
        if world.is_distributed and not self.distributed_ok:
            raise ValueError(f"{type(self).__name__} runs in one process only; start it without torchrun.")
        if int(nb_epochs) != nb_epochs or nb_epochs < 1:
            raise ValueError(f"`nb_epochs` must be a positive integer, got {nb_epochs}.")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size}.")
        if checkpoint_interval < 0:
            raise ValueError(f"`checkpoint_interval` must be >= 0, got {checkpoint_interval}.")
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise ValueError(f"`scheduler` must be a torch.optim.lr_scheduler.LRScheduler, got {type(scheduler)}.")
        if validation_data is not None:
            validation_data = self._check_data(*validation_data, name="validation_data")
        self.nb_epochs = int(nb_epochs)
        if self.averager is not None:
            self.averager.start(self.nb_epochs, nb_batches, scheduler)
        run_config = {**self.hyperparameters(), "batch_size": int(batch_size), "nb_epochs": int(nb_epochs),
                      "model": type(self._classifier.model).__name__,
                      "data": {**fingerprint, **world.data_fingerprint()}}
        self._ddp = wrap_student(self._classifier, self.teacher, world, run_config, scheduler)
        folder = None if checkpoint_dir is None or not world.is_main else Path(checkpoint_dir)
        show_progress = self.verbose and world.is_main
        start_epoch, start_batch, totals = 0, 0, [0.0, 0.0, 0]
        if resume_from is not None:
            start_epoch, start_batch, totals = self._resume(resume_from, run_config, scheduler)
        epochs = tqdm(range(start_epoch, nb_epochs), desc=f"{self.method} epochs", disable=not show_progress,
                      initial=start_epoch, total=nb_epochs)
        for epoch in epochs:
            self.epoch = epoch
            started = time.perf_counter()
            # Running sums stay on the student's device: no wait for the device after every batch.
            loss_sum = torch.tensor(totals[0], device=self._classifier.device)
            correct = torch.tensor(totals[1], device=self._classifier.device)
            seen = int(totals[2])
            first = start_batch if epoch == start_epoch else 0
            bar = tqdm(batches(epoch, first), desc=f"epoch {epoch + 1}/{nb_epochs}", total=nb_batches,
                       initial=first, leave=False, disable=not show_progress)
            position = first
            try:
                for batch in bar:
                    batch_loss, batch_correct = self._train_step(batch)
                    sync_buffers(self._ddp)  # all ranks continue with rank 0's BatchNorm statistics
                    loss_sum = loss_sum + batch_loss
                    correct = correct + batch_correct
                    seen += len(batch.y)
                    position += 1
                    if folder is not None and checkpoint_interval and position % checkpoint_interval == 0 \
                            and position < nb_batches:
                        self._save(folder / "last.pt", run_config, scheduler, epoch, position,
                                   [float(loss_sum), float(correct), seen])
            except KeyboardInterrupt:
                if folder is not None:
                    self._save(folder / "last.pt", run_config, scheduler, epoch, position,
                               [float(loss_sum), float(correct), seen])
                    logger.warning("Interrupted at epoch %d, batch %d; resume from %s", epoch + 1, position,
                                   folder / "last.pt")
                raise
            if self.averager is not None:
                self.averager.end_epoch(self._classifier.model, epoch, (b.x for b in batches(epoch, 0)),
                                        lambda inputs: self._forward(self._classifier, inputs))
            loss_sum, correct, seen = world.sum(loss_sum, correct, seen)  # type: ignore[assignment]
            record: dict[str, float] = {
                "epoch": epoch + 1, "loss": float(loss_sum) / max(seen, 1),
                "train_accuracy": float(correct) / max(seen, 1),
                "lr": float(self._classifier.optimizer.param_groups[0]["lr"]),
                "train_seconds": time.perf_counter() - started,  # "seconds" below adds validation and checkpoints
            }
            if not math.isfinite(record["loss"]):
                logger.warning("Epoch %d: the training loss is %s; lower the learning rate or the loss scale.",
                               epoch + 1, record["loss"])
            if scheduler is not None:
                scheduler.step()
            if validation_data is not None:
                with self._averaged_weights():
                    record.update(self._validate(*validation_data, batch_size, world))
                if record["val_pgd"] > self.best_metric:
                    self.best_metric, self.best_epoch = record["val_pgd"], epoch + 1
                    self.best_state_dict = {k: v.detach().clone() for k, v in self._model_state().items()}
                    if folder is not None:
                        self._save(folder / "best.pt", run_config, scheduler, epoch + 1, 0, [0.0, 0.0, 0])
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            totals = [0.0, 0.0, 0]
            logger.info("%s epoch %d/%d: %s", self.method, epoch + 1, nb_epochs,
                        " ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
            if folder is not None:
                self._save(folder / "last.pt", run_config, scheduler, epoch + 1, 0, totals)
                with open(folder / "metrics.jsonl", "w", encoding="utf-8") as stream:
                    stream.writelines(json.dumps(entry) + "\n" for entry in self.history)
        if self.averager is not None:  # the trained student is the averaged one; last.pt keeps the live weights
            self._classifier.model.load_state_dict(self.averager.averaged_state(self._classifier.model))

    def _averaged_weights(self) -> contextlib.AbstractContextManager[None]:
        """The averaged weights in the student for the block (nothing without weight averaging)."""
        return contextlib.nullcontext() if self.averager is None else self.averager.applied(self._classifier.model)

    # ----------------------------------------------------------------- validation
    def validate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
        """Clean and PGD-10 (cross-entropy, uniform start, the trainer's eps and eps_step) accuracy on (x, y).

        The validation attack is reseeded every call, so the numbers do not depend on when it runs.
        """
        return self._validate(x, y, batch_size, current_world(self._classifier.device))

    def _validate(self, x: np.ndarray, y: np.ndarray, batch_size: int, world: World) -> dict[str, float]:
        """:meth:`validate` in ``world`` (the run's, resolved once per fit)."""
        device = self._classifier.device
        self._val_attack.generator.manual_seed(self.seed)
        nb_inputs = len(x)
        rows = world.eval_slice(nb_inputs)  # each rank validates its own block; the counts are summed below
        x, y = x[rows], y[rows]
        clean = robust = 0
        with model_modes((self._classifier.model, False)):
            for start in range(0, len(x), batch_size):
                x_b = torch.from_numpy(x[start:start + batch_size]).to(device)
                y_b = torch.from_numpy(y[start:start + batch_size]).to(device)
                with torch.no_grad():
                    clean += int((self.student_logits(x_b).argmax(1) == y_b).sum())
                targets = torch.nn.functional.one_hot(y_b, self._classifier.nb_classes).float()
                x_adv = self._val_attack.generate_tensor(x_b, targets)
                with torch.no_grad():
                    robust += int((self.student_logits(x_adv).argmax(1) == y_b).sum())
        clean, robust = world.sum(clean, robust)  # type: ignore[assignment]
        return {"val_clean": clean / nb_inputs, "val_pgd": robust / nb_inputs}

    # ----------------------------------------------------------------- checkpoints
    def _save(self, path: Path, run_config: dict[str, Any], scheduler: Scheduler | None, epoch: int, batch: int,
              totals: list[float]) -> None:
        attack_generator = getattr(self.attack, "generator", None)
        payload = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": path.stem,
            "config": run_config, "epoch": epoch, "batch": batch, "epoch_totals": totals,
            "model_state": self._model_state(),
            "optimizer_state": self._classifier.optimizer.state_dict(),
            "scheduler_state": None if scheduler is None else scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "attack": None if attack_generator is None else attack_generator.get_state()},
            "best_metric": self.best_metric, "best_epoch": self.best_epoch, "history": self.history,
            "versions": _versions(), "extra_state": self._extra_state(),
        }
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
        torch.set_rng_state(checkpoint["rng"]["torch"].cpu())
        attack_generator = getattr(self.attack, "generator", None)
        if attack_generator is not None and checkpoint["rng"]["attack"] is not None:
            attack_generator.set_state(checkpoint["rng"]["attack"].cpu())
        self.history = list(checkpoint["history"])
        self.best_metric, self.best_epoch = checkpoint["best_metric"], checkpoint["best_epoch"]
        best_path = Path(path).with_name("best.pt")
        if best_path.is_file():
            self.best_state_dict = load_checkpoint(best_path, map_location=self._classifier.device)["model_state"]
        logger.info("Resumed %s from %s at epoch %d, batch %d", self.method, path, checkpoint["epoch"] + 1,
                    checkpoint["batch"])
        return int(checkpoint["epoch"]), int(checkpoint["batch"]), list(checkpoint["epoch_totals"])
