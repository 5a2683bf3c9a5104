"""The adapters' shared part: ART's own trainers run as peers of our methods, with our settings mapped onto them.

:class:`ArtTrainerAdapter` gives every adapter the constructor and ``fit`` of our trainers and shares their input
check, validation, best-epoch record and checkpoint payload (:class:`~art_rslad.trainers.records.RecordedTrainer`);
it records the training time of every epoch in the trainer's
:attr:`~art_rslad.trainers.records.RecordedTrainer.history` and refuses a setting its ART class cannot honour (the
ValueError names it). Where an ART class hard-codes a schedule or an optimizer (FBF, OAAT) it
runs as ART designed it, so that its numbers are ART's, and :attr:`ArtTrainerAdapter.fixed_settings` says so. The
adapters themselves only map settings: :mod:`art_rslad.trainers.art_adversarial` (MadryPGD, TRADES, AWP, FBF,
OAAT) and :mod:`art_rslad.trainers.art_distillation` (defensive distillation); ``docs/art-defences.md`` gives the
mapping of every setting.

``art-rslad train`` and ``compare`` run the :func:`with_shared_settings` variants registered in
:data:`art_rslad.trainers.registry.METHODS` (``art-madry-pgd``, ...).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.data_generators import DataGenerator
from art.defences.trainer import Trainer
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_rslad.attacks import InputGradientClassifier, SoftLabelKLLoss
from art_rslad.checkpoint import load_checkpoint, save_atomic
from art_rslad.estimators import classifier_like, forward_logits
from art_rslad.trainers.records import RecordedTrainer, Scheduler, check_attack, check_budget, validation_attack

logger = logging.getLogger(__name__)



# ---------------------------------------------------------------------- small helpers
@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's and torch's global generators (ART's trainers shuffle and start attacks from them), then
    restore both."""
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)


