"""The paper's comparison table (best and last checkpoint x attacks, mean ± std over seeds), its notes and figures.

Pure functions of plain numbers, so a table can be rebuilt from the JSON files of finished runs::

    table = build_table({"rslad": {"best": [{"clean": 0.83, "autoattack": 0.51}], "last": [...]}, "sat": ...},
                        worst_class={"rslad": {"best": [0.22], "last": [...]}, "sat": ...})
    print(table.to_markdown())
    plot_table_bars(table, "final_table.png")
    plot_curves({"rslad": [history_seed0, history_seed1]}, "robust_accuracy_per_epoch.png")

The notes under a table (:func:`settings_notes`, :func:`training_time_note`, :func:`fixed_settings_notes`) are
built from plain data too: a config as a dict, histories as lists of per-epoch records.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend change), so they work
without a display and leave a user's matplotlib state alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from art_rslad.checkpoint import write_text_atomic

#: The columns of the paper's white-box table, in its order.
PAPER_ATTACKS: tuple[str, ...] = ("clean", "fgsm", "pgd_sat", "pgd_trades", "cw_inf", "autoattack")
#: The columns of the paper's black-box table: PGD and CW_inf transferred from a robust surrogate, and Square.
PAPER_BLACK_BOX_ATTACKS: tuple[str, ...] = ("transfer_pgd", "transfer_cw", "square")
#: Column titles as the paper writes them; other names are shown as they are.
ATTACK_LABELS: dict[str, str] = {
    "clean": "Clean", "fgsm": "FGSM", "pgd_sat": "PGD_SAT", "pgd_trades": "PGD_TRADES", "cw_inf": "CW_inf",
    "autoattack": "AA", "square": "Square", "transfer_pgd": "Transfer PGD", "transfer_cw": "Transfer CW",
    "worst_case": "Worst case",
}
#: The checkpoints the paper reports, in its order.
CHECKPOINTS: tuple[str, ...] = ("best", "last")
#: Per-epoch metrics written by the trainers' validation, with their axis titles.
CURVE_LABELS: dict[str, str] = {
    "val_pgd": "validation PGD-10 accuracy (%)", "val_clean": "validation clean accuracy (%)",
    "train_accuracy": "training accuracy (%)", "loss": "training loss",
}


def attack_label(name: str) -> str:
    """The column title of attack ``name`` (the paper's spelling where it has one)."""
    return ATTACK_LABELS.get(name, name)


@dataclass(frozen=True)
class Cell:
    """Accuracies (fractions in [0, 1]) of one method, checkpoint and attack over seeds.

    ``std`` is the sample standard deviation (ddof = 1); 0 for a single seed.
    """

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def format(self) -> str:
        """Percentages with two decimals, ``mean ± std`` when there is more than one seed."""
        if len(self.values) == 1:
            return f"{100 * self.mean:.2f}"
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}"


@dataclass(frozen=True)
class TableRow:
    """One row of the table: a method at one checkpoint, a :class:`Cell` per attack, and the worst class's.

    ``worst_class`` holds the lowest per-class accuracy of each seed's run; None where the table has no worst-class
    column or a run of this row does not know it.
    """

    method: str
    checkpoint: str
    cells: dict[str, Cell]
    worst_class: Cell | None = None


