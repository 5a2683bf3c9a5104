"""The config's lr schedule kind (step or cosine) and SWA's first epoch: the paper presets' CIARD and SAAD entries, the
scaling to short runs, a cosine run (joint over PeerAiD's peer) that resumes bit-identically, SWA started by the key,
folders written before the keys, and bad values refused with the key named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_runs import run, tiny_config

from art_rslad.checkpoint import load_checkpoint
from art_rslad.experiments.config import Config, get_preset
from art_rslad.experiments.train import run_notes, run_schedule
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.schedules import CosineExpLR, cosine_exp_lr
from bench.gpu_paths import interrupted_at

PAPER_PRESETS = ("cifar10-resnet18", "cifar10-mobilenetv2", "cifar100-resnet18", "cifar100-mobilenetv2")


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_the_paper_presets_give_ciard_its_cosine_lr_and_saad_its_swa_from_epoch_95(name: str) -> None:
    preset = get_preset(name)
    ciard, saad = preset.for_method("ciard"), preset.for_method("saad")
    assert (ciard.nb_epochs, ciard.lr_schedule, ciard.lr_cosine_start, ciard.cosine_start_for()) == (
        300, "cosine", 150, 150)
    assert (saad.nb_epochs, saad.milestones_for(), saad.weight_averaging, saad.weight_averaging_start) == (
        200, [100, 150], "swa", 94)
    assert saad.averaging_start_for() == 94  # 0-based: the 95th epoch is the first averaged
    assert preset.lr_schedule == "step" and preset.weight_averaging_start == -1  # the other methods keep theirs
    assert preset.for_method("peeraid").averaging_start_for() is None  # PeerAiD's: the first lr drop
    note = preset.method_overrides_note
    assert "ciard: 300 epochs, the student's lr constant for 150, then a cosine-times-Gaussian decay" in note
    assert "saad: 200 epochs, lr x0.1 after 100/150, the student averaged by SWA from epoch 95" in note
    assert "not its cosine" not in note and "its code" not in note


def test_the_cosine_start_and_swa_start_scale_with_the_run_length() -> None:
    preset = get_preset("cifar10-resnet18")
    ciard, saad = preset.for_method("ciard"), preset.for_method("saad")
    assert (ciard.cosine_start_for(30), ciard.cosine_start_for(1)) == (15, 0)
    assert (saad.averaging_start_for(20), saad.averaging_start_for(2)) == (9, 1)
    scheduler = run_schedule(ciard, torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1))
    assert isinstance(scheduler, CosineExpLR) and (scheduler.start_epoch, scheduler.end_epoch) == (150, 300)
    notes = run_notes(ciard, ["ciard"], None, None, 10)
    assert "lr on a cosine-times-Gaussian decay to 0 after epoch 150;" in notes[0]


def test_a_cosine_run_moves_the_peer_on_the_same_curve_and_resumes_bit_identically(tmp_path: Path) -> None:
    """3 epochs, the lr constant for the first: 0.05, then the curve at e = 2 and 3 of 3 (0 at the last)."""
    config = tiny_config(nb_epochs=3, lr_schedule="cosine", lr_cosine_start=1, lr_schedule_epochs=3)
    whole = run(tmp_path / "whole", method="peeraid", config=config)
    expected = [0.05, cosine_exp_lr(2, 0.05, 1, 3, 0.05), 0.0]
    assert [record["lr"] for record in whole.history] == pytest.approx(expected, abs=1e-12)
    last = load_checkpoint(whole.out_dir / "last.pt")
    assert last["scheduler_state"]["start_epoch"] == 1 and last["scheduler_state"]["end_epoch"] == 3
    assert last["extra_state"]["peer_optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)

    with interrupted_at(5), pytest.raises(KeyboardInterrupt):  # second epoch (on the curve), second batch
        run(tmp_path / "resumed", method="peeraid", config=config, checkpoint_interval=1)
    resumed = run(tmp_path / "resumed", method="peeraid", config=config, checkpoint_interval=1, resume=True)
    assert resumed.accuracy == whole.accuracy and resumed.history[-1]["loss"] == whole.history[-1]["loss"]
    for name in ("student.pt", "peer.pt"):
        first = torch.load(whole.out_dir / name, weights_only=True)
        again = torch.load(resumed.out_dir / name, weights_only=True)
        assert all(torch.equal(value, again[key]) for key, value in first.items()), name
    again = load_checkpoint(resumed.out_dir / "last.pt")
    assert all(torch.equal(value, again["model_state"][key]) for key, value in last["model_state"].items())
    assert again["scheduler_state"] == last["scheduler_state"]


@pytest.mark.parametrize(("changes", "first"), [
    ({"weight_averaging_start": 3, "lr_schedule_epochs": 9}, 1),  # 3 of 9 scaled to 3 epochs
    ({"weight_averaging_start": 0, "lr_schedule_epochs": 3}, 0),
    ({"lr_schedule": "cosine", "lr_cosine_start": 2, "lr_schedule_epochs": 3, "weight_averaging_start": 1}, 1),
    ({"lr_schedule": "cosine", "lr_cosine_start": 2, "lr_schedule_epochs": 3}, 2),  # -1: the cosine's start
    ({"lr_milestones": (2,), "lr_schedule_epochs": 3}, 2),  # -1 under the step schedule: the first milestone
])
def test_swa_starts_where_the_key_says_else_at_the_first_lr_drop(tmp_path: Path, changes: dict[str, object],
                                                                 first: int) -> None:
    result = run(tmp_path / "run", method="sat+swa", config=tiny_config(nb_epochs=3, **changes), test_size=8)
    recorded = load_checkpoint(result.out_dir / "last.pt")["config"]["weight_averaging"]
    assert recorded == {"name": "swa", "start_epoch": first}


def test_a_folder_written_before_the_schedule_keys_still_resumes(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(tmp_path / "run", config=tiny_config(nb_epochs=1))
    path = tmp_path / "run" / "run.json"
    marker = json.loads(path.read_text())
    for key in ("lr_schedule", "lr_cosine_start", "weight_averaging_start"):
        del marker["identity"]["config"][key]
    path.write_text(json.dumps(marker))
    toml = tmp_path / "run" / "config.toml"
    toml.write_text("\n".join(line for line in toml.read_text().splitlines()
                              if not line.startswith(("lr_schedule =", "lr_cosine_start", "weight_averaging_start"))))
    assert Config.from_file(toml) == tiny_config(nb_epochs=1)
    monkeypatch.setattr(AdversarialTrainerBase, "_train_step", lambda *args: pytest.fail("trained again"))
    assert run(tmp_path / "run", config=tiny_config(nb_epochs=1), resume=True).accuracy == first.accuracy
    with pytest.raises(ValueError, match=r"lr_schedule: folder None, now 'cosine'"):
        run(tmp_path / "run", config=tiny_config(nb_epochs=1, lr_schedule="cosine"), resume=True)


@pytest.mark.parametrize(("data", "message"), [
    ({"lr_schedule": "linear"}, r"`lr_schedule` must be 'step' \(lr x lr_gamma after each of lr_milestones\) or "
                                r"'cosine' \(a cosine decay after lr_cosine_start epochs\), got 'linear'"),
    ({"lr_schedule": "cosine", "lr_cosine_start": 300}, r"`lr_cosine_start` must be in \[0, lr_schedule_epochs\) = "
                                                        r"\[0, 300\), got 300"),
    ({"lr_schedule": "cosine", "lr_cosine_start": -1}, r"`lr_cosine_start` must be in \[0, lr_schedule_epochs\)"),
    ({"lr_cosine_start": 150}, r"`lr_cosine_start` \(150\) starts the cosine schedule: set lr_schedule = 'cosine' "
                               r"with it, or drop it"),
    ({"lr_cosine_start": 1.5}, r"`lr_cosine_start` must be int, got float"),
    ({"weight_averaging_start": -2}, r"`weight_averaging_start` must be -1 \(from the first lr drop\) or in "
                                     r"\[0, lr_schedule_epochs\) = \[0, 300\), got -2"),
    ({"weight_averaging_start": 300}, r"`weight_averaging_start` must be -1 .* got 300"),
    ({"weight_averaging": "ema", "weight_averaging_start": 5}, r"`weight_averaging_start` is SWA's first epoch; EMA "
                                                               r"averages from the first step: drop it, or set "
                                                               r"weight_averaging = 'swa'"),
    ({"method_overrides": {"sat": {"lr_schedule": "cos"}}}, r"`method_overrides.sat`: .*`lr_schedule` must be"),
])
def test_bad_schedule_values_are_refused_naming_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_dict(data)
