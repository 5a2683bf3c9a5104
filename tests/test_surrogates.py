"""The presets' transfer surrogates: the shipped Fashion-MNIST one matches its card, is small, robust, of another
architecture than the student and the teacher, and its attacks transfer to the teacher."""

from __future__ import annotations

import numpy as np
import pytest

from art_rslad.data import load_dataset
from art_rslad.evaluation import evaluate_robustness
from art_rslad.experiments.config import get_preset, preset_names
from art_rslad.experiments.teachers import list_zoo, load_teacher, sha256_file, zoo_card

SURROGATE = "fashion-mnist-cnn-pool"


def test_every_preset_surrogate_is_empty_or_a_source_load_teacher_reads() -> None:
    for name in preset_names():
        source = get_preset(name).transfer_surrogate
        assert source == "" or source.startswith(("zoo:", "robustbench:")), name
        if source.startswith("zoo:"):
            assert source.removeprefix("zoo:") in list_zoo()


def test_the_shipped_surrogate_matches_its_card_and_differs_from_student_and_teacher() -> None:
    preset = get_preset("fashion-mnist")
    assert preset.transfer_surrogate == f"zoo:{SURROGATE}"
    card, weights = zoo_card(SURROGATE)
    assert sha256_file(weights) == card.sha256 and weights.stat().st_size < 1_000_000
    assert card.architecture == "cnn-pool" and card.architecture not in (preset.student, preset.teacher.model)
    assert card.dataset == "fashion-mnist" and card.eps == pytest.approx(0.1)
    assert card.training["command"].startswith("art-rslad teacher") and card.training["method"] == "sat"
    assert card.metrics["pgd_sat"]["accuracy"] > 0.4  # robust: far above chance (10%)
    surrogate = load_teacher(f"zoo:{SURROGATE}", "fashion-mnist", device="cpu")
    count = card.metrics["clean"]["nb_images"]
    x_test, y_test = load_dataset("fashion-mnist", "test")
    accuracy = float(np.mean(surrogate.predict(x_test[:count], batch_size=500).argmax(1) == y_test[:count]))
    assert abs(accuracy - card.metrics["clean"]["accuracy"]) <= 2 / count


def test_attacks_crafted_on_the_surrogate_transfer_to_the_teacher() -> None:
    preset = get_preset("fashion-mnist")
    surrogate = load_teacher(preset.transfer_surrogate, "fashion-mnist", device="cpu")
    teacher = load_teacher(preset.teacher.source, "fashion-mnist", device="cpu")
    x_test, y_test = load_dataset("fashion-mnist", "test")
    report = evaluate_robustness(teacher, x_test[:200], y_test[:200], eps=preset.eps,
                                 attacks=("clean", "transfer_pgd", "pgd_sat"), surrogate=surrogate, batch_size=200,
                                 verbose=False)
    # A real transfer source: it costs the teacher accuracy, though less than the white-box attack.
    assert report.accuracy["pgd_sat"] <= report.accuracy["transfer_pgd"] < report.accuracy["clean"] - 0.02
