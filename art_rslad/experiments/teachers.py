"""Robust teachers: train one (TRADES or SAT), import a state dict, ship it with a model card, load it by source.

Sources understood by :func:`load_teacher`:

* ``"zoo:<name>"``: a model shipped in ``art_rslad/zoo/`` (``<name>.pt`` plus its card ``<name>.json``); the
  weights' sha256 is checked against the card before loading.
* ``"robustbench:<name>"``: RobustBench's model zoo (:func:`art_rslad.robustbench.load_robustbench_teacher`).
* a path to a state dict; the architecture comes from ``model=`` or from a card ``<stem>.json`` beside it.
* a run folder of ``art-rslad train`` (its ``student.pt`` and the card ``student.json`` beside it).

A model card (:class:`ModelCard`) is a JSON file in the spirit of RobustBench's metadata: architecture, dataset,
eps, clean / PGD / AutoAttack accuracy with the number of test images and the command that measured them, the
training command and settings, seed, package versions and the weights' sha256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import art
import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

import art_rslad
from art_rslad import robustbench
from art_rslad.data import dataset_info, load_dataset, make_data_generator, train_val_split
from art_rslad.evaluation import evaluate_robustness
from art_rslad.experiments.config import Config, teacher_method_names
from art_rslad.models import count_parameters, create_model, load_weights, make_classifier
from art_rslad.trainers.registry import get_method

logger = logging.getLogger(__name__)

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
#: Methods that can train a teacher: natural training (a clean teacher) and adversarial training (a robust one).
TEACHER_METHODS: tuple[str, ...] = tuple(teacher_method_names())
CARD_FORMAT = "art-rslad-model-card"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a model's numbers."""
    return {"art_rslad": art_rslad.__version__, "art": art.__version__, "torch": str(torch.__version__),
            "numpy": np.__version__, "python": platform.python_version()}


