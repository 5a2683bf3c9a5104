"""The ``table`` step of the capacity study: the analysis PREREGISTRATION.md fixes, from the run folders alone.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python studies/capacity/table.py --out docs/results-capacity
    studies/capacity/run.sh table                          # the same

Reads the finished, evaluated runs under ``studies/capacity/runs/width-W/METHOD/seed-S`` (a run without its
whole-test reports is left out), ``gap.json``, ``third.json``, ``teacher/`` and the tuning records, and writes
``<out>.md`` (to paste into docs/results.md), ``<out>.json`` with the same numbers, ``<out>-capacity.png`` (AA of
the best checkpoint against the student's parameters, one line per method with bootstrap intervals, the teacher as a
line) and ``<out>-leaderboard.png`` (AA at G with intervals). Comparisons whose runs are not all there are listed as
not run yet, outside the Holm correction; the final analysis is the one where none is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from art_rslad.evaluation import RobustnessReport
from art_rslad.evaluation.report import stored_report
from art_rslad.experiments.folders import load_run_history, read_json
from art_rslad.models import create_model
from art_rslad.report import CHECKPOINTS, build_table, figure_colour
from studies.capacity.analysis import Key, Tables, analyse, difference, mean_interval, planned_comparisons
from studies.capacity.study import HERE, WIDTHS, leaderboard_methods, planned_runs
from studies.full_test import FULL_ATTACKS
from studies.stats import DRAWS


@dataclass(frozen=True)
class Run:
    """A finished, evaluated run: its best epoch and that epoch's validation PGD-10, test accuracy per checkpoint
    and attack, and the per-image AA result of its best checkpoint."""

    best_epoch: int
    best_val_pgd: float
    accuracy: dict[str, dict[str, float]]
    aa_correct: np.ndarray


Runs = dict[Key, dict[int, Run]]


def read_run(folder: Path) -> Run | None:
    """The run in ``folder``, or None where it is not finished or not yet evaluated on the whole test set."""
    marker = read_json(folder / "run.json")
    if marker.get("status") != "finished" or any(stored_report(folder / f"full_{name}.json") is None
                                                  for name in CHECKPOINTS):
        return None
    accuracy = {name: {**RobustnessReport.load(folder / f"full_{name}.json").accuracy,
                       "autoattack": marker["accuracy"][name]["autoattack"]} for name in CHECKPOINTS}
    aa = np.asarray(RobustnessReport.load(folder / "eval_best.json").correct["autoattack"], dtype=bool)
    best = [record["val_pgd"] for record in load_run_history(folder) if record["epoch"] == marker["best_epoch"]]
    if not best:
        raise ValueError(f"{folder}: metrics.jsonl has no record of the best epoch {marker['best_epoch']}; the run "
                         "folder is incomplete: train the run again or restore the file.")
    return Run(int(marker["best_epoch"]), float(best[0]), accuracy, aa)


def read_runs(root: Path) -> Runs:
    runs: Runs = {}
    for marker in sorted(root.glob("runs/width-*/*/seed-*/run.json")):
        run = read_run(marker.parent)
        if run is None:
            continue
        width = int(marker.parent.parent.parent.name.removeprefix("width-"))
        method = read_json(marker)["identity"]["method"]
        runs.setdefault((method, width), {})[int(marker.parent.name.removeprefix("seed-"))] = run
    return runs


def parameters(width: int) -> int:
    model = create_model("cnn-small", 10, input_shape=(1, 28, 28), width=width)
    return sum(parameter.numel() for parameter in model.parameters())


def tables(runs: Runs) -> Tables:
    return {key: {seed: run.aa_correct for seed, run in seeds.items()} for key, seeds in runs.items()}


def teacher_numbers(root: Path) -> dict[str, float]:
    """The teacher's test accuracy on the study's images (the ``teacher`` step's reports), empty before it ran."""
    found: dict[str, float] = {}
    for name in ("full", "autoattack"):
        if stored_report(root / "teacher" / f"{name}.json") is not None:
            found.update(RobustnessReport.load(root / "teacher" / f"{name}.json").accuracy)
    return found


def points(value: float, signed: bool = False) -> str:
    return f"{100 * value:{'+' if signed else ''}.2f}"


def interval_text(estimate: Mapping[str, Any] | None, signed: bool = False) -> str:
    if not estimate:
        return "–"
    low, high = estimate["interval"]
    return f"{points(estimate['value'], signed)} [{points(low, signed)}, {points(high, signed)}]"


def capacity_markdown(runs: Runs, means: Mapping[Key, dict[str, Any]], methods: Sequence[str],
                      teacher: Mapping[str, float]) -> str:
    """Per width and method: seeds, AA of the best checkpoint with its interval, PGD_SAT and clean (means)."""
    lines = ["| Width | Parameters | Method | Seeds | AA, best (95% interval, seeds x images) | PGD_SAT | Clean |",
             "|---|---|---|---|---|---|---|"]
    for width in WIDTHS:
        for name in methods:
            seeds = runs.get((name, width), {})
            if not seeds:
                continue
            mean = {attack: float(np.mean([run.accuracy["best"][attack] for run in seeds.values()]))
                    for attack in ("pgd_sat", "clean")}
            lines.append(f"| {width} | {parameters(width):,} | {name} | {len(seeds)} | "
                         f"{interval_text(means.get((name, width)))} | {points(mean['pgd_sat'])} | "
                         f"{points(mean['clean'])} |")
    if teacher:
        lines.append(f"| teacher | 321,362 | cnn-large | – | {points(teacher.get('autoattack', np.nan))} | "
                     f"{points(teacher.get('pgd_sat', np.nan))} | {points(teacher.get('clean', np.nan))} |")
    return "\n".join(lines) + "\n"


def teacher_gap_markdown(runs: Runs, teacher: Mapping[str, float]) -> str:
    """SAT's test accuracy below the teacher's at every width (best checkpoint, mean over seeds; PGD_SAT on the whole
    test set, AA on the first 1,000 images, the teacher's on the same images)."""
    if not {"pgd_sat", "autoattack"} <= set(teacher):
        return "The teacher step has not run yet.\n"
    lines = ["| Width | SAT PGD_SAT | Teacher minus SAT, PGD_SAT | SAT AA | Teacher minus SAT, AA |",
             "|---|---|---|---|---|"]
    for width in WIDTHS:
        seeds = runs.get(("sat", width), {})
        if seeds:
            sat = {attack: float(np.mean([run.accuracy["best"][attack] for run in seeds.values()]))
                   for attack in ("pgd_sat", "autoattack")}
            lines.append(f"| {width} | {points(sat['pgd_sat'])} | "
                         f"{points(teacher['pgd_sat'] - sat['pgd_sat'], signed=True)} | {points(sat['autoattack'])} | "
                         f"{points(teacher['autoattack'] - sat['autoattack'], signed=True)} |")
    return "\n".join(lines) + "\n"


def ranking_markdown(runs: Runs, means: Mapping[Key, dict[str, Any]], size: int,
                     rows: Sequence[Mapping[str, Any]]) -> str:
    """H3 at G: every leaderboard method by mean AA (best checkpoint) with its interval over seeds and images, its best
    epochs and their validation PGD-10 (the runs' own records), and the best method's lead over it with the verdict."""
    ranked = sorted((name for name in leaderboard_methods() if (name, size) in means),
                    key=lambda name: -means[(name, size)]["value"])
    if not ranked:
        return ""
    found = {row["comparison"]: row for row in rows if row["hypothesis"] == "H3"}
    lines = ["| Rank | Method | Seeds | AA, best (95% interval, seeds x images) | Best epochs (by seed) | "
             "Validation PGD-10 at the best epoch | " + f"AA({ranked[0]}) minus this method | Verdict (Holm) |",
             "|---|---|---|---|---|---|---|---|"]
    for rank, name in enumerate(ranked, 1):
        seeds = runs[(name, size)]
        row = found.get(difference("H3", (ranked[0], size), (name, size), None).label, {})
        lead = interval_text(row if "value" in row else None, signed=True)
        lines.append(f"| {rank} | {name} | {len(seeds)} | {interval_text(means[(name, size)])} | "
                     f"{', '.join(str(seeds[seed].best_epoch) for seed in sorted(seeds))} | "
                     f"{points(float(np.mean([run.best_val_pgd for run in seeds.values()])))} | "
                     f"{lead if name != ranked[0] else 'the best'} | {row.get('verdict', '–')} |")
    return "\n".join(lines) + "\n"


def comparisons_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| Hypothesis | Comparison | Predicted | Seeds | Estimate [95% interval] (points) | p | p (Holm) | "
             "Verdict |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        predicted = {1: "> 0", -1: "< 0", None: "either"}[row["predicted_sign"]]
        made = "value" in row
        lines.append(f"| {row['hypothesis']} | {row['comparison']} | {predicted} | "
                     f"{', '.join(map(str, row.get('seeds', []))) or '–'} | "
                     f"{interval_text(row if made else None, signed=True)} | "
                     f"{row['p_value']:.4f} | {row['p_holm']:.4f} | {row['verdict']} |" if made else
                     f"| {row['hypothesis']} | {row['comparison']} | {predicted} | – | – | – | – | {row['verdict']} |")
    return "\n".join(lines) + "\n"


def tuning_markdown(root: Path) -> str:
    lines = ["| Width | Method | lr | IGDM alpha | Score (validation PGD-10, mean of 2 seeds) | Bracketed |",
             "|---|---|---|---|---|---|"]
    for path in sorted(root.glob("tune/width-*/*/tuning.json"), key=lambda item: (
            int(item.parent.parent.name.removeprefix("width-")), item.parent.name)):
        record = read_json(path)
        if not record.get("final"):
            continue
        weight = record["chosen"]["weight"]
        lines.append(f"| {record['width']} | {record['method']} | {record['chosen']['lr']:g} | "
                     f"{'–' if weight is None else f'{weight:g}'} | {points(record['chosen_score'])} | "
                     f"{'yes' if record['bracketed'] else 'no'} |")
    return "\n".join(lines) + "\n"


def plot_capacity(means: Mapping[Key, dict[str, Any]], methods: Sequence[str], teacher: Mapping[str, float],
                  path: Path) -> Path:
    """AA of the best checkpoint against the student's parameters: a line per method with its bootstrap intervals
    (seeds x images), the teacher's AA on the same images as a horizontal line."""
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, name in enumerate(methods):
        found = [(parameters(width), means[(name, width)]) for width in WIDTHS if (name, width) in means]
        if not found:
            continue
        x = [count for count, _ in found]
        y = np.array([100 * item["value"] for _, item in found])
        spread = np.array([[100 * item["value"] - 100 * item["interval"][0],
                            100 * item["interval"][1] - 100 * item["value"]] for _, item in found]).T
        axes.errorbar(x, y, yerr=spread, marker="o", capsize=3, color=figure_colour(index, len(methods)), label=name)
    if "autoattack" in teacher:
        axes.axhline(100 * teacher["autoattack"], color="black", linestyle="--", label="teacher (321,362 parameters)")
    axes.set_xscale("log")
    axes.set_xticks([parameters(width) for width in WIDTHS], [f"{parameters(width):,}\n(width {width})"
                                                               for width in WIDTHS])
    axes.set_xlabel("student parameters (cnn-small)")
    axes.set_ylabel("AA accuracy (%), best checkpoint")
    axes.set_title("Fashion-MNIST, eps 0.1: AA on the first 1,000 test images\n"
                   "(mean over seeds, 95% bootstrap interval over seeds and images)", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=120)
    return path


def plot_leaderboard(means: Mapping[Key, dict[str, Any]], size: int, teacher: Mapping[str, float],
                     path: Path) -> Path:
    """AA of the best checkpoint at G per method, highest first, with its bootstrap interval."""
    found = sorted(((name, means[(name, size)]) for name in leaderboard_methods() if (name, size) in means),
                   key=lambda item: item[1]["value"])
    figure = Figure(figsize=(7.5, 0.9 + 0.32 * len(found)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    values = np.array([100 * item["value"] for _, item in found])
    spread = np.array([[100 * (item["value"] - item["interval"][0]), 100 * (item["interval"][1] - item["value"])]
                       for _, item in found]).T
    axes.barh(range(len(found)), values, xerr=spread, capsize=3, color=figure_colour(0, 1))
    axes.set_yticks(range(len(found)), [name for name, _ in found])
    if "autoattack" in teacher:
        axes.axvline(100 * teacher["autoattack"], color="black", linestyle="--", label="teacher")
        axes.legend(fontsize=8, loc="lower right")
    axes.set_xlabel("AA accuracy (%), best checkpoint (first 1,000 test images)")
    axes.set_title(f"Width {size} ({parameters(size):,} parameters): mean over seeds,\n"
                   "95% bootstrap interval over seeds and images", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.savefig(path, dpi=120)
    return path


def gap_markdown(root: Path) -> str:
    """The gap rule's record (validation only): SAT's and the teacher's validation PGD-10 per width."""
    if not (root / "gap.json").is_file():
        return "The gap step has not run yet.\n"
    record = read_json(root / "gap.json")
    lines = ["| Width | SAT best-epoch validation PGD-10 | Teacher minus SAT (points) |", "|---|---|---|"]
    lines += [f"| {width} | {points(value)} | {points(record['gap'][width], signed=True)} |"
              for width, value in record["sat_best_val_pgd"].items()]
    return ("\n".join(lines) + f"\n\nTeacher validation PGD-10 {points(record['teacher_val_pgd'])}; G = width "
            f"{record['size']} ({record['reading']}).\n")


def leaderboard_table(runs: Runs, size: int) -> Any:
    """Clean to CW_inf (all test images) and AA (the first 1,000), best and last checkpoints, at G."""
    results = {name: {checkpoint: [run.accuracy[checkpoint] for run in runs[(name, size)].values()]
                      for checkpoint in CHECKPOINTS} for name in leaderboard_methods() if (name, size) in runs}
    return build_table(results, attacks=(*FULL_ATTACKS, "autoattack")) if results else None


def missing_markdown(root: Path, runs: Runs, size: int) -> str:
    """The leaderboard's planned runs with no finished record yet, by method (the plan needs every tuning)."""
    records = {name: root / "tune" / f"width-{size}" / name / "tuning.json" for name in leaderboard_methods()}
    tunings = {name: read_json(path) if path.is_file() else {} for name, path in records.items()}
    if not all(record.get("final") for record in tunings.values()):
        return f"The leaderboard's tuning at width {size} is unfinished, so its runs are not yet planned.\n"
    scores = {name: record["chosen_score"] for name, record in tunings.items()}
    missing: dict[str, list[int]] = {}
    for name, seed in planned_runs(scores):
        if seed not in runs.get((name, size), {}):
            missing.setdefault(name, []).append(seed)
    if not missing:
        return "Every planned leaderboard run is finished.\n"
    rows = "".join(f"| {name} | {', '.join(map(str, seeds))} |\n" for name, seeds in missing.items())
    return ("Planned leaderboard runs not finished yet (the table above and the comparisons use only the finished "
            f"seeds; the step resumes them):\n\n| Method | Seeds missing |\n|---|---|\n{rows}")


def analysis(root: Path, draws: int) -> tuple[Runs, dict[str, Any]]:
    """The runs and every number of the analysis: means with intervals, the family of comparisons, the records."""
    runs = read_runs(root)
    per_image = tables(runs)
    size = read_json(root / "gap.json").get("size") if (root / "gap.json").is_file() else None
    third = read_json(root / "third.json")["third"] if (root / "third.json").is_file() else None
    means = {key: estimate.to_dict() for key in runs
             if (estimate := mean_interval(per_image, key, draws)) is not None}
    at_size = {name: means[(name, size)]["value"] for name in leaderboard_methods() if (name, size) in means}
    rows = analyse(per_image, planned_comparisons(WIDTHS, size, third, at_size), draws) if size else []
    return runs, {"size": size, "third": third, "means": means, "comparisons": rows,
                  "teacher": teacher_numbers(root)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="Stem of the outputs (<out>.md, <out>.json, ...).")
    parser.add_argument("--root", type=Path, default=HERE, help="The study's folder (default: studies/capacity).")
    parser.add_argument("--draws", type=int, default=DRAWS, help=f"Bootstrap draws (default {DRAWS}).")
    args = parser.parse_args(argv)
    runs, found = analysis(args.root, args.draws)
    methods = ["sat", "rslad", *([found["third"]] if found["third"] else [])]
    means = {tuple(key): value for key, value in found["means"].items()}
    command = "PYTHONPATH=. python studies/capacity/table.py " + " ".join(sys.argv[1:] if argv is None else argv)
    board = leaderboard_table(runs, found["size"]) if found["size"] else None
    markdown = (f"## The size G (validation only)\n\n{gap_markdown(args.root)}\n"
                f"## Capacity curve\n\n{capacity_markdown(runs, means, methods, found['teacher'])}\n"
                f"SAT below the teacher (test):\n\n{teacher_gap_markdown(runs, found['teacher'])}\n"
                + (f"## Leaderboard at width {found['size']}\n\n"
                   f"{ranking_markdown(runs, means, found['size'], found['comparisons'])}\n"
                   f"Every attack, mean ± std over seeds:\n\n{board.to_markdown() if board else ''}\n"
                   f"{missing_markdown(args.root, runs, found['size'])}\n" if found["size"] else "")
                + f"## Comparisons (Holm over the family)\n\n{comparisons_markdown(found['comparisons'])}\n"
                + f"## Tuning (validation only)\n\n{tuning_markdown(args.root)}\n"
                + f"Regenerate: `{command}`\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    summary = {"command": command, **found, "means": [[name, width, value] for (name, width), value in means.items()],
               "leaderboard": board.to_dict() if board else None}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    plot_capacity(means, methods, found["teacher"], args.out.with_name(args.out.name + "-capacity.png"))
    if board:
        plot_leaderboard(means, found["size"], found["teacher"], args.out.with_name(args.out.name + "-leaderboard.png"))
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
