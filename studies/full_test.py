"""Evaluate every finished run of an ``art-rslad compare`` folder on the whole test set, then tabulate.

``art-rslad compare`` evaluates the best and last checkpoints of each run on its ``--test-size`` images (1,000 in
the studies, for standard AutoAttack's sake). This script adds clean, FGSM, PGD_SAT, PGD_TRADES and CW_inf on the
whole test set (resumable: each checkpoint's report is saved after every attack in the run folder as
``full_<checkpoint>.json``, and stored as ``full_<checkpoint>.npz`` once finished) and writes one table, in
markdown, JSON and a bar chart: those columns on the whole test set, AA from the run's own evaluation, mean ± sample
std over the seeds, training seconds per epoch, and the share of the teacher's AA each method keeps. Only finished
runs are read; the notes list the seeds of each method.

``--defend METHOD:DEFENCE`` adds two rows per pair: the best checkpoint of each of METHOD's runs behind
the ART preprocessing defence DEFENCE, attacked through the defence's exact gradient (``sat+jpeg``) and by BPDA
(``sat+jpeg (BPDA)``), the same columns (AA on the runs' test images), with the gap between the two views in the
notes: a row whose exact-gradient numbers lie above its BPDA numbers owes them to obfuscated gradients.

    OMP_NUM_THREADS=1 .venv/bin/python studies/full_test.py studies/fashion-mnist studies/fashion-mnist-art \
        --defend sat:jpeg sat:feature-squeezing --out docs/results-art-peers
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_rslad.data import dataset_info, load_dataset
from art_rslad.evaluation import (
    BPDA_SUFFIX,
    DEFENCE_VIEWS,
    PREPROCESSING_DEFENCES,
    RobustnessReport,
    evaluate_preprocessing_defence,
    evaluate_robustness,
    view_state_path,
)
from art_rslad.evaluation.report import finished_report, store_finished
from art_rslad.experiments.config import Config
from art_rslad.experiments.folders import checkpoint_weights, load_run_history
from art_rslad.experiments.teachers import zoo_card
from art_rslad.models import create_model, make_classifier
from art_rslad.report import CHECKPOINTS, build_table, plot_table_bars

FULL_ATTACKS = ("clean", "fgsm", "pgd_sat", "pgd_trades", "cw_inf")


def finished_runs(folder: Path) -> dict[str, dict[int, Path]]:
    """``{method: {seed: run folder}}`` of the finished runs, methods in the compare's order."""
    order = json.loads((folder / "compare.json").read_text(encoding="utf-8"))["methods"]
    runs: dict[str, dict[int, Path]] = {}
    for marker in sorted(folder.glob("runs/*/seed-*/run.json")):
        data = json.loads(marker.read_text(encoding="utf-8"))
        if data.get("status") == "finished":
            seed = int(marker.parent.name.removeprefix("seed-"))
            runs.setdefault(data["identity"]["method"], {})[seed] = marker.parent
    return {method: dict(sorted(runs[method].items())) for method in order if method in runs}


def load_student(run: Path, checkpoint: str) -> tuple[Any, Config, dict[str, Any]]:
    """The run's student classifier with the weights of ``checkpoint``, its config and its run marker."""
    marker = json.loads((run / "run.json").read_text(encoding="utf-8"))
    identity = marker["identity"]
    config = Config.from_dict(identity["config"])
    info = dataset_info(config.dataset)
    torch.manual_seed(config.seed)
    model = create_model(config.student, info.nb_classes, input_shape=info.input_shape,
                         **identity["student_options"])
    model.load_state_dict(checkpoint_weights(run, checkpoint))
    return make_classifier(model, config.dataset, device="cpu"), config, marker