@dataclass
class ModelCard:
    """What a shipped or trained model is and how robust it measured.

    :param name: Model name (the zoo name for shipped models).
    :param architecture: Registry name (:func:`art_rslad.models.list_models`).
    :param dataset: Dataset name.
    :param nb_classes: Number of classes.
    :param eps: L-inf budget the model was trained for and evaluated at, on the [0, 1] scale.
    :param weights: File name of the state dict, relative to the card.
    :param sha256: sha256 of the weights file.
    :param nb_parameters: Trainable parameters.
    :param model_options: Extra options passed to :func:`~art_rslad.models.create_model`.
    :param metrics: Attack name -> ``{"accuracy", "nb_images", "command"}`` on the first images of the test set.
    :param training: Method, hyperparameters, best epoch, history and the command that trained the model.
    :param seed: Seed of the training run.
    :param versions: Package versions at training time.
    """

    name: str
    architecture: str
    dataset: str
    nb_classes: int
    eps: float
    weights: str
    sha256: str
    nb_parameters: int
    model_options: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": CARD_FORMAT, **dataclasses.asdict(self)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ModelCard:
        """Read a card; a ValueError names what is missing or unknown."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"No model card at {str(source)!r}.")
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"Model card {source} is not valid JSON: {error}") from error
        if not isinstance(data, dict) or data.pop("format", None) != CARD_FORMAT:
            raise ValueError(f"{source} is not an art-rslad model card (no \"format\": \"{CARD_FORMAT}\").")
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted(item.name for item in dataclasses.fields(cls)
                         if item.name not in data and item.default is dataclasses.MISSING
                         and item.default_factory is dataclasses.MISSING)
        if unknown or missing:
            raise ValueError(f"Model card {source}: unknown keys {unknown}, missing keys {missing}.")
        return cls(**data)


def list_zoo() -> list[str]:
    """Names of the shipped teachers (``zoo:<name>``)."""
    return sorted(path.stem for path in ZOO_DIR.glob("*.json"))


def zoo_card(name: str) -> tuple[ModelCard, Path]:
    """The card of the shipped model ``name`` and the path of its weights."""
    card_path = ZOO_DIR / f"{name}.json"
    if not card_path.is_file():
        raise ValueError(f"Unknown zoo model {name!r}; shipped models: {', '.join(list_zoo()) or 'none'}.")
    card = ModelCard.load(card_path)
    return card, card_path.parent / card.weights


def _classifier_from_card(card: ModelCard, weights: Path, dataset: str, device: str | None,
                          eps: float | None) -> PyTorchClassifier:
    if dataset_info(card.dataset).name != dataset_info(dataset).name:
        raise ValueError(f"The model {card.name!r} was trained on {card.dataset}, not {dataset}; use it with "
                         f"dataset {card.dataset!r}.")
    if eps is not None and not math.isclose(eps, card.eps, rel_tol=1e-6):
        logger.warning("The teacher %r is robust at eps %g (its card), but this run attacks at eps %g: its soft "
                       "labels were not trained for that budget. Set eps=%g (config key `eps`) unless another "
                       "budget is meant.", card.name, card.eps, eps, card.eps)
    digest = sha256_file(weights)
    if digest != card.sha256:
        raise ValueError(f"{weights} does not match its card's sha256 ({digest} != {card.sha256}); the file "
                         "was changed or damaged.")
    model = create_model(card.architecture, card.nb_classes, input_shape=dataset_info(card.dataset).input_shape,
                         **card.model_options)
    return _as_teacher(load_weights(model, weights), dataset, device)


def _as_teacher(model: torch.nn.Module, dataset: str, device: str | None) -> PyTorchClassifier:
    classifier = make_classifier(model, dataset, device=device)
    classifier.model.eval()
    return classifier


def load_teacher(
    source: str,
    dataset: str,
    *,
    model: str | None = None,
    model_options: dict[str, Any] | None = None,
    device: str | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    eps: float | None = None,
) -> PyTorchClassifier:
    """Load a teacher as an ART PyTorchClassifier (eval mode, clip_values (0, 1)).

    :param source: ``"zoo:<name>"``, ``"robustbench:<name>"``, a run folder or a path to a state dict.
    :param dataset: Dataset the teacher must fit (input shape and classes from :func:`dataset_info`).
    :param model: Architecture of a state-dict path (registry name); a card beside the file (``x.json`` for
        ``x.pt``, as every run folder writes for its student) takes precedence.
    :param model_options: Options of that architecture (e.g. ``{"depth": 28}``).
    :param device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
    :param model_dir: RobustBench's model folder (``robustbench:`` sources only).
    :param eps: The L-inf budget the teacher is to guide; where its card says another, a warning says so.
    """
    if source.startswith("zoo:"):
        card, weights = zoo_card(source[len("zoo:"):])
        return _classifier_from_card(card, weights, dataset, device, eps)
    if source.startswith("robustbench:"):
        return robustbench.load_robustbench_teacher(source[len("robustbench:"):], dataset, model_dir=model_dir,
                                                    device=device)
    path = Path(source)
    if path.is_dir() and (path / "student.pt").is_file():  # a run folder: its trained student, with its card
        path = path / "student.pt"
    if not path.is_file():
        raise FileNotFoundError(f"Teacher source {source!r} is neither 'zoo:<name>', 'robustbench:<name>', a run "
                                f"folder nor an existing file; shipped models: {', '.join(list_zoo()) or 'none'}.")
    card_path = path.with_suffix(".json")
    if card_path.is_file():  # a card describes its own weights: it wins over a default architecture
        card = ModelCard.load(card_path)
        if model is not None and (model, dict(model_options or {})) != (card.architecture, card.model_options):
            logger.warning("%s: its card %s says %s %s; loading that, not the given %s %s.", source, card_path.name,
                           card.architecture, card.model_options, model, dict(model_options or {}))
        return _classifier_from_card(card, path, dataset, device, eps)
    if model is None:
        raise ValueError(f"`model` is required to load the state dict {source!r} (no card {card_path.name} "
                         "beside it); pass the architecture name, e.g. model='resnet18'.")
    info = dataset_info(dataset)
    network = create_model(model, info.nb_classes, input_shape=info.input_shape, **(model_options or {}))
    try:
        network = load_weights(network, path)
    except ValueError as error:  # name the model and the options the user gave, not the Python class
        raise ValueError(f"{source!r} does not fit the model {model!r} with options {dict(model_options or {})}: "
                         f"{str(error).split(': ', 1)[-1]} Pass the model name and options it was trained with "
                         "(--model, --model-option; teacher.model, teacher.model_options).") from error
    return _as_teacher(network, dataset, device)


#: The config key that holds the source of each network start other than the student (see
#: :data:`art_rslad.trainers.networks.Start`), and the CLI option that overrides it.
SOURCE_KEYS: dict[str, tuple[str, str]] = {"teacher": ("teacher.source", "--teacher"),
                                           "clean_teacher": ("clean_teacher", "--clean-teacher")}


def load_config_source(config: Config, start: str, device: str | None = None) -> PyTorchClassifier:
    """The network a method's declaration starts from the config: the teacher (``config.teacher.source``, of
    architecture ``config.teacher.model`` for a bare state dict) or the clean teacher (``config.clean_teacher``)."""
    key, option = SOURCE_KEYS[start]
    source = config.teacher.source if start == "teacher" else config.clean_teacher
    if not source:
        raise ValueError(f"Config key `{key}` is empty but the method needs that network: set it ({option}) to "
                         "'zoo:<name>', 'robustbench:<name>', a run folder or a state-dict path (train one with "
                         f"`art-rslad teacher{' --method natural' if start == 'clean_teacher' else ''}`).")
    return load_teacher(source, config.dataset, model=config.teacher.model, device=device, eps=config.eps)


def _teacher_trainer(config: Config, device: str | None, verbose: bool) -> tuple[PyTorchClassifier, Any]:
    """The seeded teacher classifier and the trainer of ``config.teacher.method``."""
    teacher = config.teacher
    info = dataset_info(config.dataset)
    torch.manual_seed(config.seed)
    model = create_model(teacher.model, info.nb_classes, input_shape=info.input_shape)
    classifier = make_classifier(model, config.dataset, lr=teacher.lr, momentum=config.momentum,
                                 weight_decay=config.weight_decay, device=device)
    attack_settings = {"eps": config.eps, "eps_step": config.eps_step, "max_iter": config.max_iter,
                       "seed": config.seed, "verbose": verbose}
    return classifier, get_method(teacher.method).trainer(classifier, **teacher.trainer_options(), **attack_settings)


def train_teacher(
    config: Config,
    *,
    device: str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    nb_val: int = 1000,
    data_root: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> tuple[PyTorchClassifier, dict[str, Any]]:
    """Train ``config.teacher.model`` on ``config.dataset`` with TRADES (KL inner maximisation) or SAT (a robust
    teacher), or naturally (``teacher.method="natural"``: a clean teacher).

    A validation split (``config.val_fraction`` of the training set, fixed by the seed) is held out; ``nb_val`` of those
    images are attacked after every epoch and the epoch with the highest PGD-10 accuracy is returned (see
    docs/decisions.md, "Validation split and the best checkpoint"); a natural teacher returns its last epoch
    (docs/decisions.md, "A clean teacher keeps its last epoch"). The lr drops by ``config.lr_gamma`` at the
    paper's milestones scaled to ``config.teacher.nb_epochs``. With ``run_dir``, checkpoints are written there;
    ``resume`` continues from its ``last.pt``.

    :param config: Dataset, attack budget, optimiser and the ``teacher`` section (model, method, nb_epochs, lr, beta).
    :param device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
    :param run_dir: Folder for ``last.pt``, ``best.pt`` and ``metrics.jsonl``.
    :param resume: Continue from ``run_dir/last.pt`` when it exists.
    :param nb_val: Validation images attacked each epoch (at most the held-out split).
    :param data_root: Dataset folder passed to :func:`art_rslad.data.load_dataset`.
    :param verbose: Progress bars.
    :return: The trained classifier (best epoch, eval mode) and a summary for the model card's ``training``.
    """
    teacher = config.teacher
    if teacher.method not in TEACHER_METHODS:
        raise ValueError(f"`teacher.method` must be one of {TEACHER_METHODS}, got {teacher.method!r}.")
    if nb_val < 1:
        raise ValueError(f"`nb_val` must be a positive integer, got {nb_val}.")
    x, y = load_dataset(config.dataset, "train", root=data_root)
    x_train, y_train, x_val, y_val = train_val_split(x, y, config.val_fraction, config.seed)
    classifier, trainer = _teacher_trainer(config, device, verbose)
    milestones = config.milestones_for(teacher.nb_epochs)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(classifier.optimizer, milestones, gamma=config.lr_gamma)
    folder = None if run_dir is None else Path(run_dir)
    resume_from = folder / "last.pt" if resume and folder is not None and (folder / "last.pt").is_file() else None
    run_options = {"validation_data": (x_val[:nb_val], y_val[:nb_val]), "nb_epochs": teacher.nb_epochs,
                   "scheduler": scheduler, "checkpoint_dir": folder, "resume_from": resume_from}
    started = time.perf_counter()
    if config.augmentation == "none":
        trainer.fit(x_train, y_train, batch_size=config.batch_size, **run_options)
    else:
        generator = make_data_generator(x_train, y_train, config.batch_size, augmentation=config.augmentation,
                                        seed=config.seed)
        trainer.fit_generator(generator, **run_options)
    # A clean teacher keeps its last epoch: the best-epoch rule (validation PGD-10) does not apply to it.
    keeps_best = teacher.method != "natural"
    if keeps_best and trainer.best_state_dict is not None:
        classifier.model.load_state_dict(trainer.best_state_dict)
    classifier.model.eval()
    summary = {
        "method": teacher.method, **trainer.hyperparameters(), "nb_epochs": teacher.nb_epochs,
        "batch_size": config.batch_size, "lr": teacher.lr, "momentum": config.momentum,
        "weight_decay": config.weight_decay, "lr_milestones": milestones, "lr_gamma": config.lr_gamma,
        "augmentation": config.augmentation, "nb_train": len(x_train), "nb_val": min(nb_val, len(x_val)),
        "val_fraction": config.val_fraction, "best_epoch": trainer.best_epoch if keeps_best else None,
        "kept_epoch": trainer.best_epoch if keeps_best else len(trainer.history), "history": trainer.history,
        "seconds_this_session": round(time.perf_counter() - started, 1), "device": str(classifier.device),
    }
    return classifier, summary


def evaluate_teacher(
    classifier: PyTorchClassifier,
    dataset: str,
    *,
    nb_images: int = 1000,
    nb_images_autoattack: int = 0,
    attacks: tuple[str, ...] = ("clean", "pgd_sat"),
    eps: float | None = None,
    batch_size: int = 256,
    seed: int = 0,
    data_root: str | os.PathLike[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Accuracy of ``classifier`` under ``attacks`` on the first ``nb_images`` test images, and under standard
    AutoAttack on the first ``nb_images_autoattack`` (0: skipped), via :func:`art_rslad.evaluate_robustness`.

    :return: Attack name -> ``{"accuracy": float, "nb_images": int}``.
    """
    budget = dataset_info(dataset).eps if eps is None else eps
    x_test, y_test = load_dataset(dataset, "test", root=data_root)
    metrics: dict[str, dict[str, Any]] = {}
    runs = [(tuple(attacks), nb_images)]
    if nb_images_autoattack > 0:
        runs.append((("autoattack",), nb_images_autoattack))
    for names, count in runs:
        count = min(count, len(x_test))
        report = evaluate_robustness(classifier, x_test[:count], y_test[:count], eps=budget, attacks=names,
                                     batch_size=batch_size, seed=seed)
        for name, accuracy in report.accuracy.items():
            metrics[name] = {"accuracy": accuracy, "nb_images": count, "eps": budget}
            logger.info("%s accuracy %.4f on %d test images (eps %.4g)", name, accuracy, count, budget)
    return metrics


