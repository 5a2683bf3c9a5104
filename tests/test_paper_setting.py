"""The paper's CIFAR-10 setting end to end, as a user runs it, for one epoch on a tiny CIFAR-format sample.

The command is the one docs/results.md gives: ``art-rslad train --preset cifar10-resnet18 --method rslad``, whose
teacher is RobustBench's ``Zhang2019Theoretically`` (TRADES WRN-34-10). CIFAR and the teacher's weights cannot be
downloaded here, so the test writes CIFAR-10 batch files and a randomly initialised WRN-34-10 where RobustBench's
loader looks for it; everything else (ResNet-18 student, crop-flip augmentation through fit_generator, PGD-10 at
8/255, validation, checkpoints, evaluation) is the real path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_cifar

from art_rslad.cli import main
from art_rslad.robustbench import import_robustbench


def test_paper_cifar10_command_runs_one_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path / "data", "cifar-10-batches-py", {f"data_batch_{i}": 4 for i in range(1, 6)}
                | {"test_batch": 4}, "labels")
    utils = import_robustbench()
    entry = utils.all_models[utils.BenchmarkDataset("cifar10")][utils.ThreatModel("Linf")]["Zhang2019Theoretically"]
    torch.manual_seed(0)
    weights = tmp_path / "robustbench" / "cifar10" / "Linf" / "Zhang2019Theoretically.pt"
    weights.parent.mkdir(parents=True)
    torch.save(entry["model"]().state_dict(), weights)
    monkeypatch.setenv("ART_RSLAD_ROBUSTBENCH_DIR", str(tmp_path / "robustbench"))

    out = tmp_path / "run"
    assert main(["train", "--preset", "cifar10-resnet18", "--method", "rslad", "--out", str(out),
                 "--data-root", str(tmp_path / "data"), "--set", "nb_epochs=1", "--set", "batch_size=8",
                 "--train-size", "16", "--val-size", "4", "--test-size", "4", "--attacks", "clean", "pgd_sat",
                 "--device", "cpu", "--quiet"]) == 0

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished"
    config = run["identity"]["config"]
    assert (config["student"], config["teacher"]["source"]) == ("resnet18", "robustbench:Zhang2019Theoretically")
    assert (config["eps"], config["eps_step"], config["max_iter"]) == (8 / 255, 2 / 255, 10)
    assert config["augmentation"] == "crop-flip"
    epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert epoch["lr"] == pytest.approx(0.1) and 0.0 <= epoch["val_pgd"] <= epoch["val_clean"] <= 1.0
    assert set(run["accuracy"]["best"]) == {"clean", "pgd_sat"}
