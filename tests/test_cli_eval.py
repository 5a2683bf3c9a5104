"""``art-rslad eval`` end to end on the 8x8 digits and a tiny untrained CNN (seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from art_rslad.cli import main
from art_rslad.models import create_model

MODEL_ARGS = ["--model", "cnn-small", "--model-option", "width=4", "--model-option", "image_size=8",
              "--dataset", "digits"]


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "student.pt"
    torch.save(create_model("cnn-small", 10, width=4, image_size=8).state_dict(), path)
    return path


def test_eval_prints_and_saves_the_table_and_resumes(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "student"
    argv = ["eval", str(checkpoint), *MODEL_ARGS, "--nb-images", "12", "--eps", "0.1", "--attacks", "clean",
            "fgsm", "pgd_sat", "transfer_cw", "--surrogate", str(checkpoint), "--surrogate-model", "cnn-small",
            "--surrogate-option", "width=4", "--surrogate-option", "image_size=8", "--out", str(out), "--quiet",
            "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| pgd_sat | white-box |" in printed and "worst case over all attacks" in printed
    saved = json.loads((tmp_path / "reports" / "student.json").read_text())
    assert saved["n_inputs"] == 12 and list(saved["accuracy"]) == ["clean", "fgsm", "pgd_sat", "transfer_cw"]
    assert len(saved["correct"]["pgd_sat"]) == 12
    assert "| pgd_sat |" in (tmp_path / "reports" / "student.md").read_text()
    assert main(argv) == 2  # the JSON exists: refuses to overwrite without --resume
    assert main([*argv, "--resume"]) == 0
    resumed = json.loads((tmp_path / "reports" / "student.json").read_text())
    assert resumed["seconds"] == saved["seconds"]  # every attack restored, none run again


def test_eval_reports_bad_input(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["eval", str(checkpoint), *MODEL_ARGS, "--nb-images", "4", "--out", str(tmp_path / "r"), "--quiet"]
    with pytest.raises(SystemExit):
        main([*base, "--attacks", "pgd"])
    assert "invalid choice: 'pgd'" in capsys.readouterr().err
    assert main([*base, "--attacks", "transfer_pgd"]) == 2
    assert "surrogate" in capsys.readouterr().err
    assert main([*base, "--eps", "-1"]) == 2
    assert "`eps` must be in (0, 1]" in capsys.readouterr().err



def test_eval_hints_speak_the_command_lines_words(checkpoint: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--nb-images", "4", "--out", str(tmp_path / "r"), "--quiet"]
    assert main(["eval", str(checkpoint), "--dataset", "digits", *out]) == 2  # a state dict without --model
    error = capsys.readouterr().err
    assert "e.g. --model resnet18" in error and "model='" not in error
    assert main(["eval", "zoo:fashion-mnist-cnn-large", "--dataset", "digits", *out]) == 2
    error = capsys.readouterr().err
    assert "The model 'fashion-mnist-cnn-large' was trained on fashion-mnist, not digits" in error
    assert "teacher" not in error