def save_teacher(
    classifier: PyTorchClassifier,
    out_dir: str | os.PathLike[str],
    name: str,
    *,
    architecture: str,
    dataset: str,
    eps: float,
    metrics: dict[str, dict[str, Any]],
    training: dict[str, Any],
    seed: int,
    model_options: dict[str, Any] | None = None,
) -> ModelCard:
    """Write ``<out_dir>/<name>.pt`` (a plain state dict) and its card ``<out_dir>/<name>.json``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.pt"
    state = {key: value.detach().cpu().clone() for key, value in classifier.model.state_dict().items()}
    torch.save(state, weights)
    card = ModelCard(
        name=name, architecture=architecture, dataset=dataset_info(dataset).name,
        nb_classes=classifier.nb_classes, eps=eps, weights=weights.name, sha256=sha256_file(weights),
        nb_parameters=count_parameters(classifier.model), model_options=dict(model_options or {}),
        metrics=metrics, training=training, seed=seed, versions=package_versions(),
    )
    card.save(folder / f"{name}.json")
    logger.info("Wrote %s and its card %s", weights, folder / f"{name}.json")
    return card


def teacher_fingerprint(teacher: PyTorchClassifier) -> str:
    """sha256 over the teacher's state dict: ranks and resumes check they distil from the same weights."""
    digest = hashlib.sha256()
    for name, tensor in teacher.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
