"""Teachers: training with TRADES/SAT, model cards, loading by source, the CLI, and the shipped zoo teacher."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

import art_rslad.experiments.teachers as teachers
from art_rslad.cli import main
from art_rslad.data import load_dataset
from art_rslad.experiments.config import TeacherConfig, get_preset
from art_rslad.experiments.teachers import (
    ModelCard,
    evaluate_teacher,
    list_zoo,
    load_teacher,
    save_teacher,
    sha256_file,
    train_teacher,
    zoo_card,
)
from art_rslad.models import create_model

ZOO_TEACHER = "fashion-mnist-cnn-large"


@pytest.fixture
def tiny_fashion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the dataset seen by art_rslad.experiments.teachers with 96 training and 32 test images of two blobs."""

    def fake(name: str, split: str = "train", root: object = None) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0 if split == "train" else 1)
        count = 96 if split == "train" else 32
        y = rng.integers(0, 2, count)
        x = np.clip(rng.normal(0.3 + 0.4 * y[:, None, None, None], 0.1, (count, 1, 28, 28)), 0, 1)
        return x.astype(np.float32), y.astype(np.int64)

    monkeypatch.setattr(teachers, "load_dataset", fake)


def _tiny_config(method: str = "trades"):
    config = get_preset("fashion-mnist")
    teacher = TeacherConfig(model="cnn-small", method=method, nb_epochs=2, lr=0.05, beta=6.0)
    return dataclasses.replace(config, teacher=teacher, batch_size=32, max_iter=2)


@pytest.mark.parametrize("method", ["trades", "sat"])
def test_train_teacher_returns_the_best_epoch_in_eval_mode(tiny_fashion: None, tmp_path: Path, method: str) -> None:
    classifier, summary = train_teacher(_tiny_config(method), device="cpu", run_dir=tmp_path, nb_val=8,
                                        verbose=False)
    assert isinstance(classifier, PyTorchClassifier) and not classifier.model.training
    assert summary["method"] == method and summary["nb_train"] == 86 and summary["nb_val"] == 8
    assert 1 <= summary["best_epoch"] <= 2 and len(summary["history"]) == 2
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    # Resuming a finished run trains no further epoch and returns the same best weights.
    again, _ = train_teacher(_tiny_config(method), device="cpu", run_dir=tmp_path, resume=True, nb_val=8,
                             verbose=False)
    for key, value in classifier.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[key], value)


def _saved_teacher(folder: Path) -> tuple[ModelCard, PyTorchClassifier]:
    torch.manual_seed(0)
    classifier = load_teacher_from_model(create_model("cnn-small"))
    card = save_teacher(classifier, folder, "tiny", architecture="cnn-small", dataset="fashion-mnist", eps=0.1,
                        metrics={"clean": {"accuracy": 0.5, "nb_images": 32, "command": "x"}},
                        training={"command": "x"}, seed=0)
    return card, classifier


def load_teacher_from_model(model: torch.nn.Module) -> PyTorchClassifier:
    from art_rslad.models import make_classifier

    return make_classifier(model.eval(), "fashion-mnist", device="cpu")


def test_card_and_weights_round_trip(tmp_path: Path) -> None:
    card, classifier = _saved_teacher(tmp_path)
    assert card.sha256 == sha256_file(tmp_path / "tiny.pt") and card.nb_parameters == 24234
    assert ModelCard.load(tmp_path / "tiny.json") == card
    loaded = load_teacher(str(tmp_path / "tiny.pt"), "fashion-mnist", device="cpu")  # architecture from the card
    assert not loaded.model.training
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x), classifier.predict(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="trained on fashion-mnist, not mnist"):
        load_teacher(str(tmp_path / "tiny.pt"), "mnist")


def test_the_card_beside_a_file_wins_over_a_default_architecture(tmp_path: Path, caplog) -> None:
    card, classifier = _saved_teacher(tmp_path)  # e.g. a run folder's student.pt with its student.json
    with caplog.at_level("WARNING"):
        loaded = load_teacher(str(tmp_path / "tiny.pt"), "fashion-mnist", model="cnn-large", device="cpu")
    assert f"says {card.architecture}" in caplog.text
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x), classifier.predict(x), rtol=1e-5, atol=1e-5)


def test_a_budget_other_than_the_cards_is_loaded_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    card, _ = zoo_card("fashion-mnist-cnn-large")
    with caplog.at_level("WARNING"):
        load_teacher("zoo:fashion-mnist-cnn-large", "fashion-mnist", device="cpu", eps=card.eps)
    assert "robust at eps" not in caplog.text
    with caplog.at_level("WARNING"):
        teacher = load_teacher("zoo:fashion-mnist-cnn-large", "fashion-mnist", device="cpu", eps=8 / 255)
    assert f"robust at eps {card.eps:g} (its card), but this run attacks at eps 0.0313725" in caplog.text
    assert "Set eps=0.1 (config key `eps`)" in caplog.text and not teacher.model.training


def test_changed_weights_are_refused_by_their_card(tmp_path: Path) -> None:
    _saved_teacher(tmp_path)
    torch.save({"other": torch.zeros(1)}, tmp_path / "tiny.pt")
    with pytest.raises(ValueError, match="does not match its card's sha256"):
        load_teacher(str(tmp_path / "tiny.pt"), "fashion-mnist")


