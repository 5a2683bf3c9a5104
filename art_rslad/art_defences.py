"""ART's own defences as peers of our methods: adapters that only map our settings onto ART's classes.

Two families, one registry each (see ``docs/art-defences.md`` for the exact mapping of every setting):

* :data:`ART_TRAINERS`: ART's adversarial trainers (``AdversarialTrainerMadryPGD``,
  ``AdversarialTrainerTRADESPyTorch``, ``AdversarialTrainerAWPPyTorch``, ``AdversarialTrainerFBFPyTorch``,
  ``AdversarialTrainerOAATPyTorch``) and Papernot's defensive distillation (ART's ``DefensiveDistillation``
  transformer), each run through its ART class with our data, student, epoch budget, optimizer and validation.
  Every adapter has the constructor and ``fit`` of our trainers, records the training time of every epoch in
  :attr:`ArtTrainerAdapter.history`, and refuses a setting its ART class cannot honour (the ValueError names it).
  Where an ART class hard-codes a schedule or an optimizer (FBF, OAAT) it runs as ART designed it and
  :attr:`ArtTrainerAdapter.fixed_settings` says so (design decision 10).
* :data:`PREPROCESSING_DEFENCES`: ART preprocessing defences (``FeatureSqueezing``, ``JpegCompression``) wrapped
  around a student. :func:`evaluate_preprocessing_defence` evaluates the defended student twice, once through the
  defence's exact gradient (zero almost everywhere for these quantisers: what autograd sees) and once with BPDA
  (ART's ``estimate_gradient``), and puts both into one :class:`~art_rslad.evaluation.RobustnessReport` whose
  warnings explain any gap as obfuscated gradients. A defence with neither gives no white-box numbers.

``art-rslad compare`` and ``art-rslad train`` reach the trainers through their names (``art-madry-pgd``, ...).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.preprocessor import FeatureSqueezing, JpegCompression
from art.defences.preprocessor.preprocessor import Preprocessor, PreprocessorPyTorch
from art.defences.trainer import (
    AdversarialTrainerAWPPyTorch,
    AdversarialTrainerFBFPyTorch,
    AdversarialTrainerMadryPGD,
    AdversarialTrainerOAATPyTorch,
    AdversarialTrainerTRADESPyTorch,
    Trainer,
)
from art.defences.transformer.evasion import DefensiveDistillation
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_rslad.attacks import InputGradientClassifier, InputGradientPGD, SoftLabelKLLoss
from art_rslad.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, save_atomic
from art_rslad.estimators import check_classifier, clip_range, forward_logits, model_modes
from art_rslad.evaluation import ATTACKS, DEFAULT_ATTACKS, RobustnessReport
from art_rslad.evaluation.checks import ACCURACY_TOLERANCE
from art_rslad.evaluation.sharded import evaluate_robustness_distributed

logger = logging.getLogger(__name__)

Scheduler = torch.optim.lr_scheduler.LRScheduler
#: How an adapter learns that an ART epoch ended: it calls ART's fit once per epoch (``loop``), ART steps the
#: scheduler it was given at each epoch's end (``scheduler``), ART logs each epoch's training seconds (``log``), or
#: nothing (``total``: each epoch is credited the mean of the run).
EpochHook = Literal["loop", "scheduler", "log", "total"]


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


def _like(
    classifier: PyTorchClassifier, model: nn.Module, *, loss: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None, keep_preprocessing: bool = True,
) -> PyTorchClassifier:
    """A PyTorchClassifier with ``classifier``'s shape, classes, clip values and device around another model."""
    return PyTorchClassifier(
        model=model, loss=loss if loss is not None else classifier.loss, input_shape=classifier.input_shape,
        nb_classes=classifier.nb_classes, optimizer=optimizer, clip_values=classifier.clip_values,
        channels_first=classifier.channels_first,
        preprocessing_defences=classifier.preprocessing_defences if keep_preprocessing else None,
        preprocessing=classifier.preprocessing if keep_preprocessing else None,
        device_type="cpu" if classifier.device.type == "cpu" else "gpu",
    )


class NonSequential(nn.Module):
    """Holds an ``nn.Sequential`` as ``module`` and calls it: same weights, but ART's model wrapper then returns
    only the logits (for a Sequential it returns every layer's output, and ART's TRADES and FBF read ``[0]``)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class _EpochEndHook(torch.optim.lr_scheduler._LRScheduler):
    """What ART's TRADES and AWP trainers accept as a scheduler (they test ``isinstance(_, _LRScheduler)``, which
    torch's own schedulers no longer pass) and step once at the end of every epoch: it calls ``on_epoch_end``."""

    def __init__(self, on_epoch_end: Callable[[], None]) -> None:  # no super().__init__: it owns no lr of its own
        self._on_epoch_end = on_epoch_end

    def step(self, epoch: int | None = None) -> None:
        self._on_epoch_end()


class _ArtEpochLog(logging.Handler):
    """Collects the training seconds ART's trainers log at every epoch's end (``"epoch: %s time(s): %.1f ..."``)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("epoch: %s time(s)") and record.args:
            self.seconds.append(float(record.args[1]))  # type: ignore[index]


@contextlib.contextmanager
def _art_epoch_log(module: str) -> Iterator[_ArtEpochLog]:
    """Route INFO records of ART's trainer module ``module`` into an :class:`_ArtEpochLog` for the block."""
    art_logger = logging.getLogger(module)
    handler, level, propagate = _ArtEpochLog(), art_logger.level, art_logger.propagate
    art_logger.propagate = propagate and art_logger.isEnabledFor(logging.INFO)  # show ART's INFO only if shown
    art_logger.addHandler(handler)
    art_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        art_logger.removeHandler(handler)
        art_logger.setLevel(level)
        art_logger.propagate = propagate


def _pgd(classifier: PyTorchClassifier, eps: float, eps_step: float, max_iter: int, batch_size: int
         ) -> ProjectedGradientDescent:
    """ART's PGD as ART's own trainer examples build it: cross-entropy on the true labels, one uniform start."""
    return ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=eps_step, max_iter=max_iter,
                                    targeted=False, num_random_init=1, batch_size=batch_size, verbose=False)


