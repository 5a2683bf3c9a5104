"""`art-rslad train`, `compare` and `demo` from the command line: outputs, exit codes and messages."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_runs import tiny_config

from art_rslad.cli import build_parser, main
from art_rslad.cli.options import config_from_args
from art_rslad.experiments.demo import demo
from art_rslad.models import create_model
from art_rslad.trainers.registry import METHODS
from bench.gpu_paths import interrupted_at

TINY = ["--train-size", "48", "--val-size", "16", "--test-size", "16", "--attacks", "clean", "fgsm",
        "--student-option", "width=2", "--student-option", "image_size=8", "--checkpoint-interval", "0", "--quiet"]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tiny_config().save(tmp_path / "tiny.json")


def train(config_file: Path, out: Path, *extra: str) -> int:
    return main(["train", "--method", "sat", "--config", str(config_file), "--out", str(out), *TINY, *extra])


def test_train_prints_the_table_and_refuses_to_clobber(config_file: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert train(config_file, out, "--set", "nb_epochs=1") == 0
    printed = capsys.readouterr().out
    assert "| sat | best | 1 |" in printed and "student.pt" in printed
    assert json.loads((out / "run.json").read_text())["identity"]["config"]["nb_epochs"] == 1

    assert train(config_file, out, "--set", "nb_epochs=1") == 2
    error = capsys.readouterr().err
    assert "already holds a run. Pass --resume to continue it, --overwrite to replace it" in error
    assert "=True" not in error
    assert train(config_file, out, "--set", "nb_epochs=2", "--resume") == 2
    assert "nb_epochs: folder 1, now 2" in capsys.readouterr().err
    assert train(config_file, out, "--set", "nb_epoch=2") == 2
    assert "Unknown config key `nb_epoch`" in capsys.readouterr().err


def test_ctrl_c_then_resume(config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    with interrupted_at(4):
        assert train(config_file, tmp_path / "run") == 130
    assert "--resume" in capsys.readouterr().err
    assert train(config_file, tmp_path / "run", "--resume") == 0
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_disk_full_is_reported_and_resumable(config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", disk_full)
        assert train(config_file, tmp_path / "run") == 2
    error = capsys.readouterr().err
    assert "No space left on device" in error and "[Errno" not in error and error.count("--resume") == 1
    assert train(config_file, tmp_path / "run", "--resume") == 0


def test_compare_names_unknown_methods(config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--methods", "sat", "madry", "--config", str(config_file), "--out",
                 str(tmp_path / "cmp"), *TINY]) == 2
    assert "unknown or no methods ['madry']" in capsys.readouterr().err


def test_compare_writes_the_table(config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--methods", "sat", "trades", "--seeds", "0", "1", "--config", str(config_file),
                 "--set", "nb_epochs=1", "--out", str(tmp_path / "cmp"), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "| trades | last | 2 |" in printed and "final_table_best.png" in printed
    assert (tmp_path / "cmp" / "comparison.md").read_text() in printed


@pytest.mark.parametrize("black_box", [False, True])
def test_demo_end_to_end_at_toy_size(tmp_path: Path, black_box: bool) -> None:
    result = demo(tmp_path / "demo", train_size=32, nb_epochs=1, val_size=8, test_size=4, teacher_train_size=32,
                  teacher_nb_epochs=1, verbose=False, black_box=black_box)
    assert [row.method for row in result.table.rows] == ["sat", "sat", "rslad", "rslad"]
    assert "autoattack" in result.table.attacks
    black_box_columns = {"transfer_pgd", "transfer_cw", "square"}
    assert black_box_columns <= set(result.table.attacks) if black_box else not black_box_columns & set(
        result.table.attacks)
    assert all(path.is_file() for path in result.figures)


def test_list_shows_the_registered_methods(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    assert "Methods (name, family, networks beside the student (* trained with it), paper):" in printed
    rslad = next(line for line in printed.splitlines() if line.split()[:1] == ["rslad"])
    assert rslad.split()[1:3] == ["distillation", "teacher"] and "Zi et al., ICCV 2021" in rslad
    assert all(any(line.split()[:1] == [name] for line in printed.splitlines()) for name in METHODS)


def test_train_runs_variants_and_peeraid_and_refuses_what_a_method_cannot_take(
        config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def train_method(method: str, out: str, *extra: str) -> int:
        return main(["train", "--method", method, "--config", str(config_file), "--out", str(tmp_path / out),
                     "--set", "nb_epochs=1", *TINY, *extra])

    assert train_method("sat+ema", "sat-ema") == 0
    assert "| sat+ema | best | 1 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "sat-ema" / "run.json").read_text())["identity"]["trainer_options"] == {
        "weight_averaging": "ema"}
    assert train_method("sat", "sat-set", "--set", "weight_averaging=ema") == 0
    assert json.loads((tmp_path / "sat-set" / "run.json").read_text())["identity"]["trainer_options"] == {
        "weight_averaging": "ema"}
    assert train_method("peeraid", "peeraid") == 0  # no teacher in the config: none is needed
    assert (tmp_path / "peeraid" / "peer.pt").is_file() and "| peeraid | best | 1 |" in capsys.readouterr().out

    with pytest.raises(SystemExit):
        train_method("sat+igdm", "never")
    assert "sat is not a teacher-student distillation method" in capsys.readouterr().err
    assert train_method("sat", "never", "--set", "igdm_alpha=1") == 2
    assert "sets igdm_alpha=1, but sat is not" in capsys.readouterr().err
    assert train_method("art-madry-pgd", "never", "--set", "weight_averaging=swa") == 2
    assert "runs ART's own training loop" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_compare_and_tune_take_variants(config_file: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    teacher = tmp_path / "teacher.pt"  # a state dict: the default cnn-small on 8x8 digits, 9,834 parameters
    torch.manual_seed(1)
    torch.save(create_model("cnn-small", 10, input_shape=(1, 8, 8)).state_dict(), teacher)
    assert main(["compare", "--methods", "rslad", "rslad+igdm", "sat+ema", "peeraid", "--config", str(config_file),
                 "--set", "nb_epochs=1", "--set", f"teacher.source={teacher}", "--set", "teacher.model=cnn-small",
                 "--out", str(tmp_path / "cmp"), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "| rslad+igdm | best | 1 |" in printed and "| sat+ema | last | 1 |" in printed
    assert "| peeraid | best | 1 |" in printed and "rslad+igdm igdm_alpha 1.0" in printed
    assert (tmp_path / "cmp" / "runs" / "rslad+igdm" / "seed-0" / "run.json").is_file()

    assert main(["tune", "--config", str(config_file), "--methods", "sat+ema", "peeraid", "--grid", "0.05",
                 "--epochs", "1", "--train-size", "48", "--val-size", "16", "--out", str(tmp_path / "tune"),
                 "--student-option", "width=2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| sat+ema |" in printed and "--set method_lr.sat+ema=0.05 --set method_lr.peeraid=0.05" in printed
    tuning = json.loads((tmp_path / "tune" / "tuning.json").read_text())
    assert set(tuning["chosen"]) == {"sat+ema", "peeraid"} and tuning["settings"]["student_options"] == {"width": 2}
    run = json.loads((tmp_path / "tune" / "peeraid" / "lr-0.05" / "run.json").read_text())
    assert run["identity"]["student_options"] == {"width": 2}


def test_list_says_how_variants_are_written(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    assert "NAME[+igdm][+ema|+swa]" in printed
    assert "+igdm: ard, iad, adaad, rslad, adaiad" in printed


def test_a_bad_set_value_is_refused_before_anything_is_written(config_file: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert train(config_file, tmp_path / "run", "--set", "eps=8") == 2
    assert "Config key `eps` must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_folder_of_other_files_is_not_offered_a_resume(config_file: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert train(config_file, tmp_path / "run") == 2
    error = capsys.readouterr().err
    assert "holds other files (notes.txt) and no run to resume. Pass --overwrite" in error and "--resume" not in error


@pytest.mark.parametrize("command", ["train", "compare", "tune"])
def test_every_training_command_takes_both_teachers_as_options(command: str) -> None:
    """``--teacher`` and ``--clean-teacher`` mean the same in every command that trains, after ``--set``."""
    words = {"train": ["--out", "x"], "compare": ["--methods", "sat", "--out", "x"],
             "tune": ["--methods", "sat", "--out", "x"]}[command]
    args = build_parser().parse_args([command, *words, "--set", "teacher.source=zoo:other", "--teacher",
                                      "runs/my-teacher", "--clean-teacher", "robustbench:Standard"])
    config = config_from_args(args)
    assert (config.teacher.source, config.clean_teacher) == ("runs/my-teacher", "robustbench:Standard")
    assert config_from_args(build_parser().parse_args([command, *words])).teacher.source == \
        "zoo:fashion-mnist-cnn-large"
