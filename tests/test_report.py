"""The comparison table (mean ± std over seeds, paper column order) and its PNG figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from art_rslad.report import ComparisonTable, build_table, plot_curves, plot_table_bars

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
