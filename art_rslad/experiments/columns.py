"""The columns of a compare's table that a run's own evaluation does not give: transfer attacks and the worst class.

A run (:func:`~art_rslad.experiments.train.train_run`) evaluates its best and last checkpoints under the attacks
that need only the student, the query-based ``square`` included. The transfer attacks (``transfer_pgd``,
``transfer_cw``) are crafted on a robust surrogate of another architecture (the paper uses a robust ResNet-50),
which a compare loads once from the config's ``transfer_surrogate`` and passes here: each finished run's
checkpoints are attacked into ``eval_<checkpoint>_transfer.npz`` beside the run's own reports, and a compare that
resumes reads finished ones back. The worst class of a checkpoint is read from the run's own report
(:attr:`~art_rslad.evaluation.RobustnessReport.worst_class`); reports written before they kept the inputs' labels
have none.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from art.estimators.classification import PyTorchClassifier

from art_rslad.data import dataset_info, load_dataset
from art_rslad.distributed import World, on_main
from art_rslad.evaluation import ATTACKS, RobustnessReport, evaluate_robustness_distributed
from art_rslad.evaluation.report import finished_report, store_finished, stored_report
from art_rslad.experiments.config import Config
from art_rslad.experiments.folders import RunResult, checkpoint_weights
from art_rslad.experiments.teachers import load_teacher
from art_rslad.experiments.train import RunSettings
from art_rslad.models import create_model, make_classifier
from art_rslad.report import CHECKPOINTS

logger = logging.getLogger(__name__)

Value = TypeVar("Value")
RunKey = tuple[str, int]


@dataclass
class TableColumns:
    """What a compare's table shows of each (method, seed) run.

    :param accuracy: Run -> checkpoint -> attack -> accuracy in [0, 1] (the run's own and the transfer attacks).
    :param worst_class: Run -> checkpoint -> lowest per-class accuracy under :attr:`worst_class_attack`, or None.
    :param worst_class_attack: The attack of the worst-class column.
    """

    accuracy: dict[RunKey, dict[str, dict[str, float]]]
    worst_class: dict[RunKey, dict[str, float | None]]
    worst_class_attack: str


def transfer_attacks(attacks: Sequence[str]) -> tuple[str, ...]:
    """The attacks of ``attacks`` that are crafted on a surrogate (kind ``transfer``)."""
    return tuple(name for name in attacks if name in ATTACKS and ATTACKS[name].kind == "transfer")


def run_settings_without_transfer(settings: RunSettings) -> RunSettings:
    """``settings`` with the transfer attacks left out: what each run evaluates itself."""
    transfer = transfer_attacks(settings.attacks)
    return dataclasses.replace(settings, attacks=tuple(name for name in settings.attacks if name not in transfer))


def load_surrogate(config: Config, attacks: Sequence[str], device: str | None = None) -> PyTorchClassifier | None:
    """The config's ``transfer_surrogate`` as a classifier when ``attacks`` hold transfer attacks, else None.

    :raises ValueError: When transfer attacks are asked for and the config names no surrogate.
    """
    transfer = transfer_attacks(attacks)
    if not transfer:
        return None
    if not config.transfer_surrogate:
        raise ValueError(f"The attacks {list(transfer)} are crafted on a surrogate, but config key "
                         "`transfer_surrogate` is empty: set it to 'zoo:<name>', 'robustbench:<name>' or a "
                         "state-dict path (e.g. --set transfer_surrogate=zoo:fashion-mnist-cnn-pool), or drop them.")
    logger.info("Transfer surrogate: %s", config.transfer_surrogate)
    return load_teacher(config.transfer_surrogate, config.dataset, device=device)


def read_report(path: Path) -> RobustnessReport | None:
    """The robustness report stored under ``path`` (JSON or its compact form), or None when there is none."""
    return RobustnessReport.load(path) if stored_report(path) is not None else None


def _finished(path: Path, attacks: Sequence[str], nb_inputs: int) -> dict[str, float] | None:
    report = finished_report(path, attacks, nb_inputs)
    return None if report is None else {name: report.accuracy[name] for name in attacks}


def evaluate_transfer(run: RunResult, surrogate: PyTorchClassifier, attacks: Sequence[str], settings: RunSettings,
                      world: World) -> dict[str, dict[str, float]]:
    """Accuracy of the run's best and last checkpoints under the transfer ``attacks`` crafted on ``surrogate``.

    The inputs, eps, batch size and seed are the run's own evaluation's (the first ``settings.test_size`` test
    images). Each checkpoint's report goes to ``eval_<checkpoint>_transfer.npz`` in the run folder (rank 0 writes
    it); a finished one is read back, a partial one resumes.

    :param run: A finished run (its ``best.pt`` and ``last.pt`` are read).
    :param surrogate: The model the attacks are crafted on.
    :param attacks: Transfer attack names (:func:`transfer_attacks`).
    :param settings: The run's settings (test size, student options, data folder, device, progress bars).
    :param world: This process's world (distributed runs shard the inputs).
    :return: Checkpoint -> attack -> accuracy in [0, 1].
    """
    config = run.config
    info = dataset_info(config.dataset)
    x_test, y_test = load_dataset(config.dataset, "test", root=settings.data_root)
    x_test, y_test = x_test[:settings.test_size], y_test[:settings.test_size]
    model = create_model(config.student, info.nb_classes, input_shape=info.input_shape, **settings.student_options)
    classifier = make_classifier(model, config.dataset, device=settings.device)
    accuracy = {}
    for name in CHECKPOINTS:
        path = run.out_dir / f"eval_{name}_transfer.json"
        finished = on_main(world, _finished, path, attacks, len(x_test))
        if finished is not None:
            accuracy[name] = finished
            continue
        classifier.model.load_state_dict(checkpoint_weights(run.out_dir, name))
        logger.info("%s: %s.pt under %s", run.out_dir, name, ", ".join(attacks))
        report = evaluate_robustness_distributed(
            classifier, x_test, y_test, eps=config.eps, attacks=tuple(attacks), batch_size=config.batch_size,
            surrogate=surrogate, seed=config.seed, state_path=None if world.is_distributed else path,
            verbose=settings.verbose)
        on_main(world, store_finished, report, path)
        accuracy[name] = report.accuracy
    return accuracy


def worst_class_attack(attacks: Sequence[str]) -> str:
    """The attack whose worst class a compare's table shows: AutoAttack when the runs evaluate it, else the last
    white-box attack they evaluate, else the last attack."""
    if "autoattack" in attacks:
        return "autoattack"
    white_box = [name for name in attacks if name in ATTACKS and ATTACKS[name].kind == "white-box"]
    return (white_box or [name for name in attacks if name not in transfer_attacks(attacks)])[-1]


def worst_class_accuracy(run: RunResult, checkpoint: str, attack: str) -> float | None:
    """The lowest per-class accuracy under ``attack`` in the run's report of ``checkpoint``; None when the report
    does not know its inputs' labels or did not run ``attack``."""
    report = read_report(run.out_dir / f"eval_{checkpoint}.json")
    worst = {} if report is None else report.worst_class
    return worst[attack]["accuracy"] if attack in worst else None