def evaluate_run(run: Path, x: np.ndarray, y: np.ndarray, attacks: Sequence[str],
                 verbose: bool) -> dict[str, dict[str, float]]:
    """Accuracy of the run's best and last checkpoints under ``attacks`` on ``x``, merged with the run's AA; a
    finished report is read back without loading the checkpoint (a compacted run keeps only the best weights)."""
    marker = json.loads((run / "run.json").read_text(encoding="utf-8"))
    accuracy = {}
    for checkpoint in CHECKPOINTS:
        state = run / f"full_{checkpoint}.json"
        report = finished_report(state, attacks, len(x))  # the inputs: the first len(x) of the test set
        if report is None:
            classifier, config, _ = load_student(run, checkpoint)
            report = evaluate_robustness(classifier, x, y, eps=config.eps, attacks=tuple(attacks),
                                         batch_size=config.batch_size, seed=config.seed, state_path=state,
                                         verbose=verbose)
        store_finished(report, state)
        accuracy[checkpoint] = {**report.accuracy, "autoattack": marker["accuracy"][checkpoint]["autoattack"]}
    return accuracy


def evaluate_defended(run: Path, defence: str, x: np.ndarray, y: np.ndarray, nb_autoattack: int,
                      verbose: bool) -> tuple[dict[str, dict[str, float]], list[str]]:
    """The best checkpoint of ``run`` behind ``defence``: ``({"exact": accuracy, "bpda": accuracy}, warnings)``,
    clean to CW_inf on ``x`` and AA on its first ``nb_autoattack`` inputs, each view resumable from the run folder."""
    classifier, config, _ = load_student(run, "best")
    options = {"eps": config.eps, "batch_size": config.batch_size, "seed": config.seed, "verbose": verbose}
    full_state, autoattack_state = run / f"full_best_{defence}.json", run / f"autoattack_best_{defence}.json"
    full = evaluate_preprocessing_defence(classifier, defence, x, y, attacks=FULL_ATTACKS, state_path=full_state,
                                          **options)
    autoattack = evaluate_preprocessing_defence(classifier, defence, x[:nb_autoattack], y[:nb_autoattack],
                                                attacks=("autoattack",), state_path=autoattack_state, **options)
    for view in DEFENCE_VIEWS:  # each view's finished state, stored compactly
        for state in (view_state_path(full_state, view), view_state_path(autoattack_state, view)):
            if state is not None and state.is_file():
                store_finished(RobustnessReport.load(state), state)
    accuracy = {**full.accuracy, **autoattack.accuracy}
    views = {view: {name: accuracy[name if name == "clean" or view == "exact" else name + BPDA_SUFFIX]
                    for name in (*FULL_ATTACKS, "autoattack")} for view in ("exact", "bpda")}
    return views, [*full.warnings, *autoattack.warnings]


def train_seconds(run: Path) -> list[float]:
    """Training seconds of each epoch (validation excluded) from the run's metrics.jsonl."""
    return [float(record.get("train_seconds", record["seconds"])) for record in load_run_history(run)]


def run_hours(run: Path) -> tuple[float, float, float]:
    """(training with validation, the compare's evaluation of best and last, this script's full-test-set attacks)
    of a run, in hours, as its metrics.jsonl and its eval_* and full_* reports logged them; a last checkpoint that
    is the best one was evaluated once by the compare (its two reports are the same)."""
    training = sum(float(record["seconds"]) for record in load_run_history(run))
    compare_reports = {report.to_json(): report for report in
                       (RobustnessReport.load(run / f"eval_{name}.json") for name in CHECKPOINTS)}
    evaluation = sum(sum(report.seconds.values()) for report in compare_reports.values())
    full = sum(sum(RobustnessReport.load(run / f"full_{name}.json").seconds.values()) for name in CHECKPOINTS)
    return training / 3600, evaluation / 3600, full / 3600


