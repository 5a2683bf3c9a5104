"""The ``table`` step of the long-schedule study: the analysis that PREREGISTRATION.md fixes, from the run folders.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python studies/long-schedule/table.py studies/long-schedule/digits-small \
        --out docs/results-long-schedule-digits-small
    studies/long-schedule/run.sh digits-small table     # the same; fashion-mnist adds --full-test

The part's folder holds one ``art-rslad compare`` per seed (``seed-S/``); only finished runs are read. Written:
``<out>.md`` (to paste into docs/results.md) and ``<out>.json`` with the same numbers, ``<out>-curves.png`` (validation
PGD-10 accuracy per epoch, mean over seeds, with the test AA of the best and last checkpoints as points) and
``<out>-bars.png`` (AA of the best checkpoint, mean ± sample std over seeds).

- Per method and checkpoint: mean ± sample std over seeds of every attack; the best epoch of each seed as its run
  recorded it (run.json: the highest validation PGD-10 accuracy, chosen by the trainer); AA(best) - AA(last).
- Per hypothesis: the per-seed paired differences (seeds where both runs finished), their mean, the two-sided 95%
  t-interval (n - 1 degrees of freedom) and the verdict: holds where the interval excludes 0 in the predicted
  direction, contradicted where it excludes 0 in the other one, not resolved at this size otherwise (and with fewer
  than two seeds).

``--full-test`` (part B) first evaluates each finished run's best and last checkpoints under clean to CW_inf on the
whole test set with studies/full_test.py's evaluation (resumable: ``full_best``/``full_last`` reports in each run
folder) and takes those columns from there, AA from the run's own evaluation on its ``--test-size`` images.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from art_rslad.data import load_dataset, train_val_split
from art_rslad.evaluation import RobustnessReport
from art_rslad.experiments.config import Config
from art_rslad.experiments.folders import load_run_history, read_json
from art_rslad.experiments.variants import parse_method
from art_rslad.report import (
    CHECKPOINTS,
    PAPER_ATTACKS,
    Cell,
    ComparisonTable,
    build_table,
    figure_colour,
    plot_table_bars,
    settings_notes,
)
from studies.full_test import FULL_ATTACKS, evaluate_run, finished_runs, teacher_numbers
from studies.stats import CONTRADICTED as CONTRADICTED  # the verdict words, re-exported for this study's test
from studies.stats import HOLDS as HOLDS
from studies.stats import LEVEL, all_verdict, t_interval, verdict
from studies.stats import NOT_RESOLVED as NOT_RESOLVED

#: SAT's least gap below the teacher (PGD accuracy) for the paper's claim to be tested.
CLEAR_GAP = 0.07


@dataclass(frozen=True)
class Run:
    """A finished run: its best epoch as the trainer chose it, test accuracy per checkpoint and attack, its epochs."""

    best_epoch: int
    accuracy: dict[str, dict[str, float]]
    history: list[dict[str, float]]


Runs = dict[str, dict[int, Run]]  # method -> seed -> run


def best_aa(run: Run) -> float:
    return run.accuracy["best"]["autoattack"]


def aa_drop(run: Run) -> float:
    """H2's quantity: AA(best) - AA(last)."""
    return run.accuracy["best"]["autoattack"] - run.accuracy["last"]["autoattack"]


QUANTITIES: dict[str, tuple[Callable[[Run], float], str]] = {
    "aa": (best_aa, "AA"), "aa_drop": (aa_drop, "(AA best - AA last)")}
#: The preregistered comparisons: hypothesis, quantity, method, the method subtracted, predicted sign. One whose
#: methods are not both in a part is not made there (part B has no adaiad).
COMPARISONS: tuple[tuple[str, str, str, str, int], ...] = (
    ("H1", "aa", "rslad", "sat", 1), ("H1", "aa", "rslad", "ard", 1), ("H2", "aa_drop", "rslad", "sat", -1),
    ("H3", "aa", "rslad+igdm", "rslad", 1), ("H3", "aa", "adaiad+igdm", "adaiad", 1),
    ("H4", "aa", "sat+ema", "sat", 1), ("H4", "aa", "rslad+ema", "rslad", 1))


