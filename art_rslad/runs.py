"""Runs that survive interruptions and leave a self-explaining folder: the Python API under ``art-rslad train``,
``compare`` and ``demo``.

:func:`train_run` trains one student with one method and evaluates its best and last checkpoints::

    from art_rslad.config import get_preset
    from art_rslad.runs import train_run, compare

    result = train_run(get_preset("fashion-mnist"), "runs/rslad", method="rslad")
    study = compare(get_preset("fashion-mnist"), ["sat", "rslad"], seeds=[0, 1, 2], out_dir="runs/study")
    print(study.table.to_markdown())

A run folder holds ``run.json`` (what the run is and how far it got), ``config.toml``, ``run.log``,
``metrics.jsonl`` (one JSON line per epoch), ``last.pt`` and ``best.pt`` (atomic, self-describing checkpoints;
"best" is the epoch with the highest PGD-10 accuracy on a validation split held out of the training set, never
the test set), ``eval_best.json`` and ``eval_last.json`` (robustness reports), ``results.md``, the trained
student ``student.pt`` (best checkpoint, plain state dict) with its model card ``student.json``, and
``figures/``. A compare folder holds ``compare.json``, one run folder per (method, seed) under ``runs/``,
``comparison.md`` / ``comparison.json`` (the paper's table, mean ± std over seeds) and ``figures/``.

Every step resumes: ``resume=True`` continues training from ``last.pt`` (an interrupted CPU run ends with the
same weights as an uninterrupted one), skips finished evaluations and attacks, and a compare reuses finished
(method, seed) runs.

Under torchrun (``torchrun --nproc-per-node N -m art_rslad train ...``, or a script calling these functions) every
rank trains and evaluates its shard and rank 0 alone writes the folders; see ``docs/distributed.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.checkpoint import load_checkpoint, write_text_atomic
from art_rslad.config import Config
from art_rslad.distributed import World, check_agreement, current_world, evaluate_robustness_distributed, on_main
from art_rslad.report import CHECKPOINTS, ComparisonTable, build_table, plot_curves, plot_table_bars

logger = logging.getLogger(__name__)

RUN_FORMAT = "art-rslad-run"
COMPARE_FORMAT = "art-rslad-compare"
#: Files a run writes into its folder (``overwrite=True`` removes exactly these, and ``figures/``).
RUN_FILES: tuple[str, ...] = ("run.json", "config.toml", "run.log", "metrics.jsonl", "last.pt", "best.pt",
                              "eval_best.json", "eval_last.json", "results.md", "student.pt", "student.json")
COMPARE_FILES: tuple[str, ...] = ("compare.json", "comparison.md", "comparison.json", "compare.log")
FIGURES = "figures"
RUNS = "runs"


# ---------------------------------------------------------------------- results
@dataclass
class RunResult:
    """What a finished :func:`train_run` produced (everything also lies in :attr:`out_dir`).

    :param out_dir: The run folder.
    :param method: Training method (a key of :data:`art_rslad.trainers.TRAINERS`).
    :param config: The run's configuration.
    :param history: Per-epoch records (loss, training accuracy, lr, validation clean and PGD-10 accuracy, seconds).
    :param best_epoch: The epoch (1-based) with the highest validation PGD-10 accuracy.
    :param accuracy: Checkpoint (``best``, ``last``) -> attack name -> test accuracy in [0, 1].
    :param nb_test: Number of test images evaluated.
    """

    out_dir: Path
    method: str
    config: Config
    history: list[dict[str, float]]
    best_epoch: int
    accuracy: dict[str, dict[str, float]]
    nb_test: int

    @property
    def checkpoints(self) -> dict[str, Path]:
        """Checkpoint name -> path of the self-describing training checkpoint."""
        return {name: self.out_dir / f"{name}.pt" for name in CHECKPOINTS}


@dataclass
class CompareResult:
    """What :func:`compare` produced.

    :param out_dir: The compare folder.
    :param runs: (method, seed) -> the run's result.
    :param table: The paper's table over methods and checkpoints, mean ± std over seeds.
    :param figures: Paths of the PNG figures.
    """

    out_dir: Path
    runs: dict[tuple[str, int], RunResult]
    table: ComparisonTable
    figures: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------- config overrides
def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``, the value read as JSON where it parses (numbers, lists, ``true``) and
    as a string otherwise."""
    key, separator, raw = text.partition("=")
    if not separator or not key.strip():
        raise ValueError(f"{text!r} must look like key=value, e.g. nb_epochs=2.")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """A copy of ``config`` with ``key=value`` overrides applied (dotted keys reach nested tables).

    Values are read by :func:`parse_assignment` and checked by :meth:`Config.from_dict`, so a wrong key or type
    raises a ValueError naming it. Examples: ``nb_epochs=2``, ``method_lr.rslad=0.1``,
    ``teacher.source=zoo:fashion-mnist-cnn-large``, ``lr_milestones=[100,150]``.
    """
    data = config.to_dict()
    for override in overrides:
        key, value = parse_assignment(override)
        *parents, leaf = key.split(".")
        table = data
        for parent in parents:
            if not isinstance(table.get(parent), dict):
                raise ValueError(f"Override {override!r}: `{parent}` is not a table of the config.")
            table = table[parent]
        table[leaf] = value
    return Config.from_dict(data)


