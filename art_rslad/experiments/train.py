"""One run that survives interruptions and leaves a self-explaining folder: the Python API under ``art-rslad train``.

:func:`train_run` trains one student with one method and evaluates its best and last checkpoints::

    from art_rslad.experiments.config import get_preset
    from art_rslad.experiments.train import RunSettings, train_run

    settings = RunSettings(train_size=10_000, test_size=200)
    result = train_run(get_preset("fashion-mnist"), "runs/rslad", "rslad", settings)
    print(result.accuracy["best"])

``method`` is a spec ``NAME[+igdm][+ema|+swa]`` (:mod:`art_rslad.experiments.variants`), trained with the config
:meth:`~art_rslad.experiments.config.Config.for_method` gives it (its per-method settings applied); every
network the method declares beside the student (a teacher, a peer it trains, ...) is built here from its registry
record. The folder's contents are listed in :mod:`art_rslad.experiments.folders`.
Every step resumes: ``RunSettings(resume=True)`` continues training from ``last.pt`` (an interrupted CPU run ends
with the same weights as an uninterrupted one) and skips finished evaluations and attacks. The folder is locked for
the whole run (:mod:`art_rslad.experiments.lock`).

Under torchrun (``torchrun --nproc-per-node N -m art_rslad train ...``, or a script calling these functions) every
rank trains and evaluates its shard and rank 0 alone writes the folder; see ``docs/distributed.md``.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
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

from art_rslad.checkpoint import RETRY_ADVICE, load_checkpoint, save_atomic, write_text_atomic
from art_rslad.data import load_dataset, make_data_generator, train_val_split
from art_rslad.distributed import World, check_agreement, current_world, on_main
from art_rslad.evaluation import DEFAULT_ATTACKS, evaluate_robustness_distributed
from art_rslad.evaluation.report import compact_path, finished_report, store_finished
from art_rslad.experiments.config import Config
from art_rslad.experiments.folders import (
    COMPACTED_FILES,
    FIGURES,
    RUN_FILES,
    RUN_FORMAT,
    RUN_STATES,
    RunResult,
    check_resumable,
    held,
    load_run,
    log_to,
    method_files,
    prepare_folder,
    results_text,
    write_json,
)
from art_rslad.experiments.networks import (
    build_trainer,
    load_config_teacher,
    load_sources,
    method_trainer_options,
    source_identity,
    trained_network_files,
)
from art_rslad.experiments.teachers import ModelCard, package_versions, sha256_file
from art_rslad.experiments.variants import MethodSpec, parse_method
from art_rslad.models import count_parameters, resolve_device
from art_rslad.report import build_table, plot_curves, plot_table_bars, settings_notes
from art_rslad.trainers.networks import network_weights
from art_rslad.trainers.registry import Method
from art_rslad.trainers.schedules import Scheduler, cosine_schedule, multistep_schedule

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class RunSettings:
    """How a run (or every run of a compare) is sized, evaluated and placed, besides its config and method.

    :param train_size: Train on the first this many images of the training split (None: all).
    :param val_size: Validation images attacked after each epoch to pick the best epoch (None: the whole split).
    :param test_size: Test images evaluated (the first ones of the test set); 0: none, the test set is not even
        loaded (``attacks`` cleared, accuracy empty, no ``eval_*`` report), for runs such as tuning's.
    :param attacks: Evaluation attacks (default: the paper's table, ``clean`` ... ``autoattack``).
    :param student_options: Options of the student architecture (e.g. ``{"width": 8}`` for ``cnn-small``).
    :param checkpoint_interval: Also write ``last.pt`` every this many batches (0: only at epoch ends).
    :param device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
    :param data_root: Dataset folder passed to :func:`art_rslad.data.load_dataset`.
    :param resume: Continue the run in the folder (training from ``last.pt``, then the missing evaluations); the
        folder must hold a run of the same method, config and settings.
    :param overwrite: Replace a run (or the files a run writes) already in the folder.
    :param verbose: Progress bars.
    :param tensorboard: Also write each epoch's record as TensorBoard events into ``<tensorboard>/<method>-seed-<seed>``
        (needs ``art-rslad[tensorboard]``; the shared loop's methods only). None: none.
    """

    train_size: int | None = None
    val_size: int | None = 1000
    test_size: int = 1000
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    student_options: Mapping[str, Any] = field(default_factory=dict)
    checkpoint_interval: int = 50
    device: str | None = None
    data_root: str | os.PathLike[str] | None = None
    resume: bool = False
    overwrite: bool = False
    verbose: bool = True
    tensorboard: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        for name in ("train_size", "val_size"):
            size = getattr(self, name)
            if size is not None and (isinstance(size, bool) or int(size) != size or size < 1):
                raise ValueError(f"`{name}` must be a positive integer or None (all), got {size!r}.")
        if isinstance(self.test_size, bool) or int(self.test_size) != self.test_size or self.test_size < 0:
            raise ValueError(f"`test_size` must be an integer >= 0 (0: no test evaluation), got {self.test_size!r}.")
        if self.checkpoint_interval < 0:
            raise ValueError(f"`checkpoint_interval` must be >= 0, got {self.checkpoint_interval}.")
        object.__setattr__(self, "attacks", tuple(self.attacks) if self.test_size else ())
        object.__setattr__(self, "student_options", dict(self.student_options))

    def recorded(self) -> dict[str, Any]:
        """The settings a run folder records in its identity (they change the numbers)."""
        return {"train_size": self.train_size, "val_size": self.val_size, "test_size": self.test_size,
                "attacks": list(self.attacks), "student_options": dict(self.student_options)}


def check_runs_here(method: str, world: World) -> None:
    """Refuse, before any folder is written, a method whose registry record says it runs in one process only
    under torchrun."""
    spec = parse_method(method)
    if world.is_distributed and not spec.method.distributed_ok:
        trained = ", ".join(net.name for net in spec.method.trained_networks)
        reason = f" (the gradients of its {trained} are not averaged over ranks)" if trained else ""
        raise ValueError(f"{spec.name} trains in one process only{reason}; start it without torchrun.")


# ---------------------------------------------------------------------- data
@dataclass
class _Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


#: (dataset, split, root) -> arrays, while a :func:`shared_datasets` block is active; None outside.
_DATASET_CACHE: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] | None = None


@contextlib.contextmanager
def shared_datasets() -> Iterator[None]:
    """Within the block each dataset split is read from disk once (a compare runs many runs on the same data)."""
    global _DATASET_CACHE
    outer = _DATASET_CACHE
    _DATASET_CACHE = {} if outer is None else outer
    try:
        yield
    finally:
        _DATASET_CACHE = outer


def _load_split(name: str, split: str, root: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray]:
    if _DATASET_CACHE is None:
        return load_dataset(name, split, root=root)
    key = (name, split, str(root))
    if key not in _DATASET_CACHE:
        _DATASET_CACHE[key] = load_dataset(name, split, root=root)
    return _DATASET_CACHE[key]


def _load_data(config: Config, settings: RunSettings) -> _Data:
    x, y = _load_split(config.dataset, "train", settings.data_root)
    x_train, y_train, x_val, y_val = train_val_split(x, y, config.val_fraction, config.seed)
    train, val, test = settings.train_size, settings.val_size, settings.test_size  # test 0: the split is not read
    x_test, y_test = _load_split(config.dataset, "test", settings.data_root) if test else (x[:0], y[:0])
    for name, asked, present in (("train_size", train, len(x_train)), ("val_size", val, len(x_val)),
                                 ("test_size", test, len(x_test))):
        if asked is not None and asked > present:
            logger.warning("`%s` %d is more than the %d images %s holds: all %d are used (run.json records the "
                           "number used as nb_%s).", name, asked, present, config.dataset, present, name.split("_")[0])
    return _Data(x_train[:train], y_train[:train], x_val[:val], y_val[:val], x_test[:test], y_test[:test])


def run_notes(config: Config, methods: Sequence[str], teacher_source: str | None, train_size: int | None,
              nb_test: int) -> list[str]:
    """The notes under a run's or a compare's table (:func:`art_rslad.report.settings_notes`), and one that lists
    the settings in which a method's config (:meth:`~art_rslad.experiments.config.Config.for_method`) differs."""
    drops = [config.cosine_start_for()] if config.lr_schedule == "cosine" else config.milestones_for()
    notes = settings_notes(config.to_dict(), drops, methods, teacher_source=teacher_source,
                           train_size=train_size, nb_test=nb_test, processes=current_world().size)
    own = {method: config.method_settings(method) for method in methods}
    if any(own.values()):
        notes.append("Per-method settings, in place of those above: " + "; ".join(
            f"{method} " + ", ".join(f"{key} {value}" for key, value in changes.items())
            for method, changes in own.items() if changes) + ".")
    return notes


# ---------------------------------------------------------------------- evaluation
def _finished_accuracy(report_path: Path, attacks: Sequence[str], nb_inputs: int) -> dict[str, float] | None:
    """The accuracy held by a finished report of ``attacks`` on ``nb_inputs`` inputs at ``report_path``, else None."""
    report = finished_report(report_path, attacks, nb_inputs)
    return None if report is None else {name: report.accuracy[name] for name in attacks}


def _evaluate(classifier: PyTorchClassifier, name: str, state: StateDict, data: _Data, config: Config,
              settings: RunSettings, report_path: Path, world: World) -> dict[str, float]:
    """Evaluate the weights ``state`` of checkpoint ``name`` on the test inputs into ``report_path``.

    In a distributed run the test inputs are sharded over the ranks (each attacks its own block, without state
    files) and rank 0 writes the merged report; a finished report already in ``report_path`` is reused as a whole.
    In a one-process run ``report_path`` is also the resume state, updated after each attack. The finished report
    is stored in its compact form beside it (``.npz``), which replaces the state.
    """
    classifier.model.load_state_dict(state)
    if world.is_distributed:
        finished = on_main(world, _finished_accuracy, report_path, settings.attacks, len(data.x_test))
        if finished is not None:
            logger.info("%s.pt: the evaluation in %s is finished; it is read back", name, report_path.name)
            return finished
    logger.info("Evaluating %s.pt on %d test images: %s", name, len(data.x_test), ", ".join(settings.attacks))
    report = evaluate_robustness_distributed(
        classifier, data.x_test, data.y_test, eps=config.eps, attacks=settings.attacks, batch_size=config.batch_size,
        seed=config.seed, state_path=None if world.is_distributed else report_path, verbose=settings.verbose)
    if world.is_distributed:  # the lines above are rank 0's block; these are all the inputs
        logger.info("%s.pt on all %d test images (%d processes): %s", name, len(data.x_test), world.size,
                    ", ".join(f"{attack} {100 * value:.2f}%" for attack, value in report.accuracy.items()))
    on_main(world, store_finished, report, report_path)
    return report.accuracy


def _evaluate_checkpoints(classifier: PyTorchClassifier, folder: Path, best: StateDict, last: StateDict,
                          data: _Data, config: Config, settings: RunSettings,
                          world: World) -> dict[str, dict[str, float]]:
    """Evaluate the best and last weights (held in memory): once when both are the same (the last epoch was the
    best), never when ``settings.test_size`` is 0."""
    if not settings.test_size:
        return {name: {} for name in ("best", "last")}
    accuracy = {"best": _evaluate(classifier, "best", best, data, config, settings, folder / "eval_best.json",
                                  world)}
    if best.keys() == last.keys() and all(torch.equal(best[key], last[key]) for key in best):
        logger.info("The last epoch is the best one: its evaluation is the best checkpoint's")
        on_main(world, shutil.copyfile, compact_path(folder / "eval_best.json"),
                compact_path(folder / "eval_last.json"))
        accuracy["last"] = dict(accuracy["best"])
    else:
        accuracy["last"] = _evaluate(classifier, "last", last, data, config, settings, folder / "eval_last.json",
                                     world)
    return accuracy


# ---------------------------------------------------------------------- the folder's bookkeeping
def _start_run(folder: Path, identity: dict[str, Any], config: Config, settings: RunSettings,
               method_settings: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Prepare ``folder`` and write run.json and config.toml (an unfinished run); return the run's marker and whether
    a last.pt is there to resume from. A finished run's folder is left as it is. ``method_settings`` (the keys in
    which the method's config differs from the run's config) is recorded beside the identity."""
    saved = prepare_folder(folder, "run.json", identity, resume=settings.resume, overwrite=settings.overwrite,
                           argument="out_dir", owned=(*RUN_FILES, *RUN_STATES, *method_files(), *COMPACTED_FILES))
    if saved is not None and saved.get("status") == "finished":
        return saved, True
    marker = saved or {"format": RUN_FORMAT, "identity": identity, "status": "training",
                       "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    marker.update(method_settings=dict(method_settings), status="training")
    write_json(folder / "run.json", marker)
    config.save(folder / "config.toml")
    return marker, (folder / "last.pt").is_file()


def _record_interruption(folder: Path, marker: dict[str, Any]) -> None:
    """Mark the run interrupted in run.json (its status, and when, beside earlier interruptions)."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    marker.update(status="interrupted", interruptions=[*marker.get("interruptions", []), now])
    write_json(folder / "run.json", marker)


def _finish_run(result: RunResult, classifier: PyTorchClassifier, best: StateDict, marker: dict[str, Any]) -> None:
    """Write the run's outputs (results.md, the student's weights and card, figures), then mark it finished."""
    folder = result.out_dir
    teacher = marker["identity"]["teacher"]
    table = build_table({result.method: {name: [accuracy] for name, accuracy in result.accuracy.items()}},
                        notes=run_notes(result.config, [result.method], teacher and teacher.get("source"),
                                        result.nb_train, result.nb_test)) if result.nb_test else None
    write_text_atomic(results_text(result, table), folder / "results.md")  # whole or not at all on a full disk
    save_atomic({key: value.cpu() for key, value in best.items()}, folder / "student.pt")
    for network in parse_method(result.method).method.trained_networks:  # at the best epoch, as best.pt holds it
        weights = network_weights(load_checkpoint(folder / "best.pt"), network.name)
        save_atomic({key: value.cpu() for key, value in weights.items()}, folder / network.file)
    _model_card(result, classifier, marker["identity"]).save(folder / "student.json")
    plot_curves({result.method: [result.history]}, folder / FIGURES / "robust_accuracy_per_epoch.png")
    if table is not None:
        plot_table_bars(table, folder / FIGURES / "accuracy_best.png", checkpoint="best")
    write_json(folder / "run.json", marker)


def _model_card(result: RunResult, classifier: PyTorchClassifier, identity: Mapping[str, Any]) -> ModelCard:
    """The card of the trained student (``student.pt``, the best checkpoint); its history names the run's
    metrics.jsonl rather than repeating it."""
    config = result.config
    return ModelCard(
        name=f"{config.dataset}-{config.student}-{result.method}-seed{config.seed}",
        architecture=config.student, dataset=config.dataset, nb_classes=classifier.nb_classes,
        eps=config.eps, weights="student.pt", sha256=sha256_file(result.out_dir / "student.pt"),
        nb_parameters=count_parameters(classifier.model), model_options=dict(identity["student_options"]),
        metrics={name: {"accuracy": accuracy, "nb_images": result.nb_test, "checkpoint": "best",
                        "command": "art_rslad.experiments.train.train_run (eval_best.npz)"}
                 for name, accuracy in result.accuracy["best"].items()},
        training={"method": result.method, "lr": config.lr_for(result.method), "best_epoch": result.best_epoch,
                  "best_by": "validation PGD-10 accuracy on a split held out of the training set",
                  "last_checkpoint_accuracy": result.accuracy["last"], "teacher": identity["teacher"],
                  "settings": {key: value for key, value in identity.items() if key not in ("config", "teacher")},
                  **trained_network_files(result.method),
                  "config": config.to_dict(), "history": "metrics.jsonl", "run_dir": str(result.out_dir)},
        seed=config.seed, versions=package_versions(),
    )


# ---------------------------------------------------------------------- training
def _run_identity(config: Config, spec: MethodSpec, settings: RunSettings,
                  trainer_options: Mapping[str, Any] | None, sources: Mapping[str, PyTorchClassifier]
                  ) -> dict[str, Any]:
    """What the run is: the folder records it and a resume must match it. ``config`` is the method's own
    (:meth:`~art_rslad.experiments.config.Config.for_method`) and the trainer options are all that reach the
    trainer, those its config switches on included; each network taken from a config source is named by its source
    and the sha256 of its weights."""
    return {"method": spec.name, "config": config.to_dict(), **settings.recorded(),
            "trainer_options": {**method_trainer_options(config), **(trainer_options or {})},
            "teacher": source_identity(config, "teacher", sources),
            **{start: source_identity(config, start, sources) for start in sources if start != "teacher"}}


def run_schedule(config: Config, optimizer: torch.optim.Optimizer, others: Sequence[torch.optim.Optimizer] = ()
                 ) -> Scheduler:
    """The config's lr schedule scaled to its epochs (``lr_schedule``: step or cosine), on the student's optimizer
    and the ``others`` of the networks a method trains beside it."""
    if config.lr_schedule == "cosine":
        return cosine_schedule(optimizer, config.cosine_start_for(), config.nb_epochs, others)
    return multistep_schedule(optimizer, config.milestones_for(), config.lr_gamma, others)


def _fit(trainer: Any, classifier: PyTorchClassifier, config: Config, data: _Data, folder: Path,
         resume_from: Path | None, checkpoint_interval: int, others: Sequence[torch.optim.Optimizer]) -> None:
    """Train with the config's scaled schedule (on every optimizer), writing best.pt and last.pt into ``folder``."""
    scheduler = run_schedule(config, classifier.optimizer, others)
    options = {"validation_data": (data.x_val, data.y_val), "nb_epochs": config.nb_epochs, "scheduler": scheduler,
               "checkpoint_dir": folder, "resume_from": resume_from, "checkpoint_interval": checkpoint_interval}
    try:
        if config.augmentation == "none":
            trainer.fit(data.x_train, data.y_train, batch_size=config.batch_size, **options)
        else:
            generator = make_data_generator(data.x_train, data.y_train, config.batch_size,
                                            augmentation=config.augmentation, seed=config.seed)
            trainer.fit_generator(generator, **options)
    except OSError as error:
        text, advice = error.strerror or str(error), "Free disk space and continue with resume=True."
        text = text.replace(RETRY_ADVICE, advice) if RETRY_ADVICE in text \
            else f"Writing a checkpoint into {folder} failed ({text}). {advice}"  # else: the writer's own says all
        raise OSError(error.errno or errno.EIO, text) from error


def _summary_folder(settings: RunSettings, name: str, seed: int, method: Method) -> str | None:
    """The run's TensorBoard folder (None: not asked, or an ART trainer, which records no events)."""
    if settings.tensorboard is None:
        return None
    if not method.shared_loop:
        logger.warning("%s runs ART's own trainer: no TensorBoard events for it", name)
        return None
    return os.fspath(Path(settings.tensorboard) / f"{name}-seed-{seed}")


def train_run(config: Config, out_dir: str | os.PathLike[str], method: str = "rslad",
              settings: RunSettings | None = None, *, teacher: PyTorchClassifier | None = None,
              trainer_options: Mapping[str, Any] | None = None) -> RunResult:
    """Train ``config.student`` with ``method``, keep best and last checkpoints, evaluate both on the test set.

    The run trains with ``config.for_method(method)``: the method's ``method_overrides`` applied and its spec's
    IGDM or weight averaging switched on; that config is what run.json and config.toml record. The learning rate
    is ``config.lr_for(method)`` (the preset's per-method lr; see docs/decisions.md, "Learning rate per method");
    the lr drops by ``lr_gamma`` at the milestones scaled to the method's ``nb_epochs``, or, with ``lr_schedule =
    "cosine"``, decays on CIARD's curve after its scaled ``lr_cosine_start`` (see docs/decisions.md, "Scaled
    schedules"). The weights evaluated are those the trainer holds at the end (last) and its
    ``best_state_dict`` (best), the same as ``last.pt`` and ``best.pt``. Each network the method declares is built
    from its registry record: a network it trains (PeerAiD's peer) gets its own optimizer, its lr follows the same
    schedule and its weights at the best epoch are saved under its name (``peer.pt``).

    :param config: Dataset, student, teacher source, optimiser, schedule, attack budget and seed.
    :param out_dir: The run folder (created; see :mod:`art_rslad.experiments.folders` for its contents).
    :param method: A method spec ``NAME[+igdm][+ema|+swa]`` over :data:`art_rslad.trainers.registry.METHODS`,
        e.g. ``"rslad"``, ``"sat"``, ``"rslad+igdm"``, ``"sat+ema"``.
    :param settings: Sizes, evaluation attacks, student options, device, resume or overwrite (:class:`RunSettings`).
    :param teacher: The teacher as a classifier; by default loaded from ``config.teacher.source`` for methods
        that distil (methods that do not distil never load one).
    :param trainer_options: Extra keyword arguments of the method's trainer (e.g. ``{"scale": 1.0}``).
    :raises FileExistsError: ``out_dir`` holds another run or other files and neither resume nor overwrite is set.
    :raises ValueError: A bad setting, an unwritable folder, or a resume with nothing (or another run) to resume.
    :raises OSError: A checkpoint could not be written (e.g. disk full); the previous checkpoint is intact.
    :raises art_rslad.experiments.lock.FolderBusyError: Another process holds ``out_dir`` (its lock is held for
        the whole run; see :func:`art_rslad.experiments.folders.held`).
    """
    settings = RunSettings() if settings is None else settings
    spec = parse_method(method)
    method_settings = config.method_settings(spec.name)
    config = config.for_method(spec.name)
    folder = Path(out_dir)
    world = current_world()  # joins torchrun's group first: on CUDA each rank then builds models on its own GPU
    check_runs_here(spec.name, world)
    device = resolve_device(settings.device)
    sources = load_sources(config, spec.method, teacher, device)
    identity = _run_identity(config, spec, settings, trainer_options, sources)
    check_agreement(world, identity)  # ranks started with other settings or teacher weights: nothing is written
    with held(world, folder):  # a second process on this folder is refused before anything in it changes
        return _train_held(config, spec, folder, identity, settings, method_settings, sources, device, world)


def _train_held(config: Config, spec: MethodSpec, folder: Path, identity: dict[str, Any], settings: RunSettings,
                method_settings: Mapping[str, Any], sources: Mapping[str, PyTorchClassifier], device: str,
                world: World) -> RunResult:
    """The body of :func:`train_run`, run while the folder's lock is held."""
    marker, has_last = on_main(world, _start_run, folder, identity, config, settings, method_settings)
    if marker.get("status") == "finished":
        logger.info("%s: the run is already finished; its results are read back", folder)
        return load_run(folder)

    with log_to(folder / "run.log") if world.is_main else contextlib.nullcontext():
        started = time.perf_counter()
        logger.info("%s run %s in %s (%s)", "Resuming" if settings.resume else "Starting", spec.name, folder,
                    device)
        data = _load_data(config, settings)
        summary_folder = _summary_folder(settings, spec.name, config.seed, spec.method)
        classifier, trainer, others = build_trainer(config, spec, identity, sources, device, settings.verbose,
                                                     summary_folder)
        resume_from = folder / "last.pt" if settings.resume and has_last else None  # every rank loads this file
        if resume_from is not None:
            check_resumable(resume_from)
        elif settings.resume:
            logger.info("No last.pt in %s yet: training starts from the first epoch", folder)
        try:
            _fit(trainer, classifier, config, data, folder, resume_from, settings.checkpoint_interval, others)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: last.pt is written; say so in run.json (no collective here)
            if world.is_main:
                _record_interruption(folder, marker)
            raise
        marker.update(status="evaluating", best_epoch=trainer.best_epoch)
        # Also the point where the other ranks wait for rank 0 to have written best.pt and last.pt.
        on_main(world, write_json, folder / "run.json", marker)

        last = {key: value.detach().clone() for key, value in classifier.model.state_dict().items()}
        best = trainer.best_state_dict
        accuracy = _evaluate_checkpoints(classifier, folder, best, last, data, config, settings, world)
        result = RunResult(folder, spec.name, config, trainer.history, trainer.best_epoch, accuracy,
                           len(data.x_test), len(data.x_train))
        marker.update(status="finished", accuracy=accuracy, nb_test=len(data.x_test), nb_train=len(data.x_train),
                      nb_val=len(data.x_val),
                      seconds_last_session=round(time.perf_counter() - started, 1))
        on_main(world, _finish_run, result, classifier, best, marker)
        logger.info("Finished %s in %s: best epoch %d; best checkpoint %s", spec.name, folder,
                    trainer.best_epoch, ", ".join(f"{k} {100 * v:.2f}%" for k, v in accuracy["best"].items())
                    or "not tested (test_size=0)")
    return result


__all__ = ["RunSettings", "check_runs_here", "load_config_teacher", "method_trainer_options",
           "run_notes", "shared_datasets", "train_run"]
