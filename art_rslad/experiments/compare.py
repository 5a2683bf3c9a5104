"""Several methods over seeds with the same teacher, student, data and budget: the Python API under
``art-rslad compare``::

    from art_rslad.experiments.compare import compare
    from art_rslad.experiments.config import get_preset

    study = compare(get_preset("fashion-mnist"), "runs/study", ["sat", "rslad"], seeds=[0, 1, 2])
    print(study.table.to_markdown())

Each (method, seed) is a :func:`~art_rslad.experiments.train.train_run` in ``out_dir/runs/<method>/seed-<seed>``;
a compare whose process died resumes (``RunSettings(resume=True)``): finished runs are read back and unfinished
ones continue from their checkpoints and saved evaluations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from art.estimators.classification import PyTorchClassifier

from art_rslad.distributed import World, check_agreement, current_world, on_main
from art_rslad.experiments.columns import by_method, load_surrogate, run_settings_without_transfer, table_columns
from art_rslad.experiments.config import Config
from art_rslad.experiments.folders import (
    COMPACTED_FILES,
    COMPARE_FILES,
    COMPARE_FORMAT,
    FIGURES,
    RunResult,
    held,
    log_to,
    prepare_folder,
    run_folder,
    write_json,
)
from art_rslad.experiments.networks import load_config_teacher
from art_rslad.experiments.teachers import teacher_fingerprint
from art_rslad.experiments.train import (
    RunSettings,
    check_runs_here,
    run_notes,
    shared_datasets,
    train_run,
)
from art_rslad.experiments.variants import check_method_specs, parse_method
from art_rslad.report import (
    CHECKPOINTS,
    ComparisonTable,
    black_box_note,
    build_table,
    fixed_settings_notes,
    plot_curves,
    plot_table_bars,
    training_time_note,
)

logger = logging.getLogger(__name__)

History = Sequence[Mapping[str, float]]


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


def _check_methods_and_seeds(config: Config, methods: Sequence[str],
                             seeds: Sequence[int]) -> tuple[list[str], list[int]]:
    """The method specs written the canonical way and the seeds; a ValueError names an unknown method, a variant or
    setting a method cannot take (before anything trains), a repeated method or a bad seed list."""
    methods = check_method_specs(methods, "`methods`")
    for method in methods:
        config.for_method(method)
    if len(set(methods)) != len(methods):
        raise ValueError(f"`methods` lists a method twice: {methods}.")
    seeds = [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` must be a non-empty list of distinct integers, got {seeds}.")
    return methods, seeds


def compare(config: Config, out_dir: str | os.PathLike[str], methods: Sequence[str], seeds: Sequence[int] = (0,),
            settings: RunSettings | None = None, *, teacher: PyTorchClassifier | None = None,
            surrogate: PyTorchClassifier | None = None) -> CompareResult:
    """Train and evaluate every (method, seed) with the same teacher, student, data and budget; tabulate.

    Each run is a :func:`~art_rslad.experiments.train.train_run` in ``out_dir/runs/<method>/seed-<seed>`` with
    ``config.seed`` set to the seed and the method's lr from the preset. ``settings.resume`` continues a compare
    whose process died: finished runs are read back, unfinished ones resume from their checkpoints and saved
    evaluations; methods and seeds may be added on resume, the other settings must match. The transfer attacks of
    ``settings.attacks`` are crafted on ``surrogate`` after each run (see :mod:`art_rslad.experiments.columns`);
    the table ends with each method's worst-class accuracy where the runs' reports know their inputs' labels.

    :param config: Shared settings (its ``seed`` is replaced by each of ``seeds``).
    :param out_dir: The compare folder.
    :param methods: Method specs over :data:`art_rslad.trainers.registry.METHODS`, e.g. ``["sat", "sat+ema",
        "rslad", "rslad+igdm"]`` (:mod:`art_rslad.experiments.variants`); each trains with
        ``config.for_method(method)``.
    :param seeds: Seeds; the table shows mean ± std over them.
    :param settings: Sizes, attacks, student options, device, resume or overwrite, shared by every run.
    :param teacher: The teacher (default: loaded once from ``config.teacher.source`` when a method needs one).
    :param surrogate: The model the transfer attacks are crafted on (default: loaded once from
        ``config.transfer_surrogate`` when ``settings.attacks`` hold transfer attacks).
    """
    settings = RunSettings() if settings is None else settings
    if not settings.test_size:
        raise ValueError("`test_size` must be >= 1 in a compare: its table is the runs' test accuracy.")
    methods, seeds = _check_methods_and_seeds(config, methods, seeds)
    folder = Path(out_dir)
    shared = {"config": dataclasses.replace(config, seed=0).to_dict(), **settings.recorded(),
              "teacher_source": config.teacher.source}
    world = current_world()  # joins torchrun's group first: on CUDA each rank then builds models on its own GPU
    for method in methods:
        check_runs_here(method, world)
    if teacher is None and any(parse_method(method).method.loads_teacher for method in methods):
        teacher = load_config_teacher(config, settings.device)
    if surrogate is None:
        surrogate = load_surrogate(config, settings.attacks, settings.device)
    if world.is_distributed:  # ranks started with other settings or teacher weights: nothing is written
        check_agreement(world, {**shared, **{name: None if model is None else teacher_fingerprint(model)
                                             for name, model in (("teacher", teacher), ("surrogate", surrogate))}})
    with held(world, folder):  # its runs lie inside it; each run also holds its own folder
        return _compare_runs(config, folder, methods, seeds, settings, shared, teacher, surrogate, world)


def _compare_runs(config: Config, folder: Path, methods: Sequence[str], seeds: Sequence[int], settings: RunSettings,
                  shared: dict[str, Any], teacher: PyTorchClassifier | None, surrogate: PyTorchClassifier | None,
                  world: World) -> CompareResult:
    """:func:`compare` with its folder held: each run trained (or read back), then the table and figures."""
    started = on_main(world, _start_compare, folder, shared, methods, seeds, settings)
    runs: dict[tuple[str, int], RunResult] = {}
    run_lines = (__name__, train_run.__module__)  # each run's epochs and attacks are in its own run.log
    with log_to(folder / "compare.log", run_lines) if world.is_main else contextlib.nullcontext(), shared_datasets():
        for seed in seeds:
            for method in methods:
                run_dir = run_folder(folder, method, seed)
                logger.info("compare: %s, seed %d -> %s", method, seed, run_dir)
                run_settings = dataclasses.replace(run_settings_without_transfer(settings),
                                                   resume=(method, seed) in started, overwrite=False)
                runs[(method, seed)] = train_run(dataclasses.replace(config, seed=seed), run_dir, method,
                                                 run_settings, teacher=teacher)
        histories = {method: [runs[(method, seed)].history for seed in seeds] for method in methods}
        columns = table_columns(runs, settings, surrogate, world)
        table = build_table(
            by_method(columns.accuracy, methods, seeds),
            attacks=settings.attacks,
            notes=[*run_notes(config, methods, config.teacher.source, _nb_train(runs.values(), settings.train_size),
                              min(result.nb_test for result in runs.values())),
                   *black_box_note(settings.attacks, config.transfer_surrogate),
                   f"Seeds: {', '.join(map(str, seeds))}; mean ± sample std over seeds.",
                   training_time_note(histories),
                   *fixed_settings_notes({method: _fixed_settings(method) for method in methods}),
                   # said once per compare, here; each run's table only points to it
                   *([f"How the learning rates were chosen: {config.method_lr_note}"] if config.method_lr_note
                     else [])],
            worst_class=by_method(columns.worst_class, methods, seeds), worst_class_attack=columns.worst_class_attack,
        )
        figures = on_main(world, _write_comparison, folder, table, histories)
        logger.info("Comparison written to %s", folder / "comparison.md")
    return CompareResult(folder, runs, table, figures)


def _nb_train(runs: Iterable[RunResult], train_size: int | None) -> int | None:
    """The training images the runs trained on (``train_size`` caps them at the split's size), as the runs
    recorded it; ``train_size`` where a run's folder was written before runs recorded it."""
    counts = [result.nb_train for result in runs]
    return train_size if None in counts else min(count for count in counts if count is not None)


def _fixed_settings(method: str) -> dict[str, str]:
    """The shared settings that the trainer of ``method`` (one of ART's own) fixes itself; empty for ours."""
    return dict(parse_method(method).method.fixed_settings)


def _start_compare(folder: Path, shared: dict[str, Any], methods: Sequence[str], seeds: Sequence[int],
                   settings: RunSettings) -> set[tuple[str, int]]:
    """Prepare the compare ``folder`` and write compare.json; return the (method, seed) pairs whose run folder
    already holds a run (they resume)."""
    saved = prepare_folder(folder, "compare.json", shared, resume=settings.resume, overwrite=settings.overwrite,
                           argument="out_dir", owned=(*COMPARE_FILES, *COMPACTED_FILES)) or {}
    write_json(folder / "compare.json", {"format": COMPARE_FORMAT, "identity": saved.get("identity", shared),
                                         "methods": list(dict.fromkeys([*saved.get("methods", []), *methods])),
                                         "seeds": sorted({*saved.get("seeds", []), *seeds})})
    return {(method, seed) for method in methods for seed in seeds
            if (run_folder(folder, method, seed) / "run.json").is_file()}


def _write_comparison(folder: Path, table: ComparisonTable, histories: Mapping[str, Sequence[History]]) -> list[Path]:
    """comparison.md / .json and the compare's figures; return the figures' paths."""
    table.save(folder, "comparison")
    return [plot_curves(histories, folder / FIGURES / "robust_accuracy_per_epoch.png"),
            *(plot_table_bars(table, folder / FIGURES / f"final_table_{name}.png", checkpoint=name)
              for name in CHECKPOINTS)]


__all__ = ["CompareResult", "compare"]