def teacher_numbers(source: str) -> dict[str, tuple[float, int]]:
    """``{attack: (accuracy, images)}`` from the card of a shipped teacher."""
    card, _ = zoo_card(source.removeprefix("zoo:"))
    return {name: (float(metric["accuracy"]), int(metric["nb_images"])) for name, metric in card.metrics.items()}


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[tuple[str, str]]]:
    """The options (``args.runs``: the finished runs, by method and seed), and the pairs of ``--defend``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("compare_dirs", type=Path, nargs="+",
                        help="Folders of art-rslad compares with the same data and teacher (e.g. our methods' and "
                             "ART's trainers'); their methods go into one table.")
    parser.add_argument("--out", type=Path, required=True, help="Stem of the table: <out>.md, <out>.json, <out>.png.")
    parser.add_argument("--nb-images", type=int, help="Test images of the full evaluation (default: all).")
    parser.add_argument("--defend", nargs="+", default=[], metavar="METHOD:DEFENCE",
                        help="Also evaluate METHOD's best checkpoints behind an ART preprocessing defence "
                             f"({', '.join(PREPROCESSING_DEFENCES)}), by exact gradient and by BPDA.")
    parser.add_argument("--verbose", action="store_true", help="Progress bars.")
    args = parser.parse_args(argv)
    defended = [tuple(pair.split(":", 1)) for pair in args.defend]
    for pair in defended:
        if len(pair) != 2 or pair[1] not in PREPROCESSING_DEFENCES:
            parser.error(f"--defend takes METHOD:DEFENCE with DEFENCE one of {', '.join(PREPROCESSING_DEFENCES)}; "
                         f"got {':'.join(pair)!r}.")
    args.runs = {method: seeds for folder in args.compare_dirs for method, seeds in finished_runs(folder).items()}
    if not args.runs:
        raise SystemExit(f"No finished run in {', '.join(map(str, args.compare_dirs))}.")
    for method, defence in defended:
        if method not in args.runs:
            parser.error(f"--defend {method}:{defence}: no finished run of {method!r}; methods: "
                         f"{', '.join(args.runs)}.")
    return args, defended  # type: ignore[return-value]


def defence_rows(method: str, defence: str, runs: dict[int, Path], x: np.ndarray, y: np.ndarray,
                 nb_autoattack: int, verbose: bool) -> tuple[dict[str, list[dict[str, float]]], list[str], str]:
    """The two rows of ``method`` behind ``defence`` (exact gradient first, then BPDA; per-seed accuracy), their
    warnings and their note."""
    per_seed = [evaluate_defended(run, defence, x, y, nb_autoattack, verbose) for run in runs.values()]
    rows = {"exact": f"{method}+{defence}", "bpda": f"{method}+{defence} (BPDA)"}
    results = {row: [views[view] for views, _ in per_seed] for view, row in rows.items()}
    warnings = [warning for _, found in per_seed for warning in found]
    gaps = {name: 100 * float(np.mean([views["exact"][name] - views["bpda"][name] for views, _ in per_seed]))
            for name in (*FULL_ATTACKS[1:], "autoattack")}
    loose = 100 * float(np.mean([views["bpda"]["pgd_sat"] - views["bpda"]["autoattack"] for views, _ in per_seed]))
    note = (
        f"{rows['exact']}: {method}'s best checkpoints behind {PREPROCESSING_DEFENCES[defence].description}, "
        f"attacked through the defence's exact gradient; (BPDA): through ART's gradient estimate (AA on the first "
        f"{nb_autoattack:,} test images). Exact minus "
        "BPDA (points): " + ", ".join(f"{name} {gap:+.1f}" for name, gap in gaps.items()) + ". "
        + ("The exact-gradient numbers owe their height to obfuscated gradients; only the BPDA row is a "
           "robustness claim." if max(gaps.values()) > 1 else "The two views agree: the defence does not mask "
           "gradients here.")
        + (f" BPDA's AA lies {loose:.1f} points below its PGD_SAT: AutoAttack's APGD and Square (which needs no "
           "gradient) find what PGD through ART's gradient estimate misses, so AA is the column to read."
           if loose > 1 else ""))
    return results, warnings, note


def table_notes(config: Config, identity: dict[str, Any], runs: dict[str, dict[int, Path]], nb_full: int,
                results: dict[str, dict[str, list[dict[str, float]]]], seconds: dict[str, float],
                masked_rows: Sequence[str], defence_notes: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The notes under the table, and the teacher's numbers and the share of its AA each row keeps."""
    teacher = teacher_numbers(config.teacher.source)
    teacher_aa, teacher_aa_images = teacher["autoattack"]
    kept = {method: float(np.mean([accuracy["autoattack"] for accuracy in per_checkpoint["best"]])) / teacher_aa
            for method, per_checkpoint in results.items() if method not in masked_rows}
    notes = [
        f"{config.dataset}, eps {config.eps:g}; student {config.student} {identity['student_options']}; "
        f"teacher {config.teacher.source}. Clean to CW_inf on the first {nb_full:,} test images, AA (standard) on "
        f"the first {identity['test_size']:,} (the runs' own evaluation).",
        "Seeds: " + "; ".join(f"{method} {', '.join(map(str, seeds))}" for method, seeds in runs.items())
        + ". Mean ± sample std over seeds.",
        "Teacher: " + ", ".join(f"{name} {100 * value:.2f} ({images:,} images)"
                                for name, (value, images) in teacher.items()) + ".",
        "Share of the teacher's AA kept by the best checkpoint (mean AA / teacher AA on the first "
        f"{teacher_aa_images:,} images; exact-gradient rows of defences left out): "
        + ", ".join(f"{method} {100 * share:.1f}%" for method, share in kept.items()) + ".",
        "Training seconds per epoch (mean over epochs and seeds, validation excluded, one CPU thread): "
        + ", ".join(f"{method} {value:.1f}" for method, value in seconds.items()) + ".",
        *defence_notes,
    ]
    hours = np.array([run_hours(run) for seeds in runs.values() for run in seeds.values()])
    notes.append(f"Compute of the {len(hours)} runs, as logged (one CPU thread each, on a machine shared with other "
                 f"jobs): {hours[:, 0].sum():.1f} h of training with validation, {hours[:, 1].sum():.1f} h of "
                 f"evaluation by the compare (mostly AA) and {hours[:, 2].sum():.1f} h of this script's attacks on "
                 "the whole test set.")
    if "sat" in results:
        sat_aa = float(np.mean([accuracy["autoattack"] for accuracy in results["sat"]["best"]]))
        notes.append(f"SAT's best checkpoint is {100 * (teacher_aa - sat_aa):.1f} points of AA below the teacher "
                     "(the paper's claim, about students too small to learn robustness alone, is tested only where "
                     "this gap is clear; 7 in its CIFAR-10 table).")
    return notes, {"teacher": teacher, "aa_kept": kept}


