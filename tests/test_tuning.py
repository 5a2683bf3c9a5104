"""The per-method learning-rate rule: short runs per lr, the best validation PGD accuracy wins, resumable."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from test_runs import tiny_config

from art_rslad.experiments.config import get_preset
from art_rslad.experiments.tune import select_learning_rates
from art_rslad.trainers.base import AdversarialTrainerBase


def test_rule_picks_the_best_validation_lr_and_resumes(tmp_path, monkeypatch) -> None:
    config = get_preset("fashion-mnist")
    options = {"grid": [0.3, 0.01], "nb_epochs": 1, "train_size": 256, "val_size": 64, "verbose": False}
    result = select_learning_rates(config, ["sat"], tmp_path, **options)
    scores = result["val_pgd"]["sat"]
    assert set(scores) == {"0.01", "0.3"}
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    best = max(scores.values())
    assert scores[f"{result['chosen']['sat']:g}"] == best
    if scores["0.01"] == scores["0.3"]:
        assert result["chosen"]["sat"] == 0.01, "ties go to the smaller lr"
    saved = json.loads((tmp_path / "tuning.json").read_text())
    assert saved["chosen"] == result["chosen"] and "validation split" in saved["rule"]
    history = json.loads((tmp_path / "sat" / "lr-0.3" / "metrics.jsonl").read_text().splitlines()[0])
    assert history["lr"] == pytest.approx(0.3)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished short run must be read back, not trained again")

    monkeypatch.setattr(AdversarialTrainerBase, "fit", no_training)
    assert select_learning_rates(config, ["sat"], tmp_path, **options)["chosen"] == result["chosen"]
    # Short runs do not depend on the other methods' lrs or the note: tuning again after the preset changed reads
    # them back too.
    changed = dataclasses.replace(config, method_lr={**config.method_lr, "trades": 0.5}, method_lr_note="new")
    assert select_learning_rates(changed, ["sat"], tmp_path, **options)["chosen"] == result["chosen"]
    # Tuning another method into the same folder keeps the earlier ones in tuning.json.
    monkeypatch.undo()
    both = select_learning_rates(config, ["natural"], tmp_path, **options)
    assert set(both["chosen"]) == {"sat", "natural"}
    assert set(json.loads((tmp_path / "tuning.json").read_text())["chosen"]) == {"sat", "natural"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"methods": ["nope"]}, "known methods"),
    ({"methods": ["sat"], "grid": [0.1, -1.0]}, "`grid`"),
    ({"methods": ["sat"], "nb_epochs": 0}, "`nb_epochs`"),
])
def test_bad_input(tmp_path, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        select_learning_rates(get_preset("fashion-mnist"), out_dir=tmp_path, **kwargs)


@pytest.mark.parametrize("preset", ["fashion-mnist", "digits"])
def test_cpu_presets_use_the_committed_tuning(preset: str) -> None:
    """The preset's per-method lr is what `art-rslad tune` chose; its output is committed beside the study: the
    first tuning of the six methods, then that of the methods since RSLAD, then that of the methods since 2022, each
    with the same settings."""
    studies = Path(__file__).parents[1] / "studies"
    folders = [f"tune-{preset}", f"tune-{preset}-new", f"tune-{preset}-2022"]
    rounds = [json.loads((studies / folder / "tuning.json").read_text()) for folder in folders]
    config = get_preset(preset)
    chosen = [set(round_["chosen"]) for round_ in rounds]
    assert config.method_lr == {name: lr for round_ in rounds for name, lr in round_["chosen"].items()}
    assert sum(map(len, chosen)) == len(set().union(*chosen))  # no method tuned twice
    assert all(round_["settings"] == rounds[0]["settings"] for round_ in rounds)  # same preset, grid, epochs, sizes
    assert chosen[1] == {"adaiad", "peeraid", "rslad+igdm", "adaiad+igdm", "sat+ema", "rslad+ema"}
    assert chosen[2] == {"mtard", "absld", "dgad", "ciard", "saad"}
    for folder in folders:
        assert f"--out studies/{folder}." in config.method_lr_note
    commands = re.findall(r"--methods ([a-z+ ]+) --epochs", config.method_lr_note)
    assert [set(command.split()) for command in commands] == chosen


def test_tuning_takes_variants_and_peeraid(tmp_path: Path) -> None:
    options = {"grid": [0.05], "nb_epochs": 1, "train_size": 48, "val_size": 16, "verbose": False}
    config = tiny_config()
    result = select_learning_rates(config, ["SAT+EMA", "peeraid"], tmp_path, **options)
    assert set(result["chosen"]) == {"sat+ema", "peeraid"}
    run = json.loads((tmp_path / "sat+ema" / "lr-0.05" / "run.json").read_text())["identity"]
    assert run["method"] == "sat+ema" and run["trainer_options"] == {"weight_averaging": "ema"}
    assert run["config"]["method_lr"] == {"sat+ema": 0.05}
    assert (tmp_path / "peeraid" / "lr-0.05" / "peer.pt").is_file()
    with pytest.raises(ValueError, match="sat is not a teacher-student distillation method"):
        select_learning_rates(config, ["sat+igdm"], tmp_path, **options)


def test_short_runs_keep_the_methods_own_settings_but_not_its_epochs(tmp_path: Path) -> None:
    options = {"grid": [0.05], "nb_epochs": 1, "train_size": 48, "val_size": 16, "verbose": False}
    config = tiny_config(method_overrides={"sat": {"nb_epochs": 5, "weight_decay": 1e-3}})
    select_learning_rates(config, ["sat"], tmp_path, **options)
    recorded = json.loads((tmp_path / "sat" / "lr-0.05" / "run.json").read_text())["identity"]["config"]
    assert (recorded["nb_epochs"], recorded["weight_decay"], recorded["method_overrides"]) == (1, 1e-3, {})
