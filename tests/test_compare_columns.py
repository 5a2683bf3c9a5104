"""A compare's black-box columns (transfer attacks on a surrogate loaded once, Square) and its worst-class column;
the committed studies, whose reports predate the inputs' labels, regenerate their tables byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from art_rslad.cli import main
from art_rslad.data import load_dataset
from art_rslad.distributed import current_world
from art_rslad.evaluation import RobustnessReport, evaluate_robustness
from art_rslad.experiments import columns as columns_module
from art_rslad.experiments.columns import by_method, table_columns, worst_class_accuracy, worst_class_attack
from art_rslad.experiments.compare import compare
from art_rslad.experiments.config import Config, TeacherConfig
from art_rslad.experiments.folders import RunResult, load_run, run_folder
from art_rslad.experiments.teachers import save_teacher
from art_rslad.experiments.train import RunSettings
from art_rslad.models import create_model, make_classifier
from art_rslad.report import ComparisonTable, build_table

STUDIES = Path(__file__).parents[1] / "studies"
FORMAT_1_REPORT = Path(__file__).parent / "data" / "report_format1.json"
ATTACKS = ("clean", "pgd_sat", "transfer_pgd", "transfer_cw")  # square: see the CLI test (slow on a robust student)
STUDENT = {"width": 4, "image_size": 8}


def tiny_config(**changes: Any) -> Config:
    """8x8 digits, a cnn-small student of 1.4k parameters, three epochs of PGD-2 on 640 images (about 4 s)."""
    return Config(**{"name": "test", "dataset": "digits", "student": "cnn-small", "nb_epochs": 3, "batch_size": 32,
                     "lr": 0.1,
                     "eps": 0.1, "eps_step": 0.05, "max_iter": 2, "teacher": TeacherConfig(source=""), **changes})


def tiny_settings(**changes: Any) -> RunSettings:
    return RunSettings(**{"train_size": 640, "val_size": 32, "test_size": 32, "attacks": ATTACKS,
                          "student_options": STUDENT, "checkpoint_interval": 0, "verbose": False, **changes})


def tiny_surrogate() -> Any:
    """A robust-model stand-in of another architecture than the student (max-pooling, no BatchNorm)."""
    torch.manual_seed(3)
    return make_classifier(create_model("cnn-pool", 10, width=4, hidden=16, image_size=8), "digits", device="cpu")


def test_compare_adds_the_black_box_columns_from_a_surrogate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    surrogate = tiny_surrogate()
    result = compare(tiny_config(), tmp_path, ["sat"], [0], tiny_settings(), surrogate=surrogate)

    markdown = (tmp_path / "comparison.md").read_text()
    assert "| Method | Checkpoint | Seeds | Clean | PGD_SAT | Transfer PGD | Transfer CW | Worst class (PGD_SAT) |" \
        in markdown
    assert "Transfer PGD and Transfer CW = PGD_SAT and CW_inf crafted on the given surrogate" in markdown
    assert "Worst class (PGD_SAT) = " in markdown
    run = result.runs[("sat", 0)]
    # The run evaluates what needs only the student; compare adds the transfer attacks.
    assert RobustnessReport.load(run.out_dir / "eval_best.json").attacks == ["clean", "pgd_sat"]
    assert (run.out_dir / "eval_best_transfer.npz").is_file() and not (run.out_dir / "eval_best_transfer.json").exists()
    for checkpoint in ("best", "last"):
        row = result.table.row("sat", checkpoint)
        assert set(row.cells) == set(ATTACKS) and row.worst_class is not None
        # The transfer cells are those of the checkpoint's weights attacked through the surrogate directly.
        student = make_classifier(create_model("cnn-small", 10, **STUDENT), "digits", device="cpu")
        student.model.load_state_dict(torch.load(run.checkpoints[checkpoint], weights_only=True)["model_state"])
        x, y = (array[:32] for array in load_dataset("digits", "test"))
        direct = evaluate_robustness(student, x, y, eps=0.1, attacks=("transfer_pgd", "transfer_cw"), batch_size=32,
                                     surrogate=surrogate, seed=0, verbose=False)
        assert {name: row.cells[name].mean for name in direct.accuracy} == direct.accuracy
        assert max(row.cells["transfer_pgd"].mean, row.cells["transfer_cw"].mean) <= row.cells["clean"].mean
        assert 0 <= row.worst_class.mean <= row.cells["pgd_sat"].mean < row.cells["clean"].mean

    def no_evaluation(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished transfer evaluation was run again")

    monkeypatch.setattr(columns_module, "evaluate_robustness_distributed", no_evaluation)
    resumed = compare(tiny_config(), tmp_path, ["sat"], [0], tiny_settings(resume=True), surrogate=surrogate)
    assert resumed.table.to_markdown() == markdown


def test_cli_black_box_flag_loads_the_configs_surrogate_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    save_teacher(tiny_surrogate(), tmp_path, "surrogate", architecture="cnn-pool", dataset="digits", eps=0.1,
                 metrics={}, training={}, seed=0, model_options={"width": 4, "hidden": 16})
    loads = []
    load = columns_module.load_teacher

    def counted_load(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return load(*args, **kwargs)

    monkeypatch.setattr(columns_module, "load_teacher", counted_load)
    tiny_config(nb_epochs=1).save(tmp_path / "config.toml")
    assert main(["compare", "--methods", "sat", "natural", "--config", str(tmp_path / "config.toml"), "--black-box",
                 "--set", f"transfer_surrogate={tmp_path / 'surrogate.pt'}", "--out", str(tmp_path / "cmp"),
                 "--attacks", "clean", "--train-size", "64", "--val-size", "16", "--test-size", "16",
                 "--student-option", "width=2", "--student-option", "image_size=8", "--checkpoint-interval", "0",
                 "--quiet"]) == 0
    assert loads == [(str(tmp_path / "surrogate.pt"), "digits")]
    printed = capsys.readouterr().out
    assert "| Clean | Transfer PGD | Transfer CW | Square | Worst class (Square) |" in printed
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["identity"]["attacks"] == [
        "clean", "transfer_pgd", "transfer_cw", "square"]


def test_transfer_attacks_need_a_surrogate_before_anything_trains(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"config key `transfer_surrogate` is empty"):
        compare(tiny_config(), tmp_path / "cmp", ["sat"], [0], tiny_settings())
    assert not (tmp_path / "cmp").exists()


def test_the_worst_class_column_is_autoattack_when_the_runs_evaluate_it() -> None:
    assert worst_class_attack(("clean", "autoattack", "pgd_sat", "transfer_pgd")) == "autoattack"
    assert worst_class_attack(("clean", "pgd_sat", "transfer_pgd", "square")) == "pgd_sat"
    assert worst_class_attack(("clean", "square", "transfer_cw")) == "square"


def test_a_report_without_labels_has_no_worst_class(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "eval_best.json").write_bytes(FORMAT_1_REPORT.read_bytes())
    run = RunResult(folder, "sat", tiny_config(), [], 1, {}, 0)
    assert worst_class_accuracy(run, "best", "clean") is None
    assert worst_class_accuracy(run, "last", "clean") is None  # no report at all


@pytest.mark.parametrize("study", ["digits-small", "digits"])
def test_committed_studies_regenerate_their_tables_byte_for_byte(study: str) -> None:
    """Their reports were written before reports kept the inputs' labels: no worst-class column, no new note."""
    folder = STUDIES / study
    marker = json.loads((folder / "compare.json").read_text())
    methods, seeds = marker["methods"], marker["seeds"]
    runs = {(method, seed): load_run(run_folder(folder, method, seed)) for method in methods for seed in seeds}
    settings = RunSettings(attacks=tuple(marker["identity"]["attacks"]))
    columns = table_columns(runs, settings, None, current_world())
    saved = ComparisonTable.from_dict(json.loads((folder / "comparison.json").read_text()))
    table = build_table(by_method(columns.accuracy, methods, seeds), attacks=settings.attacks, notes=saved.notes,
                        worst_class=by_method(columns.worst_class, methods, seeds),
                        worst_class_attack=columns.worst_class_attack)
    assert table.to_markdown() == (folder / "comparison.md").read_text()
    assert json.dumps(table.to_dict(), indent=2) + "\n" == (folder / "comparison.json").read_text()