def main(argv: Sequence[str] | None = None) -> int:
    args, defended = parse_args(argv)
    runs = args.runs
    first = next(iter(next(iter(runs.values())).values()))
    identity = json.loads((first / "run.json").read_text(encoding="utf-8"))["identity"]
    config = Config.from_dict(identity["config"])
    x, y = load_dataset(config.dataset, "test")
    x, y = x[:args.nb_images], y[:args.nb_images]

    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    seconds: dict[str, float] = {}
    for method, seeds in runs.items():
        per_seed = [evaluate_run(run, x, y, FULL_ATTACKS, args.verbose) for run in seeds.values()]
        results[method] = {name: [accuracy[name] for accuracy in per_seed] for name in CHECKPOINTS}
        seconds[method] = float(np.mean([value for run in seeds.values() for value in train_seconds(run)]))

    defence_notes: list[str] = []
    defence_warnings: dict[str, list[str]] = {}
    masked_rows: list[str] = []  # the exact-gradient views, left out of the teacher's-AA shares
    for method, defence in defended:
        rows, warnings, note = defence_rows(method, defence, runs[method], x, y,
                                            min(len(x), identity["test_size"]), args.verbose)
        exact_row = next(iter(rows))
        for row, per_seed in rows.items():
            results[row] = {"best": per_seed}
            seconds[row] = seconds[method]
        masked_rows.append(exact_row)
        defence_warnings[exact_row] = warnings
        defence_notes.append(note)

    notes, teacher = table_notes(config, identity, runs, len(x), results, seconds, masked_rows, defence_notes)
    table = build_table(results, attacks=(*FULL_ATTACKS, "autoattack"), notes=notes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table.to_markdown(), encoding="utf-8")
    command = "python studies/full_test.py " + " ".join(sys.argv[1:] if argv is None else argv)
    summary: dict[str, Any] = {"command": command, "table": table.to_dict(), **teacher,
                               "train_seconds_per_epoch": seconds, "nb_full_test": len(x),
                               "defence_warnings": defence_warnings, "nb_autoattack": identity["test_size"]}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    plot_table_bars(table, args.out.with_suffix(".png"), checkpoint="best")
    print(table.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
