"""A new method needs only its declaration and a registry entry: a toy method, defined here alone, runs through
train, resume, compare (with IGDM's term attached), tune and ``list`` without any other file knowing of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from helpers_trainers import interrupt_at
from test_runs import run, settings, tiny_config, tiny_teacher

from art_rslad.checkpoint import load_checkpoint
from art_rslad.cli import main
from art_rslad.experiments.compare import compare
from art_rslad.experiments.config import get_preset
from art_rslad.experiments.tune import select_learning_rates
from art_rslad.losses import kl_per_sample
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.networks import TEACHER, Network
from art_rslad.trainers.recipes import Recipe
from art_rslad.trainers.records import check_fraction
from art_rslad.trainers.registry import METHODS, register, unregister


class BuddyTrainer(AdversarialTrainerBase):
    """A toy: the student learns the teacher's soft labels on x'; a buddy network, trained beside it with its own
    optimizer, learns the true labels on the same x'; the trainer counts the samples of each class it has seen
    (state kept across epochs)."""

    method: ClassVar[str] = "toy-buddy"
    networks: ClassVar[tuple[Network, ...]] = (TEACHER, Network("buddy", trained=True, start="student"))
    kept_state: ClassVar[tuple[str, ...]] = ("class_counts",)
    distributed_ok: ClassVar[bool] = False

    def __init__(self, classifier: PyTorchClassifier, teacher: PyTorchClassifier, buddy: PyTorchClassifier, *,
                 weight: float = 0.5, **kwargs: Any) -> None:
        self.weight = check_fraction("weight", weight)
        self.class_counts = torch.zeros(classifier.nb_classes, dtype=torch.int64)
        self.buddy: PyTorchClassifier
        super().__init__(classifier, teacher, networks={"buddy": buddy}, **kwargs)

    def method_hyperparameters(self) -> dict[str, Any]:
        return {"weight": self.weight}

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None and batch.teacher_probs is not None
        self.class_counts += torch.bincount(batch.y.cpu(), minlength=len(self.class_counts))
        adv_logits = self.student_logits(x_adv)
        buddy_loss = torch.nn.functional.cross_entropy(self._forward(self.buddy, x_adv), batch.y)
        return kl_per_sample(batch.teacher_probs, adv_logits).mean() + self.weight * buddy_loss, adv_logits


#: The toy's official recipe: its own schedule, a CIFAR-100 difference, and one of its +igdm variant.
TOY_RECIPE = Recipe(nb_epochs=20, lr_schedule_epochs=20, lr_milestones=(10,), note="20 epochs (the toy's)").on(
    "cifar100", Recipe(weight_decay=5e-4, note="weight decay 5e-4 (the toy's)"))
TOY_IGDM_RECIPE = Recipe(max_iter=5, note="5 attack steps (the toy's)")


@pytest.fixture
def toy() -> Iterator[None]:
    register(BuddyTrainer, "distillation", "a toy of this test", recipe=TOY_RECIPE,
             variant_recipe={"igdm": TOY_IGDM_RECIPE})
    yield
    unregister("toy-buddy")


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def test_the_record_is_read_from_the_declaration(toy: None) -> None:
    record = METHODS["toy-buddy"]
    assert record.needs_teacher and record.loads_teacher and not record.distributed_ok and record.shared_loop
    assert [net.name for net in record.trained_networks] == ["buddy"]
    with pytest.raises(ValueError, match="registered already"):
        register(BuddyTrainer, "distillation", "again")


def test_its_official_recipe_reaches_the_paper_presets(toy: None) -> None:
    cifar10, cifar100 = get_preset("cifar10-resnet18"), get_preset("cifar100-resnet18")
    assert cifar10.method_settings("toy-buddy") == {"nb_epochs": 20, "lr_schedule_epochs": 20, "lr_milestones": [10]}
    assert cifar100.method_settings("toy-buddy") == {**cifar10.method_settings("toy-buddy"), "weight_decay": 5e-4}
    assert cifar10.method_settings("toy-buddy+igdm") == {**cifar10.method_settings("toy-buddy"), "max_iter": 5,
                                                         "igdm_alpha": 1.0}
    assert "toy-buddy: 20 epochs (the toy's)" in cifar10.method_overrides_note
    assert "toy-buddy+igdm: 5 attack steps (the toy's)" in cifar10.method_overrides_note
    assert "toy-buddy: weight decay 5e-4 (the toy's)" in cifar100.method_overrides_note.partition("On cifar100, ")[2]
    assert cifar10.method_lr["toy-buddy+igdm"] == 0.1


def test_a_recipe_its_method_cannot_take_fails_the_presets_naming_it() -> None:
    register(BuddyTrainer, "distillation", "a toy of this test", recipe=Recipe(loss_scale=2.0, note="scaled"))
    try:
        with pytest.raises(ValueError, match=r"Preset cifar10-resnet18: .*'toy-buddy' sets loss_scale=2, but "
                                             r"toy-buddy has no loss scale.* the recipe of its entry in art_rslad/"):
            get_preset("cifar10-resnet18")
    finally:
        unregister("toy-buddy")


def test_a_new_method_trains_saves_its_buddy_and_resumes_exactly(toy: None, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(lr_milestones=(1,), lr_schedule_epochs=2)
    teacher = tiny_teacher()
    whole = run(tmp_path / "whole", method="toy-buddy", config=config, teacher=teacher)
    folder = whole.out_dir
    best, last = load_checkpoint(folder / "best.pt"), load_checkpoint(folder / "last.pt")
    buddy = torch.load(folder / "buddy.pt", weights_only=True)
    assert _same(buddy, best["extra_state"]["buddy_model_state"])
    assert last["extra_state"]["buddy_optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(0.005)
    assert int(last["extra_state"]["class_counts"].sum()) == 2 * 48  # two epochs of 48 samples
    assert json.loads((folder / "run.json").read_text())["identity"]["teacher"] is not None
    assert json.loads((folder / "student.json").read_text())["training"]["networks"] == {"buddy": "buddy.pt"}

    with monkeypatch.context() as patch:
        interrupt_at(patch, 5)  # second epoch, second batch
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / "resumed", method="toy-buddy", config=config, teacher=teacher, checkpoint_interval=1)
    resumed = run(tmp_path / "resumed", method="toy-buddy", config=config, teacher=teacher, checkpoint_interval=1,
                  resume=True)
    assert resumed.accuracy == whole.accuracy
    assert _same(torch.load(tmp_path / "resumed" / "buddy.pt", weights_only=True), buddy)
    assert _same(torch.load(tmp_path / "resumed" / "student.pt", weights_only=True),
                 torch.load(folder / "student.pt", weights_only=True))
    assert torch.equal(load_checkpoint(tmp_path / "resumed" / "last.pt")["extra_state"]["class_counts"],
                       last["extra_state"]["class_counts"])


def test_a_new_method_compares_with_igdm_attached_tunes_and_is_listed(
        toy: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config(nb_epochs=1)
    result = compare(config, tmp_path / "compare", ["toy-buddy", "toy-buddy+igdm"], [0], settings(),
                     teacher=tiny_teacher())
    assert {method for method, _ in result.runs} == {"toy-buddy", "toy-buddy+igdm"}
    assert (tmp_path / "compare" / "runs" / "toy-buddy+igdm" / "seed-0" / "buddy.pt").is_file()
    igdm = load_checkpoint(tmp_path / "compare" / "runs" / "toy-buddy+igdm" / "seed-0" / "last.pt")
    assert igdm["config"]["igdm_alpha"] == 1.0 and igdm["config"]["weight"] == 0.5

    tuned = select_learning_rates(config, ["toy-buddy"], tmp_path / "tune", grid=[0.01, 0.05], nb_epochs=1,
                                  train_size=48, val_size=16, teacher=tiny_teacher(), verbose=False)
    assert set(tuned["chosen"]) == {"toy-buddy"} and tuned["chosen"]["toy-buddy"] in (0.01, 0.05)

    assert main(["list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "toy-buddy" in line]
    assert "teacher+buddy" in listed[0] and "a toy of this test" in listed[0]
    assert [line.split(":")[0].strip() for line in listed[1:]] == ["+igdm", "+ema, +swa"]


class CoachTrainer(AdversarialTrainerBase):
    """A toy whose second network starts from the config's teacher and is trained beside the student (as a method
    that retrains its robust teacher would): SAT's loss for the student plus the coach's cross-entropy on x'."""

    method: ClassVar[str] = "toy-coach"
    networks: ClassVar[tuple[Network, ...]] = (Network("coach", trained=True, start="teacher"),)

    def __init__(self, classifier: PyTorchClassifier, coach: PyTorchClassifier, **kwargs: Any) -> None:
        self.coach: PyTorchClassifier
        super().__init__(classifier, networks={"coach": coach}, **kwargs)

    def _method_loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x_adv is not None
        adv_logits = self.student_logits(x_adv)
        coach_logits = self._forward(self.coach, x_adv)
        loss = torch.nn.functional.cross_entropy(adv_logits, batch.y)
        return loss + torch.nn.functional.cross_entropy(coach_logits, batch.y), adv_logits


def test_a_network_that_starts_from_the_teacher_is_a_trained_copy_of_it(tmp_path: Path) -> None:
    register(CoachTrainer, "adversarial training", "a toy of this test")
    try:
        teacher = tiny_teacher()
        before = {key: value.clone() for key, value in teacher.model.state_dict().items()}
        result = run(tmp_path / "coach", method="toy-coach", config=tiny_config(nb_epochs=1), teacher=teacher)
    finally:
        unregister("toy-coach")
    coach = torch.load(result.out_dir / "coach.pt", weights_only=True)
    assert _same(teacher.model.state_dict(), before)  # the teacher itself is never trained
    assert coach.keys() == before.keys() and not _same(coach, before)
    assert json.loads((result.out_dir / "run.json").read_text())["identity"]["teacher"] is not None
