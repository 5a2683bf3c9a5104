"""``RunSettings(test_size=0)``: a run that never looks at the test set (tuning's short runs); it trains, picks its
best epoch on validation, resumes, and says in run.json and results.md that it evaluated nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from test_cli_runs import TINY, train
from test_runs import run, settings, tiny_config

from art_rslad.experiments import train as train_module
from art_rslad.experiments.compare import compare
from art_rslad.experiments.train import RunSettings, train_run
from art_rslad.experiments.tune import EARLIER_TEST_SETTINGS, select_learning_rates
from art_rslad.trainers.base import AdversarialTrainerBase


@pytest.fixture
def splits_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    original = train_module.load_dataset

    def counting(name: str, split: str, **kwargs: Any) -> Any:
        read.append(split)
        return original(name, split, **kwargs)

    monkeypatch.setattr(train_module, "load_dataset", counting)
    return read


def test_a_run_without_test_evaluation_never_reads_the_test_set(tmp_path: Path, splits_read: list[str]) -> None:
    result = run(tmp_path / "run", test_size=0)
    assert "test" not in splits_read
    assert result.accuracy == {"best": {}, "last": {}} and result.nb_test == 0
    marker = json.loads((tmp_path / "run" / "run.json").read_text())
    assert marker["status"] == "finished" and marker["nb_test"] == 0
    assert marker["identity"]["test_size"] == 0 and marker["identity"]["attacks"] == []
    assert not list((tmp_path / "run").glob("eval_*"))
    assert "no test evaluation (test_size=0)" in (tmp_path / "run" / "results.md").read_text()
    assert run(tmp_path / "run", test_size=0, resume=True).accuracy == result.accuracy  # read back


def test_it_resumes_after_an_interruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original, steps = AdversarialTrainerBase._train_step, {"count": 0}

    def dying_step(self: AdversarialTrainerBase, batch: Any) -> Any:
        steps["count"] += 1
        if steps["count"] == 5:
            raise RuntimeError("killed")
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(AdversarialTrainerBase, "_train_step", dying_step)
        with pytest.raises(RuntimeError, match="killed"):
            run(tmp_path / "run", test_size=0)
    assert run(tmp_path / "run", test_size=0, resume=True).best_epoch in (1, 2)
    with pytest.raises(ValueError, match="test_size: folder 0, now 16"):
        run(tmp_path / "run", resume=True)


def test_bad_sizes_and_a_compare_without_test_set_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`test_size` must be an integer >= 0"):
        RunSettings(test_size=-1)
    with pytest.raises(ValueError, match="`val_size` must be a positive integer"):
        RunSettings(val_size=0)
    with pytest.raises(ValueError, match="`test_size` must be >= 1 in a compare"):
        compare(tiny_config(), tmp_path, ["sat"], [0], settings(test_size=0))


def test_the_cli_trains_with_test_size_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tiny_config(nb_epochs=1).save(tmp_path / "tiny.json")
    assert "--test-size" in TINY
    assert train(config_file, tmp_path / "run", "--test-size", "0") == 0
    assert "no test evaluation" in capsys.readouterr().out


def test_tuning_never_evaluates_on_test_and_reads_back_earlier_folders(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config()
    options = {"grid": [0.05], "nb_epochs": 1, "train_size": 48, "val_size": 16, "verbose": False}
    fresh = select_learning_rates(config, ["sat"], tmp_path / "new", **options)
    identity = json.loads((tmp_path / "new" / "sat" / "lr-0.05" / "run.json").read_text())["identity"]
    assert identity["test_size"] == 0 and not list((tmp_path / "new" / "sat" / "lr-0.05").glob("eval_*"))
    # A folder written when tuning still evaluated 100 test images (the committed studies/tune-*) reads back.
    earlier = tmp_path / "earlier" / "sat" / "lr-0.05"
    short = dataclasses.replace(config, nb_epochs=1, lr=0.05, method_lr={"sat": 0.05})
    train_run(short, earlier, "sat", RunSettings(train_size=48, val_size=16, checkpoint_interval=0, verbose=False,
                                                 **EARLIER_TEST_SETTINGS))

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished short run must be read back, not trained again")

    monkeypatch.setattr(AdversarialTrainerBase, "fit", no_training)
    assert select_learning_rates(config, ["sat"], tmp_path / "earlier", **options)["val_pgd"] == fresh["val_pgd"]