def table_columns(runs: Mapping[RunKey, RunResult], settings: RunSettings, surrogate: PyTorchClassifier | None,
                  world: World) -> TableColumns:
    """Each run's accuracy under ``settings.attacks`` (the transfer attacks evaluated here, on ``surrogate``) and
    its worst class, at the best and last checkpoints."""
    transfer = transfer_attacks(settings.attacks)
    attack = worst_class_attack(settings.attacks)
    accuracy, worst = {}, {}
    for key, run in runs.items():
        crafted = evaluate_transfer(run, surrogate, transfer, settings, world) if transfer else {}
        accuracy[key] = {name: {**run.accuracy[name], **crafted.get(name, {})} for name in CHECKPOINTS}
        worst[key] = {name: on_main(world, worst_class_accuracy, run, name, attack) for name in CHECKPOINTS}
    return TableColumns(accuracy, worst, attack)


def by_method(values: Mapping[RunKey, Mapping[str, Value]], methods: Sequence[str],
              seeds: Sequence[int]) -> dict[str, dict[str, list[Value]]]:
    """Run -> checkpoint -> value regrouped as method -> checkpoint -> one value per seed (what
    :func:`~art_rslad.report.build_table` takes)."""
    return {method: {name: [values[(method, seed)][name] for seed in seeds] for name in CHECKPOINTS}
            for method in methods}


__all__ = ["TableColumns", "by_method", "evaluate_transfer", "load_surrogate", "read_report",
           "run_settings_without_transfer", "table_columns", "transfer_attacks", "worst_class_accuracy",
           "worst_class_attack"]
