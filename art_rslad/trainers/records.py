"""What every trainer's fit checks and records, one of each: the outward protocol that the shared loop and the
adapters of ART's trainers both implement, through :class:`RecordedTrainer`.

* The input check: :meth:`RecordedTrainer._check_data` (float inputs within clip_values, labels as indices or
  one-hot).
* The validation routine: :func:`validation_attack` (PGD-10, cross-entropy, uniform start, seeded) and
  :meth:`RecordedTrainer._count_correct` (clean and attacked correct counts, the student in eval mode).
* The best-epoch record: :attr:`~RecordedTrainer.history`, :attr:`~RecordedTrainer.best_metric`,
  :attr:`~RecordedTrainer.best_epoch` and :attr:`~RecordedTrainer.best_state_dict` (the epoch with the highest
  validation PGD-10 accuracy), kept by :meth:`RecordedTrainer._record_validation`.
* The checkpoint payload: :meth:`RecordedTrainer._checkpoint_payload` (format, version, kind, config, epoch,
  weights, best epoch, history, package versions) and ``metrics.jsonl`` beside it; :meth:`_restore_records` reads
  them back.
"""

from __future__ import annotations

import json
import logging
import math
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import art
import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

import art_rslad
from art_rslad.attacks import InputGradientClassifier, InputGradientPGD
from art_rslad.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint
from art_rslad.estimators import check_classifier, clip_range, model_modes
from art_rslad.models.weights import match_state_dict
from art_rslad.trainers.networks import Network

logger = logging.getLogger(__name__)

Scheduler = torch.optim.lr_scheduler.LRScheduler


def package_versions() -> dict[str, str]:
    """The versions a checkpoint records: art-rslad, ART, torch, numpy and Python."""
    return {"art_rslad": art_rslad.__version__, "art": art.__version__, "torch": str(torch.__version__),
            "numpy": np.__version__, "python": platform.python_version()}


#: CIFAR's L-inf budget, the trainers' default eps, and the input shape it belongs to.
CIFAR_EPS = 8 / 255
CIFAR_SHAPE = (3, 32, 32)


def attack_budget(attack: Any, eps: float | None, eps_step: float | None) -> tuple[float | None, float | None]:
    """``eps`` and ``eps_step``, each taken from a user's ``attack`` where not given: the budget the run trains at
    is the one recorded, and the validation attack uses it too."""
    def own(value: float | None, name: str) -> float | None:
        setting = getattr(attack, name, None)
        return float(setting) if value is None and isinstance(setting, int | float) else value

    return own(eps, "eps"), own(eps_step, "eps_step")


