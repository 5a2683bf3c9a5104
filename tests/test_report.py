"""The comparison table (mean ± std over seeds, paper column order) and its PNG figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from art_rslad.experiments.config import get_preset
from art_rslad.report import ComparisonTable, black_box_note, build_table, plot_curves, plot_table_bars, settings_notes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RESULTS = {
    "rslad": {
        "last": [{"autoattack": 0.50, "clean": 0.80}, {"autoattack": 0.52, "clean": 0.82}],
        "best": [{"clean": 0.81, "autoattack": 0.51, "square": 0.6}, {"clean": 0.83, "autoattack": 0.55}],
    },
    "sat": {"best": [{"clean": 0.85, "autoattack": 0.45}, {"clean": 0.84, "autoattack": 0.47}]},
}


def test_table_aggregates_seeds_in_the_papers_order() -> None:
    table = build_table(RESULTS, notes=["lr from the preset"])
    assert table.attacks == ("clean", "autoattack", "square")
    assert [(row.method, row.checkpoint) for row in table.rows] == [("rslad", "best"), ("rslad", "last"),
                                                                    ("sat", "best")]
    cell = table.row("rslad", "best").cells["autoattack"]
    assert cell.mean == pytest.approx(0.53)
    assert cell.std == pytest.approx(np.std([0.51, 0.55], ddof=1))
    assert table.row("rslad", "best").cells["square"].format() == "60.00"  # one seed: no ± part

    markdown = table.to_markdown()
    lines = markdown.splitlines()
    assert lines[0] == "| Method | Checkpoint | Seeds | Clean | AA | Square |"
    assert lines[2] == "| rslad | best | 2 | 82.00 ± 1.41 | 53.00 ± 2.83 | 60.00 |"
    assert lines[4].endswith("| – |")  # sat was not run under square
    assert markdown.rstrip().endswith("lr from the preset")


def test_table_round_trips_through_json(tmp_path: Path) -> None:
    table = build_table(RESULTS)
    markdown_path, json_path = table.save(tmp_path, "table")
    restored = ComparisonTable.from_dict(json.loads(json_path.read_text()))
    assert restored.to_markdown() == table.to_markdown() == markdown_path.read_text()
    assert restored.to_dict()["rows"][0]["cells"]["clean"]["values"] == [0.81, 0.83]


WORST_CLASS = {"rslad": {"best": [0.30, 0.34], "last": [0.28, None]}, "sat": {"best": [0.20, 0.22]}}


def test_worst_class_column_is_the_mean_over_seeds_of_each_runs_worst_class(tmp_path: Path) -> None:
    table = build_table(RESULTS, notes=["lr from the preset"], worst_class=WORST_CLASS)
    assert table.worst_class_attack == "autoattack"
    assert table.row("rslad", "best").worst_class.mean == pytest.approx(0.32)
    assert table.row("rslad", "last").worst_class is None  # a seed's report had no labels
    lines = table.to_markdown().splitlines()
    assert lines[0] == "| Method | Checkpoint | Seeds | Clean | AA | Square | Worst class (AA) |"
    assert lines[2] == "| rslad | best | 2 | 82.00 ± 1.41 | 53.00 ± 2.83 | 60.00 | 32.00 ± 2.83 |"
    assert lines[3].endswith("| – | – |") and lines[4].endswith("| 21.00 ± 1.41 |")
    assert lines[-1].startswith("Worst class (AA) = each run's lowest per-class accuracy under AA")
    assert "– where a run's report does not hold its inputs' labels" in lines[-1]
    assert lines[-2] == "lr from the preset"
    _, json_path = table.save(tmp_path, "table")
    restored = ComparisonTable.from_dict(json.loads(json_path.read_text()))
    assert restored.to_markdown() == table.to_markdown() and restored.to_dict() == table.to_dict()


def test_no_known_worst_class_gives_the_table_without_it() -> None:
    """Runs whose reports predate the inputs' labels: the table is exactly the one built without worst classes."""
    unknown = {method: {name: [None] * len(seeds) for name, seeds in per.items()} for method, per in RESULTS.items()}
    old = build_table(RESULTS, notes=["lr"])
    for table in (build_table(RESULTS, notes=["lr"], worst_class=unknown), build_table(RESULTS, notes=["lr"],
                                                                                      worst_class={})):
        assert table.to_markdown() == old.to_markdown()
        assert json.dumps(table.to_dict()) == json.dumps(old.to_dict())
        assert "worst_class" not in json.dumps(table.to_dict())


def test_black_box_columns_come_after_the_white_box_ones_with_a_note() -> None:
    table = build_table({"sat": {"best": [{"square": 0.6, "transfer_cw": 0.7, "clean": 0.8, "transfer_pgd": 0.65}]}})
    assert table.attacks == ("clean", "transfer_pgd", "transfer_cw", "square")
    header = table.to_markdown().splitlines()[0]
    assert header == "| Method | Checkpoint | Seeds | Clean | Transfer PGD | Transfer CW | Square |"
    assert black_box_note(table.attacks, "zoo:fashion-mnist-cnn-pool") == [
        "Black-box attacks: Transfer PGD and Transfer CW = PGD_SAT and CW_inf crafted on the surrogate "
        "zoo:fashion-mnist-cnn-pool and evaluated on the student; Square = ART's SquareAttack, which only queries "
        "the student's predictions."]
    assert black_box_note(("clean", "transfer_cw"), "robustbench:Engstrom2019Robustness") == [
        "Black-box attacks: Transfer CW = CW_inf crafted on the surrogate robustbench:Engstrom2019Robustness and "
        "evaluated on the student."]
    assert black_box_note(("clean", "autoattack"), "") == []


def test_table_rejects_empty_results_and_unknown_rows() -> None:
    with pytest.raises(ValueError, match="results"):
        build_table({})
    with pytest.raises(ValueError, match="sat/best"):
        build_table(RESULTS).row("ard", "best")


def test_figures_are_png_files(tmp_path: Path) -> None:
    histories = {"rslad": [[{"epoch": 1, "val_pgd": 0.3}, {"epoch": 2, "val_pgd": 0.4}],
                           [{"epoch": 1, "val_pgd": 0.35}, {"epoch": 2, "val_pgd": 0.42}]],
                 "sat": [[{"epoch": 1, "val_pgd": 0.2}, {"epoch": 2, "val_pgd": 0.3}]]}
    curves = plot_curves(histories, tmp_path / "figures" / "curves.png")
    bars = plot_table_bars(build_table(RESULTS), tmp_path / "bars.png", checkpoint="last")
    for path in (curves, bars):
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_figures_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_pgd"):
        plot_curves({"sat": [[{"epoch": 1, "loss": 1.0}]]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="checkpoint"):
        plot_table_bars(build_table({"sat": {"best": [{"clean": 0.9}]}}), tmp_path / "x.png", checkpoint="last")


def test_a_tables_lr_note_is_one_short_line_that_points_to_the_explanation() -> None:
    config = get_preset("fashion-mnist")
    notes = settings_notes(config.to_dict(), config.milestones_for(), ["sat", "rslad"], teacher_source=None,
                           train_size=None, nb_test=10)
    line = next(note for note in notes if note.startswith("Learning rate per method"))
    assert config.method_lr_note not in line and line.endswith("(how they were chosen: the config's "
                                                               "`method_lr_note`).")
    assert len(line) < 200
