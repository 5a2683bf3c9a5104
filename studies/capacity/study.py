"""The capacity study's steps (PREREGISTRATION.md beside this file fixes them); ``run.sh`` is the command line.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python studies/capacity/study.py STEP [ARGS...]

Steps (each resumes from its own output; two processes may run at once on disjoint arguments):

- ``tune-sat [WIDTH...]``: the tuning rule for SAT at the given widths (default: every width, smallest first).
- ``sat [SEED...]``: SAT's study runs at every width (default seeds 0, 1, 2).
- ``tune WIDTH METHOD...``: the tuning rule (studies/capacity/tuning.py) at ``cnn-small`` width WIDTH, validation
  only, into ``tune/width-WIDTH/METHOD/`` (``tuning.json``: every point, its per-seed scores and the choice). Where
  another process holds one of its folders (it tunes the same method), the step waits for it and reads it back.
- ``run WIDTH METHOD SEED...``: the study runs of METHOD at WIDTH with its tuned lr (and weight): training with
  validation, then every attack on the first 1,000 test images (the run's own evaluation) and clean to CW_inf on all
  10,000 (``full_best`` / ``full_last``), then compacted (studies/compact.py), in ``runs/width-WIDTH/METHOD/seed-S``.
- ``teacher``: the teacher's validation PGD-10 on each study seed's validation images (``teacher-val.json``) and its
  test numbers on the study's images (``teacher/``: clean to CW_inf on 10,000, AA on the first 1,000).
- ``gap``: the gap rule on validation (``gap.json``): per width, the teacher's validation PGD-10 minus SAT's
  best-epoch validation PGD-10, each the mean over seeds 0-2; the size G is the largest width whose gap is at least
  7 points (none: the stronger-teacher rule applies).
- ``choose``: the capacity curve's third method (``third.json``): the distillation method (other than RSLAD) with
  the highest tuning score at G among those tuned there.
- ``leaderboard K/2``: half K of the leaderboard's methods tuned at G, then (once both halves are tuned) half K of
  the leaderboard's runs.
- ``capacity K/2``: RSLAD and the third method tuned at every width, then half K of their runs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from art.estimators.classification import PyTorchClassifier

from art_rslad.checkpoint import write_text_atomic
from art_rslad.data import load_dataset, train_val_split
from art_rslad.evaluation import evaluate_robustness
from art_rslad.evaluation.report import finished_report, store_finished
from art_rslad.experiments.config import PRESET_LR_FAMILIES, Config, get_preset
from art_rslad.experiments.folders import load_run_history, read_json
from art_rslad.experiments.lock import FolderBusyError
from art_rslad.experiments.teachers import load_teacher
from art_rslad.experiments.train import RunSettings, train_run
from art_rslad.experiments.tune import select_learning_rates
from art_rslad.experiments.variants import parse_method
from art_rslad.trainers import NaturalTrainer
from art_rslad.trainers.registry import method_names
from studies.capacity.tuning import RULE, Point, widen_and_choose, write_record
from studies.compact import compact_run
from studies.full_test import FULL_ATTACKS, evaluate_run

HERE = Path(__file__).resolve().parent
WIDTHS = (1, 2, 4, 8)
TRAIN, VAL, TEST_AA = 10_000, 1000, 1000
EPOCHS, TUNE_EPOCHS = 30, 10
TUNE_SEEDS = (0, 1)
STUDY_SEEDS = (0, 1, 2)
LR_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
#: IGDM's alpha, tuned jointly with lr for every +igdm variant.
ALPHA_GRID = (0.1, 0.3, 1.0)
#: SAT's least gap below the teacher (validation PGD-10) at the size the study reads the paper's claim.
GAP = 0.07
TEACHER = "zoo:fashion-mnist-cnn-large"
#: The families whose methods the leaderboard trains (ART's two PGD trainers are added by name).
LEADERBOARD_FAMILIES = ("adversarial training", "distillation", "peer distillation")
ART_METHODS = ("art-madry-pgd", "art-trades")
AVERAGING_VARIANTS = ("sat+ema", "rslad+ema")
#: The methods whose +igdm variant the leaderboard trains: those IGDM's paper adds its term to.
IGDM_BASES = ("ard", "iad", "adaad", "rslad", "adaiad")
#: Seconds a step waits before trying again a tuning folder another process holds.
BUSY_WAIT = 60


def base_config() -> Config:
    """The study's settings: the fashion-mnist preset with 30 epochs and no per-method lr or setting (each run gets
    its own, :func:`point_config`)."""
    preset = get_preset("fashion-mnist").with_overrides([f"nb_epochs={EPOCHS}", f"teacher.source={TEACHER}"])
    return dataclasses.replace(preset, name="capacity", method_lr={}, method_lr_note="", method_overrides={},
                               method_overrides_note="")


def point_config(method: str, weight: float | None, seed: int) -> Config:
    """The config of ``method`` at a grid point's weight (IGDM's alpha for a +igdm variant) and ``seed``, with the
    weight averaging of the method's official recipe where it has one (PeerAiD, SAAD: SWA). Only ``method``'s own
    entry is in ``method_overrides``: a run's recorded config then reads back (an IGDM weight beside PeerAiD's entry
    would not)."""
    overrides: dict[str, dict[str, Any]] = {}
    notes = []
    averaging = official_averaging(method)
    if averaging:
        overrides[method] = averaging
        notes.append("The weight averaging of the method's official recipe, its start scaled to this schedule.")
    if weight is not None:
        overrides.setdefault(method, {})["igdm_alpha"] = float(weight)
        notes.append("IGDM's alpha from the study's tuning grid.")
    return dataclasses.replace(base_config(), seed=seed, method_overrides=overrides,
                               method_overrides_note=" ".join(notes))


def official_averaging(method: str) -> dict[str, Any]:
    """The weight averaging of ``method``'s official recipe (its registry record), the first averaged epoch stated
    for the study's ``lr_schedule_epochs`` (from the first lr drop where the recipe names none); {} for none."""
    recipe = parse_method(method).method.recipe
    if not recipe.weight_averaging:
        return {}
    entry: dict[str, Any] = {"weight_averaging": recipe.weight_averaging}
    if recipe.weight_averaging_start is not None:
        span = recipe.lr_schedule_epochs or base_config().lr_schedule_epochs
        entry["weight_averaging_start"] = round(recipe.weight_averaging_start * base_config().lr_schedule_epochs
                                                / span)
    return entry


