"""MTARD, ABSLD, DGAD, CIARD and SAAD on the shared loop: one seeded epoch through ``fit``, through ``train_run`` and
through ``art-rslad train``; an exact resume mid-run with each method's state; the epoch hooks, the robust teacher
CIARD trains, and bad input. (Their losses and rules on fixed tensors: tests/test_methods_recent_losses.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_classifier
from helpers_trainers import assert_same_tensors
from test_resume import SHAPE, Student
from test_runs import run, tiny_config, tiny_teacher
from test_weight_averaging import check_resume_is_exact, small_classifier, small_data

from art_rslad import (
    AdversarialTrainerABSLD,
    AdversarialTrainerCIARD,
    AdversarialTrainerDGAD,
    AdversarialTrainerMTARD,
    AdversarialTrainerSAAD,
)
from art_rslad.checkpoint import load_checkpoint
from art_rslad.cli import main
from art_rslad.experiments.config import get_preset
from art_rslad.experiments.variants import takes_igdm, takes_weight_averaging
from art_rslad.losses_samplewise import linearised_teacher_logits
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.registry import METHODS
from art_rslad.trainers.schedules import CosineExpLR, cosine_exp_lr

RECENT = ("mtard", "absld", "dgad", "ciard", "saad")
TWO_TEACHERS = ("mtard", "ciard")
CLEAN_SOURCE = "zoo:digits-cnn-large-clean"
ROOT = Path(__file__).resolve().parents[1]
ATTACK = {"eps": 0.1, "eps_step": 0.05, "max_iter": 2, "verbose": False}


def teachers() -> dict[str, Any]:
    """A robust teacher with BatchNorm (CIARD trains it) and a clean one, both seeded."""
    torch.manual_seed(100)
    teacher = make_classifier(Student(), input_shape=SHAPE)
    torch.manual_seed(101)
    clean = make_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), input_shape=SHAPE)
    return {"teacher": teacher, "clean_teacher": clean}


def build(name: str, init_seed: int, **options: Any) -> AdversarialTrainerBase:
    networks = teachers()
    if name not in TWO_TEACHERS:
        networks.pop("clean_teacher")
    return METHODS[name].trainer(small_classifier(init_seed), **networks, **ATTACK,  # type: ignore[call-arg]
                                 **options)


def weights(trainer: AdversarialTrainerBase) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in trainer.get_classifier().model.state_dict().items()}


@pytest.mark.parametrize("name", RECENT)
def test_one_seeded_epoch_through_fit_trains_the_student_and_is_repeatable(name: str) -> None:
    x, y, _, _ = small_data()
    trained = []
    for _ in range(2):
        trainer = build(name, 0)
        before = weights(trainer)
        torch.manual_seed(7)
        trainer.fit(x[:32], y[:32], batch_size=16, nb_epochs=1)
        assert np.isfinite(trainer.history[0]["loss"])
        assert any(not torch.equal(before[key], value) for key, value in weights(trainer).items())
        trained.append(weights(trainer))
    assert_same_tensors(trained[0], trained[1])


def test_the_adaptive_state_moves_as_each_method_says() -> None:
    x, y, _, _ = small_data()
    mtard = build("mtard", 0)
    mtard.fit(x[:32], y[:32], batch_size=16, nb_epochs=1)
    assert mtard.weights.initial_adv is not None and mtard.weights.weight_nat != 0.5  # type: ignore[attr-defined]

    absld = build("absld", 0)
    absld.fit(x[:32], y[:32], batch_size=16, nb_epochs=1)
    temperatures = absld.temperatures  # type: ignore[attr-defined]
    assert not torch.equal(temperatures.adv, torch.ones(10)) and float(temperatures.adv_errors.abs().sum()) == 0.0

    ciard = build("ciard", 0)
    teacher_before = {k: v.clone() for k, v in ciard.get_network("teacher").model.named_parameters()}
    ciard.fit(x[:32], y[:32], batch_size=16, nb_epochs=2)  # its lr decays to 0 at the last epoch
    assert ciard.temperatures != ciard.temperatures.__class__(rate=0.001)  # type: ignore[attr-defined]
    moved = dict(ciard.get_network("teacher").model.named_parameters())
    assert any(not torch.equal(teacher_before[key], moved[key]) for key in teacher_before)


def test_a_rate_follows_the_lr_decay_at_the_epoch_end() -> None:
    x, y, _, _ = small_data()
    for name, state in (("mtard", "weights"), ("absld", "temperatures")):
        trainer = build(name, 0)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(trainer.get_classifier().optimizer, [1], 0.1)
        start = getattr(trainer, state).rate
        trainer.fit(x[:32], y[:32], batch_size=16, nb_epochs=2, scheduler=scheduler)
        assert getattr(trainer, state).rate == pytest.approx(start * 0.1), name


def test_ciard_rates_decay_at_its_own_milestones_whatever_the_lr_does() -> None:
    """215, 260 and 285 of 300 scaled to 7 epochs are 5, 6 and 7 (the last is the run's end): two decays, with
    no scheduler at all, and the same under the cosine schedule."""
    x, y, _, _ = small_data()
    for cosine in (False, True):
        trainer = build("ciard", 0)
        scheduler = CosineExpLR(trainer.get_classifier().optimizer, 3, 7) if cosine else None
        trainer.fit(x[:16], y[:16], batch_size=16, nb_epochs=7, scheduler=scheduler)
        assert trainer.weights.rate == pytest.approx(0.025 * 0.01)  # type: ignore[attr-defined]
        assert trainer.temperatures.rate == pytest.approx(0.001 * 0.01)  # type: ignore[attr-defined]


def test_ciard_per_iteration_decay_applies_the_factor_at_every_batch_of_the_next_epoch() -> None:
    x, y, _, _ = small_data()
    trainer = build("ciard", 0, rate_decay="per_iteration")
    trainer.fit(x[:32], y[:32], batch_size=16, nb_epochs=2)  # its milestone 215/300 of 2 is 1: 2 batches after
    assert trainer.weights.rate == pytest.approx(0.025 * 0.01)  # type: ignore[attr-defined]


def test_ciard_teacher_waits_for_its_start_then_follows_its_own_lr() -> None:
    trainer = build("ciard", 0, teacher_start=0.5)
    teacher = trainer.get_network("teacher")
    trainer.nb_epochs = 4
    steps, rates = [], []
    for epoch in range(4):
        trainer._start_epoch(epoch)
        steps.append(teacher.optimizer in trainer._optimizers())
        rates.append(teacher.optimizer.param_groups[0]["lr"])
    assert steps == [False, False, True, True]
    assert rates == [0.0, 0.0, pytest.approx(cosine_exp_lr(3, 1e-4, 2.0, 4, 0.0)), pytest.approx(0.0)]
    assert 0 < rates[2] < 1e-4

    x, y, _, _ = small_data()
    before = {k: v.clone() for k, v in teacher.model.named_parameters()}
    trainer._start_epoch(0)
    trainer._train_step(Batch(torch.from_numpy(x[:16]), torch.from_numpy(y[:16]), None))
    assert all(torch.equal(before[k], v) for k, v in teacher.model.named_parameters())
    assert not teacher.optimizer.state  # no step before its start: not even its momentum moved


@pytest.mark.parametrize("name", RECENT)
def test_resume_mid_run_is_exact_with_the_methods_state(name: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def build_with_scheduler(init_seed: int) -> tuple[AdversarialTrainerBase, Any]:
        trainer = build(name, init_seed)
        return trainer, torch.optim.lr_scheduler.MultiStepLR(trainer.get_classifier().optimizer, [1], 0.1)

    resumed, whole = check_resume_is_exact(build_with_scheduler, tmp_path, monkeypatch, interrupt=7)  # epoch 2
    saved = load_checkpoint(whole / "last.pt")["extra_state"]
    assert set(saved) >= set(type(resumed).kept_state)
    for state in type(resumed).kept_state:  # restored as the same type, bit for bit
        kept = getattr(resumed, state)
        assert type(kept) is type(getattr(build(name, 0), state))
    if name == "ciard":
        assert_same_tensors(saved["teacher_model_state"], resumed.get_network("teacher").model.state_dict())


def test_kept_dataclass_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    x, y, _, _ = small_data()
    trainer = build("absld", 0)
    trainer.fit(x[:16], y[:16], batch_size=16, nb_epochs=1)
    torch.save(trainer._extra_state(), tmp_path / "state.pt")
    other = build("absld", 1)
    other._load_extra_state(torch.load(tmp_path / "state.pt", weights_only=True))
    assert_same_tensors(vars(trainer.temperatures), vars(other.temperatures))  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", RECENT)
def test_one_epoch_through_train_run_records_every_network(name: str, tmp_path: Path) -> None:
    config = tiny_config(nb_epochs=1, clean_teacher=CLEAN_SOURCE)
    result = run(tmp_path / name, method=name, config=config, teacher=tiny_teacher())
    identity = json.loads((result.out_dir / "run.json").read_text())["identity"]
    assert identity["teacher"]["sha256_of_weights"]
    assert (identity.get("clean_teacher") or {}).get("source") == (CLEAN_SOURCE if name in TWO_TEACHERS else None)
    assert (result.out_dir / "teacher.pt").is_file() == (name == "ciard")


def test_a_run_folder_is_a_clean_teacher_source(tmp_path: Path) -> None:
    clean = run(tmp_path / "natural", method="natural", config=tiny_config(nb_epochs=1))
    config = tiny_config(nb_epochs=1, clean_teacher=str(clean.out_dir))
    result = run(tmp_path / "mtard", method="mtard", config=config, teacher=tiny_teacher())
    recorded = json.loads((result.out_dir / "run.json").read_text())["identity"]["clean_teacher"]
    assert recorded["source"] == str(clean.out_dir)


CLI_TINY = ["--train-size", "32", "--val-size", "16", "--test-size", "16", "--attacks", "clean",
            "--student-option", "width=2", "--student-option", "image_size=8", "--checkpoint-interval", "0", "--quiet"]


@pytest.mark.parametrize("name", RECENT)
def test_one_epoch_through_the_cli(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config(nb_epochs=1).save(tmp_path / "tiny.json")
    out = tmp_path / name
    assert main(["train", "--method", name, "--config", str(config), "--out", str(out), "--teacher",
                 "zoo:digits-cnn-large", "--clean-teacher", CLEAN_SOURCE, *CLI_TINY]) == 0
    assert f"| {name} | best | 1 |" in capsys.readouterr().out


def test_the_cli_names_a_missing_clean_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config(nb_epochs=1).save(tmp_path / "tiny.json")
    assert main(["train", "--method", "mtard", "--config", str(config), "--out", str(tmp_path / "never"),
                 "--teacher", "zoo:digits-cnn-large", *CLI_TINY]) == 2
    error = capsys.readouterr().err
    assert "Config key `clean_teacher` is empty" in error and "--clean-teacher" in error


def test_presets_give_the_shipped_clean_teachers_and_the_official_recipes() -> None:
    assert get_preset("fashion-mnist").clean_teacher == "zoo:fashion-mnist-cnn-large-clean"
    assert get_preset("digits").clean_teacher == "zoo:digits-cnn-large-clean"
    cifar10, cifar100 = get_preset("cifar10-resnet18"), get_preset("cifar100-resnet18")
    assert cifar10.for_method("dgad").weight_decay == 5e-4 and cifar10.for_method("dgad").nb_epochs == 200
    assert cifar10.for_method("saad").weight_averaging == "swa"
    assert cifar10.for_method("mtard").nb_epochs == 300 and cifar100.for_method("mtard").loss_scale == 10.0
    for preset in ("fashion-mnist", "digits"):
        assert all(name in get_preset(preset).method_lr for name in RECENT)
    for preset, chosen in (("fashion-mnist", {"mtard": 0.3, "absld": 1.0, "dgad": 0.03, "ciard": 0.3, "saad": 0.01}),
                           ("digits", {"mtard": 1.0, "absld": 0.3, "dgad": 0.1, "ciard": 1.0, "saad": 0.03})):
        tuning = json.loads((ROOT / "studies" / f"tune-{preset}-2022" / "tuning.json").read_text())
        assert tuning["chosen"] == chosen == {name: get_preset(preset).method_lr[name] for name in RECENT}
        assert f"studies/tune-{preset}-2022" in get_preset(preset).method_lr_note


def test_variants_where_they_make_sense() -> None:
    assert [name for name in RECENT if takes_igdm(METHODS[name])] == ["mtard", "absld", "dgad"]
    assert all(takes_weight_averaging(METHODS[name]) for name in RECENT)
    assert not METHODS["ciard"].distributed_ok and METHODS["dgad"].distributed_ok


@pytest.mark.parametrize(("name", "options", "message"), [
    ("absld", {"tempering": "sum"}, "`tempering` must be 'separate' or 'product'"),
    ("absld", {"temperature_rate": 0}, "`temperature_rate` must be > 0"),
    ("dgad", {"fixed_batch_size": 0}, "`fixed_batch_size` must be None"),
    ("dgad", {"beta": -1}, "`beta`"),
    ("ciard", {"rate_decay": "per_epoch"}, "`rate_decay` must be 'per_milestone' or 'per_iteration'"),
    ("ciard", {"teacher_start": 1.0}, "`teacher_start` must be in \\[0, 1\\)"),
    ("ciard", {"teacher_lr": -1.0}, "`teacher_lr` must be >= 0"),
    ("mtard", {"initial_weight": 2.0}, "`initial_weight` must be in \\[0, 1\\]"),
    ("saad", {"entropy_scale": 0.0}, "`entropy_scale` must be > 0"),
    ("saad", {"igdm_alpha": 1.0}, "already matches input gradients; drop `igdm_alpha`"),
])
def test_bad_settings_name_the_option(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(name, 0, **options)


def test_a_missing_clean_teacher_or_an_untrainable_teacher_is_named() -> None:
    networks = teachers()
    with pytest.raises(ValueError, match="`clean_teacher` is required by AdversarialTrainerMTARD"):
        AdversarialTrainerMTARD(small_classifier(0), networks["teacher"], None, **ATTACK)  # type: ignore[arg-type]
    frozen = make_classifier(Student(), input_shape=SHAPE)
    frozen._optimizer = None
    with pytest.raises(ValueError, match="teacher"):
        AdversarialTrainerCIARD(small_classifier(0), frozen, networks["clean_teacher"], **ATTACK)
    assert {AdversarialTrainerABSLD.method, AdversarialTrainerDGAD.method, AdversarialTrainerSAAD.method} <= set(RECENT)


def test_linearised_teacher_is_exact_for_a_linear_teacher() -> None:
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).double()
    x, x_adv = torch.rand(2, 1, 2, 2, dtype=torch.float64), torch.rand(2, 1, 2, 2, dtype=torch.float64)
    y = torch.tensor([2, 0])
    logits = teacher(x).detach()
    gradient = torch.stack([teacher[1].weight[label].detach().reshape(1, 2, 2) for label in y])
    guess = linearised_teacher_logits(x_adv, x, logits, gradient, y)
    rows = torch.arange(2)
    torch.testing.assert_close(guess[rows, y], teacher(x_adv).detach()[rows, y])
    other = torch.tensor([[0, 1], [1, 2]])
    torch.testing.assert_close(guess[rows[:, None], other], logits[rows[:, None], other])
    with pytest.raises(ValueError, match="inputs' shape"):
        linearised_teacher_logits(x_adv[:1], x, logits, gradient, y)


def test_a_run_written_before_the_clean_teacher_existed_still_resumes(tmp_path: Path) -> None:
    """A preset that gained ``clean_teacher`` resumes the folders its earlier runs wrote (a method without a clean
    teacher records none; one with it records its source and weights under the identity's ``clean_teacher``)."""
    first = run(tmp_path / "rslad", method="rslad", config=tiny_config(nb_epochs=1), teacher=tiny_teacher())
    again = run(tmp_path / "rslad", method="rslad", config=tiny_config(nb_epochs=1, clean_teacher=CLEAN_SOURCE),
                teacher=tiny_teacher(), resume=True)
    assert again.accuracy == first.accuracy