def differences(runs: Runs, quantity: str, method: str, baseline: str) -> dict[int, float]:
    """Per seed where both finished: quantity(method) - quantity(baseline)."""
    value = QUANTITIES[quantity][0]
    first, second = runs.get(method, {}), runs.get(baseline, {})
    return {seed: value(first[seed]) - value(second[seed]) for seed in sorted(first.keys() & second.keys())}


@dataclass(frozen=True)
class Comparison:
    """One preregistered paired comparison and its per-seed differences (fractions)."""

    hypothesis: str
    quantity: str
    method: str
    baseline: str
    predicted: int
    differences: dict[int, float]

    @property
    def label(self) -> str:
        name = QUANTITIES[self.quantity][1]
        return f"{name}({self.method}) - {name}({self.baseline})"

    @property
    def interval(self) -> tuple[float, float] | None:
        return t_interval(list(self.differences.values()))

    @property
    def verdict(self) -> str:
        return verdict(self.interval, self.predicted)

    def to_dict(self) -> dict[str, Any]:
        values = list(self.differences.values())
        return {"hypothesis": self.hypothesis, "comparison": self.label, "predicted_sign": self.predicted,
                "seeds": list(self.differences), "differences": values,
                "mean": float(np.mean(values)) if values else None, "interval": self.interval,
                "level": LEVEL, "verdict": self.verdict}


def comparisons(runs: Runs, methods: Sequence[str]) -> list[Comparison]:
    """The preregistered comparisons whose two methods are among the part's ``methods``."""
    return [Comparison(hypothesis, quantity, method, baseline, sign, differences(runs, quantity, method, baseline))
            for hypothesis, quantity, method, baseline, sign in COMPARISONS
            if method in methods and baseline in methods]


def best_distillation(runs: Runs) -> str | None:
    """H4's "best distillation method": the highest mean AA (best checkpoint) among the finished methods that
    distil from the teacher (the registry's family "distillation"; IGDM included, weight averaging not)."""
    candidates = [method for method in runs if parse_method(method).method.family == "distillation"
                  and not parse_method(method).weight_averaging]
    return max(candidates, key=lambda method: np.mean([best_aa(run) for run in runs[method].values()]), default=None)


def study_runs(part: Path) -> tuple[dict[str, Any], list[str], dict[str, dict[int, Path]]]:
    """The identity the part's compares share, the part's methods in order, and the finished runs' folders."""
    folders = sorted(path.parent for path in part.glob("seed-*/compare.json"))
    if not folders:
        raise SystemExit(f"No compare (seed-*/compare.json) in {part}.")
    identity = read_json(folders[0] / "compare.json")["identity"]
    methods: list[str] = []
    found: dict[str, dict[int, Path]] = {}
    for folder in folders:
        marker = read_json(folder / "compare.json")
        if marker["identity"] != identity:
            raise SystemExit(f"{folder} was made with other settings than {folders[0]}; one table takes one setting.")
        methods += [method for method in marker["methods"] if method not in methods]
        for method, seeds in finished_runs(folder).items():
            found.setdefault(method, {}).update(seeds)
    return identity, methods, {method: dict(sorted(found[method].items())) for method in methods if method in found}


def read_run(folder: Path, test: tuple[np.ndarray, np.ndarray] | None, verbose: bool) -> Run:
    """A finished run: the compare's reports, or with ``test`` the whole-test-set ones (evaluated if need be)."""
    marker = read_json(folder / "run.json")
    if test is None:
        accuracy = {name: RobustnessReport.load(folder / f"eval_{name}.json").accuracy for name in CHECKPOINTS}
    else:
        accuracy = evaluate_run(folder, *test, FULL_ATTACKS, verbose)
    return Run(int(marker["best_epoch"]), accuracy, load_run_history(folder))


def count_seeds(count: int) -> str:
    return f"{count} seed" + ("" if count == 1 else "s")


def points(values: Sequence[float], signed: bool = True) -> str:
    return ", ".join(f"{100 * value:{'+' if signed else ''}.2f}" for value in values)