def is_weighted(method: str) -> bool:
    """Whether the rule tunes a weight of ``method`` with its lr (IGDM's alpha, for +igdm variants)."""
    return parse_method(method).igdm


def initial_grid(method: str) -> list[Point]:
    if is_weighted(method):
        return [(lr, alpha) for alpha in ALPHA_GRID for lr in LR_GRID]
    return [(lr, None) for lr in LR_GRID]


@cache
def teacher() -> PyTorchClassifier:
    return load_teacher(TEACHER, "fashion-mnist", device="cpu")


def needs_teacher(method: str) -> bool:
    """Whether ``method`` distils from the teacher (a frozen one, or one it trains further, as CIARD)."""
    record = parse_method(method).method
    return record.needs_teacher or record.loads_teacher


def tune(width: int, method: str) -> dict[str, Any]:
    """The tuning rule for ``method`` at ``width``; returns its record (``tune/width-W/METHOD/tuning.json``)."""
    folder = HERE / "tune" / f"width-{width}" / method
    path = folder / "tuning.json"
    if path.is_file() and read_json(path).get("final"):
        return read_json(path)

    def score(seed: int, weight: float | None, lrs: Sequence[float]) -> Mapping[float, float]:
        out = folder / f"seed-{seed}" / ("" if weight is None else f"alpha-{weight:g}")
        _drop_unreadable(out / "tuning.json")
        found = select_learning_rates(point_config(method, weight, seed), [method], out, grid=lrs,
                                      nb_epochs=TUNE_EPOCHS, train_size=TRAIN, val_size=VAL,
                                      teacher=teacher() if needs_teacher(method) else None,
                                      student_options={"width": width}, device="cpu", verbose=False)
        return {float(lr): value for lr, value in found["val_pgd"][method].items()}

    header = {"rule": RULE, "preregistration": "studies/capacity/PREREGISTRATION.md", "method": method,
              "width": width, "seeds": list(TUNE_SEEDS), "nb_epochs": TUNE_EPOCHS, "train_size": TRAIN,
              "val_size": VAL, "weight": "igdm_alpha" if is_weighted(method) else None,
              "initial_grid": [list(point) for point in initial_grid(method)]}
    while True:
        try:
            widen_and_choose(score, initial_grid(method), TUNE_SEEDS, write_record(path, header))
            return read_json(path)
        except FolderBusyError as error:  # the other process is tuning the same method: wait, then read it back
            print(f"waiting {BUSY_WAIT} s: {error}", flush=True)
            time.sleep(BUSY_WAIT)


