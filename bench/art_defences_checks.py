"""The measurements quoted in docs/art-defences.md about ART's own defences.

Run from the repository root::

    .venv/bin/python bench/art_defences_checks.py

1. Defensive distillation in a short budget: clean test accuracy of the teacher (trained at temperature T) and of
   the distilled student (deployed at T = 1) for T in 100 (the paper's), 20 and 1 (plain distillation, a check of
   the machinery); ``cnn-small`` on the first 4,096 Fashion-MNIST training images, 2 epochs, SGD lr 0.05.
2. ART 1.20's FBF updates the model in eval mode: BatchNorm's ``num_batches_tracked`` after one epoch of
   ``art-fbf`` and of ``art-madry-pgd`` on 128 images.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from art_rslad.data import load_dataset
from art_rslad.models import create_model, make_classifier
from art_rslad.trainers.art_adversarial import ArtFBF, ArtMadryPGD
from art_rslad.trainers.art_distillation import ArtDefensiveDistillation


def student(seed: int = 0):
    torch.manual_seed(seed)
    return make_classifier(create_model("cnn-small", 10), "fashion-mnist", lr=0.05, device="cpu")


def distillation(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> None:
    print("| T | teacher clean (%) | student clean (%) | seconds per epoch |")
    print("|---:|---:|---:|---:|")
    for temperature in (100.0, 20.0, 1.0):
        classifier = student()
        trainer = ArtDefensiveDistillation(classifier, eps=0.1, temperature=temperature, verbose=False)
        trainer.fit(x, y, batch_size=128, nb_epochs=2)
        teacher = 100 * np.mean(trainer.teacher.predict(x_test).argmax(1) == y_test)
        distilled = 100 * np.mean(classifier.predict(x_test).argmax(1) == y_test)
        print(f"| {temperature:g} | {teacher:.1f} | {distilled:.1f} | {trainer.seconds_per_epoch:.1f} |")


def batchnorm_during_fbf(x: np.ndarray, y: np.ndarray) -> None:
    for adapter, options in ((ArtFBF, {}), (ArtMadryPGD, {"max_iter": 2})):
        classifier = student()
        adapter(classifier, eps=0.1, verbose=False, **options).fit(x, y, batch_size=64, nb_epochs=1)
        tracked = [int(module.num_batches_tracked) for module in classifier.model.modules()
                   if isinstance(module, torch.nn.BatchNorm2d)]
        print(f"{adapter.method}: BatchNorm num_batches_tracked after one epoch of 2 batches: {tracked}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    x, y = load_dataset("fashion-mnist", "train")
    x_test, y_test = load_dataset("fashion-mnist", "test")
    distillation(x[:4096], y[:4096], x_test[:1000], y_test[:1000])
    batchnorm_during_fbf(x[:128], y[:128])


if __name__ == "__main__":
    main()