def methods_table(runs: Runs) -> ComparisonTable:
    """The table of methods: per checkpoint and attack, mean ± sample std over seeds."""
    return build_table({method: {name: [run.accuracy[name] for run in seeds.values()] for name in CHECKPOINTS}
                        for method, seeds in runs.items()}, attacks=PAPER_ATTACKS)


def best_val_pgd(run: Run) -> float:
    """The validation PGD-10 accuracy of the run's best epoch, from its own records."""
    found = [record["val_pgd"] for record in run.history if record["epoch"] == run.best_epoch]
    if not found:
        raise ValueError(f"The run's metrics.jsonl has no record of its best epoch {run.best_epoch} (run.json's "
                         "best_epoch); the run folder is incomplete: train the run again or restore the file.")
    return found[0]


def epochs_markdown(runs: Runs) -> str:
    """The best epoch of each seed (as the run recorded it), its validation PGD-10 and AA(best) - AA(last), per
    method."""
    lines = ["| Method | Seeds | Best epoch (seed: epoch) | Validation PGD-10 at the best epoch | "
             "AA best - last (points) |", "|---|---|---|---|---|"]
    for method, seeds in runs.items():
        epochs = ", ".join(f"{seed}: {run.best_epoch}" for seed, run in seeds.items())
        val = Cell(tuple(best_val_pgd(run) for run in seeds.values())).format()
        drop = Cell(tuple(aa_drop(run) for run in seeds.values())).format()
        lines.append(f"| {method} | {', '.join(map(str, seeds))} | {epochs} | {val} | {drop} |")
    return "\n".join(lines) + "\n"


def comparisons_markdown(found: Sequence[Comparison]) -> str:
    """The table of paired differences, their intervals and verdicts, and H1's verdict over its two."""
    lines = ["| Hypothesis | Paired difference | Predicted | Seeds | Per seed (points) | Mean | "
             f"{100 * LEVEL:g}% t-interval | Verdict |", "|---|---|---|---|---|---|---|---|"]
    for item in found:
        values = list(item.differences.values())
        mean = points([float(np.mean(values))]) if values else "–"
        interval = "–" if item.interval is None else f"[{points(item.interval)}]"
        lines.append(f"| {item.hypothesis} | {item.label} | {'> 0' if item.predicted > 0 else '< 0'} | "
                     f"{len(values)} ({', '.join(map(str, item.differences)) or 'none'}) | {points(values) or '–'} | "
                     f"{mean} | {interval} | {item.verdict} |")
    h1 = all_verdict([item.verdict for item in found if item.hypothesis == "H1"])
    return "\n".join(lines) + f"\n\nH1 (both of its comparisons): **{h1}**. H2 to H4: comparison by comparison.\n"


def teacher_note(source: str, runs: Runs) -> tuple[str, dict[str, Any]]:
    """The teacher's numbers (its zoo card) and SAT's gap below it in PGD_SAT accuracy, best checkpoint."""
    if not source.startswith("zoo:"):
        return f"The teacher {source} has no zoo card: its gap to SAT is not reported.", {}
    teacher = teacher_numbers(source)
    pgd, _ = teacher["pgd_sat"]
    sat = [run.accuracy["best"]["pgd_sat"] for run in runs.get("sat", {}).values()]
    head = f"Teacher {source} (its card, on the first N test images): " + ", ".join(
        f"{name} {100 * value:.2f} (N={images:,})" for name, (value, images) in teacher.items())
    if not sat:
        return head + "; no finished SAT run to compare with yet.", {"teacher": teacher}
    gap = pgd - float(np.mean(sat))
    reading = ("at least 7 points: the paper's claim is tested here." if gap >= CLEAR_GAP else
               "under 7 points: SAT leaves no clear gap, so this part does not test the paper's claim (about students "
               "too small to learn robustness alone); its verdicts are this setting's.")
    text = (f"{head}. Teacher PGD_SAT minus SAT's (best checkpoint, {Cell(tuple(sat)).format()} over "
            f"{count_seeds(len(sat))}): {100 * gap:.2f} points, {reading}")
    return text, {"teacher": teacher, "teacher_minus_sat_pgd_sat": gap}