# ---------------------------------------------------------------------- folder handling
def _check_writable(folder: Path, argument: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"`{argument}` {folder} cannot be written ({error.strerror or error}); choose another "
                         "folder or fix its permissions.") from error


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read as JSON ({error}); the folder does not hold a usable run.") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object.")
    return data


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(json.dumps(data, indent=2) + "\n", path)


def _differences(saved: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values, by dotted key."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        lines = []
        for key in sorted(set(saved) | set(wanted), key=str):
            lines += _differences(saved.get(key), wanted.get(key), f"{prefix}{key}.")
        return lines
    return [] if saved == wanted else [f"{prefix.rstrip('.')}: folder {saved!r}, now {wanted!r}"]


def _prepare_folder(folder: Path, marker: str, identity: dict[str, Any], *, resume: bool, overwrite: bool,
                    argument: str, owned: Sequence[str]) -> dict[str, Any] | None:
    """Make ``folder`` ready for a run described by ``identity``; return the saved marker when resuming.

    Refuses (FileExistsError) a folder that holds another run or other files unless ``overwrite``, and
    (ValueError) a resume with nothing to resume or a run that differs from ``identity``.
    """
    if resume and overwrite:
        raise ValueError("`resume` and `overwrite` exclude each other: resume continues the run in the folder, "
                         "overwrite deletes it.")
    _check_writable(folder, argument)
    marker_path = folder / marker
    if resume:
        if not marker_path.is_file():
            raise ValueError(f"Nothing to resume in {folder}: it holds no {marker}. Start the run without "
                             "--resume (resume=False).")
        saved = _read_json(marker_path)
        differences = _differences(saved.get("identity"), identity)
        if differences:
            raise ValueError(f"Cannot resume: {folder} holds a different run ("
                             + "; ".join(differences[:8]) + "). Use another folder, or --overwrite to replace it.")
        return saved
    existing = sorted(path.name for path in folder.iterdir() if not path.name.startswith(".write-test-"))
    if existing and not overwrite:
        what = "a run" if marker_path.is_file() else f"other files ({', '.join(existing[:5])})"
        raise FileExistsError(f"{folder} already holds {what}. Pass --resume (resume=True) to continue it, "
                              "--overwrite (overwrite=True) to replace it, or choose another folder.")
    if overwrite:
        for name in owned:
            (folder / name).unlink(missing_ok=True)
        for name in (FIGURES, RUNS):
            if (folder / name).is_dir():
                shutil.rmtree(folder / name)
    return None


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Copy the package's log records (INFO and above) into ``path`` for the duration of the block."""
    package_logger = logging.getLogger("art_rslad")
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous_level = package_logger.level
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    package_logger.addHandler(handler)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        handler.close()


# ---------------------------------------------------------------------- pieces of a run
def _trainer_class(method: str) -> type:
    from art_rslad.trainers.registry import METHODS

    TRAINERS = {name: entry.trainer for name, entry in METHODS.items()}

    key = method.lower()
    if key not in TRAINERS:
        raise ValueError(f"Unknown method {method!r}; known methods: {', '.join(sorted(TRAINERS))}.")
    return TRAINERS[key]


def load_config_teacher(config: Config, device: str | None = None) -> PyTorchClassifier:
    """The teacher named by ``config.teacher.source`` (see :func:`art_rslad.teachers.load_teacher`)."""
    from art_rslad.teachers import load_teacher

    if not config.teacher.source:
        raise ValueError("Config key `teacher.source` is empty but the method distils from a teacher: set it to "
                         "'zoo:<name>', 'robustbench:<name>' or a state-dict path (train one with "
                         "`art-rslad teacher`).")
    return load_teacher(config.teacher.source, config.dataset, model=config.teacher.model, device=device)


def _teacher_fingerprint(teacher: PyTorchClassifier) -> str:
    digest = hashlib.sha256()
    for name, tensor in teacher.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class _Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


#: (dataset, split, root) -> arrays, while a :func:`_shared_datasets` block is active; None outside.
_DATASET_CACHE: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] | None = None


@contextlib.contextmanager
def _shared_datasets() -> Iterator[None]:
    """Within the block each dataset split is read from disk once (a compare runs many runs on the same data)."""
    global _DATASET_CACHE
    outer = _DATASET_CACHE
    _DATASET_CACHE = {} if outer is None else outer
    try:
        yield
    finally:
        _DATASET_CACHE = outer