def _drop_unreadable(path: Path) -> None:
    """Delete a per-seed tuning.json cut short by a kill (it is rebuilt from its run folders), so that the tuning
    resumes."""
    try:
        if path.is_file():
            json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        path.unlink()


def run_config(width: int, method: str, seed: int) -> Config:
    """The config of a study run: its method's tuned lr (and weight) at ``width``, and ``seed``."""
    record = tune(width, method)
    lr, weight = record["chosen"]["lr"], record["chosen"]["weight"]
    config = point_config(method, weight, seed)
    tuned = parse_method(method).method.family in PRESET_LR_FAMILIES
    note = (f"Chosen by the capacity study's tuning rule (validation only): studies/capacity/tune/width-{width}/"
            f"{method}/tuning.json.")
    return dataclasses.replace(config, lr=lr if not tuned else config.lr,
                               method_lr={method: lr} if tuned else {}, method_lr_note=note)


def run(width: int, method: str, seed: int) -> Path:
    """One study run: trained (validation picks the best epoch), evaluated on the test images, compacted."""
    folder = HERE / "runs" / f"width-{width}" / method / f"seed-{seed}"
    settings = RunSettings(train_size=TRAIN, val_size=VAL, test_size=TEST_AA, student_options={"width": width},
                           device="cpu", verbose=False, resume=(folder / "run.json").is_file())
    train_run(run_config(width, method, seed), folder, method, settings,
              teacher=teacher() if needs_teacher(method) else None)
    if not (folder / "full_best.npz").is_file() or not (folder / "full_last.npz").is_file():
        evaluate_run(folder, *test_data(), FULL_ATTACKS, verbose=False)
    compact_run(folder)
    return folder


@cache
def test_data() -> tuple[np.ndarray, np.ndarray]:
    return load_dataset("fashion-mnist", "test")


def best_val_pgd(folder: Path) -> float:
    """A finished run's best-epoch validation PGD-10 accuracy, from its own records."""
    return max(record["val_pgd"] for record in load_run_history(folder))


def teacher_validation() -> dict[str, dict[str, float]]:
    """The teacher's clean and PGD-10 validation accuracy on each study seed's validation images (the students'
    validation attack: the trainers' PGD-10, seeded by the seed)."""
    path = HERE / "teacher-val.json"
    if path.is_file():
        return read_json(path)
    config = base_config()
    x, y = load_dataset(config.dataset, "train")
    found = {}
    for seed in STUDY_SEEDS:
        _, _, x_val, y_val = train_val_split(x, y, config.val_fraction, seed)
        found[str(seed)] = NaturalTrainer(teacher(), eps=config.eps, eps_step=config.eps_step, seed=seed,
                                          verbose=False).validate(x_val[:VAL], y_val[:VAL])
    write_text_atomic(json.dumps(found, indent=1) + "\n", path)
    return found


