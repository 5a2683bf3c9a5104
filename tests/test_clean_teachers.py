"""The clean (naturally trained) teachers: trained by ``art-rslad teacher --method natural``, shipped in the zoo
with their cards, loaded by name like the robust ones."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from test_teachers import _tiny_config, tiny_fashion  # noqa: F401  (tiny_fashion is a fixture)

from art_rslad.cli.teacher import add_parser
from art_rslad.data import load_dataset
from art_rslad.experiments.config import get_preset
from art_rslad.experiments.teachers import TEACHER_METHODS, list_zoo, load_teacher, sha256_file, train_teacher, zoo_card

#: Shipped clean teacher -> (dataset, the robust teacher of the same preset).
CLEAN_TEACHERS = {"fashion-mnist-cnn-large-clean": ("fashion-mnist", "fashion-mnist-cnn-large"),
                  "digits-cnn-large-clean": ("digits", "digits-cnn-large")}


def test_natural_is_a_teacher_method_of_the_config_and_the_cli() -> None:
    assert "natural" in TEACHER_METHODS
    config = get_preset("fashion-mnist")
    natural = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, method="natural"))
    natural.validate()
    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    assert parser.parse_args(["--method", "natural", "--out", "x"]).method == "natural"


def test_a_natural_teacher_keeps_its_last_epoch(tiny_fashion: None, tmp_path: Path) -> None:  # noqa: F811
    classifier, summary = train_teacher(_tiny_config("natural"), device="cpu", run_dir=tmp_path, nb_val=8,
                                        verbose=False)
    assert not classifier.model.training
    assert summary["method"] == "natural" and summary["best_epoch"] is None and summary["kept_epoch"] == 2
    assert all("val_clean" in record for record in summary["history"])  # validation still recorded


@pytest.mark.parametrize("name", list(CLEAN_TEACHERS))
def test_the_shipped_clean_teacher_matches_its_card(name: str) -> None:
    dataset, robust = CLEAN_TEACHERS[name]
    assert name in list_zoo()
    card, weights = zoo_card(name)
    assert sha256_file(weights) == card.sha256 and card.dataset == dataset
    assert card.training["method"] == "natural" and card.training["kept_epoch"] == card.training["nb_epochs"]
    assert card.training["command"].startswith("art-rslad teacher") and "--method natural" in card.training["command"]
    x_test, y_test = load_dataset(dataset, "test")
    assert card.metrics["clean"]["nb_images"] == len(x_test)  # the whole test set
    classifier = load_teacher(f"zoo:{name}", dataset, device="cpu")
    accuracy = float(np.mean(classifier.predict(x_test, batch_size=500).argmax(1) == y_test))
    assert abs(accuracy - card.metrics["clean"]["accuracy"]) <= 2 / len(x_test)
    robust_card, _ = zoo_card(robust)
    assert card.architecture == robust_card.architecture
    assert card.metrics["pgd_sat"]["accuracy"] < robust_card.metrics["pgd_sat"]["accuracy"]  # clean, not robust