def _load_split(name: str, split: str, root: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray]:
    from art_rslad.data import load_dataset

    if _DATASET_CACHE is None:
        return load_dataset(name, split, root=root)
    key = (name, split, str(root))
    if key not in _DATASET_CACHE:
        _DATASET_CACHE[key] = load_dataset(name, split, root=root)
    return _DATASET_CACHE[key]


def _load_data(config: Config, train_size: int | None, val_size: int | None, test_size: int,
               data_root: str | os.PathLike[str] | None) -> _Data:
    from art_rslad.data import train_val_split

    x, y = _load_split(config.dataset, "train", data_root)
    x_train, y_train, x_val, y_val = train_val_split(x, y, config.val_fraction, config.seed)
    x_test, y_test = _load_split(config.dataset, "test", data_root)
    return _Data(x_train[:train_size], y_train[:train_size], x_val[:val_size], y_val[:val_size],
                 x_test[:test_size], y_test[:test_size])


def _check_sizes(**sizes: int | None) -> None:
    for name, size in sizes.items():
        if size is not None and (isinstance(size, bool) or int(size) != size or size < 1):
            raise ValueError(f"`{name}` must be a positive integer or None (all), got {size!r}.")


def _run_identity(config: Config, method: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    return {"method": method, "config": config.to_dict(), **settings}


def _finished_accuracy(report_path: Path, attacks: Sequence[str], nb_inputs: int) -> dict[str, float] | None:
    """The accuracy held by a finished report of ``attacks`` on ``nb_inputs`` inputs at ``report_path``, else None."""
    from art_rslad.evaluation import RobustnessReport

    if not report_path.is_file():
        return None
    report = RobustnessReport.from_json(report_path)
    if report.n_inputs != nb_inputs or any(name not in report.correct for name in attacks):
        return None
    return {name: report.accuracy[name] for name in attacks}


def _evaluate(classifier: PyTorchClassifier, checkpoint: Path, data: _Data, config: Config,
              attacks: Sequence[str], report_path: Path, verbose: bool, world: World) -> dict[str, float]:
    """Evaluate ``checkpoint`` on the test inputs into ``report_path``.

    In a distributed run the test inputs are sharded over the ranks (each attacks its own block, without state
    files) and rank 0 writes the merged report; a finished report already in ``report_path`` is reused as a whole.
    In a one-process run ``report_path`` is also the resume state, updated after each attack.
    """
    state = load_checkpoint(checkpoint, map_location=classifier.device)["model_state"]
    classifier.model.load_state_dict(state)
    if world.is_distributed:
        finished = on_main(world, _finished_accuracy, report_path, attacks, len(data.x_test))
        if finished is not None:
            logger.info("%s: the evaluation in %s is finished; it is read back", checkpoint.name, report_path.name)
            return finished
    logger.info("Evaluating %s on %d test images: %s", checkpoint.name, len(data.x_test), ", ".join(attacks))
    report = evaluate_robustness_distributed(
        classifier, data.x_test, data.y_test, eps=config.eps, attacks=tuple(attacks), batch_size=config.batch_size,
        seed=config.seed, state_path=None if world.is_distributed else report_path, verbose=verbose)
    if world.is_distributed:  # the lines above are rank 0's block; these are all the inputs
        logger.info("%s on all %d test images (%d processes): %s", checkpoint.name, len(data.x_test), world.size,
                    ", ".join(f"{name} {100 * value:.2f}%" for name, value in report.accuracy.items()))
        on_main(world, report.to_json, report_path)
    return report.accuracy


def _evaluate_checkpoints(classifier: PyTorchClassifier, folder: Path, data: _Data, config: Config,
                          attacks: Sequence[str], verbose: bool, world: World) -> dict[str, dict[str, float]]:
    """Evaluate best.pt and last.pt; when both hold the same weights (the last epoch was the best) once."""
    accuracy = {"best": _evaluate(classifier, folder / "best.pt", data, config, attacks, folder / "eval_best.json",
                                  verbose, world)}
    best, last = (load_checkpoint(folder / f"{name}.pt")["model_state"] for name in CHECKPOINTS)
    if best.keys() == last.keys() and all(torch.equal(best[key], last[key]) for key in best):
        logger.info("The last epoch is the best one: its evaluation is the best checkpoint's")
        on_main(world, shutil.copyfile, folder / "eval_best.json", folder / "eval_last.json")
        accuracy["last"] = dict(accuracy["best"])
    else:
        accuracy["last"] = _evaluate(classifier, folder / "last.pt", data, config, attacks, folder / "eval_last.json",
                                     verbose, world)
    return accuracy


def _start_run(folder: Path, identity: dict[str, Any], config: Config, resume: bool,
               overwrite: bool) -> tuple[dict[str, Any], bool]:
    """Prepare ``folder`` and write run.json and config.toml (an unfinished run); return the run's marker and whether
    a last.pt is there to resume from. A finished run's folder is left as it is."""
    saved = _prepare_folder(folder, "run.json", identity, resume=resume, overwrite=overwrite,
                            argument="out_dir", owned=RUN_FILES)
    if saved is not None and saved.get("status") == "finished":
        return saved, True
    marker = saved or {"format": RUN_FORMAT, "identity": identity, "status": "training",
                       "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    _write_json(folder / "run.json", marker)
    config.save(folder / "config.toml")
    return marker, (folder / "last.pt").is_file()


def _finish_run(result: RunResult, classifier: PyTorchClassifier, marker: dict[str, Any]) -> None:
    """Write the run's outputs, then mark it finished in run.json."""
    _write_run_outputs(result, classifier, marker)
    _write_json(result.out_dir / "run.json", marker)


def _write_run_outputs(result: RunResult, classifier: PyTorchClassifier, marker: dict[str, Any]) -> None:
    """results.md, the student's weights and model card, and the run's figures."""
    from art_rslad.models import count_parameters
    from art_rslad.teachers import ModelCard, package_versions, sha256_file

    folder = result.out_dir
    table = build_table({result.method: {name: [accuracy] for name, accuracy in result.accuracy.items()}},
                        notes=_notes(result.config, [result.method], marker["identity"], result.nb_test))
    (folder / "results.md").write_text(table.to_markdown(), encoding="utf-8")
    best = load_checkpoint(folder / "best.pt")["model_state"]
    torch.save({key: value.cpu() for key, value in best.items()}, folder / "student.pt")
    identity = marker["identity"]
    card = ModelCard(
        name=f"{result.config.dataset}-{result.config.student}-{result.method}-seed{result.config.seed}",
        architecture=result.config.student, dataset=result.config.dataset, nb_classes=classifier.nb_classes,
        eps=result.config.eps, weights="student.pt", sha256=sha256_file(folder / "student.pt"),
        nb_parameters=count_parameters(classifier.model), model_options=dict(identity["student_options"]),
        metrics={name: {"accuracy": accuracy, "nb_images": result.nb_test, "checkpoint": "best",
                        "command": "art_rslad.runs.train_run (eval_best.json)"}
                 for name, accuracy in result.accuracy["best"].items()},
        training={"method": result.method, "lr": result.config.lr_for(result.method), "best_epoch": result.best_epoch,
                  "best_by": "validation PGD-10 accuracy on a split held out of the training set",
                  "last_checkpoint_accuracy": result.accuracy["last"], "teacher": identity["teacher"],
                  "settings": {key: value for key, value in identity.items() if key not in ("config", "teacher")},
                  "config": result.config.to_dict(), "history": result.history, "run_dir": str(folder)},
        seed=result.config.seed, versions=package_versions(),
    )
    card.save(folder / "student.json")
    plot_curves({result.method: [result.history]}, folder / FIGURES / "robust_accuracy_per_epoch.png")
    plot_table_bars(table, folder / FIGURES / "accuracy_best.png", checkpoint="best")


def _notes(config: Config, methods: Sequence[str], settings: Mapping[str, Any], nb_test: int) -> list[str]:
    teacher = settings.get("teacher") or {}
    world = current_world()
    batch = f"{config.batch_size}" + (f" per process x {world.size} processes" if world.is_distributed else "")
    lines = [
        f"Accuracy (%) on the first {nb_test} {config.dataset} test images, L-inf eps {config.eps:.4g}. "
        f"Student {config.student}; teacher {teacher.get('source') or 'none'}; {config.nb_epochs} epochs, batch "
        f"{batch}, SGD momentum {config.momentum}, weight decay {config.weight_decay}, lr x"
        f"{config.lr_gamma} after epochs {config.milestones_for()}; training PGD eps_step {config.eps_step:.4g}, "
        f"{config.max_iter} steps; {settings.get('train_size') or 'all'} training images.",
        "Learning rate per method: " + ", ".join(
            f"{m} {config.lr_for(m):g}" + ("" if m in config.method_lr else " (the config's lr; not in method_lr)")
            for m in methods)
        + (f" ({config.method_lr_note})" if config.method_lr_note else "") + ".",
        "best = the epoch with the highest PGD-10 accuracy on a validation split held out of the training set "
        "(never the test set); last = the final epoch.",
    ]
    return lines


def _training_time_note(histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]]) -> str:
    """Mean training seconds per epoch of each method (validation and checkpoints excluded), over epochs and seeds."""
    def mean_seconds(runs: Sequence[Sequence[Mapping[str, float]]]) -> float:
        values = [record.get("train_seconds", record["seconds"]) for history in runs for record in history]
        return float(np.mean(values)) if values else float("nan")

    return "Training seconds per epoch (mean over epochs and seeds; validation excluded): " + ", ".join(
        f"{method} {mean_seconds(runs):.1f}" for method, runs in histories.items()) + "."