def teacher_test() -> None:
    """The teacher's test numbers on the study's images: clean to CW_inf on all 10,000, AA on the first 1,000."""
    folder = HERE / "teacher"
    folder.mkdir(exist_ok=True)
    x, y = test_data()
    config = base_config()
    for name, attacks, count in (("full", FULL_ATTACKS, len(x)), ("autoattack", ("autoattack",), TEST_AA)):
        state = folder / f"{name}.json"
        report = finished_report(state, attacks, count)
        if report is None:
            report = evaluate_robustness(teacher(), x[:count], y[:count], eps=config.eps, attacks=attacks,
                                         batch_size=config.batch_size, seed=0, state_path=state, verbose=False)
        store_finished(report, state)


def gap_rule() -> dict[str, Any]:
    """The size G, on validation only: the largest width where SAT's best-epoch validation PGD-10 (mean over the
    study seeds) is at least GAP below the teacher's (mean over the same seeds' validation images)."""
    teacher_pgd = float(np.mean([value["val_pgd"] for value in teacher_validation().values()]))
    sat = {}
    for width in WIDTHS:
        folders = [HERE / "runs" / f"width-{width}" / "sat" / f"seed-{seed}" for seed in STUDY_SEEDS]
        if not all(read_json(folder / "run.json").get("status") == "finished"
                   for folder in folders if (folder / "run.json").is_file()) or not all(
                (folder / "run.json").is_file() for folder in folders):
            raise SystemExit(f"SAT's runs at width {width} (seeds {STUDY_SEEDS}) are not all finished: run.sh sat.")
        sat[width] = float(np.mean([best_val_pgd(folder) for folder in folders]))
    gaps = {width: teacher_pgd - value for width, value in sat.items()}
    clear = [width for width, gap in gaps.items() if gap >= GAP]
    record = {"teacher_val_pgd": teacher_pgd, "sat_best_val_pgd": sat, "gap": gaps, "threshold": GAP,
              "size": max(clear) if clear else None,
              "reading": "the largest width whose gap is at least the threshold" if clear else
              "no width leaves the gap: the stronger-teacher rule of PREREGISTRATION.md applies"}
    write_text_atomic(json.dumps(record, indent=1) + "\n", HERE / "gap.json")
    return record


def size() -> int:
    """G, from gap.json (the ``gap`` step)."""
    path = HERE / "gap.json"
    if not path.is_file() or read_json(path).get("size") is None:
        raise SystemExit("No size G yet: run the gap step (after SAT's runs at every width) first.")
    return int(read_json(path)["size"])


def leaderboard_methods() -> list[str]:
    """Every method of the leaderboard as the registry holds them now (PREREGISTRATION.md, the leaderboard)."""
    plain = [name for family in LEADERBOARD_FAMILIES for name in method_names(family)]
    igdm = [f"{name}+igdm" for name in IGDM_BASES]
    return [*plain, *igdm, *AVERAGING_VARIANTS, *ART_METHODS]


def distillation_candidates() -> list[str]:
    """The leaderboard's methods that distil from the teacher, other than RSLAD: the third method's candidates."""
    return [name for name in leaderboard_methods() if needs_teacher(name) and name != "rslad"]


def choose_third() -> dict[str, Any]:
    """The capacity curve's third method: the highest tuning score at G among the candidates tuned there."""
    path = HERE / "third.json"
    if path.is_file():
        return read_json(path)
    width = size()
    scores = {}
    for name in distillation_candidates():
        record = HERE / "tune" / f"width-{width}" / name / "tuning.json"
        if record.is_file() and read_json(record).get("final"):
            scores[name] = read_json(record)["chosen_score"]
    missing = [name for name in distillation_candidates() if name not in scores]
    if missing:
        raise SystemExit(f"Not every candidate is tuned at width {width} yet: {', '.join(missing)}.")
    chosen = max(scores, key=lambda name: scores[name])
    record = {"size": width, "scores": scores, "third": chosen}
    write_text_atomic(json.dumps(record, indent=1) + "\n", path)
    return record