def _sgd_settings(classifier: PyTorchClassifier, method: str) -> dict[str, float]:
    optimizer = classifier.optimizer
    if not isinstance(optimizer, torch.optim.SGD):
        raise ValueError(f"{method} needs `classifier` with a torch.optim.SGD optimizer (its ART class schedules and "
                         f"replaces an SGD), got {type(optimizer).__name__}.")
    group = optimizer.param_groups[0]
    return {"lr": float(group["lr"]), "momentum": float(group["momentum"]),
            "weight_decay": float(group["weight_decay"])}


# ---------------------------------------------------------------------- the adapters' shared part
class ArtTrainerAdapter(Trainer):
    """Runs one ART trainer class with our settings; subclasses only map settings onto their ART class.

    Construction checks the settings; :meth:`fit` builds the ART object (:attr:`art_trainer`), calls its own
    ``fit``, and around it steps our scheduler, validates (clean and PGD-10 accuracy, the best epoch kept) and
    times every epoch. The student is trained in place and :meth:`get_classifier` returns it.

    Class attributes a subclass sets: :attr:`method` (registry name), :attr:`art_class` (the ART class that
    runs), :attr:`epoch_hook`, :attr:`accepts_attack`, :attr:`needs_non_sequential`, and :attr:`fixed_settings`: our
    settings that its ART class fixes itself, mapped to what it does instead; passing one of them raises a
    ValueError.
    """

    method: ClassVar[str] = ""
    art_class: ClassVar[type] = Trainer
    epoch_hook: ClassVar[EpochHook] = "log"
    accepts_attack: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = False
    fixed_settings: ClassVar[dict[str, str]] = {}
    #: The ART class reads ``model_outputs[0]`` of ART's model wrapper, so an nn.Sequential student is wrapped.
    needs_non_sequential: ClassVar[bool] = False
    #: True in :data:`SHARED_SETTINGS_TRAINERS`: settings the ART class fixes are dropped (and recorded in
    #: :attr:`dropped_settings`) instead of refused, for a harness that gives every method the same settings.
    shared_settings: ClassVar[bool] = False
    #: The ART module whose epoch log records are read when ``epoch_hook == "log"``.
    log_module: ClassVar[str] = ""

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
        super().__init__(classifier=check_classifier(classifier, "classifier", needs_optimizer=True))
        name = self.method
        given = {key: value for key, value in (("eps", eps), ("eps_step", eps_step), ("max_iter", max_iter))
                 if value is not None}
        kept, fixed = self.split_settings(**given)
        refused = "; ".join(f"{key}={given[key]!r} ({reason})" for key, reason in fixed.items())
        if fixed and not self.shared_settings:
            raise ValueError(f"{name} runs {self.art_class.__name__}, which cannot honour {refused}. Drop these "
                             "arguments.")
        if fixed:
            logger.info("%s does not use %s", name, refused)
        self.dropped_settings: dict[str, str] = fixed
        if teacher is not None:
            raise ValueError(f"{name} learns from labels and takes no `teacher`; drop it.")
        if attack_training_mode is not None:
            raise ValueError(f"{name}: {self.art_class.__name__} sets the model's mode itself; drop "
                             "`attack_training_mode`.")
        if attack is not None and not self.accepts_attack:
            raise ValueError(f"{name}: {self.art_class.__name__} builds its own attack; drop `attack`.")
        if attack is not None and not isinstance(attack, EvasionAttack):
            raise ValueError(f"`attack` must be an ART EvasionAttack, got {type(attack).__name__}.")
        low, high = clip_range(classifier)
        self.eps = float(kept.get("eps", 8 / 255))
        if not 0 < self.eps <= high - low:
            raise ValueError(f"`eps` must be in (0, {high - low}] (the clip range of the classifier), got {self.eps}.")
        self.eps_step = None if "eps_step" in self.fixed_settings else float(kept.get("eps_step", self.eps / 4))
        if self.eps_step is not None and self.eps_step <= 0:
            raise ValueError(f"`eps_step` must be > 0, got {self.eps_step}.")
        self.max_iter = None if "max_iter" in self.fixed_settings else kept.get("max_iter", 10)
        if self.max_iter is not None and (int(self.max_iter) != self.max_iter or self.max_iter < 1):
            raise ValueError(f"`max_iter` must be a positive integer, got {self.max_iter}.")
        self.attack = attack
        self.seed = int(seed)
        self.verbose = verbose
        self.art_trainer: Any = None
        self.history: list[dict[str, float]] = []
        self.best_metric = -math.inf
        self.best_epoch = -1
        self.best_state_dict: dict[str, torch.Tensor] | None = None

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

    def _art_fit(self, x: np.ndarray, y: np.ndarray, batch_size: int, nb_epochs: int,
                 hook: _EpochEndHook | None) -> None:
        """Call the ART object's own fit on the whole run (one epoch for ``epoch_hook == "loop"``)."""
        self.art_trainer.fit(x, y, batch_size=batch_size, nb_epochs=nb_epochs)

    def _art_classifier(self) -> PyTorchClassifier:
        """The classifier ART trains: the student itself, or a view whose model is not an nn.Sequential."""
        classifier = self._classifier
        if isinstance(classifier.model, nn.Sequential) and self.needs_non_sequential:
            return _like(classifier, NonSequential(classifier.model), optimizer=classifier.optimizer)
        return classifier

    # ------------------------------------------------------------------ training
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
        """Train the student through the ART class.

        :param x: Training inputs (N, *input_shape) within clip_values; never modified.
        :param y: Labels as indices (N,) or one-hot (N, nb_classes).
        :param validation_data: ``(x_val, y_val)``: clean and PGD-10 accuracy after every epoch where the ART
            class lets us in between epochs (MadryPGD, TRADES, AWP), else after the last; the epoch with the highest
            PGD accuracy is kept in :attr:`best_state_dict`.
        :param batch_size: Batch size.
        :param nb_epochs: Number of epochs.
        :param scheduler: A torch LR scheduler on the student's optimizer, stepped once per epoch; refused where the
            ART class hard-codes its learning rate.
        :param checkpoint_dir: Folder for ``last.pt``, ``best.pt`` and ``metrics.jsonl``, written after the run.
        :param resume_from: Only the ``last.pt`` of a finished run of the same settings (its weights and history are
            restored): ART's trainers keep their epoch state inside their own fit, so a run cannot resume midway.
        :param checkpoint_interval: Refused unless 0, for the same reason (dropped with ``shared_settings``).
        """
        if checkpoint_interval and not self.shared_settings:
            raise ValueError(f"{self.method}: {self.art_class.__name__} runs its batches inside its own fit, so "
                             "`checkpoint_interval` cannot be honoured; use 0 (checkpoints after the run).")
        if scheduler is not None and "scheduler" in self.fixed_settings:
            if not self.shared_settings:
                raise ValueError(f"{self.method} cannot honour `scheduler`: {self.fixed_settings['scheduler']}.")
            self.dropped_settings["scheduler"] = self.fixed_settings["scheduler"]
            scheduler = None
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise ValueError(f"`scheduler` must be a torch.optim.lr_scheduler.LRScheduler, got {type(scheduler)}.")
        for name, value in (("nb_epochs", nb_epochs), ("batch_size", batch_size)):
            if int(value) != value or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        x, labels = self._check_data(x, y, "x")
        if validation_data is not None:
            validation_data = self._check_data(*validation_data, "validation_data")
        if resume_from is not None:
            self._restore_finished(Path(resume_from), batch_size, nb_epochs)
            return
        y_onehot = np.eye(self._classifier.nb_classes, dtype=np.float32)[labels]
        self.history, self.best_metric, self.best_epoch, self.best_state_dict = [], -math.inf, -1, None
        clock = [time.perf_counter()]

        def epoch_end(seconds: float | None = None, validate: bool = True) -> None:
            record = {"epoch": len(self.history) + 1,
                      "train_seconds": time.perf_counter() - clock[0] if seconds is None else seconds}
            if seconds is None:  # called between epochs: the optimizer holds this epoch's lr
                record["lr"] = float(self._classifier.optimizer.param_groups[0]["lr"])
            if scheduler is not None:
                scheduler.step()
            validation_started = time.perf_counter()
            if validate and validation_data is not None:
                self._record_validation(record, *validation_data, batch_size=batch_size)
            record["seconds"] = record["train_seconds"] + time.perf_counter() - validation_started
            self._log(record, nb_epochs)
            clock[0] = time.perf_counter()

        with _seeded(self.seed), tempfile.TemporaryDirectory(prefix=f"{self.method}-") as workdir:
            self.art_trainer = self._build(self._art_classifier(), batch_size, nb_epochs, Path(workdir))
            logger.info("%s: training through %s.%s", self.method, self.art_class.__module__,
                        self.art_class.__name__)
            if self.epoch_hook == "loop":
                for _ in range(nb_epochs):
                    self._art_fit(x, y_onehot, batch_size, 1, None)
                    epoch_end()
            elif self.epoch_hook == "scheduler":
                self._art_fit(x, y_onehot, batch_size, nb_epochs, _EpochEndHook(epoch_end))
            else:
                with _art_epoch_log(self.log_module or __name__) as epochs:
                    self._art_fit(x, y_onehot, batch_size, nb_epochs, None)
                seconds = epochs.seconds
                if len(seconds) != nb_epochs:  # ``total``, or ART's log silenced: credit each epoch the mean
                    seconds = [(time.perf_counter() - clock[0]) / nb_epochs] * nb_epochs
                for index, value in enumerate(seconds):
                    epoch_end(value, validate=index == nb_epochs - 1)
        if checkpoint_dir is not None:
            self._write_checkpoints(Path(checkpoint_dir), batch_size, nb_epochs)

    def fit_generator(self, generator: Any, nb_epochs: int = 20, **kwargs: Any) -> None:  # type: ignore[override]
        """Refused: the adapters train on arrays, where every ART class shuffles, validates and times alike."""
        raise ValueError(f"{self.method} trains on arrays only: call fit(x, y, ...) (augmentation 'none').")

    # ------------------------------------------------------------------ checks, validation, records
    def _check_data(self, x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        classifier = self._classifier
        x, y = np.asarray(x), np.asarray(y)
        if len(x) == 0 or tuple(x.shape[1:]) != tuple(classifier.input_shape) or len(y) != len(x):
            raise ValueError(f"`{name}` must be a non-empty array (N, *{tuple(classifier.input_shape)}) with N "
                             f"labels, got {x.shape} and {len(y)} labels.")
        low, high = clip_range(classifier)
        if not np.issubdtype(x.dtype, np.floating) or x.min() < low - 1e-6 or x.max() > high + 1e-6:
            raise ValueError(f"`{name}` must be floats within the classifier's clip_values [{low}, {high}]; scale "
                             "the inputs (e.g. divide by 255).")
        labels = y.argmax(axis=1) if y.ndim == 2 else y
        if labels.ndim != 1 or np.any(np.mod(labels, 1)) or labels.min() < 0 or labels.max() >= classifier.nb_classes:
            raise ValueError(f"Labels of `{name}` must be indices in [0, {classifier.nb_classes}) or one-hot rows.")
        return x.astype(np.float32, copy=False), labels.astype(np.int64)

    def validate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
        """Clean and PGD-10 accuracy on (x, y) (cross-entropy, uniform start, the adapter's eps and eps_step; eps / 4
        where the ART class fixes the step)."""
        classifier = self._classifier
        device = classifier.device
        attack = InputGradientPGD(InputGradientClassifier(classifier, SoftLabelKLLoss()), eps=self.eps,
                                  eps_step=self.eps_step or self.eps / 4, max_iter=10, random_init="uniform",
                                  seed=self.seed)
        clean = robust = 0
        with model_modes((classifier.model, False)):
            for start in range(0, len(x), batch_size):
                x_b = torch.from_numpy(x[start:start + batch_size]).to(device)
                y_b = torch.from_numpy(y[start:start + batch_size]).to(device)
                with torch.no_grad():
                    clean += int((forward_logits(classifier, x_b).argmax(1) == y_b).sum())
                x_adv = attack.generate_tensor(x_b, nn.functional.one_hot(y_b, classifier.nb_classes).float())
                with torch.no_grad():
                    robust += int((forward_logits(classifier, x_adv).argmax(1) == y_b).sum())
        return {"val_clean": clean / len(x), "val_pgd": robust / len(x)}

    def _record_validation(self, record: dict[str, float], x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        record.update(self.validate(x, y, batch_size=max(batch_size, 256)))
        if record["val_pgd"] > self.best_metric:
            self.best_metric, self.best_epoch = record["val_pgd"], int(record["epoch"])
            self.best_state_dict = {key: value.detach().clone()
                                    for key, value in self._classifier.model.state_dict().items()}

    def _log(self, record: dict[str, float], nb_epochs: int) -> None:
        self.history.append(record)
        if self.verbose:
            logger.info("%s epoch %d/%d: %s", self.method, record["epoch"], nb_epochs,
                        " ".join(f"{key} {value:.4g}" for key, value in record.items() if key != "epoch"))

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
        self.history = list(checkpoint["history"])
        self.best_metric, self.best_epoch = checkpoint["best_metric"], checkpoint["best_epoch"]
        best = path.with_name("best.pt")
        self.best_state_dict = load_checkpoint(best, self._classifier.device)["model_state"] if best.is_file() else None
        logger.info("%s: the run in %s is finished; its weights and history are restored", self.method, path.parent)

    def _write_checkpoints(self, folder: Path, batch_size: int, nb_epochs: int) -> None:
        import art

        config = json.loads(json.dumps(self._run_config(batch_size, nb_epochs), default=str))
        states = {"last": self._classifier.model.state_dict()}
        if self.best_state_dict is not None:
            states["best"] = self.best_state_dict
        for kind, state in states.items():
            epoch = nb_epochs if kind == "last" else self.best_epoch
            save_atomic({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, "config": config,
                         "epoch": epoch, "batch": 0, "model_state": state, "best_metric": self.best_metric,
                         "best_epoch": self.best_epoch, "history": self.history,
                         "versions": {"art": art.__version__, "torch": str(torch.__version__)}},
                        folder / f"{kind}.pt")
        (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in self.history),
                                              encoding="utf-8")


# ---------------------------------------------------------------------- ART's adversarial trainers
class ArtMadryPGD(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerMadryPGD`` (SAT: PGD on the cross-entropy, uniform start, train on x' only).

    Mapping: our eps / eps_step / max_iter replace its 0-255 defaults (8, 2, 7); its PGD's batch size is the
    training batch size. It is called once per epoch (it has no epoch-dependent state), so our scheduler steps once
    per epoch, not once per batch as it would through its kwargs, and our validation runs after every epoch (it
    would silently drop ``validation_data``).

    | Paper link: https://arxiv.org/abs/1706.06083
    """

    method: ClassVar[str] = "art-madry-pgd"
    art_class: ClassVar[type] = AdversarialTrainerMadryPGD
    epoch_hook: ClassVar[EpochHook] = "loop"

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        trainer = AdversarialTrainerMadryPGD(classifier, nb_epochs=1, batch_size=batch_size, eps=self.eps,
                                             eps_step=self.eps_step, max_iter=self.max_iter, num_random_init=1)
        trainer.attack.set_params(batch_size=batch_size)
        return trainer


class ArtTRADES(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerTRADESPyTorch`` with beta = 6 (the TRADES paper's CIFAR-10 setting).

    Its attack is ART's PGD on the cross-entropy with the true labels from a uniform start (ART's own example), not
    the KL maximisation of the TRADES paper: this is ART's TRADES (our ``trades`` is the paper's). Our scheduler
    and validation run at its epoch ends through the scheduler slot it steps.

    | Paper link: https://proceedings.mlr.press/v97/zhang19p.html
    """

    method: ClassVar[str] = "art-trades"
    art_class: ClassVar[type] = AdversarialTrainerTRADESPyTorch
    epoch_hook: ClassVar[EpochHook] = "scheduler"
    accepts_attack: ClassVar[bool] = True
    needs_non_sequential: ClassVar[bool] = True
    beta: ClassVar[float] = 6.0

    def _art_settings(self) -> dict[str, Any]:
        return {"beta": self.beta, "attack": type(self.attack).__name__ if self.attack else
                "ProjectedGradientDescent(CE, true labels, num_random_init=1)"}

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        attack = self.attack or _pgd(classifier, self.eps, self.eps_step, self.max_iter, batch_size)  # type: ignore
        return AdversarialTrainerTRADESPyTorch(classifier, attack, beta=self.beta)

    def _art_fit(self, x: np.ndarray, y: np.ndarray, batch_size: int, nb_epochs: int,
                 hook: _EpochEndHook | None) -> None:
        self.art_trainer.fit(x, y, batch_size=batch_size, nb_epochs=nb_epochs, scheduler=hook)


class ArtAWP(ArtTRADES):
    """ART's ``AdversarialTrainerAWPPyTorch`` in its PGD mode (AT-AWP).

    Settings from the AWP paper's official AT-AWP code: gamma = 0.01, warm-up 0 epochs, proxy model a copy of the
    student with SGD lr 0.01; the attack as for ``art-trades``. Scheduler and validation as for ``art-trades``.

    | Paper link: https://proceedings.neurips.cc/paper/2020/file/1ef91c212e30e14bf125e9374262401f-Paper.pdf
    """

    method: ClassVar[str] = "art-awp"
    art_class: ClassVar[type] = AdversarialTrainerAWPPyTorch
    needs_non_sequential: ClassVar[bool] = False
    mode: ClassVar[str] = "PGD"
    gamma: ClassVar[float] = 0.01
    proxy_lr: ClassVar[float] = 0.01
    warmup: ClassVar[int] = 0

    def _art_settings(self) -> dict[str, Any]:
        return {**super()._art_settings(), "mode": self.mode, "gamma": self.gamma, "proxy_lr": self.proxy_lr,
                "warmup": self.warmup}

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        proxy_model = copy.deepcopy(classifier.model)
        proxy = _like(classifier, proxy_model, optimizer=torch.optim.SGD(proxy_model.parameters(), lr=self.proxy_lr))
        attack = self.attack or _pgd(classifier, self.eps, self.eps_step, self.max_iter, batch_size)  # type: ignore
        return AdversarialTrainerAWPPyTorch(classifier, proxy, attack, mode=self.mode, gamma=self.gamma,
                                            beta=self.beta, warmup=self.warmup)


class ArtFBF(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerFBFPyTorch`` (fast is better than free: one FGSM step from a uniform start).

    Only eps is ours. It hard-codes the rest as its paper does: step 1.25 eps, a cyclic learning rate
    0 -> 0.21 -> 0 (peak at 2/5 of the epochs) that overwrites the optimizer's, gradient-norm clipping at 0.5. In
    ART 1.20 its update runs with the model in eval mode (``loss_gradient`` leaves it there), so BatchNorm
    statistics do not move. Validation after the last epoch only.

    | Paper link: https://openreview.net/forum?id=BJx040EFvH
    """

    method: ClassVar[str] = "art-fbf"
    art_class: ClassVar[type] = AdversarialTrainerFBFPyTorch
    log_module: ClassVar[str] = "art.defences.trainer.adversarial_trainer_fbf_pytorch"
    needs_non_sequential: ClassVar[bool] = True
    fixed_settings: ClassVar[dict[str, str]] = {
        "eps_step": "FBF steps 1.25 * eps once",
        "max_iter": "FBF takes a single FGSM step",
        "scheduler": "FBF's own cyclic lr 0 -> 0.21 -> 0 overwrites the optimizer's lr",
    }

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        if any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in classifier.model.modules()):
            logger.warning("art-fbf: ART 1.20's FBF updates the model in eval mode, so this student's BatchNorm "
                           "running statistics stay at their initial values (docs/art-defences.md).")
        return AdversarialTrainerFBFPyTorch(classifier, eps=self.eps, use_amp=False)


class ArtOAAT(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerOAATPyTorch`` (oracle-aligned adversarial training for large eps).

    ``train_params`` follow ART's CIFAR-10 example (eps 16/255) with every radius scaled by our eps: epsilon = eps,
    i_epsilon = eps / 4 (its ramp starts there and rises linearly after the first quarter), alternate_iter_eps =
    0.75 eps, mixup_epsilon = 1.5 eps (its LPIPS-phase attack goes beyond eps; the KL term is projected back to
    i_epsilon); max_iter ours; lr, momentum and weight decay read from the student's SGD, then OAAT's own cosine lr
    and a fresh SGD at 3/4 of the epochs; AWP gamma 0.005 (also the proxy's SGD lr, as in ART's example) with its
    warm-up 10 of 110 epochs scaled to ours; beta 1.5 -> 3.0, SWA tau 0.995 from epoch 0, LPIPS on the student's
    top-level convolutional blocks. Its SWA files go to a temporary folder. Validation after the last epoch only.

    | Paper link: https://link.springer.com/chapter/10.1007/978-3-031-20065-6_18
    """

    method: ClassVar[str] = "art-oaat"
    art_class: ClassVar[type] = AdversarialTrainerOAATPyTorch
    log_module: ClassVar[str] = "art.defences.trainer.adversarial_trainer_oaat_pytorch"
    accepts_attack: ClassVar[bool] = True
    fixed_settings: ClassVar[dict[str, str]] = {
        "eps_step": "OAAT steps eps/4 (eps/2 in its first quarter) along its own eps ramp",
        "scheduler": "OAAT sets a cosine lr itself and swaps in a new SGD at 3/4 of the epochs",
    }

    def __init__(self, classifier: PyTorchClassifier, teacher: PyTorchClassifier | None = None,
                 **kwargs: Any) -> None:
        super().__init__(classifier, teacher, **kwargs)
        self._sgd = _sgd_settings(classifier, self.method)
        self.activation_layers = self._conv_blocks(classifier)

    @staticmethod
    def _conv_blocks(classifier: PyTorchClassifier) -> list[str]:
        """Top-level children of the model whose outputs are feature maps (N, C, H, W): OAAT's LPIPS layers."""
        model, shapes = classifier.model, {}
        hooks = [child.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, out.dim()))
                 for name, child in model.named_children()]
        try:
            with torch.no_grad(), model_modes((model, False)):
                forward_logits(classifier, torch.zeros(1, *classifier.input_shape, device=classifier.device))
        finally:
            for hook in hooks:
                hook.remove()
        layers = [name for name, dims in shapes.items() if dims == 4]
        if not layers:
            raise ValueError("art-oaat needs a student with a top-level convolutional block (a child module that "
                             "outputs feature maps) for OAAT's LPIPS distance.")
        return layers

    def _art_settings(self) -> dict[str, Any]:
        params = {key: value for key, value in self._train_params(0).items() if key != "models_path"}
        return {"train_params": {**params, "norm": "inf", "awp_warmup": "round(nb_epochs * 10 / 110)"}}

    def _train_params(self, nb_epochs: int, models_path: Path | None = None) -> dict[str, Any]:
        eps = self.eps
        return {
            "weight_decay": self._sgd["weight_decay"], "lr": self._sgd["lr"], "momentum": self._sgd["momentum"],
            "norm": np.inf, "epsilon": eps, "i_epsilon": eps / 4, "alternate_iter_eps": 0.75 * eps,
            "mixup_epsilon": 1.5 * eps, "max_iter": self.max_iter, "alpha": 1.0, "mixup_alpha": 0.2, "beta": 1.5,
            "beta_final": 3.0, "awp_gamma": 0.005, "awp_warmup": round(nb_epochs * 10 / 110), "lr_schedule": "cosine",
            "lpips_weight": 1.0, "i_lpips_weight": 1.0, "oaat_warmup": 0, "swa_save_epoch": 0, "list_swa_tau": [0.995],
            "list_swa_epoch": [0], "models_path": None if models_path is None else str(models_path),
            "load_swa_model_tau": 0.995, "layer_names_activation": self.activation_layers,
        }

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        params = self._train_params(nb_epochs, workdir)
        copies = [copy.deepcopy(classifier.model) for _ in range(3)]
        proxy_optimizer = torch.optim.SGD(copies[0].parameters(), lr=params["awp_gamma"])  # as ART's OAAT example
        attack = self.attack or _pgd(classifier, self.eps, self.eps / 4, self.max_iter, batch_size)  # type: ignore
        return AdversarialTrainerOAATPyTorch(classifier, _like(classifier, copies[0], optimizer=proxy_optimizer),
                                             _like(classifier, copies[1]), [_like(classifier, copies[2])], attack,
                                             params)


# ---------------------------------------------------------------------- defensive distillation
class TemperatureSoftmax(nn.Module):
    """``softmax(model(x) / temperature)``: Papernot et al.'s soft labels F(x)_i = exp(z_i / T) / sum_j exp(z_j / T).

    :param model: A module that outputs logits z.
    :param temperature: T > 0.
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x) / self.temperature, dim=1)


class TemperatureLogits(TemperatureSoftmax):
    """``model(x) / temperature``: with the cross-entropy, training at temperature T (the teacher's training)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


class SoftLabelNLL(nn.Module):
    """``mean_i -sum_k y_ik log p_ik`` for probability outputs p and soft labels y (the distilled network's loss)."""

    def forward(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -(target * torch.log(probs.clamp_min(1e-12))).sum(dim=1).mean()


class ArtDefensiveDistillation(ArtTrainerAdapter):
    """Papernot et al.'s defensive distillation through ART's ``DefensiveDistillation`` transformer.

    As in the paper: a teacher of the student's architecture (freshly initialised, the student's optimizer type and
    settings) is trained naturally at temperature T (cross-entropy on softmax(z / T)) for nb_epochs; ART's
    transformer then fits the student, seen through softmax(z / T), to the teacher's probabilities at T for
    nb_epochs with :class:`SoftLabelNLL`; the student is deployed at T = 1 (its logits unchanged). ART's transformer
    has no temperature (both models must output probabilities), so T lives in :class:`TemperatureSoftmax`.
    T = 100 (the paper's MNIST and CIFAR-10 setting). No adversarial step: eps only sets the budget of the
    validation PGD; no scheduler (ART's transformer fits without one). The recorded seconds per epoch include the
    teacher's training.

    | Paper link: https://arxiv.org/abs/1511.04508
    """

    method: ClassVar[str] = "art-defensive-distillation"
    art_class: ClassVar[type] = DefensiveDistillation
    epoch_hook: ClassVar[EpochHook] = "total"
    fixed_settings: ClassVar[dict[str, str]] = {
        "eps_step": "defensive distillation has no adversarial step",
        "max_iter": "defensive distillation has no adversarial step",
        "scheduler": "ART's DefensiveDistillation fits the student without a scheduler",
    }

    def __init__(self, classifier: PyTorchClassifier, teacher: PyTorchClassifier | None = None, *,
                 temperature: float = 100.0, **kwargs: Any) -> None:
        """
        :param temperature: Distillation temperature T > 0 (100 in the paper).
        Other parameters as in :class:`ArtTrainerAdapter`.
        """
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        self.temperature = float(temperature)
        super().__init__(classifier, teacher, **kwargs)
        self.teacher: PyTorchClassifier | None = None

    def _art_settings(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "teacher": "student's architecture, trained naturally at T"}

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        teacher_model = copy.deepcopy(classifier.model)
        for module in teacher_model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        optimizer = classifier.optimizer
        teacher_optimizer = type(optimizer)(teacher_model.parameters(), **optimizer.defaults)
        self.teacher = _like(classifier, TemperatureLogits(teacher_model, self.temperature),
                             loss=nn.CrossEntropyLoss(), optimizer=teacher_optimizer)
        return DefensiveDistillation(_like(classifier, TemperatureSoftmax(teacher_model, self.temperature)),
                                     batch_size=batch_size, nb_epochs=nb_epochs)

    def _art_fit(self, x: np.ndarray, y: np.ndarray, batch_size: int, nb_epochs: int,
                 hook: _EpochEndHook | None) -> None:
        assert self.teacher is not None
        self.teacher.fit(x, y, batch_size=batch_size, nb_epochs=nb_epochs, verbose=False)
        student = self._classifier
        student_at_t = _like(student, TemperatureSoftmax(student.model, self.temperature), loss=SoftLabelNLL(),
                             optimizer=student.optimizer)
        self.art_trainer(x, transformed_classifier=student_at_t)


#: Method name -> adapter class; ``art-rslad train --method`` and ``compare`` accept these names.
ART_TRAINERS: dict[str, type[ArtTrainerAdapter]] = {
    cls.method: cls for cls in (ArtMadryPGD, ArtTRADES, ArtAWP, ArtFBF, ArtOAAT, ArtDefensiveDistillation)
}


#: The same adapters for a harness (``art-rslad train`` / ``compare``) that gives every method the same eps,
#: eps_step, max_iter, scheduler and checkpoint interval: settings an ART class fixes are dropped and recorded in
#: the trainer's ``hyperparameters()["not_used"]`` instead of refused. Registered in ``art_rslad.trainers.TRAINERS``.
SHARED_SETTINGS_TRAINERS: dict[str, type[ArtTrainerAdapter]] = {
    name: type(cls.__name__, (cls,), {"shared_settings": True, "__doc__": cls.__doc__, "__module__": __name__})
    for name, cls in ART_TRAINERS.items()
}


def get_art_trainer(name: str) -> type[ArtTrainerAdapter]:
    """The adapter class registered as ``name``; a ValueError lists the known names otherwise."""
    if name not in ART_TRAINERS:
        raise ValueError(f"Unknown ART method {name!r}; known ART methods: {', '.join(ART_TRAINERS)}.")
    return ART_TRAINERS[name]


# ---------------------------------------------------------------------- preprocessing defences
DefenceGradient = Literal["exact", "bpda"]
#: The views :func:`evaluate_preprocessing_defence` may run, each with its own resume file: the two gradients, and
#: ``no`` (gradient-free attacks only) when the defence has neither.
DEFENCE_VIEWS: tuple[str, ...] = ("exact", "bpda", "no")


@dataclass(frozen=True)
class DefenceSpec:
    """One entry of :data:`PREPROCESSING_DEFENCES`.

    :param build: Builds the ART preprocessor for a classifier (its clip values and channels).
    :param description: One line for tables and ``--help``.
    """

    build: Callable[[PyTorchClassifier], Preprocessor]
    description: str


def _feature_squeezing(classifier: PyTorchClassifier) -> Preprocessor:
    channels = classifier.input_shape[0] if classifier.channels_first else classifier.input_shape[-1]
    return FeatureSqueezing(clip_values=classifier.clip_values, bit_depth=1 if channels == 1 else 5)


def _jpeg(classifier: PyTorchClassifier) -> Preprocessor:
    return JpegCompression(clip_values=classifier.clip_values, quality=75, channels_first=classifier.channels_first)


#: Defence name -> how to build it around a student. Settings from each defence's paper (docs/art-defences.md).
PREPROCESSING_DEFENCES: dict[str, DefenceSpec] = {
    "feature-squeezing": DefenceSpec(
        _feature_squeezing, "ART FeatureSqueezing: bit-depth 1 for grey-scale, 5 for colour (Xu et al. 2018)"),
    "jpeg": DefenceSpec(_jpeg, "ART JpegCompression, quality 75 (Dziugaite et al. 2016, Guo et al. 2018)"),
}
#: ART numpy defences that are constant between quantisation steps: their exact gradient is zero almost
#: everywhere, which is what the ``exact`` view back-propagates.
PIECEWISE_CONSTANT: tuple[type[Preprocessor], ...] = (FeatureSqueezing, JpegCompression)


def get_preprocessing_defence(name: str, classifier: PyTorchClassifier) -> Preprocessor:
    """The ART preprocessor registered as ``name``, built for ``classifier``; a ValueError lists the names."""
    if name not in PREPROCESSING_DEFENCES:
        raise ValueError(f"Unknown preprocessing defence {name!r}; known: {', '.join(PREPROCESSING_DEFENCES)}.")
    return PREPROCESSING_DEFENCES[name].build(classifier)


class _NumpyDefence(torch.autograd.Function):
    """An ART numpy preprocessor inside autograd: forward runs it; backward is zero (``exact`` for a piecewise-
    constant defence) or ART's ``estimate_gradient`` (``bpda``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, defence: Preprocessor, gradient: DefenceGradient) -> torch.Tensor:
        ctx.defence, ctx.gradient, ctx.x_numpy = defence, gradient, x.detach().cpu().numpy()
        defended, _ = defence(ctx.x_numpy)
        return torch.as_tensor(np.asarray(defended, dtype=np.float32), device=x.device)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        if ctx.gradient == "exact":
            return torch.zeros(ctx.x_numpy.shape, dtype=grad_output.dtype, device=grad_output.device), None, None
        grad = ctx.defence.estimate_gradient(ctx.x_numpy, grad_output.detach().cpu().numpy())
        return torch.as_tensor(np.asarray(grad), dtype=grad_output.dtype, device=grad_output.device), None, None


class DefendedModel(nn.Module):
    """The student behind an ART preprocessing defence, as one differentiable torch module.

    ``forward(x)`` = the student's logits (after its own ART preprocessing) on ``defence(x)``. Gradients with
    respect to x: ``exact`` differentiates the defence itself (autograd through an ART ``PreprocessorPyTorch``;
    zero for a piecewise-constant numpy defence); ``bpda`` uses ART's approximation (``estimate_forward`` of a
    PyTorch defence, ``estimate_gradient`` of a numpy one).

    :param classifier: The student; its model is registered here, so mode switches reach it.
    :param defence: An ART preprocessor.
    :param gradient: ``exact`` or ``bpda``.
    """

    def __init__(self, classifier: PyTorchClassifier, defence: Preprocessor, gradient: DefenceGradient) -> None:
        super().__init__()
        self.model = classifier.model
        self._classifier = classifier
        self.defence = defence
        self.gradient = gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.defence, PreprocessorPyTorch):
            defended = self.defence.forward(x)[0] if self.gradient == "exact" else self.defence.estimate_forward(x)
        else:
            defended = _NumpyDefence.apply(x, self.defence, self.gradient)
        return forward_logits(self._classifier, defended)


def defended_classifier(
    classifier: PyTorchClassifier, defence: str | Preprocessor, gradient: DefenceGradient = "bpda"
) -> PyTorchClassifier:
    """``classifier`` behind ``defence`` as a PyTorchClassifier that white-box attacks can differentiate.

    :param classifier: The student (logits, clip_values).
    :param defence: A name from :data:`PREPROCESSING_DEFENCES` or an ART preprocessor.
    :param gradient: ``exact`` (the defence's own gradient) or ``bpda`` (ART's approximation).
    :raises ValueError: When the chosen gradient does not exist: ``exact`` of a numpy defence not known to be
        piecewise constant (:data:`PIECEWISE_CONSTANT`), or ``bpda`` of a defence whose ``estimate_gradient`` is
        missing or returns the wrong shape. Then no white-box number can be given for that view.
    """
    check_classifier(classifier, "classifier")
    if isinstance(defence, str):
        defence = get_preprocessing_defence(defence, classifier)
    if not isinstance(defence, Preprocessor):
        raise ValueError(f"`defence` must be a name ({', '.join(PREPROCESSING_DEFENCES)}) or an ART Preprocessor, got "
                         f"{type(defence).__name__}.")
    if gradient not in ("exact", "bpda"):
        raise ValueError(f"`gradient` must be 'exact' or 'bpda', got {gradient!r}.")
    name = type(defence).__name__
    if gradient == "exact" and not isinstance(defence, (PreprocessorPyTorch, *PIECEWISE_CONSTANT)):
        raise ValueError(f"{name} runs in numpy and is not known to be piecewise constant, so its exact gradient is "
                         "unknown: use gradient='bpda', or black-box attacks only.")
    if gradient == "bpda" and not isinstance(defence, PreprocessorPyTorch):
        probe = np.full((1, *classifier.input_shape), 0.5 * sum(clip_range(classifier)), dtype=np.float32)
        try:
            estimate = np.asarray(defence.estimate_gradient(probe, np.ones_like(defence(probe)[0])))
        except NotImplementedError:
            estimate = None
        if estimate is None or estimate.shape != probe.shape:
            raise ValueError(f"{name} offers no usable gradient estimate (estimate_gradient is missing or returns the "
                             "wrong shape), so it cannot be attacked by BPDA: no white-box numbers; use black-box "
                             "attacks only.")
    return _like(classifier, DefendedModel(classifier, defence, gradient), optimizer=None, keep_preprocessing=False)


#: Suffix of the BPDA view's attack names in :func:`evaluate_preprocessing_defence`'s report.
BPDA_SUFFIX = "_bpda"


def _merge(reports: dict[str, RobustnessReport], eps: float, n_inputs: int) -> RobustnessReport:
    """One report holding the exact view's attacks under their names and the BPDA view's under name + _bpda
    (attacks that use no gradient only once); checks per view; warnings prefixed with their view."""
    merged = RobustnessReport(eps=eps, n_inputs=n_inputs)
    for view, report in reports.items():
        for name in report.attacks:
            if report.kinds[name] != "white-box" and name in merged.correct:
                continue
            key = f"{name}{BPDA_SUFFIX}" if view == "bpda" and report.kinds[name] == "white-box" else name
            for table in ("correct", "kinds", "seconds", "max_perturbation", "settings", "messages"):
                getattr(merged, table)[key] = getattr(report, table)[name]
            merged.settings[key] = {**merged.settings[key], "defence_gradient": view}
        merged.checks[view] = report.checks
        merged.warnings += [f"[{view} gradient] {warning}" for warning in report.warnings]
        merged.fingerprint = report.fingerprint
    return merged


def view_state_path(state_path: str | os.PathLike[str] | None, view: str) -> Path | None:
    """The resume file of one view (``exact``, ``bpda`` or ``no``) of
    :func:`evaluate_preprocessing_defence`: ``eval.json`` -> ``eval.<view>.json``."""
    if view not in DEFENCE_VIEWS:
        raise ValueError(f"`view` must be one of {', '.join(DEFENCE_VIEWS)}, got {view!r}.")
    if state_path is None:
        return None
    path = Path(state_path)
    return path.with_name(f"{path.stem}.{view}{path.suffix or '.json'}")


def _gap_warnings(report: RobustnessReport, defence_name: str) -> list[str]:
    accuracy, warnings = report.accuracy, []
    for name, kind in report.kinds.items():
        bpda = f"{name}{BPDA_SUFFIX}"
        if kind != "white-box" or bpda not in accuracy:
            continue
        if accuracy[name] > accuracy[bpda] + ACCURACY_TOLERANCE:
            warnings.append(
                f"{name}: {accuracy[name]:.2%} through {defence_name}'s exact gradient but {accuracy[bpda]:.2%} with "
                f"BPDA ({bpda}): the higher number comes from obfuscated gradients (the defence's gradient is zero "
                "almost everywhere), not from robustness. Only the lower one is a robustness claim.")
        elif accuracy[bpda] > accuracy[name] + ACCURACY_TOLERANCE:
            warnings.append(f"{bpda} ({accuracy[bpda]:.2%}) is above {name} ({accuracy[name]:.2%}): BPDA's "
                            "approximation of the defence is poor here; the lower number is the one to report.")
    return warnings


def evaluate_preprocessing_defence(
    classifier: PyTorchClassifier,
    defence: str | Preprocessor,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    attacks: Iterable[str] | str = DEFAULT_ATTACKS,
    state_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> RobustnessReport:
    """Robustness of ``classifier`` behind ``defence``, white-box both through the defence's exact gradient and by
    BPDA, in one report.

    The exact view keeps the attack names (``pgd_sat``, ...); the BPDA view's white-box attacks are named
    ``pgd_sat_bpda``, ...; clean and black-box attacks run once. The per-input worst case covers both views. A
    warning names every attack whose exact-gradient accuracy lies above its BPDA accuracy (obfuscated gradients),
    and each view's own integrity warnings are kept, prefixed with the view. A view whose gradient does not exist
    is skipped with a warning; with neither, only the attacks that need no gradient run (white-box numbers are
    refused, not faked). Under torchrun each view is sharded over the ranks like
    :func:`~art_rslad.distributed.evaluate_robustness_distributed`, and every rank returns the merged report.

    :param classifier: The undefended student (logits, clip_values).
    :param defence: A name from :data:`PREPROCESSING_DEFENCES` or an ART preprocessor.
    :param x: Inputs within clip_values.
    :param y: Labels (indices or one-hot).
    :param eps: L-inf budget on the scale of clip_values.
    :param attacks: Attack names of :func:`~art_rslad.evaluate_robustness`.
    :param state_path: Resume file stem: each view keeps its own state, ``eval.json`` becoming ``eval.exact.json``
        and ``eval.bpda.json`` (``eval.no.json`` for the gradient-free fallback), updated after every attack
        (under torchrun one per rank and view: ``eval.exact.rank0of2.json``, ...).
    :param kwargs: Other arguments of :func:`~art_rslad.evaluate_robustness` (batch_size, seed, surrogate, ...).
    """
    names = [attacks] if isinstance(attacks, str) else list(attacks)
    unknown = [name for name in names if name not in ATTACKS]
    if unknown:
        raise ValueError(f"`attacks`: unknown attack names {unknown}; known attacks: {', '.join(ATTACKS)}.")
    defence_name = defence if isinstance(defence, str) else type(defence).__name__
    reports: dict[str, RobustnessReport] = {}
    refused: list[str] = []
    for gradient in ("exact", "bpda"):
        try:
            view = defended_classifier(classifier, defence, gradient)  # type: ignore[arg-type]
        except ValueError as error:
            refused.append(f"[{gradient} gradient] not evaluated: {error}")
            continue
        logger.info("%s behind %s, %s gradient", type(classifier.model).__name__, defence_name, gradient)
        reports[gradient] = evaluate_robustness_distributed(view, x, y, eps=eps, attacks=names,
                                                            state_path=view_state_path(state_path, gradient), **kwargs)
    if not reports:
        gradient_free = [name for name in names if ATTACKS[name].kind != "white-box"]
        refused.append(f"White-box attacks refused: {defence_name} has no gradient and no gradient estimate.")
        if not gradient_free:
            raise ValueError(" ".join(refused) + " Choose attacks that need no gradient (e.g. clean, square).")
        art_defence = get_preprocessing_defence(defence, classifier) if isinstance(defence, str) else defence
        numpy_defended = PyTorchClassifier(
            classifier.model, classifier.loss, classifier.input_shape, classifier.nb_classes,
            clip_values=classifier.clip_values, channels_first=classifier.channels_first,
            preprocessing_defences=[art_defence], preprocessing=classifier.preprocessing,
            device_type="cpu" if classifier.device.type == "cpu" else "gpu")
        reports["no"] = evaluate_robustness_distributed(numpy_defended, x, y, eps=eps, attacks=gradient_free,
                                                        state_path=view_state_path(state_path, "no"), **kwargs)
    report = _merge(reports, float(eps), len(x))
    gaps = _gap_warnings(report, defence_name)
    report.warnings = [*refused, *report.warnings, *gaps]
    for warning in refused + gaps:
        logger.warning(warning)
    return report