def _fixed_by_art_notes(methods: Sequence[str]) -> list[str]:
    """What each of ART's own trainers fixes itself and so ignores of the shared settings (design decision 10)."""
    from art_rslad.trainers.registry import METHODS

    TRAINERS = {name: entry.trainer for name, entry in METHODS.items()}

    notes = []
    for method in methods:
        fixed = getattr(TRAINERS[method], "fixed_settings", None)
        if fixed:
            notes.append(f"{method} runs as ART designed it: " + "; ".join(f"{key}: {why}" for key, why in
                                                                          fixed.items()) + ".")
    return notes


# ---------------------------------------------------------------------- train_run
def train_run(
    config: Config,
    out_dir: str | os.PathLike[str],
    *,
    method: str = "rslad",
    resume: bool = False,
    overwrite: bool = False,
    teacher: PyTorchClassifier | None = None,
    train_size: int | None = None,
    val_size: int | None = 1000,
    test_size: int = 1000,
    attacks: Sequence[str] | None = None,
    student_options: Mapping[str, Any] | None = None,
    trainer_options: Mapping[str, Any] | None = None,
    checkpoint_interval: int = 50,
    device: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> RunResult:
    """Train ``config.student`` with ``method``, keep best and last checkpoints, evaluate both on the test set.

    The learning rate is ``config.lr_for(method)`` (the preset's per-method lr, design decision 1); the lr drops
    by ``config.lr_gamma`` at the paper's milestones scaled to ``config.nb_epochs`` (design decision 5).

    :param config: Dataset, student, teacher source, optimiser, schedule, attack budget and seed.
    :param out_dir: The run folder (created; see the module docstring for its contents).
    :param method: A key of :data:`art_rslad.trainers.TRAINERS`, e.g. ``"rslad"``, ``"sat"``, ``"trades"``.
    :param resume: Continue the run in ``out_dir`` (training from ``last.pt``, then the missing evaluations);
        the folder must hold a run of the same method, config and settings.
    :param overwrite: Replace a run (or the files a run writes) already in ``out_dir``.
    :param teacher: The teacher as a classifier; by default loaded from ``config.teacher.source`` for methods
        that distil (methods that do not distil ignore it).
    :param train_size: Train on the first this many images of the training split (None: all).
    :param val_size: Validation images attacked after each epoch to pick the best epoch (None: the whole split).
    :param test_size: Test images evaluated (the first ones of the test set).
    :param attacks: Evaluation attacks (default: the paper's table, ``clean`` ... ``autoattack``).
    :param student_options: Options of the student architecture (e.g. ``{"width": 8}`` for ``cnn-small``).
    :param trainer_options: Extra keyword arguments of the method's trainer (e.g. ``{"scale": 1.0}``).
    :param checkpoint_interval: Also write ``last.pt`` every this many batches (0: only at epoch ends).
    :param device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
    :param data_root: Dataset folder passed to :func:`art_rslad.data.load_dataset`.
    :param verbose: Progress bars.
    :raises FileExistsError: ``out_dir`` holds another run or other files and neither resume nor overwrite is set.
    :raises ValueError: A bad setting, an unwritable folder, or a resume with nothing (or another run) to resume.
    :raises OSError: A checkpoint could not be written (e.g. disk full); the previous checkpoint is intact.
    """
    from art_rslad.data import dataset_info
    from art_rslad.evaluation import DEFAULT_ATTACKS
    from art_rslad.models import create_model, make_classifier, resolve_device

    trainer_class = _trainer_class(method)
    method = method.lower()
    _check_sizes(train_size=train_size, val_size=val_size, test_size=test_size)
    if checkpoint_interval < 0:
        raise ValueError(f"`checkpoint_interval` must be >= 0, got {checkpoint_interval}.")
    attacks = tuple(DEFAULT_ATTACKS if attacks is None else attacks)
    folder = Path(out_dir)
    world = current_world()  # joins torchrun's group first: on CUDA each rank then builds models on its own GPU
    resolved_device = resolve_device(device)
    if trainer_class.needs_teacher and teacher is None:
        teacher = load_config_teacher(config, resolved_device)
    teacher_identity = None if not trainer_class.needs_teacher or teacher is None else {
        "source": config.teacher.source, "sha256_of_weights": _teacher_fingerprint(teacher)}
    settings = {"train_size": train_size, "val_size": val_size, "test_size": test_size, "attacks": list(attacks),
                "student_options": dict(student_options or {}), "trainer_options": dict(trainer_options or {}),
                "teacher": teacher_identity}
    identity = _run_identity(config, method, settings)
    check_agreement(world, identity)  # ranks started with other settings or teacher weights: nothing is written
    marker, has_last = on_main(world, _start_run, folder, identity, config, resume, overwrite)
    if marker.get("status") == "finished":
        logger.info("%s: the run is already finished; its results are read back", folder)
        return load_run(folder)

    with _log_to(folder / "run.log") if world.is_main else contextlib.nullcontext():
        started = time.perf_counter()
        logger.info("%s run %s in %s (%s)", "Resuming" if resume else "Starting", method, folder, resolved_device)
        data = _load_data(config, train_size, val_size, test_size, data_root)
        info = dataset_info(config.dataset)
        torch.manual_seed(config.seed)
        model = create_model(config.student, info.nb_classes, input_shape=info.input_shape,
                             **settings["student_options"])
        classifier = make_classifier(model, config.dataset, lr=config.lr_for(method), momentum=config.momentum,
                                     weight_decay=config.weight_decay, device=resolved_device)
        teacher_argument = {"teacher": teacher} if trainer_class.needs_teacher else {}
        trainer = trainer_class(classifier, **teacher_argument, eps=config.eps, eps_step=config.eps_step,
                                max_iter=config.max_iter, seed=config.seed, verbose=verbose,
                                **settings["trainer_options"])
        scheduler = torch.optim.lr_scheduler.MultiStepLR(classifier.optimizer, config.milestones_for(),
                                                         gamma=config.lr_gamma)
        resume_from = folder / "last.pt" if resume and has_last else None  # every rank loads the same file
        if resume and resume_from is None:
            logger.info("No last.pt in %s yet: training starts from the first epoch", folder)
        options = {"validation_data": (data.x_val, data.y_val), "nb_epochs": config.nb_epochs,
                   "scheduler": scheduler, "checkpoint_dir": folder, "resume_from": resume_from,
                   "checkpoint_interval": checkpoint_interval}
        try:
            if config.augmentation == "none":
                trainer.fit(data.x_train, data.y_train, batch_size=config.batch_size, **options)
            else:
                from art_rslad.data import make_data_generator

                generator = make_data_generator(data.x_train, data.y_train, config.batch_size,
                                                augmentation=config.augmentation, seed=config.seed)
                trainer.fit_generator(generator, **options)
        except OSError as error:
            raise OSError(error.errno or errno.EIO, f"Writing a checkpoint into {folder} failed ({error}); the "
                          "previous last.pt and best.pt are intact. Free disk space and continue with --resume "
                          "(resume=True).") from error
        marker.update(status="evaluating", best_epoch=trainer.best_epoch)
        # Also the point where the other ranks wait for rank 0 to have written best.pt and last.pt.
        on_main(world, _write_json, folder / "run.json", marker)

        accuracy = _evaluate_checkpoints(classifier, folder, data, config, attacks, verbose, world)
        result = RunResult(folder, method, config, trainer.history, trainer.best_epoch, accuracy, len(data.x_test))
        marker.update(status="finished", accuracy=accuracy, nb_test=len(data.x_test),
                      seconds_last_session=round(time.perf_counter() - started, 1))
        on_main(world, _finish_run, result, classifier, marker)
        logger.info("Finished %s in %s: best epoch %d; best checkpoint %s", method, folder, trainer.best_epoch,
                    ", ".join(f"{k} {100 * v:.2f}%" for k, v in accuracy["best"].items()))
    return result


def load_run(out_dir: str | os.PathLike[str]) -> RunResult:
    """Read a finished run back from its folder (no model is loaded)."""
    folder = Path(out_dir)
    marker = _read_json(folder / "run.json")
    if marker.get("format") != RUN_FORMAT:
        raise ValueError(f"{folder / 'run.json'} is not an art-rslad run marker.")
    if marker.get("status") != "finished":
        raise ValueError(f"The run in {folder} is not finished (status {marker.get('status')!r}); continue it "
                         "with resume=True.")
    identity = marker["identity"]
    history = [json.loads(line) for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()]
    return RunResult(folder, identity["method"], Config.from_dict(identity["config"]), history,
                     int(marker["best_epoch"]), marker["accuracy"], int(marker["nb_test"]))


# ---------------------------------------------------------------------- compare
def compare(
    config: Config,
    methods: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    seeds: Sequence[int] = (0,),
    resume: bool = False,
    overwrite: bool = False,
    teacher: PyTorchClassifier | None = None,
    train_size: int | None = None,
    val_size: int | None = 1000,
    test_size: int = 1000,
    attacks: Sequence[str] | None = None,
    student_options: Mapping[str, Any] | None = None,
    checkpoint_interval: int = 50,
    device: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> CompareResult:
    """Train and evaluate every (method, seed) with the same teacher, student, data and budget; tabulate.

    Each run is a :func:`train_run` in ``out_dir/runs/<method>/seed-<seed>`` with ``config.seed`` set to the seed
    and the method's lr from the preset. ``resume=True`` continues a compare whose process died: finished runs
    are read back, unfinished ones resume from their checkpoints and saved evaluations; methods and seeds may be
    added on resume, the other settings must match.

    :param config: Shared settings (its ``seed`` is replaced by each of ``seeds``).
    :param methods: Keys of :data:`art_rslad.trainers.TRAINERS`, e.g. ``["sat", "trades", "rslad"]``.
    :param out_dir: The compare folder.
    :param seeds: Seeds; the table shows mean ± std over them.
    :param resume: Continue the compare in ``out_dir``.
    :param overwrite: Replace what ``out_dir`` holds.
    :param teacher: The teacher (default: loaded once from ``config.teacher.source`` when a method needs one).
    :param train_size: Training images per run (None: all).
    :param val_size: Validation images attacked per epoch (None: the whole split).
    :param test_size: Test images evaluated.
    :param attacks: Evaluation attacks (default: the paper's table).
    :param student_options: Options of the student architecture.
    :param checkpoint_interval: ``last.pt`` every this many batches as well as at epoch ends.
    :param device: ``"cpu"``, ``"cuda"`` or None.
    :param data_root: Dataset folder.
    :param verbose: Progress bars.
    """
    from art_rslad.evaluation import DEFAULT_ATTACKS
    from art_rslad.trainers.registry import METHODS as TRAINERS

    methods = [method.lower() for method in methods]
    unknown = [method for method in methods if method not in TRAINERS]
    if unknown or not methods:
        raise ValueError(f"`methods`: unknown or no methods {unknown}; known methods: {', '.join(sorted(TRAINERS))}.")
    if len(set(methods)) != len(methods):
        raise ValueError(f"`methods` lists a method twice: {methods}.")
    seeds = [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` must be a non-empty list of distinct integers, got {seeds}.")
    attacks = tuple(DEFAULT_ATTACKS if attacks is None else attacks)
    folder = Path(out_dir)
    shared = {"config": dataclasses.replace(config, seed=0).to_dict(), "train_size": train_size,
              "val_size": val_size, "test_size": test_size, "attacks": list(attacks),
              "student_options": dict(student_options or {}), "teacher_source": config.teacher.source}
    world = current_world()  # joins torchrun's group first: on CUDA each rank then builds models on its own GPU
    if teacher is None and any(TRAINERS[method].needs_teacher for method in methods):
        teacher = load_config_teacher(config, device)
    if world.is_distributed:  # ranks started with other settings or teacher weights: nothing is written
        check_agreement(world, {**shared, "teacher": None if teacher is None else _teacher_fingerprint(teacher)})
    started = on_main(world, _start_compare, folder, shared, methods, seeds, resume, overwrite)
    runs: dict[tuple[str, int], RunResult] = {}
    with _log_to(folder / "compare.log") if world.is_main else contextlib.nullcontext(), _shared_datasets():
        for seed in seeds:
            for method in methods:
                run_dir = folder / RUNS / method / f"seed-{seed}"
                logger.info("compare: %s, seed %d -> %s", method, seed, run_dir)
                runs[(method, seed)] = train_run(
                    dataclasses.replace(config, seed=seed), run_dir, method=method,
                    resume=(method, seed) in started, teacher=teacher, train_size=train_size,
                    val_size=val_size, test_size=test_size, attacks=attacks, student_options=student_options,
                    checkpoint_interval=checkpoint_interval, device=device, data_root=data_root, verbose=verbose,
                )
        table = build_table(
            {method: {name: [runs[(method, seed)].accuracy[name] for seed in seeds] for name in CHECKPOINTS}
             for method in methods},
            attacks=attacks,
            notes=[*_notes(config, methods, {**shared, "teacher": {"source": config.teacher.source}},
                           min(result.nb_test for result in runs.values())),
                   f"Seeds: {', '.join(map(str, seeds))}; mean ± sample std over seeds.",
                   _training_time_note({method: [runs[(method, seed)].history for seed in seeds]
                                        for method in methods}),
                   *_fixed_by_art_notes(methods)],
        )
        figures = on_main(world, _write_comparison, folder, table,
                          {method: [runs[(method, seed)].history for seed in seeds] for method in methods})
        logger.info("Comparison written to %s", folder / "comparison.md")
    return CompareResult(folder, runs, table, figures)


def _start_compare(folder: Path, shared: dict[str, Any], methods: Sequence[str], seeds: Sequence[int], resume: bool,
                   overwrite: bool) -> set[tuple[str, int]]:
    """Prepare the compare ``folder`` and write compare.json; return the (method, seed) pairs whose run folder
    already holds a run (they resume)."""
    saved = _prepare_folder(folder, "compare.json", shared, resume=resume, overwrite=overwrite, argument="out_dir",
                            owned=COMPARE_FILES)
    _write_json(folder / "compare.json", {"format": COMPARE_FORMAT, "identity": shared,
                                          "methods": list(dict.fromkeys([*(saved or {}).get("methods", []),
                                                                         *methods])),
                                          "seeds": sorted({*(saved or {}).get("seeds", []), *seeds})})
    return {(method, seed) for method in methods for seed in seeds
            if (folder / RUNS / method / f"seed-{seed}" / "run.json").is_file()}


def _write_comparison(folder: Path, table: ComparisonTable,
                      histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]]) -> list[Path]:
    """comparison.md / .json and the compare's figures; return the figures' paths."""
    table.save(folder, "comparison")
    return [plot_curves(histories, folder / FIGURES / "robust_accuracy_per_epoch.png"),
            *(plot_table_bars(table, folder / FIGURES / f"final_table_{name}.png", checkpoint=name)
              for name in CHECKPOINTS)]


# ---------------------------------------------------------------------- demo
#: The methods the demo distils and trains: the paper's method and its plain adversarial-training baseline.
DEMO_METHODS: tuple[str, ...] = ("sat", "rslad")


def demo_teacher(
    config: Config,
    out_dir: str | os.PathLike[str],
    *,
    train_size: int = 10_000,
    nb_epochs: int = 5,
    val_size: int = 500,
    test_size: int = 200,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    verbose: bool = True,
) -> tuple[PyTorchClassifier, str]:
    """The demo's teacher: the shipped model named by ``config.teacher.source`` when it is in the zoo, otherwise a
    quick one trained here (``config.teacher.method`` on the first ``train_size`` images, ``nb_epochs`` epochs) as a
    run in ``out_dir`` (validated on ``val_size`` images, evaluated clean and under PGD_SAT on ``test_size``).

    :return: The teacher and its source (the zoo name, or the path of the trained weights with their card).
    """
    from art_rslad.teachers import list_zoo, load_teacher

    source = config.teacher.source
    if source.startswith("zoo:") and source[len("zoo:"):] in list_zoo():
        logger.info("Teacher: the shipped %s", source)
        return load_teacher(source, config.dataset, device=device), source
    logger.info("No shipped teacher %r here: training a quick %s teacher (%s, %d images, %d epochs) in %s",
                source, config.teacher.method, config.teacher.model, train_size, nb_epochs, out_dir)
    teacher_config = dataclasses.replace(config, student=config.teacher.model, nb_epochs=nb_epochs,
                                         method_lr={config.teacher.method: config.teacher.lr})
    options = {"beta": config.teacher.beta} if config.teacher.method == "trades" else {}
    folder = Path(out_dir)
    result = train_run(teacher_config, folder, method=config.teacher.method,
                       resume=resume and (folder / "run.json").is_file(), overwrite=overwrite,
                       train_size=train_size, val_size=val_size, test_size=test_size, attacks=("clean", "pgd_sat"),
                       trainer_options=options, device=device, verbose=verbose)
    weights = result.out_dir / "student.pt"
    return load_teacher(str(weights), config.dataset, device=device), str(weights)


def demo(
    out_dir: str | os.PathLike[str] = "art-rslad-demo",
    *,
    train_size: int = 10_000,
    nb_epochs: int = 5,
    val_size: int = 500,
    test_size: int = 200,
    teacher_train_size: int = 10_000,
    teacher_nb_epochs: int = 5,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    verbose: bool = True,
) -> CompareResult:
    """The README's demo: on Fashion-MNIST, distil an RSLAD student and train a SAT student from the same start,
    then evaluate both checkpoints of each under every white-box attack of the paper, AutoAttack included.

    Uses the ``fashion-mnist`` preset (its per-method learning rates) with ``nb_epochs`` epochs on the first
    ``train_size`` training images, the shipped teacher (or a quick one, see :func:`demo_teacher`), and the first
    ``test_size`` test images. The compare lands in ``out_dir/compare`` (table and figures), a trained teacher in
    ``out_dir/teacher`` (``teacher_train_size`` images, ``teacher_nb_epochs`` epochs; only without a shipped one).
    """
    from art_rslad.config import get_preset

    folder = Path(out_dir)
    config = dataclasses.replace(get_preset("fashion-mnist"), nb_epochs=nb_epochs)
    with _shared_datasets():
        teacher, source = demo_teacher(config, folder / "teacher", train_size=teacher_train_size,
                                       nb_epochs=teacher_nb_epochs, val_size=val_size, test_size=test_size,
                                       resume=resume, overwrite=overwrite, device=device, verbose=verbose)
        config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, source=source))
        compare_dir = folder / "compare"
        return compare(config, DEMO_METHODS, compare_dir, seeds=[config.seed],
                       resume=resume and (compare_dir / "compare.json").is_file(), overwrite=overwrite,
                       teacher=teacher, train_size=train_size, val_size=val_size, test_size=test_size,
                       device=device, verbose=verbose)