def h4_note(runs: Runs) -> tuple[str, dict[str, Any]]:
    """Which method is H4's best distillation method, and its per-seed AA gap to SAT and to SAT+EMA."""
    best = best_distillation(runs)
    if best is None:
        return "H4: no distillation method has a finished run yet.", {}
    gaps = {name: differences(runs, "aa", best, name) for name in ("sat", "sat+ema")}
    text = "; ".join(f"AA({best}) - AA({name}) {Cell(tuple(gap.values())).format()} points ({count_seeds(len(gap))})"
                     if gap else f"AA({best}) - AA({name}): no seed with both finished" for name, gap in gaps.items())
    return (f"H4: the best distillation method by mean AA (best checkpoint; the methods that distil from the teacher, "
            f"IGDM included, weight averaging not) is {best}. Per seed, {text}; the gap shrinks by AA(sat+ema) - "
            "AA(sat), H4's first row."), {"best_distillation": best, "h4_gaps": gaps}


def training_images(config: Config, train_size: int | None) -> int:
    """How many images each run trained on: the first ``train_size`` of the training part of its split."""
    x, y = load_dataset(config.dataset, "train")
    return len(train_val_split(x, y, config.val_fraction, config.seed)[0][:train_size])


def hypothesis_notes(source: str, runs: Runs, found: Sequence[Comparison]) -> tuple[list[str], dict[str, Any]]:
    """The notes beside the table of comparisons, and the teacher's and H4's numbers for the JSON."""
    teacher_text, teacher = teacher_note(source, runs)
    h4_text, h4 = h4_note(runs)
    return [f"{len(found)} comparisons, no correction for multiple comparisons; each takes the seeds where both of "
            "its runs finished (same seed, same test images). Differences and intervals in points of accuracy.",
            teacher_text, h4_text], {**teacher, **h4}


def setting_notes(identity: Mapping[str, Any], methods: Sequence[str], runs: Runs, nb_full: int) -> list[str]:
    """The notes on how the runs were made and evaluated, and which seeds each method has."""
    config = Config.from_dict(identity["config"])
    missing = [method for method in methods if method not in runs]
    return [
        *settings_notes(config.to_dict(), config.milestones_for(), methods, teacher_source=config.teacher.source,
                        train_size=training_images(config, identity["train_size"]), nb_test=nb_full),
        f"Student options {identity['student_options']}; {identity['val_size']} validation images. Clean to CW_inf "
        f"on the first {nb_full:,} test images, AA (standard) on the first {identity['test_size']:,} (the runs' own "
        "evaluation).",
        "Seeds (finished runs): " + "; ".join(f"{method} {', '.join(map(str, seeds))}"
                                             for method, seeds in runs.items())
        + (f"; no finished run yet: {', '.join(missing)}" if missing else "") + ". Mean ± sample std over seeds.",
    ]