class NonSequential(nn.Module):
    """Holds an ``nn.Sequential`` as ``module`` and calls it: same weights, but ART's model wrapper then returns
    only the logits (for a Sequential it returns every layer's output, and ART's TRADES and FBF read ``[0]``)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class EpochBatches(DataGenerator):
    """The batches ART's trainers draw in ``fit``, one epoch at a time, for their ``fit_generator``.

    ART's ``fit`` shuffles one index array in place (numpy's global generator) at the start of every epoch, each
    shuffle continuing from the last epoch's order. :meth:`new_epoch` does the same, so ``fit_generator`` called
    once per epoch over these batches trains on exactly the batches of one ``fit`` over the whole run.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        super().__init__(size=len(x), batch_size=min(batch_size, len(x)))  # ART refuses batches above the size
        self.x, self.y = x, y
        self._order = np.arange(len(x))
        self._start = 0

    def new_epoch(self) -> None:
        np.random.shuffle(self._order)
        self._start = 0

    def get_batch(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self._order[self._start:self._start + self.batch_size]
        self._start += self.batch_size
        return self.x[rows], self.y[rows]


# ---------------------------------------------------------------------- the adapters' shared part
class ArtTrainerAdapter(RecordedTrainer, Trainer):
    """Runs one ART trainer class with our settings; subclasses only map settings onto their ART class.

    Construction checks the settings; :meth:`fit` builds the ART object (``art_trainer``) and runs its own
    training: one epoch per call where that leaves ART's numbers unchanged (:attr:`fit_per_epoch`), timing each call
    and stepping our scheduler and validating (clean and PGD-10 accuracy, the best epoch kept) in between; else one
    call for the whole run, each epoch then credited the run's mean training time (``run_train_seconds`` in its
    record) and validated after the last. The student is trained in place and ``get_classifier()`` returns it.

    Class attributes a subclass sets: :attr:`method` (registry name), :attr:`art_class` (the ART class that
    runs), :attr:`fit_per_epoch`, :attr:`accepts_attack`, :attr:`needs_non_sequential`, and :attr:`fixed_settings`:
    our settings that its ART class fixes itself, mapped to what it does instead; passing one of them raises a
    ValueError.
    """

    method: ClassVar[str] = ""
    art_class: ClassVar[type] = Trainer
    #: ART's training keeps no state from one epoch to the next but its batch order (no schedule over the run, no
    #: epoch counter), so :meth:`_art_epoch` runs it one epoch at a time with the numbers of one call over the run.
    fit_per_epoch: ClassVar[bool] = True
    accepts_attack: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = False
    fixed_settings: ClassVar[dict[str, str]] = {}
    #: The ART class reads ``model_outputs[0]`` of ART's model wrapper, so an nn.Sequential student is wrapped.
    needs_non_sequential: ClassVar[bool] = False
    #: True in the :func:`with_shared_settings` variants: settings the ART class fixes are dropped (and recorded in
    #: ``dropped_settings``) instead of refused, for a harness that gives every method the same settings.
    shared_settings: ClassVar[bool] = False

    def __init__(
        self,
        classifier: PyTorchClassifier,
        teacher: PyTorchClassifier | None = None,
        *,
        eps: float | None = None,
        eps_step: float | None = None,
        max_iter: int | None = None,
        attack: EvasionAttack | None = None,
        attack_training_mode: bool | None = None,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        """
        :param classifier: The student, an ART PyTorchClassifier with an optimizer and clip_values; trained in place.
        :param teacher: Refused: ART's trainers learn from labels (defensive distillation trains its own teacher).
        :param eps: L-inf radius of the training attack (and of the validation PGD) on the scale of clip_values
            (default 8/255).
        :param eps_step: Step size of the training attack (default eps / 4); refused where the ART class fixes it.
        :param max_iter: Steps of the training attack (default 10); refused where the ART class fixes it.
        :param attack: An ART EvasionAttack for ART classes that take one (TRADES, AWP, OAAT); refused otherwise.
        :param attack_training_mode: Refused: ART's trainers set the model's mode themselves.
        :param seed: Seed of numpy's and torch's global generators during fit (ART shuffles and starts its attacks
            from them) and of the validation attack.
        :param verbose: Log every epoch's record at INFO (ART's own progress bars always show).
        """
        super().__init__(classifier)
        self._check_arguments(teacher, attack, attack_training_mode)
        given = {key: value for key, value in (("eps", eps), ("eps_step", eps_step), ("max_iter", max_iter))
                 if value is not None}
        kept, fixed = self.split_settings(**given)
        refused = "; ".join(f"{key}={given[key]!r} ({reason})" for key, reason in fixed.items())
        if fixed and not self.shared_settings:
            raise ValueError(f"{self.method} runs {self.art_class.__name__}, which cannot honour {refused}. Drop "
                             "these arguments.")
        if fixed:
            logger.info("%s does not use %s", self.method, refused)
        self.dropped_settings: dict[str, str] = fixed
        self.eps = check_budget(classifier, kept.get("eps"), kept.get("eps_step"), kept.get("max_iter"))
        self.eps_step = None if "eps_step" in self.fixed_settings else float(kept.get("eps_step", self.eps / 4))
        self.max_iter = None if "max_iter" in self.fixed_settings else kept.get("max_iter", 10)
        self.attack = attack
        self.seed = int(seed)
        self.verbose = verbose
        self.art_trainer: Any = None
        self._val_attack = validation_attack(InputGradientClassifier(classifier, SoftLabelKLLoss()), self.eps,
                                             self.eps_step or self.eps / 4, self.seed)

    def _check_arguments(self, teacher: PyTorchClassifier | None, attack: EvasionAttack | None,
                         attack_training_mode: bool | None) -> None:
        name, art_name = self.method, self.art_class.__name__
        if teacher is not None:
            raise ValueError(f"{name} learns from labels and takes no `teacher`; drop it.")
        if attack_training_mode is not None:
            raise ValueError(f"{name}: {art_name} sets the model's mode itself; drop `attack_training_mode`.")
        if attack is not None and not self.accepts_attack:
            raise ValueError(f"{name}: {art_name} builds its own attack; drop `attack`.")
        check_attack(attack, self._classifier)

    @classmethod
    def split_settings(cls, **settings: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Split shared run settings into those this adapter takes and those its ART class fixes.

        For a harness that gives every method the same settings: ``kwargs, notes = cls.split_settings(eps=...,
        eps_step=..., max_iter=..., scheduler=...)``; ``notes`` says, per dropped setting, what ART does instead.
        """
        kept = {key: value for key, value in settings.items() if key not in cls.fixed_settings}
        notes = {key: cls.fixed_settings[key] for key in settings if key in cls.fixed_settings}
        return kept, notes

    def hyperparameters(self) -> dict[str, Any]:
        """Settings that define the run, ART's own choices included."""
        return {"method": self.method, "art_class": f"{self.art_class.__module__}.{self.art_class.__name__}",
                "eps": self.eps, "eps_step": self.eps_step, "max_iter": self.max_iter, "seed": self.seed,
                "fixed_by_art": dict(self.fixed_settings), "not_used": dict(self.dropped_settings),
                **self._art_settings()}

    @property
    def seconds_per_epoch(self) -> float:
        """Mean training seconds per epoch of the last fit (``train_seconds``: validation excluded)."""
        return float(np.mean([record["train_seconds"] for record in self.history])) if self.history else math.nan

    # ------------------------------------------------------------------ what a subclass says
    def _art_settings(self) -> dict[str, Any]:
        """The settings this adapter chose for its ART class (recorded in :meth:`hyperparameters`)."""
        return {}

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        """The ART object, built on ``classifier`` (the student, or a view of it)."""
        raise NotImplementedError

    def _art_epoch(self, batches: EpochBatches) -> None:
        """One epoch of the ART object's training (where :attr:`fit_per_epoch`): its ``fit_generator`` over the
        batches its ``fit`` would draw in this epoch."""
        batches.new_epoch()
        self.art_trainer.fit_generator(batches, nb_epochs=1)

    def _art_fit(self, x: np.ndarray, y: np.ndarray, batch_size: int, nb_epochs: int) -> None:
        """The ART object's whole training in one call of its own ``fit`` (where not :attr:`fit_per_epoch`)."""
        self.art_trainer.fit(x, y, batch_size=batch_size, nb_epochs=nb_epochs)

    def _art_classifier(self) -> PyTorchClassifier:
        """The classifier ART trains: the student itself, or a view whose model is not an nn.Sequential."""
        classifier = self._classifier
        if isinstance(classifier.model, nn.Sequential) and self.needs_non_sequential:
            return classifier_like(classifier, NonSequential(classifier.model), optimizer=classifier.optimizer)
        return classifier

    # ------------------------------------------------------------------ training
    def _fit(self, x: np.ndarray, y: np.ndarray, validation_data: tuple[np.ndarray, np.ndarray] | None,
             batch_size: int, nb_epochs: int, scheduler: Scheduler | None, checkpoint_dir: str | Path | None,
             resume_from: str | Path | None, checkpoint_interval: int) -> None:
        """Train through the ART class (see :meth:`RecordedTrainer.fit`). Validation runs after every epoch where
        the ART class is called once per epoch (MadryPGD, TRADES, AWP), else after the last. ``checkpoint_dir``
        gets the checkpoints after the run; ``resume_from`` takes only the ``last.pt`` of a finished run of the same
        settings (ART's trainers keep their epoch state inside their own fit, so a run cannot resume midway), and a
        ``checkpoint_interval`` is refused for the same reason (dropped with ``shared_settings``); a ``scheduler``
        is refused where the ART class hard-codes its learning rate."""
        if checkpoint_interval and not self.shared_settings:
            raise ValueError(f"{self.method}: {self.art_class.__name__} runs its batches inside its own fit, so "
                             "`checkpoint_interval` cannot be honoured; use 0 (checkpoints after the run).")
        if scheduler is not None and "scheduler" in self.fixed_settings:
            if not self.shared_settings:
                raise ValueError(f"{self.method} cannot honour `scheduler`: {self.fixed_settings['scheduler']}.")
            self.dropped_settings["scheduler"] = self.fixed_settings["scheduler"]
            scheduler = None
        if resume_from is not None:
            self._restore_finished(Path(resume_from), batch_size, nb_epochs)
            return
        self._clear_records()
        y_onehot = np.eye(self._classifier.nb_classes, dtype=np.float32)[y]
        with _seeded(self.seed), tempfile.TemporaryDirectory(prefix=f"{self.method}-") as workdir:
            self.art_trainer = self._build(self._art_classifier(), batch_size, nb_epochs, Path(workdir))
            logger.info("%s: training through %s.%s", self.method, self.art_class.__module__,
                        self.art_class.__name__)
            self._train(x, y_onehot, validation_data, batch_size, nb_epochs, scheduler)
        if checkpoint_dir is not None:
            self._write_checkpoints(Path(checkpoint_dir), batch_size, nb_epochs)

    def _train(self, x: np.ndarray, y: np.ndarray, validation_data: tuple[np.ndarray, np.ndarray] | None,
               batch_size: int, nb_epochs: int, scheduler: Scheduler | None) -> None:
        """Run ART's training, one call per epoch or one for the run, and close every epoch's record."""
        if self.fit_per_epoch:
            batches = EpochBatches(x, y, batch_size)
            for epoch in range(1, nb_epochs + 1):
                started = time.perf_counter()
                self._art_epoch(batches)
                record = {"epoch": epoch, "train_seconds": time.perf_counter() - started,
                          "lr": float(self._classifier.optimizer.param_groups[0]["lr"])}  # this epoch's lr
                self._end_epoch(record, scheduler, validation_data, batch_size, nb_epochs)
            return
        started = time.perf_counter()
        self._art_fit(x, y, batch_size, nb_epochs)
        run_seconds = time.perf_counter() - started
        for epoch in range(1, nb_epochs + 1):  # ART ran every epoch in one call: each is credited the mean
            record = {"epoch": epoch, "train_seconds": run_seconds / nb_epochs, "run_train_seconds": run_seconds}
            self._end_epoch(record, scheduler, validation_data if epoch == nb_epochs else None, batch_size,
                            nb_epochs)

    def _end_epoch(self, record: dict[str, float], scheduler: Scheduler | None,
                   validation_data: tuple[np.ndarray, np.ndarray] | None, batch_size: int, nb_epochs: int) -> None:
        if scheduler is not None:
            scheduler.step()
        validation_started = time.perf_counter()
        if validation_data is not None:
            self._record_validation(record, validation_data, max(batch_size, 256))
        record["seconds"] = record["train_seconds"] + time.perf_counter() - validation_started
        self._append_record(record, nb_epochs, log=self.verbose)

    def fit_generator(self, generator: Any, nb_epochs: int = 20, **kwargs: Any) -> None:  # type: ignore[override]
        """Refused: the adapters train on arrays, where every ART class shuffles, validates and times alike."""
        raise ValueError(f"{self.method} trains on arrays only: call fit(x, y, ...) (augmentation 'none').")

    # ------------------------------------------------------------------ validation, checkpoints
    def validate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
        """Clean and PGD-10 accuracy on (x, y) (cross-entropy, uniform start, the adapter's eps and eps_step; eps / 4
        where the ART class fixes the step)."""
        self._val_attack.generator.manual_seed(self.seed)
        clean, robust = self._count_correct(partial(forward_logits, self._classifier), x, y, batch_size)
        return {"val_clean": clean / len(x), "val_pgd": robust / len(x)}

    def _run_config(self, batch_size: int, nb_epochs: int) -> dict[str, Any]:
        return {**self.hyperparameters(), "batch_size": batch_size, "nb_epochs": nb_epochs,
                "model": type(self._classifier.model).__name__}

    def _restore_finished(self, path: Path, batch_size: int, nb_epochs: int) -> None:
        checkpoint = load_checkpoint(path, map_location=self._classifier.device)
        config = self._run_config(batch_size, nb_epochs)
        if checkpoint["epoch"] != nb_epochs or json.loads(json.dumps(checkpoint["config"])) != json.loads(
                json.dumps(config, default=str)):
            raise ValueError(f"`resume_from` {path}: {self.art_class.__name__} keeps its epoch state inside its own "
                             "fit, so only a finished run of the same settings can be resumed; start the run again.")
        self._classifier.model.load_state_dict(checkpoint["model_state"])
        self._restore_records(checkpoint, path)
        logger.info("%s: the run in %s is finished; its weights and history are restored", self.method, path.parent)

    def _write_checkpoints(self, folder: Path, batch_size: int, nb_epochs: int) -> None:
        config = json.loads(json.dumps(self._run_config(batch_size, nb_epochs), default=str))
        save_atomic(self._checkpoint_payload("last", config, nb_epochs), folder / "last.pt")
        if self.best_state_dict is not None:
            save_atomic(self._checkpoint_payload("best", config, self.best_epoch, self.best_state_dict),
                        folder / "best.pt")
        self._write_metrics(folder)


def with_shared_settings(adapter: type[ArtTrainerAdapter]) -> type[ArtTrainerAdapter]:
    """``adapter`` for a harness (``art-rslad train`` / ``compare``) that gives every method the same eps,
    eps_step, max_iter, scheduler and checkpoint interval: settings its ART class fixes are dropped and recorded in
    the trainer's ``hyperparameters()["not_used"]`` instead of refused."""
    return type(adapter.__name__, (adapter,),
                {"shared_settings": True, "__doc__": adapter.__doc__, "__module__": adapter.__module__})