@dataclass
class ComparisonTable:
    """Robust accuracy of several methods, best and last checkpoints, over seeds.

    :param attacks: Column order (attack names of :func:`art_rslad.evaluate_robustness`).
    :param rows: Rows in method order, each method's checkpoints in :data:`CHECKPOINTS` order.
    :param notes: Lines printed under the markdown table (settings, how lr was chosen, ...).
    :param worst_class_attack: The attack whose worst-class accuracy is the last column; None for no such column.
    """

    attacks: tuple[str, ...]
    rows: list[TableRow]
    notes: list[str] = field(default_factory=list)
    worst_class_attack: str | None = None

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(row.method for row in self.rows))

    def row(self, method: str, checkpoint: str) -> TableRow:
        """The row of ``method`` at ``checkpoint``; ValueError naming the rows there are otherwise."""
        for row in self.rows:
            if (row.method, row.checkpoint) == (method, checkpoint):
                return row
        raise ValueError(f"No row for method {method!r} at checkpoint {checkpoint!r}; the table has "
                         + ", ".join(f"{r.method}/{r.checkpoint}" for r in self.rows) + ".")

    def to_markdown(self) -> str:
        """A markdown table: method, checkpoint, seeds, one column per attack, then the worst class (accuracy in %)."""
        worst = [] if self.worst_class_attack is None else [f"Worst class ({attack_label(self.worst_class_attack)})"]
        header = ["Method", "Checkpoint", "Seeds", *(attack_label(name) for name in self.attacks), *worst]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            seeds = max((len(cell.values) for cell in row.cells.values()), default=0)
            cells = [row.cells[name].format() if name in row.cells else "–" for name in self.attacks]
            if worst:
                cells.append("–" if row.worst_class is None else row.worst_class.format())
            lines.append("| " + " | ".join([row.method, row.checkpoint, str(seeds), *cells]) + " |")
        text = "\n".join(lines) + "\n"
        if self.notes:
            text += "\n" + "\n".join(self.notes) + "\n"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per row and attack the per-seed values, mean and std (fractions in [0, 1]); the worst-class
        entries only when the table has that column (a table without it is written as before)."""
        def cell_dict(cell: Cell) -> dict[str, Any]:
            return {"values": list(cell.values), "mean": cell.mean, "std": cell.std}

        def row_dict(row: TableRow) -> dict[str, Any]:
            worst = {} if self.worst_class_attack is None else {
                "worst_class": None if row.worst_class is None else cell_dict(row.worst_class)}
            return {"method": row.method, "checkpoint": row.checkpoint,
                    "cells": {name: cell_dict(cell) for name, cell in row.cells.items()}, **worst}

        worst_attack = {} if self.worst_class_attack is None else {"worst_class_attack": self.worst_class_attack}
        return {"attacks": list(self.attacks), **worst_attack, "rows": [row_dict(row) for row in self.rows],
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonTable:
        """Inverse of :meth:`to_dict`."""
        rows = [TableRow(row["method"], row["checkpoint"],
                         {name: Cell(tuple(cell["values"])) for name, cell in row["cells"].items()},
                         Cell(tuple(row["worst_class"]["values"])) if row.get("worst_class") else None)
                for row in data["rows"]]
        return cls(tuple(data["attacks"]), rows, list(data.get("notes", [])), data.get("worst_class_attack"))

    def save(self, folder: str | Path, stem: str = "comparison") -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.json`` into ``folder``; return their paths."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        markdown, data = target / f"{stem}.md", target / f"{stem}.json"
        write_text_atomic(self.to_markdown(), markdown)  # whole or not at all on a full disk
        write_text_atomic(json.dumps(self.to_dict(), indent=2) + "\n", data)
        return markdown, data


WorstClass = Mapping[str, Mapping[str, Sequence[float | None]]]


def build_table(
    results: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]],
    attacks: Sequence[str] | None = None,
    notes: Sequence[str] = (),
    *,
    worst_class: WorstClass | None = None,
    worst_class_attack: str = "autoattack",
) -> ComparisonTable:
    """Aggregate per-seed accuracies into a :class:`ComparisonTable`.

    :param results: ``results[method][checkpoint]`` is a list with one ``{attack: accuracy}`` dict per seed
        (accuracies as fractions in [0, 1]); checkpoints are ordered as in :data:`CHECKPOINTS`.
    :param attacks: Columns; by default the attacks of :data:`PAPER_ATTACKS` and :data:`PAPER_BLACK_BOX_ATTACKS`
        found in ``results``, then any other.
    :param notes: Lines to print under the table.
    :param worst_class: ``worst_class[method][checkpoint]`` is a list with each seed's lowest per-class accuracy
        under ``worst_class_attack``, None for a run that does not know it (a report without the inputs' labels).
        Given with at least one value, the table gets a last column (mean ± std over seeds, "–" where a seed's run
        does not know it) and a note saying what it is; None or no value at all: no column, no note.
    :param worst_class_attack: The attack of ``worst_class``.
    """
    if not results:
        raise ValueError("`results` is empty: pass at least one method with evaluated checkpoints.")
    found: dict[str, None] = {}
    for per_checkpoint in results.values():
        for seeds in per_checkpoint.values():
            for accuracies in seeds:
                found.update(dict.fromkeys(accuracies))
    if attacks is None:
        known = PAPER_ATTACKS + PAPER_BLACK_BOX_ATTACKS
        attacks = [name for name in known if name in found] + [name for name in found if name not in known]
    worst = {method: dict(per_checkpoint) for method, per_checkpoint in (worst_class or {}).items()}
    has_worst = any(value is not None for per in worst.values() for seeds in per.values() for value in seeds)
    rows = []
    for method, per_checkpoint in results.items():
        order = [c for c in CHECKPOINTS if c in per_checkpoint] + [c for c in per_checkpoint if c not in CHECKPOINTS]
        for checkpoint in order:
            seeds = per_checkpoint[checkpoint]
            cells = {}
            for name in attacks:
                values = tuple(float(accuracies[name]) for accuracies in seeds if name in accuracies)
                if values:
                    cells[name] = Cell(values)
            worst_seeds = worst.get(method, {}).get(checkpoint, [])
            known_worst = has_worst and bool(worst_seeds) and all(value is not None for value in worst_seeds)
            rows.append(TableRow(method, checkpoint, cells,
                                 Cell(tuple(map(float, worst_seeds))) if known_worst else None))
    if not has_worst:
        return ComparisonTable(tuple(attacks), rows, list(notes))
    missing = any(row.worst_class is None for row in rows)
    return ComparisonTable(tuple(attacks), rows, [*notes, worst_class_note(worst_class_attack, missing)],
                           worst_class_attack)


def worst_class_note(attack: str, missing: bool = False) -> str:
    """The note under a table with a worst-class column: what the column is, and what "–" means there.

    :param attack: The attack of the column.
    :param missing: Whether some run does not know its worst class.
    """
    label = attack_label(attack)
    return (f"Worst class ({label}) = each run's lowest per-class accuracy under {label} on the test images (the "
            "class may differ between seeds and checkpoints), mean ± sample std over seeds"
            + ("; – where a run's report does not hold its inputs' labels (written before reports kept them)."
               if missing else "."))


def settings_notes(config: Mapping[str, Any], milestones: Sequence[int], methods: Sequence[str], *,
                   teacher_source: str | None, train_size: int | None, nb_test: int, processes: int = 1) -> list[str]:
    """The notes that say how a table's runs were made: data, budget, student, teacher, optimiser, per-method lr,
    and what best and last mean.

    :param config: The runs' config as a dict (``Config.to_dict()``).
    :param milestones: The epochs after which the lr dropped (the config's milestones scaled to its epochs); under
        the cosine schedule (``lr_schedule = "cosine"``), the one epoch after which its decay started.
    :param methods: The table's methods, whose learning rates are listed.
    :param teacher_source: Where the teacher came from (None: no teacher).
    :param train_size: Training images per run (None: all).
    :param nb_test: Test images evaluated.
    :param processes: Processes that trained each run (the batch is per process).
    """
    batch = f"{config['batch_size']}" + (f" per process x {processes} processes" if processes > 1 else "")
    method_lr = config["method_lr"]
    return [
        f"Accuracy (%) on the first {nb_test} {config['dataset']} test images, L-inf eps {config['eps']:.4g}. "
        f"Student {config['student']}; teacher {teacher_source or 'none'}; {_count(config['nb_epochs'], 'epoch')}, "
        f"batch {batch}, SGD momentum {config['momentum']}, weight decay {config['weight_decay']}, "
        f"{_lr_schedule(config, milestones)}; training PGD eps_step {config['eps_step']:.4g}, "
        f"{_count(config['max_iter'], 'step')}; {train_size or 'all'} training images.",
        "Learning rate per method: " + ", ".join(
            f"{m} {method_lr.get(m, config['lr']):g}" + ("" if m in method_lr else
                                                         " (the config's lr; not in method_lr)")
            for m in methods)
        + (" (how they were chosen: the config's `method_lr_note`)" if config["method_lr_note"] else "") + ".",
        "best = the epoch with the highest PGD-10 accuracy on a validation split held out of the training set "
        "(never the test set); last = the final epoch.",
    ]


#: What each black-box column attacks with, for the note under a table that has it.
_BLACK_BOX_SOURCES: dict[str, str] = {"transfer_pgd": "PGD_SAT", "transfer_cw": "CW_inf"}


def black_box_note(attacks: Sequence[str], surrogate: str | None) -> list[str]:
    """The note on a table's black-box columns (none when it has none): what the transfer attacks are crafted on,
    and that Square only queries the student's predictions.

    :param attacks: The table's attacks.
    :param surrogate: Where the transfer attacks' surrogate came from (a teacher source).
    """
    transfer = [name for name in _BLACK_BOX_SOURCES if name in attacks]
    parts = [f"{' and '.join(map(attack_label, transfer))} = {' and '.join(_BLACK_BOX_SOURCES[n] for n in transfer)} "
             f"crafted on {f'the surrogate {surrogate}' if surrogate else 'the given surrogate'} and evaluated on the "
             "student"] if transfer else []
    if "square" in attacks:
        parts.append("Square = ART's SquareAttack, which only queries the student's predictions")
    return ["Black-box attacks: " + "; ".join(parts) + "."] if parts else []


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _lr_schedule(config: Mapping[str, Any], milestones: Sequence[int]) -> str:
    if config.get("lr_schedule") == "cosine":
        return f"lr on a cosine-times-Gaussian decay to 0 after epoch {milestones[0]}"
    gamma = config["lr_gamma"]
    if not milestones:
        return "constant lr"
    after = ", ".join(str(epoch) for epoch in milestones)
    return f"lr x{gamma} after epoch{'' if len(milestones) == 1 else 's'} {after}"


def training_time_note(histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]]) -> str:
    """Mean training seconds per epoch of each method (validation and checkpoints excluded), over epochs and seeds.

    :param histories: ``histories[method]`` is a list with one trainer history per seed.
    """
    def mean_seconds(runs: Sequence[Sequence[Mapping[str, float]]]) -> float:
        values = [record.get("train_seconds", record["seconds"]) for history in runs for record in history]
        return float(np.mean(values)) if values else float("nan")

    return "Training seconds per epoch (mean over epochs and seeds; validation excluded): " + ", ".join(
        f"{method} {mean_seconds(runs):.1f}" for method, runs in histories.items()) + "."


def fixed_settings_notes(fixed: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One note per method that runs as ART designed it: the shared settings its ART class fixes itself and so
    ignores (a scheduler, an optimizer), with what it does instead.

    :param fixed: Method -> its trainer's ``fixed_settings`` (setting -> what the ART class does instead); methods
        with none give no note.
    """
    return [f"{method} runs as ART designed it: " + "; ".join(f"{key}: {why}" for key, why in settings.items()) + "."
            for method, settings in fixed.items() if settings]


def _canvas(width: float, height: float) -> Any:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)
    return target


def plot_curves(
    histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    path: str | Path,
    metric: str = "val_pgd",
    title: str | None = None,
) -> Path:
    """Line plot of a per-epoch metric per method: the mean over seeds, shaded ± one std where seeds > 1.

    :param histories: ``histories[method]`` is a list with one trainer history per seed (a list of per-epoch
        records as in ``metrics.jsonl``, each with ``epoch`` and ``metric``).
    :param path: PNG file to write.
    :param metric: Key of the records to plot (``val_pgd``: validation PGD-10 accuracy).
    :param title: Figure title; a default names the metric.
    """
    figure = _canvas(6.4, 4.0)
    axes = figure.add_subplot()
    is_accuracy = metric != "loss"
    plotted = False
    for method, runs in histories.items():
        series: dict[int, list[float]] = {}
        for history in runs:
            for record in history:
                if metric in record and math.isfinite(record[metric]):
                    series.setdefault(int(record["epoch"]), []).append(float(record[metric]))
        if not series:
            continue
        epochs = sorted(series)
        values = [np.asarray(series[epoch]) * (100 if is_accuracy else 1) for epoch in epochs]
        mean = np.array([v.mean() for v in values])
        std = np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in values])
        axes.plot(epochs, mean, marker="o", label=method)
        if std.any():
            axes.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        plotted = True
    if not plotted:
        raise ValueError(f"No history holds the metric {metric!r}; per-epoch keys are e.g. "
                         f"{', '.join(CURVE_LABELS)} (validation metrics need validation data).")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel(CURVE_LABELS.get(metric, metric))
    axes.set_title(title or f"{CURVE_LABELS.get(metric, metric)} per epoch")
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_table_bars(table: ComparisonTable, path: str | Path, checkpoint: str = "best",
                    title: str | None = None) -> Path:
    """Grouped bar chart of one checkpoint's rows: attacks on the x axis, one bar per method, std as error bars.

    :param table: The comparison table.
    :param path: PNG file to write.
    :param checkpoint: ``"best"`` or ``"last"``.
    :param title: Figure title; a default names the checkpoint.
    """
    rows = [row for row in table.rows if row.checkpoint == checkpoint]
    if not rows:
        raise ValueError(f"The table has no rows for `checkpoint` {checkpoint!r}; it has "
                         f"{sorted({row.checkpoint for row in table.rows})}.")
    crowded = len(rows) > 4  # labels turn upright and the figure widens, so values stay readable
    figure = _canvas(max(6.4, len(table.attacks) * (0.5 + 0.17 * len(rows) if crowded else 1.1) + 3), 4.5)
    axes = figure.add_subplot()
    positions = np.arange(len(table.attacks))
    width = 0.8 / len(rows)
    colours = [figure_colour(index, len(rows)) for index in range(len(rows))]
    for index, row in enumerate(rows):
        means = [100 * row.cells[name].mean if name in row.cells else np.nan for name in table.attacks]
        stds = [100 * row.cells[name].std if name in row.cells else 0.0 for name in table.attacks]
        bars = axes.bar(positions + (index - (len(rows) - 1) / 2) * width, means, width, label=row.method,
                        yerr=stds if any(stds) else None, capsize=2 if crowded else 3, color=colours[index])
        axes.bar_label(bars, fmt="%.1f", fontsize=6 if crowded else 7, padding=2, rotation=90 if crowded else 0)
    axes.set_xticks(positions, [attack_label(name) for name in table.attacks])
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(0, 110 if crowded else 100)
    axes.set_yticks(range(0, 101, 20))
    axes.set_title(title or f"Accuracy under attack, {checkpoint} checkpoint")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _save(figure, path)


def figure_colour(index: int, count: int) -> Any:
    """Colour of the ``index``-th of ``count`` series: matplotlib's default cycle up to 10, tab20 beyond, so that
    no two methods share a colour."""
    return colormaps["tab10" if count <= 10 else "tab20"](index % 20)