def test_a_state_dict_without_card_needs_the_architecture(tmp_path: Path) -> None:
    torch.save(create_model("cnn-small").state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="`model` is required"):
        load_teacher(str(tmp_path / "bare.pt"), "fashion-mnist")
    assert isinstance(load_teacher(str(tmp_path / "bare.pt"), "fashion-mnist", model="cnn-small"),
                      PyTorchClassifier)
    with pytest.raises(ValueError, match="missing keys"):
        load_teacher(str(tmp_path / "bare.pt"), "fashion-mnist", model="cnn-large")


def test_unknown_sources_list_what_exists() -> None:
    with pytest.raises(ValueError, match=f"Unknown zoo model 'nope'; shipped models: .*{ZOO_TEACHER}"):
        load_teacher("zoo:nope", "fashion-mnist")
    with pytest.raises(FileNotFoundError, match="neither 'zoo:<name>', 'robustbench:<name>'"):
        load_teacher("no/such/file.pt", "fashion-mnist")


def test_robustbench_sources_are_dispatched_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    import art_rslad.robustbench as robustbench

    calls = []
    monkeypatch.setattr(robustbench, "load_robustbench_teacher",
                        lambda name, dataset, model_dir=None, device=None: calls.append((name, dataset, model_dir)))
    load_teacher("robustbench:Zhang2019Theoretically", "cifar10", model_dir="models")
    assert calls == [("Zhang2019Theoretically", "cifar10", "models")]


def test_evaluate_teacher_counts_images(tiny_fashion: None) -> None:
    torch.manual_seed(0)
    classifier = load_teacher_from_model(create_model("cnn-small"))
    metrics = evaluate_teacher(classifier, "fashion-mnist", nb_images=20, attacks=("clean", "fgsm"))
    assert set(metrics) == {"clean", "fgsm"}
    assert all(entry["nb_images"] == 20 and 0 <= entry["accuracy"] <= 1 for entry in metrics.values())


def test_cli_imports_a_state_dict_and_writes_a_card(tiny_fashion: None, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({f"module.{k}": v for k, v in create_model("cnn-small").state_dict().items()}, tmp_path / "in.pt")
    code = main(["teacher", "--import", str(tmp_path / "in.pt"), "--model", "cnn-small", "--out",
                 str(tmp_path / "out"), "--name", "imported", "--nb-eval", "16", "--nb-eval-autoattack", "0",
                 "--device", "cpu"])
    assert code == 0
    card = json.loads((tmp_path / "out" / "imported.json").read_text())
    assert card["architecture"] == "cnn-small" and card["metrics"]["clean"]["nb_images"] == 16
    assert "--import" in card["metrics"]["clean"]["command"] and card["training"]["imported_from"]
    assert card["sha256"] == sha256_file(tmp_path / "out" / "imported.pt")
    assert "imported.pt" in capsys.readouterr().out


def test_cli_reports_a_bad_state_dict_as_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    code = main(["teacher", "--import", str(tmp_path / "broken.pt"), "--model", "cnn-small", "--out",
                 str(tmp_path), "--device", "cpu"])
    assert code == 2 and "corrupt" in capsys.readouterr().err


def test_cli_list_shows_models_with_parameter_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11,173,962" in out and "wrn-70-16" in out and "fashion-mnist" in out
    assert ZOO_TEACHER in out


def test_the_shipped_teacher_matches_its_card() -> None:
    """The zoo's Fashion-MNIST teacher: weights unchanged (sha256) and clean accuracy as the card says."""
    assert ZOO_TEACHER in list_zoo()
    card, weights = zoo_card(ZOO_TEACHER)
    assert sha256_file(weights) == card.sha256
    assert weights.stat().st_size < 5_000_000 and card.nb_parameters < 400_000
    assert card.dataset == "fashion-mnist" and card.eps == pytest.approx(0.1)
    assert card.training["command"].startswith("art-rslad teacher")
    for name in ("clean", "pgd_sat", "autoattack"):
        assert card.metrics[name]["nb_images"] > 0 and card.metrics[name]["command"]
    # Robust: the card's PGD and AutoAttack accuracies are far above chance (10%).
    assert card.metrics["autoattack"]["accuracy"] > 0.4
    classifier = load_teacher(f"zoo:{ZOO_TEACHER}", "fashion-mnist", device="cpu")
    count = card.metrics["clean"]["nb_images"]
    x_test, y_test = load_dataset("fashion-mnist", "test")
    accuracy = float(np.mean(classifier.predict(x_test[:count], batch_size=500).argmax(1) == y_test[:count]))
    assert abs(accuracy - card.metrics["clean"]["accuracy"]) <= 2 / count


def test_a_state_dict_of_another_size_names_the_model_and_its_options(tmp_path: Path) -> None:
    path = tmp_path / "teacher.pt"
    torch.save(create_model("cnn-small", 10, width=4, image_size=8).state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit the model 'cnn-small' with options \{'width': 8, 'image_size'"
                                         r": 8\}: .*shape mismatches.*--model, --model-option") as raised:
        load_teacher(str(path), "digits", model="cnn-small", model_options={"width": 8, "image_size": 8})
    assert "StridedCNN" not in str(raised.value)