def mean_curve(histories: Sequence[Sequence[Mapping[str, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and the mean over runs of their validation PGD-10 accuracy."""
    by_epoch: dict[int, list[float]] = {}
    for history in histories:
        for record in history:
            by_epoch.setdefault(int(record["epoch"]), []).append(float(record["val_pgd"]))
    epochs = sorted(by_epoch)
    return np.array(epochs), np.array([np.mean(by_epoch[epoch]) for epoch in epochs])


def plot_overfitting(runs: Runs, path: Path, title: str) -> Path:
    """Validation PGD-10 accuracy per epoch (mean over seeds), and the test AA of the best and last checkpoints as
    points (mean over seeds, at the mean best epoch and at the last epoch): test numbers exist for those two only."""
    figure = Figure(figsize=(10, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (method, seeds) in enumerate(runs.items()):
        colour = figure_colour(index, len(runs))
        epochs, curve = mean_curve([run.history for run in seeds.values()])
        axes.plot(epochs, 100 * curve, color=colour, linewidth=0.8, label=method)
        at = {"best": [run.best_epoch for run in seeds.values()],
              "last": [run.history[-1]["epoch"] for run in seeds.values()]}
        for (checkpoint, epochs_at), marker in zip(at.items(), "os", strict=True):
            aa = np.mean([run.accuracy[checkpoint]["autoattack"] for run in seeds.values()])
            axes.plot(np.mean(epochs_at), 100 * aa, marker, color=colour, markeredgecolor="black")
    handles = [*axes.get_legend_handles_labels()[0], *(
        Line2D([], [], color="grey", marker=marker, markeredgecolor="black", linestyle="", label=label)
        for marker, label in (("o", "test AA, best checkpoint\n(at the mean best epoch)"),
                              ("s", "test AA, last checkpoint")))]
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes.set_xlabel("epoch")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=120)
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", type=Path,
                        help="The part's folder of compares, e.g. studies/long-schedule/digits-small.")
    parser.add_argument("--out", type=Path, required=True,
                        help="Stem of the outputs: <out>.md, <out>.json, <out>-curves.png, <out>-bars.png.")
    parser.add_argument("--full-test", action="store_true",
                        help="Clean to CW_inf on the whole test set (evaluated first where not yet, resumably), AA "
                             "from the runs' own evaluation: part B's evaluation.")
    parser.add_argument("--verbose", action="store_true", help="Progress bars of the --full-test evaluation.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    identity, methods, folders = study_runs(args.part)
    if not folders:
        raise SystemExit(f"No finished run in {args.part}.")
    test = load_dataset(Config.from_dict(identity["config"]).dataset, "test") if args.full_test else None
    runs = {method: {seed: read_run(folder, test, args.verbose) for seed, folder in seeds.items()}
            for method, seeds in folders.items()}
    found = comparisons(runs, methods)
    nb_full = identity["test_size"] if test is None else len(test[0])
    beside, extra = hypothesis_notes(Config.from_dict(identity["config"]).teacher.source, runs, found)
    note_lines = setting_notes(identity, methods, runs, nb_full)
    command = "PYTHONPATH=. python studies/long-schedule/table.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = methods_table(runs)
    markdown = (f"## Long-schedule study: {args.part.name}\n\n### Methods\n\n{table.to_markdown()}\n"
                f"{epochs_markdown(runs)}\n### Hypotheses\n\n{comparisons_markdown(found)}\n"
                + "".join(f"- {line}\n" for line in beside) + "\n### Notes\n\n"
                + "\n".join(f"- {line}" for line in note_lines)
                + f"\n\nRegenerate (the `table` step of studies/long-schedule/run.sh): `{command}`\n")
    summary = {"command": command, "part": args.part.name, "table": table.to_dict(),
               "best_epoch": {method: {seed: run.best_epoch for seed, run in seeds.items()}
                              for method, seeds in runs.items()},
               "best_val_pgd": {method: {seed: best_val_pgd(run) for seed, run in seeds.items()}
                                for method, seeds in runs.items()},
               "aa_best_minus_last": {method: {seed: aa_drop(run) for seed, run in seeds.items()}
                                      for method, seeds in runs.items()},
               "comparisons": [item.to_dict() for item in found], "nb_comparisons": len(found),
               "h1": all_verdict([item.verdict for item in found if item.hypothesis == "H1"]),
               "nb_full_test": nb_full, "nb_autoattack": identity["test_size"], **extra, "hypothesis_notes": beside,
               "notes": note_lines}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    nb_val = identity["val_size"]
    plot_overfitting(runs, args.out.with_name(args.out.name + "-curves.png"),
                     f"{args.part.name}: validation PGD-10 accuracy per epoch (lines; {nb_val} validation images)\n"
                     "and test AA of the best and last checkpoints (points); means over seeds")
    aa = build_table({method: {"best": [run.accuracy["best"] for run in seeds.values()]}
                      for method, seeds in runs.items()}, attacks=("autoattack",))
    plot_table_bars(aa, args.out.with_name(args.out.name + "-bars.png"), "best",
                    f"{args.part.name}: AA of the best checkpoint\n(mean ± sample std over seeds)")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
