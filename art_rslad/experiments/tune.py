"""Per-method learning rates chosen by one rule on the validation split (see docs/decisions.md, "Learning rate
per method").

Loss scale acts as a learning rate: RSLAD's official reduction is a tenth of a batch-mean KL, ARD's tau^2 * KL is
larger. A comparison is fair only if every method gets a learning rate chosen the same way: :data:`RULE`.

Every short run is a :func:`art_rslad.experiments.train.train_run` in ``out_dir/<method>/lr-<lr>``, so an
interrupted tuning resumes where it stopped. ``art-rslad tune`` is the command line over :func:`select_learning_rates`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from art.estimators.classification import PyTorchClassifier

from art_rslad.distributed import current_world
from art_rslad.experiments.config import PRESET_LR_FAMILIES, Config
from art_rslad.experiments.folders import held, load_run_history, read_json
from art_rslad.experiments.networks import load_config_teacher
from art_rslad.experiments.train import RunSettings, train_run
from art_rslad.experiments.variants import check_method_specs, parse_method

logger = logging.getLogger(__name__)

#: What tuning's short runs evaluated before ``RunSettings(test_size=0)`` existed: 100 test images, clean only.
EARLIER_TEST_SETTINGS: dict[str, Any] = {"test_size": 100, "attacks": ("clean",)}
DEFAULT_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
#: The rule, in words, recorded in every ``tuning.json`` beside the learning rates it chose.
RULE = ("For each method, train a short run (nb_epochs epochs on train_size training images) at every lr of the "
        "grid; keep the lr whose best epoch has the highest PGD-10 accuracy on the validation split (held out of "
        "the training set; the test set is never looked at); ties go to the smaller lr.")


def select_learning_rates(
    config: Config,
    methods: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    nb_epochs: int = 2,
    train_size: int | None = 10_000,
    val_size: int = 1000,
    teacher: PyTorchClassifier | None = None,
    trainer_options: Mapping[str, Mapping[str, Any]] | None = None,
    student_options: Mapping[str, Any] | None = None,
    device: str | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Choose each method's learning rate by the rule of the module docstring.

    :param config: The preset to tune (dataset, student, teacher, optimiser, eps); each method's short runs use its
        config (:meth:`~art_rslad.experiments.config.Config.for_method`) with ``nb_epochs`` replaced.
    :param methods: Method specs over :data:`art_rslad.trainers.registry.METHODS` (e.g. ``rslad``,
        ``rslad+igdm``, ``sat+ema``).
    :param out_dir: Folder of the short runs and of ``tuning.json`` (the result, rewritten after every run).
    :param grid: Learning rates tried for every method.
    :param nb_epochs: Epochs of each short run.
    :param train_size: Training images of each short run (None: all).
    :param val_size: Validation images attacked after each epoch.
    :param teacher: The teacher (default: loaded once from ``config.teacher.source`` when a method needs one).
    :param trainer_options: Method -> extra trainer keyword arguments (e.g. ``{"rslad": {"scale": 1.0}}``).
    :param student_options: Options of the student architecture (e.g. ``{"width": 4}`` for ``cnn-small``).
    :param device: ``"cpu"``, ``"cuda"`` or None.
    :param verbose: Progress bars.
    :return: ``{"rule": ..., "chosen": {method: lr}, "val_pgd": {method: {lr: accuracy}}, "settings": {...}}``.
    """
    grid, methods = _check_input(config, grid, methods, nb_epochs)
    folder = Path(out_dir)
    options = {key.lower(): dict(value) for key, value in (trainer_options or {}).items()}
    if teacher is None and any(parse_method(method).method.loads_teacher for method in methods):
        teacher = load_config_teacher(config, device)
    settings = {"preset": config.name, "grid": grid, "nb_epochs": int(nb_epochs), "train_size": train_size,
                "val_size": val_size, "trainer_options": options,
                **({"student_options": dict(student_options)} if student_options else {})}
    # Methods tuned earlier into the same folder with the same settings stay in tuning.json.
    previous = json.loads((folder / "tuning.json").read_text()) if (folder / "tuning.json").is_file() else {}
    same = previous.get("settings") == settings
    scores: dict[str, dict[str, float]] = dict(previous.get("val_pgd", {})) if same else {}
    chosen: dict[str, float] = dict(previous.get("chosen", {})) if same else {}
    with held(current_world(), folder, "out_dir"):
        for method in methods:
            scores[method] = {}
            for lr in grid:
                run_dir = folder / method / f"lr-{lr:g}"
                run_settings = RunSettings(train_size=train_size, val_size=val_size, checkpoint_interval=0,
                                           student_options=dict(student_options or {}), device=device,
                                           verbose=verbose, resume=(run_dir / "run.json").is_file(),
                                           **_test_settings(run_dir))
                run = train_run(_short_config(config, method, int(nb_epochs), lr), run_dir, method, run_settings,
                                teacher=teacher, trainer_options=options.get(method))
                # every session's epochs (a resumed run's history holds only its own)
                scores[method][f"{lr:g}"] = max(record["val_pgd"] for record in load_run_history(run.out_dir))
                logger.info("tune %s lr %g: best validation PGD-10 accuracy %.4f", method, lr,
                            scores[method][f"{lr:g}"])
            chosen[method] = max(grid, key=lambda lr, m=method: (scores[m][f"{lr:g}"], -lr))
            result = {"rule": RULE, "chosen": chosen, "val_pgd": scores, "settings": settings}
            (folder / "tuning.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return result


def _test_settings(run_dir: Path) -> dict[str, Any]:
    """No test evaluation (``test_size=0``), except in a run folder written before that existed: those recorded
    :data:`EARLIER_TEST_SETTINGS` and keep them, so that they resume and read back as they are (the choice never read
    their test accuracy)."""
    marker = run_dir / "run.json"
    identity = read_json(marker).get("identity", {}) if marker.is_file() else {}
    earlier = {key: list(value) if isinstance(value, tuple) else value for key, value in EARLIER_TEST_SETTINGS.items()}
    if isinstance(identity, dict) and all(identity.get(key) == value for key, value in earlier.items()):
        return dict(EARLIER_TEST_SETTINGS)
    return {"test_size": 0}


def _check_input(config: Config, grid: Sequence[float], methods: Sequence[str],
                 nb_epochs: int) -> tuple[list[float], list[str]]:
    """The grid, sorted, and the method specs written the canonical way; a ValueError names a bad grid, method,
    variant or epoch count."""
    lrs = sorted(float(lr) for lr in grid)
    if not lrs or any(lr <= 0 for lr in lrs) or len(set(lrs)) != len(lrs):
        raise ValueError(f"`grid` must hold distinct positive learning rates, got {lrs}.")
    specs = check_method_specs(methods, "`methods`")
    if int(nb_epochs) != nb_epochs or nb_epochs < 1:
        raise ValueError(f"`nb_epochs` must be a positive integer, got {nb_epochs}.")
    for spec in specs:
        config.for_method(spec)
    return lrs, specs


def _short_config(config: Config, method: str, nb_epochs: int, lr: float) -> Config:
    """The config of ``method``'s short run at ``lr``: the method's own config (its per-method settings applied)
    for ``nb_epochs`` epochs, stripped of the other methods' lrs and settings and of the lr note.

    A short run then depends only on its own lr: it stays valid (and resumable) after the preset's chosen lrs
    are written back.
    """
    own = config.for_method(method)
    tuned = parse_method(method).method.family in PRESET_LR_FAMILIES
    return dataclasses.replace(own, nb_epochs=nb_epochs, lr=lr, method_lr={method: lr} if tuned else {},
                               method_lr_note="", method_overrides={})
