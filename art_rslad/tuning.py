"""Per-method learning rates chosen by one rule on the validation split (design decision 1).

Loss scale acts as a learning rate: RSLAD's official reduction is a tenth of a batch-mean KL, ARD's tau^2 * KL is
larger. A comparison is fair only if every method gets a learning rate chosen the same way: :data:`RULE`.

Every short run is a :func:`art_rslad.runs.train_run` in ``out_dir/<method>/lr-<lr>``, so an interrupted tuning
resumes where it stopped. ``art-rslad tune`` is the command line over :func:`select_learning_rates`.
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

from art_rslad.config import METHODS, Config
from art_rslad.runs import load_config_teacher, train_run

logger = logging.getLogger(__name__)

DEFAULT_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
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
    device: str | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Choose each method's learning rate by the rule of the module docstring.

    :param config: The preset to tune (dataset, student, teacher, optimiser, eps; its ``nb_epochs`` is replaced).
    :param methods: Keys of :data:`art_rslad.trainers.TRAINERS`.
    :param out_dir: Folder of the short runs and of ``tuning.json`` (the result, rewritten after every run).
    :param grid: Learning rates tried for every method.
    :param nb_epochs: Epochs of each short run.
    :param train_size: Training images of each short run (None: all).
    :param val_size: Validation images attacked after each epoch.
    :param teacher: The teacher (default: loaded once from ``config.teacher.source`` when a method needs one).
    :param trainer_options: Method -> extra trainer keyword arguments (e.g. ``{"rslad": {"scale": 1.0}}``).
    :param device: ``"cpu"``, ``"cuda"`` or None.
    :param verbose: Progress bars.
    :return: ``{"rule": ..., "chosen": {method: lr}, "val_pgd": {method: {lr: accuracy}}, "settings": {...}}``.
    """
    from art_rslad.trainers.registry import METHODS as TRAINERS

    grid = sorted(float(lr) for lr in grid)
    if not grid or any(lr <= 0 for lr in grid) or len(set(grid)) != len(grid):
        raise ValueError(f"`grid` must hold distinct positive learning rates, got {grid}.")
    unknown = [method for method in methods if method.lower() not in TRAINERS]
    if unknown or not methods:
        raise ValueError(f"`methods`: unknown or no methods {unknown}; known methods: {', '.join(sorted(TRAINERS))}.")
    if int(nb_epochs) != nb_epochs or nb_epochs < 1:
        raise ValueError(f"`nb_epochs` must be a positive integer, got {nb_epochs}.")
    folder = Path(out_dir)
    options = {key.lower(): dict(value) for key, value in (trainer_options or {}).items()}
    if teacher is None and any(TRAINERS[method.lower()].needs_teacher for method in methods):
        teacher = load_config_teacher(config, device)
    short = dataclasses.replace(config, nb_epochs=int(nb_epochs))
    settings = {"preset": config.name, "grid": grid, "nb_epochs": int(nb_epochs), "train_size": train_size,
                "val_size": val_size, "trainer_options": options}
    # Methods tuned earlier into the same folder with the same settings stay in tuning.json.
    previous = json.loads((folder / "tuning.json").read_text()) if (folder / "tuning.json").is_file() else {}
    same = previous.get("settings") == settings
    scores: dict[str, dict[str, float]] = dict(previous.get("val_pgd", {})) if same else {}
    chosen: dict[str, float] = dict(previous.get("chosen", {})) if same else {}
    for method in (m.lower() for m in methods):
        scores[method] = {}
        for lr in grid:
            run_dir = folder / method / f"lr-{lr:g}"
            run = train_run(
                _with_lr(short, method, lr), run_dir, method=method, resume=(run_dir / "run.json").is_file(),
                teacher=teacher, train_size=train_size, val_size=val_size, test_size=100, attacks=("clean",),
                trainer_options=options.get(method), checkpoint_interval=0, device=device, verbose=verbose,
            )
            scores[method][f"{lr:g}"] = max(record["val_pgd"] for record in run.history)
            logger.info("tune %s lr %g: best validation PGD-10 accuracy %.4f", method, lr, scores[method][f"{lr:g}"])
        chosen[method] = max(grid, key=lambda lr, m=method: (scores[m][f"{lr:g}"], -lr))
        result = {"rule": RULE, "chosen": chosen, "val_pgd": scores, "settings": settings}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tuning.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _with_lr(config: Config, method: str, lr: float) -> Config:
    """``config`` in which ``method`` trains at ``lr``, stripped of the other methods' lrs and the lr note.

    A short run then depends only on its own lr: it stays valid (and resumable) after the preset's chosen lrs
    are written back.
    """
    return dataclasses.replace(config, lr=lr, method_lr={method: lr} if method in METHODS else {},
                               method_lr_note="")