def leaderboard_runs(width: int) -> list[tuple[str, int]]:
    """(method, seed) of every leaderboard run at ``width``, each method tuned there first."""
    return planned_runs({name: tune(width, name)["chosen_score"] for name in leaderboard_methods()})


def planned_runs(scores: Mapping[str, float]) -> list[tuple[str, int]]:
    """(method, seed) of every leaderboard run, from the methods' tuning scores at G: 5 seeds for SAT, RSLAD and the
    three other methods with the highest scores, 3 for the others."""
    others = sorted((name for name in scores if name not in ("sat", "rslad")), key=lambda name: -scores[name])
    five = {"sat", "rslad", *others[:3]}
    return [(name, seed) for seed in range(5) for name in scores
            if seed < (5 if name in five else len(STUDY_SEEDS))]


def half(items: Sequence[Any], part: str) -> list[Any]:
    """Half K of ``items`` for ``part`` "K/2" (K 1 or 2): every other item, so two processes split the work."""
    if part not in ("1/2", "2/2"):
        raise SystemExit(f"Expected 1/2 or 2/2, got {part!r}.")
    return list(items[int(part[0]) - 1::2])


def in_turn(items: Sequence[Any], part: str) -> list[Any]:
    """Half K of ``items``, then the other half from its far end: the process that finishes its half first takes
    over the other's remaining work, and the two meet in the middle."""
    mine = half(items, part)
    return mine + [item for item in reversed(items) if item not in mine]


def run_in_turn(runs: Sequence[tuple[int, str, int]], part: str) -> None:
    """:func:`run` on each (width, method, seed) :func:`in_turn`, skipping a run the other process holds."""
    for width, method, seed in in_turn(runs, part):
        try:
            run(width, method, seed)
        except FolderBusyError as error:
            print(f"skipped, the other process has it: {error}", flush=True)


def capacity(part: str) -> None:
    """RSLAD and the third method at every width (SAT has its own step): tuned, then run on the study seeds."""
    methods = ("rslad", choose_third()["third"])
    for width, method in half([(width, method) for width in WIDTHS for method in methods], part):
        tune(width, method)
    run_in_turn([(width, method, seed) for seed in STUDY_SEEDS for width in WIDTHS for method in methods], part)


def leaderboard(part: str) -> None:
    """Every leaderboard method at G: tuned (this half), then, once all are tuned, the runs :func:`in_turn`."""
    width = size()
    for method in half(leaderboard_methods(), part):
        tune(width, method)
    untuned = [name for name in leaderboard_methods()
               if not read_json_or_empty(HERE / "tune" / f"width-{width}" / name / "tuning.json").get("final")]
    if untuned:
        raise SystemExit(f"Waiting for the other half's tuning ({', '.join(untuned)}); run this step again then.")
    run_in_turn([(width, method, seed) for method, seed in leaderboard_runs(width)], part)


def read_json_or_empty(path: Path) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}


def main(argv: Sequence[str]) -> int:
    step, *args = argv or ["help"]
    if step == "tune":
        for method in args[1:]:
            print(json.dumps(tune(int(args[0]), method)["chosen"]), flush=True)
    elif step == "tune-sat":
        for width in [int(width) for width in args] or WIDTHS:
            print(f"width {width}: {json.dumps(tune(width, 'sat')['chosen'])}", flush=True)
    elif step == "run":
        for seed in args[2:]:
            print(run(int(args[0]), args[1], int(seed)), flush=True)
    elif step == "sat":
        for seed in [int(seed) for seed in args] or STUDY_SEEDS:
            for width in WIDTHS:
                print(run(width, "sat", seed), flush=True)
    elif step == "teacher":
        print(json.dumps(teacher_validation()), flush=True)
        teacher_test()
    elif step in ("gap", "choose"):
        print(json.dumps(gap_rule() if step == "gap" else choose_third(), indent=1))
    elif step in ("capacity", "leaderboard"):
        (capacity if step == "capacity" else leaderboard)(args[0] if args else "")
    else:
        print(__doc__)
        return 0 if step == "help" else 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