def load_resumed_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load a ``last.pt``'s weights into the student; a ValueError naming ``resume_from`` where they do not fit
    (the same class with another width, say)."""
    try:
        model.load_state_dict(match_state_dict(model, state))
    except ValueError as error:
        raise ValueError(f"`resume_from` {path} holds weights of another model: {str(error).split(': ', 1)[-1]} "
                         "Resume with the student (and options such as width) the run was started with.") from error


def check_budget(classifier: PyTorchClassifier, eps: float | None, eps_step: float | None,
                 max_iter: int | None) -> float:
    """Check the attack budget (None: not set, the trainer's default or ART's); the eps to use (default CIFAR's).

    CIFAR's 8/255 on data of another shape is probably not meant (Fashion-MNIST and MNIST use 0.1 and 0.3): it is
    kept, with a warning that says so.
    """
    low, high = clip_range(classifier)
    if eps is None:
        eps = CIFAR_EPS
        if tuple(classifier.input_shape) != CIFAR_SHAPE:
            logger.warning("`eps` defaults to CIFAR's 8/255, but the classifier's inputs are %s, not CIFAR's %s; "
                           "pass eps= for your data (the usual L-inf budget is 0.1 for Fashion-MNIST, 0.3 for "
                           "MNIST).", tuple(classifier.input_shape), CIFAR_SHAPE)
    if not 0 < eps <= high - low:
        raise ValueError(f"`eps` must be in (0, {high - low}] (the clip range of the classifier), got {eps}.")
    if eps_step is not None and not eps_step > 0:
        raise ValueError(f"`eps_step` must be > 0, got {eps_step}.")
    if eps_step is not None and eps_step > eps:
        raise ValueError(f"`eps_step` ({eps_step}) must not exceed `eps` ({eps}); the usual step is eps/4.")
    if max_iter is not None and (int(max_iter) != max_iter or max_iter < 1):
        raise ValueError(f"`max_iter` must be a positive integer, got {max_iter}.")
    return float(eps)


def check_positive(name: str, value: float) -> float:
    """``value`` as a float, a ValueError naming ``name`` unless it is > 0."""
    if not value > 0:
        raise ValueError(f"`{name}` must be > 0, got {value}.")
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    """``value`` as a float, a ValueError naming ``name`` unless it is >= 0."""
    if not value >= 0:
        raise ValueError(f"`{name}` must be >= 0, got {value}.")
    return float(value)


def check_fraction(name: str, value: float) -> float:
    """``value`` as a float, a ValueError naming ``name`` unless it is in [0, 1] (a loss term's weight)."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
    return float(value)


def check_attack(attack: object, classifier: PyTorchClassifier) -> None:
    """A user's training attack must be an ART EvasionAttack built on the student itself."""
    if attack is None:
        return
    if not isinstance(attack, EvasionAttack):
        raise ValueError(f"`attack` must be an ART EvasionAttack, got {type(attack).__name__}.")
    if getattr(attack.estimator, "model", None) is not classifier.model:  # the student, or a view of its model
        raise ValueError("`attack` was built on another estimator than the student; build it on the classifier "
                         "being trained, e.g. ProjectedGradientDescent(student, ...), so that it attacks the model "
                         "that learns.")


def attack_settings(attack: object) -> dict[str, Any]:
    """The budget a user's attack actually runs with, as checkpoints and run records keep it."""
    names = ("eps", "eps_step", "max_iter", "norm", "num_random_init", "targeted")
    return {name: _plain(getattr(attack, name)) for name in names if hasattr(attack, name)}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else float(value) if isinstance(value, np.ndarray) \
        and value.size == 1 else value


def validation_attack(estimator: InputGradientClassifier, eps: float, eps_step: float, seed: int) -> InputGradientPGD:
    """The validation attack: PGD-10 with ``estimator``'s loss (cross-entropy for one-hot targets), uniform start."""
    return InputGradientPGD(estimator, eps=eps, eps_step=eps_step, max_iter=10, random_init="uniform", seed=seed)


class RecordedTrainer:
    """What an ART Trainer mixes in to check its data, validate, keep its best epoch and write checkpoints like
    every other (``class MyTrainer(RecordedTrainer, Trainer)``): ``fit``'s signature and checks, the validation
    routine, the best-epoch record and the checkpoint payload.

    Subclasses set :attr:`method` and ``seed``, build ``_val_attack`` with :func:`validation_attack`, and implement
    ``validate`` over :meth:`_count_correct`.
    """

    method: ClassVar[str] = ""
    #: The networks the method uses beside the student (:mod:`~art_rslad.trainers.networks`); none by default.
    networks: ClassVar[tuple[Network, ...]] = ()
    #: Whether the trainer can run under torchrun.
    distributed_ok: ClassVar[bool] = True
    seed: int
    _classifier: PyTorchClassifier
    _val_attack: InputGradientPGD
    #: One record per epoch (``epoch``, ``train_seconds``, ``seconds``, ``lr``, ``val_clean``, ``val_pgd``, ...).
    history: list[dict[str, float]]
    #: The best epoch's validation PGD-10 accuracy, the epoch (1-based; -1 before any validation) and its weights.
    best_metric: float
    best_epoch: int
    best_state_dict: dict[str, torch.Tensor] | None

    def __init__(self, classifier: PyTorchClassifier) -> None:
        """:param classifier: The student, an ART PyTorchClassifier with an optimizer and clip_values."""
        super().__init__(classifier=check_classifier(classifier, "classifier", needs_optimizer=True))
        self._clear_records()

    def _clear_records(self) -> None:
        """Forget the history and the best epoch (a new run starts)."""
        self.history, self.best_metric, self.best_epoch, self.best_state_dict = [], -math.inf, -1, None

    # ----------------------------------------------------------------- training
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
        restore_best: bool = False,
    ) -> None:
        """Train the student on numpy arrays, in place (``get_classifier()`` returns it).

        Without ``restore_best`` the student ends with the last epoch's weights, like ART's trainers; with
        ``restore_best=True`` (and ``validation_data``) it ends with the best epoch's, the most robust on the
        validation set, as :attr:`best_state_dict` and ``best.pt`` hold them.

        :param x: Training inputs ``(N, *input_shape)`` within clip_values; never modified.
        :param y: Labels as indices (N,) or one-hot (N, nb_classes).
        :param validation_data: ``(x_val, y_val)``: clean and PGD-10 accuracy after every epoch (where the trainer
            can stop between epochs); the epoch with the highest PGD accuracy is kept as the best
            (:attr:`best_state_dict`, ``best.pt``).
        :param batch_size: Batch size (per process under torchrun).
        :param nb_epochs: Number of epochs.
        :param scheduler: A torch LR scheduler on the student's optimizer, stepped once per epoch.
        :param checkpoint_dir: Folder for ``last.pt``, ``best.pt`` and ``metrics.jsonl`` (written atomically).
        :param resume_from: A ``last.pt`` of an interrupted run of the same method, model, data and settings.
        :param checkpoint_interval: Also write ``last.pt`` every this many batches (0: at each epoch's end).
        :param restore_best: Load the best epoch's weights into the student at the end (needs ``validation_data``).
        """
        with self._ending_with_best(restore_best, validation_data):
            x, labels = self._check_data(x, y)
            validation_data = self._check_run(batch_size, nb_epochs, scheduler, checkpoint_interval, validation_data)
            self._fit(x, labels, validation_data, batch_size, nb_epochs, scheduler, checkpoint_dir, resume_from,
                      checkpoint_interval)

    @contextmanager
    def _ending_with_best(self, restore_best: bool, validation_data: object) -> Iterator[None]:
        """Refuse ``restore_best`` without validation data; after a run that ends normally, load the best epoch's
        weights into the student where ``restore_best`` asks for them."""
        if restore_best and validation_data is None:
            raise ValueError("`restore_best=True` needs `validation_data`: the best epoch is the one with the highest "
                             "PGD accuracy on it.")
        yield
        if restore_best and self.best_state_dict is not None:
            self._classifier.model.load_state_dict(self.best_state_dict)

    def _fit(self, x: np.ndarray, y: np.ndarray, validation_data: tuple[np.ndarray, np.ndarray] | None,
             batch_size: int, nb_epochs: int, scheduler: Scheduler | None, checkpoint_dir: str | Path | None,
             resume_from: str | Path | None, checkpoint_interval: int) -> None:
        """:meth:`fit` on checked arguments (labels as indices)."""
        raise NotImplementedError

    def _check_run(self, batch_size: int, nb_epochs: int, scheduler: Scheduler | None, checkpoint_interval: int,
                   validation_data: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Check a run's settings; the validation data as checked arrays."""
        for name, value in (("batch_size", batch_size), ("nb_epochs", nb_epochs)):
            if int(value) != value or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if checkpoint_interval < 0:
            raise ValueError(f"`checkpoint_interval` must be >= 0, got {checkpoint_interval}.")
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise ValueError(f"`scheduler` must be a torch.optim.lr_scheduler.LRScheduler, got {type(scheduler)}.")
        return None if validation_data is None else self._check_data(*validation_data, name="validation_data")

    # ----------------------------------------------------------------- input checks
    def _check_data(self, x: np.ndarray, y: np.ndarray, name: str = "x") -> tuple[np.ndarray, np.ndarray]:
        """``(x as float32, labels as int64 indices)``, or a ValueError naming ``name`` and what is wrong."""
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
        what = "`y`" if name == "x" else f"The labels of `{name}`"
        if y.ndim == 2 and y.shape[1] == nb_classes:
            if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
                raise ValueError(f"{what} has rows that are not one-hot (soft labels?); pass class indices (N,) or "
                                 f"one-hot rows (N, {nb_classes}).")
            y = y.argmax(axis=1)
        elif y.ndim != 1:
            raise ValueError(f"{what} must be class indices (N,) or one-hot (N, {nb_classes}), got shape {y.shape}.")
        if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
            raise ValueError(f"{what} must be integer class indices.")
        if y.min() < 0 or y.max() >= nb_classes:
            raise ValueError(f"{what} must lie in [0, {nb_classes - 1}], found [{y.min()}, {y.max()}].")
        return y.astype(np.int64)

    # ----------------------------------------------------------------- validation and the best epoch
    def validate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
        """``{"val_clean": ..., "val_pgd": ...}``: clean and PGD-10 accuracy on (x, y)."""
        raise NotImplementedError

    def _count_correct(self, logits: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, y: np.ndarray,
                       batch_size: int) -> tuple[int, int]:
        """How many of (x, y) ``logits`` classifies correctly, clean and under ``_val_attack``, with the student in
        eval mode. Callers reseed ``_val_attack`` first, so the numbers do not depend on when validation runs."""
        classifier = self._classifier
        device = classifier.device
        clean = robust = 0
        with model_modes((classifier.model, False)):
            for start in range(0, len(x), batch_size):
                x_b = torch.from_numpy(x[start:start + batch_size]).to(device)
                y_b = torch.from_numpy(y[start:start + batch_size]).to(device)
                with torch.no_grad():
                    clean += int((logits(x_b).argmax(1) == y_b).sum())
                targets = torch.nn.functional.one_hot(y_b, classifier.nb_classes).float()
                x_adv = self._val_attack.generate_tensor(x_b, targets)
                with torch.no_grad():
                    robust += int((logits(x_adv).argmax(1) == y_b).sum())
        return clean, robust

    def _record_validation(self, record: dict[str, float], validation_data: tuple[np.ndarray, np.ndarray],
                           batch_size: int) -> bool:
        """Add the validation accuracy to the epoch's ``record``; True when the epoch is the new best (its weights
        are then kept in :attr:`best_state_dict`)."""
        record.update(self._run_validation(*validation_data, batch_size))
        if record["val_pgd"] <= self.best_metric:
            return False
        self.best_metric, self.best_epoch = record["val_pgd"], int(record["epoch"])
        self.best_state_dict = {key: value.detach().clone() for key, value in self._model_state().items()}
        return True

    def _run_validation(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, float]:
        """The validation of one epoch inside fit (:meth:`validate`, unless the loop knows more)."""
        return self.validate(x, y, batch_size=batch_size)

    def _model_state(self) -> dict[str, torch.Tensor]:
        """The student's weights that checkpoints and the best record publish."""
        return self._classifier.model.state_dict()

    def _append_record(self, record: dict[str, float], nb_epochs: int, log: bool = True) -> None:
        """Close the epoch: its record joins :attr:`history` (and is logged at INFO where ``log``)."""
        self.history.append(record)
        if log:
            logger.info("%s epoch %d/%d: %s", self.method, record["epoch"], nb_epochs,
                        " ".join(f"{key} {value:.4g}" for key, value in record.items() if key != "epoch"))

    # ----------------------------------------------------------------- checkpoints
    def _checkpoint_payload(self, kind: str, config: dict[str, Any], epoch: int,
                            model_state: dict[str, torch.Tensor] | None = None, *, batch: int = 0,
                            **state: Any) -> dict[str, Any]:
        """A self-describing checkpoint: ``kind`` (``last`` or ``best``), the run's config, the epoch (and batch)
        it ends, the weights (the student's now unless given), the best epoch, the history, the package versions,
        and ``state`` (what the trainer needs to resume exactly: optimizer, scheduler, generators, ...)."""
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, "config": config,
                "epoch": epoch, "batch": batch,
                "model_state": self._model_state() if model_state is None else model_state,
                **state, "best_metric": self.best_metric, "best_epoch": self.best_epoch, "history": self.history,
                "versions": package_versions()}

    def _write_metrics(self, folder: Path) -> None:
        """``metrics.jsonl``: one JSON line per epoch record of :attr:`history`."""
        with open(folder / "metrics.jsonl", "w", encoding="utf-8") as stream:
            stream.writelines(json.dumps(record) + "\n" for record in self.history)

    def _restore_records(self, checkpoint: dict[str, Any], path: str | Path) -> None:
        """History and best epoch from ``checkpoint`` (read from ``path``); the best weights from the ``best.pt``
        beside it, if there is one."""
        self.history = list(checkpoint["history"])
        self.best_metric, self.best_epoch = checkpoint["best_metric"], checkpoint["best_epoch"]
        best = Path(path).with_name("best.pt")
        self.best_state_dict = (load_checkpoint(best, map_location=self._classifier.device)["model_state"]
                                if best.is_file() else None)
