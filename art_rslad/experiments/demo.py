"""The README's demo, the Python API under ``art-rslad demo``: RSLAD against SAT on Fashion-MNIST in minutes."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from art.estimators.classification import PyTorchClassifier

from art_rslad.evaluation import DEFAULT_ATTACKS
from art_rslad.experiments.compare import CompareResult, compare
from art_rslad.experiments.config import Config, get_preset
from art_rslad.experiments.teachers import list_zoo, load_teacher
from art_rslad.experiments.train import RunSettings, shared_datasets, train_run
from art_rslad.report import PAPER_BLACK_BOX_ATTACKS

logger = logging.getLogger(__name__)

#: The methods the demo distils and trains: the paper's method and its plain adversarial-training baseline.
DEMO_METHODS: tuple[str, ...] = ("sat", "rslad")


def _resuming_only_from(settings: RunSettings, record: Path) -> RunSettings:
    """``settings`` with ``resume`` kept only where ``record`` (the file a finished step writes) is there."""
    return dataclasses.replace(settings, resume=settings.resume and record.is_file())


def demo_teacher(
    config: Config, out_dir: str | os.PathLike[str], settings: RunSettings, *, nb_epochs: int = 5
) -> tuple[PyTorchClassifier, str]:
    """The demo's teacher: the shipped model named by ``config.teacher.source`` when it is in the zoo, otherwise a
    quick one trained here (``config.teacher.method``, ``nb_epochs`` epochs) as a run in ``out_dir``, sized, placed
    and resumed by ``settings`` and evaluated clean and under PGD_SAT only.

    :return: The teacher and its source (the zoo name, or the path of the trained weights with their card).
    """
    source = config.teacher.source
    if source.startswith("zoo:") and source[len("zoo:"):] in list_zoo():
        logger.info("Teacher: the shipped %s", source)
        return load_teacher(source, config.dataset, device=settings.device, eps=config.eps), source
    logger.info("No shipped teacher %r here: training a quick %s teacher (%s, %s images, %d epochs) in %s",
                source, config.teacher.method, config.teacher.model, settings.train_size or "all", nb_epochs,
                out_dir)
    teacher_config = dataclasses.replace(config, student=config.teacher.model, nb_epochs=nb_epochs,
                                         method_lr={config.teacher.method: config.teacher.lr})
    folder = Path(out_dir)
    teacher_settings = dataclasses.replace(_resuming_only_from(settings, folder / "run.json"),
                                           attacks=("clean", "pgd_sat"))
    result = train_run(teacher_config, folder, config.teacher.method, teacher_settings,
                       trainer_options=config.teacher.trainer_options())
    weights = result.out_dir / "student.pt"
    return load_teacher(str(weights), config.dataset, device=settings.device, eps=config.eps), str(weights)


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
    black_box: bool = False,
) -> CompareResult:
    """On Fashion-MNIST, distil an RSLAD student and train a SAT student from the same start, then evaluate both
    checkpoints of each under every white-box attack of the paper, AutoAttack included.

    Uses the ``fashion-mnist`` preset (its per-method learning rates) with ``nb_epochs`` epochs on the first
    ``train_size`` training images, the shipped teacher (or a quick one, see :func:`demo_teacher`), and the first
    ``test_size`` test images. The compare lands in ``out_dir/compare`` (table and figures), a trained teacher in
    ``out_dir/teacher`` (``teacher_train_size`` images, ``teacher_nb_epochs`` epochs; only without a shipped one).
    ``black_box`` adds the paper's black-box columns: PGD_SAT and CW_inf transferred from the preset's shipped
    surrogate (a robust model of another architecture than the teacher) and the query-based Square attack.
    """
    folder = Path(out_dir)
    config = dataclasses.replace(get_preset("fashion-mnist"), nb_epochs=nb_epochs)
    attacks = (*DEFAULT_ATTACKS, *PAPER_BLACK_BOX_ATTACKS) if black_box else DEFAULT_ATTACKS
    settings = RunSettings(train_size=train_size, val_size=val_size, test_size=test_size, attacks=attacks,
                           device=device, verbose=verbose, resume=resume, overwrite=overwrite)
    with shared_datasets():
        teacher, source = demo_teacher(config, folder / "teacher",
                                       dataclasses.replace(settings, train_size=teacher_train_size),
                                       nb_epochs=teacher_nb_epochs)
        config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, source=source))
        compare_dir = folder / "compare"
        return compare(config, compare_dir, DEMO_METHODS, [config.seed],
                       _resuming_only_from(settings, compare_dir / "compare.json"), teacher=teacher)


__all__ = ["DEMO_METHODS", "demo", "demo_teacher"]
